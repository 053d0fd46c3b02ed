//! The SDK client: chain side here, storage-node side in the `node` module.
//!
//! # Flow
//! 1. [`Client::plans`] lists what can be minted; [`Client::mint`] mints (paying the plan's
//!    PXToken price through an EIP-2612 permit or an allowance, or its native price), or
//!    [`Client::mint_with_key`] mints and binds a storage node's IPNS key in one transaction.
//! 2. [`Client::token`] reads a token's state; [`Client::can_upload`] asks the on-chain gate and
//!    answers the contract's [`GateReason`]; [`Client::ensure_can_upload`] turns a closed gate
//!    into [`Error::GateClosed`] with the next step, or (with `auto_sync`) requests a sync and
//!    waits for it first.
//! 3. [`Client::request_sync`] sends the Chainlink request; [`Client::wait_synced`] follows the
//!    contract's `Synced`/`SyncFailed` events until the oracle answered.

use std::{sync::Arc, time::Duration};

use alloy::{
    network::EthereumWallet,
    primitives::{Address, B256, Bytes, U256},
    providers::{DynProvider, Provider, ProviderBuilder},
    rpc::types::{BlockId, Filter, Log, TransactionReceipt},
    signers::{Signer, local::PrivateKeySigner},
    sol,
    sol_types::{SolEvent, SolStruct},
};
use px_core::siwe::Scope;
use serde::{Deserialize, Serialize};

use crate::{
    Deployment,
    api::{self, GateReason},
    contracts::{
        PXToken,
        StorageNFT::{self, StorageNFTErrors},
        sync_status,
    },
    crypto::OwnerKey,
    error::{Error, Result},
};

/// How a [`Client`] connects when it builds its own provider from an RPC URL and a local key
/// ([`Client::new`]). Fields are public; [`ClientConfig::new`] fills the defaults. To bring your
/// own provider or signer, use [`Client::builder`].
#[derive(Clone)]
pub struct ClientConfig {
    /// JSON-RPC URL of the chain.
    pub rpc_url: String,
    /// The wallet that signs transactions, sign-ins and (by default) derives the owner key.
    pub signer: PrivateKeySigner,
    /// The contracts' deployment.
    pub deployment: Deployment,
    /// Base URL of the storage node (needed for upload, download, list and delete).
    pub node_url: Option<String>,
    /// Owner key for encryption; `None` derives it from `signer` on first use.
    pub owner_key: Option<OwnerKey>,
    /// How often to poll the chain for events (default 500 ms).
    pub poll_interval: Duration,
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("rpc_url", &self.rpc_url)
            .field("signer", &self.signer.address())
            .field("deployment", &self.deployment)
            .field("node_url", &self.node_url)
            .field("owner_key", &self.owner_key)
            .field("poll_interval", &self.poll_interval)
            .finish()
    }
}

impl ClientConfig {
    /// A configuration without a storage node.
    pub fn new(
        rpc_url: impl Into<String>,
        signer: PrivateKeySigner,
        deployment: Deployment,
    ) -> Self {
        Self {
            rpc_url: rpc_url.into(),
            signer,
            deployment,
            node_url: None,
            owner_key: None,
            poll_interval: Duration::from_millis(500),
        }
    }

    /// Sets the storage node's base URL.
    pub fn with_node(mut self, url: impl Into<String>) -> Self {
        self.node_url = Some(url.into().trim_end_matches('/').to_owned());
        self
    }

    /// Uses `key` as the owner key instead of deriving one from the wallet.
    pub fn with_owner_key(mut self, key: OwnerKey) -> Self {
        self.owner_key = Some(key);
        self
    }
}

/// Builds a [`Client`] from a provider and a signer the caller made ([`Client::builder`]).
///
/// The **provider** sends transactions and must be able to sign them for the signer's account
/// (for example `ProviderBuilder::new().wallet(..)`, or a node that holds the account); the
/// **signer** signs messages: the node sign-in (EIP-4361), EIP-2612 permits and the owner-key
/// derivation (EIP-712). They normally hold the same key.
#[must_use = "call `build` to connect"]
pub struct ClientBuilder<P, S> {
    provider: P,
    signer: S,
    deployment: Deployment,
    node_url: Option<String>,
    owner_key: Option<OwnerKey>,
    poll_interval: Duration,
    http: Option<reqwest::Client>,
}

impl<P, S: Signer> std::fmt::Debug for ClientBuilder<P, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("signer", &self.signer.address())
            .field("deployment", &self.deployment)
            .field("node_url", &self.node_url)
            .field("owner_key", &self.owner_key)
            .field("poll_interval", &self.poll_interval)
            .finish_non_exhaustive()
    }
}

