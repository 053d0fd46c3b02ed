//! One fixture for every integration test: a devnet (anvil + the forge deployment), clients for
//! its accounts, the oracle's part of a sync (answering the real Operator's request from the
//! oracle account, as px-oracle does), and a real `px-node` process with its embedded store.

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use alloy::{
    primitives::{Address, B256, Bytes, U256},
    providers::Provider,
    rpc::types::Filter,
    signers::Signer,
    sol_types::{SolCall, SolEvent},
};
use px_cli::devnet::{ADMIN, Devnet, DevnetConfig, ORACLE, REGISTRAR};
use px_sdk::{
    Client, ClientConfig, api,
    contracts::{Operator, PXToken, StorageNFT, ipns_name_bytes},
    crypto::OwnerKey,
};
use tokio::process::{Child, Command};

/// A devnet plus its deployment written to a file (for the CLI and the node).
pub(crate) struct Env {
    pub(crate) devnet: Devnet,
    pub(crate) dir: tempfile::TempDir,
}

pub(crate) async fn spawn_chain() -> Env {
    let devnet = Devnet::spawn(DevnetConfig::default())
        .await
        .expect("devnet: run `make bootstrap` (npm ci + solc wrappers) first");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("deployment.json"),
        serde_json::to_vec_pretty(&devnet.deployment).unwrap(),
    )
    .unwrap();
    Env { devnet, dir }
}

impl Env {
    pub(crate) fn deployment_path(&self) -> PathBuf {
        self.dir.path().join("deployment.json")
    }

    pub(crate) fn key_hex(&self, account: usize) -> String {
        alloy::hex::encode_prefixed(self.devnet.signer(account).to_bytes())
    }

    pub(crate) fn config(&self, account: usize) -> ClientConfig {
        let mut c = ClientConfig::new(
            self.devnet.rpc_url(),
            self.devnet.signer(account),
            self.devnet.deployment.clone(),
        );
        c.poll_interval = Duration::from_millis(100);
        c
    }

    pub(crate) async fn client(&self, account: usize) -> Client {
        Client::new(self.config(account)).await.unwrap()
    }

    pub(crate) async fn node_client(&self, account: usize, node: &NodeProc) -> Client {
        Client::new(self.config(account).with_node(node.url.clone()))
            .await
            .unwrap()
    }

    pub(crate) async fn node_client_with_key(
        &self,
        account: usize,
        node: &NodeProc,
        key: OwnerKey,
    ) -> Client {
        Client::new(
            self.config(account)
                .with_node(node.url.clone())
                .with_owner_key(key),
        )
        .await
        .unwrap()
    }

    /// Gives `to` some PXToken (the admin holds the minter role).
    pub(crate) async fn fund_px(&self, to: Address, amount: U256) {
        let admin = self.devnet.provider(ADMIN);
        let px = PXToken::new(self.devnet.deployment.px_token, &admin);
        let r = px
            .mint(to, amount)
            .send()
            .await
            .unwrap()
            .get_receipt()
            .await
            .unwrap();
        assert!(r.status());
    }

    /// A key assignment for `minter` signed by the registrar, as a node signs it.
    pub(crate) async fn assignment(&self, minter: Address, seed: u8) -> api::KeyAssignment {
        let name = Bytes::from(ipns_name_bytes(&[seed; 32]).to_vec());
        let provider = self.devnet.provider(ADMIN);
        let nft = StorageNFT::new(self.devnet.deployment.storage_nft, &provider);
        let now = provider
            .get_block_by_number(Default::default())
            .await
            .unwrap()
            .unwrap()
            .header
            .timestamp;
        let deadline = now + 3600;
        let digest = nft
            .keyAssignmentDigest(minter, name.clone(), U256::from(deadline))
            .call()
            .await
            .unwrap();
        let sig = self
            .devnet
            .signer(REGISTRAR)
            .sign_hash(&digest)
            .await
            .unwrap();
        api::KeyAssignment {
            minter,
            ipns_name: name,
            ipns_id: String::new(),
            deadline,
            signature: sig.as_bytes().to_vec().into(),
            chain_id: self.devnet.deployment.chain_id,
            contract: self.devnet.deployment.storage_nft,
        }
    }

