//! Links, addresses (IPv4, and IPv6 for the floating address) and the default route over
//! rtnetlink, synchronously.
//!
//! One `NETLINK_ROUTE` socket, one request in flight at a time: every change asks for an
//! acknowledgement and waits for it, every listing is read to `NLMSG_DONE`. Errors are
//! strings that say what was being done and what the kernel answered, e.g.
//! `add 192.0.2.11/24 to eth0: Operation not permitted (EPERM)`.
//!
//! Answers are decoded one attribute at a time and attributes that fail to decode are
//! skipped: a kernel newer than the decoder, or an exotic interface, must not make the
//! listing of the interfaces we configure fail.

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use netlink_packet_core::{
    DoneBuffer, Emitable, ErrorBuffer, NetlinkBuffer, NetlinkHeader, NetlinkMessage,
    NetlinkPayload, NlaBuffer, NlasIterator, Parseable, ParseableParametrized, NLMSG_DONE,
    NLMSG_ERROR, NLMSG_NOOP, NLMSG_OVERRUN, NLM_F_ACK, NLM_F_ACK_TLVS, NLM_F_CAPPED, NLM_F_CREATE,
    NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REPLACE, NLM_F_REQUEST,
};
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeader, AddressHeaderFlags, AddressMessage,
    AddressScope, CacheInfo,
};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkHeader, LinkMessage};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteLwEnCapType, RouteMessage, RouteProtocol,
    RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

// Message types of the answers we decode (linux/rtnetlink.h).
const RTM_NEWLINK: u16 = 16;
const RTM_NEWADDR: u16 = 20;
const RTM_NEWROUTE: u16 = 24;

/// `NLMSGERR_ATTR_MSG` (linux/netlink.h): the kernel's human-readable reason.
const NLMSGERR_ATTR_MSG: u16 = 1;
/// Length of `struct nlmsghdr`, echoed back in front of the TLVs of an error.
const NLMSG_HDRLEN: usize = 16;
/// `INFINITY_LIFE_TIME` (include/net/addrconf.h).
const FOREVER: u32 = u32::MAX;

/// The kernel answers rtnetlink requests from within the sending system call, so the answer
/// is normally queued before we start waiting; this only bounds a wait for one that was
/// lost (a dropped datagram under memory pressure) so that the service does not hang.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// A dump that a concurrent change interrupted is inconsistent and is asked for again; a
/// system that changes that fast for that long has a problem worth reporting.
const DUMP_ATTEMPTS: usize = 5;

/// A `NETLINK_ROUTE` socket. It belongs to the network namespace of the thread that opened
/// it, for its whole life.
pub struct Netlink {
    socket: Socket,
    seq: u32,
}

/// One network interface as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    pub name: String,
    pub index: u32,
    /// Administratively up (`IFF_UP`).
    pub up: bool,
    /// The lower layer is up (`IFF_LOWER_UP`): there is a carrier.
    pub carrier: bool,
    pub mtu: u32,
    /// `None` when the link has no Ethernet-sized hardware address or an all-zero one
    /// (loopback): nothing a DHCP client could use.
    pub mac: Option<[u8; 6]>,
}

/// One address of either family as the kernel lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressInfo {
    /// The interface's ifindex.
    pub index: u32,
    pub address: IpAddr,
    pub prefix_len: u8,
    /// IPv6 duplicate address detection has not finished (`IFA_F_TENTATIVE`): the address
    /// cannot be used yet.
    pub tentative: bool,
    /// IPv6 duplicate address detection found the address in use (`IFA_F_DADFAILED`).
    pub dad_failed: bool,
}

/// Why a request failed, before it is put into words with what was being done.
#[derive(Debug)]
enum Failure {
    /// The kernel refused, with an errno and perhaps its own explanation.
    Kernel { errno: i32, detail: Option<String> },
    /// The socket itself failed.
    Io(io::Error),
    /// The answer made no sense.
    Protocol(String),
    /// The request was not worth sending.
    Invalid(String),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Kernel { errno, detail } => {
                f.write_str(&errno_text(*errno))?;
                match detail {
                    Some(detail) => write!(f, ": {detail}"),
                    None => Ok(()),
                }
            }
            Failure::Io(e) if e.kind() == io::ErrorKind::WouldBlock => write!(
                f,
                "no answer from the kernel within {} s",
                ANSWER_TIMEOUT.as_secs()
            ),
            Failure::Io(e) => match e.raw_os_error() {
                Some(errno) => write!(f, "netlink socket: {}", errno_text(errno)),
                None => write!(f, "netlink socket: {e}"),
            },
            Failure::Protocol(what) => write!(f, "unexpected netlink answer: {what}"),
            Failure::Invalid(why) => f.write_str(why),
        }
    }
}

/// An answer other than an acknowledgement, still undecoded.
struct Reply {
    kind: u16,
    payload: Vec<u8>,
}

