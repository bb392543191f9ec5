//! The bundled reference service, in-process on a loopback port.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{Instance, Launch, Spawned, TargetError, local_url};

/// Starts the reference service with some defects switched on.
#[derive(Debug)]
pub struct ReferenceLauncher {
    /// The defects, comma-separated (empty: the correct service).
    pub defects: String,
}

/// The reference service's task, and the switch of its graceful shutdown.
#[derive(Debug)]
pub struct ReferenceTask {
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    shutdown: tokio::sync::oneshot::Sender<()>,
}

impl ReferenceLauncher {
    pub(super) fn describe(&self) -> String {
        if self.defects.is_empty() {
            "reference service".to_string()
        } else {
            format!("reference service with defects: {}", self.defects)
        }
    }

    pub(super) async fn spawn(&self, launch: &Launch<'_>) -> Result<Spawned, TargetError> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", launch.port.unwrap_or(0)))
            .await
            .map_err(TargetError::Port)?;
        let port = listener.local_addr().map_err(TargetError::Port)?.port();
        let http_port = launch.local_http_port()?;
        let env: BTreeMap<String, String> = launch.local_env(port, http_port).into_iter().collect();
        let mut config =
            proctor_reference::Config::new(env, &self.defects).map_err(|e| TargetError::Reference(e.to_string()))?;
        let logs = launch.logs.clone();
        config.log = proctor_reference::LogSink::new(move |line| logs.push(format!("{line}\n").as_bytes()));
        proctor_reference::check(&config).map_err(TargetError::Reference)?;
        let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(proctor_reference::serve_until(listener, config, async move {
            let _ = stopped.await;
        }));
        Ok(Spawned {
            base_url: Some(local_url(port)),
            plain_url: http_port.map(local_url),
            instance: Instance::Reference(ReferenceTask { task, shutdown }),
        })
    }
}

impl ReferenceTask {
    pub(super) fn exited(&self) -> Option<String> {
        self.task.is_finished().then(|| "stopped".to_string())
    }

    pub(super) fn exit_code(&self) -> Option<i32> {
        self.task.is_finished().then_some(0)
    }

    /// The in-process equivalent of SIGTERM: a graceful shutdown (in-flight requests are answered), `0` when it
    /// ends within `grace`, else the task is aborted and counts as killed (`137`).
    pub(super) async fn terminate(mut self, grace: Duration) -> Option<i32> {
        let _ = self.shutdown.send(());
        match tokio::time::timeout(grace, &mut self.task).await {
            Ok(Ok(Ok(()))) => Some(0),
            Ok(_) => Some(1),
            Err(_) => {
                self.task.abort();
                let _ = self.task.await;
                Some(137)
            }
        }
    }

    pub(super) async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}
