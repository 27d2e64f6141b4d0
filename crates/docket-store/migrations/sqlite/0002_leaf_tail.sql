-- The leaf tile being filled keeps its hashes a row each, so that a commit
-- adds a few small rows rather than rewriting the tile's blob (up to 8 KiB,
-- spilling to overflow pages) every time. When the tile fills, its blob is
-- written whole and its rows here are deleted. Its row in `tiles` exists
-- from its first entry on, with an empty blob and the first entry's `ts`.
-- A partial tile in the earlier layout is moved here when the database is
-- opened for writing (`TAKE_OVER_PARTIAL_TILES` in sqlite.rs), not here, so
-- that one written by an older server after this migration is moved too.
CREATE TABLE leaf_tail (
    seq  INTEGER PRIMARY KEY,           -- the leaf's position in the log
    hash BLOB NOT NULL
);