    /// Answers token `token_id`'s pending sync through the real Operator from the oracle
    /// account (`fulfillOracleRequest2`), with `status` and the given usage. Returns whether the
    /// Operator's callback succeeded.
    pub(crate) async fn fulfill(
        &self,
        token_id: u64,
        status: u8,
        used: u64,
        files: u32,
        seq: u64,
    ) -> bool {
        let d = &self.devnet.deployment;
        let provider = self.devnet.provider(ORACLE);
        let nft = StorageNFT::new(d.storage_nft, &provider);
        let info = nft.tokenInfo(U256::from(token_id)).call().await.unwrap();
        assert!(info.pending, "token {token_id} has no pending sync request");
        // The latest SyncRequested of the token names the request id.
        let req_logs = provider
            .get_logs(
                &Filter::new()
                    .address(d.storage_nft)
                    .event_signature(StorageNFT::SyncRequested::SIGNATURE_HASH)
                    .topic1(B256::from(U256::from(token_id)))
                    .from_block(d.start_block),
            )
            .await
            .unwrap();
        let request_id = req_logs
            .last()
            .unwrap()
            .log_decode::<StorageNFT::SyncRequested>()
            .unwrap()
            .inner
            .requestId;
        // The Operator's OracleRequest carries what the fulfill must repeat.
        let logs = provider
            .get_logs(
                &Filter::new()
                    .address(d.operator)
                    .event_signature(Operator::OracleRequest::SIGNATURE_HASH)
                    .from_block(d.start_block),
            )
            .await
            .unwrap();
        let req = logs
            .iter()
            .filter_map(|l| l.log_decode::<Operator::OracleRequest>().ok())
            .map(|l| l.inner.data)
            .find(|r| r.requestId == request_id)
            .expect("OracleRequest for the pending sync");
        // abi.encode(requestId, tokenId, status, used, fileCount, seq, recordCid): the callback's
        // arguments, as px-oracle answers.
        let data = StorageNFT::fulfillSyncCall {
            requestId: request_id,
            tokenId: U256::from(token_id),
            status,
            used,
            fileCount: files,
            seq,
            recordCid: Bytes::from(record_cid().to_bytes()),
        }
        .abi_encode()[4..]
            .to_vec();
        let operator = Operator::new(d.operator, &provider);
        let call = operator.fulfillOracleRequest2(
            request_id,
            req.payment,
            req.callbackAddr,
            req.callbackFunctionId,
            req.cancelExpiration,
            data.into(),
        );
        let ok = call.call().await.unwrap();
        let receipt = call
            .gas(600_000)
            .send()
            .await
            .unwrap()
            .get_receipt()
            .await
            .unwrap();
        assert!(receipt.status(), "fulfill transaction failed");
        ok
    }

