//! Comparing the entries of one segment on both sides.

use crate::message::{DiffKind, Entry, KeyDiff};

/// Sorts entries by key and keeps one entry per key (the last given), so that lists from an owner
/// or a peer can be merge-joined.
pub(crate) fn normalize(entries: &mut Vec<Entry>) {
    entries.reverse();
    entries.sort_by(|a, b| a.key.cmp(&b.key));
    entries.dedup_by(|later, first| later.key == first.key);
}

/// The keys that differ between two key-sorted lists without duplicate keys, from the point of
/// view of the side owning `local`; appended to `out` in key order.
pub(crate) fn diff_sorted(local: &[Entry], remote: &[Entry], out: &mut Vec<KeyDiff>) {
    let (mut l, mut r) = (local.iter().peekable(), remote.iter().peekable());
    loop {
        let (kind, key) = match (l.peek(), r.peek()) {
            (None, None) => return,
            (Some(a), None) => (DiffKind::MissingRemotely, &a.key),
            (None, Some(b)) => (DiffKind::MissingLocally, &b.key),
            (Some(a), Some(b)) => match a.key.cmp(&b.key) {
                core::cmp::Ordering::Less => (DiffKind::MissingRemotely, &a.key),
                core::cmp::Ordering::Greater => (DiffKind::MissingLocally, &b.key),
                core::cmp::Ordering::Equal => {
                    let different = a.digest != b.digest;
                    let key = a.key.clone();
                    l.next();
                    r.next();
                    if different {
                        out.push(KeyDiff {
                            key,
                            kind: DiffKind::Different,
                        });
                    }
                    continue;
                }
            },
        };
        out.push(KeyDiff {
            key: key.clone(),
            kind,
        });
        match kind {
            DiffKind::MissingRemotely => l.next(),
            _ => r.next(),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_keeps_last_per_key() {
        let mut v = vec![
            Entry::new("b", "1"),
            Entry::new("a", "1"),
            Entry::new("b", "2"),
        ];
        normalize(&mut v);
        assert_eq!(v, vec![Entry::new("a", "1"), Entry::new("b", "2")]);
    }

    #[test]
    fn diff_names_each_side() {
        let local = [
            Entry::new("a", "1"),
            Entry::new("b", "1"),
            Entry::new("d", "1"),
        ];
        let remote = [
            Entry::new("b", "2"),
            Entry::new("c", "1"),
            Entry::new("d", "1"),
        ];
        let mut out = Vec::new();
        diff_sorted(&local, &remote, &mut out);
        let kinds: Vec<_> = out.iter().map(|d| (d.key.as_slice(), d.kind)).collect();
        assert_eq!(
            kinds,
            vec![
                (&b"a"[..], DiffKind::MissingRemotely),
                (&b"b"[..], DiffKind::Different),
                (&b"c"[..], DiffKind::MissingLocally),
            ]
        );
    }
}
