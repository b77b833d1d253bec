//! Reads that missed an acknowledged write although quorums overlapped: judged only for gets and
//! puts marked [`strict`](super::History::strict) (strict quorums with R + W > N, where every
//! read quorum meets every write quorum).

use std::collections::{BTreeMap, BTreeSet};

use super::{Kind, Op, OpRef, Outcome, WriteId, WriteInfo};

/// A strict get that returned neither an acknowledged strict put's value nor any write that
/// superseded it, although the put was acknowledged before the get was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missed {
    /// The key.
    pub key: Vec<u8>,
    /// The get.
    pub get: OpRef,
    /// The values it returned.
    pub returned: Vec<Vec<u8>>,
    /// Event numbers of the get's invocation and completion.
    pub events: (u64, u64),
    /// The put it missed.
    pub write: WriteInfo,
}

/// The strict gets among `ops` (indices into `all`, one key's operations) that missed a strict
/// put acknowledged before they were sent, and how many strict gets had such a put to see.
/// `superseded` holds, per write id, the writes whose context saw it.
pub(super) fn missed(
    key: &[u8],
    all: &[Op],
    ops: &[usize],
    written: &BTreeMap<WriteId, usize>,
    superseded: &BTreeMap<WriteId, Vec<usize>>,
) -> (Vec<Missed>, usize) {
    let mut found = Vec::new();
    let mut judged = 0;
    let strict_puts: Vec<(usize, WriteId, u64)> = written
        .iter()
        .filter_map(|(id, &i)| {
            let op = &all[i];
            match op.completed {
                Some((done, Outcome::Ok)) if op.strict => Some((i, *id, done)),
                _ => None,
            }
        })
        .collect();
    for &g in ops {
        let get = &all[g];
        let Some((get_done, Outcome::Ok)) = get.completed else {
            continue;
        };
        if get.kind != Kind::Get || !get.strict {
            continue;
        }
        let returned: BTreeSet<WriteId> = get
            .values
            .iter()
            .filter_map(|v| WriteId::parse(v))
            .collect();
        let mut before_it = strict_puts
            .iter()
            .filter(|&&(_, _, put_done)| put_done < get.invoked)
            .peekable();
        judged += usize::from(before_it.peek().is_some());
        for &(p, id, _) in before_it {
            if !covers(all, superseded, id, get_done, &returned) {
                found.push(Missed {
                    key: key.to_vec(),
                    get: OpRef(g),
                    returned: get.values.clone(),
                    events: (get.invoked, get_done),
                    write: all[p].info(p),
                });
            }
        }
    }
    (found, judged)
}

/// Whether a get that completed at event `before` and returned `returned` accounts for `id`:
/// it returned `id` or a put that superseded it (transitively, through writes sent before the
/// get completed), or such a delete superseded it (the get may then find nothing of it).
fn covers(
    all: &[Op],
    superseded: &BTreeMap<WriteId, Vec<usize>>,
    id: WriteId,
    before: u64,
    returned: &BTreeSet<WriteId>,
) -> bool {
    let mut visited = BTreeSet::from([id]);
    let mut next = vec![id];
    while let Some(id) = next.pop() {
        if returned.contains(&id) {
            return true;
        }
        for &w in superseded.get(&id).into_iter().flatten() {
            let op = &all[w];
            if op.invoked >= before {
                continue;
            }
            match &op.kind {
                Kind::Delete => return true,
                Kind::Put(value) => {
                    if let Some(by) = WriteId::parse(value) {
                        if visited.insert(by) {
                            next.push(by);
                        }
                    }
                }
                Kind::Get => {}
            }
        }
    }
    false
}
