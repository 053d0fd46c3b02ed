//! px-store against Kubo 0.43.1, side by side in one run: `add` throughput of 256 MiB and
//! 1 GiB of unique random content, as the node sends it (`pin=true&cid-version=0&
//! raw-leaves=false&chunker=size-262144`), each against single-core SHA-256 measured in the
//! same run; the daemon's CPU seconds per GiB; its peak RSS (`VmHWM`) against idle. Both run as
//! separate processes on loopback with their defaults (px-store: `px-store daemon`, blocks
//! synced before the pin commits; Kubo: `tools/kubo/start.sh`, its default flatfs datastore),
//! a fresh daemon and repo per measurement; this process is the client. The two CIDs must be
//! equal.
//!
//! `cargo bench -p px-store --bench vs_kubo`. Environment: `PX_BENCH_SIZES_MIB` (default
//! `256,1024`), `PX_BENCH_DIR` (where the repos go; default the temp dir).
//! Without `--bench` (what `cargo test --all-targets` does) the default is `4`: a smoke pass.

#[allow(dead_code)]
#[path = "../tests/it/daemon.rs"]
mod daemon;
#[path = "../tests/it/kubod.rs"]
mod kubod;

use std::time::Instant;

use bytes::Bytes;
use sha2::{Digest, Sha256};

const CHUNK: usize = 256 * 1024;

/// `len` bytes of content no two 256 KiB chunks of which are equal, generated as it is sent.
fn content(len: u64) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send {
    let mut base = vec![0u8; CHUNK];
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    for b in base.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    let chunks = len.div_ceil(CHUNK as u64);
    futures::stream::iter((0..chunks).map(move |i| {
        let n = (len - i * CHUNK as u64).min(CHUNK as u64) as usize;
        let mut c = base[..n].to_vec();
        let tag = i.to_le_bytes();
        c[..8.min(n)].copy_from_slice(&tag[..8.min(n)]);
        Ok(Bytes::from(c))
    }))
}

/// Single-core SHA-256 throughput in MB/s (best of three over 256 MiB).
fn sha256_mbps() -> f64 {
    let buf: Vec<u8> = (0..64u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let mut best = f64::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        for _ in 0..4 {
            std::hint::black_box(Sha256::digest(&buf));
        }
        best = best.min(t.elapsed().as_secs_f64());
    }
    (256u64 << 20) as f64 / best / 1e6
}

fn proc_status_kib(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .expect("status field")
}

/// CPU seconds (user + system) a process has used.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("proc stat");
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / 100.0
}

/// One add: seconds, daemon CPU seconds, idle and peak VmHWM in MiB, the CID.
async fn add(api: &str, pid: u32, len: u64) -> (f64, f64, f64, f64, String) {
    let idle = proc_status_kib(pid, "VmHWM:") / 1024.0;
    let cpu = cpu_secs(pid);
    let part =
        reqwest::multipart::Part::stream_with_length(reqwest::Body::wrap_stream(content(len)), len)
            .file_name("file")
            .mime_str("application/octet-stream")
            .unwrap();
    let form = reqwest::multipart::Form::new().part("file", part);
    let t = Instant::now();
    let res = reqwest::Client::new()
        .post(format!(
            "{api}/api/v0/add?pin=true&cid-version=0&raw-leaves=false&chunker=size-262144&progress=false"
        ))
        .multipart(form)
        .send()
        .await
        .expect("add sent");
    let status = res.status();
    let text = res.text().await.expect("add answer");
    let secs = t.elapsed().as_secs_f64();
    assert!(status.is_success(), "add: {status} {text}");
    let line: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    let cid = line["Hash"].as_str().unwrap().to_string();
    let cpu = cpu_secs(pid) - cpu;
    let peak = proc_status_kib(pid, "VmHWM:") / 1024.0;
    (secs, cpu, idle, peak, cid)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    // `cargo test --benches` runs bench binaries with --test: nothing to check there.
    if args.iter().any(|a| a == "--test" || a == "--list") {
        return;
    }
    let sizes: Vec<u64> = std::env::var("PX_BENCH_SIZES_MIB")
        .unwrap_or_else(|_| if full() { "256,1024" } else { "4" }.into())
        .split(',')
        .map(|s| s.trim().parse().expect("sizes in MiB"))
        .collect();
    let sha = sha256_mbps();
    println!("SHA-256, one core: {sha:.0} MB/s");
    println!(
        "{:<10} {:>9} {:>10} {:>9} {:>11} {:>10} {:>10}  cid",
        "daemon", "size", "MB/s", "x SHA", "CPU s/GiB", "idle MiB", "peak MiB"
    );
    for mib in sizes {
        let len = mib << 20;
        let gib = len as f64 / (1u64 << 30) as f64;
        let mut cids = Vec::new();
        for which in ["px-store", "kubo"] {
            let parent = std::env::var_os("PX_BENCH_DIR")
                .map(std::path::PathBuf::from)
                .unwrap_or_else(std::env::temp_dir);
            let dir = tempfile::tempdir_in(parent).unwrap();
            let (secs, cpu, idle, peak, cid) = if which == "px-store" {
                let d = daemon::Daemon::start(dir.path()).await;
                let api = format!("http://{}", d.api);
                add(&api, d.child.id(), len).await
            } else {
                let k = kubod::Kubo::start("dht").await;
                add(&k.api, k.pid as u32, len).await
            };
            let mbps = len as f64 / secs / 1e6;
            println!(
                "{which:<10} {mib:>5} MiB {mbps:>10.0} {:>9.2} {:>11.2} {idle:>10.1} {peak:>10.1}  {cid}",
                mbps / sha,
                cpu / gib,
            );
            cids.push(cid);
        }
        assert_eq!(cids[0], cids[1], "px-store and Kubo computed the same CID");
    }
}

/// Whether this is a measurement run (`cargo bench` passes `--bench`). Without it (as
/// `cargo test --all-targets` runs the binary) the bench makes a small smoke pass instead.
fn full() -> bool {
    std::env::args().any(|a| a == "--bench")
}
