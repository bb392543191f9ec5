//! The challenge spec format as Rust types: what a YAML file may say, and the source of the JSON Schema.

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use crate::limits::Limits;
use crate::types::{Dur, Pattern, Percent, StatusSpec, Text};

/// One challenge: an interview question turned into a brief and a set of probes.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChallengeSpec {
    /// The challenge's title, as the catalog lists it.
    pub title: String,
    /// The interview question this challenge turns into practice.
    pub question: Question,
    /// Topics, for filtering the catalog.
    #[serde(default)]
    pub tags: Vec<String>,
    /// The candidate-facing brief (Markdown): endpoints, payloads, env vars, the conventions chosen.
    pub brief: String,
    /// The brief's gradable rules: every sentence a service can be failed on, each with an id that the probes
    /// checking it name. `proctor show` prints them after the brief; a rule no probe checks is a spec error.
    pub rules: Vec<RuleSpec>,
    /// How the service under test is started and reached.
    #[serde(default)]
    pub service: ServiceSpec,
    /// Servers proctor hosts for the run, by name: upstreams the service calls, webhook receivers. The service
    /// finds them through its env (`service.env` may use `{{server.NAME}}`, the server's base URL without a final
    /// slash); `serve` steps change what they answer, `calls` steps check what they received.
    #[serde(default)]
    pub servers: IndexMap<String, ServerSpec>,
    /// The score needed to pass, such as `80%`.
    #[serde(default = "default_pass")]
    pub pass: Percent,
    /// The probes, run in order.
    pub probes: Vec<ProbeSpec>,
}

fn default_pass() -> Percent {
    Percent(100.0)
}

/// The interview question a challenge is tied to.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Question {
    /// The question's number in the interview-question list.
    pub number: u32,
    /// The question's text.
    pub text: String,
}

/// One gradable rule of a brief.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// Unique within the challenge, kebab-case; probes name it in their `rules`.
    pub id: String,
    /// The rule as the candidate reads it (Markdown, one or a few sentences).
    pub text: String,
}

/// How to start and reach the service under test.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceSpec {
    /// The port the service listens on inside a container (a local process gets `PORT` instead).
    #[serde(default = "default_port")]
    pub port: u16,
    /// Environment variables passed to the service; probes read them as `{{env.NAME}}`.
    #[serde(default)]
    pub env: IndexMap<String, String>,
    /// How proctor knows the service is ready.
    #[serde(default)]
    pub ready: Ready,
    /// How long the service may take to become ready.
    #[serde(default = "default_start_timeout")]
    pub start_timeout: Dur,
    /// How long one request may take before the probe fails.
    #[serde(default = "default_request_timeout")]
    pub request_timeout: Dur,
    /// Resource limits of the container (Docker targets); proctor's defaults apply to what is not set.
    #[serde(default)]
    pub limits: Limits,
    /// A folder whose content survives restarts, for services that persist data: in a container, a volume of
    /// the run mounted at this absolute path; for a local process or the reference, a fresh temporary folder.
    /// Its path is in the service's env as `DATA_DIR`. Removed with the run.
    pub data: Option<String>,
    /// Serve HTTPS: proctor makes a certificate authority and a certificate for the run, passes them in the env
    /// (`TLS_CERT`, `TLS_KEY`, PEM) and probes trust only that authority. The service then serves HTTPS on its
    /// port and plain HTTP on a second one.
    pub tls: Option<TlsSpec>,
    /// How many instances of the service run side by side (1 to 4; default 1), as replicas behind a load
    /// balancer: each has its own port (its own container), all share the `data` folder (one volume). Requests
    /// without `replica` go to the replicas in turn; `replica: N` (from 1) sends one to the N-th.
    #[serde(default = "default_replicas")]
    pub replicas: u32,
}

fn default_replicas() -> u32 {
    1
}

/// A service that serves HTTPS on its port and plain HTTP on another.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TlsSpec {
    /// The container port of the plain-HTTP listener (a local process gets a free port as `HTTP_PORT`; a
    /// container gets this one).
    pub http_port: u16,
}

impl Default for ServiceSpec {
    fn default() -> Self {
        Self {
            port: default_port(),
            env: IndexMap::new(),
            ready: Ready::default(),
            start_timeout: default_start_timeout(),
            request_timeout: default_request_timeout(),
            limits: Limits::default(),
            data: None,
            tls: None,
            replicas: default_replicas(),
        }
    }
}

