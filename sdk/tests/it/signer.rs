//! The client with a signer that is not `PrivateKeySigner` and a provider the caller built: the
//! whole node flow works, sessions are reused and revoked, a node naming another site's domain
//! gets no signature, and a wallet that does not sign deterministically cannot derive a key.

use std::sync::{
    Arc,
    atomic::{AtomicBool, AtomicUsize, Ordering},
};

use alloy::{
    network::EthereumWallet,
    primitives::{Address, B256, ChainId, Signature, U256},
    providers::{Provider, ProviderBuilder},
    signers::{Signer, local::PrivateKeySigner},
};
use async_trait::async_trait;
use px_cli::devnet::FIRST_USER;
use px_sdk::{Client, Error, Payment, UploadOptions};

use crate::common::{Env, spawn_chain, spawn_node, spawn_node_with};

/// The order of secp256k1's group.
const SECP256K1_N: U256 = U256::from_be_bytes([
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe,
    0xba, 0xae, 0xdc, 0xe6, 0xaf, 0x48, 0xa0, 0x3b, 0xbf, 0xd2, 0x5e, 0x8c, 0xd0, 0x36, 0x41, 0x41,
]);

/// A wallet of the caller's own, as a hardware wallet or a KMS bridge would be: it signs through
/// an inner key, counts what it was asked to sign and, when `alternate` is set, answers every
/// other signature with its equally valid high-s twin `(r, n - s)`, as a wallet with random
/// nonces would answer a different valid signature each time.
#[derive(Debug)]
struct Wallet {
    key: PrivateKeySigner,
    messages: AtomicUsize,
    hashes: AtomicUsize,
    alternate: bool,
    flip: AtomicBool,
}

impl Wallet {
    fn new(key: PrivateKeySigner, alternate: bool) -> Arc<Self> {
        Arc::new(Self {
            key,
            messages: AtomicUsize::new(0),
            hashes: AtomicUsize::new(0),
            alternate,
            flip: AtomicBool::new(false),
        })
    }
}

/// The shared handle the client holds (so the test can read the counters).
#[derive(Debug, Clone)]
struct WalletHandle(Arc<Wallet>);

#[async_trait]
impl Signer for WalletHandle {
    async fn sign_hash(&self, hash: &B256) -> alloy::signers::Result<Signature> {
        self.0.hashes.fetch_add(1, Ordering::SeqCst);
        let sig = self.0.key.sign_hash(hash).await?;
        if self.0.alternate && self.0.flip.fetch_xor(true, Ordering::SeqCst) {
            return Ok(Signature::new(sig.r(), SECP256K1_N - sig.s(), !sig.v()));
        }
        Ok(sig)
    }

    async fn sign_message(&self, message: &[u8]) -> alloy::signers::Result<Signature> {
        self.0.messages.fetch_add(1, Ordering::SeqCst);
        self.sign_hash(&alloy::primitives::eip191_hash_message(message))
            .await
    }

    fn address(&self) -> Address {
        self.0.key.address()
    }

    fn chain_id(&self) -> Option<ChainId> {
        None
    }

    fn set_chain_id(&mut self, _chain_id: Option<ChainId>) {}
}

/// A client on a provider built here (a concrete, non-erased alloy provider with its own
/// wallet filler) and the custom signer.
async fn custom_client(
    env: &Env,
    wallet: &Arc<Wallet>,
    node_url: &str,
) -> Client<impl Provider + use<>, WalletHandle> {
    let provider = ProviderBuilder::new()
        .wallet(EthereumWallet::from(wallet.key.clone()))
        .connect_http(env.devnet.rpc_url().parse().unwrap());
    Client::builder(
        provider,
        WalletHandle(wallet.clone()),
        env.devnet.deployment.clone(),
    )
    .node(node_url)
    .poll_interval(std::time::Duration::from_millis(100))
    .build()
    .await
    .unwrap()
}

#[tokio::test]
async fn custom_signer_and_provider_run_the_node_flow_with_one_sign_in() {
    let env = spawn_chain().await;
    let node = spawn_node(&env).await;
    let wallet = Wallet::new(env.devnet.signer(FIRST_USER), false);
    let client = custom_client(&env, &wallet, &node.url).await;

    let token = client.mint_via_node(1, Payment::Auto).await.unwrap();
    let up = client
        .upload(
            token,
            &b"signed by a wallet of my own"[..],
            "mine.txt",
            UploadOptions::default(),
        )
        .await
        .unwrap();
    let listed = client.list(token).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].name, "mine.txt");
    let mut out = Vec::new();
    client
        .download(token, &up.file.cid, &mut out)
        .await
        .unwrap();
    assert_eq!(out, b"signed by a wallet of my own");

    // One sign-in served every call: the session is reused, not re-signed per call.
    assert_eq!(wallet.messages.load(Ordering::SeqCst), 1);
    let session = client.session().await.expect("signed in");
    assert!(session.expires_at > session_floor(), "{session:?}");

    // Logout revokes the session on the node: the old token is refused from now on.
    client.logout().await.unwrap();
    assert!(client.session().await.is_none());
    let refused = reqwest::Client::new()
        .get(format!("{}/v1/tokens/{token}/usage", node.url))
        .bearer_auth(&session.token)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    // The next call signs in again.
    client.usage(token).await.unwrap();
    assert_eq!(wallet.messages.load(Ordering::SeqCst), 2);
}

/// Sessions asked for last far longer than the 5 minutes a sign-in used to ask for.
fn session_floor() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 30 * 60
}

#[tokio::test]
async fn a_node_naming_another_domain_gets_no_signature() {
    let env = spawn_chain().await;
    // A node that names another site in its nonce answer (as a malicious node, or anyone on the
    // path of a plain-HTTP URL, would, to obtain a sign-in valid for that site).
    let node = spawn_node_with(&env, &["--public-url", "https://app.example.org"]).await;
    let wallet = Wallet::new(env.devnet.signer(FIRST_USER), false);
    let client = custom_client(&env, &wallet, &node.url).await;

    let err = client.login().await.unwrap_err();
    match &err {
        Error::ForeignSignIn { expected, offered } => {
            assert_eq!(expected.uri, node.url);
            assert_eq!(offered.domain, "app.example.org");
        }
        other => panic!("expected ForeignSignIn, got {other:?}"),
    }
    assert!(err.to_string().contains("refusing to sign in"), "{err}");
    assert_eq!(
        wallet.messages.load(Ordering::SeqCst),
        0,
        "nothing was signed"
    );
    assert_eq!(
        wallet.hashes.load(Ordering::SeqCst),
        0,
        "nothing was signed"
    );
}

#[tokio::test]
async fn a_wallet_that_does_not_sign_deterministically_derives_no_key() {
    let env = spawn_chain().await;
    let node = spawn_node(&env).await;
    let wallet = Wallet::new(env.devnet.signer(FIRST_USER), true);
    let client = custom_client(&env, &wallet, &node.url).await;
    match client.owner_key().await.unwrap_err() {
        Error::NondeterministicSigner { address } => assert_eq!(address, client.address()),
        other => panic!("expected NondeterministicSigner, got {other:?}"),
    }
    // The same wallet without the alternation derives the key the local key derives.
    let steady = Wallet::new(env.devnet.signer(FIRST_USER), false);
    let steady = custom_client(&env, &steady, &node.url).await;
    let local = env.client(FIRST_USER).await;
    assert_eq!(
        steady.owner_key().await.unwrap().id(),
        local.owner_key().await.unwrap().id()
    );
}
