//! Moving a token to this node (`StorageNFT.rebindKey`, issue 14 finding 5).
//!
//! The holder asks this node (B) to take a token over from the node that serves it now (A):
//! 1. B reads what A last published for the token: the usage record under the token's current
//!    IPNS name (if it resolves and is not older than the last sync), else the record of the
//!    token's last `Synced` event. The record must be bound to this chain, contract and token
//!    and within the size limit.
//! 2. B reads the file index the record names (root, inner pages, leaves: [`crate::index`]),
//!    checks that it adds up to the record's usage and file count, creates a new IPNS key,
//!    signs `keyRebindingDigest(tokenId, name, deadline)` with its registrar key, pins the files
//!    and its own copy of the index, and commits the token with the on-chain sequence number
//!    and no record yet. Any failure after the key exists removes the key and the pins it took.
//! 3. The holder submits `rebindKey`. The first refresh or upload after that (B checks
//!    `tokenInfo(tokenId).ipnsKey` on every update) publishes a usage record under B's key
//!    with sequence = the on-chain one + 1 and the taken-over index.
//!
//! Every update checks that the chain still binds the node's key to the token: the old node
//! refuses uploads, deletes and refreshes of a token that moved away
//! ([`Error::KeyMoved`]) and stops republishing its record. Unpinning the old node's copy
//! after a grace period is future work.

use std::collections::HashSet;

use alloy::primitives::{Address, Bytes};
use px_core::api::{FileEntry, KeyRebinding};
use px_core::contracts::ipns_name_bytes;
use px_core::ipns::IpnsName;
use px_core::record::{MAX_RECORD_BYTES, UsageRecord};

use super::{Node, random_hex, unix_now};
use crate::chain::TokenFacts;
use crate::db::{KeyRow, TokenState, Update};
use crate::error::{Error, Result};
use crate::index::{self, BranchPage, Edit, INNER_FANOUT, LEAF_FANOUT, LeafPage};
use crate::ipfs::NewKey;

/// Largest index page read while taking a token over (a full leaf of long names is ~300 KiB).
const MAX_PAGE_BYTES: usize = 2 * 1024 * 1024;

fn refused(token_id: u64, reason: impl Into<String>) -> Error {
    Error::TakeOver {
        token_id,
        reason: reason.into(),
    }
}

impl Node {
    /// Takes `token_id` over from the node that serves it (see the module docs): imports and
    /// pins its files under a new key and answers the signed rebinding the holder submits with
    /// `rebindKey`. Owner only.
    pub async fn rebind(&self, token_id: u64, caller: Address) -> Result<KeyRebinding> {
        self.authorize(token_id, caller).await?;
        if self.chain.registrar().is_none() {
            return Err(Error::NoRegistrar);
        }
        let lock = self.token_lock(token_id);
        let _guard = lock.lock().await;
        let facts = self.chain.token_facts(token_id).await?;
        if facts.ipns_key.is_zero() {
            return Err(refused(
                token_id,
                "it has no IPNS key yet; bind one with POST /v1/tokens/{id}/key instead",
            ));
        }
        if self.db.key(&facts.ipns_key.0)?.is_some() {
            return Err(refused(token_id, "this node already serves it"));
        }
        if self.db.token(token_id)?.is_some() {
            return Err(refused(
                token_id,
                "this node served it before; moving a token back to a node that served it is \
                 not supported",
            ));
        }
        let record = self.previous_record(token_id, &facts).await?;
        let files = match &record {
            Some(r) => self.read_index(token_id, r).await?,
            None => Vec::new(),
        };
        let k = self
            .ipfs
            .key_gen(&format!("px-token-{token_id}-{}", random_hex(4)))
            .await?;
        match self
            .take_over(token_id, &facts, record.as_ref(), files, &k)
            .await
        {
            Ok(r) => {
                tracing::info!(target: "node::keys", token_id, ipns = %k.id, files = r.file_count, "token taken over; waiting for rebindKey");
                Ok(r)
            }
            Err(e) => {
                // No orphan key: nothing will ever bind it.
                if let Err(rm) = self.ipfs.key_rm(&k.name).await {
                    tracing::warn!(target: "node::keys", token_id, key = %k.name, error = %rm, "cannot remove the key of a failed takeover");
                }
                Err(e)
            }
        }
    }