fn default_port() -> u16 {
    8080
}

fn default_start_timeout() -> Dur {
    Dur(std::time::Duration::from_secs(30))
}

fn default_request_timeout() -> Dur {
    Dur(std::time::Duration::from_secs(10))
}

/// A readiness check: `{ http: /health }` (any status below 500) or `{ tcp: true }` (the port accepts a
/// connection).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Ready {
    /// Ready when `GET <path>` answers with any status below 500.
    pub http: Option<String>,
    /// Ready when the port accepts a TCP connection.
    #[serde(default)]
    pub tcp: bool,
}

impl Default for Ready {
    fn default() -> Self {
        Ready {
            http: Some("/health".to_string()),
            tcp: false,
        }
    }
}

/// Whether a probe's details are shown in candidate-facing reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    /// Shown with every detail.
    #[default]
    Public,
    /// Scored, but reported only as "hidden probe" when reports are redacted (`--redact-hidden`).
    Hidden,
}

/// One probe: a behaviour the service must show, with the rule behind it.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProbeSpec {
    /// Unique within the challenge, kebab-case.
    pub id: String,
    /// What the probe checks, in one line.
    pub title: String,
    /// The area scored (status-codes, caching, auth, rate-limiting, ...), kebab-case.
    pub category: String,
    /// The ids of the brief's rules this probe checks (at least one).
    pub rules: Vec<String>,
    /// Points earned when the probe passes.
    #[serde(default = "default_points")]
    pub points: u32,
    /// The rule the probe checks and its source (RFC section, draft, the brief).
    pub why: String,
    /// A nudge towards the fix that does not give the code away.
    pub hint: String,
    /// Whether candidate-facing reports show the probe's details.
    #[serde(default)]
    pub visibility: Visibility,
    /// Variables set before the first step, in order: text with `{{...}}`, or `{ jwt: ... }` to mint a token.
    #[serde(default)]
    pub vars: IndexMap<String, super::jwt::VarSpec>,
    /// The steps, run in order; the probe stops at the first step that fails.
    pub steps: Vec<StepSpec>,
}

fn default_points() -> u32 {
    1
}

/// One step: a request (optionally repeated or sent as a burst) or a wait.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StepSpec {
    /// A short name for the step in reports.
    pub name: Option<String>,
    /// The request to send.
    pub request: Option<RequestSpec>,
    /// What the response must look like (every expectation is checked and reported).
    pub expect: Option<ExpectSpec>,
    /// Values to take from the response for later steps.
    #[serde(default)]
    pub capture: IndexMap<String, CaptureSpec>,
    /// Send the request this many times in sequence; each response must meet `expect`.
    pub repeat: Option<u32>,
    /// Send the request many times at once.
    pub burst: Option<BurstSpec>,
    /// Pause instead of sending a request.
    pub wait: Option<WaitSpec>,
    /// Follow the service's pagination from the request's page to the last, collecting values.
    pub walk: Option<WalkSpec>,
    /// Send the request again and again until a response meets `until`, within a deadline; every response must
    /// meet `expect`, and the last one's captures set variables.
    pub poll: Option<PollSpec>,
    /// Restart the service: stop it gracefully, start it again with the same data folder (and optionally changed
    /// env), wait until it is ready.
    pub restart: Option<RestartSpec>,
    /// Stop the service with SIGTERM, optionally while requests are in flight, and check how it ended. The
    /// service is started again before the next probe.
    pub stop: Option<StopSpec>,
    /// Start another instance with changed env, which must refuse to start: exit non-zero, saying why.
    pub start: Option<StartSpec>,
    /// Check what the service wrote to stdout and stderr since the probe began.
    pub logs: Option<LogsSpec>,
    /// Check the configuration of the service's image (container targets; not applicable to others).
    pub image: Option<ImageSpec>,
    /// Change what a server proctor hosts answers, for the rest of the probe.
    pub serve: Option<ServeSpec>,
    /// Check the calls a server proctor hosts received, waiting for them to arrive: since the probe began, or
    /// since the previous `calls` step on that server (a step with filters: the previous one with the same
    /// filters or without any).
    pub calls: Option<CallsSpec>,
    /// Request steps: sign the request as a Standard Webhooks sender does (or deliberately wrongly).
    pub sign: Option<SignSpec>,
    /// Offer the service one TLS protocol version on a fresh connection and check whether it is accepted
    /// (challenges with `service.tls`).
    pub handshake: Option<HandshakeSpec>,
    /// Request steps with `repeat`: record the fastest response time of the repeats, or compare it with one
    /// recorded earlier in the probe (relative to the service itself, never an absolute time).
    pub timing: Option<TimingSpec>,
}

