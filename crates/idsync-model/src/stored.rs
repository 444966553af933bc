//! The frame around states idsync keeps between runs in a compact binary form (see the
//! `packed` modules of `idsync-entra` and `idsync-engine`): magic bytes that name the form and
//! its version, then postcard. States kept as JSON by earlier versions are recognised too.

use serde::{Deserialize, Serialize};

/// A state that could not be put in its stored form (postcard only refuses sequences of unknown
/// length, which the packed structs do not have; kept as an error all the same).
#[derive(Debug, thiserror::Error)]
#[error("the state could not be encoded: {0}")]
pub struct PackError(#[from] postcard::Error);

/// A kept state that cannot be read back. The caller reads the source or target in full.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    /// Neither this form's magic bytes nor JSON.
    #[error("it is in no form this version of idsync knows")]
    UnknownForm,
    /// The right form, but postcard (or the JSON parser) could not read it: why.
    #[error("it is damaged: {0}")]
    Damaged(String),
}

/// What stored bytes turned out to hold.
pub enum Stored<P> {
    /// JSON, as earlier versions kept states: the caller parses it as the state itself.
    Json,
    /// The packed state, read back.
    Packed(P),
}

/// `packed` behind `magic`.
pub fn pack<P: Serialize>(magic: &[u8], packed: &P) -> Result<Vec<u8>, PackError> {
    Ok(postcard::to_extend(packed, magic.to_vec())?)
}

/// Reads bytes written by [`pack`] with the same `magic`, or tells that they are JSON.
pub fn unpack<'a, P: Deserialize<'a>>(
    magic: &[u8],
    bytes: &'a [u8],
) -> Result<Stored<P>, UnpackError> {
    if bytes.first() == Some(&b'{') {
        return Ok(Stored::Json);
    }
    let body = bytes.strip_prefix(magic).ok_or(UnpackError::UnknownForm)?;
    postcard::from_bytes(body)
        .map(Stored::Packed)
        .map_err(|e| UnpackError::Damaged(e.to_string()))
}

/// Parses what [`unpack`] found to be JSON.
pub fn from_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, UnpackError> {
    serde_json::from_slice(bytes).map_err(|e| UnpackError::Damaged(e.to_string()))
}

/// An index into a packed list. Sizes past four billion are not ones idsync meets; saturating
/// keeps this total rather than panicking.
pub fn as_index(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(u32::MAX)
}
