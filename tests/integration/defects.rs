//! The defect matrix: the reference scores 100% on every challenge, each named defect fails exactly the probes
//! it targets, and every probe is failed on its own by at least one defect.

use std::collections::BTreeSet;

use proctor::target::Target;

use crate::support::{catalog, grade};

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
    (
        "rest-resource",
        "allow-route-only",
        &["wrong-method-is-405-with-allow@2"],
    ),
    ("rest-resource", "put-upsert", &["put-of-an-unknown-item-is-404@1"]),
    ("rest-resource", "delete-again-204", &["delete-removes-the-item@4"]),
    ("rest-resource", "list-cached", &["list-holds-every-item@3"]),
    ("rest-resource", "no-validation", &["invalid-items-are-refused@1"]),
    ("http-caching", "etag-unquoted", &["etag-is-strong-and-quoted@2"]),
    (
        "http-caching",
        "etag-weak",
        // A weak tag can never pass If-Match's strong comparison, so conditional PUTs break as well.
        &[
            "etag-is-strong-and-quoted@2",
            "if-match-prevents-lost-updates@4",
            "if-match-star-and-lists@3",
        ],
    ),
    ("http-caching", "put-always-200", &["put-answers-201-then-200@1"]),
    (
        "http-caching",
        "last-modified-now",
        &["if-modified-since-revalidates@7"],
    ),
    (
        "http-caching",
        "ims-string-compare",
        &["if-modified-since-revalidates@8"],
    ),
    ("http-caching", "if-match-star-creates", &["if-match-star-and-lists@5"]),
    (
        "http-caching",
        "if-match-after-write",
        &["if-match-prevents-lost-updates@3"],
    ),
    ("http-caching", "put-no-validators", &["put-carries-validators@1"]),
    (
        "http-caching",
        "star-on-missing",
        &["missing-document-is-404-whatever-the-preconditions@2"],
    ),
    ("http-caching", "ims-always-304", &["if-modified-since-revalidates@4"]),
    ("http-caching", "ims-invalid-500", &["if-modified-since-revalidates@5"]),
    (
        "http-caching",
        "if-match-weak-compare",
        &["if-match-uses-strong-comparison@3"],
    ),
    (
        "http-caching",
        "if-match-string-compare",
        &["if-match-star-and-lists@3"],
    ),
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
    (
        "http-caching",
        "ignore-if-match",
        &[
            "if-match-prevents-lost-updates@2",
            "if-match-star-and-lists@5",
            "if-match-uses-strong-comparison@3",
        ],
    ),
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
    ("authn-authz", "duplicate-overwrite", &["taken-username-is-409@2"]),
    (
        "authn-authz",
        "short-password-accepted",
        &["signup-answers-201-and-refuses-short-passwords@2"],
    ),
    ("authn-authz", "role-from-body", &["sign-up-cannot-choose-a-role@1"]),
    ("authn-authz", "pwd-field-leak", &["no-password-hashes-in-responses@1"]),
    ("authn-authz", "password-changed-at", &[]),
    ("authn-authz", "realm-with-scope", &[]),
    (
        "authn-authz",
        "doc-no-location",
        &["owners-read-and-replace-their-documents@3"],
    ),
    ("authn-authz", "me-first-user", &["login-and-me@4"]),
    ("jwt-auth", "opaque-tokens", &["login-issues-a-working-jwt@2"]),
    (
        "jwt-auth",
        "token-store-only",
        &[
            "accepts-tokens-signed-with-the-secret@1",
            "rejects-alg-none@1",
            "rejects-expired-tokens@1",
            "rejects-foreign-keys@1",
            "rejects-not-yet-valid-tokens@1",
            "rejects-other-hmac-algorithms@1",
            "rejects-tampered-payload@1",
            "rejects-wrong-audience@1",
            "rejects-wrong-issuer@1",
        ],
    ),
    ("jwt-auth", "alg-none-mixed-case", &["rejects-alg-none@3"]),
    ("jwt-auth", "verify-cache-by-signature", &["rejects-tampered-payload@2"]),
    ("jwt-auth", "default-secret-accepted", &["rejects-foreign-keys@3"]),
    ("jwt-auth", "expiry-ignored", &["rejects-expired-tokens@2"]),
    ("jwt-auth", "nbf-ignored", &["rejects-not-yet-valid-tokens@2"]),
    (
        "jwt-auth",
        "audience-ignored",
        &["rejections-say-invalid-token@3", "rejects-wrong-audience@2"],
    ),
    ("jwt-auth", "audience-substring", &["rejects-wrong-audience@3"]),
    ("jwt-auth", "issuer-prefix", &["rejects-wrong-issuer@3"]),
    ("jwt-auth", "issuer-ignored", &["rejects-wrong-issuer@2"]),
    // Requiring iat is strict but allowed: every probe must still pass, and a service that requires it and skips
    // another check must still be caught by the right step (the deliberately bad tokens all carry iat).
    ("jwt-auth", "iat-required", &[]),
    (
        "jwt-auth",
        "iat-required,audience-ignored",
        &["rejections-say-invalid-token@3", "rejects-wrong-audience@2"],
    ),
    ("jwt-auth", "iat-required,issuer-ignored", &["rejects-wrong-issuer@2"]),
    (
        "jwt-auth",
        "iat-required,nbf-ignored",
        &["rejects-not-yet-valid-tokens@2"],
    ),
    ("jwt-auth", "hs384-accepted", &["rejects-other-hmac-algorithms@2"]),
    ("jwt-auth", "bare-bearer-challenge", &["rejections-say-invalid-token@1"]),
    ("jwt-auth", "missing-token-422", &["missing-token-gets-a-challenge@1"]),
    ("jwt-auth", "login-any-password", &["wrong-password-is-401@2"]),
    (
        "jwt-auth",
        "aud-must-be-string",
        &["accepts-tokens-signed-with-the-secret@2"],
    ),
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
    ("rate-limiter", "no-api-key-422", &["missing-key-is-401@1"]),
    ("rate-limiter", "window-slides", &["the-window-is-fixed@3"]),
    ("rate-limiter", "text-429", &["refusals-are-json@2"]),
    ("rate-limiter", "reset-floor", &["ratelimit-headers-count-down@1"]),
    ("rate-limiter", "reset-constant", &["the-window-is-fixed@3"]),
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
    ("idempotency-keys", "no-key-validation", &["key-length-is-bounded@2"]),
    ("idempotency-keys", "keys-global", &["keys-are-scoped-per-client"]),
    ("idempotency-keys", "note-appends", &["put-is-idempotent"]),
    ("idempotency-keys", "delete-again-500", &["delete-is-idempotent@3"]),
    (
        "idempotency-keys",
        "replay-live",
        &["replay-returns-the-stored-response@3"],
    ),
    (
        "idempotency-keys",
        "note-omitted",
        &["create-answers-201-with-the-payment@1"],
    ),
    ("idempotency-keys", "key-max-254", &["key-length-is-bounded@1"]),
    ("idempotency-keys", "client-id-optional", &["client-id-is-required@1"]),
    ("idempotency-keys", "html-400", &["errors-are-json@1"]),
    ("idempotency-keys", "no-owner-check", &["payments-are-private@3"]),
    (
        "idempotency-keys",
        "payment-delete-again-204",
        &["delete-is-idempotent@3"],
    ),
    (
        "idempotency-keys",
        "payment-created-200",
        // The stored response's status and the burst's one 201 are the 201 of creation.
        &[
            "concurrent-retries-get-409@1",
            "create-answers-201-with-the-payment@1",
            "replay-returns-the-stored-response@1",
        ],
    ),
    ("status-codes", "notes-created-200", &["create-is-201-with-location"]),
    ("status-codes", "notes-delete-body", &["delete-is-204-without-body"]),
    ("status-codes", "malformed-422", &["malformed-json-is-400"]),
    ("status-codes", "invalid-400", &["invalid-note-is-422"]),
    ("status-codes", "media-type-ignored", &["wrong-media-type-is-415"]),
    (
        "status-codes",
        "notes-missing-500",
        &["errors-are-problem-details@7", "missing-note-is-404@1"],
    ),
    (
        "status-codes",
        "notes-405-no-allow",
        &["wrong-method-is-405-with-allow"],
    ),
    ("status-codes", "no-body-limit", &["oversized-body-is-413"]),
    ("status-codes", "plain-json-errors", &["errors-are-problem-details"]),
    ("status-codes", "status-as-string", &["errors-are-problem-details"]),
    ("status-codes", "stack-traces", &["no-stack-traces"]),
    ("status-codes", "html-413", &["errors-are-problem-details@3"]),
    ("status-codes", "extra-fields-allowed", &["invalid-note-is-422@3"]),
    ("status-codes", "no-length-check", &["invalid-note-is-422@4"]),
    ("status-codes", "delete-missing-204", &["missing-note-is-404@2"]),
    ("status-codes", "get-note-id-number", &["get-returns-the-note@2"]),
    ("status-codes", "length-in-bytes", &["invalid-note-is-422@6"]),
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
    ("pagination", "unsigned-cursor", &["foreign-cursors-are-400@4"]),
    ("pagination", "ties-newest-first", &["pages-follow-the-order@4"]),
    ("pagination", "limit-max-99", &["limit-is-bounded@6"]),
    ("pagination", "default-limit-20", &["default-limit-is-10@2"]),
    (
        "pagination",
        "article-created-200",
        &["create-answers-201-with-the-article@1"],
    ),
    (
        "twelve-factor-config",
        "greeting-default",
        &["refuses-to-start-without-greeting@1"],
    ),
    (
        "twelve-factor-config",
        "secret-optional",
        &["refuses-to-start-without-the-secret@1"],
    ),
    (
        "twelve-factor-config",
        "config-error-unnamed",
        &[
            "refuses-to-start-without-greeting@1",
            "refuses-to-start-without-the-secret@1",
        ],
    ),
    (
        "twelve-factor-config",
        "greeting-hardcoded",
        &["greets-with-the-configured-greeting@1"],
    ),
    (
        "twelve-factor-config",
        "max-length-default",
        &["name-limit-comes-from-the-environment@2"],
    ),
    (
        "twelve-factor-config",
        "admin-open",
        &["admin-config-needs-the-secret@1"],
    ),
    (
        "twelve-factor-config",
        "config-shows-secret",
        &["no-secret-in-responses@1"],
    ),
    (
        "twelve-factor-config",
        "401-reveals-secret",
        &["no-secret-in-responses@2"],
    ),
    ("twelve-factor-config", "secret-logged", &["no-secret-in-the-output@5"]),
    (
        "twelve-factor-config",
        "auth-header-logged",
        &["no-secret-in-the-output@5"],
    ),
    (
        "twelve-factor-config",
        "settings-hardcoded",
        &[
            "greets-with-the-configured-greeting@3",
            "name-limit-comes-from-the-environment@5",
        ],
    ),
    (
        "twelve-factor-config",
        "token-prefix-match",
        &["admin-config-needs-the-secret@3"],
    ),
    ("observability", "health-plain-json", &["health-is-health-json@1"]),
    ("observability", "metrics-untyped", &["metrics-are-prometheus-text@2"]),
    (
        "observability",
        "metrics-skip-errors",
        &["request-counter-rises-with-requests@4"],
    ),
    (
        "observability",
        "raw-path-labels",
        &["routes-are-templated-in-labels@2"],
    ),
    ("observability", "request-id-ignored", &["request-id-is-echoed@1"]),
    (
        "observability",
        "request-id-trusted",
        &["invalid-request-id-is-replaced@1"],
    ),
    (
        "observability",
        "request-id-absent",
        &["missing-request-id-is-generated@1"],
    ),
    (
        "observability",
        "log-plain-text",
        &["every-output-line-is-json@3", "one-json-log-line-per-request@2"],
    ),
    ("observability", "access-log-too", &["one-json-log-line-per-request@2"]),
    ("observability", "startup-banner-text", &["every-output-line-is-json@3"]),
    (
        "graceful-shutdown",
        "sigterm-drops-requests",
        &["requests-in-flight-are-finished@1"],
    ),
    ("graceful-shutdown", "slow-exit", &["exits-promptly-on-sigterm@1"]),
    (
        "graceful-shutdown",
        "accepts-during-drain",
        &["no-new-work-while-draining@1"],
    ),
    (
        "graceful-shutdown",
        "sigterm-ignored",
        &["exits-promptly-on-sigterm@1", "no-new-work-while-draining@1"],
    ),
    (
        "persistence-and-migration",
        "memory-only",
        &[
            "memos-survive-a-restart@5",
            "a-failed-migration-changes-nothing@4",
            "version-2-migrates-version-1-memos@4",
            "the-migration-runs-once@2",
        ],
    ),
    (
        "persistence-and-migration",
        "update-not-saved",
        &["memos-survive-a-restart@6"],
    ),
    (
        "persistence-and-migration",
        "no-migration",
        &[
            "a-failed-migration-changes-nothing@4",
            "version-2-migrates-version-1-memos@4",
            "the-migration-runs-once@2",
        ],
    ),
    (
        "persistence-and-migration",
        "split-last-line",
        &["version-2-migrates-version-1-memos@4"],
    ),
    (
        "persistence-and-migration",
        "migration-unrecorded",
        &["the-migration-runs-once@2"],
    ),
    (
        "persistence-and-migration",
        "partial-migration",
        &["a-failed-migration-changes-nothing@6"],
    ),
    (
        "resilient-upstream",
        "404-as-502",
        &["unknown-symbol-is-404-without-retry@2"],
    ),
    (
        "resilient-upstream",
        "breaker-calls-anyway",
        &["a-failed-trial-opens-the-breaker-again@10", "the-breaker-opens@8"],
    ),
    (
        "resilient-upstream",
        "breaker-counts-attempts",
        &["the-breaker-closes-after-a-good-trial@4", "the-breaker-opens@4"],
    ),
    (
        "resilient-upstream",
        "breaker-never-closes",
        &[
            "a-failed-trial-opens-the-breaker-again@2",
            "the-breaker-closes-after-a-good-trial@2",
        ],
    ),
    (
        "resilient-upstream",
        "breaker-threshold-plus-one",
        &["the-breaker-opens@6"],
    ),
    (
        "resilient-upstream",
        "cooldown-closes",
        &["a-failed-trial-opens-the-breaker-again@9"],
    ),
    (
        "resilient-upstream",
        "no-breaker",
        &["a-failed-trial-opens-the-breaker-again@9", "the-breaker-opens@6"],
    ),
    (
        "resilient-upstream",
        "no-retry",
        &["failed-calls-are-retried-with-backoff@2"],
    ),
    ("resilient-upstream", "no-timeout", &["a-hanging-upstream-gives-504@4"]),
    ("resilient-upstream", "no-upstream-auth", &["calls-carry-the-token@2"]),
    ("resilient-upstream", "post-retried", &["trades-are-not-retried@2"]),
    (
        "resilient-upstream",
        "price-rounded",
        &["quote-passes-the-price-through@2"],
    ),
    (
        "resilient-upstream",
        "request-id-dropped",
        &["request-id-is-passed-on@2"],
    ),
    ("resilient-upstream", "reset-500", &["exhausted-retries-give-502@4"]),
    (
        "resilient-upstream",
        "reset-not-retried",
        &["failed-calls-are-retried-with-backoff@2"],
    ),
    (
        "resilient-upstream",
        "retries-404",
        &["unknown-symbol-is-404-without-retry@3"],
    ),
    (
        "resilient-upstream",
        "retry-constant-backoff",
        &["failed-calls-are-retried-with-backoff@3"],
    ),
    (
        "resilient-upstream",
        "retry-no-backoff",
        &["failed-calls-are-retried-with-backoff@3"],
    ),
    (
        "resilient-upstream",
        "timeout-retried",
        &["a-hanging-upstream-gives-504@4"],
    ),
    ("resilient-upstream", "trade-id-own", &["trade-passes-through@2"]),
    (
        "resilient-upstream",
        "trade-quantity-string",
        &["trade-passes-through@3"],
    ),
    (
        "resilient-upstream",
        "trial-keeps-open",
        &["the-breaker-closes-after-a-good-trial@4"],
    ),
    (
        "resilient-upstream",
        "upstream-status-passed-through",
        &["exhausted-retries-give-502@3"],
    ),
    ("cache-aside", "errors-cached", &["failures-are-not-cached@3"]),
    ("cache-aside", "fields-dropped", &["a-miss-reads-the-catalog@2"]),
    ("cache-aside", "missing-500", &["an-unknown-product-is-404@1"]),
    ("cache-aside", "no-invalidation", &["a-write-invalidates-the-entry@5"]),
    (
        "cache-aside",
        "no-single-flight",
        &["concurrent-misses-make-one-call@3"],
    ),
    ("cache-aside", "ttl-hardcoded", &["the-ttl-comes-from-the-env@7"]),
    (
        "cache-aside",
        "write-not-forwarded",
        &["a-write-invalidates-the-entry@4"],
    ),
    (
        "n-plus-one",
        "batch-all-orders",
        &["each-page-asks-only-for-its-customers@8"],
    ),
    ("n-plus-one", "customer-name-only", &["orders-embed-their-customer@3"]),
    ("n-plus-one", "customers-down-ignored", &["customers-down-gives-502@3"]),
    ("n-plus-one", "empty-batch-call", &["an-empty-page-makes-no-call@2"]),
    ("n-plus-one", "ids-repeated", &["the-batch-names-each-customer-once@6"]),
    ("n-plus-one", "missing-dropped", &["an-unknown-customer-is-null@4"]),
    (
        "n-plus-one",
        "missing-fetched-alone",
        &["an-unknown-customer-is-null@5"],
    ),
    (
        "n-plus-one",
        "n-plus-one",
        &[
            "a-page-makes-one-batch-call@6",
            "an-unknown-customer-is-null@5",
            "customers-down-gives-502@3",
            "each-page-asks-only-for-its-customers@8",
            "the-batch-names-each-customer-once@6",
        ],
    ),
    ("n-plus-one", "order-created-200", &["orders-are-created@1"]),
    ("webhooks", "any-event-credits", &["a-signed-deposit-is-applied@3"]),
    ("webhooks", "attempts-plus-one", &["attempts-are-capped@3"]),
    ("webhooks", "first-signature-only", &["one-good-signature-is-enough@1"]),
    ("webhooks", "gone-retried", &["gone-ends-the-delivery@3"]),
    ("webhooks", "missing-signature-500", &["missing-headers-are-refused@1"]),
    (
        "webhooks",
        "no-verification",
        &[
            "bad-signatures-are-refused@1",
            "missing-headers-are-refused@1",
            "stale-timestamps-are-refused@1",
        ],
    ),
    ("webhooks", "payload-not-enveloped", &["a-payout-is-delivered@3"]),
    ("webhooks", "redirects-followed", &["redirects-are-not-followed@3"]),
    ("webhooks", "replay-applied-twice", &["a-replay-is-applied-once@3"]),
    ("webhooks", "retry-after-ignored", &["retry-after-is-honoured@3"]),
    (
        "webhooks",
        "retry-new-id",
        &["failed-attempts-are-retried-with-backoff@3"],
    ),
    (
        "webhooks",
        "retry-no-backoff",
        &["failed-attempts-are-retried-with-backoff@3"],
    ),
    ("webhooks", "signature-hex", &["deliveries-are-signed@3"]),
    ("webhooks", "sync-delivery", &["payouts-do-not-wait-for-the-delivery@2"]),
    (
        "webhooks",
        "timestamp-ms",
        &["deliveries-are-signed@3", "each-attempt-carries-its-own-time@3"],
    ),
    ("webhooks", "timestamp-frozen", &["each-attempt-carries-its-own-time@3"]),
    ("webhooks", "timestamp-unchecked", &["stale-timestamps-are-refused@1"]),
    ("webhooks", "verifies-reserialized", &["the-raw-body-is-verified@1"]),
    (
        "webhooks",
        "webhook-no-retry",
        &[
            "attempts-are-capped@3",
            "each-attempt-carries-its-own-time@3",
            "failed-attempts-are-retried-with-backoff@3",
            "redirects-are-not-followed@3",
            "retry-after-is-honoured@3",
        ],
    ),
    ("cache-aside", "no-cache", &["repeated-reads-hit-the-cache@5"]),
    (
        "cache-aside",
        "ttl-minutes",
        &["an-expired-entry-is-read-again@6", "the-ttl-comes-from-the-env@7"],
    ),
    ("cache-aside", "serves-stale", &["an-expired-entry-is-read-again@6"]),
    ("n-plus-one", "batch-chunks-of-2", &["a-page-makes-one-batch-call@6"]),
    ("webhooks", "signature-unchecked", &["bad-signatures-are-refused@1"]),
    ("async-jobs", "error-string", &["a-failed-job-says-why@4"]),
    (
        "async-jobs",
        "job-appears-late",
        &["status-only-moves-forward@3", "the-status-resource-exists-at-once@2"],
    ),
    ("async-jobs", "job-created-201", &["a-job-is-accepted-at-once@1"]),
    (
        "async-jobs",
        "no-job-validation",
        &["invalid-bodies-are-refused-at-once@1"],
    ),
    (
        "async-jobs",
        "queued-invisible",
        &["the-status-resource-exists-at-once@2"],
    ),
    (
        "async-jobs",
        "result-url-early",
        &["a-failed-job-says-why@4", "the-result-resolves-when-done@3"],
    ),
    ("async-jobs", "result-url-wrong", &["the-result-resolves-when-done@5"]),
    ("async-jobs", "status-goes-back", &["status-only-moves-forward@3"]),
    (
        "async-jobs",
        "sync-work",
        &[
            "a-job-is-accepted-at-once@1",
            "the-result-resolves-when-done@3",
            "the-status-resource-exists-at-once@2",
        ],
    ),
    ("async-jobs", "unknown-job-500", &["an-unknown-job-is-404@1"]),
    ("async-jobs", "work-on-read", &["the-work-is-done-once@5"]),
    (
        "session-auth",
        "adopts-session-id",
        &["login-never-adopts-a-session-id@2"],
    ),
    (
        "session-auth",
        "cookie-not-httponly",
        &["login-sets-a-safe-session-cookie@2"],
    ),
    (
        "session-auth",
        "cookie-path-missing",
        &["login-sets-a-safe-session-cookie@2"],
    ),
    (
        "session-auth",
        "login-says-unknown-user",
        &["failed-logins-do-not-say-why@3"],
    ),
    ("session-auth", "logout-cookie-only", &["logout-ends-the-session@4"]),
    ("session-auth", "logout-keeps-cookie", &["logout-ends-the-session@3"]),
    ("session-auth", "me-last-login", &["the-session-names-its-member@5"]),
    ("session-auth", "missing-cookie-500", &["no-session-is-401@1"]),
    ("session-auth", "no-throttle", &["repeated-failures-are-throttled@3"]),
    ("session-auth", "samesite-none", &["login-sets-a-safe-session-cookie@2"]),
    (
        "session-auth",
        "unknown-session-500",
        &[
            "login-never-adopts-a-session-id@3",
            "logout-ends-the-session@4",
            "no-session-is-401@2",
        ],
    ),
    (
        "middleware",
        "auth-after-handler",
        &["refused-requests-have-no-effect@3"],
    ),
    (
        "middleware",
        "cors-wildcard",
        &["responses-name-the-app-origin@1", "the-preflight-allows-the-app@1"],
    ),
    (
        "middleware",
        "framework-404",
        &["every-layer-answers-problem-details@2"],
    ),
    (
        "middleware",
        "headers-on-success-only",
        &["security-headers-are-on-every-response@2"],
    ),
    (
        "middleware",
        "json-rejection-plain",
        &["every-layer-answers-problem-details@4"],
    ),
    ("middleware", "no-vary-origin", &["responses-name-the-app-origin@1"]),
    (
        "middleware",
        "origin-prefix-match",
        &["foreign-origins-are-not-allowed@2"],
    ),
    ("middleware", "origin-reflected", &["foreign-origins-are-not-allowed@1"]),
    ("middleware", "preflight-needs-key", &["the-preflight-allows-the-app@1"]),
    (
        "middleware",
        "server-version",
        &["security-headers-are-on-every-response@1"],
    ),
    (
        "middleware",
        "request-id-after-auth",
        &["every-response-has-a-request-id@2"],
    ),
    ("behind-proxy", "forwarded-ignored", &["forwarded-is-honoured@1"]),
    (
        "behind-proxy",
        "leftmost-xff",
        &["the-client-is-the-rightmost-untrusted-address@1"],
    ),
    (
        "behind-proxy",
        "location-from-host-header",
        &["links-use-the-forwarded-scheme-and-host@1"],
    ),
    ("behind-proxy", "no-gzip", &["gzip-when-asked@1"]),
    ("behind-proxy", "no-vary-encoding", &["gzip-when-asked@1"]),
    ("behind-proxy", "q-zero-ignored", &["identity-when-asked@2"]),
    (
        "behind-proxy",
        "rightmost-xff",
        &["the-client-is-the-rightmost-untrusted-address@2"],
    ),
    (
        "behind-proxy",
        "trust-everyone",
        &[
            "the-client-is-the-rightmost-untrusted-address@1",
            "untrusted-peers-are-not-believed@2",
        ],
    ),
    (
        "behind-proxy",
        "xfh-always-trusted",
        &["untrusted-peers-are-not-believed@2"],
    ),
    ("injection-defense", "like-unescaped", &["wildcards-are-literal@5"]),
    ("injection-defense", "nosniff-missing", &["answers-are-json-not-html@1"]),
    ("injection-defense", "quotes-doubled", &["names-round-trip-exactly@1"]),
    (
        "injection-defense",
        "sort-concatenated",
        &["sort-columns-are-allowlisted@5"],
    ),
    (
        "injection-defense",
        "string-sql",
        &["quotes-are-data@1", "tautologies-find-nothing@2"],
    ),
    (
        "injection-defense",
        "string-sql-errors-hidden",
        &["tautologies-find-nothing@2"],
    ),
    ("injection-defense", "q-pasted", &["quotes-are-data@3"]),
    ("graphql-endpoint", "gql-add-not-stored", &["a-mutation-adds-a-book@2"]),
    ("graphql-endpoint", "gql-all-fields", &["only-selected-fields@1"]),
    ("graphql-endpoint", "gql-any-content-type", &["only-json-bodies@1"]),
    ("graphql-endpoint", "gql-content-type-html", &["a-query-over-post@1"]),
    ("graphql-endpoint", "gql-errors-object", &["a-syntax-error-is-400@1"]),
    (
        "graphql-endpoint",
        "gql-field-error-400",
        &["a-field-error-keeps-the-data@1"],
    ),
    ("graphql-endpoint", "gql-get-405", &["a-query-over-get@1"]),
    ("graphql-endpoint", "gql-get-mutation", &["no-mutation-over-get@1"]),
    (
        "graphql-endpoint",
        "gql-get-mutation-405-late",
        &["no-mutation-over-get@2"],
    ),
    (
        "graphql-endpoint",
        "gql-missing-query-500",
        &["a-body-without-query-is-400@1"],
    ),
    ("graphql-endpoint", "gql-operation-first", &["operation-name-selects@1"]),
    ("graphql-endpoint", "gql-parse-200", &["a-syntax-error-is-400@1"]),
    ("graphql-endpoint", "gql-unknown-error", &["an-unknown-book-is-null@1"]),
    (
        "graphql-endpoint",
        "gql-validated-late",
        &["a-validation-error-is-4xx@2"],
    ),
    (
        "graphql-endpoint",
        "gql-validation-200",
        &["a-validation-error-is-4xx@1"],
    ),
    (
        "graphql-endpoint",
        "gql-variables-ignored",
        &["variables-are-applied@1"],
    ),
    (
        "graphql-endpoint",
        "gql-year-checked-late",
        &["a-field-error-keeps-the-data@2"],
    ),
    (
        "graphql-endpoint",
        "gql-year-unchecked",
        &["a-field-error-keeps-the-data@1"],
    ),
    (
        "injection-defense",
        "csrf-unchecked",
        &[
            "cookie-writes-need-the-csrf-token@3",
            "the-token-belongs-to-its-session@4",
        ],
    ),
    (
        "injection-defense",
        "csrf-missing-ok",
        &["cookie-writes-need-the-csrf-token@3"],
    ),
    (
        "injection-defense",
        "csrf-global-token",
        &["the-token-belongs-to-its-session@4"],
    ),
    (
        "injection-defense",
        "delete-no-auth",
        &["staff-delete-with-the-token@6"],
    ),
    (
        "injection-defense",
        "csrf-any-session",
        &["the-token-belongs-to-its-session@4"],
    ),
    ("data-integrity", "orphan-kept", &["books-need-an-existing-author@5"]),
    ("data-integrity", "batch-or-ignore", &["a-bad-batch-stores-nothing@6"]),
    ("data-integrity", "email-case-sensitive", &["emails-ignore-case@2"]),
    (
        "data-integrity",
        "email-check-then-insert",
        &["concurrent-duplicates-create-one@1"],
    ),
    (
        "data-integrity",
        "conflict-500",
        &[
            "a-bad-batch-stores-nothing@6",
            "concurrent-duplicates-create-one@1",
            "emails-are-unique@2",
            "emails-ignore-case@2",
            "isbns-are-unique@3",
        ],
    ),
    ("data-integrity", "email-field-constraint", &["emails-are-unique@2"]),
    ("data-integrity", "isbn-conflict-422", &["isbns-are-unique@3"]),
    ("data-integrity", "batch-last-dropped", &["a-batch-stores-every-book@3"]),
    (
        "data-integrity",
        "conflict-no-field",
        &[
            "a-bad-batch-stores-nothing@4",
            "books-need-an-existing-author@3",
            "emails-are-unique@2",
            "isbns-are-unique@3",
        ],
    ),
    (
        "data-integrity",
        "missing-author-500",
        &["a-bad-batch-stores-nothing@4", "books-need-an-existing-author@3"],
    ),
    (
        "data-integrity",
        "book-integrity-409",
        &["books-need-an-existing-author@3"],
    ),
    ("data-integrity", "delete-cascades", &["authors-with-books-stay@3"]),
    ("data-integrity", "name-copied", &["a-rename-shows-everywhere@5"]),
    ("data-integrity", "batch-not-atomic", &["a-bad-batch-stores-nothing@5"]),
    (
        "data-integrity",
        "author-books-unindexed",
        &["an-authors-books-are-found-by-index@6"],
    ),
    (
        "tls",
        "own-certificate",
        &[
            "https-answers-carry-hsts@1",
            "https-with-the-run-certificate@1",
            "tls-1-2-and-1-3-are-accepted@1",
        ],
    ),
    ("tls", "hello-404", &["https-with-the-run-certificate@1"]),
    ("tls", "tls12-refused", &["tls-1-2-and-1-3-are-accepted@1"]),
    ("tls", "tls13-refused", &["tls-1-2-and-1-3-are-accepted@2"]),
    ("tls", "legacy-tls-accepted", &["tls-1-0-and-1-1-are-refused@1"]),
    ("tls", "hsts-missing", &["https-answers-carry-hsts@1"]),
    ("tls", "hsts-short", &["https-answers-carry-hsts@1"]),
    ("tls", "hsts-on-http", &["no-hsts-over-plain-http@1"]),
    ("tls", "redirect-302", &["plain-http-redirects-to-https@1"]),
    ("tls", "redirect-301-always", &["plain-http-writes-keep-their-method@1"]),
    ("tls", "redirect-drops-query", &["plain-http-redirects-to-https@1"]),
    (
        "tls",
        "http-served",
        &[
            "no-hsts-over-plain-http@1",
            "plain-http-redirects-to-https@1",
            "plain-http-writes-keep-their-method@1",
        ],
    ),
    ("tls", "hsts-success-only", &["https-answers-carry-hsts@2"]),
    (
        "tls",
        "redirect-get-post-only",
        &[
            "plain-http-redirects-to-https@2",
            "plain-http-writes-keep-their-method@2",
        ],
    ),
    (
        "tls",
        "redirect-plain-port",
        &[
            "plain-http-redirects-to-https@1",
            "plain-http-writes-keep-their-method@1",
        ],
    ),
    (
        "stateless-replicas",
        "replica-memory-carts",
        &[
            "a-cart-is-shared-and-read-fresh@4",
            "the-order-limit-counts-every-replica@11",
            "a-restarted-replica-loses-nothing@7",
        ],
    ),
    (
        "stateless-replicas",
        "replica-cached-carts",
        &["a-cart-is-shared-and-read-fresh@6"],
    ),
    (
        "stateless-replicas",
        "replica-memory-tokens",
        &[
            "a-token-works-on-every-replica@2",
            "a-sign-out-ends-the-session-everywhere@2",
            "a-restarted-replica-loses-nothing@7",
        ],
    ),
    (
        "stateless-replicas",
        "replica-token-cache",
        &["a-sign-out-ends-the-session-everywhere@5"],
    ),
    (
        "stateless-replicas",
        "replica-local-ids",
        &["order-ids-are-unique-across-replicas@8"],
    ),
    (
        "stateless-replicas",
        "replica-local-limit",
        &["the-order-limit-counts-every-replica@10"],
    ),
    (
        "stateless-replicas",
        "schema-reset-on-start",
        &["a-restarted-replica-loses-nothing@7"],
    ),
    (
        "stateless-replicas",
        "token-last-64",
        &["a-token-works-on-every-replica@4"],
    ),
];

