//! Speed, memory and text fidelity over the book corpus:
//! `cargo run --release -p hbi-extraction --example bench [CORPUS_DIR]`.
//!
//! For every book: pages, our pages per second (the whole extraction: text, contents, index),
//! `pdftotext` pages per second on the same file, and the character-level similarity of our
//! page text with `pdftotext -layout` (per page, multiset of non-space characters, Dice) and
//! the word-level similarity (multiset of words, Dice). Peak RSS is measured for octave in a
//! child process (`bench --one FILE`), which reads its own `VmHWM`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use hbi_extraction::{ExtractOptions, extract};

fn dice<K: std::hash::Hash + Eq>(a: &HashMap<K, usize>, b: &HashMap<K, usize>) -> (usize, usize) {
    let common: usize = a.iter().map(|(k, n)| (*n).min(b.get(k).copied().unwrap_or(0))).sum();
    let total: usize = a.values().sum::<usize>() + b.values().sum::<usize>();
    (2 * common, total)
}

fn normalize(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\u{FB00}' => "ff".to_string(),
            '\u{FB01}' => "fi".to_string(),
            '\u{FB02}' => "fl".to_string(),
            '\u{FB03}' => "ffi".to_string(),
            '\u{FB04}' => "ffl".to_string(),
            '\u{00A0}' => " ".to_string(),
            c => c.to_string(),
        })
        .collect()
}

fn counts_chars(text: &str) -> HashMap<char, usize> {
    let mut m = HashMap::new();
    for c in text.chars().filter(|c| !c.is_whitespace()) {
        *m.entry(c).or_insert(0) += 1;
    }
    m
}

fn counts_words(text: &str) -> HashMap<&str, usize> {
    let mut m = HashMap::new();
    for w in text.split_whitespace() {
        *m.entry(w).or_insert(0) += 1;
    }
    m
}

fn peak_rss_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

fn one(path: &Path) -> ExitCode {
    let Ok(bytes) = std::fs::read(path) else {
        return ExitCode::from(1);
    };
    match extract(&bytes, &ExtractOptions::default(), true, &mut |_| {}) {
        Ok(x) => {
            drop(x);
            println!("{}", peak_rss_kb().unwrap_or(0));
            ExitCode::SUCCESS
        }
        Err(_) => ExitCode::from(1),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--one") {
        return match args.get(1) {
            Some(p) => one(Path::new(p)),
            None => ExitCode::from(2),
        };
    }
    let corpus = args.first().map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus"),
        PathBuf::from,
    );
    let Ok(dir) = std::fs::read_dir(&corpus) else {
        eprintln!("no corpus at {}", corpus.display());
        return ExitCode::from(1);
    };
    let mut books: Vec<PathBuf> = dir
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("book.pdf").is_file())
        .collect();
    books.sort();
    println!(
        "{:24} {:>6} {:>10} {:>14} {:>9} {:>9}",
        "book", "pages", "ours p/s", "pdftotext p/s", "char sim", "word sim"
    );
    let (mut all_pages, mut all_ours, mut all_theirs) = (0u64, 0f64, 0f64);
    for book in &books {
        let name = book
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let pdf = book.join("book.pdf");
        let Ok(bytes) = std::fs::read(&pdf) else {
            continue;
        };
        let t = Instant::now();
        let Ok(x) = extract(&bytes, &ExtractOptions::default(), true, &mut |_| {}) else {
            println!("{name:24} extraction failed");
            continue;
        };
        let ours_s = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let plain = Command::new("pdftotext").arg(&pdf).arg("/dev/null").status();
        let theirs_s = t.elapsed().as_secs_f64();
        let layout = Command::new("pdftotext").arg("-layout").arg(&pdf).arg("-").output();
        let (mut cn, mut ct, mut wn, mut wt) = (0usize, 0usize, 0usize, 0usize);
        if let Ok(out) = &layout {
            let text = String::from_utf8_lossy(&out.stdout);
            for (page, theirs) in x.pages.iter().zip(text.split('\u{c}')) {
                let ours = normalize(&page.text);
                let theirs = normalize(theirs);
                let (a, b) = dice(&counts_chars(&ours), &counts_chars(&theirs));
                cn += a;
                ct += b;
                let (a, b) = dice(&counts_words(&ours), &counts_words(&theirs));
                wn += a;
                wt += b;
            }
        }
        let pages = u64::from(x.page_count);
        all_pages += pages;
        all_ours += ours_s;
        if plain.is_ok() {
            all_theirs += theirs_s;
        }
        let ratio = |n: usize, t: usize| if t == 0 { 1.0 } else { n as f64 / t as f64 };
        println!(
            "{:24} {:>6} {:>10.0} {:>14.0} {:>9.4} {:>9.4}",
            name,
            pages,
            pages as f64 / ours_s,
            if plain.is_ok() {
                pages as f64 / theirs_s
            } else {
                f64::NAN
            },
            ratio(cn, ct),
            ratio(wn, wt),
        );
    }
    println!(
        "{:24} {:>6} {:>10.0} {:>14.0}",
        "all",
        all_pages,
        all_pages as f64 / all_ours.max(1e-9),
        all_pages as f64 / all_theirs.max(1e-9)
    );
    let octave = corpus.join("octave/book.pdf");
    if octave.is_file()
        && let Ok(exe) = std::env::current_exe()
        && let Ok(out) = Command::new(exe).arg("--one").arg(&octave).output()
    {
        let kb: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0);
        println!(
            "peak RSS, octave (whole extraction with page text): {:.1} MB",
            kb as f64 / 1024.0
        );
    }
    ExitCode::SUCCESS
}
