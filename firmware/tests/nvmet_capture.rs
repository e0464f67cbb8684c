//! The codec against a real exchange: `data/nvmet-probe.rcap` is what the card's
//! initiator sent and received while `rushes-card probe --digests --verify-mib 1
//! --capture …` ran against the Linux kernel's nvmet target (6.12, NVMe/TCP, one
//! file-backed namespace of 256 MiB, in the appliance image under QEMU). Every PDU the
//! kernel sent must decode, its CRC32C digests must check, and the exchange must hang
//! together: answers to what was asked, R2Ts answered in full.

use rushes_firmware::capture;
use rushes_firmware::command::{ControllerIdentity, Cqe, NamespaceIdentity};
use rushes_firmware::initiator::CapturedPdu;
use rushes_firmware::pdu::{
    decode_capsule_resp, digest, flags, CommonHeader, DataHeader, ICReq, ICResp, PduType,
};

const BAY: &str = "nqn.2026-11.io.rushes.test:bay2";

fn pdus() -> Vec<CapturedPdu> {
    capture::decode(include_bytes!("data/nvmet-probe.rcap")).expect("the capture decodes")
}

fn header(p: &CapturedPdu) -> CommonHeader {
    CommonHeader::decode(&p.bytes).unwrap_or_else(|e| panic!("{e}: {:02x?}", &p.bytes[..8]))
}

/// The data of a C2HData PDU, its data digest checked when present.
fn c2h_data(p: &CapturedPdu) -> (DataHeader, &[u8]) {
    let d = DataHeader::decode(&p.bytes).unwrap();
    let start = usize::from(d.pdo);
    let data = &p.bytes[start..start + d.length as usize];
    if d.flags & flags::DDGSTF != 0 {
        let at = start + d.length as usize;
        let want = u32::from_le_bytes(p.bytes[at..at + 4].try_into().unwrap());
        assert_eq!(digest(data), want, "the kernel's data digest checks");
    }
    (d, data)
}

#[test]
fn every_pdu_from_the_kernel_decodes_with_its_digests() {
    let pdus = pdus();
    assert!(pdus.len() > 20, "a whole probe: {} PDUs", pdus.len());
    for p in pdus.iter().filter(|p| !p.from_host) {
        let h = header(p);
        assert_eq!(h.plen as usize, p.bytes.len(), "PDU length as sent");
        if h.pdu_type != PduType::ICResp {
            assert!(
                h.flags & flags::HDGSTF != 0,
                "header digests were negotiated"
            );
            let hlen = usize::from(h.hlen);
            let want = u32::from_le_bytes(p.bytes[hlen..hlen + 4].try_into().unwrap());
            assert_eq!(
                digest(&p.bytes[..hlen]),
                want,
                "header digest of {:?}",
                h.pdu_type
            );
        }
        match h.pdu_type {
            PduType::CapsuleResp => {
                let cqe = Cqe::decode(&decode_capsule_resp(&p.bytes).unwrap());
                assert_eq!(cqe.status, 0, "every command succeeded: {cqe:?}");
            }
            PduType::C2HData => {
                c2h_data(p);
            }
            PduType::ICResp | PduType::R2T => {}
            other => panic!("the kernel sent an unexpected {other:?}"),
        }
    }
}

#[test]
fn each_connection_opens_with_icreq_and_icresp_of_128_bytes() {
    let pdus = pdus();
    let conns: std::collections::BTreeSet<u32> = pdus.iter().map(|p| p.conn).collect();
    assert!(conns.len() >= 2, "an admin queue and I/O queues: {conns:?}");
    for conn in conns {
        let mut on = pdus.iter().filter(|p| p.conn == conn);
        let req = on.next().unwrap();
        let resp = on.next().unwrap();
        assert!(req.from_host && !resp.from_host);
        assert_eq!((req.bytes.len(), resp.bytes.len()), (128, 128));
        assert!(ICReq::decode(&req.bytes).unwrap().header_digest);
        let r = ICResp::decode(&resp.bytes).unwrap();
        assert_eq!(r.pfv, 0);
        assert!(
            r.header_digest && r.data_digest,
            "the kernel agreed to digests"
        );
        assert!(r.maxh2cdata >= 4096, "MAXH2CDATA {}", r.maxh2cdata);
    }
}

#[test]
fn identify_data_from_the_kernel_reads_as_the_bay_it_is() {
    let pdus = pdus();
    // On the first connection (the admin queue), the 4 KiB transfers are, in order,
    // Identify Controller, the active namespace list and Identify Namespace.
    let data: Vec<&[u8]> = pdus
        .iter()
        .filter(|p| p.conn == 0 && !p.from_host)
        .filter(|p| header(p).pdu_type == PduType::C2HData)
        .map(|p| c2h_data(p).1)
        .filter(|d| d.len() == 4096)
        .collect();
    assert!(data.len() >= 3, "{} Identify transfers", data.len());
    let ctrl = ControllerIdentity::decode(data[0]);
    assert_eq!(ctrl.model, "Linux", "nvmet's model string");
    assert_eq!(ctrl.subnqn, BAY);
    assert!(ctrl.firmware.starts_with("6.12"), "{}", ctrl.firmware);
    assert_eq!(ctrl.mdts, 0, "no transfer limit");
    assert_eq!(
        ctrl.in_capsule_bytes(),
        16 << 10,
        "nvmet-tcp's default in-capsule data"
    );
    assert_eq!(
        u32::from_le_bytes(data[1][0..4].try_into().unwrap()),
        1,
        "namespace 1"
    );
    let ns = NamespaceIdentity::decode(data[2]);
    assert_eq!(u64::from(ns.block_size) * ns.blocks, 256 << 20);
}

#[test]
fn every_r2t_is_answered_with_exactly_the_data_it_asked_for() {
    let pdus = pdus();
    let mut answered = 0;
    for (i, p) in pdus.iter().enumerate() {
        if p.from_host || header(p).pdu_type != PduType::R2T {
            continue;
        }
        let r2t = DataHeader::decode(&p.bytes).unwrap();
        let mut h2c: Vec<DataHeader> = Vec::new();
        for q in pdus[i + 1..]
            .iter()
            .filter(|q| q.conn == p.conn && q.from_host)
        {
            if header(q).pdu_type != PduType::H2CData {
                continue;
            }
            let d = DataHeader::decode(&q.bytes).unwrap();
            if d.cccid != r2t.cccid {
                continue;
            }
            h2c.push(d);
            if d.flags & flags::LAST_PDU != 0 {
                break;
            }
        }
        let total: u32 = h2c.iter().map(|d| d.length).sum();
        assert_eq!(total, r2t.length, "R2T for command {}", r2t.cccid);
        assert!(h2c.iter().all(|d| d.ttag == r2t.ttag));
        assert!(h2c.last().unwrap().flags & flags::LAST_PDU != 0);
        answered += 1;
    }
    assert!(
        answered > 0,
        "writes larger than in-capsule data went through R2T"
    );
}
