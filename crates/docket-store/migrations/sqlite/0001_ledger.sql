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
    data     BLOB NOT NULL              -- canonical entry bytes
);
CREATE INDEX entries_type     ON entries (type, seq);
CREATE INDEX entries_agent    ON entries (agent, seq)    WHERE agent IS NOT NULL;
CREATE INDEX entries_human    ON entries (human, seq)    WHERE human IS NOT NULL;
CREATE INDEX entries_project  ON entries (project, seq)  WHERE project IS NOT NULL;
CREATE INDEX entries_tool     ON entries (tool, seq)     WHERE tool IS NOT NULL;
CREATE INDEX entries_provider ON entries (provider, seq) WHERE provider IS NOT NULL;
CREATE INDEX entries_model    ON entries (model, seq)    WHERE model IS NOT NULL;
CREATE INDEX entries_outcome  ON entries (outcome, seq)  WHERE outcome IS NOT NULL;

CREATE TABLE entry_classes (
    class INTEGER NOT NULL,             -- names.id of the data class
    seq   INTEGER NOT NULL,
    mow   INTEGER NOT NULL,
    PRIMARY KEY (class, seq)
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
