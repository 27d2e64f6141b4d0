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

/// Every automated test, by name. The fold dispatches on it without a
/// catch-all, so a test listed in [`CRITERIA`] without code, or code for
/// a test nobody lists, does not compile.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TestId {
    Cc61RegisteredAgent,
    Cc61AuthenticatedHuman,
    Cc61InactiveAgents,
    Cc61AgentSignatures,
    Cc61CustomerData,
    Cc61Writers,
    Cc62UnapprovedRegistrations,
    Cc62SelfApproved,
    Cc62CredentialsInactiveAgents,
    Cc62OwnerKyc,
    Cc63RetiredLiveCredential,
    Cc63Rotation,
    Cc63SessionOutlivedTask,
    Cc63QuarterlyReview,
    Cc66OutOfScope,
    Cc66ExceedingScope,
    Cc71CheckpointContinuity,
    Cc71UnrecordedChanges,
    Cc72DetectorSchedule,
    Cc72Anomalies,
    Cc73TriageSla,
    Cc74Containment,
    Cc74Incidents,
    Cc81UnapprovedChanges,
    Cc81SelfApproved,
    Cc81TestEvidence,
    Cc81RollbackPlan,
    Cc92VendorShare,
    Cc92VendorRecords,
    A12ProviderErrors,
    A12UnrecordedOutcomes,
    A12GatewayDown,
    Pi1ReviewSampling,
    C1ContentEncrypted,
    P4Retention,
}

impl TestId {
    /// The id `controls.json` and the OSCAL file carry.
    pub const fn as_str(self) -> &'static str {
        match self {
            TestId::Cc61RegisteredAgent => "cc6.1-registered-agent",
            TestId::Cc61AuthenticatedHuman => "cc6.1-authenticated-human",
            TestId::Cc61InactiveAgents => "cc6.1-inactive-agents",
            TestId::Cc61AgentSignatures => "cc6.1-agent-signatures",
            TestId::Cc61CustomerData => "cc6.1-customer-data",
            TestId::Cc61Writers => "cc6.1-writers",
            TestId::Cc62UnapprovedRegistrations => "cc6.2-unapproved-registrations",
            TestId::Cc62SelfApproved => "cc6.2-self-approved",
            TestId::Cc62CredentialsInactiveAgents => "cc6.2-credentials-inactive-agents",
            TestId::Cc62OwnerKyc => "cc6.2-owner-kyc",
            TestId::Cc63RetiredLiveCredential => "cc6.3-retired-live-credential",
            TestId::Cc63Rotation => "cc6.3-rotation",
            TestId::Cc63SessionOutlivedTask => "cc6.3-session-outlived-task",
            TestId::Cc63QuarterlyReview => "cc6.3-quarterly-review",
            TestId::Cc66OutOfScope => "cc6.6-out-of-scope",
            TestId::Cc66ExceedingScope => "cc6.6-exceeding-scope",
            TestId::Cc71CheckpointContinuity => "cc7.1-checkpoint-continuity",
            TestId::Cc71UnrecordedChanges => "cc7.1-unrecorded-changes",
            TestId::Cc72DetectorSchedule => "cc7.2-detector-schedule",
            TestId::Cc72Anomalies => "cc7.2-anomalies",
            TestId::Cc73TriageSla => "cc7.3-triage-sla",
            TestId::Cc74Containment => "cc7.4-containment",
            TestId::Cc74Incidents => "cc7.4-incidents",
            TestId::Cc81UnapprovedChanges => "cc8.1-unapproved-changes",
            TestId::Cc81SelfApproved => "cc8.1-self-approved",
            TestId::Cc81TestEvidence => "cc8.1-test-evidence",
            TestId::Cc81RollbackPlan => "cc8.1-rollback-plan",
            TestId::Cc92VendorShare => "cc9.2-vendor-share",
            TestId::Cc92VendorRecords => "cc9.2-vendor-records",
            TestId::A12ProviderErrors => "a1.2-provider-errors",
            TestId::A12UnrecordedOutcomes => "a1.2-unrecorded-outcomes",
            TestId::A12GatewayDown => "a1.2-gateway-down",
            TestId::Pi1ReviewSampling => "pi1-review-sampling",
            TestId::C1ContentEncrypted => "c1-content-encrypted",
            TestId::P4Retention => "p4-retention",
        }
    }
}

