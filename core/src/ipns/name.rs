//! IPNS names: the multihash of a public key (a libp2p peer id), written as a CIDv1 with the
//! `libp2p-key` codec in base36 (`k51...`).

use std::fmt;
use std::str::FromStr;

use cid::Cid;
use libp2p_identity::{PeerId, PublicKey};

use super::IpnsError;

/// Multicodec of a CID that names a libp2p public key.
pub const LIBP2P_KEY_CODEC: u64 = 0x72;

/// The first six bytes of every ed25519 IPNS name in binary form: identity multihash of length
/// 36 over the protobuf public key (KeyType Ed25519, 32-byte data).
pub const ED25519_NAME_PREFIX: [u8; 6] = [0x00, 0x24, 0x08, 0x01, 0x12, 0x20];

/// An IPNS name (equivalently a libp2p [`PeerId`]).
///
/// Parses every form Kubo accepts for a key name: `k51...` (base36 CIDv1), any other multibase
/// CIDv1 with the `libp2p-key` codec (`bafzaa...`), a base58 peer id (`12D3KooW...`, `Qm...`),
/// each optionally prefixed by `/ipns/`. Displays as base36 CIDv1, as Kubo prints it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IpnsName(PeerId);

impl IpnsName {
    /// The name of a public key.
    pub fn from_public_key(key: &PublicKey) -> Self {
        Self(key.to_peer_id())
    }

    /// The name for a peer id.
    pub fn from_peer_id(peer: PeerId) -> Self {
        Self(peer)
    }

    /// The peer id this name stands for.
    pub fn peer_id(&self) -> PeerId {
        self.0
    }

    /// The raw multihash bytes of the name: for ed25519 keys the 38-byte identity multihash
    /// (`00 24 08 01 12 20 <32-byte key>`), the compact form the contracts store.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.0.to_bytes()
    }

    /// Parses the raw multihash bytes produced by [`IpnsName::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, IpnsError> {
        PeerId::from_bytes(bytes)
            .map(Self)
            .map_err(|e| IpnsError::InvalidName(e.to_string()))
    }

    /// The 32-byte ed25519 public key inlined in the name (the `bytes32` the contracts keep),
    /// or `None` for names of other key types.
    pub fn ed25519_key(&self) -> Option<[u8; 32]> {
        let bytes = self.to_bytes();
        match bytes.strip_prefix(&ED25519_NAME_PREFIX[..]) {
            Some(key) => key.try_into().ok(),
            None => None,
        }
    }

    /// The name of an ed25519 public key given as its 32 bytes.
    pub fn from_ed25519_key(key: &[u8; 32]) -> Result<Self, IpnsError> {
        let mut bytes = ED25519_NAME_PREFIX.to_vec();
        bytes.extend_from_slice(key);
        let name = Self::from_bytes(&bytes)?;
        // Reject 32-byte strings that are not a valid curve point.
        name.inline_public_key()
            .ok_or_else(|| IpnsError::InvalidName("not an ed25519 public key".into()))?;
        Ok(name)
    }

    /// The name as a CIDv1 with the `libp2p-key` codec.
    pub fn to_cid(&self) -> Cid {
        Cid::new_v1(LIBP2P_KEY_CODEC, *self.0.as_ref())
    }

    /// The key under which the record is stored in the routing system: `/ipns/` followed by the
    /// raw multihash bytes.
    pub fn routing_key(&self) -> Vec<u8> {
        let mut key = b"/ipns/".to_vec();
        key.extend_from_slice(&self.to_bytes());
        key
    }

    /// The public key, when it is inlined in the name (identity multihash, as for ed25519).
    pub fn inline_public_key(&self) -> Option<PublicKey> {
        let mh = self.0.as_ref();
        if mh.code() != 0x00 {
            return None;
        }
        PublicKey::try_decode_protobuf(mh.digest()).ok()
    }
}

impl fmt::Display for IpnsName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cid = self.to_cid();
        match cid.to_string_of_base(multibase::Base::Base36Lower) {
            Ok(s) => f.write_str(&s),
            Err(_) => write!(f, "{cid}"),
        }
    }
}

impl FromStr for IpnsName {
    type Err = IpnsError;

    fn from_str(s: &str) -> Result<Self, IpnsError> {
        let bare = s.strip_prefix("/ipns/").unwrap_or(s);
        let bare = bare.strip_suffix('/').unwrap_or(bare);
        let invalid = |why: &dyn fmt::Display| IpnsError::InvalidName(format!("{s:?}: {why}"));
        if bare.is_empty() || bare.contains('/') {
            return Err(invalid(&"expected a key name without a path"));
        }
        if bare.starts_with("Qm") || bare.starts_with('1') {
            return PeerId::from_str(bare).map(Self).map_err(|e| invalid(&e));
        }
        let cid = Cid::try_from(bare).map_err(|e| invalid(&e))?;
        if cid.codec() != LIBP2P_KEY_CODEC {
            return Err(invalid(&format_args!(
                "CID codec 0x{:x} is not libp2p-key",
                cid.codec()
            )));
        }
        PeerId::from_multihash(*cid.hash())
            .map(Self)
            .map_err(|_| invalid(&"multihash is not a peer id"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libp2p_identity::Keypair;

    #[test]
    fn name_forms_round_trip() {
        let key = Keypair::generate_ed25519();
        let name = IpnsName::from_public_key(&key.public());
        let text = name.to_string();
        assert!(text.starts_with("k51"), "{text}");
        assert_eq!(text.parse::<IpnsName>().unwrap(), name);
        assert_eq!(format!("/ipns/{text}").parse::<IpnsName>().unwrap(), name);
        assert_eq!(
            name.peer_id().to_base58().parse::<IpnsName>().unwrap(),
            name
        );
        assert_eq!(name.to_cid().to_string().parse::<IpnsName>().unwrap(), name);
        let bytes = name.to_bytes();
        assert_eq!(bytes.len(), 38);
        assert_eq!(&bytes[..6], &[0x00, 0x24, 0x08, 0x01, 0x12, 0x20]);
        assert_eq!(IpnsName::from_bytes(&bytes).unwrap(), name);
        assert_eq!(name.inline_public_key().unwrap(), key.public());
        let raw = name.ed25519_key().unwrap();
        assert_eq!(&bytes[6..], &raw[..]);
        assert_eq!(IpnsName::from_ed25519_key(&raw).unwrap(), name);
    }

    #[test]
    fn rejects_non_key_cids() {
        // A CIDv1 of a file (raw codec) is not a key name.
        assert!(
            "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"
                .parse::<IpnsName>()
                .is_err()
        );
        assert!("k51/x".parse::<IpnsName>().is_err());
        assert!(IpnsName::from_bytes(&[1, 2, 3]).is_err());
    }
}
