//! The reference service: one axum app that passes every proctor challenge, plus named defects.
//!
//! Each defect is a plausible real bug, switched on by name (`REFERENCE_DEFECTS=etag-unquoted,...`). The
//! proctor test-suite turns them on one at a time to prove that every probe fails the bug it targets and
//! passes everything else.

mod auth;
mod cacheaside;
mod caching;
mod config;
mod graphql;
mod idempotency;
mod injection;
mod integrity;
mod jobs;
mod jwt;
mod memos;
mod middleware;
mod observe;
mod orders;
mod pagination;
mod proxy;
mod ratelimit;
mod replicas;
mod resource;
mod sessions;
mod shutdown;
mod status;
mod tls;
mod upstream;
mod webhooks;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// Every defect the reference can carry: name and the bug it simulates.
pub const DEFECTS: &[(&str, &str)] = &[
    // rest-resource
    ("create-200", "POST /items answers 200 instead of 201 Created"),
    (
        "location-wrong",
        "POST /items sends a Location that does not resolve (/item/{id})",
    ),
    (
        "unknown-200",
        "GET of an unknown item answers 200 with null instead of 404",
    ),
    (
        "bad-id-500",
        "an item id that is not a number crashes the handler: 500 with a stack trace",
    ),
    ("put-merges", "PUT merges into the stored item instead of replacing it"),
    ("delete-200", "DELETE answers 200 with a body instead of 204"),
    ("delete-noop", "DELETE answers 204 but does not remove the item"),
    ("head-405", "HEAD is not routed and answers 405"),
    ("405-no-allow", "a wrong method gets 405 without an Allow header"),
    ("options-405", "OPTIONS is not supported"),
    ("text-plain-json", "JSON bodies are labelled text/plain"),
    (
        "allow-route-only",
        "a 405's Allow lists only the first matching route's methods (GET, HEAD), a common router default",
    ),
    ("put-upsert", "PUT of an unknown id creates the item instead of 404"),
    (
        "delete-again-204",
        "deleting an item that is already gone answers 204 instead of 404",
    ),
    (
        "list-cached",
        "GET /items is computed once and cached: items created later never show",
    ),
    (
        "no-validation",
        "items are stored without validation: empty names and negative prices pass",
    ),
    // http-caching
    ("etag-unquoted", "ETag is sent without the quotes of an entity-tag"),
    ("no-cache-control", "GET /documents responses carry no Cache-Control"),
    (
        "ignore-if-none-match",
        "If-None-Match is ignored: always 200 with the body",
    ),
    ("304-bare", "304 responses omit ETag and Cache-Control"),
    (
        "strong-compare",
        "If-None-Match is compared as a raw string (no weak comparison, no lists)",
    ),
    (
        "star-ignored",
        "If-None-Match: * is not treated as matching any current representation",
    ),
    ("etag-stale", "the ETag does not change when the document is replaced"),
    ("ignore-if-match", "If-Match is ignored on PUT (lost updates)"),
    (
        "last-modified-ms",
        "If-Modified-Since is compared with sub-second modification times",
    ),
    (
        "ims-over-inm",
        "If-Modified-Since is evaluated even when If-None-Match is present",
    ),
    ("put-always-200", "PUT answers 200 even when it creates the document"),
    (
        "last-modified-now",
        "Last-Modified is the time of the response, not of the last change",
    ),
    (
        "ims-string-compare",
        "If-Modified-Since is compared with Last-Modified as text: a later date answers 200",
    ),
    (
        "if-match-star-creates",
        "If-Match: * on a missing document creates it instead of 412",
    ),
    (
        "if-match-after-write",
        "If-Match is checked after the document is written: the 412 comes too late",
    ),
    ("put-no-validators", "PUT responses carry no ETag or Last-Modified"),
    (
        "etag-weak",
        "the ETag is weak (W/\"...\") although the brief asks for a strong one",
    ),
    (
        "star-on-missing",
        "If-None-Match: * on a missing document answers 304 instead of 404",
    ),
    (
        "ims-always-304",
        "any valid If-Modified-Since answers 304, even a date long before the last change",
    ),
    (
        "ims-invalid-500",
        "an If-Modified-Since that is not a date crashes with 500",
    ),
    (
        "if-match-weak-compare",
        "If-Match uses weak comparison: the current tag marked W/ lets the PUT through",
    ),
    (
        "if-match-string-compare",
        "If-Match is compared as a raw string: lists and * never match",
    ),
    // rate-limiter
    ("status-403", "the limiter refuses with 403 instead of 429"),
    (
        "retry-after-float",
        "Retry-After is sent as fractional seconds (\"2.5\")",
    ),
    (
        "retry-after-lies",
        "Retry-After says to come back a second before the window reopens",
    ),
    (
        "key-prefix-8",
        "the limiter keys on the first 8 characters of the API key",
    ),
    (
        "racy-counter",
        "the counter is read, then written later: concurrent requests slip past the limit",
    ),
    (
        "remaining-negative",
        "RateLimit-Remaining goes negative once the limit is passed",
    ),
    ("trust-xff", "the limiter keys on a client-supplied X-Forwarded-For"),
    (
        "no-api-key-422",
        "a request without X-Api-Key gets the framework's 422 validation error",
    ),
    (
        "window-slides",
        "the window restarts with every request instead of with the first",
    ),
    ("text-429", "429 answers are plain text"),
    (
        "reset-floor",
        "RateLimit-Reset rounds the seconds left down instead of up",
    ),
    (
        "reset-constant",
        "RateLimit-Reset is always WINDOW_SECONDS, not the time left in the window",
    ),
    // idempotency-keys
    ("replay-creates", "a retry with a used key creates a second payment"),
    ("replay-200", "a replay answers 200 instead of the stored 201"),
    (
        "mismatch-ignored",
        "a used key with a different payload replays the first response instead of 422",
    ),
    (
        "check-then-insert",
        "the key is checked, then claimed after the work: concurrent retries all create",
    ),
    ("key-optional", "a POST without Idempotency-Key is processed anyway"),
    ("no-key-validation", "keys of any length are accepted"),
    (
        "keys-global",
        "keys are shared by all clients: one client's key replays another's payment",
    ),
    ("note-appends", "PUT of a note appends instead of replacing"),
    (
        "delete-again-500",
        "deleting an already deleted payment crashes with 500",
    ),
    (
        "replay-live",
        "a replay rebuilds the body from the payment as it is now instead of the stored response",
    ),
    (
        "key-max-254",
        "a 255-character key is refused: the length check is off by one",
    ),
    (
        "client-id-optional",
        "requests without X-Client-Id are served as an anonymous client",
    ),
    ("html-400", "400 answers are the framework's HTML error page"),
    ("no-owner-check", "GET /payments/{id} serves any client's payment"),
    (
        "payment-delete-again-204",
        "deleting a payment that is already gone answers 204",
    ),
    ("payment-created-200", "POST /payments answers 200 instead of 201"),
    ("note-omitted", "the created payment's body leaves out \"note\": null"),
    // status-codes
    (
        "html-413",
        "the framework's body limit answers 413 with its own text/html page, not problem details",
    ),
    (
        "extra-fields-allowed",
        "fields other than text are ignored instead of 422",
    ),
    ("no-length-check", "empty and over-long notes are stored"),
    ("delete-missing-204", "DELETE of a note that does not exist answers 204"),
    (
        "get-note-id-number",
        "GET answers the note's id as a JSON number, not a string",
    ),
    (
        "length-in-bytes",
        "the 500-character limit counts UTF-8 bytes, not characters",
    ),
    ("notes-created-200", "POST /notes answers 200 instead of 201"),
    (
        "notes-delete-body",
        "DELETE /notes/{id} answers 200 with a body instead of 204",
    ),
    ("malformed-422", "malformed JSON answers 422 instead of 400"),
    (
        "invalid-400",
        "a well-formed but invalid note answers 400 instead of 422",
    ),
    (
        "media-type-ignored",
        "a text/plain body is parsed as JSON instead of answering 415",
    ),
    ("notes-missing-500", "a missing note crashes with 500 instead of 404"),
    ("notes-405-no-allow", "405 answers on /notes carry no Allow header"),
    ("no-body-limit", "bodies of any size are accepted"),
    (
        "plain-json-errors",
        "errors are {\"error\": ...} application/json instead of problem details",
    ),
    ("status-as-string", "problem details carry \"status\" as a string"),
    (
        "stack-traces",
        "a non-numeric note id crashes with a Python traceback in the body",
    ),
    // authn-authz
    ("no-www-authenticate", "401 answers carry no WWW-Authenticate challenge"),
    ("bad-token-403", "an invalid token answers 403 instead of 401"),
    (
        "forbidden-401",
        "an authenticated user without the right answers 401 instead of 403",
    ),
    ("no-owner-check-read", "any user can read any document (BOLA)"),
    ("no-owner-check-write", "any user can change any document (BOLA)"),
    ("leaks-hash", "user responses include the password hash"),
    ("user-enumeration", "login says \"no such user\" for unknown users"),
    (
        "challenge-always-errors",
        "a request without credentials gets error=\"invalid_token\" in its challenge",
    ),
    (
        "duplicate-overwrite",
        "signing up with a taken username replaces the account (a takeover) and answers 201",
    ),
    (
        "short-password-accepted",
        "passwords shorter than 8 characters are accepted",
    ),
    (
        "role-from-body",
        "the sign-up body is bound onto the user: \"role\": \"admin\" makes an admin",
    ),
    (
        "pwd-field-leak",
        "users are serialized with a \"pwd\" field holding the scrypt hash",
    ),
    (
        "password-changed-at",
        "not a bug: users carry a password_changed_at date, which must not be mistaken for a leak",
    ),
    ("doc-no-location", "POST /docs answers 201 without a Location"),
    (
        "me-first-user",
        "GET /users/me answers the first user ever created, not the caller",
    ),
    (
        "realm-with-scope",
        "not a bug: the challenge without credentials is `Bearer realm=\"docs\", scope=\"docs\"`",
    ),
    // jwt-auth
    ("opaque-tokens", "login issues opaque random tokens instead of JWTs"),
    (
        "token-store-only",
        "only tokens the service itself issued are accepted, not any signed with the secret",
    ),
    (
        "alg-none-mixed-case",
        "alg \"none\" is refused but \"None\" and \"nOnE\" pass unsigned",
    ),
    (
        "verify-cache-by-signature",
        "verification is memoized by signature, so a tampered payload with a known signature passes",
    ),
    (
        "default-secret-accepted",
        "tokens signed with the well-known default secret \"secret\" are accepted",
    ),
    ("expiry-ignored", "exp is not checked"),
    ("nbf-ignored", "nbf is not checked"),
    ("audience-ignored", "aud is not checked"),
    (
        "iat-required",
        "not a bug: tokens without iat are refused (strict, and allowed); every probe must still pass",
    ),
    (
        "hs384-accepted",
        "the algorithm is read from the token: HS384 and HS512 tokens signed with the secret pass",
    ),
    (
        "bare-bearer-challenge",
        "rejected tokens get `WWW-Authenticate: Bearer` without error=\"invalid_token\"",
    ),
    (
        "missing-token-422",
        "a request without Authorization gets the framework's 422 validation error",
    ),
    ("login-any-password", "login accepts any password for a registered user"),
    (
        "audience-substring",
        "aud is checked with `contains`: notes-api-admin passes for notes-api",
    ),
    (
        "issuer-prefix",
        "iss is checked with `starts_with`: https://auth.proctor.test.evil.example passes",
    ),
    (
        "aud-must-be-string",
        "an aud claim that is an array holding the audience is refused (RFC 7519 allows arrays)",
    ),
    ("issuer-ignored", "iss is not checked"),
    // pagination
    (
        "no-tiebreaker",
        "the cursor keeps the score only, so items with an equal score are skipped",
    ),
    (
        "next-on-last-page",
        "a full last page still advertises a next page (which is empty)",
    ),
    (
        "offset-pagination",
        "the cursor is an offset, so inserts shift pages and items repeat",
    ),
    ("next-drops-filter", "the Link to the next page drops the tag filter"),
    (
        "limit-unchecked",
        "a limit outside 1..=100 or not a number crashes with 500",
    ),
    ("cursor-500", "a cursor the service did not issue crashes with 500"),
    (
        "cursor-empty-string-at-end",
        "the last page has \"next_cursor\": \"\" instead of null",
    ),
    ("no-link-header", "pages carry no Link header"),
    (
        "unsigned-cursor",
        "cursors are base64 of the position without a signature: a changed one names another position",
    ),
    ("ties-newest-first", "articles with an equal score come newest first"),
    ("limit-max-99", "limit=100 is refused: the range check is off by one"),
    ("default-limit-20", "without a limit, pages hold 20 articles"),
    ("article-created-200", "POST /articles answers 200 instead of 201"),
    // twelve-factor-config
    (
        "greeting-default",
        "a missing GREETING falls back to \"Hello\" instead of refusing to start",
    ),
    ("secret-optional", "the service starts without API_SECRET"),
    (
        "config-error-unnamed",
        "a missing variable stops the start with \"invalid configuration\", not its name",
    ),
    (
        "greeting-hardcoded",
        "the greeting is always \"Hello\", whatever GREETING says",
    ),
    (
        "max-length-default",
        "MAX_NAME_LENGTH is ignored: names up to 20 characters pass",
    ),
    (
        "settings-hardcoded",
        "the greeting and the name limit are the values the brief shows (Hallo, 5), written into the code",
    ),
    ("admin-open", "GET /admin/config answers without a token"),
    (
        "token-prefix-match",
        "the token check accepts any Authorization header that starts with the right one",
    ),
    ("config-shows-secret", "GET /admin/config shows API_SECRET in clear"),
    (
        "401-reveals-secret",
        "the 401 of /admin/config says which token was expected",
    ),
    (
        "secret-logged",
        "the startup log line dumps the whole configuration, API_SECRET included",
    ),
    (
        "auth-header-logged",
        "every /admin/config request is logged with its Authorization header",
    ),
    // observability
    (
        "health-plain-json",
        "GET /health answers application/json instead of application/health+json",
    ),
    (
        "metrics-untyped",
        "/metrics has no # TYPE line: the request counter is untyped",
    ),
    (
        "metrics-skip-errors",
        "the request counter counts only successful requests: 4xx and 5xx are missing",
    ),
    (
        "raw-path-labels",
        "the route label is the raw path (/widgets/42), one series per URL",
    ),
    (
        "request-id-ignored",
        "an incoming X-Request-Id is replaced by a generated one",
    ),
    (
        "request-id-trusted",
        "any incoming X-Request-Id is echoed as is, however long or odd",
    ),
    (
        "request-id-absent",
        "without an incoming X-Request-Id the response has none",
    ),
    ("log-plain-text", "request log lines are plain text, not JSON"),
    (
        "access-log-too",
        "the server's own access log stays on: two lines per request, one without the request id",
    ),
    (
        "startup-banner-text",
        "a plain-text banner is printed at start, before the JSON logging begins",
    ),
    // graceful-shutdown
    (
        "sigterm-drops-requests",
        "on SIGTERM, requests in flight are cut short with 503 instead of being finished",
    ),
    (
        "slow-exit",
        "after the last request, a shutdown hook waits 4 s before the process exits",
    ),
    (
        "accepts-during-drain",
        "while requests in flight are finished after SIGTERM, new requests are still accepted and answered",
    ),
    (
        "sigterm-ignored",
        "SIGTERM is caught and ignored: only SIGKILL, after the grace period, ends the service",
    ),
    // persistence-and-migration
    ("memory-only", "memos are kept in memory only: a restart loses them"),
    (
        "update-not-saved",
        "PUT /memos/{id} changes the memo in memory only: a restart brings back the old text",
    ),
    (
        "split-last-line",
        "the migration splits at the last line break instead of the first",
    ),
    (
        "no-migration",
        "version 2 serves version-1 memos as they are, without migrating them",
    ),
    (
        "migration-unrecorded",
        "the migration is not recorded, so every start of version 2 runs it again over migrated memos",
    ),
    (
        "partial-migration",
        "the migration saves each memo as it converts it: a failure leaves the data half migrated",
    ),
    // resilient-upstream
    (
        "price-rounded",
        "the price goes through an integer field: 187.31 becomes 187",
    ),
    (
        "no-upstream-auth",
        "calls to the quotes service carry no Authorization header",
    ),
    (
        "request-id-dropped",
        "the request's X-Request-Id is not passed on to the quotes service",
    ),
    ("retries-404", "every failed call is retried, a 404 included"),
    ("404-as-502", "a 404 of the quotes service answers 502"),
    (
        "no-timeout",
        "calls wait 5 seconds for an answer, not UPSTREAM_TIMEOUT_MS",
    ),
    ("timeout-retried", "a call that timed out is retried like a 5xx"),
    ("no-retry", "failed quote calls are not retried"),
    ("retry-no-backoff", "retries follow each other without a pause"),
    (
        "retry-constant-backoff",
        "every retry waits RETRY_BASE_MS: the waits do not grow",
    ),
    (
        "reset-not-retried",
        "only 5xx answers are retried: a dropped connection fails at once",
    ),
    (
        "upstream-status-passed-through",
        "when every attempt fails, the API answers the quotes service's own status (500), not 502",
    ),
    (
        "reset-500",
        "a dropped connection on the last attempt crashes the handler: 500",
    ),
    (
        "trade-id-own",
        "a trade is answered with an id the API made up, not the quotes service's",
    ),
    ("trade-quantity-string", "the trade call sends the quantity as a string"),
    ("post-retried", "a failed trade call is retried like a GET"),
    ("no-breaker", "there is no circuit breaker"),
    (
        "breaker-counts-attempts",
        "the breaker counts failed attempts, not failed requests: it opens during the first failing request",
    ),
    (
        "breaker-threshold-plus-one",
        "the breaker opens after BREAKER_THRESHOLD + 1 failures",
    ),
    ("breaker-never-closes", "once open, the breaker stays open"),
    (
        "cooldown-closes",
        "after the cool-down the breaker closes outright: a failed trial counts as one failure, not a reopening",
    ),
    (
        "breaker-calls-anyway",
        "an open breaker still calls the quotes service (and ignores the answer)",
    ),
    (
        "trial-keeps-open",
        "a successful trial starts another cool-down instead of closing the breaker",
    ),
    // cache-aside
    (
        "fields-dropped",
        "products are answered through a model of id, name and price: other fields are lost",
    ),
    (
        "no-cache",
        "nothing is kept: every read calls the catalog (concurrent misses still share one call)",
    ),
    ("ttl-minutes", "CACHE_TTL_SECONDS is taken as minutes"),
    (
        "ttl-hardcoded",
        "the time to live is 2 seconds, whatever CACHE_TTL_SECONDS says",
    ),
    (
        "serves-stale",
        "an expired product is answered from the cache while the catalog is read in the background",
    ),
    ("no-invalidation", "a PUT leaves the old product in the cache"),
    ("write-not-forwarded", "a PUT updates the cache only, never the catalog"),
    ("no-single-flight", "concurrent misses each call the catalog"),
    (
        "missing-500",
        "a product the catalog does not have crashes the handler: 500",
    ),
    ("errors-cached", "a catalog failure is cached like a product"),
    // n-plus-one
    ("customer-name-only", "orders embed only the customer's id and name"),
    (
        "n-plus-one",
        "each order's customer is fetched with its own GET /customers/{id}",
    ),
    ("empty-batch-call", "an empty page still calls GET /customers?ids="),
    ("ids-repeated", "the batch asks for a customer once per order"),
    (
        "batch-chunks-of-2",
        "customers are fetched two ids per call (an IN list capped too low)",
    ),
    (
        "batch-all-orders",
        "the batch asks for the customers of every order of the shop, then the page is cut",
    ),
    (
        "missing-fetched-alone",
        "a customer missing from the batch is fetched again on its own",
    ),
    (
        "missing-dropped",
        "an order whose customer is unknown is left out of the listing",
    ),
    (
        "order-created-200",
        "POST /shops/{shop}/orders answers 200 instead of 201",
    ),
    // webhooks
    (
        "payload-not-enveloped",
        "the payout itself is posted, without the type/timestamp/data envelope",
    ),
    ("signature-hex", "the signature is the hex digest, not base64"),
    ("timestamp-ms", "webhook-timestamp is in milliseconds"),
    (
        "timestamp-frozen",
        "the headers are signed once, at the first attempt: retries resend its timestamp",
    ),
    ("sync-delivery", "POST /payouts delivers the event before it answers"),
    ("webhook-no-retry", "a failed delivery is not retried"),
    ("retry-new-id", "each retry is sent with a new webhook-id"),
    ("retry-no-backoff", "retries follow each other without a pause"),
    (
        "attempts-plus-one",
        "a delivery makes WEBHOOK_MAX_ATTEMPTS + 1 attempts",
    ),
    ("gone-retried", "410 Gone is retried like any failure"),
    (
        "retry-after-ignored",
        "Retry-After is ignored: the next attempt follows the backoff",
    ),
    (
        "redirects-followed",
        "the HTTP client follows redirects: a 307 sends the event to its Location",
    ),
    (
        "no-verification",
        "POST /webhooks applies events without verifying them",
    ),
    (
        "timestamp-unchecked",
        "webhook-timestamp is not compared with the clock",
    ),
    (
        "signature-unchecked",
        "the headers and the timestamp are checked, but the signature is never compared",
    ),
    (
        "missing-signature-500",
        "a webhook without webhook-signature crashes the handler: 500",
    ),
    (
        "first-signature-only",
        "only the first signature of webhook-signature is tried",
    ),
    (
        "verifies-reserialized",
        "the signature is checked over the JSON parsed and serialized again",
    ),
    (
        "replay-applied-twice",
        "a message id already processed is applied again",
    ),
    (
        "any-event-credits",
        "every event type credits the account, not only deposit.succeeded",
    ),
    (
        "customers-down-ignored",
        "a failing customers service is ignored: the listing answers 200 with every customer null",
    ),
    // async-jobs
    ("sync-work", "POST /jobs does the work before it answers"),
    (
        "job-created-201",
        "POST /jobs answers 201 Created, as if the work were done",
    ),
    (
        "job-appears-late",
        "a job is stored when the worker picks it up, a moment after the 202",
    ),
    (
        "status-goes-back",
        "a retry puts a running job back to queued for a moment",
    ),
    (
        "queued-invisible",
        "the status handler looks among started jobs only: a queued job answers 404",
    ),
    (
        "result-url-early",
        "result_url is set when the job is created, before there is a result",
    ),
    (
        "result-url-wrong",
        "result_url points to /result/{id}, which does not exist",
    ),
    ("error-string", "a failed job's error is a plain string"),
    (
        "work-on-read",
        "every read of a succeeded job computes and stores its result again",
    ),
    ("unknown-job-500", "an unknown job id crashes the handler: 500"),
    ("no-job-validation", "any body starts a job"),
    // session-auth
    ("cookie-not-httponly", "the session cookie lacks HttpOnly"),
    ("samesite-none", "the session cookie is SameSite=None"),
    (
        "cookie-path-missing",
        "the session cookie has no Path: browsers scope it to the login URL's folder",
    ),
    (
        "me-last-login",
        "GET /members/me answers the member who logged in last, whatever the session",
    ),
    (
        "unknown-session-500",
        "a session id that is not live crashes the handler: 500",
    ),
    (
        "missing-cookie-500",
        "a request without a session cookie crashes the handler: 500",
    ),
    (
        "adopts-session-id",
        "a login that brings a session id makes that id the session (fixation)",
    ),
    (
        "logout-cookie-only",
        "logout deletes the cookie but leaves the session live on the server",
    ),
    (
        "logout-keeps-cookie",
        "logout ends the session but does not delete the cookie",
    ),
    ("login-says-unknown-user", "a login with an unknown username says so"),
    ("no-throttle", "failed logins are never throttled"),
    // middleware
    (
        "auth-after-handler",
        "the API-key check runs after the handler: refused requests still have their effect",
    ),
    (
        "request-id-after-auth",
        "the request-id middleware runs inside authentication: 401 answers carry no X-Request-Id",
    ),
    (
        "preflight-needs-key",
        "CORS preflights are sent through authentication and answered 401",
    ),
    (
        "cors-wildcard",
        "Access-Control-Allow-Origin is * (invalid with credentials)",
    ),
    (
        "no-vary-origin",
        "responses that depend on Origin do not say Vary: Origin",
    ),
    ("origin-reflected", "any Origin is echoed back as allowed"),
    (
        "origin-prefix-match",
        "an Origin is allowed when it starts with ALLOWED_ORIGIN",
    ),
    (
        "headers-on-success-only",
        "security headers are added to successful responses only",
    ),
    ("server-version", "responses carry a Server header with versions"),
    ("framework-404", "unknown URLs under /api get the framework's bare 404"),
    (
        "json-rejection-plain",
        "a body that is not JSON gets the framework's plain-text 400",
    ),
    // behind-proxy
    (
        "leftmost-xff",
        "the client address is the leftmost X-Forwarded-For entry, which the client writes itself",
    ),
    (
        "rightmost-xff",
        "the client address is the rightmost X-Forwarded-For entry, even when it is a proxy",
    ),
    ("forwarded-ignored", "the standard Forwarded header is ignored"),
    (
        "location-from-host-header",
        "absolute URLs ignore X-Forwarded-Proto and X-Forwarded-Host",
    ),
    ("trust-everyone", "forwarded headers are believed from any peer"),
    (
        "xfh-always-trusted",
        "X-Forwarded-Host is believed from any peer (the address and scheme are not)",
    ),
    ("no-gzip", "responses are never compressed"),
    (
        "no-vary-encoding",
        "compressible responses do not say Vary: Accept-Encoding",
    ),
    (
        "q-zero-ignored",
        "any Accept-Encoding that mentions gzip gets gzip, gzip;q=0 included",
    ),
    // injection-defense
    (
        "quotes-doubled",
        "names are escaped by hand before a bound insert: O'Brien is stored as O''Brien",
    ),
    (
        "string-sql",
        "the name filter is pasted into the SQL: a quote is a syntax error, shown in a 500",
    ),
    (
        "string-sql-errors-hidden",
        "the name filter is pasted into the SQL, and SQL errors answer an empty list: tautologies match everyone",
    ),
    (
        "like-unescaped",
        "the search text goes into LIKE unescaped: % and _ are wildcards",
    ),
    (
        "q-pasted",
        "the search text is pasted into the SQL after escaping % and _ by hand: a quote breaks the query (500)",
    ),
    ("sort-concatenated", "the sort parameter is pasted into ORDER BY"),
    ("nosniff-missing", "answers carry no X-Content-Type-Options: nosniff"),
    (
        "csrf-unchecked",
        "DELETE /customers/{id} checks the staff session but not the CSRF token",
    ),
    (
        "csrf-missing-ok",
        "a missing X-CSRF-Token is let through: only a token that is sent is compared",
    ),
    ("csrf-global-token", "every staff session gets the same CSRF token"),
    (
        "csrf-any-session",
        "the CSRF token of any live staff session is accepted, not only this session's",
    ),
    (
        "delete-no-auth",
        "DELETE /customers/{id} without a staff session deletes (the token is checked only for sessions)",
    ),
    // data-integrity
    (
        "batch-or-ignore",
        "a batch inserts with INSERT OR IGNORE: an ISBN twice (or in use) is skipped, the rest stored",
    ),
    (
        "orphan-kept",
        "a book for a missing author is inserted before the author is checked: 422, but the orphan stays",
    ),
    (
        "email-case-sensitive",
        "emails are unique as exact text: Ada@x.io and ada@x.io are two authors",
    ),
    (
        "email-check-then-insert",
        "email uniqueness is checked by a query before the insert, without a constraint: concurrent creates race",
    ),
    (
        "conflict-500",
        "a unique violation is answered 500 with the database error",
    ),
    (
        "email-field-constraint",
        "an email conflict names the database constraint (authors.email) as the field",
    ),
    (
        "isbn-conflict-422",
        "POST /books answers an ISBN in use 422, as a validation error, instead of 409",
    ),
    (
        "batch-last-dropped",
        "the batch loop stops one short: the last book of a batch is never stored",
    ),
    (
        "conflict-no-field",
        "a conflict's problem details do not name the field",
    ),
    (
        "missing-author-500",
        "a book for a missing author is answered 500 with the foreign-key error",
    ),
    (
        "book-integrity-409",
        "POST /books answers every integrity error 409, a missing author included (one catch-all in the handler)",
    ),
    (
        "delete-cascades",
        "deleting an author deletes their books (ON DELETE CASCADE)",
    ),
    (
        "name-copied",
        "a book keeps a copy of its author's name, taken when it was created",
    ),
    (
        "batch-not-atomic",
        "a batch is inserted row by row without a transaction: the rows before a failure stay",
    ),
    (
        "author-books-unindexed",
        "books.author_id has no index: an author's books are found by a full scan",
    ),
    // tls
    (
        "hsts-success-only",
        "Strict-Transport-Security is added to successful answers only, not to errors",
    ),
    (
        "redirect-get-post-only",
        "only GET and POST are redirected over plain HTTP; other methods answer 405",
    ),
    (
        "redirect-plain-port",
        "the redirect keeps the request's port, which is the plain-HTTP one",
    ),
    (
        "own-certificate",
        "HTTPS is served with a self-signed certificate made at build time, not the one in TLS_CERT",
    ),
    ("hello-404", "GET /hello is not routed over HTTPS (404)"),
    (
        "tls12-refused",
        "only TLS 1.3 is served: clients limited to TLS 1.2 cannot connect",
    ),
    ("tls13-refused", "only TLS 1.2 is served"),
    (
        "legacy-tls-accepted",
        "TLS 1.0 and 1.1 ClientHellos are answered with a ServerHello of that version",
    ),
    ("hsts-missing", "HTTPS answers carry no Strict-Transport-Security"),
    ("hsts-short", "Strict-Transport-Security has max-age=300"),
    (
        "hsts-on-http",
        "the plain-HTTP redirect carries Strict-Transport-Security too",
    ),
    (
        "redirect-302",
        "plain-HTTP GETs are redirected with 302 (temporary) instead of 301",
    ),
    (
        "redirect-301-always",
        "plain-HTTP POSTs are redirected with 301, which clients follow with a GET",
    ),
    (
        "redirect-drops-query",
        "the redirect to HTTPS keeps the path but drops the query",
    ),
    (
        "http-served",
        "the plain-HTTP port serves the app instead of redirecting",
    ),
    // stateless-replicas
    (
        "replica-memory-carts",
        "carts are kept in the replica's memory: another replica sees an empty cart",
    ),
    (
        "replica-cached-carts",
        "a replica caches each cart it has read and updates only its own copy: changes made through another \
         replica are not seen",
    ),
    (
        "replica-memory-tokens",
        "session tokens are kept in the replica's memory: another replica answers 401",
    ),
    (
        "replica-token-cache",
        "a replica remembers tokens it has checked: a sign-out through another replica leaves the token valid there",
    ),
    (
        "replica-local-ids",
        "order ids come from a counter in the replica's memory: two replicas hand out the same id, and reading it \
         finds the earlier order",
    ),
    (
        "replica-local-limit",
        "the order limit is counted in the replica's memory: with two replicas, a user places twice as many orders",
    ),
    (
        "token-last-64",
        "the token is read as the Authorization header's last 64 characters: a made-up longer token passes",
    ),
    (
        "schema-reset-on-start",
        "the tables are dropped and created again at every start: a restarted replica wipes the shared data",
    ),
    // graphql-endpoint
    (
        "gql-content-type-html",
        "answers are labelled text/html, as Express's res.send(string) does",
    ),
    ("gql-parse-200", "a GraphQL syntax error is answered 200 (with errors)"),
    (
        "gql-errors-object",
        "a GraphQL syntax error is answered {\"error\": \"...\"} instead of an errors list",
    ),
    (
        "gql-validation-200",
        "a document that does not validate is answered 200 (with errors)",
    ),
    (
        "gql-validated-late",
        "a mutation runs before its document is validated: an invalid one still stores its book",
    ),
    (
        "gql-field-error-400",
        "any answer with errors is 400, field errors next to data included",
    ),
    ("gql-year-unchecked", "addBook stores any year instead of a field error"),
    (
        "gql-year-checked-late",
        "addBook stores the book before it checks the year: the field error comes too late",
    ),
    (
        "gql-add-not-stored",
        "addBook answers the new book but does not keep it",
    ),
    (
        "gql-get-mutation-405-late",
        "a mutation sent by GET runs, then answers 405",
    ),
    (
        "gql-all-fields",
        "every book is answered whole, whatever fields were selected",
    ),
    (
        "gql-variables-ignored",
        "the variables of a POST body are not passed to the execution",
    ),
    (
        "gql-operation-first",
        "operationName is ignored: the first operation of the document runs",
    ),
    ("gql-get-405", "GET is not supported: every GET answers 405"),
    ("gql-get-mutation", "a mutation sent by GET is executed"),
    (
        "gql-any-content-type",
        "POST bodies are read as JSON whatever their Content-Type (text/plain included)",
    ),
    (
        "gql-missing-query-500",
        "a body without \"query\" crashes the handler: 500",
    ),
    (
        "gql-unknown-error",
        "an unknown book is a field error (\"book not found\") instead of null",
    ),
];

