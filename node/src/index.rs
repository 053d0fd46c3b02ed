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

use alloy::primitives::Address;
use px_sdk::api::FileEntry;
use serde::{Deserialize, Serialize};

use crate::db::Db;
use crate::error::Result;
use crate::ipfs::Ipfs;

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
    /// New objects (added unpinned; the caller pins them).
    pub new: Vec<String>,
    /// Objects the change replaces (to unpin once committed).
    pub old: Vec<String>,
    /// The new root CID.
    pub root: String,
}

/// What the change does to the file list.
#[derive(Debug, Clone, Copy)]
pub enum Edit<'a> {
    /// Adds this file.
    Add(&'a FileEntry),
    /// Removes the file with this id.
    Remove(u64),
}

fn replace(
    change: &mut IndexChange,
    level: u8,
    page: u64,
    old: Option<String>,
    new: Option<String>,
) {
    if old == new {
        return;
    }
    if let Some(o) = old {
        change.old.push(o);
    }
    if let Some(n) = &new {
        change.new.push(n.clone());
    }
    change.pages.push((level, page, new));
}

/// Rewrites the leaf, inner page and root touched by `edit`, adding the new pages to IPFS.
/// `db` holds the committed state, without the edit applied.
pub async fn apply(
    ipfs: &Ipfs,
    db: &Db,
    chain_id: u64,
    contract: Address,
    token_id: u64,
    edit: Edit<'_>,
) -> Result<IndexChange> {
    let fid = match edit {
        Edit::Add(f) => f.id,
        Edit::Remove(id) => id,
    };
    let mut change = IndexChange::default();

    let leaf_no = fid / LEAF_FANOUT;
    let mut files = db.files_in(token_id, leaf_no * LEAF_FANOUT, (leaf_no + 1) * LEAF_FANOUT)?;
    match edit {
        Edit::Add(f) => {
            files.retain(|x| x.id != f.id);
            files.push(f.clone());
            files.sort_by_key(|x| x.id);
        }
        Edit::Remove(id) => files.retain(|x| x.id != id),
    }
    let old_leaf = db.page(token_id, 0, leaf_no)?;
    let new_leaf = if files.is_empty() {
        None
    } else {
        let page = LeafPage {
            token: token_id,
            level: 0,
            page: leaf_no,
            files,
        };
        Some(ipfs.add_bytes_unpinned(serde_json::to_vec(&page)?).await?)
    };
    replace(&mut change, 0, leaf_no, old_leaf, new_leaf.clone());

    let inner_no = leaf_no / INNER_FANOUT;
    let mut leaves = db.pages_in(
        token_id,
        0,
        inner_no * INNER_FANOUT,
        (inner_no + 1) * INNER_FANOUT,
    )?;
    leaves.retain(|(p, _)| *p != leaf_no);
    if let Some(cid) = new_leaf {
        leaves.push((leaf_no, cid));
        leaves.sort_by_key(|(p, _)| *p);
    }
    let old_inner = db.page(token_id, 1, inner_no)?;
    let new_inner = if leaves.is_empty() {
        None
    } else {
        let page = BranchPage {
            version: None,
            chain_id: None,
            contract: None,
            token: token_id,
            level: 1,
            page: inner_no,
            children: leaves
                .into_iter()
                .map(|(page, cid)| Child { page, cid })
                .collect(),
        };
        Some(ipfs.add_bytes_unpinned(serde_json::to_vec(&page)?).await?)
    };
    replace(&mut change, 1, inner_no, old_inner, new_inner.clone());

    let mut inners = db.pages_in(token_id, 1, 0, u64::MAX)?;
    inners.retain(|(p, _)| *p != inner_no);
    if let Some(cid) = new_inner {
        inners.push((inner_no, cid));
        inners.sort_by_key(|(p, _)| *p);
    }
    let root = BranchPage {
        version: Some(1),
        chain_id: Some(chain_id),
        contract: Some(contract),
        token: token_id,
        level: 2,
        page: 0,
        children: inners
            .into_iter()
            .map(|(page, cid)| Child { page, cid })
            .collect(),
    };
    let root_cid = ipfs.add_bytes_unpinned(serde_json::to_vec(&root)?).await?;
    let old_root = db.page(token_id, 2, 0)?;
    replace(&mut change, 2, 0, old_root, Some(root_cid.clone()));
    change.root = root_cid;
    Ok(change)
}
