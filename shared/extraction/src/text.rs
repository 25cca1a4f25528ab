//! Page text: a small content-stream interpreter that tracks the text and graphics state,
//! decodes strings through each font's encoding and lays the glyphs out into lines.

use std::collections::HashMap;
use std::rc::Rc;

use lopdf::content::{Content, Operation};
use lopdf::{Dictionary, Document, Object, ObjectId};

use crate::labels::{dict_get, resolve, resolve_dict};
use crate::tables::{GLYPH_NAMES, MAC_ROMAN_ENCODING, STANDARD_ENCODING, SYMBOL_ENCODING, WIN_ANSI_ENCODING};
use crate::{MAX_DOCUMENT_STREAM_BYTES, MAX_STREAM_BYTES, Warnings};

/// Deepest nesting of form XObjects followed.
const MAX_XOBJECT_DEPTH: usize = 8;
/// Most operators interpreted on one page (including its forms).
const MAX_OPERATIONS: usize = 5_000_000;
/// Largest code range expanded from one `bfrange` line.
const MAX_RANGE: u32 = 0x1_0000;
/// Deepest `q` nesting tracked.
const MAX_STATE_STACK: usize = 256;
/// Largest decompressed `/ToUnicode` map read. Real ones, even of large CJK fonts, stay
/// under a megabyte; the map's tokens take several times its size while it is parsed.
const MAX_CMAP_BYTES: usize = 4 * 1024 * 1024;
/// Most code-to-text mappings read from one `/ToUnicode` map. A font has at most 65 536 codes
/// in practice; ranges of 65 536 codes each, a few bytes apiece, would otherwise make a map of
/// billions of entries (a 0.5 MB file exhausted the extractor's 2 GiB).
const MAX_CMAP_MAPPINGS: usize = 1 << 18;

type Matrix = [f32; 6];
const IDENTITY: Matrix = [1.0, 0.0, 0.0, 1.0, 0.0, 0.0];

fn mul(m: &Matrix, n: &Matrix) -> Matrix {
    [
        m[0] * n[0] + m[1] * n[2],
        m[0] * n[1] + m[1] * n[3],
        m[2] * n[0] + m[3] * n[2],
        m[2] * n[1] + m[3] * n[3],
        m[4] * n[0] + m[5] * n[2] + n[4],
        m[4] * n[1] + m[5] * n[3] + n[5],
    ]
}

fn translate(tx: f32, ty: f32, m: &Matrix) -> Matrix {
    mul(&[1.0, 0.0, 0.0, 1.0, tx, ty], m)
}

/// A font reduced to what text extraction needs.
#[derive(Debug, Default)]
struct FontInfo {
    /// Codes are two bytes (Type0 fonts).
    two_byte: bool,
    /// From `/ToUnicode`.
    to_unicode: HashMap<u32, String>,
    /// From `/Encoding` (simple fonts).
    encoding: Vec<Option<String>>,
    /// Glyph widths in thousandths of the font size.
    widths: HashMap<u32, f32>,
    default_width: f32,
    /// Set for fonts without `/Widths` (the standard 14): widths are estimated.
    family: Option<Family>,
    /// A bold face (from the font name or descriptor).
    bold: bool,
}

/// Families of the standard 14 fonts, for width estimates when a font has no `/Widths`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Serif,
    Sans,
    Mono,
}

/// Rough advance width (thousandths of an em) of a character in a standard font.
fn estimate_width(family: Family, text: Option<&str>) -> f32 {
    let Some(c) = text.and_then(|t| t.chars().next()) else {
        return 500.0;
    };
    match family {
        Family::Mono => 600.0,
        Family::Sans => match c {
            ' ' | '.' | ',' | ':' | ';' | '!' | '/' | '\\' | 'f' | 't' | 'I' => 278.0,
            'i' | 'j' | 'l' | '\'' | '|' => 222.0,
            'm' => 833.0,
            'w' | 'C' | 'D' | 'H' | 'N' | 'R' | 'U' => 722.0,
            'M' => 833.0,
            'W' => 944.0,
            '(' | ')' | '[' | ']' | '-' | 'r' => 333.0,
            c if c.is_ascii_uppercase() => 667.0,
            _ => 556.0,
        },
        Family::Serif => match c {
            ' ' | '.' | ',' | ':' | ';' | '\'' => 250.0,
            'i' | 'j' | 'l' | 't' | '/' | '\\' => 278.0,
            'f' | 'r' | 'I' | '(' | ')' | '[' | ']' | '-' | '!' => 333.0,
            's' => 389.0,
            'a' | 'c' | 'e' | 'z' | '?' => 444.0,
            'm' => 778.0,
            'w' | 'A' | 'D' | 'G' | 'H' | 'N' | 'O' | 'Q' | 'U' | 'V' | 'X' | 'Y' => 722.0,
            'M' => 889.0,
            'W' => 944.0,
            c if c.is_ascii_uppercase() => 611.0,
            _ => 500.0,
        },
    }
}

impl FontInfo {
    fn text_of(&self, code: u32) -> Option<&str> {
        if let Some(s) = self.to_unicode.get(&code) {
            return Some(s);
        }
        if self.two_byte {
            return None;
        }
        self.encoding.get(code as usize).and_then(|s| s.as_deref())
    }

    fn width_of(&self, code: u32) -> f32 {
        if let Some(family) = self.family {
            return estimate_width(family, self.text_of(code));
        }
        self.widths.get(&code).copied().unwrap_or(self.default_width)
    }
}

