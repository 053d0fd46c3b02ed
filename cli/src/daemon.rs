//! Real IPFS daemons for the devnet and the integration tests: Kubo and js-ipfs, started
//! throw-away on loopback by the project's own scripts (`tools/kubo/start.sh`,
//! `tools/jsipfs/start.sh`, which build Kubo from its pinned Go module and install js-ipfs from
//! its lockfile the first time, into the git-ignored `.cache/bin` and
//! `tools/jsipfs/node_modules`).
//!
//! [`Ipfs`] names a backend (`store`, `kubo`, `jsipfs`); [`Ipfs::from_test_env`] reads the
//! `PX_TEST_IPFS` variable that selects the backend of a test run. [`Daemon`] is one running
//! daemon with its repo in a temporary directory: [`Daemon::stop`] and [`Daemon::start_again`]
//! take it down and bring it back on the same repo and API port (a backend outage), and
//! dropping it kills the daemon and removes the repo.
//!
//! What js-ipfs 0.66 cannot do is listed by [`Ipfs::lacks`], so tests can skip by name and
//! say why.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use rustix::process::{Pid, Signal, kill_process};

/// The environment variable that selects the IPFS backend of a test run.
pub const TEST_IPFS_VAR: &str = "PX_TEST_IPFS";

/// An IPFS backend speaking the Kubo RPC API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Ipfs {
    /// The embedded px-store (the default).
    #[default]
    Store,
    /// Kubo 0.43.1, built from its Go module (`tools/kubo`).
    Kubo,
    /// js-ipfs 0.66 from npm (`tools/jsipfs`).
    JsIpfs,
}

/// Something a backend cannot do, so a test or a story step that needs it is skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capability {
    /// `routing/get` of a raw signed IPNS record: what the oracle verifies syncs from.
    RoutingGet,
    /// Serving records the daemon never verified (a test playing a malicious daemon).
    ForgedRecords,
}

impl Ipfs {
    /// Every backend, in the order `make test` runs them.
    pub const ALL: [Ipfs; 3] = [Ipfs::Store, Ipfs::Kubo, Ipfs::JsIpfs];

    /// The backend `PX_TEST_IPFS` names (`store` when unset).
    ///
    /// # Panics
    /// On a value that names no backend: a test run must not silently fall back.
    pub fn from_test_env() -> Ipfs {
        match std::env::var(TEST_IPFS_VAR) {
            Err(_) => Ipfs::Store,
            Ok(v) => v
                .parse()
                .unwrap_or_else(|e| panic!("{TEST_IPFS_VAR}={v:?}: {e}")),
        }
    }

    /// The name used on the command line and in `PX_TEST_IPFS`.
    pub fn name(self) -> &'static str {
        match self {
            Ipfs::Store => "store",
            Ipfs::Kubo => "kubo",
            Ipfs::JsIpfs => "jsipfs",
        }
    }

    /// Why this backend cannot do `what`, if it cannot.
    pub fn lacks(self, what: Capability) -> Option<&'static str> {
        match (self, what) {
            (Ipfs::JsIpfs, Capability::RoutingGet) => Some(
                "js-ipfs 0.66 has no routing/* commands (404 Not Found), so the oracle cannot \
                 read a signed IPNS record from it: syncs wait as \"IPFS unavailable\"",
            ),
            (Ipfs::Kubo | Ipfs::JsIpfs, Capability::ForgedRecords) => Some(
                "a real daemon verifies every record it stores; forged records are served only \
                 by px-store with its repo written directly",
            ),
            _ => None,
        }
    }

    /// `Some(reason)` and a line on stderr naming `test` if this backend lacks `what`: for
    /// tests that skip themselves on such a backend.
    pub fn skip(self, test: &str, what: Capability) -> Option<&'static str> {
        let why = self.lacks(what)?;
        eprintln!("SKIPPED {test} on {}: {why}", self.name());
        Some(why)
    }
}

impl std::fmt::Display for Ipfs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Ipfs {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "store" | "px-store" => Ok(Ipfs::Store),
            "kubo" => Ok(Ipfs::Kubo),
            "jsipfs" | "js-ipfs" => Ok(Ipfs::JsIpfs),
            other => Err(format!(
                "unknown IPFS backend {other:?} (store, kubo, jsipfs)"
            )),
        }
    }
}

/// Errors starting or stopping a daemon.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DaemonError {
    /// The embedded store is not a daemon started here.
    #[error("px-store runs in-process; only kubo and jsipfs are started as daemons")]
    NotADaemon,
    /// The start script failed (build, install, init or the daemon itself).
    #[error("{script} failed ({status}):\n{output}")]
    Script {
        /// The script run.
        script: PathBuf,
        /// Its exit status.
        status: String,
        /// What it printed on stderr (the daemon's log on a failed start).
        output: String,
    },
    /// The start script printed no API address.
    #[error("{0} printed no PX_IPFS_API line")]
    NoAddress(PathBuf),
    /// Running the script or reading the repo failed.
    #[error("daemon I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// A running (or stopped) Kubo or js-ipfs daemon with its own temporary repo.
