//! `tls`: with `TLS_CERT`, `TLS_KEY` and `HTTP_PORT` in the env, the service serves HTTPS on its port with that
//! certificate (TLS 1.2 and 1.3 only, rustls), adds `Strict-Transport-Security` to every HTTPS answer, and answers
//! every plain-HTTP request on `HTTP_PORT` with a permanent redirect to the same path over HTTPS (no HSTS there).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::Config;

/// `GET /hello`, the page the `tls` challenge reads over both transports.
pub(crate) fn routes() -> Router<crate::Shared> {
    Router::new().route(
        "/hello",
        axum::routing::get(|State(app): State<crate::Shared>| async move {
            if app.config.has("hello-404") {
                return crate::problem(StatusCode::NOT_FOUND, "no such page");
            }
            crate::json_response(StatusCode::OK, &serde_json::json!({ "message": "hello" }), false)
        }),
    )
}

/// What TLS mode needs, read from the env before the app takes the configuration.
pub(crate) struct Setup {
    acceptor: tokio_rustls::TlsAcceptor,
    /// The plain-HTTP port.
    pub(crate) http_port: u16,
    hsts: Option<&'static str>,
    /// HSTS only on successful answers (the `hsts-success-only` defect).
    hsts_success_only: bool,
    redirect: Redirect,
    legacy_accepted: bool,
    /// The plain port serves the app itself (the `http-served` defect).
    pub(crate) http_served: bool,
}

#[derive(Clone, Copy)]
struct Redirect {
    get_status: StatusCode,
    other_status: StatusCode,
    keeps_query: bool,
    hsts: bool,
    /// Only GET and POST are redirected; other methods answer 405 (the `redirect-get-post-only` defect).
    get_post_only: bool,
    /// The redirect keeps the request's (plain) port (the `redirect-plain-port` defect).
    plain_port: bool,
}

impl Setup {
    /// `None` without `TLS_CERT`; an error when the certificate, key or port cannot be used.
    pub(crate) fn new(config: &Config) -> Option<Result<Self, String>> {
        let cert = config.env.get("TLS_CERT")?;
        Some(Self::build(config, cert))
    }

    fn build(config: &Config, cert: &str) -> Result<Self, String> {
        // The `own-certificate` defect: a self-signed certificate made once at build time, for the right names,
        // instead of the one the run's authority signed.
        let (cert, key) = if config.has("own-certificate") {
            (
                include_str!("fixtures/own-cert.pem"),
                include_str!("fixtures/own-key.pem"),
            )
        } else {
            (
                cert,
                config
                    .env
                    .get("TLS_KEY")
                    .map(String::as_str)
                    .ok_or("TLS_KEY is missing")?,
            )
        };
        let certs = CertificateDer::pem_slice_iter(cert.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("TLS_CERT is not a PEM certificate: {e}"))?;
        let key =
            PrivateKeyDer::from_pem_slice(key.as_bytes()).map_err(|e| format!("TLS_KEY is not a PEM key: {e}"))?;
        let http_port = config
            .env
            .get("HTTP_PORT")
            .and_then(|p| p.parse().ok())
            .ok_or("HTTP_PORT is missing or not a port")?;
        let versions: &[&'static rustls::SupportedProtocolVersion] = if config.has("tls12-refused") {
            &[&rustls::version::TLS13]
        } else if config.has("tls13-refused") {
            &[&rustls::version::TLS12]
        } else {
            &[&rustls::version::TLS13, &rustls::version::TLS12]
        };
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let server = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .map_err(|e| e.to_string())?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| format!("the certificate and key do not make a TLS configuration: {e}"))?;
        let hsts = if config.has("hsts-missing") {
            None
        } else if config.has("hsts-short") {
            Some("max-age=300")
        } else {
            Some("max-age=63072000; includeSubDomains")
        };
        Ok(Self {
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(server)),
            http_port,
            hsts,
            hsts_success_only: config.has("hsts-success-only"),
            redirect: Redirect {
                get_status: if config.has("redirect-302") {
                    StatusCode::FOUND
                } else {
                    StatusCode::MOVED_PERMANENTLY
                },
                other_status: if config.has("redirect-301-always") {
                    StatusCode::MOVED_PERMANENTLY
                } else {
                    StatusCode::PERMANENT_REDIRECT
                },
                keeps_query: !config.has("redirect-drops-query"),
                hsts: config.has("hsts-on-http"),
                get_post_only: config.has("redirect-get-post-only"),
                plain_port: config.has("redirect-plain-port"),
            },
            legacy_accepted: config.has("legacy-tls-accepted"),
            http_served: config.has("http-served"),
        })
    }

    /// The app over HTTPS: every answer carries HSTS (unless a defect drops it).
    pub(crate) fn secure(&self, app: Router) -> Router {
        let success_only = self.hsts_success_only;
        match self.hsts {
            Some(value) => app.layer(axum::middleware::map_response(
                move |mut response: Response| async move {
                    if !success_only || response.status().is_success() {
                        response
                            .headers_mut()
                            .insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static(value));
                    }
                    response
                },
            )),
            None => app,
        }
    }

    /// The plain-HTTP app: every request redirected to HTTPS on `https_port`.
    pub(crate) fn redirects(&self, https_port: u16) -> Router {
        Router::new().fallback(redirect).with_state((self.redirect, https_port))
    }

    /// The HTTPS listener over `tcp`.
    pub(crate) fn listener(&self, tcp: TcpListener) -> Listener {
        Listener {
            tcp,
            acceptor: self.acceptor.clone(),
            legacy_accepted: self.legacy_accepted,
        }
    }
}

