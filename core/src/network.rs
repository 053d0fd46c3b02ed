//! What the SDK, the home node and the providers of the provider network exchange: upload
//! orders, piece receipts and the file manifest.
//!
//! # Flow
//! 1. The SDK encodes a file's ciphertext into segments and pieces ([`crate::erasure`]) and
//!    computes each piece's CID and Merkle root ([`crate::piece`]).
//! 2. The home node places the pieces: for each it picks a provider and signs an
//!    [`UploadOrder`] (EIP-712, below) naming token, file, segment, piece index, provider,
//!    largest size and expiry.
//! 3. A provider accepts a piece only with an order that is signed by a registered home node,
//!    names it and has not expired ([`SignedOrder::check`]); it stores the piece and signs a
//!    [`PieceReceipt`] over the order's hash and the piece's CID, root, depth and size.
//! 4. The SDK commits the [`Manifest`] (segments -> pieces -> provider, CID, root, order,
//!    receipt) to the home node, which checks it ([`Manifest::validate`],
//!    [`Manifest::verify_signatures`]) and records it in the token's file index.
//!
//! # EIP-712
//! No contract verifies these messages, so they have their own domain, bound to one market
//! deployment: `{ name: "PX Storage Node", version: "1", chainId, verifyingContract: the
//! StorageMarket }` ([`domain`]). Types:
//! ```text
//! UploadOrder(uint256 tokenId,bytes32 file,uint32 segment,uint16 piece,address provider,
//!             uint64 maxSize,uint64 expiry)
//! PieceReceipt(bytes32 orderHash,bytes cid,bytes32 root,uint8 depth,uint64 size)
//! ```
//! `file` is the id the home node gives the upload (the same in every order of one file
//! version), `expiry` a Unix time in seconds, `orderHash` the order's EIP-712 signing hash,
//! `cid` the binary CID. Signatures are 65 bytes `r || s || v` (v = 27 or 28), hex in JSON.
//!
//! # Manifest (JSON, version 1)
//! ```json
//! { "version": 1, "tokenId": 1, "file": "0x…32 bytes", "size": 1000, "segmentSize": 67108864,
//!   "redundancy": "4/6",
//!   "segments": [ { "length": 1000, "pieces": [
//!     { "index": 0, "provider": "0x…", "cid": "bafk…", "root": "0x…", "depth": 3, "size": 256,
//!       "order": { "tokenId": 1, "file": "0x…", "segment": 0, "piece": 0, "provider": "0x…",
//!                  "maxSize": 256, "expiry": 1700000000, "signature": "0x…65 bytes" },
//!       "receipt": "0x…65 bytes" } ] } ] }
//! ```
//! `size` is the ciphertext's length, `length` each segment's (what the decoder truncates
//! to); `receipt` is the provider's signature of the piece's [`PieceReceipt`].

use std::collections::HashSet;

use alloy::{
    primitives::{Address, B256, Signature, U256},
    signers::SignerSync,
    sol_types::{Eip712Domain, SolStruct, eip712_domain},
};
use cid::Cid;
use serde::{Deserialize, Serialize};

use crate::{
    erasure::{self, Redundancy},
    piece,
};

/// The manifest schema version this crate writes and reads.
pub const MANIFEST_VERSION: u32 = 1;
/// Default upper bound on an encoded manifest (4 MiB: about 8,000 pieces).
pub const MAX_MANIFEST_BYTES: usize = 4 << 20;

/// The EIP-712 types as Solidity structs (their `eip712_signing_hash` is what gets signed).
pub mod eip712 {
    alloy::sol! {
        /// A home node's order to a provider to accept one piece.
        #[derive(Debug, PartialEq, Eq)]
        struct UploadOrder {
            uint256 tokenId;
            bytes32 file;
            uint32 segment;
            uint16 piece;
            address provider;
            uint64 maxSize;
            uint64 expiry;
        }

        /// A provider's receipt for a stored piece.
        #[derive(Debug, PartialEq, Eq)]
        struct PieceReceipt {
            bytes32 orderHash;
            bytes cid;
            bytes32 root;
            uint8 depth;
            uint64 size;
        }
    }
}

