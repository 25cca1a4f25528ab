//! Locator verification: does the page an index locator points to show the entry?

use std::collections::HashMap;

use crate::IndexEntry;
use crate::book::Book;

/// Lower-case letters and digits only, accents removed: "Höhe-Wert" → "hohewert".
pub(crate) fn fold(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars().flat_map(char::to_lowercase) {
        let base = match c {
            'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' | 'ă' => 'a',
            'ç' | 'ć' | 'č' => 'c',
            'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ě' => 'e',
            'ì' | 'í' | 'î' | 'ï' | 'ī' | 'ı' => 'i',
            'ñ' | 'ń' => 'n',
            'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ō' => 'o',
            'ù' | 'ú' | 'û' | 'ü' | 'ū' | 'ů' => 'u',
            'ý' | 'ÿ' => 'y',
            'š' | 'ś' | 'ş' => 's',
            'ž' | 'ź' | 'ż' => 'z',
            'ř' => 'r',
            'ß' => {
                out.push_str("ss");
                continue;
            }
            c => c,
        };
        if base.is_alphanumeric() {
            out.push(base);
        }
    }
    out
}

/// The word of a term most likely to appear literally: the longest one.
fn head_word(term: &str) -> String {
    term.split(|c: char| c.is_whitespace() || c == ',' || c == '(' || c == ')')
        .map(fold)
        .max_by_key(String::len)
        .unwrap_or_default()
}

/// Share of locators (page ranges) whose pages show the entry's term or its head word.
pub(crate) fn support_rate(book: &Book, index: &[IndexEntry]) -> Option<f64> {
    support_rate_of(index, |p| {
        book.pages.get((p as usize).saturating_sub(1)).map(|page| page.text())
    })
}

/// [`support_rate`] over any book whose page `p` (1-based) has the text `page_text(p)`.
pub(crate) fn support_rate_of(index: &[IndexEntry], page_text: impl Fn(u32) -> Option<String>) -> Option<f64> {
    let mut cache: HashMap<u32, String> = HashMap::new();
    let (mut total, mut found) = (0usize, 0usize);
    for entry in index {
        let Some(term) = entry.path.last() else {
            continue;
        };
        let full = fold(term);
        let head = head_word(term);
        if full.is_empty() {
            continue;
        }
        for &[a, b] in &entry.pages {
            total += 1;
            let hit = (a..=b.min(a.saturating_add(50))).any(|p| {
                let text = cache
                    .entry(p)
                    .or_insert_with(|| page_text(p).map(|text| fold(&text)).unwrap_or_default());
                text.contains(&full) || (head.chars().count() >= 3 && text.contains(&head))
            });
            if hit {
                found += 1;
            }
        }
    }
    (total > 0).then(|| found as f64 / total as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folding() {
        assert_eq!(fold("Höhe-Wert"), "hohewert");
        assert_eq!(fold("Straße"), "strasse");
        assert_eq!(head_word("Bögen, manuelle Kontrolle"), "kontrolle");
    }
}