/// Unicode for a glyph name: the Adobe Glyph List, `uniXXXX`, `uXXXX`, `a_b` ligatures and
/// `name.suffix` variants.
pub(crate) fn glyph_to_unicode(name: &[u8]) -> Option<String> {
    let name = std::str::from_utf8(name).ok()?;
    if let Ok(i) = GLYPH_NAMES.binary_search_by(|(n, _)| n.as_bytes().cmp(name.as_bytes())) {
        let code = GLYPH_NAMES.get(i)?.1;
        return char::from_u32(u32::from(code)).map(String::from);
    }
    if let Some(hex) = name.strip_prefix("uni")
        && hex.len() >= 4
        && hex.len() % 4 == 0
        && hex.bytes().all(|b| b.is_ascii_hexdigit())
    {
        let units: Vec<u16> = (0..hex.len() / 4)
            .filter_map(|i| u16::from_str_radix(hex.get(i * 4..i * 4 + 4)?, 16).ok())
            .collect();
        return Some(char::decode_utf16(units).map(|r| r.unwrap_or('\u{FFFD}')).collect());
    }
    if let Some(hex) = name.strip_prefix('u')
        && (4..=6).contains(&hex.len())
        && hex.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return u32::from_str_radix(hex, 16)
            .ok()
            .and_then(char::from_u32)
            .map(String::from);
    }
    if let Some((base, _)) = name.split_once('.')
        && !base.is_empty()
    {
        return glyph_to_unicode(base.as_bytes());
    }
    if name.contains('_') {
        let parts: Option<Vec<String>> = name.split('_').map(|p| glyph_to_unicode(p.as_bytes())).collect();
        return parts.map(|p| p.concat());
    }
    None
}

fn table_strings(table: &[u16; 256]) -> Vec<Option<String>> {
    table
        .iter()
        .map(|&u| {
            if u == 0 {
                None
            } else {
                char::from_u32(u32::from(u)).map(String::from)
            }
        })
        .collect()
}

fn named_encoding(name: &[u8]) -> Option<&'static [u16; 256]> {
    match name {
        b"WinAnsiEncoding" => Some(&WIN_ANSI_ENCODING),
        b"MacRomanEncoding" => Some(&MAC_ROMAN_ENCODING),
        b"StandardEncoding" => Some(&STANDARD_ENCODING),
        _ => None,
    }
}

fn number(object: &Object) -> Option<f32> {
    match object {
        Object::Integer(i) => Some(*i as f32),
        Object::Real(r) => Some(*r),
        _ => None,
    }
}

fn finite(v: f32) -> f32 {
    if v.is_finite() { v.clamp(-1.0e7, 1.0e7) } else { 0.0 }
}

/// Parse a ToUnicode CMap: `bfchar` and `bfrange` sections (ranges with a start string or an
/// array of strings). Also returns whether all code space ranges are one byte long.
fn parse_to_unicode(data: &[u8]) -> (HashMap<u32, String>, Option<bool>) {
    #[derive(Debug)]
    enum Tok<'a> {
        Hex(Vec<u8>),
        Name(&'a [u8]),
        Open,
        Close,
        Word(&'a [u8]),
    }
    let mut toks = Vec::new();
    let mut i = 0;
    while i < data.len() {
        let b = data[i];
        match b {
            b'<' if data.get(i + 1) == Some(&b'<') => i += 2,
            b'>' if data.get(i + 1) == Some(&b'>') => i += 2,
            b'<' => {
                let start = i + 1;
                let end = data[start..]
                    .iter()
                    .position(|&c| c == b'>')
                    .map_or(data.len(), |p| start + p);
                let digits: Vec<u8> = data[start..end].iter().copied().filter(u8::is_ascii_hexdigit).collect();
                let bytes = digits
                    .chunks(2)
                    .map(|pair| {
                        let hi = hex_val(pair[0]);
                        let lo = pair.get(1).map_or(0, |&c| hex_val(c));
                        hi << 4 | lo
                    })
                    .collect();
                toks.push(Tok::Hex(bytes));
                i = end + 1;
            }
            b'[' => {
                toks.push(Tok::Open);
                i += 1;
            }
            b']' => {
                toks.push(Tok::Close);
                i += 1;
            }
            b'%' => {
                while i < data.len() && data[i] != b'\n' && data[i] != b'\r' {
                    i += 1;
                }
            }
            b'(' => {
                // Literal strings only appear in the header; skip them.
                let mut depth = 0usize;
                while i < data.len() {
                    match data[i] {
                        b'\\' => i += 1,
                        b'(' => depth += 1,
                        b')' => {
                            depth = depth.saturating_sub(1);
                            if depth == 0 {
                                i += 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                    i += 1;
                }
            }
            _ if b.is_ascii_whitespace() || b == b'{' || b == b'}' || b == b')' => i += 1,
            _ => {
                let is_name = b == b'/';
                let start = if is_name { i + 1 } else { i };
                let mut end = start;
                while end < data.len() && !b" \t\r\n\x0c\x00[]<>()/%{}".contains(&data[end]) {
                    end += 1;
                }
                let word = &data[start..end];
                toks.push(if is_name { Tok::Name(word) } else { Tok::Word(word) });
                i = end.max(i + 1);
            }
        }
    }

    let code_of = |bytes: &[u8]| bytes.iter().take(4).fold(0u32, |acc, &b| acc << 8 | u32::from(b));
    let utf16 = |bytes: &[u8]| -> String {
        let units = bytes
            .chunks(2)
            .map(|c| u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)]));
        char::decode_utf16(units).map(|r| r.unwrap_or('\u{FFFD}')).collect()
    };
    let mut map = HashMap::new();
    let mut one_byte_space: Option<bool> = None;
    let mut k = 0;
    // Counts every mapping written, overwrites too: they cost the same time.
    let mut written = 0usize;
    while k < toks.len() && written < MAX_CMAP_MAPPINGS {
        match &toks[k] {
            Tok::Word(b"begincodespacerange") => {
                k += 1;
                while let (Some(Tok::Hex(lo)), Some(Tok::Hex(_))) = (toks.get(k), toks.get(k + 1)) {
                    let one = lo.len() == 1;
                    one_byte_space = Some(one_byte_space.unwrap_or(true) && one);
                    k += 2;
                }
            }
            Tok::Word(b"beginbfchar") => {
                k += 1;
                loop {
                    match (toks.get(k), toks.get(k + 1)) {
                        (Some(Tok::Hex(src)), Some(Tok::Hex(dst))) => {
                            map.insert(code_of(src), utf16(dst));
                            written += 1;
                        }
                        (Some(Tok::Hex(src)), Some(Tok::Name(name))) => {
                            if let Some(s) = glyph_to_unicode(name) {
                                map.insert(code_of(src), s);
                                written += 1;
                            }
                        }
                        _ => break,
                    }
                    k += 2;
                }
            }
            Tok::Word(b"beginbfrange") => {
                k += 1;
                while let (Some(Tok::Hex(lo)), Some(Tok::Hex(hi))) = (toks.get(k), toks.get(k + 1)) {
                    if written >= MAX_CMAP_MAPPINGS {
                        break;
                    }
                    let (lo, hi) = (code_of(lo), code_of(hi));
                    let count = if hi >= lo { (hi - lo).min(MAX_RANGE) } else { 0 };
                    written += count as usize + 1;
                    match toks.get(k + 2) {
                        Some(Tok::Hex(dst)) => {
                            let base = utf16(dst);
                            let mut units: Vec<u16> = base.encode_utf16().collect();
                            for off in 0..=count {
                                if hi < lo {
                                    break;
                                }
                                map.insert(lo + off, String::from_utf16_lossy(&units));
                                if let Some(last) = units.last_mut() {
                                    *last = last.wrapping_add(1);
                                }
                            }
                            k += 3;
                        }
                        Some(Tok::Open) => {
                            let mut j = k + 3;
                            let mut off = 0;
                            while let Some(Tok::Hex(dst)) = toks.get(j) {
                                if off <= count && hi >= lo {
                                    map.insert(lo + off, utf16(dst));
                                }
                                off += 1;
                                j += 1;
                            }
                            k = j + 1; // past ']'
                        }
                        _ => break,
                    }
                }
            }
            _ => k += 1,
        }
    }
    (map, one_byte_space)
}

fn hex_val(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        b'A'..=b'F' => c - b'A' + 10,
        _ => 0,
    }
}

