//! Who may write each entry type — one table that the server (at append),
//! the evidence fold and both verifiers read — and [`WriteCheck`], which
//! holds a log's entries to it. The ledger is evidence only if the audited
//! cannot write it: Docket writes what it decides and observes; it writes
//! for an authenticated human only through a named route; and what an
//! agent or a person says of itself is stamped as theirs and never counted
//! as observed.

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;

use crate::bodies::{
    self, ApprovalDecidedBody, ApprovalRequestedBody, ApprovalUsedBody, ApprovalVerdict,
    DecisionBody, ExportBody, NoteBody, Outcome, ReceiptBody, Source, VerificationBody,
};
use crate::identity::{Actor, AgentId, CredentialId, Event, Registry, Role, UserId};
use crate::{EntryType, Timestamp};

/// The kinds of [`Actor`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ActorKind {
    Bootstrap,
    Human,
    Agent,
    System,
}

impl ActorKind {
    pub fn of(actor: &Actor) -> ActorKind {
        match actor {
            Actor::Bootstrap => ActorKind::Bootstrap,
            Actor::Human { .. } => ActorKind::Human,
            Actor::Agent { .. } => ActorKind::Agent,
            Actor::System { .. } => ActorKind::System,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ActorKind::Bootstrap => "the bootstrap token",
            ActorKind::Human => "a person",
            ActorKind::Agent => "an agent",
            ActorKind::System => "Docket itself",
        }
    }
}

/// Who may append a type through `POST /api/v1/entries`, as their own word.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Reporters {
    /// Nobody: only Docket writes it.
    Nobody,
    Agents,
    AgentsAndPeople,
}

/// One row of the table.
#[derive(Copy, Clone, Debug)]
pub struct WriteRule {
    pub kind: EntryType,
    /// Who writes it, naming the route where a person or an agent is
    /// behind it; quoted when `POST /entries` refuses the type.
    pub written_by: &'static str,
    pub reporters: Reporters,
    /// The actors an entry of this type may name: who caused it.
    pub actors: &'static [ActorKind],
}

use ActorKind as A;

const PEOPLE: &[ActorKind] = &[A::Bootstrap, A::Human, A::System];
const PEOPLE_OR_AGENT: &[ActorKind] = &[A::Bootstrap, A::Human, A::System, A::Agent];

/// The table: every entry type, who writes it, and whom it may name as its
/// actor. A new entry type does not compile until it has a row here.
pub fn rule(kind: EntryType) -> WriteRule {
    use EntryType as T;
    let (written_by, reporters, actors): (&'static str, Reporters, &'static [ActorKind]) =
        match kind {
            T::Receipt => (
                "Docket's gateway (/v1/…) for the calls it carries, POST /api/v1/record for an authorized tool call, or the agent itself through POST /api/v1/entries",
                Reporters::Agents,
                &[A::Agent],
            ),
            T::Decision => (
                "Docket itself, deciding a gateway call or POST /api/v1/authorize",
                Reporters::Nobody,
                &[A::Agent],
            ),
            T::ApprovalRequested => (
                "Docket itself, when policy holds an action for a human",
                Reporters::Nobody,
                &[A::Agent],
            ),
            T::ApprovalDecided => (
                "POST /api/v1/approvals/{id}/decide, for an authenticated approver",
                Reporters::Nobody,
                &[A::Human],
            ),
            T::ApprovalUsed => (
                "Docket itself, when an approved call goes ahead",
                Reporters::Nobody,
                &[A::Agent],
            ),
            T::Anomaly => (
                "Docket's detectors (not built yet)",
                Reporters::Nobody,
                &[A::System],
            ),
            T::IncidentEvent => (
                "the incident routes (not built yet)",
                Reporters::Nobody,
                &[A::Human, A::System],
            ),
            T::Review => (
                "the review queue (not built yet)",
                Reporters::Nobody,
                &[A::Human],
            ),
            T::Export => (
                "POST /api/v1/evidence/export and the evidence schedule",
                Reporters::Nobody,
                &[A::Human, A::System],
            ),
            T::Verification => (
                "an agent or a person through POST /api/v1/entries",
                Reporters::AgentsAndPeople,
                &[A::Agent, A::Human],
            ),
            T::Note => (
                "an agent or a person through POST /api/v1/entries",
                Reporters::AgentsAndPeople,
                &[A::Agent, A::Human],
            ),
            T::ChangeRequested
            | T::ChangeApproved
            | T::ChangeRejected
            | T::ChangeApplied
            | T::AgentRegistered
            | T::AgentRetired
            | T::AgentUpdated
            | T::PolicyActivated => (
                "the change routes (/api/v1/changes, /api/v1/agents, /api/v1/policy, /api/v1/projects/{id}/rules), for an authenticated person",
                Reporters::Nobody,
                PEOPLE,
            ),
            T::UserCreated | T::UserUpdated => (
                "the user routes (/api/v1/users, /api/v1/bootstrap, /api/v1/login)",
                Reporters::Nobody,
                PEOPLE,
            ),
            T::ProjectCreated | T::ProjectUpdated => (
                "the project routes (/api/v1/projects)",
                Reporters::Nobody,
                PEOPLE,
            ),
            T::AgentSuspended | T::AgentResumed | T::KillSwitchEngaged | T::KillSwitchReleased => (
                "the containment routes (/api/v1/agents/{id}/suspend|resume, /api/v1/kill)",
                Reporters::Nobody,
                PEOPLE,
            ),
            T::LimitsSet => (
                "PUT /api/v1/limits, for an authenticated person",
                Reporters::Nobody,
                PEOPLE,
            ),
            T::AccessReview => (
                "the access-review routes (/api/v1/access-reviews)",
                Reporters::Nobody,
                PEOPLE,
            ),
            T::CredentialIssued | T::CredentialRevoked => (
                "the credential and session routes (/api/v1/agents/{id}/credentials, /api/v1/sessions, /api/v1/tokens)",
                Reporters::Nobody,
                PEOPLE_OR_AGENT,
            ),
            T::SignatureRejected => (
                "Docket itself, when an agent's request signature fails",
                Reporters::Nobody,
                &[A::Agent],
            ),
        };
    WriteRule {
        kind,
        written_by,
        reporters,
        actors,
    }
}

