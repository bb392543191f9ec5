//! Runs the reference service on `$PORT` (default 8080) with `$REFERENCE_DEFECTS` switched on.

use std::collections::BTreeMap;
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let env: BTreeMap<String, String> = std::env::vars().collect();
    let port = env.get("PORT").cloned().unwrap_or_else(|| "8080".to_string());
    let defects = env.get("REFERENCE_DEFECTS").cloned().unwrap_or_default();
    let config = match proctor_reference::Config::new(env, &defects) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("proctor-reference: {e}");
            return ExitCode::from(2);
        }
    };
    let listener = match tokio::net::TcpListener::bind(("0.0.0.0", port.parse().unwrap_or(8080))).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("proctor-reference: failed to listen on port {port}: {e}");
            return ExitCode::from(1);
        }
    };
    println!("proctor-reference listening on port {port}");
    match proctor_reference::serve(listener, config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("proctor-reference: {e}");
            ExitCode::from(1)
        }
    }
}