/// A server proctor hosts for the run: scripted routes, then an optional JSON document store for what no route
/// answers; anything else gets 404. Every call is recorded.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerSpec {
    /// Routes tried in order; the first that matches answers (a probe's `serve` steps add routes in front).
    #[serde(default)]
    pub routes: Vec<RouteSpec>,
    /// A JSON document store behind the routes: `GET`/`PUT`/`DELETE` of a document by path, and `GET` of a
    /// collection (`/customers`, or `/customers?ids=a,b` for some) answering `{"items": [...]}`.
    pub store: Option<StoreSpec>,
}

/// A JSON document store.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StoreSpec {
    /// The documents at the start of the run, by path (`/products/p1`: a collection and an id).
    #[serde(default)]
    pub data: IndexMap<String, serde_json::Value>,
    /// How long every store answer takes (a slow database makes a cache stampede visible).
    pub delay: Option<Dur>,
}

/// A scripted route.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteSpec {
    /// A name for `calls: { route }` (kebab-case).
    pub name: Option<String>,
    /// The method it answers (any when absent).
    pub method: Option<String>,
    /// The path it answers: `/quotes/{symbol}` (`{name}` matches one segment). In a `serve` step it may use
    /// `{{...}}`.
    pub path: String,
    /// Only requests whose body contains this text (may use `{{...}}` in a `serve` step).
    pub body_contains: Option<String>,
    /// The answer, or a list of answers given in turn (the last one then repeats).
    pub respond: Respond,
}

/// One answer, or answers in turn.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Respond {
    /// Answers in turn; the last repeats.
    Sequence(Vec<ReplySpec>),
    /// Always this answer.
    One(ReplySpec),
}

impl Respond {
    /// The answers in turn, each `times` expanded.
    pub fn replies(&self) -> Vec<&ReplySpec> {
        match self {
            Respond::One(reply) => vec![reply],
            Respond::Sequence(replies) => replies
                .iter()
                .flat_map(|r| std::iter::repeat_n(r, r.times.unwrap_or(1) as usize))
                .collect(),
        }
    }
}

/// How a server answers one request.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplySpec {
    /// The status (default 200).
    pub status: Option<u16>,
    /// Response headers.
    #[serde(default)]
    pub headers: IndexMap<String, String>,
    /// A JSON body (sets `Content-Type: application/json`).
    pub json: Option<serde_json::Value>,
    /// A raw body.
    pub body: Option<String>,
    /// How long to wait before answering.
    pub delay: Option<Dur>,
    /// Misbehave instead of answering.
    pub fault: Option<Fault>,
    /// In a sequence: give this answer this many times in a row (default 1).
    pub times: Option<u32>,
}

/// A way for a server to fail without an HTTP answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// Close the connection without answering (the client sees a reset or an early end).
    Reset,
    /// Never answer: hold the connection until the client gives up (or the run ends).
    Hang,
}

/// Changes to a server for the rest of the probe (every server is back to its spec at the next probe).
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServeSpec {
    /// The server's name.
    pub server: String,
    /// Routes tried before the server's own (and before those of earlier `serve` steps).
    #[serde(default)]
    pub routes: Vec<RouteSpec>,
    /// Documents written into the server's store, by path (they stay for later probes, as data in a database
    /// does); values may use `{{...}}`.
    #[serde(default)]
    pub store: IndexMap<String, serde_json::Value>,
}