/// The built-in encoding of an embedded Type 1 font program (`dup 12 /fi put` lines in its
/// clear-text part), used when a simple font has neither `/Encoding` nor `/ToUnicode`.
fn type1_builtin_encoding(
    doc: &Document,
    descriptor: &Dictionary,
    budget: &mut StreamBudget,
) -> Option<Vec<Option<String>>> {
    let stream = match dict_get(doc, descriptor, b"FontFile")? {
        Object::Stream(s) => s,
        _ => return None,
    };
    let data = budget.decompress(stream)?;
    let clear_len = data
        .windows(5)
        .position(|w| w == b"eexec")
        .unwrap_or(data.len().min(65_536));
    let clear = data.get(..clear_len)?;
    if clear.windows(19).any(|w| w == b"/Encoding StandardE") {
        return None;
    }
    let mut table: Vec<Option<String>> = vec![None; 256];
    let text = String::from_utf8_lossy(clear);
    let mut found = false;
    let words: Vec<&str> = text.split_ascii_whitespace().collect();
    for w in words.windows(4) {
        if w[0] == "dup"
            && w[3] == "put"
            && let (Ok(code), Some(name)) = (w[1].parse::<usize>(), w[2].strip_prefix('/'))
            && code < 256
        {
            table[code] = glyph_to_unicode(name.as_bytes());
            found = true;
        }
    }
    found.then_some(table)
}