/// How one instance of the reference service behaves.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// Environment the challenge passes to the service (RATE_LIMIT, ...); unused keys are ignored.
    pub env: BTreeMap<String, String>,
    /// Defects switched on.
    pub defects: BTreeSet<String>,
    /// Where log lines go (one JSON object a line); none: nowhere.
    pub log: LogSink,
}

/// Where the service writes its log lines: stdout for the binary, a buffer for an in-process instance.
#[derive(Clone, Default)]
pub struct LogSink(Option<Arc<LineWriter>>);

/// Writes one log line.
type LineWriter = dyn Fn(&str) + Send + Sync;

impl LogSink {
    /// Lines go to `write`, one call a line (without the newline).
    pub fn new(write: impl Fn(&str) + Send + Sync + 'static) -> Self {
        Self(Some(Arc::new(write)))
    }

    /// Writes one line.
    pub fn line(&self, line: &str) {
        if let Some(write) = &self.0 {
            write(line);
        }
    }
}

impl std::fmt::Debug for LogSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "LogSink(on)"
        } else {
            "LogSink(off)"
        })
    }
}

/// A defect name that the reference does not know.
#[derive(Debug)]
pub struct UnknownDefect(pub String);

impl std::fmt::Display for UnknownDefect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "unknown defect `{}`; known defects: ", self.0)?;
        let names: Vec<&str> = DEFECTS.iter().map(|(name, _)| *name).collect();
        f.write_str(&names.join(", "))
    }
}

