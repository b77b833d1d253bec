//! The one merge walk shared by clocks and DVV sets: two lists sorted by actor, each actor at
//! most once per list.

use core::cmp::Ordering;

/// Appends to `out` the union of `mine` and `theirs` (both sorted by `key`, keys unique within
/// each): an entry found in one list only is taken as it is; for a key in both, `combine` folds
/// their entry into ours.
pub(crate) fn merge_sorted<T: Clone, K: Ord>(
    mine: impl IntoIterator<Item = T>,
    theirs: &[T],
    key: impl Fn(&T) -> &K,
    mut combine: impl FnMut(&mut T, &T),
    out: &mut impl Extend<T>,
) {
    let mut mine = mine.into_iter().peekable();
    let mut theirs = theirs.iter().peekable();
    loop {
        match (mine.peek(), theirs.peek()) {
            (Some(a), Some(b)) => match key(a).cmp(key(b)) {
                Ordering::Less => out.extend(mine.next()),
                Ordering::Greater => out.extend(theirs.next().cloned()),
                Ordering::Equal => {
                    if let (Some(mut a), Some(b)) = (mine.next(), theirs.next()) {
                        combine(&mut a, b);
                        out.extend(Some(a));
                    }
                }
            },
            (Some(_), None) => {
                out.extend(mine);
                break;
            }
            (None, Some(_)) => {
                out.extend(theirs.cloned());
                break;
            }
            (None, None) => break,
        }
    }
}