fn build_font(doc: &Document, font: &Dictionary, budget: &mut StreamBudget) -> FontInfo {
    let subtype = match dict_get(doc, font, b"Subtype") {
        Some(Object::Name(n)) => n.as_slice(),
        _ => b"",
    };
    let mut info = FontInfo {
        default_width: 500.0,
        bold: is_bold(doc, font),
        ..FontInfo::default()
    };
    let mut one_byte_cmap = None;
    if let Some(Object::Stream(s)) = dict_get(doc, font, b"ToUnicode")
        && let Some(data) = budget.decompress_at_most(s, MAX_CMAP_BYTES)
    {
        let (map, one) = parse_to_unicode(&data);
        info.to_unicode = map;
        one_byte_cmap = one;
    }

    if subtype == b"Type0" {
        info.two_byte = one_byte_cmap != Some(true);
        info.default_width = 1000.0;
        let descendant = match dict_get(doc, font, b"DescendantFonts") {
            Some(Object::Array(a)) => a.first().and_then(|d| resolve_dict(doc, d)),
            _ => None,
        };
        if let Some(cid) = descendant {
            if let Some(dw) = dict_get(doc, cid, b"DW").and_then(number) {
                info.default_width = finite(dw);
            }
            if let Some(Object::Array(w)) = dict_get(doc, cid, b"W") {
                let mut i = 0;
                while i < w.len() {
                    let Some(first) = resolve(doc, &w[i]).and_then(number) else {
                        break;
                    };
                    let first = first.max(0.0) as u32;
                    match w.get(i + 1).and_then(|o| resolve(doc, o)) {
                        Some(Object::Array(list)) => {
                            for (j, v) in list.iter().enumerate().take(MAX_RANGE as usize) {
                                if let Some(v) = resolve(doc, v).and_then(number) {
                                    info.widths.insert(first.saturating_add(j as u32), finite(v));
                                }
                            }
                            i += 2;
                        }
                        Some(last) => {
                            let (Some(last), Some(v)) = (
                                number(last),
                                w.get(i + 2).and_then(|o| resolve(doc, o)).and_then(number),
                            ) else {
                                break;
                            };
                            let last = (last.max(0.0) as u32).min(first.saturating_add(MAX_RANGE));
                            for c in first..=last {
                                info.widths.insert(c, finite(v));
                            }
                            i += 3;
                        }
                        None => break,
                    }
                }
            }
        }
        return info;
    }

    // Simple fonts: base encoding, then differences.
    let descriptor = dict_get(doc, font, b"FontDescriptor").and_then(|d| resolve_dict(doc, d));
    let symbolic_name = matches!(dict_get(doc, font, b"BaseFont"), Some(Object::Name(n)) if n.ends_with(b"Symbol"));
    let mut encoding = table_strings(if symbolic_name {
        &SYMBOL_ENCODING
    } else {
        &STANDARD_ENCODING
    });
    let mut differences = None;
    match dict_get(doc, font, b"Encoding") {
        Some(Object::Name(n)) => {
            if let Some(t) = named_encoding(n) {
                encoding = table_strings(t);
            }
        }
        Some(Object::Dictionary(d)) => {
            match dict_get(doc, d, b"BaseEncoding") {
                Some(Object::Name(n)) => {
                    if let Some(t) = named_encoding(n) {
                        encoding = table_strings(t);
                    }
                }
                _ => {
                    if info.to_unicode.is_empty()
                        && let Some(t) = descriptor.and_then(|fd| type1_builtin_encoding(doc, fd, budget))
                    {
                        encoding = t;
                    }
                }
            }
            if let Some(Object::Array(diffs)) = dict_get(doc, d, b"Differences") {
                differences = Some(diffs);
            }
        }
        _ => {
            if info.to_unicode.is_empty()
                && let Some(t) = descriptor.and_then(|fd| type1_builtin_encoding(doc, fd, budget))
            {
                encoding = t;
            }
        }
    }
    if let Some(diffs) = differences {
        let mut code: usize = 0;
        for item in diffs {
            match resolve(doc, item) {
                Some(Object::Integer(c)) => code = usize::try_from(*c).unwrap_or(usize::MAX),
                Some(Object::Name(name)) => {
                    if let Some(slot) = encoding.get_mut(code) {
                        *slot = glyph_to_unicode(name);
                    }
                    code = code.saturating_add(1);
                }
                _ => {}
            }
        }
    }
    info.encoding = encoding;

    // Widths.
    let first_char = dict_get(doc, font, b"FirstChar")
        .and_then(number)
        .unwrap_or(0.0)
        .max(0.0) as u32;
    let mut scale = 1.0;
    if subtype == b"Type3"
        && let Some(Object::Array(m)) = dict_get(doc, font, b"FontMatrix")
        && let Some(a) = m.first().and_then(number)
    {
        scale = finite(a * 1000.0);
    }
    if let Some(Object::Array(widths)) = dict_get(doc, font, b"Widths") {
        for (j, w) in widths.iter().enumerate().take(256) {
            if let Some(w) = resolve(doc, w).and_then(number) {
                info.widths
                    .insert(first_char.saturating_add(j as u32), finite(w * scale));
            }
        }
        info.default_width = descriptor
            .and_then(|fd| dict_get(doc, fd, b"MissingWidth"))
            .and_then(number)
            .map_or(0.0, finite);
    } else if subtype != b"Type3" {
        let base = match dict_get(doc, font, b"BaseFont") {
            Some(Object::Name(n)) => String::from_utf8_lossy(n).to_ascii_lowercase(),
            _ => String::new(),
        };
        info.family = Some(if base.contains("courier") || base.contains("mono") {
            Family::Mono
        } else if base.contains("helvetica") || base.contains("arial") || base.contains("sans") {
            Family::Sans
        } else {
            Family::Serif
        });
    }
    info
}

/// Whether a font is a bold face: by its name (`Bold`, `Black`, `Heavy`, `Semibold`, TeX's
/// `bx` fonts) or its descriptor (`/FontWeight`, the ForceBold flag).
fn is_bold(doc: &Document, font: &Dictionary) -> bool {
    let mut name = match dict_get(doc, font, b"BaseFont") {
        Some(Object::Name(n)) => String::from_utf8_lossy(n).to_ascii_lowercase(),
        _ => String::new(),
    };
    if let Some(plus) = name.find('+') {
        name = name[plus + 1..].to_string();
    }
    if ["bold", "black", "heavy", "semibold", "demi"]
        .iter()
        .any(|w| name.contains(w))
    {
        return true;
    }
    // TeX font names: cmbx10, ecbx1200, lmbx, cmb10, sfbx, ptmb...
    if name.starts_with("cmbx")
        || name.starts_with("ecbx")
        || name.starts_with("sfbx")
        || name.contains("-bx")
        || name.starts_with("cmb1")
        || name.starts_with("cmssbx")
        || name.starts_with("lmbx")
    {
        return true;
    }
    let descriptor = dict_get(doc, font, b"FontDescriptor").and_then(|d| resolve_dict(doc, d));
    if let Some(fd) = descriptor {
        if dict_get(doc, fd, b"FontWeight")
            .and_then(number)
            .is_some_and(|w| w >= 600.0)
        {
            return true;
        }
        if let Some(Object::Integer(flags)) = dict_get(doc, fd, b"Flags")
            && flags & (1 << 18) != 0
        {
            return true;
        }
    }
    false
}

#[derive(Debug, Clone)]
struct GState {
    ctm: Matrix,
    font: Option<Rc<FontInfo>>,
    size: f32,
    char_spacing: f32,
    word_spacing: f32,
    scale: f32,
    leading: f32,
    rise: f32,
}

impl Default for GState {
    fn default() -> Self {
        Self {
            ctm: IDENTITY,
            font: None,
            size: 0.0,
            char_spacing: 0.0,
            word_spacing: 0.0,
            scale: 1.0,
            leading: 0.0,
            rise: 0.0,
        }
    }
}

/// A run of text on one baseline, built from consecutive show operations.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Frag {
    pub(crate) x0: f32,
    pub(crate) x1: f32,
    /// Baseline, in PDF user space (up is positive).
    pub(crate) y: f32,
    pub(crate) size: f32,
    pub(crate) bold: bool,
    pub(crate) text: String,
}

/// Largest gap (in font sizes) kept inside one fragment; wider gaps start a new fragment, so
/// that columns and table cells stay apart.
const FRAG_GAP: f32 = 0.8;

/// The words of one printed line, given one by one with their extents (a DjVu text layer's,
/// OCR's), joined into fragments where they stand at most [`FRAG_GAP`] font sizes apart, as
/// a PDF's text runs are.
pub(crate) struct WordRun<'a> {
    out: &'a mut Vec<Frag>,
    y: f32,
    size: f32,
    current: Option<Frag>,
}