impl<P, S> ClientBuilder<P, S>
where
    P: Provider,
    S: Signer + Send + Sync,
{
    /// Sets the storage node's base URL (needed for upload, download, list and delete). The
    /// sign-in's domain and URI are taken from it.
    pub fn node(mut self, url: impl Into<String>) -> Self {
        self.node_url = Some(url.into().trim_end_matches('/').to_owned());
        self
    }

    /// Uses `key` as the owner key instead of deriving one from the signer.
    pub fn owner_key(mut self, key: OwnerKey) -> Self {
        self.owner_key = Some(key);
        self
    }

    /// How often to poll the chain for events (default 500 ms).
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// The HTTP client for the storage node (default: reqwest's, with a 10 s connect timeout).
    pub fn http_client(mut self, http: reqwest::Client) -> Self {
        self.http = Some(http);
        self
    }

    /// Checks that the provider serves the deployment's chain and that the node URL is usable,
    /// and answers the client.
    ///
    /// # Errors
    /// [`Error::Config`] for another chain or an invalid node URL; [`Error::Transport`] when the
    /// chain cannot be reached.
    pub async fn build(self) -> Result<Client<P, S>> {
        let chain_id = self.provider.get_chain_id().await?;
        if chain_id != self.deployment.chain_id {
            return Err(Error::Config(format!(
                "the RPC serves chain {chain_id} but the deployment is for chain {}",
                self.deployment.chain_id
            )));
        }
        let node_scope = self
            .node_url
            .as_deref()
            .map(Scope::from_url)
            .transpose()
            .map_err(|e| Error::Config(format!("node URL: {e}")))?;
        let owner_key = tokio::sync::OnceCell::new();
        if let Some(key) = self.owner_key {
            owner_key.set(key).expect("fresh cell");
        }
        let http = match self.http {
            Some(http) => http,
            None => reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(10))
                .build()?,
        };
        Ok(Client {
            inner: Arc::new(Inner {
                provider: self.provider,
                signer: self.signer,
                deployment: self.deployment,
                node_url: self.node_url,
                node_scope,
                http,
                session: tokio::sync::Mutex::new(None),
                owner_key,
                poll: self.poll_interval,
            }),
        })
    }
}

/// Derives the owner key from `signer`'s EIP-712 signature over the fixed owner-key message
/// ([`OwnerKey::from_signature`]), after checking that the signer is deterministic.
///
/// The key must come out the same on every device and every run, or files encrypted with it
/// are lost; so the message is signed twice and the signatures compared, and the signature
/// must recover to the signer's address.
///
/// # Errors
/// [`Error::NondeterministicSigner`] when the two signatures differ; [`Error::Signing`] when
/// the signer fails or signs for another address.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use alloy::signers::local::PrivateKeySigner;
/// let wallet: PrivateKeySigner =
///     "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d".parse().unwrap();
/// let a = px_sdk::owner_key_from_signer(&wallet).await.unwrap();
/// let b = px_sdk::owner_key_from_signer(&wallet).await.unwrap();
/// assert_eq!(a.id_hex(), b.id_hex()); // deterministic: nothing to back up
/// # });
/// ```
pub async fn owner_key_from_signer<S: Signer + Send + Sync>(signer: &S) -> Result<OwnerKey> {
    let address = signer.address();
    let (message, domain) = px_core::crypto::owner_key_message(address);
    let first = signer.sign_typed_data(&message, &domain).await?;
    let second = signer.sign_typed_data(&message, &domain).await?;
    if first != second {
        return Err(Error::NondeterministicSigner { address });
    }
    let hash = message.eip712_signing_hash(&domain);
    match first.recover_address_from_prehash(&hash) {
        Ok(a) if a == address => {}
        _ => {
            return Err(Error::Signing(alloy::signers::Error::other(format!(
                "the owner-key signature does not recover to the signer's address {address}"
            ))));
        }
    }
    Ok(OwnerKey::from_signature(address, &first))
}

/// A plan tokens are minted from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// Plan id (1-based).
    pub id: u64,
    /// Quota in bytes.
    pub quota: u64,
    /// Validity in seconds (0: never expires).
    pub validity: u64,
    /// Whether it can be minted.
    pub mintable: bool,
    /// Whether tokens of it can be renewed (plans with an expiry only).
    pub renewable: bool,
    /// Prepaid sync requests included with each purchase (mint, renewal, upgrade) of a plan with
    /// an expiry; tokens without expiry are rate-limited instead.
    pub sync_credits: u64,
    /// Whether it is the free plan (once per address).
    pub free: bool,
    /// Price in PXToken base units (0: not payable in PXToken).
    pub token_price: U256,
    /// Price in wei (0: not payable in native coin).
    pub native_price: U256,
}

