//! The node side of the client against a real `px-node` (embedded store) on anvil.

use std::time::Duration;

use px_cli::devnet::FIRST_USER;
use px_sdk::{
    Client, DownloadOptions, Error, Payment, UploadOptions, api::GateReason, crypto,
    crypto::CryptoError,
};

use crate::common::{spawn_chain, spawn_node, spawn_node_with};

fn data(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[tokio::test]
async fn encrypted_upload_list_download_delete_and_sync() {
    let env = spawn_chain().await;
    let node = spawn_node(&env).await;
    let client = env.node_client(FIRST_USER, &node).await;

    // Minting through the node binds its IPNS key.
    let id = client.mint_via_node(1, Payment::Auto).await.unwrap();
    assert!(client.token(id).await.unwrap().ipns_key.is_some());

    // Sizes around the 256 KiB segment size.
    let seg = crypto::DEFAULT_SEGMENT_SIZE;
    let mut uploaded = Vec::new();
    let progress = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    for (i, n) in [1, seg - 1, seg, seg + 1, 2 * seg + 5]
        .into_iter()
        .enumerate()
    {
        let plain = data(n, i as u8);
        let p = progress.clone();
        let opts = UploadOptions {
            progress: Some(std::sync::Arc::new(move |done, _| {
                p.store(done, std::sync::atomic::Ordering::Relaxed)
            })),
            ..Default::default()
        };
        let name = format!("file-{i}.bin");
        let r = client
            .upload(id, std::io::Cursor::new(plain.clone()), &name, opts)
            .await
            .unwrap();
        assert!(r.encrypted);
        assert_eq!(r.plain_size, n as u64);
        assert_eq!(r.file.size, crypto::encrypted_len(n as u64, seg));
        assert_eq!(
            progress.load(std::sync::atomic::Ordering::Relaxed),
            n as u64
        );
        // The node sees neither the name nor the plaintext.
        assert!(crypto::is_encrypted_name(&r.file.name));
        assert!(!r.file.name.contains("file-"));
        uploaded.push((name, plain, r));
    }

    // Listing decrypts names; sizes and count add up in the node's usage.
    let files = client.list(id).await.unwrap();
    assert_eq!(files.len(), uploaded.len());
    for ((name, _, r), f) in uploaded.iter().zip(&files) {
        assert_eq!(&f.name, name);
        assert_eq!(f.entry.cid, r.file.cid);
        assert!(f.encrypted);
    }
    let usage = client.usage(id).await.unwrap();
    let total: u64 = uploaded.iter().map(|(_, _, r)| r.file.size).sum();
    assert_eq!(
        (usage.used, usage.file_count),
        (total, uploaded.len() as u64)
    );
    // Paging: one file per page still yields every file.
    let first = client.list_page(id, None, 1).await.unwrap();
    assert_eq!(first.files.len(), 1);
    assert!(first.next.is_some());

    // Download compares bytes and the plaintext hash of the entry.
    for (name, plain, r) in &uploaded {
        let mut out = Vec::new();
        let d = client.download(id, &r.file.cid, &mut out).await.unwrap();
        assert_eq!(&out, plain, "{name}");
        assert!(d.encrypted);
        assert_eq!(d.file.as_ref().unwrap().name, *name);
        // What the node stores is ciphertext.
        let mut raw = Vec::new();
        client
            .download_with(
                id,
                &r.file.cid,
                &mut raw,
                DownloadOptions {
                    decrypt: false,
                    verify: false,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert!(crypto::is_encrypted(&raw));
        assert_eq!(raw.len() as u64, r.file.size);
    }

    // Delete: gone from the list and the usage.
    let (_, _, victim) = &uploaded[0];
    let del = client.delete(id, &victim.file.cid).await.unwrap();
    assert_eq!(del.usage.file_count, uploaded.len() as u64 - 1);
    assert!(
        client
            .list(id)
            .await
            .unwrap()
            .iter()
            .all(|f| f.entry.cid != victim.file.cid)
    );
    assert!(matches!(
        client.delete(id, &victim.file.cid).await,
        Err(Error::FileNotFound { .. })
    ));

    // Sync what the node published and wait for it.
    let usage = client.usage(id).await.unwrap();
    client.request_sync(id).await.unwrap();
    let (synced, ok) = tokio::join!(
        client.wait_synced(id, Duration::from_secs(60)),
        env.fulfill_when_requested(id, usage.used, usage.file_count as u32, usage.seq)
    );
    assert!(ok);
    let synced = synced.unwrap();
    assert_eq!((synced.used, synced.seq), (usage.used, usage.seq));
    assert_eq!(client.token(id).await.unwrap().used, usage.used);
}

#[tokio::test]
async fn unencrypted_upload_round_trips_and_is_stored_as_is() {
    let env = spawn_chain().await;
    let node = spawn_node(&env).await;
    let client = env.node_client(FIRST_USER, &node).await;
    let id = client.mint_via_node(1, Payment::Auto).await.unwrap();
    let plain = b"hello world\n".to_vec();
    let r = client
        .upload(
            id,
            std::io::Cursor::new(plain.clone()),
            "hello.txt",
            UploadOptions {
                encrypt: false,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    // Kubo's CID of the plain bytes: computed client side and confirmed by the node.
    assert_eq!(r.file.cid, "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o");
    assert_eq!(r.file.name, "hello.txt");
    // Where encryption is expected (the default), plain content is refused ...
    let mut out = Vec::new();
    let err = client
        .download(id, &r.file.cid, &mut out)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unencrypted { .. }), "{err:?}");
    assert!(err.to_string().contains("--plain"), "{err}");
    assert!(out.is_empty());
    // ... and accepted when asked for.
    let d = client
        .download_with(
            id,
            &r.file.cid,
            &mut out,
            DownloadOptions {
                allow_plain: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(out, plain);
    assert!(!d.encrypted);
    assert_eq!(
        d.sha256,
        "a948904f2f0f479b8f8197694b30184b0d2ed1c1cd2a1ec0fb85d299a192a447"
    );
}

#[tokio::test]
async fn wrong_key_is_reported_for_listing_and_download() {
    let env = spawn_chain().await;
    let node = spawn_node(&env).await;
    let key = crypto::OwnerKey::generate().unwrap();
    let client = env
        .node_client_with_key(FIRST_USER, &node, key.clone())
        .await;
    let id = client.mint_via_node(1, Payment::Auto).await.unwrap();
    let r = client
        .upload(
            id,
            std::io::Cursor::new(data(1000, 1)),
            "secret.txt",
            UploadOptions::default(),
        )
        .await
        .unwrap();

    // Same wallet, another key (here: the wallet-derived one): a clear error, no garbage.
    let other = env.node_client(FIRST_USER, &node).await;
    assert_ne!(other.owner_key().await.unwrap().id(), key.id());
    match other.list(id).await.unwrap_err() {
        Error::Crypto(CryptoError::WrongKey { expected, actual }) => {
            assert_eq!(expected, key.id_hex());
            assert_eq!(actual, other.owner_key().await.unwrap().id_hex());
        }
        e => panic!("expected WrongKey, got {e:?}"),
    }
    let mut out = Vec::new();
    let err = other
        .download_with(
            id,
            &r.file.cid,
            &mut out,
            DownloadOptions {
                verify: false,
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Crypto(CryptoError::WrongKey { .. })),
        "{err:?}"
    );
    assert!(out.is_empty(), "nothing may be written with a wrong key");
    assert!(err.to_string().starts_with("wrong key"));

    // The wallet-derived key is the same on a "new device" (a fresh client).
    let again = env.node_client(FIRST_USER, &node).await;
    assert_eq!(
        again.owner_key().await.unwrap().id(),
        other.owner_key().await.unwrap().id()
    );

    // A stranger is not the owner: the node refuses.
    let stranger = env.node_client(FIRST_USER + 1, &node).await;
    match stranger.list(id).await.unwrap_err() {
        Error::Node { status, .. } => assert_eq!(status, 403),
        e => panic!("expected a node refusal, got {e:?}"),
    }
}

#[tokio::test]
async fn upload_is_refused_while_unsynced_and_allowed_after_a_sync() {
    let env = spawn_chain().await;
    let node = spawn_node(&env).await;
    let client = env.node_client(FIRST_USER, &node).await;
    let id = client.mint_via_node(1, Payment::Auto).await.unwrap();
    client
        .upload(
            id,
            std::io::Cursor::new(data(10, 0)),
            "a",
            UploadOptions::default(),
        )
        .await
        .unwrap();

    env.time_travel_days(31).await;
    match client
        .upload(
            id,
            std::io::Cursor::new(data(10, 1)),
            "b",
            UploadOptions::default(),
        )
        .await
        .unwrap_err()
    {
        Error::GateClosed { reason, detail, .. } => {
            assert_eq!(reason, GateReason::NotSynced);
            assert!(detail.contains(&format!("px sync {id} --wait")), "{detail}");
        }
        e => panic!("expected GateClosed, got {e:?}"),
    }
    // The node enforces the gate too (client check skipped).
    match client
        .upload(
            id,
            std::io::Cursor::new(data(10, 2)),
            "c",
            UploadOptions {
                check_gate: false,
                ..Default::default()
            },
        )
        .await
        .unwrap_err()
    {
        Error::GateClosed { reason, .. } => assert_eq!(reason, GateReason::NotSynced),
        e => panic!("expected GateClosed from the node, got {e:?}"),
    }

    // auto_sync requests the sync, the oracle answers, the upload goes through.
    let usage = client.usage(id).await.unwrap();
    let (r, ok) = tokio::join!(
        client.upload(
            id,
            std::io::Cursor::new(data(10, 3)),
            "d",
            UploadOptions {
                auto_sync: true,
                ..Default::default()
            },
        ),
        env.fulfill_when_requested(id, usage.used, usage.file_count as u32, usage.seq)
    );
    assert!(ok);
    r.unwrap();
    assert_eq!(client.list(id).await.unwrap().len(), 2);
}

/// `px_node_logins_total{result="..."}` from the node's metrics.
async fn logins(url: &str, result: &str) -> u64 {
    let text = reqwest::get(format!("{url}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let key = format!("px_node_logins_total{{result=\"{result}\"}}");
    text.lines()
        .find_map(|l| l.strip_prefix(&key))
        .map_or(0, |v| v.trim().parse().unwrap())
}

#[tokio::test]
async fn session_is_kept_and_renewed_before_it_expires() {
    let env = spawn_chain().await;
    let node = spawn_node_with(&env, &["--session-ttl-secs", "4"]).await;
    let client = env.node_client(FIRST_USER, &node).await;
    let id = client.mint_via_node(1, Payment::Auto).await.unwrap();
    assert_eq!(logins(&node.url, "ok").await, 1);
    client.list(id).await.unwrap();
    client.usage(id).await.unwrap();
    assert_eq!(logins(&node.url, "ok").await, 1, "the session is reused");
    tokio::time::sleep(Duration::from_millis(4200)).await;
    client.list(id).await.unwrap();
    assert_eq!(
        logins(&node.url, "ok").await,
        2,
        "signed in again near expiry"
    );
    assert_eq!(logins(&node.url, "refused").await, 0);
}

/// Issue 15: the node sees only ciphertext facts. The plaintext's SHA-256 stays inside the
/// encrypted header (the node's entry has none), names are bound to their file (a node that
/// swaps names between entries is caught before any plaintext is written), and files the node
/// slips in unencrypted or under a plain name are refused.
#[tokio::test]
async fn node_sees_no_plaintext_hash_and_cannot_swap_names_or_slip_in_files() {
    let env = spawn_chain().await;
    let node = spawn_node(&env).await;
    let client = env.node_client(FIRST_USER, &node).await;
    let id = client.mint_via_node(1, Payment::Auto).await.unwrap();
    let up = |plain: Vec<u8>, name: &'static str| {
        let client = &client;
        async move {
            client
                .upload(
                    id,
                    std::io::Cursor::new(plain),
                    name,
                    UploadOptions::default(),
                )
                .await
                .unwrap()
        }
    };
    let a_plain = data(5000, 1);
    let a = up(a_plain.clone(), "a.txt").await;
    let b = up(data(7000, 2), "b.txt").await;
    let sha_a = alloy::hex::encode(crypto::sha256(&a_plain));
    for f in client.list(id).await.unwrap() {
        assert_eq!(f.entry.sha256, None, "the node holds a plaintext hash");
        assert!(f.file_id.is_some());
    }
    assert!(!a.file.name.contains(&sha_a));
    let raw = |cid: String| {
        let client = &client;
        async move {
            let mut raw = Vec::new();
            client
                .download_with(
                    id,
                    &cid,
                    &mut raw,
                    DownloadOptions {
                        decrypt: false,
                        verify: false,
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
            raw
        }
    };
    let b_raw = raw(b.file.cid.clone()).await;
    assert!(
        !b_raw
            .windows(32)
            .any(|w| w == crypto::sha256(&data(7000, 2))),
        "the plaintext hash is visible in the ciphertext"
    );

    // The node (played here by the owner's own raw uploads, stored as they are) puts b's
    // content under a's encrypted name.
    client.delete(id, &b.file.cid).await.unwrap();
    let plain_opts = || UploadOptions {
        encrypt: false,
        ..Default::default()
    };
    client
        .upload(
            id,
            std::io::Cursor::new(b_raw.clone()),
            &a.file.name,
            plain_opts(),
        )
        .await
        .unwrap();
    let listed = client.list(id).await.unwrap();
    assert_eq!(listed.iter().filter(|f| f.name == "a.txt").count(), 2);
    let mut out = Vec::new();
    let err = client
        .download(id, &b.file.cid, &mut out)
        .await
        .unwrap_err();
    match &err {
        Error::Crypto(CryptoError::Corrupt(msg)) => assert!(msg.contains("another file"), "{msg}"),
        other => panic!("expected a swapped-name refusal, got {other:?}"),
    }
    assert!(out.is_empty(), "plaintext released under a swapped name");
    // a's own entry still opens, and its hash is checked against the sealed one.
    let d = client.download(id, &a.file.cid, &mut out).await.unwrap();
    assert_eq!(
        (out.as_slice(), d.sha256.as_str()),
        (a_plain.as_slice(), sha_a.as_str())
    );

    // Encrypted content under a plain name, and plain content under an encrypted name.
    client.delete(id, &b.file.cid).await.unwrap();
    client
        .upload(id, std::io::Cursor::new(b_raw), "evil.txt", plain_opts())
        .await
        .unwrap();
    let mut out = Vec::new();
    let err = client
        .download(id, &b.file.cid, &mut out)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unencrypted { .. }), "{err:?}");
    let c = client
        .upload(
            id,
            std::io::Cursor::new(b"not secret".to_vec()),
            &a.file.name,
            plain_opts(),
        )
        .await
        .unwrap();
    let err = client
        .download(id, &c.file.cid, &mut out)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unencrypted { .. }), "{err:?}");
    assert!(out.is_empty());
}

/// Every node call honours 429 + `Retry-After`, not only the sign-in: it waits as told and
/// sends the call again, at most [`px_sdk::node::RATE_LIMIT_RETRIES`] times; a node asking for
/// more than [`px_sdk::node::RATE_LIMIT_MAX_WAIT`] gets a typed [`Error::RateLimited`] at once
/// instead of a client hanging for it. Both against `px-node`'s own limiters: key assignments
/// per address (2 at once, then 1 a second: `Retry-After: 1`) and new keys node-wide (1, then
/// 1 a minute: `Retry-After: 60`).
#[tokio::test]
async fn rate_limited_node_calls_wait_as_told_then_give_up_with_a_typed_error() {
    let env = spawn_chain().await;
    let node = spawn_node_with(
        &env,
        &[
            "--address-burst",
            "2",
            "--address-rate-per-min",
            "60",
            "--key-gen-per-min",
            "1",
        ],
    )
    .await;
    let alice = env.node_client(FIRST_USER, &node).await;
    alice.login().await.unwrap();
    // The sign-in used one of alice's 2; the first assignment the other (and the minute's new
    // key); each next one meets a 429 and is retried after a second (alice's key is reused).
    let start = std::time::Instant::now();
    let first = alice.key_assignment().await.unwrap();
    for _ in 0..3 {
        let again = alice.key_assignment().await.unwrap();
        assert_eq!(again.ipns_id, first.ipns_id);
    }
    let took = start.elapsed();
    println!("4 key assignments at 1 a second after the burst: {took:?}");
    assert!(
        took >= Duration::from_secs(2),
        "the client waited: {took:?}"
    );

    // Bob needs a new key: the node-wide limit asks for a minute, more than the client
    // waits: a typed error, at once.
    let bob = env.node_client(FIRST_USER + 1, &node).await;
    bob.login().await.unwrap();
    let start = std::time::Instant::now();
    let e = bob.key_assignment().await.unwrap_err();
    let took = start.elapsed();
    match e {
        Error::RateLimited { retry_after, .. } => {
            assert!(
                retry_after > px_sdk::node::RATE_LIMIT_MAX_WAIT,
                "{retry_after:?}"
            );
        }
        other => panic!("expected RateLimited, got {other:?}"),
    }
    assert!(took < Duration::from_secs(10), "gave up at once: {took:?}");
}

/// A loopback TCP proxy in front of a node that, while `refuse_uploads` is set, answers
/// uploads itself with 429 (`Retry-After: 7`) after reading only their head, as a rate-limiting
/// reverse proxy would, and passes everything else through (one request per connection).
struct UploadRefusingProxy {
    url: String,
    refuse_uploads: std::sync::Arc<std::sync::atomic::AtomicBool>,
    refused: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl UploadRefusingProxy {
    async fn start(listener: tokio::net::TcpListener, upstream: String) -> Self {
        use std::sync::atomic::Ordering::Relaxed;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let url = format!("http://{}", listener.local_addr().unwrap());
        let refuse_uploads = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let refused = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (flag, count) = (refuse_uploads.clone(), refused.clone());
        let upstream = upstream.trim_start_matches("http://").to_string();
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                let (flag, count, upstream) = (flag.clone(), count.clone(), upstream.clone());
                tokio::spawn(async move {
                    let mut buf = [0u8; 8192];
                    let Some((head, end)) = px_cli::devnet::read_http_head(&mut client).await
                    else {
                        return;
                    };
                    let text = String::from_utf8_lossy(&head[..end]).to_string();
                    let upload = text.starts_with("POST /v1/tokens/")
                        && text.lines().next().is_some_and(|l| l.contains("/files?"));
                    if upload && flag.load(Relaxed) {
                        count.fetch_add(1, Relaxed);
                        let body = r#"{"error":"rate_limited","message":"too many uploads"}"#;
                        let answer = format!(
                            "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\n\
                             Content-Type: application/json\r\nContent-Length: {}\r\n\
                             Connection: close\r\n\r\n{body}",
                            body.len()
                        );
                        let _ = client.write_all(answer.as_bytes()).await;
                        // Read what the client still sends, so that closing does not reset
                        // the connection under the answer.
                        let _ = tokio::time::timeout(Duration::from_secs(5), async {
                            while matches!(client.read(&mut buf).await, Ok(n) if n > 0) {}
                        })
                        .await;
                        return;
                    }
                    let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await else {
                        return;
                    };
                    // One request per connection: the proxy only looks at a connection's first.
                    let line_end = text.find("\r\n").unwrap() + 2;
                    let mut first = Vec::new();
                    first.extend_from_slice(&head[..line_end]);
                    first.extend_from_slice(b"Connection: close\r\n");
                    first.extend_from_slice(&head[line_end..]);
                    if server.write_all(&first).await.is_err() {
                        return;
                    }
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                });
            }
        });
        Self {
            url,
            refuse_uploads,
            refused,
        }
    }
}

/// An upload whose body the HTTP client had started to send when the 429 came is not sent
/// again (its input is partly consumed): the typed error carries the `Retry-After`, and the
/// node stored nothing. The same upload goes through once the proxy lets it.
#[tokio::test]
async fn an_upload_refused_with_429_after_its_body_started_reports_retry_after() {
    let env = spawn_chain().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_url = format!("http://{}", listener.local_addr().unwrap());
    let node = spawn_node_with(&env, &["--public-url", &proxy_url]).await;
    let proxy = UploadRefusingProxy::start(listener, node.url.clone()).await;
    let client = Client::new(env.config(FIRST_USER).with_node(proxy.url.clone()))
        .await
        .unwrap();
    let id = client.mint_via_node(1, Payment::Auto).await.unwrap();
    let plain = data(300_000, 9);
    let start = std::time::Instant::now();
    let e = client
        .upload(
            id,
            std::io::Cursor::new(plain.clone()),
            "limited.bin",
            UploadOptions::default(),
        )
        .await
        .unwrap_err();
    match e {
        Error::RateLimited { retry_after, .. } => {
            assert_eq!(retry_after, Duration::from_secs(7));
        }
        other => panic!("expected RateLimited, got {other:?}"),
    }
    assert!(start.elapsed() < Duration::from_secs(7), "not waited for");
    let refused = proxy.refused.load(std::sync::atomic::Ordering::Relaxed);
    assert!(refused >= 1);
    assert_eq!(client.usage(id).await.unwrap().file_count, 0);

    proxy
        .refuse_uploads
        .store(false, std::sync::atomic::Ordering::Relaxed);
    let r = client
        .upload(
            id,
            std::io::Cursor::new(plain),
            "limited.bin",
            UploadOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(r.usage.file_count, 1);
}
