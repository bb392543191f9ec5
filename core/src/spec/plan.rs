//! The compiled plan: what validation turns a spec into, and what the runtime runs.
//!
//! The serde model ([`crate::spec::model`]) stays the schema source and gives located errors; once it is valid,
//! each probe's steps compile into [`Step`]s — one variant per kind, with JSONPaths and JSON Schemas compiled
//! wherever no placeholder occurs. The runtime matches on [`Action`] (one file per kind in its `engine::step`).
//!
//! Adding a step kind: a field on [`crate::spec::model::StepSpec`], its checks in `spec::validate`, a variant
//! here with its compilation in [`compile_step`], and its runner.

use crate::spec::model::{
    CallsSpec, CaptureSpec, ChallengeSpec, ExpectSpec, ImageSpec, LogsSpec, PollSpec, ProbeSpec, RequestSpec,
    RestartSpec, ServeSpec, SignSpec, StartSpec, StepSpec, StopSpec, WaitSpec, WalkSpec,
};
use crate::spec::template::Lookup;

/// One probe, compiled.
#[derive(Debug, Clone)]
pub struct ProbePlan {
    /// The probe's id.
    pub id: String,
    /// Its steps, in order.
    pub steps: Vec<Step>,
}

impl ProbePlan {
    /// The time this probe spends on purpose, whatever the service does: its fixed waits, the quiet periods its
    /// `calls` steps wait out, and a nominal half second per restart, stop or start (a container's start costs
    /// that much). A lower bound of how long it takes, used to start the longest challenges first.
    pub fn planned_pause(&self) -> std::time::Duration {
        const LIFECYCLE: std::time::Duration = std::time::Duration::from_millis(500);
        self.steps
            .iter()
            .map(|step| match &step.action {
                Action::Wait(wait) => wait.duration.map(|d| d.0).unwrap_or_default(),
                Action::Calls(calls) => calls.spec.quiet.map(|d| d.0).unwrap_or_default(),
                Action::Restart(_) | Action::Stop(_) | Action::Start(_) => LIFECYCLE,
                _ => std::time::Duration::ZERO,
            })
            .sum()
    }
}

/// One step, compiled.
#[derive(Debug, Clone)]
pub struct Step {
    /// Its name in reports, if the spec gave one.
    pub name: Option<String>,
    /// What it does.
    pub action: Action,
}

/// What a step does: exactly one kind.
#[derive(Debug, Clone)]
pub enum Action {
    /// Send one request (or the same request `repeat` times in sequence) and check each response.
    Send(Box<Send>),
    /// Send `count` requests over `concurrency` connections released together.
    Burst(Box<Burst>),
    /// Follow pagination from the request's page to the last.
    Walk(Box<Walk>),
    /// Send the request until a response meets a condition.
    Poll(Box<Poll>),
    /// Pause.
    Wait(WaitSpec),
    /// Restart the service, optionally with changed env.
    Restart(RestartSpec),
    /// Stop the service with SIGTERM and check how it ended.
    Stop(Box<Stop>),
    /// Start another instance with changed env; it must refuse to start.
    Start(StartSpec),
    /// Check the service's output since the probe began.
    Logs(LogsSpec),
    /// Check the configuration of the service's image.
    Image(ImageSpec),
    /// Change what a runner-hosted server answers.
    Serve(ServeSpec),
    /// Check the calls a runner-hosted server received.
    Calls(Box<Calls>),
    /// Offer one TLS version and check whether the service accepts it.
    Handshake(crate::spec::model::HandshakeSpec),
}

/// A calls step.
#[derive(Debug, Clone)]
pub struct Calls {
    /// As written.
    pub spec: CallsSpec,
    /// The header, JSON, body and content-type checks of `each`, compiled as a response's would be.
    pub each: Expect,
}

/// A stop step.
#[derive(Debug, Clone)]
pub struct Stop {
    /// As written.
    pub spec: StopSpec,
    /// What each in-flight response must look like (any 2xx by default).
    pub in_flight_expect: Expect,
}

