//! The provider role's state in its own redb database (`<data_dir>/provider.redb`), apart
//! from the node's: a node may play both roles, and neither's recovery touches the other's
//! tables.
//!
//! Tables:
//! - `pieces`: piece CID -> [`PieceRow`] (token, root, depth, size, order hash and the
//!   piece's cached tree levels, [`px_core::piece::TopLevels`], 64 bytes per 256 KiB).
//! - `orders`: order hash -> piece CID: every order accepted, so none is accepted twice.
//! - `pending`: piece CID -> Unix time: a piece whose `add` may pin it, written before the
//!   backend can pin and removed by the commit of its row (or after its pin is given back);
//!   also a released piece between the removal of its row and its unpin.
//! - `deal_roots`: deal id ‖ deal root -> [`DealRootRow`]: the piece CIDs in deal order and
//!   what was signed (acceptance or root update), written when the provider co-signs: what
//!   it needs to answer challenges, and what keeps a piece from being released
//!   ([`super::sweep`]).
//! - `proofs`: deal id ‖ generation ‖ period (32 + 2 + 8 bytes, big-endian) ->
//!   [`ProofState`]: a proof signed (its raw transaction kept before broadcast) and what
//!   became of it. A deal id is reused when an ended deal is opened again (the market's
//!   `generation` goes up, periods start over at 0), so the generation is part of the key.
//!   Rows written before it was (deal id ‖ period, 40 bytes) are kept as they are and read
//!   with [`Store::legacy_proof`]; the prover decides which generation such a row belongs to
//!   (see [`super::prover`]) and writes whatever follows under the new key, which shadows
//!   the old row. They are never rewritten or migrated.

use std::path::Path;

use alloy::primitives::{B256, Bytes};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

const PIECES: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("pieces");
const ORDERS: TableDefinition<'_, &[u8], &str> = TableDefinition::new("orders");
const PENDING: TableDefinition<'_, &str, u64> = TableDefinition::new("pending");
const DEAL_ROOTS: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("deal_roots");
const PROOFS: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("proofs");

/// A stored piece.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PieceRow {
    /// The token it is stored for.
    pub token_id: u64,
    /// Its Merkle root.
    pub root: B256,
    /// Its tree's depth.
    pub depth: u8,
    /// Bytes.
    pub size: u64,
    /// The order it was accepted under.
    pub order_hash: B256,
    /// Unix time it was stored.
    pub stored_at: u64,
    /// [`px_core::piece::TopLevels::to_bytes`].
    pub top: Bytes,
}

/// What the provider signed over a deal root: it decides how long the root's pieces are kept
/// while the chain does not (yet) hold the root.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Signed {
    /// A deal acceptance: usable by `openDeal` while the deal's generation is `generation`
    /// and until `deadline` (Unix time).
    Acceptance {
        /// The deal's generation when it was signed (the digest covers it).
        generation: u16,
        /// The acceptance's deadline.
        deadline: u64,
    },
    /// A root update: usable by `updateDealRoot` while the deal's nonce is `nonce`.
    RootUpdate {
        /// The deal's nonce when it was signed (the digest covers it).
        nonce: u32,
    },
}

/// The pieces under a co-signed deal root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DealRootRow {
    /// The piece CIDs in deal order.
    pub pieces: Vec<String>,
    /// What was signed; `None` for rows written before this was recorded (kept for good).
    pub signed: Option<Signed>,
}

impl DealRootRow {
    fn decode(b: &[u8]) -> Result<Self> {
        // Rows of earlier versions hold the bare CID list.
        dec(b).or_else(|_| {
            Ok(Self {
                pieces: dec(b)?,
                signed: None,
            })
        })
    }
}