#[derive(Debug)]
pub struct Daemon {
    kind: Ipfs,
    /// Holds the repo; removed on drop.
    repo: tempfile::TempDir,
    api: String,
    pid: Option<i32>,
}

impl Daemon {
    /// Starts a fresh `kind` daemon on loopback (building or installing it first if needed,
    /// which takes minutes the first time).
    pub async fn start(kind: Ipfs) -> Result<Daemon, DaemonError> {
        Self::start_in(kind, &std::env::temp_dir()).await
    }

    /// As [`Daemon::start`], with the repo in a new directory inside `parent`.
    pub async fn start_in(kind: Ipfs, parent: &Path) -> Result<Daemon, DaemonError> {
        if kind == Ipfs::Store {
            return Err(DaemonError::NotADaemon);
        }
        std::fs::create_dir_all(parent)?;
        let repo = tempfile::Builder::new()
            .prefix(&format!("px-{}.", kind.name()))
            .tempdir_in(parent)?;
        let mut daemon = Daemon {
            kind,
            repo,
            api: String::new(),
            pid: None,
        };
        daemon.run_start_script().await?;
        Ok(daemon)
    }

    /// The backend.
    pub fn kind(&self) -> Ipfs {
        self.kind
    }

    /// The RPC API base URL (`http://127.0.0.1:<port>`; requests go to `<url>/api/v0/...`).
    /// It stays the same across [`Daemon::stop`] and [`Daemon::start_again`].
    pub fn api_url(&self) -> &str {
        &self.api
    }

    /// The daemon's repo (`daemon.log` in it is the daemon's output).
    pub fn repo(&self) -> &Path {
        self.repo.path()
    }

    /// The daemon's process id, while it runs.
    pub fn pid(&self) -> Option<i32> {
        self.pid
    }

    /// Whether the daemon runs.
    pub fn is_running(&self) -> bool {
        self.pid.is_some_and(alive)
    }

    /// Stops the daemon (SIGTERM, SIGKILL after 10 s), keeping its repo.
    pub async fn stop(&mut self) {
        let Some(pid) = self.pid.take() else { return };
        signal(pid, Signal::TERM);
        for _ in 0..100 {
            if !alive(pid) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        signal(pid, Signal::KILL);
        for _ in 0..50 {
            if !alive(pid) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Kills the daemon at once (SIGKILL), keeping its repo: a crash.
    pub async fn kill(&mut self) {
        let Some(pid) = self.pid.take() else { return };
        signal(pid, Signal::KILL);
        for _ in 0..50 {
            if !alive(pid) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Starts the stopped daemon again on the same repo, with the API on the same port.
    pub async fn start_again(&mut self) -> Result<(), DaemonError> {
        self.stop().await;
        self.run_start_script().await
    }

    async fn run_start_script(&mut self) -> Result<(), DaemonError> {
        let script = tools_dir().join(match self.kind {
            Ipfs::Kubo => "kubo/start.sh",
            _ => "jsipfs/start.sh",
        });
        let out = tokio::process::Command::new("bash")
            .arg(&script)
            .arg(self.repo.path())
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output()
            .await?;
        if !out.status.success() {
            return Err(DaemonError::Script {
                script,
                status: out.status.to_string(),
                output: String::from_utf8_lossy(&out.stderr).into_owned(),
            });
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let value = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
                .map(str::to_string)
        };
        self.api = value("PX_IPFS_API").ok_or_else(|| DaemonError::NoAddress(script.clone()))?;
        self.pid = value("PX_IPFS_PID").and_then(|p| p.parse().ok());
        Ok(())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(pid) = self.pid.take() {
            signal(pid, Signal::KILL);
            // Let it go before its repo is removed under it.
            for _ in 0..50 {
                if !alive(pid) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// `tools/` of this checkout: `PX_TOOLS_DIR`, else beside this crate. (Not `PX_ROOT`: a test
/// may deploy the contracts of another checkout and still use this one's daemons.)
pub fn tools_dir() -> PathBuf {
    std::env::var_os("PX_TOOLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools"))
}

fn signal(pid: i32, sig: Signal) {
    if let Some(pid) = Pid::from_raw(pid) {
        let _ = kill_process(pid, sig);
    }
}

/// Whether `pid` runs (a zombie no longer does: its parent, the start script, has exited and
/// whoever reaps orphans may be slow).
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backends_parse_and_name_themselves() {
        for b in Ipfs::ALL {
            assert_eq!(b.name().parse::<Ipfs>().unwrap(), b);
        }
        assert!("btfs".parse::<Ipfs>().is_err());
        assert!(Ipfs::Kubo.lacks(Capability::RoutingGet).is_none());
        assert!(Ipfs::JsIpfs.lacks(Capability::RoutingGet).is_some());
        assert!(Ipfs::Store.lacks(Capability::ForgedRecords).is_none());
    }
}
