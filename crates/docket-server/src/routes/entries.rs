//! Appending entries (one or a batch), reading one, and querying them.

use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use docket_core::bodies::{self, Source};
use docket_core::identity::{Actor, HumanAssurance, ScopeField};
use docket_core::merkle::Hash;
use docket_core::writers::{self, Reporters};
use docket_core::{EntryType, IndexFields};
use docket_store::{NewEntry, Order, Query, TimeWindow};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

use super::{blocking, parse_u64, raw_entry};
use crate::AppState;
use crate::error::{ApiError, ApiJson, ApiPath, ApiQuery};
use crate::identity::Caller;

/// Which entries a caller may read.
pub enum ReadScope {
    All,
    /// An agent reads the entries it is named in.
    Agent(String),
    /// A developer reads the entries of their projects.
    Projects(Vec<String>),
}

impl ReadScope {
    pub fn of(state: &AppState, caller: &Caller) -> ReadScope {
        match caller {
            Caller::Agent { agent, .. } => ReadScope::Agent(agent.to_string()),
            Caller::Human { user, .. } => {
                let r = state.identity.read();
                if r.sees_all_projects(user) {
                    ReadScope::All
                } else {
                    ReadScope::Projects(
                        r.projects
                            .keys()
                            .filter(|p| r.sees_project(user, p))
                            .map(|p| p.to_string())
                            .collect(),
                    )
                }
            }
            Caller::Bootstrap | Caller::Login { .. } => ReadScope::Projects(Vec::new()),
        }
    }

    /// Whether the entry with these attributes is visible.
    pub fn sees(&self, index: &IndexFields) -> bool {
        match self {
            ReadScope::All => true,
            ReadScope::Agent(a) => index.agent.as_deref() == Some(a.as_str()),
            ReadScope::Projects(ps) => index
                .project
                .as_ref()
                .is_some_and(|p| ps.iter().any(|x| x == p)),
        }
    }

    /// Narrows a query to what the caller may see, or says why it cannot run.
    fn narrow(&self, q: &mut Query) -> Result<(), ApiError> {
        let forbidden = |m: String| ApiError::new(StatusCode::FORBIDDEN, "forbidden", m);
        match self {
            ReadScope::All => Ok(()),
            ReadScope::Agent(a) => {
                if q.agent.as_ref().is_some_and(|x| x != a) {
                    return Err(forbidden(format!("agent {a} reads only its own entries")));
                }
                q.agent = Some(a.clone());
                Ok(())
            }
            ReadScope::Projects(ps) => match &q.project {
                Some(p) if ps.contains(p) => Ok(()),
                _ => Err(forbidden(format!(
                    "developers read the entries of their projects: add project=<one of: {}>",
                    ps.join(", ")
                ))),
            },
        }
    }
}

/// Reads an entry the caller may see; others' entries are "not found".
pub fn visible_entry(
    state: &AppState,
    scope: &ReadScope,
    seq: u64,
) -> Result<docket_core::Entry, ApiError> {
    let entry = state.ledger.entry(seq)?;
    let index = IndexFields::from_body(&entry.body_value()).unwrap_or_default();
    if !scope.sees(&index) {
        return Err(ApiError::not_found(format!("no entry at seq {seq}")));
    }
    Ok(entry)
}

/// A developer's entry may name only their projects, and agents of them.
fn check_projects(state: &AppState, ps: &[String], index: &IndexFields) -> Result<(), String> {
    if let Some(p) = &index.project
        && !ps.contains(p)
    {
        return Err(format!("project {p:?} is not one of yours"));
    }
    if let Some(a) = &index.agent {
        let r = state.identity.read();
        let project = r
            .agents
            .get(a.as_str())
            .map(|agent| agent.record.project.to_string());
        if !project.is_some_and(|p| ps.contains(&p)) {
            return Err(format!("agent {a:?} is not an agent of your projects"));
        }
    }
    Ok(())
}

