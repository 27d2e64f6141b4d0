//! The one pass over a window's entries that both the export and the
//! verifier make: it folds the registry, counts what each test of
//! [`crate::controls::CRITERIA`] needs, and writes the record files. Its
//! outputs are a pure function of the entries it is fed, in order, so the
//! verifier's bytes equal the exporter's unless an entry or a derived file
//! was changed.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use docket_core::bodies::{self, DecisionBody, Outcome, ReceiptBody, Source, Stage};
use docket_core::identity::event::{ChangeRequest, ReviewEvent};
use docket_core::identity::registry::{AgentStatus, ChangeStatus, Credential};
use docket_core::identity::{
    Actor, AgentId, CredentialId, Event, HumanAssurance, KycStatus, Registry, UserId,
};
use docket_core::writers::{Standing, WriteCheck};
use docket_core::{Entry, EntryType, Timestamp};
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use crate::controls::{
    CONTROLS_FORMAT, CRITERIA, ControlsReport, CriterionResult, Item, MAX_LISTED, Status, TestId,
    TestResult, VendorLine, VendorRollup, WindowInfo,
};

/// The record files: the window's entries of one kind, summarized, each
/// line naming its `seq`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum RecordFile {
    Decisions,
    Approvals,
    Changes,
    Containment,
    Incidents,
}

impl RecordFile {
    pub const ALL: [RecordFile; 5] = [
        RecordFile::Decisions,
        RecordFile::Approvals,
        RecordFile::Changes,
        RecordFile::Containment,
        RecordFile::Incidents,
    ];

    pub fn path(self) -> &'static str {
        match self {
            RecordFile::Decisions => "records/decisions.jsonl",
            RecordFile::Approvals => "records/approvals.jsonl",
            RecordFile::Changes => "records/changes.jsonl",
            RecordFile::Containment => "records/containment.jsonl",
            RecordFile::Incidents => "records/incidents.jsonl",
        }
    }

    fn of(kind: EntryType) -> Option<RecordFile> {
        use EntryType as T;
        Some(match kind {
            T::Decision => RecordFile::Decisions,
            T::ApprovalRequested | T::ApprovalDecided | T::ApprovalUsed => RecordFile::Approvals,
            T::ChangeRequested
            | T::ChangeApproved
            | T::ChangeApplied
            | T::ChangeRejected
            | T::PolicyActivated
            | T::AgentUpdated
            | T::AgentRegistered
            | T::AgentRetired
            | T::ProjectCreated
            | T::ProjectUpdated
            | T::LimitsSet => RecordFile::Changes,
            T::KillSwitchEngaged | T::KillSwitchReleased | T::AgentSuspended | T::AgentResumed => {
                RecordFile::Containment
            }
            T::IncidentEvent | T::Anomaly => RecordFile::Incidents,
            _ => return None,
        })
    }
}

/// Where record lines go: files in a zip for the export, hashers for the
/// verifier.
pub trait RecordSink {
    fn line(&mut self, file: RecordFile, line: &[u8]) -> std::io::Result<()>;
}

/// Decision members carried into `records/decisions.jsonl` (the Cedar
/// inputs stay in the entry).
const DECISION_KEYS: &[&str] = &[
    "agent",
    "project",
    "human",
    "credential",
    "action",
    "model",
    "provider",
    "tool",
    "dataset",
    "data_classes",
    "outcome",
    "stage",
    "reason",
    "policy",
    "approval",
];

/// The members of a body that tie an entry to a project.
#[derive(Default)]
pub struct Refs<'a> {
    pub project: Option<Cow<'a, str>>,
    pub agent: Option<Cow<'a, str>>,
    pub credential: Option<Cow<'a, str>>,
    /// The body could not be read, or its `project` or `agent` is not a
    /// string: a scoped pack withholds such an entry (fail closed).
    pub unreadable: bool,
}

#[derive(serde::Deserialize)]
struct RefsView<'a> {
    #[serde(borrow, default)]
    project: Option<&'a RawValue>,
    #[serde(borrow, default)]
    agent: Option<&'a RawValue>,
    #[serde(borrow, default)]
    credential: Option<&'a RawValue>,
}

impl<'a> Refs<'a> {
    pub fn of_raw(body: &'a RawValue) -> Self {
        match serde_json::from_str::<RefsView<'a>>(body.get()) {
            Ok(v) => {
                let (project, agent, credential) =
                    (text(v.project), text(v.agent), text(v.credential));
                // `project` and `agent` are indexed attributes, strings in
                // every entry the log accepted; `credential` is an object
                // in `credential.issued`, so only a string counts.
                let unreadable = (v.project.is_some() && project.is_none())
                    || (v.agent.is_some() && agent.is_none());
                Self {
                    project,
                    agent,
                    credential,
                    unreadable,
                }
            }
            Err(_) => Self {
                unreadable: true,
                ..Self::default()
            },
        }
    }

    pub fn of_value(body: &'a Value) -> Self {
        let mut unreadable = !body.is_object();
        let mut s = |k: &str| match body.get(k) {
            None => None,
            Some(Value::String(v)) => Some(Cow::Borrowed(v.as_str())),
            Some(_) => {
                unreadable |= k != "credential";
                None
            }
        };
        let (project, agent, credential) = (s("project"), s("agent"), s("credential"));
        Self {
            project,
            agent,
            credential,
            unreadable,
        }
    }
}

/// Why an agent may not act.
#[derive(Copy, Clone)]
enum AgentProblem {
    Unnamed,
    Unregistered,
    Status(AgentStatus),
}

impl AgentProblem {
    fn note(self, agent: Option<&str>) -> String {
        let id = agent.unwrap_or("?");
        match self {
            AgentProblem::Unnamed => "names no agent".into(),
            AgentProblem::Unregistered => format!("agent {id} is not registered"),
            AgentProblem::Status(s) => format!("agent {id} is {}", s.as_str()),
        }
    }
}

/// Counts and lists for one test.
#[derive(Default)]
struct Tally {
    items: Vec<Item>,
    omitted: u64,
}

impl Tally {
    fn push(&mut self, seq: u64, note: impl Into<String>) {
        if self.items.len() < MAX_LISTED {
            self.items.push(Item {
                seq,
                note: note.into(),
            });
        } else {
            self.omitted += 1;
        }
    }

    /// [`Tally::push`], building the note only if it will be listed.
    fn push_with(&mut self, seq: u64, note: impl FnOnce() -> String) {
        if self.items.len() < MAX_LISTED {
            self.items.push(Item { seq, note: note() });
        } else {
            self.omitted += 1;
        }
    }

    fn count(&self) -> u64 {
        self.items.len() as u64 + self.omitted
    }
}

#[derive(Default)]
struct Vendor {
    calls: u64,
    errors: u64,
    cost: u64,
    input: u64,
    output: u64,
}

