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
//! # File format (version 1)
//! ```text
//! header (100 bytes)
//!   0..8    magic            89 50 58 45 0d 0a 1a 0a  ("\x89PXE\r\n\x1a\n")
//!   8       version          1
//!   9       algorithm        1 = AES-256-GCM
//!   10..12  reserved         0
//!   12..16  segment size     u32 little endian, plaintext bytes per segment (1 KiB ..= 16 MiB)
//!   16..32  file id          random
//!   32..40  owner key id
//!   40..52  wrap nonce       random
//!   52..84  wrapped file key AES-256-GCM(wrap key, wrap nonce, aad = header[0..52])
//!   84..100 wrap tag
//! segments, i = 0, 1, ..., n-1 (n >= 1)
//!   AES-256-GCM(file key, nonce_i, aad = header[0..100], plaintext_i) || tag (16 bytes)
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
//! The decryptor never releases a segment's plaintext before its tag verified. The ciphertext
//! length is a function of the plaintext length ([`encrypted_len`]), so an upload's
//! `Content-Length` is known before it starts.
//!
//! # File names
//! An encrypted name is `pxe1.<key id hex>.<base64url(nonce || AES-256-GCM(name key, nonce,
//! aad = "px-storage name v1" || key id, name) || tag)>` ([`encrypt_name`], [`decrypt_name`]).
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
/// Format version written and read.
pub const VERSION: u8 = 1;
/// Algorithm id of AES-256-GCM.
pub const ALG_AES_256_GCM: u8 = 1;
/// Length of the header.
pub const HEADER_LEN: usize = 100;
/// Length of a GCM tag.
pub const TAG_LEN: usize = 16;
/// Default plaintext bytes per segment (256 KiB, Kubo's chunk size).
pub const DEFAULT_SEGMENT_SIZE: usize = 256 * 1024;
/// Smallest segment size accepted.
pub const MIN_SEGMENT_SIZE: usize = 1024;
/// Largest segment size accepted (bounds the decryptor's memory).
pub const MAX_SEGMENT_SIZE: usize = 16 * 1024 * 1024;
/// Prefix of an encrypted file name.
pub const NAME_PREFIX: &str = "pxe1.";

const WRAP_AAD_LEN: usize = 52;
const KEY_ID_INFO: &[u8] = b"px-storage key id v1";
const WRAP_INFO: &[u8] = b"px-storage wrap v1";
const NAME_INFO: &[u8] = b"px-storage name v1";
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

/// Ciphertext length of a `plain_len`-byte file with `segment_size`-byte segments.
pub fn encrypted_len(plain_len: u64, segment_size: usize) -> u64 {
    let seg = segment_size as u64;
    let segments = plain_len.div_ceil(seg).max(1);
    HEADER_LEN as u64 + plain_len + segments * TAG_LEN as u64
}

/// Whether `bytes` start like an encrypted file.
pub fn is_encrypted(bytes: &[u8]) -> bool {
    bytes.len() >= MAGIC.len() && bytes[..MAGIC.len()] == MAGIC
}

fn segment_nonce(index: u32, last: bool) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[7..11].copy_from_slice(&index.to_be_bytes());
    n[11] = u8::from(last);
    n
}

/// Encrypts one file, segment by segment (see the module docs for the format).
///
/// Feed it plaintext segments of exactly [`Encryptor::segment_size`] bytes, then one last
/// segment of at most that size (possibly empty) with `last = true`.
pub struct Encryptor {
    cipher: Aes256Gcm,
    header: [u8; HEADER_LEN],
    segment_size: usize,
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
    /// A new file with a random file key and id, [`DEFAULT_SEGMENT_SIZE`] segments.
    pub fn new(owner: &OwnerKey) -> Result<Self> {
        Self::with_segment_size(owner, DEFAULT_SEGMENT_SIZE)
    }

