//! `oscal/assessment-results.json`: the control mapping as an OSCAL
//! assessment-results document, for GRC tools that import OSCAL.
//!
//! A pure function of `controls.json`, like every derived file: the
//! verifier regenerates it and compares bytes. So it reads no clock and
//! draws no random UUIDs: each UUID is a hash of the window and a name,
//! and every time in it is one of the window's.
//!
//! `scripts/validate-oscal` checks the output against NIST's official JSON
//! schema of [`OSCAL_VERSION`].

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::controls::{ControlsReport, CriterionResult, Status, TestResult, WindowInfo};

/// The OSCAL release whose official JSON schema the document is checked
/// against.
pub const OSCAL_VERSION: &str = "1.2.3";

/// The namespace of Docket's own props: OSCAL reserves props without a
/// namespace for the names it defines.
pub const NS: &str = "urn:docket:oscal";

/// The OSCAL assessment-results document for `report`.
///
/// One result covers the window. Each test becomes an observation (its
/// figures, and the entries it lists as relevant evidence); each test with
/// a threshold also becomes a finding per control of its criterion, whose
/// target is that control's objective. A test with no source is a finding
/// that is not satisfied, never one that passes; an observed figure has
/// no threshold and so no finding.
pub fn assessment_results(report: &ControlsReport) -> Value {
    let win = &report.window;
    let mapping = uuid(win, "resource|control-mapping");

    let mut control_ids: Vec<String> = Vec::new();
    let mut observations = Vec::new();
    let mut findings = Vec::new();
    for criterion in &report.criteria {
        let controls = control_ids_of(&criterion.id);
        for id in &controls {
            if !control_ids.contains(id) {
                control_ids.push(id.clone());
            }
        }
        for test in &criterion.tests {
            let observation = uuid(win, &format!("observation|{}|{}", criterion.id, test.id));
            observations.push(observation_json(win, criterion, test, &observation));
            if test.status == Status::Observed {
                continue;
            }
            for control in &controls {
                findings.push(finding_json(win, criterion, test, control, &observation));
            }
        }
    }

    let selection = if control_ids.is_empty() {
        json!({"include-all": {}})
    } else {
        let ids: Vec<Value> = control_ids
            .iter()
            .map(|id| json!({"control-id": id}))
            .collect();
        json!({"include-controls": ids})
    };

    let mut result = Map::new();
    result.insert("uuid".into(), uuid(win, "result").into());
    result.insert(
        "title".into(),
        line(&format!("SOC 2 tests of {}", scope(win))).into(),
    );
    result.insert("description".into(), result_description(report).into());
    result.insert("start".into(), win.from.clone().into());
    result.insert("end".into(), win.to.clone().into());
    result.insert("props".into(), window_props(report).into());
    result.insert(
        "reviewed-controls".into(),
        json!({
            "description": "The SOC 2 Trust Services Criteria of Docket's control mapping, \
                            each identified by its id in lower case.",
            "control-selections": [selection],
        }),
    );
    // OSCAL allows no empty arrays.
    if !observations.is_empty() {
        result.insert("observations".into(), observations.into());
    }
    if !findings.is_empty() {
        result.insert("findings".into(), findings.into());
    }

    json!({
        "assessment-results": {
            "uuid": uuid(win, "assessment-results"),
            "metadata": {
                "title": line(&format!("Docket SOC 2 evidence: {}", scope(win))),
                "last-modified": win.created,
                "version": format!("seq {}..{}", win.first_seq, win.end_seq),
                "oscal-version": OSCAL_VERSION,
                "remarks": "Derived by Docket from the entries of its evidence pack alone; \
                            `docket-verify` derives it again and compares bytes.",
            },
            "import-ap": {
                "href": format!("#{mapping}"),
                "remarks": "Docket issues no separate assessment plan: the plan is its control \
                            mapping, the back-matter resource this points at.",
            },
            "results": [Value::Object(result)],
            "back-matter": {
                "resources": [{
                    "uuid": mapping,
                    "title": "Docket's SOC 2 control mapping",
                    "description": format!(
                        "Which entry types answer each SOC 2 criterion and the automated tests \
                         whose results are the findings here: `controls.json` of this pack \
                         (format `{}`).",
                        report.format
                    ),
                    "rlinks": [{"href": "../controls.json", "media-type": "application/json"}],
                }],
            },
        }
    })
}

