//! `jwt-auth`: login issues HS256 JWTs signed with `$JWT_SECRET`; `/profile` verifies them strictly.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::Deserialize;

use crate::{Shared, json_response, problem};

#[derive(Default)]
pub(crate) struct Store {
    users: Mutex<HashMap<String, String>>,
    /// Opaque tokens (the `opaque-tokens` defect) and issued JWTs (the `token-store-only` defect).
    issued: Mutex<HashSet<String>>,
    /// Signatures seen valid (the `verify-cache-by-signature` defect).
    verified: Mutex<HashSet<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Credentials {
    username: String,
    password: String,
}

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/auth/register", post(register))
        .route("/auth/login", post(login))
        .route("/profile", get(profile))
}

fn setting(app: &Shared, name: &str, default: &str) -> String {
    app.config.env.get(name).cloned().unwrap_or_else(|| default.to_string())
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs() as i64
}

/// Whether `given` is the HMAC of `input` under `secret` with the given digest.
macro_rules! verify_mac {
    ($digest:ty, $secret:expr, $input:expr, $given:expr) => {
        Hmac::<$digest>::new_from_slice($secret.as_bytes()).is_ok_and(|mut mac| {
            mac.update($input.as_bytes());
            mac.verify_slice($given).is_ok()
        })
    };
}

