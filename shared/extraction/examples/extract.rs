//! Print the extraction of one PDF as JSON: `cargo run --release --example extract -- book.pdf [--text]`.

use std::process::ExitCode;

use hbi_extraction::{ExtractOptions, extract};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(path) = args.iter().find(|a| !a.starts_with("--")) else {
        eprintln!("usage: extract BOOK.pdf [--text]");
        return ExitCode::from(2);
    };
    let with_text = args.iter().any(|a| a == "--text");
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("cannot read {path}: {e}");
            return ExitCode::from(1);
        }
    };
    match extract(&bytes, &ExtractOptions::default(), with_text, &mut |_| {}) {
        Ok(x) => match serde_json::to_string_pretty(&x) {
            Ok(json) => {
                println!("{json}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(1)
            }
        },
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
    }
}
