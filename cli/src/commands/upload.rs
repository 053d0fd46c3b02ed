//! `px upload <token> <file>`

use std::{io::IsTerminal, path::PathBuf, sync::Arc};

use indicatif::{ProgressBar, ProgressStyle};
use px_sdk::{UploadOptions, client::human_bytes};

use crate::{
    config::Settings,
    output::{self, outln},
};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Token id.
    token: u64,
    /// File to upload.
    file: PathBuf,
    /// Store the file as it is (anyone with the CID can read it).
    #[arg(long)]
    no_encrypt: bool,
    /// Name to store [default: the file's name].
    #[arg(long)]
    name: Option<String>,
    /// When uploads are locked for lack of a sync, request one and wait.
    #[arg(long)]
    sync: bool,
}

pub(crate) async fn run(a: Args, s: &Settings) -> eyre::Result<()> {
    let client = s.client().await?;
    let name = match a.name {
        Some(n) => n,
        None => a
            .file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| {
                output::usage(format!(
                    "{} has no file name; pass --name",
                    a.file.display()
                ))
            })?,
    };
    let mut opts = UploadOptions {
        encrypt: !a.no_encrypt,
        auto_sync: a.sync,
        ..Default::default()
    };
    let bar = (!s.json && std::io::stderr().is_terminal()).then(|| {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} {bytes}/{total_bytes} {wide_bar} {bytes_per_sec} eta {eta}",
            )
            .expect("valid template"),
        );
        bar
    });
    if let Some(bar) = bar.clone() {
        opts.progress = Some(Arc::new(move |done, total| {
            bar.set_length(total);
            bar.set_position(done);
        }));
    }
    let result = client.upload_file(a.token, &a.file, &name, opts).await;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let r = result?;
    output::emit(s.json, &r, || {
        outln!(
            "uploaded {} ({}{}) as {}",
            output::escape_name(&r.name),
            human_bytes(r.plain_size),
            if r.encrypted { ", encrypted" } else { "" },
            r.file.cid
        );
        outln!(
            "token {} now uses {} of {} in {} files",
            a.token,
            human_bytes(r.usage.used),
            human_bytes(r.usage.quota),
            r.usage.file_count
        );
    });
    Ok(())
}
