//! Prometheus metrics of both faces, served as text at `/metrics`.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// A label set with one `reason`/`outcome`-style label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Label {
    /// The label value.
    pub kind: String,
}

fn label(kind: &str) -> Label {
    Label {
        kind: kind.to_string(),
    }
}

type HistogramFamily = Family<Label, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 1 ms .. ~65 s
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

/// All metrics; cheap to clone.
#[derive(Debug, Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    registry: Registry,
    ea_requests: Family<Label, Counter>,
    ea_latency: HistogramFamily,
    answers: Family<Label, Counter>,
    failures: Family<Label, Counter>,
    fulfills: Family<Label, Counter>,
    resolve_latency: HistogramFamily,
    fulfill_latency: Histogram,
    pending: Gauge,
    cursor: Gauge,
    balance: Gauge<f64, AtomicU64>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric registered.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("px_oracle");
        let ea_requests = Family::<Label, Counter>::default();
        registry.register(
            "ea_requests",
            "External adapter requests by HTTP outcome (kind=ok|bad_request|not_found|unavailable)",
            ea_requests.clone(),
        );
        let ea_latency = HistogramFamily::new_with_constructor(latency_histogram);
        registry.register(
            "ea_request_seconds",
            "External adapter request latency by outcome",
            ea_latency.clone(),
        );
        let answers = Family::<Label, Counter>::default();
        registry.register(
            "answers",
            "Answers computed, by status (kind=ok or the rejection reason)",
            answers.clone(),
        );
        let failures = Family::<Label, Counter>::default();
        registry.register(
            "failures",
            "Failures by reason (rpc, ipfs_unavailable, token_not_found, timeout, scan, reorg, broadcast, internal)",
            failures.clone(),
        );
        let fulfills = Family::<Label, Counter>::default();
        registry.register(
            "fulfills",
            "Relayer fulfill outcomes (kind=confirmed|skipped_expired|skipped_closed|replaced|cancelled|ignored)",
            fulfills.clone(),
        );
        let resolve_latency = HistogramFamily::new_with_constructor(latency_histogram);
        registry.register(
            "resolve_seconds",
            "Time to resolve and verify a token's record, by outcome",
            resolve_latency.clone(),
        );
        let fulfill_latency = latency_histogram();
        registry.register(
            "fulfill_seconds",
            "Relayer: request log seen to fulfill transaction confirmed",
            fulfill_latency.clone(),
        );
        let pending = Gauge::default();
        registry.register(
            "relayer_open_requests",
            "Relayer: requests seen and not yet finished",
            pending.clone(),
        );
        let cursor = Gauge::default();
        registry.register(
            "relayer_cursor_block",
            "Relayer: last block scanned for OracleRequest logs",
            cursor.clone(),
        );
        let balance = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "relayer_balance_ether",
            "Relayer: native coin held by the sending account, in ether (wei / 1e18)",
            balance.clone(),
        );
        Self {
            inner: Arc::new(Inner {
                registry,
                ea_requests,
                ea_latency,
                answers,
                failures,
                fulfills,
                resolve_latency,
                fulfill_latency,
                pending,
                cursor,
                balance,
            }),
        }
    }

    /// Counts an external adapter request and its latency.
    pub fn ea_request(&self, outcome: &str, elapsed: Duration) {
        self.inner.ea_requests.get_or_create(&label(outcome)).inc();
        self.inner
            .ea_latency
            .get_or_create(&label(outcome))
            .observe(elapsed.as_secs_f64());
    }

    /// Counts a computed answer.
    pub fn answer(&self, kind: &str, elapsed: Duration) {
        self.inner.answers.get_or_create(&label(kind)).inc();
        self.inner
            .resolve_latency
            .get_or_create(&label(kind))
            .observe(elapsed.as_secs_f64());
    }

    /// Counts a failure.
    pub fn failure(&self, reason: &str) {
        self.inner.failures.get_or_create(&label(reason)).inc();
    }

    /// Counts a fulfill outcome.
    pub fn fulfill(&self, outcome: &str) {
        self.inner.fulfills.get_or_create(&label(outcome)).inc();
    }

    /// Records the time from a request seen to its fulfill confirmed.
    pub fn fulfill_latency(&self, elapsed: Duration) {
        self.inner.fulfill_latency.observe(elapsed.as_secs_f64());
    }

    /// Sets the number of open requests.
    pub fn set_open_requests(&self, n: usize) {
        self.inner.pending.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// Sets the scan cursor.
    pub fn set_cursor(&self, block: u64) {
        self.inner
            .cursor
            .set(i64::try_from(block).unwrap_or(i64::MAX));
    }

    /// Sets the relayer's balance, in ether.
    pub fn set_balance(&self, ether: f64) {
        self.inner.balance.set(ether);
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.inner.registry).expect("writing to a String cannot fail");
        out
    }
}
