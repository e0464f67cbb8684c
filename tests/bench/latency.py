#!/usr/bin/env python3
"""Per-request latency with one request in flight, from an NFS client that is not ours.

The client is PyPI's nfs-rs (its own NFSv3 implementation, neither rushesd's code nor
libnfs). nfs-bench starts the servers and passes each one's URL; this script times every
call alone (one in flight), the servers taking turns at each round, and prints p50 and
p99 per operation with the ratio of the peer's p50 to ours (above 1.0: ours answers
faster). Operations, as nfs-rs sends them:

  stat         Client.stat of a file (LOOKUP of the name, and GETATTR)
  access       Client.access (ACCESS)
  create       Client.touch of a new name (what nfs-rs sends: CREATE)
  remove       Client.unlink (REMOVE)
  list         Client.listdir of a folder of --entries names (READDIRPLUS pages)
  read 1 MiB   File.read_at (READ)
  write 1 MiB  File.write_at, durable when it returns (WRITE, and COMMIT if unstable)

nfs-rs has no call that sends NULL alone, so NULL is not timed.
"""

import argparse
import importlib.metadata
import os
import sys
import time

import nfs_rs

MIB = 1 << 20


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


def timed(samples, op, fn, *args, **kwargs):
    start = time.perf_counter_ns()
    result = fn(*args, **kwargs)
    samples.setdefault(op, []).append((time.perf_counter_ns() - start) / 1000.0)
    return result


def one_round(client, tag, rnd, n, samples):
    """One round of every operation on one server; names are the round's own."""
    names = [f"lat-{tag}-{rnd}-{i:05d}" for i in range(n)]
    for name in names:
        timed(samples, "create", client.touch, name)
    for name in names:
        timed(samples, "stat", client.stat, name)
    for name in names:
        timed(samples, "access", client.access, name, os.R_OK)
    for name in names:
        timed(samples, "remove", client.unlink, name)
    for _ in range(3):
        timed(samples, "list", client.listdir, "list")
    data = bytes(range(256)) * (MIB // 256)
    big = f"lat-{tag}-{rnd}-big"
    with client.open(big, "wb") as f:
        for i in range(max(4, n // 50)):
            timed(samples, "write 1 MiB", f.write_at, data, i * MIB)
    with client.open(big, "rb") as f:
        for i in range(max(4, n // 50)):
            timed(samples, "read 1 MiB", f.read_at, i * MIB, MIB)
    client.unlink(big)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--target", action="append", required=True,
                    help="NAME=URL; the first is the peer, the last is rushesd")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--calls", type=int, default=400,
                    help="calls of each small operation per round and server")
    ap.add_argument("--entries", type=int, default=5000,
                    help="entries of the folder `list` in the export (made by nfs-bench)")
    args = ap.parse_args()
    targets = [t.split("=", 1) for t in args.target]
    clients = [nfs_rs.Client.connect(url) for _, url in targets]
    samples = [dict() for _ in targets]
    for rnd in range(args.rounds):
        order = range(len(targets)) if rnd % 2 == 0 else reversed(range(len(targets)))
        for s in order:
            one_round(clients[s], targets[s][0], rnd, args.calls, samples[s])
    for c in clients:
        c.close()
    peer, ours = targets[0][0], targets[-1][0]
    print(f"\nOne request in flight, nfs-rs {importlib.metadata.version('nfs-rs')} (Python) as the client, "
          f"{args.rounds} rounds taking turns, {args.calls} calls of each small operation "
          f"per round; list = a {args.entries}-entry folder\n")
    print(f"| operation | {peer} p50 | {peer} p99 | {ours} p50 | {ours} p99 | "
          f"ratio p50 ({peer}/{ours}) | ratio p99 |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for op in ["stat", "access", "create", "remove", "list", "read 1 MiB", "write 1 MiB"]:
        a, b = samples[0][op], samples[-1][op]
        row = [percentile(a, 0.5), percentile(a, 0.99), percentile(b, 0.5), percentile(b, 0.99)]
        print(f"| {op} | {row[0]:.0f} µs | {row[1]:.0f} µs | {row[2]:.0f} µs | {row[3]:.0f} µs | "
              f"{row[0] / row[2]:.2f}x | {row[1] / row[3]:.2f}x |")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
