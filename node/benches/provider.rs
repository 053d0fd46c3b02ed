//! Provider-network benchmarks against a real devnet and real px-node nodes (in this process,
//! each with its embedded store), as `node/tests/it/provider.rs` sets them up: the token's
//! home node is the registrar, which signs the upload orders and deal acceptances itself (the
//! home role's placement endpoint is not used).
//!
//! 1. **Prover** (`prover`): one provider stores a piece set through `POST /v1/pieces` (the
//!    real path: order check, store, Merkle root and cached [`TopLevels`](px_core::piece::TopLevels)
//!    levels), a deal over it is opened, a period passes and the node's own prover loop
//!    answers the period's challenges. Reported: the time to store the pieces, the proof's
//!    build time as the prover records it (`ProofState::Proven.build_us`: reading the
//!    challenged blocks back from the store, checking them against the cached levels, the
//!    paths), the gas `proveStorage` used (its receipt), this process's CPU seconds from the
//!    challenge block to the settled proof (an upper bound of the prover's: the home node's
//!    and the provider's polls run too), and its RSS before the pieces, after them, and at
//!    peak. Default 16 pieces of 64 MiB (1 GiB); `PX_BENCH_PIECES`, `PX_BENCH_PIECE_MIB`.
//! 2. **Network** (`network`): one file (default 1 GiB, `PX_BENCH_MIB`) uploaded at 4/6 in
//!    64 MiB segments to 6 provider nodes with `px_sdk::network::Uploader` (pipeline and
//!    transfers as the SDK runs them) and downloaded with `Downloader` with 2 of the 6
//!    stopped, against a single-node upload and download of the same file through the home
//!    node (`Client::upload_file` / `Client::download`), in the same run. Both read the
//!    plaintext from the same temporary file (hashed first, as each path does).
//!
//! 3. **Repair** (`repair`): one file (default 4 GiB, `PX_BENCH_REPAIR_MIB`; at 4/6 in 64 MiB
//!    segments each of the 6 providers holds one 16 MiB piece per segment, 1 GiB) placed
//!    through the home node's real routes (`Client::upload_file_to_network`: `POST
//!    /v1/tokens/{id}/placements`, the pieces with `Uploader`, `POST /v1/tokens/{id}/manifests`)
//!    with 6 listed, certified providers; then a 7th starts, one original provider stops
//!    (`NodeHandle::shutdown`), and the bench times until the home node's `GET
//!    /v1/tokens/{id}/network` shows every segment with 6 healthy pieces again and as many
//!    pieces repaired as the stopped one held (home `poll_ms` 200, `offline_after` 2).
//!    Reported: the time, MiB/s of repaired piece data, this process's CPU seconds and RSS
//!    (the home node runs in this process with the providers: the process is measured).
//!
//! Run: `cargo bench -p px-node --bench provider` (`PX_BENCH_SKIP` is a comma-separated list
//! of parts to leave out, e.g. `prover,network`; `PX_BENCH_DIR` is where the temporary
//! directory goes). Without `--bench` (what `cargo test --all-targets` does) it runs a smoke
//! pass: 2 pieces of 1 MiB proven, a 4 MiB file in 1 MiB segments for the network and the
//! repair parts.

