//! `px-node`: loads the configuration, starts tracing and runs the node.

use tracing_subscriber::EnvFilter;

fn main() -> eyre::Result<()> {
    // Before any thread exists: the embedded store streams upload bodies through the heap.
    px_store::tune_allocator();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run())
}

async fn run() -> eyre::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let config = px_node::NodeConfig::from_args()?;
    tracing::info!(target: "node::server", ?config, "starting");
    px_node::run(config).await?;
    Ok(())
}
