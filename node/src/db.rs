//! All node state in one redb database (`<data_dir>/node.redb`): ACID transactions, so a crash
//! never leaves half an update.
//!
//! Tables:
//! - `nonces`: unused since sign-in nonces moved to memory ([`crate::nonces`]); left in old
//!   databases.
//! - `sessions`: SHA-256 of a bearer token -> address and expiry; `session_expiry`: (expiry,
//!   hash), the index that prunes expired sessions a few at a time, without a scan.
//! - `keys`: ed25519 public key -> the IPFS key name and the token bound to it, if known.
//! - `assignments`: minter address -> public key of its outstanding key assignment.
//! - `tokens`: token id -> [`TokenState`] (usage, sequence, index root, last record).
//! - `files`: (token, file id) -> [`FileEntry`].
//! - `content`: (token, CID) -> number of the token's files with that CID (download checks).
//! - `cid_refs`: CID -> number of files over all tokens with that CID (pins are shared).
//! - `pages`: (token, level, page) -> CID of a file index page; `page_cids`: (token, CID), the
//!   reverse index that answers "is this CID a committed page of the token" in O(log n).
//! - `journal`: token -> [`Journal`]: pins taken for an update not yet committed, and pins a
//!   committed update released but has not yet removed. Replayed at start.
//! - `uploads`: upload id -> [`UploadPin`]: the CID of an upload whose `add` may pin it, written
//!   before the backend can pin and removed by the commit that makes the file part of its
//!   token (or after the pin is given back). Replayed at start.

use std::path::Path;

use alloy::primitives::Address;
use px_core::api::FileEntry;
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

pub(crate) const SESSIONS: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("sessions");
pub(crate) const SESSION_EXPIRY: TableDefinition<'_, (u64, &[u8]), ()> =
    TableDefinition::new("session_expiry");
pub(crate) const KEYS: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("keys");
pub(crate) const ASSIGNMENTS: TableDefinition<'_, &[u8], &[u8]> =
    TableDefinition::new("assignments");
pub(crate) const TOKENS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("tokens");
pub(crate) const FILES: TableDefinition<'_, (u64, u64), &[u8]> = TableDefinition::new("files");
pub(crate) const CONTENT: TableDefinition<'_, (u64, &str), u64> = TableDefinition::new("content");
pub(crate) const CID_REFS: TableDefinition<'_, &str, u64> = TableDefinition::new("cid_refs");
pub(crate) const PAGES: TableDefinition<'_, (u64, u8, u64), &str> = TableDefinition::new("pages");
pub(crate) const PAGE_CIDS: TableDefinition<'_, (u64, &str), ()> =
    TableDefinition::new("page_cids");
pub(crate) const JOURNAL: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("journal");
pub(crate) const UPLOADS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("uploads");

/// What the node knows about a token it serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenState {
    /// IPFS key name of the token's IPNS key.
    pub key_name: String,
    /// Base36 IPNS name.
    pub ipns_id: String,
    /// Bytes stored.
    pub used: u64,
    /// Files stored.
    pub file_count: u64,
    /// Sequence number of the last committed usage record.
    pub seq: u64,
    /// Next file id.
    pub next_file_id: u64,
    /// CID of the file index root ("" before the first upload).
    pub index_root: String,
    /// Quota written into the last record.
    pub quota: u64,
    /// CID of the last committed usage record ("" before the first).
    pub record_cid: String,
}

/// An IPNS key the node created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRow {
    /// IPFS key name.
    pub key_name: String,
    /// Base36 IPNS name.
    pub ipns_id: String,
    /// Token the key is bound to, once known.
    pub token_id: Option<u64>,
}

/// Pins an update of a token holds outside a committed state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Journal {
    /// Pinned for an update that has not committed: removed at recovery unless a committed
    /// file or page references them.
    pub pending: Vec<String>,
    /// Released by a committed update, still to unpin.
    pub release: Vec<String>,
}

