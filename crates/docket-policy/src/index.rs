//! Slices a validated policy set by action and by the agent, project or resource a policy is written for.
//!
//! Evaluating a Cedar policy costs microseconds, so a set of a thousand
//! cannot be evaluated whole on every call. Most policies name, in their
//! scope or in the first test of their `when`, the one agent, project or
//! resource they are about; such a policy is filed under that name and only
//! evaluated for requests that carry it.
//!
//! A filed copy also drops the tests its filing has already decided (the
//! action, the name it is filed under), since Cedar would re-evaluate them
//! for nothing. Both steps rest on how requests are built (`translate`):
//! the principal is always an agent whose only ancestor is its project, the
//! resource is always of the action's kind with no ancestors, and
//! `principal.name`, `principal.project`, `context.project` and
//! `resource.name` are always present and equal to the request's ids. Under
//! those facts a test that is dropped would have been true, and one that is
//! true for a request's slice could never have failed with an error.

use std::collections::HashMap;

use cedar_policy::{
    ActionConstraint, EntityTypeName, Policy, PolicyId, PrincipalConstraint, ResourceConstraint,
};
use serde_json::{Value, json};

use crate::error::PolicyError;
use crate::request::{Action, ActionExt, Request, ResourceKind};
use crate::schema::Names;

/// The policies of one action, partitioned by what they are filed under.
///
/// A policy sits in exactly one of the parts a request looks at, so
/// evaluating those parts separately and merging the answers gives the
/// answer for their union.
#[derive(Default)]
pub(crate) struct Slice {
    /// Policies about no one agent, project or resource.
    general: Option<cedar_policy::PolicySet>,
    /// When `merged`, a project's own policies together with the general
    /// ones: each evaluation has a fixed cost, and most requests need both.
    by_project: HashMap<String, cedar_policy::PolicySet>,
    merged: bool,
    by_agent: HashMap<String, cedar_policy::PolicySet>,
    by_resource: HashMap<String, cedar_policy::PolicySet>,
}

/// How many copies of general policies merging them into every project's
/// part may make, per action. Past that, memory grows with projects times
/// policies, and the evaluations saved are a small share anyway.
pub(crate) const MERGE_BUDGET: usize = 16_384;

