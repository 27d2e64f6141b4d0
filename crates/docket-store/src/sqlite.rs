//! The embedded default backend: one SQLite file in WAL mode with
//! `synchronous = FULL`, so a commit is durable when it returns. One writer
//! connection (used only by the appender thread) and a pool of read-only
//! connections.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use docket_core::{Hash, Timestamp};
use parking_lot::Mutex;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Transaction, params};

use crate::backend::{
    Backend, Batch, INDEXED_UPTO_META, StoredCheckpoint, TileRow, TileSummary, leaf_tail_hashes,
};
use crate::error::StoreError;
use crate::query::{Placeholder, SqlQuery, SqlValue};

/// Migrations, in order; append only, never edit one that has shipped.
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/sqlite/0001_ledger.sql"),
    include_str!("../migrations/sqlite/0002_leaf_tail.sql"),
];

/// Run on every open for writing (`docket verify --data-dir` included): the
/// last leaf tile, if it is in the layout before `leaf_tail` (a well-formed
/// partial blob, which an older docket writes), moves to `leaf_tail`
/// without overwriting a row already there, and rows of tiles since written
/// whole go. Afterwards an empty level-0 blob is the one sign of a tile
/// being filled. Anything malformed is left as found, for `docket verify`.
const TAKE_OVER_PARTIAL_TILES: &str = "
WITH RECURSIVE pos(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM pos WHERE n < 255)
INSERT OR IGNORE INTO leaf_tail (seq, hash)
SELECT t.idx * 256 + pos.n, substr(t.hashes, pos.n * 32 + 1, 32)
FROM tiles t JOIN pos ON pos.n < length(t.hashes) / 32
WHERE t.level = 0 AND t.idx = (SELECT max(idx) FROM tiles WHERE level = 0)
  AND length(t.hashes) BETWEEN 32 AND 8160 AND length(t.hashes) % 32 = 0;
UPDATE tiles SET hashes = X''
WHERE level = 0 AND idx = (SELECT max(idx) FROM tiles WHERE level = 0)
  AND length(hashes) BETWEEN 32 AND 8160 AND length(hashes) % 32 = 0;
DELETE FROM leaf_tail WHERE EXISTS (
    SELECT 1 FROM tiles
    WHERE level = 0 AND idx = leaf_tail.seq / 256 AND length(hashes) = 8192
);
";

#[derive(Clone, Debug)]
pub struct SqliteConfig {
    pub path: PathBuf,
    /// Page cache of the writer connection, in MiB.
    pub writer_cache_mib: u32,
    /// Page cache of each reader connection, in MiB.
    pub reader_cache_mib: u32,
    pub readers: u32,
}

impl SqliteConfig {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            // Page caches bound the server's memory (eight readers and the
            // writer at most ~130 MB); the OS page cache does the rest.
            writer_cache_mib: 64,
            reader_cache_mib: 8,
            readers: 8,
        }
    }
}

pub struct SqliteBackend {
    path: PathBuf,
    writer: Mutex<Writer>,
    readers: r2d2::Pool<ReaderManager>,
    /// Dropping it stops the background WAL checkpointer.
    _checkpointer: std::sync::mpsc::Sender<()>,
}

/// WAL pages after which the writer checkpoints inline, should the
/// background checkpointer fall behind (about 400 MiB).
const INLINE_CHECKPOINT_PAGES: i64 = 100_000;

/// Copies the WAL back into the database file from its own connection, so
/// the appender's commits never pay for it. Stops when the backend is dropped.
fn spawn_wal_checkpointer(path: PathBuf) -> Result<std::sync::mpsc::Sender<()>, StoreError> {
    let conn = open(
        &path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        2,
    )
    .map_err(err)?;
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("docket-wal".into())
        .spawn(move || {
            use std::sync::mpsc::RecvTimeoutError;
            loop {
                match rx.recv_timeout(Duration::from_millis(200)) {
                    Err(RecvTimeoutError::Timeout) | Ok(()) => {
                        if let Err(e) =
                            conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                        {
                            tracing::warn!(error = %e, "WAL checkpoint failed; will retry");
                        }
                    }
                    Err(RecvTimeoutError::Disconnected) => {
                        let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
                        return;
                    }
                }
            }
        })
        .map_err(|e| StoreError::Unavailable(format!("cannot start WAL checkpointer: {e}")))?;
    Ok(tx)
}

/// Interned attribute values and their ids. Looked up about eighteen times
/// per appended entry on the appender thread, so hashed with foldhash
/// rather than SipHash, whose hashing was about 3 % of that thread's
/// samples at 256 writers. foldhash resists deliberately colliding keys
/// only a little (it is seeded per map); what makes that acceptable here is
/// that the names come from authenticated callers and each is interned once.
type Names = HashMap<String, i64, foldhash::fast::RandomState>;

