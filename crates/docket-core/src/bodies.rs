//! The typed bodies of the entries Docket writes or accepts besides the
//! identity events ([`crate::identity::event`]): receipts, decisions,
//! approvals, exports, notes and verifications. Writers build these
//! structs; the server's folds, the evidence fold and both verifiers read
//! entries back through them, so a member means one thing everywhere.
//!
//! Amounts (costs, tokens) are unsigned integers: a negative cost does not
//! parse. Stored bodies are read leniently about members added later;
//! bodies an agent or a person reports through `POST /entries` are read
//! strictly (see [`parse_reported`]).

use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::Timestamp;
use crate::identity::{Actor, AgentId, CredentialId, ProjectId, UserId};

/// What an agent wants to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    CallModel,
    CallTool,
    ReadData,
    WriteData,
    Embed,
}

impl Action {
    /// Every action, in the order Docket lists them.
    pub const ALL: [Action; 5] = [
        Action::CallModel,
        Action::CallTool,
        Action::ReadData,
        Action::WriteData,
        Action::Embed,
    ];

    /// The action's name, as in the JSON and in `Docket::Action::"<name>"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::CallModel => "call_model",
            Action::CallTool => "call_tool",
            Action::ReadData => "read_data",
            Action::WriteData => "write_data",
            Action::Embed => "embed",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What policy says about a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Allow,
    Deny,
    RequireApproval,
}

impl Outcome {
    /// The outcome's name, as in the JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Allow => "allow",
            Outcome::Deny => "deny",
            Outcome::RequireApproval => "require_approval",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The stage of a decision that settled its outcome.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    KillSwitch,
    Scope,
    Policy,
    Budget,
    RateLimit,
    Concurrency,
    Approval,
}

/// Whose account of an action an entry is.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Docket's gateway carried the call and saw its outcome itself.
    Gateway,
    /// The agent's own word (`authorize`/`record`, `POST /entries`).
    AgentReported,
    /// A person's own word (`POST /entries`).
    HumanReported,
}

impl Source {
    /// Stored receipts and notes from before sources were stamped were
    /// appended through `POST /entries`: the caller's word, never observed.
    fn unstated() -> Source {
        Source::AgentReported
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Source::Gateway => "gateway",
            Source::AgentReported => "agent_reported",
            Source::HumanReported => "human_reported",
        }
    }
}

/// What an action is applied to, as decisions and held summaries name it:
/// a model (and its provider), a tool or a dataset, with the data classes
/// and environment the call declared.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ResourceRef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data_classes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
}

/// The policy version behind a decision.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PolicyRef {
    /// `None`: no version was ever activated (the built-in deny-all set).
    pub version: Option<u64>,
    pub sha256: String,
    /// The ids of the policies that determined the outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub determining: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

/// A `decision` entry: who asked to do what, the outcome and why, and the
/// policy version and inputs behind it. Written by Docket alone.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DecisionBody {
    pub agent: AgentId,
    pub project: ProjectId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub human: Option<UserId>,
    pub credential: CredentialId,
    pub action: Action,
    #[serde(flatten)]
    pub resource: ResourceRef,
    pub outcome: Outcome,
    pub stage: Stage,
    pub reason: String,
    pub policy: PolicyRef,
    /// What Cedar saw (a `docket_policy::Request`), kept as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<Box<RawValue>>,
    pub request_sha256: String,
    #[serde(default)]
    pub estimated_cost_micro_usd: u64,
    /// Digests and flags of the request worth keeping (never payloads).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<Box<RawValue>>,
    /// The approval a resumed call came back with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<u64>,
    /// Who reports the action decided on: the gateway (model calls it
    /// carries) or the agent (`authorize`).
    pub source: Source,
    /// The agent that asked.
    pub actor: Actor,
}

/// A `receipt` entry: one action and its outcome. The gateway writes one
/// for every call it carried (`source: gateway`); `POST /api/v1/record`
/// and `POST /entries` write the agent's own account (`agent_reported`),
/// never counted as observed.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ReceiptBody {
    pub agent: Option<AgentId>,
    pub project: Option<ProjectId>,
    /// The agent's credential. Receipts appended before it was stamped
    /// here carry it only in `actor`: read it with [`ReceiptBody::credential`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<CredentialId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub human: Option<UserId>,
    /// The task of the session credential used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    #[serde(default = "Source::unstated")]
    pub source: Source,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<Action>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data_classes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// `seq` of the decision that let the action through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<u64>,
    /// The provider API path the gateway served (`/v1/chat/completions`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<u64>,
    /// "provider" (the answer said), "estimated" or "none".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_micro_usd: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_us: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    /// "ok", "error", "upstream_error", "incomplete", "cut".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// A tool's own status code, as the agent reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub actor: Actor,
}