/// Checks on the calls a server received.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CallsSpec {
    /// The server's name.
    pub server: String,
    /// Only calls answered by the route with this name.
    pub route: Option<String>,
    /// Only calls with this method.
    pub method: Option<String>,
    /// Only calls to this path (the route syntax: `{name}` matches a segment; may use `{{...}}`).
    pub path: Option<String>,
    /// How many calls: `1`, `"1+"`, `0` (none).
    pub count: Option<crate::types::Count>,
    /// How long to wait for `count` to be reached (default 2s).
    pub within: Option<Dur>,
    /// Once it is reached, how much longer to watch for calls that should not come (default none).
    pub quiet: Option<Dur>,
    /// Checks on every call.
    pub each: Option<CallExpectSpec>,
    /// Headers every call must carry with one and the same value (`webhook-id` across retries).
    #[serde(default)]
    pub same: Vec<String>,
    /// The least time between consecutive calls: the first value between the first and the second call, and so
    /// on; the last value applies to every later gap.
    #[serde(default)]
    pub gaps: Vec<Dur>,
}

/// Checks on one call a server received.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CallExpectSpec {
    /// Checks on request headers, by name.
    #[serde(default)]
    pub headers: IndexMap<String, HeaderCheck>,
    /// Checks on query parameters, by name (a comma-separated value is a list for `members`/`contains`).
    #[serde(default)]
    pub query: IndexMap<String, HeaderCheck>,
    /// Checks on the JSON body.
    #[serde(default)]
    pub json: Vec<JsonCheck>,
    /// Checks on the raw body.
    pub body: Option<BodyCheck>,
    /// The media type of `Content-Type`.
    pub content_type: Option<String>,
    /// A valid Standard Webhooks signature (`webhook-id`, `webhook-timestamp`, `webhook-signature`).
    pub signature: Option<SignatureCheck>,
    /// `webhook-timestamp` is Unix seconds at most this far from the time the call arrived (a retry carries the
    /// time of its own attempt).
    pub timestamp_within: Option<Dur>,
}

/// A Standard Webhooks signature check: HMAC-SHA256 over `{id}.{timestamp}.{raw body}`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SignatureCheck {
    /// The secret, `whsec_` and base64 (may use `{{...}}`, usually `{{env.NAME}}`).
    pub secret: String,
    /// How far `webhook-timestamp` may be from the time the call arrived (default 5s).
    pub tolerance: Option<Dur>,
}

/// A TLS handshake offering exactly one protocol version.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HandshakeSpec {
    /// The version offered.
    pub version: TlsVersion,
    /// `true`: the service must complete the handshake (1.2, 1.3: verified against the run's authority) or
    /// answer with a ServerHello of that version (1.0, 1.1); `false`: it must refuse it.
    pub accepted: bool,
}

/// A TLS protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub enum TlsVersion {
    /// TLS 1.0 (RFC 2246), deprecated by RFC 8996.
    #[serde(rename = "1.0")]
    V1_0,
    /// TLS 1.1 (RFC 4346), deprecated by RFC 8996.
    #[serde(rename = "1.1")]
    V1_1,
    /// TLS 1.2 (RFC 5246).
    #[serde(rename = "1.2")]
    V1_2,
    /// TLS 1.3 (RFC 8446).
    #[serde(rename = "1.3")]
    V1_3,
}

impl std::fmt::Display for TlsVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TlsVersion::V1_0 => "TLS 1.0",
            TlsVersion::V1_1 => "TLS 1.1",
            TlsVersion::V1_2 => "TLS 1.2",
            TlsVersion::V1_3 => "TLS 1.3",
        })
    }
}

/// The fastest response time of a repeated request: recorded for later steps, or bounded by one recorded earlier
/// (the same lookups among many rows against among few: an index keeps them level, a scan does not). The fastest,
/// because load from elsewhere on the machine only adds time, while a scan slows every repeat.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TimingSpec {
    /// Save the fastest time, in milliseconds, as this variable.
    pub record: Option<String>,
    /// The fastest time must be at most `factor` times a recorded one, plus `plus`.
    pub at_most: Option<TimingBound>,
}

/// A bound on a fastest response time relative to one recorded earlier.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TimingBound {
    /// How many times the recorded time (more than 0).
    pub factor: f64,
    /// The variable a `timing.record` of an earlier step saved.
    pub of: String,
    /// Slack added to the bound, for times of a millisecond or two (default 0).
    pub plus: Option<Dur>,
}