/// How to pay for a mint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Payment {
    /// Free plans pay nothing; otherwise a PXToken permit when the balance covers the price,
    /// else the native price.
    #[default]
    Auto,
    /// PXToken through an EIP-2612 permit signed on the spot (one transaction).
    Permit,
    /// PXToken through an allowance (approves first when the allowance is short).
    Allowance,
    /// Native coin.
    Native,
}

/// A token's on-chain state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenState {
    /// Token id.
    pub id: u64,
    /// Owner.
    pub owner: Address,
    /// Plan id.
    pub plan: u64,
    /// Quota in bytes.
    pub quota: u64,
    /// Bytes used as of the last accepted sync.
    pub used: u64,
    /// Files as of the last accepted sync.
    pub file_count: u64,
    /// Expiry (unix seconds; 0: never).
    pub expires_at: u64,
    /// Time of the last accepted sync (the mint time before the first).
    pub last_sync_at: u64,
    /// Sequence number of the last accepted usage record.
    pub seq: u64,
    /// Prepaid sync requests left (tokens with an expiry spend one per request).
    pub sync_credits: u64,
    /// Whether a sync request awaits its answer.
    pub pending: bool,
    /// When the last sync was requested.
    pub requested_at: u64,
    /// Status of the last answered request ([`sync_status`]).
    pub last_status: u8,
    /// ed25519 key of the token's IPNS name (`None`: no key bound).
    pub ipns_key: Option<B256>,
    /// Chain time when this was read.
    pub now: u64,
    /// Sync window in seconds: uploads lock this long after the last sync.
    pub sync_window: u64,
}

/// The gate's answer for one upload size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gate {
    /// Whether the upload is allowed.
    pub ok: bool,
    /// Why not ([`GateReason::None`] when allowed).
    pub reason: GateReason,
}

/// A sent sync request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncRequest {
    /// Token id.
    pub token_id: u64,
    /// Chainlink request id.
    pub request_id: B256,
    /// Block the request was mined in.
    pub block: u64,
}

/// An accepted sync.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Synced {
    /// Token id.
    pub token_id: u64,
    /// Chainlink request id.
    pub request_id: B256,
    /// Bytes used.
    pub used: u64,
    /// Files stored.
    pub file_count: u64,
    /// Sequence number of the record.
    pub seq: u64,
    /// CID of the usage record.
    pub record_cid: String,
}

sol! {
    /// EIP-2612 permit.
    struct Permit {
        address owner;
        address spender;
        uint256 value;
        uint256 nonce;
        uint256 deadline;
    }
}

/// Seconds after which the Operator lets an unanswered request be cancelled
/// (`StorageNFT.REQUEST_EXPIRY`, Chainlink `Operator.EXPIRYTIME`).
pub const REQUEST_EXPIRY_SECS: u64 = 300;

/// The text form of the binary CID a sync answer carries (`Synced.recordCid`); bytes that are
/// not a CID are shown as hex.
fn cid_text(bytes: &[u8]) -> String {
    match cid::Cid::try_from(bytes) {
        Ok(c) => c.to_string(),
        Err(_) => bytes.iter().map(|b| format!("{b:02x}")).collect(),
    }
}

/// Largest block range of one `eth_getLogs` query.
pub const LOG_WINDOW: u64 = 5_000;

/// The name of a [`sync_status`] code.
pub fn sync_status_name(status: u8) -> &'static str {
    match status {
        sync_status::OK => "ok",
        sync_status::RECORD_NOT_FOUND => "usage record not found under the token's IPNS name",
        sync_status::BAD_SIGNATURE => "IPNS record signature invalid",
        sync_status::RECORD_EXPIRED => "IPNS record expired",
        sync_status::V1_ONLY => "IPNS record has only a V1 signature",
        sync_status::BAD_USAGE_RECORD => "usage record invalid",
        sync_status::WRONG_BINDING => "usage record bound to another chain, contract or token",
        sync_status::IPFS_UNAVAILABLE => "IPFS unavailable to the oracle",
        sync_status::SEQUENCE_REGRESSED => "usage record sequence went backwards",
        sync_status::MALFORMED_ANSWER => "the oracle's answer carried no usage record CID",
        sync_status::WRONG_TOKEN => "the oracle's answer named another token",
        sync_status::STALE_SEQUENCE => "usage record not newer than the last synced one",
        _ => "unknown status",
    }
}

