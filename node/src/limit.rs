//! Token-bucket rate limits keyed by client IP or address, with bounded memory: buckets that
//! refilled completely carry no information and are dropped when the map reaches its cap; a
//! new key that still finds the map full is refused (only a flood from more keys than the
//! cap gets there, and it then cannot push out the buckets that are throttling it).

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request};
use axum::response::{IntoResponse, Response};

use crate::error::Error;
use crate::metrics::Metrics;

/// Checks a request's client IP (its `ConnectInfo`, unspecified when absent) against
/// `limiter`; `Some` is the rate-limited answer, counted in the node's rate-limit metric.
pub(crate) fn check_client_ip(
    limiter: &Limiter<IpAddr>,
    metrics: &Metrics,
    req: &Request,
) -> Option<Response> {
    let ip = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
    if let Err(retry_after) = limiter.check(&ip) {
        metrics.rate_limited();
        return Some(Error::RateLimited { retry_after }.into_response());
    }
    None
}

/// Burst and sustained rate of one limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Requests allowed at once (bucket size); 0 disables the limit.
    pub burst: u32,
    /// Requests per second refilled.
    pub per_sec: f64,
}

impl Rate {
    /// `burst` at once, then `per_min` per minute.
    pub fn per_minute(burst: u32, per_min: u32) -> Self {
        Self {
            burst,
            per_sec: f64::from(per_min) / 60.0,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// A rate limit per key.
#[derive(Debug)]
pub struct Limiter<K> {
    rate: Rate,
    max_keys: usize,
    buckets: Mutex<HashMap<K, Bucket>>,
}

impl<K: Hash + Eq + Clone> Limiter<K> {
    /// A limit of `rate` per key, tracking at most `max_keys` keys.
    pub fn new(rate: Rate, max_keys: usize) -> Self {
        Self {
            rate,
            max_keys,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one request from `key`'s bucket: `Ok` if allowed, else how long until the next
    /// one will be.
    pub fn check(&self, key: &K) -> Result<(), Duration> {
        self.check_at(key, Instant::now())
    }

    fn check_at(&self, key: &K, now: Instant) -> Result<(), Duration> {
        if self.rate.burst == 0 {
            return Ok(());
        }
        let burst = f64::from(self.rate.burst);
        let refill = |b: &Bucket| {
            (b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * self.rate.per_sec)
                .min(burst)
        };
        let mut map = self.buckets.lock().expect("lock");
        if !map.contains_key(key) && map.len() >= self.max_keys {
            map.retain(|_, b| refill(b) < burst);
            if map.len() >= self.max_keys {
                return Err(Duration::from_secs(1));
            }
        }
        let b = map.entry(key.clone()).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        b.tokens = refill(b);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else if self.rate.per_sec > 0.0 {
            Err(Duration::from_secs_f64(
                (1.0 - b.tokens) / self.rate.per_sec,
            ))
        } else {
            Err(Duration::from_secs(3600))
        }
    }

    /// Number of keys tracked.
    pub fn keys(&self) -> usize {
        self.buckets.lock().expect("lock").len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_refill_and_memory_stays_bounded() {
        let l = Limiter::new(
            Rate {
                burst: 2,
                per_sec: 1.0,
            },
            3,
        );
        let t0 = Instant::now();
        assert!(l.check_at(&1, t0).is_ok());
        assert!(l.check_at(&1, t0).is_ok());
        let wait = l.check_at(&1, t0).unwrap_err();
        assert!(wait <= Duration::from_secs(1) && wait > Duration::ZERO);
        assert!(l.check_at(&1, t0 + Duration::from_millis(1100)).is_ok());
        // Keys 2 and 3 fill the map; key 4 is refused while all three are throttled...
        for key in [2, 3] {
            assert!(l.check_at(&key, t0).is_ok());
            assert!(l.check_at(&key, t0).is_ok());
        }
        assert!(l.check_at(&4, t0 + Duration::from_millis(1100)).is_err());
        assert_eq!(l.keys(), 3);
        // ...and admitted once full buckets can be dropped.
        assert!(l.check_at(&4, t0 + Duration::from_secs(5)).is_ok());
        assert!(l.keys() <= 3);
    }
}
