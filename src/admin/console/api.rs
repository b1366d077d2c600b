//! The console's JSON API as the admin listener sees it: which question a path and query
//! string ask ([`ConsoleQuery`]), their limits, and how an answer or refusal goes on the wire.
//!
//! Owns: parsing and validating query parameters (every bad one is a 400 with a one-line JSON
//! error). Must not: gather the answers — an [`AdminSource`](crate::admin::AdminSource) does,
//! by message to the shards.

use crate::admin::http::Response;

/// Topics listed by `/v1/topics` (sorted by name; the rest are counted, not shown).
pub const MAX_CONSOLE_TOPICS: usize = 1000;
/// Groups listed by `/v1/groups` (sorted by id; the rest are counted, not shown).
pub const MAX_CONSOLE_GROUPS: usize = 1000;
/// Partitions shown per topic or group; a larger topic is cut here and says so.
pub const MAX_CONSOLE_PARTITIONS: usize = 1000;
/// Records one `/v1/messages` page holds at most.
pub const MAX_CONSOLE_RECORDS: usize = 500;
/// The largest `max_bytes` a message page may ask for (keys, values and headers counted).
pub const MAX_CONSOLE_PAGE_BYTES: u32 = 1024 * 1024;
/// The page size when `max_bytes` is not given.
pub const DEFAULT_CONSOLE_PAGE_BYTES: u32 = 64 * 1024;
/// Query parameters one request may carry (the request head is bounded anyway).
const MAX_QUERY_PARAMETERS: usize = 8;

/// Where a message page starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seek {
    /// The first record at or after this offset (clamped up to the log start).
    Offset(i64),
    /// The first record whose timestamp is at or after this (ms since the epoch).
    Timestamp(i64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageQuery {
    pub topic: String,
    pub partition: i32,
    pub seek: Seek,
    /// Bytes of keys, values and headers the page may hold (the first record always fits).
    pub max_bytes: u32,
}

/// One read-only question the console asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsoleQuery {
    Topics,
    Topic(String),
    Groups,
    Messages(MessageQuery),
}

/// The header a console write must carry. A cross-site page cannot send a custom header
/// without a CORS preflight, which this listener never grants, so a write cannot be forged
/// from another site the operator's browser has open.
pub const CONSOLE_WRITE_HEADER: &str = "x-sluice-console";
/// Partitions a topic created from the console may have at most.
pub const MAX_CONSOLE_CREATE_PARTITIONS: i32 = 1000;

/// One change the console asks for (refused when `console_read_only` is set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsoleWrite {
    /// `POST /v1/topics?name=&partitions=`
    CreateTopic { name: String, partitions: i32 },
    /// `DELETE /v1/topics/<name>`
    DeleteTopic(String),
    /// `POST /v1/topics/<name>/configs?key=K&value=V` sets one topic config,
    /// `...?key=K&delete=true` removes the topic's override (the broker default applies again).
    AlterTopicConfig {
        topic: String,
        key: String,
        /// `None`: delete the override.
        value: Option<String>,
    },
}

/// The console write `method` `path`+`query` ask for, `None` when it is no console write.
pub fn parse_write(
    method: &str,
    path: &str,
    query: &str,
) -> Option<Result<ConsoleWrite, ConsoleError>> {
    match (method, path) {
        ("POST", "/v1/topics") => Some(parse_create(query)),
        ("POST", _) => {
            let topic = path.strip_prefix("/v1/topics/")?.strip_suffix("/configs")?;
            Some(parse_alter_config(topic, query))
        }
        ("DELETE", _) => {
            let name = path.strip_prefix("/v1/topics/")?;
            Some(percent_decode(name).map(ConsoleWrite::DeleteTopic))
        }
        _ => None,
    }
}

fn parse_create(query: &str) -> Result<ConsoleWrite, ConsoleError> {
    let params = parse_query(query)?;
    let get = |key: &str| param(&params, key);
    let name = get("name")
        .filter(|n| !n.is_empty())
        .ok_or_else(|| bad("name is required"))?
        .to_string();
    let partitions: i32 = parse_number(get("partitions").unwrap_or("1"), "partitions")?;
    if !(1..=MAX_CONSOLE_CREATE_PARTITIONS).contains(&partitions) {
        return Err(bad(&format!(
            "partitions must be between 1 and {MAX_CONSOLE_CREATE_PARTITIONS}"
        )));
    }
    Ok(ConsoleWrite::CreateTopic { name, partitions })
}

