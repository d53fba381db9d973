//! Just enough HTTP/1.1 for the witness: one request per connection, a head of at most
//! [`MAX_HEAD`] bytes, a body only with Content-Length and at most [`MAX_BODY`] bytes, no
//! chunked encoding, no folded headers. Anything else is refused with the status that says
//! why. The same head parser reads the client's responses.
//!
//! Why by hand: a request is one short line, three headers and 150 bytes of JSON, and the
//! witness faces an untrusted network; a few hundred lines with hard limits are easier to
//! audit (and fuzz) than a general HTTP stack, and keep the static binary small.
//! Time limits are the caller's: the reader given here must time out.

use crate::message::{MAX_BODY, SIGNATURE_HEADER};
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::Instant;

/// Largest request or status line plus headers.
pub const MAX_HEAD: usize = 8192;
/// Most header lines.
pub const MAX_HEADERS: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: Method,
    pub path: String,
    pub query: Option<String>,
    /// The signature header, if there was one.
    pub signature: Option<String>,
    pub body: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub signature: Option<String>,
    pub body: Vec<u8>,
}

/// Why a request could not be read; each maps to a status (or to closing the connection).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// The peer closed or the read timed out before a whole request came: no reply.
    Io(String),
    HeadTooLarge,
    BodyTooLarge(u64),
    LengthRequired,
    /// Transfer-Encoding (chunked or any other).
    Unsupported,
    MethodNotAllowed(String),
    Bad(&'static str),
}

impl HttpError {
    /// The status to answer with; `None` when there is nobody to answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            HttpError::Io(_) => None,
            HttpError::HeadTooLarge => Some(431),
            HttpError::BodyTooLarge(_) => Some(413),
            HttpError::LengthRequired => Some(411),
            HttpError::Unsupported => Some(501),
            HttpError::MethodNotAllowed(_) => Some(405),
            HttpError::Bad(_) => Some(400),
        }
    }
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpError::Io(e) => write!(f, "connection: {e}"),
            HttpError::HeadTooLarge => write!(f, "request head over {MAX_HEAD} bytes"),
            HttpError::BodyTooLarge(n) => write!(f, "body of {n} bytes, at most {MAX_BODY}"),
            HttpError::LengthRequired => write!(f, "a POST needs Content-Length"),
            HttpError::Unsupported => write!(f, "Transfer-Encoding is not supported"),
            HttpError::MethodNotAllowed(m) => write!(f, "method {m:?} not allowed"),
            HttpError::Bad(why) => write!(f, "bad request: {why}"),
        }
    }
}

/// A reader that gives up at a deadline, however slowly the bytes come.
pub struct Deadline<'a> {
    pub stream: &'a TcpStream,
    pub until: Instant,
}

impl Read for Deadline<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "took too long"));
        }
        self.stream.set_read_timeout(Some(left))?;
        (&mut &*self.stream).read(buf)
    }
}

fn io_error(e: io::Error) -> HttpError {
    HttpError::Io(e.to_string())
}

