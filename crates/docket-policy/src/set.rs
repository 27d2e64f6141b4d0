//! A compiled, validated policy set, sliced by scope so each decision evaluates only the policies that can apply.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use cedar_policy::ffi::DetailedError;
use cedar_policy::{
    AuthorizationError, Authorizer, Decision as CedarDecision, Effect, Policy, PolicyId,
    ValidationMode,
};
use sha2::{Digest, Sha256};

use crate::error::{PolicyError, render};
use crate::index::{self, Slice};
use crate::limits::{self, MAX_POLICIES};
use crate::request::ActionExt;
use crate::request::{Decision, Outcome, Request};
use crate::schema::{Names, docket};
use crate::translate::{EntityCache, request as cedar_request};

/// A compiled policy version: immutable, `Send + Sync`, meant to be shared in an `Arc`.
pub struct PolicySet {
    /// In the order of the text.
    ids: Vec<String>,
    sha256: String,
    /// `None` for [`PolicySet::deny_all`].
    engine: Option<Engine>,
}

struct Engine {
    names: Arc<Names>,
    authorizer: Authorizer,
    entities: EntityCache,
    /// Permit policies carrying `@approval("required")`.
    approval: HashSet<String>,
    /// Indexed by `Action::index`.
    slices: [Slice; 5],
    /// The whole set, which the slices must agree with.
    #[cfg(test)]
    full: cedar_policy::PolicySet,
}

impl PolicySet {
    /// Parses `text` (Cedar policy syntax), validates it against Docket's
    /// schema in strict mode, and compiles it.
    ///
    /// Policy ids: the `@id("...")` annotation when present (unique,
    /// non-empty), else "policy0", "policy1", … by position in the text.
    pub fn compile(text: &str) -> Result<PolicySet, PolicyError> {
        PolicySet::compile_with(text, index::MERGE_BUDGET)
    }

    fn compile_with(text: &str, merge_budget: usize) -> Result<PolicySet, PolicyError> {
        limits::check_size(text)?;
        let docket = docket().map_err(|e| PolicyError::Invalid(vec![e.to_owned()]))?;
        let parsed: cedar_policy::PolicySet =
            text.parse().map_err(|e: cedar_policy::ParseErrors| {
                PolicyError::Parse(render(&DetailedError::from(&e), text))
            })?;
        if let Some(template) = parsed.templates().next() {
            return Err(PolicyError::Invalid(vec![format!(
                "policy {} is a template (it has a ?principal or ?resource slot); \
                 a Docket policy set holds static policies only",
                template.id()
            )]));
        }
        let count = parsed.num_of_policies();
        if count > MAX_POLICIES {
            return Err(PolicyError::TooLarge(format!(
                "{count} policies, the limit is {MAX_POLICIES}"
            )));
        }

        let policies = name_policies(&parsed)?;
        let approval = approval_policies(&policies)?;
        let ids: Vec<String> = policies.iter().map(|p| p.id().to_string()).collect();

        let full = cedar_policy::PolicySet::from_policies(policies.iter().cloned())
            .map_err(|e| PolicyError::Annotation(e.to_string()))?;
        let validation = docket.validator.validate(&full, ValidationMode::Strict);
        if !validation.validation_passed() {
            let position: HashMap<&str, usize> = ids
                .iter()
                .enumerate()
                .map(|(i, id)| (id.as_str(), i))
                .collect();
            let mut errors: Vec<(usize, String)> = validation
                .validation_errors()
                .map(|e| {
                    let id = e.policy_id();
                    let message = render(&DetailedError::from(e), text);
                    // Cedar names the policy in its own words; once is enough.
                    let message = message
                        .strip_prefix(&format!("for policy `{id}`, "))
                        .map_or(message.clone(), str::to_owned);
                    let name: &str = id.as_ref();
                    let at = position.get(name).copied().unwrap_or(usize::MAX);
                    (at, format!("policy {id}: {}", without_action(&message)))
                })
                .collect();
            // In the order of the text, and once each: Cedar checks a
            // policy once per action it may apply to, and reports the same
            // mistake for each.
            errors.sort();
            errors.dedup();
            return Err(PolicyError::Invalid(
                errors.into_iter().map(|(_, e)| e).collect(),
            ));
        }

        let slices = index::slice(&docket.names, &policies, merge_budget)?;
        Ok(PolicySet {
            ids,
            sha256: hex::encode(Sha256::digest(text.as_bytes())),
            engine: Some(Engine {
                names: Arc::clone(&docket.names),
                authorizer: Authorizer::new(),
                entities: EntityCache::new(),
                approval,
                slices,
                #[cfg(test)]
                full,
            }),
        })
    }