/// A request step.
#[derive(Debug, Clone)]
pub struct Send {
    /// The request.
    pub request: RequestSpec,
    /// What each response must look like.
    pub expect: Expect,
    /// Values taken from the last response, in order.
    pub captures: Vec<Capture>,
    /// How many times the request is sent in sequence (`None`: once, not a repeat).
    pub repeat: Option<u32>,
    /// How the request is signed, if it is.
    pub sign: Option<SignSpec>,
    /// The fastest response time to record or bound.
    pub timing: Option<crate::spec::model::TimingSpec>,
}

/// A poll step.
#[derive(Debug, Clone)]
pub struct Poll {
    /// The request.
    pub request: RequestSpec,
    /// What every response must look like.
    pub expect: Expect,
    /// What the response that ends the polling looks like.
    pub until: Expect,
    /// Values taken from the last response, in order.
    pub captures: Vec<Capture>,
    /// As written (pace, deadline, the value that only moves forward).
    pub spec: PollSpec,
    /// Where the forward-only value is.
    pub forward: Option<PathExpr>,
}

/// A burst step.
#[derive(Debug, Clone)]
pub struct Burst {
    /// The request (its `{{index}}` differs per request).
    pub request: RequestSpec,
    /// What every response must look like, and the status counts.
    pub expect: Expect,
    /// How many requests in all.
    pub count: u32,
    /// How many at once.
    pub concurrency: u32,
}

/// A walk step.
#[derive(Debug, Clone)]
pub struct Walk {
    /// The first page's request.
    pub request: RequestSpec,
    /// What every page must look like.
    pub expect: Expect,
    /// As written (next page, totals, the request after the first page).
    pub spec: WalkSpec,
    /// The values collected from every page.
    pub collect: PathExpr,
    /// Where the next page's cursor is (walks by cursor).
    pub cursor: Option<PathExpr>,
}

/// Compiles every probe of a valid spec, in order.
pub fn compile(spec: &ChallengeSpec) -> Vec<ProbePlan> {
    spec.probes.iter().map(compile_probe).collect()
}

/// Compiles one probe of a valid spec.
pub fn compile_probe(probe: &ProbeSpec) -> ProbePlan {
    ProbePlan {
        id: probe.id.clone(),
        steps: probe.steps.iter().map(compile_step).collect(),
    }
}

