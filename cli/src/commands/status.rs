//! `px status <token>`
//!
//! With a storage node that is a home node of the provider network, also the token's escrow,
//! its deals with providers and the health of its network files (healthy pieces of each
//! segment), from the node's `GET /v1/tokens/{id}/network`. A node without the home role
//! (404) adds nothing; another failure is shown as such.

use px_sdk::client::{human_bytes, human_duration};
use serde_json::json;

use super::units;
use crate::{
    config::Settings,
    output::{self, outln},
};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Token id.
    token: u64,
}

pub(crate) async fn run(a: Args, s: &Settings) -> eyre::Result<()> {
    let client = s.client().await?;
    let t = client.token(a.token).await?;
    let gate = client.can_upload(a.token, 0).await?;
    let locked = if gate.ok {
        None
    } else {
        Some(client.gate_error(a.token, 0, gate.reason).await.to_string())
    };
    let network = if s.node_url.is_some() {
        match client.token_network(a.token).await {
            Ok(n) => Some(Ok(n)),
            Err(px_sdk::Error::Node { status: 404, .. }) => None,
            Err(e) => Some(Err(e.to_string())),
        }
    } else {
        None
    };
    output::emit(
        s.json,
        &json!({
            "token": t,
            "uploadsOpen": gate.ok,
            "gate": gate.reason,
            "detail": locked,
            "network": match &network {
                Some(Ok(n)) => json!(n),
                Some(Err(e)) => json!({ "error": e }),
                None => serde_json::Value::Null,
            },
        }),
        || {
            outln!("token {} (plan {}), owner {}", t.id, t.plan, t.owner);
            outln!(
                "usage    {} of {} in {} files (as of the last sync, seq {})",
                human_bytes(t.used),
                human_bytes(t.quota),
                t.file_count,
                t.seq
            );
            if t.expires_at != 0 {
                if t.expires_at > t.now {
                    outln!("expires  in {}", human_duration(t.expires_at - t.now));
                } else {
                    outln!("expired  {} ago", human_duration(t.now - t.expires_at));
                }
            }
            outln!(
                "synced   {} ago{}",
                human_duration(t.now.saturating_sub(t.last_sync_at)),
                if t.pending {
                    " (a sync is pending)"
                } else {
                    ""
                }
            );
            match t.ipns_key {
                Some(k) => outln!("ipns key {k}"),
                None => outln!("ipns key none"),
            }
            match &locked {
                None => outln!("uploads  open"),
                Some(why) => outln!("uploads  locked: {why}"),
            }
            match &network {
                Some(Ok(n)) => print_network(n),
                Some(Err(e)) => outln!("network  unavailable: {e}"),
                None => {}
            }
        },
    );
    Ok(())
}

/// The provider-network part of `px status` for people.
fn print_network(n: &px_sdk::api::TokenNetwork) {
    let escrow = n
        .escrow
        .parse()
        .map_or_else(|_| format!("{} wei", n.escrow), |v| units(v, "PX"));
    outln!(
        "escrow   {escrow}{}",
        if n.home {
            ""
        } else {
            " (this node is not the token's home node: StorageMarket.setHomeNode)"
        }
    );
    if n.deals.is_empty() {
        outln!("deals    none");
    } else {
        outln!(
            "deals    {:<42} {:<9} {:>7} {:>6} {:>10} {:>7} {:>6} REMAINING",
            "PROVIDER",
            "STATUS",
            "PERIODS",
            "PIECES",
            "SIZE",
            "PENDING",
            "MISSES"
        );
        for d in &n.deals {
            let remaining = d
                .remaining
                .parse()
                .map_or_else(|_| d.remaining.clone(), |v| units(v, "PX"));
            outln!(
                "         {:<42} {:<9} {:>7} {:>6} {:>10} {:>7} {:>6} {}",
                d.provider,
                d.status,
                format!("{}/{}", d.next_period, d.periods),
                d.piece_count,
                human_bytes(d.size),
                d.pending_pieces,
                d.misses,
                remaining
            );
        }
    }
    if n.files.is_empty() {
        outln!("files    none on the provider network");
    }
    for f in &n.files {
        let n_pieces = f.redundancy.n();
        let worst = f.healthy.iter().copied().min().unwrap_or(0);
        let state = if worst >= n_pieces {
            "healthy"
        } else if worst >= f.redundancy.k() {
            "degraded"
        } else {
            "UNREADABLE"
        };
        let segments: Vec<String> = f
            .healthy
            .iter()
            .map(|h| format!("{h}/{n_pieces}"))
            .collect();
        outln!(
            "file {:<4} {} at {}: healthy pieces per segment {}{}",
            f.id,
            state,
            f.redundancy,
            segments.join(" "),
            if f.repaired > 0 {
                format!(" ({} pieces repaired)", f.repaired)
            } else {
                String::new()
            }
        );
    }
}