    /// A new file with `segment_size`-byte segments.
    pub fn with_segment_size(owner: &OwnerKey, segment_size: usize) -> Result<Self> {
        if !(MIN_SEGMENT_SIZE..=MAX_SEGMENT_SIZE).contains(&segment_size) {
            return Err(Error::Invalid(format!(
                "segment size must be between {MIN_SEGMENT_SIZE} and {MAX_SEGMENT_SIZE}"
            )));
        }
        let file_key: Zeroizing<[u8; 32]> = Zeroizing::new(random()?);
        let mut header = [0u8; HEADER_LEN];
        header[..8].copy_from_slice(&MAGIC);
        header[8] = VERSION;
        header[9] = ALG_AES_256_GCM;
        header[12..16].copy_from_slice(&(segment_size as u32).to_le_bytes());
        header[16..32].copy_from_slice(&random::<16>()?);
        header[32..40].copy_from_slice(&owner.id);
        header[40..52].copy_from_slice(&random::<12>()?);
        let (aad, rest) = header.split_at_mut(WRAP_AAD_LEN);
        let (wrapped, tag_out) = rest.split_at_mut(32);
        wrapped.copy_from_slice(file_key.as_ref());
        let wrap = cipher(&owner.subkey(WRAP_INFO));
        let tag = wrap
            .encrypt_in_place_detached(Nonce::from_slice(&aad[40..52]), aad, wrapped)
            .map_err(|_| Error::Corrupt("key wrap failed".into()))?;
        tag_out.copy_from_slice(&tag);
        Ok(Self {
            cipher: cipher(&file_key),
            header,
            segment_size,
            index: 0,
            done: false,
        })
    }

    /// The header, to be written before the first segment.
    pub fn header(&self) -> &[u8; HEADER_LEN] {
        &self.header
    }

    /// Plaintext bytes per segment.
    pub fn segment_size(&self) -> usize {
        self.segment_size
    }

    /// Encrypts the plaintext segment in `buf` in place and appends its tag.
    ///
    /// # Errors
    /// [`Error::Corrupt`] when a non-final segment is not full, a segment is too long, more
    /// than 2^32 segments are written or a segment follows the final one.
    pub fn seal_segment(&mut self, buf: &mut Vec<u8>, last: bool) -> Result<()> {
        let tag = self.seal_detached(buf, last)?;
        buf.extend_from_slice(&tag);
        Ok(())
    }

    /// Encrypts the plaintext segment in `buf` in place and returns its tag.
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

/// Decrypts a stream produced by [`Encryptor`], releasing only authenticated plaintext.
pub struct Decryptor {
    owner: OwnerKey,
    cipher: Option<(Aes256Gcm, [u8; HEADER_LEN], usize)>,
    buf: Vec<u8>,
    index: u32,
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
    /// A decryptor for content encrypted under `owner`.
    pub fn new(owner: &OwnerKey) -> Self {
        Self {
            owner: owner.clone(),
            cipher: None,
            buf: Vec::new(),
            index: 0,
        }
    }