/// The head (start line and headers), plus whatever of the body came with it.
fn read_head(r: &mut impl Read) -> Result<(Vec<u8>, Vec<u8>), HttpError> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        // Look for the end of the head only in what is new (and 3 bytes before it).
        let n = r.read(&mut chunk).map_err(io_error)?;
        if n == 0 {
            return Err(HttpError::Io("closed before the end of the head".into()));
        }
        let from = buf.len().saturating_sub(3);
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = find(&buf[from..], b"\r\n\r\n").map(|i| from + i) {
            if end + 4 > MAX_HEAD {
                return Err(HttpError::HeadTooLarge);
            }
            let rest = buf.split_off(end + 4);
            buf.truncate(end);
            return Ok((buf, rest));
        }
        if buf.len() >= MAX_HEAD {
            return Err(HttpError::HeadTooLarge);
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Headers that matter here, from the head's lines after the start line.
#[derive(Default)]
struct Headers {
    content_length: Option<u64>,
    signature: Option<String>,
    transfer_encoding: bool,
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn parse_headers<'a>(lines: impl Iterator<Item = &'a str>) -> Result<Headers, HttpError> {
    let mut h = Headers::default();
    for (i, line) in lines.enumerate() {
        if i >= MAX_HEADERS {
            return Err(HttpError::HeadTooLarge);
        }
        let (name, value) = line
            .split_once(':')
            .ok_or(HttpError::Bad("a header line without ':'"))?;
        if !is_token(name) {
            // Also refuses obsolete line folding (a line starting with white space).
            return Err(HttpError::Bad("bad header name"));
        }
        let value = value.trim_matches([' ', '\t']);
        if value.bytes().any(|b| b.is_ascii_control() && b != b'\t') {
            return Err(HttpError::Bad("control character in a header value"));
        }
        let name = name.to_ascii_lowercase();
        match name.as_str() {
            "content-length" => {
                // One, all digits: a second or a list is how requests get smuggled.
                if h.content_length.is_some() {
                    return Err(HttpError::Bad("Content-Length given twice"));
                }
                if value.is_empty()
                    || value.len() > 19
                    || !value.bytes().all(|b| b.is_ascii_digit())
                {
                    return Err(HttpError::Bad("Content-Length is not a number"));
                }
                h.content_length = Some(
                    value
                        .parse()
                        .map_err(|_| HttpError::Bad("Content-Length"))?,
                );
            }
            "transfer-encoding" => h.transfer_encoding = true,
            n if n == SIGNATURE_HEADER => {
                if h.signature.is_some() {
                    return Err(HttpError::Bad("signature given twice"));
                }
                h.signature = Some(value.to_string());
            }
            _ => {}
        }
    }
    Ok(h)
}

/// Reads a body of `length` bytes, `already` of which came with the head.
fn read_body(r: &mut impl Read, length: u64, mut already: Vec<u8>) -> Result<Vec<u8>, HttpError> {
    if length > MAX_BODY as u64 {
        return Err(HttpError::BodyTooLarge(length));
    }
    let length = length as usize;
    if already.len() > length {
        // Pipelined requests are not served; bytes past the body are an error.
        return Err(HttpError::Bad("more bytes than Content-Length"));
    }
    let have = already.len();
    already.resize(length, 0);
    r.read_exact(&mut already[have..]).map_err(io_error)?;
    Ok(already)
}

/// Reads one request from `r`, which must have a read timeout.
pub fn read_request(r: &mut impl Read) -> Result<Request, HttpError> {
    let (head, rest) = read_head(r)?;
    let head = std::str::from_utf8(&head).map_err(|_| HttpError::Bad("head is not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let start = lines.next().unwrap_or_default();
    let mut parts = start.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HttpError::Bad("request line is not METHOD TARGET VERSION"));
    };
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err(HttpError::Bad("not HTTP/1.x"));
    }
    let method = match method {
        "GET" => Method::Get,
        "POST" => Method::Post,
        m if is_token(m) => return Err(HttpError::MethodNotAllowed(m.to_string())),
        _ => return Err(HttpError::Bad("bad method")),
    };
    if !target.starts_with('/') || target.bytes().any(|b| !b.is_ascii_graphic()) {
        return Err(HttpError::Bad("the target must be an absolute path"));
    }
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), Some(q.to_string())),
        None => (target.to_string(), None),
    };
    let h = parse_headers(lines)?;
    if h.transfer_encoding {
        return Err(HttpError::Unsupported);
    }
    let body = match (method, h.content_length) {
        (Method::Post, None) => return Err(HttpError::LengthRequired),
        (_, None) if !rest.is_empty() => return Err(HttpError::Bad("a body without length")),
        (_, None) => Vec::new(),
        (_, Some(n)) => read_body(r, n, rest)?,
    };
    Ok(Request {
        method,
        path,
        query,
        signature: h.signature,
        body,
    })
}

