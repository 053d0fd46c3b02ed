//! The home role's state, in `<data_dir>/home.redb`:
//! - `manifests`: `(token, file id)` -> the file's current manifest (after repairs) and the
//!   number of pieces repaired;
//! - `files`: upload id (the orders' `file`) -> `(token, file id)`, so an upload commits once;
//! - `roots`: `deal id || root` -> the pieces (in deal order) under a deal root this node
//!   proposed, written before the transaction that commits the root, so whatever the chain
//!   holds after a crash, the node knows the pieces under it;
//! - `deals`: `(token, provider)` of every deal this node proposed (to watch its periods
//!   after its pieces moved away).

use std::path::Path;

use alloy::primitives::{Address, B256};
use px_core::network::Manifest;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

const MANIFESTS: TableDefinition<'_, (u64, u64), &[u8]> = TableDefinition::new("manifests");
const FILES: TableDefinition<'_, &[u8], (u64, u64)> = TableDefinition::new("files");
const ROOTS: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("roots");
const DEALS: TableDefinition<'_, (u64, &[u8]), ()> = TableDefinition::new("deals");

/// A piece as a deal holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DealPiece {
    /// Its CID (string form).
    pub cid: String,
    /// Its Merkle root.
    pub root: B256,
    /// Its tree's depth.
    pub depth: u8,
    /// Bytes.
    pub size: u64,
}

/// A file's current manifest and its repair count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredManifest {
    /// The manifest.
    pub manifest: Manifest,
    /// Pieces moved by repairs so far.
    pub repaired: u64,
}

/// The home role's database.
#[derive(Debug)]
pub struct Store {
    db: Database,
}

fn root_key(deal: &B256, root: &B256) -> [u8; 64] {
    let mut k = [0u8; 64];
    k[..32].copy_from_slice(deal.as_slice());
    k[32..].copy_from_slice(root.as_slice());
    k
}

impl Store {
    /// Opens (or creates) the database at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let db = Database::create(path)?;
        let tx = db.begin_write()?;
        tx.open_table(MANIFESTS)?;
        tx.open_table(FILES)?;
        tx.open_table(ROOTS)?;
        tx.open_table(DEALS)?;
        tx.commit()?;
        Ok(Self { db })
    }

    /// Records a committed file's manifest (and its upload id).
    pub fn put_manifest(&self, token_id: u64, file_id: u64, m: &StoredManifest) -> Result<()> {
        let tx = self.db.begin_write()?;
        {
            tx.open_table(MANIFESTS)?
                .insert((token_id, file_id), &serde_json::to_vec(m)?[..])?;
            tx.open_table(FILES)?
                .insert(m.manifest.file.as_slice(), (token_id, file_id))?;
        }
        tx.commit()?;
        Ok(())
    }

    /// A file's manifest.
    pub fn manifest(&self, token_id: u64, file_id: u64) -> Result<Option<StoredManifest>> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(MANIFESTS)?;
        t.get((token_id, file_id))?
            .map(|v| serde_json::from_slice(v.value()).map_err(Error::from))
            .transpose()
    }

    /// Forgets a deleted file's manifest (its upload id stays used).
    pub fn remove_manifest(&self, token_id: u64, file_id: u64) -> Result<()> {
        let tx = self.db.begin_write()?;
        tx.open_table(MANIFESTS)?.remove((token_id, file_id))?;
        tx.commit()?;
        Ok(())
    }

    /// Every manifest of a token, in file id order.
    pub fn manifests(&self, token_id: u64) -> Result<Vec<(u64, StoredManifest)>> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(MANIFESTS)?;
        let mut out = Vec::new();
        for row in t.range((token_id, 0)..=(token_id, u64::MAX))? {
            let (k, v) = row?;
            out.push((k.value().1, serde_json::from_slice(v.value())?));
        }
        Ok(out)
    }

    /// Tokens with at least one manifest.
    pub fn tokens(&self) -> Result<Vec<u64>> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(MANIFESTS)?;
        let mut out: Vec<u64> = Vec::new();
        for row in t.iter()? {
            let token = row?.0.value().0;
            if out.last() != Some(&token) {
                out.push(token);
            }
        }
        Ok(out)
    }

    /// The `(token, file id)` an upload id was committed as.
    pub fn file_of(&self, upload: &B256) -> Result<Option<(u64, u64)>> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(FILES)?;
        Ok(t.get(upload.as_slice())?.map(|v| v.value()))
    }

    /// Records the pieces under a root of the deal of `(token, provider)` (before the
    /// transaction committing it).
    pub fn put_root(
        &self,
        token_id: u64,
        provider: &Address,
        deal: &B256,
        root: &B256,
        pieces: &[DealPiece],
    ) -> Result<()> {
        let tx = self.db.begin_write()?;
        {
            tx.open_table(ROOTS)?
                .insert(&root_key(deal, root)[..], &serde_json::to_vec(pieces)?[..])?;
            tx.open_table(DEALS)?
                .insert((token_id, provider.as_slice()), ())?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Providers of every deal of a token this node proposed.
    pub fn deal_providers(&self, token_id: u64) -> Result<Vec<Address>> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(DEALS)?;
        let mut out = Vec::new();
        for row in t.range((token_id, &[][..])..=(token_id, &[0xff; 20][..]))? {
            out.push(Address::from_slice(row?.0.value().1));
        }
        Ok(out)
    }

    /// The pieces under a deal root this node proposed.
    pub fn root(&self, deal: &B256, root: &B256) -> Result<Option<Vec<DealPiece>>> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(ROOTS)?;
        t.get(&root_key(deal, root)[..])?
            .map(|v| serde_json::from_slice(v.value()).map_err(Error::from))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_roots_and_upload_ids_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("home.redb");
        let deal = B256::repeat_byte(1);
        let root = B256::repeat_byte(2);
        let piece = DealPiece {
            cid: "bafk".into(),
            root: B256::repeat_byte(3),
            depth: 5,
            size: 1024,
        };
        {
            let s = Store::open(&path).unwrap();
            s.put_root(
                7,
                &Address::repeat_byte(9),
                &deal,
                &root,
                std::slice::from_ref(&piece),
            )
            .unwrap();
        }
        let s = Store::open(&path).unwrap();
        assert_eq!(s.root(&deal, &root).unwrap(), Some(vec![piece]));
        assert_eq!(s.root(&deal, &B256::ZERO).unwrap(), None);
        assert_eq!(s.deal_providers(7).unwrap(), vec![Address::repeat_byte(9)]);
        assert!(s.deal_providers(8).unwrap().is_empty());
        assert!(s.tokens().unwrap().is_empty());
        assert_eq!(s.file_of(&B256::ZERO).unwrap(), None);
    }
}
