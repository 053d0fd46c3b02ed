//! Client-side encryption: files are encrypted before they leave the machine, names are
//! encrypted in the file entry, and only the owner key can read either.
//!
//! # Keys
//! - The **owner key** (32 bytes) belongs to a wallet. It is either derived from the wallet's
//!   signature over a fixed EIP-712 message ([`OwnerKey::from_signature`]: same key on any device,
//!   nothing to back up, as long as the wallet signs deterministically, which RFC 6979 ECDSA
//!   signers do) or generated and kept in a key file ([`OwnerKey::generate`],
//!   [`OwnerKey::save`], [`OwnerKey::load`]). Its **key id** is the first 8 bytes of
//!   `SHA-256("px-storage key id v1" || key)`; content records the id so that a wrong key is
//!   reported as such ([`Error::WrongKey`]) instead of as corruption.
//! - Two sub-keys are derived from it with HKDF-SHA256 (no salt): `"px-storage wrap v1"` wraps
//!   file keys, `"px-storage name v1"` encrypts file names.
//! - Every file gets a fresh random 32-byte **file key** and a random 16-byte file id.
//!
//! # File format (version 2, written since issue 15)
//! ```text
//! header (132 bytes)
//!   0..8     magic            89 50 58 45 0d 0a 1a 0a  ("\x89PXE\r\n\x1a\n")
//!   8        version          2
//!   9        algorithm        1 = AES-256-GCM
//!   10..12   reserved         0
//!   12..16   segment size     u32 little endian, plaintext bytes per segment (1 KiB ..= 16 MiB)
//!   16..32   file id          random
//!   32..40   owner key id
//!   40..52   wrap nonce       random
//!   52..116  sealed secrets   AES-256-GCM(wrap key, wrap nonce, aad = header[0..52],
//!                                         file key (32) || SHA-256 of the whole plaintext (32))
//!   116..132 wrap tag
//! segments, i = 0, 1, ..., n-1 (n >= 1)
//!   AES-256-GCM(file key, nonce_i, aad = header[0..132], plaintext_i) || tag (16 bytes)
//!   nonce_i = 0x00 * 7 || i as u32 big endian || final flag (1 for i = n-1, else 0)
//! ```
//! Every segment but the last holds exactly `segment size` plaintext bytes; the last holds
//! 0 ..= `segment size` (an empty file is one empty final segment). Hence:
//! - **truncation** is detected: whatever segment ends the stream must open with the final
//!   flag set, and a cut-off stream ends in a segment sealed as non-final (or mid-segment);
//! - **reordering** is detected: the index is in the nonce;
//! - **swapping segments between files** is detected: each file has its own key and its
//!   header (with its random file id) is the AAD of every segment;
//! - **appending** is detected: nothing may follow the final segment.
//!
//! **The plaintext hash is secret and authenticated.** The SHA-256 of the plaintext is sealed
//! with the file key under the owner's wrap key, so the storage node (which sees only the
//! ciphertext, its length and its CID) cannot tell whether a user holds a known file by its
//! hash. The decryptor checks the plaintext it released against this hash when the stream
//! ends ([`Decryptor::finish`]): the download check compares with the uploader's own
//! authenticated hash, never with a value the node supplies. The encryptor checks the hash it
//! was given against the plaintext it sealed, so a file that changed between hashing and
//! sending fails instead of being stored with a wrong hash.
//!
//! The decryptor never releases a segment's plaintext before its tag verified. The ciphertext
//! length is a function of the plaintext length ([`encrypted_len`]), so an upload's
//! `Content-Length` is known before it starts.
//!
//! # File names (version 2)
//! ```text
//! pxe2.<key id: 16 hex digits>.<file id: 32 hex digits>.<base64url, no padding:
//!     nonce (12, random) || AES-256-GCM(name key, nonce,
//!                                       aad = "px-storage name v2" || key id (8) || file id (16),
//!                                       UTF-8 name) || tag (16)>
//! ```
//! ([`encrypt_name`], [`open_name`]). The file id is that of the file the name belongs to
//! (header bytes 16..32): the name is **bound to its file**. A client that downloads the
//! content of an entry checks, before releasing any plaintext, that the content's header has
//! the file id its name names ([`Decryptor::bound_to`]), so a node that swaps names between
//! entries is caught. A client that expects encryption refuses content that is not encrypted
//! and content whose name is plain or of another version than the content.
//!
//! # Version 1 (read only)
//! Version 1 files were written before issue 15 and may exist on nodes; the decryptor still
//! reads them. The header is 100 bytes: bytes 0..52 as above with version 1, then
//! `52..84` the wrapped file key alone (`AES-256-GCM(wrap key, wrap nonce, aad = header[0..52],
//! file key)`) and `84..100` its tag; segments as above with `aad = header[0..100]`. It carries
//! no plaintext hash (version 1 clients sent it to the node in the clear), so the decryptor
//! only authenticates the segments. Version 1 names are
//! `pxe1.<key id hex>.<base64url(nonce || AES-256-GCM(name key, nonce, aad = "px-storage name v1"
//! || key id, name) || tag)>` and are bound to no file: a version 1 name may only go with
//! version 1 content.
//!
//! # Test vectors
//! The owner key `07 * 32`, segment size 1024, file key `11 * 32`, file id `22 * 16`, wrap
//! nonce `33 * 12` and name nonce `44 * 12` give (checked by this doc test; an implementation
//! in another language must produce the same bytes):
//! ```
//! use px_core::crypto::{self, OwnerKey, Encryptor, Decryptor};
//! // Plaintext "hello" (SHA-256 2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824).
//! const KEY_ID: &str = "2bdfa48d92632a33";
//! const FILE_V2: &str = concat!(
//!     "895058450d0a1a0a0201000000040000222222222222222222222222222222222bdfa48d92632a33",
//!     "3333333333333333333333334b4744af39a200b093b92e6c16aaf70772bf883af5a117f619e4293a",
//!     "86b695c99981e3b410bcce4bff85584766713cc848c6922c06a1ca25f8475fccee9c6cf37df42542",
//!     "6aa620533cd48afc677568c4a1ee64a467c823a453ee94f61907389254ad2a6009",
//! );
//! const NAME_V2: &str =
//!     "pxe2.2bdfa48d92632a33.22222222222222222222222222222222.REREREREREREREREmVtzChEieCsLk8W3JzJ4i6-KgAmpPYS9SG0";
//! // Version 1, same inputs (no longer written; decoders must still read it).
//! const FILE_V1: &str = concat!(
//!     "895058450d0a1a0a0101000000040000222222222222222222222222222222222bdfa48d92632a33",
//!     "3333333333333333333333334b4744af39a200b093b92e6c16aaf70772bf883af5a117f619e4293a",
//!     "86b695c95f53ec694660e7a0e0b69a054ee2a0aca1ee64a467dd2300dc5ce452d693709b09cd2c38",
//!     "2b",
//! );
//! const NAME_V1: &str = "pxe1.2bdfa48d92632a33.REREREREREREREREmVtzChEieCsLk_BlH3cCRiMPmI01YsnlKu8";
//!
//! let owner = OwnerKey::from_bytes([7; 32]);
//! assert_eq!(owner.id_hex(), KEY_ID);
//! let plain = b"hello";
//! let sha = crypto::sha256(plain);
//! let mut enc = Encryptor::deterministic(&owner, 1024, sha, [0x11; 32], [0x22; 16], [0x33; 12]);
//! let sealed = crypto::encrypt_with(&mut enc, plain).unwrap();
//! assert_eq!(alloy::hex::encode(&sealed), FILE_V2);
//! let name = crypto::encrypt_name_with_nonce(&owner, &[0x22; 16], "report.pdf", [0x44; 12]);
//! assert_eq!(name, NAME_V2);
//! // Decoding, version 2 and version 1 (written by earlier clients):
//! let mut dec = Decryptor::bound_to(&owner, Some([0x22; 16]));
//! let mut out = Vec::new();
//! dec.push(&sealed, |p| Ok(out.extend_from_slice(p))).unwrap();
//! let info = dec.finish(|p| Ok(out.extend_from_slice(p))).unwrap();
//! assert_eq!((out.as_slice(), info.version, info.sha256), (&plain[..], 2, sha));
//! let v1 = alloy::hex::decode(FILE_V1).unwrap();
//! assert_eq!(crypto::decrypt(&owner, &v1).unwrap(), plain);
//! assert_eq!(crypto::decrypt_name(&owner, NAME_V1).unwrap(), "report.pdf");
//! ```
//!
//! # Example
//! ```
//! use px_core::crypto::{OwnerKey, decrypt, encrypt};
//! let owner = OwnerKey::from_bytes([7; 32]);
//! let sealed = encrypt(&owner, b"hello").unwrap();
//! assert_eq!(decrypt(&owner, &sealed).unwrap(), b"hello");
//! let other = OwnerKey::from_bytes([8; 32]);
//! assert!(matches!(decrypt(&other, &sealed), Err(px_core::crypto::CryptoError::WrongKey { .. })));
//! ```