/// The EIP-712 domain of orders and receipts for the market `market` on chain `chain_id`.
pub fn domain(chain_id: u64, market: Address) -> Eip712Domain {
    eip712_domain! {
        name: "PX Storage Node",
        version: "1",
        chain_id: chain_id,
        verifying_contract: market,
    }
}

/// Why an order, receipt or manifest was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetworkError {
    /// A signature does not recover to an address.
    #[error("signature does not recover: {0}")]
    BadSignature(#[from] alloy::primitives::SignatureError),
    /// Signing failed.
    #[error("signing failed: {0}")]
    Sign(#[from] alloy::signers::Error),
    /// An order names another provider.
    #[error("order is for provider {order}, not {this}")]
    WrongProvider {
        /// The order's provider.
        order: Address,
        /// The provider checking it.
        this: Address,
    },
    /// An order has expired.
    #[error("order expired at {expiry} (now {now})")]
    Expired {
        /// Its expiry.
        expiry: u64,
        /// The time it was checked at.
        now: u64,
    },
    /// A piece is larger than its order allows.
    #[error("piece of {size} bytes is over the order's {max} bytes")]
    TooLarge {
        /// The piece's size.
        size: u64,
        /// The order's `maxSize`.
        max: u64,
    },
    /// A receipt is not signed by the order's provider.
    #[error("receipt signed by {signer}, not by the provider {provider}")]
    WrongReceiptSigner {
        /// Who signed it.
        signer: Address,
        /// The order's provider.
        provider: Address,
    },
    /// The manifest is larger than allowed.
    #[error("manifest is {size} bytes, over the {limit}-byte limit")]
    ManifestTooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The manifest is not JSON of the expected shape.
    #[error("manifest is not valid: {0}")]
    Malformed(#[from] serde_json::Error),
    /// The manifest has a schema version this crate does not know.
    #[error("manifest has schema version {0}, expected {MANIFEST_VERSION}")]
    UnknownVersion(u32),
    /// The manifest's segment size is invalid.
    #[error(transparent)]
    Erasure(#[from] erasure::ErasureError),
    /// The manifest is inconsistent.
    #[error("manifest is inconsistent: {0}")]
    Inconsistent(String),
}

/// Result alias of this module.
pub type Result<T, E = NetworkError> = std::result::Result<T, E>;

/// A home node's order to a provider to accept one piece (EIP-712 `UploadOrder`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UploadOrder {
    /// The token the piece is stored for.
    pub token_id: u64,
    /// The upload's id (the same in every order of one file version).
    pub file: B256,
    /// The segment.
    pub segment: u32,
    /// The piece index within the segment (`0 .. n`).
    pub piece: u16,
    /// The provider that may accept it.
    pub provider: Address,
    /// The largest piece it covers, in bytes.
    pub max_size: u64,
    /// Unix time (seconds) after which it is refused.
    pub expiry: u64,
}

impl UploadOrder {
    /// The Solidity struct.
    pub fn to_sol(&self) -> eip712::UploadOrder {
        eip712::UploadOrder {
            tokenId: U256::from(self.token_id),
            file: self.file,
            segment: self.segment,
            piece: self.piece,
            provider: self.provider,
            maxSize: self.max_size,
            expiry: self.expiry,
        }
    }

    /// Its EIP-712 signing hash (the `orderHash` of receipts).
    pub fn hash(&self, domain: &Eip712Domain) -> B256 {
        self.to_sol().eip712_signing_hash(domain)
    }

    /// Signs it (the home node).
    pub fn sign(self, signer: &impl SignerSync, domain: &Eip712Domain) -> Result<SignedOrder> {
        let signature = signer.sign_hash_sync(&self.hash(domain))?;
        Ok(SignedOrder {
            order: self,
            signature,
        })
    }
}

/// An order with the home node's signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SignedOrder {
    /// The order.
    #[serde(flatten)]
    pub order: UploadOrder,
    /// The home node's signature of its hash.
    #[serde(with = "sig_hex")]
    pub signature: Signature,
}

impl SignedOrder {
    /// Who signed it.
    pub fn signer(&self, domain: &Eip712Domain) -> Result<Address> {
        Ok(self
            .signature
            .recover_address_from_prehash(&self.order.hash(domain))?)
    }

    /// A provider's check before it accepts a piece of `size` bytes at Unix time `now`: the
    /// order names `provider`, has not expired and covers the size. Returns the signer, which
    /// the provider must then find registered as a home node (`REGISTRAR_ROLE`) and, for the
    /// order's token, as its home node (`StorageMarket.homeNodeOf`).
    pub fn check(
        &self,
        domain: &Eip712Domain,
        provider: Address,
        size: u64,
        now: u64,
    ) -> Result<Address> {
        let o = &self.order;
        if o.provider != provider {
            return Err(NetworkError::WrongProvider {
                order: o.provider,
                this: provider,
            });
        }
        if now > o.expiry {
            return Err(NetworkError::Expired {
                expiry: o.expiry,
                now,
            });
        }
        if size > o.max_size {
            return Err(NetworkError::TooLarge {
                size,
                max: o.max_size,
            });
        }
        self.signer(domain)
    }
}

/// What a provider signs for a stored piece (EIP-712 `PieceReceipt`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PieceReceipt {
    /// The order's hash ([`UploadOrder::hash`]).
    pub order_hash: B256,
    /// The piece's CID ([`piece::CID_OPTIONS`]).
    pub cid: Cid,
    /// Its Merkle root.
    pub root: B256,
    /// Its tree's depth.
    pub depth: u8,
    /// Its size in bytes.
    pub size: u64,
}

