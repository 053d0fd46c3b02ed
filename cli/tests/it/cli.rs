//! The `px` binary end to end: every command against anvil, the contracts and a real node.

use std::{path::Path, process::Output};

use px_cli::devnet::FIRST_USER;
use serde_json::Value;

use crate::common::{Env, NodeProc, spawn_chain, spawn_node};

/// Runs `px` with a clean environment (no user config) pointed at `env` (and `node`).
pub(crate) async fn px(env: &Env, node: Option<&NodeProc>, home: &Path, args: &[&str]) -> Output {
    px_command(env, node, home, args)
        .output()
        .await
        .expect("run px")
}

/// The `px` command [`px`] runs, to spawn it yourself.
pub(crate) fn px_command(
    env: &Env,
    node: Option<&NodeProc>,
    home: &Path,
    args: &[&str],
) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_px"));
    cmd.args(args)
        .env_clear()
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("PX_RPC_URL", env.devnet.rpc_url())
        .env("PX_PRIVATE_KEY", env.key_hex(FIRST_USER))
        .env("PX_DEPLOYMENT", env.deployment_path());
    if let Some(n) = node {
        cmd.env("PX_NODE", &n.url);
    }
    cmd
}

pub(crate) fn ok(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "px failed\nstdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

pub(crate) fn json(out: &Output) -> Value {
    serde_json::from_str(&ok(out)).expect("JSON output")
}

#[tokio::test]
async fn every_command_end_to_end() {
    let env = spawn_chain().await;
    let node = spawn_node(&env).await;
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let n = Some(&node);

    // plans: human and JSON.
    let text = ok(&px(&env, None, h, &["plans"]).await);
    assert!(
        text.contains("100.0 MiB") && text.contains("100 PX"),
        "{text}"
    );
    let plans = json(&px(&env, None, h, &["plans", "--json"]).await);
    assert_eq!(plans.as_array().unwrap().len(), 3);

    // mint through the node (free plan).
    let minted = json(&px(&env, n, h, &["mint", "--plan", "1", "--json"]).await);
    let id = minted["tokenId"].as_u64().unwrap();
    let token = id.to_string();
    let t = &token;
    assert!(minted["token"]["ipnsKey"].is_string());

    // status
    let text = ok(&px(&env, n, h, &["status", t]).await);
    assert!(text.contains("uploads  open"), "{text}");

    // upload (encrypted by default) and unencrypted.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("notes.txt");
    let content: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&file, &content).unwrap();
    let up = json(&px(&env, n, h, &["upload", t, file.to_str().unwrap(), "--json"]).await);
    assert_eq!(up["encrypted"], true);
    assert_eq!(up["name"], "notes.txt");
    let cid = up["file"]["cid"].as_str().unwrap().to_string();
    let text = ok(&px(
        &env,
        n,
        h,
        &[
            "upload",
            t,
            file.to_str().unwrap(),
            "--no-encrypt",
            "--name",
            "plain.txt",
        ],
    )
    .await);
    assert!(text.contains("uploaded plain.txt"), "{text}");

    // ls shows decrypted names.
    let text = ok(&px(&env, n, h, &["ls", t]).await);
    assert!(
        text.contains("notes.txt") && text.contains("plain.txt") && text.contains(&cid),
        "{text}"
    );
    let listed = json(&px(&env, n, h, &["ls", t, "--json"]).await);
    assert_eq!(listed.as_array().unwrap().len(), 2);

    // download and compare.
    let out = dir.path().join("back.txt");
    ok(&px(
        &env,
        n,
        h,
        &["download", t, &cid, "-o", out.to_str().unwrap()],
    )
    .await);
    assert_eq!(std::fs::read(&out).unwrap(), content);
    // Refuses to overwrite without --force.
    let again = px(
        &env,
        n,
        h,
        &["download", t, &cid, "-o", out.to_str().unwrap()],
    )
    .await;
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));

    // rm
    let text = ok(&px(&env, n, h, &["rm", t, &cid]).await);
    assert!(text.contains("deleted"), "{text}");
    let listed = json(&px(&env, n, h, &["ls", t, "--json"]).await);
    assert_eq!(listed.as_array().unwrap().len(), 1);

    // Gate locked after 31 days: the error says what to do next.
    env.time_travel_days(31).await;
    let locked = px(&env, n, h, &["upload", t, file.to_str().unwrap()]).await;
    assert!(!locked.status.success());
    let err = String::from_utf8_lossy(&locked.stderr);
    assert!(
        err.contains("uploads to token")
            && err.contains("locked")
            && err.contains("31 days ago")
            && err.contains(&format!("run `px sync {id} --wait`")),
        "{err}"
    );
    let locked_json = px(&env, n, h, &["upload", t, file.to_str().unwrap(), "--json"]).await;
    let v: Value = serde_json::from_slice(&locked_json.stdout).unwrap();
    assert_eq!(v["error"], "gate_closed");

    // sync --wait, answered by the oracle account.
    let usage = px_sdk::Client::new(env.config(FIRST_USER).with_node(node.url.clone()))
        .await
        .unwrap()
        .usage(id)
        .await
        .unwrap();
    let sync_args = ["sync", t, "--wait", "--timeout", "60", "--json"];
    let (synced, fulfilled) = tokio::join!(
        px(&env, n, h, &sync_args),
        env.fulfill_when_requested(id, usage.used, usage.file_count as u32, usage.seq)
    );
    assert!(fulfilled);
    let synced = json(&synced);
    assert_eq!(synced["synced"]["used"].as_u64().unwrap(), usage.used);
    let text = ok(&px(&env, n, h, &["status", t]).await);
    assert!(text.contains("uploads  open"), "{text}");
    ok(&px(
        &env,
        n,
        h,
        &[
            "upload",
            t,
            file.to_str().unwrap(),
            "--name",
            "after-sync.txt",
        ],
    )
    .await);
}

