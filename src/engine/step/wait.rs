//! A wait step: a fixed pause, or as long as the service asked (a `Retry-After` value), bounded.

use std::time::Duration;

use super::{Ending, FAILED, step_report};
use crate::expect::clip;
use crate::outcome::{StepKind, StepReport};
use crate::spec::model::WaitSpec;
use crate::spec::template;
use crate::spec::types::parse_duration;
use crate::vars::Vars;

pub(super) async fn run(number: usize, wait: &WaitSpec, vars: &mut Vars) -> (StepReport, Ending) {
    let max = wait.max.map_or(Duration::from_secs(60), |m| m.0);
    let plus = wait.plus.map_or(Duration::ZERO, |p| p.0);
    // Rendered once: the value waited on is the value the label shows (`{{uuid}}`-like names change per use).
    let seconds = match (&wait.duration, &wait.seconds) {
        (None, Some(seconds)) => Some((seconds, vars.render(&seconds.0))),
        _ => None,
    };
    let base = match (&wait.duration, &seconds) {
        (Some(d), _) => Ok(d.0),
        (None, Some((_, text))) => parse_wait(text),
        (None, None) => Err("the wait has neither `duration` nor `seconds`".to_string()),
    };
    let mut report = step_report(number, "wait".into(), StepKind::Wait { ms: 0 });
    let base = match base {
        Ok(base) => base,
        Err(e) => {
            report.error = Some(e);
            return (report, FAILED);
        }
    };
    report.kind = StepKind::Wait {
        ms: (base + plus).as_millis() as u64,
    };
    let mut why = Vec::new();
    if let Some((spec, value)) = &seconds {
        let source = template::placeholders(&spec.0).join(", ");
        why.push(format!("{source} = {}", clip(value.trim(), 40)));
    }
    if !plus.is_zero() {
        why.push(format!("plus {} ms", plus.as_millis()));
    }
    report.label = if why.is_empty() {
        format!("wait {:.2}s", (base + plus).as_secs_f64())
    } else {
        format!("wait {:.2}s ({})", (base + plus).as_secs_f64(), why.join(", "))
    };
    if base > max {
        report.error = Some(format!(
            "the service asked to wait {:.1}s, more than the {:.0}s this probe allows",
            base.as_secs_f64(),
            max.as_secs_f64()
        ));
        return (report, FAILED);
    }
    tokio::time::sleep(base + plus).await;
    report.passed = true;
    (report, Ending::Passed)
}

/// A wait value: integer or decimal seconds, a duration such as `500ms`, or an HTTP date (Retry-After).
fn parse_wait(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<f64>() {
        if (0.0..1e9).contains(&seconds) {
            return Ok(Duration::from_secs_f64(seconds));
        }
        return Err(format!("`{text}` is not a usable number of seconds"));
    }
    if let Some(duration) = parse_duration(text) {
        return Ok(duration);
    }
    match httpdate::parse_http_date(text) {
        Ok(date) => Ok(date
            .duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO)),
        Err(_) => Err(format!("`{}` is neither seconds nor an HTTP date", clip(text, 80))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_accept_seconds_durations_and_dates() {
        assert_eq!(parse_wait("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_wait(" 1.5 "), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_wait("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_wait("Wed, 21 Oct 2015 07:28:00 GMT"), Ok(Duration::ZERO));
        let soon = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(30));
        assert!(parse_wait(&soon).is_ok_and(|d| d > Duration::from_secs(25)));
        assert!(parse_wait("-1").is_err());
        assert!(parse_wait("soon").is_err());
    }
}
