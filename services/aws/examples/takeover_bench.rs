//! Times each AWS takeover method against moto's server: N acquires per method,
//! alternating between two controllers so that every acquire really moves the address,
//! plus N forced stops of fresh instances. Prints the median, min and max, and the
//! number of API requests one acquire makes (counted through a pass-through proxy).
//!
//!   cargo run --release -p star-aws --example takeover_bench -- [N]
//!
//! moto answers in a millisecond or two and is always INSYNC, so these are the costs of
//! STAR's own work and the request count; on AWS each request adds its round trip
//! (tens of milliseconds), and Route 53 adds the time until the change is INSYNC.

#[path = "../tests/support/mod.rs"]
mod support;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use star_aws::methods::{DnsRecord, RouteTables, SecondaryIp};
use star_aws::{Client, Method};
use support::*;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn report(name: &str, times: Vec<Duration>, requests: usize) {
    let min = *times.iter().min().unwrap();
    let max = *times.iter().max().unwrap();
    println!(
        "{name:<34} median {:>9}  min {:>9}  max {:>9}  requests/op {requests}",
        ms(median(times)),
        ms(min),
        ms(max),
    );
}

/// Times `n` acquires alternating between the two controllers' methods.
fn time_acquires(n: usize, ctls: [(&Client, &Method); 2]) -> Vec<Duration> {
    (0..n)
        .map(|i| {
            let (client, method) = ctls[i % 2];
            let t = Instant::now();
            method
                .acquire(client, deadline(30))
                .unwrap_or_else(|e| panic!("{e}"));
            t.elapsed()
        })
        .collect()
}

/// The requests one acquire by ctl1 makes (the address currently with ctl2).
fn count_requests(proxy: &Proxy, client: &Client, method: &Method) -> usize {
    let before = proxy.seen().len();
    method
        .acquire(client, deadline(30))
        .unwrap_or_else(|e| panic!("{e}"));
    proxy.seen().len() - before
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("N: a number of runs"))
        .unwrap_or(20);
    let started = Instant::now();
    let moto = moto();
    println!("moto's server up in {}", ms(started.elapsed()));
    let admin = admin(&moto.url);
    let w = world(&admin);
    let proxy = Proxy::start(&moto.url);
    // Timed clients go straight to moto; the counting ones through the proxy.
    let direct = [
        controller(&w.ctl[0], &moto.url, long_lived()),
        controller(&w.ctl[1], &moto.url, long_lived()),
    ];
    let counted = controller(&w.ctl[0], &proxy.url, long_lived());

    let floating = Ipv4Addr::new(10, 0, 1, 100);
    let sec = |c: &Ctl| {
        Method::SecondaryIp(SecondaryIp {
            address: floating,
            me: c.me.clone(),
        })
    };
    let dest = "192.168.77.1/32";
    let tables = vec![
        route_table(&admin, &w.vpc, dest, &direct[1].me.eni_id),
        route_table(&admin, &w.vpc, dest, &direct[1].me.eni_id),
    ];
    let rtb = |c: &Ctl| {
        Method::RouteTables(RouteTables {
            address: Ipv4Addr::new(192, 168, 77, 1),
            route_table_ids: tables.clone(),
            me: c.me.clone(),
        })
    };
    let (zone, zone_name) = hosted_zone(&admin);
    let dns = |c: &Ctl| {
        Method::Route53(DnsRecord {
            hosted_zone_id: zone.clone(),
            name: format!("star.{zone_name}"),
            ttl: 10,
            value: c.node.ip,
        })
    };

    println!("N={n} acquires per method, alternating ctl1/ctl2 (each one a real move)");
    type Make<'a> = &'a dyn Fn(&Ctl) -> Method;
    let methods: [(&str, Make); 3] = [
        ("secondary IP acquire", &sec),
        ("route tables (2) acquire", &rtb),
        ("Route 53 acquire (INSYNC at once)", &dns),
    ];
    for (name, make) in methods {
        let (m1, m2) = (make(&direct[0]), make(&direct[1]));
        let times = time_acquires(n, [(&direct[0].client, &m1), (&direct[1].client, &m2)]);
        // Leave it with ctl2, then count what one move to ctl1 costs.
        m2.acquire(&direct[1].client, deadline(30))
            .unwrap_or_else(|e| panic!("{e}"));
        let requests = count_requests(&proxy, &counted.client, &make(&counted));
        report(name, times, requests);
    }

    // Fencing: a fresh running instance per stop.
    let peers: Vec<String> = (0..n + 1)
        .map(|_| {
            let body = ec2(
                &admin,
                "RunInstances",
                &[
                    ("ImageId", "ami-12345678"),
                    ("MinCount", "1"),
                    ("MaxCount", "1"),
                    ("SubnetId", &w.subnet),
                ],
            );
            let doc = star_aws::xml::parse(&body).unwrap();
            star_aws::xml::text(
                star_aws::xml::find(doc.root(), "instancesSet")
                    .and_then(|s| star_aws::xml::child(s, "item"))
                    .unwrap(),
                "instanceId",
            )
            .unwrap()
        })
        .collect();
    let times: Vec<Duration> = peers[..n]
        .iter()
        .map(|peer| {
            let t = Instant::now();
            star_aws::stop_instance(&direct[0].client, peer, deadline(30))
                .unwrap_or_else(|e| panic!("{e}"));
            t.elapsed()
        })
        .collect();
    let before = proxy.seen().len();
    star_aws::stop_instance(&counted.client, &peers[n], deadline(30))
        .unwrap_or_else(|e| panic!("{e}"));
    report(
        "fence: stop_instance (Force)",
        times,
        proxy.seen().len() - before,
    );
}
