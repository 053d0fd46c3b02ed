//! The chain side of the client against anvil and the real contracts.

use std::time::Duration;

use alloy::{
    primitives::{U256, utils::parse_ether},
    providers::Provider,
};
use px_cli::devnet::FIRST_USER;
use px_sdk::{Error, Payment, Revert, api::GateReason, contracts::StorageNFT::StorageNFTErrors};

use crate::common::spawn_chain;

#[tokio::test]
async fn plans_are_the_deploy_scripts() {
    let env = spawn_chain().await;
    let plans = env.client(FIRST_USER).await.plans().await.unwrap();
    assert_eq!(plans.len(), 3);
    assert!(plans[0].free && plans[0].mintable);
    assert_eq!(plans[0].quota, 100 << 20);
    assert_eq!(plans[1].quota, 10 << 30);
    assert_eq!(plans[1].token_price, parse_ether("100").unwrap());
    assert_eq!(plans[1].native_price, parse_ether("0.01").unwrap());
    assert_eq!(plans[1].validity, 365 * 24 * 3600);
    assert_eq!(plans[2].quota, 1 << 40);
    let err = env
        .client(FIRST_USER)
        .await
        .mint(9, Payment::Auto)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NoSuchPlan(9)), "{err:?}");
}

#[tokio::test]
async fn free_plan_mints_once_per_address() {
    let env = spawn_chain().await;
    let client = env.client(FIRST_USER).await;
    let id = client.mint(1, Payment::Auto).await.unwrap();
    let t = client.token(id).await.unwrap();
    assert_eq!(t.owner, client.address());
    assert_eq!(t.plan, 1);
    assert_eq!(t.quota, 100 << 20);
    assert_eq!(t.ipns_key, None);
    // The revert decodes to the contract's custom error, with alloy's error as its source.
    let err = client.mint(1, Payment::Auto).await.unwrap_err();
    match err.storage_nft_error() {
        Some(StorageNFTErrors::FreePlanClaimed(e)) => assert_eq!(e.account, client.address()),
        other => panic!("expected FreePlanClaimed, got {other:?} from {err:?}"),
    }
    assert!(std::error::Error::source(&err).is_some(), "{err:?}");
    assert!(matches!(
        client.token(999).await,
        Err(Error::NoSuchToken(999))
    ));
}

#[tokio::test]
async fn paid_plan_mints_by_permit_allowance_and_native_coin() {
    let env = spawn_chain().await;
    let client = env.client(FIRST_USER).await;
    let price = parse_ether("100").unwrap();
    env.fund_px(client.address(), price * U256::from(2)).await;

    // Auto picks a permit while the PX balance covers the price.
    let a = client.mint(2, Payment::Auto).await.unwrap();
    assert_eq!(client.px_balance().await.unwrap(), price);
    let b = client.mint(2, Payment::Allowance).await.unwrap();
    assert_eq!(client.px_balance().await.unwrap(), U256::ZERO);
    assert_ne!(a, b);

    // Without PX, Auto pays the native price.
    let before = client
        .provider()
        .get_balance(client.address())
        .await
        .unwrap();
    let c = client.mint(2, Payment::Auto).await.unwrap();
    let after = client
        .provider()
        .get_balance(client.address())
        .await
        .unwrap();
    assert!(before - after >= parse_ether("0.01").unwrap());
    for id in [a, b, c] {
        let t = client.token(id).await.unwrap();
        assert_eq!((t.plan, t.quota), (2, 10 << 30));
        assert!(t.expires_at > t.now);
    }
    // An explicit permit without the balance is refused by the token.
    assert!(matches!(
        client.mint(2, Payment::Permit).await,
        Err(Error::Reverted {
            revert: Revert::PXToken(_),
            ..
        })
    ));
}

#[tokio::test]
async fn mint_with_key_binds_the_nodes_ipns_key() {
    let env = spawn_chain().await;
    let client = env.client(FIRST_USER).await;
    let assignment = env.assignment(client.address(), 0xab).await;
    let id = client
        .mint_with_key(1, &assignment, Payment::Auto)
        .await
        .unwrap();
    let t = client.token(id).await.unwrap();
    assert_eq!(t.ipns_key, Some([0xab; 32].into()));
    assert_eq!(client.ipns_name(id).await.unwrap(), assignment.ipns_name);

    // An assignment for another wallet is refused before any transaction.
    let other = env.client(FIRST_USER + 1).await;
    assert!(matches!(
        other.mint_with_key(1, &assignment, Payment::Auto).await,
        Err(Error::NodeMismatch(_))
    ));
}

