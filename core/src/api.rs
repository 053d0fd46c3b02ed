//! Wire types of the storage node's HTTP API (`px-node`), shared by the node and the SDK client.
//!
//! # Flow
//! 1. `GET /v1/auth/nonce` answers a [`NonceResponse`]: a single-use nonce with its expiry and
//!    the domain, URI and chain id the node expects in the Sign-In with Ethereum (EIP-4361)
//!    message.
//! 2. The wallet signs the EIP-4361 message (EIP-191 `personal_sign`); `POST /v1/auth/login`
//!    with a [`LoginRequest`] answers a [`Session`]. Every other `/v1` call carries
//!    `Authorization: Bearer <Session::token>`.
//! 3. Minting: `GET /v1/key-assignment` answers a [`KeyAssignment`] for the session's address
//!    to pass to `StorageNFT.mintWithKey`; or, for a token minted without a key,
//!    `POST /v1/tokens/{id}/key` binds one through `registerKey` ([`RegisteredKey`]).
//! 4. Files: `POST /v1/tokens/{id}/files?name=..` with the raw bytes as the body (the optional
//!    `sha256` parameter is no longer sent by px-sdk: the plaintext hash stays inside the
//!    encrypted header, see [`crate::crypto`])
//!    (a `Content-Length` is required) answers an [`UploadResult`];
//!    `GET /v1/tokens/{id}/files?after=..&limit=..` a [`FileListPage`];
//!    `DELETE /v1/tokens/{id}/files/{fileId}` a [`DeleteResult`];
//!    `GET /v1/tokens/{id}/content/{cid}` streams the bytes; `GET /v1/tokens/{id}/usage` the
//!    [`Usage`].
//! 5. Provider network (a node that is the token's home node, `StorageMarket.homeNodeOf`):
//!    `GET /v1/network` answers a [`NetworkInfo`]; `POST /v1/tokens/{id}/placements` with a
//!    [`PlacementRequest`] answers a [`Placement`] (providers and signed upload orders); the
//!    client stores the pieces with the providers, then `POST /v1/tokens/{id}/manifests` with a
//!    [`ManifestCommit`] records the file (an [`UploadResult`], its entry's `redundancy` set);
//!    `GET /v1/tokens/{id}/files/{fileId}/manifest` answers the file's current
//!    [`crate::network::Manifest`]; `GET /v1/tokens/{id}/network` a [`TokenNetwork`] (deals,
//!    escrow, file health).
//!
//! Every refusal is an [`ErrorBody`] whose [`ErrorCode`] a client can match on; a closed
//! on-chain gate also carries the contract's [`GateReason`].

use alloy::primitives::{Address, B256, Bytes};
use serde::{Deserialize, Serialize};

use crate::erasure::Redundancy;
use crate::network::{Manifest, SignedOrder};

pub use crate::contracts::GateReason;

/// Header carrying the session token: `Authorization: Bearer <token>`.
pub const AUTHORIZATION: &str = "authorization";

/// Largest page of [`FileListPage`] the node returns.
pub const MAX_PAGE: u32 = 1000;

/// `GET /v1/auth/nonce`: what to put in the EIP-4361 message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NonceResponse {
    /// Single-use nonce (alphanumeric, at least 8 characters as EIP-4361 requires).
    pub nonce: String,
    /// Unix time (seconds) after which the nonce is no longer accepted.
    pub expires_at: u64,
    /// The `domain` the message must name (RFC 3986 authority, e.g. `node.example:8080`).
    pub domain: String,
    /// The `URI` the message must name.
    pub uri: String,
    /// The `Chain ID` the message must name.
    pub chain_id: u64,
}

/// `POST /v1/auth/login` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoginRequest {
    /// The full EIP-4361 message, exactly as signed.
    pub message: String,
    /// The 65-byte EIP-191 signature of `message`.
    pub signature: Bytes,
}

