//! Prometheus metrics (text exposition format 0.0.4), served at `/metrics`.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::error::Result;

/// What became of a storage proof ([`Metrics::proof`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum ProofOutcome {
    Submitted,
    Proven,
    Unbuildable,
    Missed,
}

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
    pieces_accepted: AtomicU64,
    pieces_refused: AtomicU64,
    pieces_served: AtomicU64,
    pieces_released: AtomicU64,
    proofs_submitted: AtomicU64,
    proofs_proven: AtomicU64,
    proofs_unbuildable: AtomicU64,
    proofs_missed: AtomicU64,
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

    /// A piece offered to the provider role: stored (`true`) or refused.
    pub(crate) fn piece(&self, accepted: bool) {
        if accepted {
            &self.pieces_accepted
        } else {
            &self.pieces_refused
        }
        .fetch_add(1, Relaxed);
    }

    pub(crate) fn piece_served(&self) {
        self.pieces_served.fetch_add(1, Relaxed);
    }

    /// A stored piece no deal needs any more, unpinned and forgotten.
    pub(crate) fn piece_released(&self) {
        self.pieces_released.fetch_add(1, Relaxed);
    }

    /// A proof sent (`submitted`), accepted on chain (`proven`), one that could not be built
    /// from the store (`unbuildable`), or a window that closed without a proof (`missed`).
    pub(crate) fn proof(&self, outcome: ProofOutcome) {
        match outcome {
            ProofOutcome::Submitted => &self.proofs_submitted,
            ProofOutcome::Proven => &self.proofs_proven,
            ProofOutcome::Unbuildable => &self.proofs_unbuildable,
            ProofOutcome::Missed => &self.proofs_missed,
        }
        .fetch_add(1, Relaxed);
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
        counter(
            "px_node_provider_pieces_total",
            "Pieces offered to the provider role by result.",
            &[
                ("{result=\"accepted\"}", &self.pieces_accepted),
                ("{result=\"refused\"}", &self.pieces_refused),
            ],
        );
        counter(
            "px_node_provider_pieces_served_total",
            "Piece reads served.",
            &[("", &self.pieces_served)],
        );
        counter(
            "px_node_provider_pieces_released_total",
            "Stored pieces released (unpinned) because no live deal root lists them.",
            &[("", &self.pieces_released)],
        );
        counter(
            "px_node_provider_proofs_total",
            "Storage proofs by outcome (unbuildable and missed need an operator).",
            &[
                ("{outcome=\"submitted\"}", &self.proofs_submitted),
                ("{outcome=\"proven\"}", &self.proofs_proven),
                ("{outcome=\"unbuildable\"}", &self.proofs_unbuildable),
                ("{outcome=\"missed\"}", &self.proofs_missed),
            ],
        );
        let _ = writeln!(
            s,
            "# HELP px_node_tokens Tokens served.\n# TYPE px_node_tokens gauge\npx_node_tokens {tokens}"
        );
        s
    }
}