impl Netlink {
    pub fn open() -> io::Result<Netlink> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        // Only the kernel (port 0) may talk to us: another process cannot inject answers.
        socket.connect(&SocketAddr::new(0, 0))?;
        // Refinements that old kernels lack (extended acks came in 4.12): errors then
        // carry no explanation, and acknowledgements echo the whole request.
        let _ = socket.set_ext_ack(true);
        let _ = socket.set_cap_ack(true);
        let timeout = libc::timeval {
            tv_sec: ANSWER_TIMEOUT.as_secs() as libc::time_t,
            tv_usec: 0,
        };
        nix::sys::socket::setsockopt(
            &socket,
            nix::sys::socket::sockopt::ReceiveTimeout,
            &timeout.into(),
        )?;
        Ok(Netlink { socket, seq: 0 })
    }

    /// ifindex by name; error "no network interface named X (interfaces: a, b)" listing the
    /// ones there are.
    pub fn link_index(&mut self, name: &str) -> Result<u32, String> {
        let links = self
            .list_links()
            .map_err(|e| format!("look up network interface {name}: {e}"))?;
        match links.iter().find(|l| l.name == name) {
            Some(link) => Ok(link.index),
            None => {
                let names: Vec<&str> = links.iter().map(|l| l.name.as_str()).collect();
                Err(unknown_interface(name, &names))
            }
        }
    }

    /// Every network interface, in ifindex order.
    pub fn links(&mut self) -> Result<Vec<LinkInfo>, String> {
        self.list_links()
            .map_err(|e| format!("list network interfaces: {e}"))
    }

    /// Sets `IFF_UP` and leaves every other flag as it is.
    pub fn set_up(&mut self, index: u32) -> Result<(), String> {
        let mut link = LinkMessage::default();
        link.header.index = index;
        link.header.flags = LinkFlags::Up;
        // Without a change mask the kernel would take every flag from `flags`.
        link.header.change_mask = LinkFlags::Up;
        let result = self.request(RouteNetlinkMessage::NewLink(link), 0);
        self.explain(result, index, |name| format!("bring up {name}"))
            .map(drop)
    }

    pub fn set_mtu(&mut self, index: u32, mtu: u32) -> Result<(), String> {
        let mut link = LinkMessage::default();
        link.header.index = index;
        link.attributes.push(LinkAttribute::Mtu(mtu));
        let result = self.request(RouteNetlinkMessage::NewLink(link), 0);
        self.explain(result, index, |name| format!("set MTU {mtu} on {name}"))
            .map(drop)
    }

    /// Adds an IPv4 address with its prefix length and broadcast address. Adding one that is
    /// there already succeeds and sets its lifetimes anew: renewing a DHCP lease is adding
    /// its address again. `lifetime` becomes both the valid and the preferred lifetime (the
    /// kernel removes the address when it runs out); `None` is forever.
    pub fn add_address(
        &mut self,
        index: u32,
        addr: Ipv4Addr,
        prefix_len: u8,
        lifetime: Option<Duration>,
    ) -> Result<(), String> {
        let message = address_message(index, addr, prefix_len).map(|mut message| {
            if let Some(brd) = broadcast(addr, prefix_len) {
                message.attributes.push(AddressAttribute::Broadcast(brd));
            }
            let seconds = lifetime_seconds(lifetime);
            let mut cache = CacheInfo::default();
            cache.ifa_valid = seconds;
            cache.ifa_preferred = seconds;
            message.attributes.push(AddressAttribute::CacheInfo(cache));
            message
        });
        self.new_address(index, message, &format!("{addr}/{prefix_len}"))
    }

    /// Sends a prepared RTM_NEWADDR. REPLACE without EXCL: an existing address is
    /// updated (its lifetimes) rather than refused, and EEXIST counts as success.
    fn new_address(
        &mut self,
        index: u32,
        message: Result<AddressMessage, String>,
        what: &str,
    ) -> Result<(), String> {
        let result = match message {
            Ok(message) => self.request(
                RouteNetlinkMessage::NewAddress(message),
                NLM_F_CREATE | NLM_F_REPLACE,
            ),
            Err(e) => Err(Failure::Invalid(e)),
        };
        let result = match result {
            Err(Failure::Kernel { errno, .. }) if errno == libc::EEXIST => Ok(Vec::new()),
            other => other,
        };
        self.explain(result, index, |name| format!("add {what} to {name}"))
            .map(drop)
    }

    /// Sends RTM_DELADDR for a prepared message.
    fn del_address(
        &mut self,
        index: u32,
        message: Result<AddressMessage, String>,
        what: &str,
    ) -> Result<(), String> {
        let result = match message {
            Ok(message) => self.request(RouteNetlinkMessage::DelAddress(message), 0),
            Err(e) => Err(Failure::Invalid(e)),
        };
        self.explain(result, index, |name| format!("delete {what} from {name}"))
            .map(drop)
    }

    /// Removes an IPv4 address; one that is not there is an error (`EADDRNOTAVAIL`).
    pub fn delete_address(
        &mut self,
        index: u32,
        addr: Ipv4Addr,
        prefix_len: u8,
    ) -> Result<(), String> {
        let message = address_message(index, addr, prefix_len);
        self.del_address(index, message, &format!("{addr}/{prefix_len}"))
    }

    /// The IPv4 addresses of one interface with their prefix lengths, primary first.
    pub fn addresses(&mut self, index: u32) -> Result<Vec<(Ipv4Addr, u8)>, String> {
        let mut request = AddressMessage::default();
        request.header.family = AddressFamily::Inet;
        let result = self
            .dump(RouteNetlinkMessage::GetAddress(request))
            .map(|replies| {
                replies
                    .iter()
                    .filter(|r| r.kind == RTM_NEWADDR)
                    .filter_map(|r| parse_address(&r.payload))
                    .filter(|a| a.0 == index)
                    .map(|a| (a.1, a.2))
                    .collect()
            });
        self.explain(result, index, |name| {
            format!("list IPv4 addresses of {name}")
        })
    }

    /// Adds an IPv6 address with its prefix length, for ever, without duplicate address
    /// detection (`IFA_F_NODAD`): a floating address comes to a node because its previous
    /// holder let go of it, and DAD would keep it unusable for a second or more (keepalived
    /// adds its IPv6 addresses the same way). Adding one that is there already succeeds.
    pub fn add_address6(
        &mut self,
        index: u32,
        addr: Ipv6Addr,
        prefix_len: u8,
    ) -> Result<(), String> {
        let message = address_message6(index, addr, prefix_len).map(|mut message| {
            message.header.flags = AddressHeaderFlags::Nodad;
            message
                .attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
            let mut cache = CacheInfo::default();
            cache.ifa_valid = FOREVER;
            cache.ifa_preferred = FOREVER;
            message.attributes.push(AddressAttribute::CacheInfo(cache));
            message
        });
        self.new_address(index, message, &format!("{addr}/{prefix_len}"))
    }

    /// Removes an IPv6 address; one that is not there is an error (`EADDRNOTAVAIL`).
    pub fn delete_address6(
        &mut self,
        index: u32,
        addr: Ipv6Addr,
        prefix_len: u8,
    ) -> Result<(), String> {
        let message = address_message6(index, addr, prefix_len);
        self.del_address(index, message, &format!("{addr}/{prefix_len}"))
    }

    /// Every address of both families on every interface, in the kernel's order.
    pub fn all_addresses(&mut self) -> Result<Vec<AddressInfo>, String> {
        let mut request = AddressMessage::default();
        request.header.family = AddressFamily::Unspec;
        let replies = self
            .dump(RouteNetlinkMessage::GetAddress(request))
            .map_err(|e| format!("list addresses: {e}"))?;
        Ok(replies
            .iter()
            .filter(|r| r.kind == RTM_NEWADDR)
            .filter_map(|r| parse_address_info(&r.payload))
            .collect())
    }

    /// Points the default route of the main table at `gateway` through that interface,
    /// replacing the one there is (of metric 0), whichever interface it went through.
    pub fn set_default_route(&mut self, index: u32, gateway: Ipv4Addr) -> Result<(), String> {
        let mut route = RouteMessage::default();
        route.header.address_family = AddressFamily::Inet;
        route.header.destination_prefix_length = 0;
        route.header.table = RouteHeader::RT_TABLE_MAIN;
        route.header.protocol = RouteProtocol::Static;
        route.header.scope = RouteScope::Universe;
        route.header.kind = RouteType::Unicast;
        route.attributes = vec![
            RouteAttribute::Table(u32::from(RouteHeader::RT_TABLE_MAIN)),
            RouteAttribute::Gateway(RouteAddress::Inet(gateway)),
            RouteAttribute::Oif(index),
        ];
        let result = self.request(
            RouteNetlinkMessage::NewRoute(route),
            NLM_F_CREATE | NLM_F_REPLACE,
        );
        self.explain(result, index, |name| {
            format!("set default route via {gateway} on {name}")
        })
        .map(drop)
    }

    /// The IPv4 default route of the main table as (gateway, ifindex): the one of lowest
    /// metric if there are several. Routes without a single gateway (device-only or
    /// multipath) are not reported.
    pub fn default_route(&mut self) -> Result<Option<(Ipv4Addr, u32)>, String> {
        let mut request = RouteMessage::default();
        request.header.address_family = AddressFamily::Inet;
        let replies = self
            .dump(RouteNetlinkMessage::GetRoute(request))
            .map_err(|e| format!("read the default route: {e}"))?;
        Ok(replies
            .iter()
            .filter(|r| r.kind == RTM_NEWROUTE)
            .filter_map(|r| parse_default_route(&r.payload))
            .min_by_key(|route| route.metric)
            .map(|route| (route.gateway, route.oif)))
    }

    fn list_links(&mut self) -> Result<Vec<LinkInfo>, Failure> {
        let replies = self.dump(RouteNetlinkMessage::GetLink(LinkMessage::default()))?;
        let mut links: Vec<LinkInfo> = replies
            .iter()
            .filter(|r| r.kind == RTM_NEWLINK)
            .filter_map(|r| parse_link(&r.payload))
            .collect();
        links.sort_by_key(|l| l.index);
        Ok(links)
    }

    /// The name of an interface for an error message; a failure to find it must not hide
    /// the error being reported.
    fn name_of(&mut self, index: u32) -> String {
        let mut link = LinkMessage::default();
        link.header.index = index;
        self.request(RouteNetlinkMessage::GetLink(link), 0)
            .ok()
            .and_then(|replies| {
                replies
                    .iter()
                    .filter(|r| r.kind == RTM_NEWLINK)
                    .find_map(|r| parse_link(&r.payload))
            })
            .map(|l| l.name)
            .unwrap_or_else(|| format!("interface #{index}"))
    }

    /// Puts a failure into words, looking up the interface's name only when there is an
    /// error to report.
    fn explain<T>(
        &mut self,
        result: Result<T, Failure>,
        index: u32,
        what: impl FnOnce(&str) -> String,
    ) -> Result<T, String> {
        result.map_err(|e| format!("{}: {e}", what(&self.name_of(index))))
    }

    /// A request that changes something, or reads one object: answered by an
    /// acknowledgement, after the object if one was asked for.
    fn request(&mut self, message: RouteNetlinkMessage, flags: u16) -> Result<Vec<Reply>, Failure> {
        let seq = self.send(message, NLM_F_REQUEST | NLM_F_ACK | flags)?;
        self.collect(seq, false).map(|(replies, _)| replies)
    }

    /// A listing. The kernel never acknowledges a dump: `NLMSG_DONE` ends it, and an error
    /// arrives in place of it.
    fn dump(&mut self, message: RouteNetlinkMessage) -> Result<Vec<Reply>, Failure> {
        for _ in 0..DUMP_ATTEMPTS {
            let seq = self.send(message.clone(), NLM_F_REQUEST | NLM_F_DUMP)?;
            let (replies, interrupted) = self.collect(seq, true)?;
            if !interrupted {
                return Ok(replies);
            }
        }
        Err(Failure::Protocol(format!(
            "the listing changed while it was read, {DUMP_ATTEMPTS} times in a row"
        )))
    }

    fn send(&mut self, message: RouteNetlinkMessage, flags: u16) -> Result<u32, Failure> {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        header.sequence_number = self.seq;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::from(message));
        packet.finalize();
        let mut buf = vec![0; packet.buffer_len()];
        packet.serialize(&mut buf);
        let sent = self.socket.send(&buf, 0).map_err(Failure::Io)?;
        if sent != buf.len() {
            return Err(Failure::Protocol(format!(
                "sent {sent} of {} bytes",
                buf.len()
            )));
        }
        Ok(self.seq)
    }

    /// Reads the answers to request `seq` until the acknowledgement (or `NLMSG_DONE` for a
    /// dump). Returns the other answers, and whether the dump was interrupted.
    fn collect(&mut self, seq: u32, dump: bool) -> Result<(Vec<Reply>, bool), Failure> {
        let mut replies = Vec::new();
        let mut interrupted = false;
        loop {
            let datagram = self.receive()?;
            for raw in split_datagram(&datagram).map_err(Failure::Protocol)? {
                let message = NetlinkBuffer::new(raw);
                // Answers to an earlier request that timed out: not ours to read.
                if message.sequence_number() != seq {
                    continue;
                }
                if message.flags() & NLM_F_DUMP_INTR != 0 {
                    interrupted = true;
                }
                let payload = message.payload();
                match message.message_type() {
                    NLMSG_NOOP => {}
                    NLMSG_ERROR => {
                        let error = ErrorBuffer::new_checked(payload)
                            .map_err(|e| Failure::Protocol(e.to_string()))?;
                        return match error.code() {
                            None => Ok((replies, interrupted)),
                            Some(code) => Err(Failure::Kernel {
                                errno: code.get().saturating_abs(),
                                detail: error_detail(message.flags(), error.payload()),
                            }),
                        };
                    }
                    NLMSG_DONE => {
                        // Kernels before 4.x send an empty NLMSG_DONE.
                        if payload.len() >= 4 {
                            let done = DoneBuffer::new_checked(payload)
                                .map_err(|e| Failure::Protocol(e.to_string()))?;
                            if done.code() < 0 {
                                return Err(Failure::Kernel {
                                    errno: done.code().saturating_abs(),
                                    detail: ext_ack_message(done.extended_ack()),
                                });
                            }
                        }
                        if dump {
                            return Ok((replies, interrupted));
                        }
                    }
                    NLMSG_OVERRUN => {
                        return Err(Failure::Protocol("data lost (NLMSG_OVERRUN)".into()))
                    }
                    kind => replies.push(Reply {
                        kind,
                        payload: payload.to_vec(),
                    }),
                }
            }
        }
    }

    fn receive(&mut self) -> Result<Vec<u8>, Failure> {
        loop {
            match self.socket.recv_from_full() {
                Ok((datagram, _)) => return Ok(datagram),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Failure::Io(e)),
            }
        }
    }
}

