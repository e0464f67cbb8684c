//! The discovery log page (log identifier 0x70): a 1024-byte header with the generation
//! counter and the number of records, then one 1024-byte entry per subsystem or referral.

/// The well-known NQN of every discovery controller.
pub const DISCOVERY_NQN: &str = "nqn.2014-08.org.nvmexpress.discovery";

/// Subsystem types in a log entry.
pub const SUBTYPE_REFERRAL: u8 = 1;
pub const SUBTYPE_NVME: u8 = 2;
pub const SUBTYPE_CURRENT_DISCOVERY: u8 = 3;

/// Transport types.
pub const TRTYPE_RDMA: u8 = 1;
pub const TRTYPE_TCP: u8 = 3;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    pub trtype: u8,
    pub adrfam: u8,
    pub subtype: u8,
    pub treq: u8,
    pub portid: u16,
    pub cntlid: u16,
    pub asqsz: u16,
    /// Transport service id: the port, as text.
    pub trsvcid: String,
    pub subnqn: String,
    pub traddr: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogPage {
    pub genctr: u64,
    pub numrec: u64,
    pub recfmt: u16,
    pub entries: Vec<LogEntry>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LogError {
    #[error("the log page is {0} bytes; its header alone takes 1024")]
    Short(usize),
}

/// A fixed-size ASCII field, space- or NUL-padded.
fn text(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).trim_end().to_string()
}

fn le16(b: &[u8]) -> u16 {
    u16::from_le_bytes([b[0], b[1]])
}

fn le64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

impl LogEntry {
    /// One 1024-byte entry.
    pub fn decode(e: &[u8; 1024]) -> Self {
        Self {
            trtype: e[0],
            adrfam: e[1],
            subtype: e[2],
            treq: e[3],
            portid: le16(&e[4..6]),
            cntlid: le16(&e[6..8]),
            asqsz: le16(&e[8..10]),
            trsvcid: text(&e[32..64]),
            subnqn: text(&e[256..512]),
            traddr: text(&e[512..768]),
        }
    }

    pub fn encode(&self) -> [u8; 1024] {
        let mut e = [0u8; 1024];
        e[0] = self.trtype;
        e[1] = self.adrfam;
        e[2] = self.subtype;
        e[3] = self.treq;
        e[4..6].copy_from_slice(&self.portid.to_le_bytes());
        e[6..8].copy_from_slice(&self.cntlid.to_le_bytes());
        e[8..10].copy_from_slice(&self.asqsz.to_le_bytes());
        for (range, s) in [
            (32..64, &self.trsvcid),
            (256..512, &self.subnqn),
            (512..768, &self.traddr),
        ] {
            let field = &mut e[range];
            field.fill(b' ');
            let n = s.len().min(field.len());
            field[..n].copy_from_slice(&s.as_bytes()[..n]);
        }
        e
    }

    pub fn is_referral(&self) -> bool {
        self.subtype == SUBTYPE_REFERRAL
    }
}

impl LogPage {
    /// Decode as many entries as the bytes hold (a short read gets the first ones; the
    /// caller compares with `numrec` and reads the rest).
    pub fn decode(b: &[u8]) -> Result<Self, LogError> {
        if b.len() < 1024 {
            return Err(LogError::Short(b.len()));
        }
        let numrec = le64(&b[8..16]);
        let entries = b[1024..]
            .chunks_exact(1024)
            .take(numrec as usize)
            .map(|c| LogEntry::decode(c.try_into().expect("1024-byte chunk")))
            .collect();
        Ok(Self {
            genctr: le64(&b[0..8]),
            numrec,
            recfmt: le16(&b[16..18]),
            entries,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bay_entry() -> LogEntry {
        LogEntry {
            trtype: TRTYPE_TCP,
            adrfam: 1,
            subtype: SUBTYPE_NVME,
            treq: 0,
            portid: 1,
            cntlid: 0xffff,
            asqsz: 32,
            trsvcid: "4420".into(),
            subnqn: "nqn.2026-11.io.rushes:bay1".into(),
            traddr: "10.0.0.9".into(),
        }
    }

    #[test]
    fn entries_are_1024_bytes_with_addresses_where_the_spec_puts_them() {
        let e = bay_entry();
        let b = e.encode();
        assert_eq!(&b[..10], &[3, 1, 2, 0, 1, 0, 0xff, 0xff, 32, 0]);
        assert_eq!(&b[32..36], b"4420");
        assert_eq!(b[36], b' ', "fields are space padded");
        assert_eq!(&b[256..262], b"nqn.20");
        assert_eq!(&b[512..520], b"10.0.0.9");
        assert_eq!(LogEntry::decode(&b), e);
    }

    #[test]
    fn a_page_with_a_referral_reads_both_records() {
        let mut page = vec![0u8; 1024 * 3];
        page[0..8].copy_from_slice(&7u64.to_le_bytes());
        page[8..16].copy_from_slice(&2u64.to_le_bytes());
        let nvme = bay_entry();
        let referral = LogEntry {
            subtype: SUBTYPE_REFERRAL,
            trsvcid: "8009".into(),
            subnqn: "nqn.2014-08.org.nvmexpress.discovery".into(),
            traddr: "10.0.0.10".into(),
            ..nvme.clone()
        };
        page[1024..2048].copy_from_slice(&nvme.encode());
        page[2048..].copy_from_slice(&referral.encode());
        let p = LogPage::decode(&page).unwrap();
        assert_eq!((p.genctr, p.numrec, p.entries.len()), (7, 2, 2));
        assert!(p.entries[1].is_referral() && !p.entries[0].is_referral());
        assert_eq!(p.entries[1].traddr, "10.0.0.10");
        assert_eq!(LogPage::decode(&page[..100]), Err(LogError::Short(100)));
    }
}
