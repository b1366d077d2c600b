//! The built-in web console: one embedded page (HTML, JS, CSS compiled into the binary, no
//! CDN, works offline) at `/` and `/console`, the JSON API it reads
//! (`/v1/topics`, `/v1/topics/<name>`, `/v1/groups`, `/v1/messages`), and its two writes
//! (`POST /v1/topics`, `DELETE /v1/topics/<name>`, `POST /v1/topics/<name>/configs`), refused when `console_read_only` is set or
//! the request lacks the console's header.
//!
//! Owns: the console's routes and assets. Must not: gather data itself — every answer comes
//! from the [`AdminSource`], which asks the shards by message.

pub mod api;

use super::AdminSource;
use super::http::{Request, Response};
use api::{CONSOLE_WRITE_HEADER, ConsoleError, json_response};

const INDEX_HTML: &str = include_str!("assets/index.html");
const CONSOLE_JS: &str = include_str!("assets/console.js");
const CONSOLE_CSS: &str = include_str!("assets/console.css");

/// The console's answer to `request`, or `None` when the path is not the console's.
pub fn route(request: &Request, source: &dyn AdminSource) -> Option<Response> {
    if let Some(write) = api::parse_write(&request.method, &request.path, &request.query) {
        return Some(
            match write.and_then(|w| allowed(request, source).map(|()| w)) {
                Ok(write) => match source.console_write(&write) {
                    Ok(answer) => json_response(200, &answer),
                    Err(e) => e.into_response(),
                },
                Err(e) => e.into_response(),
            },
        );
    }
    let asset = match request.path.as_str() {
        "/" | "/console" | "/console/" => Some((INDEX_HTML, "text/html; charset=utf-8")),
        "/console/console.js" => Some((CONSOLE_JS, "text/javascript; charset=utf-8")),
        "/console/console.css" => Some((CONSOLE_CSS, "text/css; charset=utf-8")),
        _ => None,
    };
    let query = match asset {
        Some(_) => None,
        None => Some(api::parse(&request.path, &request.query)?),
    };
    if request.method != "GET" {
        let mut r = Response::text(405, "only GET is allowed\n");
        r.headers.push(("Allow", "GET"));
        return Some(r);
    }
    Some(match (asset, query) {
        (Some((body, content_type)), _) => Response {
            status: 200,
            content_type,
            body: body.as_bytes().to_vec(),
            headers: Vec::new(),
        },
        (None, Some(Ok(query))) => match source.console(&query) {
            Ok(answer) => json_response(200, &answer),
            Err(e) => e.into_response(),
        },
        (None, Some(Err(e))) => e.into_response(),
        (None, None) => return None,
    })
}

/// A write is refused when the console is read-only, or when the request could have been
/// forged by another site (it lacks [`CONSOLE_WRITE_HEADER`]).
fn allowed(request: &Request, source: &dyn AdminSource) -> Result<(), ConsoleError> {
    if source.console_read_only() {
        return Err(ConsoleError::Forbidden(
            "the console is read-only (console_read_only = true)".into(),
        ));
    }
    if request.header(CONSOLE_WRITE_HEADER).is_none() {
        return Err(ConsoleError::Forbidden(format!(
            "console writes need the {CONSOLE_WRITE_HEADER} header"
        )));
    }
    Ok(())
}
