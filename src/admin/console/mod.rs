//! The built-in web console: one embedded page (HTML, JS, CSS compiled into the binary, no
//! CDN, works offline) at `/` and `/console`, and the read-only JSON API it reads
//! (`/v1/topics`, `/v1/topics/<name>`, `/v1/groups`, `/v1/messages`).
//!
//! Owns: the console's routes and assets. Must not: gather data itself — every answer comes
//! from the [`AdminSource`], which asks the shards by message.

pub mod api;

use super::AdminSource;
use super::http::{Request, Response};
use api::json_response;

const INDEX_HTML: &str = include_str!("assets/index.html");
const CONSOLE_JS: &str = include_str!("assets/console.js");
const CONSOLE_CSS: &str = include_str!("assets/console.css");

/// The console's answer to `request`, or `None` when the path is not the console's.
pub fn route(request: &Request, source: &dyn AdminSource) -> Option<Response> {
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
