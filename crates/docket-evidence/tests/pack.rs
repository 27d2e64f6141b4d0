//! Packs built from an in-memory log: an agent's recorded request
//! signature is verified offline with its DID, and one it did not make
//! fails the pack even though every hash and proof holds; a zip that shows
//! different files to different tools fails too.

use std::io::Cursor;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use docket_core::identity::Did;
use docket_core::merkle::{MemoryTree, prove_range};
use docket_core::{CanonicalBody, Entry, EntryType, Hash, LogSigner, Seq, Timestamp};
use docket_evidence::controls::WindowInfo;
use docket_evidence::pack::{PackHeader, PackWriter};
use docket_evidence::verify::{Outcome, verify_pack};
use ed25519_dalek::{Signer, SigningKey};
use serde_json::{Value, json};

const T0: i64 = 1_780_000_000_000_000;
/// Entries of the test logs are ten minutes apart.
const STEP: i64 = 600_000_000;

/// A receipt by agent `bot`, its request signed over `base` by `signer`
/// and attributed to `did`.
fn signed_receipt(did: &Did, signer: &SigningKey, base: &str, with_base: bool) -> Value {
    let mut signature = json!({
        "label": "sig1",
        "created": 1_780_000_000,
        "components": ["@method", "@target-uri"],
        "signature": STANDARD.encode(signer.sign(base.as_bytes()).to_bytes()),
    });
    if with_base {
        signature["base"] = json!(base);
    }
    json!({
        "agent": "bot",
        "project": "support",
        "credential": "abcdefghijklmnop",
        "provider": "openai",
        "model": "gpt-4o-mini",
        "outcome": "ok",
        "actor": {
            "kind": "agent", "agent": "bot", "did": did.as_str(),
            "credential": "abcdefghijklmnop", "human_assurance": "none",
            "signature": signature,
        },
    })
}

/// Logs `bodies` as receipts, exports them as one pack, verifies it.
fn pack_and_verify(bodies: &[Value]) -> Outcome {
    let (log, pack) = build_pack(bodies);
    verify_bytes(&log, pack)
}

fn verify_bytes(log: &LogSigner, pack: Vec<u8>) -> Outcome {
    verify_pack(Cursor::new(pack), &log.verifier(), &mut |_, _| {}).unwrap()
}

/// Logs `bodies` as receipts and exports them as one pack.
fn build_pack(bodies: &[Value]) -> (LogSigner, Vec<u8>) {
    let entries: Vec<(EntryType, Value)> = bodies
        .iter()
        .map(|b| (EntryType::Receipt, b.clone()))
        .collect();
    build_log_pack(&entries)
}

/// Logs `entries` and exports them as one pack.
fn build_log_pack(entries: &[(EntryType, Value)]) -> (LogSigner, Vec<u8>) {
    let log = LogSigner::generate("docket.test/log").unwrap();
    let mut tree = MemoryTree::new();
    let mut prev = Hash([0; 32]);
    let mut lines = Vec::new();
    for (i, (kind, body)) in entries.iter().enumerate() {
        let e = Entry {
            seq: Seq(i as u64),
            ts: Timestamp::from_micros(T0 + i as i64 * STEP),
            kind: *kind,
            prev,
            body: CanonicalBody::from_value(body).unwrap(),
        };
        prev = e.leaf_hash();
        tree.push(prev);
        lines.push(e.encode());
    }
    let n = tree.len();
    let root = tree.root(n).unwrap();
    let cp = log.sign(n, root).unwrap();
    let header = PackHeader {
        signer: &log,
        window: WindowInfo {
            origin: log.origin().to_owned(),
            from: Timestamp::from_micros(T0).to_string(),
            to: Timestamp::from_micros(T0 + n as i64 * STEP).to_string(),
            first_seq: 0,
            end_seq: n,
            project: None,
            created: Timestamp::now().to_string(),
        },
        checkpoint_note: cp.note,
        tree_size: n,
        root,
        range_proof: prove_range(0, n, n, &tree).unwrap(),
        context: Vec::new(),
    };
    let mut w = PackWriter::new(Cursor::new(Vec::new()), header).unwrap();
    for (i, line) in lines.iter().enumerate() {
        w.push(i as u64, line).unwrap();
    }
    let (out, _) = w.finish().unwrap();
    (log, out.into_inner())
}

