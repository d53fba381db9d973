#!/usr/bin/env python3
"""Sends one SCSI command through libiscsi and prints what came back, as JSON.

libiscsi's command-line tools (Debian 12's libiscsi-bin) have no REPORT TARGET PORT
GROUPS and print no sense data for a failed READ or WRITE; the tests need both. This
calls the library itself (libiscsi.so.7) with ctypes, with the structures of its
scsi-lowlevel.h.

usage: iscsi-probe.py [--initiator IQN] COMMAND URL
  COMMAND  rtpg | tur | read | write | readcap | vpd80 | vpd83
  URL      iscsi://[user%password@]host[:port]/target-iqn/lun

Output: {"ok": bool, "status": N, "sense_key": K, "asc": A, "ascq": Q, "error": "...",
         "groups": [...] (rtpg only)}
"""

import ctypes
import json
import sys

SCSI_CDB_MAX_SIZE = 16
XFER_NONE, XFER_READ, XFER_WRITE = 0, 1, 2
SESSION_NORMAL = 2
HEADER_DIGEST_NONE = 0


class ScsiSense(ctypes.Structure):
    _fields_ = [
        ("error_type", ctypes.c_ubyte),
        ("key", ctypes.c_int),
        ("ascq", ctypes.c_int),
        # Three one-bit fields; the C compiler puts bit_pointer in the next byte of the
        # same storage unit, so the structure is 16 bytes, not 20.
        ("bits", ctypes.c_ubyte),
        ("bit_pointer", ctypes.c_ubyte),
        ("field_pointer", ctypes.c_uint16),
    ]


assert ctypes.sizeof(ScsiSense) == 16


class ScsiData(ctypes.Structure):
    _fields_ = [("size", ctypes.c_int), ("data", ctypes.POINTER(ctypes.c_ubyte))]


class ScsiIovector(ctypes.Structure):
    _fields_ = [
        ("iov", ctypes.c_void_p),
        ("niov", ctypes.c_int),
        ("nalloc", ctypes.c_int),
        ("offset", ctypes.c_size_t),
        ("consumed", ctypes.c_int),
    ]


class ScsiTask(ctypes.Structure):
    _fields_ = [
        ("status", ctypes.c_int),
        ("cdb_size", ctypes.c_int),
        ("xfer_dir", ctypes.c_int),
        ("expxferlen", ctypes.c_int),
        ("cdb", ctypes.c_ubyte * SCSI_CDB_MAX_SIZE),
        ("residual_status", ctypes.c_int),
        ("residual", ctypes.c_size_t),
        ("sense", ScsiSense),
        ("datain", ScsiData),
        ("mem", ctypes.c_void_p),
        ("ptr", ctypes.c_void_p),
        ("itt", ctypes.c_uint32),
        ("cmdsn", ctypes.c_uint32),
        ("lun", ctypes.c_uint32),
        ("iovector_in", ScsiIovector),
        ("iovector_out", ScsiIovector),
    ]


class IscsiUrl(ctypes.Structure):
    _fields_ = [
        ("portal", ctypes.c_char * 256),
        ("target", ctypes.c_char * 256),
        ("user", ctypes.c_char * 256),
        ("passwd", ctypes.c_char * 256),
        ("target_user", ctypes.c_char * 256),
        ("target_passwd", ctypes.c_char * 256),
        ("lun", ctypes.c_int),
    ]


lib = ctypes.CDLL("libiscsi.so.7")
lib.iscsi_create_context.restype = ctypes.c_void_p
lib.iscsi_create_context.argtypes = [ctypes.c_char_p]
lib.iscsi_parse_full_url.restype = ctypes.POINTER(IscsiUrl)
lib.iscsi_parse_full_url.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
lib.iscsi_get_error.restype = ctypes.c_char_p
lib.iscsi_get_error.argtypes = [ctypes.c_void_p]
for name in ("iscsi_set_targetname",):
    getattr(lib, name).argtypes = [ctypes.c_void_p, ctypes.c_char_p]