/// How an entry that keeps to the table counts.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Standing {
    /// A receipt of a call Docket's gateway carried, tied to the decision
    /// that let it through.
    Observed,
    /// A gateway receipt whose decision comes before what this check saw
    /// (the first entries of a pack's window): the link is not checked.
    ObservedUnlinked,
    /// An agent's or a person's own account.
    Reported,
    /// Anything else Docket wrote, for itself or for someone.
    Written,
}

impl Standing {
    pub fn observed(self) -> bool {
        matches!(self, Standing::Observed | Standing::ObservedUnlinked)
    }
}

/// An allowed gateway call waiting for its receipt.
struct Forwarded {
    agent: AgentId,
    credential: CredentialId,
    ts: Timestamp,
}

#[derive(Copy, Clone, PartialEq, Eq)]
enum HeldState {
    Pending,
    Approved,
}

struct Held {
    agent: AgentId,
    human: Option<UserId>,
    expires_at: Timestamp,
    state: HeldState,
}

/// How long an allowed gateway call may stay without its receipt before
/// it is reported as forwarded with its outcome unrecorded: a day, far
/// beyond any stream (streams are bounded by silences, not length).
pub const RECEIPT_GRACE_MICROS: i64 = 24 * 3_600 * 1_000_000;

/// Holds entries, in `seq` order, to the write table and to the links
/// between them: a gateway receipt follows the allow decision of the same
/// agent and credential, once; an approval request follows the decision
/// that held; an approval is decided once, by an approver who is not the
/// human the agent acted for, the agent's owner or whoever requested the
/// agent; an approval is used once, after it was approved.
///
/// Pure and streaming: memory grows with the calls in flight and the
/// approvals pending, not with the log.
#[derive(Default)]
pub struct WriteCheck {
    /// The first `seq` checked; links to entries before it are unknown.
    start: Option<u64>,
    /// By `seq`, so also in time order: the oldest are retired first.
    forwarded: BTreeMap<u64, Forwarded>,
    /// Decisions that held an action, until their approval request.
    holding: HashMap<u64, AgentId>,
    approvals: HashMap<u64, Held>,
    /// Allowed gateway calls found without a receipt past the grace.
    unrecorded: Vec<(u64, String)>,
    unrecorded_count: u64,
}

/// The members every body carries.
#[derive(Deserialize)]
struct ActorOnly {
    actor: Actor,
}

impl WriteCheck {
    pub fn new() -> Self {
        Self::default()
    }

