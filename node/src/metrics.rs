//! Prometheus metrics (text exposition format 0.0.4), served at `/metrics`.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::error::Result;

/// Counters of the node.
#[derive(Debug, Default)]
pub struct Metrics {
    uploads_ok: AtomicU64,
    uploads_refused: AtomicU64,
    uploads_failed: AtomicU64,
    upload_bytes: AtomicU64,
    deletes: AtomicU64,
    logins_ok: AtomicU64,
    logins_refused: AtomicU64,
    publishes_ok: AtomicU64,
    publishes_failed: AtomicU64,
    uploads_refused_at_commit: AtomicU64,
    rate_limited: AtomicU64,
    timeouts: AtomicU64,
    bodies_too_large: AtomicU64,
}

impl Metrics {
    pub(crate) fn upload<T>(&self, r: &Result<T>, len: u64) {
        match r {
            Ok(_) => {
                self.uploads_ok.fetch_add(1, Relaxed);
                self.upload_bytes.fetch_add(len, Relaxed);
            }
            Err(e) if e.status().is_client_error() => {
                self.uploads_refused.fetch_add(1, Relaxed);
            }
            Err(_) => {
                self.uploads_failed.fetch_add(1, Relaxed);
            }
        }
    }

    /// An upload admitted by its reservation but refused by the quota check at commit (with
    /// the committed usage read under the reservation lock this stays 0).
    pub(crate) fn refused_at_commit(&self) {
        self.uploads_refused_at_commit.fetch_add(1, Relaxed);
    }

    pub(crate) fn rate_limited(&self) {
        self.rate_limited.fetch_add(1, Relaxed);
    }

    pub(crate) fn body_too_large(&self) {
        self.bodies_too_large.fetch_add(1, Relaxed);
    }

    pub(crate) fn timeout(&self) {
        self.timeouts.fetch_add(1, Relaxed);
    }

    pub(crate) fn delete(&self) {
        self.deletes.fetch_add(1, Relaxed);
    }

    pub(crate) fn login(&self, ok: bool) {
        if ok {
            &self.logins_ok
        } else {
            &self.logins_refused
        }
        .fetch_add(1, Relaxed);
    }

    pub(crate) fn publish(&self, ok: bool) {
        if ok {
            &self.publishes_ok
        } else {
            &self.publishes_failed
        }
        .fetch_add(1, Relaxed);
    }

    /// Renders the metrics; `tokens` is the number of served tokens.
    pub fn render(&self, tokens: u64) -> String {
        let mut s = String::new();
        let mut counter = |name: &str, help: &str, rows: &[(&str, &AtomicU64)]| {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} counter");
            for (labels, v) in rows {
                let _ = writeln!(s, "{name}{labels} {}", v.load(Relaxed));
            }
        };
        counter(
            "px_node_uploads_total",
            "Uploads by result.",
            &[
                ("{result=\"ok\"}", &self.uploads_ok),
                ("{result=\"refused\"}", &self.uploads_refused),
                ("{result=\"failed\"}", &self.uploads_failed),
            ],
        );
        counter(
            "px_node_upload_bytes_total",
            "Bytes stored by successful uploads.",
            &[("", &self.upload_bytes)],
        );
        counter(
            "px_node_deletes_total",
            "Files deleted.",
            &[("", &self.deletes)],
        );
        counter(
            "px_node_logins_total",
            "Sign-in attempts by result.",
            &[
                ("{result=\"ok\"}", &self.logins_ok),
                ("{result=\"refused\"}", &self.logins_refused),
            ],
        );
        counter(
            "px_node_publishes_total",
            "IPNS publishes by result.",
            &[
                ("{result=\"ok\"}", &self.publishes_ok),
                ("{result=\"failed\"}", &self.publishes_failed),
            ],
        );
        counter(
            "px_node_uploads_refused_at_commit_total",
            "Uploads admitted, then refused by the quota check at commit.",
            &[("", &self.uploads_refused_at_commit)],
        );
        counter(
            "px_node_rate_limited_total",
            "Requests refused by a rate limit (429).",
            &[("", &self.rate_limited)],
        );
        counter(
            "px_node_timeouts_total",
            "Requests or upload bodies that timed out.",
            &[("", &self.timeouts)],
        );
        counter(
            "px_node_bodies_too_large_total",
            "Requests refused for a body over the route's limit (413).",
            &[("", &self.bodies_too_large)],
        );
        let _ = writeln!(
            s,
            "# HELP px_node_tokens Tokens served.\n# TYPE px_node_tokens gauge\npx_node_tokens {tokens}"
        );
        s
    }
}
