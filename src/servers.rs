//! Servers proctor hosts for a run: the upstreams a service calls and the webhook receivers it delivers to.
//!
//! Each server of a challenge listens on its own port, on 127.0.0.1 for a local process or the reference and on
//! the run network's gateway for a container (reachable from the sandbox without egress). It answers from
//! scripted routes (a probe's `serve` steps add routes in front of the spec's, until the probe ends), then from
//! an optional JSON document store, else 404, and records every call for `calls` steps. Everything is bounded:
//! bodies read, calls kept, connections at once, delays; every server stops with its challenge.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use indexmap::IndexMap;
use serde_json::{Value, json};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::spec::model::{Fault, ReplySpec, RouteSpec, ServerSpec};
use crate::spec::validate::MAX_SERVER_DELAY;

/// The largest request body a server reads (a larger one is answered 413).
pub const MAX_REQUEST_BODY: usize = 1 << 20;
/// The most calls a server keeps per challenge; later calls are answered 503 and the next `calls` step says so.
pub const MAX_CALLS: usize = 10_000;
/// The most connections a server serves at once; more are closed at once.
pub const MAX_CONNECTIONS: usize = 256;
/// The part of each call's body kept for checks and reports.
const KEPT_BODY: usize = 64 << 10;

/// The servers of one challenge.
#[derive(Debug, Default)]
pub struct Servers {
    servers: IndexMap<String, Server>,
}

/// One running server.
#[derive(Debug)]
pub struct Server {
    name: String,
    url: String,
    state: Arc<Mutex<State>>,
    cancel: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// One call a server received.
#[derive(Debug, Clone)]
pub struct Call {
    /// When it arrived (its headers and body read).
    pub at: Instant,
    /// The method.
    pub method: String,
    /// The path, percent-encoded as sent.
    pub path: String,
    /// The query string, without `?`.
    pub query: String,
    /// Its header field lines in order and its body (up to 64 KiB), in the shape response checks read (the
    /// status is 0): `calls` steps evaluate header, JSON and body expectations on it as on a response.
    pub request: crate::expect::Response,
    /// The route that answered, by name.
    pub route: Option<String>,
    /// How it was answered: a status code, `reset` or `hang`.
    pub answer: String,
}

#[derive(Debug)]
struct State {
    name: String,
    /// The spec's routes.
    own: Vec<Route>,
    /// Routes `serve` steps of the current probe added, newest first.
    added: Vec<Route>,
    store: Option<Store>,
    calls: Vec<Call>,
    /// Calls refused because [`MAX_CALLS`] were kept.
    overflow: usize,
    /// Where the current probe began.
    probe_start: usize,
    /// Where each filter's last `calls` step stopped reading (`None`: the last step without filters).
    marks: std::collections::HashMap<Option<String>, usize>,
    /// Where the last `calls` step of any filter stopped reading.
    last: Option<usize>,
}

#[derive(Debug)]
struct Store {
    documents: BTreeMap<String, Value>,
    delay: Duration,
}

#[derive(Debug, Clone)]
struct Route {
    name: Option<String>,
    method: Option<String>,
    segments: Vec<Segment>,
    body_contains: Option<String>,
    replies: Vec<Reply>,
    /// How many requests it answered (which reply is next).
    served: usize,
}

#[derive(Debug, Clone)]
enum Segment {
    Fixed(String),
    Any,
}

#[derive(Debug, Clone)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Bytes,
    delay: Duration,
    fault: Option<Fault>,
}

/// What to do with one request, decided under the lock and carried out after it.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Bytes,
    delay: Duration,
    fault: Option<Fault>,
}

impl Answer {
    fn json(status: u16, body: &Value, delay: Duration) -> Self {
        Self {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: Bytes::from(body.to_string()),
            delay,
            fault: None,
        }
    }

    fn problem(status: u16, detail: String) -> Self {
        let mut answer = Self::json(
            status,
            &json!({ "title": crate::expect::status_text(status), "status": status, "detail": detail }),
            Duration::ZERO,
        );
        answer.headers = vec![("content-type".into(), "application/problem+json".into())];
        answer
    }

