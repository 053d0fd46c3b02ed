//! Chain access: StorageNFT reads (owner, gate, token info), the registrar's `registerKey`
//! transactions and EIP-712 key assignments.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use alloy::network::EthereumWallet;
use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol;
use alloy::sol_types::{SolStruct, eip712_domain};
use px_core::Deployment;
use px_core::contracts::{GateReason, StorageNFT};

use crate::error::{Error, Result};

sol! {
    /// The EIP-712 struct `StorageNFT.mintWithKey` verifies.
    #[derive(Debug)]
    struct KeyAssignment {
        address minter;
        bytes ipnsName;
        uint256 deadline;
    }
}

/// On-chain token facts the node needs for an upload.
#[derive(Debug, Clone, Copy)]
pub struct TokenFacts {
    /// Quota in bytes.
    pub quota: u64,
    /// ed25519 key bound to the token (zero: none).
    pub ipns_key: B256,
    /// Sequence number of the last synced usage record.
    pub seq: u64,
    /// Bytes used as last synced.
    pub used: u64,
    /// Files as last synced.
    pub file_count: u64,
}

/// The chain as the node sees it.
#[derive(Debug)]
pub struct Chain {
    provider: DynProvider,
    nft: StorageNFT::StorageNFTInstance<DynProvider>,
    chain_id: u64,
    registrar: Option<PrivateKeySigner>,
    owners: Mutex<HashMap<u64, (Option<Address>, Instant)>>,
    owner_ttl: Duration,
}

/// Whether an alloy contract error is a revert (the node answered the call with an error) as
/// opposed to a transport failure.
fn is_revert(e: &alloy::contract::Error) -> bool {
    match e {
        alloy::contract::Error::TransportError(t) => t.as_error_resp().is_some(),
        _ => false,
    }
}

impl Chain {
    /// Connects to `rpc_url` for `deployment`, signing transactions with `registrar` if given.
    pub fn new(
        rpc_url: &str,
        deployment: &Deployment,
        registrar: Option<PrivateKeySigner>,
        owner_ttl: Duration,
    ) -> Result<Self> {
        let url = rpc_url
            .parse()
            .map_err(|e| Error::Config(format!("invalid RPC URL {rpc_url}: {e}")))?;
        let provider = match &registrar {
            Some(s) => ProviderBuilder::new()
                .wallet(EthereumWallet::from(s.clone()))
                .connect_http(url)
                .erased(),
            None => ProviderBuilder::new().connect_http(url).erased(),
        };
        let nft = StorageNFT::new(deployment.storage_nft, provider.clone());
        Ok(Self {
            provider,
            nft,
            chain_id: deployment.chain_id,
            registrar,
            owners: Mutex::new(HashMap::new()),
            owner_ttl,
        })
    }

    /// The RPC provider (signing with the registrar key when there is one).
    pub(crate) fn rpc(&self) -> &DynProvider {
        &self.provider
    }

    /// The registrar key, if configured (the home node's signer).
    pub(crate) fn registrar_signer(&self) -> Option<&PrivateKeySigner> {
        self.registrar.as_ref()
    }

    /// Chain id of the deployment.
    pub fn chain_id(&self) -> u64 {
        self.chain_id
    }

    /// The StorageNFT address.
    pub fn contract(&self) -> Address {
        *self.nft.address()
    }

    /// The registrar address, if a key is configured.
    pub fn registrar(&self) -> Option<Address> {
        self.registrar.as_ref().map(|s| s.address())
    }

    /// Checks that the RPC answers with the deployment's chain id.
    pub async fn check(&self) -> Result<()> {
        let id = self.provider.get_chain_id().await?;
        if id != self.chain_id {
            return Err(Error::Config(format!(
                "RPC serves chain {id}, the deployment is for chain {}",
                self.chain_id
            )));
        }
        Ok(())
    }

