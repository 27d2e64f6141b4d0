//! The JSON shape of requests, decisions and test cases, as the server and policy authors write it.

use docket_policy::{Action, Decision, Outcome, Request, ResourceKind, TestCase};
use serde_json::json;

use crate::model_call;

#[test]
fn a_request_has_the_documented_field_names() {
    let request = model_call("gpt-4o");
    let value = serde_json::to_value(&request).unwrap();
    assert_eq!(
        value,
        json!({
            "principal": {
                "agent": "support-bot",
                "project": "help",
                "owner": "alice",
                "tools": ["search"],
                "models": ["gpt-4o"],
                "data_classes": ["pii"],
                "environments": ["prod"]
            },
            "action": "call_model",
            "resource": {
                "kind": "model",
                "id": "gpt-4o",
                "provider": "openai",
                "data_classes": [],
                "environment": "prod"
            },
            "context": {
                "time": 1_772_618_400,
                "human": "alice",
                "human_assurance": "session",
                "estimated_cost_micro_usd": 2_000,
                "estimated_tokens": 1_000,
                "task": null
            }
        })
    );
    let back: Request = serde_json::from_value(value).unwrap();
    assert_eq!(back, request);
}

#[test]
fn a_minimal_request_takes_the_defaults() {
    let request: Request = serde_json::from_value(json!({
        "principal": {"agent": "a", "project": "p", "owner": "o"},
        "action": "read_data",
        "resource": {"kind": "dataset", "id": "tickets"},
        "context": {"time": 5}
    }))
    .unwrap();
    assert_eq!(request.action, Action::ReadData);
    assert_eq!(request.resource.kind, ResourceKind::Dataset);
    assert!(request.principal.tools.is_empty());
    assert_eq!(request.resource.provider, None);
    assert_eq!(request.context.human, None);
    assert_eq!(request.context.human_assurance, "none");
    assert_eq!(request.context.estimated_cost_micro_usd, 0);
    assert_eq!(request.context.task, None);
}

#[test]
fn unknown_fields_and_values_are_refused() {
    let mut value = serde_json::to_value(model_call("gpt-4o")).unwrap();
    value["context"]["cost"] = json!(1);
    assert!(serde_json::from_value::<Request>(value).is_err());
    let mut value = serde_json::to_value(model_call("gpt-4o")).unwrap();
    value["action"] = json!("delete");
    assert!(serde_json::from_value::<Request>(value).is_err());
    let mut value = serde_json::to_value(model_call("gpt-4o")).unwrap();
    value["principal"]["role"] = json!("admin");
    assert!(serde_json::from_value::<Request>(value).is_err());
}

#[test]
fn every_enum_value_has_its_documented_name() {
    let names = |v: serde_json::Value| v.as_str().map(str::to_owned);
    for (action, name) in [
        (Action::CallModel, "call_model"),
        (Action::CallTool, "call_tool"),
        (Action::ReadData, "read_data"),
        (Action::WriteData, "write_data"),
        (Action::Embed, "embed"),
    ] {
        assert_eq!(names(json!(action)), Some(name.to_owned()));
        assert_eq!(action.to_string(), name);
    }
    for (kind, name) in [
        (ResourceKind::Model, "model"),
        (ResourceKind::Tool, "tool"),
        (ResourceKind::Dataset, "dataset"),
    ] {
        assert_eq!(names(json!(kind)), Some(name.to_owned()));
    }
    for (outcome, name) in [
        (Outcome::Allow, "allow"),
        (Outcome::Deny, "deny"),
        (Outcome::RequireApproval, "require_approval"),
    ] {
        assert_eq!(names(json!(outcome)), Some(name.to_owned()));
    }
}

#[test]
fn a_decision_round_trips() {
    let decision = Decision {
        outcome: Outcome::RequireApproval,
        determining: vec!["big-spend".into(), "models-in-scope".into()],
        reason: "permitted by models-in-scope; held for approval by policy big-spend".into(),
        errors: vec!["overflows: integer overflow".into()],
    };
    let value = serde_json::to_value(&decision).unwrap();
    assert_eq!(
        value,
        json!({
            "outcome": "require_approval",
            "determining": ["big-spend", "models-in-scope"],
            "reason": "permitted by models-in-scope; held for approval by policy big-spend",
            "errors": ["overflows: integer overflow"]
        })
    );
    assert_eq!(serde_json::from_value::<Decision>(value).unwrap(), decision);
}

#[test]
fn a_test_case_is_written_as_name_request_expect() {
    let case = TestCase {
        name: "big spends wait".into(),
        request: model_call("gpt-4o"),
        expect: Outcome::RequireApproval,
    };
    let value = serde_json::to_value(&case).unwrap();
    assert_eq!(value["expect"], json!("require_approval"));
    assert_eq!(value["name"], json!("big spends wait"));
    assert_eq!(serde_json::from_value::<TestCase>(value).unwrap(), case);
}
