//! `graceful-shutdown`: `GET /work` takes `WORK_MS` milliseconds, so that requests are in flight when SIGTERM
//! arrives; [`crate::serve_until`] drains them before it returns.

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;

use crate::{Shared, json_response};

pub(crate) fn routes() -> Router<Shared> {
    Router::new().route("/work", get(work))
}

async fn work(State(app): State<Shared>) -> Response {
    app.busy.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let response = do_work(&app).await;
    app.busy.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    response
}

async fn do_work(app: &Shared) -> Response {
    let ms: u64 = app
        .config
        .env
        .get("WORK_MS")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let work = tokio::time::sleep(Duration::from_millis(ms.min(60_000)));
    if app.config.has("sigterm-drops-requests") {
        let mut stopping = app.stopping.clone();
        tokio::select! {
            () = work => {}
            _ = stopping.wait_for(|stopping| *stopping) => {
                return crate::problem(StatusCode::SERVICE_UNAVAILABLE, "the service is shutting down");
            }
        }
    } else {
        work.await;
    }
    json_response(StatusCode::OK, &serde_json::json!({ "done": true }), false)
}

/// `proctor-reference healthcheck`: the image's `HEALTHCHECK` — GET /health on `$PORT`, exit 0 when it answers
/// below 500. Plain HTTP/1.1 over TCP: a scratch image has no curl.
pub async fn healthcheck(port: u16) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        stream
            .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await
            .ok()?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).await.ok()?;
        let status: u16 = std::str::from_utf8(&head[9..12]).ok()?.parse().ok()?;
        Some(status < 500)
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(3), attempt).await,
        Ok(Some(true))
    )
}