impl<'a> WordRun<'a> {
    /// A line on baseline `y` in a font of `size`, whose fragments go to `out`.
    pub(crate) fn new(out: &'a mut Vec<Frag>, y: f32, size: f32) -> Self {
        Self {
            out,
            y,
            size,
            current: None,
        }
    }

    /// Whether a word starting at `x0` would join the fragment before it.
    pub(crate) fn joins(&self, x0: f32) -> bool {
        self.current
            .as_ref()
            .is_some_and(|frag| x0 - frag.x1 <= FRAG_GAP * self.size)
    }

    /// The next word.
    pub(crate) fn push(&mut self, x0: f32, x1: f32, text: &str) {
        if self.joins(x0)
            && let Some(frag) = &mut self.current
        {
            frag.text.push(' ');
            frag.text.push_str(text);
            frag.x1 = x1;
            return;
        }
        self.out.extend(self.current.take());
        self.current = Some(Frag {
            x0,
            x1,
            y: self.y,
            size: self.size,
            bold: false,
            text: text.to_owned(),
        });
    }

    /// Something unread up to `x1` right after the fragment before (a word not kept): the
    /// fragment reaches over it, so no gap opens there.
    pub(crate) fn cover(&mut self, x0: f32, x1: f32) {
        if self.joins(x0)
            && let Some(frag) = &mut self.current
        {
            frag.x1 = frag.x1.max(x1);
        }
    }
}

impl Drop for WordRun<'_> {
    fn drop(&mut self) {
        self.out.extend(self.current.take());
    }
}

/// Builds fragments from positioned text runs, in content-stream order.
#[derive(Debug, Default)]
struct Lines {
    frags: Vec<Frag>,
    cur: String,
    active: bool,
    x0: f32,
    y: f32,
    end_x: f32,
    size: f32,
    bold: bool,
}

impl Lines {
    fn add(&mut self, x: f32, y: f32, size: f32, text: &str, end_x: f32, bold: bool) {
        let size = size.abs().max(1.0);
        if self.active {
            let tol = 0.5 * size.max(self.size);
            let gap = x - self.end_x;
            let same_line = (y - self.y).abs() <= tol
                && x >= self.end_x - 1.2 * size.max(self.size)
                && gap <= FRAG_GAP * size.max(self.size);
            if same_line {
                if gap < -0.1 * size && self.compose_accent(text) {
                    self.end_x = self.end_x.max(end_x);
                    return;
                }
                if gap > 0.15 * size.min(self.size).max(1.0)
                    && !self.cur.ends_with(' ')
                    && !text.starts_with(' ')
                    && !self.cur.is_empty()
                {
                    self.cur.push(' ');
                }
                if self.cur.trim().is_empty() {
                    self.bold = bold;
                }
                push_clean(&mut self.cur, text);
                self.end_x = self.end_x.max(end_x);
                return;
            }
            self.flush();
        }
        self.active = true;
        self.x0 = x.min(end_x);
        self.y = y;
        self.size = size;
        self.end_x = end_x.max(x);
        self.bold = bold;
        push_clean(&mut self.cur, text);
    }

    /// TeX draws accented letters as a spacing accent overprinted on the base letter: fold the
    /// two into one precomposed character when the text moved back to overprint.
    fn compose_accent(&mut self, text: &str) -> bool {
        let mut cur_chars = self.cur.chars();
        let Some(last) = cur_chars.next_back() else {
            return false;
        };
        let mut new_chars = text.chars();
        let Some(first) = new_chars.next() else {
            return false;
        };
        let Some(combined) = compose(last, first).or_else(|| compose(first, last)) else {
            return false;
        };
        let prefix_len = cur_chars.as_str().len();
        self.cur.truncate(prefix_len);
        self.cur.push(combined);
        push_clean(&mut self.cur, new_chars.as_str());
        true
    }

    fn flush(&mut self) {
        let trimmed = self.cur.trim();
        if !trimmed.is_empty() && self.frags.len() < MAX_FRAGS {
            // Leading spaces move the visible start a little; the error is negligible.
            self.frags.push(Frag {
                x0: self.x0,
                x1: self.end_x,
                y: self.y,
                size: self.size,
                bold: self.bold,
                text: trimmed.to_string(),
            });
        }
        self.cur.clear();
        self.active = false;
    }

    fn finish(mut self) -> Vec<Frag> {
        self.flush();
        self.frags
    }
}

/// Most fragments kept for one page.
const MAX_FRAGS: usize = 200_000;

/// A spacing accent and a base letter as one precomposed character.
fn compose(accent: char, base: char) -> Option<char> {
    let base = match base {
        '\u{0131}' => 'i',
        '\u{0237}' => 'j',
        c => c,
    };
    let (from, to): (&str, &str) = match accent {
        '\u{00A8}' => ("aeiouyAEIOUY", "äëïöüÿÄËÏÖÜŸ"),
        '\u{00B4}' | '\u{02CA}' => ("aeiouycnszAEIOUYCNSZ", "áéíóúýćńśźÁÉÍÓÚÝĆŃŚŹ"),
        '`' | '\u{02CB}' => ("aeiouAEIOU", "àèìòùÀÈÌÒÙ"),
        '\u{02C6}' | '^' => ("aeiouAEIOU", "âêîôûÂÊÎÔÛ"),
        '\u{02DC}' | '~' => ("anoANO", "ãñõÃÑÕ"),
        '\u{00B8}' => ("cCsS", "çÇşŞ"),
        '\u{02C7}' => ("cerszCERSZ", "čěřšžČĚŘŠŽ"),
        '\u{02DA}' => ("auAU", "åůÅŮ"),
        '\u{02D8}' => ("agAG", "ăğĂĞ"),
        '\u{00AF}' | '\u{02C9}' => ("aeiouAEIOU", "āēīōūĀĒĪŌŪ"),
        '\u{02D9}' => ("zZ", "żŻ"),
        _ => return None,
    };
    let i = from.chars().position(|c| c == base)?;
    to.chars().nth(i)
}

