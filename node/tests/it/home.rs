//! The home-node role on the real devnet with real provider nodes: placement from the
//! registry with signed orders, pieces stored through px-sdk's uploader, the manifest
//! committed into the token's index, deals opened with each provider holding pieces, the
//! missed periods of stopped providers marked (slashing them), and the repair loop moving the
//! stopped providers' pieces to fresh ones, after which the file still reads back with the
//! original providers down.

use std::collections::HashMap;
use std::io::Cursor;
use std::time::{Duration, Instant};

use alloy::primitives::aliases::U96;
use alloy::primitives::{Address, U256};
use alloy::providers::Provider as _;
use px_cli::devnet::{ADMIN, REGISTRAR, send_ok};
use px_core::api::{self, ErrorCode, ManifestCommit, PlacementRequest, TokenNetwork};
use px_core::contracts::{PXToken, ProviderRegistry, StorageMarket};
use px_core::crypto::{self, Encryptor, OwnerKey};
use px_core::erasure::Redundancy;
use px_core::network::{self, Manifest};
use px_node::NodeHandle;
use px_node::provider::ProviderConfig;
use px_sdk::network::{Downloader, EncodeOptions, ProviderEndpoint, Target, Uploader};

use crate::fixture::{Net, User, start_process, wait_healthy};

/// Provider accounts of these tests (other suites use 30 and up).
const FIRST_PROVIDER: usize = 20;
/// Listing price: 1 PX per GiB-month.
const PRICE: u128 = 1_000_000_000_000_000_000;
/// Segments of 1 MiB, so a small file has several.
const SEGMENT: u64 = 1 << 20;

fn ether(n: u64) -> U256 {
    U256::from(n) * U256::from(10u64).pow(U256::from(18))
}

/// A devnet with a home node (the registrar) and a token whose home node it is.
struct Home {
    net: Net,
    /// The in-process home node (`None` once a test replaced it with a process).
    home: Option<NodeHandle>,
    /// Its base URL.
    url: String,
    user: User,
    token: u64,
    providers: HashMap<Address, NodeHandle>,
}

impl Home {
    async fn start(fund: u64) -> Home {
        // `RUST_LOG=node::home=info` shows the role's work.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let net = Net::start().await;
        let mut c = net.config("home");
        c.home.poll_ms = 200;
        c.home.deal_periods = 4;
        c.home.deal_max_bytes = 64 << 20;
        c.home.spares = 1;
        let home = px_node::spawn(c).await.expect("home node starts");
        let mut user = net.user(0, &home);
        user.login().await;
        let token = user.mint(&net).await;
        let market = StorageMarket::new(market(&net), net.devnet.provider(user.account));
        send_ok(market.setHomeNode(U256::from(token), net.devnet.address(REGISTRAR))).await;
        if fund > 0 {
            mint_px(&net, user.address(), ether(fund)).await;
            let px = PXToken::new(
                net.devnet.deployment.px_token,
                net.devnet.provider(user.account),
            );
            send_ok(px.approve(market.address().to_owned(), U256::MAX)).await;
            let market = StorageMarket::new(self::market(&net), net.devnet.provider(user.account));
            send_ok(market.fund(U256::from(token), ether(fund))).await;
        }
        Home {
            net,
            url: home.url(),
            home: Some(home),
            user,
            token,
            providers: HashMap::new(),
        }
    }

    /// Registers, stakes and certifies provider `i` and starts its node (listing its real
    /// URL).
    async fn add_provider(&mut self, i: usize) -> Address {
        let net = &self.net;
        let account = FIRST_PROVIDER + i;
        let address = net.devnet.address(account);
        let registry = net.devnet.deployment.provider_registry.unwrap();
        mint_px(net, address, ether(1000)).await;
        let px = PXToken::new(net.devnet.deployment.px_token, net.devnet.provider(account));
        send_ok(px.approve(registry, U256::MAX)).await;
        let reg = ProviderRegistry::new(registry, net.devnet.provider(account));
        let stake = U96::from(100u64) * U96::from(10u64).pow(U96::from(18));
        send_ok(reg.registerProvider("http://127.0.0.1:9".into(), 1, 10 << 30, PRICE, stake)).await;
        let mut c = net.config(&format!("provider-{i}"));
        let key = alloy::hex::encode(net.devnet.signer(account).to_bytes());
        let mut p = ProviderConfig::new(px_node::Secret::new(key));
        p.poll_ms = 200;
        c.provider = Some(p);
        c.home.enabled = false;
        let node = px_node::spawn(c).await.expect("provider node starts");
        let reg = ProviderRegistry::new(registry, net.devnet.provider(account));
        send_ok(reg.updateListing(node.url(), 1, 10 << 30, PRICE)).await;
        let admin = ProviderRegistry::new(registry, net.devnet.provider(ADMIN));
        send_ok(admin.certify(address)).await;
        self.providers.insert(address, node);
        address
    }

