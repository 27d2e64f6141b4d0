-- The ledger: entries, their interned attributes, Merkle tiles, checkpoints.
CREATE TABLE names (
    id   INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);

CREATE TABLE entries (
    seq      INTEGER PRIMARY KEY,
    ts       INTEGER NOT NULL,          -- microseconds since the epoch, UTC
    mow      INTEGER NOT NULL,          -- minute of the week, UTC, Monday 00:00 = 0
    type     INTEGER NOT NULL,          -- names.id
    agent    INTEGER, human INTEGER, project INTEGER, tool INTEGER,
    provider INTEGER, model INTEGER, outcome INTEGER,
    classes  TEXT,                      -- data class ids as ',12,40,'
    data     BLOB NOT NULL              -- canonical entry bytes
);

-- Secondary indexes as postings: (attribute, value, seq), with the minute of
-- the week so time-of-day windows are answered from the index alone. A
-- projection of the entries, written in bulk every few thousand entries;
-- meta.indexed_upto says how far. col: 0 type, 1 agent, 2 human, 3 project,
-- 4 tool, 5 provider, 6 model, 7 outcome, 8 data class.
CREATE TABLE postings (
    col INTEGER NOT NULL,
    val INTEGER NOT NULL,               -- names.id
    seq INTEGER NOT NULL,
    mow INTEGER NOT NULL,
    PRIMARY KEY (col, val, seq)
) WITHOUT ROWID;

CREATE TABLE tiles (
    level    INTEGER NOT NULL,
    idx      INTEGER NOT NULL,
    hashes   BLOB NOT NULL,
    first_ts INTEGER,
    PRIMARY KEY (level, idx)
) WITHOUT ROWID;

CREATE TABLE checkpoints (
    size      INTEGER PRIMARY KEY,
    root      BLOB NOT NULL,
    note      TEXT NOT NULL,
    signed_at INTEGER NOT NULL
);

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
