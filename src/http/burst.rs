//! Bursts: many requests from connections opened beforehand and released at the same instant.
//!
//! reqwest opens connections lazily, so "fifteen requests at once" would really be fifteen connection set-ups
//! racing. Here every connection completes its HTTP/1.1 handshake first, then all wait at a barrier and send
//! together, which is what catches racy counters and check-then-insert bugs.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::sync::Barrier;
use tokio::time::Instant;

use crate::expect::Response;
use crate::http::{NoResponse, Prepared, header_pairs};

/// One request's result: a response, or why there was none.
pub type Answer = Result<Response, String>;

async fn connect(host: &str, port: u16, interface: Option<&str>) -> Result<SendRequest<Full<Bytes>>, String> {
    let failed = |e: std::io::Error| format!("could not connect: {e}");
    let address = tokio::net::lookup_host((host, port))
        .await
        .map_err(failed)?
        .next()
        .ok_or_else(|| format!("could not connect: {host} has no address"))?;
    let stream = crate::http::connect_tcp(address, interface).await.map_err(failed)?;
    let _ = stream.set_nodelay(true);
    let (sender, connection) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP handshake failed: {e}"))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

async fn send_one(
    sender: &mut SendRequest<Full<Bytes>>,
    request: &Prepared,
    authority: &str,
    max_body: usize,
) -> Answer {
    sender
        .ready()
        .await
        .map_err(|e| format!("the connection closed: {e}"))?;
    let mut builder = hyper::Request::builder()
        .method(request.method.as_str())
        .uri(request.target());
    builder = builder.header(hyper::header::HOST, authority);
    for (name, value) in &request.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    let body = Full::new(request.body.clone().unwrap_or_default());
    let http_request = builder.body(body).map_err(|e| format!("invalid request: {e}"))?;
    let started = Instant::now();
    let response = sender
        .send_request(http_request)
        .await
        .map_err(|e| format!("no valid response: {e}"))?;
    let (parts, mut incoming) = response.into_parts();
    let mut body = Vec::new();
    let mut truncated = false;
    while let Some(frame) = incoming.frame().await {
        let frame = frame.map_err(|e| format!("the response body broke off: {e}"))?;
        if let Ok(data) = frame.into_data() {
            let room = max_body - body.len();
            if data.len() > room {
                body.extend_from_slice(&data[..room]);
                truncated = true;
                break;
            }
            body.extend_from_slice(&data);
        }
    }
    Ok(Response {
        status: parts.status.as_u16(),
        headers: header_pairs(&parts.headers),
        body,
        truncated,
        body_limit: max_body,
        elapsed: started.elapsed(),
        decoding_error: None,
    })
}

/// Sends `requests` over `concurrency` pre-opened connections, all released together. Answers are in request
/// order. `Err` means the connections could not be opened at all.
pub async fn run(
    requests: Vec<Prepared>,
    concurrency: usize,
    timeout: Duration,
    http: &crate::http::Http,
) -> Result<Vec<Answer>, NoResponse> {
    let max_body = http.max_body;
    let interface = http.interface.clone();
    let Some(first) = requests.first() else {
        return Ok(Vec::new());
    };
    if first.url.scheme() != "http" {
        return Err(NoResponse::proctor(format!(
            "bursts need a plain http:// service, not {}",
            first.url.scheme()
        )));
    }
    let host = first
        .url
        .host_str()
        .unwrap_or("127.0.0.1")
        .trim_matches(['[', ']'])
        .to_string();
    let port = first.url.port_or_known_default().unwrap_or(80);
    let authority = match first.url.port() {
        Some(port) => format!("{}:{port}", first.url.host_str().unwrap_or_default()),
        None => first.url.host_str().unwrap_or_default().to_string(),
    };
    // Every connect is bounded like a request: a service that stops accepting connections cannot hold a burst.
    let bounded_connect = |host: String, interface: Option<String>| async move {
        match tokio::time::timeout(timeout, connect(&host, port, interface.as_deref())).await {
            Ok(result) => result,
            Err(_) => Err(format!(
                "the service did not accept a connection within {} ms (the request timeout)",
                timeout.as_millis()
            )),
        }
    };
    let mut senders = Vec::with_capacity(concurrency);
    let opened =
        futures::future::join_all((0..concurrency).map(|_| bounded_connect(host.clone(), interface.clone()))).await;
    for sender in opened {
        // A connection the service refuses or never accepts is the service's failure, as for a single request.
        senders.push(sender.map_err(NoResponse::service)?);
    }
    let requests = Arc::new(requests);
    let next = Arc::new(AtomicUsize::new(0));
    let barrier = Arc::new(Barrier::new(concurrency));
    let mut tasks = tokio::task::JoinSet::new();
    for mut sender in senders {
        let (requests, next, barrier, authority, host, interface) = (
            Arc::clone(&requests),
            Arc::clone(&next),
            Arc::clone(&barrier),
            authority.clone(),
            host.clone(),
            interface.clone(),
        );
        tasks.spawn(async move {
            let mut answers = Vec::new();
            barrier.wait().await;
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(request) = requests.get(i) else { break };
                let answer =
                    match tokio::time::timeout(timeout, send_one(&mut sender, request, &authority, max_body)).await {
                        Ok(answer) => answer,
                        Err(_) => Err("no complete response before the request timeout".to_string()),
                    };
                if answer.is_err() {
                    // The connection may be unusable now; the next request gets a fresh one.
                    if let Ok(Ok(fresh)) =
                        tokio::time::timeout(timeout, connect(&host, port, interface.as_deref())).await
                    {
                        sender = fresh;
                    }
                }
                answers.push((i, answer));
            }
            answers
        });
    }
    let mut answers: Vec<Option<Answer>> = (0..requests.len()).map(|_| None).collect();
    while let Some(done) = tasks.join_next().await {
        for (i, answer) in done.map_err(|e| NoResponse::proctor(format!("a burst connection task failed: {e}")))? {
            answers[i] = Some(answer);
        }
    }
    Ok(answers
        .into_iter()
        .map(|a| a.unwrap_or_else(|| Err("the request was never sent".to_string())))
        .collect())
}
