//! A PDU from an NVMe/TCP controller, as the card's initiator reads one: the common
//! header, then the whole PDU by type (response capsule, R2T, termination), the
//! connection's ICResp and a C2HData header. An error or a value, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rushes_firmware::pdu::{self, CommonHeader, DataHeader, ICResp};

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = CommonHeader::decode(data) {
        assert!(h.plen as usize >= usize::from(h.hlen));
    }
    let _ = pdu::from_controller(data);
    let _ = ICResp::decode(data);
    let _ = DataHeader::decode(data);
    let _ = pdu::decode_capsule_resp(data);
});
