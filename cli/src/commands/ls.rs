//! `px ls <token>`

use px_sdk::client::human_bytes;

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
    let files = s.client().await?.list(a.token).await?;
    output::emit(s.json, &files, || {
        if files.is_empty() {
            outln!(
                "token {} stores no files; add one with `px upload {} <file>`",
                a.token,
                a.token
            );
            return;
        }
        outln!("{:<48} {:>10}  {:<4} NAME", "CID", "SIZE", "ENC");
        for f in &files {
            outln!(
                "{:<48} {:>10}  {:<4} {}",
                f.entry.cid,
                human_bytes(f.entry.size),
                if f.encrypted { "yes" } else { "no" },
                // Names come from the node (a plain name is only its word): no terminal
                // escapes may pass.
                output::escape_name(&f.name)
            );
        }
    });
    Ok(())
}
