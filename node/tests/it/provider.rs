//! The provider role on the real devnet: a registered provider node takes pieces only under
//! valid upload orders from the token's home node, signs receipts whose roots are px-core's,
//! serves pieces to anyone, co-signs deals over what it holds, and its prover answers the
//! market's challenges (once per period, across restarts); a provider that lost a piece
//! cannot prove and is slashed by `markMissed`.

use px_cli::devnet::send_ok;
use std::time::{Duration, Instant};

use alloy::primitives::aliases::U96;
use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::providers::Provider as _;
use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::Eip712Domain;
use px_cli::devnet::{ADMIN, REGISTRAR};
use px_core::api::ErrorCode;
use px_core::contracts::{IStorageMarket, PXToken, ProviderRegistry, StorageMarket};
use px_core::network::{self, PieceReceipt, SignedOrder, UploadOrder};
use px_core::piece;
use px_node::NodeHandle;
use px_node::provider::store::ProofState;
use px_node::provider::{
    AcceptanceRequest, CoSignature, ORDER_HEADER, PieceAccepted, ProviderConfig, RootUpdateRequest,
    deal_id_of,
};
use reqwest::StatusCode;

use crate::fixture::{Net, User, data, metric, pins, start_process, wait_healthy};

/// The provider accounts of these tests (the fixture's users start at 3).
const PROVIDER: usize = 30;
const OTHER_PROVIDER: usize = 31;
/// An account with no role, for `markMissed`.
const KEEPER: usize = 32;
/// The listing price (wei of PXToken per GiB-month).
const PRICE: u128 = 1_000_000_000_000_000_000;
/// 1 MiB: 2**15 chunks, no padding leaf, so every challenge reads a block.
const PIECE: usize = 1 << 20;
/// `IStorageMarket.DealStatus.Active` and `.Completed`.
const DEAL_ACTIVE: u8 = 1;
const DEAL_COMPLETED: u8 = 2;

fn ether(n: u64) -> U256 {
    U256::from(n) * U256::from(10u64).pow(U256::from(18))
}

/// A devnet with a minted token whose home node (`StorageMarket.homeNodeOf`) is the
/// registrar, its escrow funded.
struct Market {
    net: Net,
    home: NodeHandle,
    user: User,
    token: u64,
}

impl Market {
    async fn start() -> Market {
        let net = Net::start().await;
        let home = net.node("home").await;
        let mut user = net.user(0, &home);
        user.login().await;
        let token = user.mint(&net).await;
        let market = StorageMarket::new(net.market(), net.devnet.provider(user.account));
        send_ok(market.setHomeNode(U256::from(token), net.devnet.address(REGISTRAR))).await;
        mint_px(&net, user.address(), ether(100)).await;
        let px = PXToken::new(
            net.devnet.deployment.px_token,
            net.devnet.provider(user.account),
        );
        send_ok(px.approve(net.market(), U256::MAX)).await;
        // A fresh instance: each caches its account's nonce.
        let market = StorageMarket::new(net.market(), net.devnet.provider(user.account));
        send_ok(market.fund(U256::from(token), ether(10))).await;
        Market {
            net,
            home,
            user,
            token,
        }
    }

    fn domain(&self) -> Eip712Domain {
        network::domain(self.net.devnet.deployment.chain_id, self.net.market())
    }

    fn market(
        &self,
        account: usize,
    ) -> StorageMarket::StorageMarketInstance<alloy::providers::DynProvider> {
        StorageMarket::new(self.net.market(), self.net.devnet.provider(account))
    }

    /// Registers and stakes `account` as a provider.
    async fn register(&self, account: usize) {
        let net = &self.net;
        let registry = net.devnet.deployment.provider_registry.unwrap();
        mint_px(net, net.devnet.address(account), ether(1000)).await;
        let px = PXToken::new(net.devnet.deployment.px_token, net.devnet.provider(account));
        send_ok(px.approve(registry, U256::MAX)).await;
        let reg = ProviderRegistry::new(registry, net.devnet.provider(account));
        send_ok(reg.registerProvider(
            "http://provider.test".into(),
            1,
            10 << 30,
            PRICE,
            U96::from(100u64) * U96::from(10u64).pow(U96::from(18)),
        ))
        .await;
    }

    fn provider_key(&self, account: usize) -> String {
        alloy::hex::encode(self.net.devnet.signer(account).to_bytes())
    }

    /// A node config with the provider role of `account`.
    fn provider_config(&self, name: &str, account: usize) -> px_node::NodeConfig {
        let mut c = self.net.config(name);
        let mut p = ProviderConfig::new(px_node::Secret::new(self.provider_key(account)));
        p.poll_ms = 200;
        c.provider = Some(p);
        c
    }

    async fn provider_node(&self, account: usize) -> NodeHandle {
        self.provider_node_with(account, |_| {}).await
    }

    /// A registered provider node of `account` with its config changed by `tweak`.
    async fn provider_node_with(
        &self,
        account: usize,
        tweak: impl FnOnce(&mut px_node::NodeConfig),
    ) -> NodeHandle {
        self.register(account).await;
        let mut c = self.provider_config("provider", account);
        tweak(&mut c);
        px_node::spawn(c).await.expect("provider node starts")
    }

