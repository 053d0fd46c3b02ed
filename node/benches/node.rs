//! Node benchmarks (`cargo bench -p px-node`), each against a real devnet and store:
//!
//! 1. **Throughput**: a 1 GiB upload through the node against the store's direct
//!    `add?pin=true`, in the same run and the same store, both over loopback from this process
//!    (the client). By default the node runs as deployed: a `px-node` child process with its
//!    embedded store (exclusive backend), which it sends uploads to in-process; the direct add
//!    goes to that store's API (`PX_NODE_STORE_API`, a free port). Each step reports the CPU
//!    seconds per GiB of the node process (node and store) and of the client (this process),
//!    from `/proc` utime + stime. Between steps the bench unpins and garbage-collects, so at
//!    most one upload is on disk. Then the node process's peak RSS (store included) against
//!    its idle RSS.
//!
//!    `PX_BENCH_BACKEND=remote` measures a remote backend instead: a px-store on its own
//!    runtime in this process (threads named `px-store`, reported apart as `store`), which
//!    the node reaches over HTTP (`PX_NODE_IPFS_URL`). `PX_BENCH_BACKEND=kubo` does the same
//!    with a Kubo 0.43.1 daemon (`px_cli::daemon`; its process reported as `store`).
//! 2. **Latency**: 1 KiB uploads into a token holding 10 files and one holding 100,000 files
//!    (seeded with `Node::import_files`; in-process node with its embedded store).
//!
//! In part 1 the node runs with `PX_NODE_EXCLUSIVE_BACKEND=true` (the store is its alone
//! during uploads, as the embedded store is); `PX_BENCH_EXCLUSIVE=false` measures the
//! shared-backend mode (the node hashes each upload to journal its CID before the pin), with
//! either backend.
//!
//! Environment: `PX_BENCH_GIB` scales part 1 (default 1; fractions allowed),
//! `PX_BENCH_ROUNDS` sets its rounds (default 2), `PX_BENCH_SKIP` skips `throughput` or
//! `latency`, `PX_BENCH_BACKEND` (`embedded`, the default, `remote` or `kubo`),
//! `PX_BENCH_EXCLUSIVE`, `PX_BENCH_DIR` is where the temporary directory (store repo, node
//! data) goes (default the system's), `PX_BENCH_NODE_PID_FILE` names a file to write the node
//! process's pid to (to attach a profiler).
//!
//! Without `--bench` (what `cargo test --all-targets` does) it runs a smoke pass: a 4 MiB
//! upload in one round, and the latency against a token with 100 files instead of 100,000.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::Stream;
use px_cli::devnet::{Devnet, DevnetConfig, FIRST_USER, REGISTRAR};
use px_sdk::client::Payment;
use px_sdk::{Client, ClientConfig, api};

const CHUNK: usize = 256 * 1024;

/// `len` bytes of unique (non-deduplicating) content in 256 KiB chunks.
fn content(
    seed: u64,
    len: u64,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    let mut base = vec![0u8; CHUNK];
    let mut x = seed | 1;
    for b in base.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    let base = Bytes::from(base);
    let chunks = len.div_ceil(CHUNK as u64);
    futures::stream::iter((0..chunks).map(move |i| {
        let n = (len - i * CHUNK as u64).min(CHUNK as u64) as usize;
        let mut c = base[..n].to_vec();
        c[..8.min(n)].copy_from_slice(&i.to_le_bytes()[..8.min(n)]);
        Ok(Bytes::from(c))
    }))
}

/// CPU seconds (user + system) from a `/proc/.../stat` line, in USER_HZ (100 on Linux).
fn stat_cpu_secs(stat: &str) -> f64 {
    // Fields after the parenthesized command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    ticks as f64 / 100.0
}

/// CPU seconds a process has used, its exited threads included.
fn process_cpu(pid: u32) -> f64 {
    stat_cpu_secs(&std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap())
}

