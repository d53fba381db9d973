//! ACPI power-button events straight from the kernel.
//!
//! EC2 "stop", VirtualBox "ACPI shutdown" and QEMU's `system_powerdown` all
//! press the virtual ACPI power button. The image ships no acpid, so PID 1
//! subscribes itself to the generic-netlink family `acpi_event`
//! (drivers/acpi/event.c), which multicasts one message per ACPI event on the
//! group `acpi_mc_group`.
//!
//! The wire format code (building the CTRL_CMD_GETFAMILY request, parsing its
//! reply and parsing event datagrams) is pure and public so it can be tested
//! with hand-built bytes; [`PowerButtonListener`] is the thin I/O layer on top.
//!
//! Netlink headers and attributes are in host byte order.

use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{
    bind, recvfrom, sendto, socket, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol,
    SockType,
};

/// Family name registered by drivers/acpi/event.c.
pub const ACPI_GENL_FAMILY_NAME: &str = "acpi_event";
/// The family's only multicast group.
pub const ACPI_GENL_MCAST_GROUP_NAME: &str = "acpi_mc_group";
/// `genlmsghdr.cmd` of an event notification.
pub const ACPI_GENL_CMD_EVENT: u8 = 1;
/// Attribute carrying a `struct acpi_genl_event`.
pub const ACPI_GENL_ATTR_EVENT: u16 = 1;

/// Size of `struct acpi_genl_event` as the kernel lays it out:
///
/// ```c
/// struct acpi_genl_event {
///     acpi_device_class device_class; /* char[20], offset  0 */
///     char bus_id[15];                /*           offset 20 */
///     u32 type;                       /*           offset 36 */
///     u32 data;                       /*           offset 40 */
/// };                                  /* sizeof == 44 */
/// ```
///
/// The struct is not packed, so `type` is aligned up from 35 to 36, and u32
/// is 4-aligned on every architecture the appliance runs on. A running
/// kernel's BTF agrees (`bpftool btf dump file /sys/kernel/btf/vmlinux`:
/// `STRUCT 'acpi_genl_event' size=44`, `type` at bit 288, `data` at bit 320),
/// which is what to re-check should the kernel ever change the struct.
pub const ACPI_GENL_EVENT_LEN: usize = 44;
const EVENT_DEVICE_CLASS: std::ops::Range<usize> = 0..20;
const EVENT_BUS_ID: std::ops::Range<usize> = 20..35;
const EVENT_TYPE_OFFSET: usize = 36;
const EVENT_DATA_OFFSET: usize = 40;

// include/uapi/linux/netlink.h
const NLMSG_HDRLEN: usize = 16;
const NLMSG_NOOP: u16 = 0x1;
const NLMSG_ERROR: u16 = 0x2;
const NLMSG_DONE: u16 = 0x3;
const NLM_F_REQUEST: u16 = 0x1;
const NLA_HDRLEN: usize = 4;
const NLA_TYPE_MASK: u16 = 0x3fff;

// include/uapi/linux/genetlink.h
const GENL_HDRLEN: usize = 4;
const GENL_ID_CTRL: u16 = 0x10;
const CTRL_CMD_NEWFAMILY: u8 = 1;
const CTRL_CMD_GETFAMILY: u8 = 3;
const CTRL_ATTR_FAMILY_ID: u16 = 1;
const CTRL_ATTR_FAMILY_NAME: u16 = 2;
const CTRL_ATTR_MCAST_GROUPS: u16 = 7;
const CTRL_ATTR_MCAST_GRP_NAME: u16 = 1;
const CTRL_ATTR_MCAST_GRP_ID: u16 = 2;

/// The socket is private to this listener and sends exactly one request.
const GETFAMILY_SEQ: u32 = 1;
/// The controller answers from within the sendmsg path, so a missing reply
/// means something is badly wrong; PID 1 must not hang on it during boot.
const GETFAMILY_TIMEOUT: Duration = Duration::from_secs(2);
/// Generic netlink multicasts are at most one page (NLMSG_GOODSIZE); an ACPI
/// event message is 68 bytes.
const RECV_BUF_LEN: usize = 16 * 1024;

/// One event as reported by `acpi_bus_generate_netlink_event()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcpiEvent {
    pub device_class: String,
    pub bus_id: String,
    pub event_type: u32,
    pub data: u32,
}

impl AcpiEvent {
    /// True for presses of the power button, whichever way the firmware
    /// exposes it (`PNP0C0C:00` control-method button or `LNXPWRBN:00`
    /// fixed-feature button); both report device class `button/power`.
    pub fn is_power_button(&self) -> bool {
        self.device_class.starts_with("button/power")
    }
}

/// Why a netlink message could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// A header or a length field points past the end of the bytes received.
    Truncated(&'static str),
    /// The bytes are all there but do not follow the format.
    Invalid(&'static str),
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Truncated(what) => write!(f, "truncated {what}"),
            ParseError::Invalid(what) => write!(f, "invalid {what}"),
        }
    }
}

