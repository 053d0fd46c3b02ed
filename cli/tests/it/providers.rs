//! `px` on the provider network, end to end against a devnet, a home node and six real
//! provider nodes: `px providers`, `px fund`, `px upload --redundancy`, `px ls`, a transparent
//! `px download` of the network file (also with two providers stopped) and `px status` with
//! the token's deals and file health.

use std::collections::HashMap;

use alloy::primitives::{Address, U256};
use px_cli::devnet::FIRST_USER;
use px_sdk::contracts::StorageMarket;

use crate::{
    cli::{json, ok, px},
    common::{NodeProc, spawn_chain_with_accounts, spawn_node, spawn_provider},
};

/// Listing price: 1 PX per GiB-month.
const PRICE: u128 = 1_000_000_000_000_000_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn px_funds_uploads_at_4_of_6_and_downloads_from_providers() {
    let env = spawn_chain_with_accounts(20).await;
    let d = &env.devnet;
    let node = spawn_node(&env).await;
    let mut providers: HashMap<Address, NodeProc> = HashMap::new();
    for a in 10..16 {
        providers.insert(d.address(a), spawn_provider(&env, a, PRICE).await);
    }
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let n = Some(&node);

    // The registry: six certified providers at their URLs, nothing proven yet.
    let listed = json(&px(&env, n, h, &["providers", "--json"]).await);
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 6, "{listed:?}");
    for p in listed {
        let address: Address = p["address"].as_str().unwrap().parse().unwrap();
        assert_eq!(p["endpoint"], providers[&address].url.as_str());
        assert_eq!(p["certified"], true);
        assert_eq!(p["pricePerGibMonth"], PRICE.to_string());
        assert_eq!(
            (p["proofs"].as_u64(), p["missed"].as_u64()),
            (Some(0), Some(0))
        );
    }
    let text = ok(&px(&env, n, h, &["providers"]).await);
    assert!(
        text.contains("certified") && text.contains("1 PX"),
        "{text}"
    );

    let minted = json(&px(&env, n, h, &["mint", "--plan", "1", "--json"]).await);
    let t = minted["tokenId"].as_u64().unwrap().to_string();
    let t = t.as_str();

    // Fund: 2.5 PX from the wallet into the token's escrow; a malformed amount is a usage error.
    env.fund_px(d.address(FIRST_USER), U256::from(10u64).pow(U256::from(19)))
        .await;
    let funded = json(&px(&env, n, h, &["fund", t, "2.5", "--json"]).await);
    assert_eq!(funded["escrow"], "2500000000000000000");
    let bad = px(&env, n, h, &["fund", t, "2,5"]).await;
    assert_eq!(bad.status.code(), Some(2));

    let plain = px_cli::devnet::sample_bytes(3 << 20, 5);
    let file = h.join("three.bin");
    std::fs::write(&file, &plain).unwrap();
    let f = file.to_str().unwrap();

    // The node is not the token's home node yet: refused with the next step.
    let refused = px(&env, n, h, &["upload", t, f, "--redundancy", "4/6"]).await;
    assert_eq!(refused.status.code(), Some(3));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains(&format!("px home {t}")), "{err}");
    let named = json(&px(&env, n, h, &["home", t, "--json"]).await);
    assert_eq!(
        named["homeNode"]
            .as_str()
            .unwrap()
            .parse::<alloy::primitives::Address>()
            .unwrap(),
        d.address(px_cli::devnet::REGISTRAR)
    );
    let market = StorageMarket::new(d.deployment.storage_market.unwrap(), d.provider(FIRST_USER));
    assert_eq!(
        market
            .homeNodeOf(t.parse::<U256>().unwrap())
            .call()
            .await
            .unwrap(),
        d.address(px_cli::devnet::REGISTRAR)
    );

    let up = json(
        &px(
            &env,
            n,
            h,
            &["upload", t, f, "--redundancy", "4/6", "--json"],
        )
        .await,
    );
    assert_eq!(up["redundancy"], "4/6");
    assert_eq!(up["encrypted"], true);
    assert_eq!(up["providers"].as_array().unwrap().len(), 6);
    assert_eq!(up["file"]["redundancy"], "4/6");
    let cid = up["file"]["cid"].as_str().unwrap().to_string();
    let listed = ok(&px(&env, n, h, &["ls", t]).await);
    assert!(
        listed.contains("4/6") && listed.contains("three.bin"),
        "{listed}"
    );

    // Downloaded transparently from the providers (plain lines per piece on stderr).
    let out = h.join("back.bin");
    let got = px(
        &env,
        n,
        h,
        &["download", t, &cid, "-o", out.to_str().unwrap()],
    )
    .await;
    let text = ok(&got);
    assert!(text.contains("from providers at 4/6"), "{text}");
    let pieces = String::from_utf8_lossy(&got.stderr);
    assert_eq!(pieces.matches(": good").count(), 4, "{pieces}");
    assert!(std::fs::read(&out).unwrap() == plain, "plaintext differs");

    // Status: the token's network files, healthy.
    let status = json(&px(&env, n, h, &["status", t, "--json"]).await);
    let files = status["network"]["files"].as_array().unwrap();
    assert_eq!(files.len(), 1, "{status}");
    assert_eq!(files[0]["redundancy"], "4/6");
    let text = ok(&px(&env, n, h, &["status", t]).await);
    assert!(text.contains("escrow") && text.contains("file "), "{text}");

    // Two providers stopped: still readable, both named.
    let stopped: Vec<Address> = providers.keys().take(2).copied().collect();
    for a in &stopped {
        providers.remove(a);
    }
    let again = json(
        &px(
            &env,
            n,
            h,
            &[
                "download",
                t,
                &cid,
                "-o",
                out.to_str().unwrap(),
                "--force",
                "--json",
            ],
        )
        .await,
    );
    assert!(std::fs::read(&out).unwrap() == plain, "plaintext differs");
    let mut offline: Vec<Address> = again["offlineProviders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().parse().unwrap())
        .collect();
    offline.sort();
    let mut want = stopped.clone();
    want.sort();
    assert_eq!(offline, want, "{again}");
}
