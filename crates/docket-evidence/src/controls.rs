//! The SOC 2 control mapping as data: each criterion of CONTROLS.md, the
//! entry types that answer it, and the tests whose results become
//! findings. The export and the verifier both read this table; a new test
//! is a new row here and a new arm in [`crate::fold`].

use docket_core::EntryType;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// What a test concluded.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The test failed: the entries show what the criterion forbids.
    NotSatisfied,
    /// Docket has no source for this yet; never counted as passing.
    NoSource,
    /// The test had nothing to test in the window (its figures say how
    /// many it checked: none); never counted as passing.
    NotObserved,
    /// The test passed on the entries of the window.
    Satisfied,
    /// A figure reported for the auditor, with no threshold to pass.
    Observed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::NotSatisfied => "not_satisfied",
            Status::NoSource => "no_source",
            Status::NotObserved => "not_observed",
            Status::Satisfied => "satisfied",
            Status::Observed => "observed",
        }
    }
}

/// One automated test of a criterion.
#[derive(Clone, Copy, Debug)]
pub struct TestDef {
    pub id: &'static str,
    pub title: &'static str,
    /// `None`: computed from the entries. `Some(why)`: Docket records
    /// nothing this test could read yet.
    pub no_source: Option<&'static str>,
}

/// One criterion of the Trust Services Criteria and how Docket evidences it.
#[derive(Clone, Copy, Debug)]
pub struct CriterionDef {
    pub id: &'static str,
    pub title: &'static str,
    /// The auditor's question.
    pub asks: &'static str,
    /// Entry types that answer it: what a sample for it is drawn from.
    pub sources: &'static [EntryType],
    pub tests: &'static [TestDef],
}

const fn test(id: &'static str, title: &'static str) -> TestDef {
    TestDef {
        id,
        title,
        no_source: None,
    }
}

const fn missing(id: &'static str, title: &'static str, why: &'static str) -> TestDef {
    TestDef {
        id,
        title,
        no_source: Some(why),
    }
}

use EntryType as T;

