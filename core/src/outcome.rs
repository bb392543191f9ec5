//! The results of a run as plain data: what every report format reads and the JSON report serializes.

use schemars::JsonSchema;
use serde::Serialize;

use crate::expect::Check;
use crate::spec::model::Question;

/// Version of the JSON report format; bumped on any incompatible change.
pub const FORMAT_VERSION: u32 = 1;

/// A whole run: every challenge graded.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct RunReport {
    /// [`FORMAT_VERSION`].
    pub format_version: u32,
    /// The proctor version that produced the report.
    pub proctor_version: String,
    /// The seed of every random value; `--seed` reproduces them.
    pub seed: u64,
    /// The run's id: Docker resources of the run carry the label `dev.proctor.run=<run_id>`.
    pub run_id: String,
    /// When the run started (RFC 3339, UTC).
    pub started_at: String,
    /// Wall time of the run.
    pub duration_ms: u64,
    /// Whether the run was interrupted (Ctrl-C); unfinished probes are `skipped`.
    pub interrupted: bool,
    /// One entry per challenge, in the order given.
    pub challenges: Vec<ChallengeReport>,
    /// The tail of the image build's output (`--path` runs).
    pub build_log: Option<String>,
    /// The `--probe` patterns of a partial run (empty: every probe ran); scores cover the selected probes only.
    pub probe_filter: Vec<String>,
}

impl RunReport {
    /// Points earned and points possible over every challenge.
    pub fn points(&self) -> (u32, u32) {
        self.challenges
            .iter()
            .fold((0, 0), |(e, t), c| (e + c.score.earned, t + c.score.total))
    }
}

/// One challenge graded against one target.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ChallengeReport {
    /// Challenge id.
    pub id: String,
    /// Title.
    pub title: String,
    /// The interview question.
    pub question: Question,
    /// Where the spec came from.
    pub origin: String,
    /// What was graded (a URL, a command, the reference service).
    pub target: String,
    /// The pass threshold in percent.
    pub threshold: f64,
    /// Why the target could not be started or reached; no probe ran.
    pub target_error: Option<String>,
    /// The score.
    pub score: Score,
    /// Every probe, in spec order.
    pub probes: Vec<ProbeReport>,
    /// The tail of the service's output, when proctor started it.
    pub logs: Option<String>,
    /// Wall time, including start and stop of the target.
    pub duration_ms: u64,
}

/// Whose fault it is that a step did not pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blame {
    /// The service did not behave as required: the probe failed.
    Service,
    /// proctor or its environment could not run the step: the probe errored, and the grade is incomplete.
    Proctor,
}

impl Blame {
    /// The probe verdict this blame gives.
    pub fn verdict(self) -> Verdict {
        match self {
            Blame::Service => Verdict::Failed,
            Blame::Proctor => Verdict::Errored,
        }
    }
}

/// The verdict on one probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Every step met its expectations.
    Passed,
    /// The service did not behave as required (its fault).
    Failed,
    /// The probe could not run (proctor's or the environment's fault).
    Errored,
    /// The probe did not run (interrupted, or the target never started).
    Skipped,
    /// The probe checks what this kind of target does not have (an image's configuration, for a target that is
    /// not a container): shown, and left out of the score.
    NotApplicable,
}

/// One probe's result.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ProbeReport {
    /// Probe id.
    pub id: String,
    /// Title.
    pub title: String,
    /// Category.
    pub category: String,
    /// Points the probe is worth.
    pub points: u32,
    /// The rule and its source.
    pub why: String,
    /// The hint.
    pub hint: String,
    /// Whether the spec marks the probe hidden.
    pub hidden: bool,
    /// The verdict.
    pub verdict: Verdict,
    /// One line saying what went wrong (failed, errored or skipped probes).
    pub message: Option<String>,
    /// Wall time.
    pub duration_ms: u64,
    /// The steps that ran, up to and including the first that failed.
    pub steps: Vec<StepReport>,
}

impl ProbeReport {
    /// The points this probe earned: all of them when it passed, none otherwise.
    pub fn earned(&self) -> u32 {
        if self.verdict == Verdict::Passed {
            self.points
        } else {
            0
        }
    }

    /// A report for a probe of the spec with the given outcome.
    pub fn new(
        probe: &crate::spec::model::ProbeSpec,
        verdict: Verdict,
        message: Option<String>,
        duration_ms: u64,
        steps: Vec<StepReport>,
    ) -> Self {
        Self {
            id: probe.id.clone(),
            title: probe.title.clone(),
            category: probe.category.clone(),
            points: probe.points,
            why: probe.why.clone(),
            hint: probe.hint.clone(),
            hidden: probe.visibility == crate::spec::model::Visibility::Hidden,
            verdict,
            message,
            duration_ms,
            steps,
        }
    }
}

