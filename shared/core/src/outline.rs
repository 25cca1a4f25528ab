//! A book's outline, its table of contents, in the one flat shape every part of HBI reads:
//! [`TocEntry`] (level, title, first physical page) in reading order, as the extractor finds
//! it. What is built on it is built by one walk, [`enclosing`]: the graph's chapters with
//! their parents, a page's section path, and the nested tree the API shows (through
//! [`nest_by_level`], which the back-of-book index uses too).

pub use hbi_extraction::TocEntry;

use crate::db::entities::toc_entry;

/// The outline as the catalog stores it (`toc_entries` rows, in position order).
pub fn from_stored(rows: &[toc_entry::Model]) -> Vec<TocEntry> {
    rows.iter()
        .map(|row| TocEntry {
            level: u32::try_from(row.level).unwrap_or(1),
            title: row.title.clone(),
            page: row.page.and_then(|page| u32::try_from(page).ok()),
        })
        .collect()
}

/// For each entry of `levels` (in reading order), the position of the entry that encloses
/// it: the nearest earlier one of a smaller level; `None` for a top-level entry. A level that
/// skips (1 then 3) still nests under the last smaller one. The walk keeps an explicit stack,
/// so no depth can exhaust the call stack.
pub fn enclosing(levels: impl IntoIterator<Item = u32>) -> Vec<Option<usize>> {
    let mut open: Vec<(u32, usize)> = Vec::new();
    levels
        .into_iter()
        .enumerate()
        .map(|(position, level)| {
            while open.last().is_some_and(|&(open_level, _)| open_level >= level) {
                open.pop();
            }
            let parent = open.last().map(|&(_, parent)| parent);
            open.push((level, position));
            parent
        })
        .collect()
}

/// The section path of `page`: the titles from the chapter down to the deepest entry that
/// starts at or before it, outermost first. Entries without a page, or starting after it,
/// are skipped (a few books list pages out of order: such an entry is passed over rather
/// than ending the walk).
pub fn section_path<'a>(entries: impl IntoIterator<Item = &'a TocEntry>, page: u32) -> Vec<String> {
    let started: Vec<&TocEntry> = entries
        .into_iter()
        .filter(|entry| entry.page.is_some_and(|start| start <= page))
        .collect();
    let parents = enclosing(started.iter().map(|entry| entry.level));
    let mut path = Vec::new();
    let mut at = started.len().checked_sub(1);
    while let Some(position) = at {
        path.push(started[position].title.clone());
        at = parents[position];
    }
    path.reverse();
    path
}

/// Nests rows given in reading order: each row becomes a child of the row [`enclosing`]
/// gives it, or a root. Children are attached from the last row back, so each row is
/// complete when it is moved into its parent and no recursion is needed.
pub fn nest_by_level<T>(rows: impl IntoIterator<Item = (u32, T)>, children: fn(&mut T) -> &mut Vec<T>) -> Vec<T> {
    let (levels, rows): (Vec<u32>, Vec<T>) = rows.into_iter().unzip();
    let parents = enclosing(levels);
    let mut slots: Vec<Option<T>> = rows.into_iter().map(Some).collect();
    let mut roots = Vec::new();
    for position in (0..slots.len()).rev() {
        let Some(mut row) = slots[position].take() else {
            continue;
        };
        // Attached last to first: put back in reading order.
        children(&mut row).reverse();
        match parents[position].and_then(|parent| slots[parent].as_mut()) {
            Some(parent) => children(parent).push(row),
            None => roots.push(row),
        }
    }
    roots.reverse();
    roots
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(level: u32, title: &str, page: Option<u32>) -> TocEntry {
        TocEntry {
            level,
            title: title.to_owned(),
            page,
        }
    }

    #[test]
    fn each_entry_is_enclosed_by_the_nearest_earlier_smaller_level() {
        assert_eq!(
            enclosing([1, 2, 3, 2, 1, 3, 3, 2]),
            [None, Some(0), Some(1), Some(0), None, Some(4), Some(4), Some(4)]
        );
        // Deeper than any stack of calls would allow.
        let deep = enclosing(1..=200_000);
        assert_eq!(deep[199_999], Some(199_998));
    }

    #[test]
    fn the_section_path_ends_at_the_deepest_entry_started_by_the_page() {
        let toc = [
            entry(1, "1 Graphs", Some(3)),
            entry(2, "1.1 Vertices", Some(4)),
            entry(3, "1.1.1 Degree", Some(6)),
            entry(2, "1.2 Edges", Some(9)),
            entry(2, "Missing page", None),
            // Out of order: passed over, not an end.
            entry(2, "1.3 Printed too late", Some(40)),
            entry(1, "2 Trees", Some(12)),
        ];
        assert!(section_path(&toc, 2).is_empty());
        assert_eq!(section_path(&toc, 7), ["1 Graphs", "1.1 Vertices", "1.1.1 Degree"]);
        assert_eq!(section_path(&toc, 10), ["1 Graphs", "1.2 Edges"]);
        assert_eq!(section_path(&toc, 15), ["2 Trees"]);
    }

    #[derive(Debug, PartialEq)]
    struct Node(&'static str, Vec<Node>);

    #[test]
    fn rows_nest_in_reading_order() {
        let rows = [
            (1, "A"),
            (2, "A.1"),
            (3, "A.1.a"),
            (2, "A.2"),
            (1, "B"),
            (3, "B.x"),
            (3, "B.y"),
        ];
        let tree = nest_by_level(rows.map(|(level, name)| (level, Node(name, Vec::new()))), |node| {
            &mut node.1
        });
        assert_eq!(
            tree,
            [
                Node("A", vec![Node("A.1", vec![Node("A.1.a", vec![])]), Node("A.2", vec![])]),
                Node("B", vec![Node("B.x", vec![]), Node("B.y", vec![])]),
            ]
        );
        let deep = nest_by_level((1..=100_000u32).map(|level| (level, Node("n", Vec::new()))), |node| {
            &mut node.1
        });
        assert_eq!(deep.len(), 1);
        // Dropping a tree this deep would recurse as deep: it is taken apart by hand.
        let mut next = deep;
        while let Some(mut node) = next.pop() {
            next = std::mem::take(&mut node.1);
        }
    }
}
