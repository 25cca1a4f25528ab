//! Raw bytes into the whole extractor: lopdf's parser, the page tree, page labels, the
//! outline, text with fonts and forms, the printed contents and the index.
#![no_main]

use hbi_extraction::{ExtractOptions, extract, validate_header};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The upload's own check first, as the API runs it on the first KiB.
    let _ = validate_header(&data[..data.len().min(1024)]);
    let options = ExtractOptions {
        max_pages: 200,
        max_file_bytes: 16 * 1024 * 1024,
    };
    let _ = extract(data, &options, true, &mut |_| {});
});
