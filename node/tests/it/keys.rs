//! Key assignments (mintWithKey) and registerKey.

use alloy::primitives::{Bytes, U256};
use px_core::api::ErrorCode;

use crate::fixture::{Net, data};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_assignment_matches_contract_digest_and_is_reused_until_minted() {
    let net = Net::start().await;
    let node = net.node("keys").await;
    let mut alice = net.user(0, &node);
    alice.login().await;

    let a = alice.key_assignment().await.unwrap();
    assert_eq!(a.minter, alice.address());
    assert_eq!(a.ipns_name.len(), 38);
    assert_eq!(a.chain_id, 31337);
    let digest = net
        .nft(alice.account)
        .keyAssignmentDigest(a.minter, a.ipns_name.clone(), U256::from(a.deadline))
        .call()
        .await
        .unwrap();
    assert_eq!(
        digest,
        node.node()
            .chain()
            .assignment_digest(a.minter, &a.ipns_name, a.deadline)
    );

    // Asking again before minting hands out the same key.
    let b = alice.key_assignment().await.unwrap();
    assert_eq!(a.ipns_name, b.ipns_name);

    let token = alice.mint(&net).await;
    let usage = alice.usage(token).await.unwrap();
    assert_eq!(usage.ipns_id, a.ipns_id);
    assert_eq!(usage.quota, 100 << 20);
    // Now bound: the next assignment is a new key.
    let c = alice.key_assignment().await.unwrap();
    assert_ne!(c.ipns_name, a.ipns_name);

    // Without a session there is no assignment.
    let anon = net.user(5, &node);
    assert_eq!(
        anon.key_assignment().await.unwrap_err().code(),
        ErrorCode::Unauthorized
    );
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_key_binds_a_key_to_a_token_minted_without_one() {
    let net = Net::start().await;
    let node = net.node("register").await;
    let mut alice = net.user(0, &node);
    alice.login().await;
    let nft = net.nft(alice.account);
    let token: U256 = nft.mint(U256::from(1), U256::ZERO).call().await.unwrap();
    nft.mint(U256::from(1), U256::ZERO)
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    let token = token.to::<u64>();
    assert_eq!(
        nft.ownerOf(U256::from(token)).call().await.unwrap(),
        alice.address()
    );

    // No key yet: the node does not serve it.
    let r = alice.upload(token, "x", data(1, 10)).await.unwrap_err();
    assert_eq!(r.code(), ErrorCode::NotServed);

    let url = format!("{}/v1/tokens/{token}/key", alice.base);
    let session = alice.session.clone().unwrap();
    let r = alice
        .http
        .post(&url)
        .bearer_auth(&session)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let k: px_core::api::RegisteredKey = r.json().await.unwrap();
    let on_chain: Bytes = nft.ipnsName(U256::from(token)).call().await.unwrap();
    assert_eq!(on_chain, k.ipns_name);

    let up = alice.upload(token, "x", data(1, 10)).await.unwrap();
    assert_eq!(up.usage.ipns_id, k.ipns_id);
    let r = alice
        .http
        .post(&url)
        .bearer_auth(&session)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    node.shutdown().await;
}
