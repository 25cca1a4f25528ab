//! EPUB 2 and 3: the spine's XHTML in reading order becomes pages of text, the navigation
//! document (EPUB 3 `nav`) or `toc.ncx` (EPUB 2) the table of contents, with levels and titles
//! as the book gives them, and the book's own index (an `epub:type="index"` part, or a document
//! headed "Index") its entries, each link resolved to the page it lands on.
//!
//! Pages: where the book marks its print pages (EPUB 3 `epub:type="pagebreak"` markers, listed
//! by the `page-list` navigation), a page runs from one marker to the next and is labelled as
//! printed; otherwise each spine document starts a page and a page holds at most
//! [`PAGE_CHARS`] characters, broken at a line or word end, labelled by its number.
//!
//! The file is untrusted: the zip is read from memory (an entry's name is only a key, never a
//! path on disk), each entry and the whole book have decompressed-size limits, XML is read with
//! quick-xml (no DTD, so no entity expansion) and XHTML with html5ever (via scraper), whose
//! trees are walked with explicit iterators, so neither a bomb nor deep nesting can exhaust
//! memory or the stack.

use std::collections::HashMap;
use std::io::{Cursor, Read};

use ego_tree::NodeRef;
use ego_tree::iter::Edge;
use quick_xml::events::{BytesStart, Event};
use scraper::{Html, Node};

use crate::index::{IndexInfo, MAX_INDEX_DEPTH};
use crate::signals::{StructureSignals, sibling_order};
use crate::{
    ExtractError, ExtractOptions, Extraction, IndexEntry, MAX_TITLE_BYTES, PageText, Progress, TocEntry, TocSource,
    Warnings,
};

/// Most characters of a page when the book marks no print pages: about a printed page.
pub const PAGE_CHARS: usize = 2_000;
/// Largest decompressed size of one entry of the zip.
const MAX_ENTRY_BYTES: u64 = 64 * 1024 * 1024;
/// Largest decompressed size of every entry read, together.
const MAX_BOOK_BYTES: u64 = 512 * 1024 * 1024;
/// Most entries a zip may list.
const MAX_ENTRIES: usize = 20_000;
/// Most entries of the ToC or the index kept.
const MAX_NAVIGATION_ENTRIES: usize = 100_000;
/// Deepest element nesting of a document parsed as HTML. The HTML parser looks up its stack
/// of open elements at each tag, so a document nested hundreds of thousands deep would take
/// hours; real books nest a few dozen deep. A deeper document is read as plain text.
const MAX_NESTING: usize = 512;

/// Whether the first bytes of a file are an EPUB's: a zip whose first entry is `mimetype`
/// holding `application/epub+zip` (the OCF rule, which puts it there uncompressed), or,
/// as some packagers write it, a zip that names `META-INF/container.xml` or says
/// `application/epub+zip` among its first entries.
pub fn is_epub(bytes: &[u8]) -> bool {
    const LOCAL_HEADER: &[u8] = b"PK\x03\x04";
    if !bytes.starts_with(LOCAL_HEADER) || bytes.len() < 30 {
        return false;
    }
    let contains = |needle: &[u8]| bytes.windows(needle.len()).any(|window| window == needle);
    if contains(b"META-INF/container.xml") || contains(b"application/epub+zip") {
        return true;
    }
    let name_len = usize::from(u16::from_le_bytes([bytes[26], bytes[27]]));
    let extra_len = usize::from(u16::from_le_bytes([bytes[28], bytes[29]]));
    let name = bytes.get(30..30 + name_len);
    let content_start = 30 + name_len + extra_len;
    let content = bytes.get(content_start..(content_start + 20).min(bytes.len()));
    name == Some(b"mimetype".as_slice()) && content.is_some_and(|content| content.starts_with(b"application/epub+zip"))
}

/// The zip, read entry by entry within the limits.
struct Package<'a> {
    archive: zip::ZipArchive<Cursor<&'a [u8]>>,
    read_so_far: u64,
}

impl<'a> Package<'a> {
    fn open(bytes: &'a [u8]) -> Result<Self, ExtractError> {
        let archive =
            zip::ZipArchive::new(Cursor::new(bytes)).map_err(|err| bad(format!("not a readable zip: {err}")))?;
        if archive.len() > MAX_ENTRIES {
            return Err(bad(format!(
                "the zip lists {} entries, more than {MAX_ENTRIES}",
                archive.len()
            )));
        }
        Ok(Self {
            archive,
            read_so_far: 0,
        })
    }

    fn has(&self, path: &str) -> bool {
        self.archive.index_for_name(path).is_some()
    }

    /// The folder the package lives in: empty for a zip laid out as the OCF says, or the
    /// one folder some packagers put everything under (`epub/META-INF/container.xml`).
    fn root(&self) -> Option<String> {
        const CONTAINER: &str = "META-INF/container.xml";
        if self.has(CONTAINER) {
            return Some(String::new());
        }
        self.archive
            .file_names()
            .filter_map(Result::ok)
            .filter(|name| name.ends_with(&format!("/{CONTAINER}")))
            .min_by_key(|name| name.len())
            .and_then(|name| name.strip_suffix(CONTAINER).map(str::to_owned))
    }

