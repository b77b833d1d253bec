//! Replies waiting to be written to clients: each connection's bytes, against
//! [`ConnectionLimits::max_unsent`], and their sum over every client connection of the node,
//! against [`ConnectionLimits::max_unsent_total`]. Past the sum, the connection holding the most
//! is closed: a client that does not read its replies holds them all, while one that reads holds
//! only what is on its way.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

use super::ConnectionLimits;

/// The unsent reply bytes of every client connection, shared by their tasks. A reply queued or
/// written touches two atomics; the list of connections is locked only to add or remove one,
/// and to find the one holding the most once the node is past its limit.
#[derive(Debug, Default)]
pub(crate) struct UnsentBytes {
    total: AtomicUsize,
    holders: Mutex<Holders>,
}

#[derive(Debug, Default)]
struct Holders {
    next: u64,
    by_conn: HashMap<u64, Arc<Holder>>,
}

/// One connection's bytes, and how to tell it to close.
#[derive(Debug, Default)]
struct Holder {
    bytes: AtomicUsize,
    close: Notify,
}

impl UnsentBytes {
    fn lock(&self) -> MutexGuard<'_, Holders> {
        self.holders.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Bytes held over every connection.
    #[cfg(test)]
    pub(crate) fn total(&self) -> usize {
        self.total.load(Ordering::Acquire)
    }

    /// The connection holding the most (the oldest of those holding as much).
    fn biggest(&self) -> Option<(u64, Arc<Holder>)> {
        self.lock()
            .by_conn
            .iter()
            .max_by_key(|(&id, h)| (h.bytes.load(Ordering::Acquire), std::cmp::Reverse(id)))
            .map(|(&id, h)| (id, Arc::clone(h)))
    }
}

/// One connection's share of the node's unsent reply bytes; given back when dropped. (The HTTP
/// API's connections hold one too.)
#[derive(Debug)]
pub(crate) struct Unsent {
    all: Arc<UnsentBytes>,
    id: u64,
    me: Arc<Holder>,
}

impl Unsent {
    /// A connection holding nothing yet, counted in `all`.
    pub(crate) fn new(all: Arc<UnsentBytes>) -> Self {
        let me = Arc::new(Holder::default());
        let id = {
            let mut h = all.lock();
            let id = h.next;
            h.next += 1;
            h.by_conn.insert(id, Arc::clone(&me));
            id
        };
        Unsent { all, id, me }
    }

    /// The connection now holds `bytes`; why it must close, if it must: it holds more than its
    /// own limit, or the node holds more than its limit over every connection and this one
    /// holds the most. When another holds the most, that one is told to ([`Unsent::told`]).
    pub(crate) fn hold(&self, bytes: usize, limits: &ConnectionLimits) -> Option<String> {
        let before = self.me.bytes.swap(bytes, Ordering::AcqRel);
        let total = if bytes >= before {
            self.all.total.fetch_add(bytes - before, Ordering::AcqRel) + (bytes - before)
        } else {
            self.all.total.fetch_sub(before - bytes, Ordering::AcqRel) - (before - bytes)
        };
        if bytes > limits.max_unsent {
            return Some(format!(
                "more than {} bytes of replies unread",
                limits.max_unsent
            ));
        }
        if total <= limits.max_unsent_total {
            return None;
        }
        match self.all.biggest() {
            Some((id, _)) if id == self.id => Some(self.reason(limits)),
            Some((_, other)) => {
                other.close.notify_one();
                None
            }
            None => None,
        }
    }

    /// Waits until another connection's [`Unsent::hold`] finds this one holding the most while
    /// the node is past its limit; then the reason to close if that is still so.
    pub(crate) async fn told(&self, limits: &ConnectionLimits) -> String {
        loop {
            self.me.close.notified().await;
            if self.all.total.load(Ordering::Acquire) > limits.max_unsent_total
                && self.all.biggest().is_some_and(|(id, _)| id == self.id)
            {
                return self.reason(limits);
            }
        }
    }

    fn reason(&self, limits: &ConnectionLimits) -> String {
        format!(
            "the node holds more than {} bytes of replies its clients have not read, this \
             connection the most ({} bytes)",
            limits.max_unsent_total,
            self.me.bytes.load(Ordering::Acquire)
        )
    }
}

impl Drop for Unsent {
    fn drop(&mut self) {
        self.all
            .total
            .fetch_sub(self.me.bytes.load(Ordering::Acquire), Ordering::AcqRel);
        self.all.lock().by_conn.remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn past_the_node_wide_limit_the_connection_holding_the_most_closes() {
        let limits = ConnectionLimits {
            max_unsent: 100,
            max_unsent_total: 120,
            ..ConnectionLimits::default()
        };
        let all = Arc::new(UnsentBytes::default());
        let (a, b) = (Unsent::new(all.clone()), Unsent::new(all.clone()));
        assert_eq!(a.hold(90, &limits), None);
        assert!(a.hold(101, &limits).is_some(), "past its own limit");
        assert_eq!(a.hold(90, &limits), None);
        // 90 + 40 > 120: a holds the most and is told; b goes on.
        assert_eq!(b.hold(40, &limits), None);
        let told = tokio::time::timeout(std::time::Duration::from_secs(5), a.told(&limits))
            .await
            .expect("a is told to close");
        assert!(told.contains("the most (90 bytes)"), "{told}");
        // b itself past the limit while holding the most closes at its own hold.
        assert_eq!(a.hold(10, &limits), None);
        assert!(b.hold(115, &limits).is_some());
        assert_eq!(all.total(), 125);
        drop(a);
        assert_eq!(all.total(), 115);
        drop(b);
        assert_eq!(all.total(), 0);
    }
}
