//! Checks a parsed spec can never be run wrongly: unique ids, defined variables, expectations that can pass.

use std::collections::HashSet;
use std::time::Duration;

use super::jwt::{JwtSign, VarSpec};
use super::load::is_kebab;
use super::model::{
    BodyCheck, CallsSpec, CaptureSpec, ChallengeSpec, EnvChanges, ExpectSpec, HeaderCheck, JsonCheck, JsonType,
    PollSpec, ProbeSpec, Ready, RequestSpec, RouteSpec, ServeSpec, SignSpec, StepSpec, WalkSpec,
};
use super::template::{BUILTINS, json_strings, placeholders};

/// The most requests one burst may send, and the most connections it may open.
pub const MAX_BURST: u32 = 10_000;
/// The most connections one burst may open at once.
pub const MAX_CONCURRENCY: u32 = 1_000;
/// Environment variables a spec may not set: `PORT`, `DATA_DIR` and the TLS ones are proctor's, the others change which program starts or
/// how the shell that starts it behaves (`LD_*` and `DYLD_*` are refused as well).
pub const RESERVED_ENV: &[&str] = &[
    "PORT",
    "DATA_DIR",
    "HTTP_PORT",
    "TLS_CERT",
    "TLS_KEY",
    "PATH",
    "IFS",
    "ENV",
    "BASH_ENV",
    "SHELLOPTS",
    "BASHOPTS",
    "PS4",
];
/// The longest grace period a stop step may give (the Docker API call that waits for it must end well before
/// the client's own timeout).
pub const MAX_GRACE: Duration = Duration::from_secs(100);
/// The most replicas a service runs as.
pub const MAX_REPLICAS: u32 = 4;

/// The longest a runner-hosted server may delay an answer (or hang).
pub const MAX_SERVER_DELAY: Duration = Duration::from_secs(60);
/// The most servers a challenge may declare.
pub const MAX_SERVERS: usize = 8;
/// The most routes one server may have, its own and those `serve` steps add.
pub const MAX_ROUTES: usize = 64;

/// The most points one probe may be worth.
pub const MAX_POINTS: u32 = 1_000;
/// The most points a challenge may be worth in all.
pub const MAX_TOTAL_POINTS: u32 = 100_000;
/// The most times one step may repeat its request.
pub const MAX_REPEAT: u32 = 10_000;
/// The most pages one walk may fetch.
pub const MAX_PAGES: u32 = 1_000;
/// The longest any wait, timeout or pause in a spec may be.
pub const MAX_DURATION: std::time::Duration = std::time::Duration::from_secs(600);

/// Every problem found, as (field path, message).
pub fn validate(spec: &ChallengeSpec) -> Vec<(String, String)> {
    let mut v = Validator {
        problems: Vec::new(),
        spec,
    };
    v.challenge();
    v.problems
}

struct Validator<'a> {
    problems: Vec<(String, String)>,
    spec: &'a ChallengeSpec,
}