use std::path::Path;

use aes_gcm::{
    Aes256Gcm, Key, Nonce, Tag,
    aead::{AeadInPlace, KeyInit},
};
use alloy::{
    primitives::{Address, B256, Signature},
    sol,
    sol_types::{SolStruct, eip712_domain},
};
use base64::Engine as _;
use hkdf::Hkdf;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// Why encryption, decryption or a key operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// The content is encrypted under another owner key.
    #[error(
        "wrong key: the content is encrypted for owner key {expected}, but the key in use is \
         {actual}; use the key file or wallet the content was uploaded with"
    )]
    WrongKey {
        /// Key id (hex) recorded in the content.
        expected: String,
        /// Key id (hex) of the key in use.
        actual: String,
    },
    /// Encrypted content failed authentication: it was modified, cut short, reordered or
    /// mixed with another file's segments.
    #[error("encrypted content is corrupt or tampered with: {0}")]
    Corrupt(String),
    /// A parameter or key file is invalid (segment size out of range, malformed key file).
    #[error("{0}")]
    Invalid(String),
    /// The system's random source or a key file could not be used.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}

type Error = CryptoError;
/// Result alias of this module.
pub type Result<T, E = CryptoError> = std::result::Result<T, E>;

/// Magic bytes that start every encrypted file.
pub const MAGIC: [u8; 8] = *b"\x89PXE\r\n\x1a\n";
/// Format version written (see the module docs); [`VERSION_1`] is still read.
pub const VERSION: u8 = 2;
/// The first format version (no plaintext hash in the header), read but no longer written.
pub const VERSION_1: u8 = 1;
/// Algorithm id of AES-256-GCM.
pub const ALG_AES_256_GCM: u8 = 1;
/// Length of the header of the version written ([`VERSION`]).
pub const HEADER_LEN: usize = 132;
/// Length of a version 1 header.
pub const HEADER_LEN_V1: usize = 100;
/// Length of a GCM tag.
pub const TAG_LEN: usize = 16;
/// Length of a file id.
pub const FILE_ID_LEN: usize = 16;
/// Default plaintext bytes per segment (256 KiB, Kubo's chunk size).
pub const DEFAULT_SEGMENT_SIZE: usize = 256 * 1024;
/// Smallest segment size accepted.
pub const MIN_SEGMENT_SIZE: usize = 1024;
/// Largest segment size accepted (bounds the decryptor's memory).
pub const MAX_SEGMENT_SIZE: usize = 16 * 1024 * 1024;
/// Prefix of an encrypted file name (version 2, bound to its file).
pub const NAME_PREFIX: &str = "pxe2.";
/// Prefix of a version 1 encrypted file name (read only).
pub const NAME_PREFIX_V1: &str = "pxe1.";

/// A file's random id (header bytes 16..32), to which its encrypted name is bound.
pub type FileId = [u8; FILE_ID_LEN];

const WRAP_AAD_LEN: usize = 52;
const KEY_ID_INFO: &[u8] = b"px-storage key id v1";
const WRAP_INFO: &[u8] = b"px-storage wrap v1";
const NAME_INFO: &[u8] = b"px-storage name v1";
const NAME_AAD_V2: &[u8] = b"px-storage name v2";
const WALLET_SALT: &[u8] = b"px-storage owner key v1";
const KEY_FILE_PREFIX: &str = "px-owner-key-v1:";

sol! {
    /// The fixed EIP-712 message a wallet signs to derive its owner key.
    #[derive(Debug)]
    struct PxStorageOwnerKey {
        string purpose;
        address owner;
        uint32 version;
    }
}

/// The text of [`PxStorageOwnerKey::purpose`] the wallet is shown.
pub const OWNER_KEY_PURPOSE: &str =
    "Derive my PX storage encryption key. Sign only in PX storage clients.";

fn random<const N: usize>() -> Result<[u8; N]> {
    let mut out = [0u8; N];
    getrandom::fill(&mut out).map_err(|e| Error::Io(std::io::Error::other(e.to_string())))?;
    Ok(out)
}

fn hkdf32(ikm: &[u8], salt: Option<&[u8]>, info: &[u8]) -> Zeroizing<[u8; 32]> {
    let mut out = Zeroizing::new([0u8; 32]);
    Hkdf::<Sha256>::new(salt, ikm)
        .expand(info, out.as_mut())
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    out
}

fn cipher(key: &[u8; 32]) -> Aes256Gcm {
    Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key))
}

/// A wallet's owner key: wraps file keys and encrypts names. Prints redacted.
#[derive(Clone)]
pub struct OwnerKey {
    key: Zeroizing<[u8; 32]>,
    id: [u8; 8],
}

impl std::fmt::Debug for OwnerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnerKey")
            .field("id", &self.id_hex())
            .field("key", &"<redacted>")
            .finish()
    }
}

impl OwnerKey {
    /// An owner key from its 32 bytes.
    pub fn from_bytes(key: [u8; 32]) -> Self {
        let mut h = Sha256::new();
        h.update(KEY_ID_INFO);
        h.update(key);
        let digest = h.finalize();
        let mut id = [0u8; 8];
        id.copy_from_slice(&digest[..8]);
        Self {
            key: Zeroizing::new(key),
            id,
        }
    }

    /// A fresh random key (keep it with [`OwnerKey::save`]).
    pub fn generate() -> Result<Self> {
        Ok(Self::from_bytes(random()?))
    }