impl PieceReceipt {
    /// The Solidity struct.
    pub fn to_sol(&self) -> eip712::PieceReceipt {
        eip712::PieceReceipt {
            orderHash: self.order_hash,
            cid: self.cid.to_bytes().into(),
            root: self.root,
            depth: self.depth,
            size: self.size,
        }
    }

    /// Its EIP-712 signing hash.
    pub fn hash(&self, domain: &Eip712Domain) -> B256 {
        self.to_sol().eip712_signing_hash(domain)
    }

    /// Signs it (the provider).
    pub fn sign(&self, signer: &impl SignerSync, domain: &Eip712Domain) -> Result<Signature> {
        Ok(signer.sign_hash_sync(&self.hash(domain))?)
    }

    /// Who signed it.
    pub fn signer(&self, signature: &Signature, domain: &Eip712Domain) -> Result<Address> {
        Ok(signature.recover_address_from_prehash(&self.hash(domain))?)
    }
}

/// One piece of a segment where the manifest placed it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PiecePlacement {
    /// Index in the segment (`0 .. n`; below `k` an original shard).
    pub index: u16,
    /// The provider holding it.
    pub provider: Address,
    /// Its CID.
    #[serde(with = "cid_string")]
    pub cid: Cid,
    /// Its Merkle root.
    pub root: B256,
    /// Its tree's depth.
    pub depth: u8,
    /// Its size in bytes.
    pub size: u64,
    /// The order it was stored under.
    pub order: SignedOrder,
    /// The provider's signature of its [`PieceReceipt`].
    #[serde(with = "sig_hex")]
    pub receipt: Signature,
}

impl PiecePlacement {
    /// The receipt the provider signed.
    pub fn receipt_message(&self, domain: &Eip712Domain) -> PieceReceipt {
        PieceReceipt {
            order_hash: self.order.order.hash(domain),
            cid: self.cid,
            root: self.root,
            depth: self.depth,
            size: self.size,
        }
    }
}

