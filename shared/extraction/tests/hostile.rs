//! Every generated hostile file straight into the extractor: each returns an error or a
//! result within a bound, never panics, and errors say what is wrong (issue #7, part 2).
//! `cli/tests/fast/hostile_files.rs` uploads the same files through the API.

#![allow(clippy::unwrap_used)] // tests may unwrap: a failure is a test failure

#[path = "support/hostile.rs"]
mod hostile;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use hbi_extraction::{ExtractError, ExtractOptions, extract};
use hostile::{Expect, hostile_files};

/// Hang guard per file: far above what any of them takes, far below a stuck run.
const DEADLINE: Duration = Duration::from_secs(120);
/// The stack of `hbi extract`'s main thread (the usual 8 MiB default on Linux), where the
/// worker's extractor runs.
const EXTRACTOR_STACK: usize = 8 * 1024 * 1024;

/// The extraction of one file in a thread of its own: `None` when it panicked.
fn extract_guarded(bytes: Vec<u8>) -> mpsc::Receiver<Option<Result<(u32, usize), String>>> {
    let (sender, receiver) = mpsc::channel();
    std::thread::Builder::new()
        .stack_size(EXTRACTOR_STACK)
        .spawn(move || {
            let outcome = std::panic::catch_unwind(|| {
                extract(&bytes, &ExtractOptions::default(), true, &mut |_| {})
                    .map(|x| (x.page_count, x.warnings.len()))
                    .map_err(|err| describe(&err))
            });
            let _ = sender.send(outcome.ok());
        })
        .unwrap();
    receiver
}

fn describe(err: &ExtractError) -> String {
    err.to_string()
}

/// Peak resident memory of this process so far, in MiB.
fn peak_rss_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kib| kib / 1024)
}

#[test]
fn every_hostile_file_ends_cleanly_in_the_extractor() {
    let files = hostile_files();
    assert!(
        files.len() >= 30,
        "issue #7 asks for at least 30 hostile files, {} here",
        files.len()
    );
    let mut names: Vec<&str> = files.iter().map(|f| f.name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), files.len(), "file names are unique");

    // `HBI_HOSTILE_OUT=DIR` keeps a copy of each file: seeds for the fuzz targets and input
    // for measuring `hbi extract` by hand (RELIABILITY.md).
    let keep = std::env::var_os("HBI_HOSTILE_OUT").map(std::path::PathBuf::from);
    for file in files {
        if let Some(dir) = &keep {
            std::fs::create_dir_all(dir).unwrap();
            std::fs::write(dir.join(format!("{}.pdf", file.name)), &file.bytes).unwrap();
        }
        let size = file.bytes.len();
        let started = Instant::now();
        let outcome = extract_guarded(file.bytes)
            .recv_timeout(DEADLINE)
            .unwrap_or_else(|_| panic!("{}: no answer within {DEADLINE:?}", file.name));
        let elapsed = started.elapsed();
        let outcome = outcome.unwrap_or_else(|| panic!("{}: the extractor panicked", file.name));
        match (&outcome, file.expect) {
            (Err(message), Expect::RefusedAtUpload(needle) | Expect::Refused(needle)) => {
                assert!(
                    message.contains(needle),
                    "{}: expected an error with {needle:?}, got {message:?}",
                    file.name
                );
            }
            (Ok(_), Expect::RefusedAtUpload(_) | Expect::Refused(_)) => {
                panic!("{}: expected a refusal, got {outcome:?}", file.name)
            }
            (Err(message), Expect::Survives) => {
                assert!(
                    message.starts_with("the PDF") || message.starts_with("the file"),
                    "{}: unreadable error {message:?}",
                    file.name
                );
            }
            (Ok(_), Expect::Survives) => {}
        }
        // Figures for RELIABILITY.md (cargo test -- --nocapture).
        println!(
            "hostile {:<42} {:>10} bytes {:>8.3} s  peak {:>5} MiB  {:?}",
            file.name,
            size,
            elapsed.as_secs_f64(),
            peak_rss_mib(),
            outcome
        );
    }
}

#[path = "../../../fuzz/fuzz_targets/text_book.rs"]
mod text_book;

/// The fuzz targets' kept inputs (`fuzz/regressions/<target>/`: crashes found and fixed, and a
/// sample of the minimised corpus) through the same entry points: the fuzzers' smoke run
/// inside the test suite.
#[test]
fn fuzz_regression_inputs_replay_cleanly() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/regressions");
    let mut replayed = 0;
    for target in ["extract_pdf", "extract_text_lines"] {
        let Ok(entries) = std::fs::read_dir(root.join(target)) else {
            continue;
        };
        for entry in entries.flatten() {
            let data = std::fs::read(entry.path()).unwrap();
            let pdf = match target {
                "extract_pdf" => data,
                _ => text_book::book_of(&String::from_utf8_lossy(&data)),
            };
            let outcome = extract_guarded(pdf)
                .recv_timeout(DEADLINE)
                .unwrap_or_else(|_| panic!("{}: no answer within {DEADLINE:?}", entry.path().display()));
            assert!(outcome.is_some(), "{}: the extractor panicked", entry.path().display());
            replayed += 1;
        }
    }
    assert!(replayed > 0, "no fuzz inputs found under {}", root.display());
}