/// The mapping of CONTROLS.md.
pub const CRITERIA: &[CriterionDef] = &[
    CriterionDef {
        id: "CC6.1",
        title: "Logical access",
        asks: "Who or what initiated this action, and was it authorized?",
        sources: &[T::Receipt, T::Decision],
        tests: &[
            test(
                "cc6.1-registered-agent",
                "Every receipt names a registered, active agent and a credential",
            ),
            test(
                "cc6.1-authenticated-human",
                "Share of receipts with an authenticated (not merely asserted) human",
            ),
            test(
                "cc6.1-inactive-agents",
                "Actions by unknown, suspended or retired agents = 0",
            ),
            test(
                "cc6.1-agent-signatures",
                "Agents' signed requests verify with their registered DIDs",
            ),
            test(
                "cc6.1-customer-data",
                "Receipts that touched classified data, with the humans involved",
            ),
            test(
                "cc6.1-writers",
                "Every entry written by the writer its type allows; agent-reported entries never counted as observed",
            ),
        ],
    },
    CriterionDef {
        id: "CC6.2",
        title: "Provisioning",
        asks: "Was each identity provisioned through a formal process before it got access?",
        sources: &[
            T::ChangeRequested,
            T::ChangeApproved,
            T::AgentRegistered,
            T::CredentialIssued,
            T::UserCreated,
            T::UserUpdated,
        ],
        tests: &[
            test(
                "cc6.2-unapproved-registrations",
                "Registrations activated without approval = 0",
            ),
            test(
                "cc6.2-self-approved",
                "Registrations approved by their requester = 0",
            ),
            test(
                "cc6.2-credentials-inactive-agents",
                "Credentials issued to inactive agents = 0",
            ),
            test(
                "cc6.2-owner-kyc",
                "Agents whose owner is not identity-verified",
            ),
        ],
    },
    CriterionDef {
        id: "CC6.3",
        title: "Least privilege, removal",
        asks: "Is access removed when no longer needed?",
        sources: &[
            T::CredentialIssued,
            T::CredentialRevoked,
            T::AgentRetired,
            T::AccessReview,
        ],
        tests: &[
            test(
                "cc6.3-retired-live-credential",
                "Retired agents with a live credential = 0",
            ),
            test(
                "cc6.3-rotation",
                "Credentials older than the rotation period (90 days)",
            ),
            missing(
                "cc6.3-session-outlived-task",
                "Session credentials that outlived their task",
                "Docket does not record when an agent's task ends",
            ),
            test(
                "cc6.3-quarterly-review",
                "At least one completed access review per quarter",
            ),
        ],
    },
    CriterionDef {
        id: "CC6.6",
        title: "Tool permissions",
        asks: "Are tool permissions least-privilege?",
        sources: &[T::Decision, T::AgentRegistered, T::AgentUpdated],
        tests: &[
            test(
                "cc6.6-out-of-scope",
                "Out-of-scope attempts and their outcome",
            ),
            test(
                "cc6.6-exceeding-scope",
                "Agents whose effective permissions exceed their declared scope",
            ),
        ],
    },
    CriterionDef {
        id: "CC7.1",
        title: "Detection of changes",
        asks: "Would you notice a change to the system or its configuration?",
        sources: &[
            T::ChangeRequested,
            T::ChangeApproved,
            T::PolicyActivated,
            T::AgentUpdated,
            T::ProjectUpdated,
            T::LimitsSet,
        ],
        tests: &[
            missing(
                "cc7.1-checkpoint-continuity",
                "No checkpoint gap longer than the configured interval while entries arrive",
                "checkpoints carry no signed time, so their series cannot be checked offline",
            ),
            test(
                "cc7.1-unrecorded-changes",
                "Configuration changes without a change record = 0",
            ),
        ],
    },
    CriterionDef {
        id: "CC7.2",
        title: "Monitoring",
        asks: "How do you detect anomalous agent behaviour?",
        sources: &[T::Anomaly],
        tests: &[
            missing(
                "cc7.2-detector-schedule",
                "Detector schedule kept (no gap > 2x interval)",
                "anomaly detectors are not built yet",
            ),
            test("cc7.2-anomalies", "Anomalies by category and severity"),
        ],
    },
    CriterionDef {
        id: "CC7.3",
        title: "Evaluation of events",
        asks: "Are security events evaluated?",
        sources: &[T::Anomaly, T::IncidentEvent],
        tests: &[missing(
            "cc7.3-triage-sla",
            "Anomalies above the severity threshold triaged within the SLA",
            "triage is not recorded yet",
        )],
    },
    CriterionDef {
        id: "CC7.4",
        title: "Response, containment",
        asks: "When an agent misbehaves, how is it contained and resolved?",
        sources: &[
            T::IncidentEvent,
            T::KillSwitchEngaged,
            T::KillSwitchReleased,
            T::AgentSuspended,
            T::AgentResumed,
        ],
        tests: &[
            test(
                "cc7.4-containment",
                "Kill switches and suspensions in the window",
            ),
            missing(
                "cc7.4-incidents",
                "Incidents with owner, containment, resolution, root cause and corrective action",
                "incident management is not built yet",
            ),
        ],
    },
    CriterionDef {
        id: "CC8.1",
        title: "Change management",
        asks: "Who approved each change to policy, models, prompts, tool permissions?",
        sources: &[
            T::ChangeRequested,
            T::ChangeApproved,
            T::ChangeRejected,
            T::PolicyActivated,
            T::AgentUpdated,
            T::ProjectUpdated,
        ],
        tests: &[
            test(
                "cc8.1-unapproved-changes",
                "Changes applied without approval = 0",
            ),
            test(
                "cc8.1-self-approved",
                "Changes approved by their requester = 0",
            ),
            test(
                "cc8.1-test-evidence",
                "Changes applied without test evidence",
            ),
            test(
                "cc8.1-rollback-plan",
                "Changes requested without a rollback plan",
            ),
        ],
    },
    CriterionDef {
        id: "CC9.2",
        title: "Vendor management",
        asks: "Which AI vendors process your data, and how much?",
        sources: &[T::Receipt],
        tests: &[
            test(
                "cc9.2-vendor-share",
                "Share of calls and cost per provider and model",
            ),
            missing(
                "cc9.2-vendor-records",
                "Providers with no vendor record",
                "Docket keeps no vendor register yet",
            ),
        ],
    },
    CriterionDef {
        id: "A1.2",
        title: "Availability",
        asks: "Are the AI dependencies monitored?",
        sources: &[T::Receipt],
        tests: &[
            test(
                "a1.2-provider-errors",
                "Error and timeout rate per provider per day",
            ),
            test(
                "a1.2-unrecorded-outcomes",
                "Calls the gateway forwarded whose outcome no receipt records = 0",
            ),
            missing(
                "a1.2-gateway-down",
                "Periods where the gateway was down (checkpoint gaps)",
                "checkpoints carry no signed time",
            ),
        ],
    },
    CriterionDef {
        id: "PI1.x",
        title: "Processing integrity",
        asks: "Are outputs accurate, and how do you know?",
        sources: &[T::Verification, T::Review],
        tests: &[missing(
            "pi1-review-sampling",
            "Review sampling kept to schedule; accuracy per month",
            "output verification and review sampling are not built yet",
        )],
    },
    CriterionDef {
        id: "C1.1/C1.2",
        title: "Confidentiality",
        asks: "Is confidential data protected and disposed of?",
        sources: &[T::Receipt],
        tests: &[missing(
            "c1-content-encrypted",
            "Content stored only encrypted; disposals recorded",
            "content capture and disposal are not built yet (receipts hold digests only)",
        )],
    },
    CriterionDef {
        id: "P4.2/P4.3",
        title: "Retention and disposal",
        asks: "How long are records kept, and how are they disposed of?",
        sources: &[],
        tests: &[missing(
            "p4-retention",
            "Retention >= 365 days; every purge and crypto-shred recorded",
            "retention settings and purges are not recorded yet",
        )],
    },
];

