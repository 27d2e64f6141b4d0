//! Turns a typed [`Request`] into the Cedar request and the few entities its policies can look at.
//!
//! Nothing built here is checked against the schema at decision time: the
//! shapes are fixed by this file, the tests check them against the schema
//! once, and re-checking them on every call would cost more than the
//! evaluation itself.

use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, PoisonError};

use cedar_policy::{
    Context as CedarContext, Entities, Entity, EntityId, EntityTypeName, EntityUid,
    Request as CedarRequest, RestrictedExpression,
};
use cedar_policy_core::ast::{Context as CoreContext, EntityUID, Literal, Value};
use smol_str::SmolStr;

use crate::request::{Principal, Request, Resource, ResourceKind, hour_and_weekday};
use crate::schema::Names;

/// The entities a request's policies can look at: the agent and the
/// resource, the only ones with attributes.
///
/// The agent's project, its owner and the human on whose behalf are
/// referred to by uid but not stored: entities of those types have neither
/// attributes nor ancestors, so a policy cannot tell a stored one from an
/// absent one, and each stored entity costs hashing in Cedar's
/// transitive-closure pass.
pub(crate) fn entities(
    names: &Names,
    principal: &Principal,
    resource: &Resource,
) -> Result<Entities, String> {
    let project = uid(&names.project, &principal.project);
    let agent = Entity::new_with_tags(
        uid(&names.agent, &principal.agent),
        [
            attr("name", string(&principal.agent)),
            attr(
                "project",
                RestrictedExpression::new_entity_uid(project.clone()),
            ),
            attr(
                "owner",
                RestrictedExpression::new_entity_uid(uid(&names.human, &principal.owner)),
            ),
            attr("tools", strings(&principal.tools)),
            attr("models", strings(&principal.models)),
            attr("data_classes", strings(&principal.data_classes)),
            attr("environments", strings(&principal.environments)),
        ],
        // The agent's only ancestor, which `principal in Project::"…"` tests
        // and the slicing in `index` relies on.
        [project],
        [],
    )
    .map_err(|e| format!("agent {}: {e}", principal.agent))?;

    let name = attr("name", string(&resource.id));
    let attrs = match resource.kind {
        ResourceKind::Model => vec![
            name,
            attr(
                "provider",
                string(resource.provider.as_deref().unwrap_or("")),
            ),
        ],
        ResourceKind::Tool => vec![name],
        ResourceKind::Dataset => vec![
            name,
            attr("data_classes", strings(&resource.data_classes)),
            attr(
                "environment",
                string(resource.environment.as_deref().unwrap_or("")),
            ),
        ],
    };
    let resource_entity = Entity::new_with_tags(
        uid(names.resource(resource.kind), &resource.id),
        attrs,
        [],
        [],
    )
    .map_err(|e| format!("{} {}: {e}", resource.kind, resource.id))?;

    Entities::from_entities([agent, resource_entity], None).map_err(|e| e.to_string())
}

/// The Cedar request: principal, action, resource and the context record.
pub(crate) fn request(names: &Names, req: &Request) -> Result<CedarRequest, String> {
    CedarRequest::new(
        uid(&names.agent, &req.principal.agent),
        names.action(req.action).clone(),
        uid(names.resource(req.resource.kind), &req.resource.id),
        context(names, req),
        None,
    )
    .map_err(|e| e.to_string())
}

