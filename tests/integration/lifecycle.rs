//! The running-service handle: restart, exit detection, logs and stop, for every kind of target proctor starts,
//! and the clear refusal for one it only reaches.

use std::sync::Arc;
use std::time::{Duration, Instant};

use proctor::target::process::ProcessLauncher;
use proctor::target::reference::ReferenceLauncher;
use proctor::target::url::UrlLauncher;
use proctor::target::{Launcher, Service, TargetError};

use crate::support::{catalog, proctor_path};

async fn answers(service: &Service) -> u16 {
    let url = service.base_url().join("quote").expect("url");
    reqwest::Client::new()
        .get(url)
        .header("X-API-Key", "lifecycle")
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

#[tokio::test]
async fn the_reference_and_a_process_restart_on_their_port_and_keep_their_earlier_output() {
    let challenge = catalog("rate-limiter");
    let reference = Arc::new(Launcher::Reference(ReferenceLauncher { defects: String::new() }));
    let mut service = Service::start(reference, &challenge, None).await.expect("starts");
    let base = service.base_url().clone();
    assert_eq!(answers(&service).await, 200);
    service.restart(&Default::default()).await.expect("restarts");
    assert_eq!(service.base_url(), &base, "the same port");
    assert_eq!(answers(&service).await, 200);
    assert_eq!(service.exited().await, None);
    service.stop().await;

    let command = format!("exec {} reference --port \"$PORT\"", proctor_path().display());
    let process = Arc::new(Launcher::Process(ProcessLauncher { command }));
    let mut service = Service::start(process, &challenge, None).await.expect("starts");
    let base = service.base_url().clone();
    service.restart(&Default::default()).await.expect("restarts");
    assert_eq!(service.base_url(), &base, "the same port");
    assert_eq!(answers(&service).await, 200);
    let logs = service.logs().expect("a process has logs");
    assert_eq!(logs.matches("reference service listening").count(), 2, "{logs}");
    assert!(logs.contains("--- restarted ---"), "{logs}");
    service.stop().await;
}

#[tokio::test]
async fn a_process_that_ends_is_seen_as_exited_with_its_status() {
    let challenge = catalog("rate-limiter");
    let command = format!(
        "{} reference --port \"$PORT\" & sleep 1; echo leaving; exit 3",
        proctor_path().display()
    );
    let process = Arc::new(Launcher::Process(ProcessLauncher { command }));
    let mut service = Service::start(process, &challenge, None).await.expect("starts");
    let deadline = Instant::now() + Duration::from_secs(10);
    let exited = loop {
        if let Some(how) = service.exited().await {
            break how;
        }
        assert!(Instant::now() < deadline, "the process exit was never seen");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(exited, "exited with status 3");
    service.stop().await;
}

#[tokio::test]
async fn a_url_target_cannot_be_restarted_and_says_so() {
    let challenge = catalog("rate-limiter");
    let reference = Arc::new(Launcher::Reference(ReferenceLauncher { defects: String::new() }));
    let running = Service::start(reference, &challenge, None).await.expect("starts");
    let url = Arc::new(Launcher::Url(UrlLauncher {
        url: running.base_url().clone(),
    }));
    let mut reached = Service::start(url, &challenge, None).await.expect("reachable");
    assert_eq!(
        reached.logs(),
        None,
        "proctor has no output of a service it did not start"
    );
    let (error, _) = reached
        .restart(&Default::default())
        .await
        .expect_err("a URL cannot be restarted");
    assert!(matches!(error, TargetError::Unsupported { .. }), "{error:?}");
    assert_eq!(
        error.to_string(),
        format!(
            "restarting the service is not possible for {}: proctor did not start that service",
            running.base_url()
        )
    );
    assert_eq!(answers(&reached).await, 200, "the service is untouched");
    reached.stop().await;
    running.stop().await;
}
