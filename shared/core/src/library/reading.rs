//! Reading a processed book: its nested table of contents, its back-of-book index, one page
//! with where it sits, and the quality gates of its last run.

use super::{Library, LibraryError, LibraryResult};
use crate::access::Principal;
use crate::db::entities::{book, index_entry, index_locator, quality_result};
use crate::domain::BookId;
use crate::outline::{self, TocEntry, nest_by_level};

/// One node of the nested table of contents.
#[derive(Debug, Clone, PartialEq)]
pub struct TocNode {
    pub title: String,
    /// 1-based physical page, when known.
    pub page_number: Option<u32>,
    /// The page number as printed in the book.
    pub page_label: Option<String>,
    /// 1 for chapters, 2 for their sections, and so on.
    pub level: u32,
    pub children: Vec<TocNode>,
}

/// A physical page range of an index entry, with the printed labels of its ends.
#[derive(Debug, Clone, PartialEq)]
pub struct PageRange {
    pub first_page: u32,
    pub last_page: u32,
    pub first_label: Option<String>,
    pub last_label: Option<String>,
}

/// One entry of a back-of-book index, with its sub-entries.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexNode {
    pub term: String,
    /// The index it belongs to ("Concept Index"); books can have several.
    pub index_name: String,
    /// Locators as printed in the book (`45–47`, `xii`, `12n`).
    pub printed_pages: Vec<String>,
    pub pages: Vec<PageRange>,
    pub see: Vec<String>,
    pub see_also: Vec<String>,
    pub subentries: Vec<IndexNode>,
}

/// One page with what surrounds it.
#[derive(Debug, Clone)]
pub struct PageView {
    pub book_id: String,
    pub number: u32,
    pub label: String,
    pub text: String,
    /// Titles of the ToC entries enclosing the page, outermost first.
    pub section_path: Vec<String>,
    /// Index terms (with their parents, comma-joined) whose locators point at the page.
    pub index_terms: Vec<String>,
}

/// Originals kept in scratch space for drawing their pages.
const KEPT_ORIGINALS: usize = 8;

/// A page drawn for reading.
#[derive(Debug, Clone)]
pub struct PageImage {
    pub png: Vec<u8>,
    /// Names this drawing: the book's content, the page and the width.
    pub etag: String,
}

/// The gates of a book's last run.
#[derive(Debug, Clone)]
pub struct BookQuality {
    pub book: book::Model,
    /// The job whose run produced the gates (none before the first run).
    pub job_id: Option<String>,
    pub passed: bool,
    pub gates: Vec<quality_result::Model>,
}

impl Library {
    /// The table of contents, nested, each entry with its printed page label.
    pub async fn toc(&self, who: &Principal, id: &BookId) -> LibraryResult<Vec<TocNode>> {
        let book = self.book(who, id).await?;
        let labels = self.stores.catalog.page_labels(&book.id).await?;
        let chapters = self.stores.graph.chapters(&book.id).await?;
        Ok(nest_toc(&crate::graph::outline_of(chapters), &labels))
    }

    /// Every index of the book, nested by sub-entry; with `query`, only the entries whose
    /// term (or a sub-entry's) contains it, case-insensitively.
    pub async fn index(&self, who: &Principal, id: &BookId, query: Option<&str>) -> LibraryResult<Vec<IndexNode>> {
        let book = self.book(who, id).await?;
        let labels = self.stores.catalog.page_labels(&book.id).await?;
        let rows = self.stores.catalog.index_entries(&book.id).await?;
        let flat = rows
            .into_iter()
            .map(|(entry, locators)| index_row(entry, &locators, &labels))
            .collect();
        let tree = nest_index(flat);
        Ok(match query.map(str::trim).filter(|q| !q.is_empty()) {
            Some(q) => filter_index(tree, &q.to_lowercase()),
            None => tree,
        })
    }