#[test]
fn a_file_name_twice_in_the_zip_fails_the_pack() {
    let key = SigningKey::from_bytes(&[7; 32]);
    let did = Did::from_key(&key.verifying_key());
    let (log, pack) = build_pack(&[signed_receipt(&did, &key, "\"@method\": POST\n", true)]);
    assert!(verify_bytes(&log, pack.clone()).ok);
    // Add a second `report.html` after the real one: a reader that keeps
    // the last copy would check one file while an unzip tool shows another.
    let mut zip = zip::ZipWriter::new_append(Cursor::new(pack)).unwrap();
    zip.start_file("report.htmX", zip::write::SimpleFileOptions::default())
        .unwrap();
    std::io::Write::write_all(&mut zip, b"<p>all controls satisfied</p>").unwrap();
    let mut bytes = zip.finish().unwrap().into_inner();
    let (from, to) = (b"report.htmX", b"report.html");
    let mut i = 0;
    while i + from.len() <= bytes.len() {
        if &bytes[i..i + from.len()] == from {
            bytes[i..i + from.len()].copy_from_slice(to);
        }
        i += 1;
    }
    let outcome = verify_bytes(&log, bytes);
    assert!(!outcome.ok);
    assert!(
        outcome
            .problems
            .iter()
            .any(|p| p.check == "file" && p.detail.contains("appears twice")),
        "{:?}",
        outcome.problems
    );
}

#[test]
fn an_agents_own_signature_verifies_offline() {
    let key = SigningKey::from_bytes(&[7; 32]);
    let did = Did::from_key(&key.verifying_key());
    let outcome = pack_and_verify(&[
        signed_receipt(&did, &key, "\"@method\": POST\n", true),
        // Recorded before bases were: counted, not verifiable.
        signed_receipt(&did, &key, "\"@method\": GET\n", false),
    ]);
    assert!(outcome.ok, "{:?}", outcome.problems);
}

#[test]
fn a_signature_the_agent_did_not_make_fails_the_pack() {
    let key = SigningKey::from_bytes(&[7; 32]);
    let forger = SigningKey::from_bytes(&[9; 32]);
    let did = Did::from_key(&key.verifying_key());
    let outcome = pack_and_verify(&[
        signed_receipt(&did, &key, "\"@method\": POST\n", true),
        signed_receipt(&did, &forger, "\"@method\": POST\n", true),
    ]);
    assert!(!outcome.ok);
    let bad: Vec<(&str, &str)> = outcome
        .problems
        .iter()
        .map(|p| (p.check, p.location.as_str()))
        .collect();
    assert_eq!(
        bad,
        [("agent-signature", "seq 1")],
        "{:?}",
        outcome.problems
    );
    // Every other check held: the log itself is intact.
    assert_eq!(outcome.entries, 2);
}

/// `controls.json` of a pack, and one test of it.
fn control(pack: &[u8], test: &str) -> Value {
    let mut zip = zip::ZipArchive::new(Cursor::new(pack)).unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut zip.by_name("controls.json").unwrap(), &mut text).unwrap();
    let controls: Value = serde_json::from_str(&text).unwrap();
    controls["criteria"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["tests"].as_array().unwrap().iter())
        .find(|t| t["id"] == test)
        .cloned()
        .unwrap()
}

fn project_log(approved: bool) -> Vec<(EntryType, Value)> {
    use docket_core::identity::event::{AccessRule, ChangeRequest, ProjectRecord};
    use docket_core::identity::governance::ChangeInfo;
    use docket_core::identity::{Actor, Event, Scope};
    let human = |user: &str| Actor::Human {
        user: user.parse().unwrap(),
        credential: "abcdefghijklmnop".parse().unwrap(),
    };
    let rules = |tool: &str| {
        vec![AccessRule {
            agents: vec!["*".into()],
            allows: Scope {
                tools: [tool.to_owned()].into(),
                ..Scope::default()
            },
        }]
    };
    let project = |tool: &str| ProjectRecord {
        id: "support".parse().unwrap(),
        name: "Support".into(),
        members: Vec::new(),
        rules: rules(tool),
    };
    let mut events = vec![(
        Event::ProjectCreated {
            project: project("search"),
        },
        human("alice"),
    )];
    if approved {
        events.push((
            Event::ChangeRequested {
                agent: None,
                project: Some("support".parse().unwrap()),
                request: ChangeRequest::ProjectRules {
                    rules: rules("shell"),
                },
                info: ChangeInfo {
                    description: Some("shell for triage".into()),
                    rollback_plan: Some("restore search only".into()),
                    evidence: Some(json!({"ticket": "SEC-1"})),
                },
            },
            human("bob"),
        ));
        events.push((
            Event::ChangeApproved {
                request: 1,
                agent: None,
                project: Some("support".parse().unwrap()),
            },
            human("carol"),
        ));
    }
    events.push((
        Event::ProjectUpdated {
            project: project("shell"),
        },
        human("alice"),
    ));
    events
        .into_iter()
        .map(|(e, actor)| (e.entry_type(), e.to_body(&actor)))
        .collect()
}