//!
//! Recorded 2026-11-30 on the project's 2-core VM (other builds running, load average about
//! 4), `cargo bench -p px-node --bench provider`, one run:
//!
//! - Prover, 16 pieces of 64 MiB (1 GiB), 4 challenges a period: storing the pieces 3.85 s
//!   (266 MiB/s: root, CID, store); **proof built in 13.6 ms** (3.4 ms per challenge: one
//!   256 KiB block reread and rehashed each); **`proveStorage` 174,550 gas** (receipt:
//!   intrinsic and calldata included; piece depth 21, deal depth 4); process CPU from the
//!   challenge block to the settled proof 0.01 s; RSS 19 MiB before the provider, 30 MiB
//!   after storing 1 GiB, 31 MiB after proving (peak 106 MiB: the 64 MiB piece bodies in
//!   flight); 8,206 bytes of cached levels per 64 MiB piece on disk.
//! - Network, 1 GiB at 4/6 in 64 MiB segments (`PX_BENCH_SKIP=prover`, a second run after
//!   `SegmentDecoder` fed the decryptor in 64 KiB parts: before, it copied each 64 MiB
//!   segment over itself 256 times, and the download took 16.23 s, 18.4 CPU s/GiB):
//!
//!   | step | s | MiB/s | CPU s/GiB |
//!   |---|---:|---:|---:|
//!   | upload, single node | 4.10 | 250 | 4.8 |
//!   | upload, 6 providers | 11.33 | 90 | 14.7 |
//!   | download, single node | 5.38 | 190 | 6.1 |
//!   | download, 4 of 6 providers (2 stopped) | 9.25 | 111 | 9.3 |
//!
//!   Upload to 6 providers 0.36 x the single node's throughput, download with 2 stopped
//!   0.58 x (0.45 x and 0.35 x in the first run): on one 2-core machine every node's work
//!   (each provider hashes and stores its pieces; the client encodes, checks and decodes)
//!   shares the same two cores, so the ratio is that of CPU seconds per GiB rather than of
//!   network time.
//! - Repair, 4 GiB at 4/6 in 64 MiB segments (65 segments; the stopped provider held 65
//!   pieces, 1,024 MiB), `PX_BENCH_SKIP=prover,network PX_BENCH_REPAIR_MIB=4096 cargo test -p
//!   px-node --bench provider --locked -- --bench` (the dev profile, optimized): placement and
//!   upload 200.9 s; **6 healthy pieces per segment again 161.5 s after the stop (6.3 MiB/s
//!   of repaired piece data)**, 65 pieces repaired; process CPU 243.9 s during the repair (home
//!   node, the 6 running providers and the client in one process); RSS 451 MiB after, peak
//!   771 MiB (681 MiB before the stop).

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use alloy::{
    primitives::{Address, B256, Bytes, U256, aliases::U96},
    providers::Provider as _,
    signers::{SignerSync, local::PrivateKeySigner},
    sol_types::Eip712Domain,
};
use px_cli::devnet::{ADMIN, Devnet, DevnetConfig, FIRST_USER, REGISTRAR, send_ok};
use px_core::{
    api::TokenNetwork,
    contracts::{IStorageMarket, PXToken, ProviderRegistry, StorageMarket},
    erasure::{self, Redundancy},
    network::{self, SignedOrder, UploadOrder},
    piece,
};
use px_node::{
    NodeConfig, NodeHandle,
    provider::{
        AcceptanceRequest, CoSignature, ORDER_HEADER, PieceAccepted, ProviderConfig,
        store::ProofState,
    },
};
use px_sdk::{
    Client, ClientConfig, Payment, UploadOptions,
    crypto::{self, Encryptor, OwnerKey},
    network::NetworkUploadOptions,
    network::{Downloader, EncodeOptions, ProviderEndpoint, Target, Uploader, sha256_of},
};

const MIB: usize = 1 << 20;
/// The listing price (wei of PXToken per GiB-month).
const PRICE: u128 = 1_000_000_000_000_000_000;
/// Provider accounts: the prover's, then the network's six.
const PROVER: usize = 10;
const NETWORK: std::ops::Range<usize> = 11..17;
/// Provider accounts of the repair part: six for the placement, then the seventh.
const REPAIR: std::ops::Range<usize> = 20..27;

fn ether(n: u64) -> U256 {
    U256::from(n) * U256::from(10u64).pow(U256::from(18))
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// This process's CPU seconds (user + system) from `/proc/self/stat` (USER_HZ = 100).
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = after
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // Fields 14 and 15 of the line (utime, stime) are 11 and 12 after the command name.
    f.get(11)
        .zip(f.get(12))
        .map_or(0.0, |(u, s)| (u + s) as f64 / 100.0)
}

/// `VmRSS` and `VmHWM` of this process, MiB.
fn rss_mib() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// `len` bytes, different for each `seed`.
fn data(seed: u64, len: usize) -> Vec<u8> {
    px_cli::devnet::sample_bytes(len, seed)
}

