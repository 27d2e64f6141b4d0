//! The ledger over a backend: one appender thread that sequences, hashes,
//! chains and group-commits entries, acknowledging each caller only after
//! its transaction commits; and the read side — entries, proofs at any
//! committed size, checkpoints, receipts and queries.

use std::collections::{BTreeMap, VecDeque};
use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};
use docket_core::entry::HashedBody;
use docket_core::merkle::{self, leaf_hash};
use docket_core::{
    CanonicalBody, Entry, EntryType, Hash, IndexFields, LogSigner, Receipt, Seq, Timestamp,
};
use parking_lot::{Mutex, RwLock};
use tokio::sync::oneshot;

use crate::backend::{Backend, Batch, INDEXED_UPTO_META, IndexRow, Row, StoredCheckpoint, TileRow};
use crate::error::StoreError;
use crate::query::{self, Query};
use crate::tiles::{
    TILE_HEIGHT, TILE_WIDTH, TailTile, TreeReader, UpperLevels, decode_hashes, perfect_root,
};

/// An entry to append: its type, canonical body and the attributes queries
/// filter on. Built by the caller, off the appender thread.
#[derive(Clone, Debug)]
pub struct NewEntry {
    pub kind: EntryType,
    /// The canonical body, its leaf hash begun here rather than on the
    /// appender thread.
    pub body: HashedBody,
    pub index: IndexFields,
}

impl NewEntry {
    pub fn new(kind: EntryType, body: &serde_json::Value) -> Result<Self, StoreError> {
        let canonical =
            CanonicalBody::from_value(body).map_err(|e| StoreError::Invalid(e.to_string()))?;
        let index = IndexFields::from_body(body).map_err(|e| StoreError::Invalid(e.to_string()))?;
        Ok(Self {
            kind,
            body: HashedBody::new(canonical),
            index,
        })
    }
}

/// One page of query results: `(seq, canonical bytes)` rows and the cursor
/// for the next page, if there may be more.
pub type Page = (Vec<(u64, Vec<u8>)>, Option<String>);

/// What the appender acknowledges for each entry, after commit.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct Appended {
    pub seq: Seq,
    pub ts: Timestamp,
    pub leaf_hash: Hash,
}

/// Where the appender reads the time. Only simulations (benchmarks that
/// replay a year of traffic) replace the system clock; `ts` still never
/// decreases whatever the clock says.
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

#[derive(Clone)]
pub struct LedgerConfig {
    /// Most entries committed in one transaction.
    pub max_batch: usize,
    /// Requests that may wait for the appender before callers block.
    pub queue_depth: usize,
    pub clock: Clock,
    /// Postings (the secondary indexes) are written once this many entries
    /// wait for them, or once the oldest has waited `postings_max_delay`.
    /// Fewer, larger flushes cost commits less; queries scan what waits.
    pub postings_flush_entries: usize,
    pub postings_max_delay: std::time::Duration,
}

impl std::fmt::Debug for LedgerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LedgerConfig")
            .field("max_batch", &self.max_batch)
            .field("queue_depth", &self.queue_depth)
            .finish_non_exhaustive()
    }
}

impl Default for LedgerConfig {
    fn default() -> Self {
        Self {
            max_batch: 4096,
            queue_depth: 65_536,
            clock: Arc::new(Timestamp::now),
            postings_flush_entries: 4096,
            postings_max_delay: std::time::Duration::from_millis(200),
        }
    }
}

type Reply = oneshot::Sender<Result<Vec<Appended>, StoreError>>;

struct Request {
    entries: Vec<NewEntry>,
    /// `None` for a kept request already answered, and for a wake-up.
    reply: Option<Reply>,
    /// Kept until durable: a failed commit puts it back at the head of the
    /// line instead of dropping it (see [`Ledger::append_kept`]).
    kept: bool,
}

/// How often the appender retries kept entries while the store refuses them.
const KEPT_RETRY: std::time::Duration = std::time::Duration::from_millis(250);

