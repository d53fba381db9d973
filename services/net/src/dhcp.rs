//! DHCPv4 client (RFC 2131) for one interface.
//!
//! [`DhcpClient`] is a pure state machine: packets and timeouts go in, packets to send and
//! lease changes come out, and the caller owns the clock and the event loop. [`DhcpSocket`]
//! does the I/O for one interface; [`step`] and [`run_until_bound`] glue the two together
//! for callers that have no event loop of their own.
//!
//! The client does not configure anything itself: [`DhcpAction::Bound`] and
//! [`DhcpAction::Lost`] tell the caller what to install or remove.

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use dhcproto::v4::{DhcpOption, Flags, HType, Message, MessageType, Opcode, OptionCode};
use dhcproto::{Decodable, Encodable};

const SERVER_PORT: u16 = 67;
const CLIENT_PORT: u16 = 68;

/// First retransmission delay in Selecting and Requesting (RFC 2131 §4.1).
const INITIAL_BACKOFF: Duration = Duration::from_secs(4);
const MAX_BACKOFF: Duration = Duration::from_secs(64);
/// Spreads the retransmissions of clients that started together (RFC 2131 §4.1).
const JITTER_MS: u64 = 1000;
/// REQUESTs sent for one OFFER before the client assumes the server is gone and starts over.
const REQUEST_ATTEMPTS: u32 = 4;
/// RFC 2131 §4.4.5's floor for retransmissions while Renewing or Rebinding.
const RFC_RENEW_FLOOR: Duration = Duration::from_secs(60);
/// Some servers and relays still drop BOOTP messages shorter than this (RFC 1542 §2.1).
const MIN_MESSAGE_LEN: usize = 300;

/// What the lease gives.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Lease {
    pub address: Ipv4Addr,
    pub prefix_len: u8,
    pub router: Option<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    pub hostname: Option<String>,
    pub mtu: Option<u16>,
    pub server: Ipv4Addr,
    pub lease_time: Duration,
    /// T1: when to start renewing, counted from the REQUEST that obtained the lease
    /// (the server's option 58, or half the lease).
    pub renew_at: Duration,
    /// T2: when to start rebinding (the server's option 59, or 7/8 of the lease).
    pub rebind_at: Duration,
}

/// The states of RFC 2131 figure 5 that a client without a remembered lease goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum State {
    Init,
    Selecting,
    Requesting,
    Bound,
    Renewing,
    Rebinding,
}

/// What the caller has to do after feeding the client an event.
#[derive(Debug, Clone, PartialEq)]
pub enum DhcpAction {
    /// Send to 255.255.255.255:67 from port 68 (Selecting, Requesting, Rebinding). The
    /// IP source is the message's `ciaddr`: 0.0.0.0 until a lease is held.
    Broadcast(Vec<u8>),
    /// Send to the server's port 67 (Renewing).
    Unicast(Ipv4Addr, Vec<u8>),
    /// Configure this lease (new, or renewed with different values). A renewal that changes
    /// nothing produces no action, so the address must not be given a kernel lifetime:
    /// [`DhcpAction::Lost`] says when it ends.
    Bound(Lease),
    /// The lease expired or was NAKed: remove the address (and route).
    Lost(Lease),
}

/// The DHCPv4 client state machine. Time is passed in, randomness (xids and jitter) comes
/// from the seed, so the same inputs always give the same outputs.
///
/// Retransmission: in Selecting and Requesting a message is repeated after 4 s, 8 s, 16 s,
/// 32 s, then every 64 s, each ±1 s. In Renewing and Rebinding the REQUEST is repeated after
/// half the time left until T2 (Renewing) or the lease's end (Rebinding), but no sooner than
/// a floor: the 60 s of RFC 2131 §4.4.5, lowered to a tenth of the lease time for leases
/// shorter than 600 s so that a short lease still gets several attempts. The last wait is cut
/// at the boundary so the state changes on time.
#[derive(Debug)]
pub struct DhcpClient {
    mac: [u8; 6],
    hostname: Option<String>,
    rng: SplitMix64,
    state: State,
    xid: u32,
    /// Start of the current exchange: the `secs` field counts from here.
    exchange_start: Instant,
    /// Retransmissions of the current message so far.
    attempts: u32,
    deadline: Option<Instant>,
    /// (server, address) of the OFFER being requested.
    offer: Option<(Ipv4Addr, Ipv4Addr)>,
    /// First transmission of the REQUEST now awaiting an answer. The lease's times count
    /// from here (RFC 2131 §4.4.1): the server started the lease no earlier.
    request_sent: Instant,
    lease: Option<Lease>,
    lease_start: Instant,
    /// NAKs since the last lease: they space out restarts so that a confused server cannot
    /// keep the client in a tight DISCOVER-REQUEST-NAK loop.
    naks: u32,
}

impl DhcpClient {
    pub fn new(mac: [u8; 6], hostname: Option<String>, seed: u64) -> Self {
        let now = Instant::now();
        let mut rng = SplitMix64(seed);
        let xid = rng.next_u32();
        DhcpClient {
            mac,
            hostname: hostname.filter(|h| !h.is_empty()),
            rng,
            state: State::Init,
            xid,
            exchange_start: now,
            attempts: 0,
            deadline: None,
            offer: None,
            request_sent: now,
            lease: None,
            lease_start: now,
            naks: 0,
        }
    }

    /// Starts (or restarts) address acquisition with a DISCOVER. A lease still held is
    /// given up first.
    pub fn start(&mut self, now: Instant) -> Vec<DhcpAction> {
        let mut actions = Vec::new();
        if let Some(lease) = self.lease.take() {
            actions.push(DhcpAction::Lost(lease));
        }
        actions.extend(self.discover(now));
        actions
    }

    /// Handles a DHCP message received on port 68. Anything that is not a reply to this
    /// client's current transaction (xid and chaddr) is ignored.
    pub fn on_packet(&mut self, bytes: &[u8], now: Instant) -> Vec<DhcpAction> {
        let Ok(msg) = Message::from_bytes(bytes) else {
            return Vec::new();
        };
        if msg.opcode() != Opcode::BootReply
            || msg.xid() != self.xid
            || msg.chaddr().get(..6) != Some(&self.mac[..])
        {
            return Vec::new();
        }
        let Some(kind) = msg.opts().msg_type() else {
            return Vec::new();
        };
        match (self.state, kind) {
            (State::Selecting, MessageType::Offer) => self.on_offer(&msg, now),
            (State::Requesting | State::Renewing | State::Rebinding, MessageType::Ack) => {
                self.on_ack(&msg)
            }
            (State::Requesting | State::Renewing | State::Rebinding, MessageType::Nak) => {
                self.on_nak(&msg, now)
            }
            _ => Vec::new(),
        }
    }

    /// Handles the passing of [`DhcpClient::next_deadline`]; earlier calls do nothing.
    pub fn on_timeout(&mut self, now: Instant) -> Vec<DhcpAction> {
        if self.deadline.is_none_or(|d| now < d) {
            return Vec::new();
        }
        match self.state {
            State::Init => self.discover(now),
            State::Selecting => {
                self.attempts += 1;
                let packet = self.build_discover(now);
                self.deadline = Some(now + self.backoff());
                vec![DhcpAction::Broadcast(packet)]
            }
            State::Requesting if self.attempts + 1 >= REQUEST_ATTEMPTS => self.discover(now),
            State::Requesting => {
                self.attempts += 1;
                self.send_selecting_request(now)
            }
            State::Bound | State::Renewing | State::Rebinding => self.lease_timeout(now),
        }
    }

