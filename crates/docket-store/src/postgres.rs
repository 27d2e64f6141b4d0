//! The production backend: PostgreSQL (and what speaks its protocol), with
//! the schema and behaviour of the SQLite backend. One writer connection
//! (used only by the appender thread, and briefly for checkpoints and meta)
//! commits each batch as one transaction with `synchronous_commit` on, its
//! rows sent as arrays in one `INSERT … SELECT FROM unnest(…)` per table;
//! a pool of read-only connections serves everything else.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use docket_core::{Hash, Timestamp};
use parking_lot::{Mutex, MutexGuard};
use postgres::error::SqlState;
use postgres::fallible_iterator::FallibleIterator;
use postgres::types::{ToSql, Type};
use postgres::{Client, NoTls, Statement, Transaction};
use r2d2_postgres::PostgresConnectionManager;

use crate::backend::{
    Backend, Batch, INDEXED_UPTO_META, Row, StoredCheckpoint, TileRow, TileSummary,
    leaf_tail_hashes,
};
use crate::error::StoreError;
use crate::query::{Placeholder, SqlQuery, SqlValue};

/// Migrations, in order; append only, never edit one that has shipped.
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/postgres/0001_ledger.sql"),
    include_str!("../migrations/postgres/0002_leaf_tail.sql"),
];

/// Run on every open (`docket verify` included), under the migration lock
/// and with `tiles` locked against writers, so that an older docket still
/// appending cannot grow the blob between the copy and the emptying: the
/// last leaf tile, if it is in the layout before `leaf_tail` (a well-formed
/// partial blob, which an older docket writes), moves to `leaf_tail`
/// without overwriting a row already there, and rows of tiles since written
/// whole go. Afterwards an empty level-0 blob is the one sign of a tile
/// being filled. Anything malformed is left as found, for `docket verify`.
const TAKE_OVER_PARTIAL_TILES: &str = "
LOCK TABLE tiles IN SHARE ROW EXCLUSIVE MODE;
INSERT INTO leaf_tail (seq, hash)
SELECT t.idx * 256 + n, substring(t.hashes FROM n * 32 + 1 FOR 32)
FROM tiles t CROSS JOIN generate_series(0, 255) AS n
WHERE t.level = 0 AND t.idx = (SELECT max(idx) FROM tiles WHERE level = 0)
  AND octet_length(t.hashes) BETWEEN 32 AND 8160 AND octet_length(t.hashes) % 32 = 0
  AND n < octet_length(t.hashes) / 32
ON CONFLICT (seq) DO NOTHING;
UPDATE tiles SET hashes = ''::bytea
WHERE level = 0 AND idx = (SELECT max(idx) FROM tiles WHERE level = 0)
  AND octet_length(hashes) BETWEEN 32 AND 8160 AND octet_length(hashes) % 32 = 0;
DELETE FROM leaf_tail l WHERE EXISTS (
    SELECT 1 FROM tiles t
    WHERE t.level = 0 AND t.idx = l.seq / 256 AND octet_length(t.hashes) = 8192
);
";

/// The `leaf_tail` rows of tile `t` as two arrays (seqs, hashes) in `seq`
/// order, for a query over `tiles t`: read in the same statement as the
/// blob, so both come from one snapshot.
const TAIL_OF_T: &str = "(SELECT array_agg(seq ORDER BY seq) FROM leaf_tail
     WHERE t.level = 0 AND octet_length(t.hashes) = 0
       AND seq >= t.idx * 256 AND seq < t.idx * 256 + 256),
    (SELECT array_agg(hash ORDER BY seq) FROM leaf_tail
     WHERE t.level = 0 AND octet_length(t.hashes) = 0
       AND seq >= t.idx * 256 AND seq < t.idx * 256 + 256)";

/// The hashes of leaf tile `index` being filled from the two [`TAIL_OF_T`]
/// columns starting at `col`.
fn tail_from_row(index: u64, r: &postgres::Row, col: usize) -> Result<Vec<u8>, postgres::Error> {
    let seqs: Option<Vec<i64>> = r.try_get(col)?;
    let hashes: Option<Vec<Vec<u8>>> = r.try_get(col + 1)?;
    let (seqs, hashes) = (seqs.unwrap_or_default(), hashes.unwrap_or_default());
    Ok(leaf_tail_hashes(
        index,
        seqs.into_iter().zip(hashes.iter().map(Vec::as_slice)),
    ))
}

/// Serializes schema creation and migrations between nodes opening the
/// same database at once (`pg_advisory_xact_lock` key: "docket" in ASCII).
const MIGRATION_LOCK: i64 = 0x646f_636b_6574;

/// Rows per query while scanning: bounds memory whatever the range.
const SCAN_CHUNK: i64 = 2048;

/// Most entry bytes sent in one statement; a batch past it takes several
/// statements (still one transaction), far below the protocol's 1 GiB.
const MAX_STATEMENT_BYTES: usize = 64 << 20;

#[derive(Clone)]
pub struct PostgresConfig {
    /// A `postgres://user:password@host:port/db?…` URL or a libpq
    /// `key=value` string. It may hold the password: `Debug` redacts it.
    pub url: String,
    /// The schema holding Docket's tables, created if missing; `None` uses
    /// the server's default `search_path`. ASCII letters, digits and `_`.
    pub schema: Option<String>,
    /// Read connections in the pool.
    pub readers: u32,
    /// How long to wait for a connection, unless the URL says otherwise.
    pub connect_timeout: Duration,
}

impl PostgresConfig {
    pub fn new(url: &str) -> Self {
        Self {
            url: url.into(),
            schema: None,
            readers: 8,
            connect_timeout: Duration::from_secs(10),
        }
    }

    pub fn with_schema(mut self, schema: &str) -> Self {
        self.schema = Some(schema.into());
        self
    }
}

impl fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("url", &redact_url(&self.url))
            .field("schema", &self.schema)
            .field("readers", &self.readers)
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

const REDACTED: &str = "***";