    /// An order for piece `index` of the token, signed by `signer`.
    fn order(
        &self,
        signer: &PrivateKeySigner,
        provider: Address,
        index: u16,
        max_size: u64,
        expiry: u64,
    ) -> SignedOrder {
        UploadOrder {
            token_id: self.token,
            file: B256::repeat_byte(0x42),
            segment: 0,
            piece: index,
            provider,
            max_size,
            expiry,
        }
        .sign(signer, &self.domain())
        .unwrap()
    }

    /// An order from the home node for `account`, valid for an hour.
    fn home_order(&self, account: usize, index: u16, len: usize) -> SignedOrder {
        self.order(
            &self.net.devnet.signer(REGISTRAR),
            self.net.devnet.address(account),
            index,
            len as u64,
            now() + 3600,
        )
    }

    /// Co-signs (provider at `base`) and opens (home node) a deal over `pieces`.
    async fn open_deal(&self, base: &str, account: usize, pieces: &[PieceAccepted]) -> B256 {
        let provider = self.net.devnet.address(account);
        let req = self.acceptance(account, pieces);
        let req = self.home_signed(req).await;
        let co = cosign(base, "acceptance", &req).await.expect("co-signed");
        send_ok(
            self.market(REGISTRAR)
                .openDeal(acceptance_of(&req), co.signature),
        )
        .await;
        assert_eq!(co.deal_id, deal_id_of(self.token, provider));
        co.deal_id
    }

    /// An acceptance request over `pieces` of the provider `account`, not yet home-signed.
    fn acceptance(&self, account: usize, pieces: &[PieceAccepted]) -> AcceptanceRequest {
        let leaves: Vec<(B256, u8)> = pieces.iter().map(|p| (p.root, p.depth)).collect();
        AcceptanceRequest {
            token_id: self.token,
            provider: self.net.devnet.address(account),
            root: piece::deal_root(&leaves).unwrap(),
            piece_count: pieces.len() as u16,
            size: pieces.iter().map(|p| p.size).sum(),
            max_bytes: 1 << 30,
            periods: 5,
            price_per_gib_month: PRICE.to_string(),
            deadline: now() + 3600,
            pieces: pieces.iter().map(|p| p.cid.clone()).collect(),
            home_signature: Default::default(),
        }
    }

    /// `req` with the home node's (the registrar's) signature of its acceptance digest.
    async fn home_signed(&self, mut req: AcceptanceRequest) -> AcceptanceRequest {
        let digest = self
            .market(ADMIN)
            .acceptanceDigest(acceptance_of(&req))
            .call()
            .await
            .unwrap();
        req.home_signature = sign_digest(&self.net.devnet.signer(REGISTRAR), &digest);
        req
    }

    /// A root update of `deal` to `pieces` (ending `size_ended` bytes), home-signed by
    /// `home`, and the market's `RootUpdate`.
    async fn root_update(
        &self,
        deal: B256,
        pieces: &[PieceAccepted],
        size_ended: u64,
        home: &PrivateKeySigner,
    ) -> (RootUpdateRequest, IStorageMarket::RootUpdate) {
        let leaves: Vec<(B256, u8)> = pieces.iter().map(|p| (p.root, p.depth)).collect();
        let u = IStorageMarket::RootUpdate {
            dealId: U256::from_be_bytes(deal.0),
            root: piece::deal_root(&leaves).unwrap(),
            pieceCount: pieces.len() as u16,
            size: pieces.iter().map(|p| p.size).sum(),
            sizeEnded: size_ended,
        };
        let digest = self
            .market(ADMIN)
            .rootUpdateDigest(u.clone())
            .call()
            .await
            .unwrap();
        let req = RootUpdateRequest {
            deal_id: deal,
            root: u.root,
            piece_count: u.pieceCount,
            size: u.size,
            size_ended,
            pieces: pieces.iter().map(|p| p.cid.clone()).collect(),
            home_signature: sign_digest(home, &digest),
        };
        (req, u)
    }

    async fn deal(&self, deal: B256) -> IStorageMarket::Deal {
        self.market(ADMIN)
            .dealOf(U256::from_be_bytes(deal.0))
            .call()
            .await
            .unwrap()
    }

