//! Arbitrary text laid out as the lines of a small book: the fuzzer's bytes reach the
//! printed-contents, index and page-label-inference parsers as page text, past lopdf's parser
//! that would reject most raw mutations long before.
#![no_main]

use hbi_extraction::{ExtractOptions, extract};

mod text_book;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let pdf = text_book::book_of(&text);
    let _ = extract(&pdf, &ExtractOptions::default(), true, &mut |_| {});
});