    /// The set in force when no version has been activated: it permits
    /// nothing, and says so in every decision. Its digest is that of the
    /// empty text.
    pub fn deny_all() -> PolicySet {
        PolicySet {
            ids: Vec::new(),
            sha256: hex::encode(Sha256::digest(b"")),
            engine: None,
        }
    }

    /// Decides `request` (see the crate documentation for the rule). Never
    /// fails: whatever cannot be evaluated is denied, with the reason.
    pub fn decide(&self, request: &Request) -> Decision {
        match &self.engine {
            Some(engine) => engine.decide(request),
            None => Decision {
                outcome: Outcome::Deny,
                determining: Vec::new(),
                reason: "no policy version is active".to_owned(),
                errors: Vec::new(),
            },
        }
    }

    /// The number of policies.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether the set has no policies, and so denies everything.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The policy ids, in the order of the text.
    pub fn policy_ids(&self) -> Vec<String> {
        self.ids.clone()
    }

    /// SHA-256 hex of the policy text as submitted.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// Decides by evaluating the whole set, for checking the slices against.
    #[cfg(test)]
    fn decide_unsliced(&self, request: &Request) -> Decision {
        match &self.engine {
            Some(engine) => engine.decide_with(request, |_| [Some(&engine.full), None, None, None]),
            None => self.decide(request),
        }
    }
}

impl fmt::Debug for PolicySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PolicySet")
            .field("policies", &self.ids.len())
            .field("sha256", &self.sha256)
            .field("active", &self.engine.is_some())
            .finish()
    }
}

/// Gives each policy its Docket id, in text order.
fn name_policies(parsed: &cedar_policy::PolicySet) -> Result<Vec<Policy>, PolicyError> {
    // Cedar names unannotated policies "policyN" by position, but keeps
    // them in a map; the number restores the order of the text.
    let mut ordered: Vec<(u64, &Policy)> = parsed
        .policies()
        .map(|p| {
            let id: &str = p.id().as_ref();
            let position = id
                .strip_prefix("policy")
                .and_then(|n| n.parse().ok())
                .unwrap_or(u64::MAX);
            (position, p)
        })
        .collect();
    ordered.sort_by_key(|(position, _)| *position);

    let mut problems = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut named = Vec::with_capacity(ordered.len());
    for (index, (_, policy)) in ordered.into_iter().enumerate() {
        let id = match policy.annotation("id") {
            Some(id) if id.trim().is_empty() => {
                problems.push(format!(
                    "policy number {} in the text has an empty @id",
                    index + 1
                ));
                continue;
            }
            Some(id) => id.to_owned(),
            None => policy.id().to_string(),
        };
        if let Some(first) = seen.get(&id) {
            problems.push(format!(
                "policies number {} and {} in the text have the same id {id:?}",
                first + 1,
                index + 1
            ));
            continue;
        }
        seen.insert(id.clone(), index);
        named.push(policy.new_id(PolicyId::new(id)));
    }
    if problems.is_empty() {
        Ok(named)
    } else {
        Err(PolicyError::Annotation(problems.join("; ")))
    }
}

