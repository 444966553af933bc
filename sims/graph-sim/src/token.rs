//! Opaque tokens ($skiptoken, $deltatoken, access tokens): JSON state in base64url, so a
//! nextLink or deltaLink carries everything needed to continue and the simulator keeps no
//! per-client paging state. Clients must treat them as opaque, as with the real service.

use serde::Serialize;
use serde::de::DeserializeOwned;

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

pub(crate) fn base64url(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            let sextet = (n >> (18 - 6 * i)) & 0x3f;
            out.push(char::from(ALPHABET[sextet as usize]));
        }
    }
    out
}

pub(crate) fn base64url_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for c in text.bytes() {
        let v = ALPHABET.iter().position(|a| *a == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(((acc >> bits) & 0xff) as u8);
        }
    }
    Some(out)
}

pub(crate) fn encode<T: Serialize>(state: &T) -> String {
    // Serialising our own plain structs cannot fail; an empty token would be refused later.
    let json = serde_json::to_vec(state).unwrap_or_default();
    base64url(&json)
}

pub(crate) fn decode<T: DeserializeOwned>(token: &str) -> Option<T> {
    let bytes = base64url_decode(token)?;
    serde_json::from_slice(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip() {
        for input in [&b""[..], b"a", b"ab", b"abc", b"abcd", b"{\"x\":[1,2,3]}"] {
            let enc = base64url(input);
            assert_eq!(base64url_decode(&enc).as_deref(), Some(input));
        }
        assert_eq!(base64url(b"\xfb\xff"), "-_8");
        assert_eq!(base64url_decode("*"), None);
    }
}