    /// When [`DhcpClient::on_timeout`] wants to be called; `None` before [`DhcpClient::start`].
    pub fn next_deadline(&self) -> Option<Instant> {
        self.deadline
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn lease(&self) -> Option<&Lease> {
        self.lease.as_ref()
    }

    fn discover(&mut self, now: Instant) -> Vec<DhcpAction> {
        self.state = State::Selecting;
        self.xid = self.rng.next_u32();
        self.exchange_start = now;
        self.attempts = 0;
        self.offer = None;
        let packet = self.build_discover(now);
        self.deadline = Some(now + self.backoff());
        vec![DhcpAction::Broadcast(packet)]
    }

    fn on_offer(&mut self, msg: &Message, now: Instant) -> Vec<DhcpAction> {
        let address = msg.yiaddr();
        let Some(server) = server_id(msg) else {
            return Vec::new();
        };
        if !usable_address(address) {
            return Vec::new();
        }
        // The first acceptable OFFER is taken: waiting to compare offers only delays the
        // common single-server network.
        self.state = State::Requesting;
        self.offer = Some((server, address));
        self.attempts = 0;
        self.request_sent = now;
        self.send_selecting_request(now)
    }

    fn send_selecting_request(&mut self, now: Instant) -> Vec<DhcpAction> {
        let Some((server, address)) = self.offer else {
            return self.discover(now);
        };
        let mut msg = self.message(MessageType::Request, now, Ipv4Addr::UNSPECIFIED, true);
        msg.opts_mut()
            .insert(DhcpOption::RequestedIpAddress(address));
        msg.opts_mut().insert(DhcpOption::ServerIdentifier(server));
        self.deadline = Some(now + self.backoff());
        vec![DhcpAction::Broadcast(encode(&msg))]
    }

    fn on_ack(&mut self, msg: &Message) -> Vec<DhcpAction> {
        let expected_server = match self.state {
            State::Requesting => self.offer.map(|(server, _)| server),
            State::Renewing => self.lease.as_ref().map(|l| l.server),
            _ => None,
        };
        let from = server_id(msg);
        if expected_server.is_some() && from.is_some() && from != expected_server {
            return Vec::new();
        }
        let Some(server) = from.or(expected_server) else {
            return Vec::new();
        };
        let Some(new) = lease_from_ack(msg, server) else {
            return Vec::new();
        };

        let mut actions = Vec::new();
        match self.lease.take() {
            Some(old) if old.address != new.address => {
                actions.push(DhcpAction::Lost(old));
                actions.push(DhcpAction::Bound(new.clone()));
            }
            Some(old) if old == new => {}
            _ => actions.push(DhcpAction::Bound(new.clone())),
        }
        self.state = State::Bound;
        self.offer = None;
        self.naks = 0;
        self.attempts = 0;
        self.lease_start = self.request_sent;
        self.deadline = self.lease_start.checked_add(new.renew_at);
        self.lease = Some(new);
        actions
    }

    fn on_nak(&mut self, msg: &Message, now: Instant) -> Vec<DhcpAction> {
        // In Rebinding any server may answer; before that only the one we talk to.
        let expected_server = match self.state {
            State::Requesting => self.offer.map(|(server, _)| server),
            State::Renewing => self.lease.as_ref().map(|l| l.server),
            _ => None,
        };
        if let (Some(expected), Some(from)) = (expected_server, server_id(msg)) {
            if expected != from {
                return Vec::new();
            }
        }
        let mut actions = Vec::new();
        if let Some(lease) = self.lease.take() {
            actions.push(DhcpAction::Lost(lease));
        }
        self.state = State::Init;
        self.offer = None;
        self.naks += 1;
        let delay = if self.naks == 1 {
            Duration::ZERO
        } else {
            self.attempts = self.naks - 2;
            self.backoff()
        };
        self.deadline = Some(now + delay);
        actions
    }

    fn lease_timeout(&mut self, now: Instant) -> Vec<DhcpAction> {
        let Some(lease) = self.lease.clone() else {
            return self.discover(now);
        };
        let t1 = self.lease_start.checked_add(lease.renew_at);
        let t2 = self.lease_start.checked_add(lease.rebind_at);
        let expiry = self.lease_start.checked_add(lease.lease_time);
        let floor = RFC_RENEW_FLOOR.min(lease.lease_time / 10);

        if expiry.is_some_and(|e| now >= e) {
            self.lease = None;
            let mut actions = vec![DhcpAction::Lost(lease)];
            actions.extend(self.discover(now));
            return actions;
        }
        if t2.is_some_and(|t| now >= t) {
            self.enter(State::Rebinding, now);
            let msg = self.message(MessageType::Request, now, lease.address, false);
            self.deadline = retransmit_at(now, expiry, floor);
            return vec![DhcpAction::Broadcast(encode(&msg))];
        }
        if t1.is_some_and(|t| now >= t) {
            self.enter(State::Renewing, now);
            let msg = self.message(MessageType::Request, now, lease.address, false);
            self.deadline = retransmit_at(now, t2, floor);
            return vec![DhcpAction::Unicast(lease.server, encode(&msg))];
        }
        self.deadline = t1;
        Vec::new()
    }

    /// Moves to Renewing or Rebinding; a new state is a new transaction, so that the lease
    /// times of its ACK count from its own first REQUEST.
    fn enter(&mut self, state: State, now: Instant) {
        if self.state == state {
            self.attempts += 1;
            return;
        }
        self.state = state;
        self.xid = self.rng.next_u32();
        self.exchange_start = now;
        self.request_sent = now;
        self.attempts = 0;
    }

    fn backoff(&mut self) -> Duration {
        let base = INITIAL_BACKOFF
            .checked_mul(1 << self.attempts.min(8))
            .map_or(MAX_BACKOFF, |d| d.min(MAX_BACKOFF));
        let jitter = self.rng.next_u64() % (2 * JITTER_MS + 1);
        base + Duration::from_millis(jitter) - Duration::from_millis(JITTER_MS)
    }

    fn build_discover(&self, now: Instant) -> Vec<u8> {
        encode(&self.message(MessageType::Discover, now, Ipv4Addr::UNSPECIFIED, true))
    }

    /// The fields and options every message of this client carries. `broadcast` asks the
    /// server to broadcast its reply, for the states where the address is not configured
    /// yet (RFC 2131 §4.1).
    fn message(
        &self,
        kind: MessageType,
        now: Instant,
        ciaddr: Ipv4Addr,
        broadcast: bool,
    ) -> Message {
        let unspecified = Ipv4Addr::UNSPECIFIED;
        let mut msg = Message::new_with_id(
            self.xid,
            ciaddr,
            unspecified,
            unspecified,
            unspecified,
            &self.mac,
        );
        let secs = now.saturating_duration_since(self.exchange_start).as_secs();
        let flags = if broadcast {
            Flags::default().set_broadcast()
        } else {
            Flags::default()
        };
        msg.set_opcode(Opcode::BootRequest)
            .set_htype(HType::Eth)
            .set_secs(u16::try_from(secs).unwrap_or(u16::MAX))
            .set_flags(flags);
        let opts = msg.opts_mut();
        opts.insert(DhcpOption::MessageType(kind));
        let mut client_id = vec![1];
        client_id.extend_from_slice(&self.mac);
        opts.insert(DhcpOption::ClientIdentifier(client_id));
        if let Some(hostname) = &self.hostname {
            opts.insert(DhcpOption::Hostname(hostname.clone()));
        }
        opts.insert(DhcpOption::ParameterRequestList(vec![
            OptionCode::SubnetMask,
            OptionCode::Router,
            OptionCode::DomainNameServer,
            OptionCode::Hostname,
            OptionCode::InterfaceMtu,
            OptionCode::AddressLeaseTime,
            OptionCode::Renewal,
            OptionCode::Rebinding,
        ]));
        msg
    }
}

fn encode(msg: &Message) -> Vec<u8> {
    // Encoding writes into a Vec and only fails on fields longer than their fixed size,
    // which the messages built here never have.
    let mut bytes = msg.to_vec().expect("DHCP message encodes");
    if bytes.len() < MIN_MESSAGE_LEN {
        bytes.resize(MIN_MESSAGE_LEN, 0);
    }
    bytes
}

fn retransmit_at(now: Instant, boundary: Option<Instant>, floor: Duration) -> Option<Instant> {
    let boundary = boundary?;
    let wait = (boundary.saturating_duration_since(now) / 2).max(floor);
    Some((now + wait).min(boundary))
}

fn server_id(msg: &Message) -> Option<Ipv4Addr> {
    match msg.opts().get(OptionCode::ServerIdentifier) {
        Some(DhcpOption::ServerIdentifier(id)) if !id.is_unspecified() => Some(*id),
        _ => None,
    }
}

fn usable_address(address: Ipv4Addr) -> bool {
    !(address.is_unspecified()
        || address.is_broadcast()
        || address.is_multicast()
        || address.is_loopback())
}

/// The lease an ACK grants, or `None` if the ACK is unusable (no address, no lease time,
/// a non-contiguous netmask).
fn lease_from_ack(msg: &Message, server: Ipv4Addr) -> Option<Lease> {
    let address = msg.yiaddr();
    if !usable_address(address) {
        return None;
    }
    let opts = msg.opts();
    let lease_secs = match opts.get(OptionCode::AddressLeaseTime) {
        Some(DhcpOption::AddressLeaseTime(secs)) if *secs > 0 => *secs,
        _ => return None,
    };
    let prefix_len = match opts.get(OptionCode::SubnetMask) {
        Some(DhcpOption::SubnetMask(mask)) => mask_prefix_len(*mask)?,
        // RFC 2132 gives no default; the classful mask is what other clients assume.
        _ => classful_prefix_len(address),
    };
    let router = match opts.get(OptionCode::Router) {
        Some(DhcpOption::Router(routers)) => routers.iter().copied().find(|r| !r.is_unspecified()),
        _ => None,
    };
    let dns = match opts.get(OptionCode::DomainNameServer) {
        Some(DhcpOption::DomainNameServer(servers)) => servers.clone(),
        _ => Vec::new(),
    };
    let hostname = match opts.get(OptionCode::Hostname) {
        Some(DhcpOption::Hostname(name)) if !name.is_empty() => Some(name.clone()),
        _ => None,
    };
    // 68 is the smallest MTU IPv4 allows (RFC 791); anything less is a broken option.
    let mtu = match opts.get(OptionCode::InterfaceMtu) {
        Some(DhcpOption::InterfaceMtu(mtu)) if *mtu >= 68 => Some(*mtu),
        _ => None,
    };

    let lease_time = Duration::from_secs(lease_secs.into());
    let seconds = |code| match opts.get(code) {
        Some(DhcpOption::Renewal(s) | DhcpOption::Rebinding(s)) => {
            Some(Duration::from_secs((*s).into()))
        }
        _ => None,
    };
    // RFC 2131 §4.4.5 requires T1 < T2 < lease time; a server value that breaks the order
    // is replaced by the default.
    let rebind_at = seconds(OptionCode::Rebinding)
        .filter(|t2| *t2 < lease_time)
        .unwrap_or(lease_time * 7 / 8);
    let renew_at = seconds(OptionCode::Renewal)
        .filter(|t1| *t1 < rebind_at)
        .unwrap_or((lease_time / 2).min(rebind_at));

    Some(Lease {
        address,
        prefix_len,
        router,
        dns,
        hostname,
        mtu,
        server,
        lease_time,
        renew_at,
        rebind_at,
    })
}

fn mask_prefix_len(mask: Ipv4Addr) -> Option<u8> {
    let bits = u32::from(mask);
    let len = bits.leading_ones();
    (bits.checked_shl(len).unwrap_or(0) == 0).then_some(len as u8)
}

fn classful_prefix_len(address: Ipv4Addr) -> u8 {
    match address.octets()[0] {
        0..=127 => 8,
        128..=191 => 16,
        _ => 24,
    }
}

/// Small, seedable generator: xids and jitter need to differ between clients, not to be
/// unpredictable, and tests need them repeatable.
#[derive(Debug)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }
}

