//! Resetting the previous holder's client connections after a takeover ("tickle ACKs",
//! as CTDB does for its public addresses).
//!
//! A client whose controller died keeps its TCP connection to the floating address open
//! and waits: its last request was acknowledged, nothing is in flight to retransmit, and
//! only its own command timeout (5 s for many initiators) ends the wait. Once this
//! controller holds the address, it sends the client, for each such connection, a bare
//! ACK with sequence numbers out of the window. The client answers with an ACK that
//! carries its real numbers; that ACK reaches this controller, which has no such
//! connection, and its kernel answers with a RST the client accepts. The client's
//! connection ends at once and it logs in again, here. A connection the client no longer
//! has costs one ACK and its RST.

use star_core::heartbeat_status::TcpConnection;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// More would be a slot's worth of stale entries, not an array's clients.
pub const MAX_CONNECTIONS: usize = 256;

/// The one's-complement sum of 16-bit words that TCP's checksum folds.
fn sum16(data: &[u8], mut acc: u32) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        acc += u32::from(*last) << 8;
    }
    acc
}

fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// TCP's checksum of `segment` (checksum field zero) between `source` and
/// `destination`, with the pseudo-header of their family.
pub fn tcp_checksum(source: IpAddr, destination: IpAddr, segment: &[u8]) -> u16 {
    let mut pseudo = Vec::with_capacity(40);
    match (source, destination) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            pseudo.extend_from_slice(&s.octets());
            pseudo.extend_from_slice(&d.octets());
            pseudo.extend_from_slice(&[0, libc::IPPROTO_TCP as u8]);
            pseudo.extend_from_slice(&(segment.len() as u16).to_be_bytes());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            pseudo.extend_from_slice(&s.octets());
            pseudo.extend_from_slice(&d.octets());
            pseudo.extend_from_slice(&(segment.len() as u32).to_be_bytes());
            pseudo.extend_from_slice(&[0, 0, 0, libc::IPPROTO_TCP as u8]);
        }
        _ => panic!("one family for both ends"),
    }
    fold(sum16(segment, sum16(&pseudo, 0)))
}

/// The tickle: a 20-byte TCP segment from `from` to `to` with only ACK set and sequence
/// and acknowledgement numbers zero, almost surely outside the client's window.
pub fn tickle_segment(from: SocketAddr, to: SocketAddr) -> Vec<u8> {
    let mut s = vec![0u8; 20];
    s[0..2].copy_from_slice(&from.port().to_be_bytes());
    s[2..4].copy_from_slice(&to.port().to_be_bytes());
    // Sequence and acknowledgement numbers stay 0.
    s[12] = 5 << 4; // data offset: five 32-bit words, no options
    s[13] = 0x10; // ACK
    s[14..16].copy_from_slice(&1024u16.to_be_bytes()); // a window, as any real ACK has
    let sum = tcp_checksum(from.ip(), to.ip(), &s);
    s[16..18].copy_from_slice(&sum.to_be_bytes());
    s
}

/// The connections worth a tickle: those to `floating`, each once, at most
/// [`MAX_CONNECTIONS`]. The others (an address this node does not take over) are left
/// alone and counted.
pub fn select(connections: &[TcpConnection], floating: IpAddr) -> (Vec<TcpConnection>, usize) {
    let mut chosen: Vec<TcpConnection> = connections
        .iter()
        .filter(|c| c.local.ip() == floating && c.remote.is_ipv4() == floating.is_ipv4())
        .copied()
        .collect();
    chosen.sort();
    chosen.dedup();
    chosen.truncate(MAX_CONNECTIONS);
    let ignored = connections.len()
        - connections
            .iter()
            .filter(|c| c.local.ip() == floating)
            .count();
    (chosen, ignored)
}

