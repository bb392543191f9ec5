//! Services written from `proctor show` alone by independent candidates, in Python with mainstream frameworks
//! (FastAPI, Flask) and their defaults, graded through `--cmd`: the correct one scores 100%, each realistic bug
//! (switched on by `CANDIDATE_BUG`) fails exactly the probes named here, and the framework defaults the briefs
//! allow score 100%. This is where false failures and false passes hiding in framework defaults show up.

use std::path::{Path, PathBuf};
use std::process::Command as StdCommand;
use std::sync::OnceLock;

use crate::support::{available, proctor_path};

/// (challenge, bug — empty for the correct service —, the probes it must fail; none: it must score 100%).
const CANDIDATES: &[(&str, &str, &[&str])] = &[
    ("stateless-replicas", "", &[]),
    (
        "stateless-replicas",
        "sessions-in-process",
        &[
            "a-restarted-replica-loses-nothing",
            "a-sign-out-ends-the-session-everywhere",
            "a-token-works-on-every-replica",
        ],
    ),
    (
        "stateless-replicas",
        "lru-cart-cache",
        &["a-cart-is-shared-and-read-fresh"],
    ),
    (
        "stateless-replicas",
        "limit-in-process",
        &["the-order-limit-counts-every-replica"],
    ),
    (
        "stateless-replicas",
        "process-counter-ids",
        &[
            "order-ids-are-unique-across-replicas",
            "the-order-limit-counts-every-replica",
        ],
    ),
    ("data-integrity", "", &[]),
    (
        "data-integrity",
        "app-unique-check",
        &["concurrent-duplicates-create-one"],
    ),
    ("data-integrity", "no-foreign-keys-pragma", &["authors-with-books-stay"]),
    (
        "data-integrity",
        "no-author-index",
        &["an-authors-books-are-found-by-index"],
    ),
    (
        "data-integrity",
        "denormalised-author-name",
        &["a-rename-shows-everywhere"],
    ),
    // Found by this candidate: a Location on the plain port, HSTS missing on errors and HEAD/PUT/DELETE left
    // unredirected all passed; the probes now pin the HTTPS port, read an error's HSTS and send every method.
    ("tls", "", &[]),
    ("tls", "hsts-on-both-listeners", &["no-hsts-over-plain-http"]),
    ("tls", "legacy-tls-versions", &["tls-1-0-and-1-1-are-refused"]),
    (
        "tls",
        "redirect-301-all-methods",
        &["plain-http-writes-keep-their-method"],
    ),
    ("tls", "hsts-rollout-max-age", &["https-answers-carry-hsts"]),
    ("graphql-endpoint", "", &[]),
    ("graphql-endpoint", "get-mutation-400", &["no-mutation-over-get"]),
    ("graphql-endpoint", "any-content-type", &["only-json-bodies"]),
    ("graphql-endpoint", "errors-mean-400", &["a-field-error-keeps-the-data"]),
    ("graphql-endpoint", "unknown-book-error", &["an-unknown-book-is-null"]),
    ("async-jobs", "", &[]),
    ("async-jobs", "status-201", &["a-job-is-accepted-at-once"]),
    ("async-jobs", "work-in-get", &["the-work-is-done-once"]),
    (
        "async-jobs",
        "result-url-early",
        &["a-failed-job-says-why", "the-result-resolves-when-done"],
    ),
    ("async-jobs", "string-error", &["a-failed-job-says-why"]),
    ("injection-defense", "", &[]),
    (
        "injection-defense",
        "fstring-name",
        &["quotes-are-data", "tautologies-find-nothing"],
    ),
    ("injection-defense", "unescaped-like", &["wildcards-are-literal"]),
    // Found by this candidate: a second login that sent the first session's cookie let a service end that
    // session, so a token accepted from any live session passed; the second login now comes from a fresh client.
    (
        "injection-defense",
        "csrf-unbound-token",
        &["the-token-belongs-to-its-session"],
    ),
    (
        "injection-defense",
        "sort-interpolated",
        &["sort-columns-are-allowlisted"],
    ),
    (
        "injection-defense",
        "html-escape-input",
        &["answers-are-json-not-html", "names-round-trip-exactly"],
    ),
    ("behind-proxy", "", &[]),
    (
        "behind-proxy",
        "leftmost-xff",
        &["the-client-is-the-rightmost-untrusted-address"],
    ),
    ("behind-proxy", "trust-any-peer", &["untrusted-peers-are-not-believed"]),
    ("behind-proxy", "gzip-substring", &["identity-when-asked"]),
    (
        "behind-proxy",
        "no-forwarded-host",
        &["links-use-the-forwarded-scheme-and-host"],
    ),
    ("middleware", "", &[]),
    // Found by this candidate: a 401 to the app's origin without CORS headers passed (only keyed requests were checked).
    (
        "middleware",
        "auth-before-cors",
        &["responses-name-the-app-origin", "the-preflight-allows-the-app"],
    ),
    ("middleware", "wildcard-origin", &["foreign-origins-are-not-allowed"]),
    (
        "middleware",
        "headers-in-handlers",
        &["security-headers-are-on-every-response"],
    ),
    (
        "middleware",
        "default-error-bodies",
        &["every-layer-answers-problem-details"],
    ),
    ("session-auth", "", &[]),
    ("session-auth", "signed-cookie-session", &["logout-ends-the-session"]),
    (
        "session-auth",
        "cookie-missing-flags",
        &["login-sets-a-safe-session-cookie"],
    ),
    (
        "session-auth",
        "adopt-client-session-id",
        &["login-never-adopts-a-session-id"],
    ),
    (
        "session-auth",
        "enumerating-login-errors",
        &["failed-logins-do-not-say-why"],
    ),
    ("cache-aside", "", &[]),
    ("cache-aside", "check-then-load", &["concurrent-misses-make-one-call"]),
    ("cache-aside", "cache-errors", &["failures-are-not-cached"]),
    (
        "cache-aside",
        "ttl-millis",
        &["an-expired-entry-is-read-again", "the-ttl-comes-from-the-env"],
    ),
    (
        "cache-aside",
        "no-invalidate-on-put",
        &["a-write-invalidates-the-entry"],
    ),
    ("n-plus-one", "", &[]),
    (
        "n-plus-one",
        "n-plus-one",
        &[
            "a-page-makes-one-batch-call",
            "an-unknown-customer-is-null",
            "customers-down-gives-502",
            "each-page-asks-only-for-its-customers",
            "the-batch-names-each-customer-once",
        ],
    ),
    (
        "n-plus-one",
        "batch-all-orders",
        &["each-page-asks-only-for-its-customers"],
    ),
    ("n-plus-one", "duplicate-ids", &["the-batch-names-each-customer-once"]),
    ("n-plus-one", "fallback-fetch", &["an-unknown-customer-is-null"]),
    ("webhooks", "", &[]),
    ("webhooks", "follow-redirects", &["redirects-are-not-followed"]),
    (
        "webhooks",
        "reserialized-body",
        &[
            "a-replay-is-applied-once",
            "a-signed-deposit-is-applied",
            "one-good-signature-is-enough",
            "the-raw-body-is-verified",
        ],
    ),
    ("webhooks", "first-signature-only", &["one-good-signature-is-enough"]),
    ("webhooks", "retries-not-attempts", &["attempts-are-capped"]),
    // Found by this candidate: retries resent the first attempt's timestamp and no probe noticed.
    ("webhooks", "frozen-timestamp", &["each-attempt-carries-its-own-time"]),
    ("resilient-upstream", "", &[]),
    (
        "resilient-upstream",
        "default-timeout",
        &["a-hanging-upstream-gives-504"],
    ),
    ("resilient-upstream", "retry-post", &["trades-are-not-retried"]),
    (
        "resilient-upstream",
        "breaker-counts-attempts",
        &["the-breaker-closes-after-a-good-trial", "the-breaker-opens"],
    ),
    ("resilient-upstream", "upstream-status", &["exhausted-retries-give-502"]),
    ("observability", "", &[]),
    ("observability", "path-label", &["routes-are-templated-in-labels"]),
    (
        "observability",
        "errors-not-counted",
        &["request-counter-rises-with-requests"],
    ),
    (
        "observability",
        "echo-any-request-id",
        &["invalid-request-id-is-replaced"],
    ),
    (
        "observability",
        "werkzeug-access-log",
        &["one-json-log-line-per-request"],
    ),
    ("observability", "app-run-banner", &["every-output-line-is-json"]),
    ("graceful-shutdown", "", &[]),
    (
        "graceful-shutdown",
        "exit-on-sigterm",
        &["requests-in-flight-are-finished"],
    ),
    (
        "graceful-shutdown",
        "graceful-timeout-zero",
        &["requests-in-flight-are-finished"],
    ),
    (
        "graceful-shutdown",
        "swallow-sigterm",
        &["exits-promptly-on-sigterm", "no-new-work-while-draining"],
    ),
    (
        "graceful-shutdown",
        "slow-shutdown-hook",
        &["exits-promptly-on-sigterm"],
    ),
    ("persistence-and-migration", "", &[]),
    (
        "persistence-and-migration",
        "commit-per-memo",
        &[
            "a-failed-migration-changes-nothing",
            "the-migration-runs-once",
            "version-2-migrates-version-1-memos",
        ],
    ),
    (
        "persistence-and-migration",
        "exit-zero-on-failure",
        &["a-failed-migration-changes-nothing"],
    ),
    (
        "persistence-and-migration",
        "applied-at-refreshed",
        &["the-migration-runs-once"],
    ),
    (
        "persistence-and-migration",
        "body-keeps-newline",
        &["version-2-migrates-version-1-memos"],
    ),
    (
        "persistence-and-migration",
        "put-not-committed",
        &["memos-survive-a-restart"],
    ),
    ("twelve-factor-config", "", &[]),
    (
        "twelve-factor-config",
        "greeting-default",
        &["refuses-to-start-without-greeting"],
    ),
    ("twelve-factor-config", "log-settings", &["no-secret-in-the-output"]),
    (
        "twelve-factor-config",
        "byte-length",
        &["name-limit-comes-from-the-environment"],
    ),
    (
        "twelve-factor-config",
        "prefix-token",
        &["admin-config-needs-the-secret"],
    ),
    ("twelve-factor-config", "config-in-errors", &["no-secret-in-responses"]),
    ("rest-resource", "", &[]),
    (
        "rest-resource",
        "no-head",
        &["head-mirrors-get", "wrong-method-is-405-with-allow"],
    ),
    (
        "rest-resource",
        "allow-first-route",
        &["wrong-method-is-405-with-allow"],
    ),
    ("rest-resource", "put-upsert", &["put-of-an-unknown-item-is-404"]),
    ("status-codes", "", &[]),
    ("status-codes", "default-error-pages", &["errors-are-problem-details"]),
    ("status-codes", "extra-fields-allowed", &["invalid-note-is-422"]),
    ("status-codes", "no-length-check", &["invalid-note-is-422"]),
    // Flask answers OPTIONS itself and lists it in Allow; the brief allows that.
    ("status-codes", "automatic-options", &[]),
    ("http-caching", "", &[]),
    ("http-caching", "inm-strong-compare", &["if-none-match-weak-comparison"]),
    ("http-caching", "put-always-200", &["put-answers-201-then-200"]),
    ("http-caching", "ims-any-304", &["if-modified-since-revalidates"]),
    ("http-caching", "if-match-string-compare", &["if-match-star-and-lists"]),
    ("http-caching", "ims-invalid-500", &["if-modified-since-revalidates"]),
    (
        "http-caching",
        "star-on-missing",
        &["missing-document-is-404-whatever-the-preconditions"],
    ),
    ("http-caching", "put-no-validators", &["put-carries-validators"]),
    // Werkzeug drops Last-Modified from a 304 that carries an ETag, as RFC 9110 §15.4.5 suggests.
    ("http-caching", "werkzeug-304-drops-last-modified", &[]),
    ("pagination", "", &[]),
    ("pagination", "limit-422", &["limit-is-bounded"]),
    ("pagination", "unsigned-cursor", &["foreign-cursors-are-400"]),
    ("pagination", "ties-newest-first", &["pages-follow-the-order"]),
    ("pagination", "limit-off-by-one", &["limit-is-bounded"]),
    ("pagination", "default-limit-20", &["default-limit-is-10"]),
    ("rate-limiter", "", &[]),
    ("rate-limiter", "check-then-set", &["burst-allows-exactly-the-limit"]),
    ("rate-limiter", "missing-key-422", &["missing-key-is-401"]),
    ("rate-limiter", "window-slides", &["the-window-is-fixed"]),
    ("idempotency-keys", "", &[]),
    (
        "idempotency-keys",
        "no-in-progress-marker",
        &["concurrent-retries-get-409"],
    ),
    ("idempotency-keys", "html-400", &["errors-are-json"]),
    ("idempotency-keys", "no-owner-check", &["payments-are-private"]),
    ("authn-authz", "", &[]),
    (
        "authn-authz",
        "abort-401",
        &[
            "invalid-token-is-401-invalid-token",
            "missing-credentials-get-a-challenge",
        ],
    ),
    ("authn-authz", "pwd-field-leak", &["no-password-hashes-in-responses"]),
    ("authn-authz", "duplicate-overwrite", &["taken-username-is-409"]),
    ("jwt-auth", "", &[]),
    ("jwt-auth", "bare-bearer-challenge", &["rejections-say-invalid-token"]),
    (
        "jwt-auth",
        "no-signature-check",
        &[
            "rejections-say-invalid-token",
            "rejects-foreign-keys",
            "rejects-tampered-payload",
        ],
    ),
    ("jwt-auth", "no-issuer-check", &["rejects-wrong-issuer"]),
    ("jwt-auth", "missing-header-422", &["missing-token-gets-a-challenge"]),
];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A virtualenv with the pinned packages of `frameworks/requirements.txt`, made once under `target/` (PyPI is
/// the only network it needs). `None` when Python is missing and the runner asked to skip.
fn python() -> Option<&'static PathBuf> {
    static VENV: OnceLock<Option<PathBuf>> = OnceLock::new();
    VENV.get_or_init(|| {
        let has_python = StdCommand::new("python3")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !available("python", has_python, "install Python 3 with venv and pip") {
            return None;
        }
        let venv = root().join("target/frameworks-venv");
        let python = venv.join("bin/python");
        let requirements = root().join("frameworks/requirements.txt");
        let stamp = venv.join("requirements.txt");
        let wanted = std::fs::read_to_string(&requirements).expect("frameworks/requirements.txt");
        if std::fs::read_to_string(&stamp).ok().as_deref() != Some(wanted.as_str()) {
            let made = StdCommand::new("python3")
                .args(["-m", "venv", "--clear"])
                .arg(&venv)
                .status()
                .expect("python3 -m venv");
            assert!(
                made.success(),
                "python3 -m venv failed (Debian: apt install python3-venv)"
            );
            let installed = StdCommand::new(&python)
                .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r"])
                .arg(&requirements)
                .status()
                .expect("pip");
            assert!(installed.success(), "pip install -r frameworks/requirements.txt failed");
            std::fs::write(&stamp, wanted).expect("stamp");
        }
        Some(python)
    })
    .as_ref()
}