    /// Checks one entry against `registry` as it stood just before it.
    /// `Err` says how the entry breaks the rules: it must not be counted.
    pub fn check(
        &mut self,
        seq: u64,
        ts: Timestamp,
        kind: EntryType,
        body: &str,
        registry: &Registry,
    ) -> Result<Standing, String> {
        let start = self.begin(seq, ts);
        let rule = rule(kind);
        let allowed = |actor: &Actor| -> Result<(), String> {
            let k = ActorKind::of(actor);
            if rule.actors.contains(&k) {
                Ok(())
            } else {
                Err(format!(
                    "{kind} written for {}; it is written by {}",
                    k.as_str(),
                    rule.written_by
                ))
            }
        };
        let unreadable = |e: String| format!("{kind} body does not read as one: {e}");
        use EntryType as T;
        match kind {
            T::Receipt => {
                let r: ReceiptBody = bodies::parse(body).map_err(unreadable)?;
                self.receipt(start, &r)
            }
            T::Decision => {
                let d: DecisionBody = bodies::parse(body).map_err(unreadable)?;
                allowed(&d.actor)?;
                same_agent(&d.actor, &d.agent, Some(&d.credential))?;
                match (d.outcome, d.source) {
                    (Outcome::Allow, Source::Gateway) => {
                        self.forwarded.insert(
                            seq,
                            Forwarded {
                                agent: d.agent,
                                credential: d.credential,
                                ts,
                            },
                        );
                    }
                    (Outcome::RequireApproval, _) => {
                        self.holding.insert(seq, d.agent);
                    }
                    (_, Source::HumanReported) => {
                        return Err("a decision is Docket's, not a person's account".into());
                    }
                    _ => {}
                }
                Ok(Standing::Written)
            }
            T::ApprovalRequested => {
                let b: ApprovalRequestedBody = bodies::parse(body).map_err(unreadable)?;
                allowed(&b.actor)?;
                same_agent(&b.actor, &b.agent, None)?;
                match self.holding.remove(&b.decision) {
                    Some(agent) if agent == b.agent => {}
                    Some(agent) => {
                        return Err(format!(
                            "approval request for agent {} names decision {}, which held agent {agent}",
                            b.agent, b.decision
                        ));
                    }
                    None if b.decision < start => {}
                    None => {
                        return Err(format!(
                            "approval request names decision {}, which held no action of agent {}",
                            b.decision, b.agent
                        ));
                    }
                }
                self.approvals.insert(
                    seq,
                    Held {
                        agent: b.agent,
                        human: b.human,
                        expires_at: b.expires_at,
                        state: HeldState::Pending,
                    },
                );
                Ok(Standing::Written)
            }
            T::ApprovalDecided => {
                let b: ApprovalDecidedBody = bodies::parse(body).map_err(unreadable)?;
                check_decided(&b)?;
                let user = &b.by;
                let bound = self
                    .approvals
                    .get(&b.approval)
                    .and_then(|h| h.human.clone());
                approver_may_decide(registry, user, &b.agent, bound.as_ref())
                    .map_err(|e| e.to_string())?;
                match self.approvals.get_mut(&b.approval) {
                    Some(held) => {
                        if held.agent != b.agent {
                            return Err(format!(
                                "approval {} is agent {}'s, not {}'s",
                                b.approval, held.agent, b.agent
                            ));
                        }
                        if held.state != HeldState::Pending {
                            return Err(format!("approval {} was already decided", b.approval));
                        }
                        if ts >= held.expires_at {
                            return Err(format!(
                                "approval {} was decided after it expired at {}",
                                b.approval, held.expires_at
                            ));
                        }
                        match b.decision {
                            ApprovalVerdict::Approve => held.state = HeldState::Approved,
                            // Nothing more may happen to it: forgotten, so
                            // memory holds only approvals still open.
                            ApprovalVerdict::Deny => {
                                self.approvals.remove(&b.approval);
                            }
                        }
                    }
                    None if b.approval < start => {}
                    None => {
                        return Err(format!(
                            "names approval {}, which is no pending approval request",
                            b.approval
                        ));
                    }
                }
                Ok(Standing::Written)
            }
            T::ApprovalUsed => {
                let b: ApprovalUsedBody = bodies::parse(body).map_err(unreadable)?;
                allowed(&b.actor)?;
                same_agent(&b.actor, &b.agent, None)?;
                match self.approvals.get(&b.approval) {
                    Some(held) if held.agent == b.agent && held.state == HeldState::Approved => {
                        self.approvals.remove(&b.approval);
                    }
                    None if b.approval < start => {}
                    _ => {
                        return Err(format!(
                            "uses approval {}, which was not approved for agent {} or was used before",
                            b.approval, b.agent
                        ));
                    }
                }
                Ok(Standing::Written)
            }
            T::Export => {
                let b: ExportBody = bodies::parse(body).map_err(unreadable)?;
                allowed(&b.actor)?;
                Ok(Standing::Written)
            }
            T::Note => {
                let b: NoteBody = bodies::parse(body).map_err(unreadable)?;
                allowed(&b.actor)?;
                reported(&b.actor, b.source, b.agent.as_ref())?;
                Ok(Standing::Reported)
            }
            T::Verification => {
                let b: VerificationBody = bodies::parse(body).map_err(unreadable)?;
                allowed(&b.actor)?;
                reported(&b.actor, b.source, b.agent.as_ref())?;
                Ok(Standing::Reported)
            }
            T::Anomaly | T::IncidentEvent | T::Review => {
                let b: ActorOnly = bodies::parse(body).map_err(unreadable)?;
                allowed(&b.actor)?;
                Ok(Standing::Written)
            }
            _ => {
                let value: serde_json::Value =
                    serde_json::from_str(body).map_err(|e| unreadable(e.to_string()))?;
                let (_, actor) =
                    Event::from_body(kind, &value).map_err(|e| unreadable(e.to_string()))?;
                allowed(&actor)?;
                Ok(Standing::Written)
            }
        }
    }

