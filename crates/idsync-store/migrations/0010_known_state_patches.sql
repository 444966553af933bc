-- What sign-in syncs did to a target since its known state was saved: the accounts each one
-- touched (JSON, see idsync_engine::known_patch), folded into `target_state.state` by whoever
-- reads it next, in `seq` order. Rewriting a megabytes-large packed state for every sign-in
-- cost most of a sign-in's time. Saving a new state, or a run beginning to write to the
-- target, drops the target's patches.
CREATE TABLE target_state_patches (
    seq    INTEGER PRIMARY KEY AUTOINCREMENT,
    target TEXT NOT NULL,
    epoch  INTEGER NOT NULL, -- the write epoch the patch brought the state to
    patch  BLOB NOT NULL
);
CREATE INDEX target_state_patches_by_target ON target_state_patches (target, seq);