/// The context record, built as Cedar values.
///
/// Cedar's public constructor, `Context::from_pairs`, takes expressions and
/// evaluates each one into the value it stands for; for these literals that
/// was a quarter of a whole decision. The values are built here directly,
/// through the conversion Cedar keeps for its own crates (hence the exact
/// version pin in the workspace). `context_as_cedar_would_build_it` checks
/// that the record is the one `from_pairs` makes.
fn context(names: &Names, req: &Request) -> CedarContext {
    let ctx = &req.context;
    let (hour, weekday) = hour_and_weekday(ctx.time);
    let text = |s: &str| Value::from(s);
    let entity = |ty: &EntityTypeName, id: &str| Value::from(EntityUID::from(uid(ty, id)));
    let mut attrs: BTreeMap<SmolStr, Value> = BTreeMap::new();
    let mut put = |name: &'static str, value: Value| {
        attrs.insert(SmolStr::new_static(name), value);
    };
    put("time", Value::from(ctx.time));
    put("hour", Value::from(hour));
    put("weekday", Value::from(weekday));
    put("human_assurance", text(&ctx.human_assurance));
    put(
        "estimated_cost_micro_usd",
        Value::from(ctx.estimated_cost_micro_usd),
    );
    put("estimated_tokens", Value::from(ctx.estimated_tokens));
    put(
        "data_classes",
        Value::set_of_lits(
            req.resource
                .data_classes
                .iter()
                .map(|c| Literal::from(c.as_str())),
            None,
        ),
    );
    put(
        "environment",
        text(req.resource.environment.as_deref().unwrap_or("")),
    );
    put("project", entity(&names.project, &req.principal.project));
    if let Some(human) = &ctx.human {
        put("human", entity(&names.human, human));
    }
    if let Some(task) = &ctx.task {
        put("task", text(task));
    }
    CedarContext::from(CoreContext::Value(Arc::new(attrs)))
}

/// Recently built [`entities`], by the agent and resource they were built from.
///
/// Building them is most of the cost of a decision that evaluates few
/// policies, and an agent calls the same few models and tools over and over,
/// with the same scope. What is cached is a pure function of the key, so a
/// hit changes nothing but time. Sharded so that concurrent decisions rarely
/// wait on one another, and bounded: a full shard is emptied, not evicted
/// from one by one, which is crude but cannot grow and costs nothing to track.
pub(crate) struct EntityCache {
    hasher: RandomState,
    shards: [Mutex<Shard>; SHARDS],
}

#[derive(Default)]
struct Shard {
    /// By hash; the entries of one hash are told apart by comparing keys.
    entries: HashMap<u64, Vec<Cached>>,
    len: usize,
}

struct Cached {
    principal: Principal,
    resource: Resource,
    entities: Arc<Entities>,
}

const SHARDS: usize = 8;
const PER_SHARD: usize = 256;
/// Versions kept of one agent's entities with one resource.
const PER_ID: usize = 4;

impl EntityCache {
    pub fn new() -> EntityCache {
        EntityCache {
            hasher: RandomState::new(),
            shards: std::array::from_fn(|_| Mutex::default()),
        }
    }

    pub fn get(
        &self,
        names: &Names,
        principal: &Principal,
        resource: &Resource,
    ) -> Result<Arc<Entities>, String> {
        // Only the ids are hashed: hashing every scope set would cost more
        // than the comparison that tells the rare same-id entries apart.
        let hash = self.hasher.hash_one((
            &principal.agent,
            &principal.project,
            resource.kind,
            &resource.id,
        ));
        let same = |c: &Cached| c.principal == *principal && same_entity(&c.resource, resource);
        let shard = &self.shards[hash as usize % SHARDS];
        {
            // A panic elsewhere while holding the lock cannot leave a shard
            // inconsistent (entries are pushed whole), so a poisoned lock is
            // still good to read.
            let shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
            let hit = shard
                .entries
                .get(&hash)
                .and_then(|entries| entries.iter().find(|c| same(c)));
            if let Some(hit) = hit {
                return Ok(Arc::clone(&hit.entities));
            }
        }
        // Built outside the lock; two decisions missing on the same key at
        // once both build it, and the second copy is simply not kept.
        let built = Arc::new(entities(names, principal, resource)?);
        let mut shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
        if shard.len >= PER_SHARD {
            *shard = Shard::default();
        }
        let shard = &mut *shard;
        let entries = shard.entries.entry(hash).or_default();
        if !entries.iter().any(same) {
            // A dataset read with ever-different data classes would
            // otherwise make one long list to search on every call.
            if entries.len() >= PER_ID {
                entries.remove(0);
            } else {
                shard.len += 1;
            }
            entries.push(Cached {
                principal: principal.clone(),
                resource: resource.clone(),
                entities: Arc::clone(&built),
            });
        }
        Ok(built)
    }
}