    fn domain(&self) -> alloy::sol_types::Eip712Domain {
        network::domain(self.net.devnet.deployment.chain_id, market(&self.net))
    }

    async fn post<T: serde::Serialize, R: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &T,
    ) -> Result<R, (reqwest::StatusCode, ErrorCode)> {
        let r = reqwest::Client::new()
            .post(format!("{}{path}", self.url))
            .bearer_auth(self.user.session.as_deref().unwrap())
            .json(body)
            .send()
            .await
            .unwrap();
        answer(r).await
    }

    async fn get<R: serde::de::DeserializeOwned>(&self, path: &str) -> R {
        let r = reqwest::Client::new()
            .get(format!("{}{path}", self.url))
            .bearer_auth(self.user.session.as_deref().unwrap())
            .send()
            .await
            .unwrap();
        answer(r).await.expect(path)
    }

    async fn network(&self) -> TokenNetwork {
        self.get(&format!("/v1/tokens/{}/network", self.token))
            .await
    }

    /// Waits up to `secs` for `check` to hold on the token's network status.
    async fn wait_network(&self, secs: u64, what: &str, check: impl Fn(&TokenNetwork) -> bool) {
        let t = Instant::now();
        loop {
            let n = self.network().await;
            if check(&n) {
                return;
            }
            assert!(t.elapsed() < Duration::from_secs(secs), "{what}: {n:#?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Encrypts `plain` and stores it through a placement; answers the manifest and the file
    /// id of the encryption.
    async fn upload(&self, plain: &[u8], owner: &OwnerKey) -> (Manifest, crypto::FileId) {
        self.upload_in(plain, owner, Some(SEGMENT)).await
    }

    async fn upload_in(
        &self,
        plain: &[u8],
        owner: &OwnerKey,
        segment_size: Option<u64>,
    ) -> (Manifest, crypto::FileId) {
        let cipher_len = crypto::encrypted_len(plain.len() as u64, crypto::DEFAULT_SEGMENT_SIZE);
        let placement: api::Placement = self
            .post(
                &format!("/v1/tokens/{}/placements", self.token),
                &PlacementRequest {
                    size: cipher_len,
                    redundancy: None,
                    segment_size,
                },
            )
            .await
            .expect("placement");
        let targets: Vec<Vec<Target>> = placement
            .segments
            .iter()
            .map(|s| {
                s.iter()
                    .map(|t| Target {
                        provider: ProviderEndpoint {
                            address: t.provider,
                            url: t.url.clone(),
                        },
                        order: t.order.clone(),
                    })
                    .collect()
            })
            .collect();
        let enc = Encryptor::with_segment_size(
            owner,
            crypto::DEFAULT_SEGMENT_SIZE,
            crypto::sha256(plain),
        )
        .unwrap();
        let file_id = enc.file_id();
        let opts = EncodeOptions {
            redundancy: placement.redundancy,
            segment_size: placement.segment_size as usize,
            parallel: true,
        };
        let (manifest, _) = Uploader::new(reqwest::Client::new(), self.domain())
            .upload_file(enc, Cursor::new(plain.to_vec()), opts, self.token, &targets)
            .await
            .expect("pieces stored");
        (manifest, file_id)
    }

    /// Reads a manifest's file back from the providers still running.
    async fn download(&self, m: &Manifest, owner: &OwnerKey, file_id: crypto::FileId) -> Vec<u8> {
        let endpoints: HashMap<Address, String> =
            self.providers.iter().map(|(a, n)| (*a, n.url())).collect();
        let mut out = Vec::new();
        Downloader::new(reqwest::Client::new())
            .download(m, &endpoints, owner, Some(file_id), &mut out)
            .await
            .expect("file read back");
        out
    }

    async fn mine(&self, blocks: u64) {
        self.net
            .devnet
            .provider(ADMIN)
            .raw_request::<_, serde_json::Value>("anvil_mine".into(), (format!("0x{blocks:x}"),))
            .await
            .unwrap();
    }

    async fn stake(&self, provider: Address) -> U256 {
        ProviderRegistry::new(
            self.net.devnet.deployment.provider_registry.unwrap(),
            self.net.devnet.provider(ADMIN),
        )
        .stakeOf(provider)
        .call()
        .await
        .unwrap()
    }
}

fn market(net: &Net) -> Address {
    net.devnet.deployment.storage_market.unwrap()
}

async fn mint_px(net: &Net, to: Address, amount: U256) {
    let px = PXToken::new(net.devnet.deployment.px_token, net.devnet.provider(ADMIN));
    send_ok(px.mint(to, amount)).await;
}

async fn answer<R: serde::de::DeserializeOwned>(
    r: reqwest::Response,
) -> Result<R, (reqwest::StatusCode, ErrorCode)> {
    let status = r.status();
    if status.is_success() {
        return Ok(r.json().await.unwrap());
    }
    let body: api::ErrorBody = r.json().await.unwrap();
    Err((status, body.error))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn home_node_places_commits_deals_marks_misses_and_repairs() {
    let mut h = Home::start(100).await;
    let info: api::NetworkInfo = h.get("/v1/network").await;
    assert_eq!(info.home, h.net.devnet.address(REGISTRAR));
    assert_eq!(info.redundancy, Redundancy::new(4, 6).unwrap());

    // Too few providers: refused with the count.
    let few: Result<api::Placement, _> = h
        .post(
            &format!("/v1/tokens/{}/placements", h.token),
            &PlacementRequest {
                size: 1000,
                redundancy: None,
                segment_size: None,
            },
        )
        .await;
    assert_eq!(few.unwrap_err().1, ErrorCode::NotEnoughProviders);

    let mut original = Vec::new();
    for i in 0..7 {
        original.push(h.add_provider(i).await);
    }
    let owner = OwnerKey::from_bytes([7; 32]);
    let plain = px_cli::devnet::sample_bytes(3 * SEGMENT as usize + 777, 3);
    let (manifest, file_id) = h.upload(&plain, &owner).await;
    assert_eq!(manifest.segments.len(), 4);

    // An order not signed by the home node is refused at commit.
    let mut forged = manifest.clone();
    let p0 = &mut forged.segments[0].pieces[0];
    p0.order = p0
        .order
        .order
        .clone()
        .sign(&h.net.devnet.signer(ADMIN), &h.domain())
        .unwrap();
    let refused: Result<api::UploadResult, _> = h
        .post(
            &format!("/v1/tokens/{}/manifests", h.token),
            &ManifestCommit {
                name: "forged".into(),
                manifest: forged,
            },
        )
        .await;
    assert_eq!(refused.unwrap_err().1, ErrorCode::BadRequest);

    let committed: api::UploadResult = h
        .post(
            &format!("/v1/tokens/{}/manifests", h.token),
            &ManifestCommit {
                name: "three-mib".into(),
                manifest: manifest.clone(),
            },
        )
        .await
        .expect("manifest committed");
    assert_eq!(committed.file.redundancy, Some(manifest.redundancy));
    assert_eq!(committed.file.size, manifest.size);
    assert_eq!(committed.usage.used, manifest.size, "the ciphertext counts");
    // The same upload commits once.
    let again: Result<api::UploadResult, _> = h
        .post(
            &format!("/v1/tokens/{}/manifests", h.token),
            &ManifestCommit {
                name: "again".into(),
                manifest: manifest.clone(),
            },
        )
        .await;
    assert_eq!(again.unwrap_err().1, ErrorCode::BadRequest);
    let stored: Manifest = h
        .get(&format!(
            "/v1/tokens/{}/files/{}/manifest",
            h.token, committed.file.id
        ))
        .await;
    assert_eq!(stored, manifest);

    // A deal with every provider holding pieces, each root over exactly its pieces.
    let holders: std::collections::HashSet<Address> = manifest
        .segments
        .iter()
        .flat_map(|s| s.pieces.iter().map(|p| p.provider))
        .collect();
    h.wait_network(60, "deals opened", |n| {
        n.deals.len() == holders.len()
            && n.deals
                .iter()
                .all(|d| d.status == "active" && d.pending_pieces == 0)
    })
    .await;
    assert!(h.download(&manifest, &owner, file_id).await == plain);

    // Two providers stop. Past the first period's proof window the home node marks their
    // misses: each is slashed; the running ones proved.
    let stopped: Vec<Address> = original[..2].to_vec();
    let before: Vec<U256> = futures::future::join_all(stopped.iter().map(|a| h.stake(*a))).await;
    for a in &stopped {
        h.providers.remove(a).unwrap().shutdown().await;
    }
    assert!(h.download(&manifest, &owner, file_id).await == plain);
    // Into the proof window of period 0: the running providers prove.
    h.mine(110).await;
    let market_view = StorageMarket::new(market(&h.net), h.net.devnet.provider(ADMIN));
    let token = h.token;
    let deal_of = |a: Address| {
        let m = market_view.clone();
        let id = px_node::provider::deal_id_of(token, a);
        async move { m.dealOf(U256::from_be_bytes(id.0)).call().await.unwrap() }
    };
    let t = Instant::now();
    for a in &original[2..] {
        if !holders.contains(a) {
            continue;
        }
        while deal_of(*a).await.nextPeriod < 1 {
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "provider {a} did not prove"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // Past the window: the home node marks the stopped providers' misses; each is slashed.
    h.mine(50).await;
    let t = Instant::now();
    for a in &stopped {
        while deal_of(*a).await.misses < 1 {
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "miss of {a} not marked"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    for (a, b) in stopped.iter().zip(&before) {
        assert!(h.stake(*a).await < *b, "provider {a} slashed");
    }

    // Two fresh providers: the repair loop moves every piece of the stopped ones to them.
    let fresh = [h.add_provider(7).await, h.add_provider(8).await];
    let started = Instant::now();
    h.wait_network(120, "file repaired", |n| {
        n.files.len() == 1 && n.files[0].healthy.iter().all(|&c| c == 6)
    })
    .await;
    let repair_ms = started.elapsed().as_millis();
    let repaired: Manifest = h
        .get(&format!(
            "/v1/tokens/{}/files/{}/manifest",
            h.token, committed.file.id
        ))
        .await;
    for seg in &repaired.segments {
        for p in &seg.pieces {
            assert!(
                !stopped.contains(&p.provider),
                "piece {} still on a stopped provider",
                p.index
            );
        }
    }
    for seg in &repaired.segments {
        let distinct: std::collections::HashSet<Address> =
            seg.pieces.iter().map(|p| p.provider).collect();
        assert_eq!(distinct.len(), 6, "one piece per provider in a segment");
    }
    assert!(
        repaired
            .segments
            .iter()
            .flat_map(|s| &s.pieces)
            .any(|p| fresh.contains(&p.provider)),
        "the fresh providers took pieces"
    );
    let lost = manifest
        .segments
        .iter()
        .flat_map(|s| &s.pieces)
        .filter(|p| stopped.contains(&p.provider))
        .count();
    let n = h.network().await;
    assert_eq!(
        n.files[0].repaired, lost as u64,
        "each lost piece moved once"
    );
    // The index entry names the repaired manifest.
    let listed = h.user.list_all(h.token, 100).await;
    assert_eq!(listed.len(), 1);
    assert_ne!(listed[0].cid, committed.file.cid);
    assert_eq!(listed[0].id, committed.file.id);
    let now_holding: std::collections::HashSet<Address> = repaired
        .segments
        .iter()
        .flat_map(|s| s.pieces.iter().map(|p| p.provider))
        .collect();
    // Every provider now holding pieces has an active deal. Its root holds all its pieces,
    // except where the market allows no further update this period (a deal whose root was
    // committed in the current period, as when a repair pass placed more pieces right after
    // the deal opened): those wait for the next period.
    let period_blocks = 100u64;
    let t = Instant::now();
    loop {
        let n = h.network().await;
        let block = h
            .net
            .devnet
            .provider(ADMIN)
            .get_block_number()
            .await
            .unwrap();
        let mut ok = now_holding.iter().all(|p| {
            n.deals
                .iter()
                .any(|d| d.provider == *p && d.status == "active")
        });
        for d in n.deals.iter().filter(|d| !stopped.contains(&d.provider)) {
            if d.pending_pieces > 0 {
                let v = deal_of(d.provider).await;
                let start = v.startBlock.to::<u64>();
                let since = v.rootSince.to::<u64>();
                let locked = (block - start) / period_blocks == (since - start) / period_blocks;
                ok &= locked;
            }
        }
        if ok {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "deals follow the repair: {n:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Two other original providers stop: the file still reads back.
    for a in &original[2..4] {
        h.providers.remove(a).unwrap().shutdown().await;
    }
    assert!(h.download(&repaired, &owner, file_id).await == plain);
    eprintln!("repair of {lost} pieces (4 segments of 1 MiB at 4/6): {repair_ms} ms");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn placement_is_refused_off_the_home_node_and_without_escrow() {
    let mut h = Home::start(0).await;
    for i in 0..6 {
        h.add_provider(i).await;
    }
    let req = PlacementRequest {
        size: 1000,
        redundancy: None,
        segment_size: None,
    };
    let path = format!("/v1/tokens/{}/placements", h.token);
    // No escrow: the deals could not open.
    let r: Result<api::Placement, _> = h.post(&path, &req).await;
    assert_eq!(
        r.unwrap_err(),
        (
            reqwest::StatusCode::PAYMENT_REQUIRED,
            ErrorCode::EscrowTooLow
        )
    );
    // A token whose holder named no home node: this node refuses to place for it.
    let mut other_user = h.net.user_at(1, h.url.clone());
    other_user.login().await;
    let other = other_user.mint(&h.net).await;
    h.user = other_user;
    let r: Result<api::Placement, _> = h
        .post(&format!("/v1/tokens/{other}/placements"), &req)
        .await;
    assert_eq!(
        r.unwrap_err(),
        (reqwest::StatusCode::CONFLICT, ErrorCode::NotHomeNode)
    );
}

/// The home node process aborts after the file is in the index but before its manifest is
/// in home.redb; restarted, it records the manifest from the index and opens the deals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn home_node_crash_after_the_index_commit_loses_no_manifest() {
    let mut h = Home::start(100).await;
    for i in 0..6 {
        h.add_provider(i).await;
    }
    // The same data directory, now served by a process that aborts at the failpoint.
    h.home.take().unwrap().shutdown().await;
    let dir = h.net.dir.path().join("home");
    let env = [("PX_NODE_HOME_POLL_MS", "200")];
    let (mut child, url) = start_process(
        &h.net,
        &dir,
        Some("home_after_index"),
        h.net.daemon.is_none(),
        &env,
    );
    wait_healthy(&url).await;
    h.url = url.clone();
    h.user.base = url;
    h.user.login().await;
    let owner = OwnerKey::from_bytes([9; 32]);
    let plain = px_cli::devnet::sample_bytes(100_000, 9);
    let (manifest, file_id) = h.upload_in(&plain, &owner, None).await;
    let commit = ManifestCommit {
        name: "crash".into(),
        manifest: manifest.clone(),
    };
    let r = tokio::time::timeout(
        Duration::from_secs(30),
        reqwest::Client::new()
            .post(format!("{}/v1/tokens/{}/manifests", h.url, h.token))
            .bearer_auth(h.user.session.as_deref().unwrap())
            .json(&commit)
            .send(),
    )
    .await
    .expect("the commit ends");
    assert!(r.is_err(), "the commit got no answer: {r:?}");
    let status = child.wait().unwrap();
    assert!(!status.success(), "the home node aborted at the failpoint");

    let (mut child, url) = start_process(&h.net, &dir, None, h.net.daemon.is_none(), &env);
    wait_healthy(&url).await;
    h.url = url.clone();
    h.user.base = url;
    h.user.login().await;
    let files = h.user.list_all(h.token, 10).await;
    assert_eq!(
        files.len(),
        1,
        "the file committed before the crash is listed"
    );
    let stored: Manifest = h
        .get(&format!(
            "/v1/tokens/{}/files/{}/manifest",
            h.token, files[0].id
        ))
        .await;
    assert_eq!(stored, manifest, "recovered from the index");
    h.wait_network(60, "deals opened after the restart", |n| {
        !n.deals.is_empty() && n.deals.iter().all(|d| d.status == "active")
    })
    .await;
    assert!(h.download(&stored, &owner, file_id).await == plain);
    child.kill().unwrap();
    let _ = child.wait();
}
