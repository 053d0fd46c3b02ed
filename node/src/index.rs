//! The per-token file index as IPFS objects: a fixed three-level tree of small JSON objects,
//! so an update rewrites at most one leaf, one inner page and the root, whatever the number
//! of files.
//!
//! - Leaf page `n` holds the files with ids in `[n * 256, (n + 1) * 256)`:
//!   `{"token":1,"level":0,"page":n,"files":[FileEntry...]}`.
//! - Inner page `m` lists the CIDs of leaves `[m * 256, (m + 1) * 256)`:
//!   `{"token":1,"level":1,"page":m,"children":[{"page":n,"cid":"Qm..."}...]}`.
//! - The root lists the inner pages: `{"version":1,"chainId":..,"contract":..,"token":1,
//!   "level":2,"children":[{"page":m,"cid":"Qm..."}...]}` (one entry per 65,536 file ids).
//!
//! Empty pages are dropped. Every page names its token and position, so two pages never share
//! a CID and a page's pin belongs to exactly one place in one token's index.

use std::collections::BTreeMap;

use alloy::primitives::Address;
use px_core::api::FileEntry;
use serde::{Deserialize, Serialize};

use crate::db::Db;
use crate::error::Result;

/// Files per leaf page.
pub const LEAF_FANOUT: u64 = 256;
/// Leaves per inner page.
pub const INNER_FANOUT: u64 = 256;

/// A link from a page to a child page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Child {
    /// Child page number.
    pub page: u64,
    /// Child CID.
    pub cid: String,
}

/// A leaf page.
#[derive(Debug, Serialize, Deserialize)]
pub struct LeafPage {
    /// Token id.
    pub token: u64,
    /// Always 0.
    pub level: u8,
    /// Page number.
    pub page: u64,
    /// Files in id order.
    pub files: Vec<FileEntry>,
}

/// An inner page or the root.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BranchPage {
    /// Index format version (root only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    /// Chain id (root only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain_id: Option<u64>,
    /// StorageNFT address (root only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract: Option<Address>,
    /// Token id.
    pub token: u64,
    /// 1 for inner pages, 2 for the root.
    pub level: u8,
    /// Page number (0 for the root).
    pub page: u64,
    /// Children in page order.
    pub children: Vec<Child>,
}

/// The change one file addition or removal makes to a token's index.
#[derive(Debug, Default)]
pub struct IndexChange {
    /// `(level, page, cid)` rows to write (`None` removes); level 2 is the root.
    pub pages: Vec<(u8, u64, Option<String>)>,
    /// New objects `(cid, bytes)`, not yet added: the caller journals the CIDs, then adds
    /// them pinned.
    pub new: Vec<(String, Vec<u8>)>,
    /// Objects the change replaces (to unpin once committed).
    pub old: Vec<String>,
    /// The new root CID.
    pub root: String,
}

