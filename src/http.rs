//! Building requests from the spec and sending them with reqwest: no redirects, no retries, no proxies,
//! bounded bodies.

use std::time::Duration;

pub mod burst;

use tokio::time::Instant;
use url::Url;

use crate::expect::Response;
use crate::outcome::RequestRecord;
use crate::spec::model::RequestSpec;
use crate::spec::template;
use crate::vars::Vars;

/// A request ready to send: every placeholder filled.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// Method.
    pub method: String,
    /// Absolute URL on the service under test.
    pub url: Url,
    /// Headers, in spec order.
    pub headers: Vec<(String, String)>,
    /// Body bytes (cheap to clone: a generated batch body can be tens of MiB).
    pub body: Option<bytes::Bytes>,
    /// The path of the service's base URL without its final slash (empty at the root): a replay's `$BASE`
    /// stands for it.
    pub base_path: String,
}

impl Prepared {
    /// The record kept for reports.
    pub fn record(&self) -> RequestRecord {
        RequestRecord {
            method: self.method.clone(),
            url: redacted(&self.url),
            target: {
                let target = self.target();
                match target.strip_prefix(self.base_path.as_str()) {
                    Some(rest) if rest.starts_with('/') => rest.to_string(),
                    _ => target,
                }
            },
            headers: self.headers.clone(),
            // Reports keep the start of a large body (a 16 MiB filler stays out of the JSON report).
            body: self
                .body
                .as_ref()
                .map(|b| crate::expect::clip(&String::from_utf8_lossy(&b[..b.len().min(8192)]), 2000)),
        }
    }

    /// `path?query` for the request line.
    pub fn target(&self) -> String {
        match self.url.query() {
            Some(q) => format!("{}?{q}", self.url.path()),
            None => self.url.path().to_string(),
        }
    }
}

/// The URL a spec path means on the service at `base`: paths are relative to the base URL's path (so
/// `--url http://host/api` puts `/items` at `/api/items`), a path already under that prefix (a `Location` the
/// service sent) is kept as is, and whatever would leave the service's origin — an absolute URL elsewhere, a
/// network-path reference such as `//other-host/x` or `/\other-host` — is refused.
pub fn resolve(base: &Url, path: &str) -> Result<Url, String> {
    let refuse =
        |url: &dyn std::fmt::Display| format!("refusing to send a request outside the service under test: {url}");
    if path.starts_with("//") || path.starts_with("/\\") || path.starts_with('\\') {
        return Err(refuse(&path));
    }
    let prefix = base.path().trim_end_matches('/');
    let url = if path.starts_with('/')
        && !prefix.is_empty()
        && !(path == prefix || path.starts_with(&format!("{prefix}/")))
    {
        base.join(&format!("{prefix}{path}"))
    } else if !path.starts_with('/') && !path.contains("://") {
        let mut directory = base.clone();
        directory.set_path(&format!("{prefix}/"));
        directory.join(path)
    } else {
        base.join(path)
    }
    .map_err(|e| format!("`{path}` is not a valid path or URL: {e}"))?;
    // Captured Location headers may be absolute: they must still point at the service under test.
    if url.origin() != base.origin() {
        return Err(refuse(&redacted(&url)));
    }
    Ok(url)
}

/// A URL as reports show it: any password in it replaced by `***`.
pub fn redacted(url: &Url) -> String {
    let mut shown = url.clone();
    if shown.password().is_some() {
        let _ = shown.set_password(Some("***"));
    }
    shown.to_string()
}

