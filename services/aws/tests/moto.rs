//! The takeover methods against moto's server: a VPC, a subnet and two controllers built
//! through the EC2 API, each controller with its own IMDSv2 responder and client, and a
//! proxy in front of moto for throttling and errors. Every result is checked through
//! the API with a separate client, not through the method's own report.
//!
//! Where moto differs from AWS (see docs/aws.md): it does not check IAM or signatures,
//! GetChange is INSYNC at once, StopInstances ignores Force and goes straight to
//! `stopped`, and AssignPrivateIpAddresses with AllowReassignment adds the address
//! without removing it from the old ENI (acquire removes it from there itself, which
//! is what the contention test sees).

mod support;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use star_aws::methods::{DnsRecord, RouteTables, SecondaryIp};
use star_aws::ErrorKind;
use support::*;

const FLOATING: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 100);
const OVERLAY: Ipv4Addr = Ipv4Addr::new(192, 168, 77, 1);

struct Setup {
    admin: star_aws::Client,
    proxy: Proxy,
    world: World,
    ctl1: Ctl,
    ctl2: Ctl,
}

/// A fresh world and two controllers whose API calls go through a proxy.
fn setup() -> Setup {
    let moto = moto();
    let admin = admin(&moto.url);
    let world = world(&admin);
    let proxy = Proxy::start(&moto.url);
    let ctl1 = controller(&world.ctl[0], &proxy.url, long_lived());
    let ctl2 = controller(&world.ctl[1], &proxy.url, long_lived());
    Setup {
        admin,
        proxy,
        world,
        ctl1,
        ctl2,
    }
}

fn secondary(ctl: &Ctl, addr: Ipv4Addr) -> SecondaryIp {
    SecondaryIp {
        address: addr,
        me: ctl.me.clone(),
    }
}

