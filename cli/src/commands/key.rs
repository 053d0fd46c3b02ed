//! `px key new|show`

use std::path::PathBuf;

use px_sdk::crypto::OwnerKey;
use serde_json::json;

use crate::{
    config::Settings,
    output::{self, outln},
};

#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Generate a random owner key into a new file (mode 0600); use it with --key-file.
    New {
        /// Where to write it (never overwritten).
        path: PathBuf,
    },
    /// Show the id of the owner key in use (key file, or derived from the wallet).
    Show,
}

pub(crate) async fn run(c: Command, s: &Settings) -> eyre::Result<()> {
    match c {
        Command::New { path } => {
            let key = OwnerKey::generate()?;
            key.save(&path)?;
            output::emit(
                s.json,
                &json!({ "keyId": key.id_hex(), "path": path }),
                || {
                    outln!("wrote owner key {} to {}", key.id_hex(), path.display());
                    outln!("back this file up: files encrypted with it cannot be read without it");
                },
            );
        }
        Command::Show => {
            let client = s.client().await?;
            let key = client.owner_key().await?;
            let source = if s.key_file.is_some() {
                "key file"
            } else {
                "wallet signature"
            };
            output::emit(
                s.json,
                &json!({ "keyId": key.id_hex(), "source": source }),
                || {
                    outln!("owner key {} ({source})", key.id_hex());
                },
            );
        }
    }
    Ok(())
}