    /// Waits (up to 60 s) until the deal's next period is `period`.
    async fn wait_period(&self, deal: B256, period: u16) {
        let t = Instant::now();
        while self.deal(deal).await.nextPeriod < period {
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "period {} not proven in time",
                period - 1
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn mine(&self, blocks: u64) {
        self.net
            .devnet
            .provider(ADMIN)
            .raw_request::<_, serde_json::Value>("anvil_mine".into(), (format!("0x{blocks:x}"),))
            .await
            .unwrap();
    }

    async fn automine(&self, on: bool) {
        self.net
            .devnet
            .provider(ADMIN)
            .raw_request::<_, serde_json::Value>("evm_setAutomine".into(), (on,))
            .await
            .unwrap();
    }

    async fn tx_count(&self, account: usize) -> u64 {
        self.net
            .devnet
            .provider(ADMIN)
            .get_transaction_count(self.net.devnet.address(account))
            .await
            .unwrap()
    }
}

/// The market's `Acceptance` of a request.
fn acceptance_of(req: &AcceptanceRequest) -> IStorageMarket::Acceptance {
    IStorageMarket::Acceptance {
        tokenId: U256::from(req.token_id),
        provider: req.provider,
        root: req.root,
        pieceCount: req.piece_count,
        size: req.size,
        maxBytes: req.max_bytes,
        periods: req.periods,
        pricePerGiBMonth: req.price_per_gib_month.parse().unwrap(),
        deadline: U256::from(req.deadline),
    }
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

impl Net {
    fn market(&self) -> Address {
        self.devnet.deployment.storage_market.unwrap()
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

async fn mint_px(net: &Net, to: Address, amount: U256) {
    let px = PXToken::new(net.devnet.deployment.px_token, net.devnet.provider(ADMIN));
    send_ok(px.mint(to, amount)).await;
}

/// `POST /v1/pieces` with `order` (its JSON in the header, if any).
async fn put_piece(
    base: &str,
    order: Option<&SignedOrder>,
    bytes: Vec<u8>,
) -> Result<PieceAccepted, (StatusCode, ErrorCode)> {
    let mut rb = reqwest::Client::new().post(format!("{base}/v1/pieces"));
    if let Some(o) = order {
        rb = rb.header(ORDER_HEADER, serde_json::to_string(o).unwrap());
    }
    let r = rb.body(bytes).send().await.unwrap();
    refusal(r).await
}

async fn cosign<T: serde::Serialize>(
    base: &str,
    what: &str,
    body: &T,
) -> Result<CoSignature, (StatusCode, ErrorCode)> {
    let r = reqwest::Client::new()
        .post(format!("{base}/v1/deals/{what}"))
        .json(body)
        .send()
        .await
        .unwrap();
    refusal(r).await
}

async fn refusal<T: serde::de::DeserializeOwned>(
    r: reqwest::Response,
) -> Result<T, (StatusCode, ErrorCode)> {
    let status = r.status();
    if status.is_success() {
        return Ok(r.json().await.unwrap());
    }
    let body: px_core::api::ErrorBody = r.json().await.unwrap();
    Err((status, body.error))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_stores_a_piece_under_a_valid_order_and_refuses_the_others() {
    let m = Market::start().await;
    let node = m.provider_node(PROVIDER).await;
    let base = node.url();
    let me = m.net.devnet.address(PROVIDER);
    let bytes = data(7, PIECE + 4096);

    let order = m.home_order(PROVIDER, 0, bytes.len());
    let got = put_piece(&base, Some(&order), bytes.clone())
        .await
        .expect("stored");
    let want = piece::summarize(&bytes).unwrap();
    assert_eq!(got.cid, want.cid.to_string(), "px-core's piece CID");
    assert_eq!(
        (got.root, got.depth, got.size),
        (want.root.root, want.root.depth, want.root.size),
        "px-core's piece root"
    );
    assert_eq!(got.order_hash, order.order.hash(&m.domain()));
    let receipt = PieceReceipt {
        order_hash: got.order_hash,
        cid: want.cid,
        root: got.root,
        depth: got.depth,
        size: got.size,
    };
    let sig = alloy::primitives::Signature::try_from(got.receipt.as_ref()).unwrap();
    assert_eq!(
        receipt.signer(&sig, &m.domain()).unwrap(),
        me,
        "signed by the provider"
    );

    // Served to anyone, by CID.
    let r = reqwest::get(format!("{base}/v1/pieces/{}", got.cid))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.bytes().await.unwrap().as_ref(), bytes.as_slice());
    let r = reqwest::get(format!("{base}/v1/pieces/{}", m.user.address()))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    let other = data(8, 4096);
    let len = other.len();
    // Replayed: the same order again.
    assert_eq!(
        put_piece(&base, Some(&order), other.clone())
            .await
            .unwrap_err(),
        (StatusCode::FORBIDDEN, ErrorCode::InvalidNonce)
    );
    // For another provider.
    let theirs = m.home_order(OTHER_PROVIDER, 1, len);
    assert_eq!(
        put_piece(&base, Some(&theirs), other.clone())
            .await
            .unwrap_err(),
        (StatusCode::FORBIDDEN, ErrorCode::WrongDomain)
    );
    // Expired.
    let expired = m.order(
        &m.net.devnet.signer(REGISTRAR),
        me,
        2,
        len as u64,
        now() - 60,
    );
    assert_eq!(
        put_piece(&base, Some(&expired), other.clone())
            .await
            .unwrap_err(),
        (StatusCode::FORBIDDEN, ErrorCode::MessageExpired)
    );
    // Signed by someone who is not the token's home node (the token's holder).
    let foreign = m.order(&m.user.signer, me, 3, len as u64, now() + 3600);
    assert_eq!(
        put_piece(&base, Some(&foreign), other.clone())
            .await
            .unwrap_err(),
        (StatusCode::FORBIDDEN, ErrorCode::InvalidSignature)
    );
    // Unsigned: no order at all, or one without a signature.
    assert_eq!(
        put_piece(&base, None, other.clone()).await.unwrap_err(),
        (StatusCode::BAD_REQUEST, ErrorCode::BadRequest)
    );
    let mut unsigned = serde_json::to_value(m.home_order(PROVIDER, 4, len)).unwrap();
    unsigned.as_object_mut().unwrap().remove("signature");
    let r = reqwest::Client::new()
        .post(format!("{base}/v1/pieces"))
        .header(ORDER_HEADER, unsigned.to_string())
        .body(other.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // Larger than its order.
    let small = m.home_order(PROVIDER, 5, len - 1);
    assert_eq!(
        put_piece(&base, Some(&small), other.clone())
            .await
            .unwrap_err(),
        (StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::TooLarge)
    );
    // A valid fresh order still goes through.
    let fresh = m.home_order(PROVIDER, 6, len);
    put_piece(&base, Some(&fresh), other).await.expect("stored");
    assert_eq!(metric(&base, "px_node_provider_pieces_total").await, 8);

    // Co-signs only a deal over pieces it holds.
    let mut req = m.acceptance(PROVIDER, std::slice::from_ref(&got));
    req.root = B256::repeat_byte(1);
    let req = m.home_signed(req).await;
    assert_eq!(
        cosign(&base, "acceptance", &req).await.unwrap_err(),
        (StatusCode::CONFLICT, ErrorCode::BadRequest),
        "wrong root"
    );
    let mut unknown = req.clone();
    unknown.pieces = vec![want.cid.to_string().replace('a', "b")];
    assert!(cosign(&base, "acceptance", &unknown).await.is_err());
    node.shutdown().await;
    m.home.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unregistered_provider_refuses_to_start() {
    let m = Market::start().await;
    let e = px_node::spawn(m.provider_config("provider", PROVIDER))
        .await
        .expect_err("refuses to start");
    let text = e.to_string();
    assert!(
        text.contains("is not registered in the ProviderRegistry")
            && text.contains("registerProvider"),
        "{text}"
    );
    m.home.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prover_proves_each_period_and_the_earnings_are_claimable() {
    let m = Market::start().await;
    let node = m.provider_node(PROVIDER).await;
    let base = node.url();
    let mut pieces = Vec::new();
    for i in 0..3u16 {
        let bytes = data(100 + u64::from(i), PIECE);
        let o = m.home_order(PROVIDER, i, bytes.len());
        pieces.push(put_piece(&base, Some(&o), bytes).await.unwrap());
    }
    let deal = m.open_deal(&base, PROVIDER, &pieces).await;
    assert_eq!(m.deal(deal).await.nextPeriod, 0);
    // Period 0 is challenged 100 blocks after the deal opened.
    m.mine(101).await;
    m.wait_period(deal, 1).await;
    let market = m.market(PROVIDER);
    let me = m.net.devnet.address(PROVIDER);
    let earned = market.earningsOf(me).call().await.unwrap();
    assert!(earned > U256::ZERO, "the period is claimable");
    // The sent proof is settled with its gas on a later poll.
    let provider = node.provider().unwrap();
    let t = Instant::now();
    let (gas, build_us) = loop {
        if let Some(ProofState::Proven {
            gas_used, build_us, ..
        }) = provider.store().proof(&deal, 1, 0).unwrap()
        {
            break (gas_used, build_us);
        }
        assert!(t.elapsed() < Duration::from_secs(20), "proof settled");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    eprintln!(
        "proveStorage: {gas} gas, proof built in {build_us} us (4 challenges, 3 pieces of 1 MiB)"
    );
    assert_eq!(
        metric(&base, "px_node_provider_proofs_total").await,
        2,
        "submitted + proven"
    );
    // Next period too.
    m.mine(100).await;
    m.wait_period(deal, 2).await;
    let px = PXToken::new(
        m.net.devnet.deployment.px_token,
        m.net.devnet.provider(ADMIN),
    );
    let before = px.balanceOf(me).call().await.unwrap();
    send_ok(market.claimEarnings()).await;
    let after = px.balanceOf(me).call().await.unwrap();
    assert!(after - before > earned, "two periods' earnings paid");
    node.shutdown().await;
    m.home.shutdown().await;
}

/// `px_node_provider_proofs_total{outcome="missed"}` of the node at `base`.
async fn missed_proofs(base: &str) -> u64 {
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("px_node_provider_proofs_total{outcome=\"missed\"} "))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0)
}

/// A deal of one period is proven (completed), then the home node opens it again with a
/// new acceptance the provider co-signs: the same deal id, generation 2, periods from 0.
/// The prover proves period 0 of the new generation too (its own proof, not the first
/// generation's row for the same deal and period), and no period is ever missed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reopened_deal_is_proven_again_from_period_0() {
    let m = Market::start().await;
    let node = m.provider_node(PROVIDER).await;
    let base = node.url();
    let bytes = data(700, PIECE);
    let o = m.home_order(PROVIDER, 0, bytes.len());
    let pieces = vec![put_piece(&base, Some(&o), bytes).await.unwrap()];
    let mut deal = B256::ZERO;
    for generation in 1..=2u16 {
        let mut req = m.acceptance(PROVIDER, &pieces);
        req.periods = 1;
        let req = m.home_signed(req).await;
        let co = cosign(&base, "acceptance", &req).await.expect("co-signed");
        send_ok(
            m.market(REGISTRAR)
                .openDeal(acceptance_of(&req), co.signature),
        )
        .await;
        assert!(
            generation == 1 || co.deal_id == deal,
            "the deal id is reused"
        );
        deal = co.deal_id;
        let d = m.deal(deal).await;
        assert_eq!(
            (d.generation, d.nextPeriod, d.status),
            (generation, 0, DEAL_ACTIVE),
            "generation {generation} open"
        );
        // Period 0 is challenged 100 blocks after the deal opened.
        m.mine(101).await;
        m.wait_period(deal, 1).await;
        let d = m.deal(deal).await;
        assert_eq!(
            (d.generation, d.status, d.misses),
            (generation, DEAL_COMPLETED, 0),
            "generation {generation} proven and completed"
        );
    }
    // Past the second generation's proof window: nothing was missed.
    m.mine(60).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(m.deal(deal).await.misses, 0);
    assert_eq!(missed_proofs(&base).await, 0, "no missed alert");
    // Each generation's period 0 has its own row, each proven by its own transaction.
    let provider = node.provider().unwrap();
    let store = provider.store();
    let t = Instant::now();
    let hashes = loop {
        match (
            store.proof(&deal, 1, 0).unwrap(),
            store.proof(&deal, 2, 0).unwrap(),
        ) {
            (
                Some(ProofState::Proven { hash: a, .. }),
                Some(ProofState::Proven { hash: b, .. }),
            ) => {
                break (a, b);
            }
            rows => assert!(t.elapsed() < Duration::from_secs(20), "settled: {rows:?}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_ne!(hashes.0, hashes.1, "two proofs");
    node.shutdown().await;
    m.home.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_that_dropped_its_piece_cannot_prove_and_is_slashed() {
    let m = Market::start().await;
    let node = m.provider_node(PROVIDER).await;
    let base = node.url();
    let bytes = data(9, PIECE);
    let o = m.home_order(PROVIDER, 0, bytes.len());
    let p = put_piece(&base, Some(&o), bytes).await.unwrap();
    let deal = m.open_deal(&base, PROVIDER, std::slice::from_ref(&p)).await;
    // The piece goes from the store.
    let store = m.net.ipfs_url(&node);
    let ipfs = px_node::ipfs::Ipfs::new(&store).unwrap();
    ipfs.unpin(&p.cid).await.unwrap();
    let gc = reqwest::Client::new()
        .post(format!("{store}/api/v0/repo/gc"))
        .send()
        .await
        .unwrap();
    assert!(gc.status().is_success(), "gc: {}", gc.status());
    m.mine(101).await;
    let t = Instant::now();
    while metric(&base, "px_node_provider_proofs_total").await == 0 {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "unbuildable proof reported"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("px_node_provider_proofs_total{outcome=\"unbuildable\"} 1"),
        "{text}"
    );
    assert!(text.contains("px_node_provider_proofs_total{outcome=\"submitted\"} 0"));
    // The window closes; anyone marks the period missed and the stake is slashed.
    m.mine(50).await;
    let registry = ProviderRegistry::new(
        m.net.devnet.deployment.provider_registry.unwrap(),
        m.net.devnet.provider(ADMIN),
    );
    let me = m.net.devnet.address(PROVIDER);
    let stake = registry.stakeOf(me).call().await.unwrap();
    send_ok(m.market(KEEPER).markMissed(U256::from_be_bytes(deal.0))).await;
    let slashed = stake - registry.stakeOf(me).call().await.unwrap();
    assert_eq!(slashed, ether(10), "slashPerMiss");
    let d = m.deal(deal).await;
    assert_eq!((d.nextPeriod, d.misses), (1, 1));
    assert_eq!(
        m.tx_count(PROVIDER).await,
        2,
        "registration only: approve + register"
    );
    node.shutdown().await;
    m.home.shutdown().await;
}

/// The provider process aborts right after storing its signed proof (before the broadcast),
/// then right after the broadcast; each restart finishes the period with that one
/// transaction and sends no other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_mid_prove_proves_once() {
    let m = Market::start().await;
    m.register(PROVIDER).await;
    let dir = m.net.dir.path().join("provider-process");
    let key = m.provider_key(PROVIDER);
    let env = [
        ("PX_NODE_ROLE", "provider"),
        ("PX_NODE_PROVIDER_KEY", key.as_str()),
        ("PX_NODE_PROVIDER_POLL_MS", "200"),
    ];
    let registered = m.tx_count(PROVIDER).await;
    let (mut child, base) =
        start_process(&m.net, &dir, Some("prover_before_broadcast"), true, &env);
    wait_healthy(&base).await;
    let bytes = data(11, PIECE);
    let o = m.home_order(PROVIDER, 0, bytes.len());
    let p = put_piece(&base, Some(&o), bytes).await.unwrap();
    let deal = m.open_deal(&base, PROVIDER, &[p]).await;

    // Period 0: aborted after the proof was stored, before it left.
    m.mine(101).await;
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(!status.success(), "aborted at the failpoint");
    assert_eq!(m.deal(deal).await.nextPeriod, 0, "nothing sent");
    assert_eq!(m.tx_count(PROVIDER).await, registered);
    let (mut child, base) = start_process(&m.net, &dir, None, true, &env);
    wait_healthy(&base).await;
    m.wait_period(deal, 1).await;
    assert_eq!(
        m.tx_count(PROVIDER).await,
        registered + 1,
        "the stored proof, once"
    );
    child.kill().unwrap();
    child.wait().unwrap();

    // Period 1: aborted right after the broadcast, the transaction still in the mempool
    // (automine off); the restarted prover must not send a second one for the period.
    let (child, base) = start_process(&m.net, &dir, Some("prover_after_broadcast"), true, &env);
    wait_healthy(&base).await;
    m.automine(false).await;
    m.mine(100).await;
    let status = tokio::task::spawn_blocking(move || {
        let mut child = child;
        child.wait().unwrap()
    })
    .await
    .unwrap();
    assert!(!status.success(), "aborted at the failpoint");
    assert_eq!(m.deal(deal).await.nextPeriod, 1, "sent, not mined yet");
    let (mut child, base) = start_process(&m.net, &dir, None, true, &env);
    wait_healthy(&base).await;
    // Several polls with the proof pending: nothing more is sent for period 1.
    tokio::time::sleep(Duration::from_secs(2)).await;
    m.automine(true).await;
    m.mine(1).await;
    assert_eq!(m.deal(deal).await.nextPeriod, 2, "the one proof was mined");
    assert_eq!(
        m.tx_count(PROVIDER).await,
        registered + 2,
        "one proof per period"
    );
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("px_node_provider_proofs_total{outcome=\"submitted\"} 0"),
        "the restarted process sent nothing: {text}"
    );
    assert!(
        text.contains("px_node_provider_proofs_total{outcome=\"unbuildable\"} 0"),
        "nor tried to prove the period again: {text}"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    m.home.shutdown().await;
}

/// `GET /v1/pieces/{cid}`: its status and body.
async fn get_piece(base: &str, cid: &str) -> (StatusCode, Vec<u8>) {
    let r = reqwest::get(format!("{base}/v1/pieces/{cid}"))
        .await
        .unwrap();
    let status = r.status();
    let body = r.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
    (status, body)
}

/// Waits (up to 20 s) until the provider at `base` no longer serves `cid`.
async fn wait_released(base: &str, cid: &str) -> Duration {
    let t = Instant::now();
    while get_piece(base, cid).await.0 != StatusCode::NOT_FOUND {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "piece {cid} released in time"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    t.elapsed()
}

/// Co-signing needs the token's home node: an acceptance or root update unsigned, signed by
/// the token's holder, or home-signed for other terms is refused (403) and nothing is
/// recorded; home-signed, it is co-signed and the market takes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cosigning_needs_the_token_home_nodes_signature() {
    let m = Market::start().await;
    let node = m.provider_node(PROVIDER).await;
    let base = node.url();
    let store = node.provider().unwrap().store();
    let mut pieces = Vec::new();
    for i in 0..2u16 {
        let bytes = data(200 + u64::from(i), 4096);
        let o = m.home_order(PROVIDER, i, bytes.len());
        pieces.push(put_piece(&base, Some(&o), bytes).await.unwrap());
    }
    let refused = (StatusCode::FORBIDDEN, ErrorCode::InvalidSignature);
    let home = m.net.devnet.signer(REGISTRAR);

    let req = m.acceptance(PROVIDER, &pieces[..1]);
    assert_eq!(
        cosign(&base, "acceptance", &req).await.unwrap_err(),
        refused,
        "no home signature"
    );
    let digest = m
        .market(ADMIN)
        .acceptanceDigest(acceptance_of(&req))
        .call()
        .await
        .unwrap();
    let mut holder = req.clone();
    holder.home_signature = sign_digest(&m.user.signer, &digest);
    assert_eq!(
        cosign(&base, "acceptance", &holder).await.unwrap_err(),
        refused,
        "signed by the holder"
    );
    let mut longer = req.clone();
    longer.periods += 1;
    let mut other_terms = req.clone();
    other_terms.home_signature = m.home_signed(longer).await.home_signature;
    assert_eq!(
        cosign(&base, "acceptance", &other_terms).await.unwrap_err(),
        refused,
        "home signature of other terms"
    );
    let mut short = req.clone();
    short.home_signature = vec![7u8; 10].into();
    assert_eq!(
        cosign(&base, "acceptance", &short).await.unwrap_err(),
        refused,
        "not a signature"
    );
    assert!(store.deals().unwrap().is_empty(), "nothing recorded");

    let deal = m.open_deal(&base, PROVIDER, &pieces[..1]).await;
    let (mut update, _) = m.root_update(deal, &pieces, 0, &m.user.signer).await;
    assert_eq!(
        cosign(&base, "root-update", &update).await.unwrap_err(),
        refused,
        "root update signed by the holder"
    );
    update.home_signature = Bytes::new();
    assert_eq!(
        cosign(&base, "root-update", &update).await.unwrap_err(),
        refused,
        "root update without a home signature"
    );
    assert_eq!(store.deal_root(&deal, &update.root).unwrap(), None);
    let (update, u) = m.root_update(deal, &pieces, 0, &home).await;
    let co = cosign(&base, "root-update", &update)
        .await
        .expect("co-signed");
    // One update per period: the next period's first block takes it, with both signatures.
    m.mine(100).await;
    send_ok(
        m.market(KEEPER)
            .updateDealRoot(u, update.home_signature.clone(), co.signature),
    )
    .await;
    assert_eq!(m.deal(deal).await.root, update.root);
    node.shutdown().await;
    m.home.shutdown().await;
}

/// With a grace of 2 s: a stored piece no deal lists and one under an acceptance that was
/// never opened are unpinned and forgotten; the pieces under the opened deal stay. A root
/// update that ends a piece, landing at period 0's challenge block, keeps that piece while
/// period 0 (which challenges the replaced root) is open, and releases it once proven.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pieces_no_live_deal_root_lists_are_released_after_the_grace() {
    let m = Market::start().await;
    let node = m
        .provider_node_with(PROVIDER, |c| {
            c.provider.as_mut().unwrap().orphan_grace_secs = 2;
        })
        .await;
    let base = node.url();
    let ipfs = m.net.ipfs_url(&node);
    let released = "px_node_provider_pieces_released_total";
    let mut bytes = Vec::new();
    let mut p = Vec::new();
    for i in 0..4u16 {
        let b = data(300 + u64::from(i), PIECE);
        let o = m.home_order(PROVIDER, i, b.len());
        p.push(put_piece(&base, Some(&o), b.clone()).await.unwrap());
        bytes.push(b);
    }
    let (kept, ended, never, unopened) = (&p[0], &p[1], &p[2], &p[3]);
    let req = m
        .home_signed(m.acceptance(PROVIDER, std::slice::from_ref(unopened)))
        .await;
    cosign(&base, "acceptance", &req).await.expect("co-signed");
    let deal = m
        .open_deal(&base, PROVIDER, &[kept.clone(), ended.clone()])
        .await;

    let took = wait_released(&base, &never.cid).await;
    wait_released(&base, &unopened.cid).await;
    eprintln!("unlisted piece released {took:?} after the deal opened (grace 2 s)");
    let pinned = pins(&ipfs).await;
    assert!(!pinned.contains(&never.cid) && !pinned.contains(&unopened.cid));
    assert!(pinned.contains(&kept.cid) && pinned.contains(&ended.cid));
    assert_eq!(metric(&base, released).await, 2);
    let store = node.provider().unwrap().store();
    assert!(store.piece(&never.cid).unwrap().is_none(), "forgotten");
    assert!(store.pending().unwrap().is_empty());

    // The update lands at period 0's challenge block (startBlock + 100).
    let start: u64 = m.deal(deal).await.startBlock.to();
    let block = m
        .net
        .devnet
        .provider(ADMIN)
        .get_block_number()
        .await
        .unwrap();
    assert!(block < start + 99, "block {block}, deal start {start}");
    m.mine(start + 99 - block).await;
    let (update, u) = m
        .root_update(
            deal,
            std::slice::from_ref(kept),
            ended.size,
            &m.net.devnet.signer(REGISTRAR),
        )
        .await;
    let co = cosign(&base, "root-update", &update)
        .await
        .expect("co-signed");
    send_ok(
        m.market(REGISTRAR)
            .updateDealRoot(u, update.home_signature.clone(), co.signature),
    )
    .await;
    let d = m.deal(deal).await;
    assert_eq!((d.rootSince.to::<u64>(), d.nextPeriod), (start + 100, 0));
    // Several sweeps: period 0 challenges the replaced root, so its pieces stay.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (status, body) = get_piece(&base, &ended.cid).await;
    assert_eq!(status, StatusCode::OK, "still challenged by period 0");
    assert!(body == bytes[1]);
    assert_eq!(metric(&base, released).await, 2);
    m.mine(1).await;
    m.wait_period(deal, 1).await;
    wait_released(&base, &ended.cid).await;
    let (status, body) = get_piece(&base, &kept.cid).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body == bytes[0]);
    let pinned = pins(&ipfs).await;
    assert!(pinned.contains(&kept.cid) && !pinned.contains(&ended.cid));
    assert_eq!(metric(&base, released).await, 3);
    node.shutdown().await;
    m.home.shutdown().await;
}

/// A piece body trickled below the minimum rate (never idle for the idle timeout) is
/// answered 408 once `idle_timeout + len / min_upload_rate` passes, and leaves no pin and no
/// journal row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickled_piece_body_is_answered_408_and_leaves_nothing() {
    use tokio::io::AsyncWriteExt;
    let m = Market::start().await;
    let node = m
        .provider_node_with(PROVIDER, |c| {
            c.idle_timeout = Duration::from_secs(1);
            c.min_upload_rate = 256 << 10;
        })
        .await;
    let base = node.url();
    let ipfs = m.net.ipfs_url(&node);
    let before = pins(&ipfs).await;
    // Deadline: 1 s idle + 512 KiB at 256 KiB/s = 3 s.
    let len = 512 << 10;
    let order = m.home_order(PROVIDER, 0, len);
    let head = format!(
        "POST /v1/pieces HTTP/1.1\r\nHost: {}\r\n{ORDER_HEADER}: {}\r\nContent-Length: \
         {len}\r\n\r\n",
        node.addr(),
        serde_json::to_string(&order).unwrap()
    );
    let tcp = tokio::net::TcpStream::connect(node.addr()).await.unwrap();
    let (mut rd, mut wr) = tcp.into_split();
    wr.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    // 100 bytes every 300 ms: never silent for 1 s, far below the rate.
    let trickle = tokio::spawn(async move {
        for c in data(400, len).chunks(100) {
            if wr.write_all(c).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });
    let (answer, _) = tokio::time::timeout(
        Duration::from_secs(20),
        px_cli::devnet::read_http_head(&mut rd),
    )
    .await
    .expect("answered within 20 s")
    .expect("an answer");
    let took = started.elapsed();
    trickle.abort();
    let answer = String::from_utf8_lossy(&answer).to_string();
    eprintln!("trickled piece body answered after {took:?}");
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
    assert!(
        took >= Duration::from_millis(2500),
        "not before the deadline: {took:?}"
    );
    let provider = node.provider().unwrap();
    assert!(
        provider.store().pending().unwrap().is_empty(),
        "no journal row"
    );
    assert!(provider.store().piece_cids().unwrap().is_empty());
    assert_eq!(pins(&ipfs).await, before, "nothing left pinned");
    assert_eq!(metric(&base, "px_node_timeouts_total").await, 1);
    // The order was not used: the piece can still come, at a decent pace.
    let bytes = data(400, len);
    put_piece(&base, Some(&order), bytes).await.expect("stored");
    node.shutdown().await;
    m.home.shutdown().await;
}

/// On an exclusive backend (the embedded px-store), start-up recovery after a home-role
/// upload that died mid-add (an `uploads` row without a CID, as such a crash leaves it)
/// unpins every pin the node's state does not reference; the provider's pieces live in
/// `provider.redb` and must survive it: the restarted provider still holds, serves and
/// proves its piece.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exclusive_backend_recovery_keeps_the_provider_pieces() {
    let m = Market::start().await;
    if m.net.daemon.is_some() {
        // A shared daemon is not exclusive: the home node of the test pins there too.
        eprintln!("skipped: the embedded store's recovery only");
        m.home.shutdown().await;
        return;
    }
    m.register(PROVIDER).await;
    let config = m.provider_config("provider", PROVIDER);
    assert!(config.backend_is_exclusive());
    let node = px_node::spawn(config.clone()).await.unwrap();
    let base = node.url();
    let bytes = data(500, PIECE);
    let o = m.home_order(PROVIDER, 0, bytes.len());
    let p = put_piece(&base, Some(&o), bytes.clone()).await.unwrap();
    let deal = m.open_deal(&base, PROVIDER, std::slice::from_ref(&p)).await;
    node.shutdown().await;

    let db = px_node::db::Db::open(&config.data_dir.join("node.redb")).unwrap();
    let crashed = px_node::db::UploadPin {
        token_id: m.token,
        cid: None,
    };
    db.put_upload(1, &crashed).unwrap();
    drop(db);
    let node = px_node::spawn(config).await.unwrap();
    let base = node.url();
    assert!(
        node.node().db().uploads().unwrap().is_empty(),
        "recovery resolved the upload"
    );
    let ipfs = m.net.ipfs_url(&node);
    assert!(
        pins(&ipfs).await.contains(&p.cid),
        "the piece is still pinned"
    );
    let (status, body) = get_piece(&base, &p.cid).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body == bytes, "served whole");
    m.mine(101).await;
    m.wait_period(deal, 1).await;
    node.shutdown().await;
    m.home.shutdown().await;
}

/// The max fee and priority fee of a stored proof transaction.
fn fees_of(raw: &[u8]) -> (u128, u128) {
    use alloy::consensus::{Transaction as _, TxEnvelope};
    use alloy::eips::Decodable2718;
    let tx = TxEnvelope::decode_2718(&mut &raw[..]).unwrap();
    (tx.max_fee_per_gas(), tx.max_priority_fee_per_gas().unwrap())
}

/// A proof stuck under a base-fee spike (the next blocks' base fee above its max fee) is
/// signed again after `resend_after_polls` polls with the same nonce and fees raised by at
/// least 12.5%; the replacement is mined, the period proven, and one nonce used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_proof_is_resent_with_higher_fees_and_the_same_nonce() {
    let m = Market::start().await;
    let node = m
        .provider_node_with(PROVIDER, |c| {
            c.provider.as_mut().unwrap().resend_after_polls = 5;
        })
        .await;
    let base = node.url();
    let bytes = data(600, PIECE);
    let o = m.home_order(PROVIDER, 0, bytes.len());
    let p = put_piece(&base, Some(&o), bytes).await.unwrap();
    let deal = m.open_deal(&base, PROVIDER, &[p]).await;
    let nonces = m.tx_count(PROVIDER).await;
    let store = node.provider().unwrap().store();
    m.automine(false).await;
    m.mine(101).await;
    let t = Instant::now();
    let (first, first_fees) = loop {
        if let Some(ProofState::Sent { hash, raw, .. }) = store.proof(&deal, 1, 0).unwrap() {
            break (hash, fees_of(&raw));
        }
        assert!(t.elapsed() < Duration::from_secs(20), "proof sent");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // The next block's base fee is 4 x the proof's max fee: it cannot be included.
    m.net
        .devnet
        .provider(ADMIN)
        .raw_request::<_, serde_json::Value>(
            "anvil_setNextBlockBaseFeePerGas".into(),
            (format!("0x{:x}", first_fees.0 * 4),),
        )
        .await
        .unwrap();
    m.mine(1).await;
    assert_eq!(m.deal(deal).await.nextPeriod, 0, "stuck");
    let t = Instant::now();
    let (second, second_fees, replaced) = loop {
        if let Some(ProofState::Sent {
            hash,
            raw,
            replaced,
            ..
        }) = store.proof(&deal, 1, 0).unwrap()
            && hash != first
        {
            break (hash, fees_of(&raw), replaced);
        }
        assert!(t.elapsed() < Duration::from_secs(20), "proof resent");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    eprintln!(
        "stuck proof resent after {:?}: max fee {} -> {}, priority {} -> {}",
        t.elapsed(),
        first_fees.0,
        second_fees.0,
        first_fees.1,
        second_fees.1
    );
    assert_eq!(replaced, vec![first]);
    assert!(second_fees.0 >= first_fees.0 + first_fees.0 / 8);
    assert!(second_fees.1 >= first_fees.1 + first_fees.1 / 8);
    m.mine(1).await;
    m.wait_period(deal, 1).await;
    assert_eq!(
        m.tx_count(PROVIDER).await,
        nonces + 1,
        "one proof, one nonce"
    );
    let t = Instant::now();
    loop {
        if let Some(ProofState::Proven { hash, .. }) = store.proof(&deal, 1, 0).unwrap() {
            assert_eq!(hash, second, "the replacement was mined");
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(20), "proof settled");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    m.automine(true).await;
    node.shutdown().await;
    m.home.shutdown().await;
}
