//! NVMe commands as the card sends them over a fabric: 64-byte submission queue entries
//! for the fabrics commands (Connect, Property Get/Set), the admin commands it needs
//! (Identify, Get Log Page, Keep Alive) and I/O (Read, Write, Flush), with SGL data
//! descriptors as NVMe/TCP requires; and the 16-byte completion entry.

/// Opcodes.
pub const OPC_FABRICS: u8 = 0x7f;
pub const OPC_FLUSH: u8 = 0x00;
pub const OPC_WRITE: u8 = 0x01;
pub const OPC_READ: u8 = 0x02;
pub const OPC_GET_LOG_PAGE: u8 = 0x02;
pub const OPC_IDENTIFY: u8 = 0x06;
pub const OPC_KEEP_ALIVE: u8 = 0x18;

/// Fabrics command types.
pub const FCTYPE_PROPERTY_SET: u8 = 0x00;
pub const FCTYPE_CONNECT: u8 = 0x01;
pub const FCTYPE_PROPERTY_GET: u8 = 0x04;

/// Controller properties.
pub const PROP_CAP: u32 = 0x00;
pub const PROP_CC: u32 = 0x14;
pub const PROP_CSTS: u32 = 0x1c;

/// A submission queue entry being built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sqe(pub [u8; 64]);

impl Sqe {
    /// Opcode, PSDT = SGL (flags bits 7:6 = 01b, which fabrics require), and the NSID.
    pub fn new(opcode: u8, nsid: u32) -> Self {
        let mut b = [0u8; 64];
        b[0] = opcode;
        b[1] = 0x40;
        b[4..8].copy_from_slice(&nsid.to_le_bytes());
        Self(b)
    }

    pub fn cid(&self) -> u16 {
        u16::from_le_bytes([self.0[2], self.0[3]])
    }

    pub fn set_cid(&mut self, cid: u16) {
        self.0[2..4].copy_from_slice(&cid.to_le_bytes());
    }

    /// Command dword `n` (10–15).
    pub fn set_cdw(&mut self, n: usize, v: u32) {
        let off = n * 4;
        self.0[off..off + 4].copy_from_slice(&v.to_le_bytes());
    }

    /// SGL1 as a data block in the capsule itself (type 0h, subtype 1h "offset").
    pub fn sgl_in_capsule(&mut self, len: u32) {
        self.0[24..32].fill(0);
        self.0[32..36].copy_from_slice(&len.to_le_bytes());
        self.0[36..39].fill(0);
        self.0[39] = 0x01;
    }

    /// SGL1 as a transport data block (type 5h, subtype Ah): the data moves in
    /// C2HData, or in H2CData after an R2T.
    pub fn sgl_transport(&mut self, len: u32) {
        self.0[24..32].fill(0);
        self.0[32..36].copy_from_slice(&len.to_le_bytes());
        self.0[36..39].fill(0);
        self.0[39] = 0x5a;
    }

    pub fn is_write(&self) -> bool {
        self.0[0] == OPC_WRITE
    }
}

/// Fabrics Connect for queue `qid` (0 = admin) with `sqsize` entries (0-based on the
/// wire) and keep-alive timeout `kato_ms` (admin queue only). Its 1024 bytes of data go
/// in the capsule.
pub fn connect(qid: u16, sqsize: u16, kato_ms: u32) -> Sqe {
    let mut s = Sqe::new(OPC_FABRICS, 0);
    s.0[4] = FCTYPE_CONNECT;
    // RECFMT 0 (40-41), QID (42-43), SQSIZE (44-45), CATTR (46), KATO (48-51).
    s.0[42..44].copy_from_slice(&qid.to_le_bytes());
    s.0[44..46].copy_from_slice(&sqsize.saturating_sub(1).to_le_bytes());
    s.0[48..52].copy_from_slice(&kato_ms.to_le_bytes());
    s.sgl_in_capsule(1024);
    s
}

/// The Connect command's data: host ID, controller ID (0xFFFF: any, on the admin
/// queue), subsystem NQN and host NQN.
pub fn connect_data(hostid: &[u8; 16], cntlid: u16, subnqn: &str, hostnqn: &str) -> [u8; 1024] {
    let mut d = [0u8; 1024];
    d[0..16].copy_from_slice(hostid);
    d[16..18].copy_from_slice(&cntlid.to_le_bytes());
    let sub = subnqn.as_bytes();
    d[256..256 + sub.len().min(255)].copy_from_slice(&sub[..sub.len().min(255)]);
    let host = hostnqn.as_bytes();
    d[512..512 + host.len().min(255)].copy_from_slice(&host[..host.len().min(255)]);
    d
}

/// Property Get of `offset`, 8 bytes wide when `wide` (CAP), else 4.
pub fn property_get(offset: u32, wide: bool) -> Sqe {
    let mut s = Sqe::new(OPC_FABRICS, 0);
    s.0[4] = FCTYPE_PROPERTY_GET;
    s.0[40] = u8::from(wide);
    s.0[44..48].copy_from_slice(&offset.to_le_bytes());
    s
}

