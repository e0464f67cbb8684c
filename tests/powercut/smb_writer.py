#!/usr/bin/env python3
"""An SMB 3 client for `powercut` (tests/src/bin/powercut.rs) that says when a file is
on stable storage: it uploads each file it is given, sends SMB2 FLUSH, and only once the
server has answered the FLUSH (Samba's `strict sync`, on by default, answers after
fsync(2)) prints `acked NAME`. smbclient cannot send a FLUSH, so it cannot tell that.

Reads `NAME LOCAL_PATH` lines on stdin, one file at a time, and uploads LOCAL_PATH to
NAME in the share. Needs PyPI's smbprotocol (`make powercut` installs it in a venv).
Exits at the first error, which after a power cut is the expected end.
"""

import argparse
import sys
import time

import smbclient


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--server", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--share", required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--wait", type=float, default=120.0,
                    help="seconds to keep trying to log in (smbd starts after the box is ready)")
    args = ap.parse_args()

    deadline = time.monotonic() + args.wait
    while True:
        try:
            smbclient.register_session(args.server, username=args.user,
                                       password=args.password, port=args.port)
            break
        except Exception as e:  # noqa: BLE001 - any failure to log in is retried until the deadline
            if time.monotonic() > deadline:
                print(f"cannot log in to {args.server}:{args.port}: {e}", file=sys.stderr)
                return 1
            time.sleep(1)
    print("ready", flush=True)

    for line in sys.stdin:
        name, local = line.rstrip("\n").split(" ", 1)
        with open(local, "rb") as src:
            data = src.read()
        path = rf"\\{args.server}\{args.share}\{name}"
        try:
            with smbclient.open_file(path, mode="wb", port=args.port) as f:
                f.write(data)
                # The buffered file's flush only hands its buffer to the raw file; the
                # raw file's flush is what sends SMB2 FLUSH.
                f.flush()
                f.raw.flush()
                print(f"acked {name}", flush=True)
        except Exception as e:  # noqa: BLE001 - a cut ends the writer; one line says how
            print(f"smb_writer: {name} not acknowledged: {type(e).__name__}: {e}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