/// Append text with ligatures expanded, soft hyphens and control characters dropped and
/// no-break spaces made plain.
fn push_clean(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '\u{00AD}' => {}
            '\u{FB00}' => out.push_str("ff"),
            '\u{FB01}' => out.push_str("fi"),
            '\u{FB02}' => out.push_str("fl"),
            '\u{FB03}' => out.push_str("ffi"),
            '\u{FB04}' => out.push_str("ffl"),
            '\u{FB05}' | '\u{FB06}' => out.push_str("st"),
            '\u{00A0}' | '\t' | '\n' | '\r' => out.push(' '),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
}

/// What is left of the document's allowance of decompressed stream bytes
/// ([`MAX_DOCUMENT_STREAM_BYTES`]). The per-stream limit alone bounds memory, not time: a
/// stream just under it, shared by every page, drawn as a form again and again or named by a
/// font dictionary selected on every line, is decompressed each time, and a file of a few
/// hundred kilobytes would keep the extractor busy for hours.
pub(crate) struct StreamBudget {
    left: usize,
}

impl StreamBudget {
    fn new() -> Self {
        Self {
            left: MAX_DOCUMENT_STREAM_BYTES,
        }
    }

    /// The most one stream may decompress to now.
    fn limit(&self) -> usize {
        MAX_STREAM_BYTES.min(self.left)
    }

    fn exhausted(&self) -> bool {
        self.left == 0
    }

    fn charge(&mut self, bytes: usize) {
        self.left = self.left.saturating_sub(bytes);
    }

    /// Charges a failed read: one refused for its size was decoded up to the limit first,
    /// any other failed on the way, after at most its own size.
    fn charge_failure(&mut self, err: &lopdf::Error, raw_size: usize) {
        if let lopdf::Error::Decompress(lopdf::DecompressError::MemoryLimitExceeded { limit }) = err {
            self.charge(*limit);
        } else {
            self.charge(raw_size);
        }
    }

    /// The stream's decoded content within the limit, charged to the budget; `None` when it
    /// is over the limit or cannot be decoded.
    fn decompress(&mut self, stream: &lopdf::Stream) -> Option<Vec<u8>> {
        self.decompress_at_most(stream, MAX_STREAM_BYTES)
    }

    /// Like [`Self::decompress`], for a stream that may be no larger than `cap`.
    fn decompress_at_most(&mut self, stream: &lopdf::Stream, cap: usize) -> Option<Vec<u8>> {
        if self.exhausted() {
            return None;
        }
        match stream.get_plain_content_with_limit(self.limit().min(cap)) {
            Ok(data) => {
                self.charge(data.len());
                Some(data)
            }
            Err(err) => {
                self.charge_failure(&err, stream.content.len());
                None
            }
        }
    }
}

/// The area the unit square covers under `ctm`: where an image is painted.
fn unit_square_area(ctm: &Matrix) -> f32 {
    finite((ctm[0] * ctm[3] - ctm[1] * ctm[2]).abs())
}

/// A page's area from its `MediaBox`, inherited from the page tree when the page has none.
fn page_area(doc: &Document, page_id: ObjectId) -> Option<f32> {
    let mut node = doc.get_dictionary(page_id).ok()?;
    // The page tree's depth is bounded the same way lopdf bounds its page walk.
    for _ in 0..64 {
        if let Some(Object::Array(corners)) = dict_get(doc, node, b"MediaBox")
            && let [x0, y0, x1, y1] = corners.as_slice()
        {
            let [x0, y0, x1, y1] = [x0, y0, x1, y1].map(|v| number(v).map_or(0.0, finite));
            let area = ((x1 - x0) * (y1 - y0)).abs();
            return (area > 1.0).then_some(area);
        }
        node = match node.get(b"Parent") {
            Ok(Object::Reference(id)) => doc.get_dictionary(*id).ok()?,
            _ => return None,
        };
    }
    None
}

/// Extracts page text, caching decoded fonts by object id across pages.
pub(crate) struct TextExtractor<'a> {
    doc: &'a Document,
    fonts: HashMap<ObjectId, Rc<FontInfo>>,
    /// Fonts whose dictionaries are written inline, by the dictionary's address.
    inline_fonts: HashMap<usize, Rc<FontInfo>>,
    budget: StreamBudget,
}

struct PageRun<'a, 'b> {
    ex: &'b mut TextExtractor<'a>,
    lines: Lines,
    ops: usize,
    forms: Vec<ObjectId>,
    truncated: bool,
    /// Area of the images painted, in default user space units squared.
    image_area: f32,
}

/// What one page's content paints: its text, and how much of the page images cover (a scan
/// is a page-sized image with no text, which is what OCR is for).
#[derive(Default)]
pub(crate) struct PageContent {
    pub(crate) frags: Vec<Frag>,
    /// Area of the images painted over the page's area (from its `MediaBox`), 0 when none;
    /// overlapping images may add up to more than 1.
    pub(crate) image_cover: f32,
}

impl<'a> TextExtractor<'a> {
    pub(crate) fn new(doc: &'a Document) -> Self {
        Self {
            doc,
            fonts: HashMap::new(),
            inline_fonts: HashMap::new(),
            budget: StreamBudget::new(),
        }
    }

