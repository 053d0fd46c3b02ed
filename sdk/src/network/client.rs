//! The provider network through the token's home node: [`Client`] calls that put a file on
//! providers and read it back, list the provider registry and fund a token's escrow.
//!
//! ```text
//! upload    GET /v1/network (redundancy, segment size, market) ─► owner key, SHA-256 of the file
//!           ─► POST placements {size: ciphertext length (format v2)} ─► targets (orders checked:
//!           signed by the home node, for this token, upload, segment, provider)
//!           ─► Uploader::upload_file (encrypt, encode, pieces to providers, receipts checked)
//!           ─► POST manifests {name sealed to the file id, manifest} ─► the file's entry
//! download  entry (redundancy set) ─► GET .../files/{id}/manifest (the current one, after
//!           repairs) ─► each provider's endpoint from the registry (ProviderRegistry.providerOf)
//!           ─► Downloader::download (first k good pieces per segment, decrypt, SHA-256 sealed
//!           by the uploader checked)
//! ```
//!
//! Endpoints for a download come from the registry, the source of truth (a provider that moves
//! updates its listing), never from the manifest or the node. Nothing the home node says is
//! trusted for content: pieces are checked against the manifest's CIDs and roots, and the
//! plaintext against the hash sealed in the encrypted header; a wrong manifest can only make a
//! download fail.

use std::{
    collections::{HashMap, HashSet},
    io::Read,
    path::Path,
    time::Duration,
};

use alloy::{
    primitives::{Address, U256},
    providers::Provider,
    rpc::types::Filter,
    signers::Signer,
    sol_types::{Eip712Domain, SolEvent},
};
use px_core::{
    api::{self, ErrorCode, Placement, PlacementRequest},
    contracts::{IProviderRegistry, PXToken, ProviderRegistry, StorageMarket},
    crypto::{self, Encryptor, FileId},
    erasure::Redundancy,
    network::{self as protocol, Manifest},
};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWrite;

use super::{
    Downloader, EncodeOptions, Fault, NetworkError, ProviderEndpoint, Result, SegmentUpload,
    Target, Uploader, transfer::PieceObserver,
};
use crate::{Client, Error, ListedFile, UploadResult};

/// Ciphertext bytes of a `plain_len`-byte file as the SDK encrypts it for the network (format
/// version 2 with [`crypto::DEFAULT_SEGMENT_SIZE`] encryption segments): the size a placement
/// asks for and the manifest records.
pub fn cipher_len(plain_len: u64) -> u64 {
    crypto::encrypted_len(plain_len, crypto::DEFAULT_SEGMENT_SIZE)
}

/// How to upload to the network.
#[derive(Clone, Default)]
pub struct NetworkUploadOptions {
    /// `k/n`; the home node's default ([`api::NetworkInfo::redundancy`]) when absent.
    pub redundancy: Option<Redundancy>,
    /// Erasure segment size; the home node's default when absent.
    pub segment_size: Option<u64>,
    /// Check the on-chain gate for the ciphertext size before asking for a placement (the
    /// node checks it too; this gives the reason and next step). Default false here; the CLI
    /// sets it.
    pub check_gate: bool,
    /// When the gate is closed for lack of a sync, request one and wait.
    pub auto_sync: bool,
    /// Give up on a provider's piece after this long (a spare takes it).
    pub attempt_timeout: Option<Duration>,
    /// Every piece attempt's steps.
    pub observer: Option<PieceObserver>,
}

impl std::fmt::Debug for NetworkUploadOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetworkUploadOptions")
            .field("redundancy", &self.redundancy)
            .field("segment_size", &self.segment_size)
            .field("check_gate", &self.check_gate)
            .field("auto_sync", &self.auto_sync)
            .field("attempt_timeout", &self.attempt_timeout)
            .field("observer", &self.observer.is_some())
            .finish()
    }
}