/// One segment: its length and its pieces.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SegmentPlacement {
    /// Its length in bytes (what decoding truncates to).
    pub length: u64,
    /// Its `n` pieces.
    pub pieces: Vec<PiecePlacement>,
}

/// Where a file's pieces are: the manifest the SDK commits and the home node records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Manifest {
    /// Schema version, [`MANIFEST_VERSION`].
    pub version: u32,
    /// The token.
    pub token_id: u64,
    /// The upload's id (the orders' `file`).
    pub file: B256,
    /// Ciphertext bytes.
    pub size: u64,
    /// Segment size (the last segment may be shorter).
    pub segment_size: u64,
    /// `k`-of-`n`.
    pub redundancy: Redundancy,
    /// The segments in order.
    pub segments: Vec<SegmentPlacement>,
}

impl Manifest {
    /// Parses a manifest of at most `limit` bytes and checks it ([`Manifest::validate`]).
    pub fn parse(bytes: &[u8], limit: usize) -> Result<Self> {
        if bytes.len() > limit {
            return Err(NetworkError::ManifestTooLarge {
                size: bytes.len(),
                limit,
            });
        }
        #[derive(Deserialize)]
        struct Version {
            version: u32,
        }
        let v: Version = serde_json::from_slice(bytes)?;
        if v.version != MANIFEST_VERSION {
            return Err(NetworkError::UnknownVersion(v.version));
        }
        let m: Self = serde_json::from_slice(bytes)?;
        m.validate()?;
        Ok(m)
    }

    /// The JSON form.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a manifest serializes")
    }

    /// Checks its shape without signatures: version, segment lengths from size and segment
    /// size, every segment with each piece index `0 .. n` exactly once, each piece of the size
    /// its segment gives and of the matching depth, each order naming this token, file,
    /// segment, piece and provider and covering the size.
    pub fn validate(&self) -> Result<()> {
        let bad = |s: String| Err(NetworkError::Inconsistent(s));
        if self.version != MANIFEST_VERSION {
            return Err(NetworkError::UnknownVersion(self.version));
        }
        let segment_size = usize::try_from(self.segment_size)
            .map_err(|_| erasure::ErasureError::InvalidSegmentSize(usize::MAX))?;
        let lengths = erasure::segment_lengths(self.size, segment_size)?;
        if lengths.len() != self.segments.len() {
            return bad(format!(
                "{} segments, {} bytes in segments of {} need {}",
                self.segments.len(),
                self.size,
                self.segment_size,
                lengths.len()
            ));
        }
        let n = usize::from(self.redundancy.n());
        for (s, (seg, len)) in self.segments.iter().zip(lengths).enumerate() {
            if seg.length != len {
                return bad(format!(
                    "segment {s} is {} bytes, expected {len}",
                    seg.length
                ));
            }
            let piece_size = self.redundancy.piece_size(len as usize) as u64;
            let depth = piece::depth_of(piece::chunks_of(piece_size));
            if seg.pieces.len() != n {
                return bad(format!(
                    "segment {s} has {} pieces, expected {n}",
                    seg.pieces.len()
                ));
            }
            let mut seen = HashSet::new();
            for p in &seg.pieces {
                let i = p.index;
                if usize::from(i) >= n || !seen.insert(i) {
                    return bad(format!(
                        "segment {s}: piece index {i} out of range or repeated"
                    ));
                }
                if p.size != piece_size || p.depth != depth {
                    return bad(format!(
                        "segment {s} piece {i}: size {} depth {}, expected {piece_size} {depth}",
                        p.size, p.depth
                    ));
                }
                let o = &p.order.order;
                if o.token_id != self.token_id
                    || o.file != self.file
                    || o.segment as usize != s
                    || o.piece != i
                    || o.provider != p.provider
                    || o.max_size < p.size
                {
                    return bad(format!(
                        "segment {s} piece {i}: its order is for another piece"
                    ));
                }
            }
        }
        Ok(())
    }

    /// Checks every receipt is signed by its piece's provider and returns the distinct order
    /// signers, each of which the caller must find to be the token's home node.
    pub fn verify_signatures(&self, domain: &Eip712Domain) -> Result<Vec<Address>> {
        let mut signers = Vec::new();
        for p in self.segments.iter().flat_map(|s| &s.pieces) {
            let signer = p.receipt_message(domain).signer(&p.receipt, domain)?;
            if signer != p.provider {
                return Err(NetworkError::WrongReceiptSigner {
                    signer,
                    provider: p.provider,
                });
            }
            let home = p.order.signer(domain)?;
            if !signers.contains(&home) {
                signers.push(home);
            }
        }
        Ok(signers)
    }
}

