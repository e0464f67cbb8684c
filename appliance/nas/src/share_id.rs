//! The stable id of a share name, as file handles carry it: FNV-1a, so it is the same
//! across builds and restarts and a client's handles stay good.

/// The id of the share called `name`.
pub fn share_id(name: &str) -> u32 {
    name.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}