/// One automated test of a criterion.
#[derive(Clone, Copy, Debug)]
pub struct TestDef {
    pub id: TestId,
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

const fn test(id: TestId, title: &'static str) -> TestDef {
    TestDef {
        id,
        title,
        no_source: None,
    }
}

const fn missing(id: TestId, title: &'static str, why: &'static str) -> TestDef {
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
                TestId::Cc61RegisteredAgent,
                "Every receipt names a registered, active agent and a credential",
            ),
            test(
                TestId::Cc61AuthenticatedHuman,
                "Share of receipts with an authenticated (not merely asserted) human",
            ),
            test(
                TestId::Cc61InactiveAgents,
                "Actions by unknown, suspended or retired agents = 0",
            ),
            test(
                TestId::Cc61AgentSignatures,
                "Agents' signed requests verify with their registered DIDs",
            ),
            test(
                TestId::Cc61CustomerData,
                "Receipts that touched classified data, with the humans involved",
            ),
            test(
                TestId::Cc61Writers,
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
                TestId::Cc62UnapprovedRegistrations,
                "Registrations activated without approval = 0",
            ),
            test(
                TestId::Cc62SelfApproved,
                "Registrations approved by their requester = 0",
            ),
            test(
                TestId::Cc62CredentialsInactiveAgents,
                "Credentials issued to inactive agents = 0",
            ),
            test(
                TestId::Cc62OwnerKyc,
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
                TestId::Cc63RetiredLiveCredential,
                "Retired agents with a live credential = 0",
            ),
            test(
                TestId::Cc63Rotation,
                "Credentials older than the rotation period (90 days)",
            ),
            missing(
                TestId::Cc63SessionOutlivedTask,
                "Session credentials that outlived their task",
                "Docket does not record when an agent's task ends",
            ),
            test(
                TestId::Cc63QuarterlyReview,
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
                TestId::Cc66OutOfScope,
                "Out-of-scope attempts and their outcome",
            ),
            test(
                TestId::Cc66ExceedingScope,
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
                TestId::Cc71CheckpointContinuity,
                "No checkpoint gap longer than the configured interval while entries arrive",
                "checkpoints carry no signed time, so their series cannot be checked offline",
            ),
            test(
                TestId::Cc71UnrecordedChanges,
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
                TestId::Cc72DetectorSchedule,
                "Detector schedule kept (no gap > 2x interval)",
                "anomaly detectors are not built yet",
            ),
            test(TestId::Cc72Anomalies, "Anomalies by category and severity"),
        ],
    },
    CriterionDef {
        id: "CC7.3",
        title: "Evaluation of events",
        asks: "Are security events evaluated?",
        sources: &[T::Anomaly, T::IncidentEvent],
        tests: &[missing(
            TestId::Cc73TriageSla,
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
                TestId::Cc74Containment,
                "Kill switches and suspensions in the window",
            ),
            missing(
                TestId::Cc74Incidents,
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
                TestId::Cc81UnapprovedChanges,
                "Changes applied without approval = 0",
            ),
            test(
                TestId::Cc81SelfApproved,
                "Changes approved by their requester = 0",
            ),
            test(
                TestId::Cc81TestEvidence,
                "Changes applied without test evidence",
            ),
            test(
                TestId::Cc81RollbackPlan,
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
                TestId::Cc92VendorShare,
                "Share of calls and cost per provider and model",
            ),
            missing(
                TestId::Cc92VendorRecords,
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
                TestId::A12ProviderErrors,
                "Error and timeout rate per provider per day",
            ),
            test(
                TestId::A12UnrecordedOutcomes,
                "Calls the gateway forwarded whose outcome no receipt records = 0",
            ),
            missing(
                TestId::A12GatewayDown,
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
            TestId::Pi1ReviewSampling,
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
            TestId::C1ContentEncrypted,
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
            TestId::P4Retention,
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