async fn redirect(
    State((redirect, https_port)): State<(Redirect, u16)>,
    method: Method,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(|h| h.rsplit_once(':').map_or(h, |(name, _)| name))
        .filter(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_alphanumeric() || ".-[]".contains(c)))
        .unwrap_or("localhost");
    let target = match (redirect.keeps_query, uri.path_and_query()) {
        (true, Some(pq)) => pq.as_str().to_string(),
        _ => uri.path().to_string(),
    };
    if redirect.get_post_only && !matches!(method, Method::GET | Method::POST) {
        return (StatusCode::METHOD_NOT_ALLOWED, [(header::ALLOW, "GET, POST")]).into_response();
    }
    let status = if matches!(method, Method::GET | Method::HEAD) {
        redirect.get_status
    } else {
        redirect.other_status
    };
    let mut response = status.into_response();
    let port = match redirect.plain_port {
        true => headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.rsplit_once(':'))
            .and_then(|(_, port)| port.parse().ok())
            .unwrap_or(https_port),
        false => https_port,
    };
    if let Ok(location) = HeaderValue::from_str(&format!("https://{host}:{port}{target}")) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    if redirect.hsts {
        response.headers_mut().insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=63072000"),
        );
    }
    response
}

/// Accepts TCP connections and completes their TLS handshakes (a failed or slow one is dropped).
pub(crate) struct Listener {
    tcp: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    legacy_accepted: bool,
}

impl axum::serve::Listener for Listener {
    type Io = tokio_rustls::server::TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (stream, addr) = match self.tcp.accept().await {
                Ok(accepted) => accepted,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            };
            let stream = match self.legacy_accepted {
                true => match answered_legacy(stream).await {
                    Some(stream) => stream,
                    None => continue,
                },
                false => stream,
            };
            if let Ok(Ok(tls)) = tokio::time::timeout(Duration::from_secs(5), self.acceptor.accept(stream)).await {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

/// The `legacy-tls-accepted` defect: a ClientHello of TLS 1.0 or 1.1 gets a ServerHello of that version (rustls
/// speaks neither, so the answer is only the start of a handshake that a server allowing them would send). The
/// connection comes back when it is not such a ClientHello.
async fn answered_legacy(mut stream: TcpStream) -> Option<TcpStream> {
    let mut head = [0u8; 11];
    let peeked = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            match stream.peek(&mut head).await {
                Ok(n) if n >= head.len() => return true,
                Ok(0) | Err(_) => return false,
                Ok(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    })
    .await
    .unwrap_or(false);
    let legacy = peeked && head[0] == 0x16 && head[5] == 1 && head[9] == 3 && matches!(head[10], 1 | 2);
    if !legacy {
        return Some(stream);
    }
    let (major, minor) = (head[9], head[10]);
    let mut hello = vec![2, 0, 0, 38, major, minor];
    hello.extend((0..32u8).map(|i| i.wrapping_mul(13)));
    hello.extend_from_slice(&[0, 0xc0, 0x13, 0]);
    let mut record = vec![0x16, major, minor, 0, hello.len() as u8];
    record.extend_from_slice(&hello);
    let mut sink = [0u8; 512];
    let _ = stream.read(&mut sink).await;
    let _ = stream.write_all(&record).await;
    let _ = stream.shutdown().await;
    None
}
