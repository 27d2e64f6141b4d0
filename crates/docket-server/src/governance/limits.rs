//! Budgets, rate limits and concurrency caps, counted in memory on the
//! request path. At start, budgets are rebuilt from this month's receipts
//! (the ledger is the record of what was spent) and rate windows from the
//! last two minutes' allow decisions and receipts; in-flight counts start
//! empty (a restart ends every call under way).

use std::collections::HashMap;
use std::sync::Arc;

use docket_core::Timestamp;
use docket_core::identity::governance::{LimitTarget, Limits};
use parking_lot::Mutex;

const MINUTE_MICROS: i64 = 60_000_000;
const DAY_MICROS: i64 = 86_400_000_000;

/// Why a call was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trip {
    pub stage: Stage,
    pub reason: String,
}

/// The containment stage that refused a call.
#[derive(Copy, Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Budget,
    RateLimit,
    Concurrency,
}

/// UTC calendar month of a timestamp, as year * 12 + month.
fn month_of(ts: Timestamp) -> i64 {
    let dt = ts.to_datetime();
    i64::from(dt.year()) * 12 + i64::from(u8::from(dt.month()))
}

fn day_of(ts: Timestamp) -> i64 {
    ts.as_micros().div_euclid(DAY_MICROS)
}

#[derive(Default, Debug)]
struct Counters {
    /// The minute (since the epoch) `cur_*` count.
    minute: i64,
    cur_requests: u64,
    prev_requests: u64,
    cur_tokens: u64,
    prev_tokens: u64,
    in_flight: u32,
    day: i64,
    spent_day: i64,
    month: i64,
    spent_month: i64,
    /// Estimates of calls that are under way, not yet settled.
    reserved: i64,
}

impl Counters {
    fn roll(&mut self, now: Timestamp) {
        self.roll_window(now);
        self.roll_spend(now);
    }

    fn roll_window(&mut self, now: Timestamp) {
        let minute = now.as_micros().div_euclid(MINUTE_MICROS);
        if minute != self.minute {
            if minute == self.minute + 1 {
                self.prev_requests = self.cur_requests;
                self.prev_tokens = self.cur_tokens;
            } else {
                self.prev_requests = 0;
                self.prev_tokens = 0;
            }
            self.cur_requests = 0;
            self.cur_tokens = 0;
            self.minute = minute;
        }
    }

    fn roll_spend(&mut self, now: Timestamp) {
        let day = day_of(now);
        if day != self.day {
            self.day = day;
            self.spent_day = 0;
        }
        let month = month_of(now);
        if month != self.month {
            self.month = month;
            self.spent_month = 0;
        }
    }

    /// Sliding-window estimate of the last 60 s: all of this minute plus
    /// the part of the previous minute still inside the window.
    fn window(cur: u64, prev: u64, now: Timestamp) -> u64 {
        let into = now.as_micros().rem_euclid(MINUTE_MICROS) as u128;
        let left = (MINUTE_MICROS as u128 - into) * prev as u128 / MINUTE_MICROS as u128;
        cur + left as u64
    }
}

/// One call's claim on the counters, released when dropped. Settling it
/// with the real cost and tokens replaces the estimate.
pub struct Permit {
    limiter: Arc<Limiter>,
    targets: Vec<LimitTarget>,
    estimate: i64,
    estimated_tokens: u64,
    settled: bool,
}

impl std::fmt::Debug for Permit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Permit")
            .field("targets", &self.targets)
            .field("estimate", &self.estimate)
            .finish()
    }
}

impl Permit {
    /// Records what the call really cost, then releases its slot.
    pub fn settle(mut self, cost_micro_usd: i64, tokens: u64, now: Timestamp) {
        self.limiter.settle(
            &self.targets,
            self.estimate,
            cost_micro_usd,
            self.estimated_tokens,
            tokens,
            now,
        );
        self.settled = true;
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if !self.settled {
            // The call never completed: free the estimate, spend nothing.
            self.limiter.settle(
                &self.targets,
                self.estimate,
                0,
                self.estimated_tokens,
                self.estimated_tokens,
                Timestamp::now(),
            );
        }
    }
}

