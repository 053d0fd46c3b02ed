//! `px download <token> <cid> -o <file>`
//!
//! A file stored on the provider network (its entry has a `redundancy`) is read from its
//! providers transparently: the current manifest from the home node, each provider's endpoint
//! from the registry, every provider of a segment at once, decoded from the first `k` good
//! pieces (a bar per piece on a terminal).

use std::{io::IsTerminal, path::PathBuf, sync::Arc};

use indicatif::{ProgressBar, ProgressStyle};
use px_sdk::{DownloadOptions, NetworkDownloadOptions, client::human_bytes};
use serde_json::json;

use crate::{
    config::Settings,
    output::{self, outln},
};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Token id.
    token: u64,
    /// CID of the file (see `px ls`).
    cid: String,
    /// Where to write the file (`-` for standard output).
    #[arg(short, long)]
    output: PathBuf,
    /// Write the stored bytes as they are, without decrypting (only the CID is checked; for a
    /// file on the provider network, the manifest the node stores as its entry).
    #[arg(long)]
    raw: bool,
    /// Accept a file stored unencrypted (uploaded with --no-encrypt); without it, content
    /// that is not encrypted is refused.
    #[arg(long)]
    plain: bool,
    /// Overwrite an existing file.
    #[arg(long)]
    force: bool,
}

pub(crate) async fn run(a: Args, s: &Settings) -> eyre::Result<()> {
    let client = s.client().await?;
    if !a.raw
        && let Some(file) = client
            .find(a.token, &a.cid)
            .await?
            .into_iter()
            .find(|f| f.entry.redundancy.is_some())
    {
        return download_from_network(&client, &a, file, s).await;
    }
    // Progress on a terminal only (never in JSON mode or when stderr is redirected).
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
    let opts = DownloadOptions {
        decrypt: !a.raw,
        allow_plain: a.plain,
        progress: bar.clone().map(|bar| -> px_sdk::Progress {
            Arc::new(move |done, total| {
                bar.set_length(total);
                bar.set_position(done);
            })
        }),
        ..Default::default()
    };
    let result = download(&client, &a, opts).await;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let Some(r) = result? else {
        return Ok(());
    };
    output::emit(s.json, &r, || {
        outln!(
            "wrote {} ({}{}) to {}",
            output::escape_name(r.file.as_ref().map_or(a.cid.as_str(), |f| f.name.as_str())),
            human_bytes(r.written),
            if r.encrypted { ", decrypted" } else { "" },
            a.output.display()
        );
    });
    Ok(())
}

/// Downloads to standard output (answers `None`) or to a file, through a temporary file
/// renamed on success, so a failed download leaves nothing.
async fn download(
    client: &px_sdk::Client,
    a: &Args,
    opts: DownloadOptions,
) -> eyre::Result<Option<px_sdk::DownloadResult>> {
    if a.output.as_os_str() == "-" {
        let mut out = tokio::io::stdout();
        client
            .download_with(a.token, &a.cid, &mut out, opts)
            .await?;
        return Ok(None);
    }
    if a.output.exists() && !a.force {
        return Err(output::usage(format!(
            "{} exists; pass --force to overwrite",
            a.output.display()
        )));
    }
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
    Ok(Some(r))
}

/// A network file: from its providers, into standard output or a temporary file renamed on
/// success.
async fn download_from_network(
    client: &px_sdk::Client,
    a: &Args,
    file: px_sdk::ListedFile,
    s: &Settings,
) -> eyre::Result<()> {
    let to_file = a.output.as_os_str() != "-";
    if to_file && a.output.exists() && !a.force {
        return Err(output::usage(format!(
            "{} exists; pass --force to overwrite",
            a.output.display()
        )));
    }
    let progress = output::PieceProgress::new(s.json || !to_file, output::Direction::Download);
    let opts = NetworkDownloadOptions {
        observer: progress.as_ref().map(|p| p.observer()),
    };
    let result = async {
        if !to_file {
            let mut out = tokio::io::stdout();
            return Ok(client
                .download_from_network(a.token, &file, &mut out, opts)
                .await?);
        }
        let dir = a
            .output
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        let tmp = tempfile::NamedTempFile::new_in(dir)?;
        let mut out = tokio::fs::File::from_std(tmp.reopen()?);
        let r = client
            .download_from_network(a.token, &file, &mut out, opts)
            .await?;
        out.sync_all().await?;
        drop(out);
        tmp.persist(&a.output)?;
        Ok::<_, eyre::Report>(r)
    }
    .await;
    if let Some(p) = &progress {
        p.finish();
    }
    let r = result?;
    if !to_file {
        return Ok(());
    }
    let mut offline: Vec<String> = r.faults.iter().map(|f| f.provider.to_string()).collect();
    offline.sort();
    offline.dedup();
    output::emit(
        s.json,
        &json!({
            "written": r.written,
            "encrypted": true,
            "sha256": r.sha256,
            "file": r.file,
            "redundancy": r.manifest.redundancy,
            "segments": r.manifest.segments.len(),
            "offlineProviders": offline,
            "faults": r.faults.iter().map(|f| json!({
                "segment": f.segment, "piece": f.piece, "provider": f.provider,
                "error": f.kind.to_string(),
            })).collect::<Vec<_>>(),
        }),
        || {
            outln!(
                "wrote {} ({}, decrypted, from providers at {}) to {}",
                output::escape_name(&r.file.name),
                human_bytes(r.written),
                r.manifest.redundancy,
                a.output.display()
            );
            if !offline.is_empty() {
                outln!(
                    "{} providers did not serve their pieces: {}",
                    offline.len(),
                    offline.join(", ")
                );
            }
        },
    );
    Ok(())
}