fn ok<T>(r: Result<T, star_aws::Error>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn imds_gives_the_instance_its_eni_and_region() {
    let s = setup();
    let node = &s.world.ctl[0];
    assert_eq!(s.ctl1.me.instance_id, node.instance_id);
    assert_eq!(s.ctl1.me.eni_id, node.eni_id);
    assert_eq!(s.ctl1.client.region(), REGION);
    let imds = star_aws::Imds::new(&s.ctl1.imds.url, quick_retries());
    assert_eq!(ok(imds.primary_mac(deadline(5))), node.mac);
    assert_eq!(ok(imds.local_ipv4(deadline(5))), node.ip.to_string());
    assert_eq!(
        ok(imds.local_ipv4s(&node.mac, deadline(5))),
        [node.ip.to_string()]
    );
    // Controller::from_imds without a MAC takes the primary interface.
    let me = ok(star_aws::Controller::from_imds(&imds, None, deadline(5)));
    assert_eq!(me, s.ctl1.me);
    let e = imds
        .interface_id("02:00:00:00:00:99", deadline(5))
        .unwrap_err();
    assert!(matches!(e.kind, ErrorKind::Aws { status: 404, .. }), "{e}");
    assert_eq!(e.attempts, 1, "a 404 is not retried: {e}");
    // Every GET carried the token: the responder refused none.
    assert_eq!(s.ctl1.imds.state.lock().unwrap().gets_without_token, 0);
}

#[test]
fn secondary_ip_moves_between_controllers() {
    let s = setup();
    let subnet = &s.world.subnet;
    let (m1, m2) = (secondary(&s.ctl1, FLOATING), secondary(&s.ctl2, FLOATING));

    let msg = ok(m1.acquire(&s.ctl1.client, deadline(10)));
    assert!(msg.contains("assigned to"), "{msg}");
    assert_eq!(
        holders_of(&s.admin, subnet, FLOATING),
        [s.ctl1.me.eni_id.as_str()]
    );
    let st = ok(m1.status(&s.ctl1.client, deadline(10)));
    assert!(st.held_by_us(), "{st}");

    // Idempotent: a second acquire changes nothing and says so.
    let assigns = s.proxy.count("Action=AssignPrivateIpAddresses");
    let msg = ok(m1.acquire(&s.ctl1.client, deadline(10)));
    assert!(msg.contains("already"), "{msg}");
    assert_eq!(s.proxy.count("Action=AssignPrivateIpAddresses"), assigns);

    // Contention: ctl2 takes it over; ctl1's status sees that.
    let msg = ok(m2.acquire(&s.ctl2.client, deadline(10)));
    assert!(
        msg.contains(&format!(
            "moved from {} to {}",
            s.ctl1.me.eni_id, s.ctl2.me.eni_id
        )),
        "{msg}"
    );
    assert_eq!(
        holders_of(&s.admin, subnet, FLOATING),
        [s.ctl2.me.eni_id.as_str()]
    );
    let st1 = ok(m1.status(&s.ctl1.client, deadline(10)));
    assert!(!st1.held_by_us(), "{st1}");
    assert_eq!(
        st1.to_string(),
        format!(
            "{FLOATING} is on {} ({})",
            s.ctl2.me.eni_id, s.ctl2.me.instance_id
        )
    );
    assert!(ok(m2.status(&s.ctl2.client, deadline(10))).held_by_us());

    // ctl1 releasing what it no longer holds touches nothing.
    let unassigns = s.proxy.count("Action=UnassignPrivateIpAddresses");
    let msg = ok(m1.release(&s.ctl1.client, deadline(10)));
    assert!(msg.contains("nothing to release"), "{msg}");
    assert_eq!(
        s.proxy.count("Action=UnassignPrivateIpAddresses"),
        unassigns
    );
    assert_eq!(
        holders_of(&s.admin, subnet, FLOATING),
        [s.ctl2.me.eni_id.as_str()]
    );

    // ctl2 releases: the address is on no ENI; releasing again is a no-op.
    let msg = ok(m2.release(&s.ctl2.client, deadline(10)));
    assert!(msg.contains("removed from"), "{msg}");
    assert!(holders_of(&s.admin, subnet, FLOATING).is_empty());
    let msg = ok(m2.release(&s.ctl2.client, deadline(10)));
    assert!(msg.contains("nothing to release"), "{msg}");
    let st = ok(m2.status(&s.ctl2.client, deadline(10)));
    assert_eq!(st.to_string(), format!("{FLOATING} is on no interface"));
}

#[test]
fn secondary_ip_outside_the_subnet_is_refused_before_any_change() {
    let s = setup();
    let outside = Ipv4Addr::new(10, 0, 9, 9);
    let e = secondary(&s.ctl1, outside)
        .acquire(&s.ctl1.client, deadline(10))
        .unwrap_err();
    assert!(matches!(e.kind, ErrorKind::Refused(_)), "{e}");
    let text = e.to_string();
    assert!(
        text.contains(&format!(
            "10.0.9.9 is outside subnet {} (10.0.1.0/24)",
            s.world.subnet
        )),
        "{text}"
    );
    assert!(text.contains("nothing was changed"), "{text}");
    assert_eq!(s.proxy.count("Action=AssignPrivateIpAddresses"), 0);
    assert!(holders_of(&s.admin, &s.world.subnet, outside).is_empty());

    // The peer's primary address is no floating address either.
    let e = secondary(&s.ctl1, s.world.ctl[1].ip)
        .acquire(&s.ctl1.client, deadline(10))
        .unwrap_err();
    assert!(e.to_string().contains("primary address of"), "{e}");
    assert_eq!(s.proxy.count("Action=AssignPrivateIpAddresses"), 0);
    assert_eq!(
        holders_of(&s.admin, &s.world.subnet, s.world.ctl[1].ip),
        [s.ctl2.me.eni_id.as_str()]
    );
}

#[test]
fn route_tables_move_together_and_release_leaves_them() {
    let s = setup();
    let dest = "192.168.77.1/32";
    let (e1, e2) = (&s.ctl1.me.eni_id, &s.ctl2.me.eni_id);
    let tables = vec![
        route_table(&s.admin, &s.world.vpc, dest, e2),
        route_table(&s.admin, &s.world.vpc, dest, e2),
    ];
    let m1 = RouteTables {
        address: OVERLAY,
        route_table_ids: tables.clone(),
        me: s.ctl1.me.clone(),
    };
    let m2 = RouteTables {
        me: s.ctl2.me.clone(),
        ..m1.clone()
    };

    let msg = ok(m1.acquire(&s.ctl1.client, deadline(10)));
    assert!(msg.contains("2 replaced, 0 already"), "{msg}");
    for t in &tables {
        assert_eq!(route_target(&s.admin, t, dest).as_ref(), Some(e1), "{t}");
    }
    assert!(ok(m1.status(&s.ctl1.client, deadline(10))).held_by_us());

    // Again: nothing to replace.
    let msg = ok(m1.acquire(&s.ctl1.client, deadline(10)));
    assert!(msg.contains("0 replaced, 2 already"), "{msg}");

    // Contention: ctl2 takes both tables; ctl1's status sees that.
    ok(m2.acquire(&s.ctl2.client, deadline(10)));
    for t in &tables {
        assert_eq!(route_target(&s.admin, t, dest).as_ref(), Some(e2), "{t}");
    }
    let st1 = ok(m1.status(&s.ctl1.client, deadline(10)));
    assert!(!st1.held_by_us());
    assert_eq!(
        st1.to_string(),
        format!("{dest}: {} -> {e2}, {} -> {e2}", tables[0], tables[1])
    );

    // Release makes no call and leaves the routes where they are.
    let before = s.proxy.seen().len();
    let msg = m2.release();
    assert!(msg.contains("stay until the peer's acquire"), "{msg}");
    assert_eq!(s.proxy.seen().len(), before);
    for t in &tables {
        assert_eq!(route_target(&s.admin, t, dest).as_ref(), Some(e2));
    }
}

#[test]
fn a_missing_route_table_or_route_moves_nothing() {
    let s = setup();
    let dest = "192.168.77.1/32";
    let e2 = &s.ctl2.me.eni_id;
    let good = route_table(&s.admin, &s.world.vpc, dest, e2);
    let other_route = route_table(&s.admin, &s.world.vpc, "192.168.77.9/32", e2);

    let m = RouteTables {
        address: OVERLAY,
        route_table_ids: vec![good.clone(), "rtb-0000000000000dead".into()],
        me: s.ctl1.me.clone(),
    };
    let e = m.acquire(&s.ctl1.client, deadline(10)).unwrap_err();
    assert!(matches!(e.kind, ErrorKind::Refused(_)), "{e}");
    let text = e.to_string();
    assert!(text.contains("rtb-0000000000000dead"), "{text}");
    assert!(text.contains("InvalidRouteTableID.NotFound"), "{text}");
    assert!(text.contains("nothing was changed"), "{text}");

    let m = RouteTables {
        route_table_ids: vec![good.clone(), other_route.clone()],
        ..m
    };
    let e = m.acquire(&s.ctl1.client, deadline(10)).unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains(&format!("no route for {dest} in {other_route}")),
        "{text}"
    );
    assert_eq!(s.proxy.count("Action=ReplaceRoute"), 0);
    assert_eq!(route_target(&s.admin, &good, dest).as_ref(), Some(e2));
    let st = ok(m.status(&s.ctl1.client, deadline(10)));
    assert!(!st.held_by_us());
    assert!(
        st.to_string().contains(&format!("{other_route}: no route")),
        "{st}"
    );
}

