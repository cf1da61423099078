//! Browsers: which web pages may call the server (CORS), and which host names it answers to.
//!
//! A request without an `Origin` header (every client but a browser) passes unchanged. A page
//! from an allowed origin gets CORS headers on every response, and its preflight (`OPTIONS`
//! with `Access-Control-Request-Method`) a 204 before the API key is checked: browsers send no
//! credentials in a preflight. Any other origin gets a 403, so that a web page the user happens
//! to visit can neither drive the local model nor read its answers. Pages on the loopback
//! (`http://localhost:PORT`, `127.0.0.1`, `[::1]`, http or https) are allowed by default, as
//! Ollama does; `--allow-origin` adds more, `*` allows all.
//!
//! Browsers leave `Origin` off same-origin GETs, so a page that rebinds its own domain name to
//! 127.0.0.1 (DNS rebinding) could read `GET` routes. A server bound to the loopback therefore
//! also refuses requests whose `Host` is not a loopback name (`localhost`, `*.localhost`,
//! `127.x.x.x`, `[::1]`) or the host of an allowed origin. Bound to another address, the
//! server is meant for the network and answers to any name.

use std::net::{IpAddr, Ipv4Addr};

use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};

/// Origins allowed besides the loopback's, and whether `Host` is checked.
#[derive(Clone, Debug, Default)]
pub struct AllowedOrigins {
    any: bool,
    /// Lowercase `scheme://host[:port]`, or `null`.
    origins: Vec<String>,
    /// Host names of `origins` (allowed in `Host` too).
    hosts: Vec<String>,
    check_host: bool,
}

impl AllowedOrigins {
    /// From `--allow-origin` values (exact origins such as `https://app.example:8443` or
    /// `null`, or `*`) for a server bound to `bind_host`. A value that is not an origin as
    /// browsers send them is an error that says what to write.
    pub fn new(list: &[String], bind_host: &str) -> Result<AllowedOrigins, String> {
        let mut a = AllowedOrigins {
            check_host: bind_host.eq_ignore_ascii_case("localhost")
                || bind_host
                    .trim_matches(['[', ']'])
                    .parse::<IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback()),
            ..AllowedOrigins::default()
        };
        for value in list {
            let v = value.trim().trim_end_matches('/').to_ascii_lowercase();
            if v == "*" {
                a.any = true;
            } else if v == "null" {
                a.origins.push(v);
            } else {
                let (host, _) = parse_origin(&v).map_err(|why| {
                    format!(
                        "--allow-origin '{value}' is not an origin ({why}): write \
                         scheme://host[:port] as browsers send it (e.g. \
                         https://chat.example.com), one origin per flag, or * for every page"
                    )
                })?;
                a.hosts.push(host.to_string());
                a.origins.push(v);
            }
        }
        Ok(a)
    }

    pub fn allows(&self, origin: &str) -> bool {
        self.any
            || is_loopback_origin(origin)
            || self.origins.iter().any(|o| o.eq_ignore_ascii_case(origin))
    }

    /// Whether a request whose `Host` header is `host` (`name[:port]`) is answered.
    pub fn allows_host(&self, host: &str) -> bool {
        if self.any || !self.check_host {
            return true;
        }
        let name = split_port(host).0.to_ascii_lowercase();
        is_loopback_name(&name) || self.hosts.contains(&name)
    }
}

/// `scheme://host[:port]` → (host, port): the scheme a letter then letters, digits, `+-.`;
/// the host without path, query, user info, spaces, commas or wildcards; a port in 1..=65535
/// that is not the scheme's default (browsers leave it out).
fn parse_origin(origin: &str) -> Result<(&str, Option<u16>), &'static str> {
    let (scheme, rest) = origin.split_once("://").ok_or("no scheme://")?;
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    if !scheme_ok {
        return Err("bad scheme");
    }
    if rest.is_empty() || rest.contains(|c: char| "/?#@,*".contains(c) || c.is_whitespace()) {
        return Err("a host alone is expected after the scheme");
    }
    let (host, port) = split_port(rest);
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) => Some(n),
            _ => return Err("bad port"),
        },
    };
    if host.is_empty() || (host.starts_with('[') && !host.ends_with(']')) {
        return Err("bad host");
    }
    if matches!((scheme, port), ("http", Some(80)) | ("https", Some(443))) {
        return Err("browsers leave the default port out");
    }
    Ok((host, port))
}

