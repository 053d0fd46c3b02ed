//! `px download <token> <cid> -o <file>`

use std::path::PathBuf;

use px_sdk::{DownloadOptions, client::human_bytes};

use crate::{config::Settings, output};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Token id.
    token: u64,
    /// CID of the file (see `px ls`).
    cid: String,
    /// Where to write the file (`-` for standard output).
    #[arg(short, long)]
    output: PathBuf,
    /// Write the stored bytes as they are, without decrypting.
    #[arg(long)]
    raw: bool,
    /// Overwrite an existing file.
    #[arg(long)]
    force: bool,
}

pub(crate) async fn run(a: Args, s: &Settings) -> eyre::Result<()> {
    let client = s.client().await?;
    let opts = DownloadOptions {
        decrypt: !a.raw,
        ..Default::default()
    };
    if a.output.as_os_str() == "-" {
        let mut out = tokio::io::stdout();
        client
            .download_with(a.token, &a.cid, &mut out, opts)
            .await?;
        return Ok(());
    }
    if a.output.exists() && !a.force {
        eyre::bail!("{} exists; pass --force to overwrite", a.output.display());
    }
    // Write next to the target and rename on success: a failed download leaves nothing.
    let dir = a
        .output
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let tmp = tempfile::NamedTempFile::new_in(dir)?;
    let mut file = tokio::fs::File::from_std(tmp.reopen()?);
    let r = client
        .download_with(a.token, &a.cid, &mut file, opts)
        .await?;
    file.sync_all().await?;
    drop(file);
    tmp.persist(&a.output)?;
    output::emit(s.json, &r, || {
        println!(
            "wrote {} ({}{}) to {}",
            r.file.as_ref().map_or(a.cid.as_str(), |f| f.name.as_str()),
            human_bytes(r.written),
            if r.encrypted { ", decrypted" } else { "" },
            a.output.display()
        );
    });
    Ok(())
}