#[test]
fn route53_record_follows_the_acquirer() {
    let s = setup();
    let (zone, zone_name) = hosted_zone(&s.admin);
    let name = format!("star.{zone_name}");
    let m1 = DnsRecord {
        hosted_zone_id: format!("/hostedzone/{zone}"),
        name: name.trim_end_matches('.').to_string(),
        ttl: 10,
        value: s.ctl1.node.ip,
    };
    let m2 = DnsRecord {
        value: s.ctl2.node.ip,
        ..m1.clone()
    };

    let st = ok(m1.status(&s.ctl1.client, deadline(10)));
    assert!(st.record.is_none() && !st.held_by_us(), "{st}");

    let msg = ok(m1.acquire(&s.ctl1.client, deadline(10)));
    assert!(msg.contains("INSYNC"), "{msg}");
    assert_eq!(
        a_values(&s.admin, &zone, &name),
        [s.ctl1.node.ip.to_string()]
    );
    let st = ok(m1.status(&s.ctl1.client, deadline(10)));
    assert!(st.held_by_us(), "{st}");
    assert_eq!(st.record.as_ref().unwrap().ttl, Some(10));
    // Signed for Route 53's region whatever the instance's.
    assert!(s
        .proxy
        .seen()
        .iter()
        .filter(|r| r.line.contains("/rrset"))
        .all(|r| r
            .scope
            .as_deref()
            .is_some_and(|sc| sc.ends_with("/us-east-1/route53/aws4_request"))));

    // Idempotent.
    ok(m1.acquire(&s.ctl1.client, deadline(10)));
    assert_eq!(
        a_values(&s.admin, &zone, &name),
        [s.ctl1.node.ip.to_string()]
    );

    // Contention: ctl2's address wins; ctl1 sees it no longer holds the name.
    ok(m2.acquire(&s.ctl2.client, deadline(10)));
    assert_eq!(
        a_values(&s.admin, &zone, &name),
        [s.ctl2.node.ip.to_string()]
    );
    let st1 = ok(m1.status(&s.ctl1.client, deadline(10)));
    assert!(!st1.held_by_us());
    assert_eq!(
        st1.to_string(),
        format!("{name} A {} (TTL 10 s)", s.ctl2.node.ip)
    );

    // Release leaves the record.
    let before = s.proxy.seen().len();
    assert!(m2.release().contains("left as it is"));
    assert_eq!(s.proxy.seen().len(), before);
    assert_eq!(
        a_values(&s.admin, &zone, &name),
        [s.ctl2.node.ip.to_string()]
    );
}

