//! The provider network against real provider nodes: eight `px-node --role provider`
//! processes, registered and staked on the devnet, take a file's pieces at 4/6 under orders
//! signed by the token's home node (the registrar), and give them back.

use px_cli::devnet::send_ok;
use std::{collections::HashMap, io::Cursor, time::Duration};

use alloy::{
    primitives::{Address, B256, U256, aliases::U96},
    signers::local::PrivateKeySigner,
    sol_types::Eip712Domain,
};
use px_cli::devnet::{ADMIN, Devnet, DevnetConfig, FIRST_USER, REGISTRAR};
use px_core::{
    erasure::{self, Redundancy},
    network::{self as protocol, PieceReceipt, SignedOrder, UploadOrder},
};
use px_sdk::{
    Payment,
    contracts::{PXToken, ProviderRegistry, StorageMarket},
    crypto::{self, Encryptor, OwnerKey},
    network::{
        Downloader, EncodeOptions, NetworkError, PieceFault, ProviderEndpoint, Target, Uploader,
        transfer::{AttemptError, FaultKind, ORDER_HEADER},
    },
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::{Env, NodeProc, spawn_node, spawn_node_with};

/// Provider accounts: 6 primaries and 2 spares.
const PROVIDERS: std::ops::Range<usize> = 10..18;
const SEGMENT: usize = 1 << 20;

fn ether(n: u64) -> U256 {
    U256::from(n) * U256::from(10u64).pow(U256::from(18))
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Registers and stakes `account` as a provider, then starts its node.
async fn provider(env: &Env, account: usize) -> NodeProc {
    let d = &env.devnet;
    let registry = d.deployment.provider_registry.unwrap();
    let admin = PXToken::new(d.deployment.px_token, d.provider(ADMIN));
    send_ok(admin.mint(d.address(account), ether(1000))).await;
    let px = PXToken::new(d.deployment.px_token, d.provider(account));
    send_ok(px.approve(registry, U256::MAX)).await;
    let reg = ProviderRegistry::new(registry, d.provider(account));
    send_ok(reg.registerProvider(
        "http://provider.test".into(),
        1,
        10 << 30,
        1_000_000_000_000_000_000,
        U96::from(100u64) * U96::from(10u64).pow(U96::from(18)),
    ))
    .await;
    let key = alloy::hex::encode(d.signer(account).to_bytes());
    spawn_node_with(env, &["--role", "provider", "--provider-key", &key]).await
}

/// What a loopback proxy in front of a provider does to each request (one per connection).
#[derive(Clone)]
enum Mode {
    /// Passes an upload through and answers the provider's receipt re-signed by this key.
    ForgeSigner(Box<(PrivateKeySigner, Eip712Domain)>),
    /// Passes an upload through and answers another root than the provider's.
    WrongRoot,
    /// Waits, then passes the request through.
    Delay(Duration),
    /// Answers the provider's answer with its last byte flipped.
    Flip,
    /// Answers garbage of the provider's answer's length.
    Garbage,
}

/// A proxy in front of the provider at `upstream`; answers its URL.
async fn proxy(upstream: &str, mode: Mode) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let upstream = upstream.to_string();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let (upstream, mode) = (upstream.clone(), mode.clone());
            tokio::spawn(async move {
                let mut buf = [0u8; 8192];
                let Some((head, end)) = px_cli::devnet::read_http_head(&mut client).await else {
                    return;
                };
                let text = String::from_utf8_lossy(&head[..end]).to_string();
                match mode {
                    Mode::ForgeSigner(..) | Mode::WrongRoot => {
                        let header = |name: &str| {
                            text.lines()
                                .find_map(|l| {
                                    let (k, v) = l.split_once(':')?;
                                    k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
                                })
                                .unwrap()
                        };
                        let len: usize = header("content-length").parse().unwrap();
                        let mut body = head[end..].to_vec();
                        while body.len() < len {
                            let Ok(n) = client.read(&mut buf).await else {
                                return;
                            };
                            if n == 0 {
                                return;
                            }
                            body.extend_from_slice(&buf[..n]);
                        }
                        let r = reqwest::Client::new()
                            .post(format!("{upstream}/v1/pieces"))
                            .header(ORDER_HEADER, header(ORDER_HEADER))
                            .body(body)
                            .send()
                            .await
                            .unwrap();
                        let status = r.status().as_u16();
                        let mut answer: serde_json::Value = r.json().await.unwrap();
                        if status == 201 {
                            match &mode {
                                Mode::ForgeSigner(forger) => {
                                    let (key, domain) = &**forger;
                                    let receipt = PieceReceipt {
                                        order_hash: answer["orderHash"]
                                            .as_str()
                                            .unwrap()
                                            .parse()
                                            .unwrap(),
                                        cid: answer["cid"].as_str().unwrap().parse().unwrap(),
                                        root: answer["root"].as_str().unwrap().parse().unwrap(),
                                        depth: answer["depth"].as_u64().unwrap() as u8,
                                        size: answer["size"].as_u64().unwrap(),
                                    };
                                    let sig = receipt.sign(key, domain).unwrap();
                                    answer["receipt"] =
                                        alloy::hex::encode_prefixed(sig.as_bytes()).into();
                                }
                                _ => answer["root"] = B256::repeat_byte(7).to_string().into(),
                            }
                        }
                        let body = serde_json::to_vec(&answer).unwrap();
                        let head = format!(
                            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n\
                             Content-Length: {}\r\nConnection: close\r\n\r\n",
                            body.len()
                        );
                        let _ = client.write_all(head.as_bytes()).await;
                        let _ = client.write_all(&body).await;
                    }
                    Mode::Delay(d) => {
                        tokio::time::sleep(d).await;
                        let host = upstream.trim_start_matches("http://");
                        let Ok(mut server) = tokio::net::TcpStream::connect(host).await else {
                            return;
                        };
                        let line_end = text.find("\r\n").unwrap() + 2;
                        let mut first = head[..line_end].to_vec();
                        first.extend_from_slice(b"Connection: close\r\n");
                        first.extend_from_slice(&head[line_end..]);
                        if server.write_all(&first).await.is_ok() {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                        }
                    }
                    Mode::Flip | Mode::Garbage => {
                        let path = text.split_whitespace().nth(1).unwrap().to_string();
                        let r = reqwest::get(format!("{upstream}{path}")).await.unwrap();
                        let status = r.status().as_u16();
                        let mut body = r.bytes().await.unwrap().to_vec();
                        match mode {
                            Mode::Flip => {
                                if let Some(b) = body.last_mut() {
                                    *b ^= 1;
                                }
                            }
                            _ => body = px_cli::devnet::sample_bytes(body.len(), 99),
                        }
                        let head = format!(
                            "HTTP/1.1 {status} X\r\nContent-Type: application/octet-stream\r\n\
                             Content-Length: {}\r\nConnection: close\r\n\r\n",
                            body.len()
                        );
                        let _ = client.write_all(head.as_bytes()).await;
                        let _ = client.write_all(&body).await;
                    }
                }
            });
        }
    });
    url
}