/// The pin an upload in flight may hold (see the `uploads` table).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadPin {
    /// Token uploaded to.
    pub token_id: u64,
    /// CID of the uploaded file; `None` when the backend is the node's alone and the CID is
    /// not known before the pin (recovery then unpins every unreferenced pin).
    pub cid: Option<String>,
}

/// The node database.
#[derive(Debug)]
pub struct Db {
    db: Database,
}

/// Expired sessions removed per login, at most (the expiry index finds them without a scan).
pub const PRUNE_BATCH: usize = 64;

/// The expiry of a `sessions` row (address, then the big-endian expiry).
fn session_expiry(row: &[u8]) -> Option<u64> {
    (row.len() == 28).then(|| u64::from_be_bytes(row[20..28].try_into().expect("8 bytes")))
}

fn committed_object(tx: &redb::ReadTransaction, token_id: u64, cid: &str) -> Result<bool> {
    if let Some(s) = tx.open_table(TOKENS)?.get(token_id)? {
        let s: TokenState = dec(s.value())?;
        if s.record_cid == cid || s.index_root == cid {
            return Ok(true);
        }
    }
    Ok(tx.open_table(PAGE_CIDS)?.get((token_id, cid))?.is_some())
}

fn enc<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    Ok(serde_json::to_vec(v)?)
}

fn dec<T: for<'de> Deserialize<'de>>(b: &[u8]) -> Result<T> {
    serde_json::from_slice(b).map_err(|e| Error::Db(format!("corrupt row: {e}")))
}

impl Db {
    /// Opens (or creates) the database and its tables.
    pub fn open(path: &Path) -> Result<Self> {
        let db = Database::create(path)?;
        let tx = db.begin_write()?;
        tx.open_table(SESSIONS)?;
        tx.open_table(SESSION_EXPIRY)?;
        tx.open_table(PAGE_CIDS)?;
        tx.open_table(KEYS)?;
        tx.open_table(ASSIGNMENTS)?;
        tx.open_table(TOKENS)?;
        tx.open_table(FILES)?;
        tx.open_table(CONTENT)?;
        tx.open_table(CID_REFS)?;
        tx.open_table(PAGES)?;
        tx.open_table(JOURNAL)?;
        tx.open_table(UPLOADS)?;
        Self::build_indexes(&tx)?;
        tx.commit()?;
        Ok(Self { db })
    }

    /// Builds the expiry and page-CID indexes of a database written before they existed (once:
    /// an index is built only when it is empty and its table is not).
    fn build_indexes(tx: &redb::WriteTransaction) -> Result<()> {
        let mut expiry = tx.open_table(SESSION_EXPIRY)?;
        if expiry.is_empty()? {
            for row in tx.open_table(SESSIONS)?.iter()? {
                let (k, v) = row?;
                if let Some(exp) = session_expiry(v.value()) {
                    expiry.insert((exp, k.value()), ())?;
                }
            }
        }
        let mut cids = tx.open_table(PAGE_CIDS)?;
        if cids.is_empty()? {
            for row in tx.open_table(PAGES)?.iter()? {
                let (k, v) = row?;
                cids.insert((k.value().0, v.value()), ())?;
            }
        }
        Ok(())
    }

    // ---- sign-in ----

