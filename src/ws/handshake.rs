//! The WebSocket opening handshake's own parts (RFC 6455 §4): the `Sec-WebSocket-Accept` value
//! a server derives from the client's key, and the client's request and the check of the
//! server's answer. tungstenite is used without its `handshake` feature, which would pull in the
//! `http` crate, `sha1` and `data-encoding` (about 27 KB of a Raspberry Pi build) for these few
//! lines: requests and responses are parsed by the HTTP engine and `httparse` anyway.

use crate::http::response::{valid_header_name, valid_header_value};

/// The GUID every server appends to the client's key (RFC 6455 §1.3).
const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The `Sec-WebSocket-Accept` value for a client's `Sec-WebSocket-Key`.
pub fn accept_key(key: &[u8]) -> String {
    let mut input = Vec::with_capacity(key.len() + GUID.len());
    input.extend_from_slice(key);
    input.extend_from_slice(GUID);
    base64(&sha1(&input))
}

/// A fresh `Sec-WebSocket-Key`: 16 random bytes, base64-encoded. The key is a nonce that shows
/// the server understood WebSocket, not a secret (RFC 6455 §10.3): the kernel's random bytes
/// when they can be read, otherwise the process's randomly seeded hasher.
pub fn client_key() -> String {
    use std::io::Read;
    let mut nonce = [0u8; 16];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut nonce));
    if read.is_err() {
        use std::hash::{BuildHasher, Hasher};
        let time = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        for (i, half) in nonce.chunks_mut(8).enumerate() {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u128(time);
            h.write_usize(i);
            half.copy_from_slice(&h.finish().to_le_bytes());
        }
    }
    base64(&nonce)
}

/// The client's opening request for `target` on `host` (the `Host` header's value), with the
/// script's `headers`; one of those replaces the default of the same name (compared without
/// case), as CC: Tweaked's does.
pub fn client_request(
    host: &str,
    target: &str,
    key: &str,
    headers: &[(String, Vec<u8>)],
) -> Result<Vec<u8>, String> {
    for (name, value) in headers {
        if !valid_header_name(name.as_bytes()) || !valid_header_value(value) {
            return Err(format!("Invalid header '{name}'"));
        }
    }
    let given = |name: &str| headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
    let mut out = format!("GET {target} HTTP/1.1\r\n").into_bytes();
    let defaults = [
        ("Host", host),
        ("Connection", "Upgrade"),
        ("Upgrade", "websocket"),
        ("Sec-WebSocket-Version", "13"),
        ("Sec-WebSocket-Key", key),
    ];
    for (name, value) in defaults {
        if !given(name) {
            out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
    }
    for (name, value) in headers {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    Ok(out)
}

/// The end of a response head in `buf` (the index just past its blank line), if it is all there.
pub fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// Checks the server's answer `head` (a complete head) to a request sent with `key`: a `101`
/// that upgrades to WebSocket with the matching `Sec-WebSocket-Accept`.
pub fn check_response(head: &[u8], key: &str) -> Result<(), String> {
    let mut fields = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut fields);
    match response.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return Err("the server's answer is not an HTTP response".into()),
    }
    let code = response.code.unwrap_or(0);
    if code != 101 {
        return Err(format!(
            "the server answered {code} {} instead of switching to WebSocket",
            response.reason.unwrap_or("")
        ));
    }
    let header = |name: &str| {
        response
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.trim_ascii())
    };
    let has_token = |name: &str, token: &[u8]| {
        header(name).is_some_and(|v| {
            v.split(|&b| b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
        })
    };
    if !has_token("upgrade", b"websocket") || !has_token("connection", b"upgrade") {
        return Err("the server's 101 does not upgrade to WebSocket".into());
    }
    if header("sec-websocket-accept") != Some(accept_key(key.as_bytes()).as_bytes()) {
        return Err("the server's Sec-WebSocket-Accept does not match the key sent".into());
    }
    Ok(())
}

