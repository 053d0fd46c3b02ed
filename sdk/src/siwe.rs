//! Sign-In with Ethereum (EIP-4361) messages, as the SDK signs them to log in to a node.
//!
//! ```
//! use px_sdk::siwe::SiweMessage;
//! let msg = SiweMessage {
//!     domain: "127.0.0.1:8080".into(),
//!     address: "0x70997970C51812dc3A010C7d01b50e0d17dc79C8".parse().unwrap(),
//!     statement: Some("Sign in to the PX storage node.".into()),
//!     uri: "http://127.0.0.1:8080".into(),
//!     chain_id: 31337,
//!     nonce: "abcdef123456".into(),
//!     issued_at: 1_700_000_000,
//!     expiration_time: Some(1_700_000_300),
//! };
//! let text = msg.to_string();
//! assert!(text.starts_with("127.0.0.1:8080 wants you to sign in with your Ethereum account:\n"));
//! assert!(text.contains("\nIssued At: 2023-11-14T22:13:20Z\n"));
//! ```

use std::fmt;

use alloy::primitives::Address;

/// The fields of an EIP-4361 message the SDK fills (version is always `1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiweMessage {
    /// RFC 3986 authority of the node.
    pub domain: String,
    /// The signing address (rendered EIP-55 checksummed).
    pub address: Address,
    /// One-line statement shown to the user.
    pub statement: Option<String>,
    /// URI the sign-in is for.
    pub uri: String,
    /// EIP-155 chain id.
    pub chain_id: u64,
    /// The node's single-use nonce.
    pub nonce: String,
    /// Issue time (unix seconds).
    pub issued_at: u64,
    /// Expiry (unix seconds).
    pub expiration_time: Option<u64>,
}

impl fmt::Display for SiweMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} wants you to sign in with your Ethereum account:",
            self.domain
        )?;
        writeln!(f, "{}", self.address.to_checksum(None))?;
        writeln!(f)?;
        if let Some(s) = &self.statement {
            writeln!(f, "{s}")?;
        }
        writeln!(f)?;
        writeln!(f, "URI: {}", self.uri)?;
        writeln!(f, "Version: 1")?;
        writeln!(f, "Chain ID: {}", self.chain_id)?;
        writeln!(f, "Nonce: {}", self.nonce)?;
        write!(f, "Issued At: {}", rfc3339(self.issued_at))?;
        if let Some(t) = self.expiration_time {
            write!(f, "\nExpiration Time: {}", rfc3339(t))?;
        }
        Ok(())
    }
}

/// Formats unix seconds as RFC 3339 UTC (`2023-11-14T22:13:20Z`).
pub fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(4_102_444_799), "2099-12-31T23:59:59Z");
    }

    #[test]
    fn message_layout_follows_eip4361() {
        let msg = SiweMessage {
            domain: "node.example".into(),
            address: "0x70997970c51812dc3a010c7d01b50e0d17dc79c8"
                .parse()
                .unwrap(),
            statement: None,
            uri: "https://node.example".into(),
            chain_id: 1,
            nonce: "12345678".into(),
            issued_at: 0,
            expiration_time: None,
        };
        assert_eq!(
            msg.to_string(),
            "node.example wants you to sign in with your Ethereum account:\n\
             0x70997970C51812dc3A010C7d01b50e0d17dc79C8\n\n\n\
             URI: https://node.example\nVersion: 1\nChain ID: 1\nNonce: 12345678\n\
             Issued At: 1970-01-01T00:00:00Z"
        );
    }
}