impl std::error::Error for ParseError {}

/// A multicast group of a generic netlink family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct McastGroup {
    pub name: String,
    pub id: u32,
}

/// What the generic netlink controller reports about a family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenlFamily {
    pub name: String,
    pub id: u16,
    pub mcast_groups: Vec<McastGroup>,
}

impl GenlFamily {
    pub fn mcast_group_id(&self, name: &str) -> Option<u32> {
        self.mcast_groups
            .iter()
            .find(|group| group.name == name)
            .map(|group| group.id)
    }
}

/// Outcome of looking at one datagram while waiting for the GETFAMILY reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GetFamilyReply {
    Family(GenlFamily),
    /// The controller refused the request; positive errno (ENOENT: no such family).
    KernelError(i32),
    /// Nothing in the datagram answers our request.
    Unrelated,
}

/// Builds a CTRL_CMD_GETFAMILY request for `family_name`, addressed to the
/// generic netlink controller.
pub fn getfamily_request(seq: u32, family_name: &str) -> Vec<u8> {
    let mut name = family_name.as_bytes().to_vec();
    name.push(0);

    let mut msg =
        Vec::with_capacity(NLMSG_HDRLEN + GENL_HDRLEN + nla_align(NLA_HDRLEN + name.len()));
    msg.extend_from_slice(&[0; 4]); // nlmsg_len, filled in below
    msg.extend_from_slice(&GENL_ID_CTRL.to_ne_bytes());
    msg.extend_from_slice(&NLM_F_REQUEST.to_ne_bytes());
    msg.extend_from_slice(&seq.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_pid: the kernel fills in ours
    msg.extend_from_slice(&[CTRL_CMD_GETFAMILY, 1, 0, 0]); // cmd, version, reserved
    push_attr(&mut msg, CTRL_ATTR_FAMILY_NAME, &name);

    let len = u32::try_from(msg.len()).unwrap_or(u32::MAX);
    msg[..4].copy_from_slice(&len.to_ne_bytes());
    msg
}

/// Looks for the answer to the GETFAMILY request with sequence number `seq`
/// in one received datagram.
pub fn parse_getfamily_reply(datagram: &[u8], seq: u32) -> Result<GetFamilyReply, ParseError> {
    for msg in NlMessages::new(datagram) {
        let msg = msg?;
        if msg.seq != seq {
            continue;
        }
        match msg.ty {
            NLMSG_ERROR => {
                let errno = read_i32(msg.payload, 0).ok_or(ParseError::Truncated("nlmsgerr"))?;
                // 0 is an acknowledgement, which carries no family.
                if errno != 0 {
                    return Ok(GetFamilyReply::KernelError(errno.saturating_abs()));
                }
            }
            GENL_ID_CTRL => return parse_newfamily(msg.payload).map(GetFamilyReply::Family),
            _ => {}
        }
    }
    Ok(GetFamilyReply::Unrelated)
}

fn parse_newfamily(payload: &[u8]) -> Result<GenlFamily, ParseError> {
    let (cmd, attrs) = split_genl_header(payload)?;
    if cmd != CTRL_CMD_NEWFAMILY {
        return Err(ParseError::Invalid("controller reply command"));
    }

    let mut name = String::new();
    let mut id = None;
    let mut mcast_groups = Vec::new();
    for attr in NlAttrs::new(attrs) {
        let attr = attr?;
        match attr.ty {
            CTRL_ATTR_FAMILY_NAME => name = c_string(attr.payload),
            CTRL_ATTR_FAMILY_ID => {
                id = Some(
                    read_u16(attr.payload, 0)
                        .ok_or(ParseError::Truncated("CTRL_ATTR_FAMILY_ID"))?,
                );
            }
            CTRL_ATTR_MCAST_GROUPS => {
                // Each entry is itself nested; its type is just an index.
                for entry in NlAttrs::new(attr.payload) {
                    mcast_groups.push(parse_mcast_group(entry?.payload)?);
                }
            }
            _ => {}
        }
    }

    let id = id.ok_or(ParseError::Invalid(
        "controller reply without CTRL_ATTR_FAMILY_ID",
    ))?;
    Ok(GenlFamily {
        name,
        id,
        mcast_groups,
    })
}

fn parse_mcast_group(nested: &[u8]) -> Result<McastGroup, ParseError> {
    let mut name = None;
    let mut id = None;
    for attr in NlAttrs::new(nested) {
        let attr = attr?;
        match attr.ty {
            CTRL_ATTR_MCAST_GRP_NAME => name = Some(c_string(attr.payload)),
            CTRL_ATTR_MCAST_GRP_ID => {
                id = Some(
                    read_u32(attr.payload, 0)
                        .ok_or(ParseError::Truncated("CTRL_ATTR_MCAST_GRP_ID"))?,
                );
            }
            _ => {}
        }
    }
    match (name, id) {
        (Some(name), Some(id)) => Ok(McastGroup { name, id }),
        _ => Err(ParseError::Invalid(
            "multicast group entry without name or id",
        )),
    }
}

/// Decodes the payload of an ACPI_GENL_ATTR_EVENT attribute.
///
/// The strings are NUL-terminated within their fixed fields, except that a
/// name filling its whole field has no terminator; both cases are accepted.
/// Longer payloads are accepted so that a kernel appending fields keeps working.
pub fn parse_acpi_genl_event(raw: &[u8]) -> Result<AcpiEvent, ParseError> {
    if raw.len() < ACPI_GENL_EVENT_LEN {
        return Err(ParseError::Truncated("struct acpi_genl_event"));
    }
    let truncated = || ParseError::Truncated("struct acpi_genl_event");
    Ok(AcpiEvent {
        device_class: c_string(&raw[EVENT_DEVICE_CLASS]),
        bus_id: c_string(&raw[EVENT_BUS_ID]),
        event_type: read_u32(raw, EVENT_TYPE_OFFSET).ok_or_else(truncated)?,
        data: read_u32(raw, EVENT_DATA_OFFSET).ok_or_else(truncated)?,
    })
}

/// Extracts the ACPI events from one datagram received on the multicast
/// group. A datagram may hold several netlink messages. Anything malformed
/// is logged and skipped: a bad message must not cost PID 1 the good ones.
pub fn parse_event_datagram(datagram: &[u8], family_id: u16) -> Vec<AcpiEvent> {
    let mut events = Vec::new();
    for msg in NlMessages::new(datagram) {
        let msg = match msg {
            Ok(msg) => msg,
            Err(err) => {
                // Without a valid length the next message cannot be found.
                tracing::warn!("acpi_event: dropping rest of datagram: {err}");
                break;
            }
        };
        match msg.ty {
            NLMSG_NOOP | NLMSG_DONE => {}
            NLMSG_ERROR => {
                let errno = read_i32(msg.payload, 0).unwrap_or(0);
                tracing::warn!(
                    "acpi_event: netlink error message on the event socket (errno {errno})"
                );
            }
            ty if ty == family_id => {
                if let Err(err) = parse_event_message(msg.payload, &mut events) {
                    tracing::warn!("acpi_event: skipping malformed event message: {err}");
                }
            }
            ty => tracing::warn!("acpi_event: skipping message of unexpected type {ty}"),
        }
    }
    events
}

fn parse_event_message(payload: &[u8], events: &mut Vec<AcpiEvent>) -> Result<(), ParseError> {
    let (cmd, attrs) = split_genl_header(payload)?;
    if cmd != ACPI_GENL_CMD_EVENT {
        // Not an event notification; newer kernels may define more commands.
        tracing::debug!("acpi_event: ignoring command {cmd}");
        return Ok(());
    }
    let before = events.len();
    for attr in NlAttrs::new(attrs) {
        let attr = attr?;
        if attr.ty == ACPI_GENL_ATTR_EVENT {
            events.push(parse_acpi_genl_event(attr.payload)?);
        }
    }
    if events.len() == before {
        return Err(ParseError::Invalid(
            "event message without ACPI_GENL_ATTR_EVENT",
        ));
    }
    Ok(())
}

/// Subscription to the kernel's ACPI event multicast group.
#[derive(Debug)]
pub struct PowerButtonListener {
    fd: OwnedFd,
    family_id: u16,
    group_id: u32,
}

impl PowerButtonListener {
    /// Opens a NETLINK_GENERIC socket (close-on-exec, non-blocking), resolves
    /// the `acpi_event` family and its `acpi_mc_group` with CTRL_CMD_GETFAMILY,
    /// and joins that group. Every error names the step that failed.
    ///
    /// The family is not network-namespace aware: it is only found from the
    /// initial network namespace, where PID 1 lives.
    pub fn open() -> io::Result<PowerButtonListener> {
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Datagram,
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
            SockProtocol::NetlinkGeneric,
        )
        .map_err(|err| step_error("creating NETLINK_GENERIC socket", err))?;
        bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0))
            .map_err(|err| step_error("binding NETLINK_GENERIC socket", err))?;

        let family = resolve_family(&fd)?;
        let group_id = family
            .mcast_group_id(ACPI_GENL_MCAST_GROUP_NAME)
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!(
                        "{ACPI_GENL_FAMILY_NAME} family (id {}) has no multicast group \
                     {ACPI_GENL_MCAST_GROUP_NAME}",
                        family.id
                    ),
                )
            })?;
        join_group(&fd, group_id)?;

        Ok(PowerButtonListener {
            fd,
            family_id: family.id,
            group_id,
        })
    }

    /// For registering with epoll; readable whenever events are pending.
    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    pub fn family_id(&self) -> u16 {
        self.family_id
    }

    pub fn group_id(&self) -> u32 {
        self.group_id
    }

    /// Drains every pending datagram without blocking and returns the ACPI
    /// events in them, power button or not.
    pub fn read_events(&self) -> io::Result<Vec<AcpiEvent>> {
        let mut buf = vec![0u8; RECV_BUF_LEN];
        let mut events = Vec::new();
        loop {
            match recvfrom::<NetlinkAddr>(self.fd.as_raw_fd(), &mut buf) {
                Ok((len, from)) => {
                    if !sent_by_kernel(from.as_ref()) {
                        // Shutting the appliance down on a forged message would be
                        // a denial of service; only the kernel speaks for ACPI.
                        tracing::warn!("acpi_event: ignoring datagram not sent by the kernel");
                        continue;
                    }
                    events.extend(parse_event_datagram(&buf[..len], self.family_id));
                }
                Err(Errno::EAGAIN) => return Ok(events),
                Err(Errno::EINTR) => {}
                Err(Errno::ENOBUFS) => {
                    // The receive queue overflowed and the kernel dropped messages;
                    // the socket stays usable and the queued ones still follow.
                    tracing::error!("acpi_event: receive queue overflowed, ACPI events were lost");
                }
                Err(err) => {
                    if events.is_empty() {
                        return Err(step_error("receiving events", err));
                    }
                    // Hand over what was read; a lasting error shows up on the next call.
                    tracing::warn!("acpi_event: receiving events: {err}");
                    return Ok(events);
                }
            }
        }
    }
}

