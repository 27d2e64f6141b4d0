//! Admission: how much gateway work Docket takes on at once. Past the
//! bounds a call is refused at once (503 with `Retry-After`, in the
//! provider's error shape), so an overloaded gateway answers quickly and
//! the calls it admits keep their latency, instead of every call queueing
//! behind every other until all of them time out.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::config::GatewayConfig;

pub struct Admission {
    in_flight: Arc<Semaphore>,
    deciding: Arc<Semaphore>,
    max_in_flight: usize,
    max_deciding: usize,
    wait: Duration,
}

impl std::fmt::Debug for Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admission")
            .field("in_flight", &self.in_flight())
            .field("max_in_flight", &self.max_in_flight)
            .field("max_deciding", &self.max_deciding)
            .finish()
    }
}

/// A call's place: held until the call ends (its receipt durable); the
/// deciding part is given back once the call is decided.
#[derive(Debug)]
pub struct Admitted {
    _in_flight: OwnedSemaphorePermit,
    deciding: Option<OwnedSemaphorePermit>,
}

impl Admitted {
    /// The call is decided: the next one may start deciding.
    pub fn decided(&mut self) {
        self.deciding = None;
    }
}

/// Why a call was not admitted, for its 503.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("{0} calls are already in progress")]
    InFlight(usize),
    #[error("{0} calls are already being decided")]
    Deciding(usize),
}

impl Admission {
    pub fn new(config: &GatewayConfig) -> Self {
        let max_in_flight = config.max_in_flight.max(1);
        let max_deciding = config.max_deciding.clamp(1, max_in_flight);
        Self {
            in_flight: Arc::new(Semaphore::new(max_in_flight)),
            deciding: Arc::new(Semaphore::new(max_deciding)),
            max_in_flight,
            max_deciding,
            wait: Duration::from_millis(config.admission_wait_ms),
        }
    }

    /// A place for one call, or a refusal: at once when `max_in_flight`
    /// calls are in progress, after at most `admission_wait_ms` when
    /// `max_deciding` are being decided.
    pub async fn admit(&self) -> Result<Admitted, Refused> {
        let Ok(in_flight) = self.in_flight.clone().try_acquire_owned() else {
            metrics::counter!("docket_gateway_shed_total", "reason" => "in_flight").increment(1);
            return Err(Refused::InFlight(self.max_in_flight));
        };
        let deciding = match self.deciding.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                match tokio::time::timeout(self.wait, self.deciding.clone().acquire_owned()).await {
                    Ok(Ok(p)) => p,
                    _ => {
                        metrics::counter!("docket_gateway_shed_total", "reason" => "deciding")
                            .increment(1);
                        return Err(Refused::Deciding(self.max_deciding));
                    }
                }
            }
        };
        Ok(Admitted {
            _in_flight: in_flight,
            deciding: Some(deciding),
        })
    }

    /// Calls in progress now.
    pub fn in_flight(&self) -> usize {
        self.max_in_flight - self.in_flight.available_permits()
    }

    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight
    }
}
