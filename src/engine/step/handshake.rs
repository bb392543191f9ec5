//! A handshake step: offer the service exactly one TLS protocol version on a fresh connection and check that it
//! is accepted (a complete handshake verified against the run's authority) or refused, as the spec says.

use std::time::Duration;

use super::{ERRORED, Ending, FAILED, step_report};
use crate::engine::probe::Context;
use crate::expect::Check;
use crate::outcome::{StepKind, StepReport};
use crate::spec::model::HandshakeSpec;
use crate::tls::Handshake;

pub(super) async fn run(number: usize, spec: &HandshakeSpec, ctx: &Context<'_>) -> (StepReport, Ending) {
    let label = format!("a {} handshake", spec.version);
    let mut report = step_report(number, label, StepKind::Handshake);
    let (tls, addr, interface) = {
        let service = ctx.service(None).lock().await;
        let addr = service.client_tls().and_then(|client| {
            let port = service.base_url().port_or_known_default()?;
            Some(std::net::SocketAddr::new(client.ip, port))
        });
        (service.tls().cloned(), addr, service.interface())
    };
    let (Some(tls), Some(addr)) = (tls, addr) else {
        report.error = Some("the service has no TLS port (the challenge has no `service.tls`)".to_string());
        return (report, ERRORED);
    };
    let timeout = ctx.timeout.min(Duration::from_secs(10));
    let outcome = match crate::tls::handshake(addr, interface.as_deref(), spec.version, &tls, timeout).await {
        Ok(outcome) => outcome,
        Err(e) => {
            report.error = Some(e);
            return (report, FAILED);
        }
    };
    let actual = match &outcome {
        Handshake::Accepted => "accepted".to_string(),
        Handshake::Refused(why) => format!("refused: {why}"),
    };
    let expected = if spec.accepted { "accepted" } else { "refused" };
    let passed = matches!(outcome, Handshake::Accepted) == spec.accepted;
    report.checks.push(Check::new(
        format!("{} offered alone", spec.version),
        expected,
        actual,
        passed,
    ));
    report.passed = passed;
    (report, if passed { Ending::Passed } else { FAILED })
}