impl AsFd for PowerButtonListener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

fn resolve_family(fd: &OwnedFd) -> io::Result<GenlFamily> {
    let request = getfamily_request(GETFAMILY_SEQ, ACPI_GENL_FAMILY_NAME);
    sendto(
        fd.as_raw_fd(),
        &request,
        &NetlinkAddr::new(0, 0),
        MsgFlags::empty(),
    )
    .map_err(|err| step_error("sending CTRL_CMD_GETFAMILY", err))?;

    // The socket is already non-blocking, so wait for the reply with poll and
    // a deadline rather than a blocking recv that could stall boot forever.
    let deadline = Instant::now() + GETFAMILY_TIMEOUT;
    let mut buf = vec![0u8; RECV_BUF_LEN];
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "{ACPI_GENL_FAMILY_NAME} listener: no reply to CTRL_CMD_GETFAMILY within {:?}",
                    GETFAMILY_TIMEOUT
                ),
            ));
        }
        let timeout_ms = u16::try_from(remaining.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(timeout_ms)) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(err) => return Err(step_error("waiting for the CTRL_CMD_GETFAMILY reply", err)),
        }

        let (len, from) = match recvfrom::<NetlinkAddr>(fd.as_raw_fd(), &mut buf) {
            Ok(received) => received,
            Err(Errno::EAGAIN | Errno::EINTR | Errno::ENOBUFS) => continue,
            Err(err) => return Err(step_error("receiving the CTRL_CMD_GETFAMILY reply", err)),
        };
        if !sent_by_kernel(from.as_ref()) {
            continue;
        }

        match parse_getfamily_reply(&buf[..len], GETFAMILY_SEQ) {
            Ok(GetFamilyReply::Family(family)) => {
                if family.name != ACPI_GENL_FAMILY_NAME {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "{ACPI_GENL_FAMILY_NAME} listener: CTRL_CMD_GETFAMILY answered with \
                             family {:?}",
                            family.name
                        ),
                    ));
                }
                return Ok(family);
            }
            Ok(GetFamilyReply::KernelError(errno)) if errno == libc::ENOENT => {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!(
                        "{ACPI_GENL_FAMILY_NAME} family not found: kernel without ACPI, \
                         booted with acpi=off, or not in the initial network namespace"
                    ),
                ));
            }
            Ok(GetFamilyReply::KernelError(errno)) => {
                return Err(step_error(
                    "CTRL_CMD_GETFAMILY",
                    io::Error::from_raw_os_error(errno),
                ));
            }
            Ok(GetFamilyReply::Unrelated) => {}
            Err(err) => {
                return Err(step_error(
                    "parsing the CTRL_CMD_GETFAMILY reply",
                    io::Error::new(io::ErrorKind::InvalidData, err),
                ));
            }
        }
    }
}