/// The connection string with any password replaced by `***`: the userinfo
/// password of a URL, a `password=` URL parameter, or a `password=` pair of
/// a `key=value` string.
fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return redact_key_values(url);
    };
    // Where the userinfo ends: the last `@`, so that a password holding an
    // unescaped `@` is hidden whole (at worst the host is hidden with it).
    let (userinfo, after) = match rest.rfind('@') {
        Some(at) => (Some(&rest[..at]), &rest[at..]),
        None => (None, rest),
    };
    let mut out = format!("{scheme}://");
    if let Some(info) = userinfo {
        match info.split_once(':') {
            Some((user, _)) => {
                out.push_str(user);
                out.push(':');
                out.push_str(REDACTED);
            }
            None => out.push_str(info),
        }
    }
    match after.split_once('?') {
        None => out.push_str(after),
        Some((path, query)) => {
            out.push_str(path);
            out.push('?');
            let pairs: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => {
                        format!("{k}={REDACTED}")
                    }
                    _ => pair.to_owned(),
                })
                .collect();
            out.push_str(&pairs.join("&"));
        }
    }
    out
}

/// `host=… password=…`: values are bare words or single-quoted with `\`
/// escapes, and `=` may have spaces around it.
fn redact_key_values(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.char_indices().peekable();
    while let Some(&(start, c)) = chars.peek() {
        if c.is_whitespace() {
            out.push(c);
            chars.next();
            continue;
        }
        // The key.
        let mut end = start;
        while let Some(&(i, c)) = chars.peek() {
            if c.is_whitespace() || c == '=' {
                break;
            }
            end = i + c.len_utf8();
            chars.next();
        }
        let key = &s[start..end];
        out.push_str(key);
        // Spaces, `=`, spaces.
        while let Some(&(_, c)) = chars.peek() {
            if !(c.is_whitespace() || c == '=') {
                break;
            }
            out.push(c);
            chars.next();
        }
        // The value.
        let secret = key == "password";
        let mut value = String::new();
        if let Some(&(_, '\'')) = chars.peek() {
            value.push('\'');
            chars.next();
            while let Some((_, c)) = chars.next() {
                value.push(c);
                if c == '\\' {
                    if let Some((_, escaped)) = chars.next() {
                        value.push(escaped);
                    }
                } else if c == '\'' {
                    break;
                }
            }
        } else {
            while let Some(&(_, c)) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        out.push_str(if secret { REDACTED } else { &value });
    }
    out
}

fn valid_schema(schema: &str) -> bool {
    (1..=63).contains(&schema.len())
        && schema
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The driver's error with its causes: `postgres::Error`'s own `Display`
/// says only "db error" or "error connecting to server".
fn describe(e: &postgres::Error) -> String {
    let mut msg = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        msg.push_str(": ");
        msg.push_str(&c.to_string().replace('\n', "; "));
        cause = c.source();
    }
    msg
}

fn err(e: postgres::Error) -> StoreError {
    let msg = describe(&e);
    match e.code() {
        // Class 23, integrity constraint violation: the unique, not-null,
        // check and foreign-key failures SQLite calls constraint violations.
        Some(code) if code.code().starts_with("23") => StoreError::Conflict(msg),
        Some(code) if *code == SqlState::DATA_CORRUPTED || *code == SqlState::INDEX_CORRUPTED => {
            StoreError::Corrupt(msg)
        }
        _ => StoreError::Unavailable(msg),
    }
}

fn pool_err(e: r2d2::Error) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

/// Per-connection settings, for the writer and every pooled reader.
fn session_sql(schema: Option<&str>, read_only: bool) -> String {
    let mut sql = String::new();
    if let Some(s) = schema {
        sql.push_str(&format!("SET search_path TO \"{s}\";"));
    }
    if read_only {
        sql.push_str("SET default_transaction_read_only TO on;");
    } else {
        // Durable on commit whatever the server's or role's default says;
        // a setting that already waits for the flush (local, remote_write,
        // remote_apply) is left alone.
        sql.push_str(
            "DO $$ BEGIN IF current_setting('synchronous_commit') = 'off' \
             THEN PERFORM set_config('synchronous_commit', 'on', false); END IF; END $$;",
        );
    }
    sql
}

/// Sets up each new pooled connection.
#[derive(Debug)]
struct ReaderSession {
    sql: String,
}

impl r2d2::CustomizeConnection<Client, postgres::Error> for ReaderSession {
    fn on_acquire(&self, conn: &mut Client) -> Result<(), postgres::Error> {
        conn.batch_execute(&self.sql)
    }
}

/// The writer's prepared statements.
struct Statements {
    select_names: Statement,
    insert_names: Statement,
    entries: Statement,
    postings: Statement,
    watermark: Statement,
    tiles: Statement,
    filled: Statement,
}

impl Statements {
    fn prepare(client: &mut Client) -> Result<Self, postgres::Error> {
        Ok(Self {
            select_names: client
                .prepare("SELECT name, id FROM names WHERE name = ANY($1::text[])")?,
            insert_names: client.prepare(
                "INSERT INTO names (name) SELECT * FROM unnest($1::text[])
                 ON CONFLICT (name) DO NOTHING RETURNING name, id",
            )?,
            // The entries, and (in the same round trip) the leaf tile being
            // filled: its row once, for its first `ts` ($14 null: none),
            // and the batch's leaves in `leaf_tail`.
            entries: client.prepare(
                "WITH tile AS (
                     INSERT INTO tiles (level, idx, hashes, first_ts)
                     SELECT 0, $14::bigint, ''::bytea, $15::bigint WHERE $14::bigint IS NOT NULL
                     ON CONFLICT (level, idx) DO NOTHING
                 ), tail AS (
                     INSERT INTO leaf_tail (seq, hash) SELECT * FROM unnest($16::bigint[], $17::bytea[])
                 )
                 INSERT INTO entries (seq, ts, mow, type, agent, human, project, tool, provider, model, outcome, classes, data)
                 SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::int[], $4::bigint[], $5::bigint[],
                     $6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[], $11::bigint[],
                     $12::text[], $13::bytea[])",
            )?,
            postings: client.prepare(
                "INSERT INTO postings (col, val, seq, mow)
                 SELECT * FROM unnest($1::smallint[], $2::bigint[], $3::bigint[], $4::int[])",
            )?,
            watermark: client.prepare(
                "INSERT INTO meta (key, value) VALUES ($1, $2)
                 ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            )?,
            tiles: client.prepare(
                "INSERT INTO tiles (level, idx, hashes, first_ts)
                 SELECT * FROM unnest($1::smallint[], $2::bigint[], $3::bytea[], $4::bigint[])
                 ON CONFLICT (level, idx) DO UPDATE SET hashes = EXCLUDED.hashes",
            )?,

            filled: client.prepare("DELETE FROM leaf_tail WHERE seq >= $1 AND seq < $2")?,
        })
    }
}