/// A UUID derived from the window and `name`: the first 16 bytes of a
/// SHA-256, with the version nibble of a name-based (version 5) UUID and
/// the RFC 4122 variant, since OSCAL accepts only versions 4 and 5. The
/// window's log, range and project are in the hash so that two packs of
/// different windows never share a UUID, and the pack's creation time is
/// not, so that a pack made again of the same window keeps its UUIDs.
fn uuid(window: &WindowInfo, name: &str) -> String {
    let key = json!([
        window.origin,
        window.first_seq,
        window.end_seq,
        window.project,
        name
    ]);
    let digest = Sha256::digest(key.to_string().as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&digest[..16]);
    b[6] = (b[6] & 0x0f) | 0x50;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// The OSCAL control ids of a criterion: lower case, one per criterion a
/// combined id names (`C1.1/C1.2` is `c1.1` and `c1.2`).
fn control_ids_of(criterion: &str) -> Vec<String> {
    criterion.split('/').map(token).collect()
}

/// `s` as an OSCAL token (an XML NCName: a letter or `_`, then letters,
/// digits, `.`, `-`, `_`), lower case; other characters become `-`.
fn token(s: &str) -> String {
    let mut t: String = s
        .trim()
        .chars()
        .map(|c| match c {
            'A'..='Z' => c.to_ascii_lowercase(),
            'a'..='z' | '0'..='9' | '.' | '-' | '_' => c,
            _ => '-',
        })
        .collect();
    if !t.starts_with(|c: char| c.is_ascii_lowercase() || c == '_') {
        t.insert(0, '_');
    }
    t
}

/// `s` as an OSCAL string or markup line: one line, no leading or trailing
/// whitespace, not empty.
fn line(s: &str) -> String {
    let words: Vec<&str> = s
        .split(|c: char| c.is_whitespace() || c == '\u{feff}')
        .filter(|w| !w.is_empty())
        .collect();
    if words.is_empty() {
        "(none)".to_owned()
    } else {
        words.join(" ")
    }
}

fn prop(name: &str, value: &str) -> Value {
    json!({"name": name, "ns": NS, "value": line(value)})
}

/// The log, project and dates a window covers, for titles.
fn scope(win: &WindowInfo) -> String {
    let project = match &win.project {
        Some(p) => format!(", project {p}"),
        None => String::new(),
    };
    format!("{}{project}, {} to {}", win.origin, win.from, win.to)
}

fn window_props(report: &ControlsReport) -> Vec<Value> {
    let win = &report.window;
    let mut props = vec![
        prop("docket-origin", &win.origin),
        prop("docket-first-seq", &win.first_seq.to_string()),
        prop("docket-end-seq", &win.end_seq.to_string()),
    ];
    if let Some(p) = &win.project {
        props.push(prop("docket-project", p));
    }
    props.push(prop(
        "docket-withheld-entries",
        &report.withheld_entries.to_string(),
    ));
    props
}

fn result_description(report: &ControlsReport) -> String {
    let win = &report.window;
    let mut s = format!(
        "Docket's automated tests of the SOC 2 Trust Services Criteria on entries \
         {}..{} (end exclusive) of log `{}`, recorded from {} to {} (end exclusive)",
        win.first_seq, win.end_seq, win.origin, win.from, win.to
    );
    if let Some(p) = &win.project {
        s.push_str(&format!(", project `{p}`"));
    }
    s.push_str(".\n\nEntries by type:\n");
    for (kind, n) in &report.entries_by_type {
        s.push_str(&format!("\n- `{kind}`: {n}"));
    }
    if report.entries_by_type.is_empty() {
        s.push_str("\nnone");
    }
    s.push_str(&format!(
        "\n\nEntries of other projects, present only as leaf hashes: {}.",
        report.withheld_entries
    ));
    s
}

fn status_text(status: Status) -> &'static str {
    match status {
        Status::NotSatisfied => "Not satisfied",
        Status::NoSource => "No source",
        Status::NotObserved => "Not observed (the window holds nothing this test checks)",
        Status::Satisfied => "Satisfied",
        Status::Observed => "Observed (a figure for the auditor, with no threshold to pass)",
    }
}