    /// The entry at `path`, decompressed, or why it cannot be had.
    fn read(&mut self, path: &str) -> Result<Vec<u8>, ExtractError> {
        let mut entry = self
            .archive
            .by_name(path)
            .map_err(|err| bad(format!("{path}: {err}")))?;
        let budget = MAX_ENTRY_BYTES.min(MAX_BOOK_BYTES.saturating_sub(self.read_so_far));
        let mut content = Vec::new();
        // The declared size may lie: what is read is counted, never more than the budget.
        (&mut entry)
            .take(budget.saturating_add(1))
            .read_to_end(&mut content)
            .map_err(|err| bad(format!("{path}: {err}")))?;
        let size = content.len() as u64;
        if size > budget {
            return Err(bad(format!(
                "{path} decompresses to more than {budget} bytes (a zip bomb, or a book too large)"
            )));
        }
        self.read_so_far += size;
        Ok(content)
    }

    fn read_text(&mut self, path: &str) -> Result<String, ExtractError> {
        let bytes = self.read(path)?;
        Ok(String::from_utf8(bytes).unwrap_or_else(|err| String::from_utf8_lossy(err.as_bytes()).into_owned()))
    }
}

fn bad(message: String) -> ExtractError {
    ExtractError::BadEpub(message)
}

/// One manifest item.
#[derive(Debug, Clone)]
struct Item {
    href: String,
    media_type: String,
    properties: String,
}

/// What the package document (OPF) says.
#[derive(Debug, Default)]
struct PackageDocument {
    items: HashMap<String, Item>,
    spine: Vec<String>,
    /// The manifest id of the EPUB 2 `toc.ncx`.
    ncx: Option<String>,
}

/// Reads the package document: manifest, spine and the NCX's id.
fn package_document(xml: &str) -> Result<PackageDocument, ExtractError> {
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut document = PackageDocument::default();
    loop {
        match reader.read_event() {
            Ok(Event::Start(element) | Event::Empty(element)) => match element.local_name().as_ref() {
                "item" => {
                    let id = attribute(&element, "id");
                    let href = attribute(&element, "href");
                    if let (Some(id), Some(href)) = (id, href) {
                        let item = Item {
                            href,
                            media_type: attribute(&element, "media-type").unwrap_or_default(),
                            properties: attribute(&element, "properties").unwrap_or_default(),
                        };
                        document.items.insert(id, item);
                    }
                }
                "itemref" => {
                    let linear = attribute(&element, "linear");
                    if let Some(id) = attribute(&element, "idref")
                        && linear.as_deref() != Some("no")
                    {
                        document.spine.push(id);
                    }
                }
                "spine" => document.ncx = attribute(&element, "toc"),
                _ => {}
            },
            Ok(Event::Eof) => break,
            Ok(_) => {}
            Err(err) => return Err(bad(format!("the package document is not XML: {err}"))),
        }
    }
    Ok(document)
}

/// An attribute by local name, its entities (the five of XML, and character references)
/// resolved.
fn attribute(element: &BytesStart, name: &str) -> Option<String> {
    element
        .attributes()
        .flatten()
        .find(|attribute| attribute.key.local_name().as_ref() == name)
        .map(|attribute| {
            let raw = attribute.value.clone().into_owned();
            quick_xml::escape::unescape(&raw)
                .map(|value| value.into_owned())
                .unwrap_or(raw)
        })
}