// ---------------------------------------------------------------------------------------
// I/O
// ---------------------------------------------------------------------------------------

/// The DHCP client's sockets on one interface.
///
/// A kernel UDP socket alone cannot do the job, so:
/// - Broadcasts go out through an AF_PACKET socket with IP and UDP headers built here. A
///   kernel UDP socket bound to the device does send a limited broadcast on an interface
///   without an address, but the kernel then picks its source address, and takes an address
///   of *another* interface if one has any; RFC 2131 §4.1 wants 0.0.0.0 before the client
///   has an address.
/// - Everything is received through the same AF_PACKET socket, filtered in the kernel down
///   to UDP datagrams for port 68. Servers that ignore the BROADCAST flag, and all answers
///   to renewals, are unicast to an address that may not be configured (yet, or at all),
///   and the kernel's IP stack drops those.
/// - Unicasts (Renewing) go through a short-lived kernel UDP socket bound to the device and
///   to the leased address (IP_TRANSPARENT, so the address need not be configured), so that
///   the kernel routes them and resolves the next hop, and the server sees the leased
///   address as source: from 0.0.0.0 a unicast is a martian that servers' kernels drop.
///   (In a namespace with no IPv4 address at all, not even 127.0.0.1 on `lo`, the kernel
///   takes any bound address for a broadcast one and sends from 0.0.0.0 regardless.)
/// - A kernel UDP socket on 0.0.0.0:68 bound to the device (SO_BINDTODEVICE, SO_BROADCAST,
///   SO_REUSEADDR) keeps port 68 taken so that the kernel does not answer the server with
///   ICMP port unreachable; a drop-all filter keeps it from queueing the copies that the
///   packet socket already delivers.
/// - Once the leased address is on the interface, the owner calls
///   [`DhcpSocket::listen_on_port`]: the packet socket is closed and the UDP socket
///   receives (a renewal's answer is unicast to that address, a rebinding's may be a
///   broadcast: the socket on 0.0.0.0:68 gets both). An open packet socket for IP runs its
///   filter on every IP packet the interface receives, the iSCSI traffic of a storage
///   controller included, which cost reads through the portal about 5 % under emulation.
///   The next broadcast (rebinding, or a new lease) opens the packet socket again.
///
/// All of this needs CAP_NET_RAW.
#[derive(Debug)]
pub struct DhcpSocket {
    interface: String,
    ifindex: i32,
    /// `None` while listening on the port (see [`DhcpSocket::listen_on_port`]).
    packet: Option<OwnedFd>,
    /// Holds port 68; receives only while `packet` is closed.
    port: UdpSocket,
}

impl DhcpSocket {
    pub fn open(interface: &str) -> io::Result<DhcpSocket> {
        let ifindex = interface_index(interface)?;
        let port = open_udp(interface, Ipv4Addr::UNSPECIFIED)?;
        let packet = open_packet(ifindex)?;
        Ok(DhcpSocket {
            interface: interface.to_owned(),
            ifindex,
            packet: Some(packet),
            port,
        })
    }

    /// Receives on the UDP port from now on and closes the packet socket. Only for when
    /// the leased address is configured on the interface: the kernel drops a unicast to an
    /// address it does not have.
    pub fn listen_on_port(&mut self) -> io::Result<()> {
        if self.packet.is_none() {
            return Ok(());
        }
        // The port listens before the packet socket goes, so that no answer falls between.
        let zero: libc::c_int = 0;
        set_opt(&self.port, libc::SOL_SOCKET, libc::SO_DETACH_FILTER, &zero)?;
        self.packet = None;
        Ok(())
    }

    /// The packet socket, opened again if the client was listening on the port (before a
    /// broadcast: the client may be about to lose its address).
    fn packet_socket(&mut self) -> io::Result<&OwnedFd> {
        if self.packet.is_none() {
            let packet = open_packet(self.ifindex)?;
            attach_filter(&self.port, &DROP_ALL)?;
            // What the port still holds answers an exchange that this broadcast replaces:
            // dropped, it costs at most a retransmission; kept, it would be read later, out
            // of turn, if the port takes over again.
            let mut buf = [0u8; 2048];
            while self.port.recv(&mut buf).is_ok() {}
            self.packet = Some(packet);
        }
        Ok(self.packet.as_ref().expect("opened above"))
    }

    /// Whether messages arrive through the packet socket (true) or the UDP port (false).
    pub fn on_link(&self) -> bool {
        self.packet.is_some()
    }

    /// Sends the packet of a [`DhcpAction::Broadcast`] or [`DhcpAction::Unicast`]; the other
    /// actions are not packets and are ignored, so every action may be passed in.
    pub fn send(&mut self, action: &DhcpAction) -> io::Result<()> {
        match action {
            DhcpAction::Broadcast(payload) => self.send_broadcast(payload),
            DhcpAction::Unicast(server, payload) => {
                let socket = open_udp(&self.interface, ciaddr(payload))?;
                let to = SocketAddrV4::new(*server, SERVER_PORT);
                socket.send_to(payload, to).map(drop)
            }
            DhcpAction::Bound(_) | DhcpAction::Lost(_) => Ok(()),
        }
    }