#[test]
fn route53_acquire_waits_for_a_pending_change() {
    // moto reports every change INSYNC at once; AWS says PENDING first. The proxy turns
    // the UPSERT's answer and the first GetChange answer into PENDING.
    let s = setup();
    let (zone, zone_name) = hosted_zone(&s.admin);
    for (matching, times) in [
        ("POST /2013-04-01/hostedzone/", 1),
        ("GET /2013-04-01/change/", 1),
    ] {
        s.proxy.rewrite(Rewrite {
            matching: matching.into(),
            times,
            from: "<Status>INSYNC</Status>".into(),
            to: "<Status>PENDING</Status>".into(),
        });
    }
    let m = DnsRecord {
        hosted_zone_id: zone.clone(),
        name: format!("star.{zone_name}"),
        ttl: 10,
        value: s.ctl1.node.ip,
    };
    let started = Instant::now();
    let msg = ok(m.acquire(&s.ctl1.client, deadline(10)));
    // PENDING in the UPSERT's answer, 250 ms, PENDING, 500 ms, INSYNC.
    assert_eq!(s.proxy.count("GET /2013-04-01/change/"), 2, "{msg}");
    assert!(started.elapsed() >= Duration::from_millis(750));
    assert!(msg.contains("INSYNC after"), "{msg}");

    // A change that stays PENDING past the deadline is reported as not confirmed (the
    // record itself is already UPSERTed: Route 53 will finish propagating it).
    s.proxy.rewrite(Rewrite {
        matching: "/2013-04-01/".into(),
        times: 100,
        from: "<Status>INSYNC</Status>".into(),
        to: "<Status>PENDING</Status>".into(),
    });
    let m2 = DnsRecord {
        value: s.ctl2.node.ip,
        ..m
    };
    let e = m2
        .acquire(&s.ctl2.client, Instant::now() + Duration::from_millis(2500))
        .unwrap_err();
    assert!(matches!(e.kind, ErrorKind::NotConfirmed(_)), "{e}");
    assert!(e.to_string().contains("is PENDING"), "{e}");
    assert!(e.is_transient());
}

#[test]
fn a_missing_hosted_zone_is_refused() {
    let s = setup();
    let m = DnsRecord {
        hosted_zone_id: "Z0000000000NOSUCHZONE".into(),
        name: "star.example.internal".into(),
        ttl: 10,
        value: s.ctl1.node.ip,
    };
    let e = m.acquire(&s.ctl1.client, deadline(10)).unwrap_err();
    assert!(matches!(e.kind, ErrorKind::Refused(_)), "{e}");
    let text = e.to_string();
    assert!(text.contains("NoSuchHostedZone"), "{text}");
    assert!(text.contains("Z0000000000NOSUCHZONE"), "{text}");
    assert_eq!(e.attempts, 1, "{text}");
    assert!(m.status(&s.ctl1.client, deadline(10)).is_err());
}