/// The package document's path, from `META-INF/container.xml`.
fn rootfile(container: &str) -> Option<String> {
    let mut reader = quick_xml::Reader::from_str(container);
    loop {
        match reader.read_event() {
            Ok(Event::Start(element) | Event::Empty(element)) if element.local_name().as_ref() == "rootfile" => {
                return attribute(&element, "full-path");
            }
            Ok(Event::Eof) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

/// `href` (relative to the document at `base`, maybe percent-encoded, maybe with a fragment)
/// as a zip path and a fragment.
fn resolve(base: &str, href: &str) -> (String, Option<String>) {
    let (path, fragment) = match href.split_once('#') {
        Some((path, fragment)) => (path, Some(percent_decode(fragment))),
        None => (href, None),
    };
    if path.is_empty() {
        return (base.to_owned(), fragment);
    }
    let mut parts: Vec<&str> = match base.rsplit_once('/') {
        Some((dir, _)) => dir.split('/').collect(),
        None => Vec::new(),
    };
    let decoded = percent_decode(path);
    for part in decoded.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            part => parts.push(part),
        }
    }
    (parts.join("/"), fragment)
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = text.get(i + 1..i + 3)
            && let Ok(byte) = u8::from_str_radix(hex, 16)
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether `element` carries `token` among its `epub:type` words or as its ARIA role
/// (`doc-<token>`).
fn has_type(element: &scraper::node::Element, token: &str) -> bool {
    let typed = element.attrs().any(|(name, value)| {
        (name == "epub:type" || name.ends_with(":type")) && value.split_whitespace().any(|t| t == token)
    });
    typed
        || element
            .attr("role")
            .is_some_and(|role| role.split_whitespace().any(|r| r.strip_prefix("doc-") == Some(token)))
}

/// Elements whose end is the end of a line of text.
fn is_block(name: &str) -> bool {
    matches!(
        name,
        "p" | "div"
            | "section"
            | "article"
            | "aside"
            | "nav"
            | "header"
            | "footer"
            | "h1"
            | "h2"
            | "h3"
            | "h4"
            | "h5"
            | "h6"
            | "li"
            | "dt"
            | "dd"
            | "tr"
            | "br"
            | "blockquote"
            | "pre"
            | "figcaption"
            | "table"
            | "ul"
            | "ol"
            | "dl"
            | "hr"
            | "body"
    )
}

/// The text of the whole book, with where each anchor and print-page marker falls in it.
#[derive(Debug, Default)]
struct Flow {
    text: String,
    /// `(document, id)` → offset in `text`.
    anchors: HashMap<(String, String), usize>,
    /// Where each spine document starts.
    documents: Vec<(String, usize)>,
    /// Print-page markers: offset and printed label.
    page_breaks: Vec<(usize, String)>,
    /// Start and end offsets of each document's body and of each element typed `index`:
    /// the places an index may be.
    spans: HashMap<(String, ego_tree::NodeId), (usize, usize)>,
}

impl Flow {
    fn push_text(&mut self, text: &str, preformatted: bool) {
        if preformatted {
            self.text.push_str(text);
            return;
        }
        for word in text.split_whitespace() {
            if !(self.text.is_empty() || self.text.ends_with([' ', '\n'])) {
                self.text.push(' ');
            }
            self.text.push_str(word);
        }
        if text.ends_with(char::is_whitespace) && !self.text.ends_with([' ', '\n']) && !self.text.is_empty() {
            self.text.push(' ');
        }
    }

    fn end_line(&mut self) {
        while self.text.ends_with(' ') {
            self.text.pop();
        }
        if !(self.text.is_empty() || self.text.ends_with('\n')) {
            self.text.push('\n');
        }
    }

    /// Adds one spine document.
    fn add_document(&mut self, path: &str, html: &Html) {
        self.end_line();
        self.documents.push((path.to_owned(), self.text.len()));
        let mut skipped = 0usize; // inside head, script, style
        let mut preformatted = 0usize;
        let mut break_label: Option<(usize, String)> = None;
        for edge in html.tree.root().traverse() {
            match edge {
                Edge::Open(node) => match node.value() {
                    Node::Element(element) => {
                        let name = element.name();
                        if matches!(name, "head" | "script" | "style" | "title") {
                            skipped += 1;
                            continue;
                        }
                        if name == "pre" {
                            preformatted += 1;
                        }
                        if name == "body" || has_type(element, "index") {
                            self.spans
                                .insert((path.to_owned(), node.id()), (self.text.len(), self.text.len()));
                        }
                        if let Some(id) = element.id() {
                            self.anchors
                                .entry((path.to_owned(), id.to_owned()))
                                .or_insert(self.text.len());
                        }
                        if has_type(element, "pagebreak") {
                            let label = element
                                .attr("title")
                                .or_else(|| element.attr("aria-label"))
                                .map(|label| label.trim().to_owned());
                            match label {
                                Some(label) if !label.is_empty() => self.page_breaks.push((self.text.len(), label)),
                                // The label is the marker's own text: skipped from the flow.
                                _ => break_label = Some((self.text.len(), String::new())),
                            }
                            if break_label.is_some() {
                                skipped += 1;
                            }
                            continue;
                        }
                        if is_block(name) {
                            self.end_line();
                        }
                    }
                    Node::Text(text) if skipped == 0 => self.push_text(text, preformatted > 0),
                    Node::Text(text) => {
                        if let Some((_, label)) = &mut break_label {
                            label.push_str(text);
                        }
                    }
                    _ => {}
                },
                Edge::Close(node) => {
                    if let Node::Element(element) = node.value() {
                        let name = element.name();
                        if let Some(span) = self.spans.get_mut(&(path.to_owned(), node.id())) {
                            span.1 = self.text.len();
                        }
                        if matches!(name, "head" | "script" | "style" | "title") {
                            skipped = skipped.saturating_sub(1);
                        } else if has_type(element, "pagebreak") {
                            if let Some((offset, label)) = break_label.take() {
                                skipped = skipped.saturating_sub(1);
                                self.page_breaks.push((offset, label.trim().to_owned()));
                            }
                        } else {
                            if name == "pre" {
                                preformatted = preformatted.saturating_sub(1);
                            }
                            if is_block(name) {
                                self.end_line();
                            }
                        }
                    }
                }
            }
        }
        self.end_line();
    }

    /// Offset of `href` as seen from the document at `base`.
    fn offset_of(&self, base: &str, href: &str) -> Option<usize> {
        let (path, fragment) = resolve(base, href);
        if let Some(fragment) = fragment
            && let Some(&offset) = self.anchors.get(&(path.clone(), fragment))
        {
            return Some(offset);
        }
        self.documents
            .iter()
            .find(|(document, _)| *document == path)
            .map(|&(_, start)| start)
    }
}

/// Pages as offsets into the flow's text, with their labels.
struct Pages {
    starts: Vec<usize>,
    labels: Vec<String>,
}

impl Pages {
    /// Print pages where the book marks them, else pages of at most [`PAGE_CHARS`].
    fn of(flow: &Flow) -> Self {
        let marks: Vec<&(usize, String)> = flow.page_breaks.iter().filter(|(_, label)| !label.is_empty()).collect();
        let (mut starts, mut labels) = (Vec::new(), Vec::new());
        if !marks.is_empty() {
            let first = marks[0].0;
            if flow.text[..first.min(flow.text.len())].trim().chars().count() > 0 {
                starts.push(0);
                labels.push(String::new());
            }
            for (offset, label) in marks {
                if starts.last() == Some(offset) {
                    labels.pop();
                    starts.pop();
                }
                starts.push(*offset);
                labels.push(label.clone());
            }
        } else {
            let mut document_starts: Vec<usize> = flow.documents.iter().map(|&(_, start)| start).collect();
            document_starts.push(flow.text.len());
            for pair in document_starts.windows(2) {
                let (mut start, end) = (pair[0], pair[1]);
                if flow.text[start..end].trim().is_empty() {
                    continue;
                }
                while start < end {
                    starts.push(start);
                    start = page_end(&flow.text, start, end);
                }
            }
            if starts.is_empty() {
                starts.push(0);
            }
            labels = (1..=starts.len()).map(|n| n.to_string()).collect();
        }
        // An unlabelled page (front matter before the first marker) is named by its number.
        for (position, label) in labels.iter_mut().enumerate() {
            if label.is_empty() {
                *label = (position + 1).to_string();
            }
        }
        Self { starts, labels }
    }

    /// The 1-based page holding `offset`.
    fn page_at(&self, offset: usize) -> u32 {
        let position = self.starts.partition_point(|&start| start <= offset).max(1);
        u32::try_from(position).unwrap_or(u32::MAX)
    }

    fn text<'f>(&self, flow: &'f Flow, page: usize) -> &'f str {
        let start = self.starts[page];
        let end = self.starts.get(page + 1).copied().unwrap_or(flow.text.len());
        flow.text[start..end].trim()
    }
}

