-- The e-mail address idsync last sent to an account, for targets that never report e-mail
-- addresses (Confluence Data Center's REST API has none in its user objects): without it, a
-- change of e-mail at the source could never be seen to differ from what the account holds.
CREATE TABLE sent_emails (
    target      TEXT NOT NULL,
    account_key TEXT NOT NULL,
    email       TEXT NOT NULL,
    PRIMARY KEY (target, account_key)
);

-- What earlier versions sent is in the history: the newest creation (by username; Confluence
-- cannot rename, so a linked account still has the name it was created with) or e-mail update
-- (by account key) that was done, for every linked account of a Confluence target idsync has
-- read. Without this, the first run after an upgrade would set every such account's e-mail once.
CREATE INDEX links_by_lower_username ON links (target, lower(username));
INSERT INTO sent_emails (target, account_key, email)
SELECT target, account_key, email FROM (
    SELECT target, account_key, email,
           ROW_NUMBER() OVER (PARTITION BY target, account_key ORDER BY run_id DESC, seq DESC) AS newest
    FROM (
        SELECT l.target AS target, l.account_key AS account_key, o.run_id AS run_id, o.seq AS seq,
               json_extract(o.detail, '$.email') AS email
        FROM operations o
        JOIN links l ON l.target = o.target
                    AND lower(l.username) = lower(json_extract(o.detail, '$.user'))
        WHERE o.kind = 'create_user' AND o.status = 'done'
        UNION ALL
        SELECT l.target, l.account_key, o.run_id, o.seq,
               json_extract(o.detail, '$.changes.email')
        FROM operations o
        JOIN links l ON l.target = o.target
                    AND l.account_key = json_extract(o.detail, '$.key')
        WHERE o.kind = 'update_user' AND o.status = 'done'
    )
    WHERE email IS NOT NULL
      AND target IN (SELECT target FROM target_state WHERE fingerprint LIKE 'confluence-dc %')
)
WHERE newest = 1;
DROP INDEX links_by_lower_username;

-- For an account whose username differs from what the rules give, on a product that cannot
-- rename users (Confluence): the username (lower case) it was reported as wanting. It is
-- reported once, in the run that first finds it, instead of on every run.
ALTER TABLE links ADD COLUMN rename_reported TEXT;

-- An account adopted under another username with `users.rename_adopted = false` keeps its
-- username: this is the username the rules gave when it was adopted. It is renamed only once
-- the rules give another one (a change at the source).
ALTER TABLE links ADD COLUMN kept_username TEXT;
