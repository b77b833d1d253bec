//! Bytes of client requests a node has taken in and not answered yet, over every client
//! connection (TCP and HTTP): against [`ConnectionLimits::max_request_bytes_total`]. A request
//! is admitted once the node holds less than that; until then its connection reads nothing more
//! (the client's writes wait in the socket), and connections are admitted in the order they
//! asked. A request gives its bytes back when the driver is done with it (answered it, or dropped
//! it), whether or not its client is still there.
//!
//! Without it a node took in whatever its clients pipelined: 1,024 requests per connection, each
//! up to the largest frame (4 MiB), held while the replicas wrote them.
//!
//! [`ConnectionLimits::max_request_bytes_total`]: super::ConnectionLimits::max_request_bytes_total

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The node-wide budget of request bytes, shared by its connections. See the [module docs](self).
#[derive(Debug, Clone)]
pub(crate) struct RequestBudget {
    permits: Arc<Semaphore>,
    total: usize,
}

/// A request's share of the budget, given back when dropped.
pub(crate) type Admitted = OwnedSemaphorePermit;

impl RequestBudget {
    /// A budget of `total` bytes (at least one; at most what a semaphore counts).
    pub(crate) fn new(total: usize) -> Self {
        let total = total.clamp(1, Semaphore::MAX_PERMITS);
        RequestBudget {
            permits: Arc::new(Semaphore::new(total)),
            total,
        }
    }

    /// Waits until a request of `weight` bytes fits, and takes its share (a request larger than
    /// the whole budget takes all of it). `None` only if the budget was closed, which nothing
    /// does: the caller treats it as the node stopping.
    pub(crate) async fn admit(&self, weight: usize) -> Option<Admitted> {
        let n = u32::try_from(weight.clamp(1, self.total)).unwrap_or(u32::MAX);
        Arc::clone(&self.permits).acquire_many_owned(n).await.ok()
    }

    /// Takes the share of a request of `weight` bytes at once if it fits now, as
    /// [`admit`](Self::admit) would (`None`: wait for it with `admit`).
    pub(crate) fn try_admit(&self, weight: usize) -> Option<Admitted> {
        let n = u32::try_from(weight.clamp(1, self.total)).unwrap_or(u32::MAX);
        Arc::clone(&self.permits).try_acquire_many_owned(n).ok()
    }

    /// Bytes not held by any request.
    #[cfg(test)]
    pub(crate) fn available(&self) -> usize {
        self.permits.available_permits()
    }
}
