//! The announcement frames, built whole (Ethernet header included) for an `AF_PACKET`
//! socket: pure functions, so every byte is checked by the tests below.
//!
//! - IPv4: a gratuitous ARP *request* with sender IP = target IP = the floating address,
//!   as keepalived (`vrrp_arp.c`) and RFC 5227's "ARP announcement" have it, to the
//!   Ethernet broadcast address. Linux neighbours update an existing entry from it at once
//!   (`arp_process`: a gratuitous ARP overrides the entry's lock time), and so do switches'
//!   MAC tables, from the source address.
//! - IPv6: an unsolicited neighbour advertisement (RFC 4861 §7.2.6): ICMPv6 type 136 with
//!   the override flag, target = the floating address, the target link-layer address
//!   option, to all nodes (ff02::1) with hop limit 255 (receivers drop any other).

use std::net::{Ipv4Addr, Ipv6Addr};

pub type Mac = [u8; 6];

pub const BROADCAST: Mac = [0xff; 6];
pub const ETHERTYPE_ARP: u16 = 0x0806;
pub const ETHERTYPE_IPV6: u16 = 0x86dd;

/// Frames shorter than this (without the FCS) are runts on a real Ethernet; most drivers
/// pad them, but not every virtual switch, so the ARP frame comes padded already.
const MIN_FRAME: usize = 60;
const ETH_HEADER: usize = 14;
const IPV6_HEADER: usize = 40;
/// ICMPv6 header (4) + reserved/flags (4) + target (16) + one 8-byte option.
const NA_LEN: usize = 32;
const ICMPV6: u8 = 58;
const NEIGHBOUR_ADVERTISEMENT: u8 = 136;
/// Override: replace the link-layer address a neighbour has cached. Not solicited (an
/// advertisement to a multicast address with it set is dropped), not a router.
const NA_FLAG_OVERRIDE: u32 = 0x2000_0000;
const OPTION_TARGET_LINK_LAYER_ADDRESS: u8 = 2;

/// ff02::1, and the Ethernet multicast address it maps to (RFC 2464 §7: 33:33 and the
/// low 32 bits).
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
pub const ALL_NODES_MAC: Mac = [0x33, 0x33, 0, 0, 0, 1];

fn ethernet(frame: &mut Vec<u8>, destination: Mac, source: Mac, ethertype: u16) {
    frame.extend_from_slice(&destination);
    frame.extend_from_slice(&source);
    frame.extend_from_slice(&ethertype.to_be_bytes());
}

/// A gratuitous ARP request announcing that `address` is at `mac`, 60 bytes.
pub fn gratuitous_arp(mac: Mac, address: Ipv4Addr) -> Vec<u8> {
    let mut f = Vec::with_capacity(MIN_FRAME);
    ethernet(&mut f, BROADCAST, mac, ETHERTYPE_ARP);
    f.extend_from_slice(&1u16.to_be_bytes()); // hardware type: Ethernet
    f.extend_from_slice(&0x0800u16.to_be_bytes()); // protocol type: IPv4
    f.push(6); // hardware address length
    f.push(4); // protocol address length
    f.extend_from_slice(&1u16.to_be_bytes()); // operation: request
    f.extend_from_slice(&mac); // sender hardware address
    f.extend_from_slice(&address.octets()); // sender protocol address
                                            // Target hardware address: ignored in a request; RFC 5227 §2.3 says zero.
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&address.octets()); // target protocol address
    f.resize(MIN_FRAME, 0);
    f
}

/// An unsolicited neighbour advertisement announcing that `address` is at `mac`, sent
/// from `address` itself (an address of the sending interface, as RFC 4861 wants), 86
/// bytes.
pub fn unsolicited_na(mac: Mac, address: Ipv6Addr) -> Vec<u8> {
    let mut icmp = Vec::with_capacity(NA_LEN);
    icmp.push(NEIGHBOUR_ADVERTISEMENT);
    icmp.push(0); // code
    icmp.extend_from_slice(&[0, 0]); // checksum, filled in below
    icmp.extend_from_slice(&NA_FLAG_OVERRIDE.to_be_bytes());
    icmp.extend_from_slice(&address.octets());
    icmp.push(OPTION_TARGET_LINK_LAYER_ADDRESS);
    icmp.push(1); // option length in units of 8 bytes
    icmp.extend_from_slice(&mac);
    let checksum = icmpv6_checksum(address, ALL_NODES, &icmp);
    icmp[2..4].copy_from_slice(&checksum.to_be_bytes());

    let mut f = Vec::with_capacity(ETH_HEADER + IPV6_HEADER + NA_LEN);
    ethernet(&mut f, ALL_NODES_MAC, mac, ETHERTYPE_IPV6);
    f.extend_from_slice(&0x6000_0000u32.to_be_bytes()); // version 6, no class or flow
    f.extend_from_slice(&(NA_LEN as u16).to_be_bytes()); // payload length
    f.push(ICMPV6); // next header
    f.push(255); // hop limit: neighbour discovery must not have crossed a router
    f.extend_from_slice(&address.octets());
    f.extend_from_slice(&ALL_NODES.octets());
    f.extend_from_slice(&icmp);
    f
}

