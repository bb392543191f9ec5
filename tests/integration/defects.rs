//! The defect matrix: the reference scores 100% on every challenge, each named defect fails exactly the probes
//! it targets, and every probe is failed on its own by at least one defect.

use std::collections::BTreeSet;

use proctor::target::Target;

use crate::support::{catalog, grade, not_passed};

/// (challenge, defect, the probes that defect must fail — and no others).
const MATRIX: &[(&str, &str, &[&str])] = &[
    ("rest-resource", "create-200", &["create-returns-201"]),
    ("rest-resource", "location-wrong", &["location-points-to-the-item"]),
    ("rest-resource", "bad-id-500", &["unknown-item-is-404"]),
    (
        "rest-resource",
        "unknown-200",
        &["delete-removes-the-item", "unknown-item-is-404"],
    ),
    ("rest-resource", "put-merges", &["put-replaces-the-item"]),
    ("rest-resource", "delete-200", &["delete-answers-204"]),
    ("rest-resource", "delete-noop", &["delete-removes-the-item"]),
    ("rest-resource", "head-405", &["head-mirrors-get"]),
    ("rest-resource", "405-no-allow", &["wrong-method-is-405-with-allow"]),
    ("rest-resource", "options-405", &["options-advertises-methods"]),
    ("rest-resource", "text-plain-json", &["json-is-labelled-json"]),
    ("http-caching", "etag-unquoted", &["etag-is-quoted"]),
    ("http-caching", "no-cache-control", &["cache-control-no-cache"]),
    (
        "http-caching",
        "ignore-if-none-match",
        &[
            "conditional-get-is-304",
            "if-none-match-star",
            "if-none-match-weak-comparison",
        ],
    ),
    ("http-caching", "304-bare", &["conditional-get-is-304"]),
    ("http-caching", "strong-compare", &["if-none-match-weak-comparison"]),
    ("http-caching", "star-ignored", &["if-none-match-star"]),
    ("http-caching", "etag-stale", &["etag-changes-with-content"]),
    ("http-caching", "ignore-if-match", &["if-match-prevents-lost-updates"]),
    ("http-caching", "last-modified-ms", &["if-modified-since-revalidates"]),
    (
        "http-caching",
        "ims-over-inm",
        &["if-none-match-wins-over-if-modified-since"],
    ),
    (
        "authn-authz",
        "no-www-authenticate",
        &[
            "invalid-token-is-401-invalid-token",
            "missing-credentials-get-a-challenge",
        ],
    ),
    (
        "authn-authz",
        "challenge-always-errors",
        &["missing-credentials-get-a-challenge"],
    ),
    ("authn-authz", "bad-token-403", &["invalid-token-is-401-invalid-token"]),
    ("authn-authz", "forbidden-401", &["lacking-permission-is-403"]),
    (
        "authn-authz",
        "no-owner-check-read",
        &["other-users-documents-are-hidden"],
    ),
    (
        "authn-authz",
        "no-owner-check-write",
        &["other-users-documents-cannot-change"],
    ),
    ("authn-authz", "leaks-hash", &["no-password-hashes-in-responses"]),
    ("authn-authz", "user-enumeration", &["login-failures-look-the-same"]),
    ("jwt-auth", "opaque-tokens", &["login-issues-a-working-jwt"]),
    (
        "jwt-auth",
        "token-store-only",
        &["accepts-tokens-signed-with-the-secret"],
    ),
    ("jwt-auth", "alg-none-mixed-case", &["rejects-alg-none"]),
    ("jwt-auth", "verify-cache-by-signature", &["rejects-tampered-payload"]),
    ("jwt-auth", "default-secret-accepted", &["rejects-foreign-keys"]),
    ("jwt-auth", "expiry-ignored", &["rejects-expired-tokens"]),
    ("jwt-auth", "nbf-ignored", &["rejects-not-yet-valid-tokens"]),
    ("jwt-auth", "audience-ignored", &["rejects-wrong-audience"]),
    ("jwt-auth", "issuer-ignored", &["rejects-wrong-issuer"]),
    (
        "rate-limiter",
        "status-403",
        &[
            "burst-allows-exactly-the-limit",
            "forwarded-for-is-not-trusted",
            "keys-are-independent",
            "over-limit-is-429",
            "ratelimit-headers-count-down",
            "window-reopens-after-retry-after",
        ],
    ),
    ("rate-limiter", "retry-after-float", &["over-limit-is-429"]),
    (
        "rate-limiter",
        "retry-after-lies",
        &["window-reopens-after-retry-after"],
    ),
    ("rate-limiter", "key-prefix-8", &["keys-are-independent"]),
    ("rate-limiter", "racy-counter", &["burst-allows-exactly-the-limit"]),
    ("rate-limiter", "remaining-negative", &["ratelimit-headers-count-down"]),
    ("rate-limiter", "trust-xff", &["forwarded-for-is-not-trusted"]),
    (
        "idempotency-keys",
        "replay-creates",
        &["replay-returns-the-stored-response"],
    ),
    (
        "idempotency-keys",
        "replay-200",
        &["replay-returns-the-stored-response"],
    ),
    ("idempotency-keys", "mismatch-ignored", &["payload-mismatch-is-422"]),
    ("idempotency-keys", "check-then-insert", &["concurrent-retries-get-409"]),
    ("idempotency-keys", "key-optional", &["missing-key-is-400"]),
    ("idempotency-keys", "no-key-validation", &["oversized-key-is-400"]),
    ("idempotency-keys", "keys-global", &["keys-are-scoped-per-client"]),
    ("idempotency-keys", "note-appends", &["put-is-idempotent"]),
    ("idempotency-keys", "delete-again-500", &["delete-is-idempotent"]),
    ("status-codes", "notes-created-200", &["create-is-201-with-location"]),
    ("status-codes", "notes-delete-body", &["delete-is-204-without-body"]),
    ("status-codes", "malformed-422", &["malformed-json-is-400"]),
    ("status-codes", "invalid-400", &["invalid-note-is-422"]),
    ("status-codes", "media-type-ignored", &["wrong-media-type-is-415"]),
    ("status-codes", "notes-missing-500", &["missing-note-is-404"]),
    (
        "status-codes",
        "notes-405-no-allow",
        &["wrong-method-is-405-with-allow"],
    ),
    ("status-codes", "no-body-limit", &["oversized-body-is-413"]),
    ("status-codes", "plain-json-errors", &["errors-are-problem-details"]),
    ("status-codes", "status-as-string", &["errors-are-problem-details"]),
    ("status-codes", "stack-traces", &["no-stack-traces"]),
    ("pagination", "no-tiebreaker", &["every-item-exactly-once"]),
    ("pagination", "next-on-last-page", &["last-page-has-no-next"]),
    ("pagination", "offset-pagination", &["stable-under-inserts"]),
    ("pagination", "next-drops-filter", &["next-link-keeps-the-filter"]),
    ("pagination", "limit-unchecked", &["limit-is-bounded"]),
    ("pagination", "cursor-500", &["foreign-cursors-are-400"]),
    (
        "pagination",
        "cursor-empty-string-at-end",
        &["body-cursor-null-at-the-end"],
    ),
    ("pagination", "no-link-header", &["next-link-keeps-the-filter"]),
];