fn parse_alter_config(topic: &str, query: &str) -> Result<ConsoleWrite, ConsoleError> {
    let topic = percent_decode(topic)?;
    let params = parse_query(query)?;
    let get = |key: &str| param(&params, key);
    let key = get("key")
        .filter(|k| !k.is_empty())
        .ok_or_else(|| bad("key is required"))?
        .to_string();
    let value = match (get("value"), get("delete")) {
        (Some(v), None) => Some(v.to_string()),
        (None, Some("true")) => None,
        (None, Some(_)) => return Err(bad("delete must be true")),
        (Some(_), Some(_)) => return Err(bad("give value or delete=true, not both")),
        (None, None) => return Err(bad("value (or delete=true) is required")),
    };
    Ok(ConsoleWrite::AlterTopicConfig { topic, key, value })
}

/// Why a console question has no answer; each is one HTTP status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsoleError {
    BadRequest(String),
    NotFound(String),
    /// Writes are switched off, or the request lacks [`CONSOLE_WRITE_HEADER`].
    Forbidden(String),
    /// The change conflicts with what exists (e.g. the topic already exists).
    Conflict(String),
    /// The broker cannot answer now (starting, shutting down, a shard did not reply in time).
    Unavailable(String),
}

impl ConsoleError {
    pub fn into_response(self) -> Response {
        let (status, message) = match self {
            ConsoleError::BadRequest(m) => (400, m),
            ConsoleError::NotFound(m) => (404, m),
            ConsoleError::Forbidden(m) => (403, m),
            ConsoleError::Conflict(m) => (409, m),
            ConsoleError::Unavailable(m) => (503, m),
        };
        json_response(status, &serde_json::json!({ "error": message }))
    }
}

pub fn json_response(status: u16, value: &serde_json::Value) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => Response {
            status,
            content_type: "application/json",
            body,
            headers: vec![("Cache-Control", "no-store")],
        },
        Err(e) => Response::text(500, format!("cannot encode JSON: {e}\n")),
    }
}

/// The console question `path`+`query` ask, `None` when the path is not a console API path.
pub fn parse(path: &str, query: &str) -> Option<Result<ConsoleQuery, ConsoleError>> {
    match path {
        "/v1/topics" => Some(Ok(ConsoleQuery::Topics)),
        "/v1/groups" => Some(Ok(ConsoleQuery::Groups)),
        "/v1/messages" => Some(parse_messages(query).map(ConsoleQuery::Messages)),
        _ => {
            let name = path.strip_prefix("/v1/topics/")?;
            Some(percent_decode(name).map(ConsoleQuery::Topic))
        }
    }
}

fn parse_messages(query: &str) -> Result<MessageQuery, ConsoleError> {
    let params = parse_query(query)?;
    let get = |key: &str| param(&params, key);
    let topic = get("topic")
        .filter(|t| !t.is_empty())
        .ok_or_else(|| bad("topic is required"))?
        .to_string();
    let partition: i32 = parse_number(get("partition").unwrap_or("0"), "partition")?;
    if partition < 0 {
        return Err(bad("partition must not be negative"));
    }
    let seek = match (get("offset"), get("timestamp")) {
        (Some(_), Some(_)) => return Err(bad("give offset or timestamp, not both")),
        (_, Some(ts)) => Seek::Timestamp(parse_number(ts, "timestamp")?),
        (Some(offset), None) => Seek::Offset(parse_number(offset, "offset")?),
        (None, None) => Seek::Offset(0),
    };
    let max_bytes = match get("max_bytes") {
        None => DEFAULT_CONSOLE_PAGE_BYTES,
        Some(v) => parse_number(v, "max_bytes")?,
    };
    if max_bytes == 0 || max_bytes > MAX_CONSOLE_PAGE_BYTES {
        return Err(bad(&format!(
            "max_bytes must be between 1 and {MAX_CONSOLE_PAGE_BYTES}"
        )));
    }
    Ok(MessageQuery {
        topic,
        partition,
        seek,
        max_bytes,
    })
}

/// The value of query parameter `key` (parameters are unique: `parse_query` refuses repeats).
fn param<'a>(params: &'a [(String, String)], key: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn bad(message: &str) -> ConsoleError {
    ConsoleError::BadRequest(message.to_string())
}

fn parse_number<T: std::str::FromStr>(text: &str, name: &str) -> Result<T, ConsoleError> {
    text.parse()
        .map_err(|_| bad(&format!("{name} is not a valid number: {text:?}")))
}

/// `a=1&b=x%20y` into decoded pairs; a repeated key, too many keys or bad escapes are refused.
fn parse_query(query: &str) -> Result<Vec<(String, String)>, ConsoleError> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for part in query.split('&').filter(|p| !p.is_empty()) {
        if pairs.len() == MAX_QUERY_PARAMETERS {
            return Err(bad(&format!(
                "at most {MAX_QUERY_PARAMETERS} query parameters"
            )));
        }
        let (key, value) = part.split_once('=').unwrap_or((part, ""));
        let key = percent_decode(key)?;
        if pairs.iter().any(|(k, _)| *k == key) {
            return Err(bad(&format!("query parameter {key} given twice")));
        }
        pairs.push((key, percent_decode(value)?));
    }
    Ok(pairs)
}

