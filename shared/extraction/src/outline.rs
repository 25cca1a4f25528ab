//! Table of contents from the document outline (ISO 32000-1, 12.3.3) with destinations
//! resolved to physical pages (12.3.2).

use std::collections::{HashMap, HashSet};

use lopdf::{Dictionary, Document, Object, ObjectId};

use crate::labels::{dict_get, resolve, resolve_dict};
use crate::textstring::decode_text_string;
use crate::{TocEntry, Warnings};

/// Deepest outline level kept.
const MAX_DEPTH: u32 = 64;
/// Most outline items read.
const MAX_ITEMS: usize = 100_000;
/// Deepest name tree walked.
const MAX_NAME_TREE_DEPTH: usize = 32;

struct Resolver<'a> {
    doc: &'a Document,
    page_index: HashMap<ObjectId, u32>,
    page_count: u32,
    /// Old-style catalog `/Dests` dictionary.
    dests_dict: Option<&'a Dictionary>,
    /// `/Names /Dests` name tree, flattened on first use.
    name_tree: Option<HashMap<Vec<u8>, &'a Object>>,
}

impl<'a> Resolver<'a> {
    fn named(&mut self, name: &[u8], warnings: &mut Warnings) -> Option<&'a Object> {
        if let Some(dict) = self.dests_dict
            && let Ok(value) = dict.get(name)
        {
            return Some(value);
        }
        if self.name_tree.is_none() {
            let mut map = HashMap::new();
            let doc = self.doc;
            if let Some(tree) = doc
                .catalog()
                .ok()
                .and_then(|c| dict_get(doc, c, b"Names"))
                .and_then(|names| resolve_dict(doc, names))
                .and_then(|names| names.get(b"Dests").ok())
            {
                let mut visited = HashSet::new();
                flatten_name_tree(doc, tree, 0, &mut visited, &mut map, warnings);
            }
            self.name_tree = Some(map);
        }
        self.name_tree.as_ref().and_then(|m| m.get(name).copied())
    }

    /// Physical page of a destination in any of its forms.
    fn dest_page(&mut self, dest: &'a Object, depth: usize, warnings: &mut Warnings) -> Option<u32> {
        if depth > 8 {
            return None;
        }
        let doc = self.doc;
        match resolve(doc, dest)? {
            Object::Array(items) => match items.first()? {
                Object::Reference(id) => self.page_index.get(id).copied(),
                // Remote-style destinations give a 0-based page number.
                Object::Integer(n) => u32::try_from(*n)
                    .ok()
                    .and_then(|n| n.checked_add(1))
                    .filter(|n| *n <= self.page_count),
                _ => None,
            },
            Object::Name(name) | Object::String(name, _) => {
                let value = self.named(name, warnings)?;
                self.dest_page(value, depth + 1, warnings)
            }
            Object::Dictionary(dict) => {
                let d = dict.get(b"D").ok()?;
                self.dest_page(d, depth + 1, warnings)
            }
            _ => None,
        }
    }

    fn item_page(&mut self, item: &'a Dictionary, warnings: &mut Warnings) -> Option<u32> {
        let doc = self.doc;
        if let Ok(dest) = item.get(b"Dest") {
            return self.dest_page(dest, 0, warnings);
        }
        let action = resolve_dict(doc, item.get(b"A").ok()?)?;
        match dict_get(doc, action, b"S") {
            Some(Object::Name(s)) if s == b"GoTo" => {}
            _ => return None,
        }
        let d = action.get(b"D").ok()?;
        self.dest_page(d, 0, warnings)
    }
}

