-- The leaf tile being filled keeps its hashes a row each, so that a commit
-- adds a few small rows rather than rewriting the tile's blob (up to 8 KiB,
-- spilling to overflow pages) every time. When the tile fills, its blob is
-- written whole and its rows here are deleted. Its row in `tiles` exists
-- from its first entry on, with an empty blob and the first entry's `ts`.
CREATE TABLE leaf_tail (
    seq  INTEGER PRIMARY KEY,           -- the leaf's position in the log
    hash BLOB NOT NULL
);

-- A partial leaf tile written by an earlier version moves here.
WITH RECURSIVE pos(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM pos WHERE n < 255)
INSERT INTO leaf_tail (seq, hash)
SELECT t.idx * 256 + pos.n, substr(t.hashes, pos.n * 32 + 1, 32)
FROM tiles t JOIN pos ON pos.n < length(t.hashes) / 32
WHERE t.level = 0 AND length(t.hashes) < 8192;

UPDATE tiles SET hashes = X'' WHERE level = 0 AND length(hashes) < 8192;