struct Writer {
    client: Client,
    stmts: Statements,
    names: HashMap<String, i64>,
}

pub struct PostgresBackend {
    config: PostgresConfig,
    pg: postgres::Config,
    /// Always `Some` until dropped; see the `Drop` impl.
    conns: Option<Conns>,
}

struct Conns {
    writer: Mutex<Writer>,
    readers: r2d2::Pool<PostgresConnectionManager<NoTls>>,
}

impl Drop for PostgresBackend {
    /// The synchronous client blocks while it closes, which panics on an
    /// async runtime's thread; close the connections on a plain thread then.
    fn drop(&mut self) {
        if let Some(conns) = self.conns.take()
            && tokio::runtime::Handle::try_current().is_ok()
        {
            let _ = std::thread::spawn(move || drop(conns)).join();
        }
    }
}

impl fmt::Debug for PostgresBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresBackend")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl PostgresBackend {
    /// Connects, creates the schema if need be and brings it up to date.
    pub fn open(config: &PostgresConfig) -> Result<Self, StoreError> {
        let schema = config.schema.as_deref();
        if let Some(s) = schema
            && !valid_schema(s)
        {
            return Err(StoreError::Invalid(format!(
                "bad PostgreSQL schema name {:?}: use 1 to 63 ASCII letters, digits and _",
                s.chars().take(80).collect::<String>()
            )));
        }
        let mut pg = postgres::Config::from_str(&config.url)
            .map_err(|e| StoreError::Invalid(format!("bad PostgreSQL URL: {}", describe(&e))))?;
        if pg.get_connect_timeout().is_none() {
            pg.connect_timeout(config.connect_timeout);
        }
        if pg.get_application_name().is_none() {
            pg.application_name("docket");
        }
        let mut client = connect_writer(&pg, schema).map_err(err)?;
        warn_if_not_durable(&mut client);
        migrate(&mut client, schema)?;
        {
            let mut tx = client.transaction().map_err(err)?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
                .map_err(err)?;
            tx.batch_execute(TAKE_OVER_PARTIAL_TILES).map_err(err)?;
            tx.commit().map_err(err)?;
        }
        let names = client
            .query("SELECT name, id FROM names", &[])
            .map_err(err)?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<HashMap<String, i64>, postgres::Error>>()
            .map_err(err)?;
        let stmts = Statements::prepare(&mut client).map_err(err)?;
        let readers = r2d2::Pool::builder()
            .max_size(config.readers.max(1))
            .min_idle(Some(1))
            .connection_timeout(config.connect_timeout)
            .connection_customizer(Box::new(ReaderSession {
                sql: session_sql(schema, true),
            }))
            .build(PostgresConnectionManager::new(pg.clone(), NoTls))
            .map_err(pool_err)?;
        Ok(Self {
            config: config.clone(),
            pg,
            conns: Some(Conns {
                writer: Mutex::new(Writer {
                    client,
                    stmts,
                    names,
                }),
                readers,
            }),
        })
    }

    /// The writer, reconnected first if its connection was lost (a server
    /// restart, a failover): the interned names stay valid, as names are
    /// never deleted.
    fn conns(&self) -> &Conns {
        self.conns
            .as_ref()
            .expect("connections live until the backend is dropped")
    }

    fn writer(&self) -> Result<MutexGuard<'_, Writer>, StoreError> {
        let mut w = self.conns().writer.lock();
        if w.client.is_closed() {
            tracing::warn!("the PostgreSQL writer connection was lost; reconnecting");
            let mut client =
                connect_writer(&self.pg, self.config.schema.as_deref()).map_err(err)?;
            w.stmts = Statements::prepare(&mut client).map_err(err)?;
            w.client = client;
        }
        Ok(w)
    }

    /// Whether the database holds exactly this row: a batch is one
    /// transaction, so its last row tells whether the batch committed.
    fn holds(&self, row: &Row) -> Result<bool, StoreError> {
        Ok(self.entry(row.seq)?.is_some_and(|b| b == row.bytes))
    }

    fn read<T>(
        &self,
        f: impl FnOnce(&mut Client) -> Result<T, postgres::Error>,
    ) -> Result<T, StoreError> {
        let mut conn = self.conns().readers.get().map_err(pool_err)?;
        f(&mut conn).map_err(err)
    }
}

fn connect_writer(pg: &postgres::Config, schema: Option<&str>) -> Result<Client, postgres::Error> {
    let mut client = pg.connect(NoTls)?;
    client.batch_execute(&session_sql(schema, false))?;
    Ok(client)
}

/// Durability is the server's to give: say so loudly when it will not.
fn warn_if_not_durable(client: &mut Client) {
    if let Ok(row) = client.query_one("SELECT current_setting('fsync')", &[])
        && row.try_get::<_, String>(0).is_ok_and(|v| v == "off")
    {
        tracing::warn!("PostgreSQL runs with fsync off: committed entries can be lost in a crash");
    }
}

/// Applies pending migrations, one transaction each, under an advisory
/// lock so that nodes starting together do not race.
fn migrate(client: &mut Client, schema: Option<&str>) -> Result<(), StoreError> {
    let known = MIGRATIONS.len() as i32;
    loop {
        let mut tx = client.transaction().map_err(err)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .map_err(err)?;
        // Look before creating: CREATE … IF NOT EXISTS checks the privilege
        // to create first, so it would fail for a role that may only use
        // a schema someone else prepared.
        if let Some(s) = schema {
            let exists = tx
                .query_opt("SELECT 1 FROM pg_namespace WHERE nspname = $1", &[&s])
                .map_err(err)?
                .is_some();
            if !exists {
                tx.batch_execute(&format!("CREATE SCHEMA \"{s}\""))
                    .map_err(err)?;
            }
        }
        let tracked = tx
            .query_one("SELECT to_regclass('docket_migrations') IS NOT NULL", &[])
            .and_then(|r| r.try_get::<_, bool>(0))
            .map_err(err)?;
        if !tracked {
            tx.batch_execute(
                "CREATE TABLE docket_migrations (
                     version    INTEGER PRIMARY KEY,
                     applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
                 )",
            )
            .map_err(err)?;
        }
        let version: i32 = tx
            .query_one(
                "SELECT coalesce(max(version), 0) FROM docket_migrations",
                &[],
            )
            .and_then(|r| r.try_get(0))
            .map_err(err)?;
        if version > known {
            return Err(StoreError::Unavailable(format!(
                "database schema version {version} is newer than this docket ({known}); upgrade docket"
            )));
        }
        if version == known {
            return tx.commit().map_err(err);
        }
        tx.batch_execute(MIGRATIONS[version as usize])
            .map_err(err)?;
        tx.execute(
            "INSERT INTO docket_migrations (version) VALUES ($1)",
            &[&(version + 1)],
        )
        .map_err(err)?;
        tx.commit().map_err(err)?;
    }
}