/// "3 days", "5 hours", "12 minutes", "40 seconds".
pub fn human_duration(secs: u64) -> String {
    let (n, unit) = match secs {
        s if s >= 2 * 86_400 => (s / 86_400, "day"),
        s if s >= 2 * 3_600 => (s / 3_600, "hour"),
        s if s >= 2 * 60 => (s / 60, "minute"),
        s => (s, "second"),
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

/// "1.5 GiB".
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < UNITS.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

pub(crate) struct Inner<P, S> {
    pub(crate) provider: P,
    pub(crate) signer: S,
    pub(crate) deployment: Deployment,
    pub(crate) node_url: Option<String>,
    /// The sign-in domain and URI of `node_url`.
    pub(crate) node_scope: Option<Scope>,
    pub(crate) http: reqwest::Client,
    /// The node session and when it was obtained (unix seconds).
    pub(crate) session: tokio::sync::Mutex<Option<(api::Session, u64)>>,
    pub(crate) owner_key: tokio::sync::OnceCell<OwnerKey>,
    pub(crate) poll: Duration,
}

/// The PX storage client, generic over the chain provider `P` and the message signer `S`. Cheap
/// to clone (shared state).
///
/// Build one with [`Client::builder`] (your provider and signer) or [`Client::new`] (an RPC URL
/// and a local key).
pub struct Client<P = DynProvider, S = PrivateKeySigner> {
    pub(crate) inner: Arc<Inner<P, S>>,
}

impl<P, S> Clone for Client<P, S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<P, S: Signer> std::fmt::Debug for Client<P, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("address", &self.inner.signer.address())
            .field("storage_nft", &self.inner.deployment.storage_nft)
            .field("node_url", &self.inner.node_url)
            .finish_non_exhaustive()
    }
}

/// A mined transaction that failed is an error.
fn ensure_success(receipt: &TransactionReceipt) -> Result<()> {
    if receipt.status() {
        Ok(())
    } else {
        Err(Error::TransactionFailed {
            tx_hash: receipt.transaction_hash,
        })
    }
}

fn u64_of(v: U256) -> u64 {
    v.try_into().unwrap_or(u64::MAX)
}

impl Client<DynProvider, PrivateKeySigner> {
    /// Connects to the chain over HTTP with a local key (the provider signs transactions with
    /// `config.signer`) and checks that the deployment's chain id matches it.
    pub async fn new(config: ClientConfig) -> Result<Self> {
        let url: reqwest::Url = config
            .rpc_url
            .parse()
            .map_err(|e| Error::Config(format!("invalid RPC URL {:?}: {e}", config.rpc_url)))?;
        let provider = ProviderBuilder::new()
            .wallet(EthereumWallet::from(config.signer.clone()))
            .connect_http(url)
            .erased();
        let mut builder = Client::builder(provider, config.signer, config.deployment)
            .poll_interval(config.poll_interval);
        if let Some(url) = config.node_url {
            builder = builder.node(url);
        }
        if let Some(key) = config.owner_key {
            builder = builder.owner_key(key);
        }
        builder.build().await
    }
}