lib.iscsi_set_session_type.argtypes = [ctypes.c_void_p, ctypes.c_int]
lib.iscsi_set_header_digest.argtypes = [ctypes.c_void_p, ctypes.c_int]
lib.iscsi_set_initiator_username_pwd.argtypes = [
    ctypes.c_void_p,
    ctypes.c_char_p,
    ctypes.c_char_p,
]
lib.iscsi_connect_sync.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
lib.iscsi_login_sync.argtypes = [ctypes.c_void_p]
lib.scsi_create_task.restype = ctypes.POINTER(ScsiTask)
lib.scsi_create_task.argtypes = [
    ctypes.c_int,
    ctypes.POINTER(ctypes.c_ubyte),
    ctypes.c_int,
    ctypes.c_int,
]
lib.iscsi_scsi_command_sync.restype = ctypes.POINTER(ScsiTask)
lib.iscsi_scsi_command_sync.argtypes = [
    ctypes.c_void_p,
    ctypes.c_int,
    ctypes.POINTER(ScsiTask),
    ctypes.c_void_p,
]


class IscsiData(ctypes.Structure):
    _fields_ = [("size", ctypes.c_size_t), ("data", ctypes.POINTER(ctypes.c_ubyte))]


def connect(url, initiator):
    ctx = lib.iscsi_create_context(initiator.encode())
    parsed = lib.iscsi_parse_full_url(ctx, url.encode())
    if not parsed:
        fail(lib.iscsi_get_error(ctx).decode())
    u = parsed.contents
    lib.iscsi_set_targetname(ctx, u.target)
    lib.iscsi_set_session_type(ctx, SESSION_NORMAL)
    lib.iscsi_set_header_digest(ctx, HEADER_DIGEST_NONE)
    if u.user:
        lib.iscsi_set_initiator_username_pwd(ctx, u.user, u.passwd)
    # Connect and log in without the TEST UNIT READY that iscsi_full_connect_sync sends:
    # on a Standby path it fails (that is the point), and the probe must get that far.
    if lib.iscsi_connect_sync(ctx, u.portal) != 0:
        fail("connect: " + lib.iscsi_get_error(ctx).decode())
    if lib.iscsi_login_sync(ctx) != 0:
        fail("login: " + lib.iscsi_get_error(ctx).decode())
    return ctx, u.lun


def fail(message):
    print(json.dumps({"ok": False, "error": message}))
    sys.exit(1)


def command(ctx, lun, cdb, xfer_dir, length, data_out=None):
    """Sends the command; a UNIT ATTENTION (a new session's "LUNs changed", an ALUA
    state change) is reported once per nexus, so the command is sent again."""
    for _ in range(4):
        result, data = command_once(ctx, lun, cdb, xfer_dir, length, data_out)
        if result["sense_key"] != 6:
            break
    return result, data


def command_once(ctx, lun, cdb, xfer_dir, length, data_out=None):
    cdb_buf = (ctypes.c_ubyte * len(cdb))(*cdb)
    task = lib.scsi_create_task(len(cdb), cdb_buf, xfer_dir, length)
    out = None
    if data_out is not None:
        buf = (ctypes.c_ubyte * len(data_out))(*data_out)
        out = IscsiData(len(data_out), ctypes.cast(buf, ctypes.POINTER(ctypes.c_ubyte)))
    task = lib.iscsi_scsi_command_sync(
        ctx, lun, task, ctypes.byref(out) if out is not None else None
    )
    if not task:
        fail("command: " + lib.iscsi_get_error(ctx).decode())
    t = task.contents
    result = {
        "ok": t.status == 0,
        "status": t.status,
        "sense_key": t.sense.key,
        "asc": (t.sense.ascq >> 8) & 0xFF,
        "ascq": t.sense.ascq & 0xFF,
    }
    data = bytes(t.datain.data[: t.datain.size]) if t.datain.size > 0 else b""
    return result, data


def rtpg_groups(data):
    """SPC-4 6.36: a 4-byte length, then one descriptor per target port group."""
    groups = []
    length = int.from_bytes(data[0:4], "big")
    pos, end = 4, min(4 + length, len(data))
    while pos + 8 <= end:
        d = data[pos : pos + 8]
        count = d[7]
        ports = [
            int.from_bytes(data[pos + 8 + 4 * i + 2 : pos + 8 + 4 * i + 4], "big")
            for i in range(count)
        ]
        groups.append(
            {
                "pref": bool(d[0] & 0x80),
                "state": d[0] & 0x0F,
                "id": int.from_bytes(d[2:4], "big"),
                "status": d[5],
                "ports": ports,
            }
        )
        pos += 8 + 4 * count
    return groups


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
    ctx, lun = connect(url, initiator)
    if what == "rtpg":
        length = 1024
        cdb = [0xA3, 0x0A, 0, 0, 0, 0] + list(length.to_bytes(4, "big")) + [0, 0]
        result, data = command(ctx, lun, cdb, XFER_READ, length)
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