    fn described(&self) -> String {
        match self.fault {
            Some(Fault::Reset) => "reset".into(),
            Some(Fault::Hang) => "hang".into(),
            None => self.status.to_string(),
        }
    }
}

/// Why the servers could not start.
#[derive(Debug, thiserror::Error)]
#[error("server `{name}` could not listen on {host}")]
pub struct StartError {
    name: String,
    host: SocketAddr,
    #[source]
    source: std::io::Error,
}

impl Servers {
    /// Starts every server of a challenge on `host`, each on the port `ports` gives it or a free one.
    pub async fn start(
        specs: &IndexMap<String, ServerSpec>,
        host: IpAddr,
        ports: &std::collections::BTreeMap<String, u16>,
    ) -> Result<Self, StartError> {
        let mut servers = IndexMap::new();
        for (name, spec) in specs {
            let port = ports.get(name).copied().unwrap_or(0);
            let address = SocketAddr::new(host, port);
            let server = Server::start(name, spec, address).await.map_err(|source| StartError {
                name: name.clone(),
                host: address,
                source,
            })?;
            servers.insert(name.clone(), server);
        }
        Ok(Self { servers })
    }

    /// Each server's name and base URL (no final slash).
    pub fn urls(&self) -> impl Iterator<Item = (&str, &str)> {
        self.servers.values().map(|s| (s.name.as_str(), s.url.as_str()))
    }

    /// A server by name.
    pub fn get(&self, name: &str) -> Option<&Server> {
        self.servers.get(name)
    }

    /// Every server back to its spec's routes (sequences from their start), with the calls seen so far behind
    /// the mark: a probe sees only its own.
    pub fn begin_probe(&self) {
        for server in self.servers.values() {
            let mut state = server.lock();
            state.added.clear();
            for route in &mut state.own {
                route.served = 0;
            }
            state.probe_start = state.calls.len();
            state.marks.clear();
            state.last = None;
        }
    }

    /// Stops every server: listeners closed, connections (a hanging answer included) dropped.
    pub async fn stop(self) {
        for (_, server) in self.servers {
            server.stop().await;
        }
    }
}

/// `text` with each `{{server.NAME}}` replaced by `url(NAME)` (the service's env before it starts).
pub fn fill_urls(text: &str, url: impl Fn(&str) -> Option<String>) -> String {
    crate::spec::template::render(text, |name| name.strip_prefix("server.").and_then(&url))
        .unwrap_or_else(|_| text.to_string())
}

