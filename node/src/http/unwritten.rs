//! The HTTP API's answers not yet written to their client, counted against the node's limits on
//! unsent replies ([`ConnectionLimits::max_unsent`] per connection,
//! [`ConnectionLimits::max_unsent_total`] over every client connection, TCP and HTTP together),
//! as the TCP protocol's replies are. hyper holds an answer until the socket takes it, and the
//! write timeout only needs some progress: a client that read a few bytes now and then made the
//! node hold a large answer (a key's siblings, base64 and text in JSON: about three times their
//! size) for as long as it liked, on every connection it opened. Past a limit the connection
//! holding the most is closed.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use crate::runtime::{ConnectionLimits, UnsentBytes, UnsentShare};

/// How much larger than a TCP reply an HTTP answer of the same versions may be: JSON carries
/// each value in base64 (4/3) and as text (escaped: a quote or backslash takes two bytes, a
/// control character six, rare in text). The per-connection
/// limit grows by as much, so that an answer the TCP protocol delivers is delivered here too;
/// the node-wide limit stays.
const JSON_GROWTH: usize = 4;

/// One HTTP connection's answers handed to hyper and bytes the socket took (answer heads count
/// as written body bytes, so each answer is under-counted by its head).
#[derive(Debug)]
pub(crate) struct Unwritten {
    share: UnsentShare,
    limits: ConnectionLimits,
    queued: AtomicUsize,
    written: AtomicUsize,
    /// Why the connection must close, once it must.
    closing: OnceLock<String>,
}

impl Unwritten {
    /// A connection holding nothing yet, counted in `all`.
    pub(crate) fn new(all: Arc<UnsentBytes>, limits: ConnectionLimits) -> Arc<Self> {
        let limits = ConnectionLimits {
            max_unsent: limits.max_unsent.saturating_mul(JSON_GROWTH),
            ..limits
        };
        Arc::new(Unwritten {
            share: UnsentShare::new(all),
            limits,
            queued: AtomicUsize::new(0),
            written: AtomicUsize::new(0),
            closing: OnceLock::new(),
        })
    }

    /// An answer whose body is `bytes` long was handed to hyper.
    pub(crate) fn queued(&self, bytes: usize) {
        self.queued.fetch_add(bytes, Ordering::AcqRel);
        self.update();
    }

    /// The socket took `bytes` (heads included).
    pub(crate) fn written(&self, bytes: usize) {
        self.written.fetch_add(bytes, Ordering::AcqRel);
        self.update();
    }

    /// Why the connection must close, if it must (it holds more than its limit, or the node
    /// holds more than its limit over every connection and this one the most).
    pub(crate) fn closing(&self) -> Option<&str> {
        self.closing.get().map(String::as_str)
    }

    /// Waits until another connection finds this one holding the most while the node is past
    /// its limit; then why it closes.
    pub(crate) async fn told(&self) -> String {
        self.share.told(&self.limits).await
    }

    fn update(&self) {
        let queued = self.queued.load(Ordering::Acquire);
        let written = self.written.load(Ordering::Acquire);
        // Heads are written and never queued: what was written past the answers does not
        // count against the next one.
        if written > queued {
            self.written.store(queued, Ordering::Release);
        }
        if let Some(reason) = self
            .share
            .hold(queued.saturating_sub(written), &self.limits)
        {
            if self.closing.set(reason).is_ok() {
                tracing::warn!(
                    reason = self.closing().unwrap_or_default(),
                    "HTTP client reads its answers too slowly; closing"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> ConnectionLimits {
        ConnectionLimits {
            max_unsent: 1_000 / JSON_GROWTH,
            max_unsent_total: 1_500,
            ..ConnectionLimits::default()
        }
    }

    #[test]
    fn an_answer_past_the_connection_limit_closes_it_and_written_bytes_count_down() {
        let all = Arc::new(UnsentBytes::default());
        let slow = Unwritten::new(Arc::clone(&all), limits());
        slow.queued(900);
        assert_eq!(slow.closing(), None);
        // A head and part of the body leave; another answer is queued.
        slow.written(500);
        slow.queued(500);
        assert_eq!(slow.closing(), None, "900 bytes held");
        slow.queued(200);
        assert!(slow.closing().is_some(), "1,100 bytes held");
    }

    #[tokio::test]
    async fn past_the_node_wide_limit_the_connection_holding_the_most_is_told() {
        let all = Arc::new(UnsentBytes::default());
        let big = Unwritten::new(Arc::clone(&all), limits());
        let small = Unwritten::new(Arc::clone(&all), limits());
        big.queued(900);
        let told = {
            let big = Arc::clone(&big);
            tokio::spawn(async move { big.told().await })
        };
        tokio::task::yield_now().await;
        small.queued(700);
        assert_eq!(small.closing(), None, "the other holds more");
        let reason = tokio::time::timeout(std::time::Duration::from_secs(60), told)
            .await
            .expect("told")
            .expect("joins");
        assert!(reason.contains("1500"), "{reason}");
    }
}
