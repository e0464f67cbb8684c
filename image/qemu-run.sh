#!/usr/bin/env bash
# Boot out/rushes.img the way a server would: UEFI (OVMF), the image as a USB stick,
# four NVMe and two SATA disks, the NFS port forwarded to 127.0.0.1 only.
# `make run` uses it interactively; the end-to-end tests use it with RUSHES_VM_MODE=test.
#
#   RUSHES_IMAGE      disk image to boot            (default out/rushes.img)
#   RUSHES_VM_DIR     where the VM's disks and EFI variables live (default out/vm)
#   RUSHES_NFS_PORT   host port forwarded to the guest's 2049, TCP and UDP (default 2049)
#   RUSHES_PORTMAP_PORT  host port forwarded to the guest's portmapper, 111, TCP and UDP
#                     (default 111 when run as root, so clients mount with no options;
#                     empty: not forwarded)
#   RUSHES_HTTPS_PORT host port forwarded to the guest's web console and admin API, 443
#                     (default 443 for `make run` as root, 8443 otherwise; tests: none)
#   RUSHES_SMB_PORT   host port forwarded to the guest's SMB, 445 (default 445 for
#                     `make run` as root, none otherwise)
#   RUSHES_VM_MODE    interactive (serial console on this terminal) or test
#   RUSHES_NVME_SIZE  size of each NVMe disk when first created (default 8G)
#   RUSHES_HOTPLUG_PORTS  empty PCIe slots for hot-adding NVMe disks (default 2: hotplug0, hotplug1)
#   RUSHES_VM_CPUS    the guest's CPUs (default 2; the tests boot theirs with 1, see
#                     tests/src/vm.rs)
#   extra arguments are passed to QEMU as they are.
set -euo pipefail
image=${RUSHES_IMAGE:-out/rushes.img}
dir=${RUSHES_VM_DIR:-out/vm}
port=${RUSHES_NFS_PORT:-2049}
if [ "$(id -u)" = 0 ]; then pm_default=111; else pm_default=; fi
pm_port=${RUSHES_PORTMAP_PORT-$pm_default}
forwards="hostfwd=tcp:127.0.0.1:$port-:2049,hostfwd=udp:127.0.0.1:$port-:2049"
if [ -n "$pm_port" ]; then
    forwards="$forwards,hostfwd=tcp:127.0.0.1:$pm_port-:111,hostfwd=udp:127.0.0.1:$pm_port-:111"
fi
mode=${RUSHES_VM_MODE:-interactive}
# The interactive box also answers on HTTPS and SMB; test VMs run side by side, so they
# forward only what each test asks for.
if [ "$mode" = interactive ]; then
    if [ "$(id -u)" = 0 ]; then https_default=443; smb_default=445; else https_default=8443; smb_default=; fi
else
    https_default=; smb_default=
fi
https_port=${RUSHES_HTTPS_PORT-$https_default}
smb_port=${RUSHES_SMB_PORT-$smb_default}
[ -z "$https_port" ] || forwards="$forwards,hostfwd=tcp:127.0.0.1:$https_port-:443"
[ -z "$smb_port" ] || forwards="$forwards,hostfwd=tcp:127.0.0.1:$smb_port-:445"
nvme_size=${RUSHES_NVME_SIZE:-8G}
hotplug_ports=${RUSHES_HOTPLUG_PORTS:-2}
code=/usr/share/OVMF/OVMF_CODE_4M.fd
vars_template=/usr/share/OVMF/OVMF_VARS_4M.fd
[ -e "$code" ] || { echo "OVMF is missing: make deps installs it (Debian package ovmf)" >&2; exit 1; }
[ -e "$image" ] || { echo "$image is missing: make image builds it" >&2; exit 1; }
mkdir -p "$dir"
[ -e "$dir/OVMF_VARS.fd" ] || cp "$vars_template" "$dir/OVMF_VARS.fd"
disks=()
# Each NVMe disk sits in a PCIe slot of its own, as in a server's U.2 bays, so it can be
# pulled (QMP device_del nvmeN) and disks can be added to the empty slots (hotplugN).
for i in 0 1 2 3; do
    [ -e "$dir/nvme$i.qcow2" ] || qemu-img create -q -f qcow2 "$dir/nvme$i.qcow2" "$nvme_size"
    disks+=(-device "pcie-root-port,id=slot$i,bus=pcie.0,chassis=$((i + 1))"
            -drive "if=none,id=nvmedrive$i,format=qcow2,file=$dir/nvme$i.qcow2"
            -device "nvme,id=nvme$i,serial=RUSHESNVME$i,drive=nvmedrive$i,bus=slot$i")
done
for ((i = 0; i < hotplug_ports; i++)); do
    disks+=(-device "pcie-root-port,id=hotplug$i,bus=pcie.0,chassis=$((i + 11))")
done
for i in 0 1; do
    [ -e "$dir/sata$i.qcow2" ] || qemu-img create -q -f qcow2 "$dir/sata$i.qcow2" 16G
    disks+=(-drive "if=none,id=sata$i,format=qcow2,file=$dir/sata$i.qcow2"
            -device "ide-hd,drive=sata$i,bus=ahci.$i,serial=RUSHESSATA$i")
done
console=(-nographic -serial mon:stdio)
if [ "$mode" = test ]; then
    console=(-display none -monitor none)   # the caller adds -serial and -qmp
fi
exec qemu-system-x86_64 \
    -machine q35 -m 2048 -smp "${RUSHES_VM_CPUS:-2}" \
    -drive "if=pflash,format=raw,readonly=on,file=$code" \
    -drive "if=pflash,format=raw,file=$dir/OVMF_VARS.fd" \
    -device qemu-xhci,id=xhci \
    -drive "if=none,id=stick,format=raw,file=$image" \
    -device usb-storage,bus=xhci.0,drive=stick,bootindex=0 \
    -device ahci,id=ahci \
    "${disks[@]}" \
    -netdev "user,id=net0,$forwards" \
    -device virtio-net-pci,netdev=net0,speed=10000,duplex=full \
    -device i6300esb -action watchdog=reset \
    "${console[@]}" \
    "$@"
