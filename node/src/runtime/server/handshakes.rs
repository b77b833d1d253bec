//! The connections in their handshake: at most `max_handshakes` at once, and when one more
//! arrives, the oldest of the address that holds the most is closed.
//!
//! Closing the oldest of all would let one host lock every other out: opening connections faster
//! than a distant client completes its handshake, it would have that client's closed each time.
//! Taken from the address with the most, a flood from one host closes its own connections, and
//! a client elsewhere loses its handshake only to a flood from more addresses than there are
//! slots. An IPv6 address counts by its /64 ([`host_of`]): one host commonly holds a whole /64,
//! and counted by address it could spread a flood over as many addresses as there are slots.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use tokio::sync::oneshot;

/// A client's address for fairness: an IPv4 address, or an IPv6 address's /64 (one host
/// commonly holds a whole /64); an IPv4 address mapped into IPv6 counts as itself.
pub(crate) fn host_of(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => u128::from(v4.to_ipv6_mapped()),
            None => u128::from(v6) & !u128::from(u64::MAX),
        },
    }
}

/// Handshakes in progress, by ticket (the order they arrived in) and by host ([`host_of`]).
#[derive(Debug, Default)]
pub(super) struct Handshakes {
    /// Each handshake's host and its closer: dropping the sender closes the connection.
    by_ticket: BTreeMap<u64, (u128, oneshot::Sender<()>)>,
    /// Each host's handshakes.
    by_source: HashMap<u128, BTreeSet<u64>>,
}

impl Handshakes {
    /// Admits handshake `ticket` from `source`, after closing handshakes while `max` or more run.
    pub(super) fn admit(
        &mut self,
        ticket: u64,
        source: IpAddr,
        close: oneshot::Sender<()>,
        max: usize,
    ) {
        while self.by_ticket.len() >= max.max(1) {
            let Some(victim) = self.victim() else { break };
            self.remove(victim);
        }
        let source = host_of(source);
        self.by_ticket.insert(ticket, (source, close));
        self.by_source.entry(source).or_default().insert(ticket);
    }

    /// The handshake to close for room: the oldest of the address with the most (of those,
    /// the one whose oldest is oldest).
    fn victim(&self) -> Option<u64> {
        self.by_source
            .values()
            .max_by(|a, b| {
                a.len()
                    .cmp(&b.len())
                    .then_with(|| b.first().cmp(&a.first()))
            })?
            .first()
            .copied()
    }