/// Property Set of a 4-byte property.
pub fn property_set(offset: u32, value: u32) -> Sqe {
    let mut s = Sqe::new(OPC_FABRICS, 0);
    s.0[4] = FCTYPE_PROPERTY_SET;
    s.0[44..48].copy_from_slice(&offset.to_le_bytes());
    s.0[48..52].copy_from_slice(&value.to_le_bytes());
    s
}

/// CC with the controller enabled: NVM command set, 4 KiB pages, round robin, 64-byte
/// submission and 16-byte completion entries.
pub const CC_ENABLE: u32 = 1 | (6 << 16) | (4 << 20);

/// Identify with CNS `cns` (0 namespace, 1 controller, 2 active namespace IDs): 4 KiB.
pub fn identify(cns: u8, nsid: u32) -> Sqe {
    let mut s = Sqe::new(OPC_IDENTIFY, nsid);
    s.set_cdw(10, u32::from(cns));
    s.sgl_transport(4096);
    s
}

/// Get Log Page `lid`, `len` bytes (a multiple of 4) from byte `offset`.
pub fn get_log_page(lid: u8, len: u32, offset: u64) -> Sqe {
    let mut s = Sqe::new(OPC_GET_LOG_PAGE, 0);
    let numd = len / 4 - 1;
    s.set_cdw(10, ((numd & 0xffff) << 16) | u32::from(lid));
    s.set_cdw(11, numd >> 16);
    s.set_cdw(12, offset as u32);
    s.set_cdw(13, (offset >> 32) as u32);
    s.sgl_transport(len);
    s
}

pub fn keep_alive() -> Sqe {
    Sqe::new(OPC_KEEP_ALIVE, 0)
}

/// Read or write `blocks` blocks from `lba` of namespace `nsid`; `bytes` is their size.
pub fn read_write(write: bool, nsid: u32, lba: u64, blocks: u32, bytes: u32) -> Sqe {
    let mut s = Sqe::new(if write { OPC_WRITE } else { OPC_READ }, nsid);
    s.set_cdw(10, lba as u32);
    s.set_cdw(11, (lba >> 32) as u32);
    s.set_cdw(12, blocks - 1);
    s.sgl_transport(bytes);
    s
}

pub fn flush(nsid: u32) -> Sqe {
    Sqe::new(OPC_FLUSH, nsid)
}

/// A completion queue entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cqe {
    /// Command-specific result (Connect: the controller ID; Property Get: the value).
    pub result: u64,
    pub sqhd: u16,
    pub cid: u16,
    /// Status field without the phase bit: 0 is success.
    pub status: u16,
}

impl Cqe {
    pub fn decode(b: &[u8; 16]) -> Self {
        Self {
            result: u64::from_le_bytes(b[0..8].try_into().expect("8 bytes")),
            sqhd: u16::from_le_bytes([b[8], b[9]]),
            cid: u16::from_le_bytes([b[12], b[13]]),
            status: u16::from_le_bytes([b[14], b[15]]) >> 1,
        }
    }

    pub fn ok(&self) -> bool {
        self.status == 0
    }

    /// `SCT 1h SC 82h` and the like, for messages.
    pub fn describe_status(status: u16) -> String {
        let sc = status & 0xff;
        let sct = (status >> 8) & 0x7;
        let what = match (sct, sc) {
            (0, 0x02) => " (invalid field)",
            (0, 0x80) => " (LBA out of range)",
            (1, 0x80) => " (connect: incompatible format)",
            (1, 0x81) => " (connect: controller busy)",
            (1, 0x82) => " (connect: invalid parameters)",
            (1, 0x84) => " (connect: this host is not allowed by the subsystem)",
            _ => "",
        };
        format!("SCT {sct:#x} SC {sc:#04x}{what}")
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b)
        .trim_end_matches(['\0', ' '])
        .to_string()
}

/// What Identify Controller says that the card uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControllerIdentity {
    pub serial: String,
    pub model: String,
    pub firmware: String,
    /// Largest transfer, as a power of two of the minimum page size (0: no limit).
    pub mdts: u8,
    pub cntlid: u16,
    /// Command capsule size in 16-byte units: 64 bytes of SQE plus in-capsule data.
    pub ioccsz: u32,
    pub subnqn: String,
}

/// Identify data is 4096 bytes; a controller that sent fewer is read as zeros past them.
fn identify_page(b: &[u8]) -> [u8; 4096] {
    let mut page = [0u8; 4096];
    let n = b.len().min(page.len());
    page[..n].copy_from_slice(&b[..n]);
    page
}

impl ControllerIdentity {
    pub fn decode(b: &[u8]) -> Self {
        let b = &identify_page(b);
        Self {
            serial: text(&b[4..24]),
            model: text(&b[24..64]),
            firmware: text(&b[64..72]),
            mdts: b[77],
            cntlid: u16::from_le_bytes([b[78], b[79]]),
            ioccsz: u32::from_le_bytes(b[1792..1796].try_into().expect("4 bytes")),
            subnqn: text(&b[768..1024]),
        }
    }