/// A devnet, a home node, and a plan-2 token (10 GiB) whose home node
/// (`StorageMarket.homeNodeOf`) is the registrar, its escrow funded.
struct Net {
    devnet: Devnet,
    dir: tempfile::TempDir,
    deployment: PathBuf,
    home: NodeHandle,
    client: Client,
    token: u64,
}

impl Net {
    async fn start() -> Net {
        let devnet = Devnet::spawn(DevnetConfig {
            accounts: Some(30),
            ..DevnetConfig::default()
        })
        .await
        .expect("devnet starts (run `make bootstrap` first)");
        let dir = match std::env::var_os("PX_BENCH_DIR") {
            Some(parent) => tempfile::tempdir_in(parent).unwrap(),
            None => tempfile::tempdir().unwrap(),
        };
        let deployment = dir.path().join("deployment.json");
        std::fs::write(&deployment, serde_json::to_vec(&devnet.deployment).unwrap()).unwrap();
        let mut hc = config(&devnet, &deployment, dir.path(), "home");
        // The repair part times the deals and repair loops: poll them often.
        hc.home.poll_ms = 200;
        let home = px_node::spawn(hc).await.expect("home node starts");
        let client = Client::new(
            ClientConfig::new(
                devnet.rpc_url(),
                devnet.signer(FIRST_USER),
                devnet.deployment.clone(),
            )
            .with_node(home.url()),
        )
        .await
        .unwrap();
        let token = client.mint_via_node(2, Payment::Auto).await.unwrap();
        let net = Net {
            devnet,
            dir,
            deployment,
            home,
            client,
            token,
        };
        let d = &net.devnet;
        send_ok(
            net.market(FIRST_USER)
                .setHomeNode(U256::from(token), d.address(REGISTRAR)),
        )
        .await;
        let admin = PXToken::new(d.deployment.px_token, d.provider(ADMIN));
        send_ok(admin.mint(d.address(FIRST_USER), ether(1000))).await;
        let px = PXToken::new(d.deployment.px_token, d.provider(FIRST_USER));
        send_ok(px.approve(net.market_address(), U256::MAX)).await;
        send_ok(net.market(FIRST_USER).fund(U256::from(token), ether(500))).await;
        net
    }

    fn market_address(&self) -> Address {
        self.devnet.deployment.storage_market.unwrap()
    }

    fn market(
        &self,
        account: usize,
    ) -> StorageMarket::StorageMarketInstance<alloy::providers::DynProvider> {
        StorageMarket::new(self.market_address(), self.devnet.provider(account))
    }

    fn domain(&self) -> Eip712Domain {
        network::domain(self.devnet.deployment.chain_id, self.market_address())
    }

