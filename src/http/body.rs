//! Message bodies: how a message is framed, and reading a whole body with a size limit and a
//! deadline. Used for request bodies on the server and response bodies in the client.

use std::time::Instant;

use super::input::{Input, ReadError};

/// How the body of a message is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body.
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Everything until the peer closes (responses only).
    UntilClose,
}

/// Why a body could not be read.
#[derive(Debug, PartialEq, Eq)]
pub enum BodyError {
    /// Larger than the limit.
    TooLarge,
    /// The deadline passed.
    Timeout,
    /// Broken chunked framing.
    Malformed,
    /// The peer went away before the end of the body.
    Vanished,
}

impl From<ReadError> for BodyError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Timeout => BodyError::Timeout,
            ReadError::Closed => BodyError::Vanished,
            ReadError::Io(e) => {
                log::debug!("read error in body: {e}");
                BodyError::Vanished
            }
        }
    }
}

/// Longest chunk-size or trailer line accepted.
const MAX_CHUNK_LINE: usize = 4096;
/// Most bytes of trailer fields accepted after a chunked body.
const MAX_TRAILERS: usize = 64 * 1024;

/// Reads a whole body framed as `framing`, at most `max` bytes, before `deadline`.
pub fn read_body(
    input: &mut Input,
    framing: Framing,
    max: usize,
    deadline: Instant,
) -> Result<Vec<u8>, BodyError> {
    match framing {
        Framing::Empty => Ok(Vec::new()),
        Framing::Length(n) => {
            if n > max as u64 {
                return Err(BodyError::TooLarge);
            }
            let mut body = Vec::with_capacity(n as usize);
            read_exact_into(input, n as usize, &mut body, deadline)?;
            Ok(body)
        }
        Framing::Chunked => read_chunked(input, max, deadline),
        Framing::UntilClose => {
            let mut body = Vec::new();
            loop {
                match input.take_some(64 * 1024, deadline) {
                    Ok(bytes) => {
                        if body.len() + bytes.len() > max {
                            return Err(BodyError::TooLarge);
                        }
                        body.extend_from_slice(bytes);
                    }
                    Err(ReadError::Closed) => return Ok(body),
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
}

fn read_exact_into(
    input: &mut Input,
    mut n: usize,
    body: &mut Vec<u8>,
    deadline: Instant,
) -> Result<(), BodyError> {
    while n > 0 {
        let bytes = input.take_some(n, deadline)?;
        n -= bytes.len();
        body.extend_from_slice(bytes);
    }
    Ok(())
}

/// Reads one line ending in LF (the CR before it, if any, is removed).
fn read_line(input: &mut Input, deadline: Instant) -> Result<Vec<u8>, BodyError> {
    loop {
        if let Some(pos) = input.buffered().iter().position(|&b| b == b'\n') {
            let mut line = input.buffered()[..pos].to_vec();
            input.consume(pos + 1);
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            return Ok(line);
        }
        if input.buffered().len() > MAX_CHUNK_LINE {
            return Err(BodyError::Malformed);
        }
        input.fill(deadline)?;
    }
}

fn parse_chunk_size(line: &[u8]) -> Option<u64> {
    let end = line.iter().position(|&b| b == b';').unwrap_or(line.len());
    let digits = line[..end].trim_ascii();
    if digits.is_empty() || digits.len() > 15 {
        return None;
    }
    let mut size = 0u64;
    for &d in digits {
        size = size * 16 + (d as char).to_digit(16)? as u64;
    }
    Some(size)
}

fn read_chunked(input: &mut Input, max: usize, deadline: Instant) -> Result<Vec<u8>, BodyError> {
    let mut body = Vec::new();
    loop {
        let line = read_line(input, deadline)?;
        let size = parse_chunk_size(&line).ok_or(BodyError::Malformed)?;
        if size == 0 {
            break;
        }
        if body.len() as u64 + size > max as u64 {
            return Err(BodyError::TooLarge);
        }
        read_exact_into(input, size as usize, &mut body, deadline)?;
        if !read_line(input, deadline)?.is_empty() {
            return Err(BodyError::Malformed);
        }
    }
    // Trailer fields are read and dropped; an empty line ends them.
    let mut trailers = 0;
    loop {
        let line = read_line(input, deadline)?;
        if line.is_empty() {
            return Ok(body);
        }
        trailers += line.len();
        if trailers > MAX_TRAILERS {
            return Err(BodyError::Malformed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_chunk_size;

    #[test]
    fn chunk_sizes() {
        assert_eq!(parse_chunk_size(b"1a"), Some(26));
        assert_eq!(parse_chunk_size(b"FF;name=value"), Some(255));
        assert_eq!(parse_chunk_size(b"0"), Some(0));
        assert_eq!(parse_chunk_size(b""), None);
        assert_eq!(parse_chunk_size(b"xyz"), None);
        assert_eq!(parse_chunk_size(b"1234567890abcdef0"), None);
    }
}
