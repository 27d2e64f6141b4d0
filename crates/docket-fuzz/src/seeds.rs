//! The seed corpus, made from the real thing: a small log built with
//! `docket-core` and signed with the fixed log key — its entries,
//! checkpoints, receipts, proofs and evidence pack — request bodies and
//! streams as the tests use them, and signed requests.
//!
//! `tests/it` checks `fuzz/corpus/<target>/seed-*` holds exactly these
//! (and rewrites them with `DOCKET_FUZZ_WRITE_SEEDS=1`), so the corpus
//! follows the formats as they change. Other files there are kept as
//! committed: inputs libFuzzer found (`scripts/fuzz <target> --merge`),
//! and `sse/standin-*`, streams of the stand-in provider
//! (`docket-bench upstream`, asked with curl for a streamed chat
//! completion with `include_usage`, a Responses call, a Messages call, and
//! chat and Messages streams of the model `cut-stream`), behind the two
//! bytes that choose how the `sse` target reads them.

use std::io::Cursor;

use docket_core::identity::event::{
    AccessRule, AgentRecord, ChangeRequest, CredentialRecord, ProjectRecord, UserRecord,
};
use docket_core::identity::governance::ChangeInfo;
use docket_core::identity::{Actor, CredentialKind, Did, Event, HumanAssurance, Role, Scope};
use docket_core::merkle::{MemoryTree, prove_consistency, prove_inclusion, prove_range};
use docket_core::{CanonicalBody, Entry, EntryType, Hash, Receipt, Seq, Timestamp};
use docket_evidence::controls::WindowInfo;
use docket_evidence::pack::{PackHeader, PackWriter};
use ed25519_dalek::Signer as _;
use serde_json::{Value, json};

use crate::keys;
use crate::signature::CREATED;

/// One corpus file: `fuzz/corpus/<target>/seed-<name>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seed {
    pub target: &'static str,
    pub name: String,
    pub bytes: Vec<u8>,
}

const T0: i64 = 1_780_000_000_000_000;
/// Entries of the log are ten minutes apart.
const STEP: i64 = 600_000_000;
const CREDENTIAL: &str = "qrstuvwxyz234567";

/// Every seed, in a fixed order, the same bytes every time.
pub fn all() -> Vec<Seed> {
    let mut out = Vec::new();
    let mut add = |target: &'static str, name: &str, bytes: Vec<u8>| {
        out.push(Seed {
            target,
            name: name.to_owned(),
            bytes,
        })
    };
    let log = Log::build();

    // Entries, their bodies, and the JSON they travel as.
    for (i, (e, bytes)) in log.entries.iter().zip(&log.encoded).enumerate() {
        let name = format!("{i}-{}", e.kind);
        add("entry", &name, bytes.clone());
        add(
            "json",
            &format!("body-{name}"),
            e.body_json().as_bytes().to_vec(),
        );
    }
    for (name, body) in reported_bodies(&log) {
        add("request_body", name, body.to_string().into_bytes());
        add(
            "json",
            &format!("reported-{name}"),
            body.to_string().into_bytes(),
        );
    }
    for (name, body) in gateway_bodies() {
        add("gateway_request", name, body.as_bytes().to_vec());
        add("json", &format!("gateway-{name}"), body.as_bytes().to_vec());
    }
    for (name, text) in json_edges() {
        add("json", name, text.as_bytes().to_vec());
    }

    // Checkpoints and signed notes.
    let signer = keys::log_signer();
    let size = log.tree.len();
    add("checkpoint", "latest", log.note(size).into_bytes());
    add("checkpoint", "first", log.note(1).into_bytes());
    let manifest_sig = signer
        .sign_text(&docket_evidence::pack::manifest_note_text(&"0".repeat(64)))
        .expect("a manifest note");
    add("checkpoint", "manifest-sig", manifest_sig.into_bytes());
    add(
        "checkpoint",
        "verifier-key",
        signer.public_key().as_bytes().to_vec(),
    );

    // Receipts: one per entry of a few, at the latest size and earlier.
    for (seq, at) in [(0, size), (4, size), (6, 7), (size - 1, size)] {
        let receipt = log.receipt(seq, at);
        add(
            "receipt",
            &format!("seq{seq}-of{at}"),
            serde_json::to_vec_pretty(&receipt).expect("a receipt serializes"),
        );
    }

    // Proofs in the target's binary form.
    for (name, bytes) in log.proofs() {
        add("proof", &name, bytes);
    }

    // Identifiers.
    let did = Did::from_key(&keys::agent_key().verifying_key());
    for (name, text) in [
        ("did", did.as_str().to_owned()),
        ("api-key", format!("dka_{CREDENTIAL}_{}", "s".repeat(43))),
        (
            "session-key",
            format!("dks_abcdefghij234567_{}", "t".repeat(43)),
        ),
        (
            "public-key-hex",
            hex::encode(keys::agent_key().verifying_key().as_bytes()),
        ),
        ("user", "alice@example.com".to_owned()),
        ("role", "approver".to_owned()),
        ("type", "approval.requested".to_owned()),
        ("time", "2026-06-01T12:00:00.123456+02:00".to_owned()),
        ("time-log-form", "2026-05-28T20:26:40.000000Z".to_owned()),
        ("hash", hex::encode([0xab; 32])),
    ] {
        add("identity", name, text.into_bytes());
    }

    // Evidence packs: the zip, and its files in the text form.
    let zip = log.pack();
    for target in ["pack", "pack_window"] {
        add(target, "zip", zip.clone());
        add(target, "files", pack_files(&zip));
    }

    // Signed requests.
    for (name, bytes) in signed_requests() {
        add("httpsig", name, bytes);
    }

    // Provider streams, with the first two bytes choosing API, mode and
    // split (see `sse`).
    for (name, setup, stream) in streams() {
        let mut bytes = vec![setup, 3];
        bytes.extend_from_slice(stream.as_bytes());
        add("sse", name, bytes);
    }
    out
}