    /// Derives the key from a wallet's signature over the fixed EIP-712 message
    /// [`PxStorageOwnerKey`] for `owner` (domain `PX storage`, version `1`, no chain: the key is
    /// the same on every chain; [`owner_key_signing_hash`] is the hash to sign). HKDF-SHA256
    /// turns the signature's `r || s` into the key.
    ///
    /// The key is only recoverable if the wallet signs deterministically (RFC 6979 ECDSA, as
    /// every common software and hardware wallet does): `px-sdk` signs twice and refuses a
    /// wallet whose signatures differ.
    pub fn from_signature(owner: Address, signature: &Signature) -> Self {
        let bytes = signature.as_bytes();
        let key = hkdf32(&bytes[..64], Some(WALLET_SALT), owner.as_slice());
        Self::from_bytes(*key)
    }

    /// Reads a key file written by [`OwnerKey::save`].
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
            Error::Invalid(format!("cannot read key file {}: {e}", path.display()))
        })?);
        let hex = text.trim().strip_prefix(KEY_FILE_PREFIX).ok_or_else(|| {
            Error::Invalid(format!(
                "{} is not a PX owner key file (expected `{KEY_FILE_PREFIX}<64 hex digits>`)",
                path.display()
            ))
        })?;
        let mut key = [0u8; 32];
        alloy::hex::decode_to_slice(hex, &mut key).map_err(|_| {
            Error::Invalid(format!("{}: the key must be 64 hex digits", path.display()))
        })?;
        Ok(Self::from_bytes(key))
    }

    /// Writes the key to a new file readable by the owner only (mode 0600). Never overwrites.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        use std::io::Write;
        let path = path.as_ref();
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(path)?;
        let line = Zeroizing::new(format!(
            "{KEY_FILE_PREFIX}{}\n",
            alloy::hex::encode(self.key.as_ref())
        ));
        f.write_all(line.as_bytes())?;
        f.sync_all()?;
        Ok(())
    }

    /// The 8-byte key id.
    pub fn id(&self) -> [u8; 8] {
        self.id
    }

    /// The key id as 16 hex digits.
    pub fn id_hex(&self) -> String {
        alloy::hex::encode(self.id)
    }

    fn subkey(&self, info: &[u8]) -> Zeroizing<[u8; 32]> {
        hkdf32(self.key.as_ref(), None, info)
    }
}

/// The EIP-712 message and domain a wallet signs for [`OwnerKey::from_signature`].
pub fn owner_key_message(owner: Address) -> (PxStorageOwnerKey, alloy::sol_types::Eip712Domain) {
    let domain = eip712_domain! { name: "PX storage", version: "1", };
    let message = PxStorageOwnerKey {
        purpose: OWNER_KEY_PURPOSE.into(),
        owner,
        version: 1,
    };
    (message, domain)
}

/// The EIP-712 hash a wallet signs for [`OwnerKey::from_signature`].
pub fn owner_key_signing_hash(owner: Address) -> B256 {
    let (message, domain) = owner_key_message(owner);
    message.eip712_signing_hash(&domain)
}

/// Ciphertext length of a `plain_len`-byte file with `segment_size`-byte segments (the
/// version written, [`VERSION`]).
pub fn encrypted_len(plain_len: u64, segment_size: usize) -> u64 {
    let seg = segment_size as u64;
    let segments = plain_len.div_ceil(seg).max(1);
    HEADER_LEN as u64 + plain_len + segments * TAG_LEN as u64
}

/// Whether `bytes` start like an encrypted file (any version).
pub fn is_encrypted(bytes: &[u8]) -> bool {
    bytes.len() >= MAGIC.len() && bytes[..MAGIC.len()] == MAGIC
}

/// The SHA-256 of `data` (what [`Encryptor::new`] seals into the header).
pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

fn segment_nonce(index: u32, last: bool) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[7..11].copy_from_slice(&index.to_be_bytes());
    n[11] = u8::from(last);
    n
}

fn check_segment_size(segment_size: usize) -> Result<()> {
    if !(MIN_SEGMENT_SIZE..=MAX_SEGMENT_SIZE).contains(&segment_size) {
        return Err(Error::Invalid(format!(
            "segment size must be between {MIN_SEGMENT_SIZE} and {MAX_SEGMENT_SIZE}"
        )));
    }
    Ok(())
}

/// Encrypts one file, segment by segment (see the module docs for the format).
///
/// The plaintext's SHA-256 goes into the sealed header, so it must be known before the first
/// byte is written (hash the input first). Feed plaintext segments of exactly
/// [`Encryptor::segment_size`] bytes, then one last segment of at most that size (possibly
/// empty) with `last = true`; sealing the last one fails if the plaintext sealed does not hash
/// to the SHA-256 given.
pub struct Encryptor {
    cipher: Aes256Gcm,
    header: [u8; HEADER_LEN],
    segment_size: usize,
    sha256: [u8; 32],
    hasher: Sha256,
    index: u32,
    done: bool,
}

impl std::fmt::Debug for Encryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encryptor")
            .field("segment_size", &self.segment_size)
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

impl Encryptor {
    /// A new file with a random file key and id, [`DEFAULT_SEGMENT_SIZE`] segments, for a
    /// plaintext whose SHA-256 is `sha256`.
    pub fn new(owner: &OwnerKey, sha256: [u8; 32]) -> Result<Self> {
        Self::with_segment_size(owner, DEFAULT_SEGMENT_SIZE, sha256)
    }

    /// A new file with `segment_size`-byte segments.
    pub fn with_segment_size(
        owner: &OwnerKey,
        segment_size: usize,
        sha256: [u8; 32],
    ) -> Result<Self> {
        check_segment_size(segment_size)?;
        let file_key: Zeroizing<[u8; 32]> = Zeroizing::new(random()?);
        Ok(Self::build(
            owner,
            segment_size,
            sha256,
            &file_key,
            random()?,
            random()?,
        ))
    }

    /// A file with the given file key, file id and wrap nonce: **for test vectors only**.
    /// Reusing a file key with another plaintext breaks AES-GCM's confidentiality.
    ///
    /// # Panics
    /// When `segment_size` is out of range.
    pub fn deterministic(
        owner: &OwnerKey,
        segment_size: usize,
        sha256: [u8; 32],
        file_key: [u8; 32],
        file_id: FileId,
        wrap_nonce: [u8; 12],
    ) -> Self {
        check_segment_size(segment_size).expect("segment size in range");
        Self::build(
            owner,
            segment_size,
            sha256,
            &Zeroizing::new(file_key),
            file_id,
            wrap_nonce,
        )
    }

    fn build(
        owner: &OwnerKey,
        segment_size: usize,
        sha256: [u8; 32],
        file_key: &Zeroizing<[u8; 32]>,
        file_id: FileId,
        wrap_nonce: [u8; 12],
    ) -> Self {
        let mut header = [0u8; HEADER_LEN];
        header[..8].copy_from_slice(&MAGIC);
        header[8] = VERSION;
        header[9] = ALG_AES_256_GCM;
        header[12..16].copy_from_slice(&(segment_size as u32).to_le_bytes());
        header[16..32].copy_from_slice(&file_id);
        header[32..40].copy_from_slice(&owner.id);
        header[40..52].copy_from_slice(&wrap_nonce);
        let (aad, rest) = header.split_at_mut(WRAP_AAD_LEN);
        let (sealed, tag_out) = rest.split_at_mut(64);
        sealed[..32].copy_from_slice(file_key.as_ref());
        sealed[32..].copy_from_slice(&sha256);
        let wrap = cipher(&owner.subkey(WRAP_INFO));
        let tag = wrap
            .encrypt_in_place_detached(Nonce::from_slice(&aad[40..52]), aad, sealed)
            .expect("AES-GCM seals 64 bytes");
        tag_out.copy_from_slice(&tag);
        Self {
            cipher: cipher(file_key),
            header,
            segment_size,
            sha256,
            hasher: Sha256::new(),
            index: 0,
            done: false,
        }
    }

