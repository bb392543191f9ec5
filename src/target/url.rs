//! A service that is already running at a URL: proctor only reaches it, and cannot restart or stop it.

use super::{Instance, Spawned};

/// Reaches a running service.
#[derive(Debug)]
pub struct UrlLauncher {
    /// Its base URL.
    pub url: url::Url,
}

impl UrlLauncher {
    pub(super) fn describe(&self) -> String {
        crate::http::redacted(&self.url)
    }

    pub(super) fn spawn(&self) -> Spawned {
        Spawned {
            base_url: Some(self.url.clone()),
            plain_url: None,
            instance: Instance::External,
        }
    }
}
