//! A real Kubo daemon for the conformance test and the side-by-side bench
//! (`benches/vs_kubo.rs` includes this file): `tools/kubo/start.sh` builds Kubo from its pinned
//! Go module on first use and starts it on loopback with a fresh repo.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

/// A Kubo daemon started by `tools/kubo/start.sh`, killed (and its repo removed) on drop.
pub(crate) struct Kubo {
    _repo: tempfile::TempDir,
    /// `http://127.0.0.1:<port>`.
    pub(crate) api: String,
    pub(crate) pid: i32,
}

impl Kubo {
    /// Starts Kubo in `mode` (`PX_KUBO_MODE`: `dht` or `offline`) with its repo in a new
    /// directory under the system's temp dir, or `PX_BENCH_DIR` when set.
    pub(crate) async fn start(mode: &str) -> Kubo {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools/kubo/start.sh");
        let repo = tempfile::Builder::new()
            .prefix("px-kubo.")
            .tempdir()
            .unwrap();
        let out = tokio::process::Command::new("bash")
            .arg(&script)
            .arg(repo.path())
            .env("PX_KUBO_MODE", mode)
            .stdin(Stdio::null())
            .output()
            .await
            .expect("bash runs");
        assert!(
            out.status.success(),
            "{} failed (Kubo is built from its Go module on first use: Go >= 1.26.5 and the \
             module proxy are needed):\n{}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let value = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
                .unwrap_or_else(|| panic!("no {key} in:\n{text}"))
                .to_string()
        };
        Kubo {
            api: value("PX_IPFS_API"),
            pid: value("PX_IPFS_PID").parse().unwrap(),
            _repo: repo,
        }
    }
}

impl Drop for Kubo {
    fn drop(&mut self) {
        if let Some(pid) = rustix::process::Pid::from_raw(self.pid) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}