    /// The header, to be written before the first segment.
    pub fn header(&self) -> &[u8; HEADER_LEN] {
        &self.header
    }

    /// The file id (header bytes 16..32), to bind the file's name to ([`encrypt_name`]).
    pub fn file_id(&self) -> FileId {
        self.header[16..32].try_into().expect("16 bytes")
    }

    /// Plaintext bytes per segment.
    pub fn segment_size(&self) -> usize {
        self.segment_size
    }

    /// Encrypts the plaintext segment in `buf` in place and appends its tag.
    ///
    /// # Errors
    /// As [`Encryptor::seal_detached`].
    pub fn seal_segment(&mut self, buf: &mut Vec<u8>, last: bool) -> Result<()> {
        let tag = self.seal_detached(buf, last)?;
        buf.extend_from_slice(&tag);
        Ok(())
    }

    /// Encrypts the plaintext segment in `buf` in place and returns its tag.
    ///
    /// # Errors
    /// [`Error::Corrupt`] when a non-final segment is not full, a segment is too long, more
    /// than 2^32 segments are written or a segment follows the final one;
    /// [`Error::Invalid`] when, at the final segment, the plaintext does not hash to the
    /// SHA-256 given at the start (the input changed while it was read).
    pub fn seal_detached(&mut self, buf: &mut [u8], last: bool) -> Result<[u8; TAG_LEN]> {
        if self.done {
            return Err(Error::Corrupt("segment after the final segment".into()));
        }
        if buf.len() > self.segment_size || (!last && buf.len() != self.segment_size) {
            return Err(Error::Corrupt(format!(
                "segment of {} bytes (segment size {}, final: {last})",
                buf.len(),
                self.segment_size
            )));
        }
        self.hasher.update(&*buf);
        if last && <[u8; 32]>::from(self.hasher.clone().finalize()) != self.sha256 {
            self.done = true;
            return Err(Error::Invalid(
                "the input changed while it was encrypted: it no longer hashes to the SHA-256 \
                 sealed in the header"
                    .into(),
            ));
        }
        let nonce = segment_nonce(self.index, last);
        let tag = self
            .cipher
            .encrypt_in_place_detached(Nonce::from_slice(&nonce), &self.header, buf)
            .map_err(|_| Error::Corrupt("encryption failed".into()))?;
        if last {
            self.done = true;
        } else {
            self.index = self
                .index
                .checked_add(1)
                .ok_or_else(|| Error::Corrupt("file has too many segments".into()))?;
        }
        Ok(tag.into())
    }
}

/// What [`Decryptor::finish`] learned about a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opened {
    /// Format version of the content ([`VERSION`] or [`VERSION_1`]).
    pub version: u8,
    /// The file id from the header.
    pub file_id: FileId,
    /// SHA-256 of the plaintext released. For version 2 it equals the hash sealed in the
    /// header (checked), for version 1 it is only computed.
    pub sha256: [u8; 32],
}

/// An opened header: the file's cipher and what the header says.
struct OpenHeader {
    cipher: Aes256Gcm,
    header: Vec<u8>,
    segment_size: usize,
    version: u8,
    file_id: FileId,
    sha256: Option<[u8; 32]>,
}

/// Decrypts a stream produced by [`Encryptor`] (or a version 1 encryptor), releasing only
/// authenticated plaintext.
pub struct Decryptor {
    owner: OwnerKey,
    binding: Binding,
    open: Option<OpenHeader>,
    buf: Vec<u8>,
    index: u32,
    hasher: Sha256,
}

/// Which file a decryptor expects.
#[derive(Debug, Clone, Copy)]
enum Binding {
    Any,
    /// Version 2 content with this file id (its name is a version 2 name).
    File(FileId),
    /// Version 1 content (its name is a version 1 name, bound to no file).
    Legacy,
}

impl std::fmt::Debug for Decryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decryptor")
            .field("index", &self.index)
            .field("buffered", &self.buf.len())
            .finish_non_exhaustive()
    }
}

impl Decryptor {
    /// A decryptor for content encrypted under `owner`, of any version and file id.
    pub fn new(owner: &OwnerKey) -> Self {
        Self::with_binding(owner, Binding::Any)
    }

    /// A decryptor for the content of a file entry whose name opened to `file_id`
    /// ([`open_name`]): `Some(id)` for a version 2 name requires version 2 content with that
    /// file id; `None` (a version 1 name) requires version 1 content. Checked on the header,
    /// before any plaintext is released.
    pub fn bound_to(owner: &OwnerKey, file_id: Option<FileId>) -> Self {
        Self::with_binding(
            owner,
            match file_id {
                Some(id) => Binding::File(id),
                None => Binding::Legacy,
            },
        )
    }

    fn with_binding(owner: &OwnerKey, binding: Binding) -> Self {
        Self {
            owner: owner.clone(),
            binding,
            open: None,
            buf: Vec::new(),
            index: 0,
            hasher: Sha256::new(),
        }
    }

    /// The header's length, once enough bytes arrived to tell the version.
    fn header_len(&self) -> Result<Option<usize>> {
        if self.buf.len() < 9 {
            return Ok(None);
        }
        if self.buf[..8] != MAGIC {
            return Err(Error::Corrupt(
                "not PX-encrypted content (bad magic)".into(),
            ));
        }
        match self.buf[8] {
            VERSION => Ok(Some(HEADER_LEN)),
            VERSION_1 => Ok(Some(HEADER_LEN_V1)),
            v => Err(Error::Corrupt(format!("unsupported format version {v}"))),
        }
    }

    fn open_header(&mut self, len: usize) -> Result<()> {
        let header = self.buf[..len].to_vec();
        let version = header[8];
        if header[9] != ALG_AES_256_GCM || header[10..12] != [0, 0] {
            return Err(Error::Corrupt(format!(
                "unsupported algorithm {} (format version {version})",
                header[9]
            )));
        }
        let segment_size = u32::from_le_bytes(header[12..16].try_into().expect("4 bytes")) as usize;
        if !(MIN_SEGMENT_SIZE..=MAX_SEGMENT_SIZE).contains(&segment_size) {
            return Err(Error::Corrupt(format!(
                "segment size {segment_size} out of range"
            )));
        }
        if header[32..40] != self.owner.id {
            return Err(Error::WrongKey {
                expected: alloy::hex::encode(&header[32..40]),
                actual: self.owner.id_hex(),
            });
        }
        let file_id: FileId = header[16..32].try_into().expect("16 bytes");
        match (self.binding, version) {
            (Binding::Any, _) | (Binding::Legacy, VERSION_1) => {}
            (Binding::File(id), VERSION) if id == file_id => {}
            (Binding::File(_), VERSION) => {
                return Err(Error::Corrupt(
                    "the file entry's name belongs to another file (the node swapped names \
                     between entries)"
                        .into(),
                ));
            }
            (Binding::File(_), _) => {
                return Err(Error::Corrupt(format!(
                    "the file entry's name is bound to a version {VERSION} file, but the \
                     content is version {version}"
                )));
            }
            (Binding::Legacy, _) => {
                return Err(Error::Corrupt(format!(
                    "version {version} content under a version 1 name (version {version} files \
                     always have version {version} names)"
                )));
            }
        }
        // The sealed secrets: the file key, then (version 2) the plaintext's SHA-256.
        let secrets_len = if version == VERSION { 64 } else { 32 };
        let mut secrets = Zeroizing::new(header[WRAP_AAD_LEN..WRAP_AAD_LEN + secrets_len].to_vec());
        let wrap = cipher(&self.owner.subkey(WRAP_INFO));
        wrap.decrypt_in_place_detached(
            Nonce::from_slice(&header[40..52]),
            &header[..WRAP_AAD_LEN],
            secrets.as_mut_slice(),
            Tag::from_slice(&header[WRAP_AAD_LEN + secrets_len..len]),
        )
        .map_err(|_| Error::Corrupt("the file key does not unwrap (header modified)".into()))?;
        let file_key: [u8; 32] = secrets[..32].try_into().expect("32 bytes");
        let file_key = Zeroizing::new(file_key);
        let sha256 = (version == VERSION).then(|| secrets[32..].try_into().expect("32 bytes"));
        self.open = Some(OpenHeader {
            cipher: cipher(&file_key),
            header,
            segment_size,
            version,
            file_id,
            sha256,
        });
        self.buf.drain(..len);
        Ok(())
    }