#[tokio::test]
async fn gate_closes_after_the_sync_window_and_reopens_after_a_sync() {
    let env = spawn_chain().await;
    let client = env.client(FIRST_USER).await;
    let no_key = client.mint(1, Payment::Auto).await.unwrap();
    let gate = client.can_upload(no_key, 1).await.unwrap();
    assert_eq!((gate.ok, gate.reason), (false, GateReason::NoKey));
    assert!(matches!(
        client.request_sync(no_key).await,
        Err(Error::SyncNotAllowed { .. })
    ));

    let assignment = env.assignment(client.address(), 7).await;
    let id = client
        .mint_with_key(2, &assignment, Payment::Native)
        .await
        .unwrap();
    assert!(client.can_upload(id, 1 << 20).await.unwrap().ok);
    let over = client.can_upload(id, (10 << 30) + 1).await.unwrap();
    assert_eq!(over.reason, GateReason::QuotaExceeded);

    env.time_travel_days(31).await;
    let gate = client.can_upload(id, 1).await.unwrap();
    assert_eq!((gate.ok, gate.reason), (false, GateReason::NotSynced));
    match client.ensure_can_upload(id, 1, false).await.unwrap_err() {
        Error::GateClosed { reason, detail, .. } => {
            assert_eq!(reason, GateReason::NotSynced);
            assert!(detail.contains("31 days ago"), "{detail}");
            assert!(
                detail.contains(&format!("run `px sync {id} --wait`")),
                "{detail}"
            );
        }
        other => panic!("expected GateClosed, got {other:?}"),
    }

    // Another wallet cannot request the owner's sync.
    let stranger = env.client(FIRST_USER + 1).await;
    assert!(matches!(
        stranger.request_sync(id).await,
        Err(Error::NotOwner { .. })
    ));

    let request = client.request_sync(id).await.unwrap();
    assert!(client.token(id).await.unwrap().pending);
    // A second request while one is pending is refused with the next step.
    match client.request_sync(id).await.unwrap_err() {
        Error::SyncNotAllowed { detail, .. } => assert!(detail.contains("--wait"), "{detail}"),
        other => panic!("{other:?}"),
    }
    // Nothing answered yet: waiting times out.
    assert!(matches!(
        client
            .wait_answer(&request, Duration::from_millis(300))
            .await,
        Err(Error::Timeout(..))
    ));
    let (synced, fulfilled) = tokio::join!(
        client.wait_synced(id, Duration::from_secs(60)),
        env.fulfill_when_requested(id, 12_345, 3, 1)
    );
    assert!(fulfilled);
    let synced = synced.unwrap();
    assert_eq!(synced.request_id, request.request_id);
    assert_eq!((synced.used, synced.file_count, synced.seq), (12_345, 3, 1));
    assert_eq!(synced.record_cid, crate::common::record_cid().to_string());
    let t = client.token(id).await.unwrap();
    assert_eq!(
        (t.used, t.file_count, t.seq, t.pending),
        (12_345, 3, 1, false)
    );
    assert!(client.can_upload(id, 1).await.unwrap().ok);
    client.ensure_can_upload(id, 1, false).await.unwrap();

    // Too soon for another request (minimum interval).
    match client.request_sync(id).await.unwrap_err() {
        Error::SyncNotAllowed { detail, .. } => assert!(detail.contains("try again"), "{detail}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn failed_sync_is_a_typed_error_and_auto_sync_reopens_the_gate() {
    let env = spawn_chain().await;
    let client = env.client(FIRST_USER).await;
    let assignment = env.assignment(client.address(), 9).await;
    let id = client
        .mint_with_key(1, &assignment, Payment::Auto)
        .await
        .unwrap();
    env.time_travel_days(40).await;

    client.request_sync(id).await.unwrap();
    assert!(env.fulfill(id, 1, 0, 0, 0).await);
    match client
        .wait_synced(id, Duration::from_secs(30))
        .await
        .unwrap_err()
    {
        Error::SyncFailed { token_id, status } => {
            assert_eq!((token_id, status), (id, 1));
            let text = Error::SyncFailed { token_id, status }.to_string();
            assert!(text.contains("usage record not found"), "{text}");
        }
        other => panic!("expected SyncFailed, got {other:?}"),
    }
    assert_eq!(
        client.can_upload(id, 1).await.unwrap().reason,
        GateReason::NotSynced
    );

    // A token without expiry (the free plan) may request at most once per quarter of the sync
    // window: the contract refuses at once, and the SDK says when to try again.
    match client.request_sync(id).await.unwrap_err() {
        Error::SyncNotAllowed { token_id, detail } => {
            assert_eq!(token_id, id);
            assert!(detail.contains("rate-limited"), "{detail}");
        }
        other => panic!("expected SyncNotAllowed, got {other:?}"),
    }

    // auto_sync: request, wait for the oracle, check again.
    env.time_travel_days(8).await;
    let (ensured, fulfilled) = tokio::join!(
        client.ensure_can_upload(id, 1, true),
        env.fulfill_when_requested(id, 10, 1, 2)
    );
    assert!(fulfilled);
    ensured.unwrap();
    assert_eq!(client.token(id).await.unwrap().used, 10);
}

/// Issue 15: on a quiet chain the latest block's timestamp is stale; the minimum sync interval
/// is judged by the chain's "now" (the pending block), as the transaction will be. anvil's
/// clock moves past the interval with no block mined, as wall-clock time does on an idle
/// anvil or a slow L2: the SDK must not answer "try again in ..." then.
#[tokio::test]
async fn sync_interval_is_judged_by_the_chains_now_not_a_stale_latest_block() {
    let env = spawn_chain().await;
    let client = env.client(FIRST_USER).await;
    let assignment = env.assignment(client.address(), 11).await;
    let id = client
        .mint_with_key(1, &assignment, Payment::Auto)
        .await
        .unwrap();
    client.request_sync(id).await.unwrap();
    assert!(env.fulfill(id, 1, 0, 0, 0).await);
    // Still too soon: refused with the time left.
    match client.request_sync(id).await.unwrap_err() {
        Error::SyncNotAllowed { detail, .. } => assert!(detail.contains("try again"), "{detail}"),
        other => panic!("expected SyncNotAllowed, got {other:?}"),
    }
    // The free plan's interval (a quarter of the 30-day window) passes without a block.
    let admin = env.devnet.provider(px_cli::devnet::ADMIN);
    let stale = admin.get_block_number().await.unwrap();
    admin
        .raw_request::<_, serde_json::Value>("evm_increaseTime".into(), (8 * 24 * 3600u64,))
        .await
        .unwrap();
    assert_eq!(
        admin.get_block_number().await.unwrap(),
        stale,
        "no block mined"
    );
    let request = client.request_sync(id).await.unwrap();
    assert!(request.block > stale);
}