/// A small log of the fixed key: a project and an access-rule change, a
/// user, an agent and its key, receipts (one the agent signed), a note
/// and a verification.
struct Log {
    entries: Vec<Entry>,
    encoded: Vec<Vec<u8>>,
    tree: MemoryTree,
}

impl Log {
    fn build() -> Self {
        let mut tree = MemoryTree::new();
        let mut prev = Hash([0; 32]);
        let mut entries = Vec::new();
        let mut encoded = Vec::new();
        for (i, (kind, body)) in log_bodies().into_iter().enumerate() {
            let e = Entry {
                seq: Seq(i as u64),
                ts: Timestamp::from_micros(T0 + i as i64 * STEP),
                kind,
                prev,
                body: CanonicalBody::from_value(&body).expect("a seed body is canonical"),
            };
            prev = e.leaf_hash();
            tree.push(prev);
            encoded.push(e.encode());
            entries.push(e);
        }
        Self {
            entries,
            encoded,
            tree,
        }
    }

    fn root(&self, size: u64) -> Hash {
        self.tree.root(size).expect("a root of the log")
    }

    fn note(&self, size: u64) -> String {
        keys::log_signer()
            .sign(size, self.root(size))
            .expect("a checkpoint")
            .note
    }

    fn receipt(&self, seq: u64, size: u64) -> Receipt {
        let proof = prove_inclusion(seq, size, &self.tree).expect("an inclusion proof");
        Receipt::new(&self.entries[seq as usize], &proof, size, &self.note(size))
    }

    /// Real proofs in `proof`'s form: mode byte, sizes (one byte each,
    /// all below 0xfe), hashes.
    fn proofs(&self) -> Vec<(String, Vec<u8>)> {
        let size = self.tree.len();
        let root = self.root(size);
        let mut out = Vec::new();
        for index in [0, 3, size - 1] {
            let mut b = vec![0, index as u8, size as u8];
            b.extend_from_slice(&self.tree_leaf(index).0);
            b.extend_from_slice(&root.0);
            for h in prove_inclusion(index, size, &self.tree).expect("inclusion") {
                b.extend_from_slice(&h.0);
            }
            out.push((format!("inclusion-{index}-of-{size}"), b));
        }
        for old in [1, 5] {
            let mut b = vec![1, old as u8, size as u8];
            b.extend_from_slice(&self.root(old).0);
            b.extend_from_slice(&root.0);
            for h in prove_consistency(old, size, &self.tree).expect("consistency") {
                b.extend_from_slice(&h.0);
            }
            out.push((format!("consistency-{old}-to-{size}"), b));
        }
        let (a, b_end) = (2, 7);
        let mut b = vec![2, a as u8, size as u8, (b_end - a) as u8];
        for i in a..b_end {
            b.extend_from_slice(&self.tree_leaf(i).0);
        }
        b.extend_from_slice(&root.0);
        for h in prove_range(a, b_end, size, &self.tree).expect("range") {
            b.extend_from_slice(&h.0);
        }
        out.push((format!("range-{a}-{b_end}-of-{size}"), b));
        out.push(("real-small".into(), vec![3, 12, 4, 9, 17]));
        out.push((
            "real-large".into(),
            vec![3, 250, 0xff, 1, 0, 0, 0, 0, 0, 0, 0, 99, 0],
        ));
        out
    }

