-- Apps and targets created through the admin API (the config file provisions the others).
-- `body` is the entry as JSON, the same shape as one [[apps]] or [[targets]] entry of the
-- file, with its secrets (client_secret, token, password) sealed: `v1:` + hex of nonce and
-- XChaCha20-Poly1305 ciphertext, never in plain text (see idsync_store::sealed).
CREATE TABLE api_entries (
    kind       TEXT NOT NULL CHECK (kind IN ('app', 'target')),
    name       TEXT NOT NULL,
    body       TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (kind, name)
);
