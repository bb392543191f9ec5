//! The commands that do not grade: serving the reference service, cleaning up Docker leftovers.

use std::io::Write as _;

use proctor::exit;
use proctor::neutral;

/// `proctor reference`: serves the reference service until Ctrl-C or SIGTERM; its env is proctor's own.
pub async fn serve_reference(host: std::net::IpAddr, port: u16, defects: &str) -> u8 {
    let mut config = match proctor_reference::Config::new(std::env::vars().collect(), defects) {
        Ok(config) => config,
        Err(e) => return crate::usage(&e.to_string()),
    };
    config.log = proctor_reference::LogSink::new(|line| {
        let _ = writeln!(std::io::stdout(), "{line}");
    });
    if let Err(reason) = proctor_reference::check(&config) {
        let _ = writeln!(std::io::stderr(), "{reason}");
        return exit::TARGET;
    }
    let listener = match tokio::net::TcpListener::bind((host, port)).await {
        Ok(listener) => listener,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "error: failed to listen on {host}:{port}: {e}");
            return exit::TARGET;
        }
    };
    proctor_reference::announce_listening(&config, &format!("reference service listening on http://{host}:{port}"));
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut interrupt), Ok(mut terminate)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate()))
    else {
        return exit::TARGET;
    };
    // Ctrl-C or SIGTERM: stop accepting, answer the requests in flight, exit 0 (a graceful shutdown).
    let shutdown = async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    };
    match proctor_reference::serve_until(listener, config, shutdown).await {
        Ok(()) => exit::OK,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "error: the reference service stopped: {e}");
            exit::TARGET
        }
    }
}

/// `proctor clean`: removes everything labelled as proctor's (of one run, or all).
pub async fn clean(run: Option<&str>) -> u8 {
    match proctor::sandbox::connect().await {
        Ok(docker) => {
            let swept = proctor::sandbox::sweep(&docker, run).await;
            let code = crate::emit(&format!(
                "removed {} container(s), {} network(s), {} image(s), {} volume(s)\n",
                swept.containers, swept.networks, swept.images, swept.volumes
            ));
            if swept.left.is_empty() {
                return code;
            }
            let mut err = std::io::stderr().lock();
            for what in &swept.left {
                let _ = writeln!(err, "error: could not remove {}", neutral::terminal(what));
            }
            exit::TARGET
        }
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "error: {}", proctor::engine::error_chain(&e));
            exit::TARGET
        }
    }
}
