//! The admin listener's HTTP/1.1: read one GET request head, write one response, close.
//!
//! Owns: request-head parsing and its limits, response framing. Must not: read a body,
//! keep connections alive, or trust anything the peer sends (every failure is a status code).

use std::io::{self, Read, Write};
use std::time::Duration;

/// Largest request head (request line + headers) accepted, in bytes.
pub const MAX_HEADER_BYTES: usize = 8 * 1024;
/// How long a client may take to send its request head.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How long writing a response may block on a slow reader.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// A parsed request line: only what routing needs.
#[derive(Debug, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// Path without the query string.
    pub path: String,
    /// What followed the `?` (empty when none), still percent-encoded.
    pub query: String,
    /// Header lines as (lower-case name, trimmed value); bounded by [`MAX_HEADER_BYTES`].
    pub headers: Vec<(String, String)>,
}

impl Request {
    /// The value of header `name` (give it lower-case), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Why a request head could not be read; each maps to one response status.
#[derive(Debug, PartialEq, Eq)]
pub enum RequestError {
    /// Not HTTP/1.x, or a broken request line or header line.
    Malformed(&'static str),
    /// The head did not end within [`MAX_HEADER_BYTES`].
    TooLarge,
    /// The peer stopped sending before the head ended (timeout or EOF); nothing to answer.
    Incomplete,
}

/// Reads until the blank line that ends the head, within [`MAX_HEADER_BYTES`].
pub fn read_request(stream: &mut impl Read) -> Result<Request, RequestError> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        if let Some(end) = find_head_end(&buf) {
            return parse_head(&buf[..end]);
        }
        if buf.len() >= MAX_HEADER_BYTES {
            return Err(RequestError::TooLarge);
        }
        let want = chunk.len().min(MAX_HEADER_BYTES + 4 - buf.len());
        match stream.read(&mut chunk[..want]) {
            Ok(0) => return Err(RequestError::Incomplete),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return Err(RequestError::Incomplete),
        }
    }
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n")
}

/// Parses the request line and checks each header line has a name and a colon.
pub fn parse_head(head: &[u8]) -> Result<Request, RequestError> {
    if head.len() > MAX_HEADER_BYTES {
        return Err(RequestError::TooLarge);
    }
    let text =
        std::str::from_utf8(head).map_err(|_| RequestError::Malformed("head is not UTF-8"))?;
    let mut lines = text.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(RequestError::Malformed(
            "request line is not METHOD TARGET VERSION",
        ));
    };
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(RequestError::Malformed("bad method"));
    }
    if !target.starts_with('/') {
        return Err(RequestError::Malformed("target must be an absolute path"));
    }
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err(RequestError::Malformed(
            "only HTTP/1.0 and HTTP/1.1 are spoken",
        ));
    }
    let mut headers = Vec::new();
    for line in lines {
        match line.split_once(':') {
            Some((name, value)) if !name.is_empty() && !name.contains([' ', '\t']) => {
                headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
            }
            _ => return Err(RequestError::Malformed("bad header line")),
        }
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    Ok(Request {
        method: method.to_string(),
        path: path.to_string(),
        query: query.to_string(),
        headers,
    })
}

/// One response, always with `Connection: close`.
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    /// Extra header lines, e.g. `("Allow", "GET")`.
    pub headers: Vec<(&'static str, &'static str)>,
}

impl Response {
    pub fn text(status: u16, body: impl Into<String>) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into().into_bytes(),
            headers: Vec::new(),
        }
    }

    pub fn write_to(&self, stream: &mut impl Write) -> io::Result<()> {
        let mut head = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
            self.status,
            reason(self.status),
            self.content_type,
            self.body.len()
        );
        for (name, value) in &self.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes())?;
        stream.write_all(&self.body)?;
        stream.flush()
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        409 => "Conflict",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_get_with_headers_and_query() {
        let mut input: &[u8] = b"GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n";
        assert_eq!(
            read_request(&mut input),
            Ok(Request {
                method: "GET".into(),
                path: "/metrics".into(),
                query: "x=1".into(),
                headers: vec![("host".into(), "a".into()), ("accept".into(), "*/*".into())],
            })
        );
    }

    #[test]
    fn rejects_malformed_heads() {
        for bad in [
            &b"GET /metrics\r\n\r\n"[..],
            b"GET metrics HTTP/1.1\r\n\r\n",
            b"GET /metrics HTTP/2\r\n\r\n",
            b"get /metrics HTTP/1.1\r\n\r\n",
            b"GET /metrics HTTP/1.1\r\nno colon here\r\n\r\n",
            b"GET  /metrics HTTP/1.1\r\n\r\n",
            b"\xff\xfe /x HTTP/1.1\r\n\r\n",
        ] {
            let mut input = bad;
            assert!(
                matches!(read_request(&mut input), Err(RequestError::Malformed(_))),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn oversized_and_truncated_heads() {
        let mut big = b"GET / HTTP/1.1\r\nX: ".to_vec();
        big.resize(MAX_HEADER_BYTES * 2, b'a');
        assert_eq!(read_request(&mut &big[..]), Err(RequestError::TooLarge));
        assert_eq!(
            read_request(&mut &b"GET / HTTP/1.1\r\n"[..]),
            Err(RequestError::Incomplete)
        );
    }

    #[test]
    fn response_has_length_and_close() {
        let mut out = Vec::new();
        let mut r = Response::text(405, "no\n");
        r.headers.push(("Allow", "GET"));
        r.write_to(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"));
        assert!(text.contains("Content-Length: 3\r\n"));
        assert!(text.contains("Connection: close\r\n"));
        assert!(text.contains("Allow: GET\r\n"));
        assert!(text.ends_with("\r\n\r\nno\n"));
    }
}
