//! Sign-In with Ethereum (EIP-4361) messages: the one implementation both sides use. The SDK
//! renders and signs a message to log in to a node; the node parses it (strictly, fields in the
//! EIP-4361 order) and checks scope, time and signature (`px_node::siwe::verify`).
//!
//! ```
//! use px_sdk::siwe::SiweMessage;
//! let msg = SiweMessage::new(
//!     "127.0.0.1:8080",
//!     "0x70997970C51812dc3A010C7d01b50e0d17dc79C8".parse().unwrap(),
//!     Some("Sign in to the PX storage node.".into()),
//!     "http://127.0.0.1:8080",
//!     31337,
//!     "abcdef123456",
//!     1_700_000_000,
//!     Some(1_700_000_300),
//! );
//! let text = msg.to_string();
//! assert!(text.starts_with("127.0.0.1:8080 wants you to sign in with your Ethereum account:\n"));
//! assert!(text.contains("\nIssued At: 2023-11-14T22:13:20Z\n"));
//! assert_eq!(SiweMessage::parse(&text).unwrap(), msg);
//! ```

use std::fmt;

use alloy::primitives::Address;

/// A message that is not well-formed EIP-4361.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed EIP-4361 message: {0}")]
pub struct ParseError(pub String);

const HEADER: &str = " wants you to sign in with your Ethereum account:";

/// An EIP-4361 message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiweMessage {
    /// RFC 3986 authority requesting the sign-in.
    pub domain: String,
    /// Signing address.
    pub address: Address,
    /// Optional human-readable statement (one line).
    pub statement: Option<String>,
    /// RFC 3986 URI the sign-in is for.
    pub uri: String,
    /// Message version, "1".
    pub version: String,
    /// EIP-155 chain id.
    pub chain_id: u64,
    /// Nonce issued by the node.
    pub nonce: String,
    /// Issue time (unix seconds).
    pub issued_at: u64,
    /// Expiry (unix seconds).
    pub expiration_time: Option<u64>,
    /// Start of validity (unix seconds).
    pub not_before: Option<u64>,
    /// Optional request id.
    pub request_id: Option<String>,
    /// Optional resources.
    pub resources: Vec<String>,
}

impl fmt::Display for SiweMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}{HEADER}", self.domain)?;
        writeln!(f, "{}", self.address.to_checksum(None))?;
        writeln!(f)?;
        if let Some(s) = &self.statement {
            writeln!(f, "{s}")?;
        }
        writeln!(f)?;
        writeln!(f, "URI: {}", self.uri)?;
        writeln!(f, "Version: {}", self.version)?;
        writeln!(f, "Chain ID: {}", self.chain_id)?;
        writeln!(f, "Nonce: {}", self.nonce)?;
        write!(f, "Issued At: {}", format_rfc3339(self.issued_at))?;
        if let Some(t) = self.expiration_time {
            write!(f, "\nExpiration Time: {}", format_rfc3339(t))?;
        }
        if let Some(t) = self.not_before {
            write!(f, "\nNot Before: {}", format_rfc3339(t))?;
        }
        if let Some(r) = &self.request_id {
            write!(f, "\nRequest ID: {r}")?;
        }
        if !self.resources.is_empty() {
            write!(f, "\nResources:")?;
            for r in &self.resources {
                write!(f, "\n- {r}")?;
            }
        }
        Ok(())
    }
}

fn bad(what: &str) -> ParseError {
    ParseError(what.to_string())
}

impl SiweMessage {
    /// Parses a message (strictly: fields in the EIP-4361 order).
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        if text.len() > 8 * 1024 {
            return Err(bad("over 8 KiB"));
        }
        let mut lines = text.split('\n').peekable();
        let head = lines.next().ok_or_else(|| bad("empty"))?;
        let domain = head.strip_suffix(HEADER).ok_or_else(|| bad("first line"))?;
        let domain = domain
            .split_once("://")
            .map_or(domain, |(_, d)| d)
            .to_string();
        if domain.is_empty() || domain.contains(char::is_whitespace) {
            return Err(bad("domain"));
        }
        let address = lines.next().ok_or_else(|| bad("address"))?;
        let address = Address::parse_checksummed(address, None)
            .map_err(|_| bad("address is not an EIP-55 checksummed address"))?;
        if lines.next() != Some("") {
            return Err(bad("blank line after address"));
        }
        let mut statement = None;
        match lines.peek() {
            Some(&"") => {
                lines.next();
            }
            Some(l) if !l.starts_with("URI: ") => {
                statement = Some(l.to_string());
                lines.next();
                if lines.next() != Some("") {
                    return Err(bad("blank line after statement"));
                }
            }
            _ => {}
        }
        let mut field = |name: &str, required: bool| -> Result<Option<String>, ParseError> {
            match lines.peek() {
                Some(l) if l.starts_with(name) && l[name.len()..].starts_with(": ") => {
                    let v = l[name.len() + 2..].to_string();
                    lines.next();
                    Ok(Some(v))
                }
                _ if required => Err(bad(name)),
                _ => Ok(None),
            }
        };
        let uri = field("URI", true)?.expect("required");
        let version = field("Version", true)?.expect("required");
        let chain_id = field("Chain ID", true)?.expect("required");
        let nonce = field("Nonce", true)?.expect("required");
        let issued_at = field("Issued At", true)?.expect("required");
        let expiration_time = field("Expiration Time", false)?;
        let not_before = field("Not Before", false)?;
        let request_id = field("Request ID", false)?;
        let mut resources = Vec::new();
        if lines.peek() == Some(&"Resources:") {
            lines.next();
            for l in lines.by_ref() {
                resources.push(
                    l.strip_prefix("- ")
                        .ok_or_else(|| bad("resource"))?
                        .to_string(),
                );
            }
        }
        if lines.next().is_some() {
            return Err(bad("unexpected trailing lines"));
        }
        if nonce.len() < 8 || !nonce.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(bad("nonce"));
        }
        let time = |s: &str| parse_rfc3339(s).ok_or_else(|| bad("timestamp"));
        Ok(Self {
            domain,
            address,
            statement,
            uri,
            version,
            chain_id: chain_id.parse().map_err(|_| bad("chain id"))?,
            nonce,
            issued_at: time(&issued_at)?,
            expiration_time: expiration_time.as_deref().map(time).transpose()?,
            not_before: not_before.as_deref().map(time).transpose()?,
            request_id,
            resources,
        })
    }
}