/// `POST /v1/auth/login` answer: a short-lived bearer token bound to `address`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    /// Bearer token for the `Authorization` header.
    pub token: String,
    /// The signed-in address.
    pub address: Address,
    /// Unix time (seconds) the session ends.
    pub expires_at: u64,
}

/// `GET /v1/key-assignment`: an EIP-712 `KeyAssignment(address minter,bytes ipnsName,uint256
/// deadline)` signed by the node's registrar key, for `StorageNFT.mintWithKey`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyAssignment {
    /// The address allowed to mint with this assignment (the session's address).
    pub minter: Address,
    /// The 38-byte binary IPNS name to bind.
    pub ipns_name: Bytes,
    /// The same name as a base36 `k51...` string.
    pub ipns_id: String,
    /// Unix time (seconds) after which the contract rejects the assignment.
    pub deadline: u64,
    /// The registrar's 65-byte signature.
    pub signature: Bytes,
    /// Chain id of the EIP-712 domain.
    pub chain_id: u64,
    /// StorageNFT address of the EIP-712 domain.
    pub contract: Address,
}

/// `POST /v1/tokens/{id}/key`: the key the node bound with `registerKey`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegisteredKey {
    /// Token id.
    pub token_id: u64,
    /// The 38-byte binary IPNS name now bound to the token.
    pub ipns_name: Bytes,
    /// The same name as a base36 `k51...` string.
    pub ipns_id: String,
}

/// `POST /v1/tokens/{id}/rebind`: the new node's offer to take a token over. The holder submits
/// it with `StorageNFT.rebindKey(tokenId, ipnsName, deadline, signature)`; the node has already
/// imported and pinned the token's files, and publishes a usage record under the new key
/// (sequence = the on-chain one + 1) on the first refresh or upload once the key is bound.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyRebinding {
    /// Token id.
    pub token_id: u64,
    /// The new node's 38-byte binary IPNS name for the token.
    pub ipns_name: Bytes,
    /// The same name as a base36 `k51...` string.
    pub ipns_id: String,
    /// Unix time after which the signature is refused.
    pub deadline: u64,
    /// The registrar's 65-byte signature of `keyRebindingDigest(tokenId, ipnsName, deadline)`.
    pub signature: Bytes,
    /// Chain id of the deployment.
    pub chain_id: u64,
    /// StorageNFT address.
    pub contract: Address,
    /// Files taken over from the previous node.
    pub file_count: u64,
    /// Bytes taken over from the previous node.
    pub used: u64,
    /// Sequence number of the usage record the files were taken from.
    pub from_seq: u64,
}

/// One stored file of a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileEntry {
    /// Per-token file id (increasing in upload order; the handle for delete).
    pub id: u64,
    /// File name as given at upload.
    pub name: String,
    /// CID of the stored bytes.
    pub cid: String,
    /// Size in bytes (what counts against the quota).
    pub size: u64,
    /// Hex SHA-256 the client sent with the upload, if any. Clients writing encryption format
    /// version 2 send none (the node would learn which known files a user holds); only files of
    /// version 1 clients have one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Unix time (seconds) of the upload.
    pub created_at: u64,
    /// Set for a file stored on the provider network: `cid` is then its
    /// [`crate::network::Manifest`] (JSON) as committed, and the pieces are with providers
    /// (`GET /v1/tokens/{id}/files/{fileId}/manifest` answers the current one, after repairs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redundancy: Option<Redundancy>,
}

/// A token's usage as the node last published it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    /// Token id.
    pub token_id: u64,
    /// Quota in bytes (on chain).
    pub quota: u64,
    /// Bytes stored.
    pub used: u64,
    /// Files stored.
    pub file_count: u64,
    /// Sequence number of the last published usage record.
    pub seq: u64,
    /// CID of the file index root (empty before the first upload).
    pub index: String,
    /// The token's IPNS name (base36 `k51...`).
    pub ipns_id: String,
}

