//! `px-oracle`: loads the configuration (file, environment, flags), starts JSON logging and
//! runs the oracle until SIGINT/SIGTERM.

use clap::Parser;
use px_oracle::config::{Cli, Config};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> eyre::Result<()> {
    let cli = Cli::parse();
    let config = Config::load(&cli)?;
    let filter = EnvFilter::try_new(config.log_level.as_deref().unwrap_or("info"))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    px_oracle::run(config).await?;
    Ok(())
}