/// A proof of one deal period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "stage", rename_all = "snake_case")]
pub enum ProofState {
    /// Signed and stored, maybe broadcast: its transaction (rebroadcast after a restart).
    Sent {
        /// Transaction hash.
        hash: B256,
        /// Sender nonce.
        nonce: u64,
        /// The signed transaction (EIP-2718).
        raw: Bytes,
        /// Microseconds it took to build the proofs (reading blocks, building paths).
        build_us: u64,
        /// Hashes of the earlier transactions with the same nonce it replaced (stuck ones,
        /// resent with higher fees); any one of them may be the one mined.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        replaced: Vec<B256>,
    },
    /// Mined and accepted.
    Proven {
        /// Transaction hash.
        hash: B256,
        /// Gas it used.
        gas_used: u64,
        /// Microseconds it took to build the proofs.
        build_us: u64,
    },
    /// The period was settled otherwise (proven by an earlier transaction, or marked missed).
    Settled,
}

fn enc<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(|e| Error::Db(format!("encode: {e}")))
}

fn dec<T: for<'de> Deserialize<'de>>(b: &[u8]) -> Result<T> {
    serde_json::from_slice(b).map_err(|e| Error::Db(format!("corrupt provider row: {e}")))
}

fn deal_key(deal: &B256, tail: &[u8]) -> Vec<u8> {
    [deal.as_slice(), tail].concat()
}

/// A proof row's key: deal id ‖ generation ‖ period.
fn proof_key(deal: &B256, generation: u16, period: u64) -> Vec<u8> {
    [
        deal.as_slice(),
        &generation.to_be_bytes()[..],
        &period.to_be_bytes()[..],
    ]
    .concat()
}

/// The provider database.
#[derive(Debug)]
pub struct Store {
    db: Database,
}

/// The database's file name in the node's data directory.
pub const FILE: &str = "provider.redb";

impl Store {
    /// The CIDs of the pieces committed in the provider database of `data_dir` (none when
    /// the role never ran there): pins the node's start-up recovery on an exclusive backend
    /// must keep, though the node's own state does not reference them. Opens the database
    /// and closes it again.
    pub fn pieces_in(data_dir: &Path) -> Result<std::collections::HashSet<String>> {
        let path = data_dir.join(FILE);
        if !path.exists() {
            return Ok(Default::default());
        }
        Ok(Self::open(&path)?.piece_cids()?.into_iter().collect())
    }

    /// Opens (or creates) it.
    pub fn open(path: &Path) -> Result<Self> {
        let db = Database::create(path)?;
        let tx = db.begin_write()?;
        tx.open_table(PIECES)?;
        tx.open_table(ORDERS)?;
        tx.open_table(PENDING)?;
        tx.open_table(DEAL_ROOTS)?;
        tx.open_table(PROOFS)?;
        tx.commit()?;
        Ok(Self { db })
    }