#[test]
fn fencing_stops_the_peer() {
    let s = setup();
    let peer = &s.ctl2.me.instance_id;
    assert_eq!(instance_state(&s.admin, peer), "running");
    let msg = ok(star_aws::stop_instance(&s.ctl1.client, peer, deadline(10)));
    assert!(msg.starts_with(&format!("{peer} is stopped")), "{msg}");
    assert!(s.proxy.count("Force=true") >= 1);
    assert_eq!(instance_state(&s.admin, peer), "stopped");
    assert_eq!(instance_state(&s.admin, &s.ctl1.me.instance_id), "running");
    // Idempotent.
    ok(star_aws::stop_instance(&s.ctl1.client, peer, deadline(10)));

    let e =
        star_aws::stop_instance(&s.ctl1.client, "i-0000000000000dead", deadline(10)).unwrap_err();
    let text = e.to_string();
    assert!(text.contains("InvalidInstanceID.NotFound"), "{text}");
    assert!(text.contains("i-0000000000000dead"), "{text}");
}

#[test]
fn throttling_and_server_errors_are_retried_until_they_pass() {
    let s = setup();
    s.proxy.fault(Fault {
        matching: "Action=AssignPrivateIpAddresses".into(),
        times: Some(3),
        status: 400,
        body: ec2_error("RequestLimitExceeded", "Request limit exceeded."),
    });
    s.proxy.fault(Fault {
        matching: "Action=DescribeSubnets".into(),
        times: Some(2),
        status: 503,
        body: "<html>Service Unavailable</html>".into(),
    });
    let started = Instant::now();
    ok(secondary(&s.ctl1, FLOATING).acquire(&s.ctl1.client, deadline(10)));
    assert_eq!(
        holders_of(&s.admin, &s.world.subnet, FLOATING),
        [s.ctl1.me.eni_id.as_str()]
    );
    // 3 throttled + 1 forwarded; 2 failed + 1 forwarded.
    assert_eq!(s.proxy.count("Action=AssignPrivateIpAddresses"), 4);
    assert_eq!(s.proxy.count("Action=DescribeSubnets"), 3);
    assert!(started.elapsed() < Duration::from_secs(5));

    // Route 53: Throttling, then 429 without a body, then through.
    let (zone, zone_name) = hosted_zone(&s.admin);
    s.proxy.fault(Fault {
        matching: "POST /2013-04-01/hostedzone/".into(),
        times: Some(1),
        status: 400,
        body: route53_error("Throttling", "Rate exceeded"),
    });
    s.proxy.fault(Fault {
        matching: "POST /2013-04-01/hostedzone/".into(),
        times: Some(1),
        status: 429,
        body: String::new(),
    });
    let m = DnsRecord {
        hosted_zone_id: zone.clone(),
        name: format!("star.{zone_name}"),
        ttl: 30,
        value: s.ctl1.node.ip,
    };
    ok(m.acquire(&s.ctl1.client, deadline(10)));
    assert_eq!(
        a_values(&s.admin, &zone, &format!("star.{zone_name}")),
        [s.ctl1.node.ip.to_string()]
    );
    assert_eq!(s.proxy.count("POST /2013-04-01/hostedzone/"), 3);
}

