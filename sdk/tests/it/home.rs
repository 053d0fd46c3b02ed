//! The provider network through the SDK's high-level calls against real processes: a devnet,
//! a home node (the registrar) and six `px-node --role provider` nodes, registered, staked,
//! certified and listing their real URLs. The holder funds the escrow and names the home node
//! with the SDK, uploads through `Client::upload_to_network` (placement, pieces, commit) and
//! reads the file back through `Client::download_from_network` (manifest from the home node,
//! endpoints from the registry), also with two providers stopped.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use alloy::primitives::{Address, U256};
use px_cli::devnet::FIRST_USER;
use px_core::erasure::Redundancy;
use px_sdk::{
    NetworkDownloadOptions, NetworkError, NetworkUploadOptions, Payment,
    contracts::StorageMarket,
    network::{PieceEvent, PieceStage},
};

use crate::common::{NodeProc, spawn_chain_with_accounts, spawn_node, spawn_provider};

/// Provider accounts.
const PROVIDERS: std::ops::Range<usize> = 10..16;
/// Listing price: 1 PX per GiB-month.
const PRICE: u128 = 1_000_000_000_000_000_000;

fn px(n: u64) -> U256 {
    U256::from(n) * U256::from(10u64).pow(U256::from(18))
}

/// Counts each stage of each piece transfer.
#[derive(Default)]
struct Seen {
    events: Mutex<Vec<PieceEvent>>,
}

impl Seen {
    fn count(&self, f: impl Fn(&PieceEvent) -> bool) -> usize {
        self.events.lock().unwrap().iter().filter(|e| f(e)).count()
    }
}