impl Vendor {
    fn add(&mut self, cost: u64, input: u64, output: u64, error: bool) {
        self.calls += 1;
        self.errors += u64::from(error);
        self.cost = self.cost.saturating_add(cost);
        self.input = self.input.saturating_add(input);
        self.output = self.output.saturating_add(output);
    }
}

/// Farthest a recorded request signature's `created` may be from its
/// entry's time (the server accepts signatures up to 300 s old).
pub const MAX_SIGNATURE_SKEW_SECS: u64 = 900;

/// How long before its receipt a call may have begun (long streams).
const CALL_GRACE_MICROS: i64 = 15 * 60 * 1_000_000;

/// Rotation period for long-lived credentials (CONTROLS.md CC6.3).
pub const ROTATION_DAYS: i64 = 90;

/// The state of one pass.
pub struct Fold {
    window: WindowInfo,
    to: Timestamp,
    registry: Registry,
    /// `seq` of each credential's issuing entry.
    credential_seq: HashMap<CredentialId, u64>,
    /// `seq` at which each agent was registered.
    agent_seq: HashMap<AgentId, u64>,
    by_type: BTreeMap<&'static str, u64>,
    withheld: u64,
    /// The write table and the links between entries (CC6.1).
    writes: WriteCheck,
    /// Disclosed entries of the window, all checked against the table.
    written: u64,
    writer_findings: Tally,
    /// Receipts of calls the gateway carried, and of those the ones whose
    /// decision precedes the window.
    observed_receipts: u64,
    unlinked: u64,
    /// Receipts naming a provider that are the agent's own word.
    reported_calls: u64,
    reported_cost: u64,
    // What the threshold tests looked at, so a test with nothing to look
    // at says so instead of passing.
    decisions: u64,
    allowed_decisions: u64,
    gateway_allowed: u64,
    registrations: u64,
    registration_approvals: u64,
    agent_credentials_issued: u64,
    change_requests: u64,
    change_approvals: u64,
    // CC6.1
    receipts: u64,
    unregistered: Tally,
    assurance: [u64; 3],
    inactive: Tally,
    classified: Tally,
    classified_humans: BTreeSet<String>,
    /// Agent request signatures (RFC 9421) recorded in actors.
    signatures_verified: u64,
    signatures_without_base: u64,
    signatures_failed: Tally,
    // CC6.2
    unapproved_registrations: Tally,
    self_approved_registrations: Tally,
    credentials_to_inactive: Tally,
    // CC6.3: completed reviews by quarter ("2026-Q4"), before and in the window.
    reviews_by_quarter: BTreeMap<String, u64>,
    // CC6.6
    out_of_scope: Tally,
    out_of_scope_allowed: u64,
    // CC7.1, CC8.1
    unrecorded_changes: Tally,
    unapproved_changes: Tally,
    self_approved_changes: Tally,
    without_tests: Tally,
    without_rollback: Tally,
    changes_applied: u64,
    // CC7.2, CC7.4
    anomalies: BTreeMap<(String, String), u64>,
    containment: Tally,
    // CC9.2, A1.2
    /// provider → model → totals.
    vendors: BTreeMap<String, BTreeMap<String, Vendor>>,
    /// provider → day (days since the epoch) → (calls, errors, timeouts).
    provider_days: BTreeMap<String, BTreeMap<i64, (u64, u64, u64)>>,
}

fn str_of<'a>(body: &'a Value, key: &str) -> Option<&'a str> {
    body.get(key).and_then(Value::as_str)
}

fn quarter(ts: Timestamp) -> String {
    let d = ts.to_datetime();
    format!("{}-Q{}", d.year(), (u8::from(d.month()) - 1) / 3 + 1)
}

fn ppm(part: u64, whole: u64) -> u64 {
    if whole == 0 {
        0
    } else {
        ((u128::from(part) * 1_000_000) / u128::from(whole)) as u64
    }
}

impl Fold {
    pub fn new(window: WindowInfo, to: Timestamp) -> Self {
        Self {
            window,
            to,
            registry: Registry::default(),
            credential_seq: HashMap::new(),
            agent_seq: HashMap::new(),
            by_type: BTreeMap::new(),
            withheld: 0,
            writes: WriteCheck::new(),
            written: 0,
            writer_findings: Tally::default(),
            observed_receipts: 0,
            unlinked: 0,
            reported_calls: 0,
            reported_cost: 0,
            decisions: 0,
            allowed_decisions: 0,
            gateway_allowed: 0,
            registrations: 0,
            registration_approvals: 0,
            agent_credentials_issued: 0,
            change_requests: 0,
            change_approvals: 0,
            receipts: 0,
            unregistered: Tally::default(),
            assurance: [0; 3],
            inactive: Tally::default(),
            classified: Tally::default(),
            classified_humans: BTreeSet::new(),
            signatures_verified: 0,
            signatures_without_base: 0,
            signatures_failed: Tally::default(),
            unapproved_registrations: Tally::default(),
            self_approved_registrations: Tally::default(),
            credentials_to_inactive: Tally::default(),
            reviews_by_quarter: BTreeMap::new(),
            out_of_scope: Tally::default(),
            out_of_scope_allowed: 0,
            unrecorded_changes: Tally::default(),
            unapproved_changes: Tally::default(),
            self_approved_changes: Tally::default(),
            without_tests: Tally::default(),
            without_rollback: Tally::default(),
            changes_applied: 0,
            anomalies: BTreeMap::new(),
            containment: Tally::default(),
            vendors: BTreeMap::new(),
            provider_days: BTreeMap::new(),
        }
    }

    /// Whether, in a pack scoped to `project`, an entry belongs to another
    /// project and so appears only as its leaf hash: it names another
    /// project, or an agent or credential that is not this project's (as
    /// far as the entries disclosed so far show), or it is an access
    /// review (those list every project's agents). Always false for a
    /// pack of all projects.
    pub fn elsewhere(&self, kind: EntryType, refs: &Refs<'_>, project: Option<&str>) -> bool {
        let Some(p) = project else {
            return false;
        };
        if refs.unreadable {
            return true;
        }
        if let Some(q) = &refs.project {
            return q != p;
        }
        if kind == EntryType::AccessReview {
            return true;
        }
        let ours = |agent: &str| {
            self.registry
                .agents
                .get(agent)
                .is_some_and(|a| a.record.project.as_str() == p)
        };
        if let Some(a) = &refs.agent {
            return !ours(a);
        }
        if let Some(c) = &refs.credential {
            return match self.registry.credentials.get(c.as_ref()) {
                Some(c) => match &c.record.agent {
                    Some(a) => !ours(a.as_str()),
                    None => false,
                },
                None => true,
            };
        }
        false
    }