/// The permits that hold what they allow for approval; refuses any other use of `@approval`.
fn approval_policies(policies: &[Policy]) -> Result<HashSet<String>, PolicyError> {
    let mut problems = Vec::new();
    let mut approval = HashSet::new();
    for policy in policies {
        match (policy.annotation("approval"), policy.effect()) {
            (None, _) => {}
            (Some("required"), Effect::Permit) => {
                approval.insert(policy.id().to_string());
            }
            (Some("required"), Effect::Forbid) => problems.push(format!(
                "policy {}: @approval applies to permit policies only; a forbid cannot be approved",
                policy.id()
            )),
            (Some(other), _) => problems.push(format!(
                "policy {}: @approval must be \"required\", not {other:?}",
                policy.id()
            )),
        }
    }
    if problems.is_empty() {
        Ok(approval)
    } else {
        Err(PolicyError::Annotation(problems.join("; ")))
    }
}

impl Engine {
    fn decide(&self, request: &Request) -> Decision {
        self.decide_with(request, |slice| slice.parts(request))
    }

    /// Evaluates `request` against the disjoint parts of the set that `parts`
    /// picks from the action's slice, and merges their answers into the one
    /// Cedar would give for their union.
    fn decide_with<'a>(
        &'a self,
        request: &Request,
        parts: impl FnOnce(&'a Slice) -> [Option<&'a cedar_policy::PolicySet>; 4],
    ) -> Decision {
        let action = request.action;
        let resource = &request.resource;
        if resource.kind != action.resource_kind() {
            return Decision {
                outcome: Outcome::Deny,
                determining: Vec::new(),
                reason: format!(
                    "{action} applies to a {}, not to a {}",
                    action.resource_kind(),
                    resource.kind
                ),
                errors: Vec::new(),
            };
        }
        let parts = parts(&self.slices[action.index()]);

        let mut satisfied_forbids: Vec<String> = Vec::new();
        let mut satisfied_permits: Vec<String> = Vec::new();
        let mut errors: Vec<String> = Vec::new();
        let mut errored: Vec<String> = Vec::new();
        if parts.iter().any(Option::is_some) {
            let cedar = cedar_request(&self.names, request).and_then(|r| {
                let entities =
                    self.entities
                        .get(&self.names, &request.principal, &request.resource)?;
                Ok((r, entities))
            });
            let (cedar, entities) = match cedar {
                Ok(built) => built,
                Err(e) => {
                    return Decision {
                        outcome: Outcome::Deny,
                        determining: Vec::new(),
                        reason: format!("the request cannot be evaluated: {e}"),
                        errors: vec![e],
                    };
                }
            };
            for part in parts.into_iter().flatten() {
                let response = self.authorizer.is_authorized(&cedar, part, &entities);
                let diagnostics = response.diagnostics();
                // Cedar's reasons are the satisfied forbids when it denies
                // (none when nothing permitted) and the satisfied permits
                // when it allows, which is all a merge needs: a part that
                // allowed has no satisfied forbid, and a part that denied
                // with a forbid decides the whole.
                let reasons = diagnostics.reason().map(|id| id.to_string());
                match response.decision() {
                    CedarDecision::Deny => satisfied_forbids.extend(reasons),
                    CedarDecision::Allow => satisfied_permits.extend(reasons),
                }
                for error in diagnostics.errors() {
                    let AuthorizationError::PolicyEvaluationError(e) = error;
                    errored.push(e.policy_id().to_string());
                    errors.push(format!("{}: {}", e.policy_id(), e.inner()));
                }
            }
        }
        errors.sort();
        errored.sort();
        errored.dedup();

        let (outcome, determining, mut reason) = if !satisfied_forbids.is_empty() {
            satisfied_forbids.sort();
            let reason = format!(
                "denied by {} {}",
                policy_word(satisfied_forbids.len()),
                satisfied_forbids.join(", ")
            );
            (Outcome::Deny, satisfied_forbids, reason)
        } else if satisfied_permits.is_empty() {
            let reason = format!(
                "no policy permits {action} on {} {}",
                resource.kind, resource.id
            );
            (Outcome::Deny, Vec::new(), reason)
        } else {
            satisfied_permits.sort();
            let (held, plain): (Vec<&String>, Vec<&String>) = satisfied_permits
                .iter()
                .partition(|id| self.approval.contains(id.as_str()));
            let plain = join(&plain);
            if held.is_empty() {
                (
                    Outcome::Allow,
                    satisfied_permits.clone(),
                    format!("permitted by {plain}"),
                )
            } else {
                let held_for = format!(
                    "held for approval by {} {}",
                    policy_word(held.len()),
                    join(&held)
                );
                let reason = if plain.is_empty() {
                    held_for
                } else {
                    format!("permitted by {plain}; {held_for}")
                };
                (Outcome::RequireApproval, satisfied_permits.clone(), reason)
            }
        };
        if !errored.is_empty() {
            reason.push_str(&format!(
                "; skipped {} {}, which failed to evaluate",
                policy_word(errored.len()),
                errored.join(", ")
            ));
        }
        Decision {
            outcome,
            determining,
            reason,
            errors,
        }
    }
}