    /// Sends every packet among `actions`. Failures that a later retransmission can get past
    /// (link down, no route yet, full queue) count as lost packets; others are returned.
    pub fn send_all(&mut self, actions: &[DhcpAction]) -> io::Result<()> {
        for action in actions {
            if let Err(e) = self.send(action) {
                if !is_transient(&e) {
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// The next DHCP message received on port 68, or `None` if nothing is waiting.
    pub fn recv(&self) -> io::Result<Option<Vec<u8>>> {
        // Jumbo frames are common on storage networks; a datagram cannot exceed this.
        let mut buf = vec![0u8; 65536];
        let Some(packet_socket) = &self.packet else {
            return match self.port.recv(&mut buf) {
                Ok(len) => Ok(Some(buf[..len].to_vec())),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(None),
                Err(e) => Err(e),
            };
        };
        loop {
            let received = match recv_packet(packet_socket, &mut buf) {
                Ok(received) => received,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // The packet socket reports a link going down once, then receives again
                // when it comes back up.
                Err(e) if e.raw_os_error() == Some(libc::ENETDOWN) => return Ok(None),
                Err(e) => return Err(e),
            };
            if received.outgoing || received.truncated {
                continue;
            }
            let packet = &buf[..received.len];
            if let Some(payload) = udp_payload(packet, received.checksum_ready) {
                return Ok(Some(payload.to_vec()));
            }
        }
    }

    /// Readable when [`DhcpSocket::recv`] may have something.
    pub fn as_fd(&self) -> BorrowedFd<'_> {
        match &self.packet {
            Some(packet) => packet.as_fd(),
            None => self.port.as_fd(),
        }
    }

    fn send_broadcast(&mut self, payload: &[u8]) -> io::Result<()> {
        let ifindex = self.ifindex;
        let packet = self.packet_socket()?;
        let datagram = ipv4_udp(
            ciaddr(payload),
            Ipv4Addr::BROADCAST,
            CLIENT_PORT,
            SERVER_PORT,
            payload,
        );
        let mut addr = link_addr(ifindex);
        addr.sll_halen = 6;
        addr.sll_addr[..6].copy_from_slice(&[0xff; 6]);
        // SAFETY: the buffer and the address are valid for the lengths passed.
        let sent = unsafe {
            libc::sendto(
                packet.as_raw_fd(),
                datagram.as_ptr().cast(),
                datagram.len(),
                0,
                (&raw const addr).cast(),
                size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

impl AsFd for DhcpSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        DhcpSocket::as_fd(self)
    }
}

/// The `ciaddr` of a DHCP message: the address the client holds, which is the IP source its
/// messages must have (RFC 2131 §4.1); 0.0.0.0 before it has a lease.
fn ciaddr(payload: &[u8]) -> Ipv4Addr {
    payload.get(12..16).map_or(Ipv4Addr::UNSPECIFIED, |b| {
        Ipv4Addr::new(b[0], b[1], b[2], b[3])
    })
}

fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(
            libc::ENETDOWN
                | libc::ENETUNREACH
                | libc::EHOSTUNREACH
                | libc::ENOBUFS
                | libc::EAGAIN
                | libc::EINTR
                | libc::ENXIO
                | libc::EADDRNOTAVAIL
        )
    )
}

/// The hardware address of `interface`, as [`DhcpClient::new`] wants it. Asked of the kernel
/// rather than read from sysfs, so that it answers for the caller's network namespace.
pub fn hardware_address(interface: &str) -> io::Result<[u8; 6]> {
    let sock = nix::sys::socket::socket(
        nix::sys::socket::AddressFamily::Inet,
        nix::sys::socket::SockType::Datagram,
        nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    let name = interface.as_bytes();
    // SAFETY: ifreq is plain data for which all zeroes is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    if name.is_empty() || name.len() >= req.ifr_name.len() || name.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("bad interface name {interface:?}"),
        ));
    }
    for (dst, src) in req.ifr_name.iter_mut().zip(name) {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFHWADDR reads the name from and writes a sockaddr into `req`.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFHWADDR, &mut req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel filled the hwaddr member of the union.
    let hw = unsafe { req.ifr_ifru.ifru_hwaddr };
    if hw.sa_family != libc::ARPHRD_ETHER {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("{interface} is not an Ethernet interface"),
        ));
    }
    let mut mac = [0u8; 6];
    for (dst, src) in mac.iter_mut().zip(hw.sa_data) {
        *dst = src as u8;
    }
    Ok(mac)
}

/// One turn of an event loop: waits for a packet or the client's next deadline (but not
/// past `until`), feeds what happened to the client, sends the packets it asks for and
/// returns all its actions (the packets among them already sent).
pub fn step(
    client: &mut DhcpClient,
    socket: &mut DhcpSocket,
    until: Instant,
) -> io::Result<Vec<DhcpAction>> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

    let now = Instant::now();
    let wake = client.next_deadline().map_or(until, |d| d.min(until));
    // Rounded up: waking a millisecond early would find the deadline not yet reached.
    let wait_ms = wake
        .saturating_duration_since(now)
        .as_micros()
        .div_ceil(1000);
    let timeout = PollTimeout::try_from(wait_ms).unwrap_or(PollTimeout::MAX);
    let mut fds = [PollFd::new(socket.as_fd(), PollFlags::POLLIN)];
    match poll(&mut fds, timeout) {
        Ok(_) => {}
        Err(nix::errno::Errno::EINTR) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    }

    let mut actions = Vec::new();
    if fds[0].any().unwrap_or(false) {
        while let Some(packet) = socket.recv()? {
            actions.extend(client.on_packet(&packet, Instant::now()));
        }
    }
    let now = Instant::now();
    if client.next_deadline().is_some_and(|d| now >= d) {
        actions.extend(client.on_timeout(now));
    }
    socket.send_all(&actions)?;
    Ok(actions)
}

/// Runs the client on `interface` until it is bound or `limit` passes, and returns the
/// lease. Nothing is configured: the caller installs the lease, and nothing renews it.
pub fn run_until_bound(interface: &str, mac: [u8; 6], limit: Duration) -> Result<Lease, String> {
    let end = Instant::now() + limit;
    let mut socket = DhcpSocket::open(interface)
        .map_err(|e| format!("opening the DHCP sockets on {interface}: {e}"))?;
    let mut client = DhcpClient::new(mac, None, random_seed(&mac));
    let first = client.start(Instant::now());
    socket
        .send_all(&first)
        .map_err(|e| format!("sending DHCPDISCOVER on {interface}: {e}"))?;
    while Instant::now() < end {
        let actions =
            step(&mut client, &mut socket, end).map_err(|e| format!("DHCP on {interface}: {e}"))?;
        for action in actions {
            if let DhcpAction::Bound(lease) = action {
                return Ok(lease);
            }
        }
    }
    Err(format!(
        "no DHCP lease on {interface} within {limit:?} (client state {:?})",
        client.state()
    ))
}

fn random_seed(mac: &[u8; 6]) -> u64 {
    let mut seed = [0u8; 8];
    // SAFETY: the buffer is valid for its length.
    let got = unsafe { libc::getrandom(seed.as_mut_ptr().cast(), seed.len(), 0) };
    if got == 8 {
        return u64::from_ne_bytes(seed);
    }
    // Without getrandom, distinct clients only need distinct seeds.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut mac_bits = [0u8; 8];
    mac_bits[..6].copy_from_slice(mac);
    nanos ^ u64::from_ne_bytes(mac_bits) ^ u64::from(std::process::id()) << 48
}

fn interface_index(interface: &str) -> io::Result<i32> {
    let name = std::ffi::CString::new(interface)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "interface name has a NUL"))?;
    // SAFETY: the name is NUL-terminated.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if index == 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("interface {interface}: {e}"),
        ));
    }
    i32::try_from(index).map_err(|_| io::Error::other("interface index out of range"))
}

