//! The IPFS backend fails under the node: it dies (SIGKILL) while an upload streams into it,
//! and is down while the holder asks for a fresh record (the node's half of a sync). The node
//! answers 503 with `Retry-After`, commits nothing (usage, sequence, published record, pins
//! unchanged), reports the backend down in `/health`, and once the backend is back on the same
//! address it works again without a restart.
//!
//! The backend is a remote one: the run's Kubo or js-ipfs daemon, or on `store` a `px-store
//! daemon` process (the embedded store cannot fail apart from the node).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use px_core::api::{ErrorCode, Health};
use reqwest::StatusCode;

use crate::fixture::{Net, User, assert_consistent, data, pins};

/// A backend this test can kill and bring back on the same address.
enum Backend {
    Store {
        child: Option<Child>,
        port: u16,
        repo: PathBuf,
    },
    Daemon,
}

impl Backend {
    fn start_store(port: u16, repo: &std::path::Path) -> Child {
        let bin = std::path::Path::new(env!("CARGO_BIN_EXE_px-node"))
            .parent()
            .unwrap()
            .join("px-store");
        assert!(
            bin.is_file(),
            "{} is not built (cargo build --workspace)",
            bin.display()
        );
        Command::new(bin)
            .args(["daemon", "--no-sync", "--api"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("--repo")
            .arg(repo)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("px-store starts")
    }

    async fn kill(&mut self, net: &mut Net) {
        match self {
            Backend::Store { child, .. } => {
                if let Some(mut c) = child.take() {
                    c.kill().unwrap();
                    c.wait().unwrap();
                }
            }
            Backend::Daemon => net.daemon.as_mut().unwrap().kill().await,
        }
    }

    async fn restart(&mut self, net: &mut Net, url: &str) {
        match self {
            Backend::Store { child, port, repo } => *child = Some(Self::start_store(*port, repo)),
            Backend::Daemon => net.daemon.as_mut().unwrap().start_again().await.unwrap(),
        }
        wait_up(url).await;
    }
}

/// Waits until the backend at `url` answers.
async fn wait_up(url: &str) {
    let http = reqwest::Client::new();
    for _ in 0..200 {
        if http
            .post(format!("{url}/api/v0/version"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the backend did not come back at {url}");
}

impl Drop for Backend {
    fn drop(&mut self) {
        if let Backend::Store { child: Some(c), .. } = self {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

async fn health(user: &User) -> Health {
    user.http
        .get(format!("{}/health", user.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// POST /v1/tokens/{token}/refresh: what the SDK asks before a sync. Answers the status and
/// the `Retry-After` header.
async fn refresh(user: &User, token: u64) -> (StatusCode, Option<String>) {
    let r = user
        .http
        .post(format!("{}/v1/tokens/{token}/refresh", user.base))
        .bearer_auth(user.session.as_ref().unwrap())
        .send()
        .await
        .unwrap();
    let retry = r
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .map(|v| v.to_str().unwrap().to_string());
    (r.status(), retry)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_that_dies_mid_upload_and_mid_sync_costs_a_503_and_nothing_else() {
    let mut net = Net::start().await;
    let (mut backend, url) = match net.daemon_url() {
        Some(url) => (Backend::Daemon, url),
        None => {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let repo = net.dir.path().join("remote-store");
            let child = Backend::start_store(port, &repo);
            let url = format!("http://127.0.0.1:{port}");
            wait_up(&url).await;
            let b = Backend::Store {
                child: Some(child),
                port,
                repo,
            };
            (b, url)
        }
    };
    let mut config = net.config("faults");
    config.ipfs = px_node::IpfsBackend::Remote(url.clone());
    let node = px_node::spawn(config).await.unwrap();
    let mut alice = net.user(0, &node);
    alice.login().await;
    let token = alice.mint(&net).await;
    alice
        .upload(token, "before", data(1, 300_000))
        .await
        .unwrap();
    let before = alice.usage(token).await.unwrap();
    let before_pins = pins(&url).await;
    assert_consistent(&alice, &url, token).await;

    // 1. The backend dies while an 8 MiB upload streams into it.
    let len = 8 << 20;
    let body = data(2, len);
    let chunks: Vec<bytes::Bytes> = body
        .chunks(256 << 10)
        .map(bytes::Bytes::copy_from_slice)
        .collect();
    let slow = futures::stream::unfold(chunks.into_iter(), |mut it| async move {
        tokio::time::sleep(Duration::from_millis(40)).await;
        it.next().map(|c| (Ok::<_, std::io::Error>(c), it))
    });
    let upload = alice
        .http
        .post(format!(
            "{}/v1/tokens/{token}/files?name=doomed",
            alice.base
        ))
        .bearer_auth(alice.session.as_ref().unwrap())
        .header(reqwest::header::CONTENT_LENGTH, len.to_string())
        .body(reqwest::Body::wrap_stream(slow))
        .send();
    let upload = tokio::spawn(upload);
    tokio::time::sleep(Duration::from_millis(400)).await;
    backend.kill(&mut net).await;
    let r = upload.await.unwrap().expect("the node answers");
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.headers().contains_key(reqwest::header::RETRY_AFTER));
    let body: px_core::api::ErrorBody = r.json().await.unwrap();
    assert_eq!(body.error, ErrorCode::Unavailable);
    assert!(body.message.contains("retry later"), "{}", body.message);
    assert_eq!(
        alice.usage(token).await.unwrap(),
        before,
        "nothing committed"
    );
    let h = health(&alice).await;
    assert_eq!((h.status.as_str(), h.ipfs), ("degraded", false));

    // 2. Down while the holder asks for a fresh record (before a sync): 503, nothing changes.
    let (status, retry) = refresh(&alice, token).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(retry.as_deref(), Some("5"));
    assert_eq!(
        alice.usage(token).await.unwrap(),
        before,
        "nothing committed"
    );

    // 3. Back on the same address: the same node works again, and nothing is half done.
    backend.restart(&mut net, &url).await;
    assert_eq!(
        pins(&url).await,
        before_pins,
        "no pin left by the failed requests"
    );
    assert!(health(&alice).await.ipfs);
    let (status, _) = refresh(&alice, token).await;
    assert_eq!(status, StatusCode::OK);
    let after = alice
        .upload(token, "after", data(3, 500_000))
        .await
        .unwrap();
    assert_eq!(after.usage.seq, before.seq + 2);
    assert_eq!(after.usage.used, before.used + 500_000);
    assert_consistent(&alice, &url, token).await;
    assert_eq!(
        alice.download(token, &after.file.cid).await.unwrap(),
        data(3, 500_000)
    );
    node.shutdown().await;
}