    fn tree_leaf(&self, index: u64) -> Hash {
        self.entries[index as usize].leaf_hash()
    }

    /// The pack of the window `[2, size - 1)`: context receipts for the
    /// identity entries before it and both edges.
    fn pack(&self) -> Vec<u8> {
        let signer = keys::log_signer();
        let size = self.tree.len();
        let (a, b) = (2, size - 1);
        let root = self.root(size);
        let mut context: Vec<Receipt> = (0..a).map(|seq| self.receipt(seq, size)).collect();
        context.push(self.receipt(b, size));
        let header = PackHeader {
            signer,
            window: WindowInfo {
                origin: signer.origin().to_owned(),
                from: Timestamp::from_micros(T0 + a as i64 * STEP).to_string(),
                to: Timestamp::from_micros(T0 + b as i64 * STEP).to_string(),
                first_seq: a,
                end_seq: b,
                project: None,
                created: Timestamp::from_micros(T0 + 30 * STEP).to_string(),
            },
            checkpoint_note: self.note(size),
            tree_size: size,
            root,
            range_proof: prove_range(a, b, size, &self.tree).expect("a range proof"),
            context,
        };
        let mut w = PackWriter::new(Cursor::new(Vec::new()), header).expect("a pack writer");
        for seq in a..b {
            w.push(seq, &self.encoded[seq as usize]).expect("an entry");
        }
        let (out, _) = w.finish().expect("a pack");
        out.into_inner()
    }
}

fn human(user: &str) -> Actor {
    Actor::Human {
        user: user.parse().expect("a user id"),
        credential: "abcdefghijklmnop".parse().expect("a credential id"),
    }
}

fn agent_actor(signature: Option<Value>) -> Actor {
    Actor::Agent {
        agent: "bot".parse().expect("an agent id"),
        did: Did::from_key(&keys::agent_key().verifying_key()),
        credential: CREDENTIAL.parse().expect("a credential id"),
        task: Some("ticket-42".into()),
        human: Some("bob".parse().expect("a user id")),
        human_assurance: HumanAssurance::Session,
        signature,
    }
}

