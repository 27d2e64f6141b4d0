//! Synthetic policy sets and requests for timing `decide` (`docket-bench policy`, `examples/decide.rs`).
//!
//! The sets are shaped like a grown deployment: a few organisation-wide
//! rules, and many rules written for one agent, one project or one tool,
//! most of them scoped in the policy head and some only in `when`.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use crate::request::{Action, ActionExt, Context, Principal, Request, Resource, ResourceKind};

const MODELS: [(&str, &str); 9] = [
    ("gpt-4o", "openai"),
    ("gpt-4o-mini", "openai"),
    ("o3", "openai"),
    ("claude-sonnet-4", "anthropic"),
    ("claude-haiku-4", "anthropic"),
    ("gemini-2.5-pro", "google"),
    ("llama-3.1-70b", "meta"),
    ("text-embedding-3-small", "openai"),
    ("voyage-3", "voyage"),
];
const PROVIDERS: [&str; 5] = ["openai", "anthropic", "google", "meta", "voyage"];
const TOOLS: [&str; 10] = [
    "search",
    "browser",
    "shell",
    "sql",
    "email",
    "calendar",
    "jira",
    "github",
    "slack",
    "pagerduty",
];
const DATASETS: [(&str, &[&str], &str); 8] = [
    ("tickets", &["pii"], "prod"),
    ("invoices", &["financial", "pii"], "prod"),
    ("docs", &[], "prod"),
    ("metrics", &[], "staging"),
    ("hr-records", &["hr", "pii"], "prod"),
    ("fixtures", &[], "staging"),
    ("customers", &["pii"], "staging"),
    ("ledger", &["financial"], "prod"),
];
const CLASSES: [&str; 3] = ["pii", "financial", "hr"];
const ENVIRONMENTS: [&str; 2] = ["prod", "staging"];
const ASSURANCES: [&str; 3] = ["session", "asserted", "none"];
/// 2026-01-05 00:00:00 UTC, a Monday.
const EPOCH: i64 = 1_767_571_200;
const REQUESTS: usize = 1_000;

/// The organisation-wide rules every set starts with.
const BASELINE: [&str; 8] = [
    r#"@id("models-in-scope")
permit(principal, action in [Docket::Action::"call_model", Docket::Action::"embed"], resource)
when { principal.models.contains(resource.name) };"#,
    r#"@id("tools-in-scope")
permit(principal, action == Docket::Action::"call_tool", resource)
when { principal.tools.contains(resource.name) };"#,
    r#"@id("data-in-scope")
permit(principal, action in [Docket::Action::"read_data", Docket::Action::"write_data"], resource)
when { principal.data_classes.containsAll(resource.data_classes) && principal.environments.contains(resource.environment) };"#,
    r#"@id("no-pii-at-night")
forbid(principal, action, resource)
when { context.data_classes.contains("pii") && (context.hour < 7 || context.hour >= 20) };"#,
    r#"@id("big-spend") @approval("required")
permit(principal, action == Docket::Action::"call_model", resource)
when { context.estimated_cost_micro_usd > 1000000 };"#,
    r#"@id("out-of-scope-models")
forbid(principal, action in [Docket::Action::"call_model", Docket::Action::"embed"], resource)
unless { principal.models.contains(resource.name) };"#,
    r#"@id("token-cap")
forbid(principal, action == Docket::Action::"call_model", resource)
when { context.estimated_tokens > 150000 };"#,
    r#"@id("writes-need-a-human")
forbid(principal, action == Docket::Action::"write_data", resource)
when { context.human_assurance == "none" };"#,
];

/// A set of `n` policies and a batch of requests that exercise it.
///
/// Deterministic: the same `n` gives the same text and requests, so figures
/// from different runs and machines compare.
pub fn synthetic(n: usize) -> (String, Vec<Request>) {
    let world = World::new(n);
    let mut rng = Rng(0x5eed ^ n as u64);
    let mut text = String::new();
    for policy in BASELINE.iter().take(n) {
        text.push_str(policy);
        text.push_str("\n\n");
    }
    for k in 0..n.saturating_sub(BASELINE.len()) {
        text.push_str(&world.policy(k, &mut rng));
        text.push_str("\n\n");
    }
    let requests = (0..REQUESTS).map(|_| world.request(&mut rng)).collect();
    (text, requests)
}

/// The agents and projects a synthetic set is written for; they grow with it.
struct World {
    agents: usize,
    projects: usize,
}

impl World {
    fn new(n: usize) -> World {
        World {
            agents: (n / 4).max(4),
            projects: (n / 50).max(2),
        }
    }

