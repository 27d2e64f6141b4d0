//! Approval requests: an action policy held for a human, bound to the
//! digest of the exact request, decided once by an authenticated approver,
//! usable once, and dead after its expiry. The state is a fold of the
//! `approval.*` entries of the last approval lifetime, so a restart neither
//! forgets a decision nor lets a used approval be used again.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::time::Duration;

use docket_core::identity::{AgentId, ProjectId, UserId};
use docket_core::{Entry, EntryType, Timestamp};
use docket_store::{Ledger, Order, Query, StoreError};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::Notify;

/// Where an approval stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Status {
    Pending,
    Approved {
        by: UserId,
        at: Timestamp,
        seq: u64,
    },
    Denied {
        by: UserId,
        at: Timestamp,
        seq: u64,
        reason: String,
    },
    /// Approved, then consumed by the call it was for.
    Used {
        by: UserId,
        seq: u64,
    },
}

/// One held action.
#[derive(Clone, Debug, Serialize)]
pub struct Approval {
    /// `seq` of the `approval.requested` entry.
    pub id: u64,
    pub agent: AgentId,
    pub project: ProjectId,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub human: Option<UserId>,
    /// `seq` of the decision entry that held the action.
    pub decision: u64,
    /// SHA-256 of the exact request (method, path, body): only that request
    /// may use the approval.
    pub request_sha256: String,
    /// What approvers are shown, and its digest, which they echo back.
    pub summary: Value,
    pub summary_sha256: String,
    pub requested_at: Timestamp,
    pub expires_at: Timestamp,
    #[serde(flatten)]
    pub status: Status,
}

impl Approval {
    pub fn expired(&self, now: Timestamp) -> bool {
        now >= self.expires_at
    }

    /// "pending", "approved", "denied", "used" or "expired".
    pub fn state(&self, now: Timestamp) -> &'static str {
        match &self.status {
            Status::Used { .. } => "used",
            Status::Denied { .. } => "denied",
            _ if self.expired(now) => "expired",
            Status::Pending => "pending",
            Status::Approved { .. } => "approved",
        }
    }
}

/// The on-ledger bodies (besides `actor`, which the writer adds).
#[derive(Serialize, Deserialize)]
pub struct RequestedBody {
    pub agent: AgentId,
    pub project: ProjectId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub human: Option<UserId>,
    pub decision: u64,
    pub request_sha256: String,
    pub summary: Value,
    pub summary_sha256: String,
    pub expires_at: Timestamp,
}

#[derive(Serialize, Deserialize)]
pub struct DecidedBody {
    pub approval: u64,
    pub agent: AgentId,
    pub project: ProjectId,
    /// "approve" or "deny".
    pub decision: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What the approver was shown, and its digest as they echoed it.
    pub shown: Value,
    pub shown_sha256: String,
    pub by: UserId,
}

#[derive(Serialize, Deserialize)]
pub struct UsedBody {
    pub approval: u64,
    pub agent: AgentId,
    pub project: ProjectId,
}

#[derive(Default)]
pub struct Approvals {
    map: Mutex<HashMap<u64, Approval>>,
    /// Woken on every decision; waiters re-read their approval.
    decided: Notify,
}

impl std::fmt::Debug for Approvals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Approvals { .. }")
    }
}

impl Approvals {
    /// Folds the approval entries of the last `ttl` from the ledger.
    /// Blocking: reads the store.
    pub fn load(ledger: &Ledger, ttl: Duration) -> Result<Self, StoreError> {
        let this = Self::default();
        let since = Timestamp::from_micros(
            Timestamp::now().as_micros() - i64::try_from(ttl.as_micros()).unwrap_or(i64::MAX),
        );
        let query = Query {
            from: Some(since),
            types: vec![
                EntryType::ApprovalRequested,
                EntryType::ApprovalDecided,
                EntryType::ApprovalUsed,
            ],
            order: Order::Asc,
            ..Query::default()
        };
        ledger.scan(query, |entry| {
            this.apply(&entry).map_err(|e| {
                StoreError::Corrupt(format!("approval entry at seq {}: {e}", entry.seq))
            })?;
            Ok::<_, StoreError>(ControlFlow::Continue(()))
        })?;
        Ok(this)
    }

    /// Folds one appended approval entry in.
    pub fn apply(&self, entry: &Entry) -> Result<(), serde_json::Error> {
        self.apply_parts(entry.kind, entry.seq.0, entry.ts, entry.body_value())
    }

    /// [`Approvals::apply`] from the parts the appender acknowledged.
    pub fn apply_parts(
        &self,
        kind: EntryType,
        seq: u64,
        ts: Timestamp,
        body: Value,
    ) -> Result<(), serde_json::Error> {
        let mut map = self.map.lock();
        match kind {
            EntryType::ApprovalRequested => {
                let b: RequestedBody = serde_json::from_value(body)?;
                // Forget what can no longer matter.
                map.retain(|_, a| !a.expired(ts));
                map.insert(
                    seq,
                    Approval {
                        id: seq,
                        agent: b.agent,
                        project: b.project,
                        human: b.human,
                        decision: b.decision,
                        request_sha256: b.request_sha256,
                        summary: b.summary,
                        summary_sha256: b.summary_sha256,
                        requested_at: ts,
                        expires_at: b.expires_at,
                        status: Status::Pending,
                    },
                );
            }
            EntryType::ApprovalDecided => {
                let b: DecidedBody = serde_json::from_value(body)?;
                if let Some(a) = map.get_mut(&b.approval) {
                    a.status = if b.decision == "approve" {
                        Status::Approved {
                            by: b.by,
                            at: ts,
                            seq,
                        }
                    } else {
                        Status::Denied {
                            by: b.by,
                            at: ts,
                            seq,
                            reason: b.reason.unwrap_or_default(),
                        }
                    };
                }
                drop(map);
                self.decided.notify_waiters();
            }
            EntryType::ApprovalUsed => {
                let b: UsedBody = serde_json::from_value(body)?;
                if let Some(a) = map.get_mut(&b.approval)
                    && let Status::Approved { by, .. } = &a.status
                {
                    a.status = Status::Used {
                        by: by.clone(),
                        seq,
                    };
                }
            }
            _ => {}
        }
        Ok(())
    }

    pub fn get(&self, id: u64) -> Option<Approval> {
        self.map.lock().get(&id).cloned()
    }

    /// Every approval still remembered, newest first.
    pub fn list(&self) -> Vec<Approval> {
        let mut all: Vec<Approval> = self.map.lock().values().cloned().collect();
        all.sort_by_key(|a| std::cmp::Reverse(a.id));
        all
    }

    /// Waits until approval `id` is decided or `deadline` passes, and
    /// returns it as it then stands.
    pub async fn wait(&self, id: u64, deadline: tokio::time::Instant) -> Option<Approval> {
        loop {
            let notified = self.decided.notified();
            let current = self.get(id)?;
            if current.status != Status::Pending
                || tokio::time::Instant::now() >= deadline
                || current.expired(Timestamp::now())
            {
                return Some(current);
            }
            let until_expiry = Duration::from_micros(
                u64::try_from(current.expires_at.as_micros() - Timestamp::now().as_micros())
                    .unwrap_or(0),
            );
            let wake = deadline.min(tokio::time::Instant::now() + until_expiry);
            let _ = tokio::time::timeout_at(wake, notified).await;
        }
    }
}