#[tokio::test]
async fn config_file_then_env_then_flags() {
    let env = spawn_chain().await;
    let home = tempfile::tempdir().unwrap();
    let cfg = home.path().join("px.toml");
    // The file names a dead RPC; the environment's (set by `px`) wins over it.
    std::fs::write(
        &cfg,
        format!(
            "rpc_url = \"http://127.0.0.1:1\"\nprivate_key = \"{}\"\ndeployment = \"deployment.json\"\n",
            env.key_hex(FIRST_USER)
        ),
    )
    .unwrap();
    std::fs::copy(env.deployment_path(), home.path().join("deployment.json")).unwrap();
    let run = |args: Vec<String>, with_env: bool| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_px"));
        cmd.args(&args).env_clear().env("HOME", home.path());
        if with_env {
            cmd.env("PX_RPC_URL", env.devnet.rpc_url());
        }
        cmd.output().unwrap()
    };
    let c = cfg.to_str().unwrap().to_string();
    // File only: its dead RPC fails, and says so.
    let out = run(vec!["--config".into(), c.clone(), "plans".into()], false);
    assert!(!out.status.success());
    // Environment over file.
    let out = run(
        vec![
            "--config".into(),
            c.clone(),
            "plans".into(),
            "--json".into(),
        ],
        true,
    );
    assert_eq!(json(&out).as_array().unwrap().len(), 3);
    // Flag over file (relative deployment path resolved against the file's directory).
    let out = run(
        vec![
            "--config".into(),
            c,
            "--rpc-url".into(),
            env.devnet.rpc_url(),
            "plans".into(),
        ],
        false,
    );
    ok(&out);
    // A missing wallet says how to provide one.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_px"))
        .args(["plans"])
        .env_clear()
        .env("HOME", home.path())
        .env("PX_RPC_URL", env.devnet.rpc_url())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("PX_PRIVATE_KEY"));
}

#[tokio::test]
async fn key_file_commands_and_wrong_key_download() {
    let env = spawn_chain().await;
    let node = spawn_node(&env).await;
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let n = Some(&node);
    let key = h.join("owner.key");
    let k = key.to_str().unwrap();
    let made = json(&px(&env, None, h, &["key", "new", k, "--json"]).await);
    let shown = json(&px(&env, None, h, &["--key-file", k, "key", "show", "--json"]).await);
    assert_eq!(made["keyId"], shown["keyId"]);
    assert_eq!(shown["source"], "key file");
    let derived = json(&px(&env, None, h, &["key", "show", "--json"]).await);
    assert_eq!(derived["source"], "wallet signature");
    assert_ne!(derived["keyId"], shown["keyId"]);

    let minted = json(&px(&env, n, h, &["mint", "--json"]).await);
    let t = minted["tokenId"].as_u64().unwrap().to_string();
    let file = h.join("a.txt");
    std::fs::write(&file, b"only for the key file").unwrap();
    let up = json(
        &px(
            &env,
            n,
            h,
            &[
                "--key-file",
                k,
                "upload",
                &t,
                file.to_str().unwrap(),
                "--json",
            ],
        )
        .await,
    );
    let cid = up["file"]["cid"].as_str().unwrap();
    let out_path = h.join("out.txt");
    let wrong = px(
        &env,
        n,
        h,
        &["download", &t, cid, "-o", out_path.to_str().unwrap()],
    )
    .await;
    assert!(!wrong.status.success());
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("wrong key"));
    assert_eq!(wrong.status.code(), Some(VERIFICATION));
    assert!(!out_path.exists(), "a failed download leaves no file");
    ok(&px(
        &env,
        n,
        h,
        &[
            "--key-file",
            k,
            "download",
            &t,
            cid,
            "-o",
            out_path.to_str().unwrap(),
        ],
    )
    .await);
    assert_eq!(std::fs::read(&out_path).unwrap(), b"only for the key file");
}

/// Exit codes of `px` (cli/README.md, `px --help`).
const USAGE: i32 = 2;
const NOT_FOUND: i32 = 4;
const VERIFICATION: i32 = 6;