    fn principal(&self, agent: usize) -> Principal {
        // Each agent's scope is a function of its number, so a request and
        // the policies written for that agent agree on it.
        let mut rng = Rng(agent as u64 + 1);
        let pick = |rng: &mut Rng, items: &[&str], keep: u64| -> BTreeSet<String> {
            items
                .iter()
                .filter(|_| rng.below(100) < keep)
                .map(|s| (*s).to_owned())
                .collect()
        };
        let models: Vec<&str> = MODELS.iter().map(|(m, _)| *m).collect();
        Principal {
            agent: format!("agent-{agent}"),
            project: format!("project-{}", agent % self.projects),
            owner: format!("user-{}", agent % 17),
            tools: pick(&mut rng, &TOOLS, 50),
            models: pick(&mut rng, &models, 60),
            data_classes: pick(&mut rng, &CLASSES, 50),
            environments: pick(&mut rng, &ENVIRONMENTS, 70),
        }
    }

    fn policy(&self, k: usize, rng: &mut Rng) -> String {
        let agent = rng.below(self.agents as u64);
        let project = rng.below(self.projects as u64);
        let provider = PROVIDERS[rng.below(PROVIDERS.len() as u64) as usize];
        let tool = TOOLS[rng.below(TOOLS.len() as u64) as usize];
        let class = CLASSES[rng.below(CLASSES.len() as u64) as usize];
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = match k % 10 {
            0 | 1 => write!(
                out,
                r#"@id("agent-{agent}-{provider}-{k}")
permit(principal == Docket::Agent::"agent-{agent}", action == Docket::Action::"call_model", resource)
when {{ resource.provider == "{provider}" && context.estimated_cost_micro_usd <= {} }};"#,
                10_u64.pow(4 + rng.below(4) as u32)
            ),
            2 => write!(
                out,
                r#"@id("project-{project}-{tool}-hours-{k}")
forbid(principal in Docket::Project::"project-{project}", action == Docket::Action::"call_tool", resource == Docket::Tool::"{tool}")
when {{ context.hour < {} || context.hour >= {} }};"#,
                5 + rng.below(4),
                18 + rng.below(5)
            ),
            3 => write!(
                out,
                r#"@id("agent-{agent}-data-{k}")
permit(principal == Docket::Agent::"agent-{agent}", action in [Docket::Action::"read_data", Docket::Action::"write_data"], resource)
when {{ principal.environments.contains(resource.environment) && !resource.data_classes.contains("{class}") }};"#
            ),
            4 => write!(
                out,
                r#"@id("project-{project}-{provider}-tokens-{k}") @approval("required")
permit(principal in Docket::Project::"project-{project}", action == Docket::Action::"call_model", resource)
when {{ resource.provider == "{provider}" && context.estimated_tokens > {} }};"#,
                20_000 + rng.below(100_000)
            ),
            5 => write!(
                out,
                r#"@id("agent-{agent}-weekend-prod-{k}")
forbid(principal == Docket::Agent::"agent-{agent}", action in [Docket::Action::"write_data", Docket::Action::"call_tool"], resource)
when {{ context.weekday >= 5 && context.environment == "prod" }};"#
            ),
            6 => write!(
                out,
                r#"@id("{tool}-project-{project}-assurance-{k}")
forbid(principal, action == Docket::Action::"call_tool", resource == Docket::Tool::"{tool}")
when {{ principal.project == Docket::Project::"project-{project}" && context.human_assurance == "none" }};"#
            ),
            7 => write!(
                out,
                r#"@id("agent-{agent}-tools-daytime-{k}")
permit(principal == Docket::Agent::"agent-{agent}", action == Docket::Action::"call_tool", resource)
when {{ principal.tools.contains(resource.name) && context.hour >= {} && context.hour < 20 }};"#,
                6 + rng.below(4)
            ),
            8 => write!(
                out,
                r#"@id("project-{project}-embed-{k}")
permit(principal in Docket::Project::"project-{project}", action == Docket::Action::"embed", resource)
when {{ resource.name like "*embed*" || resource.provider == "{provider}" }};"#
            ),
            _ => {
                let action = Action::ALL[rng.below(5) as usize];
                write!(
                    out,
                    r#"@id("project-{project}-{class}-{action}-cost-{k}")
forbid(principal, action == Docket::Action::"{action}", resource)
when {{ principal.project == Docket::Project::"project-{project}" && context.data_classes.contains("{class}") && context.estimated_cost_micro_usd > {} }};"#,
                    10_u64.pow(3 + rng.below(4) as u32)
                )
            }
        };
        out
    }

