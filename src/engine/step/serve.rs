//! A serve step: a runner-hosted server answers differently for the rest of the probe (routes in front of its
//! own), or its store holds new documents.

use super::{ERRORED, Ending, step_report};
use crate::engine::probe::Context;
use crate::outcome::{StepKind, StepReport};
use crate::spec::model::ServeSpec;
use crate::vars::Vars;

pub(super) async fn run(number: usize, spec: &ServeSpec, vars: &mut Vars, ctx: &Context<'_>) -> (StepReport, Ending) {
    let what = match (spec.routes.len(), spec.store.len()) {
        (0, n) => format!("{n} document(s) into its store"),
        (_, 0) => describe_routes(spec, vars),
        (n, m) => format!("{n} route(s) and {m} document(s)"),
    };
    let mut report = step_report(number, format!("server {}: {what}", spec.server), StepKind::Serve);
    let Some(server) = ctx.servers.get(&spec.server) else {
        report.error = Some(format!("server `{}` is not running", spec.server));
        return (report, ERRORED);
    };
    server.add_routes(&spec.routes, &mut |text| vars.render(text));
    for (path, value) in &spec.store {
        let path = vars.render(path);
        let value = crate::servers::render_json(value, &mut |text| vars.render(text));
        server.put(&path, value);
    }
    report.passed = true;
    (report, Ending::Passed)
}

/// `GET /quotes/X answers 500, 500, then 200` and the like.
fn describe_routes(spec: &ServeSpec, vars: &mut Vars) -> String {
    let routes: Vec<String> = spec
        .routes
        .iter()
        .map(|route| {
            let answers: Vec<String> = route
                .respond
                .replies()
                .iter()
                .map(|reply| match reply.fault {
                    Some(fault) => format!("{fault:?}").to_lowercase(),
                    None => reply.status.unwrap_or(200).to_string(),
                })
                .collect();
            let answers = match answers.as_slice() {
                [one] => one.clone(),
                [init @ .., last] => format!("{}, then {last}", init.join(", ")),
                [] => String::new(),
            };
            format!(
                "{} {} answers {answers}",
                route.method.as_deref().unwrap_or("any"),
                vars.render(&route.path)
            )
        })
        .collect();
    routes.join("; ")
}
