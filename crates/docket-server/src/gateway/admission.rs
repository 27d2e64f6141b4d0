//! Admission: how much gateway work Docket takes on at once. Past the
//! bounds a call is refused at once (503 with `Retry-After`, in the
//! provider's error shape), so an overloaded gateway answers quickly and
//! the calls it admits keep their latency, instead of every call queueing
//! behind every other until all of them time out.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::config::GatewayConfig;

pub struct Admission {
    in_flight: Arc<Semaphore>,
    deciding: Arc<Semaphore>,
    max_in_flight: usize,
    max_deciding: usize,
    wait: Duration,
    /// The scheduler's lateness, microseconds (see [`watch_lag`]).
    lag_us: Arc<AtomicU64>,
    shed_lag_us: u64,
    /// How long deciding calls takes: policy, the decision's append and
    /// its wait for the disk (see [`DecideTimes`]).
    decide: Arc<parking_lot::Mutex<DecideTimes>>,
    shed_decide_us: u64,
    /// Calls refused since the last warning about it, and when that was.
    shed: AtomicU64,
    warned: parking_lot::Mutex<Instant>,
}

impl std::fmt::Debug for Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admission")
            .field("in_flight", &self.in_flight())
            .field("max_in_flight", &self.max_in_flight)
            .field("max_deciding", &self.max_deciding)
            .field("lag_us", &self.lag_us.load(Ordering::Relaxed))
            .field("decide_ms", &self.decide_ms())
            .finish()
    }
}

/// A call's place: held until the call ends (its receipt durable). Its
/// deciding place ([`Admission::start_deciding`], once the body is read)
/// is given back once the call is decided.
#[derive(Debug)]
pub struct Admitted {
    _in_flight: OwnedSemaphorePermit,
    deciding: Option<OwnedSemaphorePermit>,
    /// When deciding began, for [`Admission`]'s measure of how long
    /// deciding takes.
    since: Instant,
    decide: Arc<parking_lot::Mutex<DecideTimes>>,
}

impl Admitted {
    /// The call is decided (allowed, held, denied or failed): the next
    /// one may start deciding. The first time, how long it took is
    /// recorded for admission.
    pub fn decided(&mut self) {
        if self.deciding.take().is_some() {
            let took = self.since.elapsed();
            self.decide.lock().record(Instant::now(), took);
        }
    }
}

/// How long decisions take: a moving average (each decision moves it an
/// eighth of the way), read as nothing queued once no decision has been
/// made for [`DECIDE_QUIET`].
#[derive(Debug)]
struct DecideTimes {
    mean: Duration,
    last_at: Instant,
}

/// How long without a decision before the average no longer counts.
const DECIDE_QUIET: Duration = Duration::from_millis(250);

impl DecideTimes {
    /// Quiet so far: the first decision starts the average.
    fn new(now: Instant) -> Self {
        Self {
            mean: Duration::ZERO,
            last_at: now.checked_sub(DECIDE_QUIET).unwrap_or(now),
        }
    }

    fn record(&mut self, now: Instant, took: Duration) {
        self.mean = if now.saturating_duration_since(self.last_at) >= DECIDE_QUIET {
            took
        } else {
            (self.mean * 7 + took) / 8
        };
        self.last_at = now;
    }

    /// The average, or nothing once quiet (an old average says nothing
    /// about calls arriving now).
    fn mean(&self, now: Instant) -> Duration {
        if now.saturating_duration_since(self.last_at) >= DECIDE_QUIET {
            Duration::ZERO
        } else {
            self.mean
        }
    }
}

/// Why a call was not admitted, for its 503.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("{0} calls are already in progress")]
    InFlight(usize),
    #[error("{0} calls are already being decided")]
    Deciding(usize),
    #[error("its scheduler runs ready work {0} ms late")]
    Lagging(u64),
    #[error("deciding a call takes {0} ms")]
    SlowDecisions(u64),
}

/// How often the scheduler's lateness is measured.
const LAG_TICK: Duration = Duration::from_millis(10);
/// How often at most a warning says calls are being refused.
const WARN_EVERY: Duration = Duration::from_secs(10);

