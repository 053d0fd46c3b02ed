//! A backend that cannot serve raw IPNS records (js-ipfs 0.66 has no `routing/*`): a sync
//! against it is never decided on chain as a record problem. The relayer retries while the
//! request is young and answers `IPFS_UNAVAILABLE` (no usage) only at the expiry margin,
//! exactly as for a daemon that is down. Before this was fixed, js-ipfs's
//! `404 {"Message":"Not Found"}` became status 1, "usage record not found", on chain.

use std::time::Duration;

use px_cli::daemon::{Capability, Ipfs};
use px_core::contracts::sync_status;

use crate::common::{Env, TestResult, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_without_routing_get_never_decides_a_sync() -> TestResult {
    let backend = Ipfs::from_test_env();
    if backend.lacks(Capability::RoutingGet).is_none() {
        eprintln!(
            "SKIPPED a_backend_without_routing_get_never_decides_a_sync on {backend}: it needs \
             a backend without routing/get (PX_TEST_IPFS=jsipfs)"
        );
        return Ok(());
    }
    let env = Env::spawn(None).await?;
    let oracle = env.relayer().await?;
    // A token the node served: key, usage record and IPNS record all on the daemon.
    let token = env.served_token("no-routing", 4321, 2).await?;

    env.request_sync(0, token).await?;
    let failed = wait_for(Duration::from_secs(20), || async {
        oracle
            .metrics()
            .render()
            .contains("px_oracle_failures_total{kind=\"ipfs_unavailable\"}")
            .then_some(())
    })
    .await;
    assert!(
        failed.is_some(),
        "the relayer saw the backend as unavailable"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let info = env.info(token).await?;
    assert!(info.pending, "no answer while the request is young");
    assert_eq!(env.oracle_tx_count().await?, 0);

    // At the expiry margin it gives up with IPFS_UNAVAILABLE: no usage, not a record verdict.
    env.devnet.time_travel(280).await?;
    let info = env.wait_answered(token, Duration::from_secs(30)).await?;
    assert_eq!(info.lastStatus, sync_status::IPFS_UNAVAILABLE);
    assert_eq!((info.used, info.seq), (0, 0));
    oracle.shutdown().await;
    Ok(())
}
