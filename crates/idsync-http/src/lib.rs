//! idsync-http
