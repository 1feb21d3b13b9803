//! Message bodies: how a message is framed, and reading a body (whole, with a size limit, or
//! piece by piece) before a deadline. Used for request bodies on the server and response bodies
//! in the client.

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
    let mut reader = BodyReader::new(framing, max as u64);
    let mut body = match framing {
        Framing::Length(n) if n <= max as u64 => Vec::with_capacity(n as usize),
        _ => Vec::new(),
    };
    while reader.read_into(input, &mut body, WHOLE_READ, deadline)? > 0 {}
    Ok(body)
}

/// How much [`read_body`] asks for at a time.
const WHOLE_READ: usize = 64 * 1024;

/// Where a chunked body's decoding stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunked {
    /// Before a chunk-size line.
    Size,
    /// Inside a chunk: this many data bytes are left.
    Data(u64),
    /// After a chunk's data: its CRLF.
    DataEnd,
}

/// Reads a body piece by piece, removing its framing, up to a limit on its total size: the
/// server's streamed request bodies and, through [`read_body`], every whole body.
#[derive(Debug)]
pub struct BodyReader {
    framing: Framing,
    /// Largest total size accepted ([`BodyError::TooLarge`] beyond, found as early as the framing
    /// tells: a `Content-Length` or a chunk size over it fails before its data is read).
    max: u64,
    /// Bytes left of a `Length` body.
    left: u64,
    chunked: Chunked,
    /// Data bytes delivered so far.
    delivered: u64,
    done: bool,
}

impl BodyReader {
    /// A reader for a body framed as `framing`, at most `max` bytes long.
    pub fn new(framing: Framing, max: u64) -> BodyReader {
        BodyReader {
            framing,
            max,
            left: match framing {
                Framing::Length(n) => n,
                _ => 0,
            },
            chunked: Chunked::Size,
            delivered: 0,
            done: matches!(framing, Framing::Empty | Framing::Length(0)),
        }
    }

    /// Whether the whole body has been read.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Appends up to `max` data bytes to `out`, waiting for some to arrive (before `deadline`).
    /// Returns how many were appended: 0 only at the end of the body.
    pub fn read_into(
        &mut self,
        input: &mut Input,
        out: &mut Vec<u8>,
        max: usize,
        deadline: Instant,
    ) -> Result<usize, BodyError> {
        if self.done || max == 0 {
            return Ok(0);
        }
        let n = match self.framing {
            Framing::Empty => 0,
            Framing::Length(total) => {
                if total > self.max {
                    return Err(BodyError::TooLarge);
                }
                let want = max.min(usize::try_from(self.left).unwrap_or(usize::MAX));
                let bytes = input.take_some(want, deadline)?;
                out.extend_from_slice(bytes);
                self.left -= bytes.len() as u64;
                bytes.len()
            }
            Framing::Chunked => self.read_chunked(input, out, max, deadline)?,
            Framing::UntilClose => match input.take_some(max, deadline) {
                Ok(bytes) => {
                    if self.delivered + bytes.len() as u64 > self.max {
                        return Err(BodyError::TooLarge);
                    }
                    out.extend_from_slice(bytes);
                    bytes.len()
                }
                Err(ReadError::Closed) => 0,
                Err(e) => return Err(e.into()),
            },
        };
        self.delivered += n as u64;
        self.done = match self.framing {
            Framing::Length(_) => self.left == 0,
            _ => n == 0,
        };
        Ok(n)
    }

