//! `px`: the PX storage command line.
//!
//! Settings come from a TOML config file (`--config`, `PX_CONFIG`, default
//! `$XDG_CONFIG_HOME/px/config.toml` or `~/.config/px/config.toml`), then environment variables
//! (`PX_RPC_URL`, `PX_PRIVATE_KEY`, `PX_DEPLOYMENT`, `PX_NODE`, `PX_KEY_FILE`), then flags.
//! Output is for people by default and JSON with `--json`. Each subcommand lives in its own
//! module under `commands/`.

mod commands;
mod config;
mod output;

use clap::Parser;

use crate::{commands::Command, config::GlobalArgs};

/// PX storage: mint storage NFTs, upload and download encrypted files, sync usage.
#[derive(Debug, Parser)]
#[command(name = "px", version, about, long_about = None)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    restore_sigpipe();
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PX_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let json = cli.global.json;
    match commands::run(cli.command, cli.global).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            output::error(json, &e);
            std::process::ExitCode::FAILURE
        }
    }
}

/// Rust ignores SIGPIPE, so `px ls 1 | head` would panic on the closed pipe; a command-line tool
/// should instead end quietly like any other, so take the default action back.
fn restore_sigpipe() {
    #[cfg(unix)]
    // SAFETY: called first thing in main, before any thread is spawned; SIG_DFL is a valid
    // disposition for SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
