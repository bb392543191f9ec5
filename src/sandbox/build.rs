//! Building the candidate's image from a submission folder with the engine's classic builder.

use std::path::PathBuf;
use std::time::Duration;

use bollard::query_parameters::{BuildImageOptionsBuilder, RemoveImageOptionsBuilder};
use futures::StreamExt;

use super::{Sandbox, SandboxError, context};
use crate::logs::LogBuffer;

/// What to build and within which bounds.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// The submission folder (with a Dockerfile at its root).
    pub dir: PathBuf,
    /// The largest build context, in bytes.
    pub max_context: u64,
    /// The longest the build may take.
    pub timeout: Duration,
    /// Limits and network of the build's `RUN` steps.
    pub limits: BuildLimits,
    /// The image's tag (default `proctor-<run>:submission`).
    pub tag: Option<String>,
}

/// What a candidate's `RUN` steps may use: they run code proctor does not trust.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BuildLimits {
    /// Memory of each build container, swap included (so none is added), in bytes.
    pub memory: u64,
    /// CPUs of each build container.
    pub cpus: f64,
    /// The network `RUN` steps get.
    pub network: BuildNetwork,
}

/// The network of a build's `RUN` steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildNetwork {
    /// The engine's default bridge: `RUN pip install` and friends reach their registries.
    Bridge,
    /// No network at all: for submissions that vendor their dependencies.
    None,
}

impl Default for BuildLimits {
    fn default() -> Self {
        Self {
            memory: DEFAULT_BUILD_MEMORY,
            cpus: 1.0,
            network: BuildNetwork::Bridge,
        }
    }
}

/// The default memory of a build's `RUN` steps.
pub const DEFAULT_BUILD_MEMORY: u64 = 1536 << 20;
/// The most memory a build may be given (the build API takes a signed 32-bit byte count).
pub const MAX_BUILD_MEMORY: u64 = i32::MAX as u64;

/// The size of the chunks a build context is streamed in.
const CHUNK: usize = 256 << 10;

/// A `Write` that hands what it is given to the build request in chunks, waiting while the engine is behind.
struct ChunkWriter {
    sender: futures::channel::mpsc::Sender<Result<bytes::Bytes, std::io::Error>>,
    buffer: Vec<u8>,
}

impl ChunkWriter {
    fn flush_chunk(&mut self) -> std::io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = bytes::Bytes::from(std::mem::replace(&mut self.buffer, Vec::with_capacity(CHUNK)));
        futures::executor::block_on(futures::SinkExt::send(&mut self.sender, Ok(chunk)))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the build request ended"))
    }
}

impl std::io::Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(data);
        if self.buffer.len() >= CHUNK {
            self.flush_chunk()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
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
        // Select first, so that a missing Dockerfile or an oversized context is refused before the build starts;
        // then stream the archive as it is written, a few chunks ahead of the engine.
        let files = {
            let dir = dir.clone();
            tokio::task::spawn_blocking(move || context::select(&dir, limit))
                .await
                .map_err(|e| {
                    SandboxError::Context(context::ContextError::Read {
                        path: options.dir.clone(),
                        source: std::io::Error::other(e),
                    })
                })?
                .map_err(SandboxError::Context)?
        };
        let mut labels: Vec<(String, String)> = self.labels().into_iter().collect();
        labels.sort();
        let (sender, chunks) = futures::channel::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(4);
        tokio::task::spawn_blocking(move || {
            let mut writer = ChunkWriter {
                sender,
                buffer: Vec::with_capacity(CHUNK),
            };
            let packed = context::pack_into(&dir, &files, &labels, &mut writer).and_then(|w| {
                w.flush_chunk().map_err(|source| context::ContextError::Read {
                    path: dir.clone(),
                    source,
                })
            });
            if let Err(e) = packed {
                // The engine sees a broken stream, and the build fails with this reason.
                let _ = futures::executor::block_on(futures::SinkExt::send(
                    &mut writer.sender,
                    Err(std::io::Error::other(e.to_string())),
                ));
            }
        });
        let tag = options
            .tag
            .clone()
            .unwrap_or_else(|| format!("proctor-{}:submission", self.run_id));
        let labels = self.labels();
        let limits = options.limits;
        let memory = i32::try_from(limits.memory.min(MAX_BUILD_MEMORY)).unwrap_or(i32::MAX);
        let build_options = BuildImageOptionsBuilder::default()
            .dockerfile("Dockerfile")
            .t(&tag)
            .rm(true)
            .forcerm(true)
            .labels(&labels)
            .memory(memory)
            .memswap(memory)
            .cpuperiod(100_000)
            .cpuquota((limits.cpus * 100_000.0).round().clamp(1_000.0, f64::from(i32::MAX)) as i32)
            .networkmode(match limits.network {
                BuildNetwork::Bridge => "bridge",
                BuildNetwork::None => "none",
            })
            .build();
        let mut stream = self
            .docker
            .build_image(build_options, None, Some(bollard::body_try_stream(chunks)));
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