impl ReceiptBody {
    /// A receipt of an action by `agent` with `credential`, in `source`'s
    /// words; what it did and how it ended are set by the writer.
    pub fn new(
        agent: AgentId,
        project: ProjectId,
        credential: CredentialId,
        source: Source,
        actor: Actor,
    ) -> Self {
        Self {
            agent: Some(agent),
            project: Some(project),
            credential: Some(credential),
            human: None,
            session: None,
            source,
            action: None,
            provider: None,
            model: None,
            tool: None,
            dataset: None,
            data_classes: Vec::new(),
            environment: None,
            decision: None,
            approval: None,
            api: None,
            stream: None,
            request_sha256: None,
            input_sha256: None,
            output_sha256: None,
            response_sha256: None,
            response_id: None,
            input_tokens: None,
            output_tokens: None,
            usage_source: None,
            cost_micro_usd: None,
            latency_us: None,
            latency_ms: None,
            outcome: None,
            status: None,
            upstream_status: None,
            error: None,
            actor,
        }
    }

    /// The credential the action was taken with: the body's own member,
    /// or, for receipts from before it was stamped there, the actor's.
    pub fn credential(&self) -> Option<&CredentialId> {
        self.credential.as_ref().or(match &self.actor {
            Actor::Agent { credential, .. } => Some(credential),
            _ => None,
        })
    }

    /// Members only Docket's gateway sets; an agent's own account names
    /// none of them.
    pub fn gateway_member(&self) -> Option<&'static str> {
        [
            ("decision", self.decision.is_some()),
            ("approval", self.approval.is_some()),
            ("api", self.api.is_some()),
            ("stream", self.stream.is_some()),
            ("request_sha256", self.request_sha256.is_some()),
            ("response_sha256", self.response_sha256.is_some()),
            ("usage_source", self.usage_source.is_some()),
            ("latency_us", self.latency_us.is_some()),
            ("upstream_status", self.upstream_status.is_some()),
        ]
        .into_iter()
        .find_map(|(name, set)| set.then_some(name))
    }

    pub fn tokens(&self) -> u64 {
        self.input_tokens
            .unwrap_or(0)
            .saturating_add(self.output_tokens.unwrap_or(0))
    }
}

/// What an approver is shown about a held action; its digest is what they
/// echo back when they decide.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HeldSummary {
    pub agent: AgentId,
    pub project: ProjectId,
    pub human: Option<UserId>,
    pub action: Action,
    #[serde(flatten)]
    pub resource: ResourceRef,
    pub estimated_cost_micro_usd: u64,
    pub request_sha256: String,
    pub policy_version: Option<u64>,
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<Value>,
}

/// `approval.requested`: an action policy held for a human. Docket alone.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ApprovalRequestedBody {
    pub agent: AgentId,
    pub project: ProjectId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub human: Option<UserId>,
    /// `seq` of the decision that held the action.
    pub decision: u64,
    pub request_sha256: String,
    pub summary: Value,
    pub summary_sha256: String,
    pub expires_at: Timestamp,
    pub actor: Actor,
}

/// An approver's answer.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalVerdict {
    Approve,
    Deny,
}

/// `approval.decided`: written for an authenticated approver by
/// `POST /api/v1/approvals/{id}/decide`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ApprovalDecidedBody {
    pub approval: u64,
    pub agent: AgentId,
    pub project: ProjectId,
    pub decision: ApprovalVerdict,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What the approver was shown, and its digest as they echoed it.
    pub shown: Value,
    pub shown_sha256: String,
    pub by: UserId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub human: Option<UserId>,
    pub actor: Actor,
}

/// `approval.used`: the approved call went ahead, so the approval is spent.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ApprovalUsedBody {
    pub approval: u64,
    pub agent: AgentId,
    pub project: ProjectId,
    pub actor: Actor,
}

/// `export`: an evidence pack was made.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExportBody {
    pub from: Timestamp,
    pub to: Timestamp,
    pub first_seq: u64,
    pub end_seq: u64,
    pub tree_size: u64,
    pub entries: u64,
    pub withheld: u64,
    pub manifest_sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<ProjectId>,
    /// Where a scheduled export wrote the pack.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Who exported: a person through the API or CLI, or Docket's schedule.
    pub actor: Actor,
}

/// `note`: free-form remarks an agent or a person adds to the record.
/// Counted as evidence of nothing; attributed like every entry.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NoteBody {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<ProjectId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub human: Option<UserId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<CredentialId>,
    #[serde(default = "Source::unstated")]
    pub source: Source,
    pub actor: Actor,
    /// Whatever else the note says.
    #[serde(flatten)]
    pub content: Map<String, Value>,
}

/// A verifier's verdict on an output.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Pass,
    Fail,
    Uncertain,
}

