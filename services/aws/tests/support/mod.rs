//! What the AWS tests run against: moto's server (one per test binary, started on a free
//! port), an IMDSv2 responder per controller, and a proxy in front of moto that can
//! answer with throttling and other errors before it forwards. Also used by the
//! takeover benchmark (examples/takeover_bench.rs).
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use star_aws::xml::{self, child, items, text};
use star_aws::{Client, Config, CredentialSource, Credentials, Imds, RetryPolicy};

pub const REGION: &str = "us-east-1";

// ---------------------------------------------------------------------------------------
// moto

/// The moto server this process uses.
pub struct Moto {
    pub url: String,
}

static MOTO: OnceLock<Moto> = OnceLock::new();

/// Starts moto's server once per process on a free port of 127.0.0.1 and waits until it
/// answers. It is stopped with this process (PR_SET_PDEATHSIG, tied to a thread that
/// lives as long as the process). Panics, saying how to install it, when moto is
/// missing: these tests must never pass by not running.
pub fn moto() -> &'static Moto {
    MOTO.get_or_init(|| {
        let probe = Command::new("python3")
            .args(["-c", "import moto.server, werkzeug, flask"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        match probe {
            Ok(s) if s.success() => {}
            _ => panic!(
                "moto's server is not installed for python3: run \
                 `python3 -m pip install 'moto[server]'` (.ci/run does) — the star-aws \
                 tests run against it"
            ),
        }
        let port = free_port();
        let log = std::env::temp_dir().join(format!("star-aws-moto-{port}.log"));
        let (tx, rx) = mpsc::channel();
        let log2 = log.clone();
        thread::Builder::new()
            .name("moto".into())
            .spawn(move || {
                let out = std::fs::File::create(&log2).expect("moto log");
                let err = out.try_clone().expect("moto log");
                let mut cmd = Command::new("python3");
                cmd.args([
                    "-m",
                    "moto.server",
                    "-H",
                    "127.0.0.1",
                    "-p",
                    &port.to_string(),
                ])
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err);
                // SAFETY: prctl is async-signal-safe and touches no memory of ours.
                unsafe {
                    cmd.pre_exec(|| {
                        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                        Ok(())
                    });
                }
                let child = cmd.spawn();
                tx.send(child.map(|_| ())).unwrap();
                // The death signal fires when this thread ends: keep it for the
                // life of the process.
                loop {
                    thread::park();
                }
            })
            .unwrap();
        rx.recv()
            .unwrap()
            .unwrap_or_else(|e| panic!("starting python3 -m moto.server: {e}"));
        let url = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        loop {
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
                let _ = s.write_all(b"GET /moto-api/data.json HTTP/1.0\r\n\r\n");
                let mut buf = String::new();
                let _ = s.read_to_string(&mut buf);
                if buf.starts_with("HTTP/1.") {
                    break;
                }
            }
            if started.elapsed() > Duration::from_secs(60) {
                panic!(
                    "moto's server did not answer on {url} within 60 s; its log: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            thread::sleep(Duration::from_millis(100));
        }
        Moto { url }
    })
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A client with fixed dummy keys straight to `url` (moto, or a proxy): for building
/// the test world and checking it independently of the methods under test.
pub fn admin(url: &str) -> Client {
    Client::new(
        Config {
            region: REGION.into(),
            ec2_endpoint: Some(url.into()),
            route53_endpoint: Some(url.into()),
            ..Config::default()
        },
        CredentialSource::Static(Credentials::new("AKIDADMIN", "admin-secret")),
    )
    .unwrap()
}

/// Short backoff so that retry tests take well under a second.
pub fn quick_retries() -> RetryPolicy {
    RetryPolicy {
        base: Duration::from_millis(40),
        cap: Duration::from_millis(400),
        max_attempts: 6,
        request_timeout: Duration::from_secs(5),
    }
}

pub fn deadline(secs: u64) -> Instant {
    Instant::now() + Duration::from_secs(secs)
}

pub fn ec2(c: &Client, action: &str, params: &[(&str, &str)]) -> String {
    let params: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    c.ec2_query(action, &params, action, deadline(10))
        .unwrap_or_else(|e| panic!("{e}"))
}

fn first_text(body: &str, name: &str) -> String {
    let doc = xml::parse(body).unwrap();
    xml::find(doc.root(), name)
        .and_then(|n| n.text())
        .unwrap_or_else(|| panic!("no {name} in {body}"))
        .to_string()
}

// ---------------------------------------------------------------------------------------
// The test world: a VPC, a subnet, two controllers (instances with their ENIs).

#[derive(Debug, Clone)]
pub struct Node {
    pub instance_id: String,
    pub eni_id: String,
    pub mac: String,
    pub ip: Ipv4Addr,
}

#[derive(Debug, Clone)]
pub struct World {
    pub vpc: String,
    pub subnet: String,
    pub ctl: [Node; 2],
}

pub fn world(admin: &Client) -> World {
    let vpc = first_text(
        &ec2(admin, "CreateVpc", &[("CidrBlock", "10.0.0.0/16")]),
        "vpcId",
    );
    let subnet = first_text(
        &ec2(
            admin,
            "CreateSubnet",
            &[("VpcId", &vpc), ("CidrBlock", "10.0.1.0/24")],
        ),
        "subnetId",
    );
    let node = || {
        let body = ec2(
            admin,
            "RunInstances",
            &[
                ("ImageId", "ami-12345678"),
                ("MinCount", "1"),
                ("MaxCount", "1"),
                ("InstanceType", "t3.micro"),
                ("SubnetId", &subnet),
            ],
        );
        let doc = xml::parse(&body).unwrap();
        let inst = items(doc.root_element(), "instancesSet").next().unwrap();
        let eni = items(inst, "networkInterfaceSet").next().unwrap();
        Node {
            instance_id: text(inst, "instanceId").unwrap(),
            eni_id: text(eni, "networkInterfaceId").unwrap(),
            mac: text(eni, "macAddress").unwrap(),
            ip: text(eni, "privateIpAddress").unwrap().parse().unwrap(),
        }
    };
    let ctl = [node(), node()];
    World { vpc, subnet, ctl }
}

/// The ENIs that hold `addr`, read through the API.
pub fn holders_of(admin: &Client, subnet: &str, addr: Ipv4Addr) -> Vec<String> {
    let body = ec2(
        admin,
        "DescribeNetworkInterfaces",
        &[("Filter.1.Name", "subnet-id"), ("Filter.1.Value.1", subnet)],
    );
    let doc = xml::parse(&body).unwrap();
    items(doc.root_element(), "networkInterfaceSet")
        .filter(|i| {
            items(*i, "privateIpAddressesSet")
                .any(|a| text(a, "privateIpAddress") == Some(addr.to_string()))
        })
        .map(|i| text(i, "networkInterfaceId").unwrap())
        .collect()
}

/// A route table in the VPC with `dest` routed to `eni`.
pub fn route_table(admin: &Client, vpc: &str, dest: &str, eni: &str) -> String {
    let rtb = first_text(
        &ec2(admin, "CreateRouteTable", &[("VpcId", vpc)]),
        "routeTableId",
    );
    ec2(
        admin,
        "CreateRoute",
        &[
            ("RouteTableId", &rtb),
            ("DestinationCidrBlock", dest),
            ("NetworkInterfaceId", eni),
        ],
    );
    rtb
}

/// Where the route for `dest` in `rtb` points, read through the API.
pub fn route_target(admin: &Client, rtb: &str, dest: &str) -> Option<String> {
    let body = ec2(admin, "DescribeRouteTables", &[("RouteTableId.1", rtb)]);
    let doc = xml::parse(&body).unwrap();
    let table = items(doc.root_element(), "routeTableSet").next()?;
    let route = items(table, "routeSet")
        .find(|r| text(*r, "destinationCidrBlock").as_deref() == Some(dest))?;
    text(route, "networkInterfaceId")
}

pub fn instance_state(admin: &Client, id: &str) -> String {
    let body = ec2(admin, "DescribeInstances", &[("InstanceId.1", id)]);
    let doc = xml::parse(&body).unwrap();
    let state = xml::find(doc.root(), "instanceState").unwrap();
    text(state, "name").unwrap()
}

static ZONES: AtomicUsize = AtomicUsize::new(0);

/// A new public hosted zone; its bare id and its name.
pub fn hosted_zone(admin: &Client) -> (String, String) {
    let n = ZONES.fetch_add(1, Ordering::SeqCst);
    let name = format!("z{n}-{}.star.example.", std::process::id());
    let body = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<CreateHostedZoneRequest xmlns="https://route53.amazonaws.com/doc/2013-04-01/">
  <Name>{name}</Name><CallerReference>star-{n}-{}</CallerReference>
</CreateHostedZoneRequest>"#,
        std::process::id()
    );
    let answer = admin
        .route53_request(
            "POST",
            "/hostedzone",
            &body,
            "CreateHostedZone",
            deadline(10),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let id = first_text(&answer, "Id");
    (id.trim_start_matches("/hostedzone/").to_string(), name)
}

/// The values of the A record `name`, read through the API (ListResourceRecordSets).
pub fn a_values(admin: &Client, zone: &str, name: &str) -> Vec<String> {
    let body = admin
        .route53_request(
            "GET",
            &format!("/hostedzone/{zone}/rrset"),
            "",
            "ListResourceRecordSets",
            deadline(10),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let doc = xml::parse(&body).unwrap();
    let sets = xml::find(doc.root(), "ResourceRecordSets").unwrap();
    xml::children(sets, "ResourceRecordSet")
        .filter(|r| {
            text(*r, "Type").as_deref() == Some("A") && text(*r, "Name").as_deref() == Some(name)
        })
        .flat_map(|r| {
            child(r, "ResourceRecords")
                .into_iter()
                .flat_map(|rr| xml::children(rr, "ResourceRecord"))
                .filter_map(|v| text(v, "Value"))
                .collect::<Vec<_>>()
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Minimal HTTP/1.1 plumbing for the responder and the proxy.

#[derive(Debug, Clone)]
pub struct Req {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Req {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

pub fn read_request(stream: &TcpStream) -> Option<Req> {
    let mut r = BufReader::new(stream);
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (n, v) = h.split_once(':')?;
        headers.push((n.trim().to_string(), v.trim().to_string()));
    }
    let len: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    Some(Req {
        method,
        path,
        headers,
        body,
    })
}

pub fn respond(mut stream: &TcpStream, status: u16, content_type: &str, body: &str) {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        429 => "Too Many Requests",
        503 => "Service Unavailable",
        _ => "Status",
    };
    let _ = write!(
        stream,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.flush();
}

fn serve(listener: TcpListener, handler: impl Fn(&TcpStream, Req) + Send + Sync + 'static) {
    let handler = Arc::new(handler);
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let handler = handler.clone();
            thread::spawn(move || {
                if let Some(req) = read_request(&stream) {
                    handler(&stream, req);
                }
            });
        }
    });
}

// ---------------------------------------------------------------------------------------
// IMDSv2 responder

/// A credentials set the responder hands out: its key id and how long it lives.
#[derive(Debug, Clone)]
pub struct Issue {
    pub key_id: String,
    pub lifetime: Duration,
}

#[derive(Debug, Default)]
pub struct ImdsState {
    pub tokens_issued: usize,
    pub valid_tokens: Vec<String>,
    pub credential_fetches: usize,
    /// Served in order; the last one repeats. None at all: the instance has no role.
    pub issues: Vec<Issue>,
    pub gets_without_token: usize,
}

/// An IMDSv2 responder for one controller: a token for a PUT with a TTL header, and the
/// metadata GETs only with a valid token.
pub struct ImdsResponder {
    pub url: String,
    pub state: Arc<Mutex<ImdsState>>,
}

pub const ROLE: &str = "star-controller";

impl ImdsResponder {
    pub fn start(node: &Node, issues: Vec<Issue>) -> ImdsResponder {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(ImdsState {
            issues,
            ..ImdsState::default()
        }));
        let st = state.clone();
        let mut meta: HashMap<String, String> = HashMap::new();
        meta.insert(
            "/latest/meta-data/instance-id".into(),
            node.instance_id.clone(),
        );
        meta.insert("/latest/meta-data/placement/region".into(), REGION.into());
        meta.insert("/latest/meta-data/mac".into(), node.mac.clone());
        meta.insert("/latest/meta-data/local-ipv4".into(), node.ip.to_string());
        meta.insert(
            format!(
                "/latest/meta-data/network/interfaces/macs/{}/local-ipv4s",
                node.mac
            ),
            format!("{}\n", node.ip),
        );
        meta.insert(
            format!(
                "/latest/meta-data/network/interfaces/macs/{}/interface-id",
                node.mac
            ),
            node.eni_id.clone(),
        );
        meta.insert(
            "/latest/meta-data/iam/security-credentials/".into(),
            format!("{ROLE}\n"),
        );
        serve(listener, move |stream, req| {
            let mut s = st.lock().unwrap();
            if req.method == "PUT" && req.path == "/latest/api/token" {
                let ttl = req
                    .header("X-aws-ec2-metadata-token-ttl-seconds")
                    .and_then(|t| t.parse::<u32>().ok());
                match ttl {
                    Some(1..=21600) => {
                        s.tokens_issued += 1;
                        let tok = format!("token-{}", s.tokens_issued);
                        s.valid_tokens.push(tok.clone());
                        respond(stream, 200, "text/plain", &tok);
                    }
                    _ => respond(stream, 400, "text/plain", "bad TTL"),
                }
                return;
            }
            let token_ok = req
                .header("X-aws-ec2-metadata-token")
                .is_some_and(|t| s.valid_tokens.iter().any(|v| v == t));
            if req.method != "GET" || !token_ok {
                s.gets_without_token += 1;
                respond(stream, 401, "text/plain", "");
                return;
            }
            let no_role = s.issues.is_empty();
            if no_role && req.path.starts_with("/latest/meta-data/iam/") {
                respond(stream, 404, "text/html", "<html>Not Found</html>");
                return;
            }
            if req.path == format!("/latest/meta-data/iam/security-credentials/{ROLE}") {
                let n = s.credential_fetches.min(s.issues.len().saturating_sub(1));
                s.credential_fetches += 1;
                let issue = s.issues[n].clone();
                respond(stream, 200, "text/plain", &credentials_json(&issue));
                return;
            }
            match meta.get(&req.path) {
                Some(v) => respond(stream, 200, "text/plain", v),
                None => respond(stream, 404, "text/html", "<html>Not Found</html>"),
            }
        });
        ImdsResponder { url, state }
    }

    /// Forget every token, as a restarted metadata service would.
    pub fn revoke_tokens(&self) {
        self.state.lock().unwrap().valid_tokens.clear();
    }
}

pub fn credentials_json(issue: &Issue) -> String {
    let exp = time::OffsetDateTime::from(SystemTime::now() + issue.lifetime)
        .replace_nanosecond(0)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    format!(
        r#"{{"Code":"Success","LastUpdated":"2024-01-01T00:00:00Z","Type":"AWS-HMAC","AccessKeyId":"{}","SecretAccessKey":"secret-of-{}","Token":"session-of-{}","Expiration":"{exp}"}}"#,
        issue.key_id, issue.key_id, issue.key_id
    )
}

/// The usual: one set that lives for hours.
pub fn long_lived() -> Vec<Issue> {
    vec![Issue {
        key_id: "ASIALONG".into(),
        lifetime: Duration::from_secs(6 * 3600),
    }]
}

// ---------------------------------------------------------------------------------------
// Fault-injecting proxy in front of moto

/// Answer requests that contain `matching` (in "METHOD path\nbody") with `status`/`body`,
/// `times` times (or for ever), instead of forwarding them.
#[derive(Debug, Clone)]
pub struct Fault {
    pub matching: String,
    pub times: Option<usize>,
    pub status: u16,
    pub body: String,
}

/// Forward requests that contain `matching`, `times` times, but replace `from` with `to`
/// in the answer: AWS behaviour moto lacks (a change still PENDING).
#[derive(Debug, Clone)]
pub struct Rewrite {
    pub matching: String,
    pub times: usize,
    pub from: String,
    pub to: String,
}

/// One request as the proxy saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub line: String,
    pub key_id: Option<String>,
    pub scope: Option<String>,
    pub session_token: Option<String>,
    pub faulted: bool,
}

#[derive(Debug, Default)]
pub struct ProxyState {
    pub faults: Vec<Fault>,
    pub rewrites: Vec<Rewrite>,
    pub seen: Vec<Seen>,
}

pub struct Proxy {
    pub url: String,
    pub state: Arc<Mutex<ProxyState>>,
}

impl Proxy {
    pub fn start(upstream: &str) -> Proxy {
        let upstream = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(ProxyState::default()));
        let st = state.clone();
        serve(listener, move |stream, req| {
            let line = format!(
                "{} {}\n{}",
                req.method,
                req.path,
                String::from_utf8_lossy(&req.body)
            );
            let auth = req.header("authorization").unwrap_or("").to_string();
            let cred = auth
                .split("Credential=")
                .nth(1)
                .and_then(|c| c.split(',').next())
                .unwrap_or("");
            let (key_id, scope) = match cred.split_once('/') {
                Some((k, s)) => (Some(k.to_string()), Some(s.to_string())),
                None => (None, None),
            };
            let fault = {
                let mut s = st.lock().unwrap();
                let hit = s
                    .faults
                    .iter_mut()
                    .find(|f| line.contains(&f.matching) && f.times.is_none_or(|t| t > 0));
                let fault = hit.map(|f| {
                    if let Some(t) = f.times.as_mut() {
                        *t -= 1;
                    }
                    (f.status, f.body.clone())
                });
                s.seen.push(Seen {
                    line: line.clone(),
                    key_id,
                    scope,
                    session_token: req.header("x-amz-security-token").map(String::from),
                    faulted: fault.is_some(),
                });
                fault
            };
            let rewrite = {
                let mut s = st.lock().unwrap();
                s.rewrites
                    .iter_mut()
                    .find(|r| line.contains(&r.matching) && r.times > 0)
                    .map(|r| {
                        r.times -= 1;
                        (r.from.clone(), r.to.clone())
                    })
            };
            match fault {
                Some((status, body)) => respond(stream, status, "text/xml", &body),
                None => forward(stream, &req, &upstream, rewrite),
            }
        });
        Proxy { url, state }
    }

    pub fn fault(&self, f: Fault) {
        self.state.lock().unwrap().faults.push(f);
    }

    pub fn rewrite(&self, r: Rewrite) {
        self.state.lock().unwrap().rewrites.push(r);
    }

    pub fn clear_faults(&self) {
        self.state.lock().unwrap().faults.clear();
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    pub fn count(&self, matching: &str) -> usize {
        self.seen()
            .iter()
            .filter(|s| s.line.contains(matching))
            .count()
    }
}

fn forward(mut client: &TcpStream, req: &Req, upstream: &str, rewrite: Option<(String, String)>) {
    let Ok(mut up) = TcpStream::connect(upstream) else {
        respond(client, 502, "text/plain", "upstream down");
        return;
    };
    let mut head = format!("{} {} HTTP/1.1\r\n", req.method, req.path);
    for (n, v) in &req.headers {
        if !n.eq_ignore_ascii_case("connection") {
            head.push_str(&format!("{n}: {v}\r\n"));
        }
    }
    head.push_str("Connection: close\r\n\r\n");
    if up.write_all(head.as_bytes()).is_err() || up.write_all(&req.body).is_err() {
        respond(client, 502, "text/plain", "upstream write");
        return;
    }
    let mut answer = Vec::new();
    let _ = up.read_to_end(&mut answer);
    if let Some((from, to)) = rewrite {
        answer = rewritten(&answer, &from, &to);
    }
    let _ = client.write_all(&answer);
    let _ = client.flush();
}

pub fn ec2_error(code: &str, message: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{code}</Code>\
         <Message>{message}</Message></Error></Errors><RequestID>injected</RequestID></Response>"
    )
}

pub fn route53_error(code: &str, message: &str) -> String {
    format!(
        "<?xml version=\"1.0\"?>\n<ErrorResponse xmlns=\"https://route53.amazonaws.com/doc/2013-04-01/\">\
         <Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error>\
         <RequestId>injected</RequestId></ErrorResponse>"
    )
}

// ---------------------------------------------------------------------------------------
// A controller under test: its IMDS responder and its client (through `api`).

pub struct Ctl {
    pub node: Node,
    pub imds: ImdsResponder,
    pub client: Client,
    pub me: star_aws::Controller,
}

pub fn controller(node: &Node, api: &str, issues: Vec<Issue>) -> Ctl {
    let imds = ImdsResponder::start(node, issues);
    let metadata = Imds::new(&imds.url, quick_retries());
    let me =
        star_aws::Controller::from_imds(&metadata, Some(&node.mac.to_uppercase()), deadline(5))
            .unwrap_or_else(|e| panic!("{e}"));
    let client = Client::from_imds(
        Config {
            ec2_endpoint: Some(api.into()),
            route53_endpoint: Some(api.into()),
            retry: quick_retries(),
            ..Config::default()
        },
        metadata,
        deadline(5),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    Ctl {
        node: node.clone(),
        imds,
        client,
        me,
    }
}

/// An HTTP answer with `from` replaced by `to` in its body and Content-Length to match.
fn rewritten(answer: &[u8], from: &str, to: &str) -> Vec<u8> {
    let text = String::from_utf8_lossy(answer);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return answer.to_vec();
    };
    let body = body.replace(from, to);
    let head: Vec<String> = head
        .split("\r\n")
        .map(|h| {
            if h.to_ascii_lowercase().starts_with("content-length:") {
                format!("Content-Length: {}", body.len())
            } else {
                h.to_string()
            }
        })
        .collect();
    format!("{}\r\n\r\n{body}", head.join("\r\n")).into_bytes()
}