    /// [`WriteCheck::check`] for a receipt its caller has read already.
    pub fn check_receipt(
        &mut self,
        seq: u64,
        ts: Timestamp,
        r: &ReceiptBody,
    ) -> Result<Standing, String> {
        let start = self.begin(seq, ts);
        self.receipt(start, r)
    }

    /// Notes the first `seq` seen and retires calls past their grace;
    /// returns that first `seq`.
    fn begin(&mut self, seq: u64, ts: Timestamp) -> u64 {
        let start = *self.start.get_or_insert(seq);
        self.expire(ts);
        start
    }

    fn receipt(&mut self, start: u64, r: &ReceiptBody) -> Result<Standing, String> {
        check_receipt(r)?;
        let Some(agent) = &r.agent else {
            unreachable!("check_receipt refuses a receipt without an agent")
        };
        match r.source {
            Source::Gateway => {
                let Some(decision) = r.decision else {
                    return Err(
                        "receipt claims the gateway observed it but names no decision".into(),
                    );
                };
                match self.forwarded.remove(&decision) {
                    Some(f)
                        if f.agent == *agent && Some(&f.credential) == r.credential.as_ref() =>
                    {
                        Ok(Standing::Observed)
                    }
                    Some(f) => {
                        let problem = format!(
                            "receipt claims the gateway observed it for agent {agent}, but decision {decision} allowed agent {} with credential {}",
                            f.agent, f.credential
                        );
                        self.forwarded.insert(decision, f);
                        Err(problem)
                    }
                    None if decision < start => Ok(Standing::ObservedUnlinked),
                    None => Err(format!(
                        "receipt claims the gateway observed it, but decision {decision} allowed no gateway call still without its receipt"
                    )),
                }
            }
            Source::AgentReported | Source::HumanReported => Ok(Standing::Reported),
        }
    }

    /// Gateway calls allowed more than [`RECEIPT_GRACE_MICROS`] before
    /// `now` and still without a receipt are reported unrecorded.
    fn expire(&mut self, now: Timestamp) {
        let cutoff = now.as_micros() - RECEIPT_GRACE_MICROS;
        while let Some(entry) = self.forwarded.first_entry() {
            if entry.get().ts.as_micros() >= cutoff {
                break;
            }
            let (seq, f) = entry.remove_entry();
            self.note_unrecorded(seq, &f);
        }
    }

    fn note_unrecorded(&mut self, seq: u64, f: &Forwarded) {
        self.unrecorded_count += 1;
        if self.unrecorded.len() < MAX_UNRECORDED_LISTED {
            self.unrecorded.push((
                seq,
                format!(
                    "decision {seq} let agent {}'s call through the gateway at {}; no receipt records its outcome",
                    f.agent, f.ts
                ),
            ));
        }
    }

    /// The allowed gateway calls with no receipt, as of `end` (the time
    /// of the last entry seen, or the end of a window): those within the
    /// grace before it may still be answering and are not counted.
    /// Returns the listed ones and how many there are in all.
    pub fn unrecorded(&mut self, end: Timestamp) -> (&[(u64, String)], u64) {
        self.expire(end);
        (&self.unrecorded, self.unrecorded_count)
    }
}

/// Most forwarded-but-unrecorded calls listed by name.
pub const MAX_UNRECORDED_LISTED: usize = 500;

