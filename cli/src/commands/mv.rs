//! `px move <token> --to <node-url>`: move a token to another storage node.

use px_sdk::client::human_bytes;

use crate::{
    config::Settings,
    output::{self, outln},
};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Token id.
    token: u64,
    /// Base URL of the storage node to move the token to.
    #[arg(long = "to", value_name = "NODE_URL")]
    to: String,
}

pub(crate) async fn run(a: Args, s: &Settings) -> eyre::Result<()> {
    let moved = s.client().await?.move_to_node(a.token, &a.to).await?;
    let report = serde_json::json!({
        "token": a.token,
        "node": a.to,
        "rebinding": moved.rebinding,
        "usage": moved.usage,
    });
    output::emit(s.json, &report, || {
        outln!(
            "token {} moved to {} (IPNS name {}): {} files, {} taken over; its usage record is now \
             published there (sequence {}). Use `--node {}` from now on and run `px sync {} --wait`.",
            a.token,
            a.to,
            moved.rebinding.ipns_id,
            moved.usage.file_count,
            human_bytes(moved.usage.used),
            moved.usage.seq,
            a.to,
            a.token
        );
    });
    Ok(())
}