fn no_source_text(test: &TestResult) -> String {
    format!(
        "No source: {}. Docket records nothing this test could read, so it is never \
         counted as satisfied.",
        test.reason.as_deref().unwrap_or("no reason recorded")
    )
}

fn test_props(criterion: &CriterionResult, test: &TestResult) -> Vec<Value> {
    vec![
        prop("docket-criterion", &criterion.id),
        prop("docket-test", &test.id),
        prop("docket-status", test.status.as_str()),
    ]
}

fn observation_json(
    win: &WindowInfo,
    criterion: &CriterionResult,
    test: &TestResult,
    uuid: &str,
) -> Value {
    let mut d = if test.status == Status::NoSource {
        no_source_text(test)
    } else {
        format!("{}: {}", status_text(test.status), test.title)
    };
    d.push_str(&format!(
        "\n\nCriterion {} ({}): {} Evidence: {} entries of the window of types {}.",
        criterion.id,
        criterion.title,
        criterion.asks,
        criterion.evidence_entries,
        if criterion.sources.is_empty() {
            "(none)".to_owned()
        } else {
            criterion
                .sources
                .iter()
                .map(|t| format!("`{t}`"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    ));
    if !test.figures.is_empty() {
        d.push_str("\n\nFigures:\n");
        for (name, value) in &test.figures {
            d.push_str(&format!("\n- `{name}`: `{value}`"));
        }
    }
    if !test.items.is_empty() || test.items_omitted > 0 {
        d.push_str(&format!(
            "\n\nEntries listed: {}; left out of the list: {}.",
            test.items.len(),
            test.items_omitted
        ));
    }

    let mut props = test_props(criterion, test);
    if test.items_omitted > 0 {
        props.push(prop(
            "docket-items-omitted",
            &test.items_omitted.to_string(),
        ));
    }
    let mut o = Map::new();
    o.insert("uuid".into(), uuid.into());
    o.insert("title".into(), line(&test.title).into());
    o.insert("description".into(), d.into());
    o.insert("props".into(), props.into());
    o.insert("methods".into(), json!(["TEST"]));
    if !test.items.is_empty() {
        let evidence: Vec<Value> = test
            .items
            .iter()
            .map(|item| {
                json!({
                    "description": format!("Entry {}: {}", item.seq, item.note),
                    "props": [prop("docket-seq", &item.seq.to_string())],
                })
            })
            .collect();
        o.insert("relevant-evidence".into(), evidence.into());
    }
    o.insert("collected".into(), win.created.clone().into());
    Value::Object(o)
}

fn finding_json(
    win: &WindowInfo,
    criterion: &CriterionResult,
    test: &TestResult,
    control: &str,
    observation: &str,
) -> Value {
    let (state, reason) = match test.status {
        Status::Satisfied => ("satisfied", "pass"),
        Status::NotSatisfied => ("not-satisfied", "fail"),
        // Anything else with a finding is not satisfied: only a test that
        // ran and passed counts as passing.
        Status::NoSource | Status::NotObserved | Status::Observed => ("not-satisfied", "other"),
    };
    let mut status = Map::new();
    status.insert("state".into(), state.into());
    status.insert("reason".into(), reason.into());
    if test.status == Status::NoSource {
        status.insert("remarks".into(), no_source_text(test).into());
    }
    json!({
        "uuid": uuid(win, &format!("finding|{}|{}|{control}", criterion.id, test.id)),
        "title": line(&test.title),
        "description": format!(
            "Criterion {} ({}), objective `{control}`: {}. Test `{}`: {}.",
            criterion.id,
            criterion.title,
            test.title,
            test.id,
            status_text(test.status).to_lowercase()
        ),
        "props": test_props(criterion, test),
        "target": {
            "type": "objective-id",
            "target-id": control,
            "status": status,
        },
        "related-observations": [{"observation-uuid": observation}],
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use serde_json::{Map, Value, json};

    use super::*;
    use crate::controls::{CONTROLS_FORMAT, CRITERIA, Item};

    /// A report over the real criteria table: each test not satisfied,
    /// satisfied or observed in turn, or with no source where the table
    /// says so.
    fn fixture() -> ControlsReport {
        let cycle = [Status::Satisfied, Status::NotSatisfied, Status::Observed];
        let mut n = 0;
        let criteria = CRITERIA
            .iter()
            .map(|def| {
                let tests: Vec<TestResult> = def
                    .tests
                    .iter()
                    .map(|t| {
                        n += 1;
                        let status = match t.no_source {
                            Some(_) => Status::NoSource,
                            None => cycle[n % cycle.len()],
                        };
                        let items = if status == Status::NoSource {
                            vec![]
                        } else {
                            (0..n as u64 % 4)
                                .map(|i| Item {
                                    seq: 10 + i,
                                    note: format!("agent a{i} is retired"),
                                })
                                .collect()
                        };
                        let mut figures = Map::new();
                        if status != Status::NoSource {
                            figures.insert("count".into(), json!(n));
                            figures
                                .insert("per_day".into(), json!([{"day": "2025-01-01", "n": n}]));
                        }
                        TestResult {
                            id: t.id.as_str().into(),
                            title: t.title.into(),
                            status,
                            reason: t.no_source.map(Into::into),
                            figures,
                            items,
                            items_omitted: if n.is_multiple_of(5) { 3 } else { 0 },
                        }
                    })
                    .collect();
                let status = tests
                    .iter()
                    .map(|t| t.status)
                    .min()
                    .unwrap_or(Status::NoSource);
                CriterionResult {
                    id: def.id.into(),
                    title: def.title.into(),
                    asks: def.asks.into(),
                    sources: def.sources.iter().map(|k| k.as_str().to_owned()).collect(),
                    evidence_entries: 12,
                    status,
                    tests,
                }
            })
            .collect();
        let mut entries_by_type = Map::new();
        entries_by_type.insert("receipt".into(), json!(90));
        entries_by_type.insert("decision".into(), json!(10));
        ControlsReport {
            format: CONTROLS_FORMAT.into(),
            window: WindowInfo {
                origin: "docket.example/log".into(),
                from: "2025-01-01T00:00:00Z".into(),
                to: "2025-04-01T00:00:00Z".into(),
                first_seq: 10,
                end_seq: 110,
                project: Some("payments".into()),
                created: "2025-04-02T09:00:00Z".into(),
            },
            entries_by_type,
            withheld_entries: 4,
            criteria,
        }
    }

    fn result(doc: &Value) -> &Value {
        &doc["assessment-results"]["results"][0]
    }

    fn array<'a>(v: &'a Value, key: &str) -> &'a [Value] {
        v[key].as_array().map(Vec::as_slice).unwrap_or_default()
    }

    fn prop_value<'a>(v: &'a Value, name: &str) -> Option<&'a str> {
        array(v, "props")
            .iter()
            .find(|p| p["name"] == name)
            .and_then(|p| p["value"].as_str())
    }

    /// OSCAL's UUID pattern: version 4 or 5, RFC 4122 variant.
    fn is_oscal_uuid(s: &str) -> bool {
        let b = s.as_bytes();
        b.len() == 36
            && b.iter().enumerate().all(|(i, &c)| match i {
                8 | 13 | 18 | 23 => c == b'-',
                _ => c.is_ascii_hexdigit(),
            })
            && matches!(b[14], b'4' | b'5')
            && matches!(b[19], b'8' | b'9' | b'a' | b'b' | b'A' | b'B')
    }

    /// Every identifier: the values of `uuid` keys (not the references).
    fn uuids<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    if k == "uuid" {
                        out.push(x.as_str().expect("uuid is a string"));
                    } else {
                        uuids(x, out);
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|x| uuids(x, out)),
            _ => {}
        }
    }

    #[test]
    fn the_same_report_gives_the_same_bytes() {
        let report = fixture();
        let bytes = serde_json::to_vec_pretty(&assessment_results(&report)).unwrap();
        assert_eq!(
            bytes,
            serde_json::to_vec_pretty(&assessment_results(&report.clone())).unwrap()
        );
        let parsed: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(parsed, assessment_results(&report));
    }

    #[test]
    fn another_window_gets_other_uuids_and_a_remade_pack_the_same() {
        let report = fixture();
        let mut later = report.clone();
        later.window.end_seq += 1;
        let mut remade = report.clone();
        remade.window.created = "2025-05-01T00:00:00Z".into();
        let id = |r: &ControlsReport| assessment_results(r)["assessment-results"]["uuid"].clone();
        assert_ne!(id(&report), id(&later));
        assert_eq!(id(&report), id(&remade));
    }

    #[test]
    fn uuids_are_unique_and_match_oscal_pattern() {
        let doc = assessment_results(&fixture());
        let mut all = Vec::new();
        uuids(&doc, &mut all);
        assert!(all.len() > 40, "{} uuids", all.len());
        for u in &all {
            assert!(is_oscal_uuid(u), "{u}");
        }
        let unique: HashSet<_> = all.iter().collect();
        assert_eq!(unique.len(), all.len(), "duplicate uuids");
    }

    #[test]
    fn findings_point_at_observations_that_exist() {
        let doc = assessment_results(&fixture());
        let observations: HashSet<&str> = array(result(&doc), "observations")
            .iter()
            .map(|o| o["uuid"].as_str().unwrap())
            .collect();
        let findings = array(result(&doc), "findings");
        assert!(!findings.is_empty());
        for f in findings {
            let related = array(f, "related-observations");
            assert_eq!(related.len(), 1);
            let uuid = related[0]["observation-uuid"].as_str().unwrap();
            assert!(observations.contains(uuid), "{uuid}");
        }
        let import = doc["assessment-results"]["import-ap"]["href"]
            .as_str()
            .unwrap();
        let resource = &doc["assessment-results"]["back-matter"]["resources"][0]["uuid"];
        assert_eq!(import, format!("#{}", resource.as_str().unwrap()));
    }

    #[test]
    fn no_source_is_never_satisfied() {
        let report = fixture();
        let doc = assessment_results(&report);
        let no_source: Vec<&str> = report
            .criteria
            .iter()
            .flat_map(|c| &c.tests)
            .filter(|t| t.status == Status::NoSource)
            .map(|t| t.id.as_str())
            .collect();
        assert!(no_source.len() > 5);
        let findings = array(result(&doc), "findings");
        for id in &no_source {
            let ours: Vec<&Value> = findings
                .iter()
                .filter(|f| prop_value(f, "docket-test") == Some(id))
                .collect();
            assert!(!ours.is_empty(), "{id} has no finding");
            for f in ours {
                assert_eq!(f["target"]["status"]["state"], "not-satisfied", "{id}");
                assert_eq!(prop_value(f, "docket-status"), Some("no_source"));
                let remarks = f["target"]["status"]["remarks"].as_str().unwrap();
                assert!(remarks.starts_with("No source: "), "{remarks}");
            }
        }
        let observation = array(result(&doc), "observations")
            .iter()
            .find(|o| prop_value(o, "docket-test") == Some("cc6.3-session-outlived-task"))
            .unwrap();
        assert!(
            observation["description"]
                .as_str()
                .unwrap()
                .starts_with("No source: Docket does not record when an agent's task ends.")
        );
    }

    #[test]
    fn each_status_maps_to_its_finding() {
        let report = fixture();
        let doc = assessment_results(&report);
        let findings = array(result(&doc), "findings");
        let observations = array(result(&doc), "observations");
        let mut tests = 0;
        for c in &report.criteria {
            let controls = control_ids_of(&c.id);
            for t in &c.tests {
                tests += 1;
                let ours: Vec<&Value> = findings
                    .iter()
                    .filter(|f| prop_value(f, "docket-test") == Some(&t.id))
                    .collect();
                let states: Vec<&Value> = ours
                    .iter()
                    .map(|f| &f["target"]["status"]["state"])
                    .collect();
                let targets: Vec<&str> = ours
                    .iter()
                    .map(|f| f["target"]["target-id"].as_str().unwrap())
                    .collect();
                match t.status {
                    Status::Observed => assert!(ours.is_empty(), "{}", t.id),
                    Status::Satisfied => {
                        assert!(states.iter().all(|s| *s == "satisfied"));
                        assert_eq!(targets, controls);
                    }
                    Status::NotSatisfied | Status::NoSource | Status::NotObserved => {
                        assert!(states.iter().all(|s| *s == "not-satisfied"));
                        assert_eq!(targets, controls);
                    }
                }
            }
        }
        assert_eq!(observations.len(), tests);
    }

    #[test]
    fn combined_criteria_are_one_control_each() {
        let doc = assessment_results(&fixture());
        let selected: Vec<&str> = array(
            &result(&doc)["reviewed-controls"]["control-selections"][0],
            "include-controls",
        )
        .iter()
        .map(|c| c["control-id"].as_str().unwrap())
        .collect();
        assert!(selected.contains(&"cc6.1"));
        assert!(selected.contains(&"c1.1") && selected.contains(&"c1.2"));
        assert!(selected.contains(&"pi1.x"));
        assert!(!selected.iter().any(|c| c.contains('/')));
        let unique: HashSet<_> = selected.iter().collect();
        assert_eq!(unique.len(), selected.len());
    }

    #[test]
    fn tokens_and_lines_stay_in_oscal_syntax() {
        assert_eq!(token("CC6.1"), "cc6.1");
        assert_eq!(token("1x y"), "_1x-y");
        assert_eq!(token(""), "_");
        assert_eq!(line("  a\n b\u{2028}c "), "a b c");
        assert_eq!(line(" \n"), "(none)");
    }

    #[test]
    fn listed_entries_are_relevant_evidence() {
        let report = fixture();
        let doc = assessment_results(&report);
        for o in array(result(&doc), "observations") {
            let id = prop_value(o, "docket-test").unwrap();
            let test = report
                .criteria
                .iter()
                .flat_map(|c| &c.tests)
                .find(|t| t.id == id)
                .unwrap();
            let seqs: Vec<String> = array(o, "relevant-evidence")
                .iter()
                .map(|e| prop_value(e, "docket-seq").unwrap().to_owned())
                .collect();
            let want: Vec<String> = test.items.iter().map(|i| i.seq.to_string()).collect();
            assert_eq!(seqs, want, "{id}");
            assert_eq!(o["collected"], "2025-04-02T09:00:00Z");
        }
    }

    /// The fixture's document, for `scripts/validate-oscal` to check against
    /// NIST's schema:
    /// `DOCKET_OSCAL_SAMPLE_OUT=$PWD/target/oscal-sample.json cargo test -p
    /// docket-evidence oscal::` then `scripts/validate-oscal target/oscal-sample.json`.
    #[test]
    fn sample_for_the_schema_check() {
        let bytes = serde_json::to_vec_pretty(&assessment_results(&fixture())).unwrap();
        let doc: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            doc["assessment-results"]["metadata"]["oscal-version"],
            OSCAL_VERSION
        );
        if let Some(path) = std::env::var_os("DOCKET_OSCAL_SAMPLE_OUT") {
            std::fs::write(path, &bytes).unwrap();
        }
    }
}
