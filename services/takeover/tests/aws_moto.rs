//! The real star-takeover binary with the AWS methods, against moto's server and an
//! IMDSv2 responder per controller (star-aws's test support). It runs in a network
//! namespace of its own (unshared by the test's thread, so moto, the responders and the
//! binary all live there), with an interface per controller carrying its ENI's MAC:
//! the binary finds its ENI from that MAC, as on EC2, and puts the address on it.

#[path = "../../aws/tests/support/mod.rs"]
mod support;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;

const STAR_TAKEOVER: &str = env!("CARGO_BIN_EXE_star-takeover");

fn sh(cmd: &[&str]) {
    let s = Command::new(cmd[0]).args(&cmd[1..]).status().unwrap();
    assert!(s.success(), "{cmd:?}");
}

fn takeover(config: &Path, what: &str) -> (bool, String) {
    let o = Command::new(STAR_TAKEOVER)
        .args(["--config", config.to_str().unwrap(), what])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
    (o.status.success(), text)
}

fn addresses(interface: &str) -> String {
    let o = Command::new("ip")
        .args(["-4", "-o", "addr", "show", "dev", interface])
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// The AWS example's star.toml for one controller, its client interface renamed to the
/// test's, with `floating` as its [floating] table and the endpoints of this test.
fn star_toml(dir: &Path, name: &str, nic: &str, floating: &str, imds: &str, moto: &str) -> PathBuf {
    let example =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../board/examples/aws-ec2.star.toml");
    let text = std::fs::read_to_string(example).unwrap();
    let start = text.find("[floating]").unwrap();
    let end = text.find("[witness]").unwrap();
    let text = format!("{}{floating}\n\n{}", &text[..start], &text[end..])
        .replacen("name = \"eth0\"", &format!("name = \"{nic}\""), 1)
        + &format!(
            "\n[aws]\nimds_endpoint = \"{imds}\"\nec2_endpoint = \"{moto}\"\nroute53_endpoint = \"{moto}\"\n"
        );
    let path = dir.join(format!("{name}.star.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn every_aws_method_moves_the_address_between_two_controllers() {
    // SAFETY: unshare(2) with CLONE_NEWNET affects the calling thread only.
    assert_eq!(
        unsafe { libc::unshare(libc::CLONE_NEWNET) },
        0,
        "a network namespace (root)"
    );
    sh(&["ip", "link", "set", "lo", "up"]);
    let dir = std::env::temp_dir().join(format!("star-takeover-aws-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();

    let moto = support::moto();
    let admin = support::admin(&moto.url);
    let world = support::world(&admin);
    let nics = ["stk1", "stk2"];
    for (nic, node) in nics.iter().zip(&world.ctl) {
        // A veth pair (this kernel has no dummy links); the peer end only gives carrier.
        let peer = format!("{nic}p");
        sh(&[
            "ip", "link", "add", nic, "address", &node.mac, "type", "veth", "peer", "name", &peer,
        ]);
        sh(&["ip", "link", "set", nic, "up"]);
        sh(&["ip", "link", "set", &peer, "up"]);
    }
    let imds: Vec<_> = world
        .ctl
        .iter()
        .map(|n| support::ImdsResponder::start(n, support::long_lived()))
        .collect();
    let configs = |floating: &str, tag: &str| -> Vec<PathBuf> {
        (0..2)
            .map(|i| {
                star_toml(
                    &dir,
                    &format!("{tag}{}", i + 1),
                    nics[i],
                    floating,
                    &imds[i].url,
                    &moto.url,
                )
            })
            .collect()
    };
    let vip: Ipv4Addr = "10.0.1.100".parse().unwrap();

    // Secondary IP: with ctl1, then with ctl2 (AllowReassignment), then with nobody.
    let c = configs(
        "[floating]\naddress = \"10.0.1.100/24\"\nmethod = \"aws-secondary-ip\"",
        "sip",
    );
    let (ok, out) = takeover(&c[0], "acquire");
    assert!(ok, "{out}");
    assert_eq!(
        support::holders_of(&admin, &world.subnet, vip),
        vec![world.ctl[0].eni_id.clone()]
    );
    assert!(
        addresses("stk1").contains("10.0.1.100/24"),
        "{}",
        addresses("stk1")
    );
    let (ok, out) = takeover(&c[1], "acquire");
    assert!(ok, "{out}");
    assert_eq!(
        support::holders_of(&admin, &world.subnet, vip),
        vec![world.ctl[1].eni_id.clone()]
    );
    assert!(addresses("stk2").contains("10.0.1.100/24"));
    let (ok, out) = takeover(&c[0], "status");
    assert!(
        ok && out.contains("aws-secondary-ip 10.0.1.100/24: not held"),
        "{out}"
    );
    let (ok, out) = takeover(&c[1], "status");
    assert!(
        ok && out.contains("aws-secondary-ip 10.0.1.100/24: held"),
        "{out}"
    );
    // ctl1 still has its local copy (it was never told to release): release takes it off.
    let (ok, out) = takeover(&c[0], "release");
    assert!(ok, "{out}");
    assert!(!addresses("stk1").contains("10.0.1.100"));
    assert_eq!(
        support::holders_of(&admin, &world.subnet, vip),
        vec![world.ctl[1].eni_id.clone()]
    );
    let (ok, out) = takeover(&c[1], "release");
    assert!(ok, "{out}");
    assert!(support::holders_of(&admin, &world.subnet, vip).is_empty());
    assert!(!addresses("stk2").contains("10.0.1.100"));

    // Route tables: the /32 points at the acquiring controller's ENI.
    let rtb = support::route_table(&admin, &world.vpc, "10.0.1.100/32", &world.ctl[1].eni_id);
    let c = configs(
        &format!("[floating]\naddress = \"10.0.1.100/24\"\nmethod = \"aws-route-table\"\nroute_table_ids = [\"{rtb}\"]"),
        "rtb",
    );
    let (ok, out) = takeover(&c[0], "acquire");
    assert!(ok, "{out}");
    assert_eq!(
        support::route_target(&admin, &rtb, "10.0.1.100/32").as_deref(),
        Some(world.ctl[0].eni_id.as_str())
    );
    assert!(addresses("stk1").contains("10.0.1.100/24"));
    let (ok, out) = takeover(&c[1], "acquire");
    assert!(ok, "{out}");
    assert_eq!(
        support::route_target(&admin, &rtb, "10.0.1.100/32").as_deref(),
        Some(world.ctl[1].eni_id.as_str())
    );
    for c in &c {
        assert!(takeover(c, "release").0);
    }

    // Route 53: the record names the acquiring controller's own address.
    let (zone, zone_name) = support::hosted_zone(&admin);
    let record = format!("star.{zone_name}");
    let c = configs(
        &format!(
            "[floating]\naddress = \"10.0.1.100/24\"\nmethod = \"aws-route53\"\nhosted_zone_id = \"{zone}\"\nrecord_name = \"{record}\"\nttl = 10"
        ),
        "dns",
    );
    for (i, config) in c.iter().enumerate() {
        let (ok, out) = takeover(config, "acquire");
        assert!(ok, "{out}");
        assert_eq!(
            support::a_values(&admin, &zone, &record),
            vec![world.ctl[i].ip.to_string()]
        );
    }
    assert!(
        !addresses("stk1").contains("10.0.1.100"),
        "Route 53 puts nothing on the NIC"
    );

    // Power fencing: ctl1 stops ctl2, confirmed.
    let fencing = format!(
        "[floating]\naddress = \"10.0.1.100/24\"\nmethod = \"aws-secondary-ip\"\n\n\
         [fencing]\nmethod = \"aws-stop-instance\"\npeer_instance_id = \"{}\"",
        world.ctl[1].instance_id
    );
    let c = configs(&fencing, "fence");
    let (ok, out) = takeover(&c[0], "fence-peer");
    assert!(ok, "{out}");
    assert!(out.contains(&world.ctl[1].instance_id), "{out}");
    let state = support::instance_state(&admin, &world.ctl[1].instance_id);
    assert!(state == "stopping" || state == "stopped", "{state}");
    assert_eq!(
        support::instance_state(&admin, &world.ctl[0].instance_id),
        "running"
    );
    // Without [fencing]: a clear refusal.
    let (ok, out) = takeover(&c[0].with_file_name("sip1.star.toml"), "fence-peer");
    assert!(!ok);
    assert!(out.contains("star.toml has no [fencing]"), "{out}");

    // Bad input: an address outside the ENI's subnet is refused before any change.
    let c = configs(
        "[floating]\naddress = \"10.0.9.100/24\"\nmethod = \"aws-secondary-ip\"",
        "bad",
    );
    let (ok, out) = takeover(&c[0], "acquire");
    assert!(!ok);
    assert!(
        out.contains("10.0.9.100") && out.contains("10.0.1.0/24"),
        "{out}"
    );
    assert!(support::holders_of(&admin, &world.subnet, "10.0.9.100".parse().unwrap()).is_empty());
    assert!(!addresses("stk1").contains("10.0.9.100"));
    // A route table that does not exist: named, nothing moved.
    let c = configs(
        "[floating]\naddress = \"10.0.1.100/24\"\nmethod = \"aws-route-table\"\nroute_table_ids = [\"rtb-0000000000000dead\"]",
        "nortb",
    );
    let (ok, out) = takeover(&c[0], "acquire");
    assert!(!ok);
    assert!(out.contains("rtb-0000000000000dead"), "{out}");
    assert!(!addresses("stk1").contains("10.0.1.100"));
}
