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
                .map_err(|e| format!("GET {shown}: {}", crate::engine::describe_error(&e)))?;
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

/// Polls until ready, `deadline`, or `gave_up()` returning a reason (the process or container exited, ...).
pub async fn wait_until_ready<F: std::future::Future<Output = Option<String>>>(
    ready: &Ready,
    base: &Url,
    client: &reqwest::Client,
    deadline: Instant,
    mut gave_up: impl FnMut() -> F,
) -> Result<(), String> {
    let mut delay = Duration::from_millis(20);
    loop {
        let last_error = match check_once(ready, base, client).await {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        if let Some(reason) = gave_up().await {
            return Err(reason);
        }
        if Instant::now() + delay > deadline {
            return Err(format!("last attempt: {last_error}"));
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(500));
    }
}