/// The in-memory counters of every limited target.
#[derive(Default, Debug)]
pub struct Limiter {
    counters: Mutex<HashMap<LimitTarget, Counters>>,
}

/// What one call would consume.
#[derive(Clone, Debug)]
pub struct Claim {
    pub estimate_micro_usd: i64,
    pub estimated_tokens: u64,
}

impl Limiter {
    /// Checks `claim` against the limits of each target and, when all
    /// pass, counts it (one request, its tokens, one in-flight slot, its
    /// estimated cost). `limited` pairs each target with its limits.
    pub fn admit(
        self: &Arc<Self>,
        limited: &[(LimitTarget, &Limits)],
        claim: &Claim,
        now: Timestamp,
    ) -> Result<Permit, Trip> {
        let mut counters = self.counters.lock();
        for (target, limits) in limited {
            let c = counters.entry(target.clone()).or_default();
            c.roll(now);
            check(target, limits, c, claim, now)?;
        }
        for (target, _) in limited {
            let c = counters.entry(target.clone()).or_default();
            c.cur_requests += 1;
            c.cur_tokens += claim.estimated_tokens;
            c.in_flight += 1;
            c.reserved += claim.estimate_micro_usd;
        }
        Ok(Permit {
            limiter: self.clone(),
            targets: limited.iter().map(|(t, _)| t.clone()).collect(),
            estimate: claim.estimate_micro_usd,
            estimated_tokens: claim.estimated_tokens,
            settled: false,
        })
    }

    /// Checks without counting: for a call that will wait for a human first.
    pub fn check(
        &self,
        limited: &[(LimitTarget, &Limits)],
        claim: &Claim,
        now: Timestamp,
    ) -> Result<(), Trip> {
        let mut counters = self.counters.lock();
        for (target, limits) in limited {
            let c = counters.entry(target.clone()).or_default();
            c.roll(now);
            check(target, limits, c, claim, now)?;
        }
        Ok(())
    }

    fn settle(
        &self,
        targets: &[LimitTarget],
        estimate: i64,
        cost: i64,
        estimated_tokens: u64,
        tokens: u64,
        now: Timestamp,
    ) {
        let mut counters = self.counters.lock();
        for target in targets {
            let c = counters.entry(target.clone()).or_default();
            // Only the spending periods: the rate window counts the call
            // in the minute it was admitted.
            c.roll_spend(now);
            c.reserved -= estimate;
            c.spent_day += cost;
            c.spent_month += cost;
            c.in_flight = c.in_flight.saturating_sub(1);
            // The window counted the estimate; correct it to the real use.
            c.cur_tokens = (c.cur_tokens + tokens).saturating_sub(estimated_tokens);
        }
    }

    /// Adds spending read back from the ledger (at start).
    pub fn add_spent(&self, target: LimitTarget, at: Timestamp, cost: i64, now: Timestamp) {
        let mut counters = self.counters.lock();
        let c = counters.entry(target).or_default();
        c.roll(now);
        if month_of(at) == c.month {
            c.spent_month += cost;
            if day_of(at) == c.day {
                c.spent_day += cost;
            }
        }
    }

    /// Adds use read back from the ledger (at start) to the rate window, in
    /// its minute if that is this minute or the one before (older use is
    /// outside every window): an allow decision is one request, counted when
    /// it was admitted; a receipt, the tokens the call used.
    pub fn add_used(
        &self,
        target: LimitTarget,
        at: Timestamp,
        requests: u64,
        tokens: u64,
        now: Timestamp,
    ) {
        let mut counters = self.counters.lock();
        let c = counters.entry(target).or_default();
        c.roll(now);
        let minute = at.as_micros().div_euclid(MINUTE_MICROS);
        if minute == c.minute {
            c.cur_requests += requests;
            c.cur_tokens += tokens;
        } else if minute + 1 == c.minute {
            c.prev_requests += requests;
            c.prev_tokens += tokens;
        }
    }