/// Finds a criterion by its id, case-insensitively.
pub fn criterion(id: &str) -> Option<&'static CriterionDef> {
    CRITERIA.iter().find(|c| c.id.eq_ignore_ascii_case(id))
}

/// At most this many items are listed per test; the rest are counted.
pub const MAX_LISTED: usize = 500;

/// One entry a test points at, with why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Item {
    pub seq: u64,
    pub note: String,
}

/// The result of one test.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TestResult {
    pub id: String,
    pub title: String,
    pub status: Status,
    /// Why there is no source, for [`Status::NoSource`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Named figures: counts, shares, tables.
    pub figures: Map<String, Value>,
    /// Entries that failed the test (or that it lists), at most [`MAX_LISTED`].
    pub items: Vec<Item>,
    /// How many items were left out of `items`.
    pub items_omitted: u64,
}

/// The result of one criterion: its tests and the worst of their statuses.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CriterionResult {
    pub id: String,
    pub title: String,
    pub asks: String,
    pub sources: Vec<String>,
    /// Entries of the window of the source types.
    pub evidence_entries: u64,
    pub status: Status,
    pub tests: Vec<TestResult>,
}

/// The window a pack covers, as every derived file states it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WindowInfo {
    /// Log origin (the checkpoint key name).
    pub origin: String,
    /// RFC 3339, inclusive.
    pub from: String,
    /// RFC 3339, exclusive.
    pub to: String,
    /// First `seq` of the window and one past its last.
    pub first_seq: u64,
    pub end_seq: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// When the pack was made (RFC 3339).
    pub created: String,
}

/// `controls.json`: the per-criterion mapping, figures and findings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ControlsReport {
    pub format: String,
    pub window: WindowInfo,
    /// Entries of the window by type (disclosed ones only).
    pub entries_by_type: Map<String, Value>,
    /// Entries of other projects, present only as leaf hashes.
    pub withheld_entries: u64,
    pub criteria: Vec<CriterionResult>,
}

pub const CONTROLS_FORMAT: &str = "docket-controls/v2";

/// One provider or model in the vendor rollup.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VendorLine {
    pub provider: String,
    /// `None` for the provider's own total line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    pub calls: u64,
    pub errors: u64,
    pub cost_micro_usd: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Share of all calls, in parts per million (integers keep it exact).
    pub calls_ppm: u64,
    pub cost_ppm: u64,
}

/// `vendors.json`: share of calls and cost per provider and model, of the
/// calls Docket's gateway carried; what agents report of their own calls
/// is counted apart and in no share.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VendorRollup {
    pub calls: u64,
    pub cost_micro_usd: u64,
    /// Providers (model = None) each followed by their models, by calls descending.
    pub lines: Vec<VendorLine>,
    /// Receipts naming a provider that are the agent's own account.
    pub agent_reported_calls: u64,
    pub agent_reported_cost_micro_usd: u64,
}