/// Drops the action from "… in context for Docket::Action::\"x\" …": every
/// Docket action has the same context, so naming one only repeats the error.
fn without_action(message: &str) -> String {
    const MARK: &str = " in context for Docket::Action::\"";
    let Some(start) = message.find(MARK) else {
        return message.to_owned();
    };
    let rest = &message[start + MARK.len()..];
    match rest.find('"') {
        Some(end) => format!("{} in context{}", &message[..start], &rest[end + 1..]),
        None => message.to_owned(),
    }
}

fn policy_word(n: usize) -> &'static str {
    if n == 1 { "policy" } else { "policies" }
}

fn join(ids: &[&String]) -> String {
    ids.iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::synthetic;
    use crate::request::Action;

    /// The set compiled with the general policies merged into each
    /// project's part, and without.
    fn compile(text: &str) -> [PolicySet; 2] {
        [index::MERGE_BUDGET, 0].map(|budget| match PolicySet::compile_with(text, budget) {
            Ok(set) => set,
            Err(e) => panic!("{e}"),
        })
    }

    #[test]
    fn the_action_is_dropped_from_context_errors_only() {
        assert_eq!(
            without_action(r#"attribute `x` in context for Docket::Action::"embed" not found"#),
            "attribute `x` in context not found"
        );
        let other = r#"attribute `x` on entity type `Docket::Tool` not found"#;
        assert_eq!(without_action(other), other);
    }

    #[test]
    fn policy_sets_can_be_shared_across_threads() {
        fn shared<T: Send + Sync>() {}
        shared::<PolicySet>();
    }

    #[test]
    fn slices_decide_as_the_whole_set_on_synthetic_sets() {
        for n in [1, 10, 100, 1_000] {
            let (text, requests) = synthetic(n);
            let [merged, separate] = compile(&text);
            assert_eq!(merged.len(), n);
            let mut outcomes = HashMap::new();
            for request in &requests {
                let sliced = merged.decide(request);
                assert_eq!(
                    sliced,
                    merged.decide_unsliced(request),
                    "n={n}: {request:?}"
                );
                assert_eq!(sliced, separate.decide(request), "n={n}: {request:?}");
                *outcomes.entry(sliced.outcome).or_insert(0) += 1;
            }
            // A comparison over requests that all end the same way would
            // show little; the synthetic requests reach every outcome.
            if n >= 100 {
                assert_eq!(outcomes.len(), 3, "n={n}: {outcomes:?}");
            }
        }
    }

    /// Every form of scope the index treats specially, against requests
    /// that hit and miss each of them.
    #[test]
    fn slices_decide_as_the_whole_set_on_every_scope_form() {
        let text = r#"
            @id("p-eq") permit(principal == Docket::Agent::"a1", action == Docket::Action::"call_model", resource);
            @id("p-in-agent") forbid(principal in Docket::Agent::"a2", action, resource) when { context.hour < 3 };
            @id("p-in-project") permit(principal in Docket::Project::"p1", action in [Docket::Action::"call_tool", Docket::Action::"read_data"], resource);
            @id("p-is-in") forbid(principal is Docket::Agent in Docket::Project::"p2", action == Docket::Action::"write_data", resource);
            @id("p-is-in-agent") permit(principal is Docket::Agent in Docket::Agent::"a3", action, resource);
            @id("p-is") @approval("required") permit(principal is Docket::Agent, action == Docket::Action::"embed", resource);
            @id("r-eq") permit(principal, action == Docket::Action::"call_model", resource == Docket::Model::"m1");
            @id("r-in") forbid(principal, action == Docket::Action::"call_tool", resource in Docket::Tool::"t1") when { context.estimated_cost_micro_usd > 10 };
            @id("r-is-in") permit(principal, action == Docket::Action::"read_data", resource is Docket::Dataset in Docket::Dataset::"d1");
            @id("r-is") forbid(principal, action, resource is Docket::Dataset) when { resource.environment == "prod" && context.weekday == 6 };
            @id("both") @approval("required") permit(principal == Docket::Agent::"a1", action, resource == Docket::Tool::"t1");
            @id("any") permit(principal, action, resource) when { principal.models.contains(resource.name) };
            @id("overflow") forbid(principal, action, resource) when { context.estimated_tokens * 1000000000000 < 0 };
            @id("w-project") forbid(principal, action, resource) when { principal.project == Docket::Project::"p4" && context.hour > 12 };
            @id("w-ctx-project") permit(principal, action == Docket::Action::"call_tool", resource) when { context.project == Docket::Project::"p2" };
            @id("w-name") permit(principal, action, resource) when { "a5" == principal.name && context.weekday < 5 };
            @id("w-agent") forbid(principal, action in [Docket::Action::"read_data", Docket::Action::"embed"], resource) when { principal == Docket::Agent::"a3" && context.hour < 6 };
            @id("w-in") permit(principal, action, resource) when { principal in Docket::Project::"p3" && resource.name == "x" };
            @id("w-resource") permit(principal, action, resource) when { resource.name == "t1" && context.hour >= 6 && context.hour < 18 };
            @id("w-resource-uid") forbid(principal, action in [Docket::Action::"read_data", Docket::Action::"write_data"], resource) when { resource == Docket::Dataset::"d1" && context.weekday == 2 };
            @id("w-late") permit(principal, action, resource) when { context.hour == 5 && principal.name == "a2" };
            @id("never-eq-project") permit(principal == Docket::Project::"p1", action, resource);
            @id("never-in-human") permit(principal in Docket::Human::"owner", action, resource);
            @id("never-resource") permit(principal, action == Docket::Action::"call_model", resource == Docket::Tool::"m1");
            @id("by-name") permit(principal, action, resource) when { principal.name == "a4" || principal.project == Docket::Project::"p3" };
        "#;
        let [set, separate] = compile(text);
        let agents = ["a1", "a2", "a3", "a4", "a5"];
        let projects = ["p1", "p2", "p3", "p4"];
        let resources = ["m1", "t1", "d1", "a1", "p1", "x"];
        let mut seen = HashSet::new();
        let mut count = 0_i64;
        for _round in 0..4 {
            for agent in agents {
                for project in projects {
                    for action in Action::ALL {
                        for id in resources {
                            count += 1;
                            let mut request =
                                crate::bench::request_for_tests(agent, project, action, id, count);
                            if count % 5 == 0 {
                                request.context.estimated_tokens = 10_000_000;
                            }
                            if count % 11 == 0 {
                                // A resource of the wrong kind for the action.
                                request.resource.kind =
                                    Action::ALL[(action.index() + 1) % 5].resource_kind();
                            }
                            let sliced = set.decide(&request);
                            assert_eq!(sliced, set.decide_unsliced(&request), "{request:?}");
                            assert_eq!(sliced, separate.decide(&request), "{request:?}");
                            seen.extend(sliced.determining.iter().cloned());
                        }
                    }
                }
            }
        }
        assert!(count > 2_000);
        // Every policy determined some decision, so none of them was
        // compared only in the trivial "does not apply" case.
        let mut seen: Vec<String> = seen.into_iter().collect();
        seen.sort();
        let mut ids = set.policy_ids();
        ids.retain(|id| id != "overflow" && !id.starts_with("never-"));
        ids.sort();
        assert_eq!(seen, ids);
    }
}