    /// Opens the header once enough bytes are buffered; answers whether it is open.
    fn try_open_header(&mut self) -> Result<bool> {
        if self.open.is_some() {
            return Ok(true);
        }
        match self.header_len()? {
            Some(len) if self.buf.len() >= len => {
                self.open_header(len)?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// The format version, file id and (version 2) the sealed plaintext SHA-256, once the
    /// header has been read.
    pub fn header_info(&self) -> Option<(u8, FileId, Option<[u8; 32]>)> {
        self.open.as_ref().map(|o| (o.version, o.file_id, o.sha256))
    }

    fn open_segment(
        &mut self,
        len: usize,
        last: bool,
        out: &mut impl FnMut(&[u8]) -> Result<()>,
    ) -> Result<()> {
        let open = self.open.as_ref().expect("header opened");
        let (cipher, header) = (&open.cipher, open.header.as_slice());
        let (body, tag) = self.buf[..len].split_at_mut(len - TAG_LEN);
        let tag = *Tag::from_slice(tag);
        let index = self.index;
        if cipher
            .decrypt_in_place_detached(
                Nonce::from_slice(&segment_nonce(index, last)),
                header,
                body,
                &tag,
            )
            .is_err()
        {
            // Tell a cut-off stream from a modified one: a segment that opens as non-final at
            // the end of the stream means the final segment is missing.
            let truncated = last
                && cipher
                    .decrypt_in_place_detached(
                        Nonce::from_slice(&segment_nonce(index, false)),
                        header,
                        body,
                        &tag,
                    )
                    .is_ok();
            return Err(Error::Corrupt(if truncated {
                format!(
                    "truncated: the stream ends after segment {index}, which is not the final one"
                )
            } else {
                format!(
                    "segment {index} failed authentication (modified, reordered or from another file)"
                )
            }));
        }
        let plain = &self.buf[..len - TAG_LEN];
        self.hasher.update(plain);
        out(plain)?;
        self.buf.drain(..len);
        self.index = self
            .index
            .checked_add(1)
            .ok_or_else(|| Error::Corrupt("too many segments".into()))?;
        Ok(())
    }

    /// Feeds ciphertext; authenticated plaintext is passed to `out` segment by segment.
    pub fn push(&mut self, data: &[u8], mut out: impl FnMut(&[u8]) -> Result<()>) -> Result<()> {
        self.buf.extend_from_slice(data);
        if !self.try_open_header()? {
            return Ok(());
        }
        let seg = self.open.as_ref().expect("header opened").segment_size + TAG_LEN;
        // A full segment is known not to be the last one once a byte follows it.
        while self.buf.len() > seg {
            self.open_segment(seg, false, &mut out)?;
        }
        Ok(())
    }

    /// Ends the stream: opens the final segment and, for version 2, checks the plaintext
    /// released against the SHA-256 sealed in the header.
    ///
    /// # Errors
    /// [`Error::Corrupt`] for a truncated or modified stream or a plaintext hash mismatch.
    pub fn finish(mut self, mut out: impl FnMut(&[u8]) -> Result<()>) -> Result<Opened> {
        if !self.try_open_header()? {
            let want = self.header_len()?.unwrap_or(HEADER_LEN_V1);
            return Err(Error::Corrupt(format!(
                "truncated: {} bytes, shorter than the {want}-byte header",
                self.buf.len()
            )));
        }
        let len = self.buf.len();
        if len < TAG_LEN {
            return Err(Error::Corrupt(format!(
                "truncated: the final segment is missing after segment {}",
                self.index
            )));
        }
        self.open_segment(len, true, &mut out)?;
        let open = self.open.as_ref().expect("header opened");
        let sha256: [u8; 32] = self.hasher.finalize().into();
        if let Some(sealed) = open.sha256
            && sealed != sha256
        {
            return Err(Error::Corrupt(format!(
                "the plaintext's SHA-256 {} differs from the {} sealed in the header",
                alloy::hex::encode(sha256),
                alloy::hex::encode(sealed)
            )));
        }
        Ok(Opened {
            version: open.version,
            file_id: open.file_id,
            sha256,
        })
    }
}

/// Encrypts a whole buffer (see [`Encryptor`] for streaming).
pub fn encrypt(owner: &OwnerKey, plain: &[u8]) -> Result<Vec<u8>> {
    let mut enc = Encryptor::new(owner, sha256(plain))?;
    encrypt_with(&mut enc, plain)
}

/// Encrypts a whole buffer with a given encryptor (e.g. another segment size).
pub fn encrypt_with(enc: &mut Encryptor, plain: &[u8]) -> Result<Vec<u8>> {
    let seg = enc.segment_size();
    let mut out = Vec::with_capacity(encrypted_len(plain.len() as u64, seg) as usize);
    out.extend_from_slice(enc.header());
    let mut chunks = plain.chunks(seg).peekable();
    if chunks.peek().is_none() {
        let tag = enc.seal_detached(&mut [], true)?;
        out.extend_from_slice(&tag);
    }
    while let Some(chunk) = chunks.next() {
        let start = out.len();
        out.extend_from_slice(chunk);
        let last = chunks.peek().is_none();
        let tag = enc.seal_detached(&mut out[start..], last)?;
        out.extend_from_slice(&tag);
    }
    Ok(out)
}

/// Decrypts a whole buffer (any version, any file id).
pub fn decrypt(owner: &OwnerKey, sealed: &[u8]) -> Result<Vec<u8>> {
    let mut plain = Vec::with_capacity(sealed.len());
    let mut dec = Decryptor::new(owner);
    dec.push(sealed, |p| {
        plain.extend_from_slice(p);
        Ok(())
    })?;
    dec.finish(|p| {
        plain.extend_from_slice(p);
        Ok(())
    })?;
    Ok(plain)
}

fn name_aad_v1(id: &[u8; 8]) -> Vec<u8> {
    [NAME_INFO, id.as_slice()].concat()
}

fn name_aad_v2(id: &[u8; 8], file_id: &FileId) -> Vec<u8> {
    [NAME_AAD_V2, id.as_slice(), file_id.as_slice()].concat()
}

/// Encrypts a file name for the file entry, bound to the file `file_id`
/// ([`Encryptor::file_id`]); see the module docs.
pub fn encrypt_name(owner: &OwnerKey, file_id: &FileId, name: &str) -> Result<String> {
    Ok(encrypt_name_with_nonce(owner, file_id, name, random()?))
}

/// [`encrypt_name`] with a given nonce: **for test vectors only** (a nonce must never repeat
/// under one key).
pub fn encrypt_name_with_nonce(
    owner: &OwnerKey,
    file_id: &FileId,
    name: &str,
    nonce: [u8; 12],
) -> String {
    let mut buf = name.as_bytes().to_vec();
    let tag = cipher(&owner.subkey(NAME_INFO))
        .encrypt_in_place_detached(
            Nonce::from_slice(&nonce),
            &name_aad_v2(&owner.id, file_id),
            &mut buf,
        )
        .expect("AES-GCM seals a name");
    let mut blob = nonce.to_vec();
    blob.extend_from_slice(&buf);
    blob.extend_from_slice(&tag);
    format!(
        "{NAME_PREFIX}{}.{}.{}",
        owner.id_hex(),
        alloy::hex::encode(file_id),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(blob)
    )
}

/// Whether a file entry's name is encrypted (any version).
pub fn is_encrypted_name(name: &str) -> bool {
    name.starts_with(NAME_PREFIX) || name.starts_with(NAME_PREFIX_V1)
}

/// An encrypted name, opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedName {
    /// The plain name.
    pub name: String,
    /// The file the name is bound to (version 2); `None` for a version 1 name.
    pub file_id: Option<FileId>,
}

/// Opens an encrypted name (version 2 or 1); answers `None` for a plain name.
///
/// # Errors
/// [`Error::WrongKey`] for a name encrypted under another owner key, [`Error::Corrupt`] for a
/// modified or malformed one (including a version 2 name whose file id was changed).
pub fn open_name(owner: &OwnerKey, name: &str) -> Result<Option<OpenedName>> {
    let bad = || Error::Corrupt(format!("malformed encrypted name {name:?}"));
    let (rest, v2) = if let Some(rest) = name.strip_prefix(NAME_PREFIX) {
        (rest, true)
    } else if let Some(rest) = name.strip_prefix(NAME_PREFIX_V1) {
        (rest, false)
    } else {
        return Ok(None);
    };
    let (id_hex, rest) = rest.split_once('.').ok_or_else(bad)?;
    if id_hex != owner.id_hex() {
        return Err(Error::WrongKey {
            expected: id_hex.to_owned(),
            actual: owner.id_hex(),
        });
    }
    let (file_id, b64) = if v2 {
        let (fid_hex, b64) = rest.split_once('.').ok_or_else(bad)?;
        let mut fid = [0u8; FILE_ID_LEN];
        alloy::hex::decode_to_slice(fid_hex, &mut fid).map_err(|_| bad())?;
        (Some(fid), b64)
    } else {
        (None, rest)
    };
    let blob = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(b64)
        .map_err(|_| bad())?;
    if blob.len() < 12 + TAG_LEN {
        return Err(bad());
    }
    let (nonce, rest) = blob.split_at(12);
    let (ct, tag) = rest.split_at(rest.len() - TAG_LEN);
    let mut buf = ct.to_vec();
    let aad = match &file_id {
        Some(fid) => name_aad_v2(&owner.id, fid),
        None => name_aad_v1(&owner.id),
    };
    cipher(&owner.subkey(NAME_INFO))
        .decrypt_in_place_detached(
            Nonce::from_slice(nonce),
            &aad,
            &mut buf,
            Tag::from_slice(tag),
        )
        .map_err(|_| Error::Corrupt(format!("encrypted name {name:?} failed authentication")))?;
    let name = String::from_utf8(buf).map_err(|_| bad())?;
    Ok(Some(OpenedName { name, file_id }))
}

/// Decrypts a name made by [`encrypt_name`] (or a version 1 name); a plain name is returned as
/// it is. Use [`open_name`] to learn the file the name is bound to.
///
/// # Errors
/// As [`open_name`].
pub fn decrypt_name(owner: &OwnerKey, name: &str) -> Result<String> {
    Ok(open_name(owner, name)?.map_or_else(|| name.to_owned(), |n| n.name))
}

#[cfg(test)]
mod tests {
    use alloy::primitives::U256;

    use super::*;

    const SEG: usize = MIN_SEGMENT_SIZE;

    fn owner() -> OwnerKey {
        OwnerKey::from_bytes([42; 32])
    }

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 31 % 251) as u8).collect()
    }

    fn seal(owner: &OwnerKey, plain: &[u8]) -> Vec<u8> {
        let mut enc = Encryptor::with_segment_size(owner, SEG, sha256(plain)).unwrap();
        encrypt_with(&mut enc, plain).unwrap()
    }

    /// A version 1 file, written as version 1 clients wrote it (the encoder writes version 2
    /// only; this keeps the decoder honest about the old format).
    fn seal_v1(owner: &OwnerKey, plain: &[u8], seg: usize, file_key: [u8; 32]) -> Vec<u8> {
        let mut header = [0u8; HEADER_LEN_V1];
        header[..8].copy_from_slice(&MAGIC);
        header[8] = VERSION_1;
        header[9] = ALG_AES_256_GCM;
        header[12..16].copy_from_slice(&(seg as u32).to_le_bytes());
        header[16..32].copy_from_slice(&[0x22; 16]);
        header[32..40].copy_from_slice(&owner.id);
        header[40..52].copy_from_slice(&[0x33; 12]);
        let (aad, rest) = header.split_at_mut(WRAP_AAD_LEN);
        let (wrapped, tag_out) = rest.split_at_mut(32);
        wrapped.copy_from_slice(&file_key);
        let tag = cipher(&owner.subkey(WRAP_INFO))
            .encrypt_in_place_detached(Nonce::from_slice(&aad[40..52]), aad, wrapped)
            .unwrap();
        tag_out.copy_from_slice(&tag);
        let file = cipher(&file_key);
        let mut out = header.to_vec();
        let chunks: Vec<&[u8]> = if plain.is_empty() {
            vec![&[]]
        } else {
            plain.chunks(seg).collect()
        };
        for (i, chunk) in chunks.iter().enumerate() {
            let mut buf = chunk.to_vec();
            let last = i + 1 == chunks.len();
            let tag = file
                .encrypt_in_place_detached(
                    Nonce::from_slice(&segment_nonce(i as u32, last)),
                    &header,
                    &mut buf,
                )
                .unwrap();
            out.extend_from_slice(&buf);
            out.extend_from_slice(&tag);
        }
        out
    }

    /// A version 1 name with a given nonce.
    fn name_v1(owner: &OwnerKey, name: &str, nonce: [u8; 12]) -> String {
        let mut buf = name.as_bytes().to_vec();
        let tag = cipher(&owner.subkey(NAME_INFO))
            .encrypt_in_place_detached(Nonce::from_slice(&nonce), &name_aad_v1(&owner.id), &mut buf)
            .unwrap();
        let mut blob = nonce.to_vec();
        blob.extend_from_slice(&buf);
        blob.extend_from_slice(&tag);
        format!(
            "{NAME_PREFIX_V1}{}.{}",
            owner.id_hex(),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(blob)
        )
    }

    #[test]
    #[ignore = "prints the module docs' test vectors"]
    fn print_vectors() {
        let owner = OwnerKey::from_bytes([7; 32]);
        println!("KEY_ID {}", owner.id_hex());
        let mut enc = Encryptor::deterministic(
            &owner,
            1024,
            sha256(b"hello"),
            [0x11; 32],
            [0x22; 16],
            [0x33; 12],
        );
        let v2 = encrypt_with(&mut enc, b"hello").unwrap();
        println!("FILE_V2 {}", alloy::hex::encode(v2));
        println!(
            "NAME_V2 {}",
            encrypt_name_with_nonce(&owner, &[0x22; 16], "report.pdf", [0x44; 12])
        );
        println!(
            "FILE_V1 {}",
            alloy::hex::encode(seal_v1(&owner, b"hello", 1024, [0x11; 32]))
        );
        println!("NAME_V1 {}", name_v1(&owner, "report.pdf", [0x44; 12]));
    }

    #[test]
    fn version_1_files_and_names_still_open() {
        let owner = owner();
        for n in [0, 1, SEG, 2 * SEG + 3] {
            let plain = data(n);
            let sealed = seal_v1(&owner, &plain, SEG, [9; 32]);
            assert_eq!(open_stepwise(&owner, &sealed, 7).unwrap(), plain, "n {n}");
            let mut dec = Decryptor::bound_to(&owner, None);
            dec.push(&sealed, |_| Ok(())).unwrap();
            let info = dec.finish(|_| Ok(())).unwrap();
            assert_eq!((info.version, info.sha256), (VERSION_1, sha256(&plain)));
        }
        let name = name_v1(&owner, "old.txt", [1; 12]);
        let opened = open_name(&owner, &name).unwrap().unwrap();
        assert_eq!(opened.name, "old.txt");
        assert_eq!(opened.file_id, None);
        // A version 1 name may not go with version 2 content, nor a version 2 name with
        // version 1 content: the node cannot downgrade a file's binding.
        let v2 = seal(&owner, b"new");
        let mut dec = Decryptor::bound_to(&owner, None);
        let msg = assert_corrupt(
            dec.push(&v2, |_| panic!("released")).map(|()| Vec::new()),
            "v1 name, v2 content",
        );
        assert!(msg.contains("version 1 name"), "{msg}");
        let v1 = seal_v1(&owner, b"old", SEG, [9; 32]);
        let mut dec = Decryptor::bound_to(&owner, Some([0x22; 16]));
        let msg = assert_corrupt(
            dec.push(&v1, |_| panic!("released")).map(|()| Vec::new()),
            "v2 name, v1 content",
        );
        assert!(msg.contains("content is version 1"), "{msg}");
    }

    #[test]
    fn plaintext_hash_is_sealed_not_visible_and_checked() {
        let owner = owner();
        let plain = data(2 * SEG + 5);
        let sha = sha256(&plain);
        let sealed = seal(&owner, &plain);
        // The node sees the ciphertext only: the hash appears nowhere in it.
        assert!(
            !sealed.windows(32).any(|w| w == sha),
            "plaintext hash visible"
        );
        let mut dec = Decryptor::new(&owner);
        dec.push(&sealed[..HEADER_LEN], |_| Ok(())).unwrap();
        assert_eq!(dec.header_info().unwrap().2, Some(sha));

        // A header sealing another hash than the content's (a buggy or lying uploader) fails
        // at the end, even though every segment authenticates.
        let mut enc = Encryptor::deterministic(&owner, SEG, [0; 32], [1; 32], [2; 16], [3; 12]);
        enc.sha256 = sha; // bypass the encryptor's own check
        let lying = encrypt_with(&mut enc, &plain).unwrap();
        let msg = assert_corrupt(decrypt(&owner, &lying), "hash");
        assert!(msg.contains("SHA-256"), "{msg}");

        // The encryptor refuses plaintext that does not hash to what it was told.
        let mut enc = Encryptor::with_segment_size(&owner, SEG, sha256(b"other")).unwrap();
        match encrypt_with(&mut enc, &plain) {
            Err(Error::Invalid(msg)) => assert!(msg.contains("input changed"), "{msg}"),
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn names_are_bound_to_their_file() {
        let owner = owner();
        let mut enc_a = Encryptor::with_segment_size(&owner, SEG, sha256(b"a")).unwrap();
        let a = encrypt_with(&mut enc_a, b"a").unwrap();
        let name_a = encrypt_name(&owner, &enc_a.file_id(), "a.txt").unwrap();
        let mut enc_b = Encryptor::with_segment_size(&owner, SEG, sha256(b"b")).unwrap();
        let b = encrypt_with(&mut enc_b, b"b").unwrap();
        let name_b = encrypt_name(&owner, &enc_b.file_id(), "b.txt").unwrap();
        let opened_a = open_name(&owner, &name_a).unwrap().unwrap();
        assert_eq!(opened_a.file_id, Some(enc_a.file_id()));
        // Its own content opens under the name.
        let mut dec = Decryptor::bound_to(&owner, opened_a.file_id);
        dec.push(&a, |_| Ok(())).unwrap();
        dec.finish(|_| Ok(())).unwrap();
        // The node swaps names: b's content under a's name is refused before any plaintext.
        let mut dec = Decryptor::bound_to(&owner, opened_a.file_id);
        let msg = assert_corrupt(
            dec.push(&b, |_| panic!("released")).map(|()| Vec::new()),
            "swap",
        );
        assert!(msg.contains("another file"), "{msg}");
        // Rewriting the file id in a name breaks the name's authentication.
        let (head, tail) = name_b.split_at(NAME_PREFIX.len() + 17);
        let forged = format!(
            "{head}{}{}",
            alloy::hex::encode(enc_a.file_id()),
            &tail[32..]
        );
        assert!(matches!(open_name(&owner, &forged), Err(Error::Corrupt(_))));
        assert_eq!(open_name(&owner, "plain.txt").unwrap(), None);
    }

    /// Decrypts feeding the ciphertext in `step`-byte pieces.
    fn open_stepwise(owner: &OwnerKey, sealed: &[u8], step: usize) -> Result<Vec<u8>> {
        let mut plain = Vec::new();
        let mut dec = Decryptor::new(owner);
        for part in sealed.chunks(step) {
            dec.push(part, |p| {
                plain.extend_from_slice(p);
                Ok(())
            })?;
        }
        dec.finish(|p| {
            plain.extend_from_slice(p);
            Ok(())
        })?;
        Ok(plain)
    }

    #[test]
    fn round_trips_around_segment_boundaries() {
        let owner = owner();
        for n in [
            0,
            1,
            SEG - 1,
            SEG,
            SEG + 1,
            2 * SEG - 1,
            2 * SEG,
            2 * SEG + 1,
            5 * SEG + 7,
        ] {
            let plain = data(n);
            let sealed = seal(&owner, &plain);
            assert_eq!(sealed.len() as u64, encrypted_len(n as u64, SEG), "len {n}");
            for step in [1, 7, SEG, SEG + TAG_LEN, sealed.len().max(1)] {
                assert_eq!(
                    open_stepwise(&owner, &sealed, step).unwrap(),
                    plain,
                    "n {n} step {step}"
                );
            }
        }
    }

    #[test]
    fn default_segment_size_round_trips() {
        let owner = owner();
        let plain = data(DEFAULT_SEGMENT_SIZE * 2 + 3);
        let sealed = encrypt(&owner, &plain).unwrap();
        assert_eq!(
            sealed.len() as u64,
            encrypted_len(plain.len() as u64, DEFAULT_SEGMENT_SIZE)
        );
        assert_eq!(decrypt(&owner, &sealed).unwrap(), plain);
    }

    fn assert_corrupt(r: Result<Vec<u8>>, what: &str) -> String {
        match r {
            Err(Error::Corrupt(msg)) => msg,
            other => panic!("{what}: expected Corrupt, got {other:?}"),
        }
    }

    #[test]
    fn truncation_is_detected() {
        let owner = owner();
        let plain = data(3 * SEG + 10);
        let sealed = seal(&owner, &plain);
        let seg = SEG + TAG_LEN;
        // Cut at every segment boundary (a whole number of segments survives).
        for k in 1..=3 {
            let msg = assert_corrupt(decrypt(&owner, &sealed[..HEADER_LEN + k * seg]), "cut");
            assert!(msg.contains("truncated"), "{msg}");
        }
        // Cut right after the header, mid-segment, one byte short, mid-header.
        for cut in [
            HEADER_LEN,
            HEADER_LEN + 5,
            HEADER_LEN + seg + 20,
            sealed.len() - 1,
            50,
        ] {
            assert_corrupt(decrypt(&owner, &sealed[..cut]), "cut");
        }
        // An exact multiple of the segment size loses its last segment.
        let exact = seal(&owner, &data(2 * SEG));
        let msg = assert_corrupt(decrypt(&owner, &exact[..HEADER_LEN + seg]), "exact");
        assert!(msg.contains("truncated"), "{msg}");
    }

    #[test]
    fn appended_bytes_are_detected() {
        let owner = owner();
        let mut sealed = seal(&owner, &data(SEG));
        sealed.push(0);
        assert_corrupt(decrypt(&owner, &sealed), "append");
        // A whole extra segment from the same file cannot follow the final one either.
        let mut twice = seal(&owner, &data(2 * SEG));
        let seg0 = twice[HEADER_LEN..HEADER_LEN + SEG + TAG_LEN].to_vec();
        twice.extend_from_slice(&seg0);
        assert_corrupt(decrypt(&owner, &twice), "append segment");
    }

    #[test]
    fn reordering_is_detected() {
        let owner = owner();
        let sealed = seal(&owner, &data(3 * SEG + 1));
        let seg = SEG + TAG_LEN;
        let mut swapped = sealed.clone();
        let (a, b) = (HEADER_LEN, HEADER_LEN + seg);
        swapped[a..a + seg].copy_from_slice(&sealed[b..b + seg]);
        swapped[b..b + seg].copy_from_slice(&sealed[a..a + seg]);
        let msg = assert_corrupt(decrypt(&owner, &swapped), "reorder");
        assert!(msg.contains("segment 0"), "{msg}");
    }

    #[test]
    fn segment_swap_between_files_is_detected() {
        let owner = owner();
        let plain = data(2 * SEG + 1);
        let one = seal(&owner, &plain);
        let two = seal(&owner, &plain);
        let seg = SEG + TAG_LEN;
        let mut mixed = one.clone();
        mixed[HEADER_LEN + seg..HEADER_LEN + 2 * seg]
            .copy_from_slice(&two[HEADER_LEN + seg..HEADER_LEN + 2 * seg]);
        let msg = assert_corrupt(decrypt(&owner, &mixed), "swap");
        assert!(msg.contains("segment 1"), "{msg}");
        // Even the other file's header with this file's segments fails.
        let mut header_swap = one.clone();
        header_swap[..HEADER_LEN].copy_from_slice(&two[..HEADER_LEN]);
        assert_corrupt(decrypt(&owner, &header_swap), "header swap");
    }

    #[test]
    fn bit_flips_are_detected_and_release_nothing() {
        let owner = owner();
        let sealed = seal(&owner, &data(2 * SEG));
        for pos in [0, 9, 20, 35, 45, 60, 90, HEADER_LEN + 3, sealed.len() - 1] {
            let mut bad = sealed.clone();
            bad[pos] ^= 1;
            let mut released = 0;
            let mut dec = Decryptor::new(&owner);
            let r = dec
                .push(&bad, |p| {
                    released += p.len();
                    Ok(())
                })
                .and_then(|()| dec.finish(|_| Ok(())));
            assert!(r.is_err(), "flip at {pos} accepted");
            if pos < HEADER_LEN + SEG {
                assert_eq!(released, 0, "flip at {pos} released plaintext");
            }
        }
    }

    #[test]
    fn wrong_key_is_reported_as_such() {
        let sealed = seal(&owner(), b"secret");
        let other = OwnerKey::from_bytes([1; 32]);
        match decrypt(&other, &sealed) {
            Err(Error::WrongKey { expected, actual }) => {
                assert_eq!(expected, owner().id_hex());
                assert_eq!(actual, other.id_hex());
            }
            other => panic!("expected WrongKey, got {other:?}"),
        }
        let name = encrypt_name(&owner(), &[1; 16], "report.pdf").unwrap();
        assert!(matches!(
            decrypt_name(&other, &name),
            Err(Error::WrongKey { .. })
        ));
        let err = decrypt(&other, &sealed).unwrap_err().to_string();
        assert!(err.starts_with("wrong key"), "{err}");
    }

    #[test]
    fn names_round_trip_and_resist_tampering() {
        let owner = owner();
        let name = encrypt_name(&owner, &[1; 16], "ünïcode report.pdf").unwrap();
        assert!(is_encrypted_name(&name));
        assert!(!name.contains("report"));
        assert_eq!(decrypt_name(&owner, &name).unwrap(), "ünïcode report.pdf");
        assert_eq!(decrypt_name(&owner, "plain.txt").unwrap(), "plain.txt");
        let mut tampered = name.clone();
        let last = tampered.pop().unwrap();
        tampered.push(if last == 'A' { 'B' } else { 'A' });
        assert!(matches!(
            decrypt_name(&owner, &tampered),
            Err(Error::Corrupt(_))
        ));
    }

    #[test]
    fn key_file_round_trips_with_private_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("owner.key");
        let key = OwnerKey::generate().unwrap();
        key.save(&path).unwrap();
        assert_eq!(OwnerKey::load(&path).unwrap().id(), key.id());
        assert!(key.save(&path).is_err(), "must not overwrite");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, "nonsense").unwrap();
        assert!(matches!(OwnerKey::load(&path), Err(Error::Invalid(_))));
        assert!(!format!("{key:?}").contains(&alloy::hex::encode(key.key.as_ref())));
    }

    #[test]
    fn signature_derivation_is_per_signature_and_per_owner() {
        let owner = Address::repeat_byte(1);
        let sig = Signature::new(U256::from(7), U256::from(9), false);
        let ka = OwnerKey::from_signature(owner, &sig);
        assert_eq!(ka.id(), OwnerKey::from_signature(owner, &sig).id());
        assert_ne!(
            ka.id(),
            OwnerKey::from_signature(Address::repeat_byte(2), &sig).id()
        );
        let other = Signature::new(U256::from(8), U256::from(9), false);
        assert_ne!(ka.id(), OwnerKey::from_signature(owner, &other).id());
    }
}
