//! Runs the reference service on `$PORT` (default 8080) with `$REFERENCE_DEFECTS` switched on.

use std::collections::BTreeMap;
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let env: BTreeMap<String, String> = std::env::vars().collect();
    let port = env.get("PORT").cloned().unwrap_or_else(|| "8080".to_string());
    if std::env::args().nth(1).as_deref() == Some("healthcheck") {
        let healthy = proctor_reference::healthcheck(port.parse().unwrap_or(8080)).await;
        return if healthy { ExitCode::SUCCESS } else { ExitCode::from(1) };
    }
    let defects = env.get("REFERENCE_DEFECTS").cloned().unwrap_or_default();
    let mut config = match proctor_reference::Config::new(env, &defects) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("proctor-reference: {e}");
            return ExitCode::from(2);
        }
    };
    config.log = proctor_reference::LogSink::new(|line| println!("{line}"));
    if let Err(reason) = proctor_reference::check(&config) {
        eprintln!("{reason}");
        return ExitCode::from(1);
    }
    let listener = match tokio::net::TcpListener::bind(("0.0.0.0", port.parse().unwrap_or(8080))).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("proctor-reference: failed to listen on port {port}: {e}");
            return ExitCode::from(1);
        }
    };
    proctor_reference::announce_listening(&config, &format!("proctor-reference listening on port {port}"));
    // SIGTERM or Ctrl-C: stop accepting, answer the requests in flight, exit 0.
    let shutdown = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = terminate.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => std::future::pending().await,
        }
    };
    match proctor_reference::serve_until(listener, config, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("proctor-reference: {e}");
            ExitCode::from(1)
        }
    }
}