/// Thread name of the store's runtime in this process.
const STORE_THREAD: &str = "px-store";

/// The Kubo daemon's pid, when the backend is Kubo.
static KUBO_PID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();

/// CPU seconds used by this process's live threads named [`STORE_THREAD`]. The store runtime
/// keeps its threads alive for the whole run, so none of their time is lost to exits.
fn store_cpu() -> f64 {
    let mut total = 0.0;
    for t in std::fs::read_dir("/proc/self/task").unwrap() {
        let dir = t.unwrap().path();
        let (Ok(comm), Ok(stat)) = (
            std::fs::read_to_string(dir.join("comm")),
            std::fs::read_to_string(dir.join("stat")),
        ) else {
            continue;
        };
        if comm.trim_end() == STORE_THREAD {
            total += stat_cpu_secs(&stat);
        }
    }
    total
}

/// CPU seconds of the node process, the store threads (remote backend) and the rest of this
/// process (the client), sampled together.
#[derive(Debug, Clone, Copy, Default)]
struct Cpu {
    node: f64,
    store: f64,
    client: f64,
}

impl Cpu {
    fn sample(node_pid: u32) -> Self {
        let (store, in_client) = match KUBO_PID.get() {
            Some(&kubo) => (process_cpu(kubo), 0.0),
            None => {
                let s = store_cpu();
                (s, s)
            }
        };
        Self {
            node: process_cpu(node_pid),
            store,
            client: process_cpu(std::process::id()) - in_client,
        }
    }

    fn since(self, before: Self) -> Self {
        Self {
            node: self.node - before.node,
            store: self.store - before.store,
            client: self.client - before.client,
        }
    }
}

fn rss_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap()
}

struct Session {
    http: reqwest::Client,
    base: String,
    token: String,
}

/// Signs `account` in to the node at `base` and mints a token of `plan` through it, with the
/// SDK's client; answers the session (for the raw uploads timed here) and the token.
async fn session(devnet: &Devnet, base: &str, account: usize, plan: u64) -> (Session, u64) {
    let config = ClientConfig::new(
        devnet.rpc_url(),
        devnet.signer(account),
        devnet.deployment.clone(),
    )
    .with_node(base.to_string());
    let client = Client::new(config).await.unwrap();
    let token = client.mint_via_node(plan, Payment::Auto).await.unwrap();
    let s = client.login().await.unwrap();
    let session = Session {
        http: reqwest::Client::new(),
        base: base.to_string(),
        token: s.token,
    };
    (session, token)
}

impl Session {
    async fn upload(
        &self,
        token: u64,
        name: &str,
        len: u64,
        body: reqwest::Body,
    ) -> api::UploadResult {
        let r = self
            .http
            .post(format!("{}/v1/tokens/{token}/files", self.base))
            .query(&[("name", name)])
            .bearer_auth(&self.token)
            .header("content-length", len.to_string())
            .body(body)
            .send()
            .await
            .unwrap();
        succeeded(r, "upload").await.json().await.unwrap()
    }
}

