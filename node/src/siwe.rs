//! Sign-In with Ethereum (EIP-4361): the message and its verification live in
//! [`px_core::siwe`]; this module maps a refused message to the node's HTTP errors.
//!
//! The node issues a single-use nonce with an expiry ([`crate::db::Db::put_nonce`]); a login
//! carries the signed message, which must name the node's domain, a URI under its public URL,
//! its chain id and that nonce, be within its validity window, and be signed (EIP-191) by the
//! address it names ([`verify`]). Only then is the nonce consumed and a session issued.

pub use px_core::siwe::{
    CLOCK_SKEW_SECS, Expected, Scope, SiweMessage, VerifyError, format_rfc3339, parse_rfc3339,
    verify,
};

use crate::error::Error;

impl From<VerifyError> for Error {
    fn from(e: VerifyError) -> Self {
        match e {
            VerifyError::WrongScope(m) => Error::WrongDomain(m),
            VerifyError::OutsideValidity(what) => Error::MessageExpired(what),
            VerifyError::Malformed(e) => Error::InvalidSignature(e.to_string()),
            VerifyError::BadSignature(m) => Error::InvalidSignature(m),
            other => Error::InvalidSignature(other.to_string()),
        }
    }
}