/// Where a page that starts at `start` ends: after at most [`PAGE_CHARS`] characters, at the
/// last line end (else word end) before that, never past `end`.
fn page_end(text: &str, start: usize, end: usize) -> usize {
    let slice = &text[start..end];
    let Some((limit, _)) = slice.char_indices().nth(PAGE_CHARS) else {
        return end;
    };
    let head = &slice[..limit];
    let cut = head
        .rfind('\n')
        .filter(|&at| at > limit / 2)
        .or_else(|| head.rfind(' ').filter(|&at| at > limit / 2))
        .map_or(limit, |at| at + 1);
    start + cut
}

/// How deep `markup`'s elements nest, counted up to `limit` (a quick scan of the tags, not a
/// parse: void and self-closed elements do not open, end tags close).
fn nesting_depth(markup: &str, limit: usize) -> usize {
    const VOID: [&str; 14] = [
        "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source", "track", "wbr",
    ];
    let (mut depth, mut deepest) = (0usize, 0usize);
    let mut rest = markup;
    while let Some(at) = rest.find('<') {
        rest = &rest[at + 1..];
        let Some(end) = rest.find('>') else {
            break;
        };
        let tag = &rest[..end];
        rest = &rest[end + 1..];
        if let Some(closing) = tag.strip_prefix('/') {
            if !closing.is_empty() {
                depth = depth.saturating_sub(1);
            }
            continue;
        }
        if tag.starts_with(['!', '?']) || tag.ends_with('/') {
            continue;
        }
        let name = tag
            .split(|c: char| c.is_whitespace())
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        if VOID.contains(&name.as_str()) {
            continue;
        }
        depth += 1;
        deepest = deepest.max(depth);
        if deepest > limit {
            break;
        }
    }
    deepest
}

/// The text of a document too deep to parse as HTML: what lies between its tags.
fn plain_text(markup: &str) -> String {
    let mut text = String::with_capacity(markup.len() / 2);
    let mut rest = markup;
    while let Some(at) = rest.find('<') {
        text.push_str(&rest[..at]);
        text.push(' ');
        rest = rest[at..].find('>').map_or("", |end| &rest[at + end + 1..]);
    }
    text.push_str(rest);
    text
}

/// Parses one XHTML document; one nested deeper than [`MAX_NESTING`] is read as plain text.
fn parse_xhtml(path: &str, text: &str, warnings: &mut Warnings) -> Html {
    if nesting_depth(text, MAX_NESTING) > MAX_NESTING {
        warnings.push(format!(
            "{path} nests its elements more than {MAX_NESTING} deep: read as plain text"
        ));
        let escaped = plain_text(text).replace('&', "&amp;").replace('<', "&lt;");
        Html::parse_document(&format!("<html><body><p>{escaped}</p></body></html>"))
    } else {
        Html::parse_document(text)
    }
}

