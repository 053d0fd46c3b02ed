//! Malicious and broken records: each is answered on chain with its error status and changes
//! no usage. The store plays a malicious daemon where needed (records injected into its repo
//! bypass the API's own verification), so the oracle's local verification is what is tested.
//! On Kubo those forged cases are skipped by name (a real daemon verifies what it stores);
//! the validly signed ones (bound elsewhere, oversized, not JSON, above quota, sequence
//! regressed) go through Kubo's own `routing/put`.

use std::time::{Duration, SystemTime};

use alloy::primitives::{Address, U256};
use libp2p_identity::Keypair;
use px_cli::daemon::Capability;
use px_core::contracts::GateReason;
use px_core::contracts::sync_status;
use px_core::ipns::{IpnsEntry, IpnsName, create_record};

use crate::common::{Env, TestResult, signed_record, skip};

const ANSWER_WITHIN: Duration = Duration::from_secs(40);

struct Case {
    label: &'static str,
    token: U256,
    expect: u8,
}

/// Mints a token bound to a fresh local key; returns (token, key, name).
async fn token_with_key(env: &Env) -> TestResult<(U256, Keypair, IpnsName)> {
    let token = env.mint(0).await?;
    let key = Keypair::generate_ed25519();
    let name = IpnsName::from_public_key(&key.public());
    env.bind(token, &name).await?;
    Ok((token, key, name))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_record_is_answered_with_its_status_and_no_usage() -> TestResult {
    if skip(
        "every_bad_record_is_answered_with_its_status_and_no_usage",
        Capability::RoutingGet,
    ) {
        return Ok(());
    }
    let env = Env::spawn(None).await?;
    let mut config = env.config();
    config.adapter.enabled = false;
    let oracle = px_oracle::spawn(config.clone()).await?;
    let mut cases = Vec::new();

    // Bad signature: a valid record with one bit of its V2 signature flipped.
    if env.can_forge("bad signature") {
        let (token, key, name) = token_with_key(&env).await?;
        let cid = env.add(env.record(token, 10, 1).to_bytes()).await?;
        let mut entry = IpnsEntry::decode(&signed_record(&key, &cid, 1))?;
        let sig = entry.signature_v2.as_mut().expect("V2 signature");
        sig[10] ^= 1;
        env.inject_record(&name, &entry.encode())?;
        cases.push(Case {
            label: "bad signature",
            token,
            expect: sync_status::BAD_SIGNATURE,
        });
    }

    // A valid record for another name, served for this one.
    if env.can_forge("other name") {
        let (token, _key, name) = token_with_key(&env).await?;
        let cid = env.add(env.record(token, 10, 1).to_bytes()).await?;
        let other = Keypair::generate_ed25519();
        env.inject_record(&name, &signed_record(&other, &cid, 1))?;
        cases.push(Case {
            label: "other name",
            token,
            expect: sync_status::BAD_SIGNATURE,
        });
    }

    // Properly signed usage records bound elsewhere.
    for (label, chain, contract, token_delta) in [
        ("wrong chain id", 1u64, None, 0u64),
        ("wrong contract", 31337, Some(Address::repeat_byte(0x42)), 0),
        ("wrong token id", 31337, None, 1000),
    ] {
        let (token, key, name) = token_with_key(&env).await?;
        let mut record = env.record(token, 10, 1);
        record.chain_id = chain;
        if let Some(c) = contract {
            record.contract = c;
        }
        record.token_id += token_delta;
        let cid = env.add(record.to_bytes()).await?;
        env.routing_put(&name, signed_record(&key, &cid, 1)).await?;
        cases.push(Case {
            label,
            token,
            expect: sync_status::WRONG_BINDING,
        });
    }

    // Expired end of life.
    if env.can_forge("expired") {
        let (token, key, name) = token_with_key(&env).await?;
        let cid = env.add(env.record(token, 10, 1).to_bytes()).await?;
        let eol = SystemTime::now() - Duration::from_secs(10);
        let expired = create_record(
            &key,
            &format!("/ipfs/{cid}"),
            1,
            eol,
            Duration::from_secs(60),
        )?;
        env.inject_record(&name, &expired)?;
        cases.push(Case {
            label: "expired",
            token,
            expect: sync_status::RECORD_EXPIRED,
        });
    }

    // Oversized usage record (valid JSON, 80 KiB).
    let (token, key, name) = token_with_key(&env).await?;
    let mut record = env.record(token, 10, 1);
    record.index = "Q".repeat(80 * 1024);
    let cid = env.add(record.to_bytes()).await?;
    env.routing_put(&name, signed_record(&key, &cid, 1)).await?;
    cases.push(Case {
        label: "oversized",
        token,
        expect: sync_status::BAD_USAGE_RECORD,
    });

    // Not JSON.
    let (token, key, name) = token_with_key(&env).await?;
    let cid = env
        .add(b"used=10 files=1, definitely not JSON".to_vec())
        .await?;
    env.routing_put(&name, signed_record(&key, &cid, 1)).await?;
    cases.push(Case {
        label: "not json",
        token,
        expect: sync_status::BAD_USAGE_RECORD,
    });

    // V1-only record (BTFS style) while V1-only is not enabled.
    if env.can_forge("v1 only") {
        let (token, key, name) = token_with_key(&env).await?;
        let cid = env.add(env.record(token, 10, 1).to_bytes()).await?;
        let mut entry = IpnsEntry::decode(&signed_record(&key, &cid, 1))?;
        entry.signature_v2 = None;
        entry.data = None;
        env.inject_record(&name, &entry.encode())?;
        cases.push(Case {
            label: "v1 only",
            token,
            expect: sync_status::V1_ONLY,
        });
    }

    // Nothing published at all.
    let (token, _key, _name) = token_with_key(&env).await?;
    cases.push(Case {
        label: "no record",
        token,
        expect: sync_status::RECORD_NOT_FOUND,
    });

    // Used above quota: a valid record; it is stored and the gate closes.
    let (over, key, name) = token_with_key(&env).await?;
    let quota = env.info(over).await?.quota;
    let cid = env.add(env.record(over, quota + 1, 1).to_bytes()).await?;
    env.routing_put(&name, signed_record(&key, &cid, 1)).await?;
    cases.push(Case {
        label: "above quota",
        token: over,
        expect: sync_status::OK,
    });

    // A token synced at sequence 5 that will later be served sequence 3.
    let (regress, regress_key, regress_name) = token_with_key(&env).await?;
    let cid = env.add(env.record(regress, 500, 5).to_bytes()).await?;
    env.routing_put(&regress_name, signed_record(&regress_key, &cid, 1))
        .await?;
    cases.push(Case {
        label: "sequence baseline",
        token: regress,
        expect: sync_status::OK,
    });

    for case in &cases {
        env.request_sync(0, case.token).await?;
    }
    for case in &cases {
        let info = env.wait_answered(case.token, ANSWER_WITHIN).await?;
        assert_eq!(info.lastStatus, case.expect, "{}: status", case.label);
        if case.expect != sync_status::OK {
            assert_eq!(info.used, 0, "{}: no usage written", case.label);
            assert_eq!(info.seq, 0, "{}: no sequence written", case.label);
        }
    }

    let info = env.info(over).await?;
    assert_eq!(info.used, quota + 1);
    let gate = env.nft(0).canUpload(over, U256::from(1)).call().await?;
    assert!(!gate.ok);
    assert_eq!(
        GateReason::from_u8(gate.reason),
        Some(GateReason::QuotaExceeded)
    );

    // Lower sequence: the node (validly) publishes an older usage record.
    env.devnet.time_travel(61).await?;
    let cid = env.add(env.record(regress, 1, 3).to_bytes()).await?;
    env.routing_put(&regress_name, signed_record(&regress_key, &cid, 2))
        .await?;
    env.request_sync(0, regress).await?;
    let info = env.wait_answered(regress, ANSWER_WITHIN).await?;
    assert_eq!(info.lastStatus, sync_status::SEQUENCE_REGRESSED);
    assert_eq!((info.used, info.seq), (500, 5), "usage kept");

    let metrics = oracle.metrics().render();
    let forged = ["bad_signature", "record_expired", "v1_only"];
    for kind in [
        "bad_signature",
        "wrong_binding",
        "record_expired",
        "bad_usage_record",
        "v1_only",
        "record_not_found",
        "sequence_regressed",
    ] {
        if forged.contains(&kind) && !env.can_forge(kind) {
            continue;
        }
        assert!(
            metrics.contains(&format!("px_oracle_answers_total{{kind=\"{kind}\"}}")),
            "{kind} counted"
        );
    }

    // A daemon replaying an older IPNS record than one already verified, after the oracle
    // restarted (the floor lives in the relayer's database).
    if !env.can_forge("replayed older record") {
        oracle.shutdown().await;
        return Ok(());
    }
    oracle.shutdown().await;
    let oracle = px_oracle::spawn(config).await?;
    env.devnet.time_travel(61).await?;
    let cid = env.add(env.record(regress, 600, 6).to_bytes()).await?;
    env.inject_record(&regress_name, &signed_record(&regress_key, &cid, 1))?;
    env.request_sync(0, regress).await?;
    let info = env.wait_answered(regress, ANSWER_WITHIN).await?;
    assert_eq!(info.lastStatus, sync_status::SEQUENCE_REGRESSED);
    assert_eq!((info.used, info.seq), (500, 5), "usage kept");

    oracle.shutdown().await;
    Ok(())
}

/// BTFS mode: a V1-only record's signature does not cover its sequence, so a genuine V1-only
/// record served with sequence 2^64-1 must not raise the floor and lock the name: the owner's
/// next (V2) record is still accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v1_only_record_does_not_raise_the_sequence_floor() -> TestResult {
    use std::sync::Arc;

    use px_oracle::ipfs::{IpfsFlavor, KuboRpc};
    use px_oracle::resolver::{MemoryFloor, Resolver, ResolverOptions};

    let env = Env::spawn(None).await?;
    if !env.can_forge("v1-only record with sequence 2^64-1") {
        return Ok(());
    }
    let d = &env.devnet.deployment;
    // px-store serves `/api/v0` only, so the client uses that prefix; V1-only acceptance is the
    // resolver option BTFS mode sets.
    let ipfs = KuboRpc::new(
        &env.ipfs.url(),
        IpfsFlavor::Embedded,
        Duration::from_secs(2),
    )?;
    let resolver = Resolver::new(
        env.devnet.provider(0),
        d.chain_id,
        d.storage_nft,
        Arc::new(ipfs),
        ResolverOptions {
            allow_v1_only: true,
            max_record_bytes: px_core::record::MAX_RECORD_BYTES,
        },
        Arc::new(MemoryFloor::default()),
    );
    let (token, key, name) = token_with_key(&env).await?;

    // A genuine record, stripped to its V1 signature, sequence set to the maximum (V1 does
    // not sign it).
    let cid = env.add(env.record(token, 10, 1).to_bytes()).await?;
    let mut entry = IpnsEntry::decode(&signed_record(&key, &cid, 1))?;
    entry.signature_v2 = None;
    entry.data = None;
    entry.sequence = Some(u64::MAX);
    env.inject_record(&name, &entry.encode())?;
    let answer = resolver.resolve(token).await?;
    assert_eq!(answer.status, sync_status::OK, "{:?}", answer.reason);

    // The owner's next record, V2-signed with sequence 2.
    let cid = env.add(env.record(token, 20, 2).to_bytes()).await?;
    env.inject_record(&name, &signed_record(&key, &cid, 2))?;
    let answer = resolver.resolve(token).await?;
    assert_eq!(answer.status, sync_status::OK, "{:?}", answer.reason);
    assert_eq!(answer.used, 20);
    Ok(())
}
