//! `behind-proxy`: the client's address, scheme and host as a trusted reverse proxy forwards them
//! (`Forwarded`, `X-Forwarded-*`), ignored from anyone else; and gzip when the client asks for it.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

use crate::{Shared, json_response};

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/whoami", get(whoami))
        .route("/links", post(create_link))
        .route("/catalog", get(catalog))
}

/// Where a request came from, as this service may believe it.
struct Origin {
    ip: String,
    proto: String,
    host: String,
}

/// Whether `ip` is in `a.b.c.d/n` (or `x::y/n`, or a bare address).
fn in_range(ip: IpAddr, range: &str) -> bool {
    let (address, bits) = match range.trim().split_once('/') {
        Some((address, bits)) => (address, bits.parse::<u32>().ok()),
        None => (range.trim(), None),
    };
    let Ok(network) = address.parse::<IpAddr>() else {
        return false;
    };
    match (ip, network) {
        (IpAddr::V4(ip), IpAddr::V4(network)) => {
            let bits = bits.unwrap_or(32).min(32);
            let mask = if bits == 0 { 0 } else { u32::MAX << (32 - bits) };
            u32::from(ip) & mask == u32::from(network) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(network)) => {
            let bits = bits.unwrap_or(128).min(128);
            let mask = if bits == 0 { 0 } else { u128::MAX << (128 - bits) };
            u128::from(ip) & mask == u128::from(network) & mask
        }
        _ => false,
    }
}

fn trusted(app: &Shared, ip: &str) -> bool {
    if app.config.has("trust-everyone") {
        return true;
    }
    let Ok(ip) = ip.trim_matches(|c| c == '[' || c == ']').parse::<IpAddr>() else {
        return false;
    };
    let ranges = app.config.env.get("TRUSTED_PROXIES").cloned().unwrap_or_default();
    ranges.split(',').any(|range| in_range(ip, range))
}

/// The `for`, `proto` and `host` of a `Forwarded` header's elements, in order.
fn forwarded(headers: &HeaderMap) -> Vec<(Option<String>, Option<String>, Option<String>)> {
    headers
        .get_all("forwarded")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|element| {
            let mut parts = (None, None, None);
            for pair in element.split(';') {
                if let Some((name, value)) = pair.trim().split_once('=') {
                    let value = value.trim().trim_matches('"').to_string();
                    match name.trim().to_ascii_lowercase().as_str() {
                        "for" => parts.0 = Some(value),
                        "proto" => parts.1 = Some(value),
                        "host" => parts.2 = Some(value),
                        _ => {}
                    }
                }
            }
            parts
        })
        .collect()
}

fn origin(app: &Shared, request_headers: &HeaderMap, peer: Option<SocketAddr>) -> Origin {
    let peer_ip = peer
        .map(|p| p.ip().to_string())
        .unwrap_or_else(|| "127.0.0.1".to_string());
    let own_host = request_headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("localhost")
        .to_string();
    let mut origin = Origin {
        ip: peer_ip.clone(),
        proto: "http".into(),
        host: own_host,
    };
    if app.config.has("xfh-always-trusted")
        && let Some(host) = request_headers.get("x-forwarded-host").and_then(|v| v.to_str().ok())
    {
        // The host is taken from X-Forwarded-Host before anyone asks who sent it.
        origin.host = host.to_string();
    }
    if !trusted(app, &peer_ip) {
        return origin;
    }
    let header = |name: &str| {
        request_headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let elements = if app.config.has("forwarded-ignored") {
        Vec::new()
    } else {
        forwarded(request_headers)
    };
    let (chain, proto, host): (Vec<String>, Option<String>, Option<String>) = if elements.is_empty() {
        let chain = header("x-forwarded-for")
            .map(|v| v.split(',').map(|a| a.trim().to_string()).collect())
            .unwrap_or_default();
        (chain, header("x-forwarded-proto"), header("x-forwarded-host"))
    } else {
        let chain = elements.iter().filter_map(|(f, _, _)| f.clone()).collect();
        let last = elements.last().cloned().unwrap_or_default();
        (chain, last.1, last.2)
    };
    let client = if app.config.has("leftmost-xff") {
        chain.first().cloned()
    } else if app.config.has("rightmost-xff") {
        chain.last().cloned()
    } else {
        // The rightmost address that is not one of our proxies: everything left of it is the client's to write.
        chain
            .iter()
            .rev()
            .find(|a| !trusted(app, a))
            .cloned()
            .or_else(|| chain.first().cloned())
    };
    if let Some(client) = client {
        origin.ip = client.trim_matches(|c| c == '[' || c == ']').to_string();
    }
    let from_x_forwarded = elements.is_empty();
    if !(app.config.has("location-from-host-header") && from_x_forwarded) {
        if let Some(proto) = proto {
            origin.proto = proto.split(',').next().unwrap_or_default().trim().to_string();
        }
        if let Some(host) = host {
            origin.host = host.split(',').next().unwrap_or_default().trim().to_string();
        }
    }
    origin
}

fn peer(request: &Request) -> Option<SocketAddr> {
    request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0)
}

async fn whoami(State(app): State<Shared>, request: Request) -> Response {
    let seen = origin(&app, request.headers(), peer(&request));
    json_response(
        StatusCode::OK,
        &json!({ "ip": seen.ip, "proto": seen.proto, "host": seen.host }),
        false,
    )
}

static LINKS: AtomicU64 = AtomicU64::new(0);

async fn create_link(State(app): State<Shared>, request: Request) -> Response {
    let seen = origin(&app, request.headers(), peer(&request));
    let id = LINKS.fetch_add(1, Ordering::Relaxed) + 1;
    let url = format!("{}://{}/links/{id}", seen.proto, seen.host);
    let mut response = json_response(StatusCode::CREATED, &json!({ "id": id, "self": url }), false);
    if let Ok(location) = HeaderValue::from_str(&url) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

/// Whether `Accept-Encoding` accepts gzip (`q=0` refuses it).
fn accepts_gzip(app: &Shared, headers: &HeaderMap) -> bool {
    let value = headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(",");
    if app.config.has("q-zero-ignored") {
        return value.to_ascii_lowercase().contains("gzip");
    }
    value.split(',').any(|coding| {
        let mut parts = coding.split(';').map(str::trim);
        let name = parts.next().unwrap_or_default();
        let refused = parts.any(|p| p.strip_prefix("q=").and_then(|q| q.parse::<f32>().ok()) == Some(0.0));
        name.eq_ignore_ascii_case("gzip") && !refused
    })
}

async fn catalog(State(app): State<Shared>, headers: HeaderMap) -> Response {
    let items: Vec<_> = (1..=200)
        .map(|n| json!({ "id": n, "name": format!("Catalogue item number {n}"), "price": n * 3 }))
        .collect();
    let body = json!({ "items": items }).to_string();
    let mut response = if accepts_gzip(&app, &headers) && !app.config.has("no-gzip") {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        let compressed = encoder.write_all(body.as_bytes()).and_then(|()| encoder.finish());
        match compressed {
            Ok(bytes) => (
                [
                    (header::CONTENT_TYPE, "application/json"),
                    (header::CONTENT_ENCODING, "gzip"),
                ],
                bytes,
            )
                .into_response(),
            Err(_) => json_response(StatusCode::OK, &json!({ "items": items }), false),
        }
    } else {
        ([(header::CONTENT_TYPE, "application/json")], body).into_response()
    };
    if !app.config.has("no-vary-encoding") {
        response
            .headers_mut()
            .append(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    }
    response
}