    /// An identity entry from before the window: it shapes the registry
    /// the window starts with, and nothing else.
    pub fn context(&mut self, entry: &Entry, body: &Value) {
        if let Ok((event, actor)) = Event::from_body(entry.kind, body) {
            self.note_identity(entry.seq.0, entry.ts, &event);
            self.registry.apply(entry.seq.0, entry.ts, &actor, &event);
        }
    }

    /// An entry of another project, present only as its leaf hash.
    pub fn withheld(&mut self) {
        self.withheld += 1;
    }

    /// Bookkeeping that must see context entries too.
    fn note_identity(&mut self, seq: u64, ts: Timestamp, event: &Event) {
        match event {
            Event::CredentialIssued { credential, .. } => {
                self.credential_seq.insert(credential.id.clone(), seq);
            }
            Event::AgentRegistered { agent, .. } => {
                self.agent_seq.insert(agent.id.clone(), seq);
            }
            Event::AccessReview {
                event: ReviewEvent::Completed { .. },
                ..
            } => {
                *self.reviews_by_quarter.entry(quarter(ts)).or_default() += 1;
            }
            _ => {}
        }
    }

    /// One disclosed entry of the window, in `seq` order.
    pub fn entry(&mut self, e: &Line<'_>, sink: &mut dyn RecordSink) -> std::io::Result<()> {
        *self.by_type.entry(e.kind.as_str()).or_default() += 1;
        self.written += 1;
        let seq = e.seq;
        if e.kind == EntryType::Receipt {
            let read = bodies::parse::<ReceiptBody>(e.body.get())
                .map_err(|p| format!("receipt body does not read as one: {p}"))
                .and_then(|r| {
                    let standing = self.writes.check_receipt(seq, e.ts, &r)?;
                    Ok((r, standing))
                });
            match read {
                Ok((r, standing)) => self.receipt(seq, e.ts, &r, standing),
                Err(problem) => self.writer_findings.push(seq, problem),
            }
            return Ok(());
        }
        let standing = self
            .writes
            .check(seq, e.ts, e.kind, e.body.get(), &self.registry);
        let body = &e.value();
        if Event::is_identity_type(e.kind)
            && let Ok((event, actor)) = Event::from_body(e.kind, body)
        {
            // Folded whatever the check says, as the server folds it: the
            // registry is what the server acted on.
            if standing.is_ok() {
                self.identity(seq, e.ts, &actor, &event);
            }
            self.note_identity(seq, e.ts, &event);
            self.registry.apply(seq, e.ts, &actor, &event);
        }
        if let Err(problem) = standing {
            // Not counted, not carried into the records: listed.
            self.writer_findings.push(seq, problem);
            return Ok(());
        }
        if let Some(actor) = body.get("actor")
            && let Some(sig) = actor.get("signature")
        {
            let raw = sig.to_string();
            let s = |k: &str| actor.get(k).and_then(Value::as_str);
            self.signature(seq, e.ts, s("did"), s("agent"), &raw);
        }
        if let Some(file) = RecordFile::of(e.kind) {
            let line = record_line(e, body);
            sink.line(file, &line)?;
        }
        match e.kind {
            EntryType::Decision => {
                // The write check read it as one already.
                if let Ok(d) = bodies::parse::<DecisionBody>(e.body.get()) {
                    self.decision(seq, &d);
                }
            }
            EntryType::Anomaly => {
                let cat = str_of(body, "category").unwrap_or("uncategorized");
                let sev = str_of(body, "severity").unwrap_or("unknown");
                *self
                    .anomalies
                    .entry((cat.to_owned(), sev.to_owned()))
                    .or_default() += 1;
            }
            EntryType::KillSwitchEngaged
            | EntryType::KillSwitchReleased
            | EntryType::AgentSuspended
            | EntryType::AgentResumed => {
                let what = str_of(body, "agent")
                    .or(str_of(body, "project"))
                    .unwrap_or("global");
                self.containment
                    .push(seq, format!("{} {what}", e.kind.as_str()));
            }
            _ => {}
        }
        Ok(())
    }

