#!/usr/bin/env bash
# Boot out/rushes.img the way a server would: UEFI (OVMF), the image as a USB stick,
# four NVMe and two SATA disks, the NFS port forwarded to 127.0.0.1 only.
# `make run` uses it interactively; the end-to-end tests use it with RUSHES_VM_MODE=test.
#
#   RUSHES_IMAGE      disk image to boot            (default out/rushes.img)
#   RUSHES_VM_DIR     where the VM's disks and EFI variables live (default out/vm)
#   RUSHES_NFS_PORT   host port forwarded to the guest's 2049 (default 2049)
#   RUSHES_VM_MODE    interactive (serial console on this terminal) or test
#   extra arguments are passed to QEMU as they are.
set -euo pipefail
image=${RUSHES_IMAGE:-out/rushes.img}
dir=${RUSHES_VM_DIR:-out/vm}
port=${RUSHES_NFS_PORT:-2049}
mode=${RUSHES_VM_MODE:-interactive}
code=/usr/share/OVMF/OVMF_CODE_4M.fd
vars_template=/usr/share/OVMF/OVMF_VARS_4M.fd
[ -e "$code" ] || { echo "OVMF is missing: make deps installs it (Debian package ovmf)" >&2; exit 1; }
[ -e "$image" ] || { echo "$image is missing: make image builds it" >&2; exit 1; }
mkdir -p "$dir"
[ -e "$dir/OVMF_VARS.fd" ] || cp "$vars_template" "$dir/OVMF_VARS.fd"
disks=()
for i in 0 1 2 3; do
    [ -e "$dir/nvme$i.qcow2" ] || qemu-img create -q -f qcow2 "$dir/nvme$i.qcow2" 8G
    disks+=(-drive "if=none,id=nvme$i,format=qcow2,file=$dir/nvme$i.qcow2"
            -device "nvme,serial=RUSHESNVME$i,drive=nvme$i")
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
    -machine q35 -m 2048 -smp 2 \
    -drive "if=pflash,format=raw,readonly=on,file=$code" \
    -drive "if=pflash,format=raw,file=$dir/OVMF_VARS.fd" \
    -device qemu-xhci,id=xhci \
    -drive "if=none,id=stick,format=raw,file=$image" \
    -device usb-storage,bus=xhci.0,drive=stick,bootindex=0 \
    -device ahci,id=ahci \
    "${disks[@]}" \
    -netdev "user,id=net0,hostfwd=tcp:127.0.0.1:$port-:2049" \
    -device virtio-net-pci,netdev=net0 \
    -device i6300esb -action watchdog=reset \
    "${console[@]}" \
    "$@"
