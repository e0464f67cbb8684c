//! Captures of real NVMe/TCP exchanges: every PDU the card's initiator sent or received,
//! in order, as `rushes-card probe --capture FILE` writes them. The tests decode
//! captures taken against the Linux kernel's nvmet target, so the codec is checked
//! against what a real controller put on the wire, not only against our reading of the
//! specification.
//!
//! Format: `RCAPTUR1`, then per PDU: connection number (u32 LE), direction (u8: 0 from
//! the host, 1 from the controller), length (u32 LE), the PDU's bytes.

use crate::initiator::CapturedPdu;

pub const MAGIC: &[u8; 8] = b"RCAPTUR1";

pub fn encode(pdus: &[CapturedPdu]) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    for p in pdus {
        out.extend_from_slice(&p.conn.to_le_bytes());
        out.push(u8::from(!p.from_host));
        out.extend_from_slice(&(p.bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(&p.bytes);
    }
    out
}

pub fn decode(b: &[u8]) -> Result<Vec<CapturedPdu>, String> {
    let rest = b.strip_prefix(MAGIC).ok_or("not a capture (no RCAPTUR1)")?;
    let mut pdus = Vec::new();
    let mut at = 0;
    while at < rest.len() {
        let head = rest
            .get(at..at + 9)
            .ok_or_else(|| format!("a record header is cut short at byte {at}"))?;
        let conn = u32::from_le_bytes(head[0..4].try_into().expect("4 bytes"));
        let from_host = head[4] == 0;
        let len = u32::from_le_bytes(head[5..9].try_into().expect("4 bytes")) as usize;
        let bytes = rest
            .get(at + 9..at + 9 + len)
            .ok_or_else(|| format!("a record is cut short at byte {at}"))?;
        pdus.push(CapturedPdu {
            conn,
            from_host,
            bytes: bytes.to_vec(),
        });
        at += 9 + len;
    }
    Ok(pdus)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_capture_round_trips_and_a_torn_one_is_refused() {
        let pdus = vec![
            CapturedPdu {
                conn: 0,
                from_host: true,
                bytes: vec![1, 2, 3],
            },
            CapturedPdu {
                conn: 1,
                from_host: false,
                bytes: vec![4; 300],
            },
        ];
        let b = encode(&pdus);
        assert_eq!(decode(&b).unwrap(), pdus);
        assert!(decode(&b[..b.len() - 1]).is_err());
        assert!(decode(b"nope").is_err());
    }
}
