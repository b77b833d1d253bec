//! Who holds the client connection slots (the TCP port's and the HTTP API's), by client address:
//! when every slot is taken, a client from an address that holds fewer slots than the one holding
//! the most takes the oldest slot of that address, whose connection closes once it has answered
//! what it read (an idle one at once). One address (an IPv6 address's /64 counts
//! as one) cannot lock every other client out by opening connections and keeping them idle; a
//! client from the busiest address itself is refused, as before.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::net::IpAddr;

use super::server::host_of as source;

/// Whether a new connection gets a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admit<T> {
    /// A free slot.
    Free,
    /// The slot of this connection, which the caller closes: the oldest of the address holding
    /// the most slots.
    Instead(T),
    /// None: the client's own address holds as many slots as any.
    Refuse,
}

/// The slots taken, by address, oldest first; `T` names a connection.
#[derive(Debug)]
pub(crate) struct AddressSlots<T> {
    max: usize,
    by_source: HashMap<u128, VecDeque<T>>,
    source_of: HashMap<T, u128>,
}

impl<T: Copy + Eq + Hash> AddressSlots<T> {
    /// Room for `max` connections.
    pub(crate) fn new(max: usize) -> Self {
        AddressSlots {
            max,
            by_source: HashMap::new(),
            source_of: HashMap::new(),
        }
    }

    /// Whether a connection from `ip` gets a slot. [`Admit::Instead`] has already freed the
    /// victim's slot.
    pub(crate) fn admit(&mut self, ip: IpAddr) -> Admit<T> {
        if self.source_of.len() < self.max {
            return Admit::Free;
        }
        let own = self.by_source.get(&source(ip)).map_or(0, VecDeque::len);
        let busiest = self
            .by_source
            .iter()
            .max_by_key(|(_, held)| held.len())
            .map(|(&s, held)| (s, held.len()));
        match busiest {
            // After the swap the busiest still holds as many as the newcomer.
            Some((s, held)) if held > own + 1 => {
                let victim = self.by_source.get(&s).and_then(|q| q.front().copied());
                match victim {
                    Some(victim) => {
                        self.remove(victim);
                        Admit::Instead(victim)
                    }
                    None => Admit::Refuse,
                }
            }
            _ => Admit::Refuse,
        }
    }

    /// Connection `id` from `ip` took a slot.
    pub(crate) fn add(&mut self, ip: IpAddr, id: T) {
        let s = source(ip);
        self.by_source.entry(s).or_default().push_back(id);
        self.source_of.insert(id, s);
    }

    /// Connection `id` ended (or was closed): its slot is free. Unknown ids are ignored.
    pub(crate) fn remove(&mut self, id: T) {
        let Some(s) = self.source_of.remove(&id) else {
            return;
        };
        if let Some(q) = self.by_source.get_mut(&s) {
            q.retain(|&c| c != id);
            if q.is_empty() {
                self.by_source.remove(&s);
            }
        }
    }

    /// Whether every slot is taken.
    pub(crate) fn is_full(&self) -> bool {
        self.source_of.len() >= self.max
    }

    /// Slots taken.
    #[cfg(test)]
    fn taken(&self) -> usize {
        self.source_of.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("an address")
    }

    #[test]
    fn a_client_from_another_address_takes_the_busiest_addresss_oldest_slot() {
        let mut slots = AddressSlots::new(3);
        for id in 0..3 {
            assert_eq!(slots.admit(ip("10.0.0.2")), Admit::Free);
            slots.add(ip("10.0.0.2"), id);
        }
        // The busiest address itself is refused.
        assert_eq!(slots.admit(ip("10.0.0.2")), Admit::Refuse);
        assert_eq!(slots.admit(ip("10.0.0.1")), Admit::Instead(0));
        slots.add(ip("10.0.0.1"), 3);
        assert_eq!(slots.taken(), 3);
        // 2 against 1: a third address takes one more, the second address then has to wait.
        assert_eq!(slots.admit(ip("10.0.0.3")), Admit::Instead(1));
        slots.add(ip("10.0.0.3"), 4);
        assert_eq!(slots.admit(ip("10.0.0.1")), Admit::Refuse);
        // A slot that frees is free again.
        slots.remove(3);
        assert_eq!(slots.admit(ip("10.0.0.1")), Admit::Free);
        slots.remove(3);
        assert_eq!(slots.taken(), 2);
    }

    #[test]
    fn an_ipv6_slash_64_is_one_address() {
        let mut slots = AddressSlots::new(2);
        slots.add(ip("2001:db8::1"), 0);
        slots.add(ip("2001:db8::2:3"), 1);
        assert_eq!(slots.admit(ip("2001:db8::9")), Admit::Refuse);
        assert_eq!(slots.admit(ip("2001:db8:0:1::9")), Admit::Instead(0));
        // An IPv4-mapped IPv6 address is its IPv4 address.
        let mut v4 = AddressSlots::new(1);
        v4.add(ip("192.0.2.1"), 0);
        assert_eq!(v4.admit(ip("::ffff:192.0.2.1")), Admit::Refuse);
    }
}