#[tokio::test]
async fn the_reference_scores_100_percent_on_every_catalog_challenge() {
    let challenges = proctor::catalog::challenges().expect("the catalog loads");
    let report = grade(&challenges, Target::Reference(String::new())).await;
    for c in &report.challenges {
        assert_eq!(
            (c.id.as_str(), c.score.percent, c.score.passed),
            (c.id.as_str(), 100.0, true),
            "{:#?}",
            c.probes
        );
    }
    assert_eq!(report.challenges.len(), challenges.len());
}

#[tokio::test]
async fn each_defect_fails_exactly_the_probes_it_targets() {
    let runs = MATRIX.iter().map(|(challenge, defect, expected)| async move {
        let report = grade(&[catalog(challenge)], Target::Reference((*defect).to_string())).await;
        let mut expected: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
        expected.sort();
        (*challenge, *defect, expected, not_passed(&report))
    });
    let mut wrong = Vec::new();
    // A few at a time: timing probes (the rate limiter's windows) must not be starved by seventy runs at once.
    use futures::StreamExt;
    let results: Vec<_> = futures::stream::iter(runs).buffer_unordered(8).collect().await;
    for (challenge, defect, expected, actual) in results {
        if expected != actual {
            wrong.push(format!(
                "{challenge} with {defect}: expected {expected:?} to fail, but {actual:?} did"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn every_probe_is_failed_on_its_own_by_some_defect_and_every_defect_is_in_the_matrix() {
    let challenges = proctor::catalog::challenges().expect("the catalog loads");
    let sole_kills: BTreeSet<(String, String)> = MATRIX
        .iter()
        .filter(|(_, _, probes)| probes.len() == 1)
        .map(|(challenge, _, probes)| (challenge.to_string(), probes[0].to_string()))
        .collect();
    for challenge in &challenges {
        for probe in &challenge.spec.probes {
            assert!(
                sole_kills.contains(&(challenge.id.clone(), probe.id.clone())),
                "no defect fails {}/{} alone: the probe is not proven to test anything",
                challenge.id,
                probe.id
            );
        }
    }
    for (name, _) in proctor_reference::DEFECTS {
        assert!(
            MATRIX.iter().any(|(_, defect, _)| defect == name),
            "defect {name} is not in the matrix"
        );
    }
}
