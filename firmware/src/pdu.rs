//! NVMe/TCP PDUs (NVMe over TCP transport specification, rev 1.0): the 8-byte common
//! header, the connection set-up pair (ICReq/ICResp), command and response capsules,
//! data transfer PDUs and R2T, with CRC32C header and data digests.

/// PDU types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum PduType {
    ICReq = 0x00,
    ICResp = 0x01,
    H2CTermReq = 0x02,
    C2HTermReq = 0x03,
    CapsuleCmd = 0x04,
    CapsuleResp = 0x05,
    H2CData = 0x06,
    C2HData = 0x07,
    R2T = 0x09,
}

impl PduType {
    pub fn from_u8(b: u8) -> Option<Self> {
        Some(match b {
            0x00 => Self::ICReq,
            0x01 => Self::ICResp,
            0x02 => Self::H2CTermReq,
            0x03 => Self::C2HTermReq,
            0x04 => Self::CapsuleCmd,
            0x05 => Self::CapsuleResp,
            0x06 => Self::H2CData,
            0x07 => Self::C2HData,
            0x09 => Self::R2T,
            _ => return None,
        })
    }

    /// The header length (HLEN) the specification fixes for each type.
    pub fn header_len(self) -> usize {
        match self {
            Self::ICReq | Self::ICResp | Self::H2CTermReq | Self::C2HTermReq => 128,
            Self::CapsuleCmd => 72,
            Self::CapsuleResp | Self::H2CData | Self::C2HData | Self::R2T => 24,
        }
    }
}

/// Common-header flags.
pub mod flags {
    /// A header digest follows the header.
    pub const HDGSTF: u8 = 0x01;
    /// A data digest follows the data.
    pub const DDGSTF: u8 = 0x02;
    /// C2HData / H2CData: the last PDU of the transfer.
    pub const LAST_PDU: u8 = 0x04;
    /// C2HData: the command succeeded; no response capsule follows.
    pub const SUCCESS: u8 = 0x08;
}

/// Why bytes are not a valid PDU.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PduError {
    #[error("need {0} more bytes")]
    Short(usize),
    #[error("unknown PDU type {0:#04x}")]
    UnknownType(u8),
    #[error("PDU type {ty:?} must have a {want}-byte header, not {got}")]
    HeaderLen {
        ty: PduType,
        want: usize,
        got: usize,
    },
    #[error("PDU length {plen} is smaller than its header")]
    Length { plen: u32 },
    #[error("header digest mismatch")]
    HeaderDigest,
}

/// The 8-byte common header every PDU starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommonHeader {
    pub pdu_type: PduType,
    pub flags: u8,
    /// Header length.
    pub hlen: u8,
    /// PDU data offset: where data starts, 0 when there is none.
    pub pdo: u8,
    /// Whole PDU length, header, digests and data included.
    pub plen: u32,
}

impl CommonHeader {
    pub fn encode(&self, out: &mut [u8]) {
        out[0] = self.pdu_type as u8;
        out[1] = self.flags;
        out[2] = self.hlen;
        out[3] = self.pdo;
        out[4..8].copy_from_slice(&self.plen.to_le_bytes());
    }

    pub fn decode(b: &[u8]) -> Result<Self, PduError> {
        if b.len() < 8 {
            return Err(PduError::Short(8 - b.len()));
        }
        let pdu_type = PduType::from_u8(b[0]).ok_or(PduError::UnknownType(b[0]))?;
        let h = Self {
            pdu_type,
            flags: b[1],
            hlen: b[2],
            pdo: b[3],
            plen: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
        };
        if usize::from(h.hlen) != pdu_type.header_len() {
            return Err(PduError::HeaderLen {
                ty: pdu_type,
                want: pdu_type.header_len(),
                got: h.hlen.into(),
            });
        }
        if (h.plen as usize) < usize::from(h.hlen) {
            return Err(PduError::Length { plen: h.plen });
        }
        Ok(h)
    }
}