    /// Stores a session under the hash of its token and prunes up to [`PRUNE_BATCH`] expired
    /// sessions through the expiry index (no scan of the table).
    pub fn put_session(
        &self,
        hash: &[u8; 32],
        address: Address,
        expires_at: u64,
        now: u64,
    ) -> Result<()> {
        let mut row = address.to_vec();
        row.extend_from_slice(&expires_at.to_be_bytes());
        let tx = self.db.begin_write()?;
        {
            let mut t = tx.open_table(SESSIONS)?;
            let mut expiry = tx.open_table(SESSION_EXPIRY)?;
            let expired: Vec<(u64, Vec<u8>)> = expiry
                .range(..=(now, &[0xffu8; 32][..]))?
                .take(PRUNE_BATCH)
                .map(|r| r.map(|(k, _)| (k.value().0, k.value().1.to_vec())))
                .collect::<std::result::Result<_, _>>()?;
            for (exp, h) in &expired {
                expiry.remove((*exp, &h[..]))?;
                t.remove(&h[..])?;
            }
            if let Some(old) = t.insert(&hash[..], &row[..])?
                && let Some(exp) = session_expiry(old.value())
            {
                drop(old);
                expiry.remove((exp, &hash[..]))?;
            }
            expiry.insert((expires_at, &hash[..]), ())?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Number of stored sessions (live or not yet pruned).
    pub fn session_count(&self) -> Result<u64> {
        let tx = self.db.begin_read()?;
        Ok(tx.open_table(SESSIONS)?.len()?)
    }

    /// Deletes a session; answers whether it existed.
    pub fn delete_session(&self, hash: &[u8; 32]) -> Result<bool> {
        let tx = self.db.begin_write()?;
        let exp = tx
            .open_table(SESSIONS)?
            .remove(&hash[..])?
            .map(|v| session_expiry(v.value()));
        if let Some(Some(exp)) = exp {
            tx.open_table(SESSION_EXPIRY)?.remove((exp, &hash[..]))?;
        }
        tx.commit()?;
        Ok(exp.is_some())
    }

    /// The address of a live session.
    pub fn session(&self, hash: &[u8; 32], now: u64) -> Result<Option<Address>> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(SESSIONS)?;
        let Some(v) = t.get(&hash[..])? else {
            return Ok(None);
        };
        let v = v.value();
        Ok(session_expiry(v)
            .filter(|exp| *exp > now)
            .map(|_| Address::from_slice(&v[..20])))
    }

    // ---- keys ----

    /// Records a key the node created.
    pub fn put_key(&self, pubkey: &[u8; 32], row: &KeyRow) -> Result<()> {
        let tx = self.db.begin_write()?;
        tx.open_table(KEYS)?.insert(&pubkey[..], &enc(row)?[..])?;
        tx.commit()?;
        Ok(())
    }

    /// A key by public key.
    pub fn key(&self, pubkey: &[u8; 32]) -> Result<Option<KeyRow>> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(KEYS)?;
        t.get(&pubkey[..])?.map(|v| dec(v.value())).transpose()
    }

    /// Records the outstanding assignment of `minter` (with its key).
    pub fn put_assignment(&self, minter: Address, pubkey: &[u8; 32], row: &KeyRow) -> Result<()> {
        let tx = self.db.begin_write()?;
        tx.open_table(KEYS)?.insert(&pubkey[..], &enc(row)?[..])?;
        tx.open_table(ASSIGNMENTS)?
            .insert(minter.as_slice(), &pubkey[..])?;
        tx.commit()?;
        Ok(())
    }