fn sign(secret: &str, input: &str) -> Vec<u8> {
    let mut mac =
        Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap_or_else(|_| unreachable!("any key length"));
    mac.update(input.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

async fn register(State(app): State<Shared>, body: Bytes) -> Response {
    let Ok(credentials) = serde_json::from_slice::<Credentials>(&body) else {
        return problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "send {\"username\": ..., \"password\": ...}",
        );
    };
    let Ok(mut users) = app.jwt.users.lock() else {
        return problem(StatusCode::INTERNAL_SERVER_ERROR, "the user store is unavailable");
    };
    if users.contains_key(&credentials.username) {
        return problem(StatusCode::CONFLICT, "that username is taken");
    }
    users.insert(credentials.username.clone(), credentials.password);
    json_response(
        StatusCode::CREATED,
        &serde_json::json!({ "username": credentials.username }),
        false,
    )
}

async fn login(State(app): State<Shared>, body: Bytes) -> Response {
    let Ok(credentials) = serde_json::from_slice::<Credentials>(&body) else {
        return problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "send {\"username\": ..., \"password\": ...}",
        );
    };
    let ok = app.jwt.users.lock().ok().is_some_and(|users| {
        users
            .get(&credentials.username)
            .is_some_and(|password| *password == credentials.password || app.config.has("login-any-password"))
    });
    if !ok {
        return problem(StatusCode::UNAUTHORIZED, "invalid username or password");
    }
    let ttl: i64 = setting(&app, "TOKEN_TTL_SECONDS", "900").parse().unwrap_or(900);
    let token = if app.config.has("opaque-tokens") {
        format!("opaque-{:x}", now() ^ 0x5eed_1234_abcd)
    } else {
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","typ":"JWT"}"#);
        let claims = serde_json::json!({
            "sub": credentials.username,
            "iss": setting(&app, "JWT_ISSUER", "proctor"),
            "aud": setting(&app, "JWT_AUDIENCE", "proctor"),
            "iat": now(),
            "exp": now() + ttl,
        });
        let input = format!("{header}.{}", URL_SAFE_NO_PAD.encode(claims.to_string()));
        let signature = URL_SAFE_NO_PAD.encode(sign(&setting(&app, "JWT_SECRET", ""), &input));
        format!("{input}.{signature}")
    };
    if let Ok(mut issued) = app.jwt.issued.lock() {
        issued.insert(token.clone());
    }
    let body = serde_json::json!({ "access_token": token, "token_type": "Bearer", "expires_in": ttl });
    let mut response = json_response(StatusCode::OK, &body, false);
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The token's subject, or why it is refused.
fn verify(app: &Shared, token: &str) -> Result<String, &'static str> {
    if app.jwt.issued.lock().is_ok_and(|issued| issued.contains(token)) && app.config.has("opaque-tokens") {
        return Ok("opaque-user".to_string());
    }
    if app.config.has("token-store-only") && !app.jwt.issued.lock().is_ok_and(|issued| issued.contains(token)) {
        return Err("unknown token");
    }
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("malformed");
    };
    let decode = |part: &str| -> Result<serde_json::Value, &'static str> {
        let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|_| "bad base64")?;
        serde_json::from_slice(&bytes).map_err(|_| "bad json")
    };
    let header_json = decode(header)?;
    let claims = decode(payload)?;
    let alg = header_json["alg"].as_str().unwrap_or_default();
    let cached =
        app.config.has("verify-cache-by-signature") && app.jwt.verified.lock().is_ok_and(|v| v.contains(signature));
    if alg.eq_ignore_ascii_case("none") && app.config.has("alg-none-mixed-case") && alg != "none" {
        // A case-sensitive deny-list: "None" and "nOnE" slip through unsigned.
    } else if !cached {
        let given = URL_SAFE_NO_PAD.decode(signature).map_err(|_| "bad signature")?;
        let input = format!("{header}.{payload}");
        let secret = setting(app, "JWT_SECRET", "");
        let valid = match alg {
            "HS256" => {
                verify_mac!(sha2::Sha256, secret, input, &given)
                    || (app.config.has("default-secret-accepted") && given == sign("secret", &input))
            }
            // The algorithm taken from the token's header: any HMAC passes with the right key.
            "HS384" if app.config.has("hs384-accepted") => verify_mac!(sha2::Sha384, secret, input, &given),
            "HS512" if app.config.has("hs384-accepted") => verify_mac!(sha2::Sha512, secret, input, &given),
            _ => return Err("unsupported alg"),
        };
        if !valid {
            return Err("bad signature");
        }
        if let Ok(mut verified) = app.jwt.verified.lock() {
            verified.insert(signature.to_string());
        }
    }
    let t = now();
    if app.config.has("iat-required") && claims["iat"].as_i64().is_none_or(|iat| iat > t + 60) {
        return Err("no iat, or iat in the future");
    }
    match claims["exp"].as_i64() {
        Some(exp) if exp > t || app.config.has("expiry-ignored") => {}
        _ => return Err("expired or no exp"),
    }
    if let Some(nbf) = claims["nbf"].as_i64()
        && nbf > t
        && !app.config.has("nbf-ignored")
    {
        return Err("not yet valid");
    }
    let issuer = setting(app, "JWT_ISSUER", "proctor");
    let issuer_ok = match claims["iss"].as_str() {
        Some(iss) if app.config.has("issuer-prefix") => iss.starts_with(&issuer),
        Some(iss) => iss == issuer,
        None => false,
    };
    if !issuer_ok && !app.config.has("issuer-ignored") {
        return Err("wrong issuer");
    }
    let audience = setting(app, "JWT_AUDIENCE", "proctor");
    let aud_ok = match &claims["aud"] {
        serde_json::Value::String(a) if app.config.has("audience-substring") => a.contains(&audience),
        serde_json::Value::String(a) => *a == audience,
        serde_json::Value::Array(list) if !app.config.has("aud-must-be-string") => {
            list.iter().any(|a| a.as_str() == Some(audience.as_str()))
        }
        _ => false,
    };
    if !aud_ok && !app.config.has("audience-ignored") {
        return Err("wrong audience");
    }
    claims["sub"].as_str().map(str::to_string).ok_or("no sub")
}

async fn profile(State(app): State<Shared>, headers: HeaderMap) -> Response {
    let challenge = |error: Option<&str>| {
        let mut response = problem(StatusCode::UNAUTHORIZED, "a valid bearer token is required");
        let value = match error {
            Some(_) if app.config.has("bare-bearer-challenge") => "Bearer".to_string(),
            Some(e) => format!("Bearer realm=\"profile\", error=\"{e}\""),
            None => "Bearer realm=\"profile\"".to_string(),
        };
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
        }
        response
    };
    let Some(token) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim().to_string())
    else {
        if app.config.has("missing-token-422") {
            return problem(StatusCode::UNPROCESSABLE_ENTITY, "field required: authorization");
        }
        return challenge(None);
    };
    match verify(&app, &token) {
        Ok(subject) => json_response(StatusCode::OK, &serde_json::json!({ "username": subject }), false),
        Err(_) => challenge(Some("invalid_token")),
    }
}