/// Signatures as 0x-hex of their 65 bytes `r || s || v`.
mod sig_hex {
    use alloy::primitives::{Signature, hex};
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub(super) fn serialize<S: Serializer>(sig: &Signature, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode_prefixed(sig.as_bytes()))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Signature, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        let bytes = hex::decode(s.as_ref()).map_err(D::Error::custom)?;
        Signature::try_from(bytes.as_slice()).map_err(D::Error::custom)
    }
}

/// CIDs as their default string form.
mod cid_string {
    use cid::Cid;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub(super) fn serialize<S: Serializer>(cid: &Cid, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(cid)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Cid, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Cid::try_from(s.as_ref()).map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use alloy::{
        primitives::{address, b256, keccak256},
        signers::local::PrivateKeySigner,
        sol_types::SolValue,
    };

    use super::*;
    use crate::{
        erasure::{Encoder, tests::bytes},
        piece::summarize,
    };

    fn key(i: u8) -> PrivateKeySigner {
        PrivateKeySigner::from_bytes(&B256::repeat_byte(i)).unwrap()
    }

    fn dom() -> Eip712Domain {
        domain(
            31337,
            address!("0x00000000000000000000000000000000000000aa"),
        )
    }

    fn order() -> UploadOrder {
        UploadOrder {
            token_id: 7,
            file: B256::repeat_byte(0x11),
            segment: 2,
            piece: 5,
            provider: key(2).address(),
            max_size: 1 << 24,
            expiry: 1_700_000_000,
        }
    }

    /// A manifest of a 1000-byte file in 300-byte segments at 2/3, signed by home node key 1 and
    /// providers 10, 11, 12.
    fn manifest() -> Manifest {
        let (d, home) = (dom(), key(1));
        let r = Redundancy::new(2, 3).unwrap();
        let data = bytes(1000, 4);
        let file = B256::repeat_byte(0x42);
        let mut enc = Encoder::new(r);
        let segments = erasure::segment_ranges(1000, 300)
            .unwrap()
            .enumerate()
            .map(|(s, range)| {
                let pieces = enc
                    .encode(&data[range.start as usize..range.end as usize])
                    .unwrap();
                let pieces = (0..3u16)
                    .map(|i| {
                        let provider = key(10 + i as u8);
                        let sum = summarize(pieces.piece(usize::from(i))).unwrap();
                        let order = UploadOrder {
                            token_id: 7,
                            file,
                            segment: s as u32,
                            piece: i,
                            provider: provider.address(),
                            max_size: sum.root.size,
                            expiry: 1_700_000_000,
                        }
                        .sign(&home, &d)
                        .unwrap();
                        let receipt = PieceReceipt {
                            order_hash: order.order.hash(&d),
                            cid: sum.cid,
                            root: sum.root.root,
                            depth: sum.root.depth,
                            size: sum.root.size,
                        };
                        PiecePlacement {
                            index: i,
                            provider: provider.address(),
                            cid: sum.cid,
                            root: sum.root.root,
                            depth: sum.root.depth,
                            size: sum.root.size,
                            receipt: receipt.sign(&provider, &d).unwrap(),
                            order,
                        }
                    })
                    .collect();
                SegmentPlacement {
                    length: range.end - range.start,
                    pieces,
                }
            })
            .collect();
        Manifest {
            version: 1,
            token_id: 7,
            file,
            size: 1000,
            segment_size: 300,
            redundancy: r,
            segments,
        }
    }

    #[test]
    fn order_hash_is_eip712_of_the_documented_type() {
        let o = order();
        let typehash = keccak256(
            "UploadOrder(uint256 tokenId,bytes32 file,uint32 segment,uint16 piece,\
             address provider,uint64 maxSize,uint64 expiry)",
        );
        let struct_hash = keccak256(
            (
                typehash,
                U256::from(7),
                o.file,
                U256::from(2),
                U256::from(5),
                o.provider,
                U256::from(1u64 << 24),
                U256::from(1_700_000_000u64),
            )
                .abi_encode(),
        );
        let domain_typehash = keccak256(
            "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)",
        );
        let separator = keccak256(
            (
                domain_typehash,
                keccak256("PX Storage Node"),
                keccak256("1"),
                U256::from(31337),
                address!("0x00000000000000000000000000000000000000aa"),
            )
                .abi_encode(),
        );
        let digest =
            keccak256([&[0x19, 0x01], separator.as_slice(), struct_hash.as_slice()].concat());
        assert_eq!(o.hash(&dom()), digest);
        // Pinned, for other implementations (also in core/vectors/erasure.json).
        assert_eq!(
            digest,
            b256!("0x4b8c70834c0c11b001ffbfa3672fb1669cb1df4fb7b04cb31d4a8def0796d588")
        );
    }

    #[test]
    fn receipt_hash_is_eip712_of_the_documented_type() {
        let cid = summarize(b"piece").unwrap().cid;
        let r = PieceReceipt {
            order_hash: B256::repeat_byte(3),
            cid,
            root: B256::repeat_byte(4),
            depth: 9,
            size: 4096,
        };
        let typehash = keccak256(
            "PieceReceipt(bytes32 orderHash,bytes cid,bytes32 root,uint8 depth,uint64 size)",
        );
        let struct_hash = keccak256(
            (
                typehash,
                r.order_hash,
                keccak256(cid.to_bytes()),
                r.root,
                U256::from(9),
                U256::from(4096),
            )
                .abi_encode(),
        );
        let separator = dom().separator();
        let digest =
            keccak256([&[0x19, 0x01], separator.as_slice(), struct_hash.as_slice()].concat());
        assert_eq!(r.hash(&dom()), digest);
    }

    #[test]
    fn provider_checks_its_orders() {
        let (d, home) = (dom(), key(1));
        let signed = order().sign(&home, &d).unwrap();
        let me = key(2).address();
        assert_eq!(
            signed.check(&d, me, 1 << 24, 1_700_000_000).unwrap(),
            home.address()
        );
        // Replayed to another provider.
        assert!(matches!(
            signed.check(&d, key(3).address(), 100, 0),
            Err(NetworkError::WrongProvider { .. })
        ));
        // After expiry.
        assert!(matches!(
            signed.check(&d, me, 100, 1_700_000_001),
            Err(NetworkError::Expired {
                expiry: 1_700_000_000,
                now: 1_700_000_001
            })
        ));
        // Over its size.
        assert!(matches!(
            signed.check(&d, me, (1 << 24) + 1, 0),
            Err(NetworkError::TooLarge { .. })
        ));
        // Another deployment's domain recovers someone else.
        let other = domain(31337, Address::ZERO);
        assert_ne!(signed.check(&other, me, 100, 0).unwrap(), home.address());
        // An edited order recovers someone else.
        let mut edited = signed.clone();
        edited.order.max_size += 1;
        assert_ne!(edited.check(&d, me, 100, 0).unwrap(), home.address());
    }

    #[test]
    fn manifest_validates_round_trips_and_verifies() {
        let m = manifest();
        m.validate().unwrap();
        let json = m.to_json();
        assert_eq!(Manifest::parse(&json, MAX_MANIFEST_BYTES).unwrap(), m);
        assert_eq!(m.verify_signatures(&dom()).unwrap(), vec![key(1).address()]);
        let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(v["redundancy"], "2/3");
        assert_eq!(v["segments"][3]["length"], 100);
        assert!(
            v["segments"][0]["pieces"][0]["cid"]
                .as_str()
                .unwrap()
                .starts_with("baf")
        );
        assert_eq!(
            v["segments"][0]["pieces"][0]["order"]["signature"]
                .as_str()
                .unwrap()
                .len(),
            132
        );
    }

    #[test]
    fn manifest_refuses_inconsistencies() {
        let check = |edit: &dyn Fn(&mut Manifest)| {
            let mut m = manifest();
            edit(&mut m);
            m.validate().unwrap_err()
        };
        let inconsistent = |e: NetworkError| matches!(e, NetworkError::Inconsistent(_));
        assert!(inconsistent(check(&|m| m.size += 1)));
        assert!(inconsistent(check(&|m| m.segments[1].length -= 1)));
        // A repeated or out-of-range index, with an order to match.
        let reindex = |i: u16| {
            move |m: &mut Manifest| {
                m.segments[0].pieces[1].index = i;
                m.segments[0].pieces[1].order.order.piece = i;
            }
        };
        assert!(inconsistent(check(&reindex(0))));
        assert!(inconsistent(check(&reindex(3))));
        assert!(inconsistent(check(&|m| {
            m.segments[0].pieces.pop();
        })));
        assert!(inconsistent(check(&|m| m.segments[2].pieces[0].size += 64)));
        assert!(inconsistent(check(&|m| m.segments[2].pieces[0].depth += 1)));
        assert!(inconsistent(check(&|m| m.segments[2].pieces[0]
            .order
            .order
            .segment = 1)));
        assert!(inconsistent(check(&|m| m.segments[2].pieces[0]
            .order
            .order
            .file = B256::ZERO)));
        assert!(inconsistent(check(&|m| m.segments[2].pieces[0]
            .order
            .order
            .token_id = 8)));
        assert!(inconsistent(check(
            &|m| m.segments[2].pieces[1].provider = Address::ZERO
        )));
        assert!(inconsistent(check(&|m| m.segments[2].pieces[1]
            .order
            .order
            .max_size = 1)));
        assert!(matches!(
            check(&|m| m.version = 2),
            NetworkError::UnknownVersion(2)
        ));
        assert!(matches!(
            check(&|m| m.segment_size = 0),
            NetworkError::Erasure(_)
        ));

        let json = manifest().to_json();
        assert!(matches!(
            Manifest::parse(&json, json.len() - 1),
            Err(NetworkError::ManifestTooLarge { .. })
        ));
        let v2 =
            String::from_utf8(json.clone())
                .unwrap()
                .replacen("\"version\":1", "\"version\":2", 1);
        assert!(matches!(
            Manifest::parse(v2.as_bytes(), MAX_MANIFEST_BYTES),
            Err(NetworkError::UnknownVersion(2))
        ));
        let extra = String::from_utf8(json)
            .unwrap()
            .replacen("{", "{\"extra\":0,", 1);
        assert!(matches!(
            Manifest::parse(extra.as_bytes(), MAX_MANIFEST_BYTES),
            Err(NetworkError::Malformed(_))
        ));
    }

    #[test]
    fn receipts_must_be_signed_by_the_provider() {
        let d = dom();
        let mut m = manifest();
        let p = &mut m.segments[1].pieces[2];
        // Signed by another provider.
        p.receipt = p.receipt_message(&d).sign(&key(99), &d).unwrap();
        assert!(matches!(
            m.verify_signatures(&d),
            Err(NetworkError::WrongReceiptSigner { .. })
        ));
        // A receipt for another root does not carry over.
        let mut m = manifest();
        m.segments[0].pieces[0].root = B256::repeat_byte(9);
        assert!(matches!(
            m.verify_signatures(&d),
            Err(NetworkError::WrongReceiptSigner { .. })
        ));
    }
}