/// Grades one candidate through the binary and returns the ids of the probes that did not pass, sorted.
fn grade(python: &Path, challenge: &str, bug: &str) -> Result<Vec<String>, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let report = dir.path().join("report.json");
    let app = root().join("frameworks").join(challenge).join("app.py");
    let output = StdCommand::new(proctor_path())
        .current_dir(root())
        .args(["run", challenge, "--cmd"])
        .arg(format!("{} {}", python.display(), app.display()))
        .arg("--report")
        .arg(format!("json={}", report.display()))
        .env("NO_COLOR", "1")
        .env("CANDIDATE_BUG", bug)
        .output()
        .map_err(|e| e.to_string())?;
    let text = std::fs::read_to_string(&report)
        .map_err(|e| format!("no report ({e}); stdout:\n{}", String::from_utf8_lossy(&output.stdout)))?;
    let report: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    let challenge = &report["challenges"][0];
    if let Some(error) = challenge["target_error"].as_str() {
        return Err(format!(
            "could not grade: {error}\n{}",
            challenge["logs"].as_str().unwrap_or_default()
        ));
    }
    let mut failed: Vec<String> = challenge["probes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["verdict"] != "passed" && p["verdict"] != "not_applicable")
        .map(|p| {
            format!(
                "{}{}",
                p["id"].as_str().unwrap_or_default(),
                verdict_mark(&p["verdict"])
            )
        })
        .collect();
    failed.sort();
    Ok(failed)
}