/// Decodes `%XX` escapes and `+` (a space in query strings); the result must be UTF-8.
fn percent_decode(text: &str) -> Result<String, ConsoleError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| bad("bad percent escape in the URL"))?;
                out.push(hex);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| bad("the URL does not decode to UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(query: &str) -> Result<ConsoleQuery, ConsoleError> {
        parse("/v1/messages", query).unwrap()
    }

    #[test]
    fn parses_every_console_path() {
        assert_eq!(parse("/v1/topics", ""), Some(Ok(ConsoleQuery::Topics)));
        assert_eq!(parse("/v1/groups", ""), Some(Ok(ConsoleQuery::Groups)));
        assert_eq!(
            parse("/v1/topics/my%2Etopic", ""),
            Some(Ok(ConsoleQuery::Topic("my.topic".into())))
        );
        assert_eq!(parse("/v1/status", ""), None);
        assert_eq!(
            messages("topic=a+b&partition=3&timestamp=1700&max_bytes=10"),
            Ok(ConsoleQuery::Messages(MessageQuery {
                topic: "a b".into(),
                partition: 3,
                seek: Seek::Timestamp(1700),
                max_bytes: 10,
            }))
        );
        assert_eq!(
            messages("topic=t"),
            Ok(ConsoleQuery::Messages(MessageQuery {
                topic: "t".into(),
                partition: 0,
                seek: Seek::Offset(0),
                max_bytes: DEFAULT_CONSOLE_PAGE_BYTES,
            }))
        );
    }

    #[test]
    fn parses_writes() {
        assert_eq!(
            parse_write("POST", "/v1/topics", "name=t&partitions=4"),
            Some(Ok(ConsoleWrite::CreateTopic {
                name: "t".into(),
                partitions: 4
            }))
        );
        assert_eq!(
            parse_write("DELETE", "/v1/topics/a%2Eb", ""),
            Some(Ok(ConsoleWrite::DeleteTopic("a.b".into())))
        );
        assert_eq!(
            parse_write(
                "POST",
                "/v1/topics/t/configs",
                "key=retention.ms&value=1000"
            ),
            Some(Ok(ConsoleWrite::AlterTopicConfig {
                topic: "t".into(),
                key: "retention.ms".into(),
                value: Some("1000".into())
            }))
        );
        assert_eq!(
            parse_write(
                "POST",
                "/v1/topics/t/configs",
                "key=retention.ms&delete=true"
            ),
            Some(Ok(ConsoleWrite::AlterTopicConfig {
                topic: "t".into(),
                key: "retention.ms".into(),
                value: None
            }))
        );
        for query in [
            "value=1",
            "key=a",
            "key=a&value=1&delete=true",
            "key=a&delete=no",
        ] {
            assert!(
                matches!(
                    parse_write("POST", "/v1/topics/t/configs", query),
                    Some(Err(ConsoleError::BadRequest(_)))
                ),
                "{query}"
            );
        }
        assert_eq!(
            parse_write("POST", "/v1/topics/t/other", "key=a&value=1"),
            None
        );
        assert_eq!(parse_write("GET", "/v1/topics", ""), None);
        assert_eq!(parse_write("DELETE", "/v1/groups", ""), None);
        for query in [
            "partitions=2",
            "name=t&partitions=0",
            "name=t&partitions=1001",
        ] {
            assert!(
                matches!(
                    parse_write("POST", "/v1/topics", query),
                    Some(Err(ConsoleError::BadRequest(_)))
                ),
                "{query}"
            );
        }
    }

    #[test]
    fn refuses_bad_parameters_with_a_reason() {
        for (query, why) in [
            ("", "topic is required"),
            ("topic=t&partition=x", "partition is not a valid number"),
            ("topic=t&partition=-1", "must not be negative"),
            ("topic=t&offset=1&timestamp=2", "not both"),
            ("topic=t&max_bytes=0", "max_bytes must be between"),
            ("topic=t&max_bytes=99999999", "max_bytes must be between"),
            ("topic=t&topic=u", "given twice"),
            ("topic=%zz", "bad percent escape"),
            ("topic=%ff", "UTF-8"),
            ("a&b&c&d&e&f&g&h&i", "at most"),
        ] {
            match messages(query) {
                Err(ConsoleError::BadRequest(m)) => assert!(m.contains(why), "{query}: {m}"),
                other => panic!("{query}: {other:?}"),
            }
        }
        let response = ConsoleError::BadRequest("nope".into()).into_response();
        assert_eq!(response.status, 400);
        assert_eq!(response.body, br#"{"error":"nope"}"#);
    }
}
