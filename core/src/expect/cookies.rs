//! Cookies a response sets (`Set-Cookie`, RFC 6265): checks on their attributes, and the per-probe jar.

use super::{Check, Lookup, Response, clip};
use crate::spec::model::CookieCheck;
use crate::spec::template::fill;

/// The cookies a response sets, in order (lines that are not cookies are left out).
pub fn set_cookies(response: &Response) -> Vec<cookie::Cookie<'static>> {
    response
        .header_values("set-cookie")
        .into_iter()
        .filter_map(|line| cookie::Cookie::parse(line.to_string()).ok())
        .collect()
}

/// Whether a cookie line deletes the cookie: `Max-Age` of zero or less, or an `Expires` in the past.
pub fn cleared(cookie: &cookie::Cookie<'_>) -> bool {
    if let Some(max_age) = cookie.max_age() {
        return max_age.whole_seconds() <= 0;
    }
    let now = crate::types::unix_seconds(std::time::SystemTime::now()) as i64;
    cookie.expires_datetime().is_some_and(|at| at.unix_timestamp() <= now)
}

/// The checks of one cookie.
pub(super) fn checks(
    name: &str,
    check: &CookieCheck,
    response: &Response,
    lookup: &mut Lookup<'_>,
    out: &mut Vec<Check>,
) {
    let found = set_cookies(response).into_iter().rfind(|c| c.name() == name);
    let shown = || {
        found
            .as_ref()
            .map_or_else(|| "not set".to_string(), |c| clip(&c.to_string(), 200))
    };
    let what = |part: &str| format!("cookie {name}{part}");
    if let Some(exists) = check.exists {
        out.push(Check::new(
            what(""),
            if exists { "set" } else { "not set" },
            shown(),
            found.is_some() == exists,
        ));
    }
    let flag = |out: &mut Vec<Check>, attribute: &str, wanted: Option<bool>, has: Option<bool>| {
        if let Some(wanted) = wanted {
            out.push(Check::new(
                what(&format!(" {attribute}")),
                if wanted { "present" } else { "absent" },
                shown(),
                has == Some(wanted),
            ));
        }
    };
    flag(
        out,
        "HttpOnly",
        check.http_only,
        found.as_ref().map(|c| c.http_only() == Some(true)),
    );
    flag(
        out,
        "Secure",
        check.secure,
        found.as_ref().map(|c| c.secure() == Some(true)),
    );
    if let Some(allowed) = &check.same_site {
        let actual = found.as_ref().and_then(|c| c.same_site()).map(|s| s.to_string());
        let passed = actual
            .as_deref()
            .is_some_and(|a| allowed.iter().any(|w| w.eq_ignore_ascii_case(a)));
        out.push(Check::new(
            what(" SameSite"),
            format!("one of {}", allowed.join(", ")),
            shown(),
            passed,
        ));
    }
    if let Some(path) = &check.path {
        let passed = found.as_ref().and_then(|c| c.path()) == Some(path.as_str());
        out.push(Check::new(what(" Path"), path.clone(), shown(), passed));
    }
    if let Some(wanted) = check.cleared {
        let passed = found.as_ref().is_some_and(|c| cleared(c) == wanted);
        let expected = if wanted {
            "deleted (Max-Age=0 or an Expires in the past)"
        } else {
            "not deleted"
        };
        out.push(Check::new(what(" deleted"), expected, shown(), passed));
    }
    if let Some(other) = &check.not_equals {
        let other = fill(other, lookup);
        let passed = found.as_ref().is_some_and(|c| c.value() != other);
        out.push(Check::new(
            what(" value"),
            format!("set, and not {}", clip(&other, 80)),
            shown(),
            passed,
        ));
    }
}