/// Adds `(name, id)` rows to the cache, remembering them for a rollback.
fn learn(
    names: &mut HashMap<String, i64>,
    added: &mut Vec<String>,
    rows: Result<Vec<postgres::Row>, postgres::Error>,
) -> Result<(), StoreError> {
    for r in rows.map_err(err)? {
        let name: String = r.try_get(0).map_err(err)?;
        let id: i64 = r.try_get(1).map_err(err)?;
        added.push(name.clone());
        names.insert(name, id);
    }
    Ok(())
}

/// Interns every name the batch uses that the cache lacks: one lookup, one
/// insert of those still missing, and one more lookup for any that another
/// connection inserted meanwhile — all in this transaction.
fn intern_all(
    tx: &mut Transaction<'_>,
    stmts: &Statements,
    names: &mut HashMap<String, i64>,
    added: &mut Vec<String>,
    mut missing: Vec<&str>,
) -> Result<(), StoreError> {
    for stmt in [
        &stmts.select_names,
        &stmts.insert_names,
        &stmts.select_names,
    ] {
        learn(names, added, tx.query(stmt, &[&missing]))?;
        missing.retain(|n| !names.contains_key(*n));
        if missing.is_empty() {
            return Ok(());
        }
    }
    Err(StoreError::Unavailable(format!(
        "name {:?} could be neither inserted nor found",
        missing[0].chars().take(80).collect::<String>()
    )))
}

fn write_rows(
    tx: &mut Transaction<'_>,
    stmts: &Statements,
    names: &mut HashMap<String, i64>,
    added: &mut Vec<String>,
    batch: &Batch<'_>,
) -> Result<(), StoreError> {
    let rows = batch.rows;
    let mut seen = HashSet::new();
    let mut missing = Vec::new();
    for r in batch.postings {
        for (_, n) in r.postings() {
            if !names.contains_key(n) && seen.insert(n) {
                missing.push(n);
            }
        }
    }
    for row in rows {
        let ix = &row.index;
        let attrs = ix.attributes();
        let used = attrs
            .into_iter()
            .flatten()
            .chain(std::iter::once(row.kind.as_str()))
            .chain(ix.data_classes.iter().map(String::as_str));
        for n in used {
            if !names.contains_key(n) && seen.insert(n) {
                missing.push(n);
            }
        }
    }
    if !missing.is_empty() {
        intern_all(tx, stmts, names, added, missing)?;
    }
    let id = |n: &str| {
        names
            .get(n)
            .copied()
            .ok_or_else(|| StoreError::Unavailable(format!("name {n:?} was not interned")))
    };
    let opt_id = |v: Option<&str>| v.map(id).transpose();

    let writes = batch.tile_writes();
    // The tail goes with the first chunk of entries.
    let mut tail = writes.tail.map(|t| {
        let seqs: Vec<i64> = t.leaves.iter().map(|(s, _)| *s as i64).collect();
        let hashes: Vec<&[u8]> = t.leaves.iter().map(|(_, h)| *h).collect();
        (Some(t.index as i64), t.first_ts, seqs, hashes)
    });
    for chunk in chunks_by_size(rows) {
        let n = chunk.len();
        let mut seq = Vec::with_capacity(n);
        let mut ts = Vec::with_capacity(n);
        let mut mow = Vec::with_capacity(n);
        let mut kind = Vec::with_capacity(n);
        let mut attrs: [Vec<Option<i64>>; 7] = Default::default();
        let mut data: Vec<&[u8]> = Vec::with_capacity(n);
        let mut classes: Vec<Option<String>> = Vec::with_capacity(n);
        for row in chunk {
            let ix = &row.index;
            let m = i32::from(row.ts.minute_of_week());
            seq.push(row.seq as i64);
            ts.push(row.ts.as_micros());
            mow.push(m);
            kind.push(id(row.kind.as_str())?);
            for (col, v) in attrs.iter_mut().zip(ix.attributes()) {
                col.push(opt_id(v)?);
            }
            data.push(&row.bytes);
            classes.push(if ix.data_classes.is_empty() {
                None
            } else {
                let mut s = String::from(",");
                for class in &ix.data_classes {
                    s.push_str(&id(class)?.to_string());
                    s.push(',');
                }
                Some(s)
            });
        }
        let [agent, human, project, tool, provider, model, outcome] = &attrs;
        let (tile, first_ts, tail_seqs, tail_hashes) =
            tail.take().unwrap_or((None, None, Vec::new(), Vec::new()));
        tx.execute(
            &stmts.entries,
            &[
                &seq,
                &ts,
                &mow,
                &kind,
                agent,
                human,
                project,
                tool,
                provider,
                model,
                outcome,
                &classes,
                &data,
                &tile,
                &first_ts,
                &tail_seqs,
                &tail_hashes,
            ],
        )
        .map_err(err)?;
    }
    if !batch.postings.is_empty() {
        let mut keyed = Vec::with_capacity(batch.postings.len() * 8);
        for r in batch.postings {
            for (col, name) in r.postings() {
                keyed.push((col as i16, id(name)?, r.seq as i64, i32::from(r.mow)));
            }
        }
        keyed.sort_unstable();
        let col: Vec<i16> = keyed.iter().map(|k| k.0).collect();
        let val: Vec<i64> = keyed.iter().map(|k| k.1).collect();
        let seq: Vec<i64> = keyed.iter().map(|k| k.2).collect();
        let mow: Vec<i32> = keyed.iter().map(|k| k.3).collect();
        tx.execute(&stmts.postings, &[&col, &val, &seq, &mow])
            .map_err(err)?;
        tx.execute(
            &stmts.watermark,
            &[&INDEXED_UPTO_META, &batch.indexed_upto.to_string()],
        )
        .map_err(err)?;
    }
    let whole = &writes.whole;
    if !whole.is_empty() {
        let level: Vec<i16> = whole.iter().map(|t| i16::from(t.level)).collect();
        let idx: Vec<i64> = whole.iter().map(|t| t.index as i64).collect();
        let hashes: Vec<&[u8]> = whole.iter().map(|t| t.hashes.as_slice()).collect();
        let first_ts: Vec<Option<i64>> = whole.iter().map(|t| t.first_ts).collect();
        tx.execute(&stmts.tiles, &[&level, &idx, &hashes, &first_ts])
            .map_err(err)?;
    }
    for (from, to) in writes.filled {
        tx.execute(&stmts.filled, &[&(from as i64), &(to as i64)])
            .map_err(err)?;
    }
    Ok(())
}

