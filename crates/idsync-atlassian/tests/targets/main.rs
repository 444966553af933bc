//! Integration tests of the Atlassian targets over loopback HTTP against `atlassian-sim`. Each
//! test asserts the simulator's resulting state through its inspection API, not only what the
//! target returned. One test binary for all products keeps link time down.

mod bitbucket;
mod bitbucket_openapi;
mod common;
mod confluence;
mod jira;
mod probe;
mod scale;
mod scim;
