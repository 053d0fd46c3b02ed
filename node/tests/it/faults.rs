//! The IPFS backend fails under the node: it dies (SIGKILL) while an upload streams into it,
//! and is down while the holder asks for a fresh record (the node's half of a sync). The node
//! answers 503 with `Retry-After`, commits nothing (usage, sequence, published record, pins
//! unchanged), reports the backend down in `/health`, and once the backend is back on the same
//! address it works again without a restart.
//!
//! Also: 100 concurrent uploads racing for the last of a token's quota, and clients that
//! disconnect mid-upload.
//!
//! The backend of the first test is a remote one: the run's Kubo or js-ipfs daemon, or on `store` a `px-store
//! daemon` process (the embedded store cannot fail apart from the node).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use px_core::api::{ErrorCode, Health};
use reqwest::StatusCode;

use crate::fixture::{Net, User, assert_consistent, data, metric, pins, referenced, upload_head};

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

/// Waits until the node has no detached request work left.
async fn quiescent(node: &px_node::NodeHandle) {
    for _ in 0..600 {
        if node.node().tasks_in_flight() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("request tasks still running after 30 s");
}

/// 100 concurrent uploads to one token whose remaining quota fits only some of them: usage
/// never exceeds the quota, equals the committed bytes, and every accepted upload got its own
/// sequence number with usage growing by exactly its size. No upload is refused at commit:
/// the reservation counts the committed usage read under its lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_uploads_never_exceed_the_quota() {
    let net = Net::start().await;
    let node = net.node("quota-race").await;
    let mut alice = net.user(0, &node);
    alice.login().await;
    let token = alice.mint(&net).await;
    let ipfs = net.ipfs_url(&node);
    let quota: u64 = 100 << 20;
    // Fill the quota to 2 MiB below the top: a small file, then the same content imported
    // with a large size (an operator's import trusts the size).
    let seed = alice.upload(token, "seed", data(0, 10)).await.unwrap();
    let filler = quota - (2 << 20) - 10;
    node.node()
        .import_files(
            token,
            vec![px_node::node::ImportFile {
                name: "filler".into(),
                cid: seed.file.cid.clone(),
                size: filler,
                sha256: None,
            }],
        )
        .await
        .unwrap();
    let base = alice.usage(token).await.unwrap();
    assert_eq!(base.used, quota - (2 << 20));

    let alice = std::sync::Arc::new(alice);
    let mut tasks = Vec::new();
    for i in 0..100u64 {
        let alice = alice.clone();
        tasks.push(tokio::spawn(async move {
            // Staggered starts, so admissions overlap with commits (the race of a stale
            // `used`: read before the gate's RPC calls while another upload commits).
            tokio::time::sleep(Duration::from_millis(i * 8)).await;
            let size = 20_000 + i as usize * 700;
            (
                size as u64,
                alice
                    .upload(token, &format!("f{i}"), data(i + 1, size))
                    .await,
            )
        }));
    }
    let mut accepted = Vec::new();
    let mut refused = 0;
    for t in tasks {
        match t.await.unwrap() {
            (size, Ok(r)) => {
                assert_eq!(r.file.size, size);
                assert!(r.usage.used <= quota, "usage {} over quota", r.usage.used);
                accepted.push((r.usage.seq, r.usage.used, size));
            }
            (_, Err(e)) => {
                assert_eq!(e.code(), ErrorCode::OverQuota, "{e:?}");
                refused += 1;
            }
        }
    }
    accepted.sort_unstable();
    let mut used = base.used;
    for (i, (seq, u, size)) in accepted.iter().enumerate() {
        assert_eq!(
            *seq,
            base.seq + 1 + i as u64,
            "sequence strictly increasing"
        );
        used += size;
        assert_eq!(*u, used, "usage grows by exactly the accepted size");
    }
    let usage = alice.usage(token).await.unwrap();
    println!(
        "quota race: {} accepted, {refused} refused, usage {} of {quota} ({} free)",
        accepted.len(),
        usage.used,
        quota - usage.used
    );
    assert!(
        !accepted.is_empty() && refused > 0,
        "the quota fits only some"
    );
    assert_eq!(usage.used, used, "usage equals the sum of accepted sizes");
    assert!(usage.used <= quota);

    // Churn: 100 more staggered uploads while files are deleted, so the quota's edge is
    // crossed again and again while uploads are admitted and others commit.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let deleter = {
        let (alice, stop) = (alice.clone(), stop.clone());
        tokio::spawn(async move {
            let mut deleted = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let page = alice.list(token, 2, 1).await.unwrap();
                if let Some(f) = page.files.first() {
                    let r = alice.delete(token, f.id).await.unwrap();
                    assert!(r.usage.used <= quota);
                    deleted.push((r.usage.seq, r.file.size));
                }
                tokio::time::sleep(Duration::from_millis(15)).await;
            }
            deleted
        })
    };
    let mut tasks = Vec::new();
    for i in 100..200u64 {
        let alice = alice.clone();
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis((i - 100) * 8)).await;
            let size = 20_000 + (i as usize % 50) * 700;
            alice
                .upload(token, &format!("f{i}"), data(i + 1, size))
                .await
        }));
    }
    let mut seqs: Vec<u64> = accepted.iter().map(|a| a.0).collect();
    let mut churn_ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(r) => {
                assert!(r.usage.used <= quota, "usage {} over quota", r.usage.used);
                used += r.file.size;
                seqs.push(r.usage.seq);
                churn_ok += 1;
            }
            Err(e) => assert_eq!(e.code(), ErrorCode::OverQuota, "{e:?}"),
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let deleted = deleter.await.unwrap();
    for (seq, size) in &deleted {
        used -= size;
        seqs.push(*seq);
    }
    let n = seqs.len();
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(seqs.len(), n, "every update has its own sequence number");
    let usage = alice.usage(token).await.unwrap();
    println!(
        "quota churn: {churn_ok} of 100 accepted while {} files were deleted; usage {} of {quota}",
        deleted.len(),
        usage.used
    );
    assert_eq!(usage.used, used, "usage equals accepted minus deleted");
    assert!(usage.used <= quota);
    assert_eq!(
        metric(&node.url(), "px_node_uploads_refused_at_commit_total").await,
        0,
        "no upload admitted past the quota (refused only at commit)"
    );
    quiescent(&node).await;
    assert_consistent(&alice, &ipfs, token).await;
    node.shutdown().await;
}

