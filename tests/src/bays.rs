//! Test "bays" inside a guest: the kernel's own NVMe-oF target, nvmet, configured
//! through configfs to serve file-backed namespaces over NVMe/TCP on the guest's
//! loopback. Bay 1 has three namespaces on ports 4420 and 4421 (and on the guest's
//! address 10.0.2.15, port 8009, for mDNS discovery); bay 2 has one on 4430, and port
//! 4420's discovery log refers to it.

use crate::guest::sh;
use crate::vm::Vm;

pub const BAY1: &str = "nqn.2026-11.io.rushes.test:bay1";
pub const BAY2: &str = "nqn.2026-11.io.rushes.test:bay2";
pub const NVMET: &str = "/sys/kernel/config/nvmet";

/// Set up nvmet: namespaces are files on an XFS on the guest's first SATA disk. Bay 1
/// (3 namespaces) listens on ports 4420 and 4421, bay 2 (1 namespace) on 4430, and
/// port 4420's discovery log refers to 4430. Only `hostnqn` may connect.
pub fn start_bays(vm: &Vm, hostnqn: &str) {
    let script = format!(
        r#"set -e
modprobe nvmet-tcp
grep -q configfs /proc/mounts || mount -t configfs none /sys/kernel/config
mkfs.xfs -q -f /dev/sda
mkdir -p /bays
mount -t xfs /dev/sda /bays
N={NVMET}
mkdir $N/hosts/{hostnqn}
subsys() {{
  mkdir $N/subsystems/$1
  echo 0 > $N/subsystems/$1/attr_allow_any_host
  ln -s $N/hosts/{hostnqn} $N/subsystems/$1/allowed_hosts/{hostnqn}
}}
ns() {{
  truncate -s 256M /bays/$2
  mkdir $N/subsystems/$1/namespaces/$3
  echo -n /bays/$2 > $N/subsystems/$1/namespaces/$3/device_path
  echo 1 > $N/subsystems/$1/namespaces/$3/enable
}}
port() {{
  mkdir $N/ports/$1
  echo tcp > $N/ports/$1/addr_trtype
  echo ipv4 > $N/ports/$1/addr_adrfam
  echo 127.0.0.1 > $N/ports/$1/addr_traddr
  echo $2 > $N/ports/$1/addr_trsvcid
}}
subsys {BAY1}
ns {BAY1} bay1-a 1
ns {BAY1} bay1-b 2
ns {BAY1} bay1-c 3
subsys {BAY2}
ns {BAY2} bay2-a 1
port 1 4420
port 2 4421
port 3 4430
mkdir $N/ports/4
echo tcp > $N/ports/4/addr_trtype
echo ipv4 > $N/ports/4/addr_adrfam
echo 10.0.2.15 > $N/ports/4/addr_traddr
echo 8009 > $N/ports/4/addr_trsvcid
ln -s $N/subsystems/{BAY1} $N/ports/1/subsystems/{BAY1}
ln -s $N/subsystems/{BAY1} $N/ports/2/subsystems/{BAY1}
ln -s $N/subsystems/{BAY1} $N/ports/4/subsystems/{BAY1}
ln -s $N/subsystems/{BAY2} $N/ports/3/subsystems/{BAY2}
mkdir $N/ports/1/referrals/bay2
echo tcp > $N/ports/1/referrals/bay2/addr_trtype
echo ipv4 > $N/ports/1/referrals/bay2/addr_adrfam
echo 127.0.0.1 > $N/ports/1/referrals/bay2/addr_traddr
echo 4430 > $N/ports/1/referrals/bay2/addr_trsvcid
echo 1 > $N/ports/1/referrals/bay2/enable
echo bays up"#
    );
    vm.put_file("/tmp/bays.sh", script.as_bytes()).unwrap();
    let out = sh(vm, "sh /tmp/bays.sh");
    assert!(out.contains("bays up"), "{out}");
}

/// Cut (`rm`) or restore (`ln -s`) subsystem `nqn` on nvmet port `port`: to the
/// initiator this is a link loss on that path.
pub fn link(vm: &Vm, port: u32, nqn: &str, up: bool) {
    let cmd = if up {
        format!("ln -s {NVMET}/subsystems/{nqn} {NVMET}/ports/{port}/subsystems/{nqn}")
    } else {
        format!("rm {NVMET}/ports/{port}/subsystems/{nqn}")
    };
    sh(vm, &cmd);
}