/// Fills the placeholders of a request and resolves it against the base URL. The error says what is wrong.
pub fn prepare(spec: &RequestSpec, vars: &mut Vars, base: &Url) -> Result<Prepared, String> {
    let jar = vars.cookie_header();
    let mut lookup = |name: &str| vars.lookup(name);
    let path = template::render(&spec.path, &mut lookup).map_err(|e| e.to_string())?;
    let mut url = resolve(base, &path)?;
    if !spec.query.is_empty() {
        let mut pairs = url.query_pairs_mut();
        for (name, value) in &spec.query {
            pairs.append_pair(
                name,
                &template::render(&value.0, &mut lookup).map_err(|e| e.to_string())?,
            );
        }
    }
    let mut headers = Vec::with_capacity(spec.headers.len() + 1);
    for (name, value) in &spec.headers {
        headers.push((
            name.clone(),
            template::render(&value.0, &mut lookup).map_err(|e| e.to_string())?,
        ));
    }
    let has = |headers: &[(String, String)], name: &str| headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
    // The probe's cookie jar, unless the request sets its own Cookie header.
    if !has(&headers, "cookie")
        && let Some(jar) = jar
    {
        headers.push(("Cookie".into(), jar));
    }
    let body = if let Some(json) = &spec.json {
        if !has(&headers, "content-type") {
            headers.push(("Content-Type".into(), "application/json".into()));
        }
        let mut render = || template::render_body(json, &mut lookup);
        let rendered = if template::has_repeat(json) {
            heavy(render)
        } else {
            render()
        };
        Some(rendered?.into_bytes())
    } else if let Some(form) = &spec.form {
        if !has(&headers, "content-type") {
            headers.push(("Content-Type".into(), "application/x-www-form-urlencoded".into()));
        }
        let mut encoder = url::form_urlencoded::Serializer::new(String::new());
        for (name, value) in form {
            encoder.append_pair(
                name,
                &template::render(&value.0, &mut lookup).map_err(|e| e.to_string())?,
            );
        }
        Some(encoder.finish().into_bytes())
    } else if let Some(body) = &spec.body {
        Some(
            template::render(body, &mut lookup)
                .map_err(|e| e.to_string())?
                .into_bytes(),
        )
    } else {
        None
    };
    Ok(Prepared {
        body: body.map(bytes::Bytes::from),
        method: spec.method.clone(),
        url,
        headers,
        base_path: base.path().trim_end_matches('/').to_string(),
    })
}

/// Runs `work`, which may keep a thread busy for a while (a body of 200,000 items rendered), so that the other
/// tasks of a multi-threaded runtime (other challenges' probes, their time measurements) move to another thread
/// meanwhile instead of waiting for this one. The thread that hands its place over may end later, which is why
/// services are not started from whichever thread runs (see `target::process::spawn_steadily`).
fn heavy<T>(work: impl FnOnce() -> T) -> T {
    let flavor = tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor());
    if matches!(flavor, Ok(tokio::runtime::RuntimeFlavor::MultiThread)) {
        tokio::task::block_in_place(work)
    } else {
        work()
    }
}

/// The HTTP client every probe uses.
#[derive(Debug, Clone)]
pub struct Http {
    client: reqwest::Client,
    /// The largest body read before the response counts as too big.
    pub max_body: usize,
    /// The network device every connection is bound to, when the target lives on a network proctor created.
    pub interface: Option<String>,
}

/// A request that got no usable response.
#[derive(Debug)]
pub struct NoResponse {
    /// What happened, for the report.
    pub message: String,
    /// Whose fault it is: the service's (a refused connection, garbage, a timeout) or proctor's (a request it
    /// could not build or send).
    pub blame: crate::outcome::Blame,
}

impl NoResponse {
    /// The service did not answer properly.
    pub fn service(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            blame: crate::outcome::Blame::Service,
        }
    }

    /// proctor could not send the request.
    pub fn proctor(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            blame: crate::outcome::Blame::Proctor,
        }
    }
}

impl Http {
    /// A client with redirects, retries and proxies off and the given per-request timeout; with `interface`,
    /// every connection is bound to that device, so no request can leave through any other.
    pub fn new(
        timeout: Duration,
        max_body: usize,
        interface: Option<String>,
        tls: Option<&ClientTls>,
    ) -> Result<Self, reqwest::Error> {
        let client = build_client(timeout, interface.as_deref(), tls)?;
        Ok(Self {
            client,
            max_body,
            interface,
        })
    }

