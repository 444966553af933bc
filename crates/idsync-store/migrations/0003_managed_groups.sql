-- Managed memberships, one row per group with its members' account keys separated by newlines
-- (no account key holds one): at 100k users a target has about a million managed memberships,
-- and reading them a row each cost seconds on every run.
CREATE TABLE managed_groups (
    app        TEXT NOT NULL,
    target     TEXT NOT NULL,
    group_name TEXT NOT NULL, -- lower case
    members    TEXT NOT NULL, -- account keys, sorted, newline-separated
    PRIMARY KEY (app, target, group_name)
);

INSERT INTO managed_groups (app, target, group_name, members)
SELECT app, target, group_name, group_concat(account_key, char(10))
FROM (SELECT * FROM managed_memberships ORDER BY app, target, group_name, account_key)
GROUP BY app, target, group_name;

DROP TABLE managed_memberships;
