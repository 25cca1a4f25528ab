//! A small valid PDF whose pages show given text: the input of the `extract_text_lines`
//! fuzz target, and of the replay of its regression inputs in
//! `shared/extraction/tests/hostile.rs`.

/// A valid PDF whose pages show `text` (lines split on `\n`, pages on form feeds).
pub fn book_of(text: &str) -> Vec<u8> {
    let pages: Vec<&str> = text.split('\u{c}').take(64).collect();
    let mut objects: Vec<Vec<u8>> = vec![Vec::new(), Vec::new()];
    objects.push(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>".to_vec());
    let mut kids = Vec::new();
    for page in &pages {
        let mut content = b"BT /F1 10 Tf 72 760 Td 12 TL\n".to_vec();
        for line in page.lines().take(120) {
            content.push(b'(');
            for byte in line.bytes() {
                if matches!(byte, b'(' | b')' | b'\\') {
                    content.push(b'\\');
                }
                content.push(byte);
            }
            content.extend_from_slice(b") Tj T*\n");
        }
        content.extend_from_slice(b"ET");
        let mut stream = format!("<< /Length {} >>\nstream\n", content.len()).into_bytes();
        stream.extend_from_slice(&content);
        stream.extend_from_slice(b"\nendstream");
        objects.push(stream);
        let contents = objects.len();
        objects.push(
            format!("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {contents} 0 R /Resources << /Font << /F1 3 0 R >> >> >>")
                .into_bytes(),
        );
        kids.push(format!("{} 0 R", objects.len()));
    }
    objects[0] = b"<< /Type /Catalog /Pages 2 0 R >>".to_vec();
    objects[1] = format!("<< /Type /Pages /Kids [{}] /Count {} >>", kids.join(" "), kids.len()).into_bytes();
    let mut out = b"%PDF-1.5\n".to_vec();
    let mut offsets = Vec::new();
    for (i, body) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n", i + 1).as_bytes());
        out.extend_from_slice(body);
        out.extend_from_slice(b"\nendobj\n");
    }
    let xref = out.len();
    out.extend_from_slice(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes());
    for offset in offsets {
        out.extend_from_slice(format!("{offset:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    out
}