fn join_group(fd: &OwnedFd, group_id: u32) -> io::Result<()> {
    // nix offers no NETLINK_ADD_MEMBERSHIP option, and bind()'s 32-bit group
    // mask cannot name the dynamically allocated genl group ids above 32.
    // SAFETY: `fd` is an open socket for the duration of the call; optval
    // points to a live u32 and optlen is exactly its size; the kernel only
    // reads from it.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_NETLINK,
            libc::NETLINK_ADD_MEMBERSHIP,
            std::ptr::from_ref(&group_id).cast(),
            std::mem::size_of::<u32>() as libc::socklen_t,
        )
    };
    Errno::result(rc).map(drop).map_err(|err| {
        step_error(
            &format!("joining multicast group {ACPI_GENL_MCAST_GROUP_NAME} (id {group_id})"),
            err,
        )
    })
}

fn sent_by_kernel(from: Option<&NetlinkAddr>) -> bool {
    from.is_some_and(|addr| addr.pid() == 0)
}

fn step_error(step: &str, err: impl Into<io::Error>) -> io::Error {
    let err = err.into();
    io::Error::new(
        err.kind(),
        format!("{ACPI_GENL_FAMILY_NAME} listener: {step}: {err}"),
    )
}

struct NlMessage<'a> {
    ty: u16,
    seq: u32,
    payload: &'a [u8],
}

