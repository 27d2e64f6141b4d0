//! `report.html`: the pack for people.
//!
//! One self-contained, printable page: findings first, then the criteria,
//! charts, vendors and the detail of every test. The verifier regenerates
//! this file from the entries and compares bytes, so everything here is a
//! pure function of the inputs: no clock, no random ids, integer arithmetic
//! for every share and width. Nothing is fetched (no external CSS, scripts,
//! fonts or images), so the page reads the same offline and years later.
//! Every string from the inputs is escaped: entries are attacker-influenced.

use std::fmt::Write;

use serde_json::{Map, Value};

use crate::controls::*;

/// Writing to a `String` cannot fail, so its `fmt::Result` is dropped once, here.
macro_rules! w {
    ($out:expr, $($arg:tt)*) => {{
        let _ = write!($out, $($arg)*);
    }};
}

const STYLE: &str = "
body{font-family:system-ui,-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;color:#111;max-width:60rem;margin:2rem auto;padding:0 1rem;line-height:1.45}
h1{margin-bottom:.25rem}h2{border-bottom:2px solid #111;padding-bottom:.2rem;margin-top:2.5rem}
h3{margin-bottom:.3rem}h4{margin:.2rem 0}
table{border-collapse:collapse;margin:.4rem 0 .8rem}th,td{border:1px solid #999;padding:.2rem .45rem;text-align:left;vertical-align:top}
th{font-weight:600}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
table table{margin:0;font-size:.9em}
dl.meta{display:grid;grid-template-columns:max-content auto;gap:.1rem 1rem}dl.meta dt{font-weight:600}dl.meta dd{margin:0}
code{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.9em;word-break:break-all}
.badge{display:inline-block;padding:0 .4em;border:1.5px solid;border-radius:3px;font-size:.8em;font-weight:700;white-space:nowrap;vertical-align:middle}
.not_satisfied{color:#b00020}.no_source{color:#7a5a00}.satisfied{color:#1b7a3a}.observed{color:#1f5fbf}
article{border-left:4px solid #999;padding:.2rem 0 .2rem .8rem;margin:1rem 0}
article.not_satisfied{border-color:#b00020}article.no_source{border-color:#c08a00}article.satisfied{border-color:#1b7a3a}article.observed{border-color:#1f5fbf}
article p,article table{color:#111}
.muted{color:#555}.more{font-style:italic}
tr.provider td{font-weight:600}tr.model td:first-child{padding-left:1.5rem}
svg text{font-family:inherit;font-size:12px;fill:#111}
@page{margin:15mm}
@media print{
body{max-width:none;margin:0;padding:0;font-size:10pt}
#summary,#vendors,#details,#entries{break-before:page}
article,tr,svg,.criterion>h3{break-inside:avoid}
h2,h3,h4{break-after:avoid}
thead{display:table-header-group}
a{color:inherit;text-decoration:none}
nav{display:none}
.badge,svg{print-color-adjust:exact;-webkit-print-color-adjust:exact}
}
";

/// Renders `report.html` from the control mapping and the vendor rollup.
pub fn render(report: &ControlsReport, vendors: &VendorRollup) -> String {
    let mut out = String::new();
    header(&mut out, report);
    findings(&mut out, report);
    summary(&mut out, report);
    vendor_section(&mut out, vendors);
    details(&mut out, report);
    entries(&mut out, report);
    out.push_str(
        "<footer class=\"muted\"><p>Derived from the entries of this pack alone; \
         the verifier regenerates this page and compares it byte for byte.</p></footer>\n\
         </main>\n</body>\n</html>\n",
    );
    out
}

/// Escapes text and attribute values alike.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn label(status: Status) -> &'static str {
    match status {
        Status::NotSatisfied => "Not satisfied",
        Status::NoSource => "No source",
        Status::NotObserved => "Not observed",
        Status::Satisfied => "Satisfied",
        Status::Observed => "Observed",
    }
}

/// Fill colours for the charts: SVG fills print where backgrounds may not.
fn colour(status: Status) -> &'static str {
    match status {
        Status::NotSatisfied => "#b00020",
        Status::NoSource => "#c08a00",
        Status::NotObserved => "#6b6b6b",
        Status::Satisfied => "#1b7a3a",
        Status::Observed => "#1f5fbf",
    }
}

fn badge(status: Status) -> String {
    format!(
        "<span class=\"badge {}\">{}</span>",
        status.as_str(),
        label(status)
    )
}

/// Parts per million as a percent with one decimal, rounded half up.
fn percent(ppm: u64) -> String {
    let tenths = (ppm + 500) / 1000;
    format!("{}.{}%", tenths / 10, tenths % 10)
}

fn usd(micro: u64) -> String {
    format!("{}.{:06}", micro / 1_000_000, micro % 1_000_000)
}

/// Digits grouped by thousands, for counts a reader compares at a glance.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn header(out: &mut String, report: &ControlsReport) {
    let win = &report.window;
    w!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>Docket evidence pack: {}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<main>\n",
        escape(&win.origin)
    );
    out.push_str("<header>\n<h1>Docket evidence pack</h1>\n<dl class=\"meta\">\n");
    w!(
        out,
        "<dt>Origin</dt><dd><code>{}</code></dd>\n",
        escape(&win.origin)
    );
    w!(
        out,
        "<dt>Window</dt><dd>from {} to {} (end exclusive)</dd>\n",
        escape(&win.from),
        escape(&win.to)
    );
    w!(
        out,
        "<dt>Entries</dt><dd>seq [{}, {}): {} entries</dd>\n",
        win.first_seq,
        win.end_seq,
        thousands(win.end_seq.saturating_sub(win.first_seq))
    );
    if let Some(project) = &win.project {
        w!(out, "<dt>Project</dt><dd>{}</dd>\n", escape(project));
    }
    w!(out, "<dt>Created</dt><dd>{}</dd>\n", escape(&win.created));
    w!(
        out,
        "<dt>Format</dt><dd><code>{}</code></dd>\n",
        escape(&report.format)
    );
    out.push_str("</dl>\n");
    out.push_str(
        "<nav><a href=\"#findings\">Findings</a> · <a href=\"#summary\">Summary</a> · \
         <a href=\"#vendors\">Vendors</a> · <a href=\"#details\">Criteria in detail</a> · \
         <a href=\"#entries\">Entries</a></nav>\n</header>\n",
    );
}

fn tests(report: &ControlsReport) -> impl Iterator<Item = (&CriterionResult, &TestResult)> {
    report
        .criteria
        .iter()
        .flat_map(|c| c.tests.iter().map(move |t| (c, t)))
}

fn findings(out: &mut String, report: &ControlsReport) {
    let failed: Vec<_> = tests(report)
        .filter(|(_, t)| t.status == Status::NotSatisfied)
        .collect();
    out.push_str("<section id=\"findings\">\n<h2>Findings</h2>\n");
    if failed.is_empty() {
        out.push_str(
            "<p>No test failed on the entries of this window. Tests without a source \
             are listed under their criteria and are not counted as passing.</p>\n",
        );
    } else {
        w!(
            out,
            "<p>{} of {} tests are not satisfied by the entries of this window.</p>\n",
            failed.len(),
            tests(report).count()
        );
    }
    for (c, t) in failed {
        w!(
            out,
            "<article class=\"not_satisfied\" id=\"finding-{}\">\n<h3>{} <a href=\"#c-{}\">{}</a>: {}</h3>\n\
             <p class=\"muted\"><code>{}</code></p>\n",
            escape(&t.id),
            badge(t.status),
            escape(&c.id),
            escape(&c.id),
            escape(&t.title),
            escape(&t.id)
        );
        figures(out, &t.figures);
        items(out, t);
        out.push_str("</article>\n");
    }
    out.push_str("</section>\n");
}

fn summary(out: &mut String, report: &ControlsReport) {
    out.push_str("<section id=\"summary\">\n<h2>Summary</h2>\n");
    out.push_str(
        "<table>\n<thead><tr><th>Criterion</th><th>Title</th><th>Status</th>\
         <th class=\"n\">Tests</th><th class=\"n\">Evidence entries</th></tr></thead>\n<tbody>\n",
    );
    for c in &report.criteria {
        w!(
            out,
            "<tr><td><a href=\"#c-{}\">{}</a></td><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>\n",
            escape(&c.id),
            escape(&c.id),
            escape(&c.title),
            badge(c.status),
            c.tests.len(),
            thousands(c.evidence_entries)
        );
    }
    out.push_str("</tbody>\n</table>\n");
    status_chart(out, report);
    out.push_str("</section>\n");
}

const STATUSES: [Status; 5] = [
    Status::Satisfied,
    Status::NotSatisfied,
    Status::NoSource,
    Status::NotObserved,
    Status::Observed,
];

fn status_chart(out: &mut String, report: &ControlsReport) {
    let counts = STATUSES.map(|s| tests(report).filter(|(_, t)| t.status == s).count() as u64);
    let max = counts.iter().copied().max().unwrap_or(0).max(1);
    let (label_w, bar_w, row) = (120u64, 340u64, 26u64);
    let height = row * STATUSES.len() as u64 + 4;
    out.push_str("<h3>Tests by status</h3>\n");
    w!(
        out,
        "<svg width=\"520\" height=\"{height}\" viewBox=\"0 0 520 {height}\" role=\"img\" \
         aria-label=\"Tests by status\">\n<title>Tests by status</title>\n"
    );
    for (i, (status, count)) in STATUSES.iter().zip(counts).enumerate() {
        let y = i as u64 * row;
        let width = count * bar_w / max;
        w!(
            out,
            "<text x=\"0\" y=\"{}\">{}</text><rect x=\"{label_w}\" y=\"{}\" width=\"{width}\" height=\"18\" fill=\"{}\"/>\
             <text x=\"{}\" y=\"{}\">{count}</text>\n",
            y + 17,
            label(*status),
            y + 4,
            colour(*status),
            label_w + width + 6,
            y + 17
        );
    }
    w!(
        out,
        "<line x1=\"{label_w}\" y1=\"0\" x2=\"{label_w}\" y2=\"{height}\" stroke=\"#111\"/>\n</svg>\n"
    );
}

fn vendor_section(out: &mut String, vendors: &VendorRollup) {
    out.push_str("<section id=\"vendors\">\n<h2>Vendors</h2>\n");
    let providers: Vec<&VendorLine> = vendors.lines.iter().filter(|l| l.model.is_none()).collect();
    w!(
        out,
        "<p>{} model calls costing {} USD in this window.</p>\n",
        thousands(vendors.calls),
        usd(vendors.cost_micro_usd)
    );
    if providers.is_empty() {
        out.push_str("<p>No provider was called in this window.</p>\n</section>\n");
        return;
    }
    vendor_chart(out, &providers);
    out.push_str(
        "<table>\n<thead><tr><th>Provider / model</th><th class=\"n\">Calls</th><th class=\"n\">Share of calls</th>\
         <th class=\"n\">Errors</th><th class=\"n\">Cost (USD)</th><th class=\"n\">Share of cost</th>\
         <th class=\"n\">Input tokens</th><th class=\"n\">Output tokens</th></tr></thead>\n<tbody>\n",
    );
    for line in &vendors.lines {
        let (class, name) = match &line.model {
            None => ("provider", escape(&line.provider)),
            Some(model) => ("model", escape(model)),
        };
        w!(
            out,
            "<tr class=\"{class}\"><td>{name}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>\n",
            thousands(line.calls),
            percent(line.calls_ppm),
            thousands(line.errors),
            usd(line.cost_micro_usd),
            percent(line.cost_ppm),
            thousands(line.input_tokens),
            thousands(line.output_tokens)
        );
    }
    w!(
        out,
        "<tr class=\"provider\"><td>Total</td><td class=\"n\">{}</td><td></td><td></td><td class=\"n\">{}</td>\
         <td></td><td></td><td></td></tr>\n</tbody>\n</table>\n</section>\n",
        thousands(vendors.calls),
        usd(vendors.cost_micro_usd)
    );
}

/// Two bars per provider, calls and cost, each labelled with its share so
/// the chart reads without colour.
fn vendor_chart(out: &mut String, providers: &[&VendorLine]) {
    const CALLS: &str = "#1f5fbf";
    const COST: &str = "#7a4fbf";
    let (label_w, bar_w, row) = (170u64, 300u64, 40u64);
    let height = row * providers.len() as u64 + 24;
    out.push_str("<h3>Share of calls and cost per provider</h3>\n");
    w!(
        out,
        "<svg width=\"580\" height=\"{height}\" viewBox=\"0 0 580 {height}\" role=\"img\" \
         aria-label=\"Share of calls and cost per provider\">\n<title>Share of calls and cost per provider</title>\n\
         <rect x=\"{label_w}\" y=\"2\" width=\"12\" height=\"10\" fill=\"{CALLS}\"/><text x=\"{}\" y=\"11\">calls</text>\
         <rect x=\"{}\" y=\"2\" width=\"12\" height=\"10\" fill=\"{COST}\"/><text x=\"{}\" y=\"11\">cost</text>\n",
        label_w + 16,
        label_w + 70,
        label_w + 86
    );
    for (i, p) in providers.iter().enumerate() {
        let y = 24 + i as u64 * row;
        let name: String = p.provider.chars().take(24).collect();
        w!(
            out,
            "<text x=\"0\" y=\"{}\">{}</text>\n",
            y + 20,
            escape(&name)
        );
        for (j, (ppm, fill, what)) in [(p.calls_ppm, CALLS, "calls"), (p.cost_ppm, COST, "cost")]
            .into_iter()
            .enumerate()
        {
            let by = y + j as u64 * 17;
            let width = ppm.min(1_000_000) * bar_w / 1_000_000;
            w!(
                out,
                "<rect x=\"{label_w}\" y=\"{by}\" width=\"{width}\" height=\"14\" fill=\"{fill}\"/>\
                 <text x=\"{}\" y=\"{}\">{what} {}</text>\n",
                label_w + width + 6,
                by + 12,
                percent(ppm)
            );
        }
    }
    w!(
        out,
        "<line x1=\"{label_w}\" y1=\"20\" x2=\"{label_w}\" y2=\"{height}\" stroke=\"#111\"/>\n</svg>\n"
    );
}

fn details(out: &mut String, report: &ControlsReport) {
    out.push_str("<section id=\"details\">\n<h2>Criteria in detail</h2>\n");
    for c in &report.criteria {
        w!(
            out,
            "<div class=\"criterion\" id=\"c-{}\">\n<h3>{} {}: {}</h3>\n<p><strong>Asks:</strong> {}</p>\n",
            escape(&c.id),
            badge(c.status),
            escape(&c.id),
            escape(&c.title),
            escape(&c.asks)
        );
        let sources = if c.sources.is_empty() {
            "none".to_string()
        } else {
            c.sources
                .iter()
                .map(|s| format!("<code>{}</code>", escape(s)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        w!(
            out,
            "<p><strong>Sources:</strong> {sources}. <strong>Evidence entries:</strong> {}</p>\n",
            thousands(c.evidence_entries)
        );
        for t in &c.tests {
            test(out, t);
        }
        out.push_str("</div>\n");
    }
    out.push_str("</section>\n");
}

fn test(out: &mut String, t: &TestResult) {
    w!(
        out,
        "<article class=\"{}\" id=\"test-{}\">\n<h4>{} {}</h4>\n<p class=\"muted\"><code>{}</code></p>\n",
        t.status.as_str(),
        escape(&t.id),
        badge(t.status),
        escape(&t.title),
        escape(&t.id)
    );
    match t.status {
        Status::NoSource => w!(
            out,
            "<p><strong>No source:</strong> {}. Docket records nothing this test could read, \
             so it is not counted as passing.</p>\n",
            escape(t.reason.as_deref().unwrap_or("no reason given").trim_end_matches('.'))
        ),
        Status::Observed => {
            out.push_str("<p class=\"muted\">A figure reported for the auditor, with no threshold to pass.</p>\n")
        }
        Status::NotObserved => out.push_str(
            "<p><strong>Not observed:</strong> the window holds nothing this test checks, \
             so it is not counted as passing.</p>\n",
        ),
        Status::NotSatisfied | Status::Satisfied => {
            if let Some(reason) = &t.reason {
                w!(out, "<p>{}</p>\n", escape(reason));
            }
        }
    }
    figures(out, &t.figures);
    if t.status == Status::NotSatisfied && !t.items.is_empty() {
        w!(
            out,
            "<p>{} entries listed under <a href=\"#finding-{}\">Findings</a>",
            thousands(t.items.len() as u64),
            escape(&t.id)
        );
        if t.items_omitted > 0 {
            w!(out, ", and {} more", thousands(t.items_omitted));
        }
        out.push_str(".</p>\n");
    } else {
        items(out, t);
    }
    out.push_str("</article>\n");
}

fn figures(out: &mut String, figures: &Map<String, Value>) {
    if figures.is_empty() {
        return;
    }
    out.push_str("<table class=\"figures\">\n");
    for (name, v) in figures {
        w!(out, "<tr><th>{}</th><td>", escape(name));
        value(out, v, 0);
        out.push_str("</td></tr>\n");
    }
    out.push_str("</table>\n");
}

/// Scalars as text, small structures as nested tables, anything deeper as
/// compact JSON.
fn value(out: &mut String, v: &Value, depth: usize) {
    match v {
        Value::Null => out.push('–'),
        Value::Bool(b) => out.push_str(if *b { "yes" } else { "no" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => out.push_str(&escape(s)),
        Value::Object(m) if depth < 2 && !m.is_empty() => {
            out.push_str("<table>");
            for (k, v) in m {
                w!(out, "<tr><th>{}</th><td>", escape(k));
                value(out, v, depth + 1);
                out.push_str("</td></tr>");
            }
            out.push_str("</table>");
        }
        Value::Array(a) if depth < 2 && !a.is_empty() && a.iter().all(Value::is_object) => {
            // Columns in first-seen order: a stable union of the rows' keys.
            let mut columns: Vec<&str> = Vec::new();
            for key in a.iter().filter_map(Value::as_object).flat_map(|m| m.keys()) {
                if !columns.contains(&key.as_str()) {
                    columns.push(key);
                }
            }
            out.push_str("<table><tr>");
            for col in &columns {
                w!(out, "<th>{}</th>", escape(col));
            }
            out.push_str("</tr>");
            for row in a.iter().filter_map(Value::as_object) {
                out.push_str("<tr>");
                for col in &columns {
                    out.push_str("<td>");
                    if let Some(v) = row.get(*col) {
                        value(out, v, depth + 1);
                    }
                    out.push_str("</td>");
                }
                out.push_str("</tr>");
            }
            out.push_str("</table>");
        }
        Value::Array(a) if a.iter().all(|v| !v.is_array() && !v.is_object()) => {
            for (i, v) in a.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                value(out, v, depth + 1);
            }
        }
        other => w!(out, "<code>{}</code>", escape(&other.to_string())),
    }
}

fn items(out: &mut String, t: &TestResult) {
    if t.items.is_empty() {
        return;
    }
    out.push_str("<table class=\"items\">\n<thead><tr><th class=\"n\">seq</th><th>Note</th></tr></thead>\n<tbody>\n");
    for item in &t.items {
        w!(
            out,
            "<tr><td class=\"n\">{}</td><td>{}</td></tr>\n",
            item.seq,
            escape(&item.note)
        );
    }
    out.push_str("</tbody>\n</table>\n");
    if t.items_omitted > 0 {
        w!(
            out,
            "<p class=\"more\">and {} more (not listed; see the entries of the pack).</p>\n",
            thousands(t.items_omitted)
        );
    }
}

fn entries(out: &mut String, report: &ControlsReport) {
    out.push_str("<section id=\"entries\">\n<h2>Entries by type</h2>\n");
    out.push_str(
        "<table>\n<thead><tr><th>Type</th><th class=\"n\">Entries</th></tr></thead>\n<tbody>\n",
    );
    for (kind, count) in &report.entries_by_type {
        w!(
            out,
            "<tr><td><code>{}</code></td><td class=\"n\">",
            escape(kind)
        );
        match count.as_u64() {
            Some(n) => out.push_str(&thousands(n)),
            None => value(out, count, 0),
        }
        out.push_str("</td></tr>\n");
    }
    let total: u64 = report
        .entries_by_type
        .values()
        .filter_map(Value::as_u64)
        .fold(0, u64::saturating_add);
    w!(
        out,
        "<tr><th>Total disclosed</th><th class=\"n\">{}</th></tr>\n</tbody>\n</table>\n",
        thousands(total)
    );
    w!(
        out,
        "<p><strong>Withheld entries:</strong> {}. Entries of other projects are present \
         only as leaf hashes, so the range proof holds without disclosing them.</p>\n</section>\n",
        thousands(report.withheld_entries)
    );
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn figures(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!("figures are an object"),
        }
    }

    fn fixture() -> (ControlsReport, VendorRollup) {
        let failing = TestResult {
            id: "cc6.2-unapproved-registrations".into(),
            title: "Registrations activated without approval = 0".into(),
            status: Status::NotSatisfied,
            reason: None,
            figures: figures(json!({"count": 5, "by_agent": {"a1": 3, "a2": 2}})),
            items: vec![
                Item {
                    seq: 41,
                    note: "agent <script>alert(1)</script> activated".into(),
                },
                Item {
                    seq: 42,
                    note: "agent a2 activated".into(),
                },
            ],
            items_omitted: 3,
        };
        let missing = TestResult {
            id: "cc6.3-session-outlived-task".into(),
            title: "Session credentials that outlived their task".into(),
            status: Status::NoSource,
            reason: Some("Docket does not record when an agent's task ends".into()),
            figures: Map::new(),
            items: vec![],
            items_omitted: 0,
        };
        let passing = TestResult {
            id: "cc8.1-unapproved-changes".into(),
            title: "Changes applied without approval = 0".into(),
            status: Status::Satisfied,
            reason: None,
            figures: figures(json!({"changes": 7, "per_day": [{"day": "2025-01-01", "n": 7}]})),
            items: vec![],
            items_omitted: 0,
        };
        let criterion = |id: &str, title: &str, t: TestResult| CriterionResult {
            id: id.into(),
            title: title.into(),
            asks: "Was it authorized?".into(),
            sources: vec!["receipt".into()],
            evidence_entries: 12,
            status: t.status,
            tests: vec![t],
        };
        let report = ControlsReport {
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
            entries_by_type: figures(json!({"receipt": 90, "decision": 10})),
            withheld_entries: 4,
            criteria: vec![
                criterion("CC6.2", "Provisioning", failing),
                criterion("CC6.3", "Least privilege, removal", missing),
                criterion("CC8.1", "Change management", passing),
            ],
        };
        let line = |provider: &str, model: Option<&str>, calls, ppm| VendorLine {
            provider: provider.into(),
            model: model.map(Into::into),
            calls,
            errors: 1,
            cost_micro_usd: calls * 1_500,
            input_tokens: calls * 1_000,
            output_tokens: calls * 200,
            calls_ppm: ppm,
            cost_ppm: ppm,
        };
        let vendors = VendorRollup {
            calls: 80,
            cost_micro_usd: 120_000,
            lines: vec![
                line("openai", None, 50, 625_000),
                line("openai", Some("gpt-4o"), 50, 625_000),
                line("anthropic", None, 30, 375_000),
                line("anthropic", Some("claude-sonnet"), 30, 375_000),
            ],
            agent_reported_calls: 0,
            agent_reported_cost_micro_usd: 0,
        };
        (report, vendors)
    }

    /// The slice of `html` from `start` to the first `end` after it.
    fn block<'a>(html: &'a str, start: &str, end: &str) -> &'a str {
        let from = html.find(start).expect("block start");
        let len = html[from..].find(end).expect("block end");
        &html[from..from + len]
    }

    #[test]
    fn findings_come_before_the_summary() {
        let (report, vendors) = fixture();
        let html = render(&report, &vendors);
        let finding = html
            .find("Registrations activated without approval = 0")
            .unwrap();
        let summary = html.find("<h2>Summary</h2>").unwrap();
        assert!(html.find("<h2>Findings</h2>").unwrap() < finding);
        assert!(finding < summary);
        let findings = block(&html, "id=\"findings\"", "</section>");
        assert!(findings.contains("<td class=\"n\">41</td>"));
        assert!(findings.contains("and 3 more"));
        assert!(!findings.contains("Session credentials that outlived their task"));
        assert!(!findings.contains("Changes applied without approval"));
        let detail = block(
            &html,
            "id=\"test-cc6.2-unapproved-registrations\"",
            "</article>",
        );
        assert!(detail.contains("2 entries listed under"));
        assert!(detail.contains("and 3 more"));
    }

    #[test]
    fn strings_from_entries_are_escaped() {
        let (mut report, mut vendors) = fixture();
        report.window.project = Some("p\"><img src=x onerror=alert(1)>".into());
        vendors.lines[0].provider = "evil'\"<b>".into();
        let html = render(&report, &vendors);
        assert!(!html.contains("<script"));
        assert!(html.contains("agent &lt;script&gt;alert(1)&lt;/script&gt; activated"));
        assert!(!html.contains("<img"));
        assert!(html.contains("p&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"));
        assert!(html.contains("evil&#39;&quot;&lt;b&gt;"));
    }

    #[test]
    fn no_source_is_never_shown_as_passing() {
        let (report, vendors) = fixture();
        let html = render(&report, &vendors);
        let test = block(
            &html,
            "id=\"test-cc6.3-session-outlived-task\"",
            "</article>",
        );
        assert!(test.contains(
            "<strong>No source:</strong> Docket does not record when an agent&#39;s task ends"
        ));
        assert!(!test.to_lowercase().contains("satisfied"), "{test}");
        let row = block(&html, "<td><a href=\"#c-CC6.3\">", "</tr>");
        assert!(row.contains("No source") && !row.to_lowercase().contains("satisfied"));
    }

    #[test]
    fn rendering_is_deterministic() {
        let (report, vendors) = fixture();
        let html = render(&report, &vendors);
        assert_eq!(html, render(&report.clone(), &vendors.clone()));
    }

    #[test]
    fn the_page_fetches_nothing() {
        let (report, vendors) = fixture();
        let html = render(&report, &vendors);
        for needle in [
            "http://", "https://", "<link", "<script", "<img", "@import", "url(",
        ] {
            assert!(!html.contains(needle), "found {needle}");
        }
        assert!(html.contains("@media print"));
    }

    #[test]
    fn charts_are_inline_svg_with_shares_as_percent() {
        let (report, vendors) = fixture();
        let html = render(&report, &vendors);
        assert_eq!(html.matches("<svg").count(), 2);
        let vendor_chart = block(&html, "aria-label=\"Share of calls", "</svg>");
        assert!(vendor_chart.contains("calls 62.5%") && vendor_chart.contains("cost 37.5%"));
        // cost of openai: 50 calls * 1500 micro-USD
        assert!(html.contains("<td class=\"n\">0.075000</td>"));
        assert!(html.contains("<strong>Withheld entries:</strong> 4."));
    }

    #[test]
    fn numbers_are_formatted_with_integers() {
        assert_eq!(percent(0), "0.0%");
        assert_eq!(percent(333_333), "33.3%");
        assert_eq!(percent(999_950), "100.0%");
        assert_eq!(percent(1_000_000), "100.0%");
        assert_eq!(usd(1_234_567), "1.234567");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(999), "999");
    }
}