impl Session {
    async fn delete(&self, token: u64, file: u64) {
        let r = self
            .http
            .delete(format!("{}/v1/tokens/{token}/files/{file}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "delete: {}", r.status());
    }
}

/// `r` if it succeeded; otherwise panics with its status and body.
async fn succeeded(r: reqwest::Response, what: &str) -> reqwest::Response {
    let status = r.status();
    if !status.is_success() {
        panic!("{what}: {status} {}", r.text().await.unwrap_or_default());
    }
    r
}

/// Frees the disk between steps (outside the timed parts): unpins `cid`, collects garbage.
async fn collect(ipfs: &px_node::ipfs::Ipfs, store: &str, cid: Option<&str>) {
    if let Some(cid) = cid {
        ipfs.unpin(cid).await.unwrap();
    }
    let gc = reqwest::Client::new()
        .post(format!("{store}/api/v0/repo/gc"))
        .send()
        .await
        .unwrap();
    assert!(gc.status().is_success());
    gc.bytes().await.unwrap();
}

async fn direct_add(store: &str, len: u64, seed: u64, pin: bool) -> String {
    let part = reqwest::multipart::Part::stream_with_length(
        reqwest::Body::wrap_stream(content(seed, len)),
        len,
    )
    .file_name("data");
    let form = reqwest::multipart::Form::new().part("file", part);
    let r = reqwest::Client::new()
        .post(format!("{store}/api/v0/add?pin={pin}&cid-version=0"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    let text = succeeded(r, "add").await.text().await.unwrap();
    let line: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    line["Hash"].as_str().unwrap().to_string()
}

fn deployment_file(devnet: &Devnet, dir: &std::path::Path) -> std::path::PathBuf {
    let p = dir.join("deployment.json");
    std::fs::write(&p, serde_json::to_vec(&devnet.deployment).unwrap()).unwrap();
    p
}

/// Time and CPU of one timed step.
struct Step {
    secs: f64,
    cpu: Cpu,
}

async fn step<T>(node_pid: u32, f: impl std::future::Future<Output = T>) -> (T, Step) {
    let cpu = Cpu::sample(node_pid);
    let t = Instant::now();
    let r = f.await;
    let secs = t.elapsed().as_secs_f64();
    (
        r,
        Step {
            secs,
            cpu: Cpu::sample(node_pid).since(cpu),
        },
    )
}

async fn throughput(devnet: &Devnet, dir: &std::path::Path) {
    let gib: f64 = std::env::var("PX_BENCH_GIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if full() { 1.0 } else { 4.0 / 1024.0 });
    let len = (gib * (1u64 << 30) as f64) as u64;
    // See the module docs on `PX_BENCH_BACKEND` and `PX_BENCH_EXCLUSIVE`.
    let kubo = std::env::var("PX_BENCH_BACKEND").is_ok_and(|v| v == "kubo");
    let remote = kubo || std::env::var("PX_BENCH_BACKEND").is_ok_and(|v| v == "remote");
    let exclusive = std::env::var("PX_BENCH_EXCLUSIVE").map_or(true, |v| v != "false");
    let free_port = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    // Remote: the store gets a runtime of its own in this process (as a separate `px-store`
    // process would have), with named threads, so its CPU time can be told apart from the
    // client's. Embedded: the node runs it, its API on a port chosen here.
    let mut remote_store = None;
    let mut daemon = None;
    let store_port = free_port();
    let store_url = if kubo {
        let d = px_cli::daemon::Daemon::start(px_cli::daemon::Ipfs::Kubo)
            .await
            .unwrap();
        KUBO_PID.set(d.pid().unwrap() as u32).unwrap();
        let url = d.api_url().to_string();
        daemon = Some(d);
        url
    } else if remote {
        let store_rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name(STORE_THREAD)
            .thread_keep_alive(Duration::from_secs(24 * 3600))
            .enable_all()
            .build()
            .unwrap();
        let mut sc = px_store::StoreConfig::new(dir.join("store"));
        sc.api = "127.0.0.1:0".parse().unwrap();
        let store = store_rt.spawn(px_store::spawn(sc)).await.unwrap().unwrap();
        let url = store.api_url();
        remote_store = Some((store_rt, store));
        url
    } else {
        format!("http://127.0.0.1:{store_port}")
    };

    let port = free_port();
    let mut command = Command::new(env!("CARGO_BIN_EXE_px-node"));
    command
        .env("PX_NODE_LISTEN", format!("127.0.0.1:{port}"))
        .env("PX_NODE_RPC_URL", devnet.rpc_url())
        .env("PX_NODE_DEPLOYMENT", deployment_file(devnet, dir))
        .env("PX_NODE_DATA_DIR", dir.join("node"))
        .env(
            "PX_NODE_REGISTRAR_KEY",
            alloy::hex::encode(devnet.signer(REGISTRAR).to_bytes()),
        )
        .env("PX_NODE_MAX_UPLOAD_BYTES", (len + 1).to_string())
        .env("PX_NODE_EXCLUSIVE_BACKEND", exclusive.to_string())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    if remote {
        command.env("PX_NODE_IPFS_URL", &store_url);
    } else {
        command.env("PX_NODE_STORE_API", format!("127.0.0.1:{store_port}"));
    }
    let mut child = command.spawn().unwrap();
    let pid = child.id();
    if let Ok(path) = std::env::var("PX_BENCH_NODE_PID_FILE") {
        // For attaching a profiler to the node process.
        std::fs::write(path, pid.to_string()).unwrap();
    }
    let base = format!("http://127.0.0.1:{port}");
    for _ in 0..200 {
        if reqwest::get(format!("{base}/health"))
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let account = FIRST_USER;
    let (s, token) = session(devnet, &base, account, 2).await;
    // Warm up: one small upload.
    s.upload(
        token,
        "warm",
        4096,
        reqwest::Body::wrap_stream(content(9, 4096)),
    )
    .await;
    let idle = rss_kib(pid, "VmRSS:");
    let ipfs = px_node::ipfs::Ipfs::new(&store_url).unwrap();

    let rounds: u64 = std::env::var("PX_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if full() { 2 } else { 1 });
    let mib = len as f64 / (1 << 20) as f64;
    let gib_f = len as f64 / (1u64 << 30) as f64;
    let per_gib = |c: Cpu| {
        if remote {
            format!(
                "node {:.2}, store {:.2}, client {:.2}",
                c.node / gib_f,
                c.store / gib_f,
                c.client / gib_f
            )
        } else {
            format!(
                "node+store {:.2}, client {:.2}",
                c.node / gib_f,
                c.client / gib_f
            )
        }
    };
    println!(
        "throughput: {gib} GiB, {rounds} rounds, {} store, exclusive backend {exclusive} (CPU in seconds per GiB)",
        if kubo {
            "Kubo 0.43.1 (HTTP)"
        } else if remote {
            "remote (HTTP)"
        } else {
            "embedded (in-process)"
        }
    );
    let (mut direct, mut node) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        // a. The store's own add with pin=true over loopback: the reference.
        let (direct_cid, d) = step(pid, direct_add(&store_url, len, 100 + round, true)).await;
        collect(&ipfs, &store_url, Some(&direct_cid)).await;
        // b. Through the node.
        let (r, n) = step(
            pid,
            s.upload(
                token,
                &format!("big-{round}"),
                len,
                reqwest::Body::wrap_stream(content(200 + round, len)),
            ),
        )
        .await;
        assert_eq!(r.file.size, len);
        s.delete(token, r.file.id).await;
        collect(&ipfs, &store_url, None).await;
        println!(
            "  round {round}: store add?pin=true {:.1} MiB/s ({:.2} s; CPU {}), through node {:.1} MiB/s ({:.2} s; CPU {}), ratio {:.2}",
            mib / d.secs,
            d.secs,
            per_gib(d.cpu),
            mib / n.secs,
            n.secs,
            per_gib(n.cpu),
            d.secs / n.secs
        );
        direct.push(d);
        node.push(n);
    }
    let peak = rss_kib(pid, "VmHWM:");
    let best = |v: &mut dyn Iterator<Item = f64>| v.fold(f64::MAX, f64::min);
    let bd = best(&mut direct.iter().map(|s| s.secs));
    let bn = best(&mut node.iter().map(|s| s.secs));
    println!(
        "  best: direct {:.1} MiB/s, node {:.1} MiB/s, ratio {:.2} (target >= 0.8)",
        mib / bd,
        mib / bn,
        bd / bn,
    );
    println!(
        "  node process RSS{}: idle {:.1} MiB, peak {:.1} MiB, peak - idle {:.1} MiB (target <= 64)",
        if remote { "" } else { " (with its store)" },
        idle as f64 / 1024.0,
        peak as f64 / 1024.0,
        (peak as f64 - idle as f64) / 1024.0
    );
    let _ = child.kill();
    let _ = child.wait();
    if let Some((store_rt, store)) = remote_store {
        store_rt.spawn(store.shutdown()).await.unwrap();
        store_rt.shutdown_background();
    }
    if let Some(mut d) = daemon {
        d.stop().await;
    }
}

async fn latency(devnet: &Devnet, dir: &std::path::Path) {
    let mut c = px_node::NodeConfig::new(deployment_file(devnet, dir));
    c.listen = "127.0.0.1:0".parse().unwrap();
    c.rpc_url = devnet.rpc_url();
    c.data_dir = dir.join("latency");
    c.registrar_key = Some(px_node::Secret::new(alloy::hex::encode(
        devnet.signer(REGISTRAR).to_bytes(),
    )));
    let node = px_node::spawn(c).await.unwrap();
    let ipfs = px_node::ipfs::Ipfs::new(&node.store_url().unwrap()).unwrap();
    let seed_cid = ipfs
        .add_unpinned(std::io::Cursor::new(vec![7u8; 16]))
        .await
        .unwrap();

    let mut results = Vec::new();
    let big = if full() { 100_000 } else { 100 };
    for (i, existing) in [(1usize, 10u64), (2, big)] {
        let account = FIRST_USER + i;
        let (s, token) = session(devnet, &node.url(), account, 1).await;
        let t = Instant::now();
        let mut done = 0;
        while done < existing {
            let n = (existing - done).min(10_000);
            let files = (done..done + n)
                .map(|k| px_node::node::ImportFile {
                    name: format!("seed-{k}"),
                    cid: seed_cid.clone(),
                    size: 16,
                    sha256: None,
                })
                .collect();
            node.node().import_files(token, files).await.unwrap();
            done += n;
        }
        let seeded = t.elapsed();
        let mut lat = Vec::new();
        for k in 0..60u64 {
            let body = content(1000 + k, 1024);
            let t = Instant::now();
            s.upload(
                token,
                &format!("x{k}"),
                1024,
                reqwest::Body::wrap_stream(body),
            )
            .await;
            if k >= 10 {
                lat.push(t.elapsed().as_secs_f64() * 1000.0);
            }
        }
        lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let p50 = lat[lat.len() / 2];
        let p90 = lat[lat.len() * 9 / 10];
        println!(
            "latency: 1 KiB upload into a token with {existing} files (seeded in {seeded:.1?}): p50 {p50:.1} ms, p90 {p90:.1} ms (50 uploads after 10 warm-up)"
        );
        results.push(p50);
    }
    println!(
        "  p50 ratio 100,000 / 10 files: {:.2} (target <= 2)",
        results[1] / results[0]
    );
    node.shutdown().await;
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    // `cargo test --benches` runs bench binaries with --test: nothing to check there.
    if args.iter().any(|a| a == "--test" || a == "--list") {
        return;
    }
    let skip = std::env::var("PX_BENCH_SKIP").unwrap_or_default();
    let devnet = Devnet::spawn(DevnetConfig {
        accounts: Some(20),
        ..DevnetConfig::default()
    })
    .await
    .unwrap();
    let dir = match std::env::var_os("PX_BENCH_DIR") {
        Some(parent) => tempfile::tempdir_in(parent).unwrap(),
        None => tempfile::tempdir().unwrap(),
    };
    if skip != "throughput" {
        throughput(&devnet, dir.path()).await;
    }
    if skip != "latency" {
        latency(&devnet, dir.path()).await;
    }
}

/// Whether this is a measurement run (`cargo bench` passes `--bench`). Without it (as
/// `cargo test --all-targets` runs the binary) the bench makes a small smoke pass instead.
fn full() -> bool {
    std::env::args().any(|a| a == "--bench")
}
