//! `star_net::netlink` against the real kernel, each test in a network namespace of its
//! own with a veth pair (veth0, veth1), checked with iproute2's JSON output.
//!
//! The tests stay in the namespace the test harness runs in: only the netlink socket is
//! opened inside the test's namespace, on a short-lived thread that joins it first. A
//! netlink socket belongs for its whole life to the namespace its creating thread was in,
//! so the socket can then be used from the test's own thread, and no thread of the harness
//! is ever moved. `setns` moves the calling thread only, which is what makes this safe with
//! tests running in parallel.
//!
//! Creating namespaces needs root (CI runs as root): without it the tests fail, loudly.
//! Addresses are from the documentation and benchmarking ranges (RFC 5737, RFC 2544) and
//! stay inside the namespace.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use star_net::netlink::Netlink;

/// A network namespace with a veth pair, deleted when dropped, on failure too.
struct Namespace {
    name: String,
}

impl Namespace {
    fn new(tag: &str) -> Namespace {
        assert!(
            nix::unistd::geteuid().is_root(),
            "these tests create network namespaces and must run as root (CI does); \
             run them with sudo or in a root container"
        );
        let name = format!("star-nl-{}-{tag}", std::process::id());
        run(&["ip", "netns", "add", &name]);
        // From here on the namespace exists, so the guard must too.
        let ns = Namespace { name };
        ns.ip(&[
            "link", "add", "veth0", "type", "veth", "peer", "name", "veth1",
        ]);
        ns
    }

    /// A netlink socket inside the namespace.
    fn netlink(&self) -> Netlink {
        self.on_thread_inside(|| Netlink::open().expect("open a netlink socket"))
    }