    /// Waits until token `token_id` has a pending request, then fulfills it with `used`,
    /// `files`, `seq` (in the background, as an oracle would).
    pub(crate) async fn fulfill_when_requested(
        &self,
        token_id: u64,
        used: u64,
        files: u32,
        seq: u64,
    ) -> bool {
        let provider = self.devnet.provider(ORACLE);
        let nft = StorageNFT::new(self.devnet.deployment.storage_nft, &provider);
        for _ in 0..600 {
            if nft
                .tokenInfo(U256::from(token_id))
                .call()
                .await
                .unwrap()
                .pending
            {
                return self.fulfill(token_id, 0, used, files, seq).await;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no sync request for token {token_id} within 60 s");
    }

    pub(crate) async fn time_travel_days(&self, days: u64) {
        self.devnet.time_travel(days * 24 * 3600).await.unwrap();
    }
}

/// The CID the test oracle reports as the usage record's (binary on chain, as px-oracle sends).
pub(crate) fn record_cid() -> cid::Cid {
    px_core::importer::cid_of(b"test usage record", &Default::default())
        .unwrap()
        .cid
}

/// A running `px-node` process (embedded store) on a free loopback port.
pub(crate) struct NodeProc {
    pub(crate) url: String,
    child: Child,
    _data: tempfile::TempDir,
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// The `px-node` binary: `PX_NODE_BIN`, else beside this test's target directory, built on
/// demand with the same cargo.
pub(crate) fn node_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("PX_NODE_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/it-<hash> -> target/<profile>/px-node
    let profile_dir = exe.parent().and_then(Path::parent).unwrap().to_path_buf();
    let bin = profile_dir.join("px-node");
    if !bin.is_file() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = std::process::Command::new(cargo)
            .args(["build", "--locked", "-p", "px-node", "--bin", "px-node"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo build -p px-node");
        assert!(status.success(), "cargo build -p px-node failed");
    }
    assert!(bin.is_file(), "px-node not found at {}", bin.display());
    bin
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub(crate) async fn spawn_node(env: &Env) -> NodeProc {
    spawn_node_with(env, &[]).await
}

/// A node with extra `px-node` flags.
pub(crate) async fn spawn_node_with(env: &Env, extra: &[&str]) -> NodeProc {
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let log = std::fs::File::create(data.path().join("node.log")).unwrap();
    let child = Command::new(node_bin())
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--rpc-url")
        .arg(env.devnet.rpc_url())
        .arg("--deployment")
        .arg(env.deployment_path())
        .arg("--data-dir")
        .arg(data.path().join("node"))
        .arg("--store-sync-writes")
        .arg("false")
        .arg("--owner-cache-secs")
        .arg("0")
        .args(extra)
        .env("PX_NODE_REGISTRAR_KEY", env.key_hex(REGISTRAR))
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("start px-node");
    let http = reqwest::Client::new();
    for _ in 0..300 {
        if let Ok(r) = http.get(format!("{url}/health")).send().await
            && r.status().is_success()
        {
            return NodeProc {
                url,
                child,
                _data: data,
            };
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = std::fs::read_to_string(data.path().join("node.log")).unwrap_or_default();
    panic!("px-node did not become healthy within 30 s:\n{log}");
}

/// A devnet with `accounts` anvil accounts (the provider-network tests take providers' accounts
/// from 10 up).
pub(crate) async fn spawn_chain_with_accounts(accounts: u16) -> Env {
    let devnet = Devnet::spawn(DevnetConfig {
        accounts: Some(accounts),
        ..Default::default()
    })
    .await
    .expect("devnet: run `make bootstrap` (npm ci + solc wrappers) first");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("deployment.json"),
        serde_json::to_vec_pretty(&devnet.deployment).unwrap(),
    )
    .unwrap();
    Env { devnet, dir }
}

/// Registers `account` as a provider (1000 PX minted, 100 staked, 10 GiB at `price` wei per
/// GiB-month, region 1), starts its `px-node --role provider` with the home role off (it shares
/// the devnet's registrar key with the home node and must not run its loops), lists the node's
/// real URL and certifies it.
pub(crate) async fn spawn_provider(env: &Env, account: usize, price: u128) -> NodeProc {
    use alloy::primitives::aliases::U96;
    use px_cli::devnet::send_ok;
    use px_sdk::contracts::ProviderRegistry;
    let d = &env.devnet;
    let registry = d.deployment.provider_registry.unwrap();
    let px = |n: u64| U256::from(n) * U256::from(10u64).pow(U256::from(18));
    send_ok(
        PXToken::new(d.deployment.px_token, d.provider(ADMIN)).mint(d.address(account), px(1000)),
    )
    .await;
    send_ok(PXToken::new(d.deployment.px_token, d.provider(account)).approve(registry, U256::MAX))
        .await;
    let reg = ProviderRegistry::new(registry, d.provider(account));
    let stake = U96::from(100u64) * U96::from(10u64).pow(U96::from(18));
    send_ok(reg.registerProvider("http://127.0.0.1:9".into(), 1, 10 << 30, price, stake)).await;
    let config = env.dir.path().join("provider.toml");
    std::fs::write(&config, "[home]\nenabled = false\n").unwrap();
    let key = alloy::hex::encode(d.signer(account).to_bytes());
    let node = spawn_node_with(
        env,
        &[
            "--role",
            "provider",
            "--provider-key",
            &key,
            "--config",
            config.to_str().unwrap(),
        ],
    )
    .await;
    send_ok(reg.updateListing(node.url.clone(), 1, 10 << 30, price)).await;
    send_ok(ProviderRegistry::new(registry, d.provider(ADMIN)).certify(d.address(account))).await;
    node
}