/// What holds of a receipt on its own, without the entries around it: an
/// agent wrote it about itself, with the credential it names, and it is
/// the gateway's or the agent's own account.
pub fn check_receipt(r: &ReceiptBody) -> Result<(), String> {
    let kind = ActorKind::of(&r.actor);
    if kind != ActorKind::Agent {
        return Err(format!(
            "receipt written for {}; it is written by {}",
            kind.as_str(),
            rule(EntryType::Receipt).written_by
        ));
    }
    let Some(agent) = &r.agent else {
        return Err("receipt names no agent".into());
    };
    same_agent(&r.actor, agent, r.credential.as_ref())?;
    if r.source == Source::HumanReported {
        return Err(
            "receipt is a person's account; receipts are the gateway's or the agent's own".into(),
        );
    }
    Ok(())
}

/// What holds of an approval decision on its own: a person wrote it, in
/// their own name.
pub fn check_decided(b: &ApprovalDecidedBody) -> Result<(), String> {
    let Actor::Human { user, .. } = &b.actor else {
        return Err(format!(
            "approval.decided written for {}; it is written by {}",
            ActorKind::of(&b.actor).as_str(),
            rule(EntryType::ApprovalDecided).written_by
        ));
    };
    if *user != b.by {
        return Err(format!(
            "approval {} says it was decided by {}, but {user} wrote it",
            b.approval, b.by
        ));
    }
    Ok(())
}

/// An entry about `agent` caused by an agent must be by that agent, and
/// with the credential it names.
fn same_agent(
    actor: &Actor,
    agent: &AgentId,
    credential: Option<&CredentialId>,
) -> Result<(), String> {
    if let Actor::Agent {
        agent: by,
        credential: used,
        ..
    } = actor
    {
        if by != agent {
            return Err(format!("names agent {agent}, but agent {by} wrote it"));
        }
        if let Some(c) = credential
            && c != used
        {
            return Err(format!(
                "names credential {c}, but agent {by} used credential {used}"
            ));
        }
    }
    Ok(())
}

/// Someone's own account is stamped as theirs: an agent's as
/// agent-reported and about itself, a person's as human-reported.
fn reported(actor: &Actor, source: Source, agent: Option<&AgentId>) -> Result<(), String> {
    match (actor, source) {
        (Actor::Agent { agent: by, .. }, Source::AgentReported) => match agent {
            Some(a) if a != by => Err(format!("names agent {a}, but agent {by} wrote it")),
            _ => Ok(()),
        },
        (Actor::Human { .. }, Source::HumanReported | Source::AgentReported) => Ok(()),
        (_, s) => Err(format!(
            "is someone's own account but says its source is {}",
            s.as_str()
        )),
    }
}

/// Why a person may not decide a held action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApproverRefusal {
    /// Not a registered, active approver or admin.
    NotAnApprover(String),
    /// The approver is the human the agent acts for, its owner, or whoever
    /// requested the agent.
    FourEyes(String),
}

impl std::fmt::Display for ApproverRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApproverRefusal::NotAnApprover(m) | ApproverRefusal::FourEyes(m) => f.write_str(m),
        }
    }
}

/// The four-eyes part of [`approver_may_decide`] alone: `user` is none of
/// the human the agent acts for, its owner and whoever requested it.
pub fn four_eyes(
    registry: &Registry,
    user: &UserId,
    agent: &AgentId,
    bound: Option<&UserId>,
) -> Result<(), String> {
    if bound == Some(user) {
        return Err(format!(
            "four-eyes rule: agent {agent} acts for {user} here, so {user} cannot approve the action"
        ));
    }
    if let Some(a) = registry.agents.get(agent) {
        if a.record.owner == *user {
            return Err(format!(
                "four-eyes rule: {user} owns agent {agent} and cannot approve its actions"
            ));
        }
        let requester = registry
            .changes
            .get(&a.request)
            .and_then(|c| c.requested_by.as_ref());
        if requester == Some(user) {
            return Err(format!(
                "four-eyes rule: {user} requested agent {agent} and cannot approve its actions"
            ));
        }
    }
    Ok(())
}

/// Four eyes on a held action: the approver holds the approver or admin
/// role now, is active, and is none of the human the agent acts for
/// (`bound`, when known), the agent's owner, and whoever requested the
/// agent. Shared by the approval route and the verifiers.
pub fn approver_may_decide(
    registry: &Registry,
    user: &UserId,
    agent: &AgentId,
    bound: Option<&UserId>,
) -> Result<(), ApproverRefusal> {
    use ApproverRefusal::{FourEyes, NotAnApprover};
    let Some(u) = registry.users.get(user) else {
        return Err(NotAnApprover(format!("{user} is not a registered user")));
    };
    if u.record.disabled {
        return Err(NotAnApprover(format!("{user} is disabled")));
    }
    if !u
        .record
        .roles
        .iter()
        .any(|r| matches!(r, Role::Approver | Role::Admin))
    {
        return Err(NotAnApprover(format!(
            "{user} decided a held action without the approver or admin role"
        )));
    }
    four_eyes(registry, user, agent, bound).map_err(FourEyes)?;
    Ok(())
}

