//! Samba's `user.DOSATTRIB` xattr, read and written only as far as the attribute word,
//! so that a released file (a stub) shows Windows' offline attribute over SMB while the
//! stored value never keeps that bit.
//!
//! The value is Samba's NDR encoding of `xattr_DOSATTRIB` (librpc/idl/xattr.idl): a
//! NUL-terminated hex string kept for old versions (empty since 4.x), padding to 2, the
//! version (u16), the union's level (u16, the version again), padding to 4, then the
//! version's info. Versions 1 and 2 start with the attribute word; 3, 4 and 5 start with
//! a word of valid flags and then the attribute word. Samba 4.17 writes version 5:
//! valid flags, attributes, creation time (NTTIME), 24 bytes in all.

/// The name Samba stores a file's DOS attributes under (`store dos attributes = yes`).
pub(crate) const NAME: &[u8] = b"user.DOSATTRIB";

/// FILE_ATTRIBUTE_OFFLINE: "the data is not available immediately" (MS-FSCC 2.6).
/// Explorer draws such files as offline and makes no thumbnails of them, so browsing a
/// folder of stubs recalls nothing.
pub(crate) const OFFLINE: u32 = 0x1000;
const READONLY: u32 = 0x1;
/// XATTR_DOSINFO_ATTRIB: the attribute word of a version 3-5 info is valid.
const VALID_ATTRIB: u32 = 0x1;

/// Where the attribute word of `blob` is, if it is a DOSATTRIB this module knows.
fn attrib_at(blob: &[u8]) -> Option<usize> {
    let nul = blob.iter().position(|b| *b == 0)?;
    let version_at = (nul + 1).next_multiple_of(2);
    let version = u16::from_le_bytes(blob.get(version_at..version_at + 2)?.try_into().ok()?);
    let level = u16::from_le_bytes(blob.get(version_at + 2..version_at + 4)?.try_into().ok()?);
    if level != version {
        return None;
    }
    let info = (version_at + 4).next_multiple_of(4);
    let at = match version {
        1 | 2 => info,
        3..=5 => {
            let flags = u32::from_le_bytes(blob.get(info..info + 4)?.try_into().ok()?);
            if flags & VALID_ATTRIB == 0 {
                return None;
            }
            info + 4
        }
        _ => return None,
    };
    (blob.len() >= at + 4).then_some(at)
}

fn with_attrib(blob: &[u8], change: impl FnOnce(u32) -> u32) -> Option<Vec<u8>> {
    let at = attrib_at(blob)?;
    let mut out = blob.to_vec();
    let word = u32::from_le_bytes(out[at..at + 4].try_into().ok()?);
    out[at..at + 4].copy_from_slice(&change(word).to_le_bytes());
    Some(out)
}

/// The value a released file shows: its stored one (`None`: it has none) with the
/// offline bit set. A value this module cannot read is shown as it is; one the file
/// does not have is made (version 5, attributes only: offline, and read-only when its
/// owner may not write, as Samba maps a file without one).
pub(crate) fn shown_offline(stored: Option<&[u8]>, mode: u32) -> Vec<u8> {
    match stored {
        Some(blob) => with_attrib(blob, |a| a | OFFLINE).unwrap_or_else(|| blob.to_vec()),
        None => {
            let mut attrib = OFFLINE;
            if mode & 0o200 == 0 {
                attrib |= READONLY;
            }
            let mut blob = vec![0u8, 0];
            blob.extend_from_slice(&5u16.to_le_bytes());
            blob.extend_from_slice(&5u16.to_le_bytes());
            blob.extend_from_slice(&[0, 0]);
            blob.extend_from_slice(&VALID_ATTRIB.to_le_bytes());
            blob.extend_from_slice(&attrib.to_le_bytes());
            blob.extend_from_slice(&0u64.to_le_bytes());
            blob
        }
    }
}

/// The value stored when Samba sets `blob`: without the offline bit, which only says
/// what the file is now (Samba writes back what it read, and a recalled file is online).
pub(crate) fn stored(blob: &[u8]) -> Vec<u8> {
    with_attrib(blob, |a| a & !OFFLINE).unwrap_or_else(|| blob.to_vec())
}

/// The attribute word of `blob`, if this module can read it.
#[cfg(test)]
fn attributes(blob: &[u8]) -> Option<u32> {
    let at = attrib_at(blob)?;
    Some(u32::from_le_bytes(blob[at..at + 4].try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What Samba 4.17 stored for a file an SMB client made hidden: archive + hidden
    /// (0x22), with its creation time.
    const SAMBA_417_HIDDEN: &str = "000005000500000011000000220000000f4d088ea986dd01";

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn a_stored_value_shows_offline_and_keeps_everything_else() {
        let blob = hex(SAMBA_417_HIDDEN);
        assert_eq!(attributes(&blob), Some(0x22));
        let shown = shown_offline(Some(&blob), 0o644);
        assert_eq!(attributes(&shown), Some(0x1022));
        assert_eq!(shown.len(), blob.len());
        assert_eq!(shown[16..], blob[16..], "the creation time is kept");
        assert_eq!(stored(&shown), blob, "the offline bit is never stored");
    }

    #[test]
    fn a_file_without_one_is_given_offline_and_its_read_only_bit() {
        let made = shown_offline(None, 0o644);
        assert_eq!(made.len(), 24, "Samba's version 5 size");
        assert_eq!(attributes(&made), Some(OFFLINE));
        assert_eq!(
            attributes(&shown_offline(None, 0o444)),
            Some(OFFLINE | READONLY)
        );
        assert_eq!(attributes(&stored(&made)), Some(0));
    }

    #[test]
    fn older_versions_and_an_old_hex_string_are_read() {
        // Version 3 after a "0x20" string: flags (attributes valid) then attributes.
        let mut v3 = b"0x20\0".to_vec();
        v3.push(0); // to 2
        v3.extend_from_slice(&[3, 0, 3, 0]);
        v3.extend_from_slice(&[0, 0, 0, 0][..(v3.len().next_multiple_of(4) - v3.len())]);
        v3.extend_from_slice(&1u32.to_le_bytes());
        v3.extend_from_slice(&0x20u32.to_le_bytes());
        v3.extend_from_slice(&[0; 24]);
        assert_eq!(attributes(&v3), Some(0x20));
        assert_eq!(attributes(&shown_offline(Some(&v3), 0o644)), Some(0x1020));
        // Version 1: the attribute word comes first.
        let mut v1 = vec![0u8, 0, 1, 0, 1, 0, 0, 0];
        v1.extend_from_slice(&0x21u32.to_le_bytes());
        v1.extend_from_slice(&[0; 36]);
        assert_eq!(attributes(&v1), Some(0x21));
    }

    #[test]
    fn a_value_it_cannot_read_is_passed_as_it_is() {
        for odd in [
            &b""[..],
            b"0x20",                                     // no terminator
            b"\0\0\x05\0\x04\0",                         // level differs from version
            b"\0\0\x09\0\x09\0\0\0\x01\0\0\0\x20\0\0\0", // unknown version
            b"\0\0\x05\0\x05\0\0\0\x01\0",               // cut short
            b"\0\0\x05\0\x05\0\0\0\x02\0\0\0\x20\0\0\0", // attributes not valid
        ] {
            assert_eq!(attributes(odd), None, "{odd:?}");
            assert_eq!(shown_offline(Some(odd), 0o644), odd);
            assert_eq!(stored(odd), odd);
        }
    }
}