    /// Bytes of data a write may carry in its capsule.
    pub fn in_capsule_bytes(&self) -> usize {
        (self.ioccsz as usize * 16).saturating_sub(64)
    }

    /// Largest transfer in bytes (4 KiB pages), capped at 1 MiB.
    pub fn max_transfer(&self) -> usize {
        match self.mdts {
            0 => 1 << 20,
            m => (4096usize << m.min(20)).min(1 << 20),
        }
    }
}

/// Size and block size of a namespace (Identify Namespace).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NamespaceIdentity {
    pub blocks: u64,
    pub block_size: u32,
}

impl NamespaceIdentity {
    pub fn decode(b: &[u8]) -> Self {
        let b = &identify_page(b);
        let format = usize::from(b[26] & 0x0f);
        let lbaf = 128 + 4 * format;
        Self {
            blocks: u64::from_le_bytes(b[0..8].try_into().expect("8 bytes")),
            block_size: 1u32 << b[lbaf + 2].min(31),
        }
    }
}

/// The active namespace IDs list (CNS 2): NSIDs until the first zero.
pub fn namespace_ids(b: &[u8]) -> Vec<u32> {
    b.chunks_exact(4)
        .map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes")))
        .take_while(|&n| n != 0)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_puts_queue_size_and_keep_alive_where_the_spec_says() {
        let mut s = connect(1, 128, 0);
        s.set_cid(9);
        let b = s.0;
        assert_eq!(&b[..5], &[0x7f, 0x40, 9, 0, FCTYPE_CONNECT]);
        assert_eq!(&b[42..46], &[1, 0, 127, 0], "QID 1, SQSIZE 0-based");
        assert_eq!(
            &b[32..36],
            &1024u32.to_le_bytes(),
            "1 KiB of in-capsule data"
        );
        assert_eq!(b[39], 0x01, "data block, offset subtype");
        let a = connect(0, 32, 15_000).0;
        assert_eq!(&a[48..52], &15_000u32.to_le_bytes());
    }

    #[test]
    fn connect_data_holds_ids_and_nqns_at_fixed_offsets() {
        let d = connect_data(&[7; 16], 0xffff, "nqn.sub", "nqn.host");
        assert_eq!(&d[..16], &[7; 16]);
        assert_eq!(&d[16..18], &[0xff, 0xff]);
        assert_eq!(&d[256..263], b"nqn.sub");
        assert_eq!(d[263], 0);
        assert_eq!(&d[512..520], b"nqn.host");
    }

    #[test]
    fn reads_and_writes_carry_a_0_based_block_count_and_a_transport_sgl() {
        let s = read_write(true, 1, 0x1_0000_0002, 8, 4096).0;
        assert_eq!(s[0], OPC_WRITE);
        assert_eq!(&s[4..8], &1u32.to_le_bytes());
        assert_eq!(&s[40..48], &0x1_0000_0002u64.to_le_bytes());
        assert_eq!(&s[48..50], &7u16.to_le_bytes());
        assert_eq!(s[39], 0x5a);
    }

    #[test]
    fn a_completion_decodes_without_its_phase_bit() {
        let mut b = [0u8; 16];
        b[0..2].copy_from_slice(&0x0005u16.to_le_bytes());
        b[12..14].copy_from_slice(&42u16.to_le_bytes());
        b[14..16].copy_from_slice(&((0x184u16 << 1) | 1).to_le_bytes());
        let c = Cqe::decode(&b);
        assert_eq!((c.result, c.cid, c.status), (5, 42, 0x184));
        assert!(!c.ok());
        assert!(Cqe::describe_status(c.status).contains("not allowed"));
    }

    #[test]
    fn identify_data_decodes() {
        let mut c = vec![0u8; 4096];
        c[4..12].copy_from_slice(b"SER1    ");
        c[24..28].copy_from_slice(b"Bay ");
        c[77] = 5;
        c[1792..1796].copy_from_slice(&516u32.to_le_bytes());
        let id = ControllerIdentity::decode(&c);
        assert_eq!((id.serial.as_str(), id.model.as_str()), ("SER1", "Bay"));
        assert_eq!(id.max_transfer(), 128 << 10);
        assert_eq!(id.in_capsule_bytes(), 8192);
        let mut n = vec![0u8; 4096];
        n[0..8].copy_from_slice(&524288u64.to_le_bytes());
        n[26] = 1;
        n[128 + 4 + 2] = 12;
        assert_eq!(
            NamespaceIdentity::decode(&n),
            NamespaceIdentity {
                blocks: 524288,
                block_size: 4096
            }
        );
        let mut l = vec![0u8; 4096];
        l[0..4].copy_from_slice(&1u32.to_le_bytes());
        l[4..8].copy_from_slice(&3u32.to_le_bytes());
        assert_eq!(namespace_ids(&l), [1, 3]);
    }
}
