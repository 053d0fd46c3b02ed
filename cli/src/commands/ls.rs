//! `px ls <token>`
//!
//! The `WHERE` column says where a file's bytes are: `node` (the storage node itself) or the
//! provider network's `k/n` (pieces with providers; its CID is then its manifest's).

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
        outln!(
            "{:<48} {:>10}  {:<4} {:<6} NAME",
            "CID",
            "SIZE",
            "ENC",
            "WHERE"
        );
        for f in &files {
            outln!(
                "{:<48} {:>10}  {:<4} {:<6} {}",
                f.entry.cid,
                human_bytes(f.entry.size),
                if f.encrypted { "yes" } else { "no" },
                f.entry
                    .redundancy
                    .map_or_else(|| "node".to_string(), |r| r.to_string()),
                // Names come from the node (a plain name is only its word): no terminal
                // escapes may pass.
                output::escape_name(&f.name)
            );
        }
    });
    Ok(())
}
