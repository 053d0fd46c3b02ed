//! Crash consistency: the node process is killed (SIGKILL mid-upload, or aborted at a
//! failpoint between pinning and committing, or between committing and publishing), then a
//! node restarts on the same data directory. The published record must match what is stored
//! and pinned, with no orphan counted and no orphan pin left.

use std::process::Child;
use std::time::Duration;

use crate::fixture::{
    Net, User, assert_consistent, data, pins, referenced, start_process, wait_healthy,
};

/// Uploads a file to a node process that dies while handling it.
async fn upload_and_die(user: &User, token: u64, child: &mut Child, len: usize, kill_midway: bool) {
    let body: Vec<u8> = data(99, len);
    let url = format!("{}/v1/tokens/{token}/files?name=doomed", user.base);
    let session = user.session.clone().unwrap();
    let request = if kill_midway {
        // Send half, then stall until the process is killed.
        let half = bytes::Bytes::from(body[..len / 2].to_vec());
        let stream = futures::stream::unfold(0u8, move |state| {
            let half = half.clone();
            async move {
                match state {
                    0 => Some((Ok::<_, std::io::Error>(half), 1)),
                    _ => {
                        tokio::time::sleep(Duration::from_secs(30)).await;
                        None
                    }
                }
            }
        });
        user.http
            .post(&url)
            .bearer_auth(&session)
            .header("content-length", len.to_string())
            .body(reqwest::Body::wrap_stream(stream))
    } else {
        user.http.post(&url).bearer_auth(&session).body(body)
    };
    let send = tokio::spawn(request.send());
    if kill_midway {
        tokio::time::sleep(Duration::from_millis(700)).await;
        child.kill().unwrap();
    }
    let status = child.wait().unwrap();
    assert!(!status.success(), "the node process died");
    let r = send.await.unwrap();
    assert!(r.is_err(), "the upload got no answer: {r:?}");
}

/// The embedded store, owned by the node: uploads' CIDs are unknown until the add answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_node_recovers_a_consistent_record() {
    killed_node_recovers(true).await;
}

/// As if the backend were shared: the node journals each upload's CID before the pin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_node_recovers_a_consistent_record_on_a_shared_backend() {
    killed_node_recovers(false).await;
}

async fn killed_node_recovers(exclusive: bool) {
    let net = Net::start().await;
    let data_dir = net.dir.path().join("crash");
    let mut config = net.config("crash");
    config.store_sync_writes = true;
    config.exclusive_backend = Some(exclusive);

    // A token with some files, served in-process.
    let node = px_node::spawn(config.clone()).await.unwrap();
    let mut alice = net.user(0, &node);
    alice.login().await;
    let token = alice.mint(&net).await;
    for i in 0..3 {
        alice
            .upload(token, &format!("f{i}"), data(i, 10_000))
            .await
            .unwrap();
    }
    let ipfs = net.ipfs_url(&node);
    let before = alice.usage(token).await.unwrap();
    let before_pins = pins(&ipfs).await;
    assert_eq!(before_pins, referenced(&alice, &ipfs, token).await);
    let session = alice.session.clone();
    node.shutdown().await;

    // 1. SIGKILL while the body streams, 2. abort once the add has answered (the file is
    // pinned), 3. abort after pinning the index and record, before committing.
    for (failpoint, kill_midway) in [
        (None, true),
        (Some("after_add"), false),
        (Some("after_pin"), false),
    ] {
        let (mut child, url) = start_process(&net, &data_dir, failpoint, exclusive, &[]);
        wait_healthy(&url).await;
        let user = User {
            session: session.clone(),
            ..net.user_at(0, url)
        };
        upload_and_die(&user, token, &mut child, 4 << 20, kill_midway).await;

        let node = px_node::spawn(config.clone()).await.unwrap();
        let ipfs = net.ipfs_url(&node);
        let alice = User {
            session: session.clone(),
            ..net.user(0, &node)
        };
        let after = alice.usage(token).await.unwrap();
        assert_eq!(after, before, "{failpoint:?}: usage and sequence unchanged");
        assert_consistent(&alice, &ipfs, token).await;
        assert_eq!(
            pins(&ipfs).await,
            before_pins,
            "{failpoint:?}: no orphan pinned"
        );
        node.shutdown().await;
    }

    // 3. Abort after committing, before publishing: the restart publishes the new record.
    let (mut child, url) = start_process(&net, &data_dir, Some("after_commit"), exclusive, &[]);
    wait_healthy(&url).await;
    let user = User {
        session: session.clone(),
        ..net.user_at(0, url)
    };
    upload_and_die(&user, token, &mut child, 20_000, false).await;
    let node = px_node::spawn(config.clone()).await.unwrap();
    let ipfs = net.ipfs_url(&node);
    let alice = User {
        session: session.clone(),
        ..net.user(0, &node)
    };
    let after = alice.usage(token).await.unwrap();
    assert_eq!(
        (after.used, after.file_count, after.seq),
        (before.used + 20_000, 4, before.seq + 1)
    );
    assert_consistent(&alice, &ipfs, token).await;
    assert_eq!(
        pins(&ipfs).await,
        referenced(&alice, &ipfs, token).await,
        "released pins removed"
    );
    // And the node keeps working.
    let r = alice.upload(token, "after", data(5, 10)).await.unwrap();
    assert_eq!(r.usage.seq, before.seq + 2);
    node.shutdown().await;
}