    /// Sends a request and reads at most `max_body` bytes of the body.
    pub async fn send(&self, prepared: &Prepared) -> Result<Response, NoResponse> {
        let ours = NoResponse::proctor;
        let method = reqwest::Method::from_bytes(prepared.method.as_bytes()).map_err(|e| ours(e.to_string()))?;
        let mut headers = reqwest::header::HeaderMap::new();
        for (name, value) in &prepared.headers {
            let value = reqwest::header::HeaderValue::from_str(value)
                .map_err(|_| NoResponse::service(format!("the value for header {name} is not valid: {value:?}")))?;
            let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| NoResponse::service(format!("`{name}` is not a valid header name")))?;
            headers.append(name, value);
        }
        let body = &prepared.body;
        let request = || {
            let mut request = self
                .client
                .request(method.clone(), prepared.url.clone())
                .headers(headers.clone());
            if let Some(body) = &body {
                request = request.body(body.clone());
            }
            request
        };
        let started = Instant::now();
        let failed = |e: reqwest::Error| NoResponse::service(describe_error(&e));
        let mut response = match request().send().await {
            Ok(response) => response,
            // A kept-alive connection the service closed while the request was on its way: RFC 9112 §9.3.1 lets
            // a client retry an idempotent request on a new connection; anything else is reported as what it is.
            Err(e) if closed_before_answer(&e) => {
                if method.is_idempotent() {
                    request().send().await.map_err(failed)?
                } else {
                    return Err(NoResponse::service(format!(
                        "the service closed the connection without answering ({}); a {} is not retried. If \
                             the connection had been idle, the service closed a kept-alive connection without \
                             sending `Connection: close`",
                        describe_error(&e),
                        method
                    )));
                }
            }
            Err(e) => return Err(failed(e)),
        };
        let status = response.status().as_u16();
        let headers = header_pairs(response.headers());
        let mut body = Vec::new();
        let mut truncated = false;
        while let Some(chunk) = response.chunk().await.map_err(failed)? {
            let room = self.max_body - body.len();
            if chunk.len() > room {
                body.extend_from_slice(&chunk[..room]);
                truncated = true;
                break;
            }
            body.extend_from_slice(&chunk);
        }
        let mut response = Response {
            status,
            headers,
            body,
            truncated,
            body_limit: self.max_body,
            elapsed: started.elapsed(),
            decoding_error: None,
        };
        if asked_for_gzip(&prepared.headers) {
            decode_gzip(&mut response, self.max_body);
        }
        Ok(response)
    }
}

/// Whether the request's `Accept-Encoding` accepts gzip (a `q=0` refuses it).
fn asked_for_gzip(headers: &[(String, String)]) -> bool {
    headers
        .iter()
        .filter(|(name, _)| name.eq_ignore_ascii_case("accept-encoding"))
        .flat_map(|(_, value)| value.split(','))
        .any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            let name = parts.next().unwrap_or_default();
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q == 0.0)
            });
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
}

/// Decodes a gzip body that proctor asked for, as a client would, with the same cap as a plain body (a small
/// body that inflates past it is cut there, so a compression bomb costs no more memory than a large body).
/// Headers stay as received, so that `Content-Encoding` can be checked.
fn decode_gzip(response: &mut Response, max_body: usize) {
    let gzip = response
        .header("content-encoding")
        .is_some_and(|coding| coding.trim().eq_ignore_ascii_case("gzip"));
    if !gzip {
        return;
    }
    use std::io::Read;
    let mut decoded = Vec::new();
    let mut decoder = flate2::read::GzDecoder::new(response.body.as_slice()).take(max_body as u64 + 1);
    match decoder.read_to_end(&mut decoded) {
        Ok(_) if response.truncated => {
            response.decoding_error = Some(format!("the compressed body is larger than {max_body} bytes"))
        }
        Ok(_) => {
            if decoded.len() > max_body {
                decoded.truncate(max_body);
                response.truncated = true;
            }
            response.body = decoded;
        }
        Err(e) => response.decoding_error = Some(format!("Content-Encoding: gzip, but the body is not gzip data: {e}")),
    }
}

/// Whether the connection closed before any response arrived (hyper's "incomplete message").
fn closed_before_answer(error: &reqwest::Error) -> bool {
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(hyper) = cause.downcast_ref::<hyper::Error>()
            && hyper.is_incomplete_message()
        {
            return true;
        }
        source = cause.source();
    }
    false
}