/// Splits a batch so that no statement carries more than
/// [`MAX_STATEMENT_BYTES`] of entry bytes (one chunk in any usual batch).
fn chunks_by_size(rows: &[Row]) -> impl Iterator<Item = &[Row]> {
    let mut rest = rows;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut bytes = 0;
        let mut n = 0;
        while n < rest.len() && (n == 0 || bytes + rest[n].bytes.len() <= MAX_STATEMENT_BYTES) {
            bytes += rest[n].bytes.len();
            n += 1;
        }
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        Some(chunk)
    })
}

fn int(v: &i64) -> (&(dyn ToSql + Sync), Type) {
    (v, Type::INT8)
}

fn bind(params: &[SqlValue]) -> Vec<(&(dyn ToSql + Sync), Type)> {
    params
        .iter()
        .map(|p| match p {
            SqlValue::Int(i) => (i as &(dyn ToSql + Sync), Type::INT8),
            SqlValue::Text(s) => (s as &(dyn ToSql + Sync), Type::TEXT),
        })
        .collect()
}

fn placeholder(i: usize) -> String {
    format!("${i}")
}

const CHECKPOINT_COLS: &str = "size, root, note, signed_at";

fn checkpoint_row(r: &postgres::Row) -> Result<StoredCheckpoint, StoreError> {
    let root: Vec<u8> = r.try_get(1).map_err(err)?;
    let root: [u8; 32] = root
        .try_into()
        .map_err(|_| StoreError::Corrupt("checkpoint root is not 32 bytes".into()))?;
    Ok(StoredCheckpoint {
        size: r.try_get::<_, i64>(0).map_err(err)? as u64,
        root: Hash(root),
        note: r.try_get(2).map_err(err)?,
        signed_at: Timestamp::from_micros(r.try_get(3).map_err(err)?),
    })
}

impl Backend for PostgresBackend {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    fn write_batch(&self, batch: &Batch<'_>) -> Result<(), StoreError> {
        let rows = batch.rows;
        let mut w = self.writer()?;
        let Writer {
            client,
            stmts,
            names,
        } = &mut *w;
        let mut added = Vec::new();
        let mut committing = false;
        let result = (|| {
            let mut tx = client.transaction().map_err(err)?;
            write_rows(&mut tx, stmts, names, &mut added, batch)?;
            committing = true;
            tx.commit().map_err(err)
        })();
        let Err(e) = result else {
            return Ok(());
        };
        if committing
            && client.is_closed()
            && let Some(last) = rows.last()
        {
            // The connection died with the COMMIT in flight: it may have
            // landed. Report what happened, not what we failed to hear, or
            // the appender would re-use these seqs and conflict for ever.
            match self.holds(last) {
                Ok(true) => {
                    tracing::warn!(error = %e, "lost the answer to a COMMIT that did land");
                    return Ok(());
                }
                Ok(false) => {}
                Err(check) => {
                    return Err(StoreError::Unavailable(format!(
                        "{e}; whether the batch committed is unknown: {check}"
                    )));
                }
            }
        }
        // The transaction rolled back: forget names it had interned.
        for n in added {
            names.remove(&n);
        }
        Err(e)
    }

    fn last_entry(&self) -> Result<Option<Vec<u8>>, StoreError> {
        self.read(|c| {
            c.query_typed_opt("SELECT data FROM entries ORDER BY seq DESC LIMIT 1", &[])?
                .map(|r| r.try_get(0))
                .transpose()
        })
    }

    fn entry(&self, seq: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let seq = seq as i64;
        self.read(|c| {
            c.query_typed_opt("SELECT data FROM entries WHERE seq = $1", &[int(&seq)])?
                .map(|r| r.try_get(0))
                .transpose()
        })
    }

