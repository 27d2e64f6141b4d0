//! Evidence export: gathers a window's entries, the signed checkpoint and
//! the proofs from the ledger and streams them through
//! [`docket_evidence::pack::PackWriter`]. The export route and the
//! scheduled exporter both call [`export`]; each export is an `export`
//! entry.

use std::io::{Seek, Write};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use docket_core::bodies::ExportBody;
use docket_core::identity::Actor;
use docket_core::identity::event::IDENTITY_TYPES;
use docket_core::{Entry, EntryType, LogSigner, Receipt, Timestamp};
use docket_evidence::controls::WindowInfo;
use docket_evidence::pack::{Manifest, PackHeader, PackWriter};
use docket_store::query::{Order, Query};
use docket_store::{Ledger, NewEntry, StoreError};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::error::ApiError;

/// What to export.
#[derive(Clone, Debug)]
pub struct ExportRequest {
    pub from: Timestamp,
    pub to: Timestamp,
    pub project: Option<String>,
}

/// Checks the window is one a pack can prove: `from < to <= now`.
pub fn check_window(req: &ExportRequest, now: Timestamp) -> Result<(), ApiError> {
    if req.from >= req.to {
        return Err(ApiError::bad_request(
            "invalid_window",
            format!(
                "the window must start before it ends: from {} to {}",
                req.from, req.to
            ),
        ));
    }
    if req.to > now {
        return Err(ApiError::bad_request(
            "window_open",
            format!(
                "the window ends at {}, which has not passed yet (now {now}); a pack covers a closed window",
                req.to
            ),
        ));
    }
    Ok(())
}

/// How long after a window's end an export waits before it reads the log.
const SETTLE_MICROS: i64 = 2_000_000;

fn store(e: StoreError) -> ApiError {
    ApiError::from(e)
}

/// Builds a pack for `req` into `out`. Blocking: run it off the async workers.
pub fn export<W: Write + Seek>(
    ledger: &Ledger,
    signer: &LogSigner,
    req: &ExportRequest,
    out: W,
) -> Result<(W, Manifest), ApiError> {
    check_window(req, Timestamp::now())?;
    // An entry stamped just before `to` may still be committing: give it
    // time, or the entry after the window could be one of the window's.
    let settled = req.to.as_micros() + SETTLE_MICROS;
    let wait = settled - Timestamp::now().as_micros();
    if wait > 0 {
        std::thread::sleep(Duration::from_micros(wait as u64));
    }
    let now = Timestamp::now();
    let a = ledger.seq_at_time(req.from).map_err(store)?;
    let b = ledger.seq_at_time(req.to).map_err(store)?.max(a);
    // A checkpoint that covers the entry after the window if there is one.
    let want = (b + 1).min(ledger.size());
    let mut cp = ledger.latest_checkpoint().map_err(store)?;
    if cp.as_ref().is_none_or(|c| c.size < want) {
        ledger.checkpoint(signer).map_err(store)?;
        cp = ledger.latest_checkpoint().map_err(store)?;
    }
    let Some(cp) = cp.filter(|c| c.size >= b) else {
        return Err(ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "no_checkpoint",
            "the log has no signed checkpoint covering the window yet; retry in a second",
        ));
    };
    let n = cp.size;
    let range_proof = if a < b {
        ledger.range_proof(a, b, n).map_err(store)?
    } else {
        Vec::new()
    };
    let receipt = |entry: &Entry| -> Result<Receipt, ApiError> {
        let proof = ledger.inclusion_proof(entry.seq.0, n).map_err(store)?;
        Ok(Receipt::new(entry, &proof, n, &cp.note))
    };
    // The identity entries before the window, then its edges; the pack
    // writer keeps what the project scope discloses.
    let mut context: Vec<Receipt> = Vec::new();
    let query = Query {
        types: IDENTITY_TYPES.to_vec(),
        to: Some(req.from),
        order: Order::Asc,
        ..Query::default()
    };
    ledger.scan(query, |entry| {
        if entry.seq.0 < a {
            context.push(receipt(&entry)?);
        }
        Ok::<_, ApiError>(ControlFlow::Continue(()))
    })?;
    for edge in [a.checked_sub(1), (b < n).then_some(b)]
        .into_iter()
        .flatten()
    {
        let entry = ledger.entry(edge).map_err(store)?;
        let already = context
            .last()
            .is_some_and(|r| r.entry.get("seq").and_then(serde_json::Value::as_u64) == Some(edge));
        if !already {
            context.push(receipt(&entry)?);
        }
    }
    let window = WindowInfo {
        origin: signer.origin().to_owned(),
        from: req.from.to_string(),
        to: req.to.to_string(),
        first_seq: a,
        end_seq: b,
        project: req.project.clone(),
        created: now.to_string(),
    };
    let header = PackHeader {
        signer,
        window,
        checkpoint_note: cp.note.clone(),
        tree_size: n,
        root: cp.root,
        range_proof,
        context,
    };
    let mut writer = PackWriter::new(out, header).map_err(ApiError::internal)?;
    let mut failed: Option<ApiError> = None;
    if a < b {
        ledger
            .backend()
            .scan(a, b, &mut |seq, bytes| {
                writer.push(seq, &bytes).map_err(|e| {
                    let msg = e.to_string();
                    failed = Some(ApiError::internal(msg.clone()));
                    StoreError::Corrupt(msg)
                })
            })
            .map_err(store)?;
    }
    if let Some(e) = failed {
        return Err(e);
    }
    writer.finish().map_err(ApiError::internal)
}

