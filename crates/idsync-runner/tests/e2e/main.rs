//! End-to-end tests of the sync engine: graph-sim and atlassian-sim on loopback, a real config
//! file, the SQLite store and `idsync_runner::sync_app` — asserting the simulators' state and
//! the run reports. One test binary (submodules) to keep link time down.

// Not every test uses every helper.
#[allow(dead_code)]
mod harness;

mod adoption;
mod chaos;
mod groups;
mod integrity;
mod known_state;
mod lifecycle;
mod login;
mod mapping;
mod products;
mod remembered;
mod rules;
mod safety;
mod scopes;
mod targets;
mod toggles;
mod versions;
