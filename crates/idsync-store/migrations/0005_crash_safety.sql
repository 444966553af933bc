-- Accounts a run is about to create, written before the requests are sent and dropped once the
-- account is linked (or surely was not created): a run killed in between leaves these, and the
-- next run links the accounts it finds under these names instead of leaving them unmanaged.
CREATE TABLE create_intents (
    target      TEXT NOT NULL,
    username    TEXT NOT NULL, -- lower case
    app         TEXT NOT NULL,
    source_id   TEXT NOT NULL,
    display     TEXT NOT NULL, -- the username as sent
    email       TEXT,
    run_id      INTEGER NOT NULL,
    PRIMARY KEY (target, username)
);

-- How many users the last kept source read had in scope: a read that finds far fewer (or none)
-- is suspicious before anything is planned from it.
ALTER TABLE source_state ADD COLUMN users_in_scope INTEGER;

-- Approvals cover exactly the deprovisions of the held plan (target + account key, JSON array),
-- expire, and are used up by the first run that applies with them, whatever it does.
ALTER TABLE runs ADD COLUMN held_deprovisions TEXT;
ALTER TABLE runs ADD COLUMN held_empty_source INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN approval_expires_at INTEGER;
ALTER TABLE runs ADD COLUMN approval_used_by INTEGER;
-- The process that runs (ran) it, for messages about a run in progress.
ALTER TABLE runs ADD COLUMN pid INTEGER;

-- Approvals given before approvals covered named accounts cannot say what they cover.
UPDATE runs SET status = 'approval-expired' WHERE status = 'approved';
