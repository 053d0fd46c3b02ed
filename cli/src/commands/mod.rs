//! One module per subcommand. Each has an `Args` (clap) and an `async fn run`.
//!
//! `px devnet` runs the whole stack locally (anvil + contracts + px-store + px-node +
//! px-oracle as subprocesses) and, with `--story`, the end-to-end demo.

mod devnet;
mod download;
mod fund;
mod home;
mod key;
mod ls;
mod mint;
mod mv;
mod plans;
mod provider;
mod providers;
mod rm;
mod status;
mod sync;
mod upload;

use clap::Subcommand;

use crate::config::{GlobalArgs, Settings};

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// List the plans tokens can be minted from.
    Plans(plans::Args),
    /// Mint a storage token (through the storage node, so it gets an IPNS key).
    Mint(mint::Args),
    /// Show a token's quota, usage, sync state and whether uploads are open.
    Status(status::Args),
    /// Upload a file (encrypted unless --no-encrypt).
    Upload(upload::Args),
    /// Download a file by CID (decrypting it).
    Download(download::Args),
    /// List a token's files.
    Ls(ls::Args),
    /// Delete a file by CID.
    Rm(rm::Args),
    /// Move a token to another storage node (it takes the files over; the chain rebinds the key).
    Move(mv::Args),
    /// Request a usage sync through the oracle (and wait for it with --wait).
    Sync(sync::Args),
    /// List the provider registry: price, region, capacity, certification, stake, proofs.
    Providers(providers::Args),
    /// Run a provider: register, update, stake, pause/resume, exit, withdraw, status, claim.
    #[command(subcommand)]
    Provider(provider::Command),
    /// Add PX from the wallet to a token's escrow (it pays the token's provider deals).
    Fund(fund::Args),
    /// Name the storage node as the token's home node (needed once before network uploads).
    Home(home::Args),
    /// Run a local devnet: anvil, the contracts, px-store, px-node and px-oracle.
    Devnet(devnet::Args),
    /// Manage the owner key used for encryption.
    #[command(subcommand)]
    Key(key::Command),
}

pub(crate) async fn run(command: Command, global: GlobalArgs) -> eyre::Result<()> {
    if let Command::Devnet(a) = command {
        return devnet::run(a).await;
    }
    let settings = Settings::resolve(global)?;
    match command {
        Command::Plans(a) => plans::run(a, &settings).await,
        Command::Mint(a) => mint::run(a, &settings).await,
        Command::Status(a) => status::run(a, &settings).await,
        Command::Upload(a) => upload::run(a, &settings).await,
        Command::Download(a) => download::run(a, &settings).await,
        Command::Ls(a) => ls::run(a, &settings).await,
        Command::Rm(a) => rm::run(a, &settings).await,
        Command::Sync(a) => sync::run(a, &settings).await,
        Command::Providers(a) => providers::run(a, &settings).await,
        Command::Provider(c) => provider::run(c, &settings).await,
        Command::Fund(a) => fund::run(a, &settings).await,
        Command::Home(a) => home::run(a, &settings).await,
        Command::Move(a) => mv::run(a, &settings).await,
        Command::Key(c) => key::run(c, &settings).await,
        Command::Devnet(_) => unreachable!("handled above"),
    }
}

/// Formats a PX or ETH amount (18 decimals) for people.
pub(crate) fn units(v: alloy::primitives::U256, symbol: &str) -> String {
    alloy::primitives::utils::format_units(v, 18)
        .map(|s| {
            let s = s.trim_end_matches('0').trim_end_matches('.');
            format!("{s} {symbol}")
        })
        .unwrap_or_else(|_| format!("{v} wei {symbol}"))
}
