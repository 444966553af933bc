//! idsync-config