    fn scan(
        &self,
        from: u64,
        to: u64,
        f: &mut dyn FnMut(u64, Vec<u8>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut conn = self.conns().readers.get().map_err(pool_err)?;
        // Chunks by key rather than one long cursor: no transaction stays
        // open across a slow consumer, and rows stream within each chunk.
        let (mut next, to) = (from as i64, to as i64);
        while next < to {
            let mut rows = conn
                .query_typed_raw(
                    "SELECT seq, data FROM entries WHERE seq >= $1 AND seq < $2 ORDER BY seq LIMIT $3",
                    [int(&next), int(&to), int(&SCAN_CHUNK)],
                )
                .map_err(err)?;
            let mut got = 0;
            while let Some(r) = rows.next().map_err(err)? {
                let seq: i64 = r.try_get(0).map_err(err)?;
                f(seq as u64, r.try_get(1).map_err(err)?)?;
                next = seq + 1;
                got += 1;
            }
            if got < SCAN_CHUNK {
                break;
            }
        }
        Ok(())
    }

    fn tiles(&self, level: u8) -> Result<Vec<TileRow>, StoreError> {
        let lvl = i16::from(level);
        self.read(|c| {
            // One statement, so one snapshot of the blobs and the tail.
            c.query_typed(
                &format!(
                    "SELECT idx, hashes, first_ts, {TAIL_OF_T} FROM tiles t WHERE level = $1 ORDER BY idx"
                ),
                &[(&lvl, Type::INT2)],
            )?
            .iter()
            .map(|r| {
                let index = r.try_get::<_, i64>(0)? as u64;
                let stored: Vec<u8> = r.try_get(1)?;
                Ok(TileRow {
                    level,
                    index,
                    hashes: if level == 0 && stored.is_empty() {
                        tail_from_row(index, r, 3)?
                    } else {
                        stored
                    },
                    first_ts: r.try_get(2)?,
                })
            })
            .collect()
        })
    }

    fn leaf_tile_summaries(&self) -> Result<Vec<TileSummary>, StoreError> {
        self.read(|c| {
            c.query(
                "SELECT idx,
                        CASE WHEN octet_length(hashes) > 0 THEN octet_length(hashes) / 32
                             ELSE (SELECT count(*) FROM leaf_tail
                                   WHERE seq >= t.idx * 256 AND seq < t.idx * 256 + 256)::int
                        END,
                        first_ts
                 FROM tiles t WHERE level = 0 ORDER BY idx",
                &[],
            )?
            .iter()
            .map(|r| {
                Ok(TileSummary {
                    index: r.try_get::<_, i64>(0)? as u64,
                    len: u64::try_from(r.try_get::<_, i32>(1)?).unwrap_or(0),
                    first_ts: r.try_get(2)?,
                })
            })
            .collect()
        })
    }

    fn tile_first_ts(&self, index: u64) -> Result<Option<i64>, StoreError> {
        let idx = index as i64;
        self.read(|c| {
            c.query_typed_opt(
                "SELECT first_ts FROM tiles WHERE level = 0 AND idx = $1",
                &[int(&idx)],
            )?
            .map(|r| r.try_get::<_, Option<i64>>(0))
            .transpose()
            .map(Option::flatten)
        })
    }

    fn tile(&self, level: u8, index: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let (lvl, idx) = (i16::from(level), index as i64);
        self.read(|c| {
            // One statement, so one snapshot: the commit that fills the
            // tile writes its blob and deletes its tail.
            c.query_typed_opt(
                &format!("SELECT hashes, {TAIL_OF_T} FROM tiles t WHERE level = $1 AND idx = $2"),
                &[(&lvl, Type::INT2), int(&idx)],
            )?
            .map(|r| {
                let stored: Vec<u8> = r.try_get(0)?;
                if level == 0 && stored.is_empty() {
                    tail_from_row(index, &r, 1)
                } else {
                    Ok(stored)
                }
            })
            .transpose()
        })
    }

    fn first_seq_at_or_after(&self, lo: u64, hi: u64, ts: i64) -> Result<Option<u64>, StoreError> {
        let (lo, hi) = (lo as i64, hi as i64);
        self.read(|c| {
            c.query_typed_opt(
                "SELECT seq FROM entries WHERE seq >= $1 AND seq < $2 AND ts >= $3 ORDER BY seq LIMIT 1",
                &[int(&lo), int(&hi), int(&ts)],
            )?
            .map(|r| r.try_get::<_, i64>(0).map(|s| s as u64))
            .transpose()
        })
    }

    fn put_checkpoint(&self, cp: &StoredCheckpoint) -> Result<(), StoreError> {
        // Checkpoints are written by the signer, not the appender; they take
        // the writer connection briefly, between batches.
        let mut w = self.writer()?;
        w.client
            .execute(
                "INSERT INTO checkpoints (size, root, note, signed_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (size) DO NOTHING",
                &[
                    &(cp.size as i64),
                    &cp.root.0.as_slice(),
                    &cp.note,
                    &cp.signed_at.as_micros(),
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
        let (after, limit) = (after_size as i64, i64::from(limit));
        let rows = self.read(|c| {
            c.query_typed(
                &format!(
                    "SELECT {CHECKPOINT_COLS} FROM checkpoints WHERE size > $1 ORDER BY size LIMIT $2"
                ),
                &[int(&after), int(&limit)],
            )
        })?;
        rows.iter().map(checkpoint_row).collect()
    }

    fn latest_checkpoint(&self) -> Result<Option<StoredCheckpoint>, StoreError> {
        self.read(|c| {
            c.query_typed_opt(
                &format!("SELECT {CHECKPOINT_COLS} FROM checkpoints ORDER BY size DESC LIMIT 1"),
                &[],
            )
        })?
        .as_ref()
        .map(checkpoint_row)
        .transpose()
    }

    fn placeholder(&self) -> Placeholder {
        placeholder
    }

    fn select_entries(&self, sql: &SqlQuery) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        self.read(|c| {
            c.query_typed(&sql.sql, &bind(&sql.params))?
                .iter()
                .map(|r| Ok((r.try_get::<_, i64>(0)? as u64, r.try_get(1)?)))
                .collect()
        })
    }

    fn select_count(&self, sql: &SqlQuery) -> Result<u64, StoreError> {
        self.read(|c| {
            c.query_typed_one(&sql.sql, &bind(&sql.params))?
                .try_get::<_, i64>(0)
                .map(|n| n as u64)
        })
    }

    fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.read(|c| {
            c.query_typed_opt(
                "SELECT value FROM meta WHERE key = $1",
                &[(&key, Type::TEXT)],
            )?
            .map(|r| r.try_get(0))
            .transpose()
        })
    }

    fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        let mut w = self.writer()?;
        w.client
            .execute(
                "INSERT INTO meta (key, value) VALUES ($1, $2)
                 ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                &[&key, &value],
            )
            .map_err(err)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn only_rows(rows: &[Row]) -> Batch<'_> {
        Batch {
            rows,
            tiles: &[],
            postings: &[],
            indexed_upto: 0,
        }
    }

    #[test]
    fn debug_redacts_the_password_of_a_url() {
        let config = PostgresConfig::new(
            "postgres://docket:s3cr%40t-pw@db.internal:5432/ledger?sslmode=disable",
        )
        .with_schema("audit");
        let shown = format!("{config:?}");
        assert!(!shown.contains("s3cr"), "{shown}");
        assert!(
            shown.contains("postgres://docket:***@db.internal:5432/ledger?sslmode=disable"),
            "{shown}"
        );
        assert!(shown.contains("audit"), "{shown}");
    }