impl Admission {
    /// Bounds from `config`. Built inside a runtime, it starts the task
    /// that measures that runtime's lateness (`watch_lag`), which lives
    /// as long as this admission or that runtime: build it in the runtime
    /// that serves the calls.
    pub fn new(config: &GatewayConfig) -> Self {
        let max_in_flight = config.max_in_flight.max(1);
        let max_deciding = config.max_deciding.clamp(1, max_in_flight);
        let lag_us = Arc::new(AtomicU64::new(0));
        // Outside a runtime (some tests) nothing is measured: never late.
        if config.shed_lag_ms > 0
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            rt.spawn(watch_lag(Arc::downgrade(&lag_us)));
        }
        Self {
            in_flight: Arc::new(Semaphore::new(max_in_flight)),
            deciding: Arc::new(Semaphore::new(max_deciding)),
            max_in_flight,
            max_deciding,
            wait: Duration::from_millis(config.admission_wait_ms),
            lag_us,
            shed_lag_us: config.shed_lag_ms.saturating_mul(1000),
            decide: Arc::new(parking_lot::Mutex::new(DecideTimes::new(Instant::now()))),
            shed_decide_us: config.shed_decide_ms.saturating_mul(1000),
            shed: AtomicU64::new(0),
            warned: parking_lot::Mutex::new(
                Instant::now()
                    .checked_sub(WARN_EVERY)
                    .unwrap_or_else(Instant::now),
            ),
        }
    }

    /// A place for one call, or a refusal at once: Docket has fallen
    /// behind ([`Admission::shed_for_latency`]) or `max_in_flight` calls
    /// are in progress.
    pub fn admit(&self) -> Result<Admitted, Refused> {
        self.try_admit(Instant::now())
            .inspect_err(|e| self.refused(e))
    }

    fn try_admit(&self, now: Instant) -> Result<Admitted, Refused> {
        if let Some(why) = self.shed_for_latency(now) {
            return Err(why);
        }
        let Ok(in_flight) = self.in_flight.clone().try_acquire_owned() else {
            return Err(Refused::InFlight(self.max_in_flight));
        };
        Ok(Admitted {
            _in_flight: in_flight,
            deciding: None,
            since: now,
            decide: self.decide.clone(),
        })
    }

    /// A deciding place for a call whose body is read (a client still
    /// sending its body holds none: it is not Docket's queue), after at
    /// most `admission_wait_ms` when `max_deciding` calls are being
    /// decided; else a refusal. Deciding is timed from here.
    pub async fn start_deciding(&self, call: &mut Admitted) -> Result<(), Refused> {
        let place = match self.deciding.clone().try_acquire_owned() {
            Ok(p) => Ok(p),
            Err(_) => {
                match tokio::time::timeout(self.wait, self.deciding.clone().acquire_owned()).await {
                    Ok(Ok(p)) => Ok(p),
                    _ => Err(Refused::Deciding(self.max_deciding)),
                }
            }
        };
        let place = place.inspect_err(|e| self.refused(e))?;
        call.deciding = Some(place);
        call.since = Instant::now();
        Ok(())
    }

    /// Whether this call is refused because Docket has fallen behind:
    /// its scheduler runs ready work late (`shed_lag_ms`), or recent
    /// decisions were slow on average (`shed_decide_ms`, the disk or the
    /// ledger behind) while an eighth of `max_deciding` or more calls wait
    /// on theirs. None are refused at the figure, all at twice it, a
    /// growing share between, so admission eases off smoothly instead of
    /// flapping.
    fn shed_for_latency(&self, now: Instant) -> Option<Refused> {
        let over = |now: u64, limit: u64| {
            if limit == 0 || now <= limit {
                0.0
            } else {
                (now - limit) as f64 / limit as f64
            }
        };
        let lag = self.lag_us.load(Ordering::Relaxed);
        let decide = if self.shed_decide_us == 0 {
            0
        } else {
            // A slow disk at light load is not a queue: only with an
            // eighth of the places taken. A ledger that stalls outright
            // fills `max_deciding`, which bounds the queue on its own.
            let waiting = self.max_deciding - self.deciding.available_permits();
            if waiting < self.max_deciding.div_ceil(8) {
                0
            } else {
                let d = self.decide.lock().mean(now);
                d.as_micros().min(u128::from(u64::MAX)) as u64
            }
        };
        let (p_lag, p_decide) = (
            over(lag, self.shed_lag_us),
            over(decide, self.shed_decide_us),
        );
        if p_lag == 0.0 && p_decide == 0.0 {
            return None;
        }
        let roll = rand::random::<f64>();
        if roll < p_lag {
            Some(Refused::Lagging(lag / 1000))
        } else if roll < p_decide {
            Some(Refused::SlowDecisions(decide / 1000))
        } else {
            None
        }
    }

    /// Counts a refusal, and says so in the log at most every
    /// [`WARN_EVERY`] (one line per refused call would add to the load).
    fn refused(&self, why: &Refused) {
        let reason = match why {
            Refused::InFlight(_) => "in_flight",
            Refused::Deciding(_) => "deciding",
            Refused::Lagging(_) => "lag",
            Refused::SlowDecisions(_) => "slow_decisions",
        };
        metrics::counter!("docket_gateway_shed_total", "reason" => reason).increment(1);
        self.shed.fetch_add(1, Ordering::Relaxed);
        let Some(mut warned) = self.warned.try_lock() else {
            return;
        };
        if warned.elapsed() >= WARN_EVERY {
            *warned = Instant::now();
            let n = self.shed.swap(0, Ordering::Relaxed);
            tracing::warn!(
                refused = n,
                last_reason = %why,
                "gateway overloaded: calls refused with 503 since the last warning"
            );
        }
    }

    /// The scheduler's lateness now (the least of the last 8 readings), ms.
    pub fn lag_ms(&self) -> f64 {
        self.lag_us.load(Ordering::Relaxed) as f64 / 1000.0
    }

    /// How long recent decisions took on average, ms.
    pub fn decide_ms(&self) -> f64 {
        self.decide.lock().mean(Instant::now()).as_secs_f64() * 1000.0
    }

    /// [`Admission::start_deciding`] from outside a runtime, for tests.
    #[cfg(test)]
    fn decide_now(&self, call: &mut Admitted) -> Result<(), Refused> {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a runtime")
            .block_on(self.start_deciding(call))
    }

    /// Calls in progress now.
    pub fn in_flight(&self) -> usize {
        self.max_in_flight - self.in_flight.available_permits()
    }

    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight
    }
}

