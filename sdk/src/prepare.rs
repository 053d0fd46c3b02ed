//! The upload preparation pipeline: plaintext in, upload body out, with the body's CID
//! computed on the way, in one streaming pass.
//!
//! ```text
//! plaintext ──► segments ──► AES-256-GCM (crypto::Encryptor) ──► body bytes ──► sink (HTTP)
//!                                                                   └─────────► UnixFS importer (CID)
//! ```
//!
//! The CID is computed exactly as Kubo's `add` would (px-core's importer, CIDv0 and 256 KiB
//! chunks by default), so the client can check that the node stored precisely the bytes it
//! sent. Memory stays bounded: one segment of plaintext plus the importer's current chunk.
//!
//! Encryption seals the plaintext's SHA-256 into the header (see [`crate::crypto`]), so it
//! must be known before the first byte: hash the input first. The encryptor checks it against
//! what it sealed and fails the upload if the input changed in between.
//!
//! ```
//! use px_sdk::crypto::{self, OwnerKey};
//! use px_sdk::prepare::Preparer;
//! let owner = OwnerKey::from_bytes([1; 32]);
//! let mut body = Vec::new();
//! let mut prep = Preparer::new(Some((&owner, crypto::sha256(b"hello"))), Default::default()).unwrap();
//! prep.push(b"hello", &mut |b: &[u8]| { body.extend_from_slice(b); Ok(()) }).unwrap();
//! let done = prep.finish(&mut |b: &[u8]| { body.extend_from_slice(b); Ok(()) }).unwrap();
//! assert_eq!(done.body_len, body.len() as u64);
//! assert_eq!(done.cid, px_core::importer::cid_of(&body, &Default::default()).unwrap().cid.to_string());
//! ```

use px_core::importer::{ImportError, ImportOptions, Importer};

use crate::{
    crypto::{self, Encryptor, FileId, OwnerKey},
    error::{Error, Result},
};

/// What the pipeline produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    /// CID of the body (what the node must answer).
    pub cid: String,
    /// Plaintext bytes consumed.
    pub plain_len: u64,
    /// Body bytes produced (ciphertext when encrypting).
    pub body_len: u64,
    /// Whether the body is encrypted.
    pub encrypted: bool,
}

/// Settings of the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrepareOptions {
    /// Plaintext bytes per encryption segment.
    pub segment_size: usize,
    /// How the node's IPFS backend chunks and addresses the body (Kubo's defaults).
    pub import: ImportOptions,
}

impl Default for PrepareOptions {
    fn default() -> Self {
        Self {
            segment_size: crypto::DEFAULT_SEGMENT_SIZE,
            import: ImportOptions::default(),
        }
    }
}

impl PrepareOptions {
    /// Body length for `plain_len` plaintext bytes.
    pub fn body_len(&self, plain_len: u64, encrypt: bool) -> u64 {
        if encrypt {
            crypto::encrypted_len(plain_len, self.segment_size)
        } else {
            plain_len
        }
    }
}

/// The streaming pipeline; see the module docs.
#[derive(Debug)]
pub struct Preparer {
    enc: Option<Encryptor>,
    importer: Importer,
    segment: Vec<u8>,
    segment_size: usize,
    header_sent: bool,
    plain_len: u64,
    body_len: u64,
}

fn import_err(e: ImportError) -> Error {
    Error::Config(format!("UnixFS import: {e}"))
}

impl Preparer {
    /// A pipeline that encrypts (when `encrypt` names the owner key and the plaintext's
    /// SHA-256) and computes the CID.
    pub fn new(encrypt: Option<(&OwnerKey, [u8; 32])>, opts: PrepareOptions) -> Result<Self> {
        let enc = encrypt
            .map(|(o, sha)| Encryptor::with_segment_size(o, opts.segment_size, sha))
            .transpose()?;
        let importer = Importer::new(&opts.import).map_err(import_err)?;
        let mut segment = Vec::new();
        if enc.is_some() {
            segment.reserve_exact(opts.segment_size + crypto::TAG_LEN);
        }
        Ok(Self {
            enc,
            importer,
            segment,
            segment_size: opts.segment_size,
            header_sent: false,
            plain_len: 0,
            body_len: 0,
        })
    }

    /// The encrypted file's id, to bind its name to ([`crypto::encrypt_name`]).
    pub fn file_id(&self) -> Option<FileId> {
        self.enc.as_ref().map(Encryptor::file_id)
    }

