//! Issue 15: concurrent `px upload`s to one token, more than its quota holds, as a new user
//! would try them. Every refused upload must end with the node's reason on stderr and the
//! "refused" exit code (3), never die of SIGPIPE (exit 141) because the node answered and closed
//! the connection while the body was still being sent.

use std::{process::Stdio, time::Instant};

use px_cli::devnet::FIRST_USER;

use crate::{
    cli::{json, px, px_command},
    common::{spawn_chain, spawn_node},
};

/// Concurrent uploads (the run had 30 of 5 MiB; fewer, larger ones keep CI's time down
/// and still overrun the quota with most of them sending when the node refuses).
const PROCS: usize = 14;
/// Bytes per upload.
const SIZE: usize = 10 << 20;
/// Exit code of a refusal (cli/README.md).
const REFUSED: i32 = 3;

#[tokio::test]
async fn concurrent_uploads_over_quota_are_refused_with_the_nodes_reason() {
    let env = spawn_chain().await;
    let node = spawn_node(&env).await;
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let n = Some(&node);
    let minted = json(&px(&env, n, h, &["mint", "--plan", "1", "--json"]).await);
    let id = minted["tokenId"].as_u64().unwrap().to_string();
    let quota = minted["token"]["quota"].as_u64().unwrap();

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("big.bin");
    let mut x: u32 = 0x1234_5678;
    let content: Vec<u8> = (0..SIZE)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    std::fs::write(&file, &content).unwrap();
    let file = file.to_str().unwrap();

    let started = Instant::now();
    let names: Vec<String> = (0..PROCS).map(|i| format!("part-{i}.bin")).collect();
    let children: Vec<_> = names
        .iter()
        .map(|name| {
            px_command(&env, n, h, &["upload", &id, file, "--name", name])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn px")
        })
        .collect();
    let mut accepted = 0u64;
    let mut refused = 0;
    for child in children {
        let out = child.wait_with_output().await.unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        match out.status.code() {
            Some(0) => accepted += 1,
            Some(REFUSED) => {
                refused += 1;
                assert!(
                    stderr.contains("storage node: over quota"),
                    "a refusal without the node's reason: {stderr}"
                );
            }
            code => panic!(
                "px upload ended with {code:?} ({}), not accepted or refused\nstderr: {stderr}",
                out.status
            ),
        }
    }
    let elapsed = started.elapsed();
    eprintln!(
        "{PROCS} concurrent uploads of {} MiB to a {} MiB token: {accepted} accepted, {refused} \
         refused with the node's reason, 0 silent, in {:.1} s",
        SIZE >> 20,
        quota >> 20,
        elapsed.as_secs_f64()
    );
    assert!(refused > 0, "the quota was never reached");
    assert!(accepted > 0);

    // What was accepted is what the token uses, within its quota.
    let listed = json(&px(&env, n, h, &["ls", &id, "--json"]).await);
    let files = listed.as_array().unwrap();
    assert_eq!(files.len() as u64, accepted);
    let used: u64 = files
        .iter()
        .map(|f| f["entry"]["size"].as_u64().unwrap())
        .sum();
    assert!(used <= quota, "{used} > {quota}");
    let usage = px_sdk::Client::new(env.config(FIRST_USER).with_node(node.url.clone()))
        .await
        .unwrap()
        .usage(id.parse().unwrap())
        .await
        .unwrap();
    assert_eq!((usage.used, usage.file_count), (used, accepted));
}
