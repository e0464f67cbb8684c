//! Disk hot-plug: the kernel's uevents (netlink) for block devices wake the daemon's
//! monitor, which rescans the inventory and takes pulled disks out of their arrays.

use std::os::fd::AsRawFd;
use std::sync::Arc;

use nix::sys::socket::{
    bind, recv, socket, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType,
};

use crate::core::Core;

/// Whether a uevent message (`ACTION@DEVPATH\0KEY=VALUE\0…`) is about a block device.
fn is_block_event(msg: &[u8]) -> bool {
    msg.split(|&b| b == 0)
        .any(|field| field == b"SUBSYSTEM=block")
}

/// Listen for uevents on a thread of its own; without netlink (a container) the
/// monitor's periodic rescan still notices changes, only later.
pub fn watch(core: Arc<Core>) {
    let spawned = std::thread::Builder::new()
        .name("hotplug".into())
        .spawn(move || {
            let fd = match socket(
                AddressFamily::Netlink,
                SockType::Datagram,
                SockFlag::SOCK_CLOEXEC,
                SockProtocol::NetlinkKObjectUEvent,
            ) {
                Ok(fd) => fd,
                Err(e) => {
                    tracing::warn!(error = %e, "no uevent socket: disk changes are noticed by the 30 s rescan only");
                    return;
                }
            };
            // Group 1: the kernel's own events.
            if let Err(e) = bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 1)) {
                tracing::warn!(error = %e, "cannot listen for uevents: disk changes are noticed by the 30 s rescan only");
                return;
            }
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                match recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty()) {
                    Ok(n) if is_block_event(&buf[..n]) => {
                        let head = buf[..n].split(|&b| b == 0).next().unwrap_or_default();
                        tracing::info!(event = %String::from_utf8_lossy(head), "block device event");
                        core.poke();
                    }
                    Ok(_) => {}
                    Err(nix::errno::Errno::EINTR) | Err(nix::errno::Errno::ENOBUFS) => {
                        // Lost events: look anyway.
                        core.poke();
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "uevent socket failed; relying on the periodic rescan");
                        return;
                    }
                }
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start the hot-plug thread");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_block_events_count() {
        let add = b"add@/devices/pci0000:00/0000:00:04.0/nvme/nvme4/nvme4n1\0ACTION=add\0SUBSYSTEM=block\0DEVNAME=nvme4n1\0";
        assert!(is_block_event(add));
        assert!(!is_block_event(
            b"add@/devices/x\0ACTION=add\0SUBSYSTEM=pci\0"
        ));
    }
}
