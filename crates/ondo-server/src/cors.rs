//! Browsers: which web pages may call the server (CORS).
//!
//! A request without an `Origin` header (every client but a browser) passes unchanged. A page
//! from an allowed origin gets CORS headers on every response, and its preflight (`OPTIONS`
//! with `Access-Control-Request-Method`) a 204 before the API key is checked: browsers send no
//! credentials in a preflight. Any other origin gets a 403, so that a web page the user happens
//! to visit can neither drive the local model nor read its answers, also not through DNS
//! rebinding (the page's requests still carry its own origin). Pages on the loopback
//! (`http://localhost:PORT`, `127.0.0.1`, `[::1]`, http or https) are allowed by default, as
//! Ollama does; `--allow-origin` adds more, `*` allows all.

use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};

/// Origins allowed besides the loopback's.
#[derive(Clone, Debug, Default)]
pub struct AllowedOrigins {
    any: bool,
    extra: Vec<String>,
}

impl AllowedOrigins {
    /// From `--allow-origin` values: exact origins (`https://app.example:8443`, `null`) or `*`.
    pub fn new(list: &[String]) -> AllowedOrigins {
        AllowedOrigins {
            any: list.iter().any(|o| o.trim() == "*"),
            extra: list
                .iter()
                .map(|o| o.trim().trim_end_matches('/').to_ascii_lowercase())
                .filter(|o| !o.is_empty() && o != "*")
                .collect(),
        }
    }

    pub fn allows(&self, origin: &str) -> bool {
        self.any || is_loopback(origin) || self.extra.iter().any(|o| o.eq_ignore_ascii_case(origin))
    }
}

/// `http(s)://` then `localhost`, `127.0.0.1` or `[::1]`, then an optional `:PORT`, nothing
/// more (a path, user info or another host is not an origin on the loopback).
fn is_loopback(origin: &str) -> bool {
    let lower = origin.to_ascii_lowercase();
    let Some(rest) = lower
        .strip_prefix("http://")
        .or_else(|| lower.strip_prefix("https://"))
    else {
        return false;
    };
    let port = ["localhost", "127.0.0.1", "[::1]"]
        .iter()
        .find_map(|host| rest.strip_prefix(host));
    match port {
        Some("") => true,
        Some(p) => p.strip_prefix(':').is_some_and(|digits| {
            (1..=5).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
        }),
        None => false,
    }
}

/// What the request's origin means: no browser, an allowed page, or a refused one.
pub enum Origin {
    None,
    Allowed(HeaderValue),
    Refused(String),
}

pub fn classify(allowed: &AllowedOrigins, headers: &HeaderMap) -> Origin {
    let Some(value) = headers.get(header::ORIGIN) else {
        return Origin::None;
    };
    match value.to_str() {
        Ok(o) if allowed.allows(o) => Origin::Allowed(value.clone()),
        Ok(o) => Origin::Refused(o.chars().take(200).collect()),
        Err(_) => Origin::Refused("(not text)".into()),
    }
}

pub fn is_preflight(method: &Method, headers: &HeaderMap) -> bool {
    method == Method::OPTIONS && headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

/// The answer to an allowed origin's preflight (any route, with the headers it asked for), to
/// be [`decorate`]d like every response to that origin.
pub fn preflight(request_headers: &HeaderMap) -> Response {
    let mut r = StatusCode::NO_CONTENT.into_response();
    let h = r.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, OPTIONS"),
    );
    let asked = request_headers
        .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
        .cloned()
        .unwrap_or_else(|| HeaderValue::from_static("authorization, content-type"));
    h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, asked);
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    r
}

/// Adds the headers that let the allowed page read `r`.
pub fn decorate(mut r: Response, origin: HeaderValue) -> Response {
    let h = r.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("retry-after"),
    );
    h.append(header::VARY, HeaderValue::from_static("origin"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_pages_are_allowed_by_default_and_nothing_else() {
        let allowed = AllowedOrigins::new(&[]);
        for o in [
            "http://localhost",
            "http://localhost:3000",
            "https://LOCALHOST:8443",
            "http://127.0.0.1:8080",
            "http://[::1]:5173",
            "https://127.0.0.1",
        ] {
            assert!(allowed.allows(o), "{o}");
        }
        for o in [
            "",
            "null",
            "file://",
            "http://localhost.evil.example",
            "http://localhost:3000.evil.example",
            "http://localhost:",
            "http://localhost:123456",
            "http://localhost:80/",
            "http://user@localhost",
            "http://127.0.0.1.nip.io",
            "http://127.0.0.2",
            "http://[::1]x",
            "ftp://localhost",
            "https://evil.example",
            "localhost:3000",
        ] {
            assert!(!allowed.allows(o), "{o}");
        }
    }

    #[test]
    fn listed_origins_match_exactly_and_star_allows_all() {
        let listed = AllowedOrigins::new(&["https://App.example:8443/".into(), "null".into()]);
        assert!(listed.allows("https://app.example:8443"));
        assert!(listed.allows("null"));
        assert!(listed.allows("http://localhost:1"));
        assert!(!listed.allows("https://app.example"));
        assert!(!listed.allows("https://app.example:8443.evil"));
        let any = AllowedOrigins::new(&["*".into()]);
        assert!(any.allows("https://anything.example"));
        assert!(any.allows("null"));
    }
}