    fn read_chunked(
        &mut self,
        input: &mut Input,
        out: &mut Vec<u8>,
        max: usize,
        deadline: Instant,
    ) -> Result<usize, BodyError> {
        loop {
            match self.chunked {
                Chunked::Size => {
                    let line = read_line(input, deadline)?;
                    let size = parse_chunk_size(&line).ok_or(BodyError::Malformed)?;
                    if size == 0 {
                        read_trailers(input, deadline)?;
                        return Ok(0);
                    }
                    if self.delivered + size > self.max {
                        return Err(BodyError::TooLarge);
                    }
                    self.chunked = Chunked::Data(size);
                }
                Chunked::Data(left) => {
                    let want = max.min(usize::try_from(left).unwrap_or(usize::MAX));
                    let bytes = input.take_some(want, deadline)?;
                    out.extend_from_slice(bytes);
                    let n = bytes.len();
                    self.chunked = if left == n as u64 {
                        Chunked::DataEnd
                    } else {
                        Chunked::Data(left - n as u64)
                    };
                    return Ok(n);
                }
                Chunked::DataEnd => {
                    if !read_line(input, deadline)?.is_empty() {
                        return Err(BodyError::Malformed);
                    }
                    self.chunked = Chunked::Size;
                }
            }
        }
    }
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

/// Reads and drops the trailer fields after a chunked body, up to the empty line that ends them.
fn read_trailers(input: &mut Input, deadline: Instant) -> Result<(), BodyError> {
    let mut trailers = 0;
    loop {
        let line = read_line(input, deadline)?;
        if line.is_empty() {
            return Ok(());
        }
        trailers += line.len();
        if trailers > MAX_TRAILERS {
            return Err(BodyError::Malformed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::{TcpListener, TcpStream};
    use std::time::Duration;

    /// An [`Input`] reading `bytes` (then end of stream) from a real loopback connection.
    fn input_of(bytes: &[u8]) -> Input {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        client.write_all(bytes).unwrap();
        drop(client);
        Input::new(server)
    }

    fn deadline() -> Instant {
        Instant::now() + Duration::from_secs(20)
    }

    /// Reads the whole body `max_piece` bytes at a time; returns the pieces.
    fn pieces(framing: Framing, wire: &[u8], max_piece: usize) -> Result<Vec<Vec<u8>>, BodyError> {
        let mut input = input_of(wire);
        let mut reader = BodyReader::new(framing, 1 << 20);
        let mut out = Vec::new();
        loop {
            let mut piece = Vec::new();
            if reader.read_into(&mut input, &mut piece, max_piece, deadline())? == 0 {
                assert!(reader.is_done());
                return Ok(out);
            }
            assert!(piece.len() <= max_piece);
            out.push(piece);
        }
    }

    #[test]
    fn chunked_bodies_are_decoded_in_pieces_of_at_most_the_size_asked() {
        let wire = b"5\r\nhello\r\n3;ext=1\r\n wo\r\n2\r\nrl\r\n1\r\nd\r\n0\r\nX-T: 1\r\n\r\nNEXT";
        let got = pieces(Framing::Chunked, wire, 2).unwrap();
        assert_eq!(got.concat(), b"hello world");
        assert!(got.iter().all(|p| p.len() <= 2));
        let got = pieces(Framing::Chunked, wire, 64).unwrap();
        assert_eq!(
            got,
            [
                b"hello".to_vec(),
                b" wo".to_vec(),
                b"rl".to_vec(),
                b"d".to_vec()
            ]
        );
    }

    #[test]
    fn empty_bodies_end_at_once() {
        for framing in [Framing::Empty, Framing::Length(0)] {
            assert_eq!(pieces(framing, b"NEXT", 8).unwrap(), Vec::<Vec<u8>>::new());
        }
    }

    #[test]
    fn length_bodies_stop_at_their_length() {
        let got = pieces(Framing::Length(5), b"helloNEXT REQUEST", 3).unwrap();
        assert_eq!(got, [b"hel".to_vec(), b"lo".to_vec()]);
    }

    #[test]
    fn limits_fail_before_the_data_is_read() {
        let mut input = input_of(b"");
        let mut reader = BodyReader::new(Framing::Length(11), 10);
        let mut out = Vec::new();
        assert_eq!(
            reader.read_into(&mut input, &mut out, 64, deadline()),
            Err(BodyError::TooLarge)
        );
        // The second chunk's size line alone puts it over the limit.
        let mut input = input_of(b"4\r\nabcd\r\n7\r\n");
        let mut reader = BodyReader::new(Framing::Chunked, 10);
        assert_eq!(
            reader.read_into(&mut input, &mut out, 64, deadline()),
            Ok(4)
        );
        assert_eq!(
            reader.read_into(&mut input, &mut out, 64, deadline()),
            Err(BodyError::TooLarge)
        );
    }

    #[test]
    fn broken_chunked_framing_is_malformed_and_a_cut_body_vanished() {
        assert_eq!(
            pieces(Framing::Chunked, b"zz\r\n", 8),
            Err(BodyError::Malformed)
        );
        assert_eq!(
            pieces(Framing::Chunked, b"2\r\nabX\r\n", 8),
            Err(BodyError::Malformed)
        );
        assert_eq!(
            pieces(Framing::Length(9), b"abc", 8),
            Err(BodyError::Vanished)
        );
        assert_eq!(
            pieces(Framing::UntilClose, b"abc", 2).unwrap().concat(),
            b"abc"
        );
    }

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