/// The message that names one IPv4 address on one interface, for adding or deleting it.
fn address_message(index: u32, addr: Ipv4Addr, prefix_len: u8) -> Result<AddressMessage, String> {
    if prefix_len > 32 {
        return Err(format!(
            "prefix length {prefix_len} is out of range (0 to 32)"
        ));
    }
    let mut message = AddressMessage::default();
    message.header = AddressHeader {
        family: AddressFamily::Inet,
        prefix_len,
        flags: Default::default(),
        scope: AddressScope::Universe,
        index,
    };
    // On a broadcast link IFA_LOCAL is the address and IFA_ADDRESS must equal it (they
    // differ only on point-to-point links, where IFA_ADDRESS is the peer).
    message.attributes = vec![
        AddressAttribute::Local(IpAddr::V4(addr)),
        AddressAttribute::Address(IpAddr::V4(addr)),
    ];
    Ok(message)
}

/// The message that names one IPv6 address on one interface, for adding or deleting it.
fn address_message6(index: u32, addr: Ipv6Addr, prefix_len: u8) -> Result<AddressMessage, String> {
    if prefix_len > 128 {
        return Err(format!(
            "prefix length {prefix_len} is out of range (0 to 128)"
        ));
    }
    let mut message = AddressMessage::default();
    message.header = AddressHeader {
        family: AddressFamily::Inet6,
        prefix_len,
        flags: Default::default(),
        // The kernel derives an IPv6 address's scope from the address itself.
        scope: AddressScope::Universe,
        index,
    };
    // IPv6 has no peer addresses: IFA_LOCAL alone names it (iproute2 sends IFA_LOCAL too).
    message.attributes = vec![AddressAttribute::Local(IpAddr::V6(addr))];
    Ok(message)
}

