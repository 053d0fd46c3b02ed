//! `px provider …` against a devnet and a real `px-node --role provider`: the node refuses to
//! start for an unregistered key and starts once `px provider register` listed it; `status`,
//! `update`, `stake`, `pause`/`resume`, `claim` with nothing to claim, `exit`, `withdraw`
//! refused while bonded and accepted after the unbonding delay (anvil's clock moved on).

use std::{process::Stdio, time::Duration};

use alloy::primitives::{U256, utils::parse_ether};
use px_sdk::contracts::PXToken;
use serde_json::Value;

use crate::{
    cli::{json, ok, px_command},
    common::{Env, node_bin, spawn_chain_with_accounts, spawn_node_with},
};

/// The provider's anvil account.
const PROVIDER: usize = 10;

/// Runs `px` with the provider's wallet.
async fn pxp(env: &Env, home: &std::path::Path, args: &[&str]) -> std::process::Output {
    px_command(env, None, home, args)
        .env("PX_PRIVATE_KEY", env.key_hex(PROVIDER))
        .output()
        .await
        .expect("run px")
}

/// Asserts `px` failed with `code` and its error says every one of `words`.
fn refused(out: &std::process::Output, code: i32, words: &[&str]) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{err}");
    for w in words {
        assert!(err.contains(w), "{w:?} missing in: {err}");
    }
}