    /// Verifies an agent's recorded request signature with its DID's key,
    /// and that the DID is the one the agent was registered with.
    fn signature(
        &mut self,
        seq: u64,
        ts: Timestamp,
        did: Option<&str>,
        agent: Option<&str>,
        recorded: &str,
    ) {
        let Ok(rec) = serde_json::from_str::<RecordedSignature>(recorded) else {
            self.signatures_failed
                .push(seq, "the recorded signature is not readable");
            return;
        };
        // The gateway accepts signatures at most minutes old; one made far
        // from the entry's time was not made for this request.
        let at = ts.as_micros().div_euclid(1_000_000);
        if rec
            .created
            .is_none_or(|c| c.abs_diff(at) > MAX_SIGNATURE_SKEW_SECS)
        {
            self.signatures_failed.push(
                seq,
                format!(
                    "signature created at {:?} (unix s), not within {MAX_SIGNATURE_SKEW_SECS} s of the entry",
                    rec.created
                ),
            );
            return;
        }
        let Some(base) = rec.base else {
            self.signatures_without_base += 1;
            return;
        };
        let key = did.and_then(|d| docket_core::identity::Did::try_from(d.to_owned()).ok());
        let Some(key) = key else {
            self.signatures_failed
                .push(seq, "signed, but the actor names no valid did:key");
            return;
        };
        if let Some(a) = agent
            && let Some(known) = self.registry.agents.get(a)
            && known.record.did != key
        {
            self.signatures_failed.push(
                seq,
                format!("agent {a} signed with {key}, not its registered DID"),
            );
            return;
        }
        let sig =
            base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &rec.signature)
                .ok()
                .and_then(|b| ed25519_dalek::Signature::from_slice(&b).ok());
        let ok = sig.is_some_and(|s| key.public_key().verify_strict(base.as_bytes(), &s).is_ok());
        if ok {
            self.signatures_verified += 1;
        } else {
            self.signatures_failed.push(
                seq,
                format!("the request signature does not verify with {key}"),
            );
        }
    }

    /// Entries whose recorded agent signature failed to verify.
    pub fn signature_failures(&self) -> (&[Item], u64) {
        (
            &self.signatures_failed.items,
            self.signatures_failed.omitted,
        )
    }

    /// Is `agent` registered and active now (in the fold's order)?
    /// `None` if so; else what is wrong, as a note built on demand.
    fn agent_problem(&self, agent: Option<&str>) -> Option<AgentProblem> {
        let Some(id) = agent else {
            return Some(AgentProblem::Unnamed);
        };
        match self.registry.agents.get(id) {
            None => Some(AgentProblem::Unregistered),
            Some(a) if a.status != AgentStatus::Active => Some(AgentProblem::Status(a.status)),
            Some(_) => None,
        }
    }

    fn receipt(&mut self, seq: u64, ts: Timestamp, r: &ReceiptBody, standing: Standing) {
        self.receipts += 1;
        self.observed_receipts += u64::from(standing.observed());
        let agent = r.agent.as_ref().map(AgentId::as_str);
        if let Some(p) = self.agent_problem(agent) {
            self.unregistered.push_with(seq, || p.note(agent));
            self.inactive.push_with(seq, || p.note(agent));
        } else {
            match r.credential() {
                None => self.unregistered.push(seq, "names no credential"),
                Some(c) => {
                    let cred = self.registry.credentials.get(c);
                    // A receipt is written when the call ends: the
                    // credential must have been live when it began, some
                    // minutes earlier.
                    let began = Timestamp::from_micros(ts.as_micros() - CALL_GRACE_MICROS);
                    let problem = match cred {
                        None => Some(format!("credential {c} was never issued")),
                        Some(k) if k.record.agent.as_ref().map(AgentId::as_str) != agent => {
                            Some(format!("credential {c} is not this agent's"))
                        }
                        Some(k) => self
                            .registry
                            .credential_dead_at(k, began)
                            .map(|why| format!("credential {c} was not live: {why}")),
                    };
                    if let Some(p) = problem {
                        self.unregistered.push(seq, p);
                    }
                }
            }
        }
        let (assurance, human_of_actor) = match &r.actor {
            Actor::Agent {
                agent,
                did,
                signature,
                human_assurance,
                human,
                ..
            } => {
                if let Some(sig) = signature {
                    let raw = sig.to_string();
                    self.signature(seq, ts, Some(did.as_str()), Some(agent.as_str()), &raw);
                }
                (Some(*human_assurance), human.as_ref())
            }
            _ => (None, None),
        };
        let slot = match assurance {
            Some(HumanAssurance::Session) => 0,
            Some(HumanAssurance::Asserted) => 1,
            _ => 2,
        };
        self.assurance[slot] += 1;
        let human = r.human.as_ref().or(human_of_actor);
        if !r.data_classes.is_empty() {
            self.classified.push(
                seq,
                format!(
                    "{} for {}",
                    r.data_classes.join(","),
                    human.map_or("no named human", UserId::as_str)
                ),
            );
            if let Some(h) = human {
                self.classified_humans.insert(h.to_string());
            }
        }
        // Tool calls recorded without a provider are not AI-vendor traffic.
        let Some(provider) = r.provider.as_deref() else {
            return;
        };
        let cost = r.cost_micro_usd.unwrap_or(0);
        if !standing.observed() {
            // The agent's word: shown apart, never in the shares.
            self.reported_calls += 1;
            self.reported_cost = self.reported_cost.saturating_add(cost);
            return;
        }
        if standing == Standing::ObservedUnlinked {
            self.unlinked += 1;
        }
        let model = r
            .model
            .as_deref()
            .or(r.tool.as_deref())
            .unwrap_or("unknown");
        let error = r.outcome.as_deref().is_some_and(|o| o != "ok");
        let timeout = r.error.as_deref().is_some_and(|e| {
            let e = e.to_ascii_lowercase();
            e.contains("timed out") || e.contains("timeout")
        });
        let models = match self.vendors.get_mut(provider) {
            Some(m) => m,
            None => self.vendors.entry(provider.to_owned()).or_default(),
        };
        let v = match models.get_mut(model) {
            Some(v) => v,
            None => models.entry(model.to_owned()).or_default(),
        };
        v.add(
            cost,
            r.input_tokens.unwrap_or(0),
            r.output_tokens.unwrap_or(0),
            error,
        );
        let day = ts.as_micros().div_euclid(86_400_000_000);
        let days = match self.provider_days.get_mut(provider) {
            Some(d) => d,
            None => self.provider_days.entry(provider.to_owned()).or_default(),
        };
        let d = days.entry(day).or_default();
        d.0 += 1;
        d.1 += u64::from(error);
        d.2 += u64::from(timeout);
    }

    fn decision(&mut self, seq: u64, d: &DecisionBody) {
        let (agent, outcome) = (d.agent.as_str(), d.outcome);
        self.decisions += 1;
        if outcome == Outcome::Allow {
            self.allowed_decisions += 1;
            self.gateway_allowed += u64::from(d.source == Source::Gateway);
            if let Some(p) = self.agent_problem(Some(agent)) {
                self.inactive
                    .push_with(seq, || format!("allowed: {}", p.note(Some(agent))));
            }
        }
        if d.stage == Stage::Scope {
            let r = &d.resource;
            let what = r
                .model
                .as_deref()
                .or(r.tool.as_deref())
                .or(r.dataset.as_deref())
                .unwrap_or("?");
            self.out_of_scope
                .push(seq, format!("{agent} -> {what}: {outcome}"));
            if outcome == Outcome::Allow {
                self.out_of_scope_allowed += 1;
            }
        }
    }

    /// Tests on identity events of the window, against the registry as it
    /// stood just before the event.
    fn identity(&mut self, seq: u64, _ts: Timestamp, actor: &Actor, event: &Event) {
        let provisioning = |r: &ChangeRequest| {
            matches!(
                r,
                ChangeRequest::AgentRegister { .. } | ChangeRequest::AgentRetire { .. }
            )
        };
        match event {
            Event::ChangeRequested { request, .. } if !provisioning(request) => {
                self.change_requests += 1
            }
            Event::ChangeApproved { request, .. } => {
                self.change_approvals += 1;
                if self
                    .registry
                    .changes
                    .get(request)
                    .is_some_and(|c| matches!(c.request, ChangeRequest::AgentRegister { .. }))
                {
                    self.registration_approvals += 1;
                }
            }
            Event::AgentRegistered { .. } => self.registrations += 1,
            Event::CredentialIssued { credential, .. } if credential.agent.is_some() => {
                self.agent_credentials_issued += 1
            }
            _ => {}
        }
        match event {
            // Registrations and retirements are provisioning (CC6.2), not
            // configuration changes: they carry no rollback plan.
            Event::ChangeRequested { info, request, .. }
                if info.rollback_plan.as_deref().is_none_or(str::is_empty)
                    && !matches!(
                        request,
                        ChangeRequest::AgentRegister { .. } | ChangeRequest::AgentRetire { .. }
                    ) =>
            {
                self.without_rollback.push(
                    seq,
                    format!("{} requested without a rollback plan", request.name()),
                );
            }
            Event::ChangeApproved { request, .. } => {
                let requester = self
                    .registry
                    .changes
                    .get(request)
                    .and_then(|c| c.requested_by.clone());
                if let (Some(by), Some(req)) = (actor.user(), requester)
                    && *by == req
                {
                    let is_registration =
                        self.registry.changes.get(request).is_some_and(|c| {
                            matches!(c.request, ChangeRequest::AgentRegister { .. })
                        });
                    let note = format!("change {request} approved by its requester {by}");
                    if is_registration {
                        self.self_approved_registrations.push(seq, note.clone());
                    }
                    self.self_approved_changes.push(seq, note);
                }
            }
            Event::AgentRegistered { request, agent } => {
                if !self.approved(*request) {
                    self.unapproved_registrations.push(
                        seq,
                        format!("agent {} registered without an approved request", agent.id),
                    );
                }
                self.applied(seq, *request, false);
            }
            Event::AgentUpdated { request, .. } | Event::AgentRetired { request, .. } => {
                self.applied(seq, *request, false);
            }
            Event::PolicyActivated { request, tests, .. } => {
                self.applied(seq, *request, tests.is_none());
            }
            // A change of access rules (tool permissions) carries no
            // request id: find the approved request that asked for exactly
            // these rules.
            Event::ProjectUpdated { project } => {
                let before = self.registry.projects.get(&project.id).map(|p| &p.rules);
                if before.is_some_and(|r| *r != project.rules) {
                    let request = self
                        .registry
                        .changes
                        .values()
                        .rev()
                        .find(|c| {
                            c.project.as_ref() == Some(&project.id)
                                && matches!(&c.request, ChangeRequest::ProjectRules { rules } if *rules == project.rules)
                                && matches!(c.status, ChangeStatus::Approved { .. })
                        })
                        .map(|c| c.seq);
                    match request {
                        Some(r) => self.applied(seq, r, false),
                        None => {
                            self.changes_applied += 1;
                            self.unrecorded_changes.push(
                                seq,
                                format!("project {}'s access rules changed without an approved change request", project.id),
                            );
                        }
                    }
                }
            }
            Event::CredentialIssued { credential, .. } => {
                if let Some(agent) = &credential.agent {
                    match self.registry.agents.get(agent) {
                        Some(a) if a.status == AgentStatus::Active => {}
                        Some(a) => self.credentials_to_inactive.push(
                            seq,
                            format!(
                                "credential {} to {} agent {agent}",
                                credential.id,
                                a.status.as_str()
                            ),
                        ),
                        None => self.credentials_to_inactive.push(
                            seq,
                            format!("credential {} to unregistered agent {agent}", credential.id),
                        ),
                    }
                }
            }
            _ => {}
        }
    }

    fn approved(&self, request: u64) -> bool {
        self.registry
            .changes
            .get(&request)
            .is_some_and(|c| matches!(c.status, ChangeStatus::Approved { .. }))
    }

    /// A change took effect: it needs a request, an approval and, for
    /// policy versions, the test report.
    fn applied(&mut self, seq: u64, request: u64, no_tests: bool) {
        self.changes_applied += 1;
        let Some(change) = self.registry.changes.get(&request) else {
            self.unrecorded_changes.push(
                seq,
                format!("applied without a change request (names {request})"),
            );
            return;
        };
        if !matches!(change.status, ChangeStatus::Approved { .. }) {
            self.unapproved_changes
                .push(seq, format!("change {request} applied without approval"));
        }
        let evidence_missing = match &change.request {
            ChangeRequest::PolicyVersion { .. } => no_tests,
            ChangeRequest::PolicyRollback { .. } => no_tests,
            _ => change.info.evidence.as_ref().is_none_or(Value::is_null),
        };
        if evidence_missing
            && !matches!(
                change.request,
                ChangeRequest::AgentRegister { .. } | ChangeRequest::AgentRetire { .. }
            )
        {
            self.without_tests.push(
                seq,
                format!(
                    "change {request} ({}) applied without test evidence",
                    change.request.name()
                ),
            );
        }
    }

    /// The derived files' contents, computed from what was fed.
    pub fn finish(mut self) -> Derived {
        let vendors = self.vendor_rollup();
        let registry = self.registry_snapshot();
        let mut writes = std::mem::take(&mut self.writes);
        let unrecorded = writes.unrecorded(self.to);
        let controls = self.controls(&vendors, unrecorded);
        Derived {
            controls,
            vendors,
            registry,
        }
    }

    fn vendor_rollup(&self) -> VendorRollup {
        let all = || self.vendors.values().flat_map(|m| m.values());
        let calls: u64 = all().map(|v| v.calls).sum();
        let cost: u64 = all().fold(0u64, |t, v| t.saturating_add(v.cost));
        let line = |provider: &str, model: Option<&str>, v: &Vendor| VendorLine {
            provider: provider.to_owned(),
            model: model.map(str::to_owned),
            calls: v.calls,
            errors: v.errors,
            cost_micro_usd: v.cost,
            input_tokens: v.input,
            output_tokens: v.output,
            calls_ppm: ppm(v.calls, calls),
            cost_ppm: ppm(v.cost, cost),
        };
        let mut providers: Vec<(&str, Vendor, &BTreeMap<String, Vendor>)> = self
            .vendors
            .iter()
            .map(|(p, models)| {
                let mut t = Vendor::default();
                for v in models.values() {
                    t.calls += v.calls;
                    t.errors += v.errors;
                    t.cost = t.cost.saturating_add(v.cost);
                    t.input = t.input.saturating_add(v.input);
                    t.output = t.output.saturating_add(v.output);
                }
                (p.as_str(), t, models)
            })
            .collect();
        providers.sort_by(|a, b| b.1.calls.cmp(&a.1.calls).then(a.0.cmp(b.0)));
        let mut lines = Vec::new();
        for (p, total, models) in providers {
            lines.push(line(p, None, &total));
            let mut models: Vec<(&String, &Vendor)> = models.iter().collect();
            models.sort_by(|a, b| b.1.calls.cmp(&a.1.calls).then(a.0.cmp(b.0)));
            for (m, v) in models {
                lines.push(line(p, Some(m), v));
            }
        }
        VendorRollup {
            calls,
            cost_micro_usd: cost,
            lines,
            agent_reported_calls: self.reported_calls,
            agent_reported_cost_micro_usd: self.reported_cost,
        }
    }

    fn registry_snapshot(&self) -> Value {
        let r = &self.registry;
        let users: Vec<Value> = r
            .users
            .values()
            .map(|u| {
                json!({
                    "id": u.record.id,
                    "name": u.record.name,
                    "roles": u.record.roles,
                    "disabled": u.record.disabled,
                    "kyc": u.record.kyc,
                    "created_at": u.created_at,
                })
            })
            .collect();
        let agents: Vec<Value> = r
            .agents
            .values()
            .map(|a| {
                let kyc = r
                    .users
                    .get(&a.record.owner)
                    .map(|u| u.record.kyc.status)
                    .unwrap_or_default();
                let mut v = json!({
                    "id": a.record.id,
                    "name": a.record.name,
                    "did": a.record.did,
                    "owner": a.record.owner,
                    "owner_kyc": kyc,
                    "project": a.record.project,
                    "purpose": a.record.purpose,
                    "scope": a.record.scope,
                    "system_prompt_sha256": a.record.system_prompt_sha256,
                    "status": a.status.as_str(),
                    "registered_at": a.registered_at,
                    "registered_seq": self.agent_seq.get(&a.record.id),
                    "request": a.request,
                });
                if a.record.require_signature {
                    v["require_signature"] = json!(true);
                }
                v
            })
            .collect();
        let mut credentials: Vec<(&CredentialId, Value)> = r
            .credentials
            .iter()
            .map(|(id, c)| {
                let rec = &c.record;
                (
                    id,
                    json!({
                        "id": rec.id,
                        "kind": rec.kind,
                        "prefix": rec.prefix,
                        "agent": rec.agent,
                        "user": rec.user,
                        "scope": rec.scope,
                        "task": rec.task,
                        "human": rec.human,
                        "parent": rec.parent,
                        "expires_at": rec.expires_at,
                        "issued_at": c.issued_at,
                        "issued_seq": self.credential_seq.get(id),
                        "revoked_at": c.revoked.as_ref().map(|(t, _)| *t),
                        "revoked_reason": c.revoked.as_ref().map(|(_, why)| why),
                        "dead_at_window_end": r.credential_dead_at(c, self.to),
                    }),
                )
            })
            .collect();
        credentials.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
        let reviews: Vec<Value> = r
            .reviews
            .values()
            .map(|v| {
                let mut review = json!({
                    "seq": v.seq,
                    "opened_at": v.opened_at,
                    "opened_by": v.opened_by,
                    "agents": v.items.len(),
                    "decisions": v.decision_views(),
                    "completed_at": v.completed_at,
                });
                // Only when listed, so packs from before humans were
                // reviewed re-derive to the same bytes.
                if !v.humans.is_empty() {
                    review["humans"] = json!(v.humans.len());
                }
                review
            })
            .collect();
        let projects: Vec<Value> = r
            .projects
            .values()
            .map(|p| json!({"id": p.id, "name": p.name, "members": p.members, "rules": p.rules}))
            .collect();
        json!({
            "users": users,
            "projects": projects,
            "agents": agents,
            "credentials": credentials.into_iter().map(|(_, v)| v).collect::<Vec<_>>(),
            "access_reviews": reviews,
            "active_policy": r.active_policy.as_ref().map(|p| json!({"version": p.version, "sha256": p.sha256, "since_seq": p.seq})),
        })
    }

    fn controls(
        &self,
        vendors: &VendorRollup,
        unrecorded: (&[(u64, String)], u64),
    ) -> ControlsReport {
        let mut criteria = Vec::new();
        for def in CRITERIA {
            let tests: Vec<TestResult> = def
                .tests
                .iter()
                .map(|t| {
                    let mut r = TestResult {
                        id: t.id.as_str().to_owned(),
                        title: t.title.to_owned(),
                        status: Status::NoSource,
                        reason: t.no_source.map(str::to_owned),
                        figures: Map::new(),
                        items: Vec::new(),
                        items_omitted: 0,
                    };
                    if t.no_source.is_none() {
                        self.run(t.id, &mut r, vendors, unrecorded);
                    }
                    r
                })
                .collect();
            let status = tests
                .iter()
                .map(|t| t.status)
                .min()
                .unwrap_or(Status::NoSource);
            let evidence_entries = def
                .sources
                .iter()
                .map(|k| self.by_type.get(k.as_str()).copied().unwrap_or(0))
                .sum();
            criteria.push(CriterionResult {
                id: def.id.to_owned(),
                title: def.title.to_owned(),
                asks: def.asks.to_owned(),
                sources: def.sources.iter().map(|k| k.as_str().to_owned()).collect(),
                evidence_entries,
                status,
                tests,
            });
        }
        ControlsReport {
            format: CONTROLS_FORMAT.to_owned(),
            window: self.window.clone(),
            entries_by_type: self
                .by_type
                .iter()
                .map(|(k, v)| ((*k).to_owned(), json!(v)))
                .collect(),
            withheld_entries: self.withheld,
            criteria,
        }
    }

    /// Fills one test's figures, items and status.
    fn run(
        &self,
        id: TestId,
        r: &mut TestResult,
        vendors: &VendorRollup,
        unrecorded: (&[(u64, String)], u64),
    ) {
        // A threshold test: none of `t` among the `tested` things it looked
        // at. With nothing to look at it is not observed, never satisfied.
        let zero = |r: &mut TestResult, name: &str, t: &Tally, tested: u64| {
            r.figures.insert("tested".into(), json!(tested));
            r.figures.insert(name.into(), json!(t.count()));
            r.items = t.items.clone();
            r.items_omitted = t.omitted;
            r.status = if t.count() > 0 {
                Status::NotSatisfied
            } else if tested == 0 {
                Status::NotObserved
            } else {
                Status::Satisfied
            };
        };
        let listed = |r: &mut TestResult, name: &str, t: &Tally| {
            r.figures.insert(name.into(), json!(t.count()));
            r.items = t.items.clone();
            r.items_omitted = t.omitted;
            r.status = Status::Observed;
        };
        match id {
            TestId::Cc61RegisteredAgent => {
                r.figures.insert("receipts".into(), json!(self.receipts));
                zero(r, "receipts_failing", &self.unregistered, self.receipts);
            }
            TestId::Cc61AuthenticatedHuman => {
                let [session, asserted, none] = self.assurance;
                r.figures.insert("receipts".into(), json!(self.receipts));
                r.figures
                    .insert("human_authenticated".into(), json!(session));
                r.figures.insert("human_asserted".into(), json!(asserted));
                r.figures.insert("no_human".into(), json!(none));
                r.figures.insert(
                    "authenticated_ppm".into(),
                    json!(ppm(session, self.receipts)),
                );
                r.status = Status::Observed;
            }
            TestId::Cc61InactiveAgents => zero(
                r,
                "actions",
                &self.inactive,
                self.receipts + self.allowed_decisions,
            ),
            TestId::Cc61AgentSignatures => {
                r.figures
                    .insert("verified".into(), json!(self.signatures_verified));
                r.figures
                    .insert("without_base".into(), json!(self.signatures_without_base));
                zero(
                    r,
                    "failed",
                    &self.signatures_failed,
                    self.signatures_verified
                        + self.signatures_without_base
                        + self.signatures_failed.count(),
                );
            }
            TestId::Cc61Writers => {
                zero(r, "entries_failing", &self.writer_findings, self.written);
                r.figures.insert(
                    "gateway_observed_receipts".into(),
                    json!(self.observed_receipts),
                );
                r.figures.insert(
                    "gateway_receipts_decided_before_window".into(),
                    json!(self.unlinked),
                );
                r.figures.insert(
                    "agent_reported_receipts".into(),
                    json!(self.receipts - self.observed_receipts),
                );
            }
            TestId::A12UnrecordedOutcomes => {
                let (listed, count) = unrecorded;
                r.figures
                    .insert("tested".into(), json!(self.gateway_allowed));
                r.figures
                    .insert("calls_without_receipt".into(), json!(count));
                r.items = listed
                    .iter()
                    .map(|(seq, note)| Item {
                        seq: *seq,
                        note: note.clone(),
                    })
                    .collect();
                r.items_omitted = count - listed.len() as u64;
                r.status = if count > 0 {
                    Status::NotSatisfied
                } else if self.gateway_allowed == 0 {
                    Status::NotObserved
                } else {
                    Status::Satisfied
                };
            }
            TestId::Cc61CustomerData => {
                listed(r, "receipts_with_data_classes", &self.classified);
                r.figures
                    .insert("humans".into(), json!(self.classified_humans));
            }
            TestId::Cc62UnapprovedRegistrations => zero(
                r,
                "registrations",
                &self.unapproved_registrations,
                self.registrations,
            ),
            TestId::Cc62SelfApproved => zero(
                r,
                "approvals",
                &self.self_approved_registrations,
                self.registration_approvals,
            ),
            TestId::Cc62CredentialsInactiveAgents => zero(
                r,
                "credentials",
                &self.credentials_to_inactive,
                self.agent_credentials_issued,
            ),
            TestId::Cc62OwnerKyc => {
                let mut t = Tally::default();
                for a in self.registry.agents.values() {
                    if a.status == AgentStatus::Retired {
                        continue;
                    }
                    let kyc = self
                        .registry
                        .users
                        .get(&a.record.owner)
                        .map(|u| u.record.kyc.status)
                        .unwrap_or_default();
                    if kyc != KycStatus::Verified {
                        let seq = self
                            .agent_seq
                            .get(&a.record.id)
                            .copied()
                            .unwrap_or(a.request);
                        t.push(
                            seq,
                            format!("agent {} owner {} is {kyc:?}", a.record.id, a.record.owner)
                                .to_lowercase(),
                        );
                    }
                }
                let agents = self
                    .registry
                    .agents
                    .values()
                    .filter(|a| a.status != AgentStatus::Retired)
                    .count() as u64;
                r.figures.insert("agents".into(), json!(agents));
                zero(r, "owner_not_verified", &t, agents);
            }
            TestId::Cc63RetiredLiveCredential => {
                let mut t = Tally::default();
                let mut tested = 0;
                for c in self.sorted_credentials() {
                    let Some(agent) = &c.record.agent else {
                        continue;
                    };
                    let retired = self
                        .registry
                        .agents
                        .get(agent)
                        .is_some_and(|a| a.status == AgentStatus::Retired);
                    tested += u64::from(retired);
                    if retired && self.registry.credential_dead_at(c, self.to).is_none() {
                        t.push(
                            self.credential_seq.get(&c.record.id).copied().unwrap_or(0),
                            format!(
                                "credential {} of retired agent {agent} is live",
                                c.record.id
                            ),
                        );
                    }
                }
                zero(r, "credentials", &t, tested);
            }
            TestId::Cc63Rotation => {
                let mut t = Tally::default();
                let mut tested = 0;
                let limit = ROTATION_DAYS * 86_400_000_000;
                for c in self.sorted_credentials() {
                    if self.registry.credential_dead_at(c, self.to).is_some() {
                        continue;
                    }
                    tested += 1;
                    let age = self.to.as_micros() - c.issued_at.as_micros();
                    if age > limit {
                        t.push(
                            self.credential_seq.get(&c.record.id).copied().unwrap_or(0),
                            format!(
                                "credential {} is {} days old",
                                c.record.id,
                                age / 86_400_000_000
                            ),
                        );
                    }
                }
                r.figures
                    .insert("rotation_days".into(), json!(ROTATION_DAYS));
                zero(r, "credentials_overdue", &t, tested);
            }
            TestId::Cc63QuarterlyReview if self.window.project.is_some() => {
                r.status = Status::NoSource;
                r.reason = Some(
                    "access reviews list every project's agents, so a project's pack withholds them; see the pack for all projects".into(),
                );
            }
            TestId::Cc63QuarterlyReview => self.quarterly_reviews(r),
            TestId::Cc66OutOfScope => {
                listed(r, "attempts", &self.out_of_scope);
                r.figures
                    .insert("allowed".into(), json!(self.out_of_scope_allowed));
                r.figures.insert("tested".into(), json!(self.decisions));
                r.status = if self.out_of_scope_allowed > 0 {
                    Status::NotSatisfied
                } else if self.decisions == 0 {
                    Status::NotObserved
                } else {
                    Status::Satisfied
                };
            }
            TestId::Cc66ExceedingScope => {
                let mut t = Tally::default();
                let mut tested = 0;
                for c in self.sorted_credentials() {
                    let (Some(agent), Some(scope)) = (&c.record.agent, &c.record.scope) else {
                        continue;
                    };
                    if self.registry.credential_dead_at(c, self.to).is_some() {
                        continue;
                    }
                    tested += 1;
                    if let Some(a) = self.registry.agents.get(agent)
                        && let Some((field, value)) = scope.first_outside(&a.record.scope)
                    {
                        t.push(
                            self.credential_seq.get(&c.record.id).copied().unwrap_or(0),
                            format!(
                                "credential {} allows {field} {value} outside agent {agent}'s scope",
                                c.record.id
                            ),
                        );
                    }
                }
                zero(r, "credentials", &t, tested);
            }
            TestId::Cc71UnrecordedChanges => {
                r.figures
                    .insert("changes_applied".into(), json!(self.changes_applied));
                zero(
                    r,
                    "without_change_record",
                    &self.unrecorded_changes,
                    self.changes_applied,
                );
            }
            TestId::Cc72Anomalies => {
                let rows: Vec<Value> = self
                    .anomalies
                    .iter()
                    .map(|((c, s), n)| json!({"category": c, "severity": s, "count": n}))
                    .collect();
                r.figures.insert(
                    "anomalies".into(),
                    json!(self.anomalies.values().sum::<u64>()),
                );
                r.figures.insert("by_category".into(), json!(rows));
                r.status = Status::Observed;
            }
            TestId::Cc74Containment => listed(r, "events", &self.containment),
            TestId::Cc81UnapprovedChanges => {
                r.figures
                    .insert("changes_applied".into(), json!(self.changes_applied));
                zero(
                    r,
                    "unapproved",
                    &self.unapproved_changes,
                    self.changes_applied,
                );
            }
            TestId::Cc81SelfApproved => zero(
                r,
                "approvals",
                &self.self_approved_changes,
                self.change_approvals,
            ),
            TestId::Cc81TestEvidence => {
                zero(r, "changes", &self.without_tests, self.changes_applied)
            }
            TestId::Cc81RollbackPlan => {
                zero(r, "requests", &self.without_rollback, self.change_requests)
            }
            TestId::Cc92VendorShare => {
                let providers: Vec<Value> = vendors
                    .lines
                    .iter()
                    .filter(|l| l.model.is_none())
                    .map(|l| {
                        json!({"provider": l.provider, "calls_ppm": l.calls_ppm, "cost_ppm": l.cost_ppm})
                    })
                    .collect();
                r.figures.insert("calls".into(), json!(vendors.calls));
                r.figures
                    .insert("cost_micro_usd".into(), json!(vendors.cost_micro_usd));
                r.figures.insert("providers".into(), json!(providers));
                r.figures.insert(
                    "agent_reported_calls".into(),
                    json!(vendors.agent_reported_calls),
                );
                r.figures.insert(
                    "agent_reported_cost_micro_usd".into(),
                    json!(vendors.agent_reported_cost_micro_usd),
                );
                r.status = Status::Observed;
            }
            TestId::A12ProviderErrors => {
                let rows: Vec<Value> = self
                    .provider_days
                    .iter()
                    .flat_map(|(p, days)| days.iter().map(move |(d, n)| (p, d, n)))
                    .map(|(p, d, (calls, errors, timeouts))| {
                        let day = Timestamp::from_micros(d * 86_400_000_000).to_string();
                        json!({
                            "provider": p, "day": &day[..10], "calls": calls, "errors": errors,
                            "timeouts": timeouts, "error_ppm": ppm(*errors, *calls),
                        })
                    })
                    .collect();
                r.figures.insert("per_provider_day".into(), json!(rows));
                r.status = Status::Observed;
            }
            // Docket records nothing these could read yet: never run, their
            // definitions' reasons stand.
            TestId::Cc63SessionOutlivedTask
            | TestId::Cc71CheckpointContinuity
            | TestId::Cc72DetectorSchedule
            | TestId::Cc73TriageSla
            | TestId::Cc74Incidents
            | TestId::Cc92VendorRecords
            | TestId::A12GatewayDown
            | TestId::Pi1ReviewSampling
            | TestId::C1ContentEncrypted
            | TestId::P4Retention => {}
        }
    }

    fn sorted_credentials(&self) -> Vec<&Credential> {
        let mut all: Vec<_> = self.registry.credentials.values().collect();
        all.sort_by(|a, b| a.record.id.as_str().cmp(b.record.id.as_str()));
        all
    }

    /// Each calendar quarter the window touches: the access reviews
    /// completed in it (before the window too), and whether it has ended.
    fn quarterly_reviews(&self, r: &mut TestResult) {
        let from = Timestamp::parse_rfc3339(&self.window.from).unwrap_or(self.to);
        // Quarters as one number: year * 4 + (0..4).
        let index = |t: Timestamp| {
            let d = t.to_datetime();
            i64::from(d.year()) * 4 + i64::from((u8::from(d.month()) - 1) / 3)
        };
        let start_of = |q: i64| {
            let month = time::Month::try_from(3 * q.rem_euclid(4) as u8 + 1).ok()?;
            let day = time::Date::from_calendar_date(q.div_euclid(4) as i32, month, 1).ok()?;
            Some(Timestamp::from_datetime(day.midnight().assume_utc()))
        };
        let last = index(Timestamp::from_micros(self.to.as_micros() - 1));
        let mut rows = Vec::new();
        let mut missed = Vec::new();
        for q in index(from)..=last {
            let label = format!("{}-Q{}", q.div_euclid(4), q.rem_euclid(4) + 1);
            let completed = self.reviews_by_quarter.get(&label).copied().unwrap_or(0);
            let ended = start_of(q + 1).is_some_and(|end| end <= self.to);
            if completed == 0 && ended {
                missed.push(label.clone());
            }
            rows.push(json!({"quarter": label, "completed": completed, "quarter_ended": ended}));
        }
        r.figures.insert("quarters".into(), json!(rows));
        r.figures.insert("missed".into(), json!(missed.len()));
        r.figures.insert("quarters_missed".into(), json!(missed));
        r.status = if missed.is_empty() {
            Status::Satisfied
        } else {
            Status::NotSatisfied
        };
    }
}

