//! `px sync <token> [--wait]`

use std::time::Duration;

use px_sdk::client::human_bytes;
use serde_json::json;

use crate::{
    config::Settings,
    output::{self, outln},
};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Token id.
    token: u64,
    /// Wait for the oracle's answer.
    #[arg(long)]
    wait: bool,
    /// How long to wait, in seconds.
    #[arg(long, default_value_t = 300)]
    timeout: u64,
}

pub(crate) async fn run(a: Args, s: &Settings) -> eyre::Result<()> {
    let client = s.client().await?;
    let state = client.token(a.token).await?;
    // With --wait, a request already pending is simply waited for.
    let request = if a.wait && state.pending {
        None
    } else {
        Some(client.request_sync(a.token).await?)
    };
    if !a.wait {
        let r = request.expect("requested when not waiting");
        output::emit(s.json, &r, || {
            outln!(
                "sync of token {} requested ({}); run `px sync {} --wait` to wait for it",
                a.token,
                r.request_id,
                a.token
            );
        });
        return Ok(());
    }
    let timeout = Duration::from_secs(a.timeout);
    let synced = match &request {
        Some(r) => client.wait_answer(r, timeout).await?,
        None => client.wait_synced(a.token, timeout).await?,
    };
    output::emit(
        s.json,
        &json!({ "request": request, "synced": synced }),
        || {
            outln!(
                "token {} synced: {} in {} files (record seq {}, {})",
                a.token,
                human_bytes(synced.used),
                synced.file_count,
                synced.seq,
                synced.record_cid
            );
        },
    );
    Ok(())
}
