//! The few facts of the WebSocket frame format (RFC 6455 §5.2) ccserve needs outside
//! tungstenite: where a frame ends, so that its reader is handed one frame at a time
//! ([`super::connection::Duplex`]), and the common case of a client message (one whole, small,
//! masked data frame) read by the Lua thread itself off a parked connection ([`crate::lane`]).
//! Everything else (fragments, control frames, closing, errors) stays with tungstenite.

/// The length of the frame starting at `bytes[0]`, header included, once enough of its header
/// is there to tell (2 to 10 bytes); `None` until then.
pub fn frame_len(bytes: &[u8]) -> Option<u64> {
    let (payload, header) = payload_len(bytes)?;
    let mask = if bytes[1] & 0x80 != 0 { 4 } else { 0 };
    Some(payload.saturating_add((header + mask) as u64))
}

/// The payload length and the length of the header up to (not including) the masking key.
fn payload_len(bytes: &[u8]) -> Option<(u64, usize)> {
    let second = *bytes.get(1)?;
    match second & 0x7f {
        126 => {
            let b: [u8; 2] = bytes.get(2..4)?.try_into().ok()?;
            Some((u16::from_be_bytes(b) as u64, 4))
        }
        127 => {
            let b: [u8; 8] = bytes.get(2..10)?.try_into().ok()?;
            Some((u64::from_be_bytes(b), 10))
        }
        n => Some((n as u64, 2)),
    }
}

/// If `bytes` are exactly one whole data frame as a client sends it (final, no extension bits,
/// text or binary, masked, with a minimal length, at most `max` bytes of payload, and for text
/// valid UTF-8), returns its payload unmasked and whether it is binary. `None` for anything
/// else, which tungstenite then reads (and answers, for a frame it refuses).
pub fn single_message(bytes: &[u8], max: usize) -> Option<(Vec<u8>, bool)> {
    let first = *bytes.first()?;
    let binary = match first {
        // FIN set, RSV1-3 clear, opcode 1 (text) or 2 (binary).
        0x81 => false,
        0x82 => true,
        _ => return None,
    };
    if bytes.get(1)? & 0x80 == 0 {
        return None;
    }
    let (len, header) = payload_len(bytes)?;
    let minimal = match header {
        2 => true,
        4 => len >= 126,
        _ => len > u16::MAX as u64,
    };
    if !minimal || len > max as u64 {
        return None;
    }
    let key: [u8; 4] = bytes.get(header..header + 4)?.try_into().ok()?;
    let payload = &bytes[header + 4..];
    if payload.len() as u64 != len {
        return None;
    }
    let data: Vec<u8> = payload
        .iter()
        .zip(key.iter().cycle())
        .map(|(b, k)| b ^ k)
        .collect();
    if !binary && std::str::from_utf8(&data).is_err() {
        return None;
    }
    Some((data, binary))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client frame: `first` byte, masked `payload` with a fixed key, the length encoded in
    /// `form` bytes (0: 7-bit, 2: 16-bit, 8: 64-bit).
    fn frame(first: u8, payload: &[u8], form: usize) -> Vec<u8> {
        let key = [0x12, 0x34, 0x56, 0x78];
        let mut f = vec![first];
        match form {
            0 => f.push(0x80 | payload.len() as u8),
            2 => {
                f.push(0x80 | 126);
                f.extend_from_slice(&(payload.len() as u16).to_be_bytes());
            }
            _ => {
                f.push(0x80 | 127);
                f.extend_from_slice(&(payload.len() as u64).to_be_bytes());
            }
        }
        f.extend_from_slice(&key);
        f.extend(payload.iter().zip(key.iter().cycle()).map(|(b, k)| b ^ k));
        f
    }

    #[test]
    fn a_whole_masked_text_or_binary_frame_is_read() {
        assert_eq!(
            single_message(&frame(0x81, b"hello", 0), 100),
            Some((b"hello".to_vec(), false))
        );
        assert_eq!(
            single_message(&frame(0x82, &[0, 255, 7], 0), 100),
            Some((vec![0, 255, 7], true))
        );
        let long = vec![b'x'; 300];
        assert_eq!(
            single_message(&frame(0x81, &long, 2), 1000),
            Some((long.clone(), false))
        );
        assert_eq!(
            single_message(&frame(0x81, b"", 0), 0),
            Some((vec![], false))
        );
    }

    #[test]
    fn everything_else_is_left_to_tungstenite() {
        let hello = frame(0x81, b"hello", 0);
        // Cut short, or followed by more.
        assert_eq!(single_message(&hello[..hello.len() - 1], 100), None);
        let mut two = hello.clone();
        two.extend_from_slice(&hello);
        assert_eq!(single_message(&two, 100), None);
        // A fragment, a continuation, extension bits, control frames.
        for first in [0x01, 0x80, 0xC1, 0x89, 0x8A, 0x88] {
            assert_eq!(
                single_message(&frame(first, b"x", 0), 100),
                None,
                "{first:#x}"
            );
        }
        // Unmasked.
        let mut unmasked = vec![0x81, 5];
        unmasked.extend_from_slice(b"hello");
        assert_eq!(single_message(&unmasked, 100), None);
        // Over the limit; a length not in its shortest form; invalid UTF-8 in text.
        assert_eq!(single_message(&hello, 4), None);
        assert_eq!(single_message(&frame(0x81, b"hello", 2), 100), None);
        assert_eq!(single_message(&frame(0x81, b"hello", 8), 100), None);
        assert_eq!(single_message(&frame(0x81, &[0xff, 0xfe], 0), 100), None);
        assert_eq!(
            single_message(&frame(0x82, &[0xff, 0xfe], 0), 100),
            Some((vec![0xff, 0xfe], true))
        );
    }

    #[test]
    fn frame_len_needs_the_length_bytes_only() {
        let short = frame(0x81, b"hello", 0);
        assert_eq!(frame_len(&short[..1]), None);
        assert_eq!(frame_len(&short[..2]), Some(short.len() as u64));
        let mid = frame(0x82, &[1; 200], 2);
        assert_eq!(frame_len(&mid[..3]), None);
        assert_eq!(frame_len(&mid[..4]), Some(mid.len() as u64));
        let big = frame(0x82, &[1; 70_000], 8);
        assert_eq!(frame_len(&big[..9]), None);
        assert_eq!(frame_len(&big[..10]), Some(big.len() as u64));
        // An unmasked (server) frame has no key.
        assert_eq!(frame_len(&[0x81, 5]), Some(7));
    }
}