    /// Text fragments of one page and its image cover. `Err` means nothing could be read from it.
    pub(crate) fn page_content(&mut self, page_id: ObjectId, warnings: &mut Warnings) -> Result<PageContent, String> {
        let doc = self.doc;
        if self.budget.exhausted() {
            return Err(format!(
                "skipped: the document's streams decompress to more than {} MiB in all",
                MAX_DOCUMENT_STREAM_BYTES >> 20
            ));
        }
        let content = doc
            .get_page_content_with_limit(page_id, self.budget.limit())
            .map_err(|e| {
                self.budget.charge_failure(&e, 0);
                format!("the page content could not be read ({e})")
            })?;
        self.budget.charge(content.len());
        let mut resources: Vec<&'a Dictionary> = Vec::new();
        if let Ok((direct, ids)) = doc.get_page_resources(page_id) {
            resources.extend(direct);
            resources.extend(ids.iter().filter_map(|id| doc.get_dictionary(*id).ok()));
        }
        let mut run = PageRun {
            ex: self,
            lines: Lines::default(),
            ops: 0,
            forms: Vec::new(),
            truncated: false,
            image_area: 0.0,
        };
        let ok = run.run(&content, &resources, IDENTITY, 0);
        let truncated = run.truncated;
        let image_area = run.image_area;
        let text = run.lines.finish();
        if !ok {
            if text.is_empty() {
                return Err("the page content could not be decoded".into());
            }
            warnings.push(format!(
                "page object {} {}: part of the page content could not be decoded",
                page_id.0, page_id.1
            ));
        }
        if truncated {
            warnings.push(format!(
                "page object {} {}: the page content is too long or nested too deeply; part of it was skipped",
                page_id.0, page_id.1
            ));
        }
        let image_cover = match page_area(doc, page_id) {
            Some(area) => image_area / area,
            None => 0.0,
        };
        Ok(PageContent {
            frags: text,
            image_cover: if image_cover.is_finite() { image_cover } else { 0.0 },
        })
    }