/// What an upload to the network stored.
#[derive(Debug, Clone)]
pub struct NetworkUpload {
    /// The file's entry (its `redundancy` set, its `cid` the manifest's), usage after it.
    pub upload: UploadResult,
    /// The manifest committed.
    pub manifest: Manifest,
    /// Each segment's attempts that failed or were cancelled.
    pub reports: Vec<SegmentUpload>,
}

/// How to download from the network.
#[derive(Clone, Default)]
pub struct NetworkDownloadOptions {
    /// Every piece request's steps.
    pub observer: Option<PieceObserver>,
}

impl std::fmt::Debug for NetworkDownloadOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetworkDownloadOptions")
            .field("observer", &self.observer.is_some())
            .finish()
    }
}

/// What a download from the network wrote.
#[derive(Debug, Clone)]
pub struct NetworkDownload {
    /// Plaintext bytes written.
    pub written: u64,
    /// Hex SHA-256 of the plaintext (equal to the one the uploader sealed).
    pub sha256: String,
    /// The file.
    pub file: ListedFile,
    /// The manifest read.
    pub manifest: Manifest,
    /// Providers that failed or answered a wrong piece.
    pub faults: Vec<Fault>,
    /// Piece requests cancelled once `k` good pieces of their segment were in.
    pub cancelled: usize,
}

/// A provider as the registry lists it, with its proof record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProviderInfo {
    /// Its account.
    pub address: Address,
    /// Base URL of its node.
    pub endpoint: String,
    /// Region code (0: unspecified).
    pub region: u16,
    /// Bytes offered.
    pub capacity: u64,
    /// Bytes reserved by deals.
    pub reserved: u64,
    /// Price, PXToken wei per GiB per 30 days (decimal).
    pub price_per_gib_month: String,
    /// Stake, PXToken wei (decimal).
    pub stake: String,
    /// Whether a certifier certified it.
    pub certified: bool,
    /// Whether it paused its listing.
    pub paused: bool,
    /// Whether deals can be opened with it.
    pub active: bool,
    /// Whether it is exiting (unbonding).
    pub exiting: bool,
    /// Deals it holds that are not over.
    pub active_deals: u32,
    /// Periods it proved (`StorageMarket.StorageProven` events of its deals).
    pub proofs: u64,
    /// Periods it missed (`StorageMarket.PeriodMissed` events of its deals).
    pub missed: u64,
}

impl ProviderInfo {
    /// Bytes not reserved.
    pub fn free(&self) -> u64 {
        self.capacity.saturating_sub(self.reserved)
    }
}

/// Checks a placement's orders and maps them to the uploader's targets: each segment's
/// targets in the placement's order (primaries, then spares), each order signed by `home` in
/// `domain` for `token_id`, the placement's upload id, its segment and its target's provider.
///
/// # Errors
/// [`NetworkError::Placement`] naming the first order that does not fit.
pub fn targets_of(
    placement: &Placement,
    token_id: u64,
    domain: &Eip712Domain,
    home: Address,
) -> Result<Vec<Vec<Target>>> {
    placement
        .segments
        .iter()
        .enumerate()
        .map(|(s, targets)| {
            let segment = u32::try_from(s).map_err(|_| NetworkError::TooManySegments)?;
            let bad = |reason: String| NetworkError::Placement { segment, reason };
            if targets.is_empty() {
                return Err(bad("no targets".into()));
            }
            targets
                .iter()
                .map(|t| {
                    let o = &t.order.order;
                    if o.token_id != token_id || o.file != placement.file || o.segment != segment {
                        return Err(bad(format!(
                            "an order is for token {} upload {} segment {}",
                            o.token_id, o.file, o.segment
                        )));
                    }
                    if o.provider != t.provider {
                        return Err(bad(format!(
                            "the order for {} is given for {}",
                            o.provider, t.provider
                        )));
                    }
                    let signer = t.order.signer(domain).map_err(|e| bad(e.to_string()))?;
                    if signer != home {
                        return Err(bad(format!(
                            "an order is signed by {signer}, not by the home node {home}"
                        )));
                    }
                    Ok(Target {
                        provider: ProviderEndpoint {
                            address: t.provider,
                            url: t.url.clone(),
                        },
                        order: t.order.clone(),
                    })
                })
                .collect()
        })
        .collect()
}