    /// Forgets handshake `ticket` (ended, or closed for room).
    pub(super) fn remove(&mut self, ticket: u64) {
        let Some((source, _close)) = self.by_ticket.remove(&ticket) else {
            return;
        };
        if let Some(tickets) = self.by_source.get_mut(&source) {
            tickets.remove(&ticket);
            if tickets.is_empty() {
                self.by_source.remove(&source);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    /// Admits `ticket` from `source`; the receiver tells whether it was closed.
    fn admit(
        table: &mut Handshakes,
        ticket: u64,
        source: IpAddr,
        max: usize,
    ) -> oneshot::Receiver<()> {
        let (close, closed) = oneshot::channel();
        table.admit(ticket, source, close, max);
        closed
    }

    fn is_closed(rx: &mut oneshot::Receiver<()>) -> bool {
        matches!(rx.try_recv(), Err(oneshot::error::TryRecvError::Closed))
    }

    #[test]
    fn a_flood_from_one_address_closes_its_own_oldest() {
        let mut table = Handshakes::default();
        let mut other = admit(&mut table, 0, ip(2), 4);
        let mut flood: Vec<_> = (1..=100).map(|t| admit(&mut table, t, ip(1), 4)).collect();
        assert!(!is_closed(&mut other));
        let open: Vec<u64> = (1..=100)
            .filter(|&t| !is_closed(&mut flood[t as usize - 1]))
            .collect();
        assert_eq!(open, [98, 99, 100]);
    }

    #[test]
    fn among_addresses_with_as_many_the_oldest_goes() {
        let mut table = Handshakes::default();
        let mut first = admit(&mut table, 1, ip(1), 2);
        let mut second = admit(&mut table, 2, ip(2), 2);
        let mut third = admit(&mut table, 3, ip(3), 2);
        assert!(is_closed(&mut first));
        assert!(!is_closed(&mut second) && !is_closed(&mut third));
    }

    #[test]
    fn an_ended_handshake_frees_its_room_and_its_address() {
        let mut table = Handshakes::default();
        let mut a = admit(&mut table, 1, ip(1), 2);
        let _b = admit(&mut table, 2, ip(2), 2);
        table.remove(2);
        assert!(!table.by_source.contains_key(&host_of(ip(2))));
        let _c = admit(&mut table, 3, ip(3), 2);
        assert!(!is_closed(&mut a));
        // Mapped IPv4 addresses count as the address they map.
        let mapped = IpAddr::from(std::net::Ipv4Addr::new(127, 0, 0, 1).to_ipv6_mapped());
        let _d = admit(&mut table, 4, mapped, 2);
        assert!(
            is_closed(&mut a),
            "the oldest of two addresses with one each"
        );
        assert_eq!(
            table.by_source.get(&host_of(ip(1))).map(BTreeSet::len),
            Some(1)
        );
    }

    /// A host spreading a flood over the addresses of its IPv6 /64 closes its own handshakes,
    /// not those of a client elsewhere (counted by address, each of the flood's held one, as
    /// many as the client's, and the client's, oldest, went first).
    #[test]
    fn a_flood_from_one_ipv6_prefix_closes_its_own() {
        let v6 = |prefix: u16, host: u16| IpAddr::from([0x2001, 0xdb8, prefix, 0, 0, 0, 0, host]);
        let mut table = Handshakes::default();
        let mut client = admit(&mut table, 0, v6(1, 1), 8);
        let _flood: Vec<_> = (1..=256u16)
            .map(|t| admit(&mut table, u64::from(t), v6(2, t), 8))
            .collect();
        assert!(!is_closed(&mut client), "the client elsewhere was closed");
    }

    quickcheck::quickcheck! {
        /// For any arrivals and endings (from 4 addresses, at most `max` slots): the table never
        /// holds more than `max`; both indexes agree; and every handshake closed for room was
        /// one of an address that held the most at that moment, the oldest of that address.
        fn closes_only_the_oldest_of_an_address_with_the_most(
            ops: Vec<(bool, u8)>,
            max: u8
        ) -> bool {
            let max = usize::from(max % 6) + 1;
            let mut table = Handshakes::default();
            let mut open: BTreeMap<u64, (IpAddr, oneshot::Receiver<()>)> = BTreeMap::new();
            for (ticket, (arrives, pick)) in (0u64..).zip(ops) {
                if !arrives {
                    // The handshake `pick` names (among those open) ends.
                    if let Some(&t) = open.keys().nth(usize::from(pick) % open.len().max(1)) {
                        table.remove(t);
                        open.remove(&t);
                    }
                    continue;
                }
                let source = ip(pick % 4);
                let mut counts: HashMap<IpAddr, usize> = HashMap::new();
                for (src, _) in open.values() {
                    *counts.entry(*src).or_default() += 1;
                }
                let most = counts.values().copied().max().unwrap_or(0);
                let closed_before: BTreeSet<u64> = open.keys().copied().collect();
                open.insert(ticket, (source, admit(&mut table, ticket, source, max)));
                let closed: Vec<u64> = closed_before
                    .into_iter()
                    .filter(|t| open.get_mut(t).is_some_and(|(_, rx)| is_closed(rx)))
                    .collect();
                if closed.len() > 1 {
                    return false;
                }
                for t in closed {
                    let (src, _) = &open[&t];
                    let oldest_of_src = open.iter().find(|(_, (s, _))| s == src).map(|(k, _)| *k);
                    if counts.get(src) != Some(&most) || oldest_of_src != Some(t) {
                        return false;
                    }
                    open.remove(&t);
                }
                let indexed: usize = table.by_source.values().map(BTreeSet::len).sum();
                if table.by_ticket.len() > max
                    || indexed != table.by_ticket.len()
                    || table.by_ticket.len() != open.len()
                    || table.by_source.values().any(BTreeSet::is_empty)
                {
                    return false;
                }
            }
            true
        }
    }
}