    /// The usage record to take over: the current key's published record if it resolves and
    /// is not older than the last sync, else the last synced one. `None` for a token that was
    /// never synced and has nothing published.
    async fn previous_record(
        &self,
        token_id: u64,
        facts: &TokenFacts,
    ) -> Result<Option<UsageRecord>> {
        let published = async {
            let id = IpnsName::from_ed25519_key(&facts.ipns_key.0)
                .map_err(|e| Error::Internal(e.to_string()))?
                .to_string();
            let path = self.ipfs.resolve(&id).await?;
            let cid = path
                .strip_prefix("/ipfs/")
                .ok_or_else(|| Error::Ipfs(format!("name resolves to {path}, not /ipfs/")))?;
            self.fetch_record(token_id, cid).await
        }
        .await;
        match published {
            Ok(r) if r.seq >= facts.seq => return Ok(Some(r)),
            Ok(r) => {
                tracing::info!(target: "node::keys", token_id, seq = r.seq, synced = facts.seq, "published record older than the last sync; using the synced one");
            }
            Err(e) => {
                tracing::info!(target: "node::keys", token_id, error = %e, "no published record of the current key; using the last synced one");
            }
        }
        match self.chain.last_synced(token_id).await? {
            Some((seq, cid)) => {
                let r = self.fetch_record(token_id, &cid).await?;
                if r.seq != seq {
                    return Err(refused(
                        token_id,
                        format!(
                            "record {cid} has sequence {}, the chain synced {seq}",
                            r.seq
                        ),
                    ));
                }
                Ok(Some(r))
            }
            None if facts.seq == 0 && facts.used == 0 => Ok(None),
            None => Err(refused(
                token_id,
                "no usage record of it can be found (neither published nor synced)",
            )),
        }
    }

    /// Fetches and validates a usage record: size, schema, binding to this deployment and token.
    async fn fetch_record(&self, token_id: u64, cid: &str) -> Result<UsageRecord> {
        let bytes = self.ipfs.cat_all(cid, MAX_RECORD_BYTES).await?;
        let record = UsageRecord::parse(&bytes, MAX_RECORD_BYTES)
            .map_err(|e| refused(token_id, format!("record {cid}: {e}")))?;
        record
            .check_binding(self.chain.chain_id(), self.chain.contract(), token_id)
            .map_err(|e| refused(token_id, format!("record {cid}: {e}")))?;
        Ok(record)
    }

    async fn fetch_page<T: serde::de::DeserializeOwned>(
        &self,
        token_id: u64,
        cid: &str,
    ) -> Result<T> {
        let bytes = self.ipfs.cat_all(cid, MAX_PAGE_BYTES).await?;
        serde_json::from_slice(&bytes)
            .map_err(|e| refused(token_id, format!("index page {cid}: {e}")))
    }

    /// Reads the file index `record` names, checking every page's place and that the files add
    /// up to the record's usage and count.
    async fn read_index(&self, token_id: u64, record: &UsageRecord) -> Result<Vec<FileEntry>> {
        let bad = |what: String| refused(token_id, format!("index {}: {what}", record.index));
        let mut files: Vec<FileEntry> = Vec::new();
        if !record.index.is_empty() {
            let root: BranchPage = self.fetch_page(token_id, &record.index).await?;
            if root.level != 2
                || root.token != token_id
                || root.chain_id != Some(self.chain.chain_id())
                || root.contract != Some(self.chain.contract())
            {
                return Err(bad("the root is not this token's".into()));
            }
            for inner_ref in &root.children {
                let inner: BranchPage = self.fetch_page(token_id, &inner_ref.cid).await?;
                if inner.level != 1 || inner.token != token_id || inner.page != inner_ref.page {
                    return Err(bad(format!("inner page {} misplaced", inner_ref.page)));
                }
                for leaf_ref in &inner.children {
                    if leaf_ref.page / INNER_FANOUT != inner.page {
                        return Err(bad(format!("leaf {} misplaced", leaf_ref.page)));
                    }
                    let leaf: LeafPage = self.fetch_page(token_id, &leaf_ref.cid).await?;
                    if leaf.level != 0 || leaf.token != token_id || leaf.page != leaf_ref.page {
                        return Err(bad(format!("leaf {} misplaced", leaf_ref.page)));
                    }
                    for f in leaf.files {
                        if f.id / LEAF_FANOUT != leaf.page
                            || files.last().is_some_and(|p| p.id >= f.id)
                        {
                            return Err(bad(format!("file {} misplaced", f.id)));
                        }
                        if f.cid.parse::<cid::Cid>().is_err() {
                            return Err(bad(format!("file {} has a bad CID", f.id)));
                        }
                        files.push(f);
                    }
                }
            }
        }
        let used: u64 = files.iter().map(|f| f.size).sum();
        if files.len() as u64 != record.file_count || used != record.used {
            return Err(bad(format!(
                "{} files of {used} bytes, the record says {} files of {} bytes",
                files.len(),
                record.file_count,
                record.used
            )));
        }
        Ok(files)
    }

