//! The bundled reference service, in-process on a loopback port.

use std::collections::BTreeMap;

use super::{Instance, Spawned, TargetError, local_url};
use crate::spec::Challenge;

/// Starts the reference service with some defects switched on.
#[derive(Debug)]
pub struct ReferenceLauncher {
    /// The defects, comma-separated (empty: the correct service).
    pub defects: String,
}

/// The reference service's task.
#[derive(Debug)]
pub struct ReferenceTask(tokio::task::JoinHandle<()>);

impl ReferenceLauncher {
    pub(super) fn describe(&self) -> String {
        if self.defects.is_empty() {
            "reference service".to_string()
        } else {
            format!("reference service with defects: {}", self.defects)
        }
    }

    pub(super) async fn spawn(&self, challenge: &Challenge, port: Option<u16>) -> Result<Spawned, TargetError> {
        let env: BTreeMap<String, String> = challenge.spec.service.env.clone().into_iter().collect();
        let config =
            proctor_reference::Config::new(env, &self.defects).map_err(|e| TargetError::Reference(e.to_string()))?;
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port.unwrap_or(0)))
            .await
            .map_err(TargetError::Port)?;
        let port = listener.local_addr().map_err(TargetError::Port)?.port();
        let task = tokio::spawn(async move {
            let _ = proctor_reference::serve(listener, config).await;
        });
        Ok(Spawned {
            base_url: Some(local_url(port)),
            instance: Instance::Reference(ReferenceTask(task)),
        })
    }
}

impl ReferenceTask {
    pub(super) fn exited(&self) -> Option<String> {
        self.0.is_finished().then(|| "stopped".to_string())
    }

    pub(super) async fn stop(self) {
        self.0.abort();
        let _ = self.0.await;
    }
}