    pub async fn page(&self, who: &Principal, id: &BookId, number: u32) -> LibraryResult<PageView> {
        let book = self.book(who, id).await?;
        let Some(page) = self.stores.catalog.page(&book.id, number).await? else {
            return Err(LibraryError::PageNotFound {
                number,
                page_count: book.page_count.and_then(|n| u32::try_from(n).ok()).unwrap_or(0),
            });
        };
        let toc = self.stores.catalog.toc(&book.id).await?;
        let index_terms = self
            .stores
            .catalog
            .index_entries_on_page(&book.id, number)
            .await?
            .iter()
            .map(|entry| json_strings(&entry.path).join(", "))
            .collect();
        let section_path = outline::section_path(&outline::from_stored(&toc), number);
        Ok(PageView {
            book_id: book.id,
            number,
            label: page.label,
            text: page.text,
            section_path,
            index_terms,
        })
    }

    /// The page whose printed label is `label` ("xiv", "143"; case and surrounding spaces
    /// aside), the first one if several share it.
    pub async fn page_labelled(&self, who: &Principal, id: &BookId, label: &str) -> LibraryResult<PageView> {
        let book = self.book(who, id).await?;
        let wanted = label.trim();
        let labels = self.stores.catalog.page_labels(&book.id).await?;
        let Some(position) = labels
            .iter()
            .position(|label| label.trim().eq_ignore_ascii_case(wanted))
        else {
            return Err(LibraryError::PageLabelNotFound {
                label: wanted.to_owned(),
            });
        };
        self.page(who, id, u32::try_from(position + 1).unwrap_or(u32::MAX))
            .await
    }

    /// Page `number` drawn `READING_WIDTH` pixels wide: from the blob store when it was drawn
    /// before, otherwise drawn now from the book's original and kept there.
    pub async fn page_image(&self, who: &Principal, id: &BookId, number: u32) -> LibraryResult<PageImage> {
        use crate::page_images::{READING_WIDTH, image_name};
        let (_, hash) = self.drawable_page(who, id, number).await?;
        let etag = format!("\"{}-{number}-{READING_WIDTH}\"", &hash.as_str()[..16]);
        let png = self
            .derived_of_page(
                &hash,
                &image_name(number, READING_WIDTH),
                |renderer, original| async move { renderer.render(&original, number, READING_WIDTH).await },
            )
            .await?;
        Ok(PageImage { png, etag })
    }

    /// The words printed on page `number` with their boxes on its image (fractions of the
    /// page), for marking a search hit there: located once, then kept in the blob store
    /// beside the page's image. A page without a text layer (a scan) is read by OCR in the
    /// book's languages.
    pub async fn page_words(
        &self,
        who: &Principal,
        id: &BookId,
        number: u32,
    ) -> LibraryResult<hbi_extraction::PageWords> {
        let (book, hash) = self.drawable_page(who, id, number).await?;
        let languages = book
            .language
            .parse::<crate::domain::BookLanguages>()
            .unwrap_or_default();
        let json = self
            .derived_of_page(
                &hash,
                &crate::page_images::words_name(number),
                |renderer, original| async move { renderer.words(&original, number, languages.as_str()).await },
            )
            .await?;
        serde_json::from_slice(&json)
            .map_err(|err| LibraryError::Internal(anyhow::anyhow!("unreadable word boxes of page {number}: {err}")))
    }

    /// Book `id` and its content hash when it has a processed page `number`.
    async fn drawable_page(
        &self,
        who: &Principal,
        id: &BookId,
        number: u32,
    ) -> LibraryResult<(book::Model, crate::domain::ContentHash)> {
        let book = self.book(who, id).await?;
        let page_count = book.page_count.and_then(|n| u32::try_from(n).ok()).unwrap_or(0);
        let hash: Option<crate::domain::ContentHash> = book.content_hash.as_deref().and_then(|hash| hash.parse().ok());
        let Some(hash) = hash.filter(|_| page_count > 0) else {
            return Err(LibraryError::NoPageImage(
                "the book has no processed pages yet: upload it and wait for its job".to_owned(),
            ));
        };
        if number == 0 || number > page_count {
            return Err(LibraryError::PageNotFound { number, page_count });
        }
        Ok((book, hash))
    }

