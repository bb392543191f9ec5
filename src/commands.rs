//! The commands that do not grade: serving the reference service, cleaning up Docker leftovers.

use std::io::Write as _;

use proctor::exit;

/// `proctor reference`: serves the reference service until Ctrl-C or SIGTERM; its env is proctor's own.
pub async fn serve_reference(host: std::net::IpAddr, port: u16, defects: &str) -> u8 {
    let config = match proctor_reference::Config::new(std::env::vars().collect(), defects) {
        Ok(config) => config,
        Err(e) => return crate::usage(&e.to_string()),
    };
    let listener = match tokio::net::TcpListener::bind((host, port)).await {
        Ok(listener) => listener,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "error: failed to listen on {host}:{port}: {e}");
            return exit::TARGET;
        }
    };
    let said = crate::emit(&format!("reference service listening on http://{host}:{port}\n"));
    if said != exit::OK {
        return said;
    }
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut interrupt), Ok(mut terminate)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate()))
    else {
        return exit::TARGET;
    };
    tokio::select! {
        result = proctor_reference::serve(listener, config) => match result {
            Ok(()) => exit::OK,
            Err(e) => {
                let _ = writeln!(std::io::stderr(), "error: the reference service stopped: {e}");
                exit::TARGET
            }
        },
        _ = interrupt.recv() => exit::OK,
        _ = terminate.recv() => exit::OK,
    }
}

/// `proctor clean`: removes everything labelled as proctor's (of one run, or all).
pub async fn clean(run: Option<&str>) -> u8 {
    match proctor::sandbox::connect().await {
        Ok(docker) => {
            let swept = proctor::sandbox::sweep(&docker, run).await;
            crate::emit(&format!(
                "removed {} container(s), {} network(s), {} image(s)\n",
                swept.containers, swept.networks, swept.images
            ))
        }
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "error: {}", proctor::engine::error_chain(&e));
            exit::TARGET
        }
    }
}