/// State shared between the appender and readers; only grows, after commits.
struct Shared {
    /// Entries durably committed; readers never look past this.
    size: AtomicU64,
    upper: UpperLevels,
    tail: RwLock<TailTile>,
    /// `ts` of the first entry of each leaf tile: a sparse time index.
    block_ts: RwLock<Vec<i64>>,
    latest_checkpoint: Mutex<Option<StoredCheckpoint>>,
    /// Entries below this `seq` have their postings written.
    indexed: AtomicU64,
    /// Requests that must become durable whatever happens (receipts of
    /// calls already forwarded), oldest first. Every batch begins with
    /// them, so nothing newer commits before they do.
    kept: Mutex<VecDeque<Request>>,
    /// Entries in `kept`.
    kept_entries: AtomicU64,
    /// Whether the last commit the appender tried succeeded.
    writable: AtomicBool,
}

impl Shared {
    /// Takes over state reloaded from the database.
    fn adopt(&self, fresh: Shared) {
        *self.upper.levels.write() = fresh.upper.levels.into_inner();
        *self.tail.write() = fresh.tail.into_inner();
        *self.block_ts.write() = fresh.block_ts.into_inner();
        self.indexed
            .store(fresh.indexed.into_inner(), Ordering::Release);
        self.size.store(fresh.size.into_inner(), Ordering::Release);
    }
}

/// The appender's view of the tree's right edge.
#[derive(Clone)]
struct Edge {
    next_seq: u64,
    prev: Hash,
    last_ts: i64,
    /// Per tile level, the hashes of the tile being filled.
    partial: Vec<Vec<Hash>>,
}

pub struct Ledger {
    backend: Arc<dyn Backend>,
    shared: Arc<Shared>,
    tx: Mutex<Option<Sender<Request>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger")
            .field("backend", &self.backend.kind())
            .field("size", &self.size())
            .finish()
    }
}

impl Ledger {
    /// Opens the ledger over `backend`, rebuilding the in-memory tree edge
    /// from the stored tiles, and starts the appender thread.
    pub fn open(backend: Arc<dyn Backend>, config: LedgerConfig) -> Result<Self, StoreError> {
        let (edge, shared, pending) = load_state(backend.as_ref())?;
        let shared = Arc::new(shared);
        let (tx, rx) = crossbeam_channel::bounded(config.queue_depth);
        let appender = Appender {
            backend: backend.clone(),
            shared: shared.clone(),
            edge,
            config,
            pending,
            last_postings_flush: Instant::now(),
        };
        let thread = std::thread::Builder::new()
            .name("docket-appender".into())
            .spawn(move || appender.run(rx))
            .map_err(|e| StoreError::Unavailable(format!("cannot start appender: {e}")))?;
        Ok(Self {
            backend,
            shared,
            tx: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
        })
    }

    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// Entries below this `seq` are in the secondary indexes (postings);
    /// queries scan the few above it.
    pub fn indexed_upto(&self) -> u64 {
        self.shared.indexed.load(Ordering::Acquire)
    }

    /// Number of committed entries (the next `seq`).
    pub fn size(&self) -> u64 {
        self.shared.size.load(Ordering::Acquire)
    }

    fn submit(
        &self,
        entries: Vec<NewEntry>,
        wait: bool,
    ) -> Result<oneshot::Receiver<Result<Vec<Appended>, StoreError>>, StoreError> {
        if entries.is_empty() {
            return Err(StoreError::Invalid("nothing to append".into()));
        }
        let (reply, rx) = oneshot::channel();
        let tx = self.tx.lock().clone().ok_or(StoreError::Closed)?;
        let request = Request {
            entries,
            reply: Some(reply),
            kept: false,
        };
        if wait {
            tx.send(request).map_err(|_| StoreError::Closed)?;
        } else {
            tx.try_send(request).map_err(|e| match e {
                crossbeam_channel::TrySendError::Full(_) => {
                    metrics::counter!("docket_append_overloaded_total").increment(1);
                    StoreError::Overloaded(format!(
                        "{} appends are already waiting for the ledger",
                        tx.len()
                    ))
                }
                crossbeam_channel::TrySendError::Disconnected(_) => StoreError::Closed,
            })?;
        }
        Ok(rx)
    }

