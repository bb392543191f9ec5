//! `twelve-factor-config`: `GET /greet` and `GET /admin/config`, configured only by the environment.
//!
//! The module is switched on by its variables: when `GREETING` or `API_SECRET` is set, both are required and a
//! start without one of them is refused ([`check`]). Other challenges set neither.

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use axum::routing::get;

use crate::{Config, Shared, json_response, problem};

const REQUIRED: [&str; 2] = ["GREETING", "API_SECRET"];

/// Refuses a configuration with one required variable but not the other, naming the missing one.
pub(crate) fn check(config: &Config) -> Result<(), String> {
    let present = |name: &str| config.env.get(name).is_some_and(|v| !v.is_empty());
    if !REQUIRED.iter().any(|name| present(name)) {
        return Ok(());
    }
    for name in REQUIRED {
        if present(name) {
            continue;
        }
        let defaulted = (name == "GREETING" && config.has("greeting-default"))
            || (name == "API_SECRET" && config.has("secret-optional"));
        if defaulted {
            continue;
        }
        if config.has("config-error-unnamed") {
            return Err("error: invalid configuration".to_string());
        }
        return Err(format!(
            "error: the environment variable {name} is required but not set"
        ));
    }
    Ok(())
}

/// The startup line, once the configuration is accepted.
pub(crate) fn announce(config: &Config) {
    let Some(greeting) = config.env.get("GREETING") else {
        return;
    };
    let mut line = serde_json::json!({
        "level": "info",
        "msg": "starting",
        "greeting": greeting,
        "max_name_length": max_name_length(config),
    });
    if config.has("secret-logged") {
        line["api_secret"] = config.env.get("API_SECRET").cloned().unwrap_or_default().into();
    }
    config.log.line(&line.to_string());
}

fn max_name_length(config: &Config) -> usize {
    if config.has("max-length-default") {
        return 20;
    }
    if config.has("settings-hardcoded") {
        return 5;
    }
    config
        .env
        .get("MAX_NAME_LENGTH")
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(20)
}

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/greet", get(greet))
        .route("/admin/config", get(admin_config))
}

#[derive(serde::Deserialize)]
struct Greet {
    #[serde(default)]
    name: String,
}

async fn greet(State(app): State<Shared>, Query(query): Query<Greet>) -> Response {
    let config = &app.config;
    let length = query.name.chars().count();
    let limit = max_name_length(config);
    if length == 0 || length > limit {
        return problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            &format!("the name must have 1 to {limit} characters"),
        );
    }
    let greeting = if config.has("greeting-hardcoded") {
        "Hello"
    } else if config.has("settings-hardcoded") {
        "Hallo"
    } else {
        config.env.get("GREETING").map_or("Hello", String::as_str)
    };
    json_response(
        StatusCode::OK,
        &serde_json::json!({ "message": format!("{greeting}, {}!", query.name) }),
        false,
    )
}

async fn admin_config(State(app): State<Shared>, headers: HeaderMap) -> Response {
    let config = &app.config;
    let secret = config.env.get("API_SECRET").cloned().unwrap_or_default();
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if config.has("auth-header-logged") {
        config
            .log
            .line(&serde_json::json!({ "level": "debug", "msg": "request", "authorization": given }).to_string());
    }
    let expected = format!("Bearer {secret}");
    let authorized = !secret.is_empty()
        && if config.has("token-prefix-match") {
            given.starts_with(&expected)
        } else {
            given == expected
        };
    if !authorized && !config.has("admin-open") {
        let detail = if config.has("401-reveals-secret") {
            format!("the token must be {secret}")
        } else {
            "a valid bearer token is required".to_string()
        };
        let mut response = problem(StatusCode::UNAUTHORIZED, &detail);
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, axum::http::HeaderValue::from_static("Bearer"));
        return response;
    }
    let shown = if config.has("config-shows-secret") {
        secret
    } else {
        "***".to_string()
    };
    json_response(
        StatusCode::OK,
        &serde_json::json!({
            "greeting": config.env.get("GREETING"),
            "max_name_length": max_name_length(config),
            "api_secret": shown,
        }),
        false,
    )
}