/// A UDP socket on `source`:68 bound to `interface`.
fn open_udp(interface: &str, source: Ipv4Addr) -> io::Result<UdpSocket> {
    use nix::sys::socket::{setsockopt, socket, sockopt, AddressFamily, SockFlag, SockType};

    let fd = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )?;
    // Other sockets on port 68 (a client on another interface) must not keep this one out.
    setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    setsockopt(&fd, sockopt::Broadcast, &true)?;
    setsockopt(
        &fd,
        sockopt::BindToDevice,
        &std::ffi::OsString::from(interface),
    )?;
    attach_filter(&fd, &DROP_ALL)?;
    if !source.is_unspecified() {
        let one: libc::c_int = 1;
        set_opt(&fd, libc::SOL_IP, libc::IP_TRANSPARENT, &one)?;
    }
    // SAFETY: plain data, all zeroes valid.
    let mut addr: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    addr.sin_family = libc::AF_INET as libc::sa_family_t;
    addr.sin_port = CLIENT_PORT.to_be();
    addr.sin_addr.s_addr = u32::from(source).to_be();
    // SAFETY: the address is a valid sockaddr_in of the length passed.
    let bound = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&raw const addr).cast(),
            size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    if bound < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(UdpSocket::from(fd))
}

fn open_packet(ifindex: i32) -> io::Result<OwnedFd> {
    // Protocol 0: the socket receives nothing until it is bound, by which time the filter is
    // in place, so no other traffic is ever queued on it.
    // SAFETY: plain socket(2) call.
    let raw = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            0,
        )
    };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a fresh descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    attach_filter(&fd, &DHCP_CLIENT_FILTER)?;
    // Tells whether the UDP checksum of a received packet was filled in yet: packets from
    // a local sender (veth, bridges) may still carry only the partial checksum.
    let one: libc::c_int = 1;
    set_opt(&fd, libc::SOL_PACKET, libc::PACKET_AUXDATA, &one)?;
    let addr = link_addr(ifindex);
    // SAFETY: the address is a valid sockaddr_ll of the length passed.
    let bound = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&raw const addr).cast(),
            size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if bound < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

fn link_addr(ifindex: i32) -> libc::sockaddr_ll {
    // SAFETY: sockaddr_ll is plain data for which all zeroes is a valid value.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_protocol = (libc::ETH_P_IP as u16).to_be();
    addr.sll_ifindex = ifindex;
    addr
}

fn set_opt<T>(fd: impl AsFd, level: libc::c_int, name: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: `value` is valid for the size passed.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_fd().as_raw_fd(),
            level,
            name,
            (value as *const T).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn attach_filter(fd: impl AsFd, program: &[libc::sock_filter]) -> io::Result<()> {
    let prog = libc::sock_fprog {
        len: program.len() as u16,
        filter: program.as_ptr().cast_mut(),
    };
    set_opt(fd, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &prog)
}

const fn bpf(code: u32, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    }
}

/// Accepts unfragmented IPv4 UDP datagrams for port 68. A packet socket of type SOCK_DGRAM
/// filters from the IP header on.
const DHCP_CLIENT_FILTER: [libc::sock_filter; 9] = [
    // protocol == UDP
    bpf(libc::BPF_LD | libc::BPF_B | libc::BPF_ABS, 0, 0, 9),
    bpf(libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K, 0, 6, 17),
    // fragment offset == 0
    bpf(libc::BPF_LD | libc::BPF_H | libc::BPF_ABS, 0, 0, 6),
    bpf(libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K, 4, 0, 0x1fff),
    // X = IP header length; destination port == 68
    bpf(libc::BPF_LDX | libc::BPF_B | libc::BPF_MSH, 0, 0, 0),
    bpf(libc::BPF_LD | libc::BPF_H | libc::BPF_IND, 0, 0, 2),
    bpf(
        libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K,
        0,
        1,
        CLIENT_PORT as u32,
    ),
    bpf(libc::BPF_RET | libc::BPF_K, 0, 0, u32::MAX),
    bpf(libc::BPF_RET | libc::BPF_K, 0, 0, 0),
];

const DROP_ALL: [libc::sock_filter; 1] = [bpf(libc::BPF_RET | libc::BPF_K, 0, 0, 0)];

struct Received {
    len: usize,
    truncated: bool,
    outgoing: bool,
    checksum_ready: bool,
}

fn recv_packet(fd: &OwnedFd, buf: &mut [u8]) -> io::Result<Received> {
    // SAFETY: plain data, all zeroes valid.
    let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    // u64 elements keep the control buffer aligned for cmsghdr.
    let mut control = [0u64; 16];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: plain data, all zeroes valid.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = (&raw mut from).cast();
    msg.msg_namelen = size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    msg.msg_iov = &raw mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = size_of_val(&control);
    // SAFETY: every pointer in `msg` is valid for the lengths given.
    let n = unsafe { libc::recvmsg(fd.as_raw_fd(), &raw mut msg, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut checksum_ready = true;
    // SAFETY: the kernel wrote `msg_controllen` bytes of well-formed control messages.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&raw const msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_PACKET && (*cmsg).cmsg_type == libc::PACKET_AUXDATA {
                let aux: libc::tpacket_auxdata =
                    std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                checksum_ready = aux.tp_status & libc::TP_STATUS_CSUMNOTREADY == 0;
            }
            cmsg = libc::CMSG_NXTHDR(&raw const msg, cmsg);
        }
    }
    Ok(Received {
        len: n as usize,
        truncated: msg.msg_flags & libc::MSG_TRUNC != 0,
        outgoing: from.sll_pkttype == libc::PACKET_OUTGOING,
        checksum_ready,
    })
}

/// The UDP payload of an IPv4 packet for port 68, if the packet is well formed. The UDP
/// checksum is checked only when `verify_udp_checksum` (the kernel has not always filled it
/// in for locally sent packets) and the sender set one.
fn udp_payload(packet: &[u8], verify_udp_checksum: bool) -> Option<&[u8]> {
    let header_len = usize::from(packet.first()? & 0x0f) * 4;
    if packet[0] >> 4 != 4 || header_len < 20 || packet.len() < header_len + 8 {
        return None;
    }
    let total_len = usize::from(u16::from_be_bytes([packet[2], packet[3]]));
    // Ethernet pads short frames, so the packet may be longer than its IP length.
    if total_len < header_len + 8 || total_len > packet.len() {
        return None;
    }
    let fragment = u16::from_be_bytes([packet[6], packet[7]]) & 0x3fff;
    if packet[9] != 17 || fragment != 0 || checksum(&[&packet[..header_len]]) != 0 {
        return None;
    }
    let udp = &packet[header_len..total_len];
    let dst_port = u16::from_be_bytes([udp[2], udp[3]]);
    let udp_len = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
    if dst_port != CLIENT_PORT || udp_len < 8 || udp_len > udp.len() {
        return None;
    }
    let udp = &udp[..udp_len];
    if verify_udp_checksum && udp[6..8] != [0, 0] {
        let pseudo = pseudo_header(&packet[12..16], &packet[16..20], udp_len);
        if checksum(&[&pseudo, udp]) != 0 {
            return None;
        }
    }
    Some(&udp[8..])
}

/// An IPv4 packet carrying one UDP datagram, checksums filled in.
fn ipv4_udp(src: Ipv4Addr, dst: Ipv4Addr, src_port: u16, dst_port: u16, payload: &[u8]) -> Vec<u8> {
    let udp_len = 8 + payload.len();
    let total_len = 20 + udp_len;
    let mut packet = Vec::with_capacity(total_len);
    packet.extend_from_slice(&[0x45, 0]);
    packet.extend_from_slice(&(total_len as u16).to_be_bytes());
    packet.extend_from_slice(&[0, 0, 0, 0]); // identification, flags, fragment offset
    packet.extend_from_slice(&[64, 17, 0, 0]); // TTL, protocol, checksum
    packet.extend_from_slice(&src.octets());
    packet.extend_from_slice(&dst.octets());
    let ip_checksum = checksum(&[&packet]);
    packet[10..12].copy_from_slice(&ip_checksum.to_be_bytes());

    packet.extend_from_slice(&src_port.to_be_bytes());
    packet.extend_from_slice(&dst_port.to_be_bytes());
    packet.extend_from_slice(&(udp_len as u16).to_be_bytes());
    packet.extend_from_slice(&[0, 0]);
    packet.extend_from_slice(payload);
    let pseudo = pseudo_header(&src.octets(), &dst.octets(), udp_len);
    let udp_checksum = match checksum(&[&pseudo, &packet[20..]]) {
        // Zero means "no checksum" in UDP; its ones' complement twin says the same sum.
        0 => 0xffff,
        sum => sum,
    };
    packet[26..28].copy_from_slice(&udp_checksum.to_be_bytes());
    packet
}