    fn emit(&mut self, bytes: &[u8], out: &mut impl FnMut(&[u8]) -> Result<()>) -> Result<()> {
        self.body_len += bytes.len() as u64;
        self.importer
            .push(bytes, |_| Ok::<_, ImportError>(()))
            .map_err(import_err)?;
        out(bytes)
    }

    fn seal(&mut self, last: bool, out: &mut impl FnMut(&[u8]) -> Result<()>) -> Result<()> {
        let mut segment = std::mem::take(&mut self.segment);
        if !self.header_sent {
            self.header_sent = true;
            let header = *self
                .enc
                .as_ref()
                .expect("sealing only when encrypting")
                .header();
            self.emit(&header, out)?;
        }
        let enc = self.enc.as_mut().expect("sealing only when encrypting");
        enc.seal_segment(&mut segment, last)?;
        let r = self.emit(&segment, out);
        segment.clear();
        self.segment = segment;
        r
    }

    /// Feeds plaintext; body bytes are passed to `out` as they are ready.
    pub fn push(
        &mut self,
        mut data: &[u8],
        out: &mut impl FnMut(&[u8]) -> Result<()>,
    ) -> Result<()> {
        self.plain_len += data.len() as u64;
        if self.enc.is_none() {
            return self.emit(data, out);
        }
        while !data.is_empty() {
            if self.segment.len() == self.segment_size {
                // More plaintext follows, so the full segment is not the last one.
                self.seal(false, out)?;
            }
            let take = (self.segment_size - self.segment.len()).min(data.len());
            self.segment.extend_from_slice(&data[..take]);
            data = &data[take..];
        }
        Ok(())
    }

    /// Ends the input: seals the final segment and answers the CID and lengths.
    pub fn finish(mut self, out: &mut impl FnMut(&[u8]) -> Result<()>) -> Result<Prepared> {
        let encrypted = self.enc.is_some();
        if encrypted {
            self.seal(true, out)?;
        }
        let imported = self
            .importer
            .finish(|_| Ok::<_, ImportError>(()))
            .map_err(import_err)?;
        Ok(Prepared {
            cid: imported.cid.to_string(),
            plain_len: self.plain_len,
            body_len: self.body_len,
            encrypted,
        })
    }
}

#[cfg(test)]
mod tests {
    use px_core::importer::cid_of;

    use super::*;

    fn run(owner: Option<&OwnerKey>, plain: &[u8], step: usize) -> (Vec<u8>, Prepared) {
        let sha = crypto::sha256(plain);
        let opts = PrepareOptions {
            segment_size: crypto::MIN_SEGMENT_SIZE,
            ..Default::default()
        };
        let mut body = Vec::new();
        let mut sink = |b: &[u8]| {
            body.extend_from_slice(b);
            Ok(())
        };
        let mut prep = Preparer::new(owner.map(|o| (o, sha)), opts).unwrap();
        for part in plain.chunks(step.max(1)) {
            prep.push(part, &mut sink).unwrap();
        }
        let done = prep.finish(&mut sink).unwrap();
        assert_eq!(
            done.body_len,
            opts.body_len(plain.len() as u64, owner.is_some())
        );
        (body, done)
    }

    #[test]
    fn encrypted_body_decrypts_and_its_cid_matches_kubo_import() {
        let owner = OwnerKey::from_bytes([3; 32]);
        for n in [0usize, 1, 1023, 1024, 1025, 300_000] {
            let plain: Vec<u8> = (0..n).map(|i| (i % 253) as u8).collect();
            for step in [1000, 4096] {
                let (body, done) = run(Some(&owner), &plain, step);
                assert_eq!(body.len() as u64, done.body_len);
                assert_eq!(crypto::decrypt(&owner, &body).unwrap(), plain, "n {n}");
                let cid = cid_of(&body, &ImportOptions::default()).unwrap().cid;
                assert_eq!(done.cid, cid.to_string());
                assert!(done.encrypted);
            }
        }
    }

    #[test]
    fn plain_body_is_the_input_with_kubo_cid() {
        let (body, done) = run(None, b"hello world\n", 5);
        assert_eq!(body, b"hello world\n");
        assert_eq!(done.cid, "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o");
        assert!(!done.encrypted);
    }
}