fn wei(v: &Value) -> U256 {
    v.as_str().expect("a decimal string").parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_registers_runs_stakes_exits_and_withdraws() {
    let started = std::time::Instant::now();
    let env = spawn_chain_with_accounts(12).await;
    let d = &env.devnet;
    let me = d.address(PROVIDER);
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let px_token = PXToken::new(d.deployment.px_token, d.provider(PROVIDER));
    env.fund_px(me, parse_ether("1000").unwrap()).await;

    let key = alloy::hex::encode(d.signer(PROVIDER).to_bytes());
    let config = env.dir.path().join("provider.toml");
    std::fs::write(&config, "[home]\nenabled = false\n").unwrap();
    let node_args = [
        "--role",
        "provider",
        "--provider-key",
        key.as_str(),
        "--config",
        config.to_str().unwrap(),
    ];

    // Before registration the provider role refuses to start, saying so.
    let data = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let early = tokio::process::Command::new(node_bin())
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--rpc-url")
        .arg(d.rpc_url())
        .arg("--deployment")
        .arg(env.deployment_path())
        .arg("--data-dir")
        .arg(data.path().join("node"))
        .args(node_args)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output();
    let early = tokio::time::timeout(Duration::from_secs(30), early)
        .await
        .expect("an unregistered provider node exits")
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&early.stdout),
        String::from_utf8_lossy(&early.stderr)
    );
    assert!(!early.status.success(), "{said}");
    assert!(said.contains("is not registered"), "{said}");

    // Nothing listed yet: status says so, and a wallet that is not a provider cannot claim or
    // stake.
    let st = json(&pxp(&env, h, &["provider", "status", "--json"]).await);
    assert_eq!(st["registered"], false);
    let out = pxp(&env, h, &["provider", "stake", "5"]).await;
    refused(
        &out,
        3,
        &["is not a registered provider", "px provider register"],
    );

    // Bad registrations: not an http(s) endpoint (usage), a stake below the minimum (the
    // contract's refusal with both figures), a malformed capacity.
    let reg = |endpoint: &'static str, capacity: &'static str, stake: &'static str| {
        [
            "provider",
            "register",
            "--endpoint",
            endpoint,
            "--capacity",
            capacity,
            "--price",
            "0.5",
            "--stake",
            stake,
            "--region",
            "3",
        ]
    };
    let out = pxp(&env, h, &reg("ftp://127.0.0.1:9", "10GiB", "100")).await;
    refused(&out, 2, &["http:// or https://"]);
    let out = pxp(&env, h, &reg("http://127.0.0.1:9", "10 XB", "100")).await;
    refused(&out, 2, &["unknown unit"]);
    let out = pxp(&env, h, &reg("http://127.0.0.1:9", "10GiB", "50")).await;
    refused(&out, 3, &["stake of 50 PX", "minimum stake of 100 PX"]);
    assert_eq!(
        px_token
            .allowance(me, d.deployment.provider_registry.unwrap())
            .call()
            .await
            .unwrap(),
        U256::ZERO,
        "no approval for a registration that cannot pass"
    );

    // Register through the CLI (approving the registry), then the provider node starts.
    let r = json(
        &pxp(
            &env,
            h,
            &[&reg("http://127.0.0.1:9", "10GiB", "100")[..], &["--json"]].concat(),
        )
        .await,
    );
    assert_eq!(r["capacity"], 10u64 << 30);
    assert_eq!(wei(&r["stake"]), parse_ether("100").unwrap());
    assert_eq!(wei(&r["pricePerGibMonth"]), parse_ether("0.5").unwrap());
    assert_eq!(
        px_token.balanceOf(me).call().await.unwrap(),
        parse_ether("900").unwrap()
    );
    let out = pxp(&env, h, &reg("http://127.0.0.1:9", "10GiB", "100")).await;
    refused(&out, 3, &["already registered", "px provider update"]);

    let node = spawn_node_with(&env, &node_args).await;
    let text = ok(&pxp(
        &env,
        h,
        &[
            "provider",
            "update",
            "--endpoint",
            &node.url,
            "--capacity",
            "20GiB",
        ],
    )
    .await);
    assert!(text.contains("20.0 GiB"), "{text}");
    let out = pxp(&env, h, &["provider", "update"]).await;
    assert_eq!(out.status.code(), Some(2), "update needs a change");

    // Status, as the provider and as anyone else (by address).
    let st = json(&pxp(&env, h, &["provider", "status", "--json"]).await);
    assert_eq!(st["registered"], true);
    assert_eq!(st["endpoint"], node.url.as_str());
    assert_eq!(st["region"], 3);
    assert_eq!(st["capacity"], 20u64 << 30);
    assert_eq!(st["reserved"], 0);
    assert_eq!(wei(&st["pricePerGibMonth"]), parse_ether("0.5").unwrap());
    assert_eq!(wei(&st["stake"]), parse_ether("100").unwrap());
    assert_eq!(
        (&st["certified"], &st["paused"], &st["active"]),
        (&Value::Bool(false), &Value::Bool(false), &Value::Bool(true))
    );
    assert_eq!(st["unbondsAt"], Value::Null);
    assert_eq!(st["earnings"], "0");
    let me_s = me.to_string();
    let text = ok(&px_command(&env, None, h, &["provider", "status", &me_s])
        .output()
        .await
        .unwrap());
    assert!(
        text.contains(&node.url)
            && text.contains("0.5 PX per GiB-month")
            && text.contains("100 PX (minimum 100 PX)"),
        "{text}"
    );

    // Stake, pause, resume.
    let s = json(&pxp(&env, h, &["provider", "stake", "25.5", "--json"]).await);
    assert_eq!(wei(&s["stake"]), parse_ether("125.5").unwrap());
    ok(&pxp(&env, h, &["provider", "pause"]).await);
    let st = json(&pxp(&env, h, &["provider", "status", "--json"]).await);
    assert_eq!(
        (&st["paused"], &st["active"]),
        (&Value::Bool(true), &Value::Bool(false))
    );
    ok(&pxp(&env, h, &["provider", "resume"]).await);
    let st = json(&pxp(&env, h, &["provider", "status", "--json"]).await);
    assert_eq!(st["active"], true);

    // Nothing earned: the market refuses the claim.
    let out = pxp(&env, h, &["provider", "claim"]).await;
    refused(&out, 3, &["no earnings to claim"]);

    // Exit: withdraw is refused before the exit and while bonded, then passes a day later.
    let out = pxp(&env, h, &["provider", "withdraw"]).await;
    refused(&out, 3, &["request the exit first"]);
    let before = d.provider(PROVIDER);
    let now = alloy::providers::Provider::get_block_by_number(&before, Default::default())
        .await
        .unwrap()
        .unwrap()
        .header
        .timestamp;
    let e = json(&pxp(&env, h, &["provider", "exit", "--json"]).await);
    let unbonds_at = e["unbondsAt"].as_u64().unwrap();
    assert!(
        (now + 86_400..now + 86_400 + 60).contains(&unbonds_at),
        "{e}"
    );
    let out = pxp(&env, h, &["provider", "exit"]).await;
    refused(&out, 3, &["already requested its exit"]);
    let out = pxp(&env, h, &["provider", "withdraw"]).await;
    refused(&out, 3, &["still bonded", &unbonds_at.to_string()]);
    let st = json(&pxp(&env, h, &["provider", "status", "--json"]).await);
    assert_eq!(
        (st["unbondsAt"].as_u64(), &st["unbonded"], &st["active"]),
        (Some(unbonds_at), &Value::Bool(false), &Value::Bool(false))
    );
    drop(node);

    d.time_travel(86_400 + 1).await.unwrap();
    let st = json(&pxp(&env, h, &["provider", "status", "--json"]).await);
    assert_eq!(st["unbonded"], true);
    let w = json(&pxp(&env, h, &["provider", "withdraw", "--json"]).await);
    assert_eq!(wei(&w["withdrawn"]), parse_ether("125.5").unwrap());
    assert_eq!(
        px_token.balanceOf(me).call().await.unwrap(),
        parse_ether("1000").unwrap()
    );
    let st = json(&pxp(&env, h, &["provider", "status", "--json"]).await);
    assert_eq!(st["registered"], false);
    eprintln!("provider CLI test took {:?}", started.elapsed());
}