/// A URL nothing listens on.
async fn dead_url() -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    format!("http://{}", l.local_addr().unwrap())
}

fn order(
    env: &Env,
    token: u64,
    file: B256,
    segment: u32,
    piece: u16,
    account: usize,
    size: u64,
) -> SignedOrder {
    let d = &env.devnet;
    UploadOrder {
        token_id: token,
        file,
        segment,
        piece,
        provider: d.address(account),
        max_size: size,
        expiry: now() + 3600,
    }
    .sign(&d.signer(REGISTRAR), &domain(env))
    .unwrap()
}

fn domain(env: &Env) -> alloy::sol_types::Eip712Domain {
    let d = &env.devnet.deployment;
    protocol::domain(d.chain_id, d.storage_market.unwrap())
}

/// A devnet with a token whose home node (`StorageMarket.homeNodeOf`) is the registrar, which
/// signs the orders, and the provider nodes of [`PROVIDERS`], registered and staked.
struct Net {
    env: Env,
    _home: NodeProc,
    nodes: HashMap<usize, NodeProc>,
    token: u64,
}

impl Net {
    async fn start() -> Net {
        let devnet = Devnet::spawn(DevnetConfig {
            accounts: Some(20),
            ..Default::default()
        })
        .await
        .expect("devnet: run `make bootstrap` first");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("deployment.json"),
            serde_json::to_vec_pretty(&devnet.deployment).unwrap(),
        )
        .unwrap();
        let env = Env { devnet, dir };
        let d = &env.devnet;
        let home = spawn_node(&env).await;
        let client = env.node_client(FIRST_USER, &home).await;
        let token = client.mint_via_node(1, Payment::Auto).await.unwrap();
        let market =
            StorageMarket::new(d.deployment.storage_market.unwrap(), d.provider(FIRST_USER));
        send_ok(market.setHomeNode(U256::from(token), d.address(REGISTRAR))).await;
        let mut nodes = HashMap::new();
        for a in PROVIDERS {
            nodes.insert(a, provider(&env, a).await);
        }
        Net {
            env,
            _home: home,
            nodes,
            token,
        }
    }
}