    #[test]
    fn debug_redacts_passwords_wherever_they_hide() {
        for (url, secret) in [
            ("postgresql://u:p@ss@word@host/db", "ss@word"),
            (
                "postgres://u@host/db?password=hunter22&application_name=x",
                "hunter22",
            ),
            ("postgres://u@host/db?PASSWORD=hunter22", "hunter22"),
            (
                "host=localhost user=u password=hunter22 dbname=d",
                "hunter22",
            ),
            (
                "host=localhost password = 'hunter 22\\' x' dbname=d",
                "hunter 22",
            ),
        ] {
            let shown = format!("{:?}", PostgresConfig::new(url));
            assert!(!shown.contains(secret), "{url} shown as {shown}");
            assert!(shown.contains(REDACTED), "{shown}");
        }
        assert_eq!(
            redact_url("host=localhost password = 'hunter 22\\' x' dbname=d"),
            "host=localhost password = *** dbname=d"
        );
        // Nothing secret, nothing changed.
        for url in ["postgres://u@host:5432/db", "host=/tmp user=u dbname=d"] {
            assert_eq!(redact_url(url), url);
        }
    }

    #[test]
    fn schema_names_are_plain_identifiers() {
        assert!(valid_schema("docket_test_12_34"));
        assert!(valid_schema("Audit2"));
        for bad in [
            "",
            "a-b",
            "a\"; DROP SCHEMA public; --",
            "sch ema",
            &"x".repeat(64),
        ] {
            assert!(!valid_schema(bad), "{bad}");
            let e =
                PostgresBackend::open(&PostgresConfig::new("postgres://u@h/d").with_schema(bad))
                    .unwrap_err();
            assert!(matches!(e, StoreError::Invalid(_)), "{e}");
        }
    }

    #[test]
    fn a_failed_connection_is_unavailable_and_keeps_the_password_out() {
        // Port 1 on the loopback: nothing listens there.
        let config = PostgresConfig {
            connect_timeout: Duration::from_secs(2),
            ..PostgresConfig::new("postgres://docket:pw-9f8e7d@127.0.0.1:1/ledger")
        };
        let e = PostgresBackend::open(&config).unwrap_err();
        assert!(matches!(e, StoreError::Unavailable(_)), "{e}");
        assert!(!e.to_string().contains("pw-9f8e7d"), "{e}");
        let e = PostgresBackend::open(&PostgresConfig::new(
            "postgres://docket:pw-9f8e7d@h:notaport/db",
        ))
        .unwrap_err();
        assert!(matches!(e, StoreError::Invalid(_)), "{e}");
        assert!(!e.to_string().contains("pw-9f8e7d"), "{e}");
    }

    #[test]
    fn big_batches_split_by_bytes_and_small_ones_do_not() {
        use docket_core::EntryType;
        let row = |len: usize| Row {
            seq: 0,
            ts: Timestamp::from_micros(0),
            kind: EntryType::Note,
            bytes: vec![0; len],
            index: Default::default(),
        };
        let small: Vec<Row> = (0..500).map(|_| row(700)).collect();
        assert_eq!(chunks_by_size(&small).count(), 1);
        let big = vec![
            row(40 << 20),
            row(40 << 20),
            row(10),
            row(MAX_STATEMENT_BYTES + 1),
        ];
        let sizes: Vec<usize> = chunks_by_size(&big).map(<[Row]>::len).collect();
        assert_eq!(sizes, vec![1, 2, 1]);
        assert_eq!(chunks_by_size(&[]).count(), 0);
    }

    // Against the server named by DOCKET_TEST_POSTGRES_URL (`scripts/test`).

    fn test_url() -> String {
        std::env::var("DOCKET_TEST_POSTGRES_URL").unwrap_or_else(|_| {
            panic!("DOCKET_TEST_POSTGRES_URL is not set: run the tests with `scripts/test`")
        })
    }

    fn fresh_config() -> PostgresConfig {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let schema = format!("docket_unit_{}_{nanos}_{n}", std::process::id());
        PostgresConfig::new(&test_url()).with_schema(&schema)
    }

    fn row(seq: u64, agent: &str, classes: &[&str]) -> Row {
        use docket_core::{EntryType, IndexFields};
        Row {
            seq,
            ts: Timestamp::from_micros(1_700_000_000_000_000 + seq as i64),
            kind: EntryType::Receipt,
            bytes: format!("{{\"seq\":{seq},\"agent\":\"{agent}\"}}").into_bytes(),
            index: std::sync::Arc::new(IndexFields {
                agent: Some(agent.into()),
                data_classes: classes.iter().map(|c| c.to_string()).collect(),
                ..Default::default()
            }),
        }
    }

    use crate::query::{Part, Query, build_sql};

    fn by_agent(b: &PostgresBackend, agent: &str) -> Vec<u64> {
        let q = Query {
            agent: Some(agent.into()),
            order: crate::query::Order::Asc,
            ..Default::default()
        };
        // No postings are written by these batches: the tail part scans entries.
        b.select_entries(&build_sql(
            &q,
            Part::Tail,
            (0, u64::MAX >> 1),
            false,
            1000,
            placeholder,
        ))
        .unwrap()
        .into_iter()
        .map(|(s, _)| s)
        .collect()
    }

    #[test]
    fn a_rolled_back_batch_leaves_no_interned_name_behind() {
        let b = PostgresBackend::open(&fresh_config()).unwrap();
        b.write_batch(&only_rows(&[row(0, "agent-a", &["pii"])]))
            .unwrap();
        // seq 0 again: a unique violation, after "agent-b" was interned.
        let e = b
            .write_batch(&only_rows(&[
                row(1, "agent-b", &["pii"]),
                row(0, "agent-b", &[]),
            ]))
            .unwrap_err();
        assert!(matches!(e, StoreError::Conflict(_)), "{e}");
        assert!(!b.conns().writer.lock().names.contains_key("agent-b"));
        b.write_batch(&only_rows(&[row(1, "agent-b", &["pii", "secret"])]))
            .unwrap();
        assert_eq!(by_agent(&b, "agent-b"), vec![1]);
        assert_eq!(by_agent(&b, "agent-a"), vec![0]);
        let q = Query {
            data_class: Some("secret".into()),
            ..Default::default()
        };
        let count = build_sql(&q, Part::Tail, (0, 2), true, 0, placeholder);
        assert_eq!(b.select_count(&count).unwrap(), 1);
        // A second node's writer finds the names the first one interned.
        let other = PostgresBackend::open(&b.config).unwrap();
        other
            .write_batch(&only_rows(&[
                row(2, "agent-b", &[]),
                row(3, "agent-c", &[]),
            ]))
            .unwrap();
        assert_eq!(by_agent(&b, "agent-b"), vec![1, 2]);
        assert_eq!(by_agent(&other, "agent-c"), vec![3]);
    }

