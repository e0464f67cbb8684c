//! Reading a file's header: every read is at an offset, checked against the file's
//! length, and counted against a budget, so that a file whose boxes or chunks lie about
//! their sizes cannot make a parser read (or allocate) more than a header's worth.

use std::cell::Cell;

/// Why a header could not be read.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum ParseError {
    #[error("cannot read the file: {0}")]
    Io(String),
    #[error("{what} at byte {at} runs past the end of the file ({len} bytes): the file is truncated or damaged")]
    Truncated { what: String, at: u64, len: u64 },
    #[error("{what} claims {claimed} bytes, more than the {limit} a header may take")]
    TooBig {
        what: String,
        claimed: u64,
        limit: u64,
    },
    #[error("{what} at byte {at} is malformed: {why}")]
    Malformed { what: String, at: u64, why: String },
    #[error("reading the header took more than {0} bytes; a header is never that large")]
    Budget(u64),
}

/// What a parser may read of one file in all.
pub const READ_BUDGET: u64 = 64 << 20;

enum Bytes<'a> {
    File(&'a std::fs::File),
    Memory(&'a [u8]),
}

/// A file (or bytes in memory) read at offsets, within [`READ_BUDGET`].
pub struct Source<'a> {
    bytes: Bytes<'a>,
    len: u64,
    spent: Cell<u64>,
}

impl<'a> Source<'a> {
    pub fn file(file: &'a std::fs::File) -> Result<Self, ParseError> {
        let len = file
            .metadata()
            .map_err(|e| ParseError::Io(e.to_string()))?
            .len();
        Ok(Self {
            bytes: Bytes::File(file),
            len,
            spent: Cell::new(0),
        })
    }

    pub fn memory(bytes: &'a [u8]) -> Self {
        Self {
            bytes: Bytes::Memory(bytes),
            len: bytes.len() as u64,
            spent: Cell::new(0),
        }
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes read so far.
    pub fn spent(&self) -> u64 {
        self.spent.get()
    }

    /// `n` bytes at `at`; fewer only where the file ends (see [`Self::exact_at`]).
    pub fn read_at(&self, at: u64, n: usize) -> Result<Vec<u8>, ParseError> {
        if at >= self.len {
            return Ok(Vec::new());
        }
        let n = (n as u64).min(self.len - at);
        let spent = self.spent.get() + n;
        if spent > READ_BUDGET {
            return Err(ParseError::Budget(READ_BUDGET));
        }
        self.spent.set(spent);
        let mut buf = vec![0u8; n as usize];
        match self.bytes {
            Bytes::Memory(m) => {
                buf.copy_from_slice(&m[at as usize..(at + n) as usize]);
            }
            Bytes::File(f) => {
                let mut done = 0;
                while done < buf.len() {
                    match rustix::io::pread(f, &mut buf[done..], at + done as u64) {
                        Ok(0) => {
                            buf.truncate(done);
                            break;
                        }
                        Ok(k) => done += k,
                        Err(rustix::io::Errno::INTR) => {}
                        Err(e) => return Err(ParseError::Io(e.to_string())),
                    }
                }
            }
        }
        Ok(buf)
    }

    /// Exactly `n` bytes at `at`, or an error naming `what` was cut short.
    pub fn exact_at(&self, at: u64, n: usize, what: &str) -> Result<Vec<u8>, ParseError> {
        let buf = self.read_at(at, n)?;
        if buf.len() < n {
            return Err(ParseError::Truncated {
                what: what.into(),
                at,
                len: self.len,
            });
        }
        Ok(buf)
    }
}

/// Big- and little-endian numbers out of a slice, `None` past its end.
pub(crate) fn be_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

pub(crate) fn be_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

pub(crate) fn be_u64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

pub(crate) fn le_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

pub(crate) fn le_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Text out of a fixed-size field: up to its first NUL, trimmed, lossy UTF-8.
pub(crate) fn text(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).trim().to_string()
}