/// Iterates over the netlink messages packed into one datagram. After an
/// error it stops, since the following message boundary is unknown.
struct NlMessages<'a> {
    rest: &'a [u8],
}

impl<'a> NlMessages<'a> {
    fn new(datagram: &'a [u8]) -> Self {
        NlMessages { rest: datagram }
    }
}

impl<'a> Iterator for NlMessages<'a> {
    type Item = Result<NlMessage<'a>, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let rest = std::mem::take(&mut self.rest);
        if rest.len() < NLMSG_HDRLEN {
            return Some(Err(ParseError::Truncated("netlink message header")));
        }
        let len = read_u32(rest, 0).map_or(0, |len| len as usize);
        if len < NLMSG_HDRLEN {
            return Some(Err(ParseError::Invalid("nlmsg_len below header size")));
        }
        if len > rest.len() {
            return Some(Err(ParseError::Truncated("netlink message")));
        }
        let msg = NlMessage {
            ty: read_u16(rest, 4).unwrap_or(0),
            seq: read_u32(rest, 8).unwrap_or(0),
            payload: &rest[NLMSG_HDRLEN..len],
        };
        // The last message of a datagram may lack its trailing padding.
        self.rest = &rest[nla_align(len).min(rest.len())..];
        Some(Ok(msg))
    }
}

struct NlAttr<'a> {
    ty: u16,
    payload: &'a [u8],
}

/// Iterates over a run of netlink attributes, each padded to 4 bytes.
struct NlAttrs<'a> {
    rest: &'a [u8],
}

impl<'a> NlAttrs<'a> {
    fn new(attrs: &'a [u8]) -> Self {
        NlAttrs { rest: attrs }
    }
}

impl<'a> Iterator for NlAttrs<'a> {
    type Item = Result<NlAttr<'a>, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let rest = std::mem::take(&mut self.rest);
        if rest.len() < NLA_HDRLEN {
            return Some(Err(ParseError::Truncated("netlink attribute header")));
        }
        let len = read_u16(rest, 0).map_or(0, usize::from);
        if len < NLA_HDRLEN {
            return Some(Err(ParseError::Invalid("nla_len below header size")));
        }
        if len > rest.len() {
            return Some(Err(ParseError::Truncated("netlink attribute")));
        }
        // Masking drops NLA_F_NESTED, which some kernels set and others do not.
        let attr = NlAttr {
            ty: read_u16(rest, 2).unwrap_or(0) & NLA_TYPE_MASK,
            payload: &rest[NLA_HDRLEN..len],
        };
        self.rest = &rest[nla_align(len).min(rest.len())..];
        Some(Ok(attr))
    }
}

/// Splits a generic netlink payload into its command and its attributes.
fn split_genl_header(payload: &[u8]) -> Result<(u8, &[u8]), ParseError> {
    if payload.len() < GENL_HDRLEN {
        return Err(ParseError::Truncated("generic netlink header"));
    }
    Ok((payload[0], &payload[GENL_HDRLEN..]))
}

fn push_attr(msg: &mut Vec<u8>, ty: u16, payload: &[u8]) {
    let len = u16::try_from(NLA_HDRLEN + payload.len()).unwrap_or(u16::MAX);
    msg.extend_from_slice(&len.to_ne_bytes());
    msg.extend_from_slice(&ty.to_ne_bytes());
    msg.extend_from_slice(payload);
    msg.resize(nla_align(msg.len()), 0);
}

/// NLMSG_ALIGN and NLA_ALIGN are the same 4-byte rounding.
fn nla_align(len: usize) -> usize {
    len.saturating_add(3) & !3
}

fn c_string(field: &[u8]) -> String {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..end]).into_owned()
}

fn read_u16(buf: &[u8], offset: usize) -> Option<u16> {
    let bytes = buf.get(offset..offset.checked_add(2)?)?;
    Some(u16::from_ne_bytes(bytes.try_into().ok()?))
}

fn read_u32(buf: &[u8], offset: usize) -> Option<u32> {
    let bytes = buf.get(offset..offset.checked_add(4)?)?;
    Some(u32::from_ne_bytes(bytes.try_into().ok()?))
}

