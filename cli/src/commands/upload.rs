//! `px upload <token> <file>`
//!
//! Without `--redundancy` or `--network` the file goes to the storage node itself, exactly as
//! before the provider network. With either, it goes to providers through the token's home
//! node (the configured node): encrypted, erasure-coded at `k/n` (`--network` alone takes the
//! node's default redundancy, `GET /v1/network`), pieces sent to providers in parallel, the
//! manifest committed into the token's file index. A network upload is never chosen by itself:
//! a file stays on the node unless the command asks for the network.

use std::{io::IsTerminal, path::PathBuf, sync::Arc};

use indicatif::{ProgressBar, ProgressStyle};
use px_sdk::{NetworkUploadOptions, UploadOptions, client::human_bytes};
use serde_json::json;

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
    /// Store the file on the provider network, erasure-coded into `k/n` pieces (any `k` of the
    /// `n` rebuild it), e.g. `4/6`.
    #[arg(long, value_name = "K/N", conflicts_with = "no_encrypt")]
    redundancy: Option<px_core::erasure::Redundancy>,
    /// Store the file on the provider network at the home node's default redundancy.
    #[arg(long, conflicts_with = "no_encrypt")]
    network: bool,
}

pub(crate) async fn run(a: Args, s: &Settings) -> eyre::Result<()> {
    let client = s.client().await?;
    let name = match a.name.clone() {
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
    if a.network || a.redundancy.is_some() {
        return upload_to_network(&client, &a, &name, s).await;
    }
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

/// `--network` / `--redundancy`: the file to providers through the home node.
async fn upload_to_network(
    client: &px_sdk::Client,
    a: &Args,
    name: &str,
    s: &Settings,
) -> eyre::Result<()> {
    let progress = output::PieceProgress::new(s.json, output::Direction::Upload);
    let opts = NetworkUploadOptions {
        redundancy: a.redundancy,
        check_gate: true,
        auto_sync: a.sync,
        observer: progress.as_ref().map(|p| p.observer()),
        ..Default::default()
    };
    let result = client
        .upload_file_to_network(a.token, &a.file, name, opts)
        .await;
    if let Some(p) = &progress {
        p.finish();
    }
    let r = result?;
    let failed: usize = r.reports.iter().map(|x| x.failures.len()).sum();
    let providers: std::collections::HashSet<_> = r
        .manifest
        .segments
        .iter()
        .flat_map(|s| s.pieces.iter().map(|p| p.provider))
        .collect();
    let u = &r.upload;
    output::emit(
        s.json,
        &json!({
            "file": u.file,
            "name": u.name,
            "usage": u.usage,
            "encrypted": u.encrypted,
            "plainSize": u.plain_size,
            "redundancy": r.manifest.redundancy,
            "segments": r.manifest.segments.len(),
            "providers": providers,
            "failedAttempts": failed,
        }),
        || {
            outln!(
                "uploaded {} ({}, encrypted) at {} in {} segments to {} providers as {}",
                output::escape_name(&u.name),
                human_bytes(u.plain_size),
                r.manifest.redundancy,
                r.manifest.segments.len(),
                providers.len(),
                u.file.cid
            );
            if failed > 0 {
                outln!("{failed} piece attempts failed and went to spare providers");
            }
            outln!(
                "token {} now uses {} of {} in {} files",
                a.token,
                human_bytes(u.usage.used),
                human_bytes(u.usage.quota),
                u.usage.file_count
            );
        },
    );
    Ok(())
}