fn raw_socket(local: IpAddr) -> io::Result<OwnedFd> {
    let family = if local.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    // SAFETY: socket(2) takes no pointers.
    let raw = unsafe {
        libc::socket(
            family,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::IPPROTO_TCP,
        )
    };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` was just opened and is owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    // Bound to the floating address: the kernel writes it as the source of every
    // segment, so that the client's answer comes back to it.
    let (addr, len) = sockaddr(SocketAddr::new(local, 0));
    // SAFETY: `addr` is a sockaddr of `len` bytes that lives through the call.
    if unsafe {
        libc::bind(
            fd.as_raw_fd(),
            &addr as *const _ as *const libc::sockaddr,
            len,
        )
    } < 0
    {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

fn sockaddr(a: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: an all-zero sockaddr_storage is a valid value of it.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match a {
        SocketAddr::V4(v4) => {
            // SAFETY: sockaddr_storage is large and aligned enough for sockaddr_in.
            let sin = unsafe { &mut *(&mut storage as *mut _ as *mut libc::sockaddr_in) };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            // Raw sockets take no port: it is in the segment.
            sin.sin_port = 0;
            sin.sin_addr.s_addr = u32::from_ne_bytes(v4.ip().octets());
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(v6) => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 = unsafe { &mut *(&mut storage as *mut _ as *mut libc::sockaddr_in6) };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = 0;
            sin6.sin6_addr.s6_addr = v6.ip().octets();
            sin6.sin6_scope_id = v6.scope_id();
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

/// Sends one tickle for each connection to `floating` (held here: the raw socket binds to
/// it). Returns what was done, in words; an error when no socket could be had at all.
pub fn send(connections: &[TcpConnection], floating: IpAddr) -> Result<String, String> {
    let (chosen, ignored) = select(connections, floating);
    if chosen.is_empty() {
        return Ok(format!(
            "no connection of the previous holder to reset{}",
            if ignored > 0 {
                format!(" ({ignored} to other addresses ignored)")
            } else {
                String::new()
            }
        ));
    }
    let fd = raw_socket(floating).map_err(|e| format!("raw TCP socket on {floating}: {e}"))?;
    let mut sent = 0;
    let mut failed = Vec::new();
    for c in &chosen {
        let segment = tickle_segment(c.local, c.remote);
        let (to, len) = sockaddr(SocketAddr::new(c.remote.ip(), 0));
        // SAFETY: `segment` and `to` outlive the call; the lengths are theirs.
        let n = unsafe {
            libc::sendto(
                fd.as_raw_fd(),
                segment.as_ptr().cast(),
                segment.len(),
                0,
                &to as *const _ as *const libc::sockaddr,
                len,
            )
        };
        if n < 0 {
            failed.push(format!("{}: {}", c.remote, io::Error::last_os_error()));
        } else {
            sent += 1;
        }
    }
    let mut text =
        format!("tickle ACKs sent to {sent} client connection(s) of the previous holder");
    if ignored > 0 {
        text.push_str(&format!("; {ignored} to other addresses ignored"));
    }
    if !failed.is_empty() {
        text.push_str(&format!("; not sent: {}", failed.join(", ")));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(local: &str, remote: &str) -> TcpConnection {
        TcpConnection {
            local: local.parse().unwrap(),
            remote: remote.parse().unwrap(),
        }
    }

    #[test]
    fn the_checksum_verifies_as_the_receiver_computes_it() {
        // Summing a segment with its checksum in place gives all ones: what a receiver
        // checks. Both families, odd and even lengths.
        for (from, to) in [
            ("192.0.2.100:3260", "192.0.2.50:51234"),
            ("[2001:db8::100]:3260", "[2001:db8::50]:40000"),
        ] {
            let (from, to): (SocketAddr, SocketAddr) = (from.parse().unwrap(), to.parse().unwrap());
            let s = tickle_segment(from, to);
            assert_eq!(s.len(), 20);
            assert_eq!(tcp_checksum(from.ip(), to.ip(), &s), 0, "{from} → {to}");
            assert_eq!(
                &s[0..4],
                &[0x0c, 0xbc, (to.port() >> 8) as u8, to.port() as u8]
            );
            assert_eq!(s[13], 0x10, "ACK only");
            assert_eq!(&s[4..12], &[0; 8], "sequence and acknowledgement zero");
        }
        // A known value: RFC 1071's example words, with no pseudo-header content.
        assert_eq!(
            fold(sum16(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7], 0)),
            !0xddf2
        );
        assert_eq!(fold(sum16(&[0xab], 0)), !0xab00);
    }

    #[test]
    fn only_connections_to_the_floating_address_are_tickled_once_each() {
        let vip: IpAddr = "192.0.2.100".parse().unwrap();
        let list = [
            conn("192.0.2.100:3260", "192.0.2.50:51234"),
            conn("192.0.2.100:3260", "192.0.2.50:51234"),
            conn("192.0.2.100:3260", "192.0.2.51:40000"),
            conn("192.0.2.11:3260", "192.0.2.50:51000"),
        ];
        let (chosen, ignored) = select(&list, vip);
        assert_eq!(chosen, [list[0], list[2]]);
        assert_eq!(ignored, 1);
        let many: Vec<TcpConnection> = (0..400u16)
            .map(|p| conn("192.0.2.100:3260", &format!("192.0.2.50:{}", 10000 + p)))
            .collect();
        assert_eq!(select(&many, vip).0.len(), MAX_CONNECTIONS);
        assert!(send(&[], vip).unwrap().starts_with("no connection"));
    }
}