/// What the change does to the file list.
#[derive(Debug, Clone, Copy)]
pub enum Edit<'a> {
    /// Adds these files (ids above every existing one).
    Add(&'a [FileEntry]),
    /// Removes the file with this id.
    Remove(u64),
    /// Replaces the entry of the file with this one's id (a network file's repaired
    /// manifest).
    Replace(&'a FileEntry),
}

/// The CID `add` gives `bytes` with Kubo's defaults (CIDv0, 256 KiB chunks), computed locally
/// so it can be journaled before the object is added and pinned.
pub fn object_cid(bytes: &[u8]) -> Result<String> {
    let opts = px_core::importer::ImportOptions::default();
    let imported = px_core::importer::cid_of(bytes, &opts)
        .map_err(|e| crate::Error::Internal(format!("cannot compute CID: {e}")))?;
    Ok(imported.cid.to_string())
}

fn replace(
    change: &mut IndexChange,
    level: u8,
    page: u64,
    old: Option<String>,
    new: Option<Vec<u8>>,
) -> Result<Option<String>> {
    let cid = new.as_deref().map(object_cid).transpose()?;
    if old == cid {
        return Ok(cid);
    }
    if let Some(o) = old {
        change.old.push(o);
    }
    if let (Some(c), Some(bytes)) = (&cid, new) {
        change.new.push((c.clone(), bytes));
    }
    change.pages.push((level, page, cid.clone()));
    Ok(cid)
}

/// Rewrites the leaves, inner pages and root touched by `edit` (objects are returned, not
/// added). `db` holds the committed state, without the edit applied.
pub fn apply(
    db: &Db,
    chain_id: u64,
    contract: Address,
    token_id: u64,
    edit: Edit<'_>,
) -> Result<IndexChange> {
    let mut change = IndexChange::default();
    // Leaves touched, with their new file lists.
    let mut leaves: BTreeMap<u64, Vec<FileEntry>> = BTreeMap::new();
    let replaced;
    let edit = match edit {
        Edit::Replace(f) => {
            replaced = [f.clone()];
            Edit::Add(&replaced)
        }
        e => e,
    };
    match edit {
        Edit::Replace(_) => unreachable!("turned into an addition above"),
        Edit::Add(files) => {
            for f in files {
                let leaf_no = f.id / LEAF_FANOUT;
                let list = match leaves.entry(leaf_no) {
                    std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                    std::collections::btree_map::Entry::Vacant(e) => {
                        let from = leaf_no * LEAF_FANOUT;
                        e.insert(db.files_in(token_id, from, from + LEAF_FANOUT)?)
                    }
                };
                list.retain(|x| x.id != f.id);
                list.push(f.clone());
            }
        }
        Edit::Remove(id) => {
            let leaf_no = id / LEAF_FANOUT;
            let from = leaf_no * LEAF_FANOUT;
            let mut list = db.files_in(token_id, from, from + LEAF_FANOUT)?;
            list.retain(|x| x.id != id);
            leaves.insert(leaf_no, list);
        }
    }
    // New leaf CIDs, grouped by inner page.
    let mut inners: BTreeMap<u64, Vec<(u64, Option<String>)>> = BTreeMap::new();
    for (leaf_no, mut files) in leaves {
        files.sort_by_key(|x| x.id);
        let old = db.page(token_id, 0, leaf_no)?;
        let bytes = if files.is_empty() {
            None
        } else {
            Some(serde_json::to_vec(&LeafPage {
                token: token_id,
                level: 0,
                page: leaf_no,
                files,
            })?)
        };
        let cid = replace(&mut change, 0, leaf_no, old, bytes)?;
        inners
            .entry(leaf_no / INNER_FANOUT)
            .or_default()
            .push((leaf_no, cid));
    }
    let mut root_edits: Vec<(u64, Option<String>)> = Vec::new();
    for (inner_no, edits) in inners {
        let from = inner_no * INNER_FANOUT;
        let mut children: BTreeMap<u64, String> = db
            .pages_in(token_id, 0, from, from + INNER_FANOUT)?
            .into_iter()
            .collect();
        for (leaf_no, cid) in edits {
            match cid {
                Some(c) => children.insert(leaf_no, c),
                None => children.remove(&leaf_no),
            };
        }
        let old = db.page(token_id, 1, inner_no)?;
        let bytes = if children.is_empty() {
            None
        } else {
            let page = BranchPage {
                version: None,
                chain_id: None,
                contract: None,
                token: token_id,
                level: 1,
                page: inner_no,
                children: children
                    .into_iter()
                    .map(|(page, cid)| Child { page, cid })
                    .collect(),
            };
            Some(serde_json::to_vec(&page)?)
        };
        let cid = replace(&mut change, 1, inner_no, old, bytes)?;
        root_edits.push((inner_no, cid));
    }
    let mut children: BTreeMap<u64, String> =
        db.pages_in(token_id, 1, 0, u64::MAX)?.into_iter().collect();
    for (inner_no, cid) in root_edits {
        match cid {
            Some(c) => children.insert(inner_no, c),
            None => children.remove(&inner_no),
        };
    }
    let root = BranchPage {
        version: Some(1),
        chain_id: Some(chain_id),
        contract: Some(contract),
        token: token_id,
        level: 2,
        page: 0,
        children: children
            .into_iter()
            .map(|(page, cid)| Child { page, cid })
            .collect(),
    };
    let old_root = db.page(token_id, 2, 0)?;
    let root_cid = replace(
        &mut change,
        2,
        0,
        old_root,
        Some(serde_json::to_vec(&root)?),
    )?;
    change.root = root_cid.expect("the root always exists");
    Ok(change)
}