    /// Runs `f` on a thread of its own that has joined the namespace.
    fn on_thread_inside<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/run/netns/{}", self.name);
        std::thread::spawn(move || {
            let ns = File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
            // SAFETY: setns only reads the descriptor, which `ns` keeps open for the call.
            let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns({path}): {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .expect("the thread inside the namespace panicked")
    }

    fn ip(&self, args: &[&str]) -> String {
        let mut command = vec!["ip", "-n", &self.name];
        command.extend_from_slice(args);
        run(&command)
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut command = vec!["-j"];
        command.extend_from_slice(args);
        let out = self.ip(&command);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("ip {args:?}: {e}: {out}"))
    }

    fn link(&self, name: &str) -> Value {
        self.json(&["link", "show", "dev", name])[0].clone()
    }

    /// The inet entries of `ip addr show dev NAME`.
    fn ipv4(&self, name: &str) -> Vec<Value> {
        self.json(&["addr", "show", "dev", name])[0]["addr_info"]
            .as_array()
            .expect("addr_info")
            .iter()
            .filter(|a| a["family"] == "inet")
            .cloned()
            .collect()
    }

    fn default_routes(&self) -> Vec<Value> {
        self.json(&["-4", "route", "show", "default"])
            .as_array()
            .expect("routes")
            .clone()
    }

    fn index(&self, name: &str) -> u32 {
        self.link(name)["ifindex"].as_u64().expect("ifindex") as u32
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        // Not a panic: this may run while a failed test unwinds.
        match Command::new("ip")
            .args(["netns", "del", &self.name])
            .output()
        {
            Ok(out) if out.status.success() => {}
            Ok(out) => eprintln!(
                "ip netns del {}: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(e) => eprintln!("ip netns del {}: {e}", self.name),
        }
    }
}

fn run(command: &[&str]) -> String {
    let out = Command::new(command[0])
        .args(&command[1..])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?} (is iproute2 installed?): {e}"));
    assert!(
        out.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

fn flags(link: &Value) -> Vec<String> {
    link["flags"]
        .as_array()
        .expect("flags")
        .iter()
        .map(|f| f.as_str().expect("flag").to_string())
        .collect()
}

fn assert_starts_with(text: &str, start: &str) {
    assert!(
        text.starts_with(start),
        "expected an error starting with {start:?}, got {text:?}"
    );
}

#[test]
fn links_are_listed_brought_up_and_given_an_mtu() {
    let ns = Namespace::new("link");
    let mut nl = ns.netlink();

    let mut known: Vec<(u32, String)> = ns
        .json(&["link", "show"])
        .as_array()
        .expect("links")
        .iter()
        .map(|l| {
            (
                l["ifindex"].as_u64().expect("ifindex") as u32,
                l["ifname"].as_str().expect("ifname").to_string(),
            )
        })
        .collect();
    known.sort();
    let links = nl.links().expect("links");
    let listed: Vec<(u32, String)> = links.iter().map(|l| (l.index, l.name.clone())).collect();
    assert_eq!(listed, known);

    let veth0 = ns.index("veth0");
    assert_eq!(nl.link_index("veth0"), Ok(veth0));
    assert_eq!(nl.link_index("veth1"), Ok(ns.index("veth1")));
    let names: Vec<&str> = known.iter().map(|(_, n)| n.as_str()).collect();
    assert_eq!(
        nl.link_index("eth9"),
        Err(format!(
            "no network interface named eth9 (interfaces: {})",
            names.join(", ")
        ))
    );

    let info = links.iter().find(|l| l.name == "veth0").expect("veth0");
    let mac = ns.link("veth0")["address"]
        .as_str()
        .expect("address")
        .to_string();
    let ours = info.mac.expect("veth0 has a MAC address");
    let ours = ours
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":");
    assert_eq!(ours, mac);
    assert_eq!(info.mtu, 1500);
    assert!(!info.up && !info.carrier, "a new veth is down: {info:?}");
    let lo = links.iter().find(|l| l.name == "lo").expect("lo");
    assert_eq!(lo.mac, None, "loopback's all-zero address is no MAC");

    nl.set_up(veth0).expect("set_up veth0");
    assert!(flags(&ns.link("veth0")).contains(&"UP".to_string()));
    let now = nl.links().expect("links");
    let info = now.iter().find(|l| l.index == veth0).expect("veth0");
    assert!(info.up, "{info:?}");
    assert!(!info.carrier, "the peer is still down: {info:?}");
    // Bringing up an interface that is up changes nothing and is no error.
    nl.set_up(veth0).expect("set_up veth0 again");

    nl.set_up(ns.index("veth1")).expect("set_up veth1");
    // veth raises the carrier of both ends as the second comes up; give the kernel a
    // moment all the same rather than depend on that.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let now = nl.links().expect("links");
        let info = now.iter().find(|l| l.index == veth0).expect("veth0");
        if info.carrier {
            assert!(flags(&ns.link("veth0")).contains(&"LOWER_UP".to_string()));
            break;
        }
        assert!(Instant::now() < deadline, "no carrier on veth0: {info:?}");
        std::thread::sleep(Duration::from_millis(50));
    }

    nl.set_mtu(veth0, 9000).expect("set_mtu");
    assert_eq!(ns.link("veth0")["mtu"], 9000);
    let now = nl.links().expect("links");
    assert_eq!(now.iter().find(|l| l.index == veth0).unwrap().mtu, 9000);
    assert!(flags(&ns.link("veth0")).contains(&"UP".to_string()));

    let err = nl.set_mtu(veth0, 70_000).unwrap_err();
    assert_starts_with(&err, "set MTU 70000 on veth0: Invalid argument (EINVAL)");
    assert_eq!(ns.link("veth0")["mtu"], 9000);

    let err = nl.set_up(9999).unwrap_err();
    assert_eq!(
        err, "bring up interface #9999: No such device (ENODEV)",
        "an unknown ifindex"
    );
}

#[test]
fn addresses_are_added_refreshed_listed_and_deleted() {
    let ns = Namespace::new("addr");
    let mut nl = ns.netlink();
    let veth0 = ns.index("veth0");
    let veth1 = ns.index("veth1");
    nl.set_up(veth0).expect("set_up");

    let a = Ipv4Addr::new(192, 0, 2, 11);
    nl.add_address(veth0, a, 24, None).expect("add");
    let addrs = ns.ipv4("veth0");
    assert_eq!(addrs.len(), 1, "{addrs:?}");
    assert_eq!(addrs[0]["local"], "192.0.2.11");
    assert_eq!(addrs[0]["prefixlen"], 24);
    assert_eq!(addrs[0]["broadcast"], "192.0.2.255");
    assert_eq!(addrs[0]["valid_life_time"], u64::from(u32::MAX), "forever");

    // Adding it again is no error and no second copy.
    nl.add_address(veth0, a, 24, None).expect("add again");
    assert_eq!(ns.ipv4("veth0").len(), 1);

    // A lease: the lifetime is set, and adding the address again renews it.
    let b = Ipv4Addr::new(198, 51, 100, 7);
    nl.add_address(veth0, b, 32, Some(Duration::from_secs(600)))
        .expect("add with a lifetime");
    let lease = |ns: &Namespace| {
        ns.ipv4("veth0")
            .into_iter()
            .find(|x| x["local"] == "198.51.100.7")
            .expect("198.51.100.7 on veth0")
    };
    let first = lease(&ns);
    assert_eq!(first["prefixlen"], 32);
    assert!(first.get("broadcast").is_none(), "a /32 has no broadcast");
    for key in ["valid_life_time", "preferred_life_time"] {
        let left = first[key].as_u64().expect(key);
        assert!((590..=600).contains(&left), "{key} {left}");
    }
    nl.add_address(veth0, b, 32, Some(Duration::from_secs(3600)))
        .expect("renew");
    let renewed = lease(&ns);
    for key in ["valid_life_time", "preferred_life_time"] {
        let left = renewed[key].as_u64().expect(key);
        assert!((3590..=3600).contains(&left), "{key} {left} after renewal");
    }
    assert_eq!(ns.ipv4("veth0").len(), 2);

    let mut ours = nl.addresses(veth0).expect("addresses");
    ours.sort();
    assert_eq!(ours, vec![(a, 24), (b, 32)]);
    assert_eq!(nl.addresses(veth1), Ok(Vec::new()));

    nl.delete_address(veth0, b, 32).expect("delete");
    let left = ns.ipv4("veth0");
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0]["local"], "192.0.2.11");
    assert_eq!(nl.addresses(veth0), Ok(vec![(a, 24)]));

    let err = nl.delete_address(veth0, b, 32).unwrap_err();
    assert_starts_with(
        &err,
        "delete 198.51.100.7/32 from veth0: Cannot assign requested address (EADDRNOTAVAIL)",
    );
    let err = nl
        .add_address(veth0, Ipv4Addr::new(192, 0, 2, 12), 33, None)
        .unwrap_err();
    assert_eq!(
        err,
        "add 192.0.2.12/33 to veth0: prefix length 33 is out of range (0 to 32)"
    );
    let err = nl.add_address(9999, a, 24, None).unwrap_err();
    assert_starts_with(
        &err,
        "add 192.0.2.11/24 to interface #9999: No such device (ENODEV)",
    );
}