/// The broadcast address of a subnet; none for /31 (RFC 3021) and /32, which have no room
/// for one.
fn broadcast(addr: Ipv4Addr, prefix_len: u8) -> Option<Ipv4Addr> {
    if prefix_len >= 31 {
        return None;
    }
    let host_bits = u32::MAX.checked_shr(u32::from(prefix_len)).unwrap_or(0);
    Some(Ipv4Addr::from(u32::from(addr) | host_bits))
}

/// A lifetime in the kernel's whole seconds. Rounded up, because the kernel refuses a valid
/// lifetime of 0; capped below `u32::MAX`, which would mean forever.
fn lifetime_seconds(lifetime: Option<Duration>) -> u32 {
    match lifetime {
        None => FOREVER,
        Some(d) => {
            let seconds = d.as_secs().saturating_add(u64::from(d.subsec_nanos() > 0));
            seconds.clamp(1, u64::from(FOREVER - 1)) as u32
        }
    }
}

fn unknown_interface(name: &str, known: &[&str]) -> String {
    let known = if known.is_empty() {
        "none".to_string()
    } else {
        known.join(", ")
    };
    format!("no network interface named {name} (interfaces: {known})")
}

/// "Operation not permitted (EPERM)".
fn errno_text(errno: i32) -> String {
    let e = nix::errno::Errno::from_raw(errno);
    if e == nix::errno::Errno::UnknownErrno {
        format!("error {errno}")
    } else {
        format!("{} ({e:?})", e.desc())
    }
}

