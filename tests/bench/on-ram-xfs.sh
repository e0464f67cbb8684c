#!/usr/bin/env bash
# make bench: run a command with an XFS file system (the pools' file system) mounted at
# DIR, on a loop device over a file in /dev/shm, then unmount it and free the memory.
#
# The single-request latencies are the servers' own time plus the file system's. On
# this machine's ext4 virtual disk a create takes anything from 15 to 430 µs depending
# on the folder and the minute (measured 2026-12-07), which swamps both servers; XFS in
# RAM times what the servers add, as a fast NVMe pool would show it.
#
# Usage: on-ram-xfs.sh DIR COMMAND [ARGS...]   (as root; RUSHES_BENCH_XFS_GIB, default 6)
set -euo pipefail
dir=$1
shift
image=/dev/shm/rushes-bench-xfs.img
cleanup() {
	umount "$dir" 2>/dev/null || true
	rm -f "$image"
}
trap cleanup EXIT
if mountpoint -q "$dir"; then
	echo "on-ram-xfs: $dir is already a mount point; unmount it first" >&2
	exit 1
fi
mkdir -p "$dir"
truncate -s "${RUSHES_BENCH_XFS_GIB:-6}G" "$image"
mkfs.xfs -q -f "$image"
mount -o loop "$image" "$dir"
echo "==> $dir: XFS on a RAM-backed loop device ($(df -h --output=size "$dir" | tail -1 | tr -d ' '))"
"$@"