#[test]
fn ipv6_addresses_are_added_without_dad_listed_and_deleted() {
    let ns = Namespace::new("addr6");
    let mut nl = ns.netlink();
    let veth0 = ns.index("veth0");
    let veth1 = ns.index("veth1");
    nl.set_up(veth0).expect("set_up veth0");
    nl.set_up(veth1).expect("set_up veth1");
    let v4 = Ipv4Addr::new(192, 0, 2, 11);
    nl.add_address(veth0, v4, 24, None).expect("add IPv4");

    let a: Ipv6Addr = "2001:db8::100".parse().unwrap();
    nl.add_address6(veth0, a, 64).expect("add IPv6");
    let inet6: Vec<Value> = ns.json(&["addr", "show", "dev", "veth0"])[0]["addr_info"]
        .as_array()
        .expect("addr_info")
        .iter()
        .filter(|x| x["local"] == "2001:db8::100")
        .cloned()
        .collect();
    assert_eq!(inet6.len(), 1, "{inet6:?}");
    assert_eq!(inet6[0]["prefixlen"], 64);
    // Usable at once: no duplicate address detection, so never tentative.
    assert_eq!(inet6[0]["nodad"], true, "{inet6:?}");
    assert!(inet6[0].get("tentative").is_none(), "{inet6:?}");
    assert_eq!(inet6[0]["valid_life_time"], u64::from(u32::MAX), "forever");

    // Adding it again is no error and no second copy.
    nl.add_address6(veth0, a, 64).expect("add again");
    let all = nl.all_addresses().expect("all addresses");
    let ours: Vec<_> = all.iter().filter(|x| x.address == IpAddr::V6(a)).collect();
    assert_eq!(ours.len(), 1, "{all:?}");
    assert_eq!((ours[0].index, ours[0].prefix_len), (veth0, 64));
    assert!(!ours[0].tentative && !ours[0].dad_failed, "{ours:?}");
    assert!(
        all.iter()
            .any(|x| x.index == veth0 && x.address == IpAddr::V4(v4) && x.prefix_len == 24),
        "both families are listed: {all:?}"
    );
    assert!(
        all.iter().any(|x| x.index == veth1),
        "every interface is listed (veth1's link-local address): {all:?}"
    );

    nl.delete_address6(veth0, a, 64).expect("delete");
    let all = nl.all_addresses().expect("all addresses");
    assert!(!all.iter().any(|x| x.address == IpAddr::V6(a)), "{all:?}");
    let err = nl.delete_address6(veth0, a, 64).unwrap_err();
    assert_starts_with(
        &err,
        "delete 2001:db8::100/64 from veth0: Cannot assign requested address (EADDRNOTAVAIL)",
    );

    // With IPv6 off on the interface the kernel refuses, and says why.
    run(&[
        "ip",
        "netns",
        "exec",
        &ns.name,
        "sysctl",
        "-q",
        "-w",
        "net.ipv6.conf.veth1.disable_ipv6=1",
    ]);
    let err = nl.add_address6(veth1, a, 64).unwrap_err();
    assert_starts_with(&err, "add 2001:db8::100/64 to veth1: ");
    assert!(err.contains("IPv6 is disabled"), "{err}");
}