    /// Registers and stakes `account` as a provider and starts its node.
    async fn provider(&self, account: usize) -> NodeHandle {
        let d = &self.devnet;
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
            PRICE,
            U96::from(100u64) * U96::from(10u64).pow(U96::from(18)),
        ))
        .await;
        let mut c = config(
            d,
            &self.deployment,
            self.dir.path(),
            &format!("provider-{account}"),
        );
        let key = alloy::hex::encode(d.signer(account).to_bytes());
        let mut p = ProviderConfig::new(px_node::Secret::new(key));
        p.poll_ms = 200;
        p.read_burst = 0;
        c.provider = Some(p);
        px_node::spawn(c).await.expect("provider node starts")
    }

    /// [`Net::provider`], listed at its node's real URL and certified, so the home node's
    /// placement and repair choose it.
    async fn listed_provider(&self, account: usize) -> NodeHandle {
        let node = self.provider(account).await;
        let d = &self.devnet;
        let registry = d.deployment.provider_registry.unwrap();
        let reg = ProviderRegistry::new(registry, d.provider(account));
        send_ok(reg.updateListing(node.url(), 1, 10 << 30, PRICE)).await;
        let admin = ProviderRegistry::new(registry, d.provider(ADMIN));
        send_ok(admin.certify(d.address(account))).await;
        node
    }

    /// Polls the home node's `GET /v1/tokens/{id}/network` every 100 ms until every segment
    /// of every file has `n` healthy pieces and the repair loop moved at least `repaired`
    /// pieces; answers the last status.
    async fn wait_healthy(&self, n: u16, repaired: u64, limit: Duration) -> TokenNetwork {
        let t = Instant::now();
        loop {
            let s = self.client.token_network(self.token).await.unwrap();
            if !s.files.is_empty()
                && s.files.iter().all(|f| f.healthy.iter().all(|&h| h == n))
                && s.files.iter().map(|f| f.repaired).sum::<u64>() >= repaired
            {
                return s;
            }
            assert!(t.elapsed() < limit, "not healthy after {limit:?}: {s:#?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// An order from the home node (the registrar) for piece `piece` of segment `segment`.
    fn order(
        &self,
        file: B256,
        segment: u32,
        piece: u16,
        account: usize,
        size: u64,
    ) -> SignedOrder {
        UploadOrder {
            token_id: self.token,
            file,
            segment,
            piece,
            provider: self.devnet.address(account),
            max_size: size,
            expiry: now() + 3600,
        }
        .sign(&self.devnet.signer(REGISTRAR), &self.domain())
        .unwrap()
    }

    async fn mine(&self, blocks: u64) {
        self.devnet
            .provider(ADMIN)
            .raw_request::<_, serde_json::Value>("anvil_mine".into(), (format!("0x{blocks:x}"),))
            .await
            .unwrap();
    }
}

/// A node configuration for the devnet with its data in `<dir>/<name>`.
fn config(devnet: &Devnet, deployment: &Path, dir: &Path, name: &str) -> NodeConfig {
    let mut c = NodeConfig::new(deployment);
    c.listen = "127.0.0.1:0".parse().unwrap();
    c.rpc_url = devnet.rpc_url();
    c.data_dir = dir.join(name);
    c.owner_cache_ttl = Duration::from_secs(1);
    c.store_sync_writes = false;
    let key = devnet.signer(REGISTRAR).to_bytes();
    c.registrar_key = Some(px_node::Secret::new(alloy::hex::encode(key)));
    c
}

/// A 65-byte signature of `digest` as it is (the market's `ECDSA.recover` of a digest).
fn sign_digest(signer: &PrivateKeySigner, digest: &B256) -> Bytes {
    signer
        .sign_hash_sync(digest)
        .unwrap()
        .as_bytes()
        .to_vec()
        .into()
}

/// Stores the piece set on one provider, opens a deal over it and times the prover's answer
/// to the first period's challenges.
async fn prover(net: &Net, bench: bool) {
    let count = env("PX_BENCH_PIECES", if bench { 16 } else { 2 });
    let piece_len = env("PX_BENCH_PIECE_MIB", if bench { 64 } else { 1 }) * MIB;
    let (rss0, _) = rss_mib();
    let node = net.provider(PROVER).await;
    let base = node.url();
    let http = reqwest::Client::new();
    let file = B256::repeat_byte(0x42);
    let mut pieces: Vec<PieceAccepted> = Vec::new();
    let mut store_time = Duration::ZERO;
    for i in 0..count {
        let bytes = data(100 + i as u64, piece_len);
        let o = net.order(file, 0, i as u16, PROVER, piece_len as u64);
        let t = Instant::now();
        let r = http
            .post(format!("{base}/v1/pieces"))
            .header(ORDER_HEADER, serde_json::to_string(&o).unwrap())
            .body(bytes)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "piece {i}: {}", r.status());
        pieces.push(r.json().await.unwrap());
        store_time += t.elapsed();
    }
    let (rss_stored, _) = rss_mib();

    // Acceptance: home-signed, co-signed by the provider, opened by the home node.
    let leaves: Vec<(B256, u8)> = pieces.iter().map(|p| (p.root, p.depth)).collect();
    let total: u64 = pieces.iter().map(|p| p.size).sum();
    let mut req = AcceptanceRequest {
        token_id: net.token,
        provider: net.devnet.address(PROVER),
        root: piece::deal_root(&leaves).unwrap(),
        piece_count: pieces.len() as u16,
        size: total,
        max_bytes: total.max(1 << 30),
        periods: 5,
        price_per_gib_month: PRICE.to_string(),
        deadline: now() + 3600,
        pieces: pieces.iter().map(|p| p.cid.clone()).collect(),
        home_signature: Default::default(),
    };
    let acceptance = IStorageMarket::Acceptance {
        tokenId: U256::from(req.token_id),
        provider: req.provider,
        root: req.root,
        pieceCount: req.piece_count,
        size: req.size,
        maxBytes: req.max_bytes,
        periods: req.periods,
        pricePerGiBMonth: PRICE,
        deadline: U256::from(req.deadline),
    };
    let digest = net
        .market(ADMIN)
        .acceptanceDigest(acceptance.clone())
        .call()
        .await
        .unwrap();
    req.home_signature = sign_digest(&net.devnet.signer(REGISTRAR), &digest);
    let r = http
        .post(format!("{base}/v1/deals/acceptance"))
        .json(&req)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "co-signing: {}", r.status());
    let co: CoSignature = r.json().await.unwrap();
    send_ok(net.market(REGISTRAR).openDeal(acceptance, co.signature)).await;
    let deal = co.deal_id;
    let config = net.market(ADMIN).config().call().await.unwrap();

    // Period 0 is challenged `periodBlocks` after the deal opened.
    let cpu0 = cpu_secs();
    let t = Instant::now();
    net.mine(u64::from(config.periodBlocks) + 1).await;
    let provider = node.provider().expect("provider role");
    let (gas, build_us) = loop {
        if let Some(ProofState::Proven {
            gas_used, build_us, ..
        }) = provider.store().proof(&deal, 1, 0).unwrap()
        {
            break (gas_used, build_us);
        }
        assert!(t.elapsed() < Duration::from_secs(120), "proof settled");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let window = t.elapsed();
    let cpu = cpu_secs() - cpu0;
    let (rss_proven, hwm) = rss_mib();
    let set_mib = total as f64 / MIB as f64;
    println!(
        "prover: {count} pieces of {} MiB ({set_mib:.0} MiB), {} challenges a period",
        piece_len / MIB,
        config.challengeCount
    );
    println!(
        "  storing the pieces (POST /v1/pieces, root + CID + store): {:.2} s = {:.0} MiB/s",
        store_time.as_secs_f64(),
        set_mib / store_time.as_secs_f64()
    );
    println!(
        "  proof built in {:.1} ms ({:.2} ms per challenge); proveStorage used {gas} gas",
        build_us as f64 / 1000.0,
        build_us as f64 / 1000.0 / f64::from(config.challengeCount)
    );
    println!(
        "  process CPU from the challenge block to the settled proof: {cpu:.2} s over {:.2} s \
         (polls of both nodes included)",
        window.as_secs_f64()
    );
    println!(
        "  RSS: {rss0:.0} MiB before the provider, {rss_stored:.0} after storing, \
         {rss_proven:.0} after proving; peak {hwm:.0} MiB (the piece bodies in flight)"
    );
    println!(
        "  cached levels kept per piece: {} bytes on disk (32 per 256 KiB block)",
        piece::TopLevels::from_bytes(&provider.store().piece(&pieces[0].cid).unwrap().unwrap().top)
            .map(|t| t.to_bytes().len())
            .unwrap_or(0)
    );
    node.shutdown().await;
}

/// The file at 4/6 on six providers (two stopped for the download) against the home node
/// alone.
async fn network(net: &Net, bench: bool) {
    let mib = env("PX_BENCH_MIB", if bench { 1024 } else { 4 });
    let segment_size = env("PX_BENCH_SEGMENT_MIB", if bench { 64 } else { 1 }) * MIB;
    let total = mib * MIB;
    let path = net.dir.path().join("plain.bin");
    {
        use std::io::Write;
        let block = data(7, MIB);
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        for i in 0..mib {
            // Each MiB differs (its first 8 bytes carry its index).
            f.write_all(&(i as u64).to_le_bytes()).unwrap();
            f.write_all(&block[8..]).unwrap();
        }
        f.flush().unwrap();
    }
    let mut nodes = Vec::new();
    for a in NETWORK {
        nodes.push(net.provider(a).await);
    }
    let r = Redundancy::DEFAULT;
    let owner = OwnerKey::from_bytes([5; 32]);

    // Single node: upload (hashes the file first) and download through the home node.
    let c = cpu_secs();
    let t = Instant::now();
    let up = net
        .client
        .upload_file(net.token, &path, "single.bin", UploadOptions::default())
        .await
        .unwrap();
    let single_up = (t.elapsed(), cpu_secs() - c);
    let c = cpu_secs();
    let t = Instant::now();
    let mut sink = tokio::io::sink();
    net.client
        .download(net.token, &up.file.cid, &mut sink)
        .await
        .unwrap();
    let single_down = (t.elapsed(), cpu_secs() - c);

    // Network: hash, then the pipeline and the transfers to the six providers.
    let c = cpu_secs();
    let t = Instant::now();
    let sha = {
        let p = path.clone();
        tokio::task::spawn_blocking(move || sha256_of(std::fs::File::open(p).unwrap()))
            .await
            .unwrap()
            .unwrap()
    };
    let cipher_len = crypto::encrypted_len(total as u64, crypto::DEFAULT_SEGMENT_SIZE);
    let lengths = erasure::segment_lengths(cipher_len, segment_size).unwrap();
    let file = B256::repeat_byte(0x5a);
    let placements: Vec<Vec<Target>> = lengths
        .iter()
        .enumerate()
        .map(|(s, &len)| {
            let size = r.piece_size(len as usize) as u64;
            NETWORK
                .zip(&nodes)
                .enumerate()
                .map(|(i, (a, node))| Target {
                    provider: ProviderEndpoint {
                        address: net.devnet.address(a),
                        url: node.url(),
                    },
                    order: net.order(file, s as u32, i as u16, a, size),
                })
                .collect()
        })
        .collect();
    let enc = Encryptor::with_segment_size(&owner, crypto::DEFAULT_SEGMENT_SIZE, sha).unwrap();
    let file_id = enc.file_id();
    let opts = EncodeOptions {
        redundancy: r,
        segment_size,
        parallel: true,
    };
    let uploader = Uploader::new(reqwest::Client::new(), net.domain());
    let input = std::fs::File::open(&path).unwrap();
    let (manifest, _) = uploader
        .upload_file(enc, input, opts, net.token, &placements)
        .await
        .unwrap();
    let network_up = (t.elapsed(), cpu_secs() - c);

    // Two providers stopped, the download decodes from the other four.
    let endpoints: HashMap<Address, String> = NETWORK
        .zip(&nodes)
        .map(|(a, n)| (net.devnet.address(a), n.url()))
        .collect();
    let mut running = nodes.split_off(2);
    for n in nodes {
        n.shutdown().await;
    }
    let c = cpu_secs();
    let t = Instant::now();
    let mut sink = tokio::io::sink();
    let report = Downloader::new(reqwest::Client::new())
        .download(&manifest, &endpoints, &owner, Some(file_id), &mut sink)
        .await
        .unwrap();
    let network_down = (t.elapsed(), cpu_secs() - c);
    assert_eq!(report.opened.sha256, sha, "the plaintext came back");

    let gib = mib as f64 / 1024.0;
    let step = |name: &str, (d, cpu): (Duration, f64)| {
        println!(
            "  {name:<34} {:>7.2} s {:>6.0} MiB/s {:>7.1} CPU s/GiB",
            d.as_secs_f64(),
            mib as f64 / d.as_secs_f64(),
            cpu / gib
        );
    };
    println!(
        "network: {mib} MiB at {r} in {} MiB segments, 6 providers on loopback (all nodes in \
         this process; CPU is the whole process's)",
        segment_size / MIB
    );
    step("upload, single node", single_up);
    step("upload, 6 providers", network_up);
    step("download, single node", single_down);
    step("download, 4 of 6 providers", network_down);
    println!(
        "  upload 6 providers / single node: {:.2} x the throughput; download: {:.2} x",
        single_up.0.as_secs_f64() / network_up.0.as_secs_f64(),
        single_down.0.as_secs_f64() / network_down.0.as_secs_f64()
    );
    println!(
        "  download faults reported (the 2 stopped providers): {}",
        report.faults.len()
    );
    for n in running.drain(..) {
        n.shutdown().await;
    }
}

/// Repair: a file placed at 4/6 through the home node's routes (placement, pieces with
/// `Uploader`, manifest commit: `Client::upload_file_to_network`), a 7th provider started, one
/// original provider stopped, and the time until the home node reports every segment with 6
/// healthy pieces again.
async fn repair(net: &Net, bench: bool) {
    let mib = env("PX_BENCH_REPAIR_MIB", if bench { 4096 } else { 4 });
    let segment_mib = env("PX_BENCH_SEGMENT_MIB", if bench { 64 } else { 1 });
    let path = net.dir.path().join("repair.bin");
    {
        use std::io::Write;
        let block = data(9, MIB);
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        for i in 0..mib {
            f.write_all(&(i as u64).to_le_bytes()).unwrap();
            f.write_all(&block[8..]).unwrap();
        }
        f.flush().unwrap();
    }
    let mut nodes = Vec::new();
    for a in REPAIR.take(6) {
        nodes.push((net.devnet.address(a), net.listed_provider(a).await));
    }
    let t = Instant::now();
    let up = net
        .client
        .upload_file_to_network(
            net.token,
            &path,
            "repair.bin",
            NetworkUploadOptions {
                redundancy: Some(Redundancy::DEFAULT),
                segment_size: Some((segment_mib * MIB) as u64),
                ..NetworkUploadOptions::default()
            },
        )
        .await
        .unwrap();
    let upload = t.elapsed();
    std::fs::remove_file(&path).unwrap();
    let n = up.manifest.redundancy.n();
    net.wait_healthy(n, 0, Duration::from_secs(600)).await;
    // The provider to stop and the piece bytes it holds.
    let (lost, _) = nodes[0];
    let lost_pieces: Vec<u64> = up
        .manifest
        .segments
        .iter()
        .flat_map(|s| s.pieces.iter())
        .filter(|p| p.provider == lost)
        .map(|p| p.size)
        .collect();
    let lost_bytes: u64 = lost_pieces.iter().sum();
    let seventh = net.listed_provider(REPAIR.end - 1).await;
    let (_, stopped) = nodes.remove(0);
    let (_, hwm_before) = rss_mib();
    let c = cpu_secs();
    let t = Instant::now();
    stopped.shutdown().await;
    // Healthy again: every segment at `n`, and as many pieces moved as the stopped one held.
    let status = net
        .wait_healthy(n, lost_pieces.len() as u64, Duration::from_secs(3600))
        .await;
    let took = t.elapsed();
    let cpu = cpu_secs() - c;
    let (rss, hwm) = rss_mib();
    let repaired: u64 = status.files.iter().map(|f| f.repaired).sum();
    let lost_mib = lost_bytes as f64 / MIB as f64;
    println!(
        "repair: {mib} MiB file at {} in {segment_mib} MiB segments ({} segments) placed in {upload:.2?}; \
         stopped provider held {lost_mib:.0} MiB of pieces ({} pieces); 6 healthy pieces per segment again \
         {took:.2?} after the stop ({:.1} MiB/s of piece data, {repaired} pieces repaired); \
         process CPU {cpu:.2} s (the home node, the providers and this client run in this \
         process); RSS {rss:.0} MiB, peak {hwm:.0} MiB (peak before the stop {hwm_before:.0} MiB)",
        up.manifest.redundancy,
        up.manifest.segments.len(),
        lost_pieces.len(),
        lost_mib / took.as_secs_f64(),
    );
    seventh.shutdown().await;
    for (_, node) in nodes {
        node.shutdown().await;
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        return;
    }
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this binary without it:
    // a smoke pass then.
    let bench = args.iter().any(|a| a == "--bench");
    let skip = std::env::var("PX_BENCH_SKIP").unwrap_or_default();
    let net = Net::start().await;
    let skip = |part: &str| skip.split(',').any(|s| s.trim() == part);
    if !skip("prover") {
        prover(&net, bench).await;
    }
    if !skip("network") {
        network(&net, bench).await;
    }
    if !skip("repair") {
        repair(&net, bench).await;
    }
    net.home.shutdown().await;
}
