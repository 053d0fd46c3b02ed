//! Peak RSS of the daemon binary while adding a 1 GiB file, against the idle daemon.
//!
//! Spawns `px-store daemon` on a free loopback port with a temp repo, reads `VmHWM` (peak
//! resident set) from `/proc/<pid>/status` when idle, streams a generated 1 GiB file through
//! `add`, and reads `VmHWM` again. Target: growth <= 64 MiB.
//!
//! `cargo bench -p px-store --bench rss` (env `PX_BENCH_RSS_MIB` overrides the size).
//! Without `--bench` (what `cargo test --all-targets` does) the default is 4 MiB: a smoke pass.

use std::io::Read;
use std::time::Instant;

use ipfs_api_backend_hyper::{IpfsApi, IpfsClient, TryFromUri};

/// Generated content, never held in memory as a whole.
struct Generated {
    left: u64,
    x: u64,
}

impl Read for Generated {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (buf.len() as u64).min(self.left) as usize;
        for chunk in buf[..n].chunks_mut(8) {
            self.x ^= self.x << 13;
            self.x ^= self.x >> 7;
            self.x ^= self.x << 17;
            chunk.copy_from_slice(&self.x.to_le_bytes()[..chunk.len()]);
        }
        self.left -= n as u64;
        Ok(n)
    }
}

fn vm_hwm_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

#[path = "../tests/it/daemon.rs"]
mod daemon;

#[tokio::main]
async fn main() {
    let mib: u64 = std::env::var("PX_BENCH_RSS_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if full() { 1024 } else { 4 });
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = daemon::Daemon::start(dir.path()).await;
    let pid = daemon.child.id();
    let client = IpfsClient::from_str(&format!("http://{}", daemon.api)).unwrap();
    let idle = vm_hwm_kib(pid);

    let t = Instant::now();
    let res = client
        .add(Generated {
            left: mib << 20,
            x: 0x2545_F491_4F6C_DD1D,
        })
        .await
        .expect("add");
    let took = t.elapsed();
    let peak = vm_hwm_kib(pid);
    let growth_mib = (peak.saturating_sub(idle)) as f64 / 1024.0;
    println!(
        "px-store daemon: idle VmHWM {:.1} MiB, peak VmHWM after {mib} MiB add {:.1} MiB, growth {:.1} MiB (target <= 64), add took {:.1?} ({})",
        idle as f64 / 1024.0,
        peak as f64 / 1024.0,
        growth_mib,
        took,
        res.hash
    );
    daemon.kill();
}

/// Whether this is a measurement run (`cargo bench` passes `--bench`). Without it (as
/// `cargo test --all-targets` runs the binary) the bench makes a small smoke pass instead.
fn full() -> bool {
    std::env::args().any(|a| a == "--bench")
}