/// Compiles one step. Validation made sure it is exactly one kind: a wait, or a request alone, repeated, as a
/// burst or as a walk.
pub fn compile_step(step: &StepSpec) -> Step {
    let expect = || Expect::new(step.expect.clone().unwrap_or_default());
    let request = step.request.clone();
    let captures = || {
        step.capture
            .iter()
            .map(|(name, spec)| Capture::new(name, spec))
            .collect()
    };
    let action = match (request, &step.wait, &step.burst, &step.walk) {
        (Some(request), ..) if step.poll.is_some() => {
            let spec = step.poll.clone().unwrap_or_default();
            Action::Poll(Box::new(Poll {
                request,
                expect: expect(),
                until: Expect::new(spec.until.clone()),
                captures: captures(),
                forward: spec.forward.as_ref().map(|f| PathExpr::new(&f.path)),
                spec,
            }))
        }
        (Some(request), _, Some(burst), _) => Action::Burst(Box::new(Burst {
            request,
            expect: expect(),
            count: burst.count,
            concurrency: burst.concurrency,
        })),
        (Some(request), _, _, Some(walk)) => Action::Walk(Box::new(Walk {
            request,
            expect: expect(),
            spec: walk.clone(),
            collect: PathExpr::new(&walk.collect),
            cursor: walk.next.cursor.as_deref().map(PathExpr::new),
        })),
        (Some(request), ..) => Action::Send(Box::new(Send {
            request,
            expect: expect(),
            captures: captures(),
            repeat: step.repeat,
            sign: step.sign.clone(),
            timing: step.timing.clone(),
        })),
        (None, Some(wait), ..) => Action::Wait(wait.clone()),
        (None, None, ..) => match (&step.restart, &step.stop, &step.start, &step.logs) {
            (Some(restart), ..) => Action::Restart(restart.clone()),
            (_, Some(stop), ..) => Action::Stop(Box::new(Stop {
                in_flight_expect: Expect::new(stop.in_flight.as_ref().and_then(|f| f.expect.clone()).unwrap_or_else(
                    || ExpectSpec {
                        status: Some(crate::types::StatusSpec::Class(2)),
                        ..Default::default()
                    },
                )),
                spec: stop.clone(),
            })),
            (_, _, Some(start), _) => Action::Start(start.clone()),
            (_, _, _, Some(logs)) => Action::Logs(logs.clone()),
            _ if step.image.is_some() => Action::Image(step.image.clone().unwrap_or_default()),
            _ if step.serve.is_some() => Action::Serve(step.serve.clone().unwrap_or_default()),
            _ if step.handshake.is_some() => match step.handshake.clone() {
                Some(handshake) => Action::Handshake(handshake),
                None => Action::Wait(WaitSpec::default()),
            },
            _ if step.calls.is_some() => {
                let spec = step.calls.clone().unwrap_or_default();
                let each = spec.each.clone().unwrap_or_default();
                Action::Calls(Box::new(Calls {
                    each: Expect::new(ExpectSpec {
                        headers: each.headers,
                        json: each.json,
                        body: each.body,
                        content_type: each.content_type,
                        ..Default::default()
                    }),
                    spec,
                }))
            }
            // Validation refuses a step that is nothing; should one get here, it waits for nothing.
            _ => Action::Wait(WaitSpec::default()),
        },
    };
    Step {
        name: step.name.clone(),
        action,
    }
}

/// A JSONPath from a spec: parsed once when it has no placeholder, else parsed after filling them in.
#[derive(Debug, Clone)]
pub enum PathExpr {
    /// Parsed at compile time.
    Fixed(serde_json_path::JsonPath, String),
    /// Filled in and parsed when used.
    Template(String),
}

impl PathExpr {
    /// Compiles `text` when it is fixed and valid; otherwise it is parsed (and any error reported) when used.
    pub fn new(text: &str) -> Self {
        match crate::spec::template::placeholders(text).is_empty() {
            true => match serde_json_path::JsonPath::parse(text) {
                Ok(path) => PathExpr::Fixed(path, text.to_string()),
                Err(_) => PathExpr::Template(text.to_string()),
            },
            false => PathExpr::Template(text.to_string()),
        }
    }

    /// The path and its text with placeholders filled, or the text and why it is not a JSONPath.
    pub fn resolve(
        &self,
        lookup: &mut Lookup<'_>,
    ) -> Result<(std::borrow::Cow<'_, serde_json_path::JsonPath>, String), (String, String)> {
        match self {
            PathExpr::Fixed(path, text) => Ok((std::borrow::Cow::Borrowed(path), text.clone())),
            PathExpr::Template(text) => {
                let filled = crate::spec::template::fill(text, lookup);
                match serde_json_path::JsonPath::parse(&filled) {
                    Ok(path) => Ok((std::borrow::Cow::Owned(path), filled)),
                    Err(e) => Err((filled, e.to_string())),
                }
            }
        }
    }
}

/// An [`ExpectSpec`] compiled for evaluation: its JSONPaths parsed and its JSON Schema compiled once, not per
/// response (a burst of 10,000 responses compiles nothing 10,000 times).
#[derive(Clone)]
pub struct Expect {
    /// The expectations as written.
    pub spec: ExpectSpec,
    /// The path of each of `spec.json`, in order.
    pub(crate) paths: Vec<PathExpr>,
    /// The compiled schema, or why it does not compile.
    pub(crate) schema: Option<Result<std::sync::Arc<jsonschema::Validator>, String>>,
}

