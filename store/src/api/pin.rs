//! `pin/add`, `pin/ls`, `pin/rm`, `repo/gc`.

use std::collections::BTreeMap;

use axum::extract::{RawQuery, State};
use axum::response::Response;
use cid::Cid;
use serde_json::{Value, json};

use super::{Params, blocking, json, ndjson, parse_cid_arg};
use crate::AppState;
use crate::error::{Error, Result};

fn cid_args(p: &Params) -> Result<Vec<Cid>> {
    let args = p.args();
    if args.is_empty() {
        return Err(Error::MissingArgument("ipfs-path"));
    }
    args.into_iter().map(parse_cid_arg).collect()
}

fn recursive_only(p: &Params) -> Result<()> {
    if p.flag("recursive", true)? {
        Ok(())
    } else {
        Err(Error::Unsupported("direct pins (recursive=false)".into()))
    }
}

pub(crate) async fn add(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Response> {
    let p = Params::parse(query.as_deref())?;
    let cids = cid_args(&p)?;
    recursive_only(&p)?;
    let pinned = cids.clone();
    blocking(move || state.repo().pin_add(&pinned))
        .await
        .map_err(|e| match e {
            // Kubo names the command in this one.
            e @ Error::BlockNotFound(_) => Error::Failed(format!("pin: {e}")),
            e => e,
        })?;
    let pins: Vec<String> = cids.iter().map(Cid::to_string).collect();
    Ok(json(&json!({ "Pins": pins })))
}

pub(crate) async fn rm(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Response> {
    let p = Params::parse(query.as_deref())?;
    let cids = cid_args(&p)?;
    recursive_only(&p)?;
    let removed = cids.clone();
    blocking(move || state.repo().pin_rm(&removed)).await?;
    let pins: Vec<String> = cids.iter().map(Cid::to_string).collect();
    Ok(json(&json!({ "Pins": pins })))
}

pub(crate) async fn ls(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Response> {
    let p = Params::parse(query.as_deref())?;
    let kind = p.get("type").unwrap_or("all").to_string();
    let (want_recursive, want_indirect) = match kind.as_str() {
        "all" => (true, true),
        "recursive" => (true, false),
        "indirect" => (false, true),
        "direct" => (false, false),
        other => {
            return Err(Error::BadRequest(format!(
                "invalid type {other:?}, must be one of {{direct, indirect, recursive, all}}"
            )));
        }
    };
    let wanted: Vec<Cid> = p
        .args()
        .into_iter()
        .map(parse_cid_arg)
        .collect::<Result<_>>()?;
    let keys = blocking(move || {
        let repo = state.repo();
        let roots = repo.pinned_roots()?;
        // Every block reachable from a root, with the first root that reaches it.
        let mut indirect: BTreeMap<Vec<u8>, (Cid, Cid)> = BTreeMap::new();
        if want_indirect || !wanted.is_empty() {
            for root in &roots {
                repo.walk(root, |cid| {
                    if cid != root {
                        indirect
                            .entry(cid.hash().to_bytes())
                            .or_insert((*cid, *root));
                    }
                })?;
            }
        }
        let mut keys = BTreeMap::<String, Value>::new();
        if wanted.is_empty() {
            if want_recursive {
                for root in &roots {
                    keys.insert(root.to_string(), pin_entry("recursive"));
                }
            }
            if want_indirect {
                for (cid, _) in indirect.values() {
                    keys.entry(cid.to_string())
                        .or_insert_with(|| pin_entry("indirect"));
                }
            }
            return Ok(keys);
        }
        for cid in &wanted {
            if want_recursive && roots.contains(cid) {
                keys.insert(cid.to_string(), pin_entry("recursive"));
            } else if let Some((_, root)) = indirect.get(&cid.hash().to_bytes())
                && want_indirect
            {
                keys.insert(
                    cid.to_string(),
                    pin_entry(&format!("indirect through {root}")),
                );
            } else {
                return Err(Error::NotPinned(format!("path '{cid}' is not pinned")));
            }
        }
        Ok(keys)
    })
    .await?;
    Ok(json(&json!({ "Keys": keys })))
}

/// A `pin/ls` entry as Kubo writes it (pins have no names here).
fn pin_entry(kind: &str) -> Value {
    json!({"Type": kind, "Name": ""})
}

pub(crate) async fn gc(State(state): State<AppState>) -> Result<Response> {
    let removed = blocking(move || state.repo().gc()).await?;
    let lines: Vec<Value> = removed
        .iter()
        .map(|cid| json!({"Key": {"/": cid.to_string()}}))
        .collect();
    ndjson(&lines)
}