/// `host[:port]` or `[v6]:port` → (host, port text). Text after `]` that is not a port stays
/// in the host (which then does not end with `]`).
fn split_port(s: &str) -> (&str, Option<&str>) {
    if s.starts_with('[') {
        return match s.find(']') {
            Some(end) if end + 1 == s.len() => (s, None),
            Some(end) if s[end + 1..].starts_with(':') => (&s[..end + 1], Some(&s[end + 2..])),
            _ => (s, None),
        };
    }
    match s.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (s, None),
    }
}

/// `localhost`, a name under `.localhost`, an IPv4 loopback address or `[::1]`.
fn is_loopback_name(name: &str) -> bool {
    name == "localhost"
        || name.ends_with(".localhost")
        || name == "[::1]"
        || name.parse::<Ipv4Addr>().is_ok_and(|ip| ip.is_loopback())
}

/// `http(s)://` then `localhost`, `127.0.0.1` or `[::1]`, then an optional `:PORT`, nothing
/// more (a path, user info or another host is not an origin on the loopback).
fn is_loopback_origin(origin: &str) -> bool {
    let lower = origin.to_ascii_lowercase();
    if !(lower.starts_with("http://") || lower.starts_with("https://")) {
        return false;
    }
    match parse_origin(&lower) {
        Ok((host, _)) => ["localhost", "127.0.0.1", "[::1]"].contains(&host),
        Err(_) => false,
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

/// Whether `origin` could be given to `--allow-origin` (so an error may suggest it).
pub fn is_listable(origin: &str) -> bool {
    parse_origin(&origin.to_ascii_lowercase()).is_ok()
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
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origins(list: &[&str], bind: &str) -> AllowedOrigins {
        let list: Vec<String> = list.iter().map(|s| s.to_string()).collect();
        AllowedOrigins::new(&list, bind).unwrap()
    }

    #[test]
    fn loopback_pages_are_allowed_by_default_and_nothing_else() {
        let allowed = origins(&[], "127.0.0.1");
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
        let listed = origins(&["https://App.example:8443/", "null"], "127.0.0.1");
        assert!(listed.allows("https://app.example:8443"));
        assert!(listed.allows("null"));
        assert!(listed.allows("http://localhost:1"));
        assert!(!listed.allows("https://app.example"));
        assert!(!listed.allows("https://app.example:8443.evil"));
        let any = origins(&["*"], "127.0.0.1");
        assert!(any.allows("https://anything.example"));
        assert!(any.allows("null"));
        let ext = origins(&["chrome-extension://abcdefghijklmnop"], "127.0.0.1");
        assert!(ext.allows("chrome-extension://abcdefghijklmnop"));
    }

    #[test]
    fn values_that_browsers_never_send_are_refused_at_startup() {
        for bad in [
            "https://app.example:443",
            "http://app.example:80",
            "https://app.example/path",
            "https://a.example,https://b.example",
            "https://*.example.com",
            "app.example",
            "https://",
            "https://app.example:0",
            "https://app.example:99999",
            "https://user@app.example",
            "https://[::1",
            "1http://x",
        ] {
            let err = AllowedOrigins::new(&[bad.to_string()], "127.0.0.1").unwrap_err();
            assert!(
                err.contains("--allow-origin") && err.contains(bad),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn a_loopback_server_answers_loopback_names_and_listed_hosts_only() {
        let local = origins(&["https://chat.example.com"], "127.0.0.1");
        for h in [
            "127.0.0.1:8080",
            "127.0.0.1",
            "localhost:8080",
            "LOCALHOST",
            "app.localhost:3000",
            "127.1.2.3:8080",
            "[::1]:8080",
            "chat.example.com",
        ] {
            assert!(local.allows_host(h), "{h}");
        }
        for h in [
            "evil.example:8080",
            "127.0.0.1.nip.io:8080",
            "localhost.evil.example",
            "10.0.0.5:8080",
            "[::2]:8080",
            "",
        ] {
            assert!(!local.allows_host(h), "{h}");
        }
        for bind in ["0.0.0.0", "192.168.1.20", "::", "myhost"] {
            assert!(origins(&[], bind).allows_host("evil.example"), "{bind}");
        }
        for bind in ["localhost", "::1", "[::1]", "127.0.0.2"] {
            assert!(!origins(&[], bind).allows_host("evil.example"), "{bind}");
        }
        assert!(origins(&["*"], "127.0.0.1").allows_host("evil.example"));
    }
}
