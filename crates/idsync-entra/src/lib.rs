//! idsync-entra