fn read_i32(buf: &[u8], offset: usize) -> Option<i32> {
    read_u32(buf, offset).map(|value| value as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAMILY_ID: u16 = 0x17;

    fn attr(ty: u16, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        push_attr(&mut out, ty, payload);
        out
    }

    fn nlmsg(ty: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
        let len = (NLMSG_HDRLEN + payload.len()) as u32;
        let mut out = Vec::new();
        out.extend_from_slice(&len.to_ne_bytes());
        out.extend_from_slice(&ty.to_ne_bytes());
        out.extend_from_slice(&0u16.to_ne_bytes());
        out.extend_from_slice(&seq.to_ne_bytes());
        out.extend_from_slice(&0u32.to_ne_bytes());
        out.extend_from_slice(payload);
        out.resize(nla_align(out.len()), 0);
        out
    }

    fn genl(cmd: u8, attrs: &[u8]) -> Vec<u8> {
        let mut out = vec![cmd, 1, 0, 0];
        out.extend_from_slice(attrs);
        out
    }

    /// A `struct acpi_genl_event` laid out as the kernel memsets and fills it.
    fn raw_event(device_class: &str, bus_id: &str, ty: u32, data: u32) -> Vec<u8> {
        let mut raw = vec![0u8; ACPI_GENL_EVENT_LEN];
        raw[..device_class.len()].copy_from_slice(device_class.as_bytes());
        raw[20..20 + bus_id.len()].copy_from_slice(bus_id.as_bytes());
        raw[36..40].copy_from_slice(&ty.to_ne_bytes());
        raw[40..44].copy_from_slice(&data.to_ne_bytes());
        raw
    }

    fn event_msg(device_class: &str, bus_id: &str, ty: u32, data: u32) -> Vec<u8> {
        let raw = raw_event(device_class, bus_id, ty, data);
        nlmsg(
            FAMILY_ID,
            0,
            &genl(ACPI_GENL_CMD_EVENT, &attr(ACPI_GENL_ATTR_EVENT, &raw)),
        )
    }

    #[test]
    fn power_button_event() {
        let datagram = event_msg("button/power", "LNXPWRBN:00", 0x80, 1);
        // nlmsghdr + genlmsghdr + nlattr + struct, as the kernel sends it.
        assert_eq!(datagram.len(), 16 + 4 + 4 + 44);
        let events = parse_event_datagram(&datagram, FAMILY_ID);
        assert_eq!(
            events,
            vec![AcpiEvent {
                device_class: "button/power".into(),
                bus_id: "LNXPWRBN:00".into(),
                event_type: 0x80,
                data: 1,
            }]
        );
        assert!(events[0].is_power_button());
    }

    #[test]
    fn non_button_event() {
        let events =
            parse_event_datagram(&event_msg("ac_adapter", "ACPI0003:00", 0x80, 0), FAMILY_ID);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].device_class, "ac_adapter");
        assert_eq!(events[0].bus_id, "ACPI0003:00");
        assert!(!events[0].is_power_button());

        let sleep =
            parse_event_datagram(&event_msg("button/sleep", "PNP0C0E:00", 0x80, 1), FAMILY_ID);
        assert!(!sleep[0].is_power_button());
    }

    #[test]
    fn names_filling_their_whole_field() {
        let events = parse_event_datagram(
            &event_msg("button/power/abcdefg", "PNP0C0C:00abcde", 0x80, 7),
            FAMILY_ID,
        );
        assert_eq!(events[0].device_class, "button/power/abcdefg");
        assert_eq!(events[0].bus_id, "PNP0C0C:00abcde");
        assert_eq!((events[0].event_type, events[0].data), (0x80, 7));
        assert!(events[0].is_power_button());
    }

    #[test]
    fn multi_message_datagram() {
        let mut datagram = event_msg("button/power", "PNP0C0C:00", 0x80, 1);
        // A message of another family and one with an unknown command are skipped.
        datagram.extend(nlmsg(FAMILY_ID + 1, 0, &genl(1, &[])));
        datagram.extend(nlmsg(
            FAMILY_ID,
            0,
            &genl(9, &attr(ACPI_GENL_ATTR_EVENT, &[0; 44])),
        ));
        datagram.extend(event_msg("battery", "PNP0C0A:00", 0x81, 2));

        let events = parse_event_datagram(&datagram, FAMILY_ID);
        let summary: Vec<_> = events
            .iter()
            .map(|e| (e.device_class.as_str(), e.event_type, e.data))
            .collect();
        assert_eq!(summary, [("button/power", 0x80, 1), ("battery", 0x81, 2)]);
    }

    #[test]
    fn malformed_message_is_skipped_but_later_ones_are_kept() {
        let short = nlmsg(
            FAMILY_ID,
            0,
            &genl(ACPI_GENL_CMD_EVENT, &attr(ACPI_GENL_ATTR_EVENT, &[0; 40])),
        );
        let no_attr = nlmsg(FAMILY_ID, 0, &genl(ACPI_GENL_CMD_EVENT, &[]));
        let mut datagram = short;
        datagram.extend(no_attr);
        datagram.extend(event_msg("button/power", "LNXPWRBN:00", 0x80, 3));

        let events = parse_event_datagram(&datagram, FAMILY_ID);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].data, 3);
    }

    #[test]
    fn truncated_event_yields_nothing() {
        let datagram = event_msg("button/power", "LNXPWRBN:00", 0x80, 1);
        for len in 0..datagram.len() {
            assert!(
                parse_event_datagram(&datagram[..len], FAMILY_ID).is_empty(),
                "prefix of {len} bytes"
            );
        }
        assert_eq!(
            parse_acpi_genl_event(&[0; ACPI_GENL_EVENT_LEN - 1]),
            Err(ParseError::Truncated("struct acpi_genl_event"))
        );
    }

    #[test]
    fn lengths_that_would_loop_or_overrun_are_rejected() {
        // nlmsg_len 0 must not spin on the same message.
        let mut zero_len = event_msg("button/power", "LNXPWRBN:00", 0x80, 1);
        zero_len[..4].copy_from_slice(&0u32.to_ne_bytes());
        assert!(parse_event_datagram(&zero_len, FAMILY_ID).is_empty());

        let mut huge_len = event_msg("button/power", "LNXPWRBN:00", 0x80, 1);
        huge_len[..4].copy_from_slice(&u32::MAX.to_ne_bytes());
        assert!(parse_event_datagram(&huge_len, FAMILY_ID).is_empty());

        // nla_len 0 and nla_len past the message end.
        for bad_nla_len in [0u16, 2, 200] {
            let mut msg = event_msg("button/power", "LNXPWRBN:00", 0x80, 1);
            msg[20..22].copy_from_slice(&bad_nla_len.to_ne_bytes());
            assert!(
                parse_event_datagram(&msg, FAMILY_ID).is_empty(),
                "nla_len {bad_nla_len}"
            );
        }
    }

    #[test]
    fn garbage_never_panics() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..2000 {
            let len = (next() % 200) as usize;
            let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            // Plausible headers reach deeper into the parsers than pure noise.
            if len >= 8 && next() % 2 == 0 {
                let claimed = (next() % (len as u64 + 8)) as u32;
                bytes[..4].copy_from_slice(&claimed.to_ne_bytes());
                bytes[4..6].copy_from_slice(&FAMILY_ID.to_ne_bytes());
            }
            let _ = parse_event_datagram(&bytes, FAMILY_ID);
            let _ = parse_getfamily_reply(&bytes, 0);
            let _ = parse_acpi_genl_event(&bytes);
        }
    }

    #[test]
    fn getfamily_request_bytes() {
        let request = getfamily_request(42, "acpi_event");
        let mut expected = Vec::new();
        expected.extend_from_slice(&36u32.to_ne_bytes());
        expected.extend_from_slice(&0x10u16.to_ne_bytes()); // GENL_ID_CTRL
        expected.extend_from_slice(&1u16.to_ne_bytes()); // NLM_F_REQUEST
        expected.extend_from_slice(&42u32.to_ne_bytes());
        expected.extend_from_slice(&0u32.to_ne_bytes());
        expected.extend_from_slice(&[3, 1, 0, 0]); // CTRL_CMD_GETFAMILY
        expected.extend_from_slice(&15u16.to_ne_bytes()); // 4 + "acpi_event\0"
        expected.extend_from_slice(&2u16.to_ne_bytes()); // CTRL_ATTR_FAMILY_NAME
        expected.extend_from_slice(b"acpi_event\0\0");
        assert_eq!(request, expected);
    }

    fn mcast_entry(index: u16, name: &str, id: u32) -> Vec<u8> {
        let mut name = name.as_bytes().to_vec();
        name.push(0);
        let mut inner = attr(CTRL_ATTR_MCAST_GRP_ID, &id.to_ne_bytes());
        inner.extend(attr(CTRL_ATTR_MCAST_GRP_NAME, &name));
        attr(index, &inner)
    }

    fn newfamily_reply(seq: u32) -> Vec<u8> {
        const NLA_F_NESTED: u16 = 0x8000;
        let mut groups = mcast_entry(1, "other_group", 5);
        groups.extend(mcast_entry(2, "acpi_mc_group", 41));

        let mut attrs = attr(CTRL_ATTR_FAMILY_NAME, b"acpi_event\0");
        attrs.extend(attr(CTRL_ATTR_FAMILY_ID, &FAMILY_ID.to_ne_bytes()));
        attrs.extend(attr(3, &1u32.to_ne_bytes())); // CTRL_ATTR_VERSION
        attrs.extend(attr(
            6 | NLA_F_NESTED,
            &attr(1, &attr(1, &1u32.to_ne_bytes())),
        )); // CTRL_ATTR_OPS
        attrs.extend(attr(CTRL_ATTR_MCAST_GROUPS | NLA_F_NESTED, &groups));
        nlmsg(GENL_ID_CTRL, seq, &genl(CTRL_CMD_NEWFAMILY, &attrs))
    }

    #[test]
    fn getfamily_reply_with_two_groups() {
        let reply = parse_getfamily_reply(&newfamily_reply(7), 7).unwrap();
        let GetFamilyReply::Family(family) = reply else {
            panic!("expected a family, got {reply:?}");
        };
        assert_eq!(family.name, "acpi_event");
        assert_eq!(family.id, FAMILY_ID);
        assert_eq!(
            family.mcast_groups,
            [
                McastGroup {
                    name: "other_group".into(),
                    id: 5
                },
                McastGroup {
                    name: "acpi_mc_group".into(),
                    id: 41
                },
            ]
        );
        assert_eq!(family.mcast_group_id(ACPI_GENL_MCAST_GROUP_NAME), Some(41));
        assert_eq!(family.mcast_group_id("missing"), None);
    }

    #[test]
    fn getfamily_reply_for_another_request_is_unrelated() {
        assert_eq!(
            parse_getfamily_reply(&newfamily_reply(8), 7),
            Ok(GetFamilyReply::Unrelated)
        );
        assert_eq!(parse_getfamily_reply(&[], 7), Ok(GetFamilyReply::Unrelated));
    }

    #[test]
    fn getfamily_error_reply() {
        let mut payload = (-libc::ENOENT).to_ne_bytes().to_vec();
        payload.extend(&getfamily_request(7, "acpi_event")[..16]);
        let datagram = nlmsg(NLMSG_ERROR, 7, &payload);
        assert_eq!(
            parse_getfamily_reply(&datagram, 7),
            Ok(GetFamilyReply::KernelError(libc::ENOENT))
        );
    }

    #[test]
    fn getfamily_reply_malformed() {
        let full = newfamily_reply(7);
        for len in 1..full.len() {
            assert!(
                parse_getfamily_reply(&full[..len], 7).is_err(),
                "prefix of {len} bytes"
            );
        }

        // A family without an id cannot be used.
        let no_id = nlmsg(
            GENL_ID_CTRL,
            7,
            &genl(CTRL_CMD_NEWFAMILY, &attr(CTRL_ATTR_FAMILY_NAME, b"x\0")),
        );
        assert!(matches!(
            parse_getfamily_reply(&no_id, 7),
            Err(ParseError::Invalid(_))
        ));

        let group_without_id = attr(1, &attr(CTRL_ATTR_MCAST_GRP_NAME, b"acpi_mc_group\0"));
        let mut attrs = attr(CTRL_ATTR_FAMILY_ID, &FAMILY_ID.to_ne_bytes());
        attrs.extend(attr(CTRL_ATTR_MCAST_GROUPS, &group_without_id));
        let msg = nlmsg(GENL_ID_CTRL, 7, &genl(CTRL_CMD_NEWFAMILY, &attrs));
        assert!(matches!(
            parse_getfamily_reply(&msg, 7),
            Err(ParseError::Invalid(_))
        ));
    }

    /// Hosts differ: with ACPI the family resolves; without it, or outside
    /// the initial network namespace, or in a sandbox without netlink,
    /// open() fails. Either way it must not panic or
    /// hang, a success must yield a usable non-blocking socket, and a failure
    /// must say what it was trying to reach.
    #[test]
    fn open_succeeds_or_fails_clearly() {
        match PowerButtonListener::open() {
            Ok(listener) => {
                // Dynamically allocated family ids come after the controller's.
                assert!(
                    listener.family_id() > GENL_ID_CTRL,
                    "family id {}",
                    listener.family_id()
                );
                assert_ne!(listener.group_id(), 0);

                let flags =
                    nix::fcntl::fcntl(listener.as_fd(), nix::fcntl::FcntlArg::F_GETFL).unwrap();
                assert_ne!(flags & libc::O_NONBLOCK, 0, "socket must be non-blocking");
                let fd_flags =
                    nix::fcntl::fcntl(listener.as_fd(), nix::fcntl::FcntlArg::F_GETFD).unwrap();
                assert_ne!(
                    fd_flags & libc::FD_CLOEXEC,
                    0,
                    "socket must be close-on-exec"
                );

                // Returns at once, whether or not an event happens to be pending.
                let events = listener.read_events().unwrap();
                assert!(events.iter().all(|e| !e.device_class.is_empty()));
            }
            Err(err) => {
                let message = err.to_string();
                assert!(
                    message.contains(ACPI_GENL_FAMILY_NAME),
                    "unclear error: {message}"
                );
            }
        }
    }
}
