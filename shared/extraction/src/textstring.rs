//! PDF text strings (ISO 32000-1, 7.9.2.2): UTF-16BE or UTF-16LE with a byte order mark,
//! UTF-8 with a BOM, or PDFDocEncoding.

use crate::tables::PDF_DOC_ENCODING;

/// Decode the bytes of a PDF text string. Never fails: invalid UTF-16 becomes U+FFFD.
pub fn decode_text_string(bytes: &[u8]) -> String {
    if let Some(rest) = bytes.strip_prefix(b"\xFE\xFF") {
        let units = rest.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]]));
        char::decode_utf16(units)
            .map(|r| r.unwrap_or(char::REPLACEMENT_CHARACTER))
            .collect()
    } else if let Some(rest) = bytes.strip_prefix(b"\xFF\xFE") {
        let units = rest.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]]));
        char::decode_utf16(units)
            .map(|r| r.unwrap_or(char::REPLACEMENT_CHARACTER))
            .collect()
    } else if let Some(rest) = bytes.strip_prefix(b"\xEF\xBB\xBF") {
        String::from_utf8_lossy(rest).into_owned()
    } else {
        bytes
            .iter()
            .map(|&b| match PDF_DOC_ENCODING[b as usize] {
                0 if b < 0x80 => char::from(b),
                0 => char::REPLACEMENT_CHARACTER,
                u => char::from_u32(u32::from(u)).unwrap_or(char::REPLACEMENT_CHARACTER),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_all_forms() {
        assert_eq!(decode_text_string(b"\xFE\xFF\x00A\x00\xe9"), "Aé");
        assert_eq!(decode_text_string(b"\xFF\xFEA\x00\xe9\x00"), "Aé");
        assert_eq!(decode_text_string(b"\xFE\xFF\xD8\x00\x00A"), "\u{FFFD}A");
        assert_eq!(decode_text_string(b"\xFE\xFF\x00"), "");
        assert_eq!(decode_text_string(b"Caf\xe9 \x84"), "Café \u{2014}");
        assert_eq!(decode_text_string(b"\xEF\xBB\xBFna\xc3\xafve"), "naïve");
    }
}
