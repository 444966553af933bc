-- What each app last read from its source (delta links included), as one JSON document.
CREATE TABLE source_state (
    app        TEXT PRIMARY KEY,
    state      TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

-- The lasting tie between a source object and a target account, owned by one app.
CREATE TABLE links (
    target      TEXT NOT NULL,
    account_key TEXT NOT NULL,
    app         TEXT NOT NULL,
    source_id   TEXT NOT NULL,
    username    TEXT NOT NULL,
    linked_at   TEXT NOT NULL,
    PRIMARY KEY (target, account_key)
);
CREATE UNIQUE INDEX links_by_source ON links (app, target, source_id);

-- Memberships idsync added or claimed for an app; only these are ever removed (under "keep").
CREATE TABLE managed_memberships (
    app         TEXT NOT NULL,
    target      TEXT NOT NULL,
    group_name  TEXT NOT NULL, -- lower case
    account_key TEXT NOT NULL,
    PRIMARY KEY (app, target, group_name, account_key)
);

CREATE TABLE runs (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    app          TEXT NOT NULL,
    trigger      TEXT NOT NULL,   -- manual, schedule, login, scim, approval
    dry_run      INTEGER NOT NULL,
    status       TEXT NOT NULL,   -- running, planned, done, partial, failed, held, approved
    started_at   TEXT NOT NULL,
    finished_at  TEXT,
    counts       TEXT NOT NULL DEFAULT '{}',  -- JSON: operation kind -> {done, failed, ...}
    summary      TEXT NOT NULL DEFAULT '{}',  -- JSON: source stats, warnings, notes
    plan         TEXT,                        -- JSON plan, kept for held runs
    deprovisions INTEGER NOT NULL DEFAULT 0,
    approved_deprovisions INTEGER NOT NULL DEFAULT 0,
    error        TEXT
);
CREATE INDEX runs_by_app ON runs (app, id);

CREATE TABLE operations (
    run_id      INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    seq         INTEGER NOT NULL,
    target      TEXT NOT NULL,
    kind        TEXT NOT NULL,
    subject     TEXT NOT NULL,
    detail      TEXT NOT NULL,   -- JSON of the planned operation
    status      TEXT NOT NULL,
    error       TEXT,
    duration_ms INTEGER NOT NULL,
    PRIMARY KEY (run_id, seq)
);