/// A probe that errored or was skipped is marked: a candidate's bug must make probes *fail*.
fn verdict_mark(verdict: &serde_json::Value) -> &'static str {
    match verdict.as_str() {
        Some("failed") => "",
        Some("errored") => "!errored",
        _ => "!skipped",
    }
}

#[test]
fn framework_services_score_100_percent_when_correct_and_fail_exactly_their_bugs() {
    let Some(python) = python() else { return };
    let mut wrong = Vec::new();
    // Four at a time: the rate limiter's windows must not be starved, and each service is its own process.
    // Two at a time: the probes that send simultaneous requests assume the service gets the CPU to take them while
    // its first one is still in progress; four Python servers at once on a two-core machine starved them.
    for batch in CANDIDATES.chunks(2) {
        let results: Vec<_> = std::thread::scope(|scope| {
            let handles: Vec<_> = batch
                .iter()
                .map(|(challenge, bug, expected)| {
                    scope.spawn(move || (*challenge, *bug, *expected, grade(python, challenge, bug)))
                })
                .collect();
            handles.into_iter().filter_map(|h| h.join().ok()).collect()
        });
        for (challenge, bug, expected, actual) in results {
            let name = if bug.is_empty() { "the correct service" } else { bug };
            match actual {
                Ok(actual) if actual == expected => {}
                Ok(actual) => wrong.push(format!(
                    "{challenge} / {name}: expected {expected:?} to fail, but {actual:?} did not pass"
                )),
                Err(e) => wrong.push(format!("{challenge} / {name}: {e}")),
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn every_framework_bug_is_graded_and_every_challenge_has_a_candidate() {
    for source in proctor::catalog::sources() {
        assert!(
            CANDIDATES.iter().any(|(c, bug, _)| *c == source.id && bug.is_empty()),
            "no framework candidate for {}",
            source.id
        );
        assert!(
            CANDIDATES
                .iter()
                .any(|(c, bug, expected)| *c == source.id && !bug.is_empty() && !expected.is_empty()),
            "no buggy framework candidate for {}",
            source.id
        );
    }
    let bugs = regex::Regex::new(r#"BUG [!=]= "([a-z0-9-]+)""#).expect("regex");
    for (challenge, _, _) in CANDIDATES {
        let app = std::fs::read_to_string(root().join("frameworks").join(challenge).join("app.py")).expect("app.py");
        for bug in bugs.captures_iter(&app).map(|c| c[1].to_string()) {
            assert!(
                CANDIDATES.iter().any(|(c, b, _)| c == challenge && *b == bug),
                "{challenge}: the bug {bug} of frameworks/{challenge}/app.py is not graded"
            );
        }
    }
}