/// Uploads 8 MiB at 4/6 through the home node with the SDK's network upload, downloads it
/// back equal, stops two providers and downloads it equal again (their pieces reported as
/// faults). Along the way: funding the escrow, the placement refused before the token names
/// its home node, the registry listing with endpoints, the per-piece observer, the token's
/// network status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_stores_a_file_at_4_of_6_and_reads_it_with_two_providers_down() {
    let env = spawn_chain_with_accounts(20).await;
    let d = &env.devnet;
    let home = spawn_node(&env).await;
    let mut nodes: HashMap<Address, NodeProc> = HashMap::new();
    for a in PROVIDERS {
        nodes.insert(d.address(a), spawn_provider(&env, a, PRICE).await);
    }
    let client = env.node_client(FIRST_USER, &home).await;
    let token = client.mint_via_node(1, Payment::Auto).await.unwrap();
    let info = client.network_info().await.unwrap();
    assert_eq!(info.redundancy, Redundancy::new(4, 6).unwrap());
    assert_eq!(Some(info.market), d.deployment.storage_market);

    let plain = px_cli::devnet::sample_bytes(8 << 20, 17);
    let path = env.dir.path().join("eight.bin");
    std::fs::write(&path, &plain).unwrap();
    let at_4_6 = || NetworkUploadOptions {
        redundancy: Some(Redundancy::new(4, 6).unwrap()),
        check_gate: true,
        ..Default::default()
    };

    // Escrow funded through the SDK (approve + fund; the client's
    // transactions first, as it keeps its account's nonce).
    env.fund_px(d.address(FIRST_USER), px(50)).await;
    let escrow = client.fund_escrow(token, px(25)).await.unwrap();
    assert_eq!(escrow, px(25));
    assert_eq!(client.escrow(token).await.unwrap(), px(25));

    // Before the holder names the home node, the node refuses to place, with the next step.
    let r = client
        .upload_file_to_network(token, &path, "eight.bin", at_4_6())
        .await;
    assert!(
        matches!(&r, Err(NetworkError::NotHomeNode { token_id, .. }) if *token_id == token),
        "{r:?}"
    );
    assert_eq!(client.use_as_home_node(token).await.unwrap(), info.home);
    let market = StorageMarket::new(d.deployment.storage_market.unwrap(), d.provider(FIRST_USER));
    assert_eq!(
        market.homeNodeOf(U256::from(token)).call().await.unwrap(),
        info.home
    );
    // Named already: no second transaction.
    assert_eq!(client.use_as_home_node(token).await.unwrap(), info.home);

    // The registry as `px providers` shows it: six certified providers at their URLs.
    let listed = client.providers().await.unwrap();
    assert_eq!(listed.len(), 6, "{listed:?}");
    for p in &listed {
        assert_eq!(p.endpoint, nodes[&p.address].url);
        assert!(p.certified && p.active, "{p:?}");
        assert_eq!(p.price_per_gib_month, PRICE.to_string());
        assert_eq!((p.proofs, p.missed), (0, 0));
    }

    let seen = Arc::new(Seen::default());
    let observer = {
        let seen = seen.clone();
        Arc::new(move |e: &PieceEvent| seen.events.lock().unwrap().push(*e))
    };
    let stored = client
        .upload_file_to_network(
            token,
            &path,
            "eight.bin",
            NetworkUploadOptions {
                observer: Some(observer.clone()),
                ..at_4_6()
            },
        )
        .await
        .unwrap();
    let m = &stored.manifest;
    assert_eq!(m.redundancy, Redundancy::new(4, 6).unwrap());
    assert_eq!(m.size, px_sdk::network::cipher_len(plain.len() as u64));
    assert_eq!(stored.upload.file.redundancy, Some(m.redundancy));
    assert_eq!(stored.upload.file.size, m.size);
    assert_eq!(stored.upload.plain_size, plain.len() as u64);
    let pieces: usize = m.segments.iter().map(|s| s.pieces.len()).sum();
    assert_eq!(pieces, 6 * m.segments.len());
    assert_eq!(
        seen.count(|e| e.stage == PieceStage::Done),
        pieces,
        "one stored event per piece"
    );
    let piece_size = m.segments[0].pieces[0].size;
    assert!(
        seen.count(|e| e.stage == PieceStage::Progress { bytes: piece_size }) >= pieces,
        "every piece's bytes reported up to its size"
    );

    // Listed with its redundancy and name; read back equal from the providers.
    let files = client.list(token).await.unwrap();
    let file = files
        .iter()
        .find(|f| f.entry.id == stored.upload.file.id)
        .unwrap()
        .clone();
    assert_eq!(file.name, "eight.bin");
    assert!(file.encrypted);
    let mut out = Vec::new();
    let got = client
        .download_from_network(token, &file, &mut out, NetworkDownloadOptions::default())
        .await
        .unwrap();
    assert!(out == plain, "plaintext differs");
    assert_eq!(got.written, plain.len() as u64);
    assert!(got.faults.is_empty(), "{:?}", got.faults);

    // The token's network status from the home node lists the file, healthy.
    let status = client.token_network(token).await.unwrap();
    assert!(status.home);
    let health = status
        .files
        .iter()
        .find(|f| f.id == file.entry.id)
        .expect("the file's health");
    assert_eq!(health.healthy.len(), m.segments.len());

    // Two providers holding pieces stopped: still readable, both reported.
    let down: Vec<Address> = m.segments[0].pieces[..2]
        .iter()
        .map(|p| p.provider)
        .collect();
    for a in &down {
        nodes.remove(a);
    }
    let seen = Arc::new(Seen::default());
    let observer = {
        let seen = seen.clone();
        Arc::new(move |e: &PieceEvent| seen.events.lock().unwrap().push(*e))
    };
    let mut out = Vec::new();
    let got = client
        .download_from_network(
            token,
            &file,
            &mut out,
            NetworkDownloadOptions {
                observer: Some(observer),
            },
        )
        .await
        .unwrap();
    assert!(out == plain, "plaintext differs with two providers down");
    let mut faulty: Vec<Address> = got.faults.iter().map(|f| f.provider).collect();
    faulty.sort();
    faulty.dedup();
    let mut want = down.clone();
    want.sort();
    // No repair can move them: every provider already holds a piece of the segment.
    assert_eq!(faulty, want, "{:?}", got.faults);
    assert_eq!(
        seen.count(|e| e.stage == PieceStage::Done),
        4 * got.manifest.segments.len(),
        "k good pieces per segment"
    );
    assert_eq!(
        seen.count(|e| e.stage == PieceStage::Failed),
        got.faults.len()
    );

    // A third one stopped: fewer than k pieces, a clean error and nothing released.
    let third = m.segments[0].pieces[2].provider;
    nodes.remove(&third);
    let mut out = Vec::new();
    let r = client
        .download_from_network(token, &file, &mut out, NetworkDownloadOptions::default())
        .await;
    assert!(
        matches!(
            &r,
            Err(NetworkError::NotEnoughPieces {
                have: 3,
                need: 4,
                ..
            })
        ),
        "{r:?}"
    );
    assert!(out.is_empty(), "no plaintext released");
}
