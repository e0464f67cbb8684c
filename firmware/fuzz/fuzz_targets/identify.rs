//! What a controller answers to Identify and Get Log Page: controller and namespace
//! identities, the active namespace list and a discovery log page, whatever their length.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rushes_firmware::command::{namespace_ids, ControllerIdentity, NamespaceIdentity};
use rushes_firmware::discovery::LogPage;

fuzz_target!(|data: &[u8]| {
    let id = ControllerIdentity::decode(data);
    assert!(id.max_transfer() <= 1 << 20);
    let _ = id.in_capsule_bytes();
    let ns = NamespaceIdentity::decode(data);
    assert!(ns.block_size >= 1);
    assert!(namespace_ids(data).len() <= data.len() / 4);
    if let Ok(page) = LogPage::decode(data) {
        assert!(page.entries.len() as u64 <= page.numrec);
    }
});
