//! `px`: the PX storage command line.
//!
//! Settings come from a TOML config file (`--config`, `PX_CONFIG`, default
//! `$XDG_CONFIG_HOME/px/config.toml` or `~/.config/px/config.toml`), then environment variables
//! (`PX_RPC_URL`, `PX_PRIVATE_KEY`, `PX_DEPLOYMENT`, `PX_NODE`, `PX_KEY_FILE`), then flags.
//! Output is for people by default and JSON with `--json`. Each subcommand lives in its own
//! module under `commands/`. The exit code tells the class of a failure
//! ([`output::EXIT_CODES_HELP`], shown by `px --help`).

mod commands;
mod config;
mod output;

use clap::Parser;

use crate::{commands::Command, config::GlobalArgs};

/// PX storage: mint storage NFTs, upload and download encrypted files, sync usage.
#[derive(Debug, Parser)]
#[command(name = "px", version, about, long_about = None, after_help = output::EXIT_CODES_HELP)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // SIGPIPE stays ignored (Rust's default): a storage node that answers an upload and closes
    // the connection while the body is still being sent must surface as an error with the
    // node's reason, never kill `px` silently. Output to a closed pipe is ignored (`outln!`).
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
            std::process::ExitCode::from(output::exit_code(&e))
        }
    }
}
