//! Building the candidate's image from a submission folder with the engine's classic builder.

use std::path::PathBuf;
use std::time::Duration;

use bollard::query_parameters::{BuildImageOptionsBuilder, RemoveImageOptionsBuilder};
use futures::StreamExt;

use super::{Sandbox, SandboxError, context};
use crate::target::logs::LogBuffer;

/// What to build and within which bounds.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// The submission folder (with a Dockerfile at its root).
    pub dir: PathBuf,
    /// The largest build context, in bytes.
    pub max_context: u64,
    /// The longest the build may take.
    pub timeout: Duration,
}

impl Sandbox {
    /// Builds the submission's image and returns its tag. Every output line goes to `on_line` and into `log`.
    pub async fn build(
        &self,
        options: &BuildOptions,
        log: &LogBuffer,
        on_line: &mut (dyn FnMut(&str) + Send),
    ) -> Result<String, SandboxError> {
        let dir = options.dir.clone();
        let limit = options.max_context;
        let archive = tokio::task::spawn_blocking(move || context::pack(&dir, limit))
            .await
            .map_err(|e| {
                SandboxError::Context(context::ContextError::Read {
                    path: options.dir.clone(),
                    source: std::io::Error::other(e),
                })
            })?
            .map_err(SandboxError::Context)?;
        let tag = format!("proctor-{}:submission", self.run_id);
        let labels = self.labels();
        let build_options = BuildImageOptionsBuilder::default()
            .dockerfile("Dockerfile")
            .t(&tag)
            .rm(true)
            .forcerm(true)
            .labels(&labels)
            .build();
        let mut stream = self
            .docker
            .build_image(build_options, None, Some(bollard::body_full(archive.into())));
        let mut step = "the start of the build".to_string();
        let mut layers: Vec<String> = Vec::new();
        let outcome = tokio::time::timeout(options.timeout, async {
            while let Some(item) = stream.next().await {
                let info = item.map_err(|e| match e {
                    bollard::errors::Error::DockerStreamError { error } => SandboxError::Build {
                        step: step.clone(),
                        message: error,
                    },
                    other => SandboxError::BuildStream(other),
                })?;
                if let Some(text) = &info.stream {
                    log.push(text.as_bytes());
                    for line in text.lines().filter(|l| !l.trim().is_empty()) {
                        if line.starts_with("Step ") {
                            step = line.trim().to_string();
                        }
                        if let Some(id) = line.trim().strip_prefix("---> ").filter(|id| id.len() == 12) {
                            layers.push(id.to_string());
                        }
                        on_line(line);
                    }
                }
                if let Some(detail) = info.error_detail {
                    let message = detail.message.unwrap_or_else(|| "unknown error".to_string());
                    return Err(SandboxError::Build {
                        step: step.clone(),
                        message: message.trim().to_string(),
                    });
                }
            }
            Ok(())
        })
        .await;
        let result = match outcome {
            Ok(result) => result,
            Err(_) => Err(SandboxError::BuildTimeout(options.timeout)),
        };
        if result.is_err() {
            // Layers of a failed build carry no label; remove them so nothing is left behind.
            for layer in layers.iter().rev() {
                let remove = RemoveImageOptionsBuilder::default().force(true).build();
                let _ = self.docker.remove_image(layer, Some(remove), None).await;
            }
        }
        result.map(|()| tag)
    }
}
