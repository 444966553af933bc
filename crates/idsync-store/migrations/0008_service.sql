-- The admin API's bearer token, as an Argon2id hash (PHC string): the token itself is shown
-- once, when it is made, and never stored. One row: a new token replaces the old one.
CREATE TABLE admin_token (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    hash       TEXT NOT NULL,
    created_at TEXT NOT NULL
);

-- History filtered by user ("what did idsync do to jdoe?") without reading every operation.
CREATE INDEX operations_by_subject ON operations (subject COLLATE NOCASE, run_id);