impl Expect {
    /// Compiles expectations.
    pub fn new(spec: ExpectSpec) -> Self {
        let paths = spec.json.iter().map(|check| PathExpr::new(&check.path)).collect();
        let schema = spec.schema.as_ref().map(|schema| {
            jsonschema::validator_for(schema)
                .map(std::sync::Arc::new)
                .map_err(|e| e.to_string())
        });
        Self { spec, paths, schema }
    }

    /// The compiled path of each JSON check, in order.
    pub fn paths(&self) -> &[PathExpr] {
        &self.paths
    }

    /// Whether a schema was given and compiled.
    pub fn schema_compiled(&self) -> bool {
        matches!(self.schema, Some(Ok(_)))
    }
}

impl Default for Expect {
    fn default() -> Self {
        Self::new(ExpectSpec::default())
    }
}

impl std::fmt::Debug for Expect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Expect")
            .field("spec", &self.spec)
            .field("paths", &self.paths)
            .finish_non_exhaustive()
    }
}

/// A capture compiled for use: its name, its spec and its JSONPath parsed once.
#[derive(Debug, Clone)]
pub struct Capture {
    /// The variable it sets.
    pub name: String,
    /// As written.
    pub spec: CaptureSpec,
    pub(crate) json: Option<PathExpr>,
}

impl Capture {
    /// Compiles a capture.
    pub fn new(name: &str, spec: &CaptureSpec) -> Self {
        Self {
            name: name.to_string(),
            spec: spec.clone(),
            json: spec.json.as_deref().map(PathExpr::new),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(yaml: &str) -> Step {
        compile_step(&serde_yaml::from_str(yaml).expect("test step parses"))
    }

    #[test]
    fn each_step_compiles_to_its_kind_with_fixed_paths_parsed_once() {
        let send = step(
            "{ request: { path: /a }, expect: { json: [ { path: '$.id', exists: true }, { path: '$.items[{{i}}]', exists: true } ] }, capture: { id: { json: '$.id' } }, repeat: 3 }",
        );
        let Action::Send(send) = send.action else {
            panic!("a send")
        };
        assert_eq!(send.repeat, Some(3));
        assert!(matches!(send.expect.paths()[0], PathExpr::Fixed(..)));
        assert!(
            matches!(send.expect.paths()[1], PathExpr::Template(..)),
            "placeholders are filled at run time"
        );
        assert_eq!(send.captures[0].name, "id");

        let burst = step(
            "{ request: { path: /a }, burst: { count: 10, concurrency: 5 }, expect: { schema: { type: object } } }",
        );
        let Action::Burst(burst) = burst.action else {
            panic!("a burst")
        };
        assert_eq!((burst.count, burst.concurrency), (10, 5));
        assert!(
            burst.expect.schema_compiled(),
            "the schema is compiled once, not per response"
        );

        let walk = step("{ request: { path: /a }, walk: { next: { cursor: '$.next' }, collect: '$.items[*].id' } }");
        let Action::Walk(walk) = walk.action else {
            panic!("a walk")
        };
        assert!(matches!(walk.collect, PathExpr::Fixed(..)));
        assert!(matches!(walk.cursor, Some(PathExpr::Fixed(..))));

        let wait = step("{ name: pause, wait: { duration: 1s } }");
        assert_eq!(wait.name.as_deref(), Some("pause"));
        assert!(matches!(wait.action, Action::Wait(_)));
    }

    #[test]
    fn the_planned_pause_counts_waits_quiet_periods_and_lifecycle_steps() {
        let plan = ProbePlan {
            id: "p".to_string(),
            steps: [
                "{ wait: { duration: 1s } }",
                "{ wait: { seconds: '{{retry_after}}' } }",
                "{ calls: { server: s, count: 1, quiet: 300ms } }",
                "{ restart: {} }",
                "{ request: { path: /a }, repeat: 5 }",
            ]
            .map(step)
            .to_vec(),
        };
        assert_eq!(plan.planned_pause(), std::time::Duration::from_millis(1800));
    }
}