    /// Spent today and this month (settled, plus estimates under way).
    pub fn spent(&self, target: &LimitTarget, now: Timestamp) -> (i64, i64) {
        let mut counters = self.counters.lock();
        match counters.get_mut(target) {
            Some(c) => {
                c.roll(now);
                (c.spent_day + c.reserved, c.spent_month + c.reserved)
            }
            None => (0, 0),
        }
    }
}

fn usd(micro: i64) -> String {
    format!("${}.{:06}", micro / 1_000_000, (micro % 1_000_000).abs())
}

fn check(
    target: &LimitTarget,
    limits: &Limits,
    c: &Counters,
    claim: &Claim,
    now: Timestamp,
) -> Result<(), Trip> {
    let trip = |stage, reason: String| Err(Trip { stage, reason });
    if let Some(max) = limits.concurrent
        && c.in_flight >= max
    {
        return trip(
            Stage::Concurrency,
            format!("{target} has {max} calls under way, its limit"),
        );
    }
    if let Some(max) = limits.requests_per_minute
        && Counters::window(c.cur_requests, c.prev_requests, now) >= u64::from(max)
    {
        return trip(
            Stage::RateLimit,
            format!("{target} reached its rate limit of {max} requests per minute"),
        );
    }
    if let Some(max) = limits.tokens_per_minute
        && Counters::window(c.cur_tokens, c.prev_tokens, now) + claim.estimated_tokens > max
    {
        return trip(
            Stage::RateLimit,
            format!("{target} would exceed its limit of {max} tokens per minute"),
        );
    }
    let after = claim.estimate_micro_usd + c.reserved;
    if let Some(cap) = limits.budget_day_micro_usd
        && c.spent_day + after > cap
    {
        return trip(
            Stage::Budget,
            format!(
                "{target} would exceed its daily budget of {} (spent {}, this call est. {})",
                usd(cap),
                usd(c.spent_day + c.reserved),
                usd(claim.estimate_micro_usd)
            ),
        );
    }
    if let Some(cap) = limits.budget_month_micro_usd
        && c.spent_month + after > cap
    {
        return trip(
            Stage::Budget,
            format!(
                "{target} would exceed its monthly budget of {} (spent {}, this call est. {})",
                usd(cap),
                usd(c.spent_month + c.reserved),
                usd(claim.estimate_micro_usd)
            ),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use docket_core::identity::AgentId;

    fn agent() -> LimitTarget {
        LimitTarget::Agent {
            agent: "a1".parse::<AgentId>().unwrap(),
        }
    }

    fn claim(cost: i64, tokens: u64) -> Claim {
        Claim {
            estimate_micro_usd: cost,
            estimated_tokens: tokens,
        }
    }

    const T0: i64 = 1_767_225_600_000_000; // 2026-01-01T00:00:00Z

    #[test]
    fn requests_per_minute_slide() {
        let l = Arc::new(Limiter::default());
        let limits = Limits {
            requests_per_minute: Some(2),
            ..Limits::default()
        };
        let set = [(agent(), &limits)];
        let now = Timestamp::from_micros(T0);
        let p1 = l.admit(&set, &claim(0, 0), now).unwrap();
        let p2 = l.admit(&set, &claim(0, 0), now).unwrap();
        drop((p1, p2));
        let trip = l.admit(&set, &claim(0, 0), now).unwrap_err();
        assert_eq!(trip.stage, Stage::RateLimit);
        assert!(
            trip.reason.contains("2 requests per minute"),
            "{}",
            trip.reason
        );
        // Half-way through the next minute, half of the last minute's two still count.
        let later = Timestamp::from_micros(T0 + MINUTE_MICROS + MINUTE_MICROS / 2);
        l.admit(&set, &claim(0, 0), later).unwrap();
        assert!(l.admit(&set, &claim(0, 0), later).is_err());
        // Two minutes on, the window is empty.
        let much_later = Timestamp::from_micros(T0 + 3 * MINUTE_MICROS);
        l.admit(&set, &claim(0, 0), much_later).unwrap();
    }

    #[test]
    fn calls_read_back_at_start_count_in_the_window() {
        let limiter = Arc::new(Limiter::default());
        let limits = Limits {
            requests_per_minute: Some(3),
            tokens_per_minute: Some(1_000),
            ..Limits::default()
        };
        let now = Timestamp::from_micros(10 * MINUTE_MICROS + 50_000_000);
        let ago = |secs: i64| Timestamp::from_micros(now.as_micros() - secs * 1_000_000);
        // Two calls in the last minute, one long before: the window holds two.
        limiter.add_used(agent(), ago(3), 1, 100, now);
        limiter.add_used(agent(), ago(30), 1, 100, now);
        limiter.add_used(agent(), ago(600), 1, 100, now);
        let limited = [(agent(), &limits)];
        let first = limiter.admit(&limited, &claim(0, 10), now);
        assert!(first.is_ok());
        let trip = limiter.admit(&limited, &claim(0, 10), now).unwrap_err();
        assert!(trip.reason.contains("requests"), "{}", trip.reason);
        // The tokens counted too.
        let fresh = Arc::new(Limiter::default());
        fresh.add_used(agent(), ago(3), 0, 995, now);
        let trip = fresh.admit(&limited, &claim(0, 10), now).unwrap_err();
        assert!(trip.reason.contains("tokens"), "{}", trip.reason);
    }

    #[test]
    fn concurrency_frees_on_drop() {
        let l = Arc::new(Limiter::default());
        let limits = Limits {
            concurrent: Some(1),
            ..Limits::default()
        };
        let set = [(agent(), &limits)];
        let now = Timestamp::from_micros(T0);
        let p = l.admit(&set, &claim(0, 0), now).unwrap();
        assert_eq!(
            l.admit(&set, &claim(0, 0), now).unwrap_err().stage,
            Stage::Concurrency
        );
        drop(p);
        l.admit(&set, &claim(0, 0), now).unwrap();
    }

    #[test]
    fn budget_counts_estimates_then_settles_to_real_cost() {
        let l = Arc::new(Limiter::default());
        let limits = Limits {
            budget_day_micro_usd: Some(1_000),
            ..Limits::default()
        };
        let set = [(agent(), &limits)];
        let now = Timestamp::from_micros(T0 + 1000);
        let p = l.admit(&set, &claim(600, 0), now).unwrap();
        // 600 reserved: another 600 would pass the cap.
        let trip = l.admit(&set, &claim(600, 0), now).unwrap_err();
        assert_eq!(trip.stage, Stage::Budget);
        assert!(
            trip.reason.contains("daily budget of $0.001000"),
            "{}",
            trip.reason
        );
        p.settle(100, 0, now);
        assert_eq!(l.spent(&agent(), now), (100, 100));
        l.admit(&set, &claim(600, 0), now)
            .unwrap()
            .settle(600, 0, now);
        assert_eq!(l.spent(&agent(), now), (700, 700));
        // The next day starts from zero; the month does not.
        let tomorrow = Timestamp::from_micros(T0 + DAY_MICROS + 1);
        assert_eq!(l.spent(&agent(), tomorrow), (0, 700));
    }

    #[test]
    fn spending_read_back_counts_in_its_day_and_month() {
        let l = Limiter::default();
        let now = Timestamp::from_micros(T0 + DAY_MICROS + 5);
        l.add_spent(agent(), Timestamp::from_micros(T0 + 1), 5, now);
        l.add_spent(agent(), Timestamp::from_micros(T0 + DAY_MICROS + 1), 7, now);
        // Last month's spending does not count.
        l.add_spent(agent(), Timestamp::from_micros(T0 - 1), 1000, now);
        assert_eq!(l.spent(&agent(), now), (7, 12));
    }
}