/// Text of a node's subtree, whitespace collapsed.
fn text_of(node: NodeRef<Node>) -> String {
    let mut out = String::new();
    for descendant in node.descendants() {
        if let Node::Text(text) = descendant.value() {
            out.push_str(text);
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn element_name<'n>(node: &NodeRef<'n, Node>) -> Option<&'n str> {
    node.value().as_element().map(|element| element.name())
}

fn cut_title(title: &str) -> String {
    crate::index::cut(title, MAX_TITLE_BYTES)
}

/// The ToC of an EPUB 3 navigation document: each link (or unlinked label) of the `toc` nav,
/// at the level of the lists around it.
fn nav_toc(html: &Html, nav_path: &str, flow: &Flow, pages: &Pages) -> Vec<TocEntry> {
    let Some(nav) = html.tree.root().descendants().find(|node| {
        node.value()
            .as_element()
            .is_some_and(|element| element.name() == "nav" && has_type(element, "toc"))
    }) else {
        return Vec::new();
    };
    let mut entries = Vec::new();
    for node in nav.descendants() {
        let Some(name) = element_name(&node) else {
            continue;
        };
        if !matches!(name, "a" | "span") || node.parent().and_then(|parent| element_name(&parent)) != Some("li") {
            continue;
        }
        // The label is the list item's first link or span; later ones are its text.
        let first_label = node.parent().and_then(|item| {
            item.children()
                .find(|child| matches!(element_name(child), Some("a" | "span")))
        });
        if first_label.map(|label| label.id()) != Some(node.id()) {
            continue;
        }
        let level = node
            .ancestors()
            .take_while(|ancestor| ancestor.id() != nav.id())
            .filter(|ancestor| matches!(element_name(ancestor), Some("ol" | "ul")))
            .count();
        let title = text_of(node);
        if title.is_empty() {
            continue;
        }
        let page = node
            .value()
            .as_element()
            .and_then(|element| element.attr("href"))
            .and_then(|href| flow.offset_of(nav_path, href))
            .map(|offset| pages.page_at(offset));
        entries.push(TocEntry {
            level: u32::try_from(level.max(1)).unwrap_or(u32::MAX),
            title: cut_title(&title),
            page,
        });
        if entries.len() >= MAX_NAVIGATION_ENTRIES {
            break;
        }
    }
    entries
}

/// The ToC of an EPUB 2 `toc.ncx`: each `navPoint` at its nesting depth.
fn ncx_toc(xml: &str, ncx_path: &str, flow: &Flow, pages: &Pages) -> Vec<TocEntry> {
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut entries = Vec::new();
    let mut depth = 0u32;
    let mut in_label_text = false;
    let mut label = String::new();
    let mut in_nav_map = false;
    loop {
        match reader.read_event() {
            Ok(Event::Empty(element) | Event::Start(element))
                if in_nav_map && element.local_name().as_ref() == "content" =>
            {
                let title = label.split_whitespace().collect::<Vec<_>>().join(" ");
                if !title.is_empty() && depth > 0 {
                    let page = attribute(&element, "src")
                        .and_then(|src| flow.offset_of(ncx_path, &src))
                        .map(|offset| pages.page_at(offset));
                    entries.push(TocEntry {
                        level: depth,
                        title: cut_title(&title),
                        page,
                    });
                    if entries.len() >= MAX_NAVIGATION_ENTRIES {
                        break;
                    }
                }
                label.clear();
            }
            Ok(Event::Start(element)) => match element.local_name().as_ref() {
                "navMap" => in_nav_map = true,
                "navPoint" if in_nav_map => {
                    depth += 1;
                    label.clear();
                }
                "text" => in_label_text = in_nav_map,
                _ => {}
            },
            Ok(Event::Text(text)) if in_label_text => label.push_str(&text),
            Ok(Event::GeneralRef(reference)) if in_label_text => {
                if let Ok(Some(character)) = reference.resolve_char_ref() {
                    label.push(character);
                } else if let Some(text) = quick_xml::escape::resolve_predefined_entity(&reference) {
                    label.push_str(text);
                }
            }
            Ok(Event::End(element)) => match element.local_name().as_ref() {
                "navMap" => in_nav_map = false,
                "navPoint" if in_nav_map => depth = depth.saturating_sub(1),
                "text" => in_label_text = false,
                _ => {}
            },
            Ok(Event::Eof) | Err(_) => break,
            Ok(_) => {}
        }
    }
    entries
}

/// The print-page labels of the EPUB 3 `page-list` nav, by the offset each link lands on.
fn page_list(html: &Html, nav_path: &str, flow: &Flow) -> Vec<(usize, String)> {
    let Some(nav) = html.tree.root().descendants().find(|node| {
        node.value()
            .as_element()
            .is_some_and(|element| element.name() == "nav" && has_type(element, "page-list"))
    }) else {
        return Vec::new();
    };
    let mut marks: Vec<(usize, String)> = nav
        .descendants()
        .filter_map(|node| {
            let href = node
                .value()
                .as_element()
                .filter(|element| element.name() == "a")?
                .attr("href")?;
            let offset = flow.offset_of(nav_path, href)?;
            let label = text_of(node);
            (!label.is_empty()).then_some((offset, label))
        })
        .collect();
    marks.sort_by_key(|(offset, _)| *offset);
    marks.dedup_by_key(|(offset, _)| *offset);
    marks
}

/// The book's own index: its entries with locators resolved to pages, and where it is.
fn book_index(documents: &[(String, Html)], flow: &Flow, pages: &Pages) -> (Vec<IndexEntry>, Vec<IndexInfo>) {
    let mut entries = Vec::new();
    let mut indices = Vec::new();
    for (path, html) in documents {
        for container in index_containers(html) {
            let name = index_name(container);
            let first = entries.len();
            read_index(container, path, flow, pages, &name, &mut entries);
            if entries.len() == first {
                continue;
            }
            let (start, end) = flow
                .spans
                .get(&(path.clone(), container.id()))
                .copied()
                .unwrap_or_default();
            let first_page = pages.page_at(start);
            let last_page = pages.page_at(end.saturating_sub(1).max(start));
            let found = &entries[first..];
            indices.push(IndexInfo {
                name: name.clone(),
                physical_pages: [first_page, last_page],
                entries: found.len(),
                nesting_depth: found.iter().map(|entry| entry.depth).max().unwrap_or(1),
                sibling_order: sibling_order(found),
            });
        }
    }
    (entries, indices)
}

/// The parts of a document that are an index: elements typed `index`, else the whole body
/// of a document whose first heading is "Index" (or "Index of ...", "... Index").
fn index_containers(html: &Html) -> Vec<NodeRef<'_, Node>> {
    let typed: Vec<NodeRef<Node>> = html
        .tree
        .root()
        .descendants()
        .filter(|node| {
            node.value()
                .as_element()
                .is_some_and(|element| has_type(element, "index"))
        })
        .collect();
    // An index inside another typed one is read with it.
    let outermost: Vec<NodeRef<Node>> = typed
        .iter()
        .filter(|node| {
            !node
                .ancestors()
                .any(|ancestor| typed.iter().any(|other| other.id() == ancestor.id()))
        })
        .copied()
        .collect();
    if !outermost.is_empty() {
        return outermost;
    }
    let first_heading = html
        .tree
        .root()
        .descendants()
        .find(|node| matches!(element_name(node), Some("h1" | "h2" | "h3")));
    match first_heading {
        Some(heading) if is_index_title(&text_of(heading)) => html
            .tree
            .root()
            .descendants()
            .find(|node| element_name(node) == Some("body"))
            .into_iter()
            .collect(),
        _ => Vec::new(),
    }
}

