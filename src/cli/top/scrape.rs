//! One scrape of a broker's admin `/metrics`: a minimal HTTP GET client (bounded size and
//! time) and a parser for the Prometheus text format `sluice top` reads.
//!
//! Must not: interpret metric names; the frame code in `top` does.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// Largest `/metrics` response accepted.
pub const MAX_SCRAPE_BYTES: u64 = 64 * 1024 * 1024;
/// Connect, read and write timeout of one scrape.
pub const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);

/// `GET /metrics` from `admin` (HOST:PORT); the body on a 200.
pub fn fetch_metrics(admin: &str) -> Result<String, String> {
    fetch_admin(admin, "/metrics")
}

/// GET `path` on the admin listener at `admin`: the body of a 200 answer.
pub fn fetch_admin(admin: &str, path: &str) -> Result<String, String> {
    let addr = admin
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve admin address {admin}: {e}"))?
        .next()
        .ok_or_else(|| format!("admin address {admin} resolves to nothing"))?;
    let mut stream = TcpStream::connect_timeout(&addr, SCRAPE_TIMEOUT)
        .map_err(|e| format!("cannot connect to admin listener {admin}: {e}"))?;
    let _ = stream.set_read_timeout(Some(SCRAPE_TIMEOUT));
    let _ = stream.set_write_timeout(Some(SCRAPE_TIMEOUT));
    let request = format!("GET {path} HTTP/1.1\r\nHost: {admin}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("sending request to {admin}: {e}"))?;
    let mut raw = Vec::new();
    stream
        .take(MAX_SCRAPE_BYTES + 1)
        .read_to_end(&mut raw)
        .map_err(|e| format!("reading {path} from {admin}: {e}"))?;
    if raw.len() as u64 > MAX_SCRAPE_BYTES {
        return Err(format!(
            "{path} from {admin} is larger than {MAX_SCRAPE_BYTES} bytes"
        ));
    }
    let text = String::from_utf8(raw).map_err(|_| format!("{path} from {admin} is not UTF-8"))?;
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("malformed HTTP response from {admin}"))?;
    let status = head.split(' ').nth(1).unwrap_or_default();
    if status != "200" {
        return Err(format!(
            "GET {path} on {admin} answered {}",
            head.lines().next().unwrap_or("")
        ));
    }
    Ok(body.to_string())
}

/// One sample line of the text format.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses Prometheus text format 0.0.4 (comments skipped, escapes decoded, timestamps ignored).
pub fn parse_prometheus(text: &str) -> Result<Vec<Sample>, String> {
    let mut samples = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        samples.push(parse_line(line).map_err(|e| format!("metrics line {}: {e}: {line}", n + 1))?);
    }
    Ok(samples)
}

fn parse_line(line: &str) -> Result<Sample, &'static str> {
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .ok_or("no value")?;
    let name = &line[..name_end];
    if name.is_empty() {
        return Err("empty metric name");
    }
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(body) = rest.strip_prefix('{') {
        let mut chars = body.char_indices();
        let mut key = String::new();
        loop {
            let (i, c) = chars.next().ok_or("unterminated labels")?;
            match c {
                '}' if key.trim().is_empty() => {
                    rest = &body[i + 1..];
                    break;
                }
                ',' if key.trim().is_empty() => {}
                '=' => {
                    if chars.next().map(|(_, c)| c) != Some('"') {
                        return Err("label value not quoted");
                    }
                    let mut value = String::new();
                    loop {
                        match chars.next().ok_or("unterminated label value")?.1 {
                            '"' => break,
                            '\\' => match chars.next().map(|(_, c)| c) {
                                Some('n') => value.push('\n'),
                                Some('\\') => value.push('\\'),
                                Some('"') => value.push('"'),
                                _ => return Err("bad escape in label value"),
                            },
                            c => value.push(c),
                        }
                    }
                    labels.push((std::mem::take(&mut key).trim().to_string(), value));
                }
                '}' | ',' | '"' => return Err("label without a value"),
                c => key.push(c),
            }
        }
    }
    let value_text = rest.split_whitespace().next().ok_or("no value")?;
    let value = match value_text {
        "+Inf" | "Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v.parse().map_err(|_| "bad value")?,
    };
    Ok(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

/// One scrape and when it was taken.
pub struct Scrape {
    pub at: Instant,
    pub samples: Vec<Sample>,
}

impl Scrape {
    pub fn take(admin: &str) -> Result<Scrape, String> {
        let text = fetch_metrics(admin)?;
        Ok(Scrape {
            at: Instant::now(),
            samples: parse_prometheus(&text)?,
        })
    }

    pub(super) fn sum(&self, name: &str, filter: impl Fn(&Sample) -> bool) -> f64 {
        self.samples
            .iter()
            .filter(|s| s.name == name && filter(s))
            .map(|s| s.value)
            .sum()
    }
}
