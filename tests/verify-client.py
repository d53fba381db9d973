#!/usr/bin/env python3
"""The verifying client: writes stamped blocks without pause through one iSCSI URL (the
floating address), keeps a record of every acknowledged write, reconnects after any
failure, and at the end reads every block back and checks that it holds the latest
acknowledged stamp (or a later one whose write was in flight when a failure hit).

usage: verify-client.py --url URL --initiator IQN [--blocks N] [--stop-file F]
                        [--seconds S] [--timeout S]

  URL         iscsi://[user%password@]host[:port]/target-iqn/lun
  --blocks    how many 512-byte blocks from LBA 0 are written round-robin (default 256)
  --stop-file stop writing once this file exists (the fault suite's signal)
  --seconds   stop writing after this long (default: only the stop file, or SIGTERM)
  --timeout   seconds for any one command or login before it counts as failed (default 5)

Each block is written with WRITE(16), FUA, one block at a time: an acknowledgement means
the block is on the shared disk. A stamp is "STARVFY1", the write's sequence number, the
LBA and a CRC32 over both, followed by a pattern derived from them; a block that does not
parse is corrupt.

Prints one JSON line at the end: {"acked": N, "lost": L, "corrupt": C, "unverified": U,
"max_gap_s": G, "reconnects": R, "errors": {...}, "first_lost": [...]}. Exit status 0
when L == 0 and C == 0 and every block could be read back, 1 otherwise.
"""

import argparse
import json
import os
import signal
import struct
import sys
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from libiscsi import XFER_READ, XFER_WRITE, IscsiError, command_once, connect, destroy  # noqa: E402

BLOCK = 512
MAGIC = b"STARVFY1"
# Retryable without counting as a lost write: UNIT ATTENTION (a new nexus, an ALUA state
# change) and NOT READY (a Standby path, a transition) answer "not done", never "done".
RETRY_SENSE = {2, 6}


def stamp(seq, lba):
    head = MAGIC + struct.pack(">QQ", seq, lba)
    head += struct.pack(">I", zlib.crc32(head))
    fill = (seq * 2654435761 + lba) & 0xFF
    return head + bytes([fill]) * (BLOCK - len(head))


def parse(block, lba):
    """(seq) of a well-formed stamp for this LBA, None for a block never written by us,
    "corrupt" otherwise."""
    if block[:8] != MAGIC:
        return None if block.count(0) == len(block) else "corrupt"
    seq, at = struct.unpack(">QQ", block[8:24])
    (crc,) = struct.unpack(">I", block[24:28])
    if at != lba or crc != zlib.crc32(block[:24]) or block != stamp(seq, lba):
        return "corrupt"
    return seq


def cdb16(opcode, lba, fua=False):
    return (
        [opcode, 0x08 if fua else 0]
        + list(lba.to_bytes(8, "big"))
        + list((1).to_bytes(4, "big"))
        + [0, 0]
    )


class Session:
    def __init__(self, url, initiator, timeout):
        self.url, self.initiator, self.timeout = url, initiator, timeout
        self.ctx = None
        self.lun = None
        self.reconnects = -1

    def ensure(self):
        while self.ctx is None:
            try:
                self.ctx, self.lun = connect(self.url, self.initiator, self.timeout)
                self.reconnects += 1
            except IscsiError as e:
                note(str(e).split(":")[0])
                time.sleep(0.1)

    def drop(self):
        if self.ctx is not None:
            destroy(self.ctx)
            self.ctx = None

    def command(self, cdb, xfer, length, data=None):
        """(result, data) or None when the session failed (it is dropped)."""
        self.ensure()
        try:
            return command_once(self.ctx, self.lun, cdb, xfer, length, data)
        except IscsiError as e:
            note(str(e)[:60])
            self.drop()
            return None


ERRORS = {}


def note(what):
    ERRORS[what] = ERRORS.get(what, 0) + 1


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--initiator", required=True)
    p.add_argument("--blocks", type=int, default=256)
    p.add_argument("--stop-file")
    p.add_argument("--seconds", type=float)
    p.add_argument("--timeout", type=int, default=5)
    a = p.parse_args()

    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    started = time.monotonic()

    def stopping():
        return (
            stop["now"]
            or (a.stop_file and os.path.exists(a.stop_file))
            or (a.seconds is not None and time.monotonic() - started >= a.seconds)
        )

    s = Session(a.url, a.initiator, a.timeout)
    acked = {}  # lba -> latest acknowledged seq
    in_flight = {}  # lba -> seqs written without an answer after the last ack
    seq = 0
    count = 0
    last_ack = None
    max_gap = 0.0
    while not stopping():
        seq += 1
        lba = seq % a.blocks
        r = s.command(cdb16(0x8A, lba, fua=True), XFER_WRITE, BLOCK, stamp(seq, lba))
        if r is None:
            in_flight.setdefault(lba, set()).add(seq)
            continue
        result, _ = r
        if not result["ok"]:
            # A CHECK CONDITION means the write was not done.
            note(
                f"status {result['status']} sense {result['sense_key']:x}/"
                f"{result['asc']:02x}/{result['ascq']:02x}"
            )
            if result["sense_key"] not in RETRY_SENSE:
                s.drop()
            continue
        now = time.monotonic()
        if last_ack is not None:
            max_gap = max(max_gap, now - last_ack)
        last_ack = now
        acked[lba] = seq
        in_flight.pop(lba, None)
        count += 1

    # Read back everything that was acknowledged, through the same address.
    lost, corrupt, unverified = [], [], []
    deadline = time.monotonic() + 120
    for lba, want in sorted(acked.items()):
        while True:
            r = s.command(cdb16(0x88, lba), XFER_READ, BLOCK)
            if r is not None and r[0]["ok"]:
                got = parse(r[1], lba)
                if got == "corrupt":
                    corrupt.append(lba)
                elif got is None or (got != want and got not in in_flight.get(lba, ())):
                    lost.append({"lba": lba, "acked": want, "found": got})
                break
            if time.monotonic() > deadline:
                unverified.append(lba)
                break
            time.sleep(0.1)
    s.drop()
    print(
        json.dumps(
            {
                "acked": count,
                "blocks": len(acked),
                "lost": len(lost),
                "corrupt": len(corrupt),
                "unverified": len(unverified),
                "max_gap_s": round(max_gap, 3),
                "reconnects": max(s.reconnects, 0),
                "errors": ERRORS,
                "first_lost": lost[:5],
            }
        ),
        flush=True,
    )
    sys.exit(0 if not lost and not corrupt and not unverified and count > 0 else 1)


if __name__ == "__main__":
    main()
