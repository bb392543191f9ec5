//! Readiness: poll an HTTP path or a TCP port with backoff until the service answers or time runs out.

use std::time::Duration;

use tokio::time::Instant;
use url::Url;

use crate::spec::model::Ready;

/// Checks once; `Err` carries why the service is not ready yet.
pub async fn check_once(ready: &Ready, base: &Url, client: &reqwest::Client) -> Result<(), String> {
    match &ready.http {
        Some(path) => {
            let url = crate::http::resolve(base, path)?;
            let shown = crate::http::redacted(&url);
            let response = client
                .get(url.clone())
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .map_err(|e| format!("GET {shown}: {}", crate::http::describe_error(&e)))?;
            if response.status().as_u16() < 500 {
                Ok(())
            } else {
                Err(format!("GET {shown} answered {}", response.status()))
            }
        }
        None => {
            let host = base
                .host_str()
                .unwrap_or("127.0.0.1")
                .trim_matches(['[', ']'])
                .to_string();
            let port = base.port_or_known_default().unwrap_or(80);
            tokio::time::timeout(
                Duration::from_secs(2),
                tokio::net::TcpStream::connect((host.as_str(), port)),
            )
            .await
            .map_err(|_| format!("connecting to {host}:{port} timed out"))?
            .map(drop)
            .map_err(|e| format!("connecting to {host}:{port}: {e}"))
        }
    }
}

/// Polls until ready, `deadline`, or the instance exiting (a process or container that stopped).
pub(super) async fn wait_until_ready(
    ready: &Ready,
    base: &Url,
    client: &reqwest::Client,
    deadline: Instant,
    instance: &mut super::Instance,
) -> Result<(), String> {
    let mut delay = Duration::from_millis(20);
    loop {
        let last_error = match check_once(ready, base, client).await {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        if let Some(reason) = instance.exited().await {
            return Err(reason);
        }
        if Instant::now() + delay > deadline {
            return Err(format!("last attempt: {last_error}"));
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(500));
    }
}