/// Issue 15: exit codes tell the class of a failure, `px --help` documents them, and names the
/// node supplies cannot drive the terminal.
#[tokio::test]
async fn exit_codes_by_class_and_escaped_names() {
    let env = spawn_chain().await;
    let node = spawn_node(&env).await;
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let n = Some(&node);

    let help = ok(&px(&env, None, h, &["--help"]).await);
    assert!(
        help.contains("Exit codes:") && help.contains("3  refused"),
        "{help}"
    );
    let bad = px(&env, None, h, &["upload"]).await;
    assert_eq!(bad.status.code(), Some(USAGE), "clap's usage error");
    let mut no_wallet = px_command(&env, n, h, &["ls", "1"]);
    no_wallet.env_remove("PX_PRIVATE_KEY");
    let no_wallet = no_wallet.output().await.unwrap();
    assert_eq!(no_wallet.status.code(), Some(USAGE));
    assert!(String::from_utf8_lossy(&no_wallet.stderr).contains("no wallet"));

    let minted = json(&px(&env, n, h, &["mint", "--json"]).await);
    let t = minted["tokenId"].as_u64().unwrap().to_string();
    let missing = px(
        &env,
        n,
        h,
        &[
            "download",
            &t,
            "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o",
            "-o",
            h.join("x").to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(missing.status.code(), Some(NOT_FOUND));

    // A plain name with terminal escapes (the node stores any name but '/' and NUL).
    let file = h.join("a.txt");
    std::fs::write(&file, b"plain").unwrap();
    let evil = "evil\u{1b}]0;pwned\u{7}\u{1b}[2J.txt";
    let up = json(
        &px(
            &env,
            n,
            h,
            &[
                "upload",
                &t,
                file.to_str().unwrap(),
                "--no-encrypt",
                "--name",
                evil,
                "--json",
            ],
        )
        .await,
    );
    let listed = ok(&px(&env, n, h, &["ls", &t]).await);
    assert!(
        !listed.contains('\u{1b}') && !listed.contains('\u{7}'),
        "{listed:?}"
    );
    assert!(listed.contains("evil\\u{1b}]0;pwned"), "{listed}");
    // Plain content is refused where encryption is expected, unless asked for.
    let cid = up["file"]["cid"].as_str().unwrap();
    let out = h.join("plain.txt");
    let refused = px(
        &env,
        n,
        h,
        &["download", &t, cid, "-o", out.to_str().unwrap()],
    )
    .await;
    assert_eq!(refused.status.code(), Some(VERIFICATION));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--plain"));
    let text = ok(&px(
        &env,
        n,
        h,
        &["download", &t, cid, "--plain", "-o", out.to_str().unwrap()],
    )
    .await);
    assert!(!text.contains('\u{1b}'), "{text:?}");
    assert_eq!(std::fs::read(&out).unwrap(), b"plain");
}

/// Issue 15: downloads show a progress bar when stderr is a terminal (here a pseudo-terminal
/// from util-linux `script`), and none when it is not.
#[tokio::test]
async fn download_shows_progress_on_a_terminal_only() {
    if std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skip: util-linux `script` is not installed");
        return;
    }
    let env = spawn_chain().await;
    let node = spawn_node(&env).await;
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let n = Some(&node);
    let minted = json(&px(&env, n, h, &["mint", "--json"]).await);
    let t = minted["tokenId"].as_u64().unwrap().to_string();
    let file = h.join("big.bin");
    std::fs::write(&file, vec![7u8; 3 << 20]).unwrap();
    let up = json(
        &px(
            &env,
            n,
            h,
            &["upload", &t, file.to_str().unwrap(), "--json"],
        )
        .await,
    );
    let cid = up["file"]["cid"].as_str().unwrap().to_owned();

    // Not a terminal: no bar.
    let out = h.join("piped.bin");
    let piped = px(
        &env,
        n,
        h,
        &["download", &t, &cid, "-o", out.to_str().unwrap()],
    )
    .await;
    ok(&piped);
    assert!(!String::from_utf8_lossy(&piped.stderr).contains("MiB/"));

    // A terminal: the bar draws "<done>/<total>" in bytes.
    let out = h.join("tty.bin");
    // A fresh pty has no size; give it one, as a terminal window would.
    let line = format!(
        "stty cols 120 rows 40; {} download {t} {cid} -o {}",
        env!("CARGO_BIN_EXE_px"),
        out.display()
    );
    let mut cmd = px_command(&env, n, h, &[]);
    let std_cmd = cmd.as_std_mut();
    let args: Vec<String> = ["-qec", line.as_str(), "/dev/null"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut script = tokio::process::Command::new("script");
    script.args(&args).env_clear();
    for (k, v) in std_cmd.get_envs() {
        if let Some(v) = v {
            script.env(k, v);
        }
    }
    script
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("TERM", "xterm");
    let tty = script.output().await.unwrap();
    let shown = String::from_utf8_lossy(&tty.stdout);
    assert!(tty.status.success(), "{shown}");
    assert!(
        shown.contains("/3.00 MiB"),
        "no progress bar on a terminal: {shown:?}"
    );
    assert_eq!(std::fs::read(&out).unwrap().len(), 3 << 20);
}