/// Uploads a file at 4/6 to six providers while one primary is unreachable (a spare takes its
/// piece) and one is slow (the long tail: a spare takes its piece, the slow upload is
/// cancelled); checks the manifest and its signatures. Then downloads it with a provider
/// answering a flipped byte and one answering garbage (both reported, the file still right),
/// with a slow provider cancelled once k pieces are in, with two providers stopped, and fails
/// cleanly with three stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_at_4_of_6_survives_two_providers_down_and_wrong_pieces_are_reported() {
    let Net {
        env,
        _home,
        mut nodes,
        token,
    } = Net::start().await;
    let d = &env.devnet;
    let url = |a: usize| nodes[&a].url.clone();
    let p = |i: usize| PROVIDERS.start + i;
    let addr = |i: usize| d.address(p(i));

    // 3 MiB and a bit in 1 MiB segments: 4 segments of 256 KiB pieces.
    let plain = px_cli::devnet::sample_bytes(3 * SEGMENT + 777, 1);
    let sha = crypto::sha256(&plain);
    let owner = OwnerKey::from_bytes([5; 32]);
    let r = Redundancy::DEFAULT;
    let cipher_len = crypto::encrypted_len(plain.len() as u64, crypto::DEFAULT_SEGMENT_SIZE);
    let lengths = erasure::segment_lengths(cipher_len, SEGMENT).unwrap();
    assert_eq!(lengths.len(), 4);
    let file = B256::repeat_byte(0x5a);
    // Primary 2 is unreachable, primary 5 answers after 5 s; 6 and 7 are spares.
    let dead = dead_url().await;
    let slow = proxy(&url(p(5)), Mode::Delay(Duration::from_secs(5))).await;
    let placements: Vec<Vec<Target>> = lengths
        .iter()
        .enumerate()
        .map(|(s, &len)| {
            let size = r.piece_size(len as usize) as u64;
            let target = |piece: usize, i: usize, url: String| Target {
                provider: ProviderEndpoint {
                    address: addr(i),
                    url,
                },
                order: order(&env, token, file, s as u32, piece as u16, p(i), size),
            };
            let mut t: Vec<Target> = (0..6)
                .map(|i| {
                    let u = match i {
                        2 => dead.clone(),
                        5 => slow.clone(),
                        _ => url(p(i)),
                    };
                    target(i, i, u)
                })
                .collect();
            for spare in [6, 7] {
                t.extend((0..6).map(|piece| target(piece, spare, url(p(spare)))));
            }
            t
        })
        .collect();

    let uploader = Uploader::new(reqwest::Client::new(), domain(&env));
    let enc = Encryptor::with_segment_size(&owner, crypto::DEFAULT_SEGMENT_SIZE, sha).unwrap();
    let file_id = enc.file_id();
    let opts = EncodeOptions {
        redundancy: r,
        segment_size: SEGMENT,
        parallel: true,
    };
    let started = std::time::Instant::now();
    let (manifest, reports) = uploader
        .upload_file(enc, Cursor::new(plain.clone()), opts, token, &placements)
        .await
        .unwrap();
    // The slow primary was not waited for in any segment.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(manifest.size, cipher_len);
    assert_eq!(manifest.segments.len(), 4);
    assert_eq!(
        manifest.verify_signatures(&domain(&env)).unwrap(),
        vec![d.address(REGISTRAR)],
        "receipts signed by each piece's provider, orders by the home node"
    );
    protocol::Manifest::parse(&manifest.to_json(), protocol::MAX_MANIFEST_BYTES).unwrap();
    for (seg, report) in manifest.segments.iter().zip(&reports) {
        let holders: Vec<Address> = seg.pieces.iter().map(|p| p.provider).collect();
        assert_eq!(
            holders,
            vec![addr(0), addr(1), addr(6), addr(3), addr(4), addr(7)],
            "piece 2 on the first spare, piece 5 on the second"
        );
        assert!(
            report.failures.iter().any(|f| f.piece == 2
                && f.provider == addr(2)
                && matches!(f.error, AttemptError::Transport(_))),
            "{:?}",
            report.failures
        );
        assert_eq!(report.failures.len(), 1, "{:?}", report.failures);
        assert!(
            report.cancelled.contains(&(5, addr(5))),
            "{:?}",
            report.cancelled
        );
    }
    // A provider serves what it signed for.
    let first = &manifest.segments[0].pieces[0];
    let bytes = reqwest::get(format!("{}/v1/pieces/{}", url(p(0)), first.cid))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    px_sdk::network::check_piece(first, &bytes).unwrap();

    let downloader = Downloader::new(reqwest::Client::new());
    let real: HashMap<Address, String> = PROVIDERS.map(|a| (d.address(a), url(a))).collect();

    // All up, provider 7 slow: decoded from the first four, the slow one cancelled.
    let mut endpoints = real.clone();
    endpoints.insert(
        addr(7),
        proxy(&url(p(7)), Mode::Delay(Duration::from_secs(3))).await,
    );
    let mut out = Vec::new();
    let t = std::time::Instant::now();
    let report = downloader
        .download(&manifest, &endpoints, &owner, Some(file_id), &mut out)
        .await
        .unwrap();
    assert!(out == plain, "plaintext differs");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert!(report.faults.is_empty(), "{:?}", report.faults);
    assert_eq!(
        report.cancelled,
        2 * 4,
        "one spare piece and the slow one per segment"
    );
    assert_eq!(report.opened.sha256, sha);

    // Provider 0 flips a byte, provider 1 answers garbage; 7 answers late so that both are
    // seen: both offline for the read and reported once, the file still right.
    let mut endpoints = real.clone();
    endpoints.insert(addr(0), proxy(&url(p(0)), Mode::Flip).await);
    endpoints.insert(addr(1), proxy(&url(p(1)), Mode::Garbage).await);
    endpoints.insert(
        addr(7),
        proxy(&url(p(7)), Mode::Delay(Duration::from_millis(500))).await,
    );
    let mut out = Vec::new();
    let report = downloader
        .download(&manifest, &endpoints, &owner, Some(file_id), &mut out)
        .await
        .unwrap();
    assert!(out == plain, "plaintext differs");
    let mut bad: Vec<(u32, Address)> = report
        .faults
        .iter()
        .map(|f| (f.segment, f.provider))
        .collect();
    bad.sort();
    let mut want = vec![(0, addr(0)), (0, addr(1))];
    want.sort();
    assert_eq!(bad, want, "{:?}", report.faults);
    for f in &report.faults {
        assert!(
            matches!(f.kind, FaultKind::BadPiece(PieceFault::Cid { .. })),
            "{:?}",
            f.kind
        );
    }

    // Two providers stopped (holders of pieces 0 and 2): still readable, both reported.
    nodes.remove(&p(0));
    nodes.remove(&p(6));
    let mut endpoints = real.clone();
    endpoints.insert(
        addr(7),
        proxy(&real[&addr(7)], Mode::Delay(Duration::from_millis(500))).await,
    );
    let mut out = Vec::new();
    let report = downloader
        .download(&manifest, &endpoints, &owner, Some(file_id), &mut out)
        .await
        .unwrap();
    assert!(out == plain, "plaintext differs");
    let mut down: Vec<Address> = report.faults.iter().map(|f| f.provider).collect();
    down.sort();
    let mut want = vec![addr(0), addr(6)];
    want.sort();
    assert_eq!(down, want, "{:?}", report.faults);

    // A third one stopped: three pieces left, the download fails with what happened.
    nodes.remove(&p(1));
    let mut out = Vec::new();
    let r = downloader
        .download(&manifest, &real, &owner, Some(file_id), &mut out)
        .await;
    assert!(
        matches!(
            &r,
            Err(NetworkError::NotEnoughPieces { segment: 0, have: 3, need: 4, faults }) if faults.len() == 3
        ),
        "{r:?}"
    );
    assert!(out.is_empty(), "no plaintext released");
}

