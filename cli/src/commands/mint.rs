//! `px mint`

use px_sdk::Payment;
use serde_json::json;

use crate::{
    config::Settings,
    output::{self, outln},
};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Plan id (see `px plans`).
    #[arg(long, default_value_t = 1)]
    plan: u64,
    /// How to pay: auto (permit when the PX balance covers it, else native), permit,
    /// allowance or native.
    #[arg(long, value_enum, default_value_t = Pay::Auto)]
    pay: Pay,
    /// Mint without a storage node key assignment (the node can bind a key later).
    #[arg(long)]
    no_node: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Pay {
    Auto,
    Permit,
    Allowance,
    Native,
}

pub(crate) async fn run(a: Args, s: &Settings) -> eyre::Result<()> {
    let client = s.client().await?;
    let payment = match a.pay {
        Pay::Auto => Payment::Auto,
        Pay::Permit => Payment::Permit,
        Pay::Allowance => Payment::Allowance,
        Pay::Native => Payment::Native,
    };
    let via_node = s.node_url.is_some() && !a.no_node;
    let id = if via_node {
        client.mint_via_node(a.plan, payment).await?
    } else {
        client.mint(a.plan, payment).await?
    };
    let state = client.token(id).await?;
    output::emit(s.json, &json!({ "tokenId": id, "token": state }), || {
        outln!("minted token {id} (plan {})", a.plan);
        if state.ipns_key.is_none() {
            outln!("no storage node key yet: mint through a node (--node) to upload files");
        }
    });
    Ok(())
}
