//! The integration tests of docket-policy: one binary, one module per concern.

mod clock;
mod compile;
mod decide;
mod policy_tests;
mod serde_shape;

use std::collections::BTreeSet;

use docket_policy::{Action, Context, PolicySet, Principal, Request, Resource, ResourceKind};

/// Compiles a text the test expects to be valid.
pub fn compile(text: &str) -> PolicySet {
    match PolicySet::compile(text) {
        Ok(set) => set,
        Err(e) => panic!("policy text refused: {e}"),
    }
}

/// The error a text the test expects to be refused is refused with.
pub fn refuse(text: &str) -> docket_policy::PolicyError {
    match PolicySet::compile(text) {
        Ok(set) => panic!("policy text accepted: {set:?}"),
        Err(e) => e,
    }
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// 2026-03-04 10:00:00 UTC, a Wednesday morning.
pub const WEDNESDAY_10H: i64 = 1_772_618_400;

/// `support-bot` of project `help`, allowed gpt-4o and search, calling `gpt-4o` on a weekday morning for little money.
pub fn model_call(model: &str) -> Request {
    Request {
        principal: Principal {
            agent: "support-bot".into(),
            project: "help".into(),
            owner: "alice".into(),
            tools: set(&["search"]),
            models: set(&["gpt-4o"]),
            data_classes: set(&["pii"]),
            environments: set(&["prod"]),
        },
        action: Action::CallModel,
        resource: Resource {
            kind: ResourceKind::Model,
            id: model.into(),
            provider: Some("openai".into()),
            data_classes: BTreeSet::new(),
            environment: Some("prod".into()),
        },
        context: Context {
            time: WEDNESDAY_10H,
            human: Some("alice".into()),
            human_assurance: "session".into(),
            estimated_cost_micro_usd: 2_000,
            estimated_tokens: 1_000,
            task: None,
        },
    }
}

/// The three policies the documentation leads with.
pub const EXAMPLES: &str = r#"
@id("models-in-scope")
permit(principal, action == Docket::Action::"call_model", resource)
when { principal.models.contains(resource.name) };

@id("no-pii-at-night")
forbid(principal, action, resource)
when { context.data_classes.contains("pii") && (context.hour < 7 || context.hour >= 20) };

@id("big-spend") @approval("required")
permit(principal, action == Docket::Action::"call_model", resource)
when { context.estimated_cost_micro_usd > 1000000 };
"#;