/// Refuses an agent's entry that names a tool, model or data class its
/// credential does not allow.
fn check_scope(state: &AppState, caller: &Caller, index: &IndexFields) -> Result<(), String> {
    let Caller::Agent {
        agent,
        actor: Actor::Agent { credential, .. },
        ..
    } = caller
    else {
        return Ok(());
    };
    let named = [
        (ScopeField::Tools, index.tool.as_slice()),
        (ScopeField::Models, index.model.as_slice()),
        (ScopeField::DataClasses, index.data_classes.as_slice()),
    ];
    if named.iter().all(|(_, names)| names.is_empty()) {
        return Ok(());
    }
    let r = state.identity.read();
    let a = r.agent(agent).map_err(|e| e.to_string())?;
    let c = r.credential(credential).map_err(|e| e.to_string())?;
    for (field, names) in named {
        if let Some(name) = names.iter().find(|n| !r.allows(a, c, field, n)) {
            let what = field.as_str();
            return Err(format!(
                "this credential does not allow {what} {name:?}; it allows {what}s of its scope only"
            ));
        }
    }
    Ok(())
}

/// Puts the caller into an appended body: `actor` and `source` (the
/// caller's own word), and for agents the `agent`, `project`, `credential`
/// and `human` members, which must agree with the credential if the body
/// names them; for people `human` when absent.
fn attribute(caller: &Caller, body: &mut Value) -> Result<(), String> {
    let Value::Object(map) = body else {
        return Err("must be a JSON object".into());
    };
    for member in ["actor", "source"] {
        if map.contains_key(member) {
            return Err(format!(
                "{member} is set by Docket from the request's credentials; leave it out"
            ));
        }
    }
    let mut actor = caller.actor();
    fn pin(
        map: &mut serde_json::Map<String, Value>,
        name: &str,
        value: &str,
    ) -> Result<(), String> {
        match map.get(name) {
            None | Some(Value::Null) => {
                map.insert(name.into(), Value::String(value.to_owned()));
                Ok(())
            }
            Some(Value::String(s)) if s == value => Ok(()),
            Some(other) => Err(format!(
                "{name} is {other}, but the request's credentials say {value:?}"
            )),
        }
    }
    let source = match (&mut actor, caller) {
        (
            Actor::Agent {
                human,
                human_assurance,
                credential,
                ..
            },
            Caller::Agent { agent, project, .. },
        ) => {
            pin(map, "agent", agent.as_str())?;
            pin(map, "project", project.as_str())?;
            pin(map, "credential", credential.as_str())?;
            if human.is_none()
                && let Some(Value::String(named)) = map.get("human")
            {
                // Named only in the body: the agent's word, recorded as such.
                *human = Some(named.parse().map_err(|e| format!("human: {e}"))?);
                *human_assurance = HumanAssurance::Asserted;
            }
            if let Some(h) = human.as_ref() {
                pin(map, "human", h.as_str())?;
            }
            Source::AgentReported
        }
        // A person may write about another person (a reviewer's note on
        // alice's session); `actor` still says who wrote it.
        (Actor::Human { user, .. }, _) => {
            map.entry("human")
                .or_insert_with(|| Value::String(user.to_string()));
            Source::HumanReported
        }
        _ => return Err("only agents and people report entries".into()),
    };
    map.insert("source".into(), Value::String(source.as_str().to_owned()));
    map.insert(
        "actor".into(),
        serde_json::to_value(&actor).map_err(|e| e.to_string())?,
    );
    Ok(())
}