fn is_index_title(title: &str) -> bool {
    let lower = title.trim().to_lowercase();
    let words: Vec<&str> = lower.split_whitespace().collect();
    matches!(words.first(), Some(&"index")) || matches!(words.last(), Some(&"index"))
}

/// The heading of an index container: its first heading's text, else "Index".
fn index_name(container: NodeRef<Node>) -> String {
    container
        .descendants()
        .find(|node| matches!(element_name(node), Some("h1" | "h2" | "h3" | "h4")))
        .map(text_of)
        .filter(|name| !name.is_empty())
        .map_or_else(|| "Index".to_owned(), |name| cut_title(&name))
}

/// Reads the entries of one index: each list item (`li`) or term (`dt`) is an entry; the
/// links in it, outside its sub-lists, its locators; the entries in its sub-lists (or, for a
/// `dt`, in the `dd` after it) its sub-entries.
fn read_index(container: NodeRef<Node>, path: &str, flow: &Flow, pages: &Pages, name: &str, out: &mut Vec<IndexEntry>) {
    // Entry element id → its path, for the sub-entries under it.
    let mut paths: HashMap<ego_tree::NodeId, Vec<String>> = HashMap::new();
    for node in container.descendants() {
        if out.len() >= MAX_NAVIGATION_ENTRIES {
            return;
        }
        let Some(kind) = element_name(&node) else {
            continue;
        };
        if !matches!(kind, "li" | "dt") {
            continue;
        }
        let parent_entry = enclosing_entry(node, container);
        let parent_path = parent_entry
            .and_then(|parent| paths.get(&parent.id()))
            .cloned()
            .unwrap_or_default();
        let (own_text, links) = entry_parts(node);
        let (term, see, see_also) = split_references(&own_text);
        let mut locators: Vec<(String, u32)> = links
            .iter()
            .filter_map(|(text, href)| {
                let offset = flow.offset_of(path, href)?;
                Some((text.clone(), pages.page_at(offset)))
            })
            .collect();
        let term = if term.is_empty() {
            // A linked term (`<li><a href>term</a></li>`): the first link is the term too.
            match links.first() {
                Some((text, _)) if !text.chars().all(|c| c.is_ascii_digit() || c == '-' || c == '–') => text.clone(),
                _ => continue,
            }
        } else {
            term
        };
        if term.is_empty() {
            continue;
        }
        let mut entry_path = parent_path;
        if entry_path.len() >= MAX_INDEX_DEPTH {
            entry_path.truncate(MAX_INDEX_DEPTH - 1);
        }
        entry_path.push(cut_title(&term));
        paths.insert(node.id(), entry_path.clone());
        locators.dedup();
        out.push(IndexEntry {
            depth: u32::try_from(entry_path.len()).unwrap_or(1),
            path: entry_path,
            pages: locators.iter().map(|&(_, page)| [page, page]).collect(),
            printed: locators.into_iter().map(|(text, _)| text).collect(),
            see,
            see_also,
            index_name: Some(name.to_owned()),
        });
    }
}

/// The entry element a `li` or `dt` is a sub-entry of: for a `li`, the nearest enclosing
/// `li`; for a `dt`, the `dt` before the nearest enclosing `dd`.
fn enclosing_entry<'a>(node: NodeRef<'a, Node>, container: NodeRef<'a, Node>) -> Option<NodeRef<'a, Node>> {
    for ancestor in node.ancestors() {
        if ancestor.id() == container.id() {
            return None;
        }
        match element_name(&ancestor) {
            Some("li") => return Some(ancestor),
            Some("dd") => {
                return ancestor
                    .prev_siblings()
                    .find(|sibling| element_name(sibling) == Some("dt"));
            }
            _ => {}
        }
    }
    None
}