/// The ICMPv6 checksum (RFC 4443 §2.3): the Internet checksum over the IPv6 pseudo-header
/// (RFC 8200 §8.1) and the message, whose own checksum field must be zero.
pub fn icmpv6_checksum(source: Ipv6Addr, destination: Ipv6Addr, message: &[u8]) -> u16 {
    let mut pseudo = Vec::with_capacity(40 + message.len());
    pseudo.extend_from_slice(&source.octets());
    pseudo.extend_from_slice(&destination.octets());
    pseudo.extend_from_slice(&(message.len() as u32).to_be_bytes());
    pseudo.extend_from_slice(&[0, 0, 0, ICMPV6]);
    pseudo.extend_from_slice(message);
    !ones_complement_sum(&pseudo)
}

/// The 16-bit one's complement sum of RFC 1071, an odd last byte padded with zero.
fn ones_complement_sum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|pair| u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: Mac = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];

    #[test]
    fn gratuitous_arp_bytes() {
        let frame = gratuitous_arp(MAC, Ipv4Addr::new(192, 0, 2, 100));
        #[rustfmt::skip]
        let expected: [u8; 42] = [
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff,     // to everyone
            0x52, 0x54, 0x00, 0x12, 0x34, 0x56,     // from us
            0x08, 0x06,                             // ARP
            0x00, 0x01, 0x08, 0x00, 6, 4,           // Ethernet, IPv4, 6, 4
            0x00, 0x01,                             // request
            0x52, 0x54, 0x00, 0x12, 0x34, 0x56,     // sender MAC
            192, 0, 2, 100,                         // sender IP
            0, 0, 0, 0, 0, 0,                       // target MAC
            192, 0, 2, 100,                         // target IP = sender IP
        ];
        assert_eq!(frame.len(), 60);
        assert_eq!(frame[..42], expected);
        assert!(frame[42..].iter().all(|&b| b == 0), "zero padding");
    }

    #[test]
    fn internet_checksum_matches_rfc_1071() {
        // RFC 1071 §3's example: the sum of 0001 f203 f4f5 f6f7 is ddf2.
        let bytes = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(ones_complement_sum(&bytes), 0xddf2);
        // An odd length is padded with a zero byte.
        assert_eq!(ones_complement_sum(&[0x12, 0x34, 0x56]), 0x6834);
        assert_eq!(ones_complement_sum(&[0xff, 0xff, 0x00, 0x01]), 0x0001);
    }

    #[test]
    fn unsolicited_na_bytes() {
        let address: Ipv6Addr = "2001:db8::100".parse().unwrap();
        let frame = unsolicited_na(MAC, address);
        #[rustfmt::skip]
        let expected: [u8; 86] = [
            0x33, 0x33, 0x00, 0x00, 0x00, 0x01,     // all nodes' multicast MAC
            0x52, 0x54, 0x00, 0x12, 0x34, 0x56,     // from us
            0x86, 0xdd,                             // IPv6
            0x60, 0x00, 0x00, 0x00,                 // version 6
            0x00, 0x20, 58, 255,                    // 32 bytes of ICMPv6, hop limit 255
            0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x00, // source
            0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,          // ff02::1
            136, 0,                                 // neighbour advertisement
            0x72, 0x71,                             // checksum (computed independently)
            0x20, 0x00, 0x00, 0x00,                 // override, not solicited, not router
            0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x00, // target
            2, 1,                                   // target link-layer address, 8 bytes
            0x52, 0x54, 0x00, 0x12, 0x34, 0x56,
        ];
        assert_eq!(frame, expected);
    }

    #[test]
    fn the_na_checksum_verifies() {
        // A receiver sums the pseudo-header and the message with its checksum in place:
        // a correct checksum makes that all ones.
        for (address, mac) in [
            ("2001:db8::100", MAC),
            ("fe80::1", [0x02, 0, 0, 0, 0, 0x01]),
            ("fd00:ffff:ffff:ffff:ffff:ffff:ffff:fffe", [0xff; 6]),
        ] {
            let address: Ipv6Addr = address.parse().unwrap();
            let frame = unsolicited_na(mac, address);
            let icmp = &frame[ETH_HEADER + IPV6_HEADER..];
            let mut pseudo = Vec::new();
            pseudo.extend_from_slice(&address.octets());
            pseudo.extend_from_slice(&ALL_NODES.octets());
            pseudo.extend_from_slice(&(icmp.len() as u32).to_be_bytes());
            pseudo.extend_from_slice(&[0, 0, 0, 58]);
            pseudo.extend_from_slice(icmp);
            assert_eq!(ones_complement_sum(&pseudo), 0xffff, "{address}");
            // And any damage shows.
            let last = pseudo.len() - 1;
            pseudo[last] ^= 0x01;
            assert_ne!(ones_complement_sum(&pseudo), 0xffff, "{address}");
        }
    }
}
