//! idsync-atlassian
