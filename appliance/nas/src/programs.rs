//! The ONC RPC programs this server answers, by number and version, and the IP protocol
//! numbers the portmapper speaks of: one place that every front end and the portmapper
//! agree on.

/// The portmapper (PMAP v2, rpcbind v3 and v4).
pub const PORTMAP: u32 = 100000;
/// PMAP: GETPORT over IPv4.
pub const PORTMAP_V2: u32 = 2;
pub const NFS: u32 = 100003;
pub const NFS_V3: u32 = 3;
pub const MOUNT: u32 = 100005;
/// MOUNT v1 and v3 (v2 belongs to NFSv2, not served).
pub const MOUNT_VERSIONS: &[u32] = &[1, 3];
/// The network lock manager: v1 and v3 (32-bit ranges), v4 (64-bit, NFSv3 handles).
pub const NLM: u32 = 100021;
pub const NLM_VERSIONS: &[u32] = &[1, 3, 4];
/// The network status monitor.
pub const NSM: u32 = 100024;
pub const NSM_V1: u32 = 1;

pub const IPPROTO_TCP: u32 = 6;
pub const IPPROTO_UDP: u32 = 17;