/// Measures how late the runtime runs a task that is ready: a timer set
/// for every [`LAG_TICK`] fires, and how much later than asked it ran is
/// the queue any woken task waits in. What is stored (µs) is the least
/// lateness of the last [`LAG_WINDOW`] ticks: a standing queue, not one
/// late tick (a moment's pause of the machine is not overload). Stops
/// when the admission is gone.
async fn watch_lag(lag_us: Weak<AtomicU64>) {
    let mut window = LagWindow::default();
    loop {
        let asked = Instant::now();
        tokio::time::sleep(LAG_TICK).await;
        let late = asked.elapsed().saturating_sub(LAG_TICK);
        let Some(lag) = lag_us.upgrade() else {
            return;
        };
        lag.store(window.push(late), Ordering::Relaxed);
    }
}

/// How many ticks the lateness is the least of (80 ms while the runtime keeps time).
const LAG_WINDOW: usize = 8;

/// The last [`LAG_WINDOW`] readings, µs.
#[derive(Default)]
struct LagWindow {
    readings: [u64; LAG_WINDOW],
    next: usize,
}

impl LagWindow {
    /// Adds a reading; the least of the window, µs.
    fn push(&mut self, late: Duration) -> u64 {
        self.readings[self.next] = late.as_micros().min(u128::from(u64::MAX)) as u64;
        self.next = (self.next + 1) % LAG_WINDOW;
        self.readings.iter().copied().min().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An admission with the default figures and no lag watcher (built
    /// outside a runtime): the tests set what it measured.
    fn admission() -> Admission {
        let config = GatewayConfig {
            shed_decide_ms: 10,
            ..GatewayConfig::default()
        };
        assert_eq!(config.shed_lag_ms, 5);
        Admission::new(&config)
    }

    fn refusals(a: &Admission, at: Instant, n: usize) -> usize {
        (0..n).filter(|_| a.shed_for_latency(at).is_some()).count()
    }

    /// `n` calls holding a deciding place: body read, not yet decided.
    fn deciding(a: &Admission, n: usize) -> Vec<OwnedSemaphorePermit> {
        (0..n)
            .map(|_| a.deciding.clone().try_acquire_owned().unwrap())
            .collect()
    }

    #[test]
    fn nothing_is_refused_while_docket_keeps_up() {
        let a = admission();
        let t0 = Instant::now();
        a.lag_us.store(5_000, Ordering::Relaxed);
        // Decisions take just the figure, with calls waiting on them.
        a.decide.lock().record(t0, Duration::from_millis(10));
        let _waiting = deciding(&a, 64);
        assert_eq!(refusals(&a, t0, 10_000), 0);
    }

    #[test]
    fn a_late_scheduler_sheds_a_growing_share_then_everything() {
        let a = admission();
        let t0 = Instant::now();
        // Half-way to twice the figure: about half refused.
        a.lag_us.store(7_500, Ordering::Relaxed);
        let n = refusals(&a, t0, 10_000);
        assert!((4_000..=6_000).contains(&n), "{n} of 10000 refused");
        assert!(matches!(
            a.shed_for_latency(t0),
            None | Some(Refused::Lagging(7))
        ));
        a.lag_us.store(10_000, Ordering::Relaxed);
        assert_eq!(refusals(&a, t0, 10_000), 10_000);
    }

    #[test]
    fn slow_decisions_with_calls_waiting_shed_and_an_old_average_does_not_count() {
        let a = admission();
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        // Decisions averaging 20 ms: twice the figure.
        a.decide.lock().record(t0, ms(20));
        // Few calls waiting: a slow disk, not a queue.
        let mut waiting = deciding(&a, 31);
        assert_eq!(refusals(&a, t0, 1_000), 0);
        waiting.extend(deciding(&a, 1));
        assert_eq!(refusals(&a, t0, 1_000), 1_000);
        assert!(matches!(
            a.shed_for_latency(t0),
            Some(Refused::SlowDecisions(20))
        ));
        // A burst after a quiet spell is not refused for an old average.
        let later = t0 + DECIDE_QUIET;
        assert_eq!(refusals(&a, later, 1_000), 0);
        // Each decision moves the average an eighth of the way.
        let mut d = DecideTimes::new(t0);
        d.record(t0, ms(80));
        d.record(t0 + ms(1), ms(0));
        assert_eq!(d.mean(t0 + ms(1)), ms(70));
        // Nothing decided for a while: the old average no longer counts.
        assert_eq!(d.mean(t0 + ms(301)), Duration::ZERO);
        d.record(t0 + ms(301), ms(3));
        assert_eq!(
            d.mean(t0 + ms(301)),
            ms(3),
            "a new start, not the old average"
        );
    }

    #[test]
    fn a_call_holds_a_deciding_place_from_its_body_read_until_decided_or_dropped() {
        let a = admission();
        let held = |a: &Admission| a.max_deciding - a.deciding.available_permits();
        let mut first = a.admit().expect("admitted");
        let mut second = a.admit().expect("admitted");
        assert_eq!(held(&a), 0, "still sending their bodies");
        a.decide_now(&mut first).expect("a place");
        a.decide_now(&mut second).expect("a place");
        assert_eq!(held(&a), 2);
        first.decided();
        first.decided();
        assert_eq!(held(&a), 1);
        drop(second);
        assert_eq!(
            held(&a),
            0,
            "a call refused on the way out gives its place back"
        );
        drop(first);
        assert_eq!(a.in_flight(), 0);
    }

    #[test]
    fn lateness_is_the_least_of_the_window_so_one_pause_is_not_overload() {
        let mut w = LagWindow::default();
        let ms = Duration::from_millis;
        for _ in 0..LAG_WINDOW - 1 {
            assert_eq!(w.push(ms(300)), 0, "a window not yet full of late ticks");
        }
        assert_eq!(w.push(ms(12)), 12_000, "every tick late: a standing queue");
        assert_eq!(w.push(ms(1)), 1_000, "one prompt tick ends it");
        assert_eq!(w.push(ms(50)), 1_000);
    }

    #[test]
    fn a_decided_call_is_measured_once() {
        let a = admission();
        let mut admitted = a.admit().expect("admitted");
        a.decide_now(&mut admitted).expect("a place");
        admitted.since = Instant::now() - Duration::from_millis(80);
        admitted.decided();
        admitted.since = Instant::now() - Duration::from_millis(1);
        admitted.decided();
        // One reading of 80 ms (the second `decided` adds none).
        let d = a.decide.lock();
        assert!(d.mean >= Duration::from_millis(80), "{:?}", d.mean);
    }

    #[test]
    fn past_the_bounds_calls_are_refused_at_once() {
        let config = GatewayConfig {
            max_in_flight: 2,
            max_deciding: 1,
            admission_wait_ms: 0,
            ..GatewayConfig::default()
        };
        let a = Admission::new(&config);
        let mut first = a.admit().expect("first call admitted");
        a.decide_now(&mut first).expect("a place");
        let mut second = a.admit().expect("second call admitted");
        assert!(matches!(
            a.decide_now(&mut second),
            Err(Refused::Deciding(1))
        ));
        first.decided();
        a.decide_now(&mut second)
            .expect("a decided call frees its deciding place");
        assert!(matches!(a.admit(), Err(Refused::InFlight(2))));
        drop(first);
        assert_eq!(a.in_flight(), 1);
    }
}
