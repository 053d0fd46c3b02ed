//! Minimal dag-pb reader: the CIDs a block links to (for pinning and garbage collection).
//!
//! `rust-unixfs` keeps its `PBNode` type private and only parses UnixFS-shaped nodes; pins must
//! walk any dag-pb node, so the two-level protobuf (`PBNode.Links = 2`, `PBLink.Hash = 1`) is
//! read here directly. Unknown fields are skipped, malformed input is an error.

use cid::Cid;

/// The multicodec of dag-pb.
pub const DAG_PB: u64 = 0x70;
/// The multicodec of raw blocks.
pub const RAW: u64 = 0x55;

fn varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v: u64 = 0;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos)?;
        *pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// Iterates protobuf fields as `(field, wire, payload)`; payload is the bytes of a
/// length-delimited field and empty otherwise.
fn fields(buf: &[u8]) -> impl Iterator<Item = Option<(u64, u64, &[u8])>> {
    let mut pos = 0;
    let mut failed = false;
    std::iter::from_fn(move || {
        if failed || pos >= buf.len() {
            return None;
        }
        let item = (|| {
            let key = varint(buf, &mut pos)?;
            let (field, wire) = (key >> 3, key & 7);
            let payload: &[u8] = match wire {
                0 => {
                    varint(buf, &mut pos)?;
                    &[]
                }
                1 | 5 => {
                    pos = pos.checked_add(if wire == 1 { 8 } else { 4 })?;
                    if pos > buf.len() {
                        return None;
                    }
                    &[]
                }
                2 => {
                    let len = usize::try_from(varint(buf, &mut pos)?).ok()?;
                    let end = pos.checked_add(len).filter(|&e| e <= buf.len())?;
                    let p = &buf[pos..end];
                    pos = end;
                    p
                }
                _ => return None,
            };
            Some((field, wire, payload))
        })();
        failed = item.is_none();
        Some(item)
    })
}

/// The links of a dag-pb block, in order. `None` if the block is not valid dag-pb.
pub fn links(block: &[u8]) -> Option<Vec<Cid>> {
    let mut out = Vec::new();
    for f in fields(block) {
        let (field, wire, payload) = f?;
        if field == 2 {
            if wire != 2 {
                return None;
            }
            let mut hash = None;
            for lf in fields(payload) {
                let (lfield, lwire, lpayload) = lf?;
                if lfield == 1 {
                    if lwire != 2 {
                        return None;
                    }
                    hash = Some(lpayload);
                }
            }
            out.push(Cid::try_from(hash?).ok()?);
        }
    }
    Some(out)
}

/// The links of a block of any supported codec (raw blocks have none).
pub fn links_of(cid: &Cid, block: &[u8]) -> Option<Vec<Cid>> {
    match cid.codec() {
        DAG_PB => links(block),
        _ => Some(Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::importer::{ImportOptions, Importer};

    #[test]
    fn reads_links_of_an_imported_root() {
        let data = vec![7u8; 3 * 262_144];
        let mut imp = Importer::new(&ImportOptions::default()).unwrap();
        let mut blocks = Vec::new();
        imp.push(&data, |b| {
            blocks.push(b);
            Ok::<_, crate::importer::ImportError>(())
        })
        .unwrap();
        let root = imp
            .finish(|b| {
                blocks.push(b);
                Ok::<_, crate::importer::ImportError>(())
            })
            .unwrap();
        let root_block = &blocks.last().unwrap().to_vec();
        let found = links_of(&root.cid, root_block).unwrap();
        assert_eq!(found.len(), 3);
        assert!(found.iter().all(|c| *c == blocks[0].cid));
        assert_eq!(links(&[0x12, 0x05, 0x0a]), None);
        assert_eq!(links(b"").unwrap(), vec![]);
    }
}
