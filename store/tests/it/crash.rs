//! Crash safety: SIGKILL the daemon binary in the middle of an add; after a restart on the
//! same repo no block of the interrupted add is visible and its pack file is gone.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use ipfs_api_backend_hyper::request::Add;

use crate::common::{config, content, spawn_with};
use crate::daemon::Daemon;

/// Sizes of the pack files in the repo.
fn packs(repo: &std::path::Path) -> Vec<u64> {
    std::fs::read_dir(repo.join("packs"))
        .map(|rd| rd.flatten().map(|e| e.metadata().unwrap().len()).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn killed_mid_add_leaves_no_visible_block() {
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = Daemon::start(dir.path()).await;
    let api = daemon.api.clone();
    let http = reqwest::Client::new();

    // An upload that sends 8 MiB and then stalls, so the daemon is mid-import when killed.
    let data = Bytes::from(content(8 << 20, 11));
    let frames = futures::stream::iter(
        (0..8).map(move |i| Ok::<_, std::io::Error>(data.slice(i << 20..(i + 1) << 20))),
    )
    .chain(futures::stream::pending());
    let part = reqwest::multipart::Part::stream(reqwest::Body::wrap_stream(frames)).file_name("f");
    let form = reqwest::multipart::Form::new().part("file", part);
    let upload = tokio::spawn(
        http.post(format!("http://{api}/api/v0/add"))
            .multipart(form)
            .send(),
    );

    let start = Instant::now();
    while !packs(dir.path()).iter().any(|&len| len >= 4 << 20) {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no staged blocks appeared"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    daemon.kill();
    assert!(
        upload.await.unwrap().is_err(),
        "the upload cannot have succeeded"
    );
    assert_eq!(packs(dir.path()).len(), 1, "the interrupted import's pack");

    // Restart in-process on the same repo: the index names no block, and the pack no commit
    // refers to is deleted.
    let store = spawn_with(config(dir.path()), None).await;
    assert!(packs(dir.path()).is_empty());
    assert_eq!(store.block_count(), 0);
    assert_eq!(store.pin_count().await, 0);
    // And the repo works.
    let (cid, _) = store.add(b"after the crash".to_vec(), Add::default()).await;
    assert_eq!(store.cat(&cid).await, b"after the crash");
    store.stop().await;
}