/// Signs a request as a Standard Webhooks sender: `webhook-id`, `webhook-timestamp` and
/// `webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SignSpec {
    /// The secret, `whsec_` and base64 (may use `{{...}}`).
    pub secret: String,
    /// The message id (default a fresh random one); the same id twice is a replay.
    pub id: Option<String>,
    /// Date the timestamp this far in the past.
    pub age: Option<Dur>,
    /// Date the timestamp this far in the future.
    pub ahead: Option<Dur>,
    /// Sign this body instead of the one sent (one changed byte makes a tampered request); may use `{{...}}`.
    pub signed_body: Option<String>,
    /// Signatures listed before the real one (`v1,<base64>` each), as after a secret rotation.
    #[serde(default)]
    pub extra: Vec<String>,
    /// Headers left out (`webhook-signature`, say).
    #[serde(default)]
    pub omit: Vec<String>,
}

/// Checks on the image a container runs: each one that is `true` is checked.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ImageSpec {
    /// The image's user is not root (`USER` set, and not `root` or uid 0).
    #[serde(default)]
    pub non_root: bool,
    /// The image declares a `HEALTHCHECK`.
    #[serde(default)]
    pub healthcheck: bool,
    /// The program that starts is in exec form (`ENTRYPOINT ["app"]`), not run by `/bin/sh -c`, so signals reach it.
    #[serde(default)]
    pub exec_form: bool,
    /// No environment variable baked into the image has a secret-looking name (`*SECRET*`, `*PASSWORD*`,
    /// `*TOKEN*`, `*API_KEY*`, `*PRIVATE_KEY*`) and a value.
    #[serde(default)]
    pub no_secret_env: bool,
    /// The image is at most this big.
    pub max_size: Option<crate::types::ByteSize>,
}

/// Changes to the service's env: a value sets a variable (may use `{{...}}`), `null` removes it.
pub type EnvChanges = IndexMap<String, Option<String>>;

/// A restart.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RestartSpec {
    /// Changes to the env for the restarted service (and later restarts), e.g. `{ APP_VERSION: "2" }`.
    #[serde(default)]
    pub env: EnvChanges,
    /// Which replica to restart, from 1 (required when the service has `replicas`).
    pub replica: Option<u32>,
    /// Restart another service of the submission's Compose project instead (its database, say): stopped and
    /// started again while the graded service runs. Not applicable to other targets.
    pub service: Option<String>,
}

/// A stop: SIGTERM to PID 1 of a container or to the process group of a process.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StopSpec {
    /// Requests sent just before the signal, still being answered when it arrives; each must complete.
    pub in_flight: Option<InFlightSpec>,
    /// How long the service gets to exit after SIGTERM before it is killed with SIGKILL (default 10s).
    pub grace: Option<Dur>,
    /// The exit codes that pass, e.g. `[0, 143]` (a clean exit, or the default action of SIGTERM; 137 means it
    /// was killed). Not checked when absent.
    pub exit: Option<Vec<i32>>,
    /// The longest the service may take to exit after SIGTERM. Not checked when absent.
    pub within: Option<Dur>,
    /// A new request sent while the in-flight ones drain: it must be refused (no answer) or answered with one
    /// of `statuses`.
    pub during: Option<DuringSpec>,
    /// Which replica to stop, from 1 (required when the service has `replicas`); it starts again before the
    /// next probe.
    pub replica: Option<u32>,
}

/// A request sent after SIGTERM, while the service drains.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DuringSpec {
    /// The request (a readiness check, or new work).
    pub request: RequestSpec,
    /// How long after SIGTERM it is sent (default 300ms): while the in-flight requests still run.
    pub after: Option<Dur>,
    /// The statuses that count as refusing it (default `[503]`); no answer at all counts as refusing too.
    pub statuses: Option<Vec<u16>>,
}

/// Requests in flight when SIGTERM arrives.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InFlightSpec {
    /// The request (usually a slow one); sent `count` times at once.
    pub request: RequestSpec,
    /// How many (default 1).
    pub count: Option<u32>,
    /// How long after sending them the signal is sent (default 200ms): less than the requests take.
    pub signal_after: Option<Dur>,
    /// What each response must look like (default: any 2xx status).
    pub expect: Option<ExpectSpec>,
    /// Whether the requests must be answered (default `true`); `false` when they only keep the service busy
    /// while something else is checked.
    pub must_finish: Option<bool>,
}

/// A start that must fail.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StartSpec {
    /// Changes to the service's env for this instance only, e.g. `{ API_KEY: null }`.
    #[serde(default)]
    pub env: EnvChanges,
    /// The longest it may take to exit (default 10s).
    pub within: Option<Dur>,
    /// Text its output must contain, e.g. the name of the missing variable (may use `{{...}}`).
    #[serde(default)]
    pub output_contains: Vec<String>,
}