#[test]
fn persistent_throttling_ends_in_a_clear_error_and_no_change() {
    let s = setup();
    s.proxy.fault(Fault {
        matching: "Action=AssignPrivateIpAddresses".into(),
        times: None,
        status: 400,
        body: ec2_error("RequestLimitExceeded", "Request limit exceeded."),
    });
    let started = Instant::now();
    let e = secondary(&s.ctl1, FLOATING)
        .acquire(&s.ctl1.client, deadline(10))
        .unwrap_err();
    let policy = quick_retries();
    assert_eq!(e.code(), Some("RequestLimitExceeded"));
    assert_eq!(e.attempts, policy.max_attempts);
    assert!(e.gave_up && e.is_transient());
    assert_eq!(
        e.to_string(),
        format!(
            "secondary IP {FLOATING} on {eni}: AssignPrivateIpAddresses on {eni} for {FLOATING}: \
             RequestLimitExceeded: Request limit exceeded. ({n} attempts, gave up: retries \
             exhausted or deadline reached)",
            eni = s.ctl1.me.eni_id,
            n = policy.max_attempts
        )
    );
    assert_eq!(
        s.proxy.count("Action=AssignPrivateIpAddresses"),
        policy.max_attempts as usize
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(holders_of(&s.admin, &s.world.subnet, FLOATING).is_empty());

    // With a deadline shorter than the retries, the deadline ends them.
    s.proxy.clear_faults();
    s.proxy.fault(Fault {
        matching: "Action=ReplaceRoute".into(),
        times: None,
        status: 503,
        body: String::new(),
    });
    let dest = "192.168.77.1/32";
    let rtb = route_table(&s.admin, &s.world.vpc, dest, &s.ctl2.me.eni_id);
    let m = RouteTables {
        address: OVERLAY,
        route_table_ids: vec![rtb.clone()],
        me: s.ctl1.me.clone(),
    };
    // A client whose attempt limit is out of reach, so that only the deadline stops it.
    let patient = star_aws::Client::new(
        star_aws::Config {
            region: REGION.into(),
            ec2_endpoint: Some(s.proxy.url.clone()),
            retry: star_aws::RetryPolicy {
                base: Duration::from_millis(100),
                cap: Duration::from_millis(400),
                max_attempts: 1000,
                request_timeout: Duration::from_secs(5),
            },
            ..star_aws::Config::default()
        },
        star_aws::CredentialSource::Static(star_aws::Credentials::new("AKIDPATIENT", "s")),
    )
    .unwrap();
    let budget = Duration::from_millis(1500);
    let started = Instant::now();
    let e = m.acquire(&patient, started + budget).unwrap_err();
    let took = started.elapsed();
    assert!(took <= budget + Duration::from_millis(500), "{took:?}");
    assert!(e.gave_up, "{e}");
    // 1.5 s holds at least three waits of 50..400 ms and far fewer than 1000 attempts.
    assert!(e.attempts >= 3 && e.attempts < 30, "{e}");
    assert_eq!(s.proxy.count("Action=ReplaceRoute"), e.attempts as usize);
    assert!(e.to_string().contains("HTTP 503"), "{e}");
    assert!(e.to_string().contains("not replaced: "), "{e}");
    assert_eq!(
        route_target(&s.admin, &rtb, dest).as_ref(),
        Some(&s.ctl2.me.eni_id)
    );
}

#[test]
fn a_missing_permission_fails_at_once_and_changes_nothing() {
    let s = setup();
    s.proxy.fault(Fault {
        matching: "Action=AssignPrivateIpAddresses".into(),
        times: None,
        status: 403,
        body: ec2_error(
            "UnauthorizedOperation",
            "You are not authorized to perform this operation.",
        ),
    });
    let e = secondary(&s.ctl1, FLOATING)
        .acquire(&s.ctl1.client, deadline(10))
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "secondary IP {FLOATING} on {eni}: AssignPrivateIpAddresses on {eni} for {FLOATING}: \
             UnauthorizedOperation: You are not authorized to perform this operation. (1 attempt)",
            eni = s.ctl1.me.eni_id
        )
    );
    assert!(!e.is_transient());
    assert_eq!(s.proxy.count("Action=AssignPrivateIpAddresses"), 1);
    assert!(holders_of(&s.admin, &s.world.subnet, FLOATING).is_empty());

    // Route 53 says AccessDenied.
    let (zone, zone_name) = hosted_zone(&s.admin);
    s.proxy.fault(Fault {
        matching: "POST /2013-04-01/hostedzone/".into(),
        times: None,
        status: 403,
        body: route53_error(
            "AccessDenied",
            "User is not authorized to perform: route53:ChangeResourceRecordSets",
        ),
    });
    let m = DnsRecord {
        hosted_zone_id: zone.clone(),
        name: format!("star.{zone_name}"),
        ttl: 10,
        value: s.ctl1.node.ip,
    };
    let e = m.acquire(&s.ctl1.client, deadline(10)).unwrap_err();
    assert_eq!(e.code(), Some("AccessDenied"));
    assert_eq!(e.attempts, 1);
    assert!(a_values(&s.admin, &zone, &format!("star.{zone_name}")).is_empty());
}