/// A placement refusal with its next step (the node's [`ErrorCode`]s of the provider
/// network); any other error as it is.
fn placement_error(token_id: u64, e: Error) -> NetworkError {
    match e {
        Error::Node {
            code:
                Some(
                    code @ (ErrorCode::NotHomeNode
                    | ErrorCode::EscrowTooLow
                    | ErrorCode::NotEnoughProviders),
                ),
            message,
            ..
        } => match code {
            ErrorCode::NotHomeNode => NetworkError::NotHomeNode { token_id, message },
            ErrorCode::EscrowTooLow => NetworkError::EscrowTooLow { token_id, message },
            _ => NetworkError::NotEnoughProviders { message },
        },
        e => e.into(),
    }
}

/// Length and SHA-256 of everything `input` yields.
fn hash_input(mut input: impl Read) -> std::io::Result<(u64, [u8; 32])> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut len = 0u64;
    loop {
        let n = input.read(&mut buf)?;
        if n == 0 {
            return Ok((len, h.finalize().into()));
        }
        h.update(&buf[..n]);
        len += n as u64;
    }
}

impl<P, S> Client<P, S>
where
    P: Provider,
    S: Signer + Send + Sync,
{
    /// The home node's network settings, checked against this client's deployment (same
    /// chain and market), and the EIP-712 domain of its orders.
    async fn home_network(&self) -> Result<(api::NetworkInfo, Eip712Domain)> {
        let info = self.network_info().await?;
        let d = &self.inner.deployment;
        if info.chain_id != d.chain_id || Some(info.market) != d.storage_market {
            return Err(Error::NodeMismatch(format!(
                "the node places for market {} on chain {}, the deployment has {:?} on chain {}",
                info.market, info.chain_id, d.storage_market, d.chain_id
            ))
            .into());
        }
        let domain = protocol::domain(info.chain_id, info.market);
        Ok((info, domain))
    }

    /// Uploads a local file to the provider network as file `name` of `token_id` (read twice:
    /// once to hash, once to encrypt and encode). See [`Client::upload_to_network`].
    pub async fn upload_file_to_network(
        &self,
        token_id: u64,
        path: impl AsRef<Path>,
        name: &str,
        opts: NetworkUploadOptions,
    ) -> Result<NetworkUpload> {
        let path = path.as_ref().to_owned();
        let p = path.clone();
        let (size, sha256) =
            tokio::task::spawn_blocking(move || hash_input(std::fs::File::open(p)?))
                .await
                .map_err(|e| NetworkError::Task(e.to_string()))??;
        let file = std::fs::File::open(&path)?;
        self.upload_to_network(token_id, file, size, sha256, name, opts)
            .await
    }

    /// Uploads `input` (`size` bytes whose SHA-256 is `sha256`) to the provider network as
    /// file `name` of `token_id`, through the token's home node (the client's node): see the
    /// module docs. The content is always encrypted (providers only see ciphertext) and the
    /// name sealed to the file's id, as for a single-node upload.
    ///
    /// # Errors
    /// [`NetworkError::NotHomeNode`], [`NetworkError::EscrowTooLow`],
    /// [`NetworkError::NotEnoughProviders`] when the node refuses the placement;
    /// [`NetworkError::PieceNotStored`] when every provider a piece could go to failed;
    /// [`NetworkError::Client`] for the node's other refusals (gate, quota) and the chain.
    #[tracing::instrument(target = "sdk::network", skip(self, input, sha256, opts), fields(redundancy = ?opts.redundancy))]
    pub async fn upload_to_network<R: Read + Send + 'static>(
        &self,
        token_id: u64,
        input: R,
        size: u64,
        sha256: [u8; 32],
        name: &str,
        opts: NetworkUploadOptions,
    ) -> Result<NetworkUpload> {
        let (info, domain) = self.home_network().await?;
        let cipher = cipher_len(size);
        if opts.check_gate {
            self.ensure_can_upload(token_id, cipher, opts.auto_sync)
                .await?;
        }
        let req = PlacementRequest {
            size: cipher,
            redundancy: opts.redundancy,
            segment_size: opts.segment_size,
        };
        let placement = self
            .placement(token_id, &req)
            .await
            .map_err(|e| placement_error(token_id, e))?;
        if opts.redundancy.is_some_and(|r| r != placement.redundancy)
            || opts
                .segment_size
                .is_some_and(|s| s != placement.segment_size)
        {
            return Err(Error::NodeMismatch(format!(
                "asked for {:?} in segments of {:?}, the node placed {} in segments of {}",
                opts.redundancy, opts.segment_size, placement.redundancy, placement.segment_size
            ))
            .into());
        }
        let targets = targets_of(&placement, token_id, &domain, info.home)?;
        let owner = self.owner_key().await?.clone();
        let enc = Encryptor::with_segment_size(&owner, crypto::DEFAULT_SEGMENT_SIZE, sha256)?;
        let file_id = enc.file_id();
        // The encrypted name is bound to the file's id, so the node cannot swap names.
        let wire_name = crypto::encrypt_name(&owner, &file_id, name)?;
        let encode = EncodeOptions {
            redundancy: placement.redundancy,
            segment_size: usize::try_from(placement.segment_size).map_err(|_| {
                NetworkError::Placement {
                    segment: 0,
                    reason: format!("segment size {}", placement.segment_size),
                }
            })?,
            parallel: true,
        };
        let mut uploader = Uploader::new(self.inner.http.clone(), domain);
        if let Some(t) = opts.attempt_timeout {
            uploader = uploader.with_timeout(t);
        }
        if let Some(o) = opts.observer {
            uploader = uploader.with_observer(o);
        }
        let (manifest, reports) = uploader
            .upload_file(enc, input, encode, token_id, &targets)
            .await?;
        let commit = api::ManifestCommit {
            name: wire_name,
            manifest: manifest.clone(),
        };
        let stored = self.commit_manifest(token_id, &commit).await?;
        if stored.file.size != manifest.size || stored.file.redundancy != Some(manifest.redundancy)
        {
            return Err(Error::NodeMismatch(format!(
                "committed {} bytes at {}, the node recorded {} bytes at {:?}",
                manifest.size, manifest.redundancy, stored.file.size, stored.file.redundancy
            ))
            .into());
        }
        tracing::info!(target: "sdk::network", token_id, file = stored.file.id, cid = %stored.file.cid,
            segments = manifest.segments.len(), "stored on the provider network");
        Ok(NetworkUpload {
            upload: UploadResult {
                file: stored.file,
                name: name.to_owned(),
                usage: stored.usage,
                encrypted: true,
                plain_size: size,
            },
            manifest,
            reports,
        })
    }

    /// Base URLs of `providers` from the registry (`ProviderRegistry.providerOf`); a provider
    /// the registry does not list (or lists without an endpoint) is left out, and a download
    /// reports it as [`super::transfer::FaultKind::NoEndpoint`].
    pub async fn provider_endpoints(
        &self,
        providers: impl IntoIterator<Item = Address>,
    ) -> Result<HashMap<Address, String>> {
        let registry = self.registry_address()?;
        let registry = ProviderRegistry::new(registry, &self.inner.provider);
        let wanted: HashSet<Address> = providers.into_iter().collect();
        let lookups = wanted.into_iter().map(|a| {
            let registry = &registry;
            async move { (a, registry.providerOf(a).call().await) }
        });
        let mut out = HashMap::new();
        for (a, r) in futures::future::join_all(lookups).await {
            match r {
                Ok(l) if !l.endpoint.is_empty() => {
                    out.insert(a, l.endpoint);
                }
                Ok(_) => {}
                Err(e) => {
                    let e = Error::from(e);
                    // A revert (not registered) leaves the provider out; the chain failing is
                    // an error.
                    if !matches!(e, Error::Reverted { .. }) {
                        return Err(e.into());
                    }
                }
            }
        }
        Ok(out)
    }

    /// Reads network file `file` of `token_id` (an entry of [`Client::list`] whose
    /// `redundancy` is set) into `out`: its current manifest from the home node, the
    /// providers' endpoints from the registry, then every provider of a segment at once,
    /// decoded from the first `k` good pieces and decrypted.
    ///
    /// On error `out` may hold a prefix of authenticated plaintext: write to a temporary file.
    ///
    /// # Errors
    /// [`NetworkError::NotNetworkFile`] for a single-node file;
    /// [`NetworkError::NotEnoughPieces`] when fewer than `k` providers of a segment answered
    /// its piece; [`NetworkError::Crypto`] for a wrong key or tampered content.
    #[tracing::instrument(target = "sdk::network", skip(self, file, out, opts), fields(file = file.entry.id))]
    pub async fn download_from_network<W: AsyncWrite + Unpin>(
        &self,
        token_id: u64,
        file: &ListedFile,
        out: &mut W,
        opts: NetworkDownloadOptions,
    ) -> Result<NetworkDownload> {
        if file.entry.redundancy.is_none() {
            return Err(NetworkError::NotNetworkFile {
                token_id,
                file: file.entry.id,
            });
        }
        let manifest = self.manifest(token_id, file.entry.id).await?;
        let providers = manifest
            .segments
            .iter()
            .flat_map(|s| s.pieces.iter().map(|p| p.provider));
        let endpoints = self.provider_endpoints(providers).await?;
        let file_id: Option<FileId> = match &file.file_id {
            Some(h) => {
                let mut id = [0u8; crypto::FILE_ID_LEN];
                alloy::hex::decode_to_slice(h, &mut id)
                    .map_err(|_| Error::NodeMismatch(format!("bad file id {h}")))?;
                Some(id)
            }
            None => None,
        };
        let owner = self.owner_key().await?.clone();
        let mut downloader = Downloader::new(self.inner.http.clone());
        if let Some(o) = opts.observer {
            downloader = downloader.with_observer(o);
        }
        let report = downloader
            .download(&manifest, &endpoints, &owner, file_id, out)
            .await?;
        Ok(NetworkDownload {
            written: report.plain_len,
            sha256: alloy::hex::encode(report.opened.sha256),
            file: file.clone(),
            manifest,
            faults: report.faults,
            cancelled: report.cancelled,
        })
    }

    fn registry_address(&self) -> crate::Result<Address> {
        self.inner.deployment.provider_registry.ok_or_else(|| {
            Error::Config("the deployment has no ProviderRegistry (no provider network)".into())
        })
    }

    fn market_address(&self) -> crate::Result<Address> {
        self.inner.deployment.storage_market.ok_or_else(|| {
            Error::Config("the deployment has no StorageMarket (no provider network)".into())
        })
    }

    /// Every provider the registry lists (exited ones excepted), in registration order, with
    /// the periods each proved and missed: counted from the market's `StorageProven` and
    /// `PeriodMissed` events since the deployment's start block, each attributed to its deal's
    /// provider through the deal's `DealOpened` event.
    pub async fn providers(&self) -> crate::Result<Vec<ProviderInfo>> {
        let registry = ProviderRegistry::new(self.registry_address()?, &self.inner.provider);
        let market = self.market_address()?;
        let all = IProviderRegistry::Filter {
            onlyActive: false,
            onlyCertified: false,
            region: 0,
            maxPrice: 0,
            minFreeCapacity: 0,
        };
        let count = registry.providerCount().call().await?;
        let mut listings = Vec::new();
        let mut cursor = U256::ZERO;
        while cursor < count {
            let page = registry
                .listProviders(cursor, U256::from(100), all.clone())
                .call()
                .await?;
            listings.extend(page.page);
            if page.next <= cursor {
                break;
            }
            cursor = page.next;
        }
        let filter = Filter::new()
            .address(market)
            .from_block(self.inner.deployment.start_block)
            .event_signature(vec![
                StorageMarket::DealOpened::SIGNATURE_HASH,
                StorageMarket::StorageProven::SIGNATURE_HASH,
                StorageMarket::PeriodMissed::SIGNATURE_HASH,
            ]);
        let logs = self.inner.provider.get_logs(&filter).await?;
        let mut deal_provider: HashMap<U256, Address> = HashMap::new();
        for log in &logs {
            if let Ok(l) = log.log_decode::<StorageMarket::DealOpened>() {
                deal_provider.insert(l.inner.data.dealId, l.inner.data.provider);
            }
        }
        let mut proofs: HashMap<Address, (u64, u64)> = HashMap::new();
        for log in &logs {
            let (deal, missed) = if let Ok(l) = log.log_decode::<StorageMarket::StorageProven>() {
                (l.inner.data.dealId, false)
            } else if let Ok(l) = log.log_decode::<StorageMarket::PeriodMissed>() {
                (l.inner.data.dealId, true)
            } else {
                continue;
            };
            if let Some(p) = deal_provider.get(&deal) {
                let e = proofs.entry(*p).or_default();
                if missed {
                    e.1 += 1;
                } else {
                    e.0 += 1;
                }
            }
        }
        Ok(listings
            .into_iter()
            .map(|l| {
                let (made, missed) = proofs.get(&l.provider).copied().unwrap_or_default();
                ProviderInfo {
                    address: l.provider,
                    endpoint: l.endpoint,
                    region: l.region,
                    capacity: l.capacity,
                    reserved: l.reserved,
                    price_per_gib_month: l.pricePerGiBMonth.to_string(),
                    stake: l.stake.to_string(),
                    certified: l.certified,
                    paused: l.paused,
                    active: l.active,
                    exiting: l.unbondsAt.to::<u64>() != 0,
                    active_deals: l.activeDeals,
                    proofs: made,
                    missed,
                }
            })
            .collect())
    }

    /// Names this client's node as the token's home node (`StorageMarket.setHomeNode`, the
    /// holder only; the node's address from `GET /v1/network`), unless it already is. Needed
    /// once before network uploads, and again after moving the token to another node.
    /// Answers the home node's address.
    ///
    /// # Errors
    /// [`NetworkError::Client`] for the node's or the chain's refusals (not the holder, the
    /// node holds no registrar role).
    #[tracing::instrument(target = "sdk::chain", skip(self), fields(account = %self.address()))]
    pub async fn use_as_home_node(&self, token_id: u64) -> Result<Address> {
        let (info, _) = self.home_network().await?;
        let market = StorageMarket::new(info.market, &self.inner.provider);
        let current = market
            .homeNodeOf(U256::from(token_id))
            .call()
            .await
            .map_err(crate::Error::from)?;
        if current == info.home {
            return Ok(current);
        }
        let receipt = market
            .setHomeNode(U256::from(token_id), info.home)
            .send()
            .await
            .map_err(crate::Error::from)?
            .get_receipt()
            .await
            .map_err(crate::Error::from)?;
        if !receipt.status() {
            return Err(crate::Error::TransactionFailed {
                tx_hash: receipt.transaction_hash,
            }
            .into());
        }
        Ok(info.home)
    }

    /// The token's uncommitted escrow (`StorageMarket.escrowOf`), PXToken wei.
    pub async fn escrow(&self, token_id: u64) -> crate::Result<U256> {
        let market = StorageMarket::new(self.market_address()?, &self.inner.provider);
        Ok(market.escrowOf(U256::from(token_id)).call().await?)
    }

    /// Adds `amount` PXToken wei of the wallet to the token's escrow (anyone may fund any
    /// token): approves the market for it when the allowance is short, then
    /// `StorageMarket.fund`. Answers the escrow after.
    ///
    /// # Errors
    /// [`Error::Config`] when the wallet holds less than `amount` or `amount` is zero.
    #[tracing::instrument(target = "sdk::chain", skip(self), fields(account = %self.address()))]
    pub async fn fund_escrow(&self, token_id: u64, amount: U256) -> crate::Result<U256> {
        if amount.is_zero() {
            return Err(Error::Config("fund a positive amount".into()));
        }
        let market_address = self.market_address()?;
        let px = PXToken::new(self.inner.deployment.px_token, &self.inner.provider);
        let balance = px.balanceOf(self.address()).call().await?;
        if balance < amount {
            return Err(Error::Config(format!(
                "the wallet {} holds {balance} PX wei, less than the {amount} to fund",
                self.address()
            )));
        }
        if px.allowance(self.address(), market_address).call().await? < amount {
            let receipt = px
                .approve(market_address, amount)
                .send()
                .await?
                .get_receipt()
                .await?;
            if !receipt.status() {
                return Err(Error::TransactionFailed {
                    tx_hash: receipt.transaction_hash,
                });
            }
        }
        let market = StorageMarket::new(market_address, &self.inner.provider);
        let receipt = market
            .fund(U256::from(token_id), amount)
            .send()
            .await?
            .get_receipt()
            .await?;
        if !receipt.status() {
            return Err(Error::TransactionFailed {
                tx_hash: receipt.transaction_hash,
            });
        }
        self.escrow(token_id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::{primitives::B256, signers::local::PrivateKeySigner};
    use px_core::{
        api::PlacementTarget,
        crypto::OwnerKey,
        network::{SignedOrder, UploadOrder},
    };

    #[test]
    fn cipher_len_is_what_the_encryption_writes() {
        let owner = OwnerKey::from_bytes([3; 32]);
        let seg = crypto::DEFAULT_SEGMENT_SIZE;
        for len in [0, 1, seg - 1, seg, seg + 1, 3 * seg + 17] {
            let plain = vec![7u8; len];
            let sealed = crypto::encrypt(&owner, &plain).unwrap();
            assert_eq!(cipher_len(len as u64), sealed.len() as u64, "{len}");
        }
        // 8 MiB: 32 encryption segments, each with its tag, after the header.
        assert_eq!(
            cipher_len(8 << 20),
            (8 << 20) + crypto::HEADER_LEN as u64 + 32 * crypto::TAG_LEN as u64
        );
    }

    fn order(home: &PrivateKeySigner, domain: &Eip712Domain, o: UploadOrder) -> SignedOrder {
        o.sign(home, domain).unwrap()
    }

    /// A placement of `segments` segments at 2/3 with one spare, signed by `home`.
    fn placement(home: &PrivateKeySigner, domain: &Eip712Domain, segments: u32) -> Placement {
        let file = B256::repeat_byte(9);
        let provider = |i: u8| Address::repeat_byte(0x10 + i);
        let target = |s: u32, piece: u16, p: u8| PlacementTarget {
            provider: provider(p),
            url: format!("http://127.0.0.1:{}", 9000 + u16::from(p)),
            order: order(
                home,
                domain,
                UploadOrder {
                    token_id: 7,
                    file,
                    segment: s,
                    piece,
                    provider: provider(p),
                    max_size: 1024,
                    expiry: 4_000_000_000,
                },
            ),
        };
        Placement {
            file,
            redundancy: Redundancy::new(2, 3).unwrap(),
            segment_size: 4096,
            expires_at: 4_000_000_000,
            segments: (0..segments)
                .map(|s| {
                    let mut t: Vec<_> = (0..3).map(|i| target(s, i, i as u8)).collect();
                    t.extend((0..3).map(|i| target(s, i, 3)));
                    t
                })
                .collect(),
        }
    }

    #[test]
    fn placement_targets_map_in_order_with_their_orders() {
        let home = PrivateKeySigner::random();
        let domain = protocol::domain(31337, Address::repeat_byte(1));
        let p = placement(&home, &domain, 2);
        let targets = targets_of(&p, 7, &domain, home.address()).unwrap();
        assert_eq!(targets.len(), 2);
        for (s, (got, want)) in targets.iter().zip(&p.segments).enumerate() {
            assert_eq!(
                got.len(),
                6,
                "3 primaries and a spare for each of the 3 pieces"
            );
            for (g, w) in got.iter().zip(want) {
                assert_eq!(g.provider.address, w.provider);
                assert_eq!(g.provider.url, w.url);
                assert_eq!(g.order, w.order);
                assert_eq!(g.order.order.segment, s as u32);
            }
        }
    }

    #[test]
    fn placement_with_a_foreign_or_mismatched_order_is_refused() {
        let home = PrivateKeySigner::random();
        let domain = protocol::domain(31337, Address::repeat_byte(1));
        let p = placement(&home, &domain, 2);
        // Signed by someone else than the home node.
        let other = PrivateKeySigner::random();
        let r = targets_of(&p, 7, &domain, other.address());
        assert!(
            matches!(&r, Err(NetworkError::Placement { segment: 0, reason }) if reason.contains("signed by")),
            "{r:?}"
        );
        // Another domain (another market): the signer recovers to someone else.
        let foreign = protocol::domain(31337, Address::repeat_byte(2));
        assert!(targets_of(&p, 7, &foreign, home.address()).is_err());
        // For another token.
        assert!(matches!(
            targets_of(&p, 8, &domain, home.address()),
            Err(NetworkError::Placement { segment: 0, .. })
        ));
        // Segment 1's targets given for segment 0.
        let mut swapped = p.clone();
        swapped.segments.swap(0, 1);
        assert!(matches!(
            targets_of(&swapped, 7, &domain, home.address()),
            Err(NetworkError::Placement { segment: 0, .. })
        ));
        // An order handed to another provider than it names.
        let mut moved = p.clone();
        moved.segments[1][2].provider = Address::repeat_byte(0x77);
        assert!(matches!(
            targets_of(&moved, 7, &domain, home.address()),
            Err(NetworkError::Placement { segment: 1, reason }) if reason.contains("given for")
        ));
        // A segment without targets.
        let mut empty = p;
        empty.segments[1].clear();
        assert!(matches!(
            targets_of(&empty, 7, &domain, home.address()),
            Err(NetworkError::Placement { segment: 1, .. })
        ));
    }

    #[test]
    fn placement_refusals_name_their_next_step() {
        let node = |code, message: &str| Error::Node {
            status: 409,
            code: Some(code),
            message: message.into(),
            body: String::new(),
        };
        let e = placement_error(3, node(ErrorCode::NotHomeNode, "home is 0x0"));
        assert!(matches!(&e, NetworkError::NotHomeNode { token_id: 3, .. }));
        assert!(e.to_string().contains("setHomeNode"), "{e}");
        let e = placement_error(3, node(ErrorCode::EscrowTooLow, "escrow 0 < 5"));
        assert!(matches!(&e, NetworkError::EscrowTooLow { token_id: 3, .. }));
        assert!(e.to_string().contains("fund"), "{e}");
        let e = placement_error(3, node(ErrorCode::NotEnoughProviders, "2 of 6"));
        assert!(matches!(&e, NetworkError::NotEnoughProviders { .. }));
        let e = placement_error(3, node(ErrorCode::OverQuota, "over quota"));
        assert!(
            matches!(&e, NetworkError::Client(c) if matches!(**c, Error::Node { code: Some(ErrorCode::OverQuota), .. }))
        );
    }
}