    /// The derived file `name` of the original `hash`: from the blob store when it was made
    /// before, otherwise made now by `make` from a local copy of the original and kept there.
    async fn derived_of_page<F, Fut>(
        &self,
        hash: &crate::domain::ContentHash,
        name: &str,
        make: F,
    ) -> LibraryResult<Vec<u8>>
    where
        F: FnOnce(crate::page_images::PageRenderer, std::path::PathBuf) -> Fut,
        Fut: std::future::Future<Output = Result<Vec<u8>, crate::page_images::RenderError>>,
    {
        use crate::page_images::RenderError;
        if let Some(bytes) = self.stores.blobs.get_derived(hash, name).await? {
            return Ok(bytes);
        }
        let original = self.local_original(hash).await?;
        let bytes = match make(self.stores.renderer.clone(), original).await {
            Ok(bytes) => bytes,
            Err(RenderError::Refused(why)) => return Err(LibraryError::NoPageImage(why)),
            Err(RenderError::Failed(err)) => return Err(LibraryError::Internal(err)),
        };
        self.stores.blobs.put_derived(hash, name, &bytes).await?;
        Ok(bytes)
    }

    /// A copy of the original `hash` in this process's scratch space, fetched once for all the
    /// pages drawn from it (an S3 original is megabytes; a page image is one request). The
    /// copies of the [`KEPT_ORIGINALS`] books drawn last are kept.
    async fn local_original(&self, hash: &crate::domain::ContentHash) -> LibraryResult<std::path::PathBuf> {
        let dir = self.stores.scratch.path().join("originals");
        tokio::fs::create_dir_all(&dir).await?;
        let path = dir.join(hash.as_str());
        if tokio::fs::try_exists(&path).await.unwrap_or(false) {
            return Ok(path);
        }
        // Fetched under a name of its own, then renamed: a request drawing another page of
        // the book meanwhile never reads half a file.
        let partial = tempfile::NamedTempFile::new_in(&dir)?;
        self.stores.blobs.fetch_to_file(hash, partial.path()).await?;
        partial
            .persist(&path)
            .map_err(|err| LibraryError::Internal(err.error.into()))?;
        let mut kept = Vec::new();
        let mut entries = tokio::fs::read_dir(&dir).await?;
        while let Some(entry) = entries.next_entry().await? {
            // Another request's copy still being fetched is not evicted.
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            if let Ok(modified) = entry.metadata().await.and_then(|metadata| metadata.modified()) {
                kept.push((modified, entry.path()));
            }
        }
        kept.sort();
        let excess = kept.len().saturating_sub(KEPT_ORIGINALS);
        for (_, old) in kept.into_iter().take(excess) {
            if old != path {
                tokio::fs::remove_file(old).await.ok();
            }
        }
        Ok(path)
    }

    pub async fn quality(&self, who: &Principal, id: &BookId) -> LibraryResult<BookQuality> {
        let book = self.book(who, id).await?;
        let gates = self.stores.catalog.quality(&book.id).await?;
        Ok(BookQuality {
            job_id: gates.first().map(|gate| gate.job_id.clone()),
            passed: gates.iter().all(|gate| gate.passed),
            gates,
            book,
        })
    }
}

/// A stored index row as a node without sub-entries, and the depth it nests at.
fn index_row(entry: index_entry::Model, locators: &[index_locator::Model], labels: &[String]) -> (u32, IndexNode) {
    let label = |page: i32| labels.get(usize::try_from(page).ok()?.checked_sub(1)?).cloned();
    let depth = u32::try_from(entry.depth).unwrap_or(1).max(1);
    let node = IndexNode {
        term: entry.term,
        index_name: entry.index_name,
        printed_pages: json_strings(&entry.printed),
        pages: locators
            .iter()
            .map(|l| PageRange {
                first_page: u32::try_from(l.first_page).unwrap_or(0),
                last_page: u32::try_from(l.last_page).unwrap_or(0),
                first_label: label(l.first_page),
                last_label: label(l.last_page),
            })
            .collect(),
        see: json_strings(&entry.see),
        see_also: json_strings(&entry.see_also),
        subentries: Vec::new(),
    };
    (depth, node)
}

/// The stores keep lists of strings as JSON text; a row that is not one reads as empty.
fn json_strings(raw: &str) -> Vec<String> {
    serde_json::from_str(raw).unwrap_or_default()
}