    /// Whether the RPC answers.
    pub async fn alive(&self) -> bool {
        tokio::time::timeout(Duration::from_secs(2), self.provider.get_block_number())
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// The chain's latest block time (seconds).
    pub async fn now(&self) -> Result<u64> {
        use alloy::eips::BlockNumberOrTag;
        let block = self
            .provider
            .get_block_by_number(BlockNumberOrTag::Latest)
            .await?
            .ok_or_else(|| Error::Chain("no latest block".into()))?;
        Ok(block.header.timestamp)
    }

    /// The owner of a token (`None` if it does not exist), cached for the owner TTL.
    pub async fn owner_of(&self, token_id: u64) -> Result<Option<Address>> {
        if let Some((owner, at)) = self.owners.lock().expect("lock").get(&token_id).copied()
            && at.elapsed() < self.owner_ttl
        {
            return Ok(owner);
        }
        let owner = match self.nft.ownerOf(U256::from(token_id)).call().await {
            Ok(a) => Some(a),
            Err(e) if is_revert(&e) => None,
            Err(e) => return Err(e.into()),
        };
        self.owners
            .lock()
            .expect("lock")
            .insert(token_id, (owner, Instant::now()));
        Ok(owner)
    }

    /// `canUpload(tokenId, size)`: `None` if open, the reason if closed.
    pub async fn gate(&self, token_id: u64, size: u64) -> Result<Option<GateReason>> {
        let r = self
            .nft
            .canUpload(U256::from(token_id), U256::from(size))
            .call()
            .await?;
        if r.ok {
            return Ok(None);
        }
        let reason: u8 = r.reason;
        Ok(Some(GateReason::from_u8(reason).ok_or_else(|| {
            Error::Chain(format!("unknown gate reason {reason}"))
        })?))
    }

    /// Quota and key of a token.
    pub async fn token_facts(&self, token_id: u64) -> Result<TokenFacts> {
        let info = self.nft.tokenInfo(U256::from(token_id)).call().await?;
        Ok(TokenFacts {
            quota: info.quota,
            ipns_key: info.ipnsKey,
            seq: info.seq,
            used: info.used,
            file_count: u64::from(info.fileCount),
        })
    }

    /// The token's last `Synced` event: its sequence number and the record CID the oracle
    /// verified (`None` if the token was never synced).
    pub async fn last_synced(&self, token_id: u64) -> Result<Option<(u64, String)>> {
        use alloy::rpc::types::Filter;
        use alloy::sol_types::SolEvent;
        let filter = Filter::new()
            .address(self.contract())
            .event_signature(StorageNFT::Synced::SIGNATURE_HASH)
            .topic1(U256::from(token_id))
            .from_block(0);
        let logs = self.provider.get_logs(&filter).await?;
        let Some(log) = logs.last() else {
            return Ok(None);
        };
        let ev = StorageNFT::Synced::decode_log(&log.inner)
            .map_err(|e| Error::Chain(format!("undecodable Synced event: {e}")))?;
        let cid = cid::Cid::try_from(ev.recordCid.as_ref())
            .map_err(|e| Error::Chain(format!("Synced event with a bad record CID: {e}")))?;
        Ok(Some((ev.seq, cid.to_string())))
    }

    /// `keyRebindingDigest(tokenId, ipnsName, deadline)`: what the registrar signs so the
    /// holder can move the token to this node with `rebindKey`.
    pub async fn rebinding_digest(
        &self,
        token_id: u64,
        ipns_name: &[u8],
        deadline: u64,
    ) -> Result<B256> {
        Ok(self
            .nft
            .keyRebindingDigest(
                U256::from(token_id),
                Bytes::copy_from_slice(ipns_name),
                U256::from(deadline),
            )
            .call()
            .await?)
    }

    /// Signs an EIP-712 digest with the registrar key (65 bytes, `v` 27/28).
    pub fn sign_digest(&self, digest: &B256) -> Result<Bytes> {
        let signer = self.registrar.as_ref().ok_or(Error::NoRegistrar)?;
        let sig = signer
            .sign_hash_sync(digest)
            .map_err(|e| Error::Internal(e.to_string()))?;
        Ok(Bytes::from(sig.as_bytes().to_vec()))
    }

    /// The token bound to an ed25519 key (0: none).
    pub async fn token_of_key(&self, pubkey: &[u8; 32]) -> Result<u64> {
        let id = self.nft.tokenOfKey(B256::from(*pubkey)).call().await?;
        u64::try_from(id).map_err(|_| Error::Chain("token id over 64 bits".into()))
    }

    /// Binds `ipns_name` to `token_id` with `registerKey` and waits for the receipt.
    pub async fn register_key(&self, token_id: u64, ipns_name: &[u8; 38]) -> Result<B256> {
        if self.registrar.is_none() {
            return Err(Error::NoRegistrar);
        }
        let pending = self
            .nft
            .registerKey(U256::from(token_id), Bytes::copy_from_slice(ipns_name))
            .send()
            .await?;
        let receipt = pending
            .with_timeout(Some(Duration::from_secs(60)))
            .get_receipt()
            .await
            .map_err(|e| Error::Chain(e.to_string()))?;
        if !receipt.status() {
            return Err(Error::Chain(format!(
                "registerKey reverted in {}",
                receipt.transaction_hash
            )));
        }
        Ok(receipt.transaction_hash)
    }

    /// The EIP-712 digest of a key assignment under this deployment's domain.
    pub fn assignment_digest(&self, minter: Address, ipns_name: &[u8], deadline: u64) -> B256 {
        let domain = eip712_domain! {
            name: "PX StorageNFT",
            version: "1",
            chain_id: self.chain_id,
            verifying_contract: self.contract(),
        };
        KeyAssignment {
            minter,
            ipnsName: Bytes::copy_from_slice(ipns_name),
            deadline: U256::from(deadline),
        }
        .eip712_signing_hash(&domain)
    }

    /// Signs a key assignment with the registrar key (65 bytes, `v` 27/28).
    pub fn sign_assignment(
        &self,
        minter: Address,
        ipns_name: &[u8],
        deadline: u64,
    ) -> Result<Bytes> {
        let signer = self.registrar.as_ref().ok_or(Error::NoRegistrar)?;
        let digest = self.assignment_digest(minter, ipns_name, deadline);
        let sig = signer
            .sign_hash_sync(&digest)
            .map_err(|e| Error::Internal(e.to_string()))?;
        Ok(Bytes::from(sig.as_bytes().to_vec()))
    }
}
