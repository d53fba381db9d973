//! The client connections this node serves on the floating address, read from the
//! kernel's /proc/net/tcp and /proc/net/tcp6. The active writes them into its disk slot;
//! the node that takes over after it has them there, dead writer or not, and has the
//! clients' connections reset at once (star-takeover's tickle ACKs).

use star_core::heartbeat_status::TcpConnection;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// TCP_ESTABLISHED in the `st` column.
const ESTABLISHED: &str = "01";

/// An address as /proc/net/tcp prints it: the in-memory bytes of the address (network
/// order) read as 32-bit words in this machine's order, each printed in hex.
fn parse_address(hex: &str) -> Option<IpAddr> {
    let word = |i: usize| -> Option<[u8; 4]> {
        let w = u32::from_str_radix(hex.get(i * 8..i * 8 + 8)?, 16).ok()?;
        Some(w.to_ne_bytes())
    };
    match hex.len() {
        8 => Some(IpAddr::V4(Ipv4Addr::from(word(0)?))),
        32 => {
            let mut b = [0u8; 16];
            for i in 0..4 {
                b[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            Some(IpAddr::V6(Ipv6Addr::from(b)))
        }
        _ => None,
    }
}

fn parse_endpoint(text: &str) -> Option<SocketAddr> {
    let (addr, port) = text.split_once(':')?;
    Some(SocketAddr::new(
        parse_address(addr)?,
        u16::from_str_radix(port, 16).ok()?,
    ))
}

/// The established connections in one of the files whose local address is `floating`.
/// Lines that do not parse are skipped: the file is the kernel's, and one odd line must
/// not cost the others.
pub fn parse(text: &str, floating: IpAddr) -> Vec<TcpConnection> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            let _slot = f.next()?;
            let local = parse_endpoint(f.next()?)?;
            let remote = parse_endpoint(f.next()?)?;
            (f.next()? == ESTABLISHED && local.ip() == floating)
                .then_some(TcpConnection { local, remote })
        })
        .collect()
}

/// This node's established connections on `floating`, both families, sorted.
pub fn on(floating: IpAddr) -> Vec<TcpConnection> {
    let mut all = Vec::new();
    for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
        if let Ok(text) = std::fs::read_to_string(file) {
            all.extend(parse(&text, floating));
        }
    }
    all.sort();
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernels_table_reads_as_connections() {
        // As an x86 kernel prints them: 192.0.2.100 is 6402 00C0 read little-endian.
        let v4 = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:0CBC 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 21050 1 0000000000000000 100 0 0 10 0
   1: 6402000A:0CBC 3202000A:C822 01 00000000:00000000 00:00000000 00000000     0        0 21051 1 0000000000000000 20 4 30 10 -1
   2: 6402000A:0CBC 3302000A:9C40 06 00000000:00000000 00:00000000 00000000     0        0 0 3 0000000000000000
   3: 0B02000A:0CBC 3202000A:C823 01 00000000:00000000 00:00000000 00000000     0        0 21052 1 0000000000000000 20 4 30 10 -1
   4: garbage
";
        let vip: IpAddr = "10.0.2.100".parse().unwrap();
        assert_eq!(
            parse(v4, vip),
            [TcpConnection {
                local: "10.0.2.100:3260".parse().unwrap(),
                remote: "10.0.2.50:51234".parse().unwrap(),
            }]
        );
        let v6 = "  sl  local_address                         remote_address                        st
   0: B80D0120000000000000000000010000:0CBC B80D0120000000000000000050000000:9C40 01 00000000:00000000
";
        let vip6: IpAddr = "2001:db8::100".parse().unwrap();
        assert_eq!(
            parse(v6, vip6),
            [TcpConnection {
                local: "[2001:db8::100]:3260".parse().unwrap(),
                remote: "[2001:db8::50]:40000".parse().unwrap(),
            }]
        );
        assert!(parse(v6, vip).is_empty());
    }

    #[test]
    fn this_machines_own_connections_are_found() {
        // A real connection over loopback, seen from both ends' point of view.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (_server, _) = listener.accept().unwrap();
        let found = on("127.0.0.1".parse().unwrap());
        assert!(
            found.contains(&TcpConnection {
                local: listener.local_addr().unwrap(),
                remote: client.local_addr().unwrap(),
            }),
            "{found:?}"
        );
    }
}