    /// The public key of `minter`'s outstanding assignment.
    pub fn assignment(&self, minter: Address) -> Result<Option<[u8; 32]>> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(ASSIGNMENTS)?;
        Ok(t.get(minter.as_slice())?
            .and_then(|v| v.value().try_into().ok()))
    }

    // ---- tokens ----

    /// The state of a token the node serves.
    pub fn token(&self, token_id: u64) -> Result<Option<TokenState>> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(TOKENS)?;
        t.get(token_id)?.map(|v| dec(v.value())).transpose()
    }

    /// All served tokens.
    pub fn tokens(&self) -> Result<Vec<(u64, TokenState)>> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(TOKENS)?;
        let mut out = Vec::new();
        for row in t.iter()? {
            let (k, v) = row?;
            out.push((k.value(), dec(v.value())?));
        }
        Ok(out)
    }

    /// Number of served tokens.
    pub fn token_count(&self) -> Result<u64> {
        let tx = self.db.begin_read()?;
        Ok(tx.open_table(TOKENS)?.len()?)
    }

    /// Starts serving a token with `key`: binds the key row and creates the token state,
    /// unless it exists.
    pub fn adopt_token(
        &self,
        token_id: u64,
        pubkey: &[u8; 32],
        key: &KeyRow,
    ) -> Result<TokenState> {
        let tx = self.db.begin_write()?;
        let state = {
            let mut tokens = tx.open_table(TOKENS)?;
            let existing = tokens.get(token_id)?.map(|v| dec::<TokenState>(v.value()));
            match existing {
                Some(s) => s?,
                None => {
                    let s = TokenState {
                        key_name: key.key_name.clone(),
                        ipns_id: key.ipns_id.clone(),
                        used: 0,
                        file_count: 0,
                        seq: 0,
                        next_file_id: 1,
                        index_root: String::new(),
                        quota: 0,
                        record_cid: String::new(),
                    };
                    tokens.insert(token_id, &enc(&s)?[..])?;
                    let mut row = key.clone();
                    row.token_id = Some(token_id);
                    tx.open_table(KEYS)?.insert(&pubkey[..], &enc(&row)?[..])?;
                    s
                }
            }
        };
        tx.commit()?;
        Ok(state)
    }

    // ---- files ----

    /// A file of a token.
    pub fn file(&self, token_id: u64, file_id: u64) -> Result<Option<FileEntry>> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(FILES)?;
        t.get((token_id, file_id))?
            .map(|v| dec(v.value()))
            .transpose()
    }

    /// Up to `limit` files with ids above `after`, and whether more follow.
    pub fn files_after(
        &self,
        token_id: u64,
        after: u64,
        limit: usize,
    ) -> Result<(Vec<FileEntry>, bool)> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(FILES)?;
        let mut out = Vec::with_capacity(limit.min(1024));
        let start = after.saturating_add(1);
        for row in t.range((token_id, start)..=(token_id, u64::MAX))? {
            let (_, v) = row?;
            if out.len() == limit {
                return Ok((out, true));
            }
            out.push(dec(v.value())?);
        }
        Ok((out, false))
    }

    /// Files with ids in `[from, to)`.
    pub fn files_in(&self, token_id: u64, from: u64, to: u64) -> Result<Vec<FileEntry>> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(FILES)?;
        let mut out = Vec::new();
        for row in t.range((token_id, from)..(token_id, to))? {
            out.push(dec(row?.1.value())?);
        }
        Ok(out)
    }

    /// Whether the token holds a file with `cid`.
    pub fn has_content(&self, token_id: u64, cid: &str) -> Result<bool> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(CONTENT)?;
        Ok(t.get((token_id, cid))?.is_some_and(|v| v.value() > 0))
    }

    /// Number of files over all tokens with `cid`.
    pub fn cid_refs(&self, cid: &str) -> Result<u64> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(CID_REFS)?;
        Ok(t.get(cid)?.map_or(0, |v| v.value()))
    }

    /// Whether `cid` is a committed index page, index root or record of the token: two point
    /// reads (the token's state and the `page_cids` index), whatever the number of pages.
    pub fn is_committed_object(&self, token_id: u64, cid: &str) -> Result<bool> {
        let tx = self.db.begin_read()?;
        committed_object(&tx, token_id, cid)
    }

    /// Those of `cids` that nothing committed references (no file of any token, no index page,
    /// root or record of `token_id`), each once, in one read transaction.
    pub fn unreferenced(&self, token_id: u64, cids: &[String]) -> Result<Vec<String>> {
        let tx = self.db.begin_read()?;
        let refs = tx.open_table(CID_REFS)?;
        let mut out: Vec<String> = Vec::with_capacity(cids.len());
        for cid in cids {
            if out.contains(cid)
                || refs.get(cid.as_str())?.is_some_and(|v| v.value() > 0)
                || committed_object(&tx, token_id, cid)?
            {
                continue;
            }
            out.push(cid.clone());
        }
        Ok(out)
    }

    /// The CID of an index page.
    pub fn page(&self, token_id: u64, level: u8, page: u64) -> Result<Option<String>> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(PAGES)?;
        Ok(t.get((token_id, level, page))?
            .map(|v| v.value().to_string()))
    }

    /// Pages of `level` with numbers in `[from, to)`, in order.
    pub fn pages_in(
        &self,
        token_id: u64,
        level: u8,
        from: u64,
        to: u64,
    ) -> Result<Vec<(u64, String)>> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(PAGES)?;
        let mut out = Vec::new();
        for row in t.range((token_id, level, from)..(token_id, level, to))? {
            let (k, v) = row?;
            out.push((k.value().2, v.value().to_string()));
        }
        Ok(out)
    }

    // ---- journal ----

    /// The journal of a token.
    pub fn journal(&self, token_id: u64) -> Result<Journal> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(JOURNAL)?;
        Ok(t.get(token_id)?
            .map(|v| dec(v.value()))
            .transpose()?
            .unwrap_or_default())
    }

    /// Journals (durably) the pins an update of a token is about to take, keeping the release
    /// list of earlier updates that has not been worked off yet.
    pub fn journal_pending(&self, token_id: u64, pending: &[String]) -> Result<()> {
        let tx = self.db.begin_write()?;
        {
            let mut t = tx.open_table(JOURNAL)?;
            let mut j: Journal = t
                .get(token_id)?
                .map(|v| dec(v.value()))
                .transpose()?
                .unwrap_or_default();
            j.pending = pending.to_vec();
            t.insert(token_id, &enc(&j)?[..])?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Replaces the journal of a token. A non-durable write is persisted by the next durable
    /// commit (used to clear a journal: losing that in a crash only repeats idempotent work).
    pub fn put_journal(&self, token_id: u64, j: &Journal, durable: bool) -> Result<()> {
        let mut tx = self.db.begin_write()?;
        if !durable {
            tx.set_durability(redb::Durability::None)
                .map_err(|e| Error::Db(e.to_string()))?;
        }
        {
            let mut t = tx.open_table(JOURNAL)?;
            if j.pending.is_empty() && j.release.is_empty() {
                t.remove(token_id)?;
            } else {
                t.insert(token_id, &enc(j)?[..])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Records (durably) that upload `id` may pin `pin`.
    pub fn put_upload(&self, id: u64, pin: &UploadPin) -> Result<()> {
        let tx = self.db.begin_write()?;
        tx.open_table(UPLOADS)?.insert(id, &enc(pin)?[..])?;
        tx.commit()?;
        Ok(())
    }

    /// Forgets upload `id` (its pin was given back). Not durable: losing it in a crash only
    /// repeats an idempotent unpin at recovery.
    pub fn remove_upload(&self, id: u64) -> Result<()> {
        let mut tx = self.db.begin_write()?;
        tx.set_durability(redb::Durability::None)
            .map_err(|e| Error::Db(e.to_string()))?;
        tx.open_table(UPLOADS)?.remove(id)?;
        tx.commit()?;
        Ok(())
    }

    /// Uploads whose pins are neither committed nor given back.
    pub fn uploads(&self) -> Result<Vec<(u64, UploadPin)>> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(UPLOADS)?;
        let mut out = Vec::new();
        for row in t.iter()? {
            let (k, v) = row?;
            out.push((k.value(), dec(v.value())?));
        }
        Ok(out)
    }

    /// Every CID the committed state references: files, index pages, index roots and records
    /// of all tokens.
    pub fn referenced_cids(&self) -> Result<std::collections::HashSet<String>> {
        let tx = self.db.begin_read()?;
        let mut out = std::collections::HashSet::new();
        for row in tx.open_table(CID_REFS)?.iter()? {
            out.insert(row?.0.value().to_string());
        }
        for row in tx.open_table(PAGES)?.iter()? {
            out.insert(row?.1.value().to_string());
        }
        for row in tx.open_table(TOKENS)?.iter()? {
            let s: TokenState = dec(row?.1.value())?;
            out.extend(
                [s.index_root, s.record_cid]
                    .into_iter()
                    .filter(|c| !c.is_empty()),
            );
        }
        Ok(out)
    }

    /// Tokens with a non-empty journal.
    pub fn journaled_tokens(&self) -> Result<Vec<u64>> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(JOURNAL)?;
        let mut out = Vec::new();
        for row in t.iter()? {
            out.push(row?.0.value());
        }
        Ok(out)
    }

    /// Commits one update of a token atomically: file rows added or removed (with their
    /// content and pin reference counts), index pages set or removed, the new token state,
    /// and the journal (pending pins now owned by the state are dropped; `release` lists the
    /// pins the update gave up, merged with what earlier updates released and did not unpin
    /// yet), and the `uploads` rows whose files it adds. Answers the merged release list.
    pub fn commit_update(&self, token_id: u64, u: &Update) -> Result<Vec<String>> {
        let tx = self.db.begin_write()?;
        let release;
        {
            let mut files = tx.open_table(FILES)?;
            let mut content = tx.open_table(CONTENT)?;
            let mut refs = tx.open_table(CID_REFS)?;
            // Removals first: a replacement removes and adds the same file id.
            for f in &u.remove_files {
                files.remove((token_id, f.id))?;
                let n = content
                    .get((token_id, f.cid.as_str()))?
                    .map_or(0, |v| v.value());
                if n <= 1 {
                    content.remove((token_id, f.cid.as_str()))?;
                } else {
                    content.insert((token_id, f.cid.as_str()), n - 1)?;
                }
                let n = refs.get(f.cid.as_str())?.map_or(0, |v| v.value());
                if n <= 1 {
                    refs.remove(f.cid.as_str())?;
                } else {
                    refs.insert(f.cid.as_str(), n - 1)?;
                }
            }
            for f in &u.add_files {
                files.insert((token_id, f.id), &enc(f)?[..])?;
                let n = content
                    .get((token_id, f.cid.as_str()))?
                    .map_or(0, |v| v.value());
                content.insert((token_id, f.cid.as_str()), n + 1)?;
                let n = refs.get(f.cid.as_str())?.map_or(0, |v| v.value());
                refs.insert(f.cid.as_str(), n + 1)?;
            }
            let mut pages = tx.open_table(PAGES)?;
            let mut page_cids = tx.open_table(PAGE_CIDS)?;
            for (level, page, cid) in &u.pages {
                let old = match cid {
                    Some(cid) => pages.insert((token_id, *level, *page), cid.as_str())?,
                    None => pages.remove((token_id, *level, *page))?,
                }
                .map(|v| v.value().to_string());
                // Pages name their token and position: a CID is at most one page of a token.
                if let Some(old) = old {
                    page_cids.remove((token_id, old.as_str()))?;
                }
                if let Some(cid) = cid {
                    page_cids.insert((token_id, cid.as_str()), ())?;
                }
            }
            tx.open_table(TOKENS)?
                .insert(token_id, &enc(&u.state)?[..])?;
            let mut uploads = tx.open_table(UPLOADS)?;
            for id in &u.uploads {
                uploads.remove(id)?;
            }
            let mut journal = tx.open_table(JOURNAL)?;
            let mut merged: Vec<String> = journal
                .get(token_id)?
                .map(|v| dec::<Journal>(v.value()))
                .transpose()?
                .map(|j| j.release)
                .unwrap_or_default();
            for cid in &u.release {
                if !merged.contains(cid) {
                    merged.push(cid.clone());
                }
            }
            let j = Journal {
                pending: Vec::new(),
                release: merged,
            };
            if j.release.is_empty() {
                journal.remove(token_id)?;
            } else {
                journal.insert(token_id, &enc(&j)?[..])?;
            }
            release = j.release;
        }
        tx.commit()?;
        Ok(release)
    }
}

/// One committed change of a token (see [`Db::commit_update`]).
#[derive(Debug, Default)]
pub struct Update {
    /// Files added.
    pub add_files: Vec<FileEntry>,
    /// Files removed.
    pub remove_files: Vec<FileEntry>,
    /// Index pages `(level, page, cid)`; `None` removes the page.
    pub pages: Vec<(u8, u64, Option<String>)>,
    /// The token's new state.
    pub state: TokenState,
    /// Pins given up by the update.
    pub release: Vec<String>,
    /// Uploads (rows of `uploads`) whose pins the added files now own.
    pub uploads: Vec<u64>,
}

impl Default for TokenState {
    fn default() -> Self {
        Self {
            key_name: String::new(),
            ipns_id: String::new(),
            used: 0,
            file_count: 0,
            seq: 0,
            next_file_id: 1,
            index_root: String::new(),
            quota: 0,
            record_cid: String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: u64, cid: &str, size: u64) -> FileEntry {
        FileEntry {
            id,
            name: format!("f{id}"),
            cid: cid.into(),
            size,
            sha256: None,
            created_at: 1,
            redundancy: None,
        }
    }

    #[test]
    fn sessions_are_pruned_through_the_expiry_index() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("s.redb")).unwrap();
        let a = Address::repeat_byte(1);
        for i in 0..100u8 {
            db.put_session(&[i; 32], a, 10 + u64::from(i), 0).unwrap();
        }
        assert_eq!(db.session(&[5; 32], 14).unwrap(), Some(a));
        assert_eq!(db.session(&[5; 32], 15).unwrap(), None, "expired");
        // A login at time 60 removes the sessions expired by then (ids 0..=50), in one batch
        // of at most PRUNE_BATCH, found by the index.
        db.put_session(&[200; 32], a, 1000, 60).unwrap();
        assert_eq!(db.session_count().unwrap(), 100 - 51 + 1);
        assert_eq!(db.session(&[51; 32], 60).unwrap(), Some(a));
        // Logout removes the index entry with the session.
        assert!(db.delete_session(&[51; 32]).unwrap());
        assert!(!db.delete_session(&[51; 32]).unwrap());
        db.put_session(&[201; 32], a, 1000, 10_000).unwrap();
        assert_eq!(
            db.session_count().unwrap(),
            1,
            "only the new session is left"
        );
        let tx = db.db.begin_read().unwrap();
        assert_eq!(tx.open_table(SESSION_EXPIRY).unwrap().len().unwrap(), 1);
    }

    #[test]
    fn committed_pages_are_found_through_the_cid_index() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("p.redb")).unwrap();
        let pages = |rows: &[(u64, Option<&str>)]| Update {
            pages: rows
                .iter()
                .map(|(p, c)| (0, *p, c.map(str::to_string)))
                .collect(),
            ..Update::default()
        };
        db.commit_update(1, &pages(&[(0, Some("Qp0")), (1, Some("Qp1"))]))
            .unwrap();
        assert!(db.is_committed_object(1, "Qp1").unwrap());
        assert!(
            !db.is_committed_object(2, "Qp1").unwrap(),
            "another token's"
        );
        // Replaced and removed pages are no longer committed.
        db.commit_update(1, &pages(&[(0, Some("Qp0b")), (1, None)]))
            .unwrap();
        assert!(!db.is_committed_object(1, "Qp0").unwrap());
        assert!(!db.is_committed_object(1, "Qp1").unwrap());
        assert!(db.is_committed_object(1, "Qp0b").unwrap());
        assert_eq!(
            db.unreferenced(1, &["Qp0".into(), "Qp0b".into(), "Qp0".into()])
                .unwrap(),
            vec!["Qp0".to_string()]
        );
        // The lookup is one point read: the index holds one row per live page, whatever the
        // number of pages the token had.
        let tx = db.db.begin_read().unwrap();
        assert_eq!(tx.open_table(PAGE_CIDS).unwrap().len().unwrap(), 1);
        drop(tx);
        // A database from before the index gets it built at open.
        {
            let tx = db.db.begin_write().unwrap();
            tx.open_table(PAGE_CIDS)
                .unwrap()
                .retain(|_, _| false)
                .unwrap();
            tx.commit().unwrap();
        }
        drop(db);
        let db = Db::open(&dir.path().join("p.redb")).unwrap();
        assert!(db.is_committed_object(1, "Qp0b").unwrap());
    }

    #[test]
    fn journal_release_lists_are_merged_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("j.redb")).unwrap();
        let release = |cids: &[&str]| Update {
            release: cids.iter().map(|c| c.to_string()).collect(),
            ..Update::default()
        };
        // An update commits and its unpinning fails: its release list stays journaled.
        assert_eq!(db.commit_update(1, &release(&["Qa"])).unwrap(), vec!["Qa"]);
        // The next update journals its pending pins and commits its own release list: both
        // keep the earlier one.
        db.journal_pending(1, &["Qnew".to_string()]).unwrap();
        assert_eq!(db.journal(1).unwrap().release, vec!["Qa"]);
        assert_eq!(
            db.commit_update(1, &release(&["Qb", "Qa"])).unwrap(),
            vec!["Qa", "Qb"]
        );
        let j = db.journal(1).unwrap();
        assert_eq!(
            (j.pending.len(), j.release),
            (0, vec!["Qa".into(), "Qb".into()])
        );
    }

    #[test]
    fn shared_cids_are_reference_counted_across_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("r.redb")).unwrap();
        let add = |_token: u64, f: FileEntry| Update {
            add_files: vec![f],
            ..Update::default()
        };
        db.commit_update(1, &add(1, entry(1, "Qa", 3))).unwrap();
        db.commit_update(2, &add(2, entry(1, "Qa", 3))).unwrap();
        db.commit_update(2, &add(2, entry(2, "Qa", 3))).unwrap();
        assert_eq!(db.cid_refs("Qa").unwrap(), 3);
        let rm = Update {
            remove_files: vec![entry(1, "Qa", 3)],
            ..Update::default()
        };
        db.commit_update(2, &rm).unwrap();
        assert!(db.has_content(2, "Qa").unwrap());
        assert_eq!(db.cid_refs("Qa").unwrap(), 2);
        let rm = Update {
            remove_files: vec![entry(2, "Qa", 3)],
            ..Update::default()
        };
        db.commit_update(2, &rm).unwrap();
        assert!(!db.has_content(2, "Qa").unwrap());
        assert!(db.has_content(1, "Qa").unwrap());
        assert_eq!(db.cid_refs("Qa").unwrap(), 1);
        let (page, more) = db.files_after(1, 0, 10).unwrap();
        assert_eq!((page.len(), more), (1, false));
    }

    #[test]
    fn upload_pins_last_until_committed_or_removed() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("u.redb")).unwrap();
        let pin = |cid: &str| UploadPin {
            token_id: 1,
            cid: Some(cid.into()),
        };
        db.put_upload(7, &pin("Qa")).unwrap();
        db.put_upload(9, &pin("Qb")).unwrap();
        assert_eq!(db.uploads().unwrap(), vec![(7, pin("Qa")), (9, pin("Qb"))]);
        db.commit_update(
            1,
            &Update {
                add_files: vec![entry(1, "Qa", 3)],
                uploads: vec![7],
                ..Update::default()
            },
        )
        .unwrap();
        assert_eq!(db.uploads().unwrap(), vec![(9, pin("Qb"))]);
        assert!(db.referenced_cids().unwrap().contains("Qa"));
        assert!(!db.referenced_cids().unwrap().contains("Qb"));
        db.remove_upload(9).unwrap();
        assert_eq!(db.uploads().unwrap(), vec![]);
    }
}