fn flatten_name_tree<'a>(
    doc: &'a Document,
    node: &'a Object,
    depth: usize,
    visited: &mut HashSet<ObjectId>,
    map: &mut HashMap<Vec<u8>, &'a Object>,
    warnings: &mut Warnings,
) {
    if depth > MAX_NAME_TREE_DEPTH || map.len() > 1_000_000 {
        warnings.push("the destination name tree is too deep; part of it was ignored");
        return;
    }
    if let Object::Reference(id) = node
        && !visited.insert(*id)
    {
        warnings.push("the destination name tree refers to itself; part of it was ignored");
        return;
    }
    let Some(dict) = resolve_dict(doc, node) else {
        return;
    };
    if let Some(Object::Array(names)) = dict_get(doc, dict, b"Names") {
        for pair in names.chunks(2) {
            let [key, value] = pair else { break };
            if let Some(Object::String(k, _) | Object::Name(k)) = resolve(doc, key) {
                map.entry(k.clone()).or_insert(value);
            }
        }
    }
    if let Some(Object::Array(kids)) = dict_get(doc, dict, b"Kids") {
        for kid in kids {
            flatten_name_tree(doc, kid, depth + 1, visited, map, warnings);
        }
    }
}

/// Outline title: decoded, control characters turned into spaces, trimmed.
fn title_of(doc: &Document, item: &Dictionary) -> String {
    let raw = match dict_get(doc, item, b"Title") {
        Some(Object::String(s, _)) => decode_text_string(s),
        _ => String::new(),
    };
    let cleaned: String = raw.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    cleaned.trim().to_string()
}

/// The outline as a flat list in document order.
pub(crate) fn outline_toc(doc: &Document, pages: &[ObjectId], warnings: &mut Warnings) -> Vec<TocEntry> {
    let Ok(catalog) = doc.catalog() else {
        return Vec::new();
    };
    let Some(root) = dict_get(doc, catalog, b"Outlines").and_then(|o| resolve_dict(doc, o)) else {
        return Vec::new();
    };
    let page_index: HashMap<ObjectId, u32> = pages.iter().enumerate().map(|(i, id)| (*id, (i + 1) as u32)).collect();
    let mut resolver = Resolver {
        doc,
        page_index,
        page_count: pages.len() as u32,
        dests_dict: dict_get(doc, catalog, b"Dests").and_then(|d| resolve_dict(doc, d)),
        name_tree: None,
    };

    let mut toc = Vec::new();
    let mut visited: HashSet<ObjectId> = HashSet::new();
    let mut unresolved = 0usize;
    // Stack of (item, level); an item's children are visited before its next sibling.
    let mut stack: Vec<(&Object, u32)> = Vec::new();
    if let Ok(first) = root.get(b"First") {
        stack.push((first, 1));
    }
    let mut cycle_warned = false;
    let mut depth_warned = false;
    while let Some((node, level)) = stack.pop() {
        if toc.len() >= MAX_ITEMS {
            warnings.push("the outline is too long; the rest was ignored");
            break;
        }
        let Object::Reference(id) = node else {
            warnings.push("an outline item is not an indirect object; it was skipped");
            continue;
        };
        if !visited.insert(*id) {
            if !cycle_warned {
                warnings.push("the outline refers to itself; repeated items were skipped");
                cycle_warned = true;
            }
            continue;
        }
        let Ok(item) = doc.get_dictionary(*id) else {
            warnings.push(format!("outline item {} {} is missing or not a dictionary", id.0, id.1));
            continue;
        };
        let title = title_of(doc, item);
        let page = resolver.item_page(item, warnings);
        if page.is_none() {
            unresolved += 1;
            if unresolved <= 20 {
                warnings.push(format!(
                    "the destination of outline entry \"{title}\" could not be resolved"
                ));
            }
        }
        toc.push(TocEntry { level, title, page });
        if let Ok(next) = item.get(b"Next") {
            stack.push((next, level));
        }
        if let Ok(first) = item.get(b"First") {
            if level < MAX_DEPTH {
                stack.push((first, level + 1));
            } else if !depth_warned {
                warnings.push("the outline is nested too deeply; deeper entries were skipped");
                depth_warned = true;
            }
        }
    }
    if unresolved > 20 {
        warnings.push(format!(
            "{unresolved} outline destinations could not be resolved in all"
        ));
    }
    toc
}