/// An entry's own text (outside its links and sub-lists) and its links `(text, href)`.
fn entry_parts(entry: NodeRef<Node>) -> (String, Vec<(String, String)>) {
    let mut text = String::new();
    let mut links = Vec::new();
    let mut skip_until: Option<ego_tree::NodeId> = None;
    for edge in entry.traverse() {
        match edge {
            Edge::Open(node) => {
                if skip_until.is_some() {
                    continue;
                }
                if node.id() != entry.id() {
                    match element_name(&node) {
                        Some("ul" | "ol" | "dl" | "li" | "dd" | "dt") => {
                            skip_until = Some(node.id());
                            continue;
                        }
                        Some("a") => {
                            if let Some(href) = node.value().as_element().and_then(|element| element.attr("href")) {
                                links.push((text_of(node), href.to_owned()));
                                text.push(' ');
                                skip_until = Some(node.id());
                                continue;
                            }
                        }
                        _ => {}
                    }
                }
                if let Node::Text(fragment) = node.value() {
                    text.push_str(fragment);
                }
            }
            Edge::Close(node) => {
                if skip_until == Some(node.id()) {
                    skip_until = None;
                }
            }
        }
    }
    (text.split_whitespace().collect::<Vec<_>>().join(" "), links)
}

/// Splits an entry's text into the term and its cross-references: "term, see other" and
/// "term (see also a; b)".
fn split_references(text: &str) -> (String, Vec<String>, Vec<String>) {
    let lower = text.to_lowercase();
    let (term_end, see, see_also) = if let Some(at) = lower.find("see also") {
        (at, Vec::new(), targets(&text[at + "see also".len()..]))
    } else if let Some(at) = lower
        .match_indices("see ")
        .map(|(at, _)| at)
        .find(|&at| at == 0 || !lower[..at].ends_with(char::is_alphanumeric))
    {
        (at, targets(&text[at + "see ".len()..]), Vec::new())
    } else {
        (text.len(), Vec::new(), Vec::new())
    };
    let term = text[..term_end]
        .trim()
        .trim_end_matches(['(', '.', ',', ';', ':', '—', '–', '-'])
        .trim()
        .trim_end_matches([',', ';', ':'])
        .trim()
        .to_owned();
    (term, see, see_also)
}

fn targets(text: &str) -> Vec<String> {
    text.split(';')
        .map(|target| {
            target
                .trim()
                .trim_matches(|c: char| c == ')' || c == '.' || c.is_whitespace())
        })
        .filter(|target| !target.is_empty())
        .map(cut_title)
        .collect()
}