    /// Appends entries in order; resolves once they are durable. Refused at
    /// once with [`StoreError::Overloaded`] when `queue_depth` appends
    /// already wait: a caller never blocks an async worker on a full queue.
    pub async fn append(&self, entries: Vec<NewEntry>) -> Result<Vec<Appended>, StoreError> {
        let rx = self.submit(entries, false)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// [`Ledger::append`] for threads outside an async runtime; waits for
    /// room in the queue instead of refusing.
    pub fn append_blocking(&self, entries: Vec<NewEntry>) -> Result<Vec<Appended>, StoreError> {
        let rx = self.submit(entries, true)?;
        rx.blocking_recv().map_err(|_| StoreError::Closed)?
    }

    /// Appends entries that must become durable whatever happens: the
    /// record of something already done outside (a call the provider ran).
    /// They skip the queue (never refused as overloaded) and commit before
    /// anything submitted after them. If the commit fails, the error is
    /// returned but the entries are kept in memory and retried, still ahead
    /// of everything newer, until the store takes them; only a crash loses
    /// them, and then their absence is visible (`docket verify` reports a
    /// forwarded call without its outcome).
    pub async fn append_kept(&self, entries: Vec<NewEntry>) -> Result<Vec<Appended>, StoreError> {
        if entries.is_empty() {
            return Err(StoreError::Invalid("nothing to append".into()));
        }
        let (reply, rx) = oneshot::channel();
        {
            let tx = self.tx.lock();
            let tx = tx.as_ref().ok_or(StoreError::Closed)?;
            self.shared
                .kept_entries
                .fetch_add(entries.len() as u64, Ordering::AcqRel);
            self.shared.kept.lock().push_back(Request {
                entries,
                reply: Some(reply),
                kept: true,
            });
            // Wake the appender; a full queue means it is awake already.
            let _ = tx.try_send(Request {
                entries: Vec::new(),
                reply: None,
                kept: false,
            });
        }
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Entries kept in memory until the store takes them
    /// ([`Ledger::append_kept`]); 0 when everything is durable.
    pub fn kept_entries(&self) -> u64 {
        self.shared.kept_entries.load(Ordering::Acquire)
    }

    /// Whether the last commit succeeded: `false` while the store refuses
    /// writes (a full disk, a lost database).
    pub fn writable(&self) -> bool {
        self.shared.writable.load(Ordering::Acquire)
    }

    /// Whether the store takes a write now, tried with a small write
    /// beside the log (never an entry) when the last commit failed: a
    /// store that recovered while nothing was appended is seen as such.
    /// Blocks; call it off the async workers.
    pub fn probe_writable(&self) -> Result<(), StoreError> {
        if self.writable() {
            return Ok(());
        }
        self.backend
            .set_meta("write_probe", &Timestamp::now().as_micros().to_string())?;
        // Kept entries still waiting mean the store is not yet caught up.
        if self.kept_entries() == 0 {
            self.shared.writable.store(true, Ordering::Release);
        }
        Ok(())
    }

    /// Stops accepting appends and waits for the appender to finish what it has.
    pub fn close(&self) {
        self.tx.lock().take();
        if let Some(t) = self.thread.lock().take() {
            let _ = t.join();
        }
    }

    pub fn entry(&self, seq: u64) -> Result<Entry, StoreError> {
        if seq >= self.size() {
            return Err(StoreError::NotFound(format!(
                "no entry {seq}; the log has {} entries",
                self.size()
            )));
        }
        let bytes = self
            .backend
            .entry(seq)?
            .ok_or_else(|| StoreError::Corrupt(format!("entry {seq} is missing")))?;
        Entry::decode(&bytes).map_err(|e| StoreError::Corrupt(format!("entry {seq}: {e}")))
    }

    fn reader(&self) -> TreeReader<'_> {
        TreeReader {
            backend: self.backend.as_ref(),
            upper: &self.shared.upper,
            tail: &self.shared.tail,
        }
    }

    fn check_size(&self, size: u64) -> Result<(), StoreError> {
        let have = self.size();
        if size > have {
            return Err(StoreError::Invalid(format!(
                "tree size {size} is beyond the log's {have} entries"
            )));
        }
        Ok(())
    }

    pub fn root(&self, size: u64) -> Result<Hash, StoreError> {
        self.check_size(size)?;
        merkle::root(size, &self.reader()).map_err(proof_err)
    }

    pub fn inclusion_proof(&self, seq: u64, size: u64) -> Result<Vec<Hash>, StoreError> {
        self.check_size(size)?;
        if seq >= size {
            return Err(StoreError::Invalid(format!(
                "entry {seq} is not in a tree of size {size}"
            )));
        }
        merkle::prove_inclusion(seq, size, &self.reader()).map_err(proof_err)
    }

    pub fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<Hash>, StoreError> {
        self.check_size(new)?;
        if old > new {
            return Err(StoreError::Invalid(format!(
                "old size {old} is larger than new size {new}"
            )));
        }
        merkle::prove_consistency(old, new, &self.reader()).map_err(proof_err)
    }

    pub fn range_proof(&self, a: u64, b: u64, size: u64) -> Result<Vec<Hash>, StoreError> {
        self.check_size(size)?;
        if a >= b || b > size {
            return Err(StoreError::Invalid(format!(
                "range [{a}, {b}) is not a non-empty range inside a tree of size {size}"
            )));
        }
        merkle::prove_range(a, b, size, &self.reader()).map_err(proof_err)
    }

    /// Signs and stores a checkpoint for the committed tree if it has grown
    /// since the last one. Returns the new checkpoint, if any.
    pub fn checkpoint(&self, signer: &LogSigner) -> Result<Option<StoredCheckpoint>, StoreError> {
        let size = self.size();
        let latest = self.latest_checkpoint()?;
        if size == 0 || latest.as_ref().is_some_and(|c| c.size >= size) {
            return Ok(None);
        }
        let root = self.root(size)?;
        let signed = signer
            .sign(size, root)
            .map_err(|e| StoreError::Unavailable(format!("signing checkpoint: {e}")))?;
        let cp = StoredCheckpoint {
            size,
            root,
            note: signed.note,
            signed_at: Timestamp::now(),
        };
        self.backend.put_checkpoint(&cp)?;
        *self.shared.latest_checkpoint.lock() = Some(cp.clone());
        Ok(Some(cp))
    }

    pub fn latest_checkpoint(&self) -> Result<Option<StoredCheckpoint>, StoreError> {
        if let Some(cp) = self.shared.latest_checkpoint.lock().clone() {
            return Ok(Some(cp));
        }
        let cp = self.backend.latest_checkpoint()?;
        *self.shared.latest_checkpoint.lock() = cp.clone();
        Ok(cp)
    }

    /// A self-standing receipt for entry `seq` against the latest checkpoint.
    pub fn receipt(&self, seq: u64) -> Result<Receipt, StoreError> {
        let entry = self.entry(seq)?;
        let cp = self
            .latest_checkpoint()?
            .filter(|c| c.size > seq)
            .ok_or_else(|| {
                StoreError::NotFound(format!(
                    "entry {seq} is not yet covered by a signed checkpoint; retry in a second"
                ))
            })?;
        let proof = self.inclusion_proof(seq, cp.size)?;
        Ok(Receipt::new(&entry, &proof, cp.size, &cp.note))
    }

    /// The first `seq` whose `ts` is at or after `ts` (the log size if none).
    pub fn seq_at_time(&self, ts: Timestamp) -> Result<u64, StoreError> {
        self.seq_at_time_within(ts, self.size())
    }

    /// [`Ledger::seq_at_time`] within the first `size` entries.
    fn seq_at_time_within(&self, ts: Timestamp, size: u64) -> Result<u64, StoreError> {
        let t = ts.as_micros();
        let b = {
            let blocks = self.shared.block_ts.read();
            blocks.partition_point(|&x| x < t) as u64
        };
        if b == 0 {
            return Ok(0);
        }
        let lo = (b - 1) * TILE_WIDTH;
        let hi = (b * TILE_WIDTH).min(size);
        if lo >= hi {
            return Ok(hi);
        }
        Ok(self.backend.first_seq_at_or_after(lo, hi, t)?.unwrap_or(hi))
    }

    fn seq_bounds(&self, q: &Query) -> Result<(u64, u64), StoreError> {
        // One size for both bounds: entries committed in between must not
        // fall inside a range whose lower bound was the size at the time.
        let size = self.size();
        let lo = match q.from {
            Some(t) => self.seq_at_time_within(t, size)?,
            None => 0,
        };
        let hi = match q.to {
            Some(t) => self.seq_at_time_within(t, size)?,
            None => size,
        };
        Ok((lo, hi.max(lo)))
    }

    /// One page of results and the cursor for the next, if there may be more.
    pub fn query(&self, q: &Query) -> Result<Page, StoreError> {
        let limit = q
            .effective_limit()
            .map_err(|e| StoreError::Invalid(e.to_string()))?;
        let seqs = self.seq_bounds(q)?;
        let watermark = self.shared.indexed.load(Ordering::Acquire);
        let mut rows = Vec::new();
        for (part, range) in query::plan(q, seqs, watermark) {
            let want = limit - rows.len() as u32;
            let sql = query::build_sql(q, part, range, false, want, self.backend.placeholder());
            rows.extend(self.backend.select_entries(&sql)?);
            if rows.len() as u32 >= limit {
                break;
            }
        }
        let next = (rows.len() == limit as usize)
            .then(|| rows.last().map(|(s, _)| q.cursor_for(*s)))
            .flatten();
        Ok((rows, next))
    }

    /// Every entry `query` matches, decoded, in its order, page by page
    /// (the query's limit is ignored), until `f` breaks. Blocking.
    pub fn scan<E: From<StoreError>>(
        &self,
        mut query: Query,
        mut f: impl FnMut(Entry) -> Result<ControlFlow<()>, E>,
    ) -> Result<(), E> {
        query.limit = query::MAX_LIMIT;
        loop {
            let (rows, next) = self.query(&query)?;
            for (_, bytes) in rows {
                let entry =
                    Entry::decode(&bytes).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                if f(entry)?.is_break() {
                    return Ok(());
                }
            }
            match next {
                Some(cursor) => query
                    .set_cursor(&cursor)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                None => return Ok(()),
            }
        }
    }

    pub fn count(&self, q: &Query) -> Result<u64, StoreError> {
        let seqs = self.seq_bounds(q)?;
        let watermark = self.shared.indexed.load(Ordering::Acquire);
        let mut total = 0;
        for (part, range) in query::plan(q, seqs, watermark) {
            let sql = query::build_sql(q, part, range, true, 0, self.backend.placeholder());
            total += self.backend.select_count(&sql)?;
        }
        Ok(total)
    }
}

impl Drop for Ledger {
    fn drop(&mut self) {
        self.close();
    }
}

fn proof_err(e: docket_core::ProofError) -> StoreError {
    match e {
        docket_core::ProofError::Read(m) => StoreError::Corrupt(m),
        other => StoreError::Invalid(other.to_string()),
    }
}

/// Rebuilds the appender's edge and the shared tree from the database.
fn load_state(backend: &dyn Backend) -> Result<(Edge, Shared, Vec<IndexRow>), StoreError> {
    let (next_seq, prev, last_ts) = match backend.last_entry()? {
        None => (0, Hash([0; 32]), i64::MIN),
        Some(bytes) => {
            let e = Entry::decode(&bytes)
                .map_err(|e| StoreError::Corrupt(format!("last entry does not decode: {e}")))?;
            (e.seq.0 + 1, leaf_hash(&bytes), e.ts.as_micros())
        }
    };
    let size = next_seq;
    let leaf_tiles = backend.leaf_tile_summaries()?;
    let block_ts: Vec<i64> = leaf_tiles
        .iter()
        .map(|t| t.first_ts.unwrap_or(i64::MIN))
        .collect();
    let expected_tiles = size.div_ceil(TILE_WIDTH);
    if leaf_tiles.len() as u64 != expected_tiles
        || leaf_tiles
            .iter()
            .enumerate()
            .any(|(i, t)| t.index != i as u64)
    {
        return Err(StoreError::Corrupt(format!(
            "{} leaf tiles stored for {size} entries; run `docket verify`",
            leaf_tiles.len()
        )));
    }
    let mut partial = vec![Vec::new()];
    if let Some(last) = leaf_tiles.last() {
        let want = size - last.index * TILE_WIDTH;
        if last.len != want {
            return Err(StoreError::Corrupt(format!(
                "last leaf tile holds {} hashes, expected {want}; run `docket verify`",
                last.len
            )));
        }
        if want < TILE_WIDTH {
            let bytes = backend
                .tile(0, last.index)?
                .ok_or_else(|| StoreError::Corrupt("last leaf tile vanished".into()))?;
            partial[0] = decode_hashes(&bytes);
            if partial[0].len() as u64 != want {
                return Err(StoreError::Corrupt(format!(
                    "last leaf tile reads back {} hashes, expected {want}; run `docket verify`",
                    partial[0].len()
                )));
            }
        }
    }
    let upper = UpperLevels::default();
    let mut level = 1u8;
    loop {
        let count = size >> (u32::from(level) * u32::from(TILE_HEIGHT));
        if count == 0 {
            break;
        }
        let hashes: Vec<Hash> = backend
            .tiles(level)?
            .iter()
            .flat_map(|t| decode_hashes(&t.hashes))
            .collect();
        if hashes.len() as u64 != count {
            return Err(StoreError::Corrupt(format!(
                "tile level {level} holds {} hashes, expected {count}; run `docket verify`",
                hashes.len()
            )));
        }
        let tail = (count % TILE_WIDTH) as usize;
        partial.push(hashes[hashes.len() - tail..].to_vec());
        if level == 1 {
            for h in hashes {
                upper.push_level8(h);
            }
        }
        level += 1;
    }
    let indexed = match backend.meta(INDEXED_UPTO_META)? {
        None => 0,
        Some(v) => v
            .parse::<u64>()
            .ok()
            .filter(|&w| w <= size)
            .ok_or_else(|| {
                StoreError::Corrupt(format!("postings watermark {v:?} is not within the log"))
            })?,
    };
    // Entries committed after the last postings flush: their postings are
    // rebuilt from the entries themselves and written with the next batch.
    let mut pending = Vec::new();
    backend.scan(indexed, size, &mut |seq, bytes| {
        let e =
            Entry::decode(&bytes).map_err(|e| StoreError::Corrupt(format!("entry {seq}: {e}")))?;
        let index = IndexFields::from_body(&e.body_value())
            .map_err(|e| StoreError::Corrupt(format!("entry {seq}: {e}")))?;
        pending.push(IndexRow {
            seq,
            mow: e.ts.minute_of_week(),
            kind: e.kind,
            index: Arc::new(index),
        });
        Ok(())
    })?;
    let edge = Edge {
        next_seq,
        prev,
        last_ts,
        partial,
    };
    let shared = Shared {
        size: AtomicU64::new(size),
        upper,
        tail: RwLock::new(TailTile {
            index: size / TILE_WIDTH,
            hashes: edge.partial[0].clone(),
        }),
        block_ts: RwLock::new(block_ts),
        latest_checkpoint: Mutex::new(None),
        indexed: AtomicU64::new(indexed),
        kept: Mutex::new(VecDeque::new()),
        kept_entries: AtomicU64::new(0),
        writable: AtomicBool::new(true),
    };
    Ok((edge, shared, pending))
}

struct Appender {
    backend: Arc<dyn Backend>,
    shared: Arc<Shared>,
    edge: Edge,
    config: LedgerConfig,
    /// Committed entries whose postings are not yet written.
    pending: Vec<IndexRow>,
    last_postings_flush: Instant,
}

impl Appender {
    fn run(mut self, rx: Receiver<Request>) {
        loop {
            // Kept entries go at once, unless the store just refused them.
            let retrying = !self.shared.kept.lock().is_empty();
            let failing = !self.shared.writable.load(Ordering::Acquire);
            let wait = match (retrying, failing) {
                (true, true) => KEPT_RETRY,
                (true, false) => std::time::Duration::ZERO,
                (false, _) => self.config.postings_max_delay,
            };
            let first = match rx.recv_timeout(wait) {
                Ok(r) => Some(r),
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => None,
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
            };
            // Kept requests lead every batch, oldest first.
            let mut batch: Vec<Request> = self.shared.kept.lock().drain(..).collect();
            let mut n: usize = batch.iter().map(|r| r.entries.len()).sum();
            if let Some(r) = first {
                n += r.entries.len();
                batch.push(r);
            }
            while n < self.config.max_batch {
                match rx.try_recv() {
                    Ok(r) => {
                        n += r.entries.len();
                        batch.push(r);
                    }
                    Err(_) => break,
                }
            }
            // Wake-ups carry nothing.
            batch.retain(|r| !r.entries.is_empty());
            if !batch.is_empty() || (!self.pending.is_empty() && !retrying) {
                // An empty batch when quiet writes what postings wait.
                self.commit(batch, n);
            }
        }
        // Closing: one last try for what must not be lost.
        let kept: Vec<Request> = self.shared.kept.lock().drain(..).collect();
        if !kept.is_empty() {
            let n = kept.iter().map(|r| r.entries.len()).sum();
            self.commit(kept, n);
            let lost = self.shared.kept_entries.load(Ordering::Acquire);
            if lost > 0 {
                tracing::error!(
                    entries = lost,
                    "closing with kept entries the store would not take; `docket verify` reports the calls they record as forwarded with no outcome"
                );
            }
        }
    }