/// Builds the nested ToC from the outline, each entry with the printed label of its page.
pub fn nest_toc(outline: &[TocEntry], labels: &[String]) -> Vec<TocNode> {
    let nodes = outline.iter().map(|entry| {
        let node = TocNode {
            title: entry.title.clone(),
            page_number: entry.page,
            page_label: entry
                .page
                .and_then(|p| labels.get((p as usize).checked_sub(1)?).cloned()),
            level: entry.level,
            children: Vec::new(),
        };
        (entry.level, node)
    });
    nest_by_level(nodes, |node| &mut node.children)
}

/// Nests index rows `(depth, entry)` given in document order.
fn nest_index(flat: Vec<(u32, IndexNode)>) -> Vec<IndexNode> {
    nest_by_level(flat, |node| &mut node.subentries)
}

/// Keeps entries whose term contains `needle`, with all their sub-entries, and the parents
/// of matching sub-entries (with only the matching branches).
fn filter_index(entries: Vec<IndexNode>, needle: &str) -> Vec<IndexNode> {
    entries
        .into_iter()
        .filter_map(|mut entry| {
            if entry.term.to_lowercase().contains(needle) {
                return Some(entry);
            }
            entry.subentries = filter_index(std::mem::take(&mut entry.subentries), needle);
            (!entry.subentries.is_empty()).then_some(entry)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toc_entry(level: u32, title: &str, page: Option<u32>) -> TocEntry {
        TocEntry {
            level,
            title: title.to_owned(),
            page,
        }
    }

    #[test]
    fn nesting_follows_levels_and_labels_follow_pages() {
        let flat = vec![
            toc_entry(1, "A", Some(1)),
            toc_entry(2, "A.1", Some(2)),
            toc_entry(3, "A.1.a", Some(2)),
            toc_entry(1, "B", Some(3)),
            toc_entry(2, "B.1", None),
        ];
        let labels = vec!["i".to_owned(), "1".to_owned(), "2".to_owned()];
        let toc = nest_toc(&flat, &labels);
        assert_eq!(toc.len(), 2);
        assert_eq!(toc[0].children[0].children[0].title, "A.1.a");
        assert_eq!(toc[0].page_label.as_deref(), Some("i"));
        assert_eq!(toc[1].page_label.as_deref(), Some("2"));
        assert_eq!(toc[1].children[0].page_label, None);
    }

    fn entry(term: &str) -> IndexNode {
        IndexNode {
            term: term.to_owned(),
            index_name: "Index".to_owned(),
            printed_pages: Vec::new(),
            pages: Vec::new(),
            see: Vec::new(),
            see_also: Vec::new(),
            subentries: Vec::new(),
        }
    }

    #[test]
    fn index_rows_nest_by_depth_and_filter_keeps_matching_branches() {
        let flat = vec![
            (1, entry("arrays")),
            (2, entry("indexing")),
            (3, entry("negative")),
            (2, entry("slicing")),
            (1, entry("vectors")),
        ];
        let tree = nest_index(flat);
        assert_eq!(tree.len(), 2);
        assert_eq!(tree[0].subentries.len(), 2);
        assert_eq!(tree[0].subentries[0].subentries[0].term, "negative");
        let found = filter_index(tree.clone(), "slic");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].term, "arrays");
        assert_eq!(found[0].subentries.len(), 1, "only the matching branch");
        assert_eq!(filter_index(tree, "VECTOR".to_lowercase().as_str())[0].term, "vectors");
    }

    #[test]
    fn a_skipped_level_nests_siblings_as_siblings() {
        let tree = nest_index(vec![(1, entry("a")), (3, entry("b")), (3, entry("c")), (2, entry("d"))]);
        assert_eq!(tree.len(), 1);
        let terms: Vec<&str> = tree[0].subentries.iter().map(|e| e.term.as_str()).collect();
        assert_eq!(terms, ["b", "c", "d"]);
    }

    #[test]
    fn a_deep_chain_nests_without_recursion() {
        let flat: Vec<TocEntry> = (1..=200_000).map(|level| toc_entry(level, "t", None)).collect();
        let toc = nest_toc(&flat, &[]);
        assert_eq!(toc.len(), 1);
        // Dropping the chain is recursive in std; take it apart level by level instead.
        let mut depth = 0;
        let mut nodes = toc;
        while let Some(mut node) = nodes.pop() {
            depth += 1;
            nodes = std::mem::take(&mut node.children);
        }
        assert_eq!(depth, 200_000);
    }
}
