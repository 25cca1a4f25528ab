//! Print the laid-out lines of some pages: `layout BOOK.pdf FIRST [LAST]`.

use std::process::ExitCode;

use hbi_extraction::{ExtractOptions, extract_layouts};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(path), Some(first)) = (args.first(), args.get(1).and_then(|a| a.parse::<u32>().ok())) else {
        eprintln!("usage: layout BOOK.pdf FIRST [LAST]");
        return ExitCode::from(2);
    };
    let last = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(first);
    let Ok(bytes) = std::fs::read(path) else {
        eprintln!("cannot read {path}");
        return ExitCode::from(1);
    };
    match extract_layouts(&bytes, &ExtractOptions::default()) {
        Ok(pages) => {
            for page in pages.iter().filter(|p| (first..=last).contains(&p.number)) {
                println!("=== page {}", page.number);
                for l in &page.lines {
                    println!(
                        "{} x{:7.1}-{:7.1} y{:7.1} s{:5.1}{} | {}",
                        l.column,
                        l.x0,
                        l.x1,
                        l.y,
                        l.size,
                        if l.bold { "B" } else { " " },
                        l.text
                    );
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
    }
}
