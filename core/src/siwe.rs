//! Sign-In with Ethereum (EIP-4361) messages: the one implementation both sides use. The SDK
//! renders and signs a message to log in to a node; the node parses it (strictly, fields in the
//! EIP-4361 order) and checks scope, time and signature ([`verify`]).
//!
//! Both sides derive the message's scope, its `domain` and `URI`, from a URL with
//! [`Scope::from_url`]: the node from its public URL, the client from the URL it was configured
//! with. A client never signs a scope it was told by the node: a node (or anyone on the path)
//! that names another site's domain would otherwise obtain a sign-in valid for that site.
//!
//! ```
//! use px_core::siwe::SiweMessage;
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

use alloy::primitives::{Address, Signature};

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

/// A URL that has no `scheme://host` to take a sign-in scope from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid URL {0:?}: expected scheme://host[:port][/path]")]
pub struct InvalidUrl(pub String);

/// The `domain` and `URI` of a sign-in, derived from a base URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// The URL's authority (`host[:port]`), e.g. `node.example:8443`.
    pub domain: String,
    /// The URL without a trailing slash, e.g. `https://node.example:8443`.
    pub uri: String,
}

impl Scope {
    /// The scope of `url` (`scheme://authority[/path]`).
    ///
    /// ```
    /// use px_core::siwe::Scope;
    /// let s = Scope::from_url("https://node.example:8443/").unwrap();
    /// assert_eq!(s.domain, "node.example:8443");
    /// assert_eq!(s.uri, "https://node.example:8443");
    /// assert!(Scope::from_url("node.example").is_err());
    /// ```
    pub fn from_url(url: &str) -> Result<Self, InvalidUrl> {
        let uri = url.trim_end_matches('/');
        let invalid = || InvalidUrl(url.to_owned());
        let (scheme, rest) = uri.split_once("://").ok_or_else(invalid)?;
        let domain = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if scheme.is_empty() || domain.is_empty() || domain.contains(char::is_whitespace) {
            return Err(invalid());
        }
        Ok(Self {
            domain: domain.to_owned(),
            uri: uri.to_owned(),
        })
    }
}

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

/// Why a signed sign-in message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The message is not well-formed EIP-4361 (or of another version).
    #[error(transparent)]
    Malformed(#[from] ParseError),
    /// The message names another domain, URI or chain.
    #[error("sign-in is for another site: {0}")]
    WrongScope(String),
    /// The message has expired or is not valid yet.
    #[error("sign-in message {0}")]
    OutsideValidity(&'static str),
    /// The signature is malformed or was not made by the message's address.
    #[error("invalid signature: {0}")]
    BadSignature(String),
}

/// Checks everything but the nonce: scope, time window and signature (EIP-191 over the text).
/// Answers the parsed message.
pub fn verify(
    text: &str,
    signature: &[u8],
    expected: &Expected<'_>,
) -> Result<SiweMessage, VerifyError> {
    let msg = SiweMessage::parse(text)?;
    if msg.domain != expected.domain {
        return Err(VerifyError::WrongScope(format!(
            "domain {:?}, expected {:?}",
            msg.domain, expected.domain
        )));
    }
    if !msg.uri.starts_with(expected.uri_prefix) {
        return Err(VerifyError::WrongScope(format!(
            "URI {:?} is not under {:?}",
            msg.uri, expected.uri_prefix
        )));
    }
    if msg.chain_id != expected.chain_id {
        return Err(VerifyError::WrongScope(format!(
            "chain {}, expected {}",
            msg.chain_id, expected.chain_id
        )));
    }
    if msg.version != "1" {
        return Err(VerifyError::Malformed(ParseError(format!(
            "EIP-4361 version {:?}, expected \"1\"",
            msg.version
        ))));
    }
    if msg.expiration_time.is_some_and(|t| t <= expected.now) {
        return Err(VerifyError::OutsideValidity("has expired"));
    }
    if msg
        .not_before
        .is_some_and(|t| t > expected.now + CLOCK_SKEW_SECS)
        || msg.issued_at > expected.now + CLOCK_SKEW_SECS
    {
        return Err(VerifyError::OutsideValidity("is not valid yet"));
    }
    let sig = Signature::from_raw(signature)
        .map_err(|_| VerifyError::BadSignature("signature is not 65 bytes r||s||v".into()))?;
    let signer = sig
        .recover_address_from_msg(text.as_bytes())
        .map_err(|_| VerifyError::BadSignature("signature does not recover".into()))?;
    if signer != msg.address {
        return Err(VerifyError::BadSignature(format!(
            "signed by {signer}, not by {}",
            msg.address
        )));
    }
    Ok(msg)
}

#[cfg(test)]
mod verify_tests {
    use alloy::signers::{SignerSync, local::PrivateKeySigner};

    use super::*;

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
            Err(VerifyError::OutsideValidity(_))
        ));
        let other = PrivateKeySigner::random()
            .sign_message_sync(text.as_bytes())
            .unwrap()
            .as_bytes();
        assert!(matches!(
            verify(&text, &other, &expected(1_700_000_100)),
            Err(VerifyError::BadSignature(_))
        ));
        let mut e = expected(1_700_000_100);
        e.domain = "evil.example";
        assert!(matches!(
            verify(&text, &sig, &e),
            Err(VerifyError::WrongScope(_))
        ));
        let mut e = expected(1_700_000_100);
        e.chain_id = 1;
        assert!(matches!(
            verify(&text, &sig, &e),
            Err(VerifyError::WrongScope(_))
        ));
        let tampered = text.replace("Chain ID: 31337", "Chain ID: 31338");
        assert!(verify(&tampered, &sig, &expected(1_700_000_100)).is_err());
    }

    #[test]
    fn scope_comes_from_the_url() {
        let s = Scope::from_url("http://127.0.0.1:8080/").unwrap();
        assert_eq!(
            (s.domain.as_str(), s.uri.as_str()),
            ("127.0.0.1:8080", "http://127.0.0.1:8080")
        );
        let s = Scope::from_url("https://node.example/px?x=1").unwrap();
        assert_eq!(s.domain, "node.example");
        assert!(Scope::from_url("://x").is_err());
        assert!(Scope::from_url("http://").is_err());
    }
}