    /// Signs the rebinding for key `k`, pins the files and this node's copy of the index and
    /// commits the token (no record until the chain binds the key).
    async fn take_over(
        &self,
        token_id: u64,
        facts: &TokenFacts,
        record: Option<&UsageRecord>,
        files: Vec<FileEntry>,
        k: &NewKey,
    ) -> Result<KeyRebinding> {
        let name = ipns_name_bytes(&k.pubkey);
        let now = self.chain.now().await?.max(unix_now());
        let deadline = now + self.settings.assignment_ttl.as_secs();
        let digest = self
            .chain
            .rebinding_digest(token_id, &name, deadline)
            .await?;
        let signature = self.chain.sign_digest(&digest)?;

        let (chain_id, contract) = (self.chain.chain_id(), self.chain.contract());
        let change = if files.is_empty() {
            index::IndexChange::default()
        } else {
            index::apply(&self.db, chain_id, contract, token_id, Edit::Add(&files))?
        };
        let mut cids: Vec<String> = files.iter().map(|f| f.cid.clone()).collect();
        cids.sort();
        cids.dedup();
        // What the backend pins already (a backend shared with the old node) is not ours to
        // unpin if this fails.
        let before: HashSet<String> = self.ipfs.pins().await?.into_iter().collect();
        let pins: Vec<String> = cids
            .iter()
            .cloned()
            .chain(change.new.iter().map(|(c, _)| c.clone()))
            .filter(|c| !before.contains(c))
            .collect();
        let used: u64 = files.iter().map(|f| f.size).sum();
        let state = TokenState {
            key_name: k.name.clone(),
            ipns_id: k.id.clone(),
            used,
            file_count: files.len() as u64,
            seq: facts.seq,
            next_file_id: files.last().map_or(1, |f| f.id + 1),
            index_root: change.root.clone(),
            quota: facts.quota,
            record_cid: String::new(),
        };
        let row = KeyRow {
            key_name: k.name.clone(),
            ipns_id: k.id.clone(),
            token_id: Some(token_id),
        };
        let file_count = state.file_count;
        let pending = pins.clone();
        self.write(move |db| db.journal_pending(token_id, &pending))
            .await?;
        self.mark_pinning(&pins).await;
        let pubkey = k.pubkey;
        let result = async {
            self.ipfs.pin_all(&cids).await?;
            self.ipfs.add_objects_pinned(change.new.clone()).await?;
            self.write(move |db| db.put_key(&pubkey, &row)).await?;
            let update = Update {
                add_files: files,
                pages: change.pages.clone(),
                state,
                ..Update::default()
            };
            self.write(move |db| db.commit_update(token_id, &update))
                .await
                .map(drop)
        }
        .await;
        self.unmark_pinning(&pins).await;
        if let Err(e) = result {
            self.rollback(token_id).await;
            return Err(e);
        }
        Ok(KeyRebinding {
            token_id,
            ipns_name: Bytes::copy_from_slice(&name),
            ipns_id: k.id.clone(),
            deadline,
            signature,
            chain_id,
            contract,
            file_count,
            used,
            from_seq: record.map_or(0, |r| r.seq),
        })
    }

    /// Whether the chain binds `state`'s key to the token (`facts` read from the chain now).
    pub(crate) fn key_is_bound(&self, state: &TokenState, facts: &TokenFacts) -> Result<bool> {
        Ok(!facts.ipns_key.is_zero()
            && self
                .db
                .key(&facts.ipns_key.0)?
                .is_some_and(|row| row.key_name == state.key_name))
    }

    /// Refuses an update of a token whose on-chain key is not this node's key for it (it
    /// moved away, or a move here is not confirmed yet); answers the chain's facts.
    pub(crate) async fn check_bound(
        &self,
        token_id: u64,
        state: &TokenState,
    ) -> Result<TokenFacts> {
        let facts = self.chain.token_facts(token_id).await?;
        if self.key_is_bound(state, &facts)? {
            self.moved.lock().expect("lock").remove(&token_id);
            Ok(facts)
        } else {
            if self.moved.lock().expect("lock").insert(token_id) {
                tracing::info!(target: "node::keys", token_id, "the token's on-chain key is not this node's: refusing updates and not republishing");
            }
            Err(Error::KeyMoved(token_id))
        }
    }

    /// Whether a token's record should not be republished: known moved, or (when
    /// `ask_chain`) the chain binds another key. Chain failures count as not moved.
    pub(crate) async fn moved_away(
        &self,
        token_id: u64,
        state: &TokenState,
        ask_chain: bool,
    ) -> bool {
        if !ask_chain {
            return self.moved.lock().expect("lock").contains(&token_id);
        }
        matches!(
            self.check_bound(token_id, state).await,
            Err(Error::KeyMoved(_))
        )
    }
}