impl std::error::Error for UnknownDefect {}

impl Config {
    /// A configuration with the given env and a comma-separated defect list, checked against [`DEFECTS`].
    pub fn new(env: BTreeMap<String, String>, defects: &str) -> Result<Self, UnknownDefect> {
        let mut set = BTreeSet::new();
        for name in defects.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if !DEFECTS.iter().any(|(known, _)| *known == name) {
                return Err(UnknownDefect(name.to_string()));
            }
            set.insert(name.to_string());
        }
        Ok(Self {
            env,
            defects: set,
            log: LogSink::default(),
        })
    }

    /// Whether a defect is switched on.
    pub fn has(&self, defect: &str) -> bool {
        self.defects.contains(defect)
    }
}

/// Shared state of one service instance.
pub(crate) struct App {
    pub(crate) config: Config,
    pub(crate) items: resource::Store,
    pub(crate) documents: caching::Store,
    pub(crate) rate_limits: ratelimit::Store,
    pub(crate) idempotency: idempotency::Store,
    pub(crate) notes: status::Store,
    pub(crate) auth: auth::Store,
    pub(crate) jwt: jwt::Store,
    pub(crate) articles: pagination::Store,
    pub(crate) memos: memos::Store,
    pub(crate) observe: observe::Store,
    pub(crate) breaker: upstream::BreakerCell,
    pub(crate) cache: cacheaside::Cache,
    pub(crate) orders: orders::Orders,
    pub(crate) webhooks: webhooks::Webhooks,
    pub(crate) jobs: jobs::Jobs,
    pub(crate) sessions: sessions::Sessions,
    pub(crate) bookmarks: middleware::Bookmarks,
    pub(crate) customers: injection::Customers,
    pub(crate) library: graphql::Library,
    pub(crate) integrity: integrity::Database,
    pub(crate) shop: replicas::Shop,
    /// The client for calls to other services (redirects are not followed).
    pub(crate) http: reqwest::Client,
    /// A client that follows redirects, as most do by default (the `redirects-followed` defect).
    pub(crate) http_following: reqwest::Client,
    /// Turns true when a graceful shutdown begins.
    pub(crate) stopping: tokio::sync::watch::Receiver<bool>,
    /// How many `GET /work` requests are being worked on.
    pub(crate) busy: Arc<std::sync::atomic::AtomicUsize>,
}