// Several threads: the reference services run in this runtime, and one run's busy moment (hashing, a burst of
// requests) must not delay another's timed answer on a shared thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
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

/// The probes of a report that did not pass (not applicable ones aside), as `probe@step` (the step that failed), sorted. A probe that errored
/// or was skipped is listed as `probe!errored` / `probe!skipped`: a defect must make its probes *fail*.
fn failures(report: &proctor::outcome::RunReport) -> Vec<String> {
    use proctor::outcome::Verdict;
    let mut ids: Vec<String> = report
        .challenges
        .iter()
        .flat_map(|c| c.probes.iter())
        .filter(|p| !matches!(p.verdict, Verdict::Passed | Verdict::NotApplicable))
        .map(|p| match p.verdict {
            Verdict::Failed => {
                let step = p.steps.iter().find(|s| !s.passed).map_or(0, |s| s.number);
                format!("{}@{step}", p.id)
            }
            other => format!("{}!{other:?}", p.id).to_lowercase(),
        })
        .collect();
    ids.sort();
    ids
}

/// Whether the failures match the expectation: every expected probe failed (at the named step, when one is given
/// as `probe@N`) and nothing else did not pass.
fn matches(expected: &[&str], actual: &[String]) -> bool {
    expected.len() == actual.len()
        && expected.iter().all(|e| {
            actual.iter().any(|a| match e.split_once('@') {
                Some(_) => a == e,
                None => a.split_once('@').is_some_and(|(probe, _)| probe == *e),
            })
        })
}

