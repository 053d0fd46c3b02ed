//! Sign-In with Ethereum (EIP-4361): parsing, rendering and verifying the message.
//!
//! The node issues a single-use nonce with an expiry ([`crate::db::Db::put_nonce`]); a login
//! carries the signed message, which must name the node's domain, a URI under its public URL,
//! its chain id and that nonce, be within its validity window, and be signed (EIP-191) by the
//! address it names. Only then is the nonce consumed and a session issued.

use alloy::primitives::Signature;
pub use px_sdk::siwe::{SiweMessage, format_rfc3339, parse_rfc3339};

use crate::error::{Error, Result};

/// What a login must match.
#[derive(Debug, Clone)]
pub struct Expected<'a> {
    /// The node's domain.
    pub domain: &'a str,
    /// The node's public URL; the message URI must start with it.
    pub uri_prefix: &'a str,
    /// The chain id.
    pub chain_id: u64,
    /// Now (unix seconds).
    pub now: u64,
}

/// Allowed clock skew for `Issued At` and `Not Before`.
pub const CLOCK_SKEW_SECS: u64 = 60;

/// Checks everything but the nonce: scope, time window and signature. Answers the message.
pub fn verify(text: &str, signature: &[u8], expected: &Expected<'_>) -> Result<SiweMessage> {
    let msg = SiweMessage::parse(text).map_err(|e| Error::InvalidSignature(e.to_string()))?;
    if msg.domain != expected.domain {
        return Err(Error::WrongDomain(format!(
            "domain {:?}, expected {:?}",
            msg.domain, expected.domain
        )));
    }
    if !msg.uri.starts_with(expected.uri_prefix) {
        return Err(Error::WrongDomain(format!(
            "URI {:?} is not under {:?}",
            msg.uri, expected.uri_prefix
        )));
    }
    if msg.chain_id != expected.chain_id {
        return Err(Error::WrongDomain(format!(
            "chain {}, expected {}",
            msg.chain_id, expected.chain_id
        )));
    }
    if msg.version != "1" {
        return Err(Error::InvalidSignature(format!(
            "EIP-4361 version {:?}, expected \"1\"",
            msg.version
        )));
    }
    if msg.expiration_time.is_some_and(|t| t <= expected.now) {
        return Err(Error::MessageExpired("has expired"));
    }
    if msg
        .not_before
        .is_some_and(|t| t > expected.now + CLOCK_SKEW_SECS)
        || msg.issued_at > expected.now + CLOCK_SKEW_SECS
    {
        return Err(Error::MessageExpired("is not valid yet"));
    }
    let sig = Signature::from_raw(signature)
        .map_err(|_| Error::InvalidSignature("signature is not 65 bytes r||s||v".into()))?;
    let signer = sig
        .recover_address_from_msg(text.as_bytes())
        .map_err(|_| Error::InvalidSignature("signature does not recover".into()))?;
    if signer != msg.address {
        return Err(Error::InvalidSignature(format!(
            "signed by {signer}, not by {}",
            msg.address
        )));
    }
    Ok(msg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::signers::SignerSync;
    use alloy::signers::local::PrivateKeySigner;

    fn message(signer: &PrivateKeySigner) -> SiweMessage {
        SiweMessage {
            domain: "node.example:7070".into(),
            address: signer.address(),
            statement: Some("Sign in to PX storage.".into()),
            uri: "http://node.example:7070/v1/auth/login".into(),
            version: "1".into(),
            chain_id: 31337,
            nonce: "abcdef0123456789".into(),
            issued_at: 1_700_000_000,
            expiration_time: Some(1_700_000_600),
            not_before: None,
            request_id: None,
            resources: vec!["ipfs://x".into()],
        }
    }

    fn expected(now: u64) -> Expected<'static> {
        Expected {
            domain: "node.example:7070",
            uri_prefix: "http://node.example:7070",
            chain_id: 31337,
            now,
        }
    }

    #[test]
    fn verifies_signature_scope_and_time() {
        let s = PrivateKeySigner::random();
        let m = message(&s);
        let text = m.to_string();
        let sig = s.sign_message_sync(text.as_bytes()).unwrap().as_bytes();
        assert_eq!(verify(&text, &sig, &expected(1_700_000_100)).unwrap(), m);
        assert!(matches!(
            verify(&text, &sig, &expected(1_700_000_600)),
            Err(Error::MessageExpired(_))
        ));
        let other = PrivateKeySigner::random()
            .sign_message_sync(text.as_bytes())
            .unwrap()
            .as_bytes();
        assert!(matches!(
            verify(&text, &other, &expected(1_700_000_100)),
            Err(Error::InvalidSignature(_))
        ));
        let mut e = expected(1_700_000_100);
        e.domain = "evil.example";
        assert!(matches!(
            verify(&text, &sig, &e),
            Err(Error::WrongDomain(_))
        ));
        let mut e = expected(1_700_000_100);
        e.chain_id = 1;
        assert!(matches!(
            verify(&text, &sig, &e),
            Err(Error::WrongDomain(_))
        ));
        let tampered = text.replace("Chain ID: 31337", "Chain ID: 31338");
        assert!(verify(&tampered, &sig, &expected(1_700_000_100)).is_err());
    }
}
