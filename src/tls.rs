//! TLS for challenges with `service.tls`: a certificate authority made for the run and a server certificate it
//! signed (rcgen), handed to the service in its env; probes trust that authority and nothing else. And the
//! handshake step's raw checks: which protocol versions the service accepts.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The name the service is reached by over TLS (resolved by proctor to the service's address, never by DNS); the
/// certificate names it, `localhost` and 127.0.0.1.
pub const SERVICE_NAME: &str = "service.proctor.test";

/// A run's certificate authority and the service's certificate and key.
#[derive(Debug, Clone)]
pub struct RunTls {
    /// The authority's certificate (DER), the only root probes trust.
    pub ca_der: Vec<u8>,
    /// The service's certificate (PEM), for `TLS_CERT`.
    pub cert_pem: String,
    /// The service's private key (PKCS#8 PEM), for `TLS_KEY`.
    pub key_pem: String,
}

impl RunTls {
    /// A fresh authority and a server certificate for [`SERVICE_NAME`], `localhost` and 127.0.0.1, valid from a
    /// day ago for a week (clock skew between proctor and a container does not matter).
    pub fn generate() -> Result<Self, String> {
        use rcgen::{
            BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
            KeyUsagePurpose, SanType,
        };
        let fail = |e: rcgen::Error| format!("failed to make the run's TLS certificates: {e}");
        let now = time::OffsetDateTime::now_utc();
        let validity = |params: &mut CertificateParams| {
            params.not_before = now - time::Duration::days(1);
            params.not_after = now + time::Duration::days(7);
        };
        let ca_key = KeyPair::generate().map_err(fail)?;
        let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(fail)?;
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name.push(DnType::CommonName, "proctor run CA");
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        validity(&mut ca);
        let ca_cert = ca.self_signed(&ca_key).map_err(fail)?;
        let issuer = Issuer::new(ca, ca_key);
        let key = KeyPair::generate().map_err(fail)?;
        let mut leaf = CertificateParams::new(vec![SERVICE_NAME.to_string(), "localhost".to_string()]).map_err(fail)?;
        leaf.subject_alt_names
            .push(SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()));
        leaf.distinguished_name.push(DnType::CommonName, SERVICE_NAME);
        leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        validity(&mut leaf);
        let cert = leaf.signed_by(&key, &issuer).map_err(fail)?;
        Ok(Self {
            ca_der: ca_cert.der().to_vec(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// A rustls client configuration that trusts only this run's authority, for these protocol versions.
    fn client_config(
        &self,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> Result<rustls::ClientConfig, String> {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(rustls::pki_types::CertificateDer::from(self.ca_der.clone()))
            .map_err(|e| format!("the run's authority is not usable: {e}"))?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        Ok(rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth())
    }
}

/// A TLS protocol version a handshake step offers.
pub use crate::spec::model::TlsVersion;

/// How a handshake offering one version ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handshake {
    /// The service completed it (1.2, 1.3) or answered with a ServerHello for that version (1.0, 1.1).
    Accepted,
    /// The service refused it: an alert, a closed connection, or a ServerHello for another version.
    Refused(String),
}

/// Offers the service exactly `version` on a fresh connection to `addr` (bound to `interface` when given) and says
/// whether it was accepted. 1.2 and 1.3 are complete handshakes verified against the run's authority; 1.0 and 1.1
/// (which rustls does not speak) send a ClientHello of that version and read the ServerHello's version.
pub async fn handshake(
    addr: SocketAddr,
    interface: Option<&str>,
    version: TlsVersion,
    tls: &RunTls,
    timeout: Duration,
) -> Result<Handshake, String> {
    let attempt = async {
        let stream = crate::http::connect_tcp(addr, interface)
            .await
            .map_err(|e| format!("failed to connect to the service's TLS port: {e}"))?;
        match version {
            TlsVersion::V1_2 | TlsVersion::V1_3 => {
                let versions: &[&'static rustls::SupportedProtocolVersion] = if version == TlsVersion::V1_2 {
                    &[&rustls::version::TLS12]
                } else {
                    &[&rustls::version::TLS13]
                };
                let connector = tokio_rustls::TlsConnector::from(Arc::new(tls.client_config(versions)?));
                let name = rustls::pki_types::ServerName::try_from(SERVICE_NAME).map_err(|e| e.to_string())?;
                Ok(match connector.connect(name, stream).await {
                    Ok(_) => Handshake::Accepted,
                    Err(e) => Handshake::Refused(e.to_string()),
                })
            }
            TlsVersion::V1_0 | TlsVersion::V1_1 => legacy(stream, version).await,
        }
    };
    tokio::time::timeout(timeout, attempt).await.unwrap_or_else(|_| {
        Ok(Handshake::Refused(format!(
            "no answer within {} s",
            timeout.as_secs_f64()
        )))
    })
}

/// The wire version of a legacy protocol: 0x0301 for TLS 1.0, 0x0302 for 1.1.
fn wire(version: TlsVersion) -> [u8; 2] {
    match version {
        TlsVersion::V1_0 => [3, 1],
        TlsVersion::V1_1 => [3, 2],
        TlsVersion::V1_2 => [3, 3],
        TlsVersion::V1_3 => [3, 4],
    }
}

/// A ClientHello offering only `version` (no supported_versions extension, so a TLS 1.3 server cannot read more
/// into it): SNI, the common CBC and ECDHE suites of that era, groups and point formats.
pub fn legacy_client_hello(version: TlsVersion) -> Vec<u8> {
    let suites: &[u16] = &[0xc013, 0xc014, 0xc009, 0xc00a, 0x002f, 0x0035, 0x000a, 0x00ff];
    let mut extensions = Vec::new();
    let name = SERVICE_NAME.as_bytes();
    let mut sni = Vec::new();
    sni.extend_from_slice(&((name.len() + 3) as u16).to_be_bytes());
    sni.push(0);
    sni.extend_from_slice(&(name.len() as u16).to_be_bytes());
    sni.extend_from_slice(name);
    for (kind, data) in [
        (0x0000u16, sni),
        (0x000a, vec![0, 6, 0, 0x17, 0, 0x18, 0, 0x1d]),
        (0x000b, vec![1, 0]),
    ] {
        extensions.extend_from_slice(&kind.to_be_bytes());
        extensions.extend_from_slice(&(data.len() as u16).to_be_bytes());
        extensions.extend_from_slice(&data);
    }
    let mut body = Vec::new();
    body.extend_from_slice(&wire(version));
    body.extend((0..32u8).map(|i| i.wrapping_mul(37).wrapping_add(11)));
    body.push(0);
    body.extend_from_slice(&((suites.len() * 2) as u16).to_be_bytes());
    for suite in suites {
        body.extend_from_slice(&suite.to_be_bytes());
    }
    body.extend_from_slice(&[1, 0]);
    body.extend_from_slice(&(extensions.len() as u16).to_be_bytes());
    body.extend_from_slice(&extensions);
    let mut handshake = vec![1];
    handshake.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    handshake.extend_from_slice(&body);
    let mut record = vec![0x16, 3, 1];
    record.extend_from_slice(&(handshake.len() as u16).to_be_bytes());
    record.extend_from_slice(&handshake);
    record
}

/// Reads what a service answers to a legacy ClientHello: the version of its ServerHello, or what refused it.
pub fn read_server_hello(answer: &[u8], version: TlsVersion) -> Handshake {
    match answer {
        [] => Handshake::Refused("the connection was closed without an answer".to_string()),
        [0x15, _, _, _, _, _, description, ..] => {
            Handshake::Refused(format!("alert {description} ({})", alert_name(*description)))
        }
        [0x16, _, _, _, _, 0x02, _, _, _, major, minor, ..] if [*major, *minor] == wire(version) => Handshake::Accepted,
        [0x16, _, _, _, _, 0x02, _, _, _, major, minor, ..] => {
            Handshake::Refused(format!("a ServerHello for version {major}.{minor}"))
        }
        _ => Handshake::Refused("an answer that is not a TLS ServerHello".to_string()),
    }
}

fn alert_name(description: u8) -> &'static str {
    match description {
        40 => "handshake_failure",
        47 => "illegal_parameter",
        70 => "protocol_version",
        71 => "insufficient_security",
        80 => "internal_error",
        _ => "other",
    }
}

async fn legacy(mut stream: tokio::net::TcpStream, version: TlsVersion) -> Result<Handshake, String> {
    if let Err(e) = stream.write_all(&legacy_client_hello(version)).await {
        return Ok(Handshake::Refused(format!("the ClientHello could not be sent: {e}")));
    }
    let mut answer = Vec::new();
    let mut buffer = [0u8; 64];
    while answer.len() < 11 {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buffer[..n]),
        }
    }
    Ok(read_server_hello(&answer, version))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_legacy_client_hello_offers_exactly_its_version() {
        let hello = legacy_client_hello(TlsVersion::V1_1);
        assert_eq!(&hello[..3], &[0x16, 3, 1]);
        assert_eq!(usize::from(u16::from_be_bytes([hello[3], hello[4]])), hello.len() - 5);
        assert_eq!(hello[5], 1, "a ClientHello");
        assert_eq!(&hello[9..11], &[3, 2], "client_version 1.1");
        assert!(hello.windows(SERVICE_NAME.len()).any(|w| w == SERVICE_NAME.as_bytes()));
    }

    #[test]
    fn server_hellos_alerts_and_silence_are_told_apart() {
        let hello = |major, minor| vec![0x16, 3, 1, 0, 50, 2, 0, 0, 46, major, minor, 0];
        assert_eq!(read_server_hello(&hello(3, 2), TlsVersion::V1_1), Handshake::Accepted);
        assert!(matches!(
            read_server_hello(&hello(3, 3), TlsVersion::V1_1),
            Handshake::Refused(_)
        ));
        assert_eq!(
            read_server_hello(&[0x15, 3, 1, 0, 2, 2, 70], TlsVersion::V1_0),
            Handshake::Refused("alert 70 (protocol_version)".to_string())
        );
        assert!(matches!(
            read_server_hello(&[], TlsVersion::V1_0),
            Handshake::Refused(_)
        ));
    }

    #[test]
    fn the_run_certificate_is_signed_by_the_run_authority_for_the_service_name() {
        let tls = RunTls::generate().expect("generates");
        assert!(tls.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(tls.key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        assert!(tls.client_config(&[&rustls::version::TLS13]).is_ok());
    }
}