/// Whether `caller` may append `kind` through `POST /entries`: only the
/// types the write table lets agents or people report, each by whom it
/// names. Everything else is Docket's to write, through the route the
/// refusal names.
fn check_reporter(caller: &Caller, kind: EntryType) -> Result<(), String> {
    let rule = writers::rule(kind);
    let may = match (rule.reporters, caller) {
        (Reporters::Nobody, _) => false,
        (_, Caller::Agent { .. }) => true,
        (Reporters::AgentsAndPeople, Caller::Human { .. }) => true,
        _ => false,
    };
    if may {
        return Ok(());
    }
    Err(match rule.reporters {
        Reporters::Agents => format!(
            "{kind} entries through this route are an agent's own account; people do not report them. It is written by {}",
            rule.written_by
        ),
        _ => format!(
            "{kind} entries are written only by {}, never through POST /entries",
            rule.written_by
        ),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AppendOne {
    #[serde(rename = "type")]
    kind: String,
    body: Value,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AppendBatch {
    entries: Vec<AppendOne>,
}

#[derive(Serialize)]
pub struct AppendedJson {
    pub seq: u64,
    pub ts: String,
    pub leaf_hash: String,
}

pub fn hex_hash(h: &Hash) -> String {
    hex::encode(h.0)
}

/// `POST /api/v1/entries`: `{"type", "body"}` or `{"entries": [{"type", "body"}, …]}`.
/// Answers 201 only once every entry is durable; a storage failure is a 503
/// and nothing of the request was recorded.
pub async fn append(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(request): ApiJson<Value>,
) -> Result<impl IntoResponse, ApiError> {
    let (items, batch) = match request.get("entries") {
        Some(_) => {
            let b: AppendBatch = serde_json::from_value(request)
                .map_err(|e| ApiError::bad_request("invalid_request", e.to_string()))?;
            (b.entries, true)
        }
        None => {
            let one: AppendOne = serde_json::from_value(request)
                .map_err(|e| ApiError::bad_request("invalid_request", e.to_string()))?;
            (vec![one], false)
        }
    };
    if items.is_empty() {
        return Err(ApiError::bad_request(
            "invalid_request",
            "entries must not be empty",
        ));
    }
    let max = state.config.max_batch_entries;
    if items.len() > max {
        return Err(ApiError::bad_request(
            "batch_too_large",
            format!("{} entries in one request; the limit is {max}", items.len()),
        ));
    }
    let at = |i: usize| {
        if batch {
            format!("entries[{i}].")
        } else {
            String::new()
        }
    };
    // People who read only their projects' entries write only those too.
    let projects = match &caller {
        Caller::Human { .. } => match ReadScope::of(&state, &caller) {
            ReadScope::Projects(ps) => Some(ps),
            _ => None,
        },
        _ => None,
    };
    let mut entries = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let kind: EntryType = item
            .kind
            .parse()
            .map_err(|e| ApiError::bad_request("unknown_type", format!("{}type: {e}", at(i))))?;
        check_reporter(&caller, kind).map_err(|e| {
            ApiError::new(
                StatusCode::FORBIDDEN,
                "reserved_type",
                format!("{}type: {e}", at(i)),
            )
        })?;
        let mut body = item.body;
        let invalid =
            |e: String| ApiError::bad_request("invalid_body", format!("{}body: {e}", at(i)));
        attribute(&caller, &mut body).map_err(invalid)?;
        let body = bodies::parse_reported(kind, &body).map_err(invalid)?;
        let entry = NewEntry::new(kind, &body).map_err(|e| invalid(e.to_string()))?;
        if let Some(ps) = &projects {
            check_projects(&state, ps, &entry.index).map_err(|e| {
                ApiError::new(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    format!("{}body: {e}", at(i)),
                )
            })?;
        }
        check_scope(&state, &caller, &entry.index).map_err(|e| {
            ApiError::new(
                StatusCode::FORBIDDEN,
                "out_of_scope",
                format!("{}body: {e}", at(i)),
            )
        })?;
        entries.push(entry);
    }
    let acks = state.ledger.append(entries).await?;
    let out: Vec<AppendedJson> = acks
        .iter()
        .map(|a| AppendedJson {
            seq: a.seq.0,
            ts: a.ts.to_string(),
            leaf_hash: hex_hash(&a.leaf_hash),
        })
        .collect();
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "entries": out })),
    ))
}

#[derive(Serialize)]
struct EntryJson {
    seq: u64,
    leaf_hash: String,
    entry: Box<RawValue>,
}

/// `GET /api/v1/entries/{seq}`.
pub async fn get(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(seq): ApiPath<String>,
) -> Result<impl IntoResponse, ApiError> {
    let seq = parse_u64("seq", &seq)?;
    let scope = ReadScope::of(&state, &caller);
    let entry = blocking(move || visible_entry(&state, &scope, seq)).await?;
    let bytes = entry.encode();
    Ok(Json(EntryJson {
        seq,
        leaf_hash: hex_hash(&docket_core::merkle::leaf_hash(&bytes)),
        entry: raw_entry(bytes)?,
    }))
}