/// Extracts an EPUB. The shape of the result is a PDF's: pages with labels, a ToC, the index.
pub(crate) fn extract(
    bytes: &[u8],
    opts: &ExtractOptions,
    with_page_text: bool,
    progress: &mut dyn FnMut(Progress),
) -> Result<Extraction, ExtractError> {
    let mut warnings = Warnings::default();
    let mut package = Package::open(bytes)?;
    let root = package
        .root()
        .ok_or_else(|| bad("no META-INF/container.xml: a zip, but not an EPUB".to_owned()))?;
    let container = package.read_text(&format!("{root}META-INF/container.xml"))?;
    let opf_path = rootfile(&container)
        .map(|path| format!("{root}{}", path.trim_start_matches('/')))
        .ok_or_else(|| bad("META-INF/container.xml names no package document".to_owned()))?;
    let opf = package_document(&package.read_text(&opf_path)?)?;
    if opf.spine.is_empty() {
        return Err(bad("the spine lists no document".to_owned()));
    }

    // The spine's documents, parsed, in reading order.
    let mut documents: Vec<(String, Html)> = Vec::with_capacity(opf.spine.len());
    let mut flow = Flow::default();
    for id in &opf.spine {
        let Some(item) = opf.items.get(id) else {
            warnings.push(format!("the spine names {id}, which the manifest does not list"));
            continue;
        };
        let (path, _) = resolve(&opf_path, &item.href);
        if !(item.media_type.contains("html") || item.media_type.is_empty()) {
            continue;
        }
        // Some packagers list a document once per section (`ch.xhtml#s2` items): it is read once.
        if documents.iter().any(|(document, _)| *document == path) {
            continue;
        }
        let text = match package.read_text(&path) {
            Ok(text) => text,
            Err(err @ ExtractError::BadEpub(_)) if !package.has(&path) => {
                warnings.push(err.to_string());
                continue;
            }
            Err(err) => return Err(err),
        };
        let html = parse_xhtml(&path, &text, &mut warnings);
        flow.add_document(&path, &html);
        documents.push((path, html));
    }
    if documents.is_empty() {
        return Err(bad("no document of the spine could be read".to_owned()));
    }

    // The navigation document, in the spine or not.
    let nav = opf
        .items
        .values()
        .find(|item| item.properties.split_whitespace().any(|p| p == "nav"))
        .map(|item| resolve(&opf_path, &item.href).0);
    let nav_html = match &nav {
        Some(path) => match documents.iter().position(|(document, _)| document == path) {
            Some(_) => None,
            None => package
                .read_text(path)
                .ok()
                .map(|text| parse_xhtml(path, &text, &mut warnings)),
        },
        None => None,
    };
    let nav_document = nav.as_ref().and_then(|path| {
        documents
            .iter()
            .find(|(document, _)| document == path)
            .map(|(_, html)| html)
            .or(nav_html.as_ref())
    });

    if flow.page_breaks.is_empty()
        && let (Some(path), Some(html)) = (&nav, nav_document)
    {
        flow.page_breaks = page_list(html, path, &flow);
    }
    let pages = Pages::of(&flow);
    let total = u32::try_from(pages.starts.len()).unwrap_or(u32::MAX);
    if pages.starts.len() > opts.max_pages {
        return Err(ExtractError::TooManyPages {
            pages: pages.starts.len(),
            limit: opts.max_pages,
        });
    }

    let mut toc = match (&nav, nav_document) {
        (Some(path), Some(html)) => nav_toc(html, path, &flow, &pages),
        _ => Vec::new(),
    };
    if toc.is_empty()
        && let Some(ncx) = opf.ncx.as_ref().and_then(|id| opf.items.get(id))
    {
        let (path, _) = resolve(&opf_path, &ncx.href);
        match package.read_text(&path) {
            Ok(xml) => toc = ncx_toc(&xml, &path, &flow, &pages),
            Err(err) => warnings.push(format!("toc.ncx: {err}")),
        }
    }
    let toc_source = if toc.is_empty() {
        TocSource::None
    } else {
        TocSource::Outline
    };

    let (index, indices) = book_index(&documents, &flow, &pages);
    let index_support_rate = if index.is_empty() {
        None
    } else {
        crate::verify::support_rate_of(&index, |page| {
            let position = usize::try_from(page).ok()?.checked_sub(1)?;
            (position < pages.starts.len()).then(|| pages.text(&flow, position).to_owned())
        })
    };
    // The navigation document, when it is part of the reading order, is the contents listing.
    let contents_pages: Vec<[u32; 2]> = nav
        .as_ref()
        .and_then(|path| {
            let position = flow.documents.iter().position(|(document, _)| document == path)?;
            let start = flow.documents[position].1;
            let end = flow
                .documents
                .get(position + 1)
                .map_or(flow.text.len(), |&(_, start)| start);
            Some([pages.page_at(start), pages.page_at(end.saturating_sub(1).max(start))])
        })
        .into_iter()
        .collect();

    let page_texts: Vec<PageText> = if with_page_text {
        (0..pages.starts.len())
            .map(|position| PageText {
                number: u32::try_from(position + 1).unwrap_or(u32::MAX),
                label: pages.labels[position].clone(),
                text: pages.text(&flow, position).to_owned(),
            })
            .collect()
    } else {
        Vec::new()
    };
    progress(Progress::Pages { done: total, total });

    let signals = StructureSignals::measure(&toc, &indices, &index, index_support_rate);
    Ok(Extraction {
        page_count: total,
        page_labels: pages.labels,
        toc_source,
        toc,
        index,
        indices,
        contents_pages,
        index_support_rate,
        signals,
        pages: page_texts,
        ocr: None,
        warnings: warnings.finish(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hrefs_resolve_against_their_document() {
        assert_eq!(
            resolve("OEBPS/content.opf", "text/ch%201.xhtml#s2"),
            ("OEBPS/text/ch 1.xhtml".to_owned(), Some("s2".to_owned()))
        );
        assert_eq!(
            resolve("OEBPS/text/nav.xhtml", "../text/ch1.xhtml"),
            ("OEBPS/text/ch1.xhtml".to_owned(), None)
        );
        assert_eq!(
            resolve("OEBPS/text/ch1.xhtml", "#a"),
            ("OEBPS/text/ch1.xhtml".to_owned(), Some("a".to_owned()))
        );
        // No way out of the package, however many `..`.
        assert_eq!(resolve("a.opf", "../../../../etc/passwd").0, "etc/passwd");
    }

    #[test]
    fn references_split_from_the_term() {
        assert_eq!(
            split_references("arrays, see vectors"),
            ("arrays".to_owned(), vec!["vectors".to_owned()], vec![])
        );
        assert_eq!(
            split_references("lists (see also arrays; tuples)"),
            (
                "lists".to_owned(),
                vec![],
                vec!["arrays".to_owned(), "tuples".to_owned()]
            )
        );
        assert_eq!(split_references("overseer"), ("overseer".to_owned(), vec![], vec![]));
    }

    #[test]
    fn nesting_is_counted_from_the_tags() {
        assert_eq!(
            nesting_depth(
                "<html><body><p>a<br>b<img src='x'/></p><div><span/></div></body></html>",
                10
            ),
            3
        );
        assert_eq!(nesting_depth(&"<div>".repeat(10_000), 512), 513);
        assert_eq!(plain_text("<p>a <b>b</b></p>c"), " a  b  c");
    }

    #[test]
    fn pages_break_at_lines_within_the_size() {
        let text = "word ".repeat(1000);
        let end = page_end(&text, 0, text.len());
        assert!(end <= PAGE_CHARS && end > PAGE_CHARS / 2, "{end}");
        assert!(text[..end].ends_with(' '));
    }
}
