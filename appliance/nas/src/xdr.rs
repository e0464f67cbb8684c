//! XDR (RFC 4506) decoding from a received record, and small encoding helpers.
//!
//! Decoding never trusts a length field beyond the bytes actually present, so a
//! malformed call costs nothing more than its own size. (nfsserve's `XDR::deserialize`
//! resizes a `Vec` to whatever length the wire claims before reading; we only use its
//! encoders.)

use nfsserve::xdr::XDR;

/// The call's arguments could not be decoded; the caller answers GARBAGE_ARGS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed XDR")]
pub struct Garbage;

/// A cursor over the bytes of one RPC record.
#[derive(Debug, Clone)]
pub struct XdrReader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> XdrReader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// Bytes not yet consumed.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Offset of the cursor from the start of the buffer.
    pub fn position(&self) -> usize {
        self.pos
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Garbage> {
        if n > self.remaining() {
            return Err(Garbage);
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    pub fn u32(&mut self) -> Result<u32, Garbage> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn u64(&mut self) -> Result<u64, Garbage> {
        Ok((u64::from(self.u32()?) << 32) | u64::from(self.u32()?))
    }

    pub fn bool(&mut self) -> Result<bool, Garbage> {
        match self.u32()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(Garbage),
        }
    }

    /// Fixed-length opaque of `N` bytes (padded to a multiple of four on the wire).
    pub fn fixed<const N: usize>(&mut self) -> Result<[u8; N], Garbage> {
        let b = self.take(N)?;
        self.take(pad(N))?;
        let mut out = [0u8; N];
        out.copy_from_slice(b);
        Ok(out)
    }

    /// Variable-length opaque of at most `max` bytes, borrowed from the record.
    pub fn opaque(&mut self, max: usize) -> Result<&'a [u8], Garbage> {
        let len = self.u32()? as usize;
        if len > max {
            return Err(Garbage);
        }
        let b = self.take(len)?;
        self.take(pad(len))?;
        Ok(b)
    }

    /// Decode a fixed-size nfsserve type (no variable-length fields inside) with its own
    /// decoder. Only for types whose decoding cannot allocate from wire lengths.
    pub fn fixed_type<T: XDR + Default>(&mut self) -> Result<T, Garbage> {
        let mut cursor = std::io::Cursor::new(&self.buf[self.pos..]);
        let mut value = T::default();
        value.deserialize(&mut cursor).map_err(|_| Garbage)?;
        self.pos += cursor.position() as usize;
        Ok(value)
    }
}

/// Bytes of padding after `len` bytes of opaque data.
pub fn pad(len: usize) -> usize {
    (4 - len % 4) % 4
}

/// Append an nfsserve value. Writing into a `Vec` cannot fail.
pub fn put<T: XDR>(out: &mut Vec<u8>, value: &T) {
    let _ = value.serialize(out);
}

pub fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}

pub fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_be_bytes());
}

pub fn put_bool(out: &mut Vec<u8>, v: bool) {
    put_u32(out, u32::from(v));
}

/// Variable-length opaque: length, bytes, padding.
pub fn put_opaque(out: &mut Vec<u8>, data: &[u8]) {
    put_u32(out, data.len() as u32);
    out.extend_from_slice(data);
    out.extend_from_slice(&[0u8; 3][..pad(data.len())]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opaque_roundtrip_with_padding() {
        let mut out = Vec::new();
        put_opaque(&mut out, b"abcde");
        assert_eq!(out.len(), 4 + 8);
        let mut r = XdrReader::new(&out);
        assert_eq!(r.opaque(64).unwrap(), b"abcde");
        assert_eq!(r.remaining(), 0);
    }

    #[test]
    fn lying_length_is_garbage_not_allocation() {
        let mut out = Vec::new();
        put_u32(&mut out, u32::MAX);
        out.extend_from_slice(b"tiny");
        assert_eq!(XdrReader::new(&out).opaque(usize::MAX), Err(Garbage));
        assert_eq!(XdrReader::new(&out).opaque(16), Err(Garbage));
    }

    #[test]
    fn truncated_integers_are_garbage() {
        assert_eq!(XdrReader::new(&[0, 0, 1]).u32(), Err(Garbage));
        assert_eq!(XdrReader::new(&[0, 0, 0, 1, 0]).u64(), Err(Garbage));
        assert_eq!(XdrReader::new(&[0, 0, 0, 2]).bool(), Err(Garbage));
    }
}