/// ICReq: the host opens the connection with its parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ICReq {
    /// PDU format version: 0.
    pub pfv: u16,
    /// Host PDU data alignment, in dwords minus one.
    pub hpda: u8,
    pub header_digest: bool,
    pub data_digest: bool,
    /// Maximum outstanding R2Ts per command, minus one.
    pub maxr2t: u32,
}

impl ICReq {
    pub fn encode(&self) -> [u8; 128] {
        ic_encode(
            PduType::ICReq,
            self.pfv,
            self.hpda,
            (self.header_digest, self.data_digest),
            self.maxr2t,
        )
    }

    pub fn decode(b: &[u8]) -> Result<Self, PduError> {
        let (pfv, hpda, (header_digest, data_digest), maxr2t) = ic_decode(b, PduType::ICReq)?;
        Ok(Self {
            pfv,
            hpda,
            header_digest,
            data_digest,
            maxr2t,
        })
    }
}

/// ICReq and ICResp share one layout: PFV (8-9), alignment (10), DGST (11: header
/// digest bit 0, data digest bit 1), a 32-bit limit (12-15), reserved to 127.
fn ic_encode(ty: PduType, pfv: u16, align: u8, digests: (bool, bool), limit: u32) -> [u8; 128] {
    let mut b = [0u8; 128];
    CommonHeader {
        pdu_type: ty,
        flags: 0,
        hlen: 128,
        pdo: 0,
        plen: 128,
    }
    .encode(&mut b);
    b[8..10].copy_from_slice(&pfv.to_le_bytes());
    b[10] = align;
    b[11] = u8::from(digests.0) | (u8::from(digests.1) << 1);
    b[12..16].copy_from_slice(&limit.to_le_bytes());
    b
}

type IcFields = (u16, u8, (bool, bool), u32);

fn ic_decode(b: &[u8], ty: PduType) -> Result<IcFields, PduError> {
    let h = CommonHeader::decode(b)?;
    if h.pdu_type != ty {
        return Err(PduError::UnknownType(h.pdu_type as u8));
    }
    if b.len() < 128 {
        return Err(PduError::Short(128 - b.len()));
    }
    Ok((
        u16::from_le_bytes([b[8], b[9]]),
        b[10],
        (b[11] & 1 != 0, b[11] & 2 != 0),
        u32::from_le_bytes([b[12], b[13], b[14], b[15]]),
    ))
}

/// ICResp: the controller's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ICResp {
    pub pfv: u16,
    /// Controller PDU data alignment, in dwords minus one.
    pub cpda: u8,
    pub header_digest: bool,
    pub data_digest: bool,
    /// The most data one H2CData PDU may carry.
    pub maxh2cdata: u32,
}

impl ICResp {
    pub fn encode(&self) -> [u8; 128] {
        ic_encode(
            PduType::ICResp,
            self.pfv,
            self.cpda,
            (self.header_digest, self.data_digest),
            self.maxh2cdata,
        )
    }

    pub fn decode(b: &[u8]) -> Result<Self, PduError> {
        let (pfv, cpda, (header_digest, data_digest), maxh2cdata) = ic_decode(b, PduType::ICResp)?;
        Ok(Self {
            pfv,
            cpda,
            header_digest,
            data_digest,
            maxh2cdata,
        })
    }
}

/// CRC32C as NVMe/TCP digests use it (the value goes on the wire little-endian).
pub fn digest(data: &[u8]) -> u32 {
    crc32c::crc32c(data)
}