/// Query-string filters of `GET /api/v1/entries`; all optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryParams {
    pub from: Option<String>,
    pub to: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub agent: Option<String>,
    pub human: Option<String>,
    pub project: Option<String>,
    pub tool: Option<String>,
    pub provider: Option<String>,
    pub model: Option<String>,
    pub outcome: Option<String>,
    pub data_class: Option<String>,
    pub days: Option<String>,
    pub hours: Option<String>,
    pub outside: Option<bool>,
    pub tz: Option<String>,
    pub order: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<u32>,
    pub count: Option<bool>,
}

impl QueryParams {
    pub fn to_query(&self) -> Result<Query, ApiError> {
        let bad = |code, msg: String| ApiError::bad_request(code, msg);
        let time = |field: &str, v: &Option<String>| -> Result<_, ApiError> {
            v.as_deref()
                .map(|s| {
                    docket_core::Timestamp::parse_rfc3339(s).map_err(|_| {
                        bad("invalid_query", format!("{field} must be an RFC 3339 time like 2026-01-31T00:00:00Z, got {s:?}"))
                    })
                })
                .transpose()
        };
        let types = match &self.kind {
            None => Vec::new(),
            Some(list) => list
                .split(',')
                .map(|t| t.trim().parse::<EntryType>())
                .collect::<Result<_, _>>()
                .map_err(|e| bad("unknown_type", format!("type: {e}")))?,
        };
        let order = match self.order.as_deref() {
            None | Some("desc") => Order::Desc,
            Some("asc") => Order::Asc,
            Some(o) => {
                return Err(bad(
                    "invalid_query",
                    format!("order must be asc or desc, got {o:?}"),
                ));
            }
        };
        let window = if self.days.is_some()
            || self.hours.is_some()
            || self.outside.is_some()
            || self.tz.is_some()
        {
            Some(
                TimeWindow::parse(
                    self.days.as_deref(),
                    self.hours.as_deref(),
                    self.outside.unwrap_or(false),
                    self.tz.as_deref(),
                )
                .map_err(|e| bad("invalid_query", e.to_string()))?,
            )
        } else {
            None
        };
        let mut q = Query {
            from: time("from", &self.from)?,
            to: time("to", &self.to)?,
            types,
            agent: self.agent.clone(),
            human: self.human.clone(),
            project: self.project.clone(),
            tool: self.tool.clone(),
            provider: self.provider.clone(),
            model: self.model.clone(),
            outcome: self.outcome.clone(),
            data_class: self.data_class.clone(),
            window,
            order,
            after: None,
            limit: self.limit.unwrap_or(0),
        };
        if self.limit == Some(0) {
            return Err(bad("invalid_query", "limit must be 1 to 1000".into()));
        }
        q.effective_limit()
            .map_err(|e| bad("invalid_query", e.to_string()))?;
        if let Some(c) = &self.cursor {
            q.set_cursor(c)
                .map_err(|e| bad("invalid_cursor", e.to_string()))?;
        }
        Ok(q)
    }
}

#[derive(Serialize)]
struct PageItem {
    seq: u64,
    entry: Box<RawValue>,
}

#[derive(Serialize)]
struct Page {
    entries: Vec<PageItem>,
    next_cursor: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    count: Option<u64>,
}

/// `GET /api/v1/entries?…`: newest first unless `order=asc`; `count=true`
/// adds the total number of matches.
pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(params): ApiQuery<QueryParams>,
) -> Result<impl IntoResponse, ApiError> {
    let mut q = params.to_query()?;
    ReadScope::of(&state, &caller).narrow(&mut q)?;
    let want_count = params.count.unwrap_or(false);
    let ledger = state.ledger.clone();
    let (rows, next, count) = blocking(move || {
        let (rows, next) = ledger.query(&q)?;
        let count = if want_count {
            Some(ledger.count(&q)?)
        } else {
            None
        };
        Ok((rows, next, count))
    })
    .await?;
    let entries = rows
        .into_iter()
        .map(|(seq, bytes)| {
            Ok(PageItem {
                seq,
                entry: raw_entry(bytes)?,
            })
        })
        .collect::<Result<_, ApiError>>()?;
    Ok(Json(Page {
        entries,
        next_cursor: next,
        count,
    }))
}
