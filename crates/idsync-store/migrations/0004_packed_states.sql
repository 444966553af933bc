-- Source snapshots and known target states are kept in a compact binary form (the
-- `packed` modules of idsync-entra and idsync-engine): as JSON they were tens of megabytes at
-- 100k users, parsed and written on every run. What earlier versions kept as JSON is copied
-- as it is and still read.
CREATE TABLE source_state_packed (
    app        TEXT PRIMARY KEY,
    state      BLOB NOT NULL,
    updated_at TEXT NOT NULL
);
INSERT INTO source_state_packed (app, state, updated_at)
    SELECT app, CAST(state AS BLOB), updated_at FROM source_state;
DROP TABLE source_state;
ALTER TABLE source_state_packed RENAME TO source_state;

CREATE TABLE target_state_packed (
    target      TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    read_at     INTEGER NOT NULL,
    epoch       INTEGER NOT NULL,
    state       BLOB NOT NULL
);
INSERT INTO target_state_packed (target, fingerprint, read_at, epoch, state)
    SELECT target, fingerprint, read_at, epoch, CAST(state AS BLOB) FROM target_state;
DROP TABLE target_state;
ALTER TABLE target_state_packed RENAME TO target_state;