/// What [`Fold::finish`] derives.
pub struct Derived {
    pub controls: ControlsReport,
    pub vendors: VendorRollup,
    pub registry: Value,
}

/// One line of a record file: the entry's `seq`, `ts` and type, and its
/// body (decisions without the Cedar inputs).
fn record_line(e: &Line<'_>, body: &Value) -> Vec<u8> {
    let mut out = Map::new();
    out.insert("seq".into(), json!(e.seq));
    out.insert("ts".into(), json!(e.ts));
    out.insert("type".into(), json!(e.kind.as_str()));
    if let Value::Object(members) = body {
        for (k, v) in members {
            if e.kind != EntryType::Decision || DECISION_KEYS.contains(&k.as_str()) {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    let mut line = serde_json::to_vec(&Value::Object(out)).unwrap_or_default();
    line.push(b'\n');
    line
}

/// The recorded RFC 9421 signature of an agent's request.
#[derive(serde::Deserialize)]
struct RecordedSignature {
    /// Unix seconds the agent put in the signature.
    #[serde(default)]
    created: Option<i64>,
    signature: String,
    #[serde(default)]
    base: Option<String>,
}

/// A JSON string member as text (borrowed unless it has escapes).
fn text(raw: Option<&RawValue>) -> Option<Cow<'_, str>> {
    let raw = raw?.get();
    if !raw.starts_with('"') {
        return None;
    }
    match serde_json::from_str::<&str>(raw) {
        Ok(s) => Some(Cow::Borrowed(s)),
        Err(_) => serde_json::from_str::<String>(raw).ok().map(Cow::Owned),
    }
}

/// An entry line parsed once: the envelope, and the body borrowed raw.
/// The leaf hash covers the line's bytes, so what matters for integrity
/// is that they hash into the signed tree; this only reads them.
pub struct Line<'a> {
    pub seq: u64,
    pub ts: Timestamp,
    pub kind: EntryType,
    pub prev: docket_core::Hash,
    pub body: &'a RawValue,
}

impl<'a> Line<'a> {
    pub fn parse(bytes: &'a [u8]) -> Result<Self, String> {
        let e = docket_core::Envelope::parse(bytes).map_err(|e| e.to_string())?;
        Ok(Self {
            seq: e.seq.0,
            ts: e.ts,
            kind: e.kind,
            prev: e.prev,
            body: e.body,
        })
    }

    /// The body as JSON.
    pub fn value(&self) -> Value {
        serde_json::from_str(self.body.get()).unwrap_or(Value::Null)
    }
}