impl<P, S> Client<P, S>
where
    P: Provider,
    S: Signer + Send + Sync,
{
    /// A builder for a client on `provider` (sends transactions) and `signer` (signs messages);
    /// see [`ClientBuilder`].
    pub fn builder(provider: P, signer: S, deployment: Deployment) -> ClientBuilder<P, S> {
        ClientBuilder {
            provider,
            signer,
            deployment,
            node_url: None,
            owner_key: None,
            poll_interval: Duration::from_millis(500),
            http: None,
        }
    }

    /// The wallet's address.
    pub fn address(&self) -> Address {
        self.inner.signer.address()
    }

    /// The deployment in use.
    pub fn deployment(&self) -> &Deployment {
        &self.inner.deployment
    }

    /// The chain provider.
    pub fn provider(&self) -> &P {
        &self.inner.provider
    }

    /// The message signer.
    pub fn signer(&self) -> &S {
        &self.inner.signer
    }

    fn nft(&self) -> StorageNFT::StorageNFTInstance<&P> {
        StorageNFT::new(self.inner.deployment.storage_nft, &self.inner.provider)
    }

    fn px(&self) -> PXToken::PXTokenInstance<&P> {
        PXToken::new(self.inner.deployment.px_token, &self.inner.provider)
    }

    /// The owner key: the configured one, or derived from the signer once (see
    /// [`owner_key_from_signer`]).
    pub async fn owner_key(&self) -> Result<&OwnerKey> {
        self.inner
            .owner_key
            .get_or_try_init(|| owner_key_from_signer(&self.inner.signer))
            .await
    }

    /// Chain time: the latest block's timestamp.
    pub async fn chain_time(&self) -> Result<u64> {
        let block = self
            .inner
            .provider
            .get_block_by_number(Default::default())
            .await?
            .ok_or_else(|| Error::UnexpectedChainAnswer("no latest block".into()))?;
        Ok(block.header.timestamp)
    }

    /// All plans.
    pub async fn plans(&self) -> Result<Vec<Plan>> {
        let nft = self.nft();
        let count = u64_of(nft.planCount().call().await?);
        let mut plans = Vec::with_capacity(count as usize);
        for id in 1..=count {
            plans.push(self.plan(id).await?);
        }
        Ok(plans)
    }

    /// One plan.
    pub async fn plan(&self, id: u64) -> Result<Plan> {
        let p = self
            .nft()
            .plan(U256::from(id))
            .call()
            .await
            .map_err(|e| match Error::from(e) {
                Error::Reverted { .. } => Error::NoSuchPlan(id),
                other => other,
            })?;
        Ok(Plan {
            id,
            quota: p.quota,
            validity: p.validity.into(),
            mintable: p.mintable,
            renewable: p.renewable,
            sync_credits: p.syncCredits.into(),
            free: p.free,
            token_price: U256::from(p.tokenPrice),
            native_price: U256::from(p.nativePrice),
        })
    }

    /// PXToken balance of the wallet.
    pub async fn px_balance(&self) -> Result<U256> {
        Ok(self.px().balanceOf(self.address()).call().await?)
    }

    async fn choose_payment(&self, plan: &Plan, payment: Payment) -> Result<Payment> {
        if !plan.mintable {
            return Err(Error::NoSuchPlan(plan.id));
        }
        if plan.free || payment != Payment::Auto {
            return Ok(payment);
        }
        if !plan.token_price.is_zero() && self.px_balance().await? >= plan.token_price {
            return Ok(Payment::Permit);
        }
        if !plan.native_price.is_zero() {
            return Ok(Payment::Native);
        }
        Err(Error::Config(format!(
            "plan {} costs {} PX base units and the wallet holds less; get PX first",
            plan.id, plan.token_price
        )))
    }

    async fn approve_if_needed(&self, amount: U256) -> Result<()> {
        let px = self.px();
        let spender = self.inner.deployment.storage_nft;
        if px.allowance(self.address(), spender).call().await? >= amount {
            return Ok(());
        }
        let receipt = px
            .approve(spender, amount)
            .send()
            .await?
            .get_receipt()
            .await?;
        ensure_success(&receipt)?;
        Ok(())
    }

    /// Signs an EIP-2612 permit letting the StorageNFT contract spend `value` PX.
    async fn sign_permit(
        &self,
        value: U256,
        deadline: U256,
    ) -> Result<alloy::primitives::Signature> {
        let px = self.px();
        let nonce = px.nonces(self.address()).call().await?;
        let separator = px.DOMAIN_SEPARATOR().call().await?;
        let permit = Permit {
            owner: self.address(),
            spender: self.inner.deployment.storage_nft,
            value,
            nonce,
            deadline,
        };
        let digest = alloy::primitives::keccak256(
            [
                &[0x19u8, 0x01][..],
                separator.as_slice(),
                permit.eip712_hash_struct().as_slice(),
            ]
            .concat(),
        );
        Ok(self.inner.signer.sign_hash(&digest).await?)
    }

    async fn minted_token(&self, receipt: TransactionReceipt) -> Result<u64> {
        ensure_success(&receipt)?;
        let minted = receipt.decoded_log::<StorageNFT::Minted>().ok_or_else(|| {
            Error::UnexpectedChainAnswer("mint receipt carries no Minted event".into())
        })?;
        Ok(u64_of(minted.tokenId))
    }

    /// Mints a token from `plan_id` to the wallet and answers its id.
    ///
    /// The PXToken price read with the plan is the most the mint pays (`maxTokenPrice`): a price
    /// raised in between makes the mint revert with `PriceAboveMax` instead of charging more.
    #[tracing::instrument(target = "sdk::chain", skip(self), fields(account = %self.address()))]
    pub async fn mint(&self, plan_id: u64, payment: Payment) -> Result<u64> {
        let plan = self.plan(plan_id).await?;
        let nft = self.nft();
        let id = U256::from(plan_id);
        let max = plan.token_price;
        let pending = match self.choose_payment(&plan, payment).await? {
            Payment::Native => nft.mint(id, max).value(plan.native_price).send().await?,
            Payment::Permit if !plan.free => {
                let deadline = U256::from(self.chain_time().await? + 3600);
                let sig = self.sign_permit(max, deadline).await?;
                nft.mintWithPermit(
                    id,
                    max,
                    deadline,
                    27 + u8::from(sig.v()),
                    sig.r().into(),
                    sig.s().into(),
                )
                .send()
                .await?
            }
            Payment::Allowance if !plan.free => {
                self.approve_if_needed(max).await?;
                nft.mint(id, max).send().await?
            }
            _ => nft.mint(id, max).send().await?,
        };
        self.minted_token(pending.get_receipt().await?).await
    }

    /// Mints a token from `plan_id` with the IPNS key a storage node assigned (see
    /// [`Client::key_assignment`]). Pays in native coin for [`Payment::Native`] (or `Auto` when
    /// the PX balance is short), else in PXToken by allowance.
    pub async fn mint_with_key(
        &self,
        plan_id: u64,
        assignment: &api::KeyAssignment,
        payment: Payment,
    ) -> Result<u64> {
        let d = &self.inner.deployment;
        if assignment.minter != self.address()
            || assignment.contract != d.storage_nft
            || assignment.chain_id != d.chain_id
        {
            return Err(Error::NodeMismatch(format!(
                "key assignment is for minter {} contract {} chain {}, not this wallet/deployment",
                assignment.minter, assignment.contract, assignment.chain_id
            )));
        }
        let plan = self.plan(plan_id).await?;
        let payment = self.choose_payment(&plan, payment).await?;
        let nft = self.nft();
        let mut call = nft.mintWithKey(
            U256::from(plan_id),
            plan.token_price,
            assignment.ipns_name.clone(),
            U256::from(assignment.deadline),
            assignment.signature.clone(),
        );
        match payment {
            Payment::Native if !plan.free => call = call.value(plan.native_price),
            Payment::Permit | Payment::Allowance if !plan.free => {
                self.approve_if_needed(plan.token_price).await?
            }
            _ => {}
        }
        self.minted_token(call.send().await?.get_receipt().await?)
            .await
    }

    /// A token's state.
    pub async fn token(&self, id: u64) -> Result<TokenState> {
        let nft = self.nft();
        let tid = U256::from(id);
        let owner = nft
            .ownerOf(tid)
            .call()
            .await
            .map_err(|e| match Error::from(e) {
                Error::Reverted { .. } => Error::NoSuchToken(id),
                other => other,
            })?;
        let info = nft.tokenInfo(tid).call().await?;
        let sync_window = u64_of(nft.syncWindow().call().await?);
        Ok(TokenState {
            id,
            owner,
            plan: info.planId.into(),
            quota: info.quota,
            used: info.used,
            file_count: info.fileCount.into(),
            expires_at: u64_of(U256::from(info.expiresAt)),
            last_sync_at: u64_of(U256::from(info.lastSyncAt)),
            seq: info.seq,
            sync_credits: info.syncCredits.into(),
            pending: info.pending,
            requested_at: u64_of(U256::from(info.requestedAt)),
            last_status: info.lastStatus,
            ipns_key: (!info.ipnsKey.is_zero()).then_some(info.ipnsKey),
            now: self.chain_time().await?,
            sync_window,
        })
    }

    /// Asks the on-chain gate whether `size` more bytes may be uploaded to token `id`.
    pub async fn can_upload(&self, id: u64, size: u64) -> Result<Gate> {
        let r = self
            .nft()
            .canUpload(U256::from(id), U256::from(size))
            .call()
            .await?;
        let code: u8 = r.reason;
        let reason = GateReason::from_u8(code)
            .ok_or_else(|| Error::UnexpectedChainAnswer(format!("unknown gate reason {code}")))?;
        Ok(Gate { ok: r.ok, reason })
    }

    /// The [`Error::GateClosed`] for token `id`, with what to do next.
    pub async fn gate_error(&self, id: u64, size: u64, reason: GateReason) -> Error {
        let state = self.token(id).await.ok();
        let detail = match (reason, &state) {
            (GateReason::NotSynced, Some(s)) => format!(
                "last sync {} ago (uploads stay open for {} after a sync); run `px sync {id} --wait`",
                human_duration(s.now.saturating_sub(s.last_sync_at)),
                human_duration(s.sync_window),
            ),
            (GateReason::QuotaExceeded, Some(s)) => format!(
                "{} more would exceed the quota: {} of {} used as of the last sync; delete files \
                 (`px rm {id} <cid>`) then run `px sync {id} --wait`, or buy quota",
                human_bytes(size),
                human_bytes(s.used),
                human_bytes(s.quota),
            ),
            (GateReason::Expired, Some(s)) => format!(
                "the plan expired {} ago; renew token {id}",
                human_duration(s.now.saturating_sub(s.expires_at))
            ),
            (GateReason::Paused, _) => {
                "the contract is paused by its admin; try again later".into()
            }
            (GateReason::NoKey, _) => format!(
                "no storage node key is bound to token {id}; mint through a node (`px mint`) or \
                 ask the node to register a key"
            ),
            (GateReason::NoToken, _) => format!("token {id} does not exist; run `px mint`"),
            (reason, _) => reason.to_string(),
        };
        Error::GateClosed {
            token_id: id,
            reason,
            detail,
        }
    }

    /// Checks the gate for an upload of `size` bytes. When it is closed because the token is
    /// not synced and `auto_sync` is set, requests a sync, waits for it (up to `sync_timeout`
    /// of [`Client::wait_synced`], 5 minutes) and checks again.
    ///
    /// # Errors
    /// [`Error::GateClosed`] with the reason and the next step.
    #[tracing::instrument(target = "sdk::chain", skip(self))]
    pub async fn ensure_can_upload(&self, id: u64, size: u64, auto_sync: bool) -> Result<()> {
        let gate = self.can_upload(id, size).await?;
        if gate.ok {
            return Ok(());
        }
        if gate.reason == GateReason::NotSynced && auto_sync {
            let state = self.token(id).await?;
            if !state.pending {
                self.request_sync(id).await?;
            }
            self.wait_synced(id, Duration::from_secs(300)).await?;
            let gate = self.can_upload(id, size).await?;
            if gate.ok {
                return Ok(());
            }
            return Err(self.gate_error(id, size, gate.reason).await);
        }
        Err(self.gate_error(id, size, gate.reason).await)
    }

    /// Sends a sync request for token `id` (owner only).
    ///
    /// # Errors
    /// [`Error::SyncNotAllowed`] when one is pending or the minimum interval has not passed.
    #[tracing::instrument(target = "sdk::chain", skip(self))]
    pub async fn request_sync(&self, id: u64) -> Result<SyncRequest> {
        let nft = self.nft();
        let state = self.token(id).await?;
        if state.owner != self.address() {
            return Err(Error::NotOwner {
                token_id: id,
                owner: state.owner,
                signer: self.address(),
            });
        }
        if state.ipns_key.is_none() {
            return Err(Error::SyncNotAllowed {
                token_id: id,
                detail: "the token has no IPNS key bound, so there is no usage record to read"
                    .into(),
            });
        }
        // Ask the contract first (a simulation): a pending request, an expired token, no sync
        // credits left or a rate-limited free token each get the next step, before the node is
        // asked for a fresh record. The simulation runs on the pending block, whose timestamp
        // is the chain's "now": the latest block's timestamp is stale on a quiet chain (an idle
        // anvil, a slow L2), and judging the minimum interval by it refused syncs that the
        // next block accepts.
        if let Err(e) = self.simulate_request_sync(id).await {
            let e = Error::from(e);
            let detail = match e.storage_nft_error() {
                Some(StorageNFTErrors::SyncPending(_)) => format!(
                    "a sync request is already pending; run `px sync {id} --wait` to wait for its \
                     answer"
                ),
                Some(StorageNFTErrors::TokenExpired(_)) => format!(
                    "the plan expired {} ago; renew token {id} first",
                    human_duration(state.now.saturating_sub(state.expires_at))
                ),
                Some(StorageNFTErrors::NoSyncCredits(_)) => format!(
                    "token {id} has used all the sync requests its plan included; renew it to get \
                     more"
                ),
                Some(StorageNFTErrors::SyncTooSoon(t)) => format!(
                    "syncs of this token are rate-limited; try again in {}",
                    human_duration(
                        u64_of(t.nextAllowedAt)
                            .saturating_sub(state.now.max(crate::node::unix_now()))
                    )
                ),
                _ => return Err(e),
            };
            return Err(Error::SyncNotAllowed {
                token_id: id,
                detail,
            });
        }
        // A fresh record from the node, so the answer is newer than the last sync even when
        // nothing changed since (the contract rejects a record that is not newer).
        if self.inner.node_url.is_some() {
            self.refresh(id).await?;
        }
        let receipt = nft
            .requestSync(U256::from(id))
            .send()
            .await?
            .get_receipt()
            .await?;
        ensure_success(&receipt)?;
        let ev = receipt
            .decoded_log::<StorageNFT::SyncRequested>()
            .ok_or_else(|| {
                Error::UnexpectedChainAnswer(
                    "requestSync receipt carries no SyncRequested event".into(),
                )
            })?;
        Ok(SyncRequest {
            token_id: id,
            request_id: ev.requestId,
            block: receipt.block_number.unwrap_or_default(),
        })
    }

    /// `requestSync(id)` simulated from the signer on the pending block (on the latest block
    /// when the RPC serves no pending state).
    async fn simulate_request_sync(&self, id: u64) -> Result<(), alloy::contract::Error> {
        let nft = self.nft();
        let call = nft.requestSync(U256::from(id)).from(self.address());
        match call.clone().block(BlockId::pending()).call().await {
            Ok(_) => Ok(()),
            Err(e) if e.as_revert_data().is_some() => Err(e),
            // An RPC that refuses the `pending` tag answers an error response: ask at latest.
            Err(alloy::contract::Error::TransportError(e)) if e.as_error_resp().is_some() => {
                call.call().await.map(drop)
            }
            Err(e) => Err(e),
        }
    }

    async fn logs(&self, filter: &Filter) -> Result<Vec<Log>> {
        Ok(self.inner.provider.get_logs(filter).await?)
    }

    /// The most recent sync request of token `id`, from the contract's `SyncRequested` events.
    ///
    /// Scans backwards from the head in windows of [`LOG_WINDOW`] blocks (public RPC endpoints
    /// cap `eth_getLogs` ranges), down to the deployment's start block.
    pub async fn last_sync_request(&self, id: u64) -> Result<Option<SyncRequest>> {
        let filter = Filter::new()
            .address(self.inner.deployment.storage_nft)
            .event_signature(StorageNFT::SyncRequested::SIGNATURE_HASH)
            .topic1(B256::from(U256::from(id)));
        let start = self.inner.deployment.start_block;
        let mut to = self.inner.provider.get_block_number().await?;
        loop {
            let from = to.saturating_sub(LOG_WINDOW - 1).max(start);
            let logs = self
                .logs(&filter.clone().from_block(from).to_block(to))
                .await?;
            if let Some(log) = logs.last() {
                let ev = log
                    .log_decode::<StorageNFT::SyncRequested>()
                    .map_err(|e| Error::UnexpectedChainAnswer(e.to_string()))?;
                return Ok(Some(SyncRequest {
                    token_id: id,
                    request_id: ev.inner.requestId,
                    block: log.block_number.unwrap_or_default(),
                }));
            }
            if from <= start {
                return Ok(None);
            }
            to = from - 1;
        }
    }

    /// Waits until token `id`'s latest sync request is answered, following the contract's
    /// `Synced` and `SyncFailed` events.
    ///
    /// # Errors
    /// [`Error::SyncFailed`] for an error answer, [`Error::Timeout`] after `timeout`,
    /// [`Error::SyncNotAllowed`] when the token never requested a sync.
    pub async fn wait_synced(&self, id: u64, timeout: Duration) -> Result<Synced> {
        let request = self
            .last_sync_request(id)
            .await?
            .ok_or_else(|| Error::SyncNotAllowed {
                token_id: id,
                detail: format!("no sync was requested; run `px sync {id}`"),
            })?;
        self.wait_answer(&request, timeout).await
    }

    /// Waits for the answer to `request`.
    #[tracing::instrument(target = "sdk::chain", skip(self), fields(token_id = request.token_id, request_id = %request.request_id))]
    pub async fn wait_answer(&self, request: &SyncRequest, timeout: Duration) -> Result<Synced> {
        let filter = Filter::new()
            .address(self.inner.deployment.storage_nft)
            .event_signature(vec![
                StorageNFT::Synced::SIGNATURE_HASH,
                StorageNFT::SyncFailed::SIGNATURE_HASH,
            ])
            .topic1(B256::from(U256::from(request.token_id)))
            .topic2(request.request_id);
        let deadline = tokio::time::Instant::now() + timeout;
        let mut from = request.block;
        loop {
            let head = self.inner.provider.get_block_number().await?;
            while head >= from {
                let to = head.min(from + LOG_WINDOW - 1);
                let logs = self
                    .logs(&filter.clone().from_block(from).to_block(to))
                    .await?;
                for log in &logs {
                    if let Ok(ev) = log.log_decode::<StorageNFT::Synced>() {
                        let ev = ev.inner.data;
                        return Ok(Synced {
                            token_id: request.token_id,
                            request_id: request.request_id,
                            used: ev.used,
                            file_count: ev.fileCount.into(),
                            seq: ev.seq,
                            record_cid: cid_text(&ev.recordCid),
                        });
                    }
                    if let Ok(ev) = log.log_decode::<StorageNFT::SyncFailed>() {
                        return Err(Error::SyncFailed {
                            token_id: request.token_id,
                            status: ev.inner.status,
                        });
                    }
                }
                from = to + 1;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::Timeout(timeout, "the oracle's sync answer"));
            }
            tokio::time::sleep(self.inner.poll).await;
        }
    }

    /// Raw bytes of the token's IPNS name (38 bytes; empty when none).
    pub async fn ipns_name(&self, id: u64) -> Result<Bytes> {
        Ok(self.nft().ipnsName(U256::from(id)).call().await?)
    }
}