/// `POST /v1/tokens/{id}/files` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UploadResult {
    /// The stored file.
    pub file: FileEntry,
    /// Usage after the upload (already published).
    pub usage: Usage,
}

/// `DELETE /v1/tokens/{id}/files/{fileId}` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteResult {
    /// The removed file.
    pub file: FileEntry,
    /// Usage after the delete (already published).
    pub usage: Usage,
}

/// `GET /v1/tokens/{id}/files` answer: files with ids above `after`, in id order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileListPage {
    /// Up to `limit` files.
    pub files: Vec<FileEntry>,
    /// Pass as `after` to get the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<u64>,
}

/// `GET /health` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    /// `"ok"` when the chain and the IPFS backend answered, `"degraded"` otherwise.
    pub status: String,
    /// Whether the chain RPC answered.
    pub chain: bool,
    /// Whether the IPFS backend answered.
    pub ipfs: bool,
}

/// Machine-readable refusal reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// The request is malformed (missing or invalid parameter).
    BadRequest,
    /// No valid session: missing, unknown or expired bearer token.
    Unauthorized,
    /// Sign-in refused: the message is malformed or its signature does not match its address.
    InvalidSignature,
    /// Sign-in refused: the message names another domain, URI or chain.
    WrongDomain,
    /// Sign-in refused: the nonce is unknown, already used or expired.
    InvalidNonce,
    /// Sign-in refused: the message is expired or not yet valid.
    MessageExpired,
    /// The session's address does not own the token.
    NotOwner,
    /// The on-chain gate (`canUpload`) is closed; `gate` says why.
    GateClosed,
    /// The upload would take the token over its quota.
    OverQuota,
    /// The upload is larger than the node accepts.
    TooLarge,
    /// The upload carries no `Content-Length`.
    LengthRequired,
    /// The token has no IPNS key bound, or one this node does not hold.
    NotServed,
    /// The token already has a key.
    KeyAlreadySet,
    /// The token's on-chain IPNS key is no longer this node's: the token moved to another
    /// node (`rebindKey`), which serves it now.
    KeyMoved,
    /// No such file or content for the token.
    NotFound,
    /// The chain or the IPFS backend failed; retry later.
    Unavailable,
    /// Too many requests from this IP address or account (HTTP 429): retry after the
    /// `Retry-After` header's seconds.
    RateLimited,
    /// The request took too long: past the node's request timeout (HTTP 503, with
    /// `Retry-After`), or an upload body that stalled or came slower than the node's minimum
    /// upload rate (HTTP 408).
    Timeout,
    /// Anything else.
    Internal,
    /// Provider network: this node is not the token's home node on chain
    /// (`StorageMarket.setHomeNode` names another, or none).
    NotHomeNode,
    /// Provider network: fewer eligible providers than the redundancy needs.
    NotEnoughProviders,
    /// Provider network: the token's escrow cannot pay the deals the placement needs.
    EscrowTooLow,
}

/// The body of every non-2xx answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    /// What went wrong, for programs.
    pub error: ErrorCode,
    /// What went wrong, for people.
    pub message: String,
    /// For [`ErrorCode::GateClosed`]: the contract's reason (e.g. `not_synced`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<GateReason>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_body_names_gate_reason_in_snake_case() {
        let body = ErrorBody {
            error: ErrorCode::GateClosed,
            message: "upload gate closed: not synced".into(),
            gate: Some(GateReason::NotSynced),
        };
        let v: serde_json::Value = serde_json::to_value(&body).unwrap();
        assert_eq!(v["error"], "gate_closed");
        assert_eq!(v["gate"], "not_synced");
        let back: ErrorBody = serde_json::from_value(v).unwrap();
        assert_eq!(back, body);
    }

    #[test]
    fn list_page_omits_next_on_last_page() {
        let page = FileListPage {
            files: vec![],
            next: None,
        };
        assert_eq!(serde_json::to_string(&page).unwrap(), r#"{"files":[]}"#);
    }
}