/// How probes reach a service over TLS: trusting only the run's authority, with the service's name
/// ([`crate::tls::SERVICE_NAME`]) resolved to its address by proctor (never by DNS).
#[derive(Debug, Clone)]
pub struct ClientTls {
    /// The run's authority (DER).
    pub ca_der: Vec<u8>,
    /// The address behind the service's name.
    pub ip: std::net::IpAddr,
    /// Check the service's certificate (off only for readiness: a service with the wrong certificate is up, and
    /// its probes say what is wrong with it).
    pub verify: bool,
}

/// A TCP connection to the service, bound to `interface` when given (a sandbox network's bridge), for the steps
/// that open their own connections (bursts, TLS handshakes).
pub async fn connect_tcp(
    address: std::net::SocketAddr,
    interface: Option<&str>,
) -> std::io::Result<tokio::net::TcpStream> {
    let socket = if address.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }?;
    if let Some(interface) = interface {
        socket.bind_device(Some(interface.as_bytes()))?;
    }
    socket.connect(address).await
}

/// A reqwest client configured for probing: nothing automatic between proctor and the service.
pub fn build_client(
    timeout: Duration,
    interface: Option<&str>,
    tls: Option<&ClientTls>,
) -> Result<reqwest::Client, reqwest::Error> {
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .retry(reqwest::retry::never())
        .no_proxy()
        .timeout(timeout)
        .user_agent(concat!("proctor/", env!("CARGO_PKG_VERSION")));
    if let Some(interface) = interface {
        builder = builder.interface(interface);
    }
    if let Some(tls) = tls {
        builder = builder
            .tls_certs_only([reqwest::Certificate::from_der(&tls.ca_der)?])
            .resolve(crate::tls::SERVICE_NAME, std::net::SocketAddr::new(tls.ip, 0))
            .danger_accept_invalid_certs(!tls.verify);
    }
    builder.build()
}

/// A response's header field lines, names capitalized for reports.
pub fn header_pairs(headers: &reqwest::header::HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(n, v)| {
            (
                header_name(n.as_str()),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

/// `content-type` → `Content-Type`, for reports that read like HTTP.
pub fn header_name(lower: &str) -> String {
    let mut out = String::with_capacity(lower.len());
    let mut upper = true;
    for c in lower.chars() {
        out.push(if upper { c.to_ascii_uppercase() } else { c });
        upper = c == '-';
    }
    out
}

/// A reqwest error as one sentence, with its causes.
pub fn describe_error(error: &reqwest::Error) -> String {
    let mut causes = Vec::new();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !causes.contains(&text) {
            causes.push(text);
        }
        source = cause.source();
    }
    let detail = if causes.is_empty() {
        String::new()
    } else {
        format!(": {}", causes.join(": "))
    };
    if error.is_timeout() {
        "no complete response before the request timeout".to_string()
    } else if error.is_connect() {
        format!("could not connect{detail}")
    } else if error.is_body() || error.is_decode() {
        format!("the response body broke off{detail}")
    } else {
        format!("the service did not send a valid HTTP response{detail}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_live_under_the_base_path_and_never_leave_the_origin() {
        let base = Url::parse("http://user:secret@127.0.0.1:9/api").expect("url");
        let at = |path: &str| resolve(&base, path).map(|u| u.path().to_string());
        assert_eq!(at("/items").as_deref(), Ok("/api/items"));
        assert_eq!(
            at("/api/items/3").as_deref(),
            Ok("/api/items/3"),
            "a Location the service sent"
        );
        assert_eq!(at("items").as_deref(), Ok("/api/items"));
        assert_eq!(at("/apiary").as_deref(), Ok("/api/apiary"));
        for elsewhere in [
            "//evil.example/x",
            "/\\evil.example/x",
            "http://evil.example/x",
            "http://127.0.0.1:10/x",
        ] {
            assert!(at(elsewhere).is_err(), "{elsewhere}");
        }
        let root = Url::parse("http://127.0.0.1:9/").expect("url");
        assert_eq!(
            resolve(&root, "/items").map(|u| u.path().to_string()).as_deref(),
            Ok("/items")
        );
        assert_eq!(redacted(&base), "http://user:***@127.0.0.1:9/api");
    }
}