/// One entry that breaks the write table, by `seq`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteFinding {
    pub seq: u64,
    pub problem: String,
}

/// Most findings a whole-log check lists by name; the rest are counted.
pub const MAX_FINDINGS_LISTED: usize = 1000;

/// [`WriteCheck`] over a whole log from `seq` 0, folding the registry as
/// it goes: what `docket verify --data-dir` runs after each entry's hash
/// and chain hold.
#[derive(Default)]
pub struct LogWrites {
    registry: Registry,
    check: WriteCheck,
    findings: Vec<WriteFinding>,
    total: u64,
    last_ts: Option<Timestamp>,
}

/// What [`LogWrites`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WritesReport {
    /// Entries that break the table (at most [`MAX_FINDINGS_LISTED`]),
    /// and how many in all.
    pub findings: Vec<WriteFinding>,
    pub total: u64,
    /// Calls the gateway forwarded whose outcome no receipt records, past
    /// the grace before the log's last entry.
    pub unrecorded: Vec<WriteFinding>,
    pub unrecorded_total: u64,
}

impl LogWrites {
    pub fn new() -> Self {
        Self::default()
    }

    /// Checks the next entry of the log.
    pub fn push(&mut self, entry: &crate::Entry) {
        let (seq, ts, kind) = (entry.seq.0, entry.ts, entry.kind);
        self.last_ts = Some(ts);
        if let Err(problem) = self
            .check
            .check(seq, ts, kind, entry.body_json(), &self.registry)
        {
            self.total += 1;
            if self.findings.len() < MAX_FINDINGS_LISTED {
                self.findings.push(WriteFinding { seq, problem });
            }
        }
        if Event::is_identity_type(kind)
            && let Ok(value) = serde_json::from_str::<serde_json::Value>(entry.body_json())
            && let Ok((event, actor)) = Event::from_body(kind, &value)
        {
            self.registry.apply(seq, ts, &actor, &event);
        }
    }