fn pseudo_header(src: &[u8], dst: &[u8], udp_len: usize) -> [u8; 12] {
    let mut pseudo = [0u8; 12];
    pseudo[..4].copy_from_slice(src);
    pseudo[4..8].copy_from_slice(dst);
    pseudo[9] = 17;
    pseudo[10..].copy_from_slice(&(udp_len as u16).to_be_bytes());
    pseudo
}

/// The Internet checksum (RFC 1071) of the concatenated parts; each part but the last must
/// have an even length. Over data that includes its checksum field it is 0 when valid.
fn checksum(parts: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    for part in parts {
        let mut words = part.chunks_exact(2);
        for word in &mut words {
            sum += u32::from(u16::from_be_bytes([word[0], word[1]]));
        }
        if let [last] = words.remainder() {
            sum += u32::from(*last) << 8;
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0x02, 0x00, 0x00, 0xaa, 0xbb, 0xcc];
    const SERVER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const OFFERED: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 50);

    fn decode(bytes: &[u8]) -> Message {
        Message::from_bytes(bytes).expect("client sends valid DHCP")
    }

    fn only_packet(actions: &[DhcpAction]) -> (Option<Ipv4Addr>, Message) {
        assert_eq!(actions.len(), 1, "expected one packet, got {actions:?}");
        match &actions[0] {
            DhcpAction::Broadcast(bytes) => (None, decode(bytes)),
            DhcpAction::Unicast(to, bytes) => (Some(*to), decode(bytes)),
            other => panic!("expected a packet, got {other:?}"),
        }
    }

    fn reply(kind: MessageType, xid: u32, yiaddr: Ipv4Addr, lease_secs: Option<u32>) -> Message {
        let zero = Ipv4Addr::UNSPECIFIED;
        let mut msg = Message::new_with_id(xid, zero, yiaddr, SERVER, zero, &MAC);
        msg.set_opcode(Opcode::BootReply);
        let opts = msg.opts_mut();
        opts.insert(DhcpOption::MessageType(kind));
        opts.insert(DhcpOption::ServerIdentifier(SERVER));
        if let Some(secs) = lease_secs {
            opts.insert(DhcpOption::AddressLeaseTime(secs));
            opts.insert(DhcpOption::SubnetMask(Ipv4Addr::new(255, 255, 255, 0)));
            opts.insert(DhcpOption::Router(vec![SERVER]));
            opts.insert(DhcpOption::DomainNameServer(vec![
                Ipv4Addr::new(10, 0, 0, 2),
                Ipv4Addr::new(10, 0, 0, 3),
            ]));
            opts.insert(DhcpOption::InterfaceMtu(9000));
            opts.insert(DhcpOption::Hostname("nas".into()));
        }
        msg
    }

    fn bytes(msg: &Message) -> Vec<u8> {
        msg.to_vec().unwrap()
    }

    fn option(msg: &Message, code: OptionCode) -> Option<&DhcpOption> {
        msg.opts().get(code)
    }

    /// A client in Requesting, with the xid of its transaction and the time of its REQUEST.
    fn requesting(t0: Instant) -> (DhcpClient, u32) {
        let mut client = DhcpClient::new(MAC, Some("star".into()), 7);
        let (_, discover) = only_packet(&client.start(t0));
        let xid = discover.xid();
        let offer = reply(MessageType::Offer, xid, OFFERED, Some(3600));
        client.on_packet(&bytes(&offer), t0);
        assert_eq!(client.state(), State::Requesting);
        (client, xid)
    }

    /// A client bound at `t0` with a lease of `lease_secs`.
    fn bound(t0: Instant, lease_secs: u32) -> DhcpClient {
        let (mut client, xid) = requesting(t0);
        let ack = reply(MessageType::Ack, xid, OFFERED, Some(lease_secs));
        let actions = client.on_packet(&bytes(&ack), t0 + Duration::from_millis(10));
        assert!(matches!(actions.as_slice(), [DhcpAction::Bound(_)]));
        client
    }

    #[test]
    fn discover_carries_identity_and_requests_options() {
        let t0 = Instant::now();
        let mut client = DhcpClient::new(MAC, Some("star".into()), 1);
        assert_eq!(client.next_deadline(), None);
        let actions = client.start(t0);
        assert!(matches!(&actions[0], DhcpAction::Broadcast(b) if b.len() >= MIN_MESSAGE_LEN));
        let (_, msg) = only_packet(&actions);
        assert_eq!(client.state(), State::Selecting);
        assert_eq!(msg.opts().msg_type(), Some(MessageType::Discover));
        assert_eq!(msg.opcode(), Opcode::BootRequest);
        assert!(msg.flags().broadcast());
        assert_eq!(msg.chaddr(), &MAC);
        assert_eq!(msg.ciaddr(), Ipv4Addr::UNSPECIFIED);
        let mut client_id = vec![1];
        client_id.extend_from_slice(&MAC);
        assert_eq!(
            option(&msg, OptionCode::ClientIdentifier),
            Some(&DhcpOption::ClientIdentifier(client_id))
        );
        assert_eq!(
            option(&msg, OptionCode::Hostname),
            Some(&DhcpOption::Hostname("star".into()))
        );
        let Some(DhcpOption::ParameterRequestList(list)) =
            option(&msg, OptionCode::ParameterRequestList)
        else {
            panic!("no parameter request list");
        };
        for code in [
            OptionCode::SubnetMask,
            OptionCode::Router,
            OptionCode::DomainNameServer,
            OptionCode::Hostname,
            OptionCode::InterfaceMtu,
            OptionCode::AddressLeaseTime,
            OptionCode::Renewal,
            OptionCode::Rebinding,
        ] {
            assert!(list.contains(&code), "{code:?} not requested");
        }
    }

    #[test]
    fn no_hostname_option_without_hostname() {
        let mut client = DhcpClient::new(MAC, None, 1);
        let (_, msg) = only_packet(&client.start(Instant::now()));
        assert_eq!(option(&msg, OptionCode::Hostname), None);
    }

    #[test]
    fn offer_leads_to_request_for_that_server_and_address() {
        let t0 = Instant::now();
        let mut client = DhcpClient::new(MAC, None, 2);
        let (_, discover) = only_packet(&client.start(t0));
        let offer = reply(MessageType::Offer, discover.xid(), OFFERED, Some(3600));
        let (to, request) = only_packet(&client.on_packet(&bytes(&offer), t0));
        assert_eq!(to, None, "REQUEST in Selecting is broadcast");
        assert_eq!(client.state(), State::Requesting);
        assert_eq!(request.opts().msg_type(), Some(MessageType::Request));
        assert_eq!(request.xid(), discover.xid());
        assert!(request.flags().broadcast());
        assert_eq!(request.ciaddr(), Ipv4Addr::UNSPECIFIED);
        assert_eq!(
            option(&request, OptionCode::ServerIdentifier),
            Some(&DhcpOption::ServerIdentifier(SERVER))
        );
        assert_eq!(
            option(&request, OptionCode::RequestedIpAddress),
            Some(&DhcpOption::RequestedIpAddress(OFFERED))
        );
    }

    #[test]
    fn ack_binds_with_default_timers() {
        let t0 = Instant::now();
        let (mut client, xid) = requesting(t0);
        let ack = reply(MessageType::Ack, xid, OFFERED, Some(3600));
        let actions = client.on_packet(&bytes(&ack), t0 + Duration::from_secs(1));
        let expected = Lease {
            address: OFFERED,
            prefix_len: 24,
            router: Some(SERVER),
            dns: vec![Ipv4Addr::new(10, 0, 0, 2), Ipv4Addr::new(10, 0, 0, 3)],
            hostname: Some("nas".into()),
            mtu: Some(9000),
            server: SERVER,
            lease_time: Duration::from_secs(3600),
            renew_at: Duration::from_secs(1800),
            rebind_at: Duration::from_secs(3150),
        };
        assert_eq!(actions, vec![DhcpAction::Bound(expected.clone())]);
        assert_eq!(client.state(), State::Bound);
        assert_eq!(client.lease(), Some(&expected));
        // Times count from the REQUEST, not from the ACK.
        assert_eq!(client.next_deadline(), Some(t0 + Duration::from_secs(1800)));
    }

    #[test]
    fn ack_uses_server_timers_when_consistent() {
        let t0 = Instant::now();
        let (mut client, xid) = requesting(t0);
        let mut ack = reply(MessageType::Ack, xid, OFFERED, Some(1000));
        ack.opts_mut().insert(DhcpOption::Renewal(300));
        ack.opts_mut().insert(DhcpOption::Rebinding(600));
        client.on_packet(&bytes(&ack), t0);
        let lease = client.lease().unwrap();
        assert_eq!(lease.renew_at, Duration::from_secs(300));
        assert_eq!(lease.rebind_at, Duration::from_secs(600));

        let (mut client, xid) = requesting(t0);
        let mut ack = reply(MessageType::Ack, xid, OFFERED, Some(1000));
        ack.opts_mut().insert(DhcpOption::Renewal(900));
        ack.opts_mut().insert(DhcpOption::Rebinding(2000));
        client.on_packet(&bytes(&ack), t0);
        let lease = client.lease().unwrap();
        assert_eq!(
            lease.rebind_at,
            Duration::from_secs(875),
            "T2 beyond the lease"
        );
        assert_eq!(lease.renew_at, Duration::from_secs(500), "T1 after T2");
    }

    #[test]
    fn ack_without_lease_time_or_with_bad_mask_is_ignored() {
        let t0 = Instant::now();
        let (mut client, xid) = requesting(t0);
        let ack = reply(MessageType::Ack, xid, OFFERED, None);
        assert!(client.on_packet(&bytes(&ack), t0).is_empty());
        let mut ack = reply(MessageType::Ack, xid, OFFERED, Some(60));
        ack.opts_mut()
            .insert(DhcpOption::SubnetMask(Ipv4Addr::new(255, 0, 255, 0)));
        assert!(client.on_packet(&bytes(&ack), t0).is_empty());
        assert_eq!(client.state(), State::Requesting);
    }

    #[test]
    fn ack_from_another_server_is_ignored_while_requesting() {
        let t0 = Instant::now();
        let (mut client, xid) = requesting(t0);
        let mut ack = reply(MessageType::Ack, xid, OFFERED, Some(60));
        ack.opts_mut()
            .insert(DhcpOption::ServerIdentifier(Ipv4Addr::new(10, 0, 0, 9)));
        assert!(client.on_packet(&bytes(&ack), t0).is_empty());
        assert_eq!(client.state(), State::Requesting);
    }

    #[test]
    fn nak_while_requesting_restarts_from_init() {
        let t0 = Instant::now();
        let (mut client, xid) = requesting(t0);
        let nak = reply(MessageType::Nak, xid, Ipv4Addr::UNSPECIFIED, None);
        assert!(client.on_packet(&bytes(&nak), t0).is_empty());
        assert_eq!(client.state(), State::Init);
        assert_eq!(client.lease(), None);
        assert_eq!(
            client.next_deadline(),
            Some(t0),
            "first restart is immediate"
        );
        let (_, discover) = only_packet(&client.on_timeout(t0));
        assert_eq!(discover.opts().msg_type(), Some(MessageType::Discover));
        assert_ne!(discover.xid(), xid);
        assert_eq!(client.state(), State::Selecting);

        // A second NAK without a lease in between waits before starting over.
        let offer = reply(MessageType::Offer, discover.xid(), OFFERED, Some(60));
        client.on_packet(&bytes(&offer), t0);
        let nak = reply(
            MessageType::Nak,
            discover.xid(),
            Ipv4Addr::UNSPECIFIED,
            None,
        );
        client.on_packet(&bytes(&nak), t0);
        assert_eq!(client.state(), State::Init);
        let wait = client.next_deadline().unwrap() - t0;
        assert!(wait >= Duration::from_secs(3), "{wait:?}");
        assert!(client.on_timeout(t0).is_empty());
    }

    #[test]
    fn renews_at_t1_by_unicast_and_stays_bound() {
        let t0 = Instant::now();
        let mut client = bound(t0, 3600);
        let t1 = t0 + Duration::from_secs(1800);
        assert!(client.on_timeout(t1 - Duration::from_millis(1)).is_empty());
        let (to, request) = only_packet(&client.on_timeout(t1));
        assert_eq!(to, Some(SERVER));
        assert_eq!(client.state(), State::Renewing);
        assert_eq!(request.opts().msg_type(), Some(MessageType::Request));
        assert_eq!(request.ciaddr(), OFFERED);
        assert!(!request.flags().broadcast());
        assert_eq!(option(&request, OptionCode::ServerIdentifier), None);
        assert_eq!(option(&request, OptionCode::RequestedIpAddress), None);

        // An unchanged renewal needs no reconfiguration; the timers restart from T1.
        let ack = reply(MessageType::Ack, request.xid(), OFFERED, Some(3600));
        let actions = client.on_packet(&bytes(&ack), t1 + Duration::from_secs(1));
        assert!(actions.is_empty(), "{actions:?}");
        assert_eq!(client.state(), State::Bound);
        assert_eq!(client.next_deadline(), Some(t1 + Duration::from_secs(1800)));
    }

    #[test]
    fn renewal_with_new_values_reports_them() {
        let t0 = Instant::now();
        let mut client = bound(t0, 3600);
        let t1 = t0 + Duration::from_secs(1800);
        let (_, request) = only_packet(&client.on_timeout(t1));
        let mut ack = reply(MessageType::Ack, request.xid(), OFFERED, Some(7200));
        ack.opts_mut()
            .insert(DhcpOption::DomainNameServer(vec![Ipv4Addr::new(
                10, 0, 0, 4,
            )]));
        let actions = client.on_packet(&bytes(&ack), t1);
        let [DhcpAction::Bound(lease)] = actions.as_slice() else {
            panic!("expected Bound, got {actions:?}");
        };
        assert_eq!(lease.lease_time, Duration::from_secs(7200));
        assert_eq!(lease.dns, vec![Ipv4Addr::new(10, 0, 0, 4)]);

        // A different address is a new lease: the old one goes first.
        let t1 = t1 + Duration::from_secs(3600);
        let (_, request) = only_packet(&client.on_timeout(t1));
        let other = Ipv4Addr::new(10, 0, 0, 51);
        let ack = reply(MessageType::Ack, request.xid(), other, Some(7200));
        let actions = client.on_packet(&bytes(&ack), t1);
        assert!(
            matches!(actions.as_slice(),
                [DhcpAction::Lost(old), DhcpAction::Bound(new)]
                    if old.address == OFFERED && new.address == other),
            "{actions:?}"
        );
    }

    #[test]
    fn renewing_retransmits_at_half_the_time_to_t2_then_rebinds_by_broadcast() {
        let t0 = Instant::now();
        let mut client = bound(t0, 3600);
        let t1 = t0 + Duration::from_secs(1800);
        let t2 = t0 + Duration::from_secs(3150);
        client.on_timeout(t1);
        // 1350 s to T2: retry after 675 s, then 337.5 s, ... until the 60 s floor.
        let mut now = t1;
        let mut waits = Vec::new();
        while client.state() == State::Renewing {
            let next = client.next_deadline().unwrap();
            waits.push((next - now).as_secs_f64());
            now = next;
            let actions = client.on_timeout(now);
            if client.state() == State::Renewing {
                assert!(matches!(
                    actions.as_slice(),
                    [DhcpAction::Unicast(SERVER, _)]
                ));
            } else {
                assert_eq!(now, t2);
                assert_eq!(client.state(), State::Rebinding);
                let (to, request) = only_packet(&actions);
                assert_eq!(to, None, "REQUEST in Rebinding is broadcast");
                assert_eq!(request.ciaddr(), OFFERED);
                assert_eq!(option(&request, OptionCode::ServerIdentifier), None);
            }
        }
        assert_eq!(&waits[..3], &[675.0, 337.5, 168.75]);
        assert!(
            waits[3..waits.len() - 1].iter().all(|w| *w >= 60.0),
            "{waits:?}"
        );
    }

    #[test]
    fn rebinding_accepts_another_server() {
        let t0 = Instant::now();
        let mut client = bound(t0, 3600);
        client.on_timeout(t0 + Duration::from_secs(1800));
        let t2 = t0 + Duration::from_secs(3150);
        let (_, request) = only_packet(&client.on_timeout(t2));
        let mut ack = reply(MessageType::Ack, request.xid(), OFFERED, Some(3600));
        let other = Ipv4Addr::new(10, 0, 0, 9);
        ack.opts_mut().insert(DhcpOption::ServerIdentifier(other));
        let actions = client.on_packet(&bytes(&ack), t2);
        assert!(matches!(actions.as_slice(), [DhcpAction::Bound(l)] if l.server == other));
        assert_eq!(client.state(), State::Bound);
    }

    #[test]
    fn lease_is_lost_at_expiry_and_discovery_restarts() {
        let t0 = Instant::now();
        let mut client = bound(t0, 3600);
        let lease = client.lease().cloned().unwrap();
        let expiry = t0 + Duration::from_secs(3600);
        let mut last = Vec::new();
        while client.state() != State::Selecting {
            let next = client.next_deadline().unwrap();
            assert!(next <= expiry);
            last = client.on_timeout(next);
        }
        assert_eq!(client.next_deadline().map(|d| d > expiry), Some(true));
        let [DhcpAction::Lost(lost), DhcpAction::Broadcast(discover)] = last.as_slice() else {
            panic!("expected Lost and DISCOVER, got {last:?}");
        };
        assert_eq!(lost, &lease);
        assert_eq!(
            decode(discover).opts().msg_type(),
            Some(MessageType::Discover)
        );
        assert_eq!(client.lease(), None);
    }

    #[test]
    fn short_lease_retransmits_faster_than_the_rfc_floor() {
        let t0 = Instant::now();
        let mut client = bound(t0, 8);
        // T1 = 4 s, T2 = 7 s, floor = 0.8 s.
        client.on_timeout(t0 + Duration::from_secs(4));
        assert_eq!(
            client.next_deadline(),
            Some(t0 + Duration::from_millis(5500))
        );
        client.on_timeout(t0 + Duration::from_millis(5500));
        assert_eq!(
            client.next_deadline(),
            Some(t0 + Duration::from_millis(6300))
        );
        client.on_timeout(t0 + Duration::from_millis(6300));
        assert_eq!(client.next_deadline(), Some(t0 + Duration::from_secs(7)));
    }

    #[test]
    fn nak_while_renewing_loses_the_lease() {
        let t0 = Instant::now();
        let mut client = bound(t0, 3600);
        let t1 = t0 + Duration::from_secs(1800);
        let (_, request) = only_packet(&client.on_timeout(t1));
        let nak = reply(MessageType::Nak, request.xid(), Ipv4Addr::UNSPECIFIED, None);
        let actions = client.on_packet(&bytes(&nak), t1);
        assert!(matches!(actions.as_slice(), [DhcpAction::Lost(l)] if l.address == OFFERED));
        assert_eq!(client.state(), State::Init);
        assert_eq!(client.lease(), None);
    }

    #[test]
    fn foreign_replies_are_ignored() {
        let t0 = Instant::now();
        let mut client = DhcpClient::new(MAC, None, 3);
        let (_, discover) = only_packet(&client.start(t0));
        let xid = discover.xid();

        let other_xid = reply(MessageType::Offer, xid.wrapping_add(1), OFFERED, Some(60));
        assert!(client.on_packet(&bytes(&other_xid), t0).is_empty());

        let mut other_mac = reply(MessageType::Offer, xid, OFFERED, Some(60));
        other_mac.set_chaddr(&[0x02, 0, 0, 0, 0, 1]);
        assert!(client.on_packet(&bytes(&other_mac), t0).is_empty());

        let mut request = reply(MessageType::Offer, xid, OFFERED, Some(60));
        request.set_opcode(Opcode::BootRequest);
        assert!(client.on_packet(&bytes(&request), t0).is_empty());

        let ack_too_early = reply(MessageType::Ack, xid, OFFERED, Some(60));
        assert!(client.on_packet(&bytes(&ack_too_early), t0).is_empty());

        assert!(client.on_packet(b"not dhcp", t0).is_empty());
        assert_eq!(client.state(), State::Selecting);

        // ... and once bound, stray OFFERs change nothing.
        let mut client = bound(t0, 3600);
        let before = client.lease().cloned();
        let offer = reply(MessageType::Offer, client.xid, OFFERED, Some(60));
        assert!(client.on_packet(&bytes(&offer), t0).is_empty());
        assert_eq!(client.lease().cloned(), before);
        assert_eq!(client.state(), State::Bound);
    }

    #[test]
    fn discover_backs_off_exponentially_with_jitter() {
        let t0 = Instant::now();
        let schedule = |seed| {
            let mut client = DhcpClient::new(MAC, None, seed);
            client.start(t0);
            let mut now = t0;
            let mut waits = Vec::new();
            for _ in 0..7 {
                let next = client.next_deadline().unwrap();
                waits.push(next - now);
                now = next;
                let (_, msg) = only_packet(&client.on_timeout(now));
                assert_eq!(msg.opts().msg_type(), Some(MessageType::Discover));
                assert_eq!(u64::from(msg.secs()), (now - t0).as_secs());
            }
            waits
        };
        let waits = schedule(42);
        for (wait, base) in waits.iter().zip([4u64, 8, 16, 32, 64, 64, 64]) {
            let low = Duration::from_secs(base - 1);
            let high = Duration::from_secs(base + 1);
            assert!(*wait >= low && *wait <= high, "{waits:?}");
        }
        assert_eq!(schedule(42), waits, "same seed, same schedule");
        assert_ne!(schedule(43), waits, "jitter depends on the seed");
    }

    #[test]
    fn unanswered_requests_fall_back_to_discover() {
        let t0 = Instant::now();
        let (mut client, xid) = requesting(t0);
        for _ in 1..REQUEST_ATTEMPTS {
            let next = client.next_deadline().unwrap();
            let (_, msg) = only_packet(&client.on_timeout(next));
            assert_eq!(msg.opts().msg_type(), Some(MessageType::Request));
            assert_eq!(msg.xid(), xid);
        }
        let next = client.next_deadline().unwrap();
        let (_, msg) = only_packet(&client.on_timeout(next));
        assert_eq!(msg.opts().msg_type(), Some(MessageType::Discover));
        assert_eq!(client.state(), State::Selecting);
    }

    #[test]
    fn netmask_to_prefix() {
        assert_eq!(mask_prefix_len(Ipv4Addr::new(255, 255, 255, 0)), Some(24));
        assert_eq!(mask_prefix_len(Ipv4Addr::new(255, 255, 255, 255)), Some(32));
        assert_eq!(mask_prefix_len(Ipv4Addr::new(0, 0, 0, 0)), Some(0));
        assert_eq!(mask_prefix_len(Ipv4Addr::new(255, 255, 254, 0)), Some(23));
        assert_eq!(mask_prefix_len(Ipv4Addr::new(255, 0, 255, 0)), None);
    }

    #[test]
    fn ip_udp_framing_round_trips_and_rejects_damage() {
        let payload = b"hello dhcp, odd length";
        let packet = ipv4_udp(
            Ipv4Addr::new(10, 0, 0, 1),
            Ipv4Addr::BROADCAST,
            SERVER_PORT,
            CLIENT_PORT,
            payload,
        );
        assert_eq!(checksum(&[&packet[..20]]), 0);
        assert_eq!(udp_payload(&packet, true), Some(&payload[..]));

        // Ethernet padding after the IP packet is not payload.
        let mut padded = packet.clone();
        padded.extend_from_slice(&[0; 10]);
        assert_eq!(udp_payload(&padded, true), Some(&payload[..]));

        let mut damaged = packet.clone();
        *damaged.last_mut().unwrap() ^= 1;
        assert_eq!(udp_payload(&damaged, true), None);
        assert_eq!(udp_payload(&damaged, false), Some(&damaged[28..]));

        let mut bad_header = packet.clone();
        bad_header[8] = 1; // TTL changed, checksum not
        assert_eq!(udp_payload(&bad_header, true), None);

        let to_server = ipv4_udp(
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::BROADCAST,
            CLIENT_PORT,
            SERVER_PORT,
            payload,
        );
        assert_eq!(udp_payload(&to_server, true), None, "port 67 is not ours");
        assert_eq!(udp_payload(&packet[..27], true), None);
    }
}