/// `verification`: an agent's (or a verifier service's) check of an
/// output, in its own words.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct VerificationBody {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<ProjectId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub human: Option<UserId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<CredentialId>,
    /// `seq` of the receipt whose output was checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt: Option<u64>,
    /// How it was checked, e.g. "json-schema", "citation-check", "llm-judge".
    pub method: String,
    pub verdict: Verdict,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim_sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<String>,
    /// What was done with the output: "delivered", "rephrased", "escalated".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taken: Option<String>,
    #[serde(default = "Source::unstated")]
    pub source: Source,
    pub actor: Actor,
}

/// Reads a stored body as `T`, passing over members this version does not
/// know. The error names the member at fault.
pub fn parse<T: DeserializeOwned>(body: &str) -> Result<T, String> {
    let de = &mut serde_json::Deserializer::from_str(body);
    serde_path_to_error::deserialize(de).map_err(|e| describe(&e))
}

/// [`parse`] from a parsed value.
pub fn parse_value<T: DeserializeOwned>(body: &Value) -> Result<T, String> {
    serde_path_to_error::deserialize(body).map_err(|e| describe(&e))
}

/// Reads a body someone outside Docket wrote: a member `T` does not have
/// is refused by name, like one of the wrong type.
pub fn parse_strict<T: DeserializeOwned>(body: &Value) -> Result<T, String> {
    let mut unknown = Vec::new();
    let mut note = |path: serde_ignored::Path<'_>| unknown.push(path.to_string());
    let de = serde_ignored::Deserializer::new(body, &mut note);
    let parsed = serde_path_to_error::deserialize(de).map_err(|e| describe(&e))?;
    match unknown.first() {
        None => Ok(parsed),
        Some(path) => Err(format!("{path}: unknown member")),
    }
}

fn describe<E: fmt::Display>(e: &serde_path_to_error::Error<E>) -> String {
    let path = e.path().to_string();
    if path == "." {
        e.inner().to_string()
    } else {
        format!("{path}: {}", e.inner())
    }
}

/// Reads what an agent or a person reports through `POST /entries` as the
/// typed body of `kind`, after the server stamped `actor` and `source`,
/// and checks the members only Docket may set are absent. Returns the
/// body as it will be stored.
pub fn parse_reported(kind: crate::EntryType, body: &Value) -> Result<Value, String> {
    use crate::EntryType as T;
    fn back<B: Serialize>(b: &B) -> Result<Value, String> {
        serde_json::to_value(b).map_err(|e| e.to_string())
    }
    match kind {
        T::Receipt => {
            let r: ReceiptBody = parse_strict(body)?;
            if let Some(member) = r.gateway_member() {
                return Err(format!(
                    "{member}: set only by Docket's gateway on the receipts it writes; an agent's own account leaves it out"
                ));
            }
            back(&r)
        }
        T::Note => back(&parse_value::<NoteBody>(body)?),
        T::Verification => back(&parse_strict::<VerificationBody>(body)?),
        other => Err(format!(
            "{other} entries are not reported through POST /entries"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::HumanAssurance;

    fn agent_actor() -> Actor {
        Actor::Agent {
            agent: "bot".parse().unwrap(),
            did: crate::identity::Did::from_key(
                &ed25519_dalek::SigningKey::from_bytes(&[7; 32]).verifying_key(),
            ),
            credential: "abcdefghij234567".parse().unwrap(),
            task: None,
            human: None,
            human_assurance: HumanAssurance::None,
            signature: None,
        }
    }

    #[test]
    fn reported_receipts_are_refused_naming_the_member_at_fault() {
        for (member, value, says) in [
            // A negative cost would lower the agent's spending.
            (
                "cost_micro_usd",
                serde_json::json!(-1_000_000_000_000i64),
                "cost_micro_usd:",
            ),
            // Only the gateway links a receipt to its decision.
            ("decision", serde_json::json!(4), "decision:"),
            ("costs", serde_json::json!(1), "costs: unknown member"),
        ] {
            let mut body = serde_json::json!({
                "agent": "bot", "project": "p", "actor": agent_actor(), "source": "agent_reported",
            });
            body[member] = value;
            let e = parse_reported(crate::EntryType::Receipt, &body).unwrap_err();
            assert!(e.starts_with(says), "{member}: {e}");
        }
    }

    #[test]
    fn a_receipt_without_source_reads_as_the_agents_word() {
        let body = serde_json::json!({"agent": "bot", "actor": agent_actor()});
        let r: ReceiptBody = parse_value(&body).unwrap();
        assert_eq!(r.source, Source::AgentReported);
        assert_eq!(r.credential().map(|c| c.as_str()), Some("abcdefghij234567"));
    }
}
