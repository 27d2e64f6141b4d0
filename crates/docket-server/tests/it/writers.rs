//! The write boundary of `POST /api/v1/entries`: every entry type posted
//! by an agent, a developer, a reviewer and an admin gets the answer the
//! write table gives (refused with `reserved_type`, or accepted and stamped
//! as the caller's own word), and what is accepted is typed: amounts are
//! non-negative, members Docket sets are refused, unknown members named.

use docket_core::EntryType;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::identity::{registered_agent, start};
use crate::support::assert_message_contains;

/// Who may report each type through `POST /entries`, as this test states
/// it (independently of the table in `docket_core::writers`).
fn expected(kind: EntryType, who: &str) -> bool {
    match kind {
        EntryType::Receipt => who == "agent",
        EntryType::Note | EntryType::Verification => true,
        _ => false,
    }
}

/// A body that is valid for the types someone may report.
fn body_for(kind: EntryType) -> Value {
    match kind {
        EntryType::Receipt => json!({"tool": "search", "outcome": "ok", "cost_micro_usd": 1200}),
        EntryType::Verification => {
            json!({"method": "json-schema", "verdict": "pass", "receipt": 3})
        }
        EntryType::Note => json!({"text": "checked by hand"}),
        // What a forger would send: plausible members of the real type.
        EntryType::ApprovalDecided => {
            json!({"approval": 30, "decision": "approve", "by": "admin", "agent": "support-bot", "project": "support"})
        }
        EntryType::Decision => json!({"outcome": "allow", "source": "gateway"}),
        _ => json!({"agent": "support-bot", "project": "support"}),
    }
}

#[tokio::test]
async fn post_entries_keeps_every_type_to_the_write_table() {
    let s = start().await;
    let (dev, _appr, agent_key, _) = registered_agent(&s).await;
    let reviewer = s.user("rev", &["reviewer"]).await;
    let callers = [
        ("agent", agent_key),
        ("developer", dev),
        ("reviewer", reviewer),
        ("admin", s.token.clone()),
    ];
    let mut accepted = 0;
    for &kind in EntryType::ALL {
        for (who, token) in &callers {
            let (st, v) = s
                .as_(
                    token,
                    Method::POST,
                    "/api/v1/entries",
                    json!({"type": kind.as_str(), "body": body_for(kind)}),
                )
                .await;
            if !expected(kind, who) {
                assert_eq!(st, StatusCode::FORBIDDEN, "{kind} by {who}: {v}");
                assert_eq!(v["error"]["code"], "reserved_type", "{kind} by {who}: {v}");
                // The refusal names who does write it.
                let written_by = docket_core::writers::rule(kind).written_by;
                assert_message_contains(&v, written_by);
                continue;
            }
            assert_eq!(st, StatusCode::CREATED, "{kind} by {who}: {v}");
            accepted += 1;
            let seq = v["entries"][0]["seq"].as_u64().unwrap();
            let e = s.entry(seq).await;
            let source = if *who == "agent" {
                "agent_reported"
            } else {
                "human_reported"
            };
            assert_eq!(e["body"]["source"], source, "{kind} by {who}: {e}");
            let actor_kind = if *who == "agent" { "agent" } else { "human" };
            assert_eq!(e["body"]["actor"]["kind"], actor_kind, "{e}");
            if *who == "agent" {
                // The credential is stamped where every reader looks.
                assert_eq!(
                    e["body"]["credential"], e["body"]["actor"]["credential"],
                    "{e}"
                );
            }
        }
    }
    // receipt by the agent; note and verification by all four.
    assert_eq!(accepted, 1 + 2 * 4);
    s.stop().await;
}

#[tokio::test]
async fn reported_bodies_are_typed_and_say_whose_word_they_are() {
    let s = start().await;
    let (_dev, _appr, agent_key, _) = registered_agent(&s).await;
    let post = |body: Value| {
        let s = &s;
        let key = agent_key.clone();
        async move {
            s.as_(
                &key,
                Method::POST,
                "/api/v1/entries",
                json!({"type": "receipt", "body": body}),
            )
            .await
        }
    };
    // A negative cost would lower the agent's spending after a restart.
    let (st, v) = post(json!({"tool": "search", "cost_micro_usd": -1_000_000_000_000i64})).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert_message_contains(&v, "cost_micro_usd");
    // Only Docket says a call was observed by its gateway.
    let (st, v) = post(json!({"tool": "search", "source": "gateway"})).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert_message_contains(&v, "source is set by Docket");
    // Members only the gateway writes are refused by name.
    let (st, v) = post(json!({"tool": "search", "decision": 4, "provider": "openai"})).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert_message_contains(&v, "decision:");
    let (st, v) = post(json!({"tool": "search", "upstream_status": 200})).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert_message_contains(&v, "upstream_status:");
    // Unknown members are named, not kept.
    let (st, v) = post(json!({"tool": "search", "costs": 5})).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert_message_contains(&v, "costs: unknown member");
    // A batch is all or nothing: one reserved type refuses the lot.
    let (st, v) = s
        .as_(
            &agent_key,
            Method::POST,
            "/api/v1/entries",
            json!({"entries": [
                {"type": "note", "body": {"text": "fine"}},
                {"type": "approval.decided", "body": {"approval": 1}},
            ]}),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
    assert_message_contains(&v, "entries[1].type");
    let (_, before) = s.get("/api/v1/entries?type=note&count=true").await;
    assert_eq!(before["count"], 0, "{before}");
    s.stop().await;
}