/// Checks on the service's output since the probe began.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogsSpec {
    /// How long to wait for the output to meet the checks (buffered output is flushed late; default 2s).
    pub within: Option<Dur>,
    /// Text the output must contain (may use `{{...}}`).
    #[serde(default)]
    pub contains: Vec<String>,
    /// Text the output must never contain: a secret, a canary (may use `{{...}}`).
    #[serde(default)]
    pub excludes: Vec<String>,
    /// Every non-empty line must be a JSON object with at least these fields.
    pub json_lines: Option<Vec<String>>,
    /// How many non-empty lines the output since the probe began must have (one per request, say).
    pub lines: Option<u32>,
    /// Whose output to read, from 1 (required when the service has `replicas`).
    pub replica: Option<u32>,
}

/// An HTTP request. Strings may use `{{...}}` placeholders.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestSpec {
    /// The method (any token; GET by default).
    #[serde(default = "default_method")]
    pub method: String,
    /// The path, relative to the service's base URL (an absolute URL must point at the same service).
    pub path: String,
    /// Query parameters, appended in order.
    #[serde(default)]
    pub query: IndexMap<String, Text>,
    /// Request headers.
    #[serde(default)]
    pub headers: IndexMap<String, Text>,
    /// A JSON body (sets `Content-Type: application/json` unless a header says otherwise). Strings may use
    /// `{{...}}`; two typed forms make what text cannot: `{$int: "<text>"}` is the whole number the text renders
    /// to, and `{$repeat: N, $each: <template>}` is an array of N (up to 1,000,000, and 64 MiB) items, each rendered with
    /// `{{index}}` set to its 0-based position — thousands of rows in one request.
    pub json: Option<serde_json::Value>,
    /// A raw body, sent as is.
    pub body: Option<String>,
    /// A form body (`application/x-www-form-urlencoded`).
    pub form: Option<IndexMap<String, Text>>,
    /// Send over plain HTTP to the service's HTTP port instead of HTTPS (challenges with `service.tls`).
    #[serde(default)]
    pub plain: bool,
    /// Send to this replica, from 1 (a service with `replicas`); without it, requests go to the replicas in turn.
    pub replica: Option<u32>,
}

fn default_method() -> String {
    "GET".to_string()
}

/// Expectations on one response. Every one is checked; each records what was expected and what came back.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpectSpec {
    /// The status: `201`, `[200, 204]` or `"2xx"`.
    pub status: Option<StatusSpec>,
    /// Burst only: how many responses must have each status, e.g. `{200: 5, 429: 10}`.
    pub statuses: Option<IndexMap<u16, crate::types::Count>>,
    /// Checks on response headers, by name (case-insensitive).
    #[serde(default)]
    pub headers: IndexMap<String, HeaderCheck>,
    /// Checks on the JSON body, each selecting nodes with an RFC 9535 JSONPath.
    #[serde(default)]
    pub json: Vec<JsonCheck>,
    /// A JSON Schema the body must validate against.
    pub schema: Option<serde_json::Value>,
    /// Checks on the raw body.
    pub body: Option<BodyCheck>,
    /// The media type of `Content-Type`, compared without parameters and case-insensitively.
    pub content_type: Option<String>,
    /// The longest the response may take.
    pub max_time: Option<Dur>,
    /// Checks on a Prometheus text exposition body (`/metrics`), each on the samples of one metric.
    #[serde(default)]
    pub metrics: Vec<MetricCheck>,
    /// Checks on the cookies the response sets (`Set-Cookie`), by name.
    #[serde(default)]
    pub cookies: IndexMap<String, CookieCheck>,
}

/// Checks on one cookie a response sets. Every one that is given is checked.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CookieCheck {
    /// `true`: the response sets the cookie; `false`: it does not.
    pub exists: Option<bool>,
    /// The cookie has (or has not) the `HttpOnly` attribute.
    pub http_only: Option<bool>,
    /// The cookie has (or has not) the `Secure` attribute.
    pub secure: Option<bool>,
    /// The cookie's `SameSite` is one of these (`Strict`, `Lax`, `None`; case-insensitive).
    pub same_site: Option<Vec<String>>,
    /// The cookie's `Path` is this.
    pub path: Option<String>,
    /// `true`: the response deletes the cookie (`Max-Age=0` or an `Expires` in the past).
    pub cleared: Option<bool>,
    /// The cookie's value differs from this (a session id that must change; may use `{{...}}`).
    pub not_equals: Option<String>,
}