// ---------------------------------------------------------------------------------------------
// Provider network, home-node side (issue 17; "Provider network" in the design)
// ---------------------------------------------------------------------------------------------

/// `GET /v1/network` (no session): what this node offers as a home node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkInfo {
    /// The node's chain account: the address a token's holder names with
    /// `StorageMarket.setHomeNode`, and the signer of upload orders.
    pub home: Address,
    /// Chain id (of the orders' EIP-712 domain).
    pub chain_id: u64,
    /// The StorageMarket (the orders' `verifyingContract`).
    pub market: Address,
    /// The ProviderRegistry.
    pub registry: Address,
    /// Redundancy used when a placement asks for none.
    pub redundancy: Redundancy,
    /// Segment size used when a placement asks for none.
    pub segment_size: u64,
    /// Extra providers offered per segment for long-tail cancellation.
    pub spares: u16,
}

/// `POST /v1/tokens/{id}/placements`: where to put a file's pieces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlacementRequest {
    /// Ciphertext bytes (what the quota counts).
    pub size: u64,
    /// `k/n`; the node's default if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redundancy: Option<Redundancy>,
    /// Segment size; the node's default if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment_size: Option<u64>,
}

/// One provider a piece may go to, with the order it is stored under.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlacementTarget {
    /// The provider.
    pub provider: Address,
    /// Its endpoint (base URL) from the registry.
    pub url: String,
    /// The order, signed by the home node.
    pub order: SignedOrder,
}

/// `POST /v1/tokens/{id}/placements` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Placement {
    /// The upload's id (every order's `file`).
    pub file: B256,
    /// `k/n`.
    pub redundancy: Redundancy,
    /// Segment size.
    pub segment_size: u64,
    /// Unix time (seconds) the orders expire.
    pub expires_at: u64,
    /// For each segment, its targets: each piece index's primary first, then spares (orders
    /// for the same index with other providers).
    pub segments: Vec<Vec<PlacementTarget>>,
}

/// `POST /v1/tokens/{id}/manifests`: commits a file stored on providers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestCommit {
    /// File name (as for an upload; encrypted names are sealed by the client).
    pub name: String,
    /// Where the pieces are, with the providers' receipts.
    pub manifest: Manifest,
}

/// A deal of a token as `GET /v1/tokens/{id}/network` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DealInfo {
    /// The deal id (`StorageMarket.dealIdOf`).
    pub deal_id: B256,
    /// The provider.
    pub provider: Address,
    /// `active`, `completed`, `breached` or `pending` (not opened yet).
    pub status: String,
    /// Periods missed.
    pub misses: u8,
    /// Periods settled (proven or missed).
    pub next_period: u16,
    /// Periods in the term.
    pub periods: u16,
    /// Pieces under the on-chain root.
    pub piece_count: u16,
    /// Bytes under the on-chain root.
    pub size: u64,
    /// Pieces committed in manifests but not under the on-chain root yet (the next root
    /// update's).
    pub pending_pieces: u32,
    /// Escrow still committed to it (wei, decimal).
    pub remaining: String,
}

/// Health of one file on the provider network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileHealth {
    /// File id.
    pub id: u64,
    /// `k/n`.
    pub redundancy: Redundancy,
    /// Healthy pieces of each segment (provider live, deal not breached, no missed proof
    /// since the piece was placed).
    pub healthy: Vec<u16>,
    /// Pieces the repair loop moved so far.
    pub repaired: u64,
}

/// `GET /v1/tokens/{id}/network` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenNetwork {
    /// The token's escrow not committed to deals (wei, decimal).
    pub escrow: String,
    /// Whether this node is the token's home node on chain (`StorageMarket.homeNodeOf`).
    pub home: bool,
    /// Its deals.
    pub deals: Vec<DealInfo>,
    /// Its files on the network.
    pub files: Vec<FileHealth>,
}