/// A client that disconnects mid-upload at random points, 100 times: before the body, in
/// the middle of it, or right after the last byte (before the answer). The node gives back
/// every pin it took for an upload that did not complete, keeps no `uploads` row, and
/// commits and publishes the uploads whose body arrived whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_disconnecting_mid_upload_leak_nothing() {
    use tokio::io::AsyncWriteExt;

    let net = Net::start().await;
    let node = net.node("disconnects").await;
    let mut alice = net.user(0, &node);
    alice.login().await;
    let token = alice.mint(&net).await;
    let ipfs = net.ipfs_url(&node);
    alice.upload(token, "first", data(1, 1000)).await.unwrap();
    let before = alice.usage(token).await.unwrap();
    let baseline = pins(&ipfs).await;
    let session = alice.session.clone().unwrap();

    let seed: u64 = std::env::var("PX_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed);
    let mut rng = seed;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let len: u64 = 300_000;
    let mut whole = 0;
    for i in 0..100u64 {
        let mut tcp = tokio::net::TcpStream::connect(node.addr()).await.unwrap();
        let head = upload_head(&node.url(), token, &session, &format!("d{i}"), len);
        tcp.write_all(head.as_bytes()).await.unwrap();
        // Where to stop: 1 in 5 after the whole body, else anywhere before its end.
        let stop = if next() % 5 == 0 {
            whole += 1;
            len
        } else {
            next() % len
        };
        let body = data(1000 + i, len as usize);
        let mut sent = 0;
        while sent < stop {
            let n = (stop - sent).min(1 + next() % 65_536);
            tcp.write_all(&body[sent as usize..(sent + n) as usize])
                .await
                .unwrap();
            sent += n;
            if next() % 4 == 0 {
                tokio::time::sleep(Duration::from_millis(next() % 5)).await;
            }
        }
        tcp.flush().await.unwrap();
        if next() % 2 == 0 {
            tokio::time::sleep(Duration::from_millis(next() % 20)).await;
        }
        drop(tcp);
    }
    quiescent(&node).await;
    let after = alice.usage(token).await.unwrap();
    println!(
        "disconnects (seed {seed:#x}): 100 cut, {whole} after the whole body; committed {}",
        after.file_count - before.file_count
    );
    // A body cut short never commits; a whole one may (the node got every byte).
    assert!(after.file_count - before.file_count <= whole);
    assert_eq!(
        after.used - before.used,
        (after.file_count - before.file_count) * len
    );
    assert!(
        node.node().db().uploads().unwrap().is_empty(),
        "no upload row left"
    );
    // Every pin is a committed object's: the baseline plus what committed, nothing leaked.
    let now = pins(&ipfs).await;
    assert_eq!(now, referenced(&alice, &ipfs, token).await, "no leaked pin");
    if after.file_count == before.file_count {
        assert_eq!(now, baseline, "pins back to the baseline");
    }
    // The last commit was published, and the next upload is too.
    assert_consistent(&alice, &ipfs, token).await;
    let r = alice.upload(token, "next", data(7, 5000)).await.unwrap();
    assert_eq!(r.usage.seq, after.seq + 1);
    assert_consistent(&alice, &ipfs, token).await;
    node.shutdown().await;
}
