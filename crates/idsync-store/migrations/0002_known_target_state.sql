-- Each target's state as idsync last knew it: read in full at `read_at` (unix seconds), then
-- kept up to date with what every run since did to it. Incremental runs plan from it instead
-- of reading the whole target again.
CREATE TABLE target_state (
    target      TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,    -- what it was read with (kind, URL, attributes)
    read_at     INTEGER NOT NULL,
    epoch       INTEGER NOT NULL, -- the target's write epoch it is valid at
    state       TEXT NOT NULL     -- JSON
);

-- Bumped whenever a run starts writing to a target: a known state saved at an older epoch
-- misses what that run did, so it is never saved over a newer one.
CREATE TABLE target_epochs (
    target TEXT PRIMARY KEY,
    epoch  INTEGER NOT NULL
);