fn log_bodies() -> Vec<(EntryType, Value)> {
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
        id: "support".parse().expect("a project id"),
        name: "Support".into(),
        members: vec!["bob".parse().expect("a user id")],
        rules: rules(tool),
    };
    let key = keys::agent_key();
    let events = vec![
        (
            Event::UserCreated {
                user: UserRecord {
                    id: "bob".parse().expect("a user id"),
                    name: "Bob".into(),
                    email: Some("bob@example.com".into()),
                    roles: vec![Role::Developer],
                    disabled: false,
                    kyc: Default::default(),
                },
            },
            human("alice"),
        ),
        (
            Event::ProjectCreated {
                project: project("search"),
            },
            human("alice"),
        ),
        (
            Event::ChangeRequested {
                agent: None,
                project: Some("support".parse().expect("a project id")),
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
        ),
        (
            Event::ChangeApproved {
                request: 2,
                agent: None,
                project: Some("support".parse().expect("a project id")),
            },
            human("carol"),
        ),
        (
            Event::ProjectUpdated {
                project: project("shell"),
            },
            human("alice"),
        ),
        (
            Event::AgentRegistered {
                request: 2,
                agent: AgentRecord {
                    id: "bot".parse().expect("an agent id"),
                    name: "Bot".into(),
                    owner: "bob".parse().expect("a user id"),
                    project: "support".parse().expect("a project id"),
                    purpose: "answers tickets".into(),
                    scope: Scope {
                        tools: ["search".to_owned()].into(),
                        ..Scope::default()
                    },
                    did: Did::from_key(&key.verifying_key()),
                    system_prompt_sha256: None,
                    require_signature: false,
                },
            },
            human("carol"),
        ),
        (
            Event::CredentialIssued {
                credential: CredentialRecord {
                    id: CREDENTIAL.parse().expect("a credential id"),
                    kind: CredentialKind::ApiKey,
                    prefix: format!("dka_{CREDENTIAL}"),
                    sha256: "0".repeat(64),
                    agent: Some("bot".parse().expect("an agent id")),
                    user: None,
                    scope: None,
                    task: None,
                    human: None,
                    human_assurance: None,
                    parent: None,
                    expires_at: None,
                    label: None,
                },
                project: Some("support".parse().expect("a project id")),
                replaces: None,
            },
            human("bob"),
        ),
    ];
    let mut bodies: Vec<(EntryType, Value)> = events
        .into_iter()
        .map(|(e, actor)| (e.entry_type(), e.to_body(&actor)))
        .collect();
    // Made when the receipt was written (the verifier allows 15 minutes).
    let created = (T0 + bodies.len() as i64 * STEP) / 1_000_000;
    let base = format!("\"@method\": POST\n\"@signature-params\": (\"@method\");created={created}");
    let signature = json!({
        "label": "sig1",
        "created": created,
        "components": ["@method"],
        "signature": base64_of(&key.sign(base.as_bytes()).to_bytes()),
        "base": base,
    });
    bodies.push((
        EntryType::Receipt,
        json!({
            "agent": "bot", "project": "support", "credential": CREDENTIAL,
            "human": "bob", "session": "ticket-42", "source": "agent_reported",
            "tool": "search", "data_classes": ["customer_data"], "outcome": "ok",
            "latency_ms": 41, "status": 200,
            "actor": agent_actor(Some(signature)),
        }),
    ));
    bodies.push((
        EntryType::Note,
        json!({
            "agent": "bot", "project": "support", "source": "agent_reported",
            "text": "escalated to a human", "ticket": 42,
            "actor": agent_actor(None),
        }),
    ));
    bodies.push((
        EntryType::Verification,
        json!({
            "agent": "bot", "project": "support", "receipt": 7,
            "method": "json-schema", "verdict": "pass", "score": 0.93, "threshold": 0.8,
            "evidence": ["schema v3"], "taken": "delivered", "source": "agent_reported",
            "actor": agent_actor(None),
        }),
    ));
    bodies.push((
        EntryType::Receipt,
        json!({
            "agent": "bot", "project": "support", "credential": CREDENTIAL,
            "source": "agent_reported", "tool": "shell", "outcome": "error",
            "error": "exit status 2", "actor": agent_actor(None),
        }),
    ));
    bodies
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// What agents and people send to `POST /entries`, after the server
/// stamped `actor` and `source`.
fn reported_bodies(log: &Log) -> Vec<(&'static str, Value)> {
    let mut out: Vec<(&'static str, Value)> = Vec::new();
    for e in &log.entries {
        let name = match e.kind {
            EntryType::Receipt if e.body_json().contains("\"signature\"") => "receipt-signed",
            EntryType::Receipt => "receipt",
            EntryType::Note => "note",
            EntryType::Verification => "verification",
            _ => continue,
        };
        out.push((name, e.body_value()));
    }
    out.push((
        "receipt-minimal",
        json!({"tool": "search", "data_classes": ["customer_data"],
               "source": "agent_reported", "actor": agent_actor(None)}),
    ));
    out.push((
        "note-by-human",
        json!({"text": "later", "source": "human_reported", "actor": human("alice")}),
    ));
    out
}

/// Model requests as the SDKs send them, and provider responses.
fn gateway_bodies() -> Vec<(&'static str, &'static str)> {
    vec![
        (
            "chat",
            r#"{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You answer tickets."},{"role":"user","content":"Where is my order?"}],"max_tokens":256}"#,
        ),
        (
            "chat-stream",
            r#"{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":[{"type":"text","text":"Describe this"},{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}}]}]}"#,
        ),
        (
            "chat-stream-options",
            r#"{"model":"gpt-4.1","stream":true,"stream_options":{"include_usage":false},"messages":[{"role":"user","content":"hi"}],"max_completion_tokens":64}"#,
        ),
        (
            "chat-tools",
            r#"{"model":"gpt-4.1","messages":[{"role":"user","content":"weather?"},{"role":"assistant","tool_calls":[{"id":"call_1","type":"function","function":{"name":"weather","arguments":"{\"city\":\"Paris\"}"}}]},{"role":"tool","tool_call_id":"call_1","content":"sunny"}],"tools":[{"type":"function","function":{"name":"weather","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}]}"#,
        ),
        (
            "responses",
            r#"{"model":"gpt-4.1-mini","input":"Summarize the ticket","instructions":"Be brief","max_output_tokens":100,"stream":true}"#,
        ),
        (
            "responses-prompt",
            r#"{"model":"gpt-4.1","prompt":{"id":"pmpt_1","variables":{"x":"y"}}}"#,
        ),
        (
            "embeddings",
            r#"{"model":"text-embedding-3-small","input":["first","second"],"encoding_format":"float"}"#,
        ),
        (
            "embeddings-tokens",
            r#"{"model":"text-embedding-3-small","input":[[1,2,3],[4,5]]}"#,
        ),
        (
            "messages",
            r#"{"model":"claude-sonnet-4-5","max_tokens":1024,"system":[{"type":"text","text":"You are terse."}],"messages":[{"role":"user","content":[{"type":"text","text":"Hello"},{"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBORw0KGgo="}}]}],"stream":true}"#,
        ),
        (
            "response-chat",
            r#"{"id":"chatcmpl-B9","object":"chat.completion","model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15}}"#,
        ),
        (
            "response-messages",
            r#"{"id":"msg_01XF","type":"message","role":"assistant","content":[{"type":"text","text":"Hi"}],"usage":{"input_tokens":25,"cache_creation_input_tokens":100,"cache_read_input_tokens":50,"output_tokens":15}}"#,
        ),
    ]
}

/// The strict check's edges: duplicates, depth, numbers that read as zero
/// or infinity, escapes.
fn json_edges() -> Vec<(&'static str, &'static str)> {
    vec![
        (
            "duplicate-key",
            r#"{"model":"gpt-4.1","model":"gpt-4o-mini"}"#,
        ),
        ("duplicate-escaped", r#"{"model":"a","mod\u0065l":"b"}"#),
        ("underflow", r#"{"x":[0.0,-0,0e5,1e-400]}"#),
        ("overflow", r#"{"x":1e400}"#),
        (
            "big-integers",
            r#"[9007199254740993,18446744073709551615,-9223372036854775808,1.5e308]"#,
        ),
        (
            "deep",
            "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[{}]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
        ),
        (
            "escapes",
            r#"{"\ud83d\ude00":"\u0000\n\"\\\/","é":"\u00e9"}"#,
        ),
        ("lone-surrogate", r#"{"a":"\ud800"}"#),
    ]
}

/// The pack's files in the `pack` target's text form, less the large
/// derived files (report, OSCAL, controls): the verifier re-derives those
/// from the entries whether they are there or not, so a missing one is a
/// problem reported, and mutations go to the files it reads.
fn pack_files(zip: &[u8]) -> Vec<u8> {
    use docket_evidence::pack::{CONTROLS, OSCAL, REPORT};
    use std::io::Read as _;
    let mut archive = zip::ZipArchive::new(Cursor::new(zip)).expect("the seed pack is a zip");
    let mut files = Vec::new();
    for i in 0..archive.len() {
        let mut f = archive.by_index(i).expect("a file of the pack");
        if [docket_evidence::pack::MANIFEST_SIG, CONTROLS, OSCAL, REPORT].contains(&f.name()) {
            continue;
        }
        let mut content = Vec::new();
        f.read_to_end(&mut content)
            .expect("a file of the pack reads");
        files.push((f.name().to_owned(), content));
    }
    crate::pack::join_files(files.iter().map(|(n, c)| (n.as_str(), c.as_slice())))
}

/// Requests signed by Docket's own signer and the RFC's example, in the
/// `httpsig` target's text form, and inputs for its `sign` mode.
fn signed_requests() -> Vec<(&'static str, Vec<u8>)> {
    use axum::http::Method;
    let key = keys::agent_key();
    let mut out = Vec::new();
    for (name, method, path, body) in [
        (
            "post-entries",
            Method::POST,
            "/api/v1/entries?agent=a1",
            &br#"{"type":"note","body":{"text":"hi"}}"#[..],
        ),
        ("get-entries", Method::GET, "/api/v1/entries", &b""[..]),
        (
            "chat",
            Method::POST,
            "/v1/chat/completions",
            &br#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#[..],
        ),
    ] {
        let headers = docket_server::httpsig::try_sign_request_with_nonce(
            &method,
            "https",
            "docket.example",
            path,
            body,
            &key,
            "bot",
            CREATED,
            "bm9uY2Utbm9uY2U",
        )
        .expect("a signable request");
        let mut text = format!("{method} https://docket.example{path}\n");
        text.push_str("authorization: Bearer dka_qrstuvwxyz234567_secret\n");
        for (name, value) in headers {
            text.push_str(&format!(
                "{name}: {}\n",
                value.to_str().expect("ASCII header")
            ));
        }
        text.push('\n');
        let mut bytes = text.into_bytes();
        bytes.extend_from_slice(body);
        out.push((name, bytes));
    }
    // RFC 9421 Appendix B.2.6, with the RFC's test key. Docket requires a
    // signature to cover the body's digest and the query, which the RFC's
    // example does not; without either, it verifies as the RFC signed it.
    out.push((
        "rfc9421-b26",
        concat!(
            "POST https://example.com/foo\n",
            "host: example.com\n",
            "date: Tue, 20 Apr 2021 02:07:55 GMT\n",
            "content-type: application/json\n",
            "content-digest: sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:\n",
            "content-length: 18\n",
            "signature-input: sig-b26=(\"date\" \"@method\" \"@path\" \"@authority\" \"content-type\" \"content-length\");created=1618884473;keyid=\"test-key-ed25519\"\n",
            "signature: sig-b26=:wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw==:\n",
            "\n",
        )
        .as_bytes()
        .to_vec(),
    ));
    out.push((
        "sign-post",
        b"sign\nPOST https://docket.example:443/api/v1/record?x=1\nkeyid: bot\nnonce: abc\ncreated: 1700000000\n\n{\"tool\":\"search\"}".to_vec(),
    ));
    out.push((
        "sign-get",
        b"sign\nGET http://127.0.0.1:7373/v1/models\n\n".to_vec(),
    ));
    out
}

/// Provider streams as the wire tests have them (OpenAI chat with the
/// usage chunk Docket asks for, Responses, Anthropic Messages), with the
/// setup byte of the `sse` target: API (`% 3`), strip (`/ 3 % 2`), limit
/// (`/ 6 % 3`: 64, 300, 1 MiB).
fn streams() -> Vec<(&'static str, u8, String)> {
    let head = "{\"id\":\"chatcmpl-B9\",\"object\":\"chat.completion.chunk\",\"created\":1727000000,\"model\":\"gpt-4o-mini-2024-07-18\",\"system_fingerprint\":\"fp_1\",";
    let chat = [
        format!("data: {head}\"choices\":[{{\"index\":0,\"delta\":{{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null}},\"logprobs\":null,\"finish_reason\":null}}],\"usage\":null}}\n\n"),
        format!("data: {head}\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"Héllo ✓ \\\"usage\\\": {{\"}},\"logprobs\":null,\"finish_reason\":null}}],\"usage\":null}}\n\n"),
        format!("data: {head}\"choices\":[{{\"index\":0,\"delta\":{{}},\"logprobs\":null,\"finish_reason\":\"stop\"}}],\"usage\":null}}\n\n"),
        format!("data: {head}\"choices\":[],\"usage\":{{\"prompt_tokens\":12,\"completion_tokens\":3,\"total_tokens\":15}}}}\n\n"),
        "data: [DONE]\n\n".to_owned(),
    ]
    .concat();
    let responses = [
        "event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"resp_67c\",\"status\":\"in_progress\",\"output\":[],\"usage\":null}}\n\n",
        "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"sequence_number\":2,\"delta\":\"Hi ✓ response.completed\"}\n\n",
        "event: response.completed\ndata: {\"type\":\"response.completed\",\"sequence_number\":3,\"response\":{\"id\":\"resp_67c\",\"status\":\"completed\",\"usage\":{\"input_tokens\":37,\"output_tokens\":11,\"total_tokens\":48}}}\n\n",
    ]
    .concat();
    let messages = [
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_01XF\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude-sonnet-4-5\",\"usage\":{\"input_tokens\":25,\"cache_creation_input_tokens\":100,\"cache_read_input_tokens\":50,\"output_tokens\":1}}}\n\n",
        "event: ping\ndata: {\"type\": \"ping\"}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Grüße 🌍 message_stop\"}}\n\n",
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":15}}\n\n",
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    ]
    .concat();
    let error = "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n".to_owned();
    vec![
        ("chat-strip", 15, chat.clone()),
        ("chat-strip-crlf-limit64", 3, chat.replace('\n', "\r\n")),
        ("chat-keep-cr", 12, chat.replace('\n', "\r")),
        ("chat-strip-limit300", 9, chat),
        ("responses", 13, responses.clone()),
        ("responses-crlf-limit64", 1, responses.replace('\n', "\r\n")),
        ("messages", 14, messages),
        ("messages-error-limit64", 2, error),
    ]
}

#[cfg(test)]
mod tests {
    use docket_core::bodies::parse_reported;
    use docket_evidence::verify::{Outcome, verify_pack};
    use docket_server::gateway::wire::{self, Api};

    use super::*;
    use crate::signature::{ANY_TIME, NOW, Request};

    fn verify(zip: Vec<u8>) -> Outcome {
        verify_pack(Cursor::new(zip), keys::log_verifier(), &mut |_, _| {}).expect("a zip")
    }

    /// The seeds are what they stand for: what is signed verifies, what is
    /// well formed parses, so mutations start from inputs that reach past
    /// the first checks.
    #[test]
    fn the_seeds_are_real() {
        let seeds = all();
        let mut names: Vec<_> = seeds.iter().map(|s| (s.target, &s.name)).collect();
        names.sort();
        names.dedup();
        assert_eq!(
            names.len(),
            seeds.len(),
            "two seeds of a target share a name"
        );
        let of = |target: &'static str| seeds.iter().filter(move |s| s.target == target);
        let text = |s: &Seed| String::from_utf8(s.bytes.clone()).expect("a text seed");

        for s in of("entry") {
            Entry::decode(&s.bytes).expect("a seed entry decodes");
        }
        for s in of("checkpoint").filter(|s| s.name != "verifier-key") {
            keys::log_verifier()
                .verify_text(&text(s))
                .expect("a seed note verifies");
        }
        for s in of("receipt") {
            Receipt::from_json(&s.bytes)
                .expect("a receipt")
                .verify(keys::log_verifier())
                .expect("a seed receipt verifies");
        }
        for s in of("request_body") {
            let kind = if s.name.starts_with("receipt") {
                EntryType::Receipt
            } else if s.name.starts_with("note") {
                EntryType::Note
            } else {
                EntryType::Verification
            };
            let body = serde_json::from_slice(&s.bytes).expect("JSON");
            parse_reported(kind, &body).unwrap_or_else(|e| panic!("{}: {e}", s.name));
        }
        for s in of("gateway_request").filter(|s| !s.name.starts_with("response")) {
            assert!(
                Api::ALL
                    .into_iter()
                    .any(|api| api != Api::Models && wire::inspect(api, &s.bytes).is_ok()),
                "{}",
                s.name
            );
        }

        let agent = keys::agent_key().verifying_key();
        for s in of("httpsig").filter(|s| !s.name.starts_with("sign")) {
            let request = Request::parse(&s.bytes).expect("a request");
            let verified = if s.name.starts_with("rfc9421") {
                request.verify(&keys::rfc9421_key().verifying_key(), NOW, &ANY_TIME)
            } else {
                request.verify(&agent, NOW, &Default::default())
            };
            verified.unwrap_or_else(|e| panic!("{}: {e}", s.name));
        }

        let pack = |name: &str| of("pack").find(|s| s.name == name).expect("a pack seed");
        let outcome = verify(pack("zip").bytes.clone());
        assert!(outcome.ok, "{:?}", outcome.problems);
        // The text form: everything checks but the derived files left out.
        let files = crate::pack::split_files(&pack("files").bytes);
        let outcome = verify(crate::pack::zip_files(&files).expect("a zip"));
        assert_eq!(outcome.entries, 8);
        for p in &outcome.problems {
            assert!(p.check == "file" && p.detail.contains("missing"), "{p:?}");
        }
        assert_eq!(outcome.problems.len(), 3, "{:?}", outcome.problems);
    }
}
