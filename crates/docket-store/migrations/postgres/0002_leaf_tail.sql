-- PostgreSQL twin of migrations/sqlite/0002_leaf_tail.sql: the leaf tile
-- being filled keeps its hashes a row each, so that a commit adds a few
-- small rows rather than rewriting (and re-TOASTing) the tile's blob. A
-- partial tile in the earlier layout is moved here when the database is
-- opened for writing (`TAKE_OVER_PARTIAL_TILES` in postgres.rs).
CREATE TABLE leaf_tail (
    seq  BIGINT PRIMARY KEY,            -- the leaf's position in the log
    hash BYTEA NOT NULL
);