pub(crate) type Shared = Arc<App>;

/// Serves the app over HTTPS on `listener` and redirects on the plain-HTTP port, until `shutdown`.
async fn serve_tls(
    listener: tokio::net::TcpListener,
    router: Router,
    tls: tls::Setup,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    let local = listener.local_addr()?;
    let plain = tokio::net::TcpListener::bind((local.ip(), tls.http_port)).await?;
    let plain_app = if tls.http_served {
        router.clone()
    } else {
        tls.redirects(local.port())
    };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut plain_stopped = stopped.clone();
    let plain_task = tokio::spawn(
        axum::serve(
            plain,
            plain_app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            let _ = plain_stopped.wait_for(|s| *s).await;
        })
        .into_future(),
    );
    let app = tls
        .secure(router)
        .into_make_service_with_connect_info::<std::net::SocketAddr>();
    let listener = tls.listener(listener).tap_io(|_| {});
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            let _ = stop.send(true);
        })
        .await;
    plain_task.abort();
    served
}

/// The whole reference service as an axum router.
pub fn router(config: Config) -> Router {
    router_with(config, tokio::sync::watch::channel(false).1, Arc::default())
}

fn router_with(
    config: Config,
    stopping: tokio::sync::watch::Receiver<bool>,
    busy: Arc<std::sync::atomic::AtomicUsize>,
) -> Router {
    let app = Arc::new(App {
        stopping,
        busy,
        memos: memos::open(&config),
        library: graphql::Library::new(&config),
        integrity: integrity::Database::new(&config),
        shop: replicas::Shop::open(&config),
        observe: Default::default(),
        config,
        items: Default::default(),
        documents: Default::default(),
        rate_limits: Default::default(),
        idempotency: Default::default(),
        notes: Default::default(),
        auth: Default::default(),
        jwt: Default::default(),
        articles: Default::default(),
        breaker: Default::default(),
        cache: Default::default(),
        orders: Default::default(),
        webhooks: Default::default(),
        jobs: Default::default(),
        sessions: Default::default(),
        bookmarks: Default::default(),
        customers: Default::default(),
        http: upstream::client(reqwest::redirect::Policy::none()),
        http_following: upstream::client(reqwest::redirect::Policy::default()),
    });
    Router::new()
        .route("/health", get(observe::health))
        .merge(resource::routes())
        .merge(caching::routes())
        .merge(ratelimit::routes())
        .merge(idempotency::routes())
        .merge(status::routes())
        .merge(auth::routes())
        .merge(jwt::routes())
        .merge(pagination::routes())
        .merge(config::routes())
        .merge(memos::routes())
        .merge(shutdown::routes())
        .merge(observe::routes())
        .merge(upstream::routes())
        .merge(cacheaside::routes())
        .merge(orders::routes())
        .merge(webhooks::routes())
        .merge(jobs::routes())
        .merge(sessions::routes())
        .nest("/api", middleware::routes(&app))
        .merge(proxy::routes())
        .merge(injection::routes())
        .merge(graphql::routes())
        .merge(integrity::routes())
        .merge(replicas::routes())
        .merge(tls::routes())
        .route_layer(axum::middleware::from_fn_with_state(app.clone(), observe::observe))
        .fallback(|axum::extract::State(app): axum::extract::State<Shared>| async move {
            status::error(&app, StatusCode::NOT_FOUND, "there is nothing at this URL")
        })
        .layer(axum::middleware::from_fn_with_state(app.clone(), observe::request_id))
        .with_state(app)
}

