//! Time as the owner passes it in (see the crate docs): instants are `u64` milliseconds on the
//! owner's monotonic clock, spans are [`Duration`]s. These helpers combine the two.

use core::time::Duration;

/// `now + span`, saturating at the end of time.
pub(crate) fn after(now: u64, span: Duration) -> u64 {
    now.saturating_add(u64::try_from(span.as_millis()).unwrap_or(u64::MAX))
}

/// Time elapsed from `earlier` to `now`, zero if `earlier` is later (a clock that went back).
pub(crate) fn since(now: u64, earlier: u64) -> Duration {
    Duration::from_millis(now.saturating_sub(earlier))
}
