//! `px home <token>`: names the storage node `px` talks to (`--node`) as the token's home node
//! on the StorageMarket (`setHomeNode`, the holder only), which network uploads need once (and
//! again after moving the token to another node). Does nothing when it already is.

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
    let home = client.use_as_home_node(a.token).await?;
    output::emit(
        s.json,
        &json!({ "token": a.token, "homeNode": home }),
        || {
            outln!(
                "token {}'s home node is {home} ({}): it places and repairs the token's \
                 network files",
                a.token,
                s.node_url.as_deref().unwrap_or("the configured node")
            );
        },
    );
    Ok(())
}
