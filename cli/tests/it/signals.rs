//! Issue 15: `px devnet` stops on SIGTERM as on Ctrl-C. A supervisor, a CI runner or `timeout`
//! sends SIGTERM; anvil, px-store, px-node and px-oracle must not stay behind as orphans.

use std::{
    collections::BTreeMap,
    process::Stdio,
    time::{Duration, Instant},
};

use rustix::process::{Pid, Signal, kill_process};
use tokio::io::{AsyncBufReadExt, BufReader};

/// Every process whose parent chain leads to `root`, by pid, with its command name.
fn descendants(root: u32) -> BTreeMap<u32, String> {
    let mut parent = BTreeMap::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid ...: comm may hold spaces, so split after the last ')'.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = stat[open + 1..close].to_owned();
        let ppid = stat[close + 2..]
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<u32>().ok());
        if let Some(ppid) = ppid {
            parent.insert(pid, (ppid, comm));
        }
    }
    parent
        .iter()
        .filter(|(pid, _)| {
            let mut p = **pid;
            while let Some((pp, _)) = parent.get(&p) {
                if *pp == root {
                    return true;
                }
                p = *pp;
            }
            false
        })
        .map(|(pid, (_, comm))| (*pid, comm.clone()))
        .collect()
}

/// Whether `pid` still runs (a zombie has exited).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            let state = s[s.rfind(')').unwrap() + 2..].chars().next();
            state != Some('Z') && state != Some('X')
        })
        .unwrap_or(false)
}

#[tokio::test]
async fn devnet_stops_every_service_on_sigterm() {
    let px = env!("CARGO_BIN_EXE_px");
    let bins = std::path::Path::new(px).parent().unwrap();
    for bin in ["px-store", "px-node", "px-oracle"] {
        assert!(
            bins.join(bin).is_file(),
            "{bin} is not built beside {px}: run `cargo build --workspace` (make test does)"
        );
    }
    let state = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new(px)
        .args(["devnet", "--dir"])
        .arg(state.path().join("devnet"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = child.id().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let up = tokio::time::timeout(Duration::from_secs(300), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains("PX devnet is running") {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(up, Ok(true), "px devnet did not come up");
    // Keep reading stdout so px never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

    let services = descendants(pid);
    let names: Vec<&str> = services.values().map(String::as_str).collect();
    for want in ["anvil", "px-store", "px-node", "px-oracle"] {
        assert!(
            names.contains(&want),
            "{want} not running under px: {names:?}"
        );
    }

    let started = Instant::now();
    kill_process(Pid::from_raw(pid as i32).unwrap(), Signal::TERM).unwrap();
    let status = tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .expect("px devnet did not exit within 60 s of SIGTERM")
        .unwrap();
    let left: Vec<_> = services
        .iter()
        .filter(|(pid, _)| alive(**pid))
        .map(|(pid, name)| format!("{name} ({pid})"))
        .collect();
    // Clean up whatever a failing run left, so it does not outlive the test.
    for pid in services.keys().filter(|p| alive(**p)) {
        let _ = kill_process(Pid::from_raw(*pid as i32).unwrap(), Signal::KILL);
    }
    assert!(left.is_empty(), "orphans after SIGTERM: {left:?}");
    assert!(status.success(), "px devnet ended with {status}");
    eprintln!(
        "px devnet stopped {} processes ({names:?}) within {:.1} s of SIGTERM",
        services.len(),
        started.elapsed().as_secs_f64()
    );
}