struct Writer {
    conn: Connection,
    names: Names,
}

fn err(e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode;
    match e.sqlite_error_code() {
        Some(ErrorCode::ConstraintViolation) => StoreError::Conflict(e.to_string()),
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => {
            StoreError::Corrupt(e.to_string())
        }
        _ => StoreError::Unavailable(e.to_string()),
    }
}

fn pool_err(e: r2d2::Error) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn open(path: &Path, flags: OpenFlags, cache_mib: u32) -> Result<Connection, rusqlite::Error> {
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "cache_size", -(i64::from(cache_mib) * 1024))?;
    Ok(conn)
}

struct ReaderManager {
    path: PathBuf,
    cache_mib: u32,
}

impl r2d2::ManageConnection for ReaderManager {
    type Connection = Connection;
    type Error = rusqlite::Error;

    fn connect(&self) -> Result<Connection, rusqlite::Error> {
        let conn = open(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            self.cache_mib,
        )?;
        conn.pragma_update(None, "query_only", true)?;
        Ok(conn)
    }

    fn is_valid(&self, conn: &mut Connection) -> Result<(), rusqlite::Error> {
        conn.execute_batch("")
    }

    fn has_broken(&self, _: &mut Connection) -> bool {
        false
    }
}

impl SqliteBackend {
    /// Opens (creating if need be) the database and brings its schema up to date.
    pub fn open(config: &SqliteConfig) -> Result<Self, StoreError> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut conn = open(&config.path, flags, config.writer_cache_mib).map_err(err)?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Unavailable(format!(
                "cannot enable WAL mode (got {mode})"
            )));
        }
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(err)?;
        conn.pragma_update(None, "wal_autocheckpoint", INLINE_CHECKPOINT_PAGES)
            .map_err(err)?;
        migrate(&mut conn)?;
        {
            // Immediate: the write lock first, so that an older docket
            // still appending cannot grow the blob between copy and emptying.
            let tx = conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(err)?;
            tx.execute_batch(TAKE_OVER_PARTIAL_TILES).map_err(err)?;
            tx.commit().map_err(err)?;
        }
        // From here on the connection runs only the appender's statements.
        // Their statement journals
        // (kept by the multi-row postings insert and the upserts, to undo
        // one failed statement) stay in memory rather than spilling past
        // 64 KiB into a temp file a write(2) per page; each is bounded by the
        // pages one statement of at most 256 postings touches. Set after the
        // migrations and the take-over so that they, which may sort or
        // rewrite whole tables, can still spill to disk.
        conn.pragma_update(None, "temp_store", "MEMORY")
            .map_err(err)?;
        let names = {
            let mut stmt = conn.prepare("SELECT name, id FROM names").map_err(err)?;
            stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
                .map_err(err)?
                .collect::<Result<Names, _>>()
                .map_err(err)?
        };
        let readers = r2d2::Pool::builder()
            .max_size(config.readers.max(1))
            .min_idle(Some(1))
            .connection_timeout(Duration::from_secs(10))
            .build(ReaderManager {
                path: config.path.clone(),
                cache_mib: config.reader_cache_mib,
            })
            .map_err(pool_err)?;
        Ok(Self {
            path: config.path.clone(),
            writer: Mutex::new(Writer { conn, names }),
            readers,
            _checkpointer: spawn_wal_checkpointer(config.path.clone())?,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, rusqlite::Error>,
    ) -> Result<T, StoreError> {
        let conn = self.readers.get().map_err(pool_err)?;
        f(&conn).map_err(err)
    }
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(err)?;
    let known = MIGRATIONS.len() as i64;
    if version > known {
        return Err(StoreError::Unavailable(format!(
            "database schema version {version} is newer than this docket ({known}); upgrade docket"
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn.transaction().map_err(err)?;
        tx.execute_batch(sql).map_err(err)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)
            .map_err(err)?;
        tx.commit().map_err(err)?;
    }
    Ok(())
}

/// Interns a name, inserting it in this transaction if it is new.
fn intern(
    tx: &Transaction<'_>,
    names: &mut Names,
    added: &mut Vec<String>,
    name: &str,
) -> Result<i64, rusqlite::Error> {
    if let Some(id) = names.get(name) {
        return Ok(*id);
    }
    let id: i64 = tx
        .prepare_cached("INSERT INTO names (name) VALUES (?1) RETURNING id")?
        .query_row([name], |r| r.get(0))?;
    names.insert(name.to_owned(), id);
    added.push(name.to_owned());
    Ok(id)
}

/// Rows per multi-row postings insert (4 parameters each, well under
/// SQLite's default limit of 32,766 parameters).
const POSTINGS_PER_INSERT: usize = 256;

fn postings_insert(rows: usize) -> String {
    let values = vec!["(?, ?, ?, ?)"; rows].join(", ");
    format!("INSERT INTO postings (col, val, seq, mow) VALUES {values}")
}

/// The hashes of leaf tile `index` being filled, from `leaf_tail`.
fn leaf_tail(c: &Connection, index: u64) -> Result<Vec<u8>, rusqlite::Error> {
    let start = (index * 256) as i64;
    let mut stmt = c.prepare_cached(
        "SELECT seq, hash FROM leaf_tail WHERE seq >= ?1 AND seq < ?2 ORDER BY seq",
    )?;
    let rows = stmt
        .query_map(params![start, start + 256], |r| {
            // Anything but a blob reads as empty, which ends the tile there.
            let hash = match r.get_ref(1)? {
                ValueRef::Blob(h) => h.to_vec(),
                _ => Vec::new(),
            };
            Ok((r.get::<_, i64>(0)?, hash))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(leaf_tail_hashes(
        index,
        rows.iter().map(|(seq, h)| (*seq, h.as_slice())),
    ))
}

fn write_rows(
    tx: &Transaction<'_>,
    names: &mut Names,
    added: &mut Vec<String>,
    batch: &Batch<'_>,
) -> Result<(), rusqlite::Error> {
    let mut insert = tx.prepare_cached(
        "INSERT INTO entries (seq, ts, mow, type, agent, human, project, tool, provider, model, outcome, classes, data)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    )?;
    for row in batch.rows {
        let ix = &row.index;
        let mut attrs = [None; 7];
        for (id, value) in attrs.iter_mut().zip(ix.attributes()) {
            *id = value.map(|n| intern(tx, names, added, n)).transpose()?;
        }
        let [agent, human, project, tool, provider, model, outcome] = attrs;
        let kind = intern(tx, names, added, row.kind.as_str())?;
        let classes = if ix.data_classes.is_empty() {
            None
        } else {
            let mut s = String::from(",");
            for c in &ix.data_classes {
                s.push_str(&intern(tx, names, added, c)?.to_string());
                s.push(',');
            }
            Some(s)
        };
        insert.execute(params![
            row.seq as i64,
            row.ts.as_micros(),
            row.ts.minute_of_week(),
            kind,
            agent,
            human,
            project,
            tool,
            provider,
            model,
            outcome,
            classes,
            row.bytes
        ])?;
    }
    let writes = batch.tile_writes();
    let mut tile = tx.prepare_cached(
        "INSERT INTO tiles (level, idx, hashes, first_ts) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (level, idx) DO UPDATE SET hashes = excluded.hashes",
    )?;
    for t in &writes.whole {
        tile.execute(params![t.level, t.index as i64, t.hashes, t.first_ts])?;
    }
    for (from, to) in writes.filled {
        tx.prepare_cached("DELETE FROM leaf_tail WHERE seq >= ?1 AND seq < ?2")?
            .execute(params![from as i64, to as i64])?;
    }
    if let Some(tail) = writes.tail {
        tx.prepare_cached(
            "INSERT INTO tiles (level, idx, hashes, first_ts) VALUES (0, ?1, X'', ?2)
             ON CONFLICT (level, idx) DO NOTHING",
        )?
        .execute(params![tail.index as i64, tail.first_ts])?;
        let mut insert = tx.prepare_cached("INSERT INTO leaf_tail (seq, hash) VALUES (?1, ?2)")?;
        for (seq, hash) in tail.leaves {
            insert.execute(params![seq as i64, hash])?;
        }
    }
    if !batch.postings.is_empty() {
        // In key order, so each index page is written once per flush.
        let mut keyed = Vec::with_capacity(batch.postings.len() * 8);
        for r in batch.postings {
            for (col, name) in r.postings() {
                keyed.push((
                    col as i16,
                    intern(tx, names, added, name)?,
                    r.seq as i64,
                    r.mow,
                ));
            }
        }
        keyed.sort_unstable();
        // Many rows per statement: the per-statement cost (bind, step,
        // reset) is most of a posting's cost otherwise.
        let mut chunks = keyed.chunks_exact(POSTINGS_PER_INSERT);
        let mut many = tx.prepare_cached(&postings_insert(POSTINGS_PER_INSERT))?;
        for chunk in chunks.by_ref() {
            let values = chunk
                .iter()
                .flat_map(|&(c, v, s, m)| [i64::from(c), v, s, i64::from(m)]);
            many.execute(rusqlite::params_from_iter(values))?;
        }
        let mut one = tx.prepare_cached(&postings_insert(1))?;
        for &(col, val, seq, mow) in chunks.remainder() {
            one.execute(params![col, val, seq, mow])?;
        }
        tx.execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            params![INDEXED_UPTO_META, batch.indexed_upto.to_string()],
        )?;
    }
    Ok(())
}

fn bind(params: &[SqlValue]) -> Vec<&dyn rusqlite::ToSql> {
    params
        .iter()
        .map(|p| match p {
            SqlValue::Int(i) => i as &dyn rusqlite::ToSql,
            SqlValue::Text(s) => s as &dyn rusqlite::ToSql,
        })
        .collect()
}

fn checkpoint_row(r: &rusqlite::Row<'_>) -> Result<StoredCheckpoint, rusqlite::Error> {
    let root: Vec<u8> = r.get(1)?;
    let root: [u8; 32] = root.try_into().map_err(|_| {
        rusqlite::Error::FromSqlConversionFailure(
            1,
            rusqlite::types::Type::Blob,
            "root is not 32 bytes".into(),
        )
    })?;
    Ok(StoredCheckpoint {
        size: r.get::<_, i64>(0)? as u64,
        root: Hash(root),
        note: r.get(2)?,
        signed_at: Timestamp::from_micros(r.get(3)?),
    })
}

const CHECKPOINT_COLS: &str = "size, root, note, signed_at";

impl Backend for SqliteBackend {
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    fn write_batch(&self, batch: &Batch<'_>) -> Result<(), StoreError> {
        let mut w = self.writer.lock();
        let Writer { conn, names } = &mut *w;
        let mut added = Vec::new();
        let result = (|| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            write_rows(&tx, names, &mut added, batch)?;
            tx.commit()
        })();
        if let Err(e) = result {
            // The transaction rolled back: forget names it had interned.
            for n in added {
                names.remove(&n);
            }
            return Err(err(e));
        }
        Ok(())
    }

    fn last_entry(&self) -> Result<Option<Vec<u8>>, StoreError> {
        self.read(|c| {
            c.query_row(
                "SELECT data FROM entries ORDER BY seq DESC LIMIT 1",
                [],
                |r| r.get(0),
            )
            .optional()
        })
    }

    fn entry(&self, seq: u64) -> Result<Option<Vec<u8>>, StoreError> {
        self.read(|c| {
            c.prepare_cached("SELECT data FROM entries WHERE seq = ?1")?
                .query_row([seq as i64], |r| r.get(0))
                .optional()
        })
    }

    fn scan(
        &self,
        from: u64,
        to: u64,
        f: &mut dyn FnMut(u64, Vec<u8>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let conn = self.readers.get().map_err(pool_err)?;
        let mut stmt = conn
            .prepare("SELECT seq, data FROM entries WHERE seq >= ?1 AND seq < ?2 ORDER BY seq")
            .map_err(err)?;
        let mut rows = stmt.query([from as i64, to as i64]).map_err(err)?;
        while let Some(r) = rows.next().map_err(err)? {
            let seq: i64 = r.get(0).map_err(err)?;
            f(seq as u64, r.get(1).map_err(err)?)?;
        }
        Ok(())
    }

    fn tiles(&self, level: u8) -> Result<Vec<TileRow>, StoreError> {
        self.read(|c| {
            // One snapshot, as in `tile`.
            let tx = c.unchecked_transaction()?;
            let mut stmt = tx
                .prepare("SELECT idx, hashes, first_ts FROM tiles WHERE level = ?1 ORDER BY idx")?;
            let mut rows = stmt
                .query_map([level], |r| {
                    Ok(TileRow {
                        level,
                        index: r.get::<_, i64>(0)? as u64,
                        hashes: r.get(1)?,
                        first_ts: r.get(2)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            for t in &mut rows {
                if level == 0 && t.hashes.is_empty() {
                    t.hashes = leaf_tail(&tx, t.index)?;
                }
            }
            Ok(rows)
        })
    }

    fn leaf_tile_summaries(&self) -> Result<Vec<TileSummary>, StoreError> {
        self.read(|c| {
            // Only the tile being filled has its hashes in `leaf_tail`.
            let mut stmt = c.prepare(
                "SELECT idx,
                        CASE WHEN length(hashes) > 0 THEN length(hashes) / 32
                             ELSE (SELECT count(*) FROM leaf_tail
                                   WHERE seq >= tiles.idx * 256 AND seq < tiles.idx * 256 + 256)
                        END,
                        first_ts
                 FROM tiles WHERE level = 0 ORDER BY idx",
            )?;
            stmt.query_map([], |r| {
                Ok(TileSummary {
                    index: r.get::<_, i64>(0)? as u64,
                    len: r.get::<_, i64>(1)? as u64,
                    first_ts: r.get(2)?,
                })
            })?
            .collect()
        })
    }

    fn tile_first_ts(&self, index: u64) -> Result<Option<i64>, StoreError> {
        self.read(|c| {
            c.prepare_cached("SELECT first_ts FROM tiles WHERE level = 0 AND idx = ?1")?
                .query_row([index as i64], |r| r.get::<_, Option<i64>>(0))
                .optional()
                .map(Option::flatten)
        })
    }

    fn tile(&self, level: u8, index: u64) -> Result<Option<Vec<u8>>, StoreError> {
        self.read(|c| {
            let blob = |c: &Connection| -> Result<Option<Vec<u8>>, rusqlite::Error> {
                c.prepare_cached("SELECT hashes FROM tiles WHERE level = ?1 AND idx = ?2")?
                    .query_row(params![level, index as i64], |r| r.get(0))
                    .optional()
            };
            // A full tile never changes: one read, no transaction (the
            // path nearly every proof takes).
            match blob(c)? {
                Some(hashes) if level == 0 && hashes.is_empty() => {}
                other => return Ok(other),
            }
            // The tile being filled: its blob and its tail again, in one
            // snapshot, since the commit that fills it writes the one and
            // deletes the other.
            let tx = c.unchecked_transaction()?;
            match blob(&tx)? {
                Some(hashes) if hashes.is_empty() => leaf_tail(&tx, index).map(Some),
                other => Ok(other),
            }
        })
    }

    fn first_seq_at_or_after(&self, lo: u64, hi: u64, ts: i64) -> Result<Option<u64>, StoreError> {
        self.read(|c| {
            c.prepare_cached(
                "SELECT seq FROM entries WHERE seq >= ?1 AND seq < ?2 AND ts >= ?3 ORDER BY seq LIMIT 1",
            )?
            .query_row(params![lo as i64, hi as i64, ts], |r| r.get::<_, i64>(0))
            .optional()
            .map(|s| s.map(|s| s as u64))
        })
    }

    fn put_checkpoint(&self, cp: &StoredCheckpoint) -> Result<(), StoreError> {
        // Checkpoints are written by the signer, not the appender; they take
        // the writer connection briefly, between batches.
        let w = self.writer.lock();
        w.conn
            .execute(
                "INSERT INTO checkpoints (size, root, note, signed_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (size) DO NOTHING",
                params![
                    cp.size as i64,
                    cp.root.0.to_vec(),
                    cp.note,
                    cp.signed_at.as_micros()
                ],
            )
            .map_err(err)?;
        Ok(())
    }

    fn checkpoints(
        &self,
        after_size: u64,
        limit: u32,
    ) -> Result<Vec<StoredCheckpoint>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {CHECKPOINT_COLS} FROM checkpoints WHERE size > ?1 ORDER BY size LIMIT ?2"
            ))?;
            stmt.query_map(params![after_size as i64, limit], checkpoint_row)?
                .collect()
        })
    }

    fn latest_checkpoint(&self) -> Result<Option<StoredCheckpoint>, StoreError> {
        self.read(|c| {
            c.query_row(
                &format!("SELECT {CHECKPOINT_COLS} FROM checkpoints ORDER BY size DESC LIMIT 1"),
                [],
                checkpoint_row,
            )
            .optional()
        })
    }

    fn placeholder(&self) -> Placeholder {
        |i| format!("?{i}")
    }

    fn select_entries(&self, sql: &SqlQuery) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(&sql.sql)?;
            stmt.query_map(bind(&sql.params).as_slice(), |r| {
                Ok((r.get::<_, i64>(0)? as u64, r.get::<_, Vec<u8>>(1)?))
            })?
            .collect()
        })
    }

    fn select_count(&self, sql: &SqlQuery) -> Result<u64, StoreError> {
        self.read(|c| {
            c.prepare_cached(&sql.sql)?
                .query_row(bind(&sql.params).as_slice(), |r| r.get::<_, i64>(0))
                .map(|n| n as u64)
        })
    }

    fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.read(|c| {
            c.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
                .optional()
        })
    }

    fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        let w = self.writer.lock();
        w.conn
            .execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [key, value],
            )
            .map_err(err)?;
        Ok(())
    }
}
