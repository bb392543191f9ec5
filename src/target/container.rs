//! A container from an image, in the Docker sandbox: one fresh, hardened container per challenge.

use std::sync::Arc;

use super::{Instance, Launch, Spawned, TargetError};
use crate::limits;
use crate::sandbox::{NetworkMode, Sandbox};
use crate::spec::model::Limits;

/// Starts containers from one image.
#[derive(Debug)]
pub struct ContainerLauncher {
    /// The run's sandbox.
    pub sandbox: Arc<Sandbox>,
    /// The image reference (built from `--path`, or given with `--image`).
    pub image: String,
    /// Limits from the command line (over the spec's, over the defaults).
    pub limits: Limits,
}

impl ContainerLauncher {
    pub(super) fn describe(&self) -> String {
        match self.sandbox.mode() {
            NetworkMode::Internal => format!("container from {} on an internal network (no egress)", self.image),
            NetworkMode::Published => format!(
                "container from {} with its port published on {} (egress is NOT blocked in this mode)",
                self.image,
                self.sandbox.published_host()
            ),
        }
    }

    pub(super) fn interface(&self) -> Option<String> {
        self.sandbox.probe_interface()
    }

    pub(super) async fn spawn(&self, launch: &Launch<'_>) -> Result<Spawned, TargetError> {
        let challenge = launch.challenge;
        let resolved = limits::resolve(&challenge.spec.service.limits, &self.limits);
        let container = self
            .sandbox
            .start(
                &self.image,
                challenge,
                resolved,
                crate::sandbox::Slot {
                    replica: launch.replica,
                    generation: launch.generation,
                },
                &launch.env,
                launch.logs.clone(),
            )
            .await?;
        Ok(Spawned {
            base_url: container.base_url.clone(),
            plain_url: container.plain_url.clone(),
            instance: Instance::Container(Box::new(container)),
        })
    }
}
