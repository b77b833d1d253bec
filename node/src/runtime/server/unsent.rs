//! Replies waiting to be written to clients: each connection's bytes, and their sum over every
//! client connection of the node, against [`ConnectionLimits::max_unsent`] and
//! [`ConnectionLimits::max_unsent_total`].

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::ConnectionLimits;

/// One connection's share of the node's unsent reply bytes; given back when dropped.
#[derive(Debug)]
pub(super) struct Unsent {
    total: Arc<AtomicUsize>,
    mine: usize,
}

impl Unsent {
    /// A connection holding nothing yet, counted in `total`.
    pub(super) fn new(total: Arc<AtomicUsize>) -> Self {
        Unsent { total, mine: 0 }
    }

    /// The connection now holds `bytes`; why it must close, if it holds too much: more than
    /// its own limit, or more than its share (`max_unsent_total` over `max_connections`)
    /// while the node as a whole holds more than `max_unsent_total`.
    pub(super) fn hold(&mut self, bytes: usize, limits: &ConnectionLimits) -> Option<String> {
        let total = if bytes >= self.mine {
            self.total.fetch_add(bytes - self.mine, Ordering::Relaxed) + (bytes - self.mine)
        } else {
            self.total.fetch_sub(self.mine - bytes, Ordering::Relaxed) - (self.mine - bytes)
        };
        self.mine = bytes;
        if bytes > limits.max_unsent {
            return Some(format!(
                "more than {} bytes of replies unread",
                limits.max_unsent
            ));
        }
        let share = limits.max_unsent_total / limits.max_connections.max(1);
        (total > limits.max_unsent_total && bytes > share).then(|| {
            format!(
                "the node holds more than {} bytes of replies its clients have not read, {bytes} \
                 of them for this connection",
                limits.max_unsent_total
            )
        })
    }
}

impl Drop for Unsent {
    fn drop(&mut self) {
        self.total.fetch_sub(self.mine, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn past_the_node_wide_limit_only_connections_over_their_share_close() {
        let limits = ConnectionLimits {
            max_unsent: 100,
            max_unsent_total: 120,
            max_connections: 4,
            ..ConnectionLimits::default()
        };
        let total = Arc::new(AtomicUsize::new(0));
        let (mut a, mut b) = (Unsent::new(total.clone()), Unsent::new(total.clone()));
        assert_eq!(a.hold(90, &limits), None);
        assert!(a.hold(101, &limits).is_some(), "past its own limit");
        assert_eq!(a.hold(90, &limits), None);
        // 90 + 40 > 120: b is over its share of 30, a small holder would not be.
        assert!(b.hold(40, &limits).is_some());
        assert_eq!(b.hold(20, &limits), None);
        assert_eq!(total.load(Ordering::Relaxed), 110);
        drop(a);
        assert_eq!(total.load(Ordering::Relaxed), 20);
        assert_eq!(b.hold(0, &limits), None);
        assert_eq!(total.load(Ordering::Relaxed), 0);
    }
}