/// Cuts a datagram into its netlink messages, each padded to 4 bytes.
fn split_datagram(datagram: &[u8]) -> Result<Vec<&[u8]>, String> {
    let mut messages = Vec::new();
    let mut rest = datagram;
    while !rest.is_empty() {
        let length = NetlinkBuffer::new_checked(rest)
            .map_err(|e| format!("malformed message: {e}"))?
            .length() as usize;
        if length < NLMSG_HDRLEN {
            return Err(format!("malformed message: length {length}"));
        }
        messages.push(&rest[..length]);
        rest = rest.get(align4(length)..).unwrap_or(&[]);
    }
    Ok(messages)
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// The kernel's explanation in an `NLMSG_ERROR`, given the flags of that message and what
/// follows its error code: the request's header (or the whole request, if the socket did
/// not ask for it to be capped), then the extended-ack attributes.
fn error_detail(flags: u16, after_code: &[u8]) -> Option<String> {
    if flags & NLM_F_ACK_TLVS == 0 {
        return None;
    }
    let echoed = if flags & NLM_F_CAPPED != 0 {
        NLMSG_HDRLEN
    } else {
        let length = after_code.get(..4)?;
        align4(u32::from_ne_bytes(length.try_into().ok()?) as usize)
    };
    ext_ack_message(after_code.get(echoed..)?)
}

/// `NLMSGERR_ATTR_MSG` among extended-ack attributes.
fn ext_ack_message(attributes: &[u8]) -> Option<String> {
    NlasIterator::new(attributes)
        .map_while(Result::ok)
        .find(|nla| nla.kind() == NLMSGERR_ATTR_MSG)
        .map(|nla| {
            let text = nla.value();
            let end = text.iter().position(|&b| b == 0).unwrap_or(text.len());
            String::from_utf8_lossy(&text[..end]).trim().to_string()
        })
        .filter(|text| !text.is_empty())
}

/// The attributes after a fixed header, each decoded on its own; those that do not decode
/// are left out.
fn decode_attributes<A>(
    attributes: &[u8],
    decode: impl Fn(&NlaBuffer<&[u8]>) -> Option<A>,
) -> Vec<A> {
    NlasIterator::new(attributes)
        .map_while(Result::ok)
        .filter_map(|nla| decode(&nla))
        .collect()
}

fn parse_link(payload: &[u8]) -> Option<LinkInfo> {
    let header = LinkHeader::parse(payload).ok()?;
    let family = header.interface_family;
    let attributes = decode_attributes(payload.get(header.buffer_len()..)?, |nla| {
        LinkAttribute::parse_with_param(nla, family).ok()
    });
    let mut name = None;
    let mut mtu = 0;
    let mut mac = None;
    for attribute in attributes {
        match attribute {
            LinkAttribute::IfName(n) => name = Some(n),
            LinkAttribute::Mtu(m) => mtu = m,
            LinkAttribute::Address(a) => {
                mac = <[u8; 6]>::try_from(a.as_slice())
                    .ok()
                    .filter(|m| m.iter().any(|&b| b != 0));
            }
            _ => {}
        }
    }
    Some(LinkInfo {
        name: name?,
        index: header.index,
        up: header.flags.contains(LinkFlags::Up),
        carrier: header.flags.contains(LinkFlags::LowerUp),
        mtu,
        mac,
    })
}

/// (ifindex, address, prefix length) of an IPv4 address.
fn parse_address(payload: &[u8]) -> Option<(u32, Ipv4Addr, u8)> {
    let header = AddressHeader::parse(payload).ok()?;
    if header.family != AddressFamily::Inet {
        return None;
    }
    let attributes = decode_attributes(payload.get(header.buffer_len()..)?, |nla| {
        AddressAttribute::parse(nla).ok()
    });
    let mut local = None;
    let mut address = None;
    for attribute in attributes {
        match attribute {
            AddressAttribute::Local(IpAddr::V4(a)) => local = Some(a),
            AddressAttribute::Address(IpAddr::V4(a)) => address = Some(a),
            _ => {}
        }
    }
    // IFA_LOCAL is the interface's own address; IFA_ADDRESS is that too except on
    // point-to-point links, where it is the peer's.
    Some((header.index, local.or(address)?, header.prefix_len))
}

/// An address of either family with its flags. IPv4 addresses are named by IFA_LOCAL
/// (see `parse_address`); IPv6 ones by IFA_ADDRESS, which the kernel always sends, with
/// IFA_LOCAL only on point-to-point links.
fn parse_address_info(payload: &[u8]) -> Option<AddressInfo> {
    let header = AddressHeader::parse(payload).ok()?;
    let attributes = decode_attributes(payload.get(header.buffer_len()..)?, |nla| {
        AddressAttribute::parse(nla).ok()
    });
    let mut local = None;
    let mut address = None;
    // IFA_FLAGS carries all 32 bits; the header only the first 8.
    let mut flags = AddressFlags::from_bits_retain(u32::from(header.flags.bits()));
    for attribute in attributes {
        match attribute {
            AddressAttribute::Local(a) => local = Some(a),
            AddressAttribute::Address(a) => address = Some(a),
            AddressAttribute::Flags(f) => flags = f,
            _ => {}
        }
    }
    let address = match header.family {
        AddressFamily::Inet => local.or(address)?,
        AddressFamily::Inet6 => address.or(local)?,
        _ => return None,
    };
    Some(AddressInfo {
        index: header.index,
        address,
        prefix_len: header.prefix_len,
        tentative: flags.contains(AddressFlags::Tentative),
        dad_failed: flags.contains(AddressFlags::Dadfailed),
    })
}

#[derive(Debug, PartialEq, Eq)]
struct DefaultRoute {
    gateway: Ipv4Addr,
    oif: u32,
    metric: u32,
}

/// An IPv4 default unicast route of the main table with one gateway.
fn parse_default_route(payload: &[u8]) -> Option<DefaultRoute> {
    let header = RouteHeader::parse(payload).ok()?;
    if header.address_family != AddressFamily::Inet
        || header.destination_prefix_length != 0
        || header.kind != RouteType::Unicast
    {
        return None;
    }
    let param = (header.address_family, header.kind, RouteLwEnCapType::None);
    let attributes = decode_attributes(payload.get(header.buffer_len()..)?, |nla| {
        RouteAttribute::parse_with_param(nla, param).ok()
    });
    // Tables above 255 only fit the attribute; the header then says RT_TABLE_UNSPEC.
    let mut table = u32::from(header.table);
    let mut gateway = None;
    let mut oif = None;
    let mut metric = 0;
    for attribute in attributes {
        match attribute {
            RouteAttribute::Table(t) => table = t,
            RouteAttribute::Gateway(RouteAddress::Inet(g)) => gateway = Some(g),
            RouteAttribute::Oif(o) => oif = Some(o),
            RouteAttribute::Priority(p) => metric = p,
            _ => {}
        }
    }
    if table != u32::from(RouteHeader::RT_TABLE_MAIN) {
        return None;
    }
    Some(DefaultRoute {
        gateway: gateway?,
        oif: oif?,
        metric,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn emit(message: &impl Emitable) -> Vec<u8> {
        let mut buf = vec![0; message.buffer_len()];
        message.emit(&mut buf);
        buf
    }

    fn netlink_header(kind: u16, flags: u16, length: usize) -> Vec<u8> {
        let mut header = NetlinkHeader::default();
        header.length = length as u32;
        header.message_type = kind;
        header.flags = flags;
        header.sequence_number = 7;
        emit(&header)
    }

    fn nla(kind: u16, value: &[u8]) -> Vec<u8> {
        let mut buf = Vec::new();
        buf.extend_from_slice(&((4 + value.len()) as u16).to_ne_bytes());
        buf.extend_from_slice(&kind.to_ne_bytes());
        buf.extend_from_slice(value);
        buf.resize(align4(buf.len()), 0);
        buf
    }

    #[test]
    fn broadcast_fills_the_host_bits() {
        let a = Ipv4Addr::new(192, 0, 2, 11);
        assert_eq!(broadcast(a, 24), Some(Ipv4Addr::new(192, 0, 2, 255)));
        assert_eq!(broadcast(a, 30), Some(Ipv4Addr::new(192, 0, 2, 11)));
        assert_eq!(broadcast(a, 28), Some(Ipv4Addr::new(192, 0, 2, 15)));
        assert_eq!(broadcast(a, 0), Some(Ipv4Addr::BROADCAST));
        assert_eq!(broadcast(a, 31), None);
        assert_eq!(broadcast(a, 32), None);
    }

    #[test]
    fn lifetimes_round_up_and_keep_clear_of_forever() {
        assert_eq!(lifetime_seconds(None), u32::MAX);
        assert_eq!(lifetime_seconds(Some(Duration::from_secs(3600))), 3600);
        assert_eq!(lifetime_seconds(Some(Duration::from_millis(1500))), 2);
        assert_eq!(lifetime_seconds(Some(Duration::ZERO)), 1);
        assert_eq!(
            lifetime_seconds(Some(Duration::from_secs(u64::from(u32::MAX)))),
            u32::MAX - 1
        );
        assert_eq!(lifetime_seconds(Some(Duration::MAX)), u32::MAX - 1);
    }

    #[test]
    fn unknown_interface_lists_the_known_ones() {
        assert_eq!(
            unknown_interface("eth9", &["lo", "eth0"]),
            "no network interface named eth9 (interfaces: lo, eth0)"
        );
        assert_eq!(
            unknown_interface("eth9", &[]),
            "no network interface named eth9 (interfaces: none)"
        );
    }

    #[test]
    fn errno_text_has_description_and_name() {
        assert_eq!(errno_text(libc::EPERM), "Operation not permitted (EPERM)");
        assert_eq!(errno_text(libc::EEXIST), "File exists (EEXIST)");
        assert_eq!(errno_text(100_000), "error 100000");
    }

    #[test]
    fn address_message_refuses_long_prefixes() {
        let err = address_message(2, Ipv4Addr::new(192, 0, 2, 1), 33).unwrap_err();
        assert_eq!(err, "prefix length 33 is out of range (0 to 32)");
        assert!(address_message(2, Ipv4Addr::new(192, 0, 2, 1), 32).is_ok());
    }

    #[test]
    fn datagrams_split_on_padded_lengths() {
        // 18 bytes, padded to 20, then a bare 16-byte header.
        let mut datagram = netlink_header(RTM_NEWLINK, 0, 18);
        datagram.extend_from_slice(&[1, 2, 0, 0]);
        datagram.extend(netlink_header(NLMSG_DONE, 0, 16));
        let messages = split_datagram(&datagram).unwrap();
        assert_eq!(messages.len(), 2);
        assert_eq!(messages[0].len(), 18);
        assert_eq!(messages[1].len(), 16);
        assert_eq!(NetlinkBuffer::new(messages[1]).message_type(), NLMSG_DONE);
        // The last message may come without its padding.
        let last = netlink_header(RTM_NEWLINK, 0, 18);
        let mut unpadded = last.clone();
        unpadded.extend_from_slice(&[1, 2]);
        assert_eq!(split_datagram(&unpadded).unwrap().len(), 1);
    }

    #[test]
    fn malformed_datagrams_are_errors_not_loops() {
        assert!(split_datagram(&netlink_header(NLMSG_DONE, 0, 0)).is_err());
        assert!(split_datagram(&netlink_header(NLMSG_DONE, 0, 40)).is_err());
        assert!(split_datagram(&[0; 7]).is_err());
        assert!(split_datagram(&[]).unwrap().is_empty());
    }

    #[test]
    fn error_detail_skips_the_echoed_request() {
        let message = nla(NLMSGERR_ATTR_MSG, b"Nexthop has invalid gateway\0");
        let offset = nla(2, &20u32.to_ne_bytes());

        // Capped: only the request's header is echoed.
        let mut capped = netlink_header(RTM_NEWROUTE, 0, 60);
        capped.extend(&offset);
        capped.extend(&message);
        assert_eq!(
            error_detail(NLM_F_ACK_TLVS | NLM_F_CAPPED, &capped).as_deref(),
            Some("Nexthop has invalid gateway")
        );

        // Not capped: the whole 22-byte request (padded to 24) comes first.
        let mut whole = netlink_header(RTM_NEWROUTE, 0, 22);
        whole.extend_from_slice(&[9; 8]);
        whole.extend(&message);
        assert_eq!(
            error_detail(NLM_F_ACK_TLVS, &whole).as_deref(),
            Some("Nexthop has invalid gateway")
        );

        assert_eq!(error_detail(NLM_F_CAPPED, &capped), None);
        assert_eq!(error_detail(NLM_F_ACK_TLVS | NLM_F_CAPPED, &[0; 4]), None);
        assert_eq!(ext_ack_message(&offset), None);
        assert_eq!(ext_ack_message(&nla(NLMSGERR_ATTR_MSG, b"\0")), None);
    }

    #[test]
    fn links_decode_name_flags_mtu_and_mac() {
        let mut link = LinkMessage::default();
        link.header.index = 3;
        link.header.flags = LinkFlags::Up | LinkFlags::LowerUp | LinkFlags::Broadcast;
        link.attributes = vec![
            LinkAttribute::IfName("eth0".into()),
            LinkAttribute::Mtu(9000),
            LinkAttribute::Address(vec![2, 0, 0, 0, 0, 1]),
        ];
        let mut payload = emit(&link);
        // An attribute the decoder cannot make sense of is skipped, not fatal.
        payload.extend(nla(4, &[1, 2]));
        assert_eq!(
            parse_link(&payload),
            Some(LinkInfo {
                name: "eth0".into(),
                index: 3,
                up: true,
                carrier: true,
                mtu: 9000,
                mac: Some([2, 0, 0, 0, 0, 1]),
            })
        );

        link.header.flags = LinkFlags::Loopback;
        link.attributes = vec![
            LinkAttribute::IfName("lo".into()),
            LinkAttribute::Mtu(65536),
            LinkAttribute::Address(vec![0; 6]),
        ];
        let lo = parse_link(&emit(&link)).unwrap();
        assert!(!lo.up && !lo.carrier);
        assert_eq!(lo.mac, None);

        link.attributes = vec![LinkAttribute::Mtu(1500)];
        assert_eq!(parse_link(&emit(&link)), None, "a link without a name");
    }

    #[test]
    fn addresses_prefer_local_over_peer() {
        let mut message = address_message(4, Ipv4Addr::new(192, 0, 2, 11), 24).unwrap();
        assert_eq!(
            parse_address(&emit(&message)),
            Some((4, Ipv4Addr::new(192, 0, 2, 11), 24))
        );
        message.attributes = vec![
            AddressAttribute::Address(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1))),
            AddressAttribute::Local(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 2))),
        ];
        assert_eq!(
            parse_address(&emit(&message)),
            Some((4, Ipv4Addr::new(198, 51, 100, 2), 24))
        );
        message.header.family = AddressFamily::Inet6;
        assert_eq!(parse_address(&emit(&message)), None);
    }

    #[test]
    fn addresses_of_both_families_with_their_flags() {
        let v4 = address_message(4, Ipv4Addr::new(192, 0, 2, 100), 24).unwrap();
        assert_eq!(
            parse_address_info(&emit(&v4)),
            Some(AddressInfo {
                index: 4,
                address: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 100)),
                prefix_len: 24,
                tentative: false,
                dad_failed: false,
            })
        );

        let a: Ipv6Addr = "2001:db8::100".parse().unwrap();
        let mut v6 = address_message6(5, a, 64).unwrap();
        // What the kernel sends back: IFA_ADDRESS, and the flags in both places.
        v6.attributes = vec![
            AddressAttribute::Address(IpAddr::V6(a)),
            AddressAttribute::Flags(AddressFlags::Tentative | AddressFlags::Permanent),
        ];
        v6.header.flags = AddressHeaderFlags::Tentative;
        let info = parse_address_info(&emit(&v6)).unwrap();
        assert_eq!(
            (info.index, info.address, info.prefix_len),
            (5, IpAddr::V6(a), 64)
        );
        assert!(info.tentative && !info.dad_failed, "{info:?}");

        // Only the header's flags (a kernel before 3.14 sends no IFA_FLAGS).
        v6.attributes = vec![AddressAttribute::Address(IpAddr::V6(a))];
        v6.header.flags = AddressHeaderFlags::Dadfailed;
        let info = parse_address_info(&emit(&v6)).unwrap();
        assert!(!info.tentative && info.dad_failed, "{info:?}");

        let err = address_message6(5, a, 129).unwrap_err();
        assert_eq!(err, "prefix length 129 is out of range (0 to 128)");
        let mut other = v4;
        other.header.family = AddressFamily::Packet;
        assert_eq!(parse_address_info(&emit(&other)), None);
    }

    fn route(table: u8, attributes: Vec<RouteAttribute>) -> RouteMessage {
        let mut route = RouteMessage::default();
        route.header.address_family = AddressFamily::Inet;
        route.header.table = table;
        route.header.kind = RouteType::Unicast;
        route.attributes = attributes;
        route
    }

    #[test]
    fn default_routes_come_from_the_main_table_with_a_gateway() {
        let gw = Ipv4Addr::new(192, 0, 2, 1);
        let main = route(
            RouteHeader::RT_TABLE_MAIN,
            vec![
                RouteAttribute::Table(254),
                RouteAttribute::Priority(100),
                RouteAttribute::Gateway(RouteAddress::Inet(gw)),
                RouteAttribute::Oif(2),
            ],
        );
        assert_eq!(
            parse_default_route(&emit(&main)),
            Some(DefaultRoute {
                gateway: gw,
                oif: 2,
                metric: 100
            })
        );

        let other_table = route(
            0,
            vec![
                RouteAttribute::Table(1000),
                RouteAttribute::Gateway(RouteAddress::Inet(gw)),
                RouteAttribute::Oif(2),
            ],
        );
        assert_eq!(parse_default_route(&emit(&other_table)), None);

        let device_only = route(RouteHeader::RT_TABLE_MAIN, vec![RouteAttribute::Oif(2)]);
        assert_eq!(parse_default_route(&emit(&device_only)), None);

        let mut subnet = main.clone();
        subnet.header.destination_prefix_length = 24;
        assert_eq!(parse_default_route(&emit(&subnet)), None);

        let mut local = main;
        local.header.kind = RouteType::Local;
        assert_eq!(parse_default_route(&emit(&local)), None);
    }
}
