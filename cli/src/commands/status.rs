//! `px status <token>`

use px_sdk::client::{human_bytes, human_duration};
use serde_json::json;

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
    output::emit(
        s.json,
        &json!({ "token": t, "uploadsOpen": gate.ok, "gate": gate.reason, "detail": locked }),
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
        },
    );
    Ok(())
}