impl SiweMessage {
    /// A version-1 message with the fields a PX sign-in uses.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        domain: impl Into<String>,
        address: Address,
        statement: Option<String>,
        uri: impl Into<String>,
        chain_id: u64,
        nonce: impl Into<String>,
        issued_at: u64,
        expiration_time: Option<u64>,
    ) -> Self {
        Self {
            domain: domain.into(),
            address,
            statement,
            uri: uri.into(),
            version: "1".into(),
            chain_id,
            nonce: nonce.into(),
            issued_at,
            expiration_time,
            not_before: None,
            request_id: None,
            resources: Vec::new(),
        }
    }
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses an RFC 3339 timestamp (`2024-01-02T03:04:05Z`, fractions and offsets allowed) to
/// unix seconds (fractions truncated). Times before 1970 are rejected.
pub fn parse_rfc3339(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())?
    };
    let (y, mo, d, h, mi, se) = (
        num(0..4)?,
        num(5..7)?,
        num(8..10)?,
        num(11..13)?,
        num(14..16)?,
        num(17..19)?,
    );
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return None;
        }
        rest = &frac[n..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let rb = rest.as_bytes();
            if rb.len() != 6 || !matches!(rb[0], b'+' | b'-') || rb[3] != b':' {
                return None;
            }
            let oh: i64 = rest.get(1..3)?.parse().ok()?;
            let om: i64 = rest.get(4..6)?.parse().ok()?;
            let o = oh * 3600 + om * 60;
            if rb[0] == b'+' { o } else { -o }
        }
    };
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + se - offset;
    u64::try_from(secs).ok()
}

/// Formats unix seconds as RFC 3339 UTC (`2024-01-02T03:04:05Z`).
pub fn format_rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // civil_from_days
    let z = days + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_instants_round_trip() {
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(format_rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(format_rfc3339(4_102_444_799), "2099-12-31T23:59:59Z");
        for t in [0, 951_782_400, 1_700_000_000, 4_102_444_800] {
            assert_eq!(parse_rfc3339(&format_rfc3339(t)), Some(t));
        }
        assert_eq!(
            parse_rfc3339("2023-11-14T22:13:20.123+01:00"),
            Some(1_700_000_000 - 3600)
        );
        assert_eq!(parse_rfc3339("2023-11-14 22:13:20Z"), None);
        assert_eq!(parse_rfc3339("2023-13-14T22:13:20Z"), None);
    }

    #[test]
    fn message_layout_follows_eip4361() {
        let msg = SiweMessage::new(
            "node.example",
            "0x70997970c51812dc3a010c7d01b50e0d17dc79c8"
                .parse()
                .unwrap(),
            None,
            "https://node.example",
            1,
            "12345678",
            0,
            None,
        );
        assert_eq!(
            msg.to_string(),
            "node.example wants you to sign in with your Ethereum account:\n\
             0x70997970C51812dc3A010C7d01b50e0d17dc79C8\n\n\n\
             URI: https://node.example\nVersion: 1\nChain ID: 1\nNonce: 12345678\n\
             Issued At: 1970-01-01T00:00:00Z"
        );
    }

    #[test]
    fn parses_what_it_renders_with_every_optional_field() {
        let mut m = SiweMessage::new(
            "node.example:7070",
            Address::repeat_byte(7),
            Some("Sign in to PX storage.".into()),
            "http://node.example:7070/v1/auth/login",
            31337,
            "abcdef0123456789",
            1_700_000_000,
            Some(1_700_000_600),
        );
        m.not_before = Some(1_700_000_000);
        m.request_id = Some("r1".into());
        m.resources = vec!["ipfs://x".into()];
        assert_eq!(SiweMessage::parse(&m.to_string()).unwrap(), m);
        m.statement = None;
        m.resources.clear();
        m.expiration_time = None;
        assert_eq!(SiweMessage::parse(&m.to_string()).unwrap(), m);
    }

    #[test]
    fn rejects_malformed_messages() {
        let m = SiweMessage::new(
            "node.example",
            Address::repeat_byte(7),
            None,
            "https://node.example",
            1,
            "abcdef0123456789",
            0,
            None,
        );
        let text = m.to_string();
        assert!(SiweMessage::parse(&text.replace("Version: 1\n", "")).is_err());
        assert!(SiweMessage::parse(&text.replace("abcdef0123456789", "short")).is_err());
        assert!(SiweMessage::parse(&format!("{text}\ntrailing")).is_err());
        assert!(SiweMessage::parse(&text.to_lowercase()).is_err());
        assert!(SiweMessage::parse(&"x".repeat(9000)).is_err());
    }
}
