"""libiscsi (libiscsi.so.7) through ctypes, with the structures of its scsi-lowlevel.h:
what tests/iscsi-probe.py and tests/verify-client.py share.

libiscsi's command-line tools (Debian 12's libiscsi-bin) have no REPORT TARGET PORT
GROUPS, print no sense data for a failed READ or WRITE, and cannot run a long write
stream; these scripts need all three.
"""

import ctypes


class IscsiError(Exception):
    """A connection, login or transport failure (not a SCSI status)."""


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
lib.scsi_free_scsi_task.argtypes = [ctypes.POINTER(ScsiTask)]
lib.iscsi_destroy_context.argtypes = [ctypes.c_void_p]
lib.iscsi_set_timeout.argtypes = [ctypes.c_void_p, ctypes.c_int]
lib.iscsi_set_noautoreconnect.argtypes = [ctypes.c_void_p, ctypes.c_int]
lib.iscsi_scsi_command_sync.argtypes = [
    ctypes.c_void_p,
    ctypes.c_int,
    ctypes.POINTER(ScsiTask),
    ctypes.c_void_p,
]


class IscsiData(ctypes.Structure):
    _fields_ = [("size", ctypes.c_size_t), ("data", ctypes.POINTER(ctypes.c_ubyte))]


def connect(url, initiator, timeout=None):
    """Connects and logs in; returns (context, lun). `timeout`: seconds for every later
    synchronous call (libiscsi's iscsi_set_timeout), so a vanished target cannot hang
    the caller."""
    ctx = lib.iscsi_create_context(initiator.encode())
    parsed = lib.iscsi_parse_full_url(ctx, url.encode())
    if not parsed:
        raise IscsiError(lib.iscsi_get_error(ctx).decode())
    u = parsed.contents
    lib.iscsi_set_targetname(ctx, u.target)
    lib.iscsi_set_session_type(ctx, SESSION_NORMAL)
    lib.iscsi_set_header_digest(ctx, HEADER_DIGEST_NONE)
    if u.user:
        lib.iscsi_set_initiator_username_pwd(ctx, u.user, u.passwd)
    # Connect and log in without the TEST UNIT READY that iscsi_full_connect_sync sends:
    # on a Standby path it fails (that is the point), and the probe must get that far.
    if timeout:
        lib.iscsi_set_timeout(ctx, timeout)
    # A lost connection is the caller's to handle (it reconnects, through the floating
    # address, with a fresh context). libiscsi's own reconnect, in its synchronous loop,
    # spins on a connection the target reset instead of failing the command.
    lib.iscsi_set_noautoreconnect(ctx, 1)
    if lib.iscsi_connect_sync(ctx, u.portal) != 0:
        error = lib.iscsi_get_error(ctx).decode()
        lib.iscsi_destroy_context(ctx)
        raise IscsiError("connect: " + error)
    if lib.iscsi_login_sync(ctx) != 0:
        error = lib.iscsi_get_error(ctx).decode()
        lib.iscsi_destroy_context(ctx)
        raise IscsiError("login: " + error)
    return ctx, u.lun



def command_once(ctx, lun, cdb, xfer_dir, length, data_out=None):
    """One SCSI command. Returns ({"ok", "status", "sense_key", "asc", "ascq"}, data in);
    raises IscsiError when the command got no answer (connection lost, timeout)."""
    cdb_buf = (ctypes.c_ubyte * len(cdb))(*cdb)
    task = lib.scsi_create_task(len(cdb), cdb_buf, xfer_dir, length)
    out = None
    if data_out is not None:
        buf = (ctypes.c_ubyte * len(data_out))(*data_out)
        out = IscsiData(len(data_out), ctypes.cast(buf, ctypes.POINTER(ctypes.c_ubyte)))
    done = lib.iscsi_scsi_command_sync(
        ctx, lun, task, ctypes.byref(out) if out is not None else None
    )
    if not done:
        lib.scsi_free_scsi_task(task)
        raise IscsiError("command: " + lib.iscsi_get_error(ctx).decode())
    t = done.contents
    result = {
        "ok": t.status == 0,
        "status": t.status,
        "sense_key": t.sense.key,
        "asc": (t.sense.ascq >> 8) & 0xFF,
        "ascq": t.sense.ascq & 0xFF,
    }
    data = bytes(t.datain.data[: t.datain.size]) if t.datain.size > 0 else b""
    lib.scsi_free_scsi_task(done)
    return result, data


def destroy(ctx):
    lib.iscsi_destroy_context(ctx)


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


RTPG_LENGTH = 1024
RTPG_CDB = [0xA3, 0x0A, 0, 0, 0, 0] + list(RTPG_LENGTH.to_bytes(4, "big")) + [0, 0]