/// A command capsule: the 64-byte submission queue entry, optional in-capsule data,
/// and a header digest when negotiated.
pub fn capsule_cmd(sqe: &[u8; 64], data: &[u8], header_digest: bool, data_digest: bool) -> Vec<u8> {
    let hlen = 72usize;
    let hd = if header_digest { 4 } else { 0 };
    let dd = if data_digest && !data.is_empty() {
        4
    } else {
        0
    };
    let pdo = if data.is_empty() { 0 } else { hlen + hd };
    let plen = hlen + hd + data.len() + dd;
    let mut b = vec![0u8; plen];
    let mut fl = 0;
    if header_digest {
        fl |= flags::HDGSTF;
    }
    if dd > 0 {
        fl |= flags::DDGSTF;
    }
    CommonHeader {
        pdu_type: PduType::CapsuleCmd,
        flags: fl,
        hlen: hlen as u8,
        pdo: pdo as u8,
        plen: plen as u32,
    }
    .encode(&mut b);
    b[8..72].copy_from_slice(sqe);
    if header_digest {
        let d = digest(&b[..hlen]);
        b[hlen..hlen + 4].copy_from_slice(&d.to_le_bytes());
    }
    if !data.is_empty() {
        b[pdo..pdo + data.len()].copy_from_slice(data);
        if dd > 0 {
            let d = digest(data);
            b[pdo + data.len()..].copy_from_slice(&d.to_le_bytes());
        }
    }
    b
}

/// Fields of a data PDU (C2HData, H2CData) or an R2T header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataHeader {
    pub pdu_type: PduType,
    pub flags: u8,
    /// Command capsule CID this data belongs to.
    pub cccid: u16,
    /// Transfer tag (H2CData, R2T).
    pub ttag: u16,
    /// Offset of this data in the command's buffer.
    pub offset: u32,
    /// Length of the data (or, for R2T, of the data requested).
    pub length: u32,
    pub pdo: u8,
    pub plen: u32,
}

impl DataHeader {
    pub fn decode(b: &[u8]) -> Result<Self, PduError> {
        let h = CommonHeader::decode(b)?;
        if !matches!(
            h.pdu_type,
            PduType::C2HData | PduType::H2CData | PduType::R2T
        ) {
            return Err(PduError::UnknownType(h.pdu_type as u8));
        }
        if b.len() < 24 {
            return Err(PduError::Short(24 - b.len()));
        }
        Ok(Self {
            pdu_type: h.pdu_type,
            flags: h.flags,
            cccid: u16::from_le_bytes([b[8], b[9]]),
            ttag: u16::from_le_bytes([b[10], b[11]]),
            offset: u32::from_le_bytes([b[12], b[13], b[14], b[15]]),
            length: u32::from_le_bytes([b[16], b[17], b[18], b[19]]),
            pdo: h.pdo,
            plen: h.plen,
        })
    }

    pub fn encode(&self) -> [u8; 24] {
        let mut b = [0u8; 24];
        CommonHeader {
            pdu_type: self.pdu_type,
            flags: self.flags,
            hlen: 24,
            pdo: self.pdo,
            plen: self.plen,
        }
        .encode(&mut b);
        b[8..10].copy_from_slice(&self.cccid.to_le_bytes());
        b[10..12].copy_from_slice(&self.ttag.to_le_bytes());
        b[12..16].copy_from_slice(&self.offset.to_le_bytes());
        b[16..20].copy_from_slice(&self.length.to_le_bytes());
        b
    }
}

/// A response capsule: the 16-byte completion queue entry.
pub fn decode_capsule_resp(b: &[u8]) -> Result<[u8; 16], PduError> {
    let h = CommonHeader::decode(b)?;
    if h.pdu_type != PduType::CapsuleResp {
        return Err(PduError::UnknownType(h.pdu_type as u8));
    }
    if b.len() < 24 {
        return Err(PduError::Short(24 - b.len()));
    }
    if h.flags & flags::HDGSTF != 0 {
        if b.len() < 28 {
            return Err(PduError::Short(28 - b.len()));
        }
        let want = u32::from_le_bytes([b[24], b[25], b[26], b[27]]);
        if digest(&b[..24]) != want {
            return Err(PduError::HeaderDigest);
        }
    }
    let mut cqe = [0u8; 16];
    cqe.copy_from_slice(&b[8..24]);
    Ok(cqe)
}

