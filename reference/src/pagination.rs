//! `pagination`: `/articles` with keyset cursor pagination, a `Link: rel="next"` and a body cursor.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};

use crate::{Shared, json_response, problem};

#[derive(Clone, Serialize)]
struct Article {
    id: String,
    title: String,
    score: i64,
    tag: String,
    #[serde(skip)]
    seq: u64,
}

#[derive(Default)]
pub(crate) struct Store {
    articles: Mutex<Vec<Article>>,
    next: AtomicU64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ArticleInput {
    title: String,
    score: i64,
    tag: String,
}

#[derive(Deserialize)]
struct ListQuery {
    tag: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

/// Where a page starts: after this (score, seq) in the order, or (a defect) after an offset.
enum Position {
    After(i64, u64),
    Offset(usize),
}

const KEY: &[u8] = b"reference-cursor-signing-key";

pub(crate) fn routes() -> Router<Shared> {
    Router::new().route("/articles", get(list).post(create))
}

fn mac(data: &str) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(KEY).unwrap_or_else(|_| unreachable!("any key length"));
    mac.update(data.as_bytes());
    URL_SAFE_NO_PAD.encode(&mac.finalize().into_bytes()[..12])
}

fn encode(position: &Position, signed: bool) -> String {
    let data = match position {
        Position::After(score, seq) => format!("a:{score}:{seq}"),
        Position::Offset(offset) => format!("o:{offset}"),
    };
    let data = URL_SAFE_NO_PAD.encode(data);
    if signed { format!("{data}.{}", mac(&data)) } else { data }
}

/// The position a cursor names; `signed: false` is the `unsigned-cursor` defect (base64 alone).
fn decode(cursor: &str, signed: bool) -> Option<Position> {
    let data = if signed {
        let (data, signature) = cursor.split_once('.')?;
        if mac(data) != signature {
            return None;
        }
        data
    } else {
        cursor
    };
    let text = String::from_utf8(URL_SAFE_NO_PAD.decode(data).ok()?).ok()?;
    let mut parts = text.split(':');
    match (parts.next()?, parts.next(), parts.next()) {
        ("a", Some(score), Some(seq)) => Some(Position::After(score.parse().ok()?, seq.parse().ok()?)),
        ("o", Some(offset), None) => Some(Position::Offset(offset.parse().ok()?)),
        _ => None,
    }
}

async fn create(State(app): State<Shared>, body: Bytes) -> Response {
    let Ok(input) = serde_json::from_slice::<ArticleInput>(&body) else {
        return problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "send {\"title\": ..., \"score\": <integer>, \"tag\": ...}",
        );
    };
    let seq = app.articles.next.fetch_add(1, Ordering::SeqCst) + 1;
    let article = Article {
        id: format!("art_{seq}"),
        title: input.title,
        score: input.score,
        tag: input.tag,
        seq,
    };
    if let Ok(mut articles) = app.articles.articles.lock() {
        articles.push(article.clone());
    }
    let status = if app.config.has("article-created-200") {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let mut response = json_response(status, &serde_json::to_value(&article).unwrap_or_default(), false);
    if let Ok(location) = HeaderValue::from_str(&format!("/articles/{}", article.id)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

fn crash(detail: &str) -> Response {
    (StatusCode::INTERNAL_SERVER_ERROR, format!("thread panicked: {detail}")).into_response()
}

async fn list(State(app): State<Shared>, Query(query): Query<ListQuery>) -> Response {
    let has = |d: &str| app.config.has(d);
    let signed = !has("unsigned-cursor");
    let max = if has("limit-max-99") { 99 } else { 100 };
    let limit = match query.limit.as_deref().map(str::parse::<i64>) {
        None if has("default-limit-20") => 20,
        None => 10,
        Some(Ok(n)) if (1..=max).contains(&n) => n as usize,
        _ if has("limit-unchecked") => return crash("limit out of range"),
        _ => return problem(StatusCode::BAD_REQUEST, "limit must be a whole number from 1 to 100"),
    };
    let start = match query.cursor.as_deref().map(|c| decode(c, signed)) {
        None => None,
        Some(Some(position)) => Some(position),
        Some(None) if has("cursor-500") => return crash("invalid cursor"),
        Some(None) => return problem(StatusCode::BAD_REQUEST, "the cursor is not one this service issued"),
    };
    let mut matching: Vec<Article> = app
        .articles
        .articles
        .lock()
        .map(|all| {
            all.iter()
                .filter(|a| query.tag.as_ref().is_none_or(|t| *t == a.tag))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    // Score descending, ties broken by creation order: a total order, so keyset cursors are exact.
    // `ties-newest-first` reverses the tiebreaker, consistently in the sort and in the cursor comparison.
    let newest_first = has("ties-newest-first");
    matching.sort_by(|a, b| {
        let ties = if newest_first {
            b.seq.cmp(&a.seq)
        } else {
            a.seq.cmp(&b.seq)
        };
        b.score.cmp(&a.score).then(ties)
    });
    let remaining: Vec<Article> = match start {
        None => matching,
        Some(Position::Offset(offset)) => matching.into_iter().skip(offset).collect(),
        Some(Position::After(score, _)) if has("no-tiebreaker") => {
            matching.into_iter().filter(|a| a.score < score).collect()
        }
        Some(Position::After(score, seq)) => matching
            .into_iter()
            .filter(|a| a.score < score || (a.score == score && if newest_first { a.seq < seq } else { a.seq > seq }))
            .collect(),
    };
    let page: Vec<Article> = remaining.iter().take(limit).cloned().collect();
    let more = remaining.len() > limit || (has("next-on-last-page") && page.len() == limit);
    let next = match (more, page.last()) {
        (true, Some(last)) => Some(if has("offset-pagination") {
            let offset = match &start {
                Some(Position::Offset(o)) => o + page.len(),
                _ => page.len(),
            };
            encode(&Position::Offset(offset), signed)
        } else {
            encode(&Position::After(last.score, last.seq), signed)
        }),
        _ => None,
    };
    let next_cursor = match (&next, has("cursor-empty-string-at-end")) {
        (Some(cursor), _) => serde_json::Value::from(cursor.clone()),
        (None, true) => serde_json::Value::from(""),
        (None, false) => serde_json::Value::Null,
    };
    let body = serde_json::json!({ "items": page, "next_cursor": next_cursor });
    let mut response = json_response(StatusCode::OK, &body, false);
    if let Some(cursor) = next
        && !has("no-link-header")
    {
        let mut target = url_pairs(&[("limit", &limit.to_string()), ("cursor", &cursor)]);
        if let Some(tag) = query.tag.as_deref().filter(|_| !has("next-drops-filter")) {
            target = url_pairs(&[("tag", tag), ("limit", &limit.to_string()), ("cursor", &cursor)]);
        }
        if let Ok(link) = HeaderValue::from_str(&format!("</articles?{target}>; rel=\"next\"")) {
            response.headers_mut().insert(header::LINK, link);
        }
    }
    response
}

fn url_pairs(pairs: &[(&str, &str)]) -> String {
    let encode = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
                other => format!("%{other:02X}"),
            })
            .collect::<String>()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}