/// A receipt signed by another key than the provider's, or naming another root than the
/// piece's, is refused and the piece goes to a spare; with no spare left the upload fails with
/// each provider's failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_not_signed_by_the_provider_or_not_matching_the_piece_are_refused() {
    let Net {
        env,
        _home,
        nodes,
        token,
    } = Net::start().await;
    let d = &env.devnet;
    let url = |a: usize| nodes[&a].url.clone();
    let p = |i: usize| PROVIDERS.start + i;
    let addr = |i: usize| d.address(p(i));
    let plain = px_cli::devnet::sample_bytes(100_000, 3);
    let owner = OwnerKey::from_bytes([6; 32]);
    let r = Redundancy::DEFAULT;
    let cipher_len = crypto::encrypted_len(plain.len() as u64, crypto::DEFAULT_SEGMENT_SIZE);
    let size = r.piece_size(cipher_len as usize) as u64;
    let forged = proxy(
        &url(p(1)),
        Mode::ForgeSigner(Box::new((d.signer(FIRST_USER), domain(&env)))),
    )
    .await;
    let wrong_root = proxy(&url(p(3)), Mode::WrongRoot).await;
    let placement = |file: B256, spares: &[usize], dead: Option<usize>| -> Vec<Vec<Target>> {
        let target = |piece: usize, i: usize, url: String| Target {
            provider: ProviderEndpoint {
                address: addr(i),
                url,
            },
            order: order(&env, token, file, 0, piece as u16, p(i), size),
        };
        let mut t: Vec<Target> = (0..6)
            .map(|i| {
                let u = match i {
                    1 => forged.clone(),
                    3 => wrong_root.clone(),
                    _ if Some(i) == dead => "http://127.0.0.1:9".to_string(),
                    _ => url(p(i)),
                };
                target(i, i, u)
            })
            .collect();
        for &spare in spares {
            t.extend((0..6).map(|piece| target(piece, spare, url(p(spare)))));
        }
        vec![t]
    };
    let opts = EncodeOptions {
        redundancy: r,
        segment_size: SEGMENT,
        parallel: true,
    };
    let uploader = Uploader::new(reqwest::Client::new(), domain(&env));
    let enc = |plain: &[u8]| {
        Encryptor::with_segment_size(&owner, crypto::DEFAULT_SEGMENT_SIZE, crypto::sha256(plain))
            .unwrap()
    };

    let (manifest, reports) = uploader
        .upload_file(
            enc(&plain),
            Cursor::new(plain.clone()),
            opts,
            token,
            &placement(B256::repeat_byte(1), &[6, 7], None),
        )
        .await
        .unwrap();
    let holders: Vec<Address> = manifest.segments[0]
        .pieces
        .iter()
        .map(|p| p.provider)
        .collect();
    // Pieces 1 and 3 went to the spares (in the order their refusals came in).
    assert!(
        holders == vec![addr(0), addr(6), addr(2), addr(7), addr(4), addr(5)]
            || holders == vec![addr(0), addr(7), addr(2), addr(6), addr(4), addr(5)],
        "{holders:?}"
    );
    manifest.verify_signatures(&domain(&env)).unwrap();
    let failures = &reports[0].failures;
    assert_eq!(failures.len(), 2, "{failures:?}");
    assert!(failures.iter().any(|f| f.piece == 1
        && matches!(
            f.error,
            AttemptError::Receipt(PieceFault::ReceiptSigner { signer, provider })
                if signer == d.address(FIRST_USER) && provider == addr(1)
        )));
    assert!(
        failures
            .iter()
            .any(|f| f.piece == 3
                && matches!(f.error, AttemptError::Receipt(PieceFault::Receipt(_))))
    );

    // No spare: the piece whose provider is unreachable is not stored, and that is an error.
    let r = uploader
        .upload_file(
            enc(&plain),
            Cursor::new(plain.clone()),
            opts,
            token,
            &placement(B256::repeat_byte(2), &[], Some(2)),
        )
        .await;
    assert!(
        matches!(&r, Err(NetworkError::PieceNotStored { segment: 0, piece, failures })
            if (*piece == 1 || *piece == 2 || *piece == 3) && failures.len() == 1),
        "{r:?}"
    );
}