    fn request(&self, rng: &mut Rng) -> Request {
        let principal = self.principal(rng.below(self.agents as u64) as usize);
        let action = Action::ALL[rng.below(5) as usize];
        // Mostly within the agent's scope, as real traffic is; the rest is
        // what policy is there to stop.
        let in_scope = rng.below(100) < 80;
        let from = |scope: &BTreeSet<String>, all: &[&str], rng: &mut Rng| -> String {
            let scope: Vec<&String> = scope.iter().collect();
            if in_scope && !scope.is_empty() {
                scope[rng.below(scope.len() as u64) as usize].clone()
            } else {
                all[rng.below(all.len() as u64) as usize].to_owned()
            }
        };
        let resource = match action.resource_kind() {
            ResourceKind::Model => {
                let models: Vec<&str> = MODELS.iter().map(|(m, _)| *m).collect();
                let id = from(&principal.models, &models, rng);
                let provider = MODELS
                    .iter()
                    .find(|(m, _)| *m == id)
                    .map(|(_, p)| (*p).to_owned());
                Resource {
                    kind: ResourceKind::Model,
                    id,
                    provider,
                    data_classes: if rng.below(4) == 0 {
                        ["pii".to_owned()].into()
                    } else {
                        BTreeSet::new()
                    },
                    environment: Some(ENVIRONMENTS[rng.below(2) as usize].to_owned()),
                }
            }
            ResourceKind::Tool => Resource {
                kind: ResourceKind::Tool,
                id: from(&principal.tools, &TOOLS, rng),
                provider: None,
                data_classes: BTreeSet::new(),
                environment: Some(ENVIRONMENTS[rng.below(2) as usize].to_owned()),
            },
            ResourceKind::Dataset => {
                let (id, classes, env) = DATASETS[rng.below(DATASETS.len() as u64) as usize];
                Resource {
                    kind: ResourceKind::Dataset,
                    id: id.to_owned(),
                    provider: None,
                    data_classes: classes.iter().map(|c| (*c).to_owned()).collect(),
                    environment: Some(env.to_owned()),
                }
            }
        };
        let human = match rng.below(10) {
            0..=5 => Some(principal.owner.clone()),
            6 | 7 => Some(format!("user-{}", rng.below(40))),
            _ => None,
        };
        let context = Context {
            time: EPOCH + rng.below(14 * 86_400) as i64,
            human_assurance: if human.is_some() {
                ASSURANCES[rng.below(3) as usize].to_owned()
            } else {
                "none".to_owned()
            },
            human,
            estimated_cost_micro_usd: 10_i64.pow(1 + rng.below(7) as u32)
                * (1 + rng.below(9) as i64),
            estimated_tokens: rng.below(200_000) as i64,
            task: (rng.below(2) == 0).then(|| format!("task-{}", rng.below(1_000))),
        };
        Request {
            principal,
            action,
            resource,
            context,
        }
    }
}

/// SplitMix64: enough randomness for synthetic data, and no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
}

/// A request for the unit tests' own policies, varied by `seed` across
/// hours, weekdays, scopes and data classes.
#[cfg(test)]
pub(crate) fn request_for_tests(
    agent: &str,
    project: &str,
    action: Action,
    id: &str,
    seed: i64,
) -> Request {
    let mut rng = Rng(seed as u64);
    let coin = |rng: &mut Rng| rng.below(2) == 0;
    let mut models = BTreeSet::new();
    if coin(&mut rng) {
        models.insert(id.to_owned());
    }
    Request {
        principal: Principal {
            agent: agent.to_owned(),
            project: project.to_owned(),
            owner: "owner".to_owned(),
            tools: BTreeSet::new(),
            models,
            data_classes: BTreeSet::new(),
            environments: BTreeSet::new(),
        },
        action,
        resource: Resource {
            kind: action.resource_kind(),
            id: id.to_owned(),
            provider: coin(&mut rng).then(|| "openai".to_owned()),
            data_classes: if coin(&mut rng) {
                ["pii".to_owned()].into()
            } else {
                BTreeSet::new()
            },
            environment: coin(&mut rng).then(|| "prod".to_owned()),
        },
        context: Context {
            time: EPOCH + rng.below(7 * 86_400) as i64,
            human: coin(&mut rng).then(|| "owner".to_owned()),
            human_assurance: "session".to_owned(),
            estimated_cost_micro_usd: rng.below(30) as i64,
            estimated_tokens: 1,
            task: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_sets_have_the_size_asked_for_and_are_deterministic() {
        for n in [0, 1, 8, 9, 100, 1_000] {
            let (text, requests) = synthetic(n);
            let Ok(set) = crate::PolicySet::compile(&text) else {
                panic!("synthetic({n}) does not compile");
            };
            assert_eq!(set.len(), n);
            assert_eq!(requests.len(), REQUESTS);
            assert_eq!(synthetic(n), (text, requests));
        }
    }

    #[test]
    fn epoch_is_a_monday_at_midnight() {
        assert_eq!(crate::request::hour_and_weekday(EPOCH), (0, 0));
    }
}