/// A PDU a controller sent, other than C2HData (which the initiator reads straight
/// into the command's buffer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FromController {
    /// A response capsule's completion queue entry.
    Response([u8; 16]),
    /// The controller is ready for (part of) a write's data.
    ReadyToTransfer(DataHeader),
    /// The controller ends the connection, with this fatal error status.
    Ended { fes: u16 },
    /// A PDU a controller may not send a host.
    Unexpected(PduType),
}

/// Decode a whole PDU (`plen` bytes) from a controller, its header digest checked when
/// it has one. Lengths come from the peer, so each is checked against the bytes there.
pub fn from_controller(pdu: &[u8]) -> Result<FromController, PduError> {
    let h = CommonHeader::decode(pdu)?;
    let hlen = usize::from(h.hlen);
    let digest_len = if h.flags & flags::HDGSTF != 0 { 4 } else { 0 };
    if pdu.len() < hlen + digest_len {
        return Err(PduError::Short(hlen + digest_len - pdu.len()));
    }
    if digest_len > 0 {
        let want = u32::from_le_bytes(pdu[hlen..hlen + 4].try_into().expect("4 bytes"));
        if digest(&pdu[..hlen]) != want {
            return Err(PduError::HeaderDigest);
        }
    }
    Ok(match h.pdu_type {
        PduType::CapsuleResp => FromController::Response(decode_capsule_resp(pdu)?),
        PduType::R2T => FromController::ReadyToTransfer(DataHeader::decode(pdu)?),
        // Its header is 128 bytes, checked above.
        PduType::C2HTermReq => FromController::Ended {
            fes: u16::from_le_bytes([pdu[8], pdu[9]]),
        },
        other => FromController::Unexpected(other),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pdu_too_short_for_the_digest_it_announces_is_refused_not_a_panic() {
        // A response capsule flagged with a header digest, but only as long as its header.
        let mut b = [0u8; 24];
        CommonHeader {
            pdu_type: PduType::CapsuleResp,
            flags: flags::HDGSTF,
            hlen: 24,
            pdo: 0,
            plen: 24,
        }
        .encode(&mut b);
        assert_eq!(from_controller(&b), Err(PduError::Short(4)));
        // A header cut short of its length.
        assert_eq!(from_controller(&b[..20]), Err(PduError::Short(8)));
        // With the digest there and right, the entry comes out.
        let mut whole = b.to_vec();
        whole[8] = 0x2a;
        whole.extend_from_slice(&digest(&whole[..24]).to_le_bytes());
        let mut cqe = [0u8; 16];
        cqe[0] = 0x2a;
        assert_eq!(from_controller(&whole), Ok(FromController::Response(cqe)));
        whole[9] ^= 1;
        assert_eq!(from_controller(&whole), Err(PduError::HeaderDigest));
    }

    #[test]
    fn icreq_is_128_bytes_with_fields_where_the_spec_puts_them() {
        let b = ICReq {
            pfv: 0,
            hpda: 0,
            header_digest: true,
            data_digest: false,
            maxr2t: 0,
        }
        .encode();
        assert_eq!(b.len(), 128);
        assert_eq!(&b[..8], &[0x00, 0x00, 128, 0, 128, 0, 0, 0]);
        assert_eq!(b[11], 0x01, "HDGST_ENABLE is bit 0 of DGST");
        assert!(b[16..].iter().all(|&x| x == 0), "reserved bytes are zero");
        assert!(ICReq::decode(&b).unwrap().header_digest);
    }

    #[test]
    fn icresp_decodes_maxh2cdata() {
        let mut b = ICResp {
            pfv: 0,
            cpda: 0,
            header_digest: false,
            data_digest: true,
            maxh2cdata: 131072,
        }
        .encode();
        assert_eq!(&b[..4], &[0x01, 0, 128, 0]);
        assert_eq!(&b[12..16], &[0x00, 0x00, 0x02, 0x00]);
        let r = ICResp::decode(&b).unwrap();
        assert_eq!(
            (r.maxh2cdata, r.data_digest, r.header_digest),
            (131072, true, false)
        );
        b[2] = 24;
        assert!(matches!(
            ICResp::decode(&b),
            Err(PduError::HeaderLen { .. })
        ));
    }

    #[test]
    fn a_command_capsule_has_a_72_byte_header_and_digests_where_negotiated() {
        let mut sqe = [0u8; 64];
        sqe[0] = 0x7f; // fabrics command
        sqe[2..4].copy_from_slice(&0x1234u16.to_le_bytes()); // CID
        let b = capsule_cmd(&sqe, &[], false, false);
        assert_eq!(b.len(), 72);
        assert_eq!(&b[..8], &[0x04, 0x00, 72, 0, 72, 0, 0, 0]);
        assert_eq!(&b[8..72], &sqe[..]);
        let data = [0xabu8; 1024];
        let b = capsule_cmd(&sqe, &data, true, true);
        assert_eq!(b[1], flags::HDGSTF | flags::DDGSTF);
        assert_eq!(b[3], 76, "data starts after header and header digest");
        assert_eq!(b.len(), 72 + 4 + 1024 + 4);
        let hd = u32::from_le_bytes([b[72], b[73], b[74], b[75]]);
        assert_eq!(hd, digest(&b[..72]));
        let dd = u32::from_le_bytes(b[b.len() - 4..].try_into().unwrap());
        assert_eq!(dd, digest(&data));
    }

    #[test]
    fn data_and_r2t_headers_are_24_bytes() {
        let h = DataHeader {
            pdu_type: PduType::C2HData,
            flags: flags::LAST_PDU | flags::SUCCESS,
            cccid: 7,
            ttag: 0,
            offset: 4096,
            length: 8192,
            pdo: 24,
            plen: 24 + 8192,
        };
        let b = h.encode();
        assert_eq!(&b[..8], &[0x07, 0x0c, 24, 24, 0x18, 0x20, 0, 0]);
        assert_eq!(&b[8..20], &[7, 0, 0, 0, 0, 0x10, 0, 0, 0, 0x20, 0, 0]);
        assert_eq!(DataHeader::decode(&b).unwrap(), h);
    }

    #[test]
    fn a_response_capsule_checks_its_header_digest() {
        let mut b = vec![0u8; 28];
        CommonHeader {
            pdu_type: PduType::CapsuleResp,
            flags: flags::HDGSTF,
            hlen: 24,
            pdo: 0,
            plen: 28,
        }
        .encode(&mut b);
        b[8 + 12..8 + 14].copy_from_slice(&0x1234u16.to_le_bytes()); // CID in the CQE
        let d = digest(&b[..24]);
        b[24..28].copy_from_slice(&d.to_le_bytes());
        let cqe = decode_capsule_resp(&b).unwrap();
        assert_eq!(u16::from_le_bytes([cqe[12], cqe[13]]), 0x1234);
        b[9] ^= 1;
        assert_eq!(decode_capsule_resp(&b), Err(PduError::HeaderDigest));
    }

    #[test]
    fn crc32c_matches_the_standard_check_value() {
        assert_eq!(digest(b"123456789"), 0xe306_9283);
    }

    #[test]
    fn garbage_is_refused_not_trusted() {
        assert_eq!(
            CommonHeader::decode(&[0x04, 0, 72]),
            Err(PduError::Short(5))
        );
        assert_eq!(
            CommonHeader::decode(&[0x42, 0, 72, 0, 72, 0, 0, 0]),
            Err(PduError::UnknownType(0x42))
        );
        assert_eq!(
            CommonHeader::decode(&[0x04, 0, 72, 0, 10, 0, 0, 0]),
            Err(PduError::Length { plen: 10 })
        );
    }
}
