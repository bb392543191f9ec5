//! The compiled plan: what validation turns a spec into, and what the runtime runs.
//!
//! The serde model ([`crate::spec::model`]) stays the schema source and gives located errors; once it is valid,
//! each probe's steps compile into [`Step`]s — one variant per kind, with JSONPaths and JSON Schemas compiled
//! wherever no placeholder occurs. The runtime matches on [`Action`] (one file per kind in its `engine::step`).
//!
//! Adding a step kind: a field on [`crate::spec::model::StepSpec`], its checks in `spec::validate`, a variant
//! here with its compilation in [`compile_step`], and its runner.

use crate::expect::{Capture, Expect, PathExpr};
use crate::spec::model::{ChallengeSpec, ProbeSpec, RequestSpec, StepSpec, WaitSpec, WalkSpec};

/// One probe, compiled.
#[derive(Debug, Clone)]
pub struct ProbePlan {
    /// The probe's id.
    pub id: String,
    /// Its steps, in order.
    pub steps: Vec<Step>,
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
    /// Pause.
    Wait(WaitSpec),
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
    let action = match (request, &step.wait, &step.burst, &step.walk) {
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
            captures: step
                .capture
                .iter()
                .map(|(name, spec)| Capture::new(name, spec))
                .collect(),
            repeat: step.repeat,
        })),
        (None, wait, ..) => Action::Wait(wait.clone().unwrap_or_default()),
    };
    Step {
        name: step.name.clone(),
        action,
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
}
