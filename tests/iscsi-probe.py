#!/usr/bin/env python3
"""Sends one SCSI command through libiscsi and prints what came back, as JSON.

libiscsi's command-line tools (Debian 12's libiscsi-bin) have no REPORT TARGET PORT
GROUPS and print no sense data for a failed READ or WRITE; the tests need both. This
calls the library itself through tests/libiscsi.py.

usage: iscsi-probe.py [--initiator IQN] COMMAND URL
  COMMAND  rtpg | tur | read | write | readcap | vpd80 | vpd83
  URL      iscsi://[user%password@]host[:port]/target-iqn/lun

Output: {"ok": bool, "status": N, "sense_key": K, "asc": A, "ascq": Q, "error": "...",
         "groups": [...] (rtpg only)}
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from libiscsi import (  # noqa: E402
    RTPG_CDB,
    RTPG_LENGTH,
    XFER_NONE,
    XFER_READ,
    XFER_WRITE,
    IscsiError,
    command_once,
    connect,
    rtpg_groups,
)

def fail(message):
    print(json.dumps({"ok": False, "error": message}))
    sys.exit(1)


def command(ctx, lun, cdb, xfer_dir, length, data_out=None):
    """Sends the command; a UNIT ATTENTION (a new session's "LUNs changed", an ALUA
    state change) is reported once per nexus, so the command is sent again."""
    for _ in range(4):
        try:
            result, data = command_once(ctx, lun, cdb, xfer_dir, length, data_out)
        except IscsiError as e:
            fail(str(e))
        if result["sense_key"] != 6:
            break
    return result, data


def designators(data):
    """SPC-4 7.8.6: after a 4-byte header, descriptors of 4 bytes plus the designator."""
    found = []
    end = min(4 + int.from_bytes(data[2:4], "big"), len(data))
    pos = 4
    while pos + 4 <= end:
        length = data[pos + 3]
        found.append(
            {
                "association": (data[pos + 1] >> 4) & 3,
                "type": data[pos + 1] & 0x0F,
                "value": data[pos + 4 : pos + 4 + length].hex(),
            }
        )
        pos += 4 + length
    return found


def main():
    args = sys.argv[1:]
    initiator = "iqn.2007-10.com.github:sahlberg:libiscsi:iscsi-test"
    if len(args) >= 2 and args[0] == "--initiator":
        initiator, args = args[1], args[2:]
    if len(args) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    what, url = args
    try:
        ctx, lun = connect(url, initiator)
    except IscsiError as e:
        fail(str(e))
    if what == "rtpg":
        result, data = command(ctx, lun, RTPG_CDB, XFER_READ, RTPG_LENGTH)
        if result["ok"]:
            result["groups"] = rtpg_groups(data)
    elif what in ("vpd80", "vpd83"):
        page = 0x80 if what == "vpd80" else 0x83
        result, data = command(ctx, lun, [0x12, 1, page, 0x01, 0x00, 0], XFER_READ, 256)
        if result["ok"] and page == 0x80:
            result["serial"] = data[4 : 4 + data[3]].decode(errors="replace").strip("\x00 ")
        elif result["ok"]:
            result["designators"] = designators(data)
    elif what == "tur":
        result, _ = command(ctx, lun, [0] * 6, XFER_NONE, 0)
    elif what == "readcap":
        result, data = command(ctx, lun, [0x25] + [0] * 9, XFER_READ, 8)
    elif what == "read":
        # READ(16) of one block at LBA 0.
        cdb = [0x88, 0] + [0] * 8 + [0, 0, 0, 1, 0, 0]
        result, _ = command(ctx, lun, cdb, XFER_READ, 512)
    elif what == "write":
        cdb = [0x8A, 0] + [0] * 8 + [0, 0, 0, 1, 0, 0]
        result, _ = command(ctx, lun, cdb, XFER_WRITE, 512, bytes(512))
    else:
        fail(f"unknown command {what}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
