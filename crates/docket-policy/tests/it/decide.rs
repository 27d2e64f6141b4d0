//! Decisions of the documented example policies: outcome, determining policies and reason.

use docket_policy::{Action, ActionExt, Decision, Outcome, PolicySet, Request, ResourceKind};

use crate::{EXAMPLES, WEDNESDAY_10H, compile, model_call};

fn decision(outcome: Outcome, determining: &[&str], reason: &str) -> Decision {
    Decision {
        outcome,
        determining: determining.iter().map(|s| (*s).to_owned()).collect(),
        reason: reason.to_owned(),
        errors: Vec::new(),
    }
}

#[test]
fn a_model_in_scope_is_allowed() {
    let set = compile(EXAMPLES);
    assert_eq!(
        set.decide(&model_call("gpt-4o")),
        decision(
            Outcome::Allow,
            &["models-in-scope"],
            "permitted by models-in-scope"
        )
    );
}

#[test]
fn a_model_out_of_scope_is_denied_because_nothing_permits_it() {
    let set = compile(EXAMPLES);
    assert_eq!(
        set.decide(&model_call("o3")),
        decision(
            Outcome::Deny,
            &[],
            "no policy permits call_model on model o3"
        )
    );
}

#[test]
fn a_big_spend_on_a_model_in_scope_is_held_for_approval() {
    let set = compile(EXAMPLES);
    let mut request = model_call("gpt-4o");
    request.context.estimated_cost_micro_usd = 2_000_000;
    assert_eq!(
        set.decide(&request),
        decision(
            Outcome::RequireApproval,
            &["big-spend", "models-in-scope"],
            "permitted by models-in-scope; held for approval by policy big-spend"
        )
    );
}

#[test]
fn a_big_spend_permitted_only_by_the_approval_policy_is_held_too() {
    let set = compile(EXAMPLES);
    let mut request = model_call("o3");
    request.context.estimated_cost_micro_usd = 1_000_001;
    assert_eq!(
        set.decide(&request),
        decision(
            Outcome::RequireApproval,
            &["big-spend"],
            "held for approval by policy big-spend"
        )
    );
    // The threshold is strict.
    request.context.estimated_cost_micro_usd = 1_000_000;
    assert_eq!(set.decide(&request).outcome, Outcome::Deny);
}

#[test]
fn pii_at_night_is_denied_whatever_permits_it() {
    let set = compile(EXAMPLES);
    let mut request = model_call("gpt-4o");
    request.resource.data_classes.insert("pii".into());
    request.context.estimated_cost_micro_usd = 5_000_000;
    // 06:59:59 and 20:00:00 are night, 07:00:00 and 19:59:59 are day.
    let midnight = WEDNESDAY_10H - 10 * 3_600;
    for (time, night) in [
        (midnight + 7 * 3_600 - 1, true),
        (midnight + 7 * 3_600, false),
        (midnight + 20 * 3_600 - 1, false),
        (midnight + 20 * 3_600, true),
    ] {
        request.context.time = time;
        let got = set.decide(&request);
        if night {
            assert_eq!(
                got,
                decision(
                    Outcome::Deny,
                    &["no-pii-at-night"],
                    "denied by policy no-pii-at-night"
                ),
                "at {time}"
            );
        } else {
            assert_eq!(got.outcome, Outcome::RequireApproval, "at {time}");
        }
    }
}

#[test]
fn the_pii_rule_applies_to_tools_and_data_as_well() {
    let set = compile(&format!(
        "{EXAMPLES}\n@id(\"all-tools\") permit(principal, action == Docket::Action::\"call_tool\", resource);"
    ));
    let mut request = model_call("search");
    request.action = Action::CallTool;
    request.resource.kind = ResourceKind::Tool;
    request.context.time = WEDNESDAY_10H + 12 * 3_600;
    assert_eq!(set.decide(&request).outcome, Outcome::Allow);
    request.resource.data_classes.insert("pii".into());
    assert_eq!(
        set.decide(&request).determining,
        vec!["no-pii-at-night".to_owned()]
    );
}

#[test]
fn several_forbids_are_all_cited() {
    let set = compile(
        r#"
        @id("everything") permit(principal, action, resource);
        @id("no-prod") forbid(principal, action, resource) when { context.environment == "prod" };
        @id("a-no-openai") forbid(principal, action == Docket::Action::"call_model", resource) when { resource.provider == "openai" };
        "#,
    );
    assert_eq!(
        set.decide(&model_call("gpt-4o")),
        decision(
            Outcome::Deny,
            &["a-no-openai", "no-prod"],
            "denied by policies a-no-openai, no-prod"
        )
    );
}