/// Whether two resources make the same entity: the data classes and
/// environment of a model or tool call go to the context, not to the
/// entity, and would only split the cache.
fn same_entity(a: &Resource, b: &Resource) -> bool {
    a.kind == b.kind
        && a.id == b.id
        && match a.kind {
            ResourceKind::Model => a.provider == b.provider,
            ResourceKind::Tool => true,
            ResourceKind::Dataset => {
                a.environment == b.environment && a.data_classes == b.data_classes
            }
        }
}

fn uid(ty: &EntityTypeName, id: &str) -> EntityUid {
    EntityUid::from_type_name_and_id(ty.clone(), EntityId::new(id))
}

fn attr(name: &str, value: RestrictedExpression) -> (String, RestrictedExpression) {
    (name.to_owned(), value)
}

fn string(s: &str) -> RestrictedExpression {
    RestrictedExpression::new_string(s.to_owned())
}

fn strings(set: &BTreeSet<String>) -> RestrictedExpression {
    RestrictedExpression::new_set(set.iter().map(|s| string(s)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::{Action, ActionExt, Context};
    use crate::schema::docket;

    fn sample(kind: ResourceKind, action: Action, human: Option<&str>) -> Request {
        Request {
            principal: Principal {
                agent: "support-bot".into(),
                project: "help".into(),
                owner: "alice".into(),
                tools: ["search".to_owned()].into(),
                models: ["gpt-4o".to_owned()].into(),
                data_classes: ["pii".to_owned()].into(),
                environments: ["prod".to_owned()].into(),
            },
            action,
            resource: Resource {
                kind,
                id: "thing".into(),
                provider: Some("openai".into()),
                data_classes: ["pii".to_owned()].into(),
                environment: Some("prod".into()),
            },
            context: Context {
                time: 1_700_000_000,
                human: human.map(str::to_owned),
                human_assurance: "session".into(),
                estimated_cost_micro_usd: 5,
                estimated_tokens: 7,
                task: Some("triage".into()),
            },
        }
    }

    /// The shapes built here are exactly what the schema promises policy
    /// authors: Cedar's own entity and request validation accepts them.
    #[test]
    fn translated_requests_conform_to_the_schema() {
        let Ok(docket) = docket() else {
            panic!("schema");
        };
        let schema = docket.validator.schema();
        for action in Action::ALL {
            for human in [None, Some("alice"), Some("bob")] {
                let req = sample(action.resource_kind(), action, human);
                let built = match entities(&docket.names, &req.principal, &req.resource) {
                    Ok(e) => e,
                    Err(e) => panic!("{action}: {e}"),
                };
                let built: Vec<Entity> = built.iter().cloned().collect();
                if let Err(e) = Entities::from_entities(built, Some(schema)) {
                    panic!("{action} {human:?}: entities do not conform: {e}");
                }
                let cedar = match request(&docket.names, &req) {
                    Ok(r) => r,
                    Err(e) => panic!("{action}: {e}"),
                };
                let (Some(p), Some(a), Some(r), Some(c)) = (
                    cedar.principal(),
                    cedar.action(),
                    cedar.resource(),
                    cedar.context(),
                ) else {
                    panic!("request parts");
                };
                if let Err(e) =
                    CedarRequest::new(p.clone(), a.clone(), r.clone(), c.clone(), Some(schema))
                {
                    panic!("{action} {human:?}: request does not conform: {e}");
                }
            }
        }
    }

    /// The record built from values is the one Cedar builds from the same
    /// attributes as expressions, for every shape a request takes.
    #[test]
    fn context_as_cedar_would_build_it() {
        let Ok(docket) = docket() else {
            panic!("schema");
        };
        let (_, mut requests) = crate::bench::synthetic(100);
        for action in Action::ALL {
            for human in [None, Some("alice")] {
                let mut req = sample(action.resource_kind(), action, human);
                requests.push(req.clone());
                req.context.task = None;
                req.resource.data_classes.clear();
                req.resource.environment = None;
                requests.push(req);
            }
        }
        for req in &requests {
            let ctx = &req.context;
            let (hour, weekday) = hour_and_weekday(ctx.time);
            let long = RestrictedExpression::new_long;
            let entity =
                |ty: &EntityTypeName, id: &str| RestrictedExpression::new_entity_uid(uid(ty, id));
            let mut pairs = vec![
                attr("time", long(ctx.time)),
                attr("hour", long(hour)),
                attr("weekday", long(weekday)),
                attr("human_assurance", string(&ctx.human_assurance)),
                attr(
                    "estimated_cost_micro_usd",
                    long(ctx.estimated_cost_micro_usd),
                ),
                attr("estimated_tokens", long(ctx.estimated_tokens)),
                attr("data_classes", strings(&req.resource.data_classes)),
                attr(
                    "environment",
                    string(req.resource.environment.as_deref().unwrap_or("")),
                ),
                attr(
                    "project",
                    entity(&docket.names.project, &req.principal.project),
                ),
            ];
            if let Some(h) = &ctx.human {
                pairs.push(attr("human", entity(&docket.names.human, h)));
            }
            if let Some(t) = &ctx.task {
                pairs.push(attr("task", string(t)));
            }
            let Ok(expected) = CedarContext::from_pairs(pairs) else {
                panic!("from_pairs");
            };
            assert_eq!(context(&docket.names, req), expected, "{req:?}");
        }
    }

    #[test]
    fn the_cache_returns_what_it_was_given_and_stays_bounded() {
        let Ok(docket) = docket() else {
            panic!("schema");
        };
        let cache = EntityCache::new();
        let req = sample(ResourceKind::Model, Action::CallModel, None);
        let Ok(first) = cache.get(&docket.names, &req.principal, &req.resource) else {
            panic!("build");
        };
        let Ok(again) = cache.get(&docket.names, &req.principal, &req.resource) else {
            panic!("build");
        };
        assert!(Arc::ptr_eq(&first, &again));

        let mut other = req.clone();
        other.principal.models.insert("o3".into());
        let Ok(changed) = cache.get(&docket.names, &other.principal, &other.resource) else {
            panic!("build");
        };
        assert!(!Arc::ptr_eq(&first, &changed));
        assert!(!changed.deep_eq(&first));

        // A model call's data classes are context, not entity: same entities.
        let mut classes = req.clone();
        classes.resource.data_classes.insert("hr".into());
        let Ok(same) = cache.get(&docket.names, &classes.principal, &classes.resource) else {
            panic!("build");
        };
        assert!(Arc::ptr_eq(&first, &same));

        // Ever-new versions of one agent and resource keep a short list.
        for i in 0..50 {
            other.principal.owner = format!("owner-{i}");
            assert!(
                cache
                    .get(&docket.names, &other.principal, &other.resource)
                    .is_ok()
            );
        }
        let longest = cache
            .shards
            .iter()
            .flat_map(|s| {
                let shard = s.lock().unwrap_or_else(PoisonError::into_inner);
                shard.entries.values().map(Vec::len).collect::<Vec<_>>()
            })
            .max();
        assert_eq!(longest, Some(PER_ID));

        for i in 0..(SHARDS * PER_SHARD * 3) {
            other.principal.agent = format!("agent-{i}");
            assert!(
                cache
                    .get(&docket.names, &other.principal, &other.resource)
                    .is_ok()
            );
        }
        let total: usize = cache
            .shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).len)
            .sum();
        assert!(total <= SHARDS * PER_SHARD, "{total}");
    }
}