/// The samples of one metric whose labels include these (values may use `{{...}}`).
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MetricSelector {
    /// The metric's name, e.g. `http_requests_total`.
    pub name: String,
    /// Labels the samples must have, with these values; other labels may be present.
    #[serde(default)]
    pub labels: IndexMap<String, String>,
}

/// A check on the samples of one metric: their values are summed.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MetricCheck {
    /// The metric's name.
    pub name: String,
    /// Labels the samples must have (values may use `{{...}}`).
    #[serde(default)]
    pub labels: IndexMap<String, String>,
    /// `true`: at least one sample; `false`: none.
    pub exists: Option<bool>,
    /// The metric is declared with this `# TYPE`.
    #[serde(rename = "type")]
    pub kind: Option<MetricType>,
    /// The sum is at least this.
    pub gte: Option<f64>,
    /// The sum rose by at least `at_least` since `from` (a value captured earlier with `capture: { metric }`).
    pub increase: Option<Increase>,
}

/// A metric type of the text exposition format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MetricType {
    /// Only goes up.
    Counter,
    /// Goes up and down.
    Gauge,
    /// Buckets, a sum and a count.
    Histogram,
    /// Quantiles, a sum and a count.
    Summary,
}

/// A rise since an earlier value.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Increase {
    /// The earlier value, usually `{{before}}`.
    pub from: String,
    /// The least rise.
    pub at_least: f64,
}

/// Checks on one response header. All field lines with the name are considered.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HeaderCheck {
    /// `true`: the header must be present; `false`: it must be absent.
    pub exists: Option<bool>,
    /// The (combined) value must equal this text exactly.
    pub equals: Option<String>,
    /// The (combined) value must match this regular expression.
    pub matches: Option<Pattern>,
    /// The header, when present, must not match this regular expression (an absent header passes).
    pub not_matches: Option<Pattern>,
    /// The comma-separated list must contain this member (case-insensitive, e.g. `Allow` contains `GET`).
    pub contains: Option<String>,
    /// The comma-separated list must not contain this member.
    pub excludes: Option<String>,
    /// The comma-separated list must hold exactly these members, in any order, case-insensitively (e.g. the
    /// whole `Allow` set of a resource).
    pub members: Option<Vec<String>>,
    /// `true`: no member of the comma-separated list appears twice.
    pub distinct: Option<bool>,
    /// The value, as a number, must be greater than this.
    pub gt: Option<f64>,
    /// ... at least this.
    pub gte: Option<f64>,
    /// ... less than this.
    pub lt: Option<f64>,
    /// ... at most this.
    pub lte: Option<f64>,
    /// How many field lines with this name the response must carry.
    pub count: Option<u32>,
}

/// Checks on the nodes a JSONPath selects from the body.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JsonCheck {
    /// An RFC 9535 JSONPath query such as `$.items[0].id`; may use `{{...}}`.
    pub path: String,
    /// `true`: the query selects at least one node; `false`: it selects none.
    pub exists: Option<bool>,
    /// The number of nodes selected.
    pub count: Option<u32>,
    /// The single selected node equals this value (strings may use `{{...}}`).
    pub equals: Option<serde_json::Value>,
    /// The single selected node has this type.
    #[serde(rename = "type")]
    pub kind: Option<JsonType>,
    /// The single selected string, array or object has this length.
    pub length: Option<u32>,
    /// The single selected number is greater than this.
    pub gt: Option<f64>,
    /// ... at least this.
    pub gte: Option<f64>,
    /// ... less than this.
    pub lt: Option<f64>,
    /// ... at most this.
    pub lte: Option<f64>,
    /// The single selected string matches this regular expression.
    pub matches: Option<Pattern>,
}

/// A JSON type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum JsonType {
    /// A string.
    String,
    /// Any number.
    Number,
    /// A number without a fractional part.
    Integer,
    /// `true` or `false`.
    Boolean,
    /// `null`.
    Null,
    /// An array.
    Array,
    /// An object.
    Object,
}