/// Refuses a configuration the service would not start with (a required variable missing), with the reason;
/// an accepted one is announced on the log.
pub fn check(config: &Config) -> Result<(), String> {
    config::check(config)?;
    memos::migrate(config)?;
    config::announce(config);
    observe::announce(config);
    Ok(())
}

/// Serves the reference on an already bound listener until the future is dropped.
pub async fn serve(listener: tokio::net::TcpListener, config: Config) -> std::io::Result<()> {
    serve_until(listener, config, std::future::pending()).await
}

/// Serves until `shutdown` completes, then stops accepting connections and returns once the requests in flight
/// have been answered (the graceful shutdown a SIGTERM asks for).
pub async fn serve_until(
    listener: tokio::net::TcpListener,
    config: Config,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if config.has("sigterm-ignored") {
        // The signal is caught by a handler that does nothing: only SIGKILL ends the service.
        let app = router(config).into_make_service_with_connect_info::<std::net::SocketAddr>();
        return axum::serve(listener, app).await;
    }
    let (stopping, watch) = tokio::sync::watch::channel(false);
    let busy: Arc<std::sync::atomic::AtomicUsize> = Arc::default();
    let keep_accepting = config.has("accepts-during-drain").then(|| Arc::clone(&busy));
    let shutdown = async move {
        shutdown.await;
        let _ = stopping.send(true);
        // The listener stays open until the work in flight is done: new requests are still taken meanwhile.
        if let Some(busy) = keep_accepting {
            while busy.load(std::sync::atomic::Ordering::SeqCst) > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
    };
    let slow_exit = config.has("slow-exit");
    let tls = match tls::Setup::new(&config).transpose() {
        Ok(tls) => tls,
        Err(reason) => return Err(std::io::Error::other(reason)),
    };
    let router = router_with(config, watch, busy);
    let served = match tls {
        None => {
            let app = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
            axum::serve(listener, app).with_graceful_shutdown(shutdown).await
        }
        Some(tls) => serve_tls(listener, router, tls, shutdown).await,
    };
    if slow_exit {
        // A shutdown hook that waits "for the load balancer" long after the last request.
        tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    }
    served
}

pub use shutdown::healthcheck;

/// Says the service is listening: on its log as JSON when `LOG_FORMAT=json` asks for JSON lines only, else as
/// plain text on stdout.
pub fn announce_listening(config: &Config, text: &str) {
    if config.env.get("LOG_FORMAT").map(String::as_str) == Some("json") {
        config
            .log
            .line(&serde_json::json!({ "level": "info", "msg": text }).to_string());
    } else {
        println!("{text}");
    }
}

/// Locks a mutex, taking the data over from a thread that panicked while holding it.
pub(crate) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// A JSON response; `text_plain` simulates the `text-plain-json` defect.
pub(crate) fn json_response(status: StatusCode, body: &serde_json::Value, text_plain: bool) -> Response {
    let content_type = if text_plain {
        "text/plain; charset=utf-8"
    } else {
        "application/json"
    };
    (
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        body.to_string(),
    )
        .into_response()
}

/// A 405 problem with the `Allow` header listing `allow`.
pub(crate) fn method_not_allowed(allow: &'static str) -> Response {
    with_allow(
        problem(StatusCode::METHOD_NOT_ALLOWED, "this method is not supported here"),
        allow,
    )
}

/// Adds `Allow: <allow>` to a response.
pub(crate) fn with_allow(mut response: Response, allow: &'static str) -> Response {
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    response
}

/// An RFC 9457 problem details response.
pub(crate) fn problem(status: StatusCode, detail: &str) -> Response {
    problem_with(status, detail, &[])
}

/// [`problem`] with extension members (RFC 9457 §3.2), such as the field at fault.
pub(crate) fn problem_with(status: StatusCode, detail: &str, members: &[(&str, &str)]) -> Response {
    let mut body = serde_json::json!({
        "type": "about:blank",
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "detail": detail,
    });
    for (name, value) in members {
        body[*name] = (*value).into();
    }
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        )],
        body.to_string(),
    )
        .into_response()
}