    fn commit(&mut self, mut batch: Vec<Request>, n: usize) {
        let started = Instant::now();
        let before = self.edge.clone();
        let pending_before = self.pending.len();
        let mut rows = Vec::with_capacity(n);
        let mut acks = Vec::with_capacity(n);
        // Tiles this batch touched, and the contents of those it completed.
        let mut touched: BTreeMap<(u8, u64), Option<Vec<Hash>>> = BTreeMap::new();
        let mut new_upper: Vec<(u8, Hash)> = Vec::new();
        let mut new_blocks: Vec<i64> = Vec::new();
        for req in &mut batch {
            for e in &mut req.entries {
                let seq = self.edge.next_seq;
                let ts = (self.config.clock)().as_micros().max(self.edge.last_ts);
                let (bytes, leaf) = e.body.seal(
                    Seq(seq),
                    Timestamp::from_micros(ts),
                    e.kind,
                    &self.edge.prev,
                );
                if seq.is_multiple_of(TILE_WIDTH) {
                    new_blocks.push(ts);
                }
                self.push_leaf(seq, leaf, &mut touched, &mut new_upper);
                self.edge.next_seq += 1;
                self.edge.prev = leaf;
                self.edge.last_ts = ts;
                acks.push(Appended {
                    seq: Seq(seq),
                    ts: Timestamp::from_micros(ts),
                    leaf_hash: leaf,
                });
                rows.push(Row {
                    seq,
                    ts: Timestamp::from_micros(ts),
                    kind: e.kind,
                    bytes,
                    // Moved, not copied, unless a failed commit must
                    // replay the request.
                    index: Arc::new(if req.kept {
                        e.index.clone()
                    } else {
                        std::mem::take(&mut e.index)
                    }),
                });
            }
        }
        let first_seq = before.next_seq;
        let tiles: Vec<TileRow> = touched
            .into_iter()
            .map(|((level, index), full)| {
                let hashes = full.unwrap_or_else(|| self.edge.partial[usize::from(level)].clone());
                let first_ts = (level == 0).then(|| {
                    let first = index * TILE_WIDTH;
                    if first >= first_seq {
                        rows[(first - first_seq) as usize].ts.as_micros()
                    } else {
                        self.shared.block_ts.read()[index as usize]
                    }
                });
                TileRow {
                    level,
                    index,
                    hashes: hashes.iter().flat_map(|h| h.0).collect(),
                    first_ts,
                }
            })
            .collect();
        for row in &rows {
            self.pending.push(IndexRow {
                seq: row.seq,
                mow: row.ts.minute_of_week(),
                kind: row.kind,
                index: row.index.clone(),
            });
        }
        let flush = !self.pending.is_empty()
            && (self.pending.len() >= self.config.postings_flush_entries
                || self.last_postings_flush.elapsed() >= self.config.postings_max_delay);
        let batch_ = Batch {
            rows: &rows,
            tiles: &tiles,
            postings: if flush { &self.pending } else { &[] },
            indexed_upto: self.edge.next_seq,
        };
        match self.backend.write_batch(&batch_) {
            Ok(()) => {
                if flush {
                    self.pending.clear();
                    self.last_postings_flush = Instant::now();
                    self.shared
                        .indexed
                        .store(self.edge.next_seq, Ordering::Release);
                }
                // Levels above 8 follow from the level-8 hashes.
                for (level, h) in new_upper {
                    if level == 1 {
                        self.shared.upper.push_level8(h);
                    }
                }
                self.shared.block_ts.write().extend(new_blocks);
                *self.shared.tail.write() = TailTile {
                    index: self.edge.next_seq / TILE_WIDTH,
                    hashes: self.edge.partial[0].clone(),
                };
                self.shared
                    .size
                    .store(self.edge.next_seq, Ordering::Release);
                if n > 0 {
                    metrics::histogram!("docket_append_batch_entries").record(n as f64);
                }
                metrics::histogram!("docket_append_commit_seconds")
                    .record(started.elapsed().as_secs_f64());
                metrics::counter!("docket_appended_entries_total").increment(n as u64);
                self.shared.writable.store(true, Ordering::Release);
                let mut acks = acks.into_iter();
                for req in batch {
                    let mine: Vec<Appended> = acks.by_ref().take(req.entries.len()).collect();
                    if req.kept {
                        self.shared
                            .kept_entries
                            .fetch_sub(mine.len() as u64, Ordering::AcqRel);
                        if req.reply.is_none() {
                            tracing::info!(
                                first = mine.first().map(|a| a.seq.0),
                                entries = mine.len(),
                                "kept entries are durable now"
                            );
                        }
                    }
                    if let Some(reply) = req.reply {
                        let _ = reply.send(Ok(mine));
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, entries = n, "append batch failed; nothing acknowledged");
                metrics::counter!("docket_append_failures_total").increment(1);
                // The commit may have landed even though we heard an error
                // (a connection lost during COMMIT): take the database's
                // word for where the log stands, not our own.
                match load_state(self.backend.as_ref()) {
                    Ok((edge, fresh, pending)) => {
                        self.edge = edge;
                        self.pending = pending;
                        self.shared.adopt(fresh);
                    }
                    Err(reload) => {
                        tracing::error!(error = %reload, "cannot reload the log state; keeping the last known state");
                        self.edge = before;
                        self.pending.truncate(pending_before);
                    }
                }
                self.shared.writable.store(false, Ordering::Release);
                let mut again = Vec::new();
                for mut req in batch {
                    if let Some(reply) = req.reply.take() {
                        let _ = reply.send(Err(e.clone()));
                    }
                    if req.kept {
                        again.push(req);
                    }
                }
                // Back to the head of the line, ahead of any kept since.
                let mut kept = self.shared.kept.lock();
                for req in again.into_iter().rev() {
                    kept.push_front(req);
                }
            }
        }
    }

    /// Adds a leaf to the level-0 tile; a tile that fills becomes one hash
    /// of the tile level above, and so on up.
    fn push_leaf(
        &mut self,
        seq: u64,
        leaf: Hash,
        touched: &mut BTreeMap<(u8, u64), Option<Vec<Hash>>>,
        new_upper: &mut Vec<(u8, Hash)>,
    ) {
        let mut h = leaf;
        let mut level = 0u8;
        loop {
            let l = usize::from(level);
            if self.edge.partial.len() == l {
                self.edge.partial.push(Vec::new());
            }
            // Position of this hash among all hashes of its tile level.
            let pos = ((seq + 1) >> (u32::from(level) * u32::from(TILE_HEIGHT))) - 1;
            let tile = pos / TILE_WIDTH;
            self.edge.partial[l].push(h);
            if level > 0 {
                new_upper.push((level, h));
            }
            if (self.edge.partial[l].len() as u64) < TILE_WIDTH {
                touched.entry((level, tile)).or_insert(None);
                break;
            }
            let full = std::mem::take(&mut self.edge.partial[l]);
            h = perfect_root(&full);
            touched.insert((level, tile), Some(full));
            level += 1;
        }
    }
}