/// Checks on the raw body.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BodyCheck {
    /// `true`: the body must be empty; `false`: it must not be.
    pub empty: Option<bool>,
    /// The body must be exactly this text (may use `{{...}}`).
    pub equals: Option<String>,
    /// The body must contain this text (may use `{{...}}`).
    pub contains: Option<String>,
    /// The body must match this regular expression.
    pub matches: Option<Pattern>,
    /// The body must not match this regular expression (stack traces, SQL errors, ...).
    pub not_matches: Option<Pattern>,
}

/// Where a captured value comes from: `json`, `header` or the body; `regex` then takes its first group.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CaptureSpec {
    /// A JSONPath selecting one node of the JSON body (strings are taken as is, others as JSON).
    pub json: Option<String>,
    /// A response header's value.
    pub header: Option<String>,
    /// A regular expression applied to the header (with `header`) or to the body; its first group (or the
    /// whole match) is captured.
    pub regex: Option<Pattern>,
    /// The sum of a metric's samples in a Prometheus text body (`0` when there is none yet).
    pub metric: Option<MetricSelector>,
    /// The value of the cookie with this name that the response sets.
    pub cookie: Option<String>,
}

/// A burst: `count` requests sent by `concurrency` connections opened beforehand and released together.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BurstSpec {
    /// How many requests in all.
    pub count: u32,
    /// How many at once (connections opened before the release).
    pub concurrency: u32,
}

/// Polling: the step's request, sent until a response meets `until`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PollSpec {
    /// What the response that ends the polling looks like (status, headers, JSON, body).
    pub until: ExpectSpec,
    /// The pause between requests (default 100ms).
    pub every: Option<Dur>,
    /// How long to poll before the step fails (default 10s).
    pub within: Option<Dur>,
    /// A value that may only move forward: at `path` in every response, in the order of `order`.
    pub forward: Option<ForwardSpec>,
}

/// A value that only moves forward, such as a job's status.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ForwardSpec {
    /// A JSONPath selecting the value, e.g. `$.status`.
    pub path: String,
    /// The values in the order they may follow each other, e.g. `[queued, running, succeeded]`; a value
    /// outside the list fails.
    pub order: Vec<serde_json::Value>,
}

/// A pause: `duration`, or `seconds` from a variable (a Retry-After value, integer seconds or an HTTP date),
/// plus an optional margin.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitSpec {
    /// A fixed pause.
    pub duration: Option<Dur>,
    /// Seconds or an HTTP date, usually `{{retry_after}}`.
    pub seconds: Option<Text>,
    /// A margin added to the pause.
    pub plus: Option<Dur>,
    /// The longest pause the service may ask for before the probe fails (default 60s).
    pub max: Option<Dur>,
}

/// A walk through paginated results: the step's request fetches the first page, `next` finds each following page,
/// `collect` gathers values from every page, and `expect` (of the step) applies to every page.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WalkSpec {
    /// How the next page is found.
    pub next: NextPage,
    /// A JSONPath selecting the values to collect from every page, e.g. `$.items[*].id`.
    pub collect: String,
    /// The most pages to fetch before the walk fails as endless (default 50).
    pub max_pages: Option<u32>,
    /// A request sent once, right after the first page (e.g. inserting an item the walk must not see twice).
    pub after_first_page: Option<RequestSpec>,
    /// Checks on the walk as a whole.
    #[serde(default)]
    pub totals: WalkTotals,
}

/// Where the next page's address comes from: exactly one of `link` or `cursor`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NextPage {
    /// Follow the `Link` header entry with this relation (RFC 8288), usually `next`; the walk ends without one.
    pub link: Option<String>,
    /// A JSONPath to the next page's cursor in the body; the walk ends when it is missing, null or empty.
    pub cursor: Option<String>,
    /// With `cursor`: the query parameter that carries it on the first page's URL (default `cursor`).
    pub param: Option<String>,
}

/// Checks on a whole walk.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WalkTotals {
    /// How many pages the walk must take.
    pub pages: Option<u32>,
    /// How many values the walk must collect.
    pub count: Option<u32>,
    /// `true`: no value may be collected twice.
    pub distinct: Option<bool>,
    /// The values the walk must collect, exactly and in this order (strings may use `{{...}}`).
    pub values: Option<Vec<serde_json::Value>>,
}
