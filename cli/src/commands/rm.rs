//! `px rm <token> <cid>`

use px_sdk::client::human_bytes;

use crate::{
    config::Settings,
    output::{self, outln},
};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Token id.
    token: u64,
    /// CID of the file to delete.
    cid: String,
}

pub(crate) async fn run(a: Args, s: &Settings) -> eyre::Result<()> {
    let r = s.client().await?.delete(a.token, &a.cid).await?;
    output::emit(s.json, &r, || {
        outln!(
            "deleted {}; token {} now uses {} in {} files (run `px sync {} --wait` to update the chain)",
            a.cid,
            a.token,
            human_bytes(r.usage.used),
            r.usage.file_count,
            a.token
        );
    });
    Ok(())
}