impl Slice {
    /// The parts of this action's policies that can apply to `request`.
    pub fn parts(&self, request: &Request) -> [Option<&cedar_policy::PolicySet>; 4] {
        let project = self.by_project.get(request.principal.project.as_str());
        let (first, second) = if self.merged {
            (project.or(self.general.as_ref()), None)
        } else {
            (self.general.as_ref(), project)
        };
        [
            first,
            second,
            self.by_agent.get(request.principal.agent.as_str()),
            self.by_resource.get(request.resource.id.as_str()),
        ]
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Key {
    Any,
    Agent(String),
    Project(String),
    Resource(String),
}

/// Builds the slice of every action (indexed by `Action::index`).
pub(crate) fn slice(
    names: &Names,
    policies: &[Policy],
    merge_budget: usize,
) -> Result<[Slice; 5], PolicyError> {
    let mut buckets: [HashMap<Key, Vec<Policy>>; 5] = Default::default();
    for policy in policies {
        let est = policy.to_json().map_err(|e| internal(policy.id(), &e))?;
        // An unconstrained policy is filed under every action; its copies
        // usually come out the same, and one is enough.
        let mut made: Vec<(Key, Value, Policy)> = Vec::new();
        for action in actions_of(names, policy) {
            let (key, json) = file(names, policy, &est, action);
            let filed = match made.iter().find(|(k, j, _)| *k == key && *j == json) {
                Some((_, _, filed)) => filed.clone(),
                None => {
                    let filed = Policy::from_json(Some(policy.id().clone()), json.clone())
                        .map_err(|e| internal(policy.id(), &e))?;
                    made.push((key.clone(), json, filed.clone()));
                    filed
                }
            };
            buckets[action.index()].entry(key).or_default().push(filed);
        }
    }

    let set = |policies: Vec<Policy>| {
        cedar_policy::PolicySet::from_policies(policies)
            .map_err(|e| PolicyError::Invalid(vec![e.to_string()]))
    };
    let mut slices: [Slice; 5] = Default::default();
    for (slice, mut buckets) in slices.iter_mut().zip(buckets) {
        let general = buckets.remove(&Key::Any).unwrap_or_default();
        let projects = buckets
            .keys()
            .filter(|k| matches!(k, Key::Project(_)))
            .count();
        slice.merged = general.len().saturating_mul(projects) <= merge_budget;
        for (key, mut policies) in buckets {
            match key {
                Key::Any => {}
                Key::Agent(id) => {
                    slice.by_agent.insert(id, set(policies)?);
                }
                Key::Project(id) => {
                    if slice.merged {
                        policies.extend(general.iter().cloned());
                    }
                    slice.by_project.insert(id, set(policies)?);
                }
                Key::Resource(id) => {
                    slice.by_resource.insert(id, set(policies)?);
                }
            }
        }
        if !general.is_empty() {
            slice.general = Some(set(general)?);
        }
    }
    Ok(slices)
}

/// A policy Cedar just printed cannot fail to be read back; if it did, the
/// set is refused rather than evaluated differently from what was validated.
fn internal(id: &PolicyId, e: &dyn std::fmt::Display) -> PolicyError {
    PolicyError::Invalid(vec![format!(
        "policy {id}: cannot be prepared for evaluation: {e}"
    )])
}

fn actions_of(names: &Names, policy: &Policy) -> Vec<Action> {
    match policy.action_constraint() {
        ActionConstraint::Any => Action::ALL.to_vec(),
        ActionConstraint::Eq(uid) => names.action_of(&uid).into_iter().collect(),
        ActionConstraint::In(uids) => {
            // Docket has no action groups, so `in` a list is membership.
            let mut actions: Vec<Action> = uids.iter().filter_map(|u| names.action_of(u)).collect();
            actions.sort();
            actions.dedup();
            actions
        }
    }
}

/// Where the copy of `policy` for `action` is filed, and that copy (as
/// Cedar's JSON policy format) without the tests the filing decides.
fn file(names: &Names, policy: &Policy, est: &Value, action: Action) -> (Key, Value) {
    let mut json = est.clone();
    json["action"] = all();

    let kind = action.resource_kind();
    let principal = match policy.principal_constraint() {
        // Only an agent can equal the principal; `principal == Project::"…"`
        // is false for every request, and is left for Cedar to say so.
        PrincipalConstraint::Eq(uid) if *uid.type_name() == names.agent => {
            Some(Key::Agent(uid.id().unescaped().to_owned()))
        }
        PrincipalConstraint::In(uid) => principal_key(names, uid.type_name(), uid.id().unescaped()),
        PrincipalConstraint::IsIn(ty, uid) if ty == names.agent => {
            principal_key(names, uid.type_name(), uid.id().unescaped())
        }
        PrincipalConstraint::Is(ty) if ty == names.agent => {
            json["principal"] = all();
            None
        }
        _ => None,
    };
    if let Some(key) = principal {
        json["principal"] = all();
        return (key, json);
    }
    // An agent or a project is the sharper filing: a deployment has more of
    // them than it has models or tools, and a policy written for one project
    // and one tool is found through the project.
    let principal_test = |key: &Key| matches!(key, Key::Agent(_) | Key::Project(_));
    if let Some(key) = file_by_first_test(names, kind, &mut json, principal_test) {
        return (key, json);
    }

    let resource = match policy.resource_constraint() {
        ResourceConstraint::Eq(uid) | ResourceConstraint::In(uid) => {
            resource_key(names, kind, uid.type_name(), uid.id().unescaped())
        }
        ResourceConstraint::IsIn(ty, uid) if names.resource_kind_of(&ty) == Some(kind) => {
            resource_key(names, kind, uid.type_name(), uid.id().unescaped())
        }
        ResourceConstraint::Is(ty) if names.resource_kind_of(&ty) == Some(kind) => {
            json["resource"] = all();
            None
        }
        _ => None,
    };
    if let Some(key) = resource {
        json["resource"] = all();
        return (key, json);
    }

    let key = file_by_first_test(names, kind, &mut json, |_| true).unwrap_or(Key::Any);
    (key, json)
}

/// The scope constraint that admits every request.
fn all() -> Value {
    json!({ "op": "All" })
}

/// The key of `principal in <ty>::"<id>"`.
fn principal_key(names: &Names, ty: &EntityTypeName, id: &str) -> Option<Key> {
    if *ty == names.agent {
        Some(Key::Agent(id.to_owned()))
    } else if *ty == names.project {
        Some(Key::Project(id.to_owned()))
    } else {
        None
    }
}

fn resource_key(names: &Names, kind: ResourceKind, ty: &EntityTypeName, id: &str) -> Option<Key> {
    (names.resource_kind_of(ty) == Some(kind)).then(|| Key::Resource(id.to_owned()))
}

/// Files a policy by the first test its conditions evaluate, when that test
/// names one agent, project or resource (and `accept` takes that key), and
/// drops that test from the copy.
///
/// Only the first test in evaluation order will do: a later one would be
/// reached only after earlier ones, which could fail with an error that the
/// filing would then hide.
fn file_by_first_test(
    names: &Names,
    kind: ResourceKind,
    json: &mut Value,
    accept: impl Fn(&Key) -> bool,
) -> Option<Key> {
    let condition = json.get_mut("conditions")?.as_array_mut()?.first_mut()?;
    if condition.get("kind").and_then(Value::as_str) != Some("when") {
        return None;
    }
    let body = condition.get_mut("body")?;
    let key = test_key(names, kind, first_test(body)).filter(|key| accept(key))?;
    drop_first_test(body);
    Some(key)
}

/// The leftmost operand of a chain of `&&`, which Cedar evaluates first.
fn first_test(mut expr: &Value) -> &Value {
    while let Some(left) = expr.get("&&").and_then(|and| and.get("left")) {
        expr = left;
    }
    expr
}

/// Removes the leftmost operand of a chain of `&&`; a lone test becomes `true`.
fn drop_first_test(expr: &mut Value) {
    let rest = match expr.get_mut("&&") {
        None => json!({ "Value": true }),
        Some(and) => match and.get_mut("left") {
            Some(left) if left.get("&&").is_some() => {
                drop_first_test(left);
                return;
            }
            _ => and
                .get_mut("right")
                .map(Value::take)
                .unwrap_or(json!({ "Value": true })),
        },
    };
    *expr = rest;
}

/// The key a test of one of these shapes (either operand order for `==`) files its policy under:
/// `principal == Agent`, `principal in Agent|Project`, `principal.name == "…"`,
/// `principal.project == Project`, `context.project == Project`,
/// `resource == R`, `resource in R`, `resource.name == "…"`.
fn test_key(names: &Names, kind: ResourceKind, test: &Value) -> Option<Key> {
    if let Some((left, right)) = operands(test, "==") {
        return equality_key(names, kind, left, right)
            .or_else(|| equality_key(names, kind, right, left));
    }
    let (left, right) = operands(test, "in")?;
    let (ty, id) = entity_literal(right)?;
    match var(left)? {
        "principal" => {
            if ty == names.agent.to_string() {
                Some(Key::Agent(id.to_owned()))
            } else if ty == names.project.to_string() {
                Some(Key::Project(id.to_owned()))
            } else {
                None
            }
        }
        "resource" => {
            (ty == names.resource(kind).to_string()).then(|| Key::Resource(id.to_owned()))
        }
        _ => None,
    }
}

fn equality_key(names: &Names, kind: ResourceKind, left: &Value, right: &Value) -> Option<Key> {
    if let Some(v) = var(left) {
        let (ty, id) = entity_literal(right)?;
        return match v {
            "principal" if ty == names.agent.to_string() => Some(Key::Agent(id.to_owned())),
            "resource" if ty == names.resource(kind).to_string() => {
                Some(Key::Resource(id.to_owned()))
            }
            _ => None,
        };
    }
    let (of, attr) = attribute(left)?;
    match (of, attr) {
        ("principal", "name") => Some(Key::Agent(string_literal(right)?.to_owned())),
        ("resource", "name") => Some(Key::Resource(string_literal(right)?.to_owned())),
        ("principal" | "context", "project") => {
            let (ty, id) = entity_literal(right)?;
            (ty == names.project.to_string()).then(|| Key::Project(id.to_owned()))
        }
        _ => None,
    }
}

fn operands<'a>(expr: &'a Value, op: &str) -> Option<(&'a Value, &'a Value)> {
    let node = expr.get(op)?;
    Some((node.get("left")?, node.get("right")?))
}

fn var(expr: &Value) -> Option<&str> {
    expr.get("Var")?.as_str()
}

/// `principal.name` as `("principal", "name")`.
fn attribute(expr: &Value) -> Option<(&str, &str)> {
    let node = expr.get(".")?;
    Some((var(node.get("left")?)?, node.get("attr")?.as_str()?))
}

fn string_literal(expr: &Value) -> Option<&str> {
    expr.get("Value")?.as_str()
}

fn entity_literal(expr: &Value) -> Option<(&str, &str)> {
    let entity = expr.get("Value")?.get("__entity")?;
    Some((entity.get("type")?.as_str()?, entity.get("id")?.as_str()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::docket;

    fn filed(text: &str, action: Action) -> (Key, Value) {
        let Ok(docket) = docket() else {
            panic!("schema");
        };
        let policy = match Policy::parse(None, text) {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        };
        let Ok(est) = policy.to_json() else {
            panic!("est");
        };
        file(&docket.names, &policy, &est, action)
    }

    fn agent(id: &str) -> Key {
        Key::Agent(id.to_owned())
    }

    #[test]
    fn the_first_test_files_the_policy_and_is_dropped() {
        let (key, json) = filed(
            r#"permit(principal, action, resource) when { principal.project == Docket::Project::"p" && context.hour > 3 && context.hour < 9 };"#,
            Action::CallModel,
        );
        assert_eq!(key, Key::Project("p".to_owned()));
        let body = &json["conditions"][0]["body"];
        assert_eq!(first_test(body)["<"], Value::Null);
        assert_eq!(first_test(body)[">"]["right"]["Value"], json!(3));
        assert_eq!(json["action"], json!({ "op": "All" }));
    }

    #[test]
    fn a_lone_test_becomes_true() {
        let (key, json) = filed(
            r#"forbid(principal, action, resource) when { "bot" == principal.name };"#,
            Action::CallTool,
        );
        assert_eq!(key, agent("bot"));
        assert_eq!(json["conditions"][0]["body"], json!({ "Value": true }));
    }

    #[test]
    fn only_the_first_test_of_a_when_counts() {
        for text in [
            r#"permit(principal, action, resource) when { context.hour > 3 && principal.name == "a" };"#,
            r#"permit(principal, action, resource) unless { principal.name == "a" };"#,
            r#"permit(principal, action, resource) when { principal.name == "a" || context.hour > 3 };"#,
            r#"permit(principal, action, resource) when { principal.owner == Docket::Human::"a" };"#,
            r#"permit(principal, action, resource) when { resource == Docket::Tool::"a" };"#,
        ] {
            assert_eq!(filed(text, Action::CallModel).0, Key::Any, "{text}");
        }
        assert_eq!(
            filed(
                r#"permit(principal, action, resource) when { resource == Docket::Tool::"a" };"#,
                Action::CallTool
            )
            .0,
            Key::Resource("a".to_owned())
        );
    }

    #[test]
    fn a_project_test_files_before_a_resource_scope() {
        let (key, json) = filed(
            r#"forbid(principal, action, resource == Docket::Tool::"shell") when { principal.project == Docket::Project::"p" && context.hour > 20 };"#,
            Action::CallTool,
        );
        assert_eq!(key, Key::Project("p".to_owned()));
        assert_eq!(json["resource"]["op"], json!("=="));
        let (key, json) = filed(
            r#"forbid(principal, action, resource == Docket::Tool::"shell") when { resource.name == "shell" };"#,
            Action::CallTool,
        );
        assert_eq!(key, Key::Resource("shell".to_owned()));
        assert!(json["conditions"][0]["body"]["=="].is_object());
    }

    #[test]
    fn the_scope_files_before_the_conditions() {
        let (key, json) = filed(
            r#"permit(principal == Docket::Agent::"a", action, resource == Docket::Model::"m") when { principal.name == "b" };"#,
            Action::Embed,
        );
        assert_eq!(key, agent("a"));
        assert_eq!(json["principal"], json!({ "op": "All" }));
        assert_eq!(json["resource"]["op"], json!("=="));
        assert!(json["conditions"][0]["body"]["=="].is_object());
    }
}