/// Standard base64 with padding (RFC 4648 §4).
fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for group in data.chunks(3) {
        let b = [
            group[0],
            group.get(1).copied().unwrap_or(0),
            group.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= group.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// SHA-1 (FIPS 180-4), which the handshake requires; not used for anything secret.
fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [
        0x6745_2301,
        0xEFCD_AB89,
        0x98BA_DCFE,
        0x1032_5476,
        0xC3D2_E1F0,
    ];
    // The message, a 1 bit, zeros up to 56 bytes mod 64, and the length in bits (big-endian).
    let mut message = data.to_vec();
    message.push(0x80);
    while message.len() % 64 != 56 {
        message.push(0);
    }
    message.extend_from_slice(&((data.len() as u64).wrapping_mul(8)).to_be_bytes());
    for block in message.chunks_exact(64) {
        let mut w = [0u32; 80];
        for (i, word) in block.chunks_exact(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, &word) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A82_7999),
                20..=39 => (b ^ c ^ d, 0x6ED9_EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC),
                _ => (b ^ c ^ d, 0xCA62_C1D6),
            };
            let t = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(word);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = t;
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e]) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 20];
    for (chunk, word) in out.chunks_exact_mut(4).zip(h) {
        chunk.copy_from_slice(&word.to_be_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn sha1_matches_the_standard_test_vectors() {
        // FIPS 180 / RFC 3174 examples, and inputs either side of the 55/56/64-byte padding
        // boundaries checked against `sha1sum`.
        assert_eq!(
            hex(&sha1(b"abc")),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(hex(&sha1(b"")), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        assert_eq!(
            hex(&sha1(
                b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
            )),
            "84983e441c3bd26ebaae4aa1f95129e5e54670f1"
        );
        assert_eq!(
            hex(&sha1(&[b'a'; 55])),
            "c1c8bbdc22796e28c0e15163d20899b65621d65a"
        );
        assert_eq!(
            hex(&sha1(&[b'a'; 64])),
            "0098ba824b5c16427bd7a1122a5a442a25ec644d"
        );
        assert_eq!(
            hex(&sha1(&[b'a'; 1000])),
            "291e9a6c66994949b57ba5e650361e98fc36b1ba"
        );
    }

    #[test]
    fn base64_pads_as_rfc_4648_says() {
        for (input, encoded) in [
            (&b""[..], ""),
            (b"f", "Zg=="),
            (b"fo", "Zm8="),
            (b"foo", "Zm9v"),
            (b"foob", "Zm9vYg=="),
            (b"fooba", "Zm9vYmE="),
            (b"foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input), encoded);
        }
    }

    #[test]
    fn accept_key_matches_rfc_6455s_example() {
        assert_eq!(
            accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn client_keys_are_16_bytes_and_differ() {
        let (a, b) = (client_key(), client_key());
        assert_eq!(a.len(), 24);
        assert!(a.ends_with("=="));
        assert_ne!(a, b);
    }

    #[test]
    fn the_request_carries_the_defaults_unless_the_script_gives_them() {
        let req = client_request(
            "example.com:8080",
            "/chat",
            "KEY",
            &[
                ("Host".into(), b"other".to_vec()),
                ("X-A".into(), b"1".to_vec()),
            ],
        )
        .unwrap();
        let text = String::from_utf8(req).unwrap();
        assert!(text.starts_with("GET /chat HTTP/1.1\r\n"));
        assert!(!text.contains("example.com"));
        assert!(text.contains("Host: other\r\n"));
        assert!(text.contains("Sec-WebSocket-Key: KEY\r\n"));
        assert!(text.contains("Upgrade: websocket\r\n"));
        assert!(text.ends_with("X-A: 1\r\n\r\n"));
        let bad = client_request("h", "/", "K", &[("X".into(), b"a\r\nB: c".to_vec())]);
        assert_eq!(bad.unwrap_err(), "Invalid header 'X'");
    }

    #[test]
    fn responses_are_checked() {
        let key = "dGhlIHNhbXBsZSBub25jZQ==";
        let good = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: WebSocket\r\n\
                     Connection: keep-alive, Upgrade\r\n\
                     Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
        assert_eq!(head_end(good), Some(good.len()));
        assert_eq!(check_response(good, key), Ok(()));
        let wrong = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                      Connection: Upgrade\r\nSec-WebSocket-Accept: AAAA\r\n\r\n";
        assert!(check_response(wrong, key)
            .unwrap_err()
            .contains("does not match"));
        let refused = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(
            check_response(refused, key).unwrap_err(),
            "the server answered 404 Not Found instead of switching to WebSocket"
        );
        assert_eq!(head_end(b"HTTP/1.1 101 OK\r\n"), None);
    }
}