/// Variables in scope at a point of a probe.
struct Scope {
    names: HashSet<String>,
    in_loop: bool,
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The problem with a name chosen for a variable (in `vars`, a capture, a recorded timing), if there is one.
fn variable_name_problem(name: &str) -> Option<String> {
    (!is_identifier(name) || BUILTINS.iter().any(|(b, _)| *b == name) || name == "env")
        .then(|| format!("`{name}` cannot be a variable name (a builtin, or not an identifier)"))
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

impl Validator<'_> {
    fn problem(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.problems.push((field.into(), message.into()));
    }

    fn challenge(&mut self) {
        let spec = self.spec;
        if spec.title.trim().is_empty() {
            self.problem("title", "the title is empty");
        }
        if spec.brief.trim().is_empty() {
            self.problem(
                "brief",
                "the brief is empty: it is the whole contract the candidate gets",
            );
        }
        match &spec.service.ready {
            Ready {
                http: Some(_),
                tcp: true,
            }
            | Ready { http: None, tcp: false } => self.problem(
                "service.ready",
                "readiness needs exactly one of `http: <path>` or `tcp: true`",
            ),
            Ready { http: Some(path), .. }
                if !path.starts_with('/') || path.starts_with("//") || path.starts_with("/\\") =>
            {
                self.problem(
                    "service.ready.http",
                    format!("the readiness path `{path}` must be a path on the service, starting with one `/`"),
                )
            }
            _ => {}
        }
        if let Some(data) = &spec.service.data {
            let normal = data.starts_with('/')
                && data != "/"
                && !data.split('/').any(|part| part == ".." || part == ".")
                && !data.contains('\0');
            let reserved = ["/tmp", "/proc", "/sys", "/dev", "/etc"]
                .iter()
                .any(|r| data == *r || data.starts_with(&format!("{r}/")));
            if !normal || reserved {
                self.problem(
                    "service.data",
                    format!(
                        "`{data}` must be an absolute folder path other than /, /tmp, /proc, /sys, /dev or /etc and \
                         what is below them"
                    ),
                );
            }
        }
        if spec.service.tls.is_some() && spec.service.ready.http.is_none() {
            self.problem(
                "service.ready",
                "a service with `service.tls` is ready when `{ http: PATH }` answers over HTTPS",
            );
        }
        if let Some(tls) = &spec.service.tls
            && (tls.http_port == 0 || tls.http_port == spec.service.port)
        {
            self.problem(
                "service.tls.http_port",
                "the plain-HTTP port is a port from 1 to 65535 other than `service.port` (which serves HTTPS)",
            );
        }
        if !(1..=MAX_REPLICAS).contains(&spec.service.replicas) {
            self.problem(
                "service.replicas",
                format!("a service runs as 1 to {MAX_REPLICAS} replicas"),
            );
        } else if spec.service.replicas > 1 && spec.service.tls.is_some() {
            self.problem("service.replicas", "a service with `service.tls` runs as one instance");
        }
        for (field, message) in crate::limits::check(&spec.service.limits) {
            self.problem(format!("service.limits.{field}"), message);
        }
        for (name, value) in &spec.service.env {
            if !is_identifier(name) {
                self.problem(
                    format!("service.env.{name}"),
                    format!("`{name}` is not a valid environment variable name"),
                );
            } else if RESERVED_ENV.contains(&name.as_str()) || name.starts_with("LD_") || name.starts_with("DYLD_") {
                self.problem(
                    format!("service.env.{name}"),
                    format!(
                        "`{name}` changes how the service is started (or is proctor's to set), so a spec cannot set it"
                    ),
                );
            }
            if value.contains('\0') {
                self.problem(
                    format!("service.env.{name}"),
                    "an environment value cannot contain a NUL character",
                );
            }
            for placeholder in placeholders(value) {
                let known = placeholder
                    .strip_prefix("server.")
                    .is_some_and(|server| spec.servers.contains_key(server));
                if !known {
                    self.problem(
                        format!("service.env.{name}"),
                        format!(
                            "`{{{{{placeholder}}}}}` is not known when the service starts: only `{{{{server.NAME}}}}` \
                             of a server in `servers` is"
                        ),
                    );
                }
            }
        }
        self.servers();
        if spec.probes.is_empty() {
            self.problem("probes", "a challenge needs at least one probe");
        }
        let total: u64 = spec.probes.iter().map(|p| u64::from(p.points)).sum();
        if total > u64::from(MAX_TOTAL_POINTS) {
            self.problem(
                "probes",
                format!(
                    "the probes are worth {total} points in all; a challenge may be worth at most {MAX_TOTAL_POINTS}"
                ),
            );
        }
        for (field, duration) in [
            ("service.start_timeout", spec.service.start_timeout.0),
            ("service.request_timeout", spec.service.request_timeout.0),
        ] {
            self.duration(field, duration, std::time::Duration::from_millis(10));
        }
        self.rules();
        let mut seen: HashSet<&str> = HashSet::new();
        for (i, probe) in spec.probes.iter().enumerate() {
            let at = format!("probes[{i}]");
            if !is_kebab(&probe.id) {
                self.problem(
                    format!("{at}.id"),
                    format!("probe id `{}` must be kebab-case", probe.id),
                );
            } else if !seen.insert(&probe.id) {
                self.problem(format!("{at}.id"), format!("duplicate probe id `{}`", probe.id));
            }
            self.probe(&at, probe);
        }
    }

    /// Every rule has a unique id and a text, every probe names at least one known rule, and every rule is
    /// checked by some probe: the brief and the probes cannot drift apart.
    fn rules(&mut self) {
        let spec = self.spec;
        if spec.rules.is_empty() {
            self.problem(
                "rules",
                "a challenge needs its gradable rules: list each as `{ id, text }` and name them in the probes",
            );
        }
        let mut ids: HashSet<&str> = HashSet::new();
        for (i, rule) in spec.rules.iter().enumerate() {
            if !is_kebab(&rule.id) {
                self.problem(
                    format!("rules[{i}].id"),
                    format!("rule id `{}` must be kebab-case", rule.id),
                );
            } else if !ids.insert(&rule.id) {
                self.problem(format!("rules[{i}].id"), format!("duplicate rule id `{}`", rule.id));
            }
            if rule.text.trim().is_empty() {
                self.problem(format!("rules[{i}].text"), "the rule's text is empty");
            }
        }
        let mut probed: HashSet<&str> = HashSet::new();
        for (i, probe) in spec.probes.iter().enumerate() {
            if probe.rules.is_empty() {
                self.problem(
                    format!("probes[{i}].rules"),
                    "a probe must name the rules it checks (ids from `rules`)",
                );
            }
            for (j, rule) in probe.rules.iter().enumerate() {
                if ids.contains(rule.as_str()) {
                    probed.insert(rule);
                } else {
                    self.problem(
                        format!("probes[{i}].rules[{j}]"),
                        format!("unknown rule `{rule}`: the challenge's `rules` has no such id"),
                    );
                }
            }
        }
        for (i, rule) in spec.rules.iter().enumerate() {
            if ids.contains(rule.id.as_str()) && !probed.contains(rule.id.as_str()) {
                self.problem(
                    format!("rules[{i}]"),
                    format!(
                        "no probe checks rule `{}`: a rule without a probe lets a service break it and still pass",
                        rule.id
                    ),
                );
            }
        }
    }

    fn servers(&mut self) {
        let spec = self.spec;
        if spec.servers.len() > MAX_SERVERS {
            self.problem(
                "servers",
                format!("a challenge may declare at most {MAX_SERVERS} servers"),
            );
        }
        for (name, server) in &spec.servers {
            let at = format!("servers.{name}");
            if !is_kebab(name) {
                self.problem(&at, format!("server name `{name}` must be kebab-case"));
            }
            if server.routes.len() > MAX_ROUTES {
                self.problem(
                    format!("{at}.routes"),
                    format!("a server has at most {MAX_ROUTES} routes"),
                );
            }
            let mut names = HashSet::new();
            for (i, route) in server.routes.iter().enumerate() {
                self.route(&format!("{at}.routes[{i}]"), route, None);
                if let Some(route_name) = &route.name
                    && !names.insert(route_name)
                {
                    self.problem(
                        format!("{at}.routes[{i}].name"),
                        format!("duplicate route name `{route_name}`"),
                    );
                }
            }
            if let Some(store) = &server.store {
                for path in store.data.keys() {
                    self.store_path(&format!("{at}.store.data"), path);
                }
                if let Some(delay) = store.delay {
                    self.server_delay(&format!("{at}.store.delay"), delay.0);
                }
            }
        }
    }

    fn store_path(&mut self, at: &str, path: &str) {
        let segments: Vec<&str> = path.strip_prefix('/').unwrap_or("").split('/').collect();
        if !path.starts_with('/') || segments.len() < 2 || segments.iter().any(|s| s.is_empty()) || path.contains('?') {
            self.problem(
                at,
                format!("`{path}` is not a document path such as `/products/p1` (a collection, then an id)"),
            );
        }
    }

    fn server_delay(&mut self, at: &str, delay: Duration) {
        if delay > MAX_SERVER_DELAY {
            self.problem(
                at,
                format!("a server answers within {} s at most", MAX_SERVER_DELAY.as_secs()),
            );
        }
    }

    /// A route of a server (`scope` `None`) or of a `serve` step (placeholders then name variables in scope).
    fn route(&mut self, at: &str, route: &RouteSpec, scope: Option<&Scope>) {
        if let Some(name) = &route.name
            && !is_kebab(name)
        {
            self.problem(format!("{at}.name"), format!("route name `{name}` must be kebab-case"));
        }
        if let Some(method) = &route.method
            && !is_token(method)
        {
            self.problem(format!("{at}.method"), format!("`{method}` is not a valid HTTP method"));
        }
        self.route_path(&format!("{at}.path"), &route.path);
        let mut texts: Vec<(String, &str)> = vec![(format!("{at}.path"), route.path.as_str())];
        if let Some(text) = &route.body_contains {
            texts.push((format!("{at}.body_contains"), text));
        }
        let replies = route.respond.replies();
        if replies.is_empty() {
            self.problem(format!("{at}.respond"), "a route needs at least one answer");
        }
        if let super::model::Respond::One(reply) = &route.respond
            && reply.times.is_some()
        {
            self.problem(
                format!("{at}.respond.times"),
                "`times` counts an answer within a list of answers",
            );
        }
        let listed: Vec<(String, &super::model::ReplySpec)> = match &route.respond {
            super::model::Respond::One(reply) => vec![(format!("{at}.respond"), reply)],
            super::model::Respond::Sequence(replies) => replies
                .iter()
                .enumerate()
                .map(|(i, reply)| (format!("{at}.respond[{i}]"), reply))
                .collect(),
        };
        for (field, reply) in listed {
            if reply.status.is_some_and(|s| !(200..=599).contains(&s)) {
                self.problem(
                    format!("{field}.status"),
                    "a server answers with a status from 200 to 599",
                );
            }
            if reply.json.is_some() && reply.body.is_some() {
                self.problem(&field, "an answer has `json` or `body`, not both");
            }
            if reply.fault.is_some()
                && (reply.status.is_some() || reply.json.is_some() || reply.body.is_some() || !reply.headers.is_empty())
            {
                self.problem(&field, "a fault sends no answer: it has no status, headers or body");
            }
            if reply.times == Some(0) {
                self.problem(format!("{field}.times"), "`times` is at least 1");
            }
            if let Some(delay) = reply.delay {
                self.server_delay(&format!("{field}.delay"), delay.0);
            }
            for (name, value) in &reply.headers {
                if !is_token(name) || value.contains(['\r', '\n', '\0']) {
                    self.problem(
                        format!("{field}.headers.{name}"),
                        "not a valid header (a token for the name, no line breaks in the value)",
                    );
                }
                texts.push((format!("{field}.headers.{name}"), value));
            }
            if let Some(body) = &reply.body {
                texts.push((format!("{field}.body"), body));
            }
            if let Some(json) = &reply.json {
                for text in json_strings(json) {
                    texts.push((format!("{field}.json"), text));
                }
            }
        }
        for (field, text) in texts {
            match scope {
                Some(scope) => self.uses(&field, text, scope),
                None if !placeholders(text).is_empty() => self.problem(
                    field,
                    "a server's own routes are fixed: `{{...}}` goes in the routes of a `serve` step",
                ),
                None => {}
            }
        }
    }

    fn route_path(&mut self, at: &str, path: &str) {
        let well_formed = path.starts_with('/')
            && !path.contains('?')
            && path.split('/').all(|segment| match segment.strip_prefix('{') {
                Some(rest) => rest
                    .strip_suffix('}')
                    .is_some_and(|name| name.starts_with('{') && name.ends_with('}') || is_identifier(name)),
                None => !segment.contains(['{', '}']) || segment.contains("{{"),
            });
        if !well_formed {
            self.problem(
                at,
                format!(
                    "`{path}` is not a route path such as `/quotes/{{symbol}}` (no query; `{{name}}` for a segment)"
                ),
            );
        }
    }

    fn server_name(&mut self, at: &str, name: &str) -> bool {
        let known = self.spec.servers.contains_key(name);
        if !known {
            self.problem(at, format!("`{name}` is not one of the challenge's `servers`"));
        }
        known
    }

    fn serve(&mut self, at: &str, serve: &ServeSpec, scope: &Scope) {
        if !self.server_name(&format!("{at}.server"), &serve.server) {
            return;
        }
        if serve.routes.is_empty() && serve.store.is_empty() {
            self.problem(
                at,
                "the serve step changes nothing: give it `routes` or `store` documents",
            );
        }
        if serve.routes.len() > MAX_ROUTES {
            self.problem(
                format!("{at}.routes"),
                format!("a server has at most {MAX_ROUTES} routes"),
            );
        }
        for (i, route) in serve.routes.iter().enumerate() {
            self.route(&format!("{at}.routes[{i}]"), route, Some(scope));
        }
        if !serve.store.is_empty() && self.spec.servers[&serve.server].store.is_none() {
            self.problem(
                format!("{at}.store"),
                format!("server `{}` has no `store` to write documents into", serve.server),
            );
        }
        for (path, value) in &serve.store {
            self.uses(&format!("{at}.store"), path, scope);
            if placeholders(path).is_empty() {
                self.store_path(&format!("{at}.store"), path);
            }
            for text in json_strings(value) {
                self.uses(&format!("{at}.store"), text, scope);
            }
        }
    }

    fn calls(&mut self, at: &str, calls: &CallsSpec, scope: &Scope) {
        if !self.server_name(&format!("{at}.server"), &calls.server) {
            return;
        }
        if let Some(route) = &calls.route {
            let spec = self.spec;
            let in_server = spec.servers[&calls.server]
                .routes
                .iter()
                .any(|r| r.name.as_ref() == Some(route));
            let in_serve = spec.probes.iter().flat_map(|p| &p.steps).any(|step| {
                step.serve.as_ref().is_some_and(|serve| {
                    serve.server == calls.server && serve.routes.iter().any(|r| r.name.as_ref() == Some(route))
                })
            });
            if !in_server && !in_serve {
                self.problem(
                    format!("{at}.route"),
                    format!("no route of server `{}` is named `{route}`", calls.server),
                );
            }
        }
        if let Some(method) = &calls.method
            && !is_token(method)
        {
            self.problem(format!("{at}.method"), format!("`{method}` is not a valid HTTP method"));
        }
        if let Some(path) = &calls.path {
            self.route_path(&format!("{at}.path"), path);
            self.uses(&format!("{at}.path"), path, scope);
        }
        for (field, duration) in [("within", calls.within), ("quiet", calls.quiet)] {
            if let Some(duration) = duration {
                self.duration(&format!("{at}.{field}"), duration.0, Duration::ZERO);
            }
        }
        for (i, gap) in calls.gaps.iter().enumerate() {
            self.duration(&format!("{at}.gaps[{i}]"), gap.0, Duration::ZERO);
        }
        for name in &calls.same {
            if !is_token(name) {
                self.problem(format!("{at}.same"), format!("`{name}` is not a valid header name"));
            }
        }
        let each = calls.each.clone().unwrap_or_default();
        let checks_something =
            calls.count.is_some() || calls.each.is_some() || !calls.same.is_empty() || !calls.gaps.is_empty();
        if !checks_something {
            self.problem(at, "the calls check says nothing to check");
        }
        if calls.count == Some(crate::types::Count::Exactly(0))
            && (calls.each.is_some() || !calls.same.is_empty() || !calls.gaps.is_empty())
        {
            self.problem(
                at,
                "no call is expected, so there is nothing for `each`, `same` or `gaps` to check",
            );
        }
        for (group, checks) in [("headers", &each.headers), ("query", &each.query)] {
            for (name, check) in checks {
                let field = format!("{at}.each.{group}.{name}");
                if group == "headers" && !is_token(name) {
                    self.problem(&field, format!("`{name}` is not a valid header name"));
                }
                self.header_check(&field, check, scope);
            }
        }
        for (i, check) in each.json.iter().enumerate() {
            self.json_check(&format!("{at}.each.json[{i}]"), check, scope);
        }
        if let Some(body) = &each.body {
            self.body_check(&format!("{at}.each.body"), body, scope);
        }
        if let Some(media) = &each.content_type
            && (!media.contains('/') || media.contains(';'))
        {
            self.problem(
                format!("{at}.each.content_type"),
                format!("`{media}` is not a media type such as application/json (no parameters)"),
            );
        }
        if let Some(within) = each.timestamp_within {
            self.duration(&format!("{at}.each.timestamp_within"), within.0, Duration::ZERO);
        }
        if let Some(signature) = &each.signature {
            self.uses(&format!("{at}.each.signature.secret"), &signature.secret, scope);
            if let Some(tolerance) = signature.tolerance {
                self.duration(&format!("{at}.each.signature.tolerance"), tolerance.0, Duration::ZERO);
            }
        }
    }

    fn poll(&mut self, at: &str, poll: &PollSpec, step: &StepSpec, scope: &Scope) {
        let until = &poll.until;
        let says_something = until.status.is_some()
            || !until.headers.is_empty()
            || !until.json.is_empty()
            || until.body.is_some()
            || until.schema.is_some()
            || until.content_type.is_some();
        if !says_something {
            self.problem(
                format!("{at}.until"),
                "`until` says nothing: polling would stop at the first response",
            );
        }
        if until.statuses.is_some() || until.max_time.is_some() || !until.metrics.is_empty() {
            self.problem(
                format!("{at}.until"),
                "`until` checks a response's status, headers, JSON, schema or body",
            );
        }
        self.expect(&format!("{at}.until"), until, step, scope);
        if let Some(every) = poll.every {
            self.duration(&format!("{at}.every"), every.0, Duration::from_millis(10));
        }
        if let Some(within) = poll.within {
            self.duration(&format!("{at}.within"), within.0, Duration::from_millis(10));
        }
        if let Some(forward) = &poll.forward {
            self.json_path(&format!("{at}.forward.path"), &forward.path, scope);
            if forward.order.len() < 2 {
                self.problem(format!("{at}.forward.order"), "an order needs at least two values");
            }
        }
    }

    fn sign(&mut self, at: &str, sign: &SignSpec, step: &StepSpec, scope: &Scope) {
        if step.burst.is_some() || step.walk.is_some() {
            self.problem(
                at,
                "signing goes with a single (or repeated) request, not a burst or a walk",
            );
        }
        if sign.age.is_some() && sign.ahead.is_some() {
            self.problem(
                at,
                "a timestamp is in the past (`age`) or the future (`ahead`), not both",
            );
        }
        for (field, text) in [
            ("secret", Some(&sign.secret)),
            ("id", sign.id.as_ref()),
            ("signed_body", sign.signed_body.as_ref()),
        ] {
            if let Some(text) = text {
                self.uses(&format!("{at}.{field}"), text, scope);
            }
        }
        for signature in &sign.extra {
            self.uses(&format!("{at}.extra"), signature, scope);
        }
        for header in &sign.omit {
            if !["webhook-id", "webhook-timestamp", "webhook-signature"].contains(&header.to_ascii_lowercase().as_str())
            {
                self.problem(
                    format!("{at}.omit"),
                    format!("`{header}` is not a signature header (webhook-id, webhook-timestamp, webhook-signature)"),
                );
            }
        }
        for (field, duration) in [("age", sign.age), ("ahead", sign.ahead)] {
            if let Some(duration) = duration {
                self.duration(&format!("{at}.{field}"), duration.0, Duration::ZERO);
            }
        }
    }

    fn probe(&mut self, at: &str, probe: &ProbeSpec) {
        if !is_kebab(&probe.category) {
            self.problem(
                format!("{at}.category"),
                format!("category `{}` must be kebab-case", probe.category),
            );
        }
        if probe.points == 0 || probe.points > MAX_POINTS {
            self.problem(
                format!("{at}.points"),
                format!("a probe is worth 1 to {MAX_POINTS} points"),
            );
        }
        for (field, text) in [("title", &probe.title), ("why", &probe.why), ("hint", &probe.hint)] {
            if text.trim().is_empty() {
                self.problem(format!("{at}.{field}"), format!("the {field} is empty"));
            }
        }
        if probe.steps.is_empty() {
            self.problem(format!("{at}.steps"), "a probe needs at least one step");
        }
        let mut scope = Scope {
            names: HashSet::new(),
            in_loop: false,
        };
        let mut jwt_specs: std::collections::HashMap<&str, super::jwt::JwtSpec> = std::collections::HashMap::new();
        for (name, value) in &probe.vars {
            let field = format!("{at}.vars.{name}");
            if let Some(message) = variable_name_problem(name) {
                self.problem(&field, message);
            }
            match value {
                VarSpec::Text(text) => self.uses(&field, text, &scope),
                VarSpec::Jwt(jwt) => {
                    for text in jwt.texts() {
                        self.uses(&field, text, &scope);
                    }
                    match jwt.resolve(&jwt_specs) {
                        Some(merged) => {
                            if merged.signing() != JwtSign::None && merged.secret.is_none() {
                                self.problem(&field, "a signed token needs a `secret` (or `sign: none`)");
                            }
                            jwt_specs.insert(name, merged);
                        }
                        None => self.problem(
                            format!("{field}.jwt.base"),
                            format!(
                                "`{}` is not an earlier `jwt` variable of this probe",
                                jwt.base.as_deref().unwrap_or_default()
                            ),
                        ),
                    }
                }
            }
            scope.names.insert(name.clone());
        }
        for (i, step) in probe.steps.iter().enumerate() {
            self.step(&format!("{at}.steps[{i}]"), step, &mut scope);
        }
        // After a stop the service is down until a restart: only waits, starts and image checks make sense.
        let mut stopped = false;
        for (i, step) in probe.steps.iter().enumerate() {
            if stopped && (step.request.is_some() || step.stop.is_some()) {
                self.problem(
                    format!("{at}.steps[{i}]"),
                    "the service is stopped here: restart it first (`restart: {}`) or end the probe",
                );
            }
            stopped = (stopped || step.stop.is_some()) && step.restart.is_none();
        }
    }

    fn step(&mut self, at: &str, step: &StepSpec, scope: &mut Scope) {
        let kinds: Vec<&str> = [
            ("request", step.request.is_some()),
            ("wait", step.wait.is_some()),
            ("restart", step.restart.is_some()),
            ("stop", step.stop.is_some()),
            ("start", step.start.is_some()),
            ("logs", step.logs.is_some()),
            ("image", step.image.is_some()),
            ("serve", step.serve.is_some()),
            ("calls", step.calls.is_some()),
            ("handshake", step.handshake.is_some()),
        ]
        .into_iter()
        .filter_map(|(kind, present)| present.then_some(kind))
        .collect();
        match kinds.as_slice() {
            [] => {
                return self.problem(
                    at,
                    "a step needs one of `request`, `wait`, `restart`, `stop`, `start`, `logs`, `image`, `serve`, \
                     `calls` or `handshake`",
                );
            }
            [_] => {}
            many => {
                return self.problem(
                    at,
                    format!("a step is one thing, not {}: use several steps", many.join(" and ")),
                );
            }
        }
        if step.request.is_none() {
            for (field, present) in [
                ("expect", step.expect.is_some()),
                ("capture", !step.capture.is_empty()),
                ("repeat", step.repeat.is_some()),
                ("burst", step.burst.is_some()),
                ("walk", step.walk.is_some()),
                ("poll", step.poll.is_some()),
                ("sign", step.sign.is_some()),
                ("timing", step.timing.is_some()),
            ] {
                if present {
                    self.problem(
                        format!("{at}.{field}"),
                        format!("`{field}` needs a request; this step is a {}", kinds[0]),
                    );
                }
            }
        }
        self.lifecycle(at, step, scope);
        self.replicas(at, step);
        let tls = self.spec.service.tls.is_some();
        if step.burst.is_some() && tls {
            self.problem(
                format!("{at}.burst"),
                "a burst is sent over plain HTTP/1.1 connections; it cannot reach a service with `service.tls`",
            );
        }
        if step.handshake.is_some() && !tls {
            self.problem(
                format!("{at}.handshake"),
                "a handshake needs `service.tls` (the service serves HTTPS)",
            );
        }
        if step.request.as_ref().is_some_and(|r| r.plain) && !tls {
            self.problem(
                format!("{at}.request.plain"),
                "`plain` sends to the plain-HTTP port of a service with `service.tls`; this one has none",
            );
        }
        if let Some(serve) = &step.serve {
            self.serve(&format!("{at}.serve"), serve, scope);
        }
        if let Some(calls) = &step.calls {
            self.calls(&format!("{at}.calls"), calls, scope);
        }
        if let Some(sign) = &step.sign
            && step.request.is_some()
        {
            self.sign(&format!("{at}.sign"), sign, step, scope);
        }
        match (&step.request, &step.wait) {
            (Some(_), Some(_)) | (None, None) => {}
            (None, Some(wait)) => {
                match (&wait.duration, &wait.seconds) {
                    (Some(_), Some(_)) | (None, None) => self.problem(
                        format!("{at}.wait"),
                        "a wait needs exactly one of `duration` or `seconds`",
                    ),
                    (None, Some(seconds)) => self.uses(&format!("{at}.wait.seconds"), &seconds.0, scope),
                    (Some(duration), None) => self.duration(&format!("{at}.wait.duration"), duration.0, Duration::ZERO),
                }
                if let Some(plus) = wait.plus {
                    self.duration(&format!("{at}.wait.plus"), plus.0, Duration::ZERO);
                }
                if let Some(max) = wait.max {
                    self.duration(&format!("{at}.wait.max"), max.0, Duration::from_millis(1));
                }
            }
            (Some(request), None) => {
                if step.repeat.is_some_and(|n| n == 0 || n > MAX_REPEAT) {
                    self.problem(
                        format!("{at}.repeat"),
                        format!("repeat sends 1 to {MAX_REPEAT} requests"),
                    );
                }
                let modes = [
                    step.repeat.is_some(),
                    step.burst.is_some(),
                    step.walk.is_some(),
                    step.poll.is_some(),
                ];
                if modes.iter().filter(|m| **m).count() > 1 {
                    self.problem(
                        at,
                        "a step does one of `repeat`, `burst`, `walk` or `poll`; use several steps",
                    );
                }
                if let Some(poll) = &step.poll {
                    self.poll(&format!("{at}.poll"), poll, step, scope);
                }
                if let Some(walk) = &step.walk {
                    self.walk(&format!("{at}.walk"), walk, scope);
                    if !step.capture.is_empty() {
                        self.problem(
                            format!("{at}.capture"),
                            "a walk has many responses; capture from a single request",
                        );
                    }
                }
                let looped = step.repeat.is_some() || step.burst.is_some();
                if let Some(burst) = &step.burst {
                    if burst.count == 0 || burst.count > MAX_BURST {
                        self.problem(
                            format!("{at}.burst.count"),
                            format!("a burst sends 1 to {MAX_BURST} requests"),
                        );
                    }
                    if burst.concurrency == 0 || burst.concurrency > burst.count.min(MAX_CONCURRENCY) {
                        self.problem(
                            format!("{at}.burst.concurrency"),
                            format!("concurrency must be between 1 and the count (at most {MAX_CONCURRENCY})"),
                        );
                    }
                    if !step.capture.is_empty() {
                        self.problem(
                            format!("{at}.capture"),
                            "a burst has many responses; capture from a single request",
                        );
                    }
                }
                scope.in_loop = looped;
                self.request(&format!("{at}.request"), request, scope);
                if let Some(expect) = &step.expect {
                    self.expect(&format!("{at}.expect"), expect, step, scope);
                }
                scope.in_loop = false;
                if let Some(timing) = &step.timing {
                    self.timing(&format!("{at}.timing"), timing, step, scope);
                }
                for (name, capture) in &step.capture {
                    let field = format!("{at}.capture.{name}");
                    if let Some(message) = variable_name_problem(name) {
                        self.problem(&field, message);
                    }
                    self.capture(&field, capture, scope);
                }
                // Captures (and a recorded timing) become visible to the following steps only.
                scope.names.extend(step.capture.keys().cloned());
                scope.names.extend(step.timing.iter().filter_map(|t| t.record.clone()));
            }
        }
    }

    /// The steps that act on the service itself: restart, stop, start, logs.
    fn lifecycle(&mut self, at: &str, step: &StepSpec, scope: &Scope) {
        let env_changes = |v: &mut Self, field: String, changes: &EnvChanges| {
            for (name, value) in changes {
                let field = format!("{field}.{name}");
                if !is_identifier(name) || RESERVED_ENV.contains(&name.as_str()) || name == "DATA_DIR" {
                    v.problem(&field, format!("`{name}` cannot be changed by a step"));
                }
                if let Some(value) = value {
                    v.uses(&field, value, scope);
                    if value.contains('\0') {
                        v.problem(&field, "an environment value cannot contain a NUL character");
                    }
                }
            }
        };
        if let Some(restart) = &step.restart {
            env_changes(self, format!("{at}.restart.env"), &restart.env);
            if restart.service.is_some() && (restart.replica.is_some() || !restart.env.is_empty()) {
                self.problem(
                    format!("{at}.restart.service"),
                    "a restart of another service of the project takes neither `replica` nor `env`",
                );
            }
            if restart.service.as_deref().is_some_and(|name| {
                name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
            }) {
                self.problem(
                    format!("{at}.restart.service"),
                    "a Compose service name is letters, digits, `.`, `_` and `-`",
                );
            }
        }
        if let Some(start) = &step.start {
            env_changes(self, format!("{at}.start.env"), &start.env);
            if start.env.is_empty() {
                self.problem(
                    format!("{at}.start.env"),
                    "a start that must fail changes the env (the same env starts the same service)",
                );
            }
            if let Some(within) = start.within {
                self.duration(&format!("{at}.start.within"), within.0, Duration::from_millis(100));
            }
            for text in &start.output_contains {
                self.uses(&format!("{at}.start.output_contains"), text, scope);
            }
        }
        if let Some(stop) = &step.stop {
            if let Some(grace) = stop.grace {
                self.duration(&format!("{at}.stop.grace"), grace.0, Duration::from_millis(100));
                if grace.0 > MAX_GRACE {
                    self.problem(
                        format!("{at}.stop.grace"),
                        format!("a grace period is at most {} s", MAX_GRACE.as_secs()),
                    );
                }
            }
            if let Some(within) = stop.within {
                self.duration(&format!("{at}.stop.within"), within.0, Duration::from_millis(100));
                if within.0 > stop.grace.map_or(Duration::from_secs(10), |g| g.0) {
                    self.problem(
                        format!("{at}.stop.within"),
                        "`within` is longer than the grace period: the service is killed before it is reached",
                    );
                }
            }
            if stop.exit.as_ref().is_some_and(Vec::is_empty) {
                self.problem(format!("{at}.stop.exit"), "no exit code would pass");
            }
            if let Some(during) = &stop.during {
                if stop.in_flight.is_none() {
                    self.problem(
                        format!("{at}.stop.during"),
                        "`during` needs requests `in_flight`: without them there is no draining to send it during",
                    );
                }
                if let Some(after) = during.after {
                    self.duration(&format!("{at}.stop.during.after"), after.0, Duration::ZERO);
                }
                self.request(&format!("{at}.stop.during.request"), &during.request, scope);
            }
            if let Some(in_flight) = &stop.in_flight {
                if in_flight.count.is_some_and(|n| n == 0 || n > MAX_CONCURRENCY) {
                    self.problem(
                        format!("{at}.stop.in_flight.count"),
                        format!("1 to {MAX_CONCURRENCY} requests may be in flight"),
                    );
                }
                if let Some(after) = in_flight.signal_after {
                    self.duration(&format!("{at}.stop.in_flight.signal_after"), after.0, Duration::ZERO);
                }
                self.request(&format!("{at}.stop.in_flight.request"), &in_flight.request, scope);
                if let Some(expect) = &in_flight.expect {
                    let as_step = StepSpec {
                        request: Some(in_flight.request.clone()),
                        ..Default::default()
                    };
                    self.expect(&format!("{at}.stop.in_flight.expect"), expect, &as_step, scope);
                }
            }
        }
        if let Some(logs) = &step.logs {
            if let Some(within) = logs.within {
                self.duration(&format!("{at}.logs.within"), within.0, Duration::ZERO);
            }
            for (field, texts) in [("contains", &logs.contains), ("excludes", &logs.excludes)] {
                for text in texts {
                    self.uses(&format!("{at}.logs.{field}"), text, scope);
                    if text.is_empty() {
                        self.problem(format!("{at}.logs.{field}"), "an empty text is in every output");
                    }
                }
            }
            if logs.contains.is_empty() && logs.excludes.is_empty() && logs.json_lines.is_none() && logs.lines.is_none()
            {
                self.problem(format!("{at}.logs"), "the logs check says nothing to check");
            }
        }
        if let Some(image) = &step.image
            && !(image.non_root || image.healthcheck || image.exec_form || image.no_secret_env)
            && image.max_size.is_none()
        {
            self.problem(format!("{at}.image"), "the image check says nothing to check");
        }
    }

    fn walk(&mut self, at: &str, walk: &WalkSpec, scope: &Scope) {
        match (&walk.next.link, &walk.next.cursor) {
            (Some(_), Some(_)) | (None, None) => self.problem(
                format!("{at}.next"),
                "the next page comes from exactly one of `link` or `cursor`",
            ),
            (Some(_), None) if walk.next.param.is_some() => {
                self.problem(format!("{at}.next.param"), "`param` goes with `cursor`, not `link`")
            }
            (None, Some(cursor)) => self.json_path(&format!("{at}.next.cursor"), cursor, scope),
            _ => {}
        }
        self.json_path(&format!("{at}.collect"), &walk.collect, scope);
        if walk.max_pages.is_some_and(|n| n == 0 || n > MAX_PAGES) {
            self.problem(
                format!("{at}.max_pages"),
                format!("a walk fetches 1 to {MAX_PAGES} pages"),
            );
        }
        if walk.totals.pages == Some(0) {
            self.problem(format!("{at}.totals.pages"), "a walk always fetches the first page");
        }
        if let Some(values) = &walk.totals.values {
            if walk.totals.count.is_some_and(|count| count as usize != values.len()) {
                self.problem(
                    format!("{at}.totals.values"),
                    "`count` and the number of `values` disagree: the walk can never meet both",
                );
            }
            for value in values {
                for text in json_strings(value) {
                    self.uses(&format!("{at}.totals.values"), text, scope);
                }
            }
        }
        if let Some(request) = &walk.after_first_page {
            self.request(&format!("{at}.after_first_page"), request, scope);
        }
    }

    /// A timing: on a repeated request (the fastest of at least 5), recording a valid name or bounding by one in scope.
    fn timing(&mut self, at: &str, timing: &crate::spec::model::TimingSpec, step: &StepSpec, scope: &Scope) {
        if step.repeat.is_none_or(|n| n < 5) || step.burst.is_some() || step.walk.is_some() || step.poll.is_some() {
            self.problem(at, "a timing takes the fastest of a `repeat` of at least 5 requests");
        }
        if timing.record.is_none() && timing.at_most.is_none() {
            self.problem(at, "a timing needs `record`, `at_most` or both");
        }
        if let Some(message) = timing.record.as_deref().and_then(variable_name_problem) {
            self.problem(format!("{at}.record"), message);
        }
        if let Some(bound) = &timing.at_most {
            if !(bound.factor.is_finite() && bound.factor > 0.0) {
                self.problem(format!("{at}.at_most.factor"), "the factor is a number greater than 0");
            }
            if !scope.names.contains(&bound.of) {
                self.problem(
                    format!("{at}.at_most.of"),
                    format!("`{}` is not recorded by an earlier step's `timing.record`", bound.of),
                );
            }
        }
    }

    /// The placeholders and typed forms (`$int`, `$repeat`/`$each`) of a request's JSON body; `{{index}}` is
    /// defined inside `$each`.
    fn body_template(&mut self, at: &str, value: &serde_json::Value, scope: &Scope) {
        use super::template::{BodyForm, MAX_BODY_REPEAT};
        use serde_json::Value;
        match value {
            Value::String(text) => self.uses(at, text, scope),
            Value::Array(items) => items.iter().for_each(|v| self.body_template(at, v, scope)),
            Value::Object(map) => match BodyForm::of(map) {
                Some(BodyForm::Int(text)) => match text.as_str() {
                    Some(text) => self.uses(at, text, scope),
                    None => self.problem(format!("{at}.$int"), "`$int` takes a text, e.g. \"{{index}}\""),
                },
                Some(BodyForm::Repeat(count, each)) => {
                    if count.as_u64().is_none_or(|n| n > MAX_BODY_REPEAT) {
                        self.problem(
                            format!("{at}.$repeat"),
                            format!("`$repeat` takes a whole number from 0 to {MAX_BODY_REPEAT}"),
                        );
                    }
                    let looped = Scope {
                        names: scope.names.clone(),
                        in_loop: true,
                    };
                    self.body_template(&format!("{at}.$each"), each, &looped);
                }
                None => {
                    for (key, v) in map {
                        if matches!(key.as_str(), "$int" | "$repeat" | "$each") {
                            self.problem(
                                format!("{at}.{key}"),
                                "`$int` is the only key of its object, and `$repeat` goes with `$each` and nothing else",
                            );
                        }
                        self.uses(at, key, scope);
                        self.body_template(&format!("{at}.{key}"), v, scope);
                    }
                }
            },
            _ => {}
        }
    }

    /// `replica` names one of the service's replicas; a restart, stop or logs step of a replicated service names
    /// one.
    fn replicas(&mut self, at: &str, step: &StepSpec) {
        let replicas = self.spec.service.replicas;
        let named = [
            ("request", step.request.as_ref().map(|r| r.replica), false),
            (
                "restart",
                step.restart.as_ref().map(|r| r.replica),
                step.restart.as_ref().is_some_and(|r| r.service.is_none()),
            ),
            ("stop", step.stop.as_ref().map(|s| s.replica), true),
            ("logs", step.logs.as_ref().map(|l| l.replica), true),
        ];
        for (kind, replica, needed) in named {
            match replica {
                Some(Some(n)) if n == 0 || n > replicas => self.problem(
                    format!("{at}.{kind}.replica"),
                    format!("replicas are numbered from 1 to {replicas} (`service.replicas`)"),
                ),
                Some(None) if needed && replicas > 1 => self.problem(
                    format!("{at}.{kind}"),
                    format!("the service runs as {replicas} replicas: say which one with `replica`"),
                ),
                _ => {}
            }
        }
    }

    fn request(&mut self, at: &str, request: &RequestSpec, scope: &Scope) {
        if !is_token(&request.method) {
            self.problem(
                format!("{at}.method"),
                format!("`{}` is not a valid HTTP method", request.method),
            );
        }
        if request.path.trim().is_empty() {
            self.problem(format!("{at}.path"), "the path is empty");
        }
        self.uses(&format!("{at}.path"), &request.path, scope);
        for (name, value) in &request.query {
            self.uses(&format!("{at}.query.{name}"), &value.0, scope);
        }
        for (name, value) in &request.headers {
            if !is_token(name) {
                self.problem(
                    format!("{at}.headers.{name}"),
                    format!("`{name}` is not a valid header name"),
                );
            }
            self.uses(&format!("{at}.headers.{name}"), &value.0, scope);
        }
        let bodies = [request.json.is_some(), request.body.is_some(), request.form.is_some()];
        if bodies.iter().filter(|b| **b).count() > 1 {
            self.problem(at, "a request has at most one of `json`, `body` and `form`");
        }
        if let Some(json) = &request.json {
            self.body_template(&format!("{at}.json"), json, scope);
        }
        if let Some(body) = &request.body {
            self.uses(&format!("{at}.body"), body, scope);
        }
        for (name, value) in request.form.iter().flatten() {
            self.uses(&format!("{at}.form.{name}"), &value.0, scope);
        }
    }

    fn expect(&mut self, at: &str, expect: &ExpectSpec, step: &StepSpec, scope: &Scope) {
        match (&expect.statuses, &step.burst) {
            (Some(_), None) => self.problem(
                format!("{at}.statuses"),
                "`statuses` counts the responses of a burst; use `status` here",
            ),
            (Some(statuses), Some(burst)) => {
                let least: u32 = statuses.values().map(|c| c.least()).sum();
                let open = statuses.values().any(|c| c.is_open());
                let total = least;
                if (!open && total != burst.count) || (open && least > burst.count) {
                    self.problem(
                        format!("{at}.statuses"),
                        format!(
                            "the counts add up to {total} but the burst sends {}: they can never all match",
                            burst.count
                        ),
                    );
                }
                if let Some(code) = statuses.keys().find(|c| !(100..=599).contains(*c)) {
                    self.problem(format!("{at}.statuses"), format!("{code} is not an HTTP status code"));
                }
            }
            _ => {}
        }
        let no_content = expect.status.as_ref().is_some_and(|s| s.forbids_content());
        let wants_content = !expect.json.is_empty()
            || expect.schema.is_some()
            || expect
                .body
                .as_ref()
                .is_some_and(|b| b.empty == Some(false) || b.contains.is_some() || b.matches.is_some());
        if no_content && wants_content {
            let status = expect.status.as_ref().map(ToString::to_string).unwrap_or_default();
            self.problem(
                format!("{at}.status"),
                format!("a {status} response has no content, so the body expectations can never pass"),
            );
        }
        for (name, check) in &expect.headers {
            if !is_token(name) {
                self.problem(
                    format!("{at}.headers.{name}"),
                    format!("`{name}` is not a valid header name"),
                );
            }
            self.header_check(&format!("{at}.headers.{name}"), check, scope);
        }
        for (i, check) in expect.json.iter().enumerate() {
            self.json_check(&format!("{at}.json[{i}]"), check, scope);
        }
        if let Some(schema) = &expect.schema
            && let Err(e) = jsonschema::validator_for(schema)
        {
            self.problem(format!("{at}.schema"), format!("invalid JSON Schema: {e}"));
        }
        if let Some(body) = &expect.body {
            self.body_check(&format!("{at}.body"), body, scope);
        }
        for (i, check) in expect.metrics.iter().enumerate() {
            let field = format!("{at}.metrics[{i}]");
            self.metric_selector(&field, &check.name, &check.labels, scope);
            if check.exists.is_none() && check.kind.is_none() && check.gte.is_none() && check.increase.is_none() {
                self.problem(&field, "the metric check says nothing to check");
            }
            if check.exists == Some(false) && (check.kind.is_some() || check.gte.is_some() || check.increase.is_some())
            {
                self.problem(&field, "a metric that must not exist has no type or value to check");
            }
            if let Some(increase) = &check.increase {
                self.uses(&format!("{field}.increase.from"), &increase.from, scope);
                if !increase.at_least.is_finite() {
                    self.problem(format!("{field}.increase.at_least"), "not a finite number");
                }
            }
            if check.gte.is_some_and(|n| !n.is_finite()) {
                self.problem(format!("{field}.gte"), "not a finite number");
            }
        }
        for (name, check) in &expect.cookies {
            let field = format!("{at}.cookies.{name}");
            if !is_token(name) {
                self.problem(&field, format!("`{name}` is not a valid cookie name"));
            }
            if let Some(values) = &check.same_site
                && (values.is_empty()
                    || values
                        .iter()
                        .any(|v| !["strict", "lax", "none"].contains(&v.to_ascii_lowercase().as_str())))
            {
                self.problem(format!("{field}.same_site"), "SameSite is Strict, Lax or None");
            }
            if let Some(other) = &check.not_equals {
                self.uses(&format!("{field}.not_equals"), other, scope);
            }
            let checks_something = check.exists.is_some()
                || check.http_only.is_some()
                || check.secure.is_some()
                || check.same_site.is_some()
                || check.path.is_some()
                || check.cleared.is_some()
                || check.not_equals.is_some();
            if !checks_something {
                self.problem(&field, "the cookie check says nothing to check");
            }
        }
        if let Some(media) = &expect.content_type
            && (!media.contains('/') || media.contains(';'))
        {
            self.problem(
                format!("{at}.content_type"),
                format!("`{media}` is not a media type such as application/json (no parameters)"),
            );
        }
    }

    /// A duration from the spec must lie between `min` and [`MAX_DURATION`].
    fn duration(&mut self, at: &str, duration: Duration, min: Duration) {
        if duration < min || duration > MAX_DURATION {
            self.problem(
                at,
                format!(
                    "{} ms is outside {} ms ..= {} s",
                    duration.as_millis(),
                    min.as_millis(),
                    MAX_DURATION.as_secs()
                ),
            );
        }
    }

    fn range(&mut self, at: &str, gt: Option<f64>, gte: Option<f64>, lt: Option<f64>, lte: Option<f64>) {
        if let Some(bad) = [gt, gte, lt, lte].into_iter().flatten().find(|n| !n.is_finite()) {
            self.problem(at, format!("{bad} is not a number a value can be compared with"));
            return;
        }
        let low = gt.into_iter().chain(gte).fold(f64::NEG_INFINITY, f64::max);
        let high = lt.into_iter().chain(lte).fold(f64::INFINITY, f64::min);
        let strict = gt == Some(low) || lt == Some(high);
        if low > high || (strict && low == high) {
            self.problem(
                at,
                format!("no number is above {low} and below {high}: the range is empty"),
            );
        }
    }

    fn header_check(&mut self, at: &str, check: &HeaderCheck, scope: &Scope) {
        let value_checks = check.equals.is_some()
            || check.matches.is_some()
            || check.contains.is_some()
            || check.excludes.is_some()
            || check.members.is_some()
            || check.distinct.is_some()
            || check.not_matches.is_some()
            || check.gt.is_some()
            || check.gte.is_some()
            || check.lt.is_some()
            || check.lte.is_some();
        if check.exists.is_none() && check.count.is_none() && !value_checks {
            self.problem(at, "the header check says nothing to check");
        }
        if check.exists == Some(false) && (value_checks || check.count.is_some_and(|c| c > 0)) {
            self.problem(at, "an absent header has no value to check");
        }
        if check.count == Some(0) && (value_checks || check.exists == Some(true)) {
            self.problem(
                at,
                "`count: 0` means the header is absent, so it cannot also have a value",
            );
        }
        self.range(at, check.gt, check.gte, check.lt, check.lte);
        for text in [&check.equals, &check.contains, &check.excludes].into_iter().flatten() {
            self.uses(at, text, scope);
        }
        if let Some(members) = &check.members {
            if members.is_empty() {
                self.problem(
                    format!("{at}.members"),
                    "an empty list of members: use `exists: false` for an absent header",
                );
            }
            for member in members {
                self.uses(at, member, scope);
            }
        }
    }

    fn json_check(&mut self, at: &str, check: &JsonCheck, scope: &Scope) {
        self.json_path(&format!("{at}.path"), &check.path, scope);
        let numeric = check.gt.is_some() || check.gte.is_some() || check.lt.is_some() || check.lte.is_some();
        let value_checks = check.equals.is_some()
            || check.kind.is_some()
            || check.length.is_some()
            || numeric
            || check.matches.is_some();
        if check.exists.is_none() && check.count.is_none() && !value_checks {
            self.problem(at, "the JSON check says nothing to check");
        }
        if (check.exists == Some(false) || check.count == Some(0)) && value_checks {
            self.problem(at, "a path that selects nothing has no value to check");
        }
        if check.count.is_some_and(|c| c != 1) && value_checks {
            self.problem(
                at,
                "value checks need the path to select exactly one node, but `count` says otherwise",
            );
        }
        if let Some(kind) = check.kind {
            let clash = match kind {
                JsonType::String => numeric,
                JsonType::Number | JsonType::Integer => check.length.is_some() || check.matches.is_some(),
                JsonType::Array | JsonType::Object => numeric || check.matches.is_some(),
                JsonType::Boolean | JsonType::Null => numeric || check.matches.is_some() || check.length.is_some(),
            };
            if clash {
                self.problem(
                    at,
                    format!("a value of type {kind:?} can never meet the other checks").to_lowercase(),
                );
            }
        }
        if numeric && (check.length.is_some() || check.matches.is_some()) {
            self.problem(at, "a value cannot be a number and have a length or match a pattern");
        }
        self.range(at, check.gt, check.gte, check.lt, check.lte);
        if let Some(equals) = &check.equals {
            for s in json_strings(equals) {
                self.uses(&format!("{at}.equals"), s, scope);
            }
        }
    }

    fn json_path(&mut self, at: &str, path: &str, scope: &Scope) {
        self.uses(at, path, scope);
        // Placeholders are filled at run time; check the syntax with a neutral value in their place.
        let filled = super::template::render(path, |_| Some("x".to_string())).unwrap_or_default();
        if let Err(e) = serde_json_path::JsonPath::parse(&filled) {
            self.problem(at, format!("invalid JSONPath `{path}`: {e}"));
        }
    }

    fn body_check(&mut self, at: &str, body: &BodyCheck, scope: &Scope) {
        if body.empty.is_none()
            && body.equals.is_none()
            && body.contains.is_none()
            && body.matches.is_none()
            && body.not_matches.is_none()
        {
            self.problem(at, "the body check says nothing to check");
        }
        if body.empty == Some(true) && (body.contains.is_some() || body.matches.is_some()) {
            self.problem(at, "an empty body cannot contain or match anything");
        }
        for (field, text) in [("contains", &body.contains), ("equals", &body.equals)] {
            if let Some(text) = text {
                self.uses(&format!("{at}.{field}"), text, scope);
            }
        }
    }

    fn metric_selector(&mut self, at: &str, name: &str, labels: &indexmap::IndexMap<String, String>, scope: &Scope) {
        let valid = |s: &str, colon: bool| {
            let mut chars = s.chars();
            chars
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || (colon && c == ':'))
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || (colon && c == ':'))
        };
        if !valid(name, true) {
            self.problem(
                format!("{at}.name"),
                format!("`{name}` is not a Prometheus metric name"),
            );
        }
        for (label, value) in labels {
            if !valid(label, false) {
                self.problem(format!("{at}.labels.{label}"), format!("`{label}` is not a label name"));
            }
            self.uses(&format!("{at}.labels.{label}"), value, scope);
        }
    }

    fn capture(&mut self, at: &str, capture: &CaptureSpec, scope: &Scope) {
        if let Some(name) = &capture.cookie {
            if capture.json.is_some() || capture.header.is_some() || capture.regex.is_some() || capture.metric.is_some()
            {
                self.problem(
                    at,
                    "capture a cookie alone, not with `json`, `header`, `regex` or `metric`",
                );
            }
            if !is_token(name) {
                self.problem(format!("{at}.cookie"), format!("`{name}` is not a valid cookie name"));
            }
            return;
        }
        if let Some(metric) = &capture.metric {
            if capture.json.is_some() || capture.header.is_some() || capture.regex.is_some() {
                self.problem(at, "capture from `metric` alone");
            }
            return self.metric_selector(&format!("{at}.metric"), &metric.name, &metric.labels, scope);
        }
        match (&capture.json, &capture.header) {
            (Some(_), Some(_)) => self.problem(at, "capture from `json` or from `header`, not both"),
            (None, None) if capture.regex.is_none() => {
                self.problem(at, "a capture needs `json`, `header` or `regex` (on the body)")
            }
            (Some(path), None) => {
                if capture.regex.is_some() {
                    self.problem(at, "`regex` applies to a header or the body, not to a JSONPath");
                }
                self.json_path(&format!("{at}.json"), path, scope);
            }
            _ => {}
        }
    }

    /// Every placeholder in `text` must name a variable in scope.
    fn uses(&mut self, at: &str, text: &str, scope: &Scope) {
        for name in placeholders(text) {
            let known = if let Some(var) = name.strip_prefix("env.") {
                var == "PORT" || self.spec.service.env.contains_key(var)
            } else if let Some(server) = name.strip_prefix("server.") {
                self.spec.servers.contains_key(server)
            } else if name == "index" {
                scope.in_loop
            } else {
                BUILTINS.iter().any(|(b, _)| *b == name)
                    || scope.names.contains(name)
                    || super::template::tamper_target(name).is_some_and(|var| scope.names.contains(var))
                    || super::template::filler_size(name).is_some()
                    || super::template::now_offset(name).is_some()
            };
            if !known {
                let message = if name.starts_with("env.") {
                    format!("undefined variable `{name}`: add it to service.env")
                } else if name.starts_with("server.") {
                    format!("undefined variable `{name}`: no server of that name in `servers`")
                } else if name == "index" {
                    "`{{index}}` is only defined inside `repeat`, `burst` or a body's `$each`".to_string()
                } else if name.starts_with("filler.") {
                    format!(
                        "`{name}` needs a whole number of bytes up to {}",
                        super::template::MAX_FILLER
                    )
                } else {
                    format!("undefined variable `{name}`: define it in `vars` or capture it in an earlier step")
                };
                self.problem(at, message);
            }
        }
    }
}