/// An edit to a request that one policy should notice.
type Change = fn(&mut Request);

#[test]
fn scopes_name_agents_projects_and_resources_by_their_ids() {
    let set = compile(
        r#"
        @id("bot") permit(principal == Docket::Agent::"support-bot", action == Docket::Action::"call_model", resource == Docket::Model::"o3");
        @id("project") permit(principal in Docket::Project::"help", action == Docket::Action::"call_model", resource) when { resource.provider == "anthropic" };
        @id("owner") forbid(principal, action, resource) when { principal.owner == Docket::Human::"mallory" };
        @id("on-behalf") forbid(principal, action, resource) when { context has human && context.human == Docket::Human::"eve" };
        @id("task") forbid(principal, action, resource) when { context has task && context.task == "exfiltrate" };
        @id("project-ctx") forbid(principal, action, resource) when { context.project == Docket::Project::"frozen" };
        "#,
    );
    let request = model_call("o3");
    assert_eq!(set.decide(&request).determining, vec!["bot".to_owned()]);

    let mut other = request.clone();
    other.principal.agent = "other-bot".into();
    assert_eq!(set.decide(&other).outcome, Outcome::Deny);
    other.resource.provider = Some("anthropic".into());
    assert_eq!(set.decide(&other).determining, vec!["project".to_owned()]);
    other.principal.project = "elsewhere".into();
    assert_eq!(set.decide(&other).outcome, Outcome::Deny);

    let changes: [(Change, &str); 4] = [
        (|r| r.principal.owner = "mallory".into(), "owner"),
        (|r| r.context.human = Some("eve".into()), "on-behalf"),
        (|r| r.context.task = Some("exfiltrate".into()), "task"),
        (|r| r.principal.project = "frozen".into(), "project-ctx"),
    ];
    for (change, id) in changes {
        let mut r = request.clone();
        change(&mut r);
        assert_eq!(set.decide(&r).determining, vec![id.to_owned()], "{id}");
    }
}

#[test]
fn a_policy_that_fails_to_evaluate_is_skipped_and_reported() {
    let set = compile(
        r#"
        @id("everything") permit(principal, action, resource);
        @id("overflows") forbid(principal, action, resource) when { context.estimated_tokens * 1000000000000 > 0 };
        "#,
    );
    let mut request = model_call("gpt-4o");
    request.context.estimated_tokens = 100_000_000;
    let got = set.decide(&request);
    assert_eq!(got.outcome, Outcome::Allow);
    assert_eq!(got.determining, vec!["everything".to_owned()]);
    assert_eq!(
        got.reason,
        "permitted by everything; skipped policy overflows, which failed to evaluate"
    );
    assert_eq!(got.errors.len(), 1);
    assert!(got.errors[0].starts_with("overflows: "), "{:?}", got.errors);
    assert!(got.errors[0].contains("overflow"), "{:?}", got.errors);
}

#[test]
fn a_resource_of_the_wrong_kind_for_the_action_is_denied() {
    let set = compile("permit(principal, action, resource);");
    let mut request = model_call("gpt-4o");
    request.resource.kind = ResourceKind::Dataset;
    assert_eq!(
        set.decide(&request),
        decision(
            Outcome::Deny,
            &[],
            "call_model applies to a model, not to a dataset"
        )
    );
}

#[test]
fn deny_all_denies_everything_and_says_why() {
    let set = PolicySet::deny_all();
    assert!(set.is_empty());
    assert_eq!(set.len(), 0);
    assert_eq!(set.policy_ids(), Vec::<String>::new());
    for action in Action::ALL {
        let mut request = model_call("gpt-4o");
        request.action = action;
        request.resource.kind = action.resource_kind();
        assert_eq!(
            set.decide(&request),
            decision(Outcome::Deny, &[], "no policy version is active")
        );
    }
}

#[test]
fn an_empty_text_is_a_set_that_permits_nothing() {
    let set = compile("// nothing yet\n");
    assert!(set.is_empty());
    assert_eq!(
        set.decide(&model_call("gpt-4o")).reason,
        "no policy permits call_model on model gpt-4o"
    );
}

#[test]
fn odd_ids_and_strings_are_only_data() {
    let set = compile(
        r#"@id("quote") permit(principal == Docket::Agent::"a\"b", action, resource == Docket::Model::"");"#,
    );
    let mut request = model_call("");
    request.principal.agent = "a\"b".into();
    assert_eq!(set.decide(&request).outcome, Outcome::Allow);
    request.principal.agent = "a\\\"b".into();
    assert_eq!(set.decide(&request).outcome, Outcome::Deny);
}