impl Server {
    async fn start(name: &str, spec: &ServerSpec, address: SocketAddr) -> std::io::Result<Self> {
        let runtime = runtime();
        let listener = std::net::TcpListener::bind(address)?;
        listener.set_nonblocking(true)?;
        let listener = {
            // Registered with the runtime whose threads will accept on it.
            let _entered = runtime.enter();
            tokio::net::TcpListener::from_std(listener)?
        };
        let address = listener.local_addr()?;
        let url = match address.ip() {
            IpAddr::V6(ip) => format!("http://[{ip}]:{}", address.port()),
            IpAddr::V4(ip) => format!("http://{ip}:{}", address.port()),
        };
        let own = spec
            .routes
            .iter()
            .map(|route| Route::new(route, &mut |text| text.to_string()))
            .collect();
        let store = spec.store.as_ref().map(|store| Store {
            documents: store.data.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            delay: store.delay.map_or(Duration::ZERO, |d| d.0),
        });
        let state = Arc::new(Mutex::new(State {
            name: name.to_string(),
            own,
            added: Vec::new(),
            store,
            calls: Vec::new(),
            overflow: 0,
            probe_start: 0,
            marks: Default::default(),
            last: None,
        }));
        let cancel = CancellationToken::new();
        let task = runtime.spawn(accept(listener, Arc::clone(&state), cancel.clone()));
        Ok(Self {
            name: name.to_string(),
            url,
            state,
            cancel,
            task: Some(task),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Its base URL, without a final slash.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Adds routes in front of the others until the probe ends; `render` fills their placeholders.
    pub fn add_routes(&self, routes: &[RouteSpec], render: &mut dyn FnMut(&str) -> String) {
        let mut routes: Vec<Route> = routes.iter().map(|r| Route::new(r, render)).collect();
        let mut state = self.lock();
        routes.append(&mut state.added);
        state.added = routes;
    }

    /// Writes a document into the store (validation made sure the server has one; without, nothing happens).
    pub fn put(&self, path: &str, value: Value) {
        if let Some(store) = self.lock().store.as_mut() {
            store.documents.insert(path.to_string(), value);
        }
    }

    /// The calls a `calls` step reads, and marks them read: a step without filters (`None`) reads what arrived
    /// since the previous step of the probe; a step with filters (a description of them) reads what arrived
    /// since the previous step with the same filters or without any, so that steps checking different routes
    /// do not hide each other's calls. The second value is how many calls were refused because too many had
    /// been kept.
    pub fn take(&self, filter: Option<&str>) -> (Vec<Call>, usize) {
        let mut state = self.lock();
        let mark = state.mark(filter);
        let calls = state.calls[mark..].to_vec();
        let end = state.calls.len();
        state.marks.insert(filter.map(str::to_string), end);
        state.last = Some(end);
        (calls, state.overflow)
    }

    /// The calls [`Self::take`] would read, without marking them read.
    pub fn peek(&self, filter: Option<&str>) -> Vec<Call> {
        let state = self.lock();
        state.calls[state.mark(filter)..].to_vec()
    }

    async fn stop(mut self) {
        self.cancel.cancel();
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.cancel.cancel();
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// The runtime every server answers on: threads of their own, so that no probe's work on proctor's other threads
/// (a body of 200,000 items rendered, a large answer checked) delays an answer a service waits for with a
/// time-out of its own (CI twice saw the correct reference fail resilient-upstream's breaker probe in Docker under
/// load, the likely cause). When its threads cannot be made, the servers share the caller's runtime.
fn runtime() -> tokio::runtime::Handle {
    static RUNTIME: std::sync::OnceLock<Option<tokio::runtime::Runtime>> = std::sync::OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("proctor-servers")
                .enable_all()
                .build()
                .ok()
        })
        .as_ref()
        .map_or_else(tokio::runtime::Handle::current, |r| r.handle().clone())
}

async fn accept(listener: tokio::net::TcpListener, state: Arc<Mutex<State>>, cancel: CancellationToken) {
    // Dropping the set (when this task ends or is aborted) aborts every connection.
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            () = cancel.cancelled() => return,
            accepted = listener.accept() => accepted,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let Ok((stream, _)) = accepted else {
            // Out of file descriptors, say: try again shortly rather than spin.
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        if connections.len() >= MAX_CONNECTIONS {
            drop(stream);
            continue;
        }
        let (state, cancel) = (Arc::clone(&state), cancel.clone());
        connections.spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let (state, cancel) = (Arc::clone(&state), cancel.clone());
                async move { handle(request, &state, &cancel).await }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service);
            let _ = connection.await;
        });
    }
}

/// A fault: the connection is closed without an answer.
#[derive(Debug)]
struct Closed;

impl std::fmt::Display for Closed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("closed without an answer")
    }
}

impl std::error::Error for Closed {}