#[test]
fn no_answer_is_retried_then_reported() {
    // A port nobody listens on: connection refused on every attempt.
    let port = free_port();
    let c = star_aws::Client::new(
        star_aws::Config {
            region: REGION.into(),
            ec2_endpoint: Some(format!("http://127.0.0.1:{port}")),
            retry: quick_retries(),
            ..star_aws::Config::default()
        },
        star_aws::CredentialSource::Static(star_aws::Credentials::new("A", "S")),
    )
    .unwrap();
    let e = star_aws::stop_instance(&c, "i-1", deadline(10)).unwrap_err();
    assert!(matches!(e.kind, ErrorKind::Transport(_)), "{e}");
    assert_eq!(e.attempts, quick_retries().max_attempts);
    assert!(
        e.to_string()
            .starts_with("fence i-1: StopInstances (Force) on i-1: no answer: "),
        "{e}"
    );
}

#[test]
fn role_credentials_are_renewed_before_they_expire() {
    let moto = moto();
    let admin = admin(&moto.url);
    let world = world(&admin);
    let proxy = Proxy::start(&moto.url);
    // The first set expires in four minutes (inside the five-minute window): used once,
    // then replaced by the next, which lives for hours.
    let ctl = controller(
        &world.ctl[0],
        &proxy.url,
        vec![
            Issue {
                key_id: "ASIAFIRST".into(),
                lifetime: Duration::from_secs(4 * 60),
            },
            Issue {
                key_id: "ASIASECOND".into(),
                lifetime: Duration::from_secs(6 * 3600),
            },
        ],
    );
    for _ in 0..3 {
        ok(star_aws::methods::instance_state(
            &ctl.client,
            &ctl.me.instance_id,
            deadline(10),
        ));
    }
    let seen = proxy.seen();
    let keys: Vec<&str> = seen.iter().filter_map(|r| r.key_id.as_deref()).collect();
    assert_eq!(keys, ["ASIAFIRST", "ASIASECOND", "ASIASECOND"]);
    assert!(seen.iter().all(|r| r.session_token.as_deref()
        == Some(&format!("session-of-{}", r.key_id.as_deref().unwrap()))));
    assert!(seen.iter().all(|r| r
        .scope
        .as_deref()
        .is_some_and(|s| s.ends_with(&format!("/{REGION}/ec2/aws4_request")))));
    let st = ctl.imds.state.lock().unwrap();
    assert_eq!(st.credential_fetches, 2);
    // One token for everything: the instance id, region, ENI and both credential sets.
    assert_eq!(st.tokens_issued, 1);
}

#[test]
fn a_revoked_metadata_token_is_replaced() {
    let moto = moto();
    let admin = admin(&moto.url);
    let world = world(&admin);
    let node = &world.ctl[0];
    let responder = ImdsResponder::start(node, long_lived());
    let imds = star_aws::Imds::new(&responder.url, quick_retries());
    assert_eq!(ok(imds.instance_id(deadline(5))), node.instance_id);
    responder.revoke_tokens();
    assert_eq!(ok(imds.region(deadline(5))), REGION);
    let st = responder.state.lock().unwrap();
    assert_eq!(st.tokens_issued, 2);
    assert_eq!(st.gets_without_token, 1, "one 401, then the new token");
}

#[test]
fn an_instance_without_a_role_is_told_what_to_attach() {
    let node = Node {
        instance_id: "i-norole".into(),
        eni_id: "eni-norole".into(),
        mac: "02:00:00:00:00:01".into(),
        ip: Ipv4Addr::new(10, 0, 1, 5),
    };
    let responder = ImdsResponder::start(&node, vec![]);
    let c = star_aws::Client::from_imds(
        star_aws::Config {
            ec2_endpoint: Some(moto().url.clone()),
            retry: quick_retries(),
            ..star_aws::Config::default()
        },
        star_aws::Imds::new(&responder.url, quick_retries()),
        deadline(5),
    )
    .unwrap();
    let e = star_aws::stop_instance(&c, "i-peer", deadline(5)).unwrap_err();
    assert!(matches!(e.kind, ErrorKind::Refused(_)), "{e}");
    assert_eq!(
        e.to_string(),
        "fence i-peer: StopInstances (Force) on i-peer: IMDS GET \
         /latest/meta-data/iam/security-credentials/: this instance has no IAM role: attach \
         an instance profile with the permissions in docs/aws.md; nothing was changed"
    );
}
