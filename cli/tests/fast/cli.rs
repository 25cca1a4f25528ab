//! `hbi extract` works offline (no server, no database), reports progress on stderr, and
//! its ToC scores entry_f1 = 1.0 on every corpus book that has an outline.

use crate::common;

use std::process::Command;

use common::{corpus_dir, hbi_binary, score_tool};
use serde_json::Value;

fn has_outline(book: &std::path::Path) -> bool {
    let meta: Value =
        serde_json::from_str(&std::fs::read_to_string(book.join("meta.json")).expect("meta.json")).expect("json");
    let toc: Value =
        serde_json::from_str(&std::fs::read_to_string(book.join("toc.json")).expect("toc.json")).expect("json");
    // r-lang-nooutline keeps the unmodified file's outline as ground truth but has none itself.
    let removed = meta.to_string().to_lowercase().contains("removed");
    !removed
        && toc["outline_flat"]
            .as_array()
            .is_some_and(|entries| !entries.is_empty())
}

#[test]
fn extractor_toc_matches_ground_truth_on_every_outlined_book() {
    let out = tempfile::tempdir().expect("out dir");
    let mut outlined = Vec::new();
    for entry in std::fs::read_dir(corpus_dir()).expect("corpus") {
        let book = entry.expect("entry").path();
        if !book.join("toc.json").exists() {
            continue;
        }
        let name = book.file_name().expect("name").to_string_lossy().into_owned();
        let output = Command::new(hbi_binary())
            .args(["extract", "--json"])
            .arg(book.join("book.pdf"))
            .env("DATABASE_URL", "postgres://nowhere.invalid/none") // proves no database is touched
            .output()
            .expect("run hbi extract");
        assert!(
            output.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let json: Value = serde_json::from_slice(&output.stdout).expect("extractor JSON");
        assert!(json["page_count"].as_u64().is_some_and(|n| n > 0), "{name}: page_count");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("pages"), "{name}: progress on stderr, got {stderr:?}");
        std::fs::write(out.path().join(format!("{name}.json")), &output.stdout).expect("write");
        if has_outline(&book) {
            assert_eq!(json["toc_source"], "outline", "{name}");
            outlined.push(name);
        }
    }
    assert!(outlined.len() >= 8, "the corpus has eight outlined books: {outlined:?}");

    let scored = Command::new("python3")
        .arg(score_tool())
        .args(["--corpus", "--json"])
        .arg(corpus_dir())
        .arg(out.path())
        .output()
        .expect("run the scorer");
    assert!(
        scored.status.success(),
        "scorer: {}",
        String::from_utf8_lossy(&scored.stderr)
    );
    let report: Value = serde_json::from_slice(&scored.stdout).expect("scorer JSON");
    for name in &outlined {
        let toc = &report["books"][name]["toc_entry"];
        assert_eq!(toc["f1"].as_f64(), Some(1.0), "{name}: toc.entry_f1 {toc}");
    }
}

#[test]
fn extractor_refuses_bad_input_with_exit_code_2() {
    let dir = tempfile::tempdir().expect("dir");
    let not_pdf = dir.path().join("notes.pdf");
    std::fs::write(&not_pdf, "just text").expect("write");
    let output = Command::new(hbi_binary())
        .args(["extract", "--json"])
        .arg(&not_pdf)
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("not a PDF"));

    let output = Command::new(hbi_binary())
        .args(["extract", "--json", "--progress", "jsonl"])
        .arg(dir.path().join("missing.pdf"))
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2));
    let line: Value = serde_json::from_str(String::from_utf8_lossy(&output.stderr).trim()).expect("jsonl error line");
    assert!(line["error"].as_str().is_some_and(|e| e.contains("cannot read")));
}

#[test]
fn bad_configuration_is_refused_at_start_naming_the_key() {
    let dir = tempfile::tempdir().expect("dir");
    for (variable, value, key) in [
        ("HBI__WORKER__CONCURRENCY", "many", "worker.concurrency"),
        ("HBI__WORKER__CONCURRENCY", "0", "worker.concurrency"),
        ("HBI__LOG__FORMAT", "xml", "log.format"),
        ("HBI__EMBEDDINGS__PROVIDER", "word2vec", "embeddings.provider"),
        ("DATABASE_URL", "mysql://x", "database.url"),
    ] {
        let output = Command::new(hbi_binary())
            .args(["migrate", "--data-dir"])
            .arg(dir.path())
            .env(variable, value)
            .output()
            .expect("run hbi migrate");
        assert!(!output.status.success(), "{variable}={value} must be refused");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(key),
            "{variable}={value}: the error names {key}: {stderr}"
        );
    }
    let output = Command::new(hbi_binary())
        .args(["migrate", "--data-dir"])
        .arg(dir.path())
        .output()
        .expect("run");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(
        dir.path().join("hbi.db").exists(),
        "migrate creates the embedded database"
    );
}