    fn open_header(&mut self) -> Result<()> {
        let header: [u8; HEADER_LEN] = self.buf[..HEADER_LEN].try_into().expect("length checked");
        if header[..8] != MAGIC {
            return Err(Error::Corrupt(
                "not PX-encrypted content (bad magic)".into(),
            ));
        }
        if header[8] != VERSION || header[9] != ALG_AES_256_GCM || header[10..12] != [0, 0] {
            return Err(Error::Corrupt(format!(
                "unsupported format version {} / algorithm {}",
                header[8], header[9]
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
        let mut file_key = Zeroizing::new([0u8; 32]);
        file_key.copy_from_slice(&header[52..84]);
        let wrap = cipher(&self.owner.subkey(WRAP_INFO));
        wrap.decrypt_in_place_detached(
            Nonce::from_slice(&header[40..52]),
            &header[..WRAP_AAD_LEN],
            file_key.as_mut(),
            Tag::from_slice(&header[84..100]),
        )
        .map_err(|_| Error::Corrupt("the file key does not unwrap (header modified)".into()))?;
        self.cipher = Some((cipher(&file_key), header, segment_size));
        self.buf.drain(..HEADER_LEN);
        Ok(())
    }

    fn open_segment(
        &mut self,
        len: usize,
        last: bool,
        out: &mut impl FnMut(&[u8]) -> Result<()>,
    ) -> Result<()> {
        let (cipher, header, _) = self.cipher.as_ref().expect("header opened");
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
        out(&self.buf[..len - TAG_LEN])?;
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
        if self.cipher.is_none() {
            if self.buf.len() < HEADER_LEN {
                return Ok(());
            }
            self.open_header()?;
        }
        let seg = self.cipher.as_ref().expect("header opened").2 + TAG_LEN;
        // A full segment is known not to be the last one once a byte follows it.
        while self.buf.len() > seg {
            self.open_segment(seg, false, &mut out)?;
        }
        Ok(())
    }

    /// Ends the stream: opens the final segment.
    pub fn finish(mut self, mut out: impl FnMut(&[u8]) -> Result<()>) -> Result<()> {
        if self.cipher.is_none() {
            if self.buf.len() < HEADER_LEN {
                return Err(Error::Corrupt(format!(
                    "truncated: {} bytes, shorter than the {HEADER_LEN}-byte header",
                    self.buf.len()
                )));
            }
            self.open_header()?;
        }
        let len = self.buf.len();
        if len < TAG_LEN {
            return Err(Error::Corrupt(format!(
                "truncated: the final segment is missing after segment {}",
                self.index
            )));
        }
        self.open_segment(len, true, &mut out)
    }
}

/// Encrypts a whole buffer (see [`Encryptor`] for streaming).
pub fn encrypt(owner: &OwnerKey, plain: &[u8]) -> Result<Vec<u8>> {
    let mut enc = Encryptor::new(owner)?;
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

/// Decrypts a whole buffer.
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

fn name_aad(id: &[u8; 8]) -> Vec<u8> {
    [NAME_INFO, id.as_slice()].concat()
}

/// Encrypts a file name for the file entry (see the module docs).
pub fn encrypt_name(owner: &OwnerKey, name: &str) -> Result<String> {
    let nonce: [u8; 12] = random()?;
    let mut buf = name.as_bytes().to_vec();
    let tag = cipher(&owner.subkey(NAME_INFO))
        .encrypt_in_place_detached(Nonce::from_slice(&nonce), &name_aad(&owner.id), &mut buf)
        .map_err(|_| Error::Corrupt("name encryption failed".into()))?;
    let mut blob = nonce.to_vec();
    blob.extend_from_slice(&buf);
    blob.extend_from_slice(&tag);
    Ok(format!(
        "{NAME_PREFIX}{}.{}",
        owner.id_hex(),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(blob)
    ))
}

/// Whether a file entry's name is encrypted.
pub fn is_encrypted_name(name: &str) -> bool {
    name.starts_with(NAME_PREFIX)
}

/// Decrypts a name made by [`encrypt_name`]; a plain name is returned as it is.
///
/// # Errors
/// [`Error::WrongKey`] for a name encrypted under another owner key, [`Error::Corrupt`] for a
/// modified one.
pub fn decrypt_name(owner: &OwnerKey, name: &str) -> Result<String> {
    let Some(rest) = name.strip_prefix(NAME_PREFIX) else {
        return Ok(name.to_owned());
    };
    let bad = || Error::Corrupt(format!("malformed encrypted name {name:?}"));
    let (id_hex, b64) = rest.split_once('.').ok_or_else(bad)?;
    if id_hex != owner.id_hex() {
        return Err(Error::WrongKey {
            expected: id_hex.to_owned(),
            actual: owner.id_hex(),
        });
    }
    let blob = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(b64)
        .map_err(|_| bad())?;
    if blob.len() < 12 + TAG_LEN {
        return Err(bad());
    }
    let (nonce, rest) = blob.split_at(12);
    let (ct, tag) = rest.split_at(rest.len() - TAG_LEN);
    let mut buf = ct.to_vec();
    cipher(&owner.subkey(NAME_INFO))
        .decrypt_in_place_detached(
            Nonce::from_slice(nonce),
            &name_aad(&owner.id),
            &mut buf,
            Tag::from_slice(tag),
        )
        .map_err(|_| Error::Corrupt(format!("encrypted name {name:?} failed authentication")))?;
    String::from_utf8(buf).map_err(|_| bad())
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
        let mut enc = Encryptor::with_segment_size(owner, SEG).unwrap();
        encrypt_with(&mut enc, plain).unwrap()
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
        let name = encrypt_name(&owner(), "report.pdf").unwrap();
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
        let name = encrypt_name(&owner, "ünïcode report.pdf").unwrap();
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