    fn font(&mut self, resources: &[&'a Dictionary], name: &[u8]) -> Option<Rc<FontInfo>> {
        let doc = self.doc;
        for res in resources {
            let Some(fonts) = dict_get(doc, res, b"Font").and_then(|f| resolve_dict(doc, f)) else {
                continue;
            };
            let Ok(entry) = fonts.get(name) else { continue };
            if let Object::Reference(id) = entry {
                if let Some(f) = self.fonts.get(id) {
                    return Some(f.clone());
                }
                let dict = resolve_dict(doc, entry)?;
                let info = Rc::new(build_font(doc, dict, &mut self.budget));
                self.fonts.insert(*id, info.clone());
                return Some(info);
            }
            // A font dictionary written inline has no object id: it is cached by its address
            // in the document, which outlives the extractor, so a content stream selecting it
            // on every line does not build it again each time.
            let dict = resolve_dict(doc, entry)?;
            let address = std::ptr::from_ref(dict) as usize;
            if let Some(f) = self.inline_fonts.get(&address) {
                return Some(f.clone());
            }
            let info = Rc::new(build_font(doc, dict, &mut self.budget));
            self.inline_fonts.insert(address, info.clone());
            return Some(info);
        }
        None
    }
}

impl<'a> PageRun<'a, '_> {
    /// Interpret one content stream. Returns false when decoding stopped on an error.
    fn run(&mut self, content: &[u8], resources: &[&'a Dictionary], ctm: Matrix, depth: usize) -> bool {
        let mut gs = GState {
            ctm,
            ..GState::default()
        };
        let mut stack: Vec<GState> = Vec::new();
        let mut tm = IDENTITY;
        let mut tlm = IDENTITY;
        let mut ok = true;
        for op in Content::decode_iter(content) {
            let op: Operation = match op {
                Ok(op) => op,
                Err(_) => {
                    ok = false;
                    break;
                }
            };
            self.ops += 1;
            if self.ops > MAX_OPERATIONS {
                self.truncated = true;
                break;
            }
            let nums = |i: usize| op.operands.get(i).and_then(number).map_or(0.0, finite);
            match op.operator.as_str() {
                "q" if stack.len() < MAX_STATE_STACK => stack.push(gs.clone()),
                "Q" => {
                    if let Some(s) = stack.pop() {
                        gs = s;
                    }
                }
                "cm" if op.operands.len() == 6 => {
                    let m = [nums(0), nums(1), nums(2), nums(3), nums(4), nums(5)];
                    gs.ctm = mul(&m, &gs.ctm);
                }
                "BT" => {
                    tm = IDENTITY;
                    tlm = IDENTITY;
                }
                "Tf" => {
                    gs.size = nums(1);
                    gs.font = match op.operands.first() {
                        Some(Object::Name(n)) => self.ex.font(resources, n),
                        _ => None,
                    };
                }
                "Tc" => gs.char_spacing = nums(0),
                "Tw" => gs.word_spacing = nums(0),
                "Tz" => gs.scale = nums(0) / 100.0,
                "TL" => gs.leading = nums(0),
                "Ts" => gs.rise = nums(0),
                "Td" => {
                    tlm = translate(nums(0), nums(1), &tlm);
                    tm = tlm;
                }
                "TD" => {
                    gs.leading = -nums(1);
                    tlm = translate(nums(0), nums(1), &tlm);
                    tm = tlm;
                }
                "Tm" if op.operands.len() == 6 => {
                    tlm = [nums(0), nums(1), nums(2), nums(3), nums(4), nums(5)];
                    tm = tlm;
                }
                "T*" => {
                    tlm = translate(0.0, -gs.leading, &tlm);
                    tm = tlm;
                }
                "Tj" => {
                    if let Some(Object::String(s, _)) = op.operands.first() {
                        self.show(s, &gs, &mut tm);
                    }
                }
                "'" => {
                    tlm = translate(0.0, -gs.leading, &tlm);
                    tm = tlm;
                    if let Some(Object::String(s, _)) = op.operands.first() {
                        self.show(s, &gs, &mut tm);
                    }
                }
                "\"" => {
                    gs.word_spacing = nums(0);
                    gs.char_spacing = nums(1);
                    tlm = translate(0.0, -gs.leading, &tlm);
                    tm = tlm;
                    if let Some(Object::String(s, _)) = op.operands.get(2) {
                        self.show(s, &gs, &mut tm);
                    }
                }
                "TJ" => {
                    if let Some(Object::Array(items)) = op.operands.first() {
                        for item in items {
                            match item {
                                Object::String(s, _) => self.show(s, &gs, &mut tm),
                                other => {
                                    if let Some(n) = number(other) {
                                        let tx = -finite(n) / 1000.0 * gs.size * gs.scale;
                                        tm = translate(tx, 0.0, &tm);
                                    }
                                }
                            }
                        }
                    }
                }
                "Do" => {
                    if let Some(Object::Name(name)) = op.operands.first() {
                        ok &= self.form(name, resources, &gs.ctm, depth);
                    }
                }
                // An inline image, parsed whole by lopdf; it paints the unit square.
                "BI" => self.image_area += unit_square_area(&gs.ctm),
                _ => {}
            }
        }
        ok
    }

    /// Run a form XObject named in the resources.
    fn form(&mut self, name: &[u8], resources: &[&'a Dictionary], ctm: &Matrix, depth: usize) -> bool {
        let doc = self.ex.doc;
        let Some(Object::Reference(id)) = resources.iter().find_map(|res| {
            dict_get(doc, res, b"XObject")
                .and_then(|x| resolve_dict(doc, x))
                .and_then(|x| x.get(name).ok())
        }) else {
            return true;
        };
        let Ok(Object::Stream(stream)) = doc.get_object(*id) else {
            return true;
        };
        match stream.dict.get(b"Subtype") {
            Ok(Object::Name(n)) if n == b"Form" => {}
            Ok(Object::Name(n)) if n == b"Image" => {
                self.image_area += unit_square_area(ctm);
                return true;
            }
            _ => return true,
        }
        if depth >= MAX_XOBJECT_DEPTH || self.forms.contains(id) {
            self.truncated = true;
            return true;
        }
        if self.ex.budget.exhausted() {
            self.truncated = true;
            return true;
        }
        let Some(content) = self.ex.budget.decompress(stream) else {
            return false;
        };
        let mut own: Vec<&'a Dictionary> = Vec::new();
        if let Some(res) = dict_get(doc, &stream.dict, b"Resources").and_then(|r| resolve_dict(doc, r)) {
            own.push(res);
        }
        own.extend_from_slice(resources);
        let mut matrix = IDENTITY;
        if let Some(Object::Array(m)) = dict_get(doc, &stream.dict, b"Matrix")
            && m.len() == 6
        {
            for (slot, v) in matrix.iter_mut().zip(m) {
                *slot = number(v).map_or(0.0, finite);
            }
        }
        let form_ctm = mul(&matrix, ctm);
        self.forms.push(*id);
        let ok = self.run(&content, &own, form_ctm, depth + 1);
        self.forms.pop();
        ok
    }

    /// Show one string: decode its codes, place it, advance the text matrix.
    fn show(&mut self, bytes: &[u8], gs: &GState, tm: &mut Matrix) {
        let Some(font) = gs.font.clone() else {
            // No usable font: keep the bytes if they look like text.
            let text: String = bytes.iter().map(|&b| char::from(b)).collect();
            let m = mul(tm, &gs.ctm);
            let size = gs.size * (m[2] * m[2] + m[3] * m[3]).sqrt();
            self.lines.add(m[4], m[5], size, &text, m[4], false);
            return;
        };
        let start = mul(&[1.0, 0.0, 0.0, 1.0, 0.0, gs.rise], &mul(tm, &gs.ctm));
        let size = gs.size * (start[2] * start[2] + start[3] * start[3]).sqrt();
        let mut text = String::new();
        let step = if font.two_byte { 2 } else { 1 };
        for chunk in bytes.chunks(step) {
            let code = chunk.iter().fold(0u32, |acc, &b| acc << 8 | u32::from(b));
            if let Some(s) = font.text_of(code) {
                text.push_str(s);
            }
            let w = font.width_of(code) / 1000.0;
            let mut tx = w * gs.size + gs.char_spacing;
            if step == 1 && code == 32 {
                tx += gs.word_spacing;
            }
            *tm = translate(tx * gs.scale, 0.0, tm);
        }
        let end = mul(tm, &gs.ctm);
        self.lines.add(start[4], start[5], size, &text, end[4], font.bold);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glyph_names() {
        assert_eq!(glyph_to_unicode(b"fi").as_deref(), Some("\u{FB01}"));
        assert_eq!(glyph_to_unicode(b"quoteright").as_deref(), Some("\u{2019}"));
        assert_eq!(glyph_to_unicode(b"uni00E9").as_deref(), Some("é"));
        assert_eq!(glyph_to_unicode(b"u1F600").as_deref(), Some("\u{1F600}"));
        assert_eq!(glyph_to_unicode(b"a.sc").as_deref(), Some("a"));
        assert_eq!(glyph_to_unicode(b"T_h").as_deref(), Some("Th"));
        assert_eq!(glyph_to_unicode(b"nonsense"), None);
    }

    #[test]
    fn cmap() {
        let data = b"1 begincodespacerange <0000> <FFFF> endcodespacerange\n\
            2 beginbfchar <0003> <0020> <0011> <00660069> endbfchar\n\
            2 beginbfrange <0020> <0022> <0041> <0030> <0031> [<0078> <D83DDE00>] endbfrange";
        let (map, one) = parse_to_unicode(data);
        assert_eq!(one, Some(false));
        assert_eq!(map.get(&3).map(String::as_str), Some(" "));
        assert_eq!(map.get(&0x11).map(String::as_str), Some("fi"));
        assert_eq!(map.get(&0x22).map(String::as_str), Some("C"));
        assert_eq!(map.get(&0x31).map(String::as_str), Some("\u{1F600}"));
    }

    #[test]
    fn lines_join_words() {
        let mut l = Lines::default();
        l.add(0.0, 100.0, 10.0, "Hello", 25.0, false);
        l.add(28.0, 100.0, 10.0, "world", 50.0, false);
        l.add(51.0, 100.0, 10.0, "!", 53.0, false);
        l.add(0.0, 88.0, 10.0, "next\u{FB01}\u{AD}", 20.0, false);
        let lines = crate::layout::layout(&l.finish());
        assert_eq!(crate::layout::lines_text(&lines), "Hello world!\nnextfi");
    }

    #[test]
    fn accents_compose() {
        let mut l = Lines::default();
        l.add(0.0, 100.0, 10.0, "k", 5.0, false);
        l.add(5.0, 100.0, 10.0, "\u{A8}", 10.0, false);
        l.add(5.0, 100.0, 10.0, "onnen", 30.0, false);
        let lines = crate::layout::layout(&l.finish());
        assert_eq!(crate::layout::lines_text(&lines), "k\u{F6}nnen");
    }
}