/// One step that ran.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct StepReport {
    /// 1-based step number.
    pub number: usize,
    /// What the step did, with values filled in, e.g. `POST /items/3f2a` or `GET /quote (burst of 15 × 15 at
    /// once)` or `wait 2.3s (retry_after = 2 s, plus 250 ms)`.
    pub label: String,
    /// The kind of step, for replaying it by hand.
    pub kind: StepKind,
    /// The values the step captured for later steps.
    pub captures: Vec<CaptureRecord>,
    /// The (last, or first failing) request sent.
    pub request: Option<RequestRecord>,
    /// Its response.
    pub response: Option<ResponseRecord>,
    /// Every expectation, evaluated.
    pub checks: Vec<Check>,
    /// A failure that is not an expectation (no response, capture failed, ...).
    pub error: Option<String>,
    /// Whether the step passed.
    pub passed: bool,
    /// Wall time of the step (for a wait: the pause itself).
    pub duration_ms: u64,
}

impl StepReport {
    /// One line for a step that did not pass: its error and its first failed check (expected vs actual), either or both.
    pub fn summary(&self) -> String {
        let check = self
            .checks
            .iter()
            .find(|c| !c.passed)
            .map(|c| format!("{}: expected {}, got {}", c.what, c.expected, c.actual));
        let what = match (&self.error, check) {
            (Some(error), Some(check)) => format!("{error}: {check}"),
            (Some(error), None) => error.clone(),
            (None, Some(check)) => check,
            (None, None) => return format!("step {} ({})", self.number, self.label),
        };
        format!("step {} ({}): {what}", self.number, self.label)
    }
}

/// What kind of step ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum StepKind {
    /// One request.
    Request,
    /// The same request sent `times` times in sequence.
    Repeat {
        /// How many requests.
        times: u32,
    },
    /// `count` requests, `concurrency` at once.
    Burst {
        /// How many requests.
        count: u32,
        /// How many at once.
        concurrency: u32,
    },
    /// A walk through every page; the request is the last page fetched.
    Walk,
    /// The same request until a condition held; the request and response are the last ones.
    Poll {
        /// How many requests were sent.
        requests: u32,
    },
    /// A pause.
    Wait {
        /// Its length.
        ms: u64,
    },
    /// The service was restarted.
    Restart,
    /// The service was stopped with SIGTERM.
    Stop,
    /// Another instance was started with other env.
    Start,
    /// The service's output was checked.
    Logs,
    /// The service's image was inspected.
    Image,
    /// A runner-hosted server was told to answer differently.
    Serve,
    /// The calls a runner-hosted server received were checked.
    Calls,
    /// A TLS handshake offered one protocol version.
    Handshake,
}

/// A value a step captured.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct CaptureRecord {
    /// The variable's name.
    pub name: String,
    /// Where it came from.
    pub from: CaptureFrom,
    /// The value this run saw.
    pub value: String,
}

/// Where a captured value came from, as far as a replay script can take it again.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum CaptureFrom {
    /// A JSONPath into the body.
    Json {
        /// The path.
        path: String,
    },
    /// A response header.
    Header {
        /// Its name.
        name: String,
    },
    /// A cookie the response set: replays use the value this run saw.
    Cookie {
        /// Its name.
        name: String,
    },
    /// A regular expression: replays use the value this run saw.
    Regex,
}

/// A request as sent.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct RequestRecord {
    /// Method.
    pub method: String,
    /// Full URL.
    pub url: String,
    /// The path and query, relative to the service's base URL (what a replay against another address sends).
    pub target: String,
    /// Headers set by the spec.
    pub headers: Vec<(String, String)>,
    /// Body text, if any.
    pub body: Option<String>,
}

/// A response as received (body clipped).
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ResponseRecord {
    /// Status code.
    pub status: u16,
    /// Header field lines.
    pub headers: Vec<(String, String)>,
    /// The body, clipped for the report.
    pub body: String,
    /// Time to the end of the body.
    pub elapsed_ms: u64,
}

/// Points earned, in all and per category.
#[derive(Debug, Clone, Default, PartialEq, Serialize, JsonSchema)]
pub struct Score {
    /// Points earned.
    pub earned: u32,
    /// Points available.
    pub total: u32,
    /// earned / total in percent (0 when there is nothing to earn).
    pub percent: f64,
    /// Whether the percentage reaches the threshold and the target could be graded.
    pub passed: bool,
    /// Per category, in order of first appearance.
    pub categories: Vec<CategoryScore>,
    /// Probe counts by verdict.
    pub counts: Counts,
}

/// Points of one category.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct CategoryScore {
    /// Category name.
    pub name: String,
    /// Points earned.
    pub earned: u32,
    /// Points available.
    pub total: u32,
}

/// How many probes had each verdict.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Counts {
    /// Passed.
    pub passed: usize,
    /// Failed.
    pub failed: usize,
    /// Errored.
    pub errored: usize,
    /// Skipped.
    pub skipped: usize,
    /// Not applicable to the target (left out of the score).
    #[serde(default)]
    pub not_applicable: usize,
}

/// The JSON Schema of the JSON report, pretty-printed.
pub fn json_schema() -> String {
    let title = format!("proctor JSON report, format version {FORMAT_VERSION}");
    crate::spec::schema_text(schemars::schema_for!(RunReport), "report.schema.json", &title)
}