#[test]
fn a_change_of_access_rules_is_traced_to_its_approved_request() {
    let (log, pack) = build_log_pack(&project_log(true));
    assert!(verify_bytes(&log, pack.clone()).ok);
    let t = control(&pack, "cc8.1-unapproved-changes");
    assert_eq!(t["figures"]["changes_applied"], 1, "{t}");
    assert_eq!(t["status"], "satisfied", "{t}");
    assert_eq!(
        control(&pack, "cc7.1-unrecorded-changes")["status"],
        "satisfied"
    );

    // The same rules change with no request behind it is a finding.
    let (log, pack) = build_log_pack(&project_log(false));
    assert!(
        verify_bytes(&log, pack.clone()).ok,
        "an honest log of a bad change verifies"
    );
    let t = control(&pack, "cc7.1-unrecorded-changes");
    assert_eq!(t["status"], "not_satisfied", "{t}");
    assert_eq!(t["items"][0]["seq"], 1, "{t}");
}

#[test]
fn a_receipt_made_with_a_revoked_credential_is_a_finding() {
    use docket_core::identity::event::{AgentRecord, CredentialRecord};
    use docket_core::identity::{Actor, CredentialKind, Event, Scope};
    let key = SigningKey::from_bytes(&[7; 32]);
    let admin = Actor::Human {
        user: "alice".parse().unwrap(),
        credential: "abcdefghijklmnop".parse().unwrap(),
    };
    let cred = "qrstuvwxyz234567";
    let events = [
        Event::AgentRegistered {
            request: 0,
            agent: AgentRecord {
                id: "bot".parse().unwrap(),
                name: "Bot".into(),
                owner: "alice".parse().unwrap(),
                project: "support".parse().unwrap(),
                purpose: "tests".into(),
                scope: Scope::default(),
                did: Did::from_key(&key.verifying_key()),
                system_prompt_sha256: None,
                require_signature: false,
            },
        },
        Event::CredentialIssued {
            credential: CredentialRecord {
                id: cred.parse().unwrap(),
                kind: CredentialKind::ApiKey,
                prefix: format!("dka_{cred}"),
                sha256: "0".repeat(64),
                agent: Some("bot".parse().unwrap()),
                user: None,
                scope: None,
                task: None,
                human: None,
                human_assurance: None,
                parent: None,
                expires_at: None,
                label: None,
            },
            project: Some("support".parse().unwrap()),
            replaces: None,
        },
    ];
    let mut log: Vec<(EntryType, Value)> = events
        .iter()
        .map(|e| (e.entry_type(), e.to_body(&admin)))
        .collect();
    let receipt = json!({"agent": "bot", "project": "support", "credential": cred,
                         "provider": "openai", "model": "gpt-4o-mini", "outcome": "ok",
                         "source": "agent_reported",
                         "actor": {"kind": "agent", "agent": "bot", "credential": cred,
                                   "did": Did::from_key(&key.verifying_key()).as_str(),
                                   "human_assurance": "none"}});
    log.push((EntryType::Receipt, receipt.clone())); // seq 2: live
    let revoked = Event::CredentialRevoked {
        credential: cred.parse().unwrap(),
        agent: Some("bot".parse().unwrap()),
        project: Some("support".parse().unwrap()),
        reason: "leaked".into(),
    };
    log.push((revoked.entry_type(), revoked.to_body(&admin))); // seq 3
    log.push((
        EntryType::Note,
        json!({"text": "later", "source": "human_reported", "actor": admin}),
    ));
    log.push((EntryType::Receipt, receipt)); // seq 5: 20 minutes after the revocation
    let (signer, pack) = build_log_pack(&log);
    assert!(verify_bytes(&signer, pack.clone()).ok);
    let t = control(&pack, "cc6.1-registered-agent");
    assert_eq!(t["status"], "not_satisfied", "{t}");
    let items: Vec<u64> = t["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(items, [5], "only the receipt after the revocation: {t}");
}

/// A file of a pack, whole.
fn file(pack: &[u8], path: &str) -> Vec<u8> {
    let mut zip = zip::ZipArchive::new(Cursor::new(pack)).unwrap();
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut zip.by_name(path).unwrap(), &mut bytes).unwrap();
    bytes
}

#[test]
fn the_oscal_file_is_the_controls_report_as_assessment_results() {
    let key = SigningKey::from_bytes(&[7; 32]);
    let did = Did::from_key(&key.verifying_key());
    let (_, pack) = build_pack(&[signed_receipt(&did, &key, "\"@method\": POST\n", true)]);
    let controls: docket_evidence::controls::ControlsReport =
        serde_json::from_slice(&file(&pack, docket_evidence::pack::CONTROLS)).unwrap();
    let oscal = file(&pack, docket_evidence::pack::OSCAL);
    // One pretty JSON document and a newline, as every derived file.
    assert_eq!(oscal.last(), Some(&b'\n'));
    assert_eq!(
        oscal,
        docket_evidence::pack::json_bytes(&docket_evidence::oscal::assessment_results(&controls))
    );
}