    pub fn finish(mut self) -> WritesReport {
        let end = self.last_ts.unwrap_or(Timestamp::from_micros(0));
        let (listed, unrecorded_total) = self.check.unrecorded(end);
        let unrecorded = listed
            .iter()
            .map(|(seq, problem)| WriteFinding {
                seq: *seq,
                problem: problem.clone(),
            })
            .collect();
        WritesReport {
            findings: self.findings,
            total: self.total,
            unrecorded,
            unrecorded_total,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::identity::event::{AgentRecord, ChangeRequest, ProjectRecord, UserRecord};
    use crate::identity::governance::ChangeInfo;
    use crate::identity::{Did, HumanAssurance, Scope};

    fn ts(s: i64) -> Timestamp {
        Timestamp::from_micros(1_800_000_000_000_000 + s * 1_000_000)
    }

    fn human(user: &str) -> Actor {
        Actor::Human {
            user: user.parse().unwrap(),
            credential: "aaaaaaaaaaaaaaaa".parse().unwrap(),
        }
    }

    fn agent_actor(agent: &str, credential: &str, bound: Option<&str>) -> Actor {
        Actor::Agent {
            agent: agent.parse().unwrap(),
            did: Did::from_key(&ed25519_dalek::SigningKey::from_bytes(&[9; 32]).verifying_key()),
            credential: credential.parse().unwrap(),
            task: None,
            human: bound.map(|h| h.parse().unwrap()),
            human_assurance: HumanAssurance::Session,
            signature: None,
        }
    }

    /// Users dev (developer, approver too: owns the bot), lead (approver,
    /// requested the bot), carol (approver), dave (reviewer); agent `bot`
    /// in project `p`, owned by dev and requested by lead.
    fn registry() -> Registry {
        let mut r = Registry::default();
        let mut at = 0;
        let mut apply = |r: &mut Registry, actor: &Actor, e: Event| {
            at += 1;
            r.apply(at, ts(at as i64), actor, &e);
        };
        let admin = human("admin");
        for (id, roles) in [
            ("admin", vec![Role::Admin]),
            ("dev", vec![Role::Developer, Role::Approver]),
            ("lead", vec![Role::Approver]),
            ("carol", vec![Role::Approver]),
            ("dave", vec![Role::Reviewer]),
        ] {
            let user = UserRecord {
                id: id.parse().unwrap(),
                name: id.into(),
                email: None,
                roles,
                disabled: false,
                kyc: Default::default(),
            };
            apply(&mut r, &admin, Event::UserCreated { user });
        }
        let project = ProjectRecord {
            id: "p".parse().unwrap(),
            name: "P".into(),
            members: vec![],
            rules: vec![],
        };
        apply(&mut r, &admin, Event::ProjectCreated { project });
        let record = AgentRecord {
            id: "bot".parse().unwrap(),
            name: "Bot".into(),
            owner: "dev".parse().unwrap(),
            project: "p".parse().unwrap(),
            purpose: "tests".into(),
            scope: Scope::default(),
            did: Did::from_key(&ed25519_dalek::SigningKey::from_bytes(&[9; 32]).verifying_key()),
            system_prompt_sha256: None,
            require_signature: false,
        };
        apply(
            &mut r,
            &human("lead"),
            Event::ChangeRequested {
                agent: Some(record.id.clone()),
                project: Some(record.project.clone()),
                request: ChangeRequest::AgentRegister {
                    record: Box::new(record.clone()),
                },
                info: ChangeInfo::default(),
            },
        );
        let request = 7; // five users, the project, then the request
        apply(
            &mut r,
            &human("carol"),
            Event::ChangeApproved {
                request,
                agent: Some(record.id.clone()),
                project: Some(record.project.clone()),
            },
        );
        apply(
            &mut r,
            &human("carol"),
            Event::AgentRegistered {
                request,
                agent: record,
            },
        );
        r
    }

    const CRED: &str = "bbbbbbbbbbbbbbbb";

    fn decision(outcome: &str, source: &str, bound: Option<&str>) -> String {
        json!({
            "agent": "bot", "project": "p", "credential": CRED, "action": "call_model",
            "model": "gpt-4o", "outcome": outcome, "stage": "policy", "reason": "r",
            "policy": {"version": 1, "sha256": "x"}, "request_sha256": "d",
            "source": source, "actor": agent_actor("bot", CRED, bound),
        })
        .to_string()
    }

    fn gateway_receipt(decision: u64) -> String {
        json!({
            "agent": "bot", "project": "p", "credential": CRED, "source": "gateway",
            "decision": decision, "provider": "openai", "model": "gpt-4o",
            "cost_micro_usd": 10, "actor": agent_actor("bot", CRED, None),
        })
        .to_string()
    }

    #[test]
    fn a_gateway_receipt_follows_its_allow_decision_once() {
        let r = registry();
        let mut c = WriteCheck::new();
        let t = EntryType::Receipt;
        assert_eq!(
            c.check(
                100,
                ts(100),
                EntryType::Decision,
                &decision("allow", "gateway", None),
                &r
            ),
            Ok(Standing::Written)
        );
        assert_eq!(
            c.check(101, ts(101), t, &gateway_receipt(100), &r),
            Ok(Standing::Observed)
        );
        // A second receipt for the same call, and one for no call at all.
        let again = c.check(102, ts(102), t, &gateway_receipt(100), &r);
        assert!(again.unwrap_err().contains("decision 100"));
        let none = c.check(103, ts(103), t, &gateway_receipt(7_000), &r);
        assert!(none.is_err());
        // A decision from before what was checked cannot be linked.
        assert_eq!(
            c.check(104, ts(104), t, &gateway_receipt(5), &r),
            Ok(Standing::ObservedUnlinked)
        );
    }

    #[test]
    fn an_agent_writes_only_about_itself() {
        let r = registry();
        let mut c = WriteCheck::new();
        let mut forged: serde_json::Value =
            serde_json::from_str(&decision("allow", "gateway", None)).unwrap();
        forged["actor"] = serde_json::to_value(agent_actor("other", CRED, None)).unwrap();
        let e = c
            .check(1, ts(1), EntryType::Decision, &forged.to_string(), &r)
            .unwrap_err();
        assert!(e.contains("agent other wrote it"), "{e}");
        // A decision written for a person is not Docket's decision.
        forged["actor"] = serde_json::to_value(human("carol")).unwrap();
        let e = c
            .check(2, ts(2), EntryType::Decision, &forged.to_string(), &r)
            .unwrap_err();
        assert!(e.contains("written for a person"), "{e}");
        // An anomaly written by anyone but Docket itself.
        let anomaly = json!({"category": "cost", "actor": agent_actor("bot", CRED, None)});
        assert!(
            c.check(3, ts(3), EntryType::Anomaly, &anomaly.to_string(), &r)
                .is_err()
        );
    }

    /// Holds a call for `bound` and requests approval; returns the request's seq.
    fn held(c: &mut WriteCheck, r: &Registry, bound: Option<&str>) -> u64 {
        c.check(
            10,
            ts(10),
            EntryType::Decision,
            &decision("require_approval", "gateway", bound),
            r,
        )
        .unwrap();
        let request = json!({
            "agent": "bot", "project": "p", "human": bound, "decision": 10,
            "request_sha256": "d", "summary": {}, "summary_sha256": "s",
            "expires_at": ts(600), "actor": agent_actor("bot", CRED, bound),
        });
        c.check(
            11,
            ts(11),
            EntryType::ApprovalRequested,
            &request.to_string(),
            r,
        )
        .unwrap();
        11
    }

    fn decided(approval: u64, by: &str) -> String {
        json!({
            "approval": approval, "agent": "bot", "project": "p", "decision": "approve",
            "shown": {}, "shown_sha256": "s", "by": by, "actor": human(by),
        })
        .to_string()
    }

    #[test]
    fn four_eyes_hold_for_held_actions() {
        let r = registry();
        for (who, why) in [
            ("alice", "acts for alice"),
            ("dev", "owns agent bot"),
            ("lead", "requested agent bot"),
            ("dave", "without the approver or admin role"),
        ] {
            let mut c = WriteCheck::new();
            let id = held(&mut c, &r, Some("alice"));
            // alice must exist for the bound-human case to reach four eyes.
            let mut r = r.clone();
            if who == "alice" {
                r.apply(
                    50,
                    ts(5),
                    &human("admin"),
                    &Event::UserCreated {
                        user: UserRecord {
                            id: "alice".parse().unwrap(),
                            name: "Alice".into(),
                            email: None,
                            roles: vec![Role::Approver],
                            disabled: false,
                            kyc: Default::default(),
                        },
                    },
                );
            }
            let e = c
                .check(
                    12,
                    ts(12),
                    EntryType::ApprovalDecided,
                    &decided(id, who),
                    &r,
                )
                .unwrap_err();
            assert!(e.contains(why), "{who}: {e}");
        }
        let mut c = WriteCheck::new();
        let id = held(&mut c, &r, Some("alice"));
        assert_eq!(
            c.check(
                12,
                ts(12),
                EntryType::ApprovalDecided,
                &decided(id, "carol"),
                &r
            ),
            Ok(Standing::Written)
        );
        // Decided once; and used once, after it was approved.
        assert!(
            c.check(
                13,
                ts(13),
                EntryType::ApprovalDecided,
                &decided(id, "carol"),
                &r
            )
            .is_err()
        );
        let used = json!({"approval": id, "agent": "bot", "project": "p",
                          "actor": agent_actor("bot", CRED, None)})
        .to_string();
        assert!(
            c.check(14, ts(14), EntryType::ApprovalUsed, &used, &r)
                .is_ok()
        );
        assert!(
            c.check(15, ts(15), EntryType::ApprovalUsed, &used, &r)
                .is_err()
        );
    }

    #[test]
    fn a_decision_written_in_someone_elses_name_is_caught() {
        let r = registry();
        let mut c = WriteCheck::new();
        let id = held(&mut c, &r, None);
        let mut forged: serde_json::Value = serde_json::from_str(&decided(id, "carol")).unwrap();
        forged["actor"] = serde_json::to_value(human("dave")).unwrap();
        let e = c
            .check(
                12,
                ts(12),
                EntryType::ApprovalDecided,
                &forged.to_string(),
                &r,
            )
            .unwrap_err();
        assert!(e.contains("but dave wrote it"), "{e}");
    }

    #[test]
    fn forwarded_calls_without_a_receipt_are_reported_after_the_grace() {
        let r = registry();
        let mut c = WriteCheck::new();
        c.check(
            1,
            ts(0),
            EntryType::Decision,
            &decision("allow", "gateway", None),
            &r,
        )
        .unwrap();
        assert_eq!(c.unrecorded(ts(60)).1, 0, "still within the grace");
        assert_eq!(
            c.unrecorded(ts(3 * 3_600)).1,
            0,
            "a long stream may still end"
        );
        let (listed, total) = c.unrecorded(ts(24 * 3_600 + 1));
        assert_eq!(total, 1);
        assert_eq!(listed[0].0, 1);
    }

    #[test]
    fn every_type_has_a_writer_and_only_accounts_are_reported() {
        for &kind in EntryType::ALL {
            let rule = rule(kind);
            assert!(!rule.written_by.is_empty());
            assert!(!rule.actors.is_empty(), "{kind}");
            let reported = rule.reporters != Reporters::Nobody;
            assert_eq!(
                reported,
                matches!(
                    kind,
                    EntryType::Receipt | EntryType::Note | EntryType::Verification
                ),
                "{kind}"
            );
        }
    }
}