#[test]
fn long_listings_are_read_to_the_end() {
    let ns = Namespace::new("dump");
    let mut nl = ns.netlink();
    let veth1 = ns.index("veth1");
    // Some 80 bytes each: 600 addresses are more than the kernel puts in one datagram
    // (32 KiB at most), so the listing comes in several parts.
    let count = 600u32;
    let mut added: Vec<(Ipv4Addr, u8)> = (0..count)
        .map(|i| {
            (
                Ipv4Addr::new(198, 18, (i / 250) as u8, (i % 250 + 1) as u8),
                32,
            )
        })
        .collect();
    for &(addr, prefix) in &added {
        nl.add_address(veth1, addr, prefix, None).expect("add");
    }
    assert_eq!(ns.ipv4("veth1").len(), count as usize);
    let mut listed = nl.addresses(veth1).expect("addresses");
    listed.sort();
    added.sort();
    // Not assert_eq: a mismatch would print 1200 addresses.
    assert!(
        listed == added,
        "listed {} addresses, {} were added",
        listed.len(),
        added.len()
    );
    // The socket is still in step after a long listing.
    assert_eq!(nl.link_index("veth1"), Ok(veth1));
}

#[test]
fn the_default_route_is_set_replaced_and_read() {
    let ns = Namespace::new("route");
    let mut nl = ns.netlink();
    let veth0 = ns.index("veth0");
    let veth1 = ns.index("veth1");
    for (index, addr) in [
        (veth0, Ipv4Addr::new(192, 0, 2, 11)),
        (veth1, Ipv4Addr::new(198, 51, 100, 11)),
    ] {
        nl.set_up(index).expect("set_up");
        nl.add_address(index, addr, 24, None).expect("add");
    }
    assert_eq!(nl.default_route(), Ok(None));

    let gw0 = Ipv4Addr::new(192, 0, 2, 1);
    nl.set_default_route(veth0, gw0).expect("set default route");
    let routes = ns.default_routes();
    assert_eq!(routes.len(), 1, "{routes:?}");
    assert_eq!(routes[0]["gateway"], "192.0.2.1");
    assert_eq!(routes[0]["dev"], "veth0");
    assert_eq!(routes[0]["protocol"], "static");
    assert_eq!(nl.default_route(), Ok(Some((gw0, veth0))));

    // Setting the same route again is no error and no second route.
    nl.set_default_route(veth0, gw0).expect("set it again");
    assert_eq!(ns.default_routes().len(), 1);

    // Another gateway on another interface replaces it.
    let gw1 = Ipv4Addr::new(198, 51, 100, 1);
    nl.set_default_route(veth1, gw1).expect("replace");
    let routes = ns.default_routes();
    assert_eq!(routes.len(), 1, "{routes:?}");
    assert_eq!(routes[0]["gateway"], "198.51.100.1");
    assert_eq!(routes[0]["dev"], "veth1");
    assert_eq!(nl.default_route(), Ok(Some((gw1, veth1))));

    // A gateway on no subnet of the interface is refused, and the route stays.
    let err = nl
        .set_default_route(veth0, Ipv4Addr::new(203, 0, 113, 1))
        .unwrap_err();
    assert_starts_with(
        &err,
        "set default route via 203.0.113.1 on veth0: Network is unreachable (ENETUNREACH)",
    );
    assert_eq!(nl.default_route(), Ok(Some((gw1, veth1))));

    // Routes of other tables are not the default route.
    ns.ip(&[
        "route",
        "add",
        "default",
        "via",
        "192.0.2.1",
        "dev",
        "veth0",
        "table",
        "100",
    ]);
    assert_eq!(nl.default_route(), Ok(Some((gw1, veth1))));
}

