-- A sign-in given a bare username finds its source user through the links
-- (`Store::sources_of_username`, `lower(username) = lower(?)` within an app): without an index
-- that read every link of the app, 300k rows for 100k users on three targets, on every such
-- sign-in.
CREATE INDEX IF NOT EXISTS links_by_app_lower_username ON links (app, lower(username));
