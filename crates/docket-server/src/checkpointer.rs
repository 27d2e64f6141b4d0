//! Signs a checkpoint at most once per interval while entries arrive, so
//! any entry is provable about an interval after it was acknowledged.

use std::sync::Arc;
use std::time::{Duration, Instant};

use docket_core::LogSigner;
use docket_store::Ledger;
use tokio::sync::watch;

/// How often the signer looks for growth, at most.
const POLL: Duration = Duration::from_millis(25);

pub fn spawn(
    ledger: Arc<Ledger>,
    signer: Arc<LogSigner>,
    interval: Duration,
    mut shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut last_signed: Option<Instant> = None;
        loop {
            let stop = tokio::select! {
                _ = tokio::time::sleep(POLL.min(interval)) => false,
                _ = shutdown.changed() => true,
            };
            let due = last_signed.is_none_or(|t| t.elapsed() >= interval);
            if stop || due {
                let (l, s) = (ledger.clone(), signer.clone());
                match tokio::task::spawn_blocking(move || l.checkpoint(&s)).await {
                    Ok(Ok(Some(cp))) => {
                        last_signed = Some(Instant::now());
                        metrics::gauge!("docket_checkpoint_size").set(cp.size as f64);
                        tracing::debug!(size = cp.size, "signed checkpoint");
                    }
                    Ok(Ok(None)) => {}
                    Ok(Err(e)) => tracing::error!(error = %e, "cannot sign checkpoint"),
                    Err(e) => tracing::error!(error = %e, "checkpoint task failed"),
                }
            }
            if stop {
                break;
            }
        }
    })
}
