//! Sign-In with Ethereum and ownership checks.

use std::time::Duration;

use alloy::primitives::U256;
use px_core::api::ErrorCode;
use reqwest::StatusCode;

use crate::fixture::{Net, data};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn siwe_login_succeeds_and_rejects_bad_messages() {
    let net = Net::start().await;
    let node = net.node("auth").await;
    let alice = net.user(0, &node);
    let bob = net.user(1, &node);

    // No session: refused.
    let r = alice.usage(1).await.unwrap_err();
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized)
    );

    // Success, and the nonce cannot be used again.
    let n = alice.nonce().await;
    assert_eq!(n.chain_id, 31337);
    let m = alice.message(&n);
    let s = alice.login_with(&m, &alice.signer.clone()).await.unwrap();
    assert_eq!(s.address, alice.address());
    assert!(s.expires_at <= m.expiration_time.unwrap());
    let r = alice
        .login_with(&m, &alice.signer.clone())
        .await
        .unwrap_err();
    assert_eq!(r.code(), ErrorCode::InvalidNonce, "reused nonce");

    // Wrong domain, wrong URI, wrong chain.
    let mut m = alice.message(&alice.nonce().await);
    m.domain = "evil.example".into();
    assert_eq!(
        alice
            .login_with(&m, &alice.signer.clone())
            .await
            .unwrap_err()
            .code(),
        ErrorCode::WrongDomain
    );
    let mut m = alice.message(&alice.nonce().await);
    m.uri = "https://evil.example/login".into();
    assert_eq!(
        alice
            .login_with(&m, &alice.signer.clone())
            .await
            .unwrap_err()
            .code(),
        ErrorCode::WrongDomain
    );
    let mut m = alice.message(&alice.nonce().await);
    m.chain_id = 1;
    assert_eq!(
        alice
            .login_with(&m, &alice.signer.clone())
            .await
            .unwrap_err()
            .code(),
        ErrorCode::WrongDomain
    );

    // Expired message.
    let mut m = alice.message(&alice.nonce().await);
    m.issued_at -= 600;
    m.expiration_time = Some(m.issued_at + 60);
    let r = alice
        .login_with(&m, &alice.signer.clone())
        .await
        .unwrap_err();
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNAUTHORIZED, ErrorCode::MessageExpired)
    );

    // Wrong signer: a message naming Alice signed by Bob.
    let m = alice.message(&alice.nonce().await);
    assert_eq!(
        alice.login_with(&m, &bob.signer).await.unwrap_err().code(),
        ErrorCode::InvalidSignature
    );
    // ...which did not burn the nonce: Alice can still use it.
    alice.login_with(&m, &alice.signer.clone()).await.unwrap();

    // A nonce the node never issued.
    let mut m = alice.message(&alice.nonce().await);
    m.nonce = "NeverIssued12345".into();
    assert_eq!(
        alice
            .login_with(&m, &alice.signer.clone())
            .await
            .unwrap_err()
            .code(),
        ErrorCode::InvalidNonce
    );

    // A garbage bearer token.
    let mut mallory = net.user(2, &node);
    mallory.session = Some("00".repeat(32));
    assert_eq!(
        mallory.usage(1).await.unwrap_err().code(),
        ErrorCode::Unauthorized
    );
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nonces_expire() {
    let net = Net::start().await;
    let mut config = net.config("nonce-ttl");
    config.nonce_ttl = Duration::from_secs(1);
    let node = px_node::spawn(config).await.unwrap();
    let alice = net.user(0, &node);
    let m = alice.message(&alice.nonce().await);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        alice
            .login_with(&m, &alice.signer.clone())
            .await
            .unwrap_err()
            .code(),
        ErrorCode::InvalidNonce
    );
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_owner_uses_a_token_and_transfers_take_effect() {
    let net = Net::start().await;
    let node = net.node("owner").await;
    let mut alice = net.user(0, &node);
    let mut bob = net.user(1, &node);
    alice.login().await;
    bob.login().await;
    let token = alice.mint(&net).await;
    let up = alice.upload(token, "a.txt", data(1, 100)).await.unwrap();

    // Bob is signed in but does not own the token.
    let r = bob.upload(token, "b.txt", data(2, 10)).await.unwrap_err();
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::FORBIDDEN, ErrorCode::NotOwner)
    );
    assert_eq!(
        bob.usage(token).await.unwrap_err().code(),
        ErrorCode::NotOwner
    );
    assert_eq!(
        bob.list(token, 0, 10).await.unwrap_err().code(),
        ErrorCode::NotOwner
    );
    assert_eq!(
        bob.download(token, &up.file.cid).await.unwrap_err().code(),
        ErrorCode::NotOwner
    );
    assert_eq!(
        bob.delete(token, up.file.id).await.unwrap_err().code(),
        ErrorCode::NotOwner
    );
    assert_eq!(
        alice.download(token, &up.file.cid).await.unwrap(),
        data(1, 100)
    );

    // Alice transfers the token to Bob: within the owner cache (1 s here) the roles swap.
    net.nft(alice.account)
        .transferFrom(alice.address(), bob.address(), U256::from(token))
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        alice
            .upload(token, "late.txt", data(3, 10))
            .await
            .unwrap_err()
            .code(),
        ErrorCode::NotOwner
    );
    let r = bob.upload(token, "b.txt", data(2, 10)).await.unwrap();
    assert_eq!((r.usage.file_count, r.usage.used, r.usage.seq), (2, 110, 2));
    node.shutdown().await;
}