// Several threads, for the same reason as above.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_defect_fails_exactly_the_probes_it_targets_at_the_step_that_checks_it() {
    let runs = MATRIX.iter().map(|(challenge, defect, expected)| async move {
        let report = grade(&[catalog(challenge)], Target::Reference((*defect).to_string())).await;
        (*challenge, *defect, *expected, failures(&report))
    });
    let mut wrong = Vec::new();
    // A few at a time: timing probes (the rate limiter's windows) must not be starved by ninety runs at once.
    use futures::StreamExt;
    let results: Vec<_> = futures::stream::iter(runs).buffer_unordered(8).collect().await;
    for (challenge, defect, expected, actual) in results {
        if !matches(expected, &actual) {
            wrong.push(format!(
                "{challenge} with {defect}: expected {expected:?} to fail, but {actual:?} did not pass"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn every_probe_is_failed_on_its_own_by_some_defect_and_every_defect_is_in_the_matrix() {
    let challenges = proctor::catalog::challenges().expect("the catalog loads");
    let image_defects = crate::support::IMAGE_DEFECTS
        .iter()
        .map(|(_, _, probes)| ("graceful-shutdown", "", *probes));
    let sole_kills: BTreeSet<(String, String)> = MATRIX
        .iter()
        .copied()
        .chain(image_defects)
        .filter(|(_, _, probes)| probes.len() == 1)
        .map(|(challenge, _, probes)| {
            let probe = probes[0].split_once('@').map_or(probes[0], |(probe, _)| probe);
            (challenge.to_string(), probe.to_string())
        })
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
            MATRIX
                .iter()
                .any(|(_, defects, _)| defects.split(',').any(|d| d == *name)),
            "defect {name} is not in the matrix"
        );
    }
}

#[tokio::test]
async fn rerunning_with_the_same_seed_against_the_same_running_service_fails_nothing() {
    // One reference service kept running across both runs, as a candidate's --url service would be.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(proctor_reference::serve(listener, proctor_reference::Config::default()));
    let url = url::Url::parse(&format!("http://127.0.0.1:{port}")).expect("url");
    // The challenges whose service needs no env of its own.
    let challenges: Vec<_> = [
        "rest-resource",
        "status-codes",
        "http-caching",
        "pagination",
        "authn-authz",
    ]
    .into_iter()
    .map(catalog)
    .collect();
    for run_id in ["first", "second"] {
        let options = proctor::session::Options {
            seed: 7,
            run_id: run_id.to_string(),
            jobs: Some(1),
            ..crate::support::options()
        };
        let report = crate::support::grade_with(&challenges, Target::Url(url.clone()), options).await;
        let failed = failures(&report);
        assert!(failed.is_empty(), "run {run_id} with seed 7 failed {failed:?}");
    }
}