/// Reads one response (the client's side): status, signature and body.
pub fn read_response(r: &mut impl Read) -> Result<Response, HttpError> {
    let (head, rest) = read_head(r)?;
    let head = std::str::from_utf8(&head).map_err(|_| HttpError::Bad("head is not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let start = lines.next().unwrap_or_default();
    let mut parts = start.splitn(3, ' ');
    let (Some(version), Some(code)) = (parts.next(), parts.next()) else {
        return Err(HttpError::Bad("status line"));
    };
    if !version.starts_with("HTTP/1.") || code.len() != 3 {
        return Err(HttpError::Bad("status line"));
    }
    let status: u16 = code.parse().map_err(|_| HttpError::Bad("status code"))?;
    let h = parse_headers(lines)?;
    if h.transfer_encoding {
        return Err(HttpError::Unsupported);
    }
    let length = h.content_length.ok_or(HttpError::LengthRequired)?;
    let body = read_body(r, length, rest)?;
    Ok(Response {
        status,
        signature: h.signature,
        body,
    })
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "",
    }
}

impl Response {
    pub fn json(status: u16, body: Vec<u8>) -> Response {
        Response {
            status,
            signature: None,
            body,
        }
    }

    pub fn write_to(&self, w: &mut impl Write) -> io::Result<()> {
        let mut out = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\nCache-Control: no-store\r\n",
            self.status,
            reason_phrase(self.status),
            self.body.len()
        )
        .into_bytes();
        if let Some(sig) = &self.signature {
            out.extend_from_slice(format!("X-Star-Signature: {sig}\r\n").as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
        w.write_all(&out)?;
        w.flush()
    }
}

/// A POST as the client sends it.
pub fn write_post(
    w: &mut impl Write,
    host: &str,
    path: &str,
    signature: &str,
    body: &[u8],
) -> io::Result<()> {
    let mut out = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nX-Star-Signature: {signature}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    w.write_all(&out)?;
    w.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn parse(text: &[u8]) -> Result<Request, HttpError> {
        read_request(&mut Cursor::new(text.to_vec()))
    }

    /// A reader that hands out one byte at a time, like a slow peer.
    struct Trickle(Cursor<Vec<u8>>);
    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(1);
            self.0.read(&mut buf[..n])
        }
    }

    const POST: &[u8] = b"POST /v1/claim HTTP/1.1\r\nHost: w\r\nContent-Length: 4\r\nX-Star-Signature: ab12\r\n\r\n{\"a\"";

    #[test]
    fn a_post_with_its_signature() {
        let r = parse(POST).unwrap();
        assert_eq!(r.method, Method::Post);
        assert_eq!(r.path, "/v1/claim");
        assert_eq!(r.query, None);
        assert_eq!(r.signature.as_deref(), Some("ab12"));
        assert_eq!(r.body, b"{\"a\"");
        let slow = read_request(&mut Trickle(Cursor::new(POST.to_vec()))).unwrap();
        assert_eq!(slow, r);
    }

    #[test]
    fn a_get_with_a_query_and_header_names_in_any_case() {
        let r = parse(b"GET /v1/status?array=star-lab HTTP/1.1\r\nx-STAR-signature:  ff \r\n\r\n")
            .unwrap();
        assert_eq!(r.method, Method::Get);
        assert_eq!(r.path, "/v1/status");
        assert_eq!(r.query.as_deref(), Some("array=star-lab"));
        assert_eq!(r.signature.as_deref(), Some("ff"));
        assert!(r.body.is_empty());
    }

    #[test]
    fn limits() {
        let long = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(MAX_HEAD));
        assert_eq!(parse(long.as_bytes()), Err(HttpError::HeadTooLarge));
        let endless = "X-A: b\r\n".repeat(2000);
        assert_eq!(
            parse(format!("GET / HTTP/1.1\r\n{endless}").as_bytes()),
            Err(HttpError::HeadTooLarge)
        );
        let many = "X-A: b\r\n".repeat(MAX_HEADERS + 1);
        assert_eq!(
            parse(format!("GET / HTTP/1.1\r\n{many}\r\n").as_bytes()),
            Err(HttpError::HeadTooLarge)
        );
        let big = format!(
            "POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
            MAX_BODY + 1
        );
        assert_eq!(
            parse(big.as_bytes()),
            Err(HttpError::BodyTooLarge(MAX_BODY as u64 + 1))
        );
        let huge = b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n";
        assert!(matches!(parse(huge), Err(HttpError::Bad(_))));
        let exact = format!(
            "POST / HTTP/1.1\r\nContent-Length: {MAX_BODY}\r\n\r\n{}",
            "x".repeat(MAX_BODY)
        );
        assert_eq!(parse(exact.as_bytes()).unwrap().body.len(), MAX_BODY);
    }

    #[test]
    fn malformed_requests() {
        let cases: &[(&[u8], Option<u16>)] = &[
            (b"", None),
            (b"GET / HTTP/1.1\r\n", None),
            (b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nshort", None),
            (b"POST / HTTP/1.1\r\n\r\n", Some(411)),
            (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", Some(501)),
            (b"DELETE / HTTP/1.1\r\n\r\n", Some(405)),
            (b"GET / HTTP/2.0\r\n\r\n", Some(400)),
            (b"GET /  HTTP/1.1\r\n\r\n", Some(400)),
            (b"GET http://x/ HTTP/1.1\r\n\r\n", Some(400)),
            (b"GET / HTTP/1.1 extra\r\n\r\n", Some(400)),
            (b"GET / HTTP/1.1\r\nNoColon\r\n\r\n", Some(400)),
            (b"GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n", Some(400)),
            (b"GET / HTTP/1.1\r\nA\x01: b\r\n\r\n", Some(400)),
            (b"GET / HTTP/1.1\r\nA: b\x00c\r\n\r\n", Some(400)),
            (b"GET / HTTP/1.1\r\n\xff\xfe: b\r\n\r\n", Some(400)),
            (b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx", Some(400)),
            (b"POST / HTTP/1.1\r\nContent-Length: 1, 1\r\n\r\nx", Some(400)),
            (b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", Some(400)),
            (b"POST / HTTP/1.1\r\nContent-Length: +1\r\n\r\nx", Some(400)),
            (b"POST / HTTP/1.1\r\nContent-Length: 1\r\n\r\nxy", Some(400)),
            (b"GET / HTTP/1.1\r\n\r\nbody", Some(400)),
            (
                b"POST / HTTP/1.1\r\nContent-Length: 1\r\nX-Star-Signature: a\r\nX-Star-Signature: b\r\n\r\nx",
                Some(400),
            ),
        ];
        for (text, status) in cases {
            let e = parse(text).expect_err(&String::from_utf8_lossy(text));
            assert_eq!(
                e.status(),
                *status,
                "{:?}: {e}",
                String::from_utf8_lossy(text)
            );
        }
    }

    #[test]
    fn responses_round_trip() {
        let r = Response {
            status: 200,
            signature: Some("00ff".into()),
            body: b"{\"granted\":true}".to_vec(),
        };
        let mut wire = Vec::new();
        r.write_to(&mut wire).unwrap();
        assert_eq!(read_response(&mut Cursor::new(wire)).unwrap(), r);
        let mut post = Vec::new();
        write_post(&mut post, "w:7400", "/v1/claim", "abcd", b"{}").unwrap();
        let q = parse(&post).unwrap();
        assert_eq!(
            (q.path.as_str(), q.body.as_slice()),
            ("/v1/claim", &b"{}"[..])
        );
        assert_eq!(q.signature.as_deref(), Some("abcd"));
    }
}
