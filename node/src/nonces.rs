//! Sign-in nonces, in memory: a nonce lives a few minutes and is used once, so it never needs
//! a durable write (a restart only makes clients fetch a new one). Lookups are by nonce, pruning
//! by an expiry index, and the number outstanding is capped, so a flood of `GET
//! /v1/auth/nonce` costs bounded memory and no database work.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

/// The outstanding nonces.
#[derive(Debug)]
pub struct Nonces {
    inner: Mutex<Inner>,
    max: usize,
}

#[derive(Debug, Default)]
struct Inner {
    by_nonce: HashMap<String, u64>,
    by_expiry: BTreeSet<(u64, String)>,
}

impl Inner {
    /// Drops the nonces expired at `now` (expiry `<= now`), oldest first.
    fn prune(&mut self, now: u64) {
        while let Some((exp, _)) = self.by_expiry.first()
            && *exp <= now
        {
            let (_, n) = self.by_expiry.pop_first().expect("a first entry");
            self.by_nonce.remove(&n);
        }
    }
}

impl Nonces {
    /// At most `max` outstanding nonces.
    pub fn new(max: usize) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            max,
        }
    }

    /// Stores a fresh nonce; false when `max` unexpired nonces are outstanding.
    pub fn put(&self, nonce: String, expires_at: u64, now: u64) -> bool {
        let mut i = self.inner.lock().expect("lock");
        i.prune(now);
        if i.by_nonce.len() >= self.max {
            return false;
        }
        i.by_expiry.insert((expires_at, nonce.clone()));
        i.by_nonce.insert(nonce, expires_at);
        true
    }

    /// Consumes a nonce: true if it existed and had not expired. Single use either way.
    pub fn take(&self, nonce: &str, now: u64) -> bool {
        let mut i = self.inner.lock().expect("lock");
        let Some(exp) = i.by_nonce.remove(nonce) else {
            return false;
        };
        i.by_expiry.remove(&(exp, nonce.to_string()));
        exp > now
    }

    /// Number of nonces held (expired ones included until the next prune).
    pub fn len(&self) -> usize {
        self.inner.lock().expect("lock").by_nonce.len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_are_single_use_expire_and_are_capped() {
        let n = Nonces::new(2);
        assert!(n.put("abc12345".into(), 100, 50));
        assert!(n.put("expired1".into(), 60, 50));
        assert!(!n.put("third".into(), 100, 50), "cap reached");
        assert!(n.take("abc12345", 99));
        assert!(!n.take("abc12345", 99));
        assert!(!n.take("expired1", 61));
        assert!(!n.take("never", 1));
        // Expired nonces make room without a scan.
        assert!(n.put("a".into(), 200, 150));
        assert!(n.put("b".into(), 300, 150));
        assert!(
            n.put("c".into(), 400, 250),
            "a expired at 200 and was pruned"
        );
        assert_eq!(n.len(), 2);
    }
}