    /// The piece stored under `cid`.
    pub fn piece(&self, cid: &str) -> Result<Option<PieceRow>> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(PIECES)?;
        t.get(cid)?.map(|v| dec(v.value())).transpose()
    }

    /// Every stored piece's CID and the Unix time it was stored.
    pub fn piece_ages(&self) -> Result<Vec<(String, u64)>> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(PIECES)?;
        let mut out = Vec::new();
        for row in t.iter()? {
            let (k, v) = row?;
            let row: PieceRow = dec(v.value())?;
            out.push((k.value().to_string(), row.stored_at));
        }
        Ok(out)
    }

    /// Forgets released pieces: in one transaction their rows go and each is journaled in
    /// `pending` (its pin is still there until the caller unpins it and drops that row).
    pub fn release_pieces(&self, cids: &[String], now: u64) -> Result<()> {
        let tx = self.db.begin_write()?;
        {
            let mut pieces = tx.open_table(PIECES)?;
            let mut pending = tx.open_table(PENDING)?;
            for cid in cids {
                pieces.remove(cid.as_str())?;
                pending.insert(cid.as_str(), now)?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Every stored piece's CID.
    pub fn piece_cids(&self) -> Result<Vec<String>> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(PIECES)?;
        let mut out = Vec::new();
        for row in t.iter()? {
            out.push(row?.0.value().to_string());
        }
        Ok(out)
    }

    /// The piece an order was used for, if it was.
    pub fn order(&self, hash: &B256) -> Result<Option<String>> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(ORDERS)?;
        Ok(t.get(hash.as_slice())?.map(|v| v.value().to_string()))
    }

    /// Journals a piece whose `add` is about to pin it (durable before the pin exists).
    pub fn put_pending(&self, cid: &str, now: u64) -> Result<()> {
        let tx = self.db.begin_write()?;
        tx.open_table(PENDING)?.insert(cid, now)?;
        tx.commit()?;
        Ok(())
    }

    /// Drops a pending row (its pin was given back).
    pub fn remove_pending(&self, cid: &str) -> Result<()> {
        let tx = self.db.begin_write()?;
        tx.open_table(PENDING)?.remove(cid)?;
        tx.commit()?;
        Ok(())
    }

    /// Pending pieces.
    pub fn pending(&self) -> Result<Vec<String>> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(PENDING)?;
        let mut out = Vec::new();
        for row in t.iter()? {
            out.push(row?.0.value().to_string());
        }
        Ok(out)
    }

    /// Commits a stored piece and its order in one transaction: refused (`false`) if the
    /// order was used meanwhile.
    pub fn commit_piece(&self, cid: &str, row: &PieceRow) -> Result<bool> {
        let tx = self.db.begin_write()?;
        {
            let mut orders = tx.open_table(ORDERS)?;
            if orders.get(row.order_hash.as_slice())?.is_some() {
                return Ok(false);
            }
            orders.insert(row.order_hash.as_slice(), cid)?;
            tx.open_table(PIECES)?.insert(cid, enc(row)?.as_slice())?;
            tx.open_table(PENDING)?.remove(cid)?;
        }
        tx.commit()?;
        Ok(true)
    }

    /// Records the pieces under a deal root.
    pub fn put_deal_root(&self, deal: &B256, root: &B256, row: &DealRootRow) -> Result<()> {
        let tx = self.db.begin_write()?;
        tx.open_table(DEAL_ROOTS)?.insert(
            deal_key(deal, root.as_slice()).as_slice(),
            enc(row)?.as_slice(),
        )?;
        tx.commit()?;
        Ok(())
    }

    /// The pieces under a deal root, if this provider co-signed it.
    pub fn deal_root(&self, deal: &B256, root: &B256) -> Result<Option<Vec<String>>> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(DEAL_ROOTS)?;
        t.get(deal_key(deal, root.as_slice()).as_slice())?
            .map(|v| DealRootRow::decode(v.value()).map(|r| r.pieces))
            .transpose()
    }

    /// Every co-signed deal root: (deal, root, row).
    pub fn deal_roots(&self) -> Result<Vec<(B256, B256, DealRootRow)>> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(DEAL_ROOTS)?;
        let mut out = Vec::new();
        for row in t.iter()? {
            let (k, v) = row?;
            let k = k.value();
            out.push((
                B256::from_slice(&k[..32]),
                B256::from_slice(&k[32..64]),
                DealRootRow::decode(v.value())?,
            ));
        }
        Ok(out)
    }

    /// Forgets a co-signed deal root that can no longer be used or challenged.
    pub fn remove_deal_root(&self, deal: &B256, root: &B256) -> Result<()> {
        let tx = self.db.begin_write()?;
        tx.open_table(DEAL_ROOTS)?
            .remove(deal_key(deal, root.as_slice()).as_slice())?;
        tx.commit()?;
        Ok(())
    }

    /// The deals this provider co-signed something for.
    pub fn deals(&self) -> Result<Vec<B256>> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(DEAL_ROOTS)?;
        let mut out: Vec<B256> = Vec::new();
        for row in t.iter()? {
            let deal = B256::from_slice(&row?.0.value()[..32]);
            if out.last() != Some(&deal) {
                out.push(deal);
            }
        }
        Ok(out)
    }

    /// The proof state of period `period` of generation `generation` of a deal (the
    /// market's `dealOf(..).generation`, 1 for a deal's first opening).
    pub fn proof(&self, deal: &B256, generation: u16, period: u64) -> Result<Option<ProofState>> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(PROOFS)?;
        t.get(proof_key(deal, generation, period).as_slice())?
            .map(|v| dec(v.value()))
            .transpose()
    }

    /// The proof state of a deal period as rows written before proof rows named the
    /// generation keep it (deal id ‖ period): of whichever generation was open then.
    pub fn legacy_proof(&self, deal: &B256, period: u64) -> Result<Option<ProofState>> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(PROOFS)?;
        t.get(deal_key(deal, &period.to_be_bytes()).as_slice())?
            .map(|v| dec(v.value()))
            .transpose()
    }

    /// Sets the proof state of a period of a deal's generation (durably).
    pub fn put_proof(
        &self,
        deal: &B256,
        generation: u16,
        period: u64,
        state: &ProofState,
    ) -> Result<()> {
        let tx = self.db.begin_write()?;
        tx.open_table(PROOFS)?.insert(
            proof_key(deal, generation, period).as_slice(),
            enc(state)?.as_slice(),
        )?;
        tx.commit()?;
        Ok(())
    }

    /// The `Sent` proofs of a deal's generation, by period.
    pub fn sent_proofs(&self, deal: &B256, generation: u16) -> Result<Vec<(u64, ProofState)>> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(PROOFS)?;
        let (from, to) = (
            proof_key(deal, generation, 0),
            proof_key(deal, generation, u64::MAX),
        );
        let mut out = Vec::new();
        for row in t.range(from.as_slice()..=to.as_slice())? {
            let (k, v) = row?;
            let k = k.value();
            if k.len() != 42 {
                continue;
            }
            let state: ProofState = dec(v.value())?;
            if matches!(state, ProofState::Sent { .. }) {
                let period = u64::from_be_bytes(k[34..].try_into().expect("8 bytes"));
                out.push((period, state));
            }
        }
        Ok(out)
    }

    /// Writes a row as versions before generations did (deal id ‖ period).
    #[cfg(test)]
    fn put_legacy_proof(&self, deal: &B256, period: u64, state: &ProofState) -> Result<()> {
        let tx = self.db.begin_write()?;
        tx.open_table(PROOFS)?.insert(
            deal_key(deal, &period.to_be_bytes()).as_slice(),
            enc(state)?.as_slice(),
        )?;
        tx.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proof_rows_are_kept_per_generation_and_legacy_rows_stay_readable() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join(FILE)).unwrap();
        let deal = B256::repeat_byte(7);
        let proven = |b: u8| ProofState::Proven {
            hash: B256::repeat_byte(b),
            gas_used: 1,
            build_us: 2,
        };
        store
            .put_legacy_proof(&deal, 0, &ProofState::Settled)
            .unwrap();
        store.put_proof(&deal, 1, 0, &proven(1)).unwrap();
        store.put_proof(&deal, 2, 0, &proven(2)).unwrap();
        assert_eq!(store.proof(&deal, 1, 0).unwrap(), Some(proven(1)));
        assert_eq!(store.proof(&deal, 2, 0).unwrap(), Some(proven(2)));
        assert_eq!(store.proof(&deal, 3, 0).unwrap(), None);
        assert_eq!(store.proof(&deal, 2, 1).unwrap(), None);
        assert_eq!(
            store.legacy_proof(&deal, 0).unwrap(),
            Some(ProofState::Settled)
        );
        assert_eq!(store.legacy_proof(&deal, 1).unwrap(), None);
        let sent = ProofState::Sent {
            hash: B256::repeat_byte(3),
            nonce: 4,
            raw: Bytes::new(),
            build_us: 5,
            replaced: Vec::new(),
        };
        store.put_proof(&deal, 1, 3, &sent).unwrap();
        store.put_proof(&deal, 2, 4, &sent).unwrap();
        store.put_legacy_proof(&deal, 5, &sent).unwrap();
        assert_eq!(
            store.sent_proofs(&deal, 1).unwrap(),
            vec![(3, sent.clone())]
        );
        assert_eq!(store.sent_proofs(&deal, 2).unwrap(), vec![(4, sent)]);
        assert!(store.sent_proofs(&deal, 3).unwrap().is_empty());
    }
}
