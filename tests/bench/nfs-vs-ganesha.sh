#!/usr/bin/env bash
# make bench: rushesd against NFS-Ganesha on the same folder, same client, same run.
set -euo pipefail
cd "$(dirname "$0")/../.."
exec target/release/nfs-bench --rushesd target/release/rushesd "$@"