/// The `export` entry.
pub fn export_entry(
    manifest: &Manifest,
    manifest_sha256: &str,
    file: Option<&str>,
    actor: Actor,
) -> Result<NewEntry, ApiError> {
    let w = &manifest.window;
    let time = |t: &str| {
        Timestamp::parse_rfc3339(t)
            .map_err(|e| ApiError::internal(format!("the manifest's window: {e}")))
    };
    let project = w
        .project
        .as_deref()
        .map(str::parse)
        .transpose()
        .map_err(|e| ApiError::internal(format!("the manifest's project: {e}")))?;
    let body = ExportBody {
        from: time(&w.from)?,
        to: time(&w.to)?,
        first_seq: w.first_seq,
        end_seq: w.end_seq,
        tree_size: manifest.checkpoint.size,
        entries: manifest.entries,
        withheld: manifest.withheld,
        manifest_sha256: manifest_sha256.to_owned(),
        project,
        file: file.map(str::to_owned),
        actor,
    };
    crate::governance::entry(EntryType::Export, &body)
}

/// How often scheduled packs are written.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Schedule {
    #[default]
    Off,
    Daily,
    Weekly,
    Monthly,
}

/// `[evidence]` in the configuration.
#[derive(Clone, Debug, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct EvidenceConfig {
    pub schedule: Schedule,
    /// Where scheduled packs go; `<data_dir>/evidence` when unset.
    pub dir: Option<PathBuf>,
}

/// The last whole period before `now`: yesterday, last week (Monday to
/// Monday, UTC) or last month.
pub fn last_period(schedule: Schedule, now: Timestamp) -> Option<(Timestamp, Timestamp)> {
    use time::{Date, Duration as D, Month, PrimitiveDateTime, Time};
    let today = now.to_datetime().date();
    let at =
        |d: Date| Timestamp::from_datetime(PrimitiveDateTime::new(d, Time::MIDNIGHT).assume_utc());
    match schedule {
        Schedule::Off => None,
        Schedule::Daily => Some((at(today - D::days(1)), at(today))),
        Schedule::Weekly => {
            let monday = today - D::days(i64::from(today.weekday().number_days_from_monday()));
            Some((at(monday - D::days(7)), at(monday)))
        }
        Schedule::Monthly => {
            let first = Date::from_calendar_date(today.year(), today.month(), 1).ok()?;
            let prev = if today.month() == Month::January {
                Date::from_calendar_date(today.year() - 1, Month::December, 1).ok()?
            } else {
                Date::from_calendar_date(today.year(), today.month().previous(), 1).ok()?
            };
            Some((at(prev), at(first)))
        }
    }
}

/// File name of a scheduled pack.
pub fn pack_name(from: Timestamp, to: Timestamp) -> String {
    let day = |t: Timestamp| t.to_string()[..10].to_owned();
    format!("docket-evidence-{}_{}.zip", day(from), day(to))
}

/// Whether an `export` entry for exactly this window (all projects) exists.
fn exported(ledger: &Ledger, from: Timestamp, to: Timestamp) -> Result<bool, ApiError> {
    let q = Query {
        types: vec![EntryType::Export],
        from: Some(to),
        order: Order::Desc,
        limit: 1000,
        ..Query::default()
    };
    let (rows, _) = ledger.query(&q).map_err(store)?;
    Ok(rows.iter().any(|(_, bytes)| {
        Entry::decode(bytes).is_ok_and(|e| {
            let b = e.body_value();
            b.get("from").and_then(|v| v.as_str()) == Some(&from.to_string())
                && b.get("to").and_then(|v| v.as_str()) == Some(&to.to_string())
                && b.get("project").is_none()
                && b.get("file").is_some()
        })
    }))
}

/// Writes the pack of the last whole period to `dir` if it is not there
/// yet, durably (temporary file, fsync, rename), and records it.
pub fn run_schedule(
    ledger: &Ledger,
    signer: &LogSigner,
    schedule: Schedule,
    dir: &Path,
    now: Timestamp,
) -> Result<Option<PathBuf>, ApiError> {
    let Some((from, to)) = last_period(schedule, now) else {
        return Ok(None);
    };
    if exported(ledger, from, to)? {
        return Ok(None);
    }
    std::fs::create_dir_all(dir).map_err(ApiError::internal)?;
    let name = pack_name(from, to);
    let path = dir.join(&name);
    let tmp = tempfile::NamedTempFile::new_in(dir).map_err(ApiError::internal)?;
    let req = ExportRequest {
        from,
        to,
        project: None,
    };
    let (file, manifest) = export(ledger, signer, &req, tmp.as_file())?;
    file.sync_all().map_err(ApiError::internal)?;
    tmp.persist(&path)
        .map_err(|e| ApiError::internal(e.error))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    let sha = docket_evidence::pack::manifest_sha256(&manifest);
    let entry = export_entry(
        &manifest,
        &sha,
        Some(&name),
        Actor::System {
            reason: format!("scheduled {schedule:?} export").to_lowercase(),
        },
    )?;
    ledger.append_blocking(vec![entry]).map_err(store)?;
    tracing::info!(file = %path.display(), from = %from, to = %to, entries = manifest.entries, "evidence pack written");
    Ok(Some(path))
}

/// Runs the schedule at start and then every `every`, until shutdown.
pub fn spawn_schedule(
    ledger: Arc<Ledger>,
    signer: Arc<LogSigner>,
    schedule: Schedule,
    dir: PathBuf,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let (l, s, d) = (ledger.clone(), signer.clone(), dir.clone());
            let done = tokio::task::spawn_blocking(move || {
                run_schedule(&l, &s, schedule, &d, Timestamp::now())
            })
            .await;
            match done {
                Ok(Err(e)) => {
                    tracing::error!(error = %e.message, "scheduled evidence export failed")
                }
                Err(e) => tracing::error!(error = %e, "scheduled evidence export panicked"),
                Ok(Ok(_)) => {}
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.changed() => return,
            }
        }
    })
}
