//! Approval requests: an action policy held for a human, bound to the
//! digest of the exact request, decided once by an authenticated approver,
//! usable once, and dead after its expiry. The state is a fold of the
//! `approval.*` entries of the last approval lifetime, so a restart neither
//! forgets a decision nor lets a used approval be used again.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::time::Duration;

use docket_core::bodies::{
    self, ApprovalDecidedBody, ApprovalRequestedBody, ApprovalUsedBody, ApprovalVerdict,
};
use docket_core::identity::{AgentId, ProjectId, Registry, UserId};
use docket_core::writers;
use docket_core::{Entry, EntryType, Timestamp};
use docket_store::{Ledger, Order, Query, StoreError};
use parking_lot::Mutex;
use serde::Serialize;
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

#[derive(Default)]
pub struct Approvals {
    map: Mutex<HashMap<u64, Approval>>,
    /// Approvals a call is using or an approver deciding right now.
    busy: Mutex<std::collections::HashSet<u64>>,
    /// Woken on every decision; waiters re-read their approval.
    decided: Notify,
}

/// See [`Approvals::claim`].
pub struct ApprovalClaim<'a> {
    approvals: &'a Approvals,
    id: u64,
}

impl ApprovalClaim<'_> {
    /// Gives up releasing on drop: whoever takes the id calls
    /// [`Approvals::release`] when done.
    pub fn hand_over(self) -> u64 {
        let id = self.id;
        std::mem::forget(self);
        id
    }
}

impl Drop for ApprovalClaim<'_> {
    fn drop(&mut self) {
        self.approvals.busy.lock().remove(&self.id);
    }
}

impl std::fmt::Debug for Approvals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Approvals { .. }")
    }
}

impl Approvals {
    /// Folds the approval entries of the last `ttl` from the ledger. An
    /// entry that does not read as its type is reported and passed over.
    /// Blocking: reads the store.
    pub fn load(ledger: &Ledger, ttl: Duration, registry: &Registry) -> Result<Self, StoreError> {
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
            if let Err(problem) = this.apply(&entry, Some(registry)) {
                crate::integrity::finding("approvals", entry.seq.0, &problem);
            }
            Ok::<_, StoreError>(ControlFlow::Continue(()))
        })?;
        Ok(this)
    }

    /// Folds one logged approval entry in. With `registry`, a decision is
    /// held to the four-eyes rule (never the bound human, the agent's owner
    /// or its requester): one that breaks it is refused. Roles are not
    /// checked again here: the route checked them when the approver
    /// decided, and one removed since does not undo what was decided.
    pub fn apply(&self, entry: &Entry, registry: Option<&Registry>) -> Result<(), String> {
        let (seq, ts, body) = (entry.seq.0, entry.ts, entry.body_json());
        match entry.kind {
            EntryType::ApprovalRequested => self.requested(seq, ts, bodies::parse(body)?),
            EntryType::ApprovalDecided => {
                let b: ApprovalDecidedBody = bodies::parse(body)?;
                writers::check_decided(&b)?;
                if let Some(registry) = registry {
                    let bound = self.get(b.approval).and_then(|a| a.human);
                    writers::four_eyes(registry, &b.by, &b.agent, bound.as_ref())?;
                }
                self.decided(seq, ts, b)
            }
            EntryType::ApprovalUsed => self.used(seq, &bodies::parse(body)?),
            other => return Err(format!("{other} is not an approval entry")),
        }
        Ok(())
    }

    /// An action was held: `seq` is the request's id.
    pub fn requested(&self, seq: u64, ts: Timestamp, b: ApprovalRequestedBody) {
        let mut map = self.map.lock();
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

    /// An approver decided; only a pending request of the same agent
    /// changes, so a decision can neither be taken back nor moved.
    pub fn decided(&self, seq: u64, ts: Timestamp, b: ApprovalDecidedBody) {
        let mut map = self.map.lock();
        if let Some(a) = map.get_mut(&b.approval)
            && a.agent == b.agent
            && a.status == Status::Pending
        {
            a.status = match b.decision {
                ApprovalVerdict::Approve => Status::Approved {
                    by: b.by,
                    at: ts,
                    seq,
                },
                ApprovalVerdict::Deny => Status::Denied {
                    by: b.by,
                    at: ts,
                    seq,
                    reason: b.reason.unwrap_or_default(),
                },
            };
        }
        drop(map);
        self.decided.notify_waiters();
    }

    /// An approved call went ahead.
    pub fn used(&self, seq: u64, b: &ApprovalUsedBody) {
        let mut map = self.map.lock();
        if let Some(a) = map.get_mut(&b.approval)
            && a.agent == b.agent
            && let Status::Approved { by, .. } = &a.status
        {
            a.status = Status::Used {
                by: by.clone(),
                seq,
            };
        }
    }

    /// Takes approval `id` for one use or one decision until the claim is
    /// dropped; `None` while someone else holds it.
    pub fn claim(&self, id: u64) -> Option<ApprovalClaim<'_>> {
        self.busy.lock().insert(id).then_some(ApprovalClaim {
            approvals: self,
            id,
        })
    }

    /// Ends a claim handed over with [`ApprovalClaim::hand_over`].
    pub fn release(&self, id: u64) {
        self.busy.lock().remove(&id);
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