/// Drops every capability of the calling thread, and of that thread only: the raw system
/// call, because libc wrappers of credential calls apply them to the whole process.
fn drop_capabilities_of_this_thread() {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: libc::c_int,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
    let header = Header {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let data = [Data {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    // SAFETY: both pointers are to live values of the layout capset(2) expects.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) };
    assert_eq!(rc, 0, "capset: {}", std::io::Error::last_os_error());
}

#[test]
fn a_caller_without_privileges_is_told_so() {
    let ns = Namespace::new("perm");
    let veth0 = ns.index("veth0");
    let (links, add, up) = ns.on_thread_inside(move || {
        drop_capabilities_of_this_thread();
        let mut nl = Netlink::open().expect("open a netlink socket");
        (
            nl.links(),
            nl.add_address(veth0, Ipv4Addr::new(192, 0, 2, 11), 24, None),
            nl.set_up(veth0),
        )
    });
    // Reading needs no privilege.
    assert!(links.expect("links").iter().any(|l| l.name == "veth0"));
    assert_eq!(
        add,
        Err("add 192.0.2.11/24 to veth0: Operation not permitted (EPERM)".to_string())
    );
    assert_eq!(
        up,
        Err("bring up veth0: Operation not permitted (EPERM)".to_string())
    );
    assert!(ns.ipv4("veth0").is_empty());
    assert!(!flags(&ns.link("veth0")).contains(&"UP".to_string()));
}