async fn handle(
    request: Request<Incoming>,
    state: &Mutex<State>,
    cancel: &CancellationToken,
) -> Result<Response<Full<Bytes>>, Closed> {
    let (parts, body) = request.into_parts();
    let (body, too_big) = match Limited::new(body, MAX_REQUEST_BODY).collect().await {
        Ok(collected) => (collected.to_bytes(), false),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => (Bytes::new(), true),
        // The client went away mid-body.
        Err(_) => return Err(Closed),
    };
    let call = Call {
        at: Instant::now(),
        method: parts.method.as_str().to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().unwrap_or("").to_string(),
        request: crate::expect::Response {
            headers: parts
                .headers
                .iter()
                .map(|(n, v)| {
                    (
                        n.as_str().to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body: body[..body.len().min(KEPT_BODY)].to_vec(),
            body_limit: KEPT_BODY,
            ..Default::default()
        },
        route: None,
        answer: String::new(),
    };
    let answer = {
        let mut state = state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        state.answer(call, &body, too_big)
    };
    if !answer.delay.is_zero() {
        tokio::select! {
            () = cancel.cancelled() => return Err(Closed),
            () = tokio::time::sleep(answer.delay.min(MAX_SERVER_DELAY)) => {}
        }
    }
    match answer.fault {
        Some(Fault::Reset) => return Err(Closed),
        Some(Fault::Hang) => {
            tokio::select! {
                () = cancel.cancelled() => {}
                () = tokio::time::sleep(MAX_SERVER_DELAY) => {}
            }
            return Err(Closed);
        }
        None => {}
    }
    let mut response = Response::builder().status(answer.status);
    for (name, value) in &answer.headers {
        response = response.header(name.as_str(), value.as_str());
    }
    // Validation made sure of valid statuses and headers; should one slip through, the connection closes.
    response.body(Full::new(answer.body)).map_err(|_| Closed)
}

impl State {
    fn mark(&self, filter: Option<&str>) -> usize {
        let unfiltered = self.marks.get(&None).copied().unwrap_or(self.probe_start);
        match filter {
            None => self.last.unwrap_or(self.probe_start),
            Some(filter) => unfiltered.max(self.marks.get(&Some(filter.to_string())).copied().unwrap_or(0)),
        }
    }

    /// Records the call and decides its answer.
    fn answer(&mut self, mut call: Call, body: &[u8], too_big: bool) -> Answer {
        if self.calls.len() >= MAX_CALLS {
            self.overflow += 1;
            return Answer::problem(
                503,
                format!("proctor's server `{}` kept {MAX_CALLS} calls already", self.name),
            );
        }
        let text = String::from_utf8_lossy(body);
        let (route, answer) = if too_big {
            (
                None,
                Answer::problem(413, format!("bodies are at most {MAX_REQUEST_BODY} bytes here")),
            )
        } else if let Some(route) = self
            .added
            .iter_mut()
            .chain(self.own.iter_mut())
            .find(|r| r.matches(&call.method, &call.path, &text))
        {
            let reply = route.replies[route.served.min(route.replies.len() - 1)].clone();
            route.served += 1;
            (
                route.name.clone(),
                Answer {
                    status: reply.status,
                    headers: reply.headers,
                    body: reply.body,
                    delay: reply.delay,
                    fault: reply.fault,
                },
            )
        } else if let Some(store) = &mut self.store {
            (None, store.answer(&call.method, &call.path, &call.query, body))
        } else {
            (
                None,
                Answer::problem(
                    404,
                    format!(
                        "no route of proctor's server `{}` answers {} {}",
                        self.name, call.method, call.path
                    ),
                ),
            )
        };
        call.route = route;
        call.answer = answer.described();
        self.calls.push(call);
        answer
    }
}

impl Store {
    fn answer(&mut self, method: &str, path: &str, query: &str, body: &[u8]) -> Answer {
        let segments: Vec<&str> = path.trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
        let delay = self.delay;
        let mut answer = match (method, segments.len()) {
            ("GET", 1) => {
                let prefix = format!("/{}/", segments[0]);
                let ids: Vec<String> = url::form_urlencoded::parse(query.as_bytes())
                    .filter(|(name, _)| name == "ids")
                    .flat_map(|(_, value)| value.split(',').map(|id| id.trim().to_string()).collect::<Vec<_>>())
                    .filter(|id| !id.is_empty())
                    .collect();
                let items: Vec<Value> = if ids.is_empty() && !query.contains("ids=") {
                    self.documents
                        .iter()
                        .filter(|(key, _)| key.strip_prefix(&prefix).is_some_and(|id| !id.contains('/')))
                        .map(|(_, doc)| doc.clone())
                        .collect()
                } else {
                    let mut seen = std::collections::HashSet::new();
                    ids.iter()
                        .filter(|id| seen.insert(id.as_str()))
                        .filter_map(|id| self.documents.get(&format!("{prefix}{id}")).cloned())
                        .collect()
                };
                Answer::json(200, &json!({ "items": items }), delay)
            }
            ("GET", _) => match self.documents.get(path) {
                Some(doc) => Answer::json(200, doc, delay),
                None => Answer::problem(404, format!("no document at {path}")),
            },
            ("PUT", n) if n >= 2 => match serde_json::from_slice::<Value>(body) {
                Ok(doc) => {
                    self.documents.insert(path.to_string(), doc.clone());
                    Answer::json(200, &doc, delay)
                }
                Err(e) => Answer::problem(400, format!("the body is not JSON: {e}")),
            },
            ("DELETE", n) if n >= 2 => match self.documents.remove(path) {
                Some(_) => Answer {
                    status: 204,
                    headers: Vec::new(),
                    body: Bytes::new(),
                    delay,
                    fault: None,
                },
                None => Answer::problem(404, format!("no document at {path}")),
            },
            _ => {
                let mut answer = Answer::problem(405, format!("the store answers GET, PUT and DELETE, not {method}"));
                answer.headers.push(("allow".into(), "GET, PUT, DELETE".into()));
                answer
            }
        };
        answer.delay = delay;
        answer
    }
}

impl Route {
    fn new(spec: &RouteSpec, render: &mut dyn FnMut(&str) -> String) -> Self {
        let path = render(&spec.path);
        let replies = spec
            .respond
            .replies()
            .into_iter()
            .map(|reply| Reply::new(reply, render))
            .collect();
        Self {
            name: spec.name.clone(),
            method: spec.method.clone(),
            segments: segments(&path),
            body_contains: spec.body_contains.as_deref().map(&mut *render),
            replies,
            served: 0,
        }
    }

    fn matches(&self, method: &str, path: &str, body: &str) -> bool {
        self.method.as_deref().is_none_or(|m| m == method)
            && path_matches(&self.segments, path)
            && self.body_contains.as_deref().is_none_or(|text| body.contains(text))
    }
}

fn segments(pattern: &str) -> Vec<Segment> {
    pattern
        .trim_start_matches('/')
        .split('/')
        .map(|segment| match segment.starts_with('{') && segment.ends_with('}') {
            true => Segment::Any,
            false => Segment::Fixed(segment.to_string()),
        })
        .collect()
}

fn path_matches(pattern: &[Segment], path: &str) -> bool {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    parts.len() == pattern.len()
        && pattern.iter().zip(&parts).all(|(segment, part)| match segment {
            Segment::Any => !part.is_empty(),
            Segment::Fixed(fixed) => fixed == part || percent_decoded(part) == *fixed,
        })
}

fn percent_decoded(text: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", text.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// Whether a call's path matches a `calls` step's path pattern (`{name}` for a segment).
pub fn call_path_matches(pattern: &str, path: &str) -> bool {
    path_matches(&segments(pattern), path)
}

impl Reply {
    fn new(spec: &ReplySpec, render: &mut dyn FnMut(&str) -> String) -> Self {
        let mut headers: Vec<(String, String)> = spec
            .headers
            .iter()
            .map(|(name, value)| (name.to_ascii_lowercase(), render(value)))
            .collect();
        let body = match (&spec.json, &spec.body) {
            (Some(json), _) => {
                if !headers.iter().any(|(n, _)| n == "content-type") {
                    headers.push(("content-type".into(), "application/json".into()));
                }
                Bytes::from(render_json(json, render).to_string())
            }
            (None, Some(body)) => Bytes::from(render(body)),
            (None, None) => Bytes::new(),
        };
        Self {
            status: spec.status.unwrap_or(200),
            headers,
            body,
            delay: spec.delay.map_or(Duration::ZERO, |d| d.0),
            fault: spec.fault,
        }
    }
}

/// Fills the placeholders in every string of a JSON value.
pub fn render_json(value: &Value, render: &mut dyn FnMut(&str) -> String) -> Value {
    match value {
        Value::String(s) => Value::String(render(s)),
        Value::Array(items) => Value::Array(items.iter().map(|v| render_json(v, render)).collect()),
        Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (render(k), render_json(v, render))).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> IndexMap<String, ServerSpec> {
        serde_yaml::from_str(yaml).expect("servers parse")
    }

    async fn get(client: &reqwest::Client, url: String) -> (u16, String) {
        match client.get(url).send().await {
            Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
            Err(e) => (0, e.to_string()),
        }
    }

    #[tokio::test]
    async fn routes_answer_in_turn_the_store_behind_them_and_calls_are_recorded_per_probe() {
        let servers = Servers::start(
            &spec(
                "up:
                   routes:
                     - { name: quote, method: GET, path: '/quotes/{symbol}', respond: [ { status: 500, times: 2 }, { json: { price: 7 } } ] }
                   store: { data: { /customers/a: { id: a }, /customers/b: { id: b } } }",
            ),
            IpAddr::from([127, 0, 0, 1]),
            &Default::default(),
        )
        .await
        .expect("servers start");
        let url = servers.get("up").expect("the server").url().to_string();
        let client = reqwest::Client::new();
        assert_eq!(get(&client, format!("{url}/quotes/X")).await.0, 500);
        assert_eq!(get(&client, format!("{url}/quotes/X")).await.0, 500);
        assert_eq!(
            get(&client, format!("{url}/quotes/X")).await,
            (200, r#"{"price":7}"#.to_string())
        );
        assert_eq!(
            get(&client, format!("{url}/quotes/X")).await.0,
            200,
            "the last answer repeats"
        );
        let (_, body) = get(&client, format!("{url}/customers?ids=b,zz,a,b")).await;
        assert_eq!(
            body, r#"{"items":[{"id":"b"},{"id":"a"}]}"#,
            "requested order, each once, missing left out"
        );
        assert_eq!(get(&client, format!("{url}/customers/zz")).await.0, 404);
        let server = servers.get("up").expect("the server");
        let (calls, overflow) = server.take(None);
        assert_eq!((calls.len(), overflow), (6, 0));
        assert_eq!(calls[0].route.as_deref(), Some("quote"));
        assert_eq!(calls[4].query, "ids=b,zz,a,b");
        assert_eq!(calls[5].answer, "404");

        servers.begin_probe();
        assert_eq!(
            get(&client, format!("{url}/quotes/X")).await.0,
            500,
            "a new probe starts the sequence over"
        );
        server.add_routes(
            &serde_yaml::from_str::<Vec<RouteSpec>>("[ { path: '/quotes/{{s}}', respond: { fault: reset } } ]")
                .expect("routes parse"),
            &mut |text| text.replace("{{s}}", "Y"),
        );
        assert_eq!(
            get(&client, format!("{url}/quotes/Y")).await.0,
            0,
            "a reset has no answer"
        );
        assert_eq!(
            get(&client, format!("{url}/quotes/X")).await.0,
            500,
            "other paths reach the spec's route"
        );
        assert_eq!(
            server.peek(None).iter().map(|c| c.answer.as_str()).collect::<Vec<_>>(),
            ["500", "reset", "500"]
        );
        assert_eq!(
            server.take(Some("a route")).0.len(),
            3,
            "a filter reads from the probe's start"
        );
        assert_eq!(
            server.take(Some("another route")).0.len(),
            3,
            "and does not hide calls from another filter"
        );
        assert_eq!(get(&client, format!("{url}/quotes/X")).await.0, 200);
        assert_eq!(
            server.take(None).0.len(),
            1,
            "a step without filters reads since the previous step"
        );
        assert_eq!(
            server.take(Some("a route")).0.len(),
            0,
            "and marks the calls read for every filter"
        );
        servers.stop().await;
        assert_eq!(
            get(&client, format!("{url}/quotes/X")).await.0,
            0,
            "nothing listens after the stop"
        );
    }

    #[tokio::test]
    async fn oversized_bodies_and_calls_past_the_cap_are_refused_and_said() {
        let servers = Servers::start(
            &spec("up: { routes: [ { path: /in, respond: { status: 204 } } ] }"),
            IpAddr::from([127, 0, 0, 1]),
            &Default::default(),
        )
        .await
        .expect("servers start");
        let server = servers.get("up").expect("server");
        let big = vec![b'x'; MAX_REQUEST_BODY + 1];
        let status = reqwest::Client::new()
            .post(format!("{}/in", server.url()))
            .body(big)
            .send()
            .await
            .map(|r| r.status().as_u16());
        // The client may see the 413, or the connection closed while it was still sending: either way the
        // server read no more than its cap and recorded the call (below).
        assert!(matches!(status, Ok(413) | Err(_)), "{status:?}");
        let call = Call {
            at: Instant::now(),
            method: "GET".into(),
            path: "/in".into(),
            query: String::new(),
            request: Default::default(),
            route: None,
            answer: String::new(),
        };
        let answers: Vec<u16> = {
            let mut state = server.lock();
            (0..MAX_CALLS)
                .map(|_| state.answer(call.clone(), b"", false).status)
                .collect()
        };
        assert_eq!(answers.last(), Some(&503), "the call past the cap is refused");
        let (calls, overflow) = server.take(None);
        assert_eq!((calls.len(), overflow), (MAX_CALLS, 1));
        assert_eq!(calls[0].answer, "413");
        servers.stop().await;
    }

    #[test]
    fn a_server_answers_while_every_thread_of_the_callers_runtime_is_busy() {
        use std::io::{Read, Write};
        let caller = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let servers = caller
            .block_on(Servers::start(
                &spec("up: { routes: [ { path: /q, respond: { status: 201 } } ] }"),
                IpAddr::from([127, 0, 0, 1]),
                &Default::default(),
            ))
            .expect("servers start");
        // The caller's only thread works for 3 s without yielding, as a probe rendering a huge body does.
        let (busy, started) = std::sync::mpsc::channel();
        caller.spawn(async move {
            let _ = busy.send(());
            std::thread::sleep(Duration::from_secs(3));
        });
        started.recv().expect("the busy task runs");
        let address = servers
            .get("up")
            .expect("server")
            .url()
            .trim_start_matches("http://")
            .to_string();
        let asked = std::time::Instant::now();
        let mut stream = std::net::TcpStream::connect(&address).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        stream
            .write_all(b"GET /q HTTP/1.1\r\nHost: up\r\nConnection: close\r\n\r\n")
            .expect("write");
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        assert!(answer.starts_with("HTTP/1.1 201"), "{answer:?}");
        assert!(
            asked.elapsed() < Duration::from_secs(1),
            "answered after {:?}: the server waited for the caller's threads",
            asked.elapsed()
        );
        caller.block_on(servers.stop());
    }

    #[tokio::test]
    async fn a_hanging_answer_ends_when_the_server_stops() {
        let servers = Servers::start(
            &spec("up: { routes: [ { path: /slow, respond: { fault: hang } } ] }"),
            IpAddr::from([127, 0, 0, 1]),
            &Default::default(),
        )
        .await
        .expect("servers start");
        let url = format!("{}/slow", servers.get("up").expect("server").url());
        let waiting = tokio::spawn(async move { reqwest::get(url).await.map(|r| r.status().as_u16()) });
        tokio::time::sleep(Duration::from_millis(200)).await;
        let started = std::time::Instant::now();
        servers.stop().await;
        let ended = tokio::time::timeout(Duration::from_secs(5), waiting).await;
        assert!(ended.is_ok(), "the client is released when the server stops");
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
