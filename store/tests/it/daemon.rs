//! The `px-store` binary as a child process: `px-store daemon` on a free loopback port. Shared
//! by the crash test and the RSS bench (`benches/rss.rs` includes this file).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running daemon, killed when dropped.
pub(crate) struct Daemon {
    pub(crate) child: Child,
    /// `127.0.0.1:<port>` of its RPC API.
    pub(crate) api: String,
}

impl Daemon {
    /// Starts the daemon on `repo` and waits until its API answers.
    pub(crate) async fn start(repo: &Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let api = format!("127.0.0.1:{port}");
        let child = Command::new(env!("CARGO_BIN_EXE_px-store"))
            .args(["daemon", "--api", &api, "--repo"])
            .arg(repo)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn px-store daemon");
        let daemon = Self { child, api };
        let http = reqwest::Client::new();
        let start = Instant::now();
        while http
            .post(format!("http://{}/api/v0/version", daemon.api))
            .send()
            .await
            .is_err()
        {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "daemon did not start"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        daemon
    }

    /// SIGKILL, and wait for the process to exit.
    pub(crate) fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