    #[test]
    fn scan_streams_in_chunks_in_order_and_stops_on_error() {
        let b = PostgresBackend::open(&fresh_config()).unwrap();
        let total = 2 * SCAN_CHUNK as u64 + 100;
        let rows: Vec<Row> = (0..total).map(|s| row(s, "agent-a", &[])).collect();
        for chunk in rows.chunks(1000) {
            b.write_batch(&only_rows(chunk)).unwrap();
        }
        let mut seen = Vec::new();
        b.scan(1, total - 1, &mut |seq, bytes| {
            assert_eq!(bytes, rows[seq as usize].bytes);
            seen.push(seq);
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, (1..total - 1).collect::<Vec<_>>());
        let mut calls = 0;
        let e = b
            .scan(0, total, &mut |seq, _| {
                calls += 1;
                if seq == SCAN_CHUNK as u64 + 7 {
                    return Err(StoreError::Invalid("stop here".into()));
                }
                Ok(())
            })
            .unwrap_err();
        assert_eq!(e, StoreError::Invalid("stop here".into()));
        assert_eq!(calls, SCAN_CHUNK + 8);
        b.scan(5, 5, &mut |_, _| panic!("empty range")).unwrap();
        // The connection that scanned is fine for the next reader.
        assert_eq!(b.entry(3).unwrap(), Some(rows[3].bytes.clone()));
    }

    #[test]
    fn the_writer_reconnects_after_losing_its_connection() {
        let b = PostgresBackend::open(&fresh_config()).unwrap();
        b.write_batch(&only_rows(&[row(0, "agent-a", &[])]))
            .unwrap();
        let pid: i32 = {
            let mut w = b.conns().writer.lock();
            w.client
                .query_one("SELECT pg_backend_pid()", &[])
                .unwrap()
                .get(0)
        };
        let mut admin = postgres::Client::connect(&test_url(), NoTls).unwrap();
        admin
            .execute("SELECT pg_terminate_backend($1)", &[&pid])
            .unwrap();
        let mut gone = || {
            admin
                .query("SELECT 1 FROM pg_stat_activity WHERE pid = $1", &[&pid])
                .unwrap()
                .is_empty()
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !gone() {
            assert!(
                std::time::Instant::now() < deadline,
                "writer not terminated"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        // The batch in flight fails and is not acknowledged …
        let e = b
            .write_batch(&only_rows(&[row(1, "agent-new", &[])]))
            .unwrap_err();
        assert!(matches!(e, StoreError::Unavailable(_)), "{e}");
        assert!(!b.conns().writer.lock().names.contains_key("agent-new"));
        // … and the next one goes through on a new connection.
        b.write_batch(&only_rows(&[row(1, "agent-new", &[])]))
            .unwrap();
        assert_eq!(by_agent(&b, "agent-new"), vec![1]);
        b.set_meta("k", "v").unwrap();
        assert_eq!(b.meta("k").unwrap().as_deref(), Some("v"));
    }

    #[test]
    fn holds_tells_a_committed_batch_from_one_that_is_not() {
        let b = PostgresBackend::open(&fresh_config()).unwrap();
        let r = row(0, "agent-a", &[]);
        assert!(!b.holds(&r).unwrap());
        b.write_batch(&only_rows(std::slice::from_ref(&r))).unwrap();
        assert!(b.holds(&r).unwrap());
        let mut other = r.clone();
        other.bytes.push(b' ');
        assert!(!b.holds(&other).unwrap());
    }

    #[test]
    fn migrations_run_once_and_a_newer_schema_is_refused() {
        let config = fresh_config();
        let b = PostgresBackend::open(&config).unwrap();
        b.set_meta("k", "v1").unwrap();
        drop(b);
        let b = PostgresBackend::open(&config).unwrap();
        assert_eq!(b.meta("k").unwrap().as_deref(), Some("v1"));
        let versions: Vec<i32> = b
            .conns()
            .writer
            .lock()
            .client
            .query(
                "SELECT version FROM docket_migrations ORDER BY version",
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(versions, (1..=MIGRATIONS.len() as i32).collect::<Vec<_>>());
        b.conns()
            .writer
            .lock()
            .client
            .execute("INSERT INTO docket_migrations (version) VALUES (999)", &[])
            .unwrap();
        let e = PostgresBackend::open(&config).unwrap_err();
        assert!(e.to_string().contains("newer than this docket"), "{e}");
        // Another schema of the same database is another ledger.
        let elsewhere = PostgresBackend::open(&fresh_config()).unwrap();
        assert_eq!(elsewhere.meta("k").unwrap(), None);
    }

    #[test]
    fn the_writer_commits_durably_even_when_the_session_says_otherwise() {
        let mut config = fresh_config();
        let sep = if config.url.contains('?') { '&' } else { '?' };
        config.url = format!("{}{sep}options=-c%20synchronous_commit%3Doff", config.url);
        let b = PostgresBackend::open(&config).unwrap();
        let show = |c: &mut Client| -> String {
            c.query_one("SHOW synchronous_commit", &[]).unwrap().get(0)
        };
        assert_eq!(show(&mut b.conns().readers.get().unwrap()), "off");
        assert_eq!(show(&mut b.conns().writer.lock().client), "on");
    }

    #[test]
    fn a_wrong_password_is_unavailable_and_not_echoed() {
        let url = test_url();
        let (scheme, rest) = url.split_once("://").unwrap();
        let (userinfo, host) = rest.rsplit_once('@').unwrap();
        let user = userinfo.split(':').next().unwrap();
        let wrong = format!("{scheme}://{user}:wrong-pw-5c3a9e@{host}");
        let e = PostgresBackend::open(&PostgresConfig::new(&wrong)).unwrap_err();
        assert!(matches!(e, StoreError::Unavailable(_)), "{e}");
        let msg = e.to_string();
        assert!(msg.contains("password authentication failed"), "{msg}");
        assert!(!msg.contains("wrong-pw-5c3a9e"), "{msg}");
    }
}
