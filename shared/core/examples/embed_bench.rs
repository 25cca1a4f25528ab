//! Embedding benchmark: chunks per second and peak RSS of the in-process all-MiniLM-L6-v2, and
//! the cosine agreement of its vectors with sentence-transformers' on the same chunks.
//!
//! `scripts/bench-embeddings` cuts the chunks from the corpus books, runs sentence-transformers
//! on them, then this, and prints one table. By hand:
//!
//! ```text
//! cargo run --release -p hbi-shared --example embed_bench -- --chunks chunks.jsonl \
//!     [--provider minilm] [--precision int8] [--batch-size 32] [--threads 0] [--rounds 1] [--model-dir DIR] \
//!     [--reference st.f32] [--label NAME] [--header]
//! ```
//!
//! `--chunks`: one JSON string per line. `--reference`: sentence-transformers' vectors of the
//! same chunks, little-endian f32, 384 per chunk. Prints one Markdown table row (`--header`
//! adds the header first): the best of `--rounds` passes over all chunks, after a warm-up on
//! the first 16; the peak RSS of this process (model loaded, every pass run).

#[path = "support/process_memory.rs"]
mod process_memory;

use std::time::Instant;

use anyhow::{Context, bail};
use hbi_shared::embeddings::{EmbeddingProvider, EmbeddingSettings, ModelPrecision, open_embedder};

struct Options {
    chunks: String,
    reference: Option<String>,
    label: Option<String>,
    rounds: usize,
    header: bool,
    settings: EmbeddingSettings,
}

fn parse_options() -> anyhow::Result<Options> {
    let mut options = Options {
        chunks: String::new(),
        reference: None,
        label: None,
        rounds: 1,
        header: false,
        settings: EmbeddingSettings::default(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--header" {
            options.header = true;
            continue;
        }
        let value = args.next().with_context(|| format!("{flag} needs a value"))?;
        let number = || {
            value
                .parse::<usize>()
                .with_context(|| format!("{flag}: not a number: {value}"))
        };
        match flag.as_str() {
            "--chunks" => options.chunks = value.clone(),
            "--reference" => options.reference = Some(value.clone()),
            "--label" => options.label = Some(value.clone()),
            "--rounds" => options.rounds = number()?.max(1),
            "--provider" => {
                options.settings.provider = match value.as_str() {
                    "minilm" => EmbeddingProvider::Minilm,
                    "openai" => EmbeddingProvider::Openai,
                    other => bail!("--provider: minilm or openai, not {other}"),
                }
            }
            "--batch-size" => options.settings.batch_size = number()?,
            "--threads" => options.settings.threads = number()?,
            "--precision" => {
                options.settings.precision = match value.as_str() {
                    "int8" => ModelPrecision::Int8,
                    "f32" => ModelPrecision::F32,
                    other => bail!("--precision: int8 or f32, not {other}"),
                }
            }
            "--model-dir" => options.settings.model_dir = Some(value.into()),
            _ => bail!("unknown option {flag}"),
        }
    }
    if options.chunks.is_empty() {
        bail!("--chunks FILE is required");
    }
    Ok(options)
}

/// Peak resident set size of this process in MiB (`VmHWM`).
fn peak_rss_mib() -> anyhow::Result<f64> {
    Ok(process_memory::status_bytes("VmHWM")? as f64 / (1024.0 * 1024.0))
}

fn read_reference(path: &str, chunks: usize, dimensions: usize) -> anyhow::Result<Vec<Vec<f32>>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {path}"))?;
    if bytes.len() != chunks * dimensions * 4 {
        bail!(
            "{path} holds {} bytes, not {chunks} vectors of {dimensions} f32",
            bytes.len()
        );
    }
    let values: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Ok(values.chunks_exact(dimensions).map(<[f32]>::to_vec).collect())
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum();
    let norm = |v: &[f32]| v.iter().map(|x| f64::from(*x) * f64::from(*x)).sum::<f64>().sqrt();
    dot / (norm(a) * norm(b))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = parse_options()?;
    let chunks: Vec<String> = std::fs::read_to_string(&options.chunks)
        .with_context(|| format!("reading {}", options.chunks))?
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .context("a line of --chunks is not a JSON string")?;
    let embedder = open_embedder(&options.settings)?;
    embedder.embed(&chunks[..chunks.len().min(16)]).await?;

    let mut best = f64::INFINITY;
    let mut vectors = Vec::new();
    for _ in 0..options.rounds {
        let start = Instant::now();
        vectors = embedder.embed(&chunks).await?;
        best = best.min(start.elapsed().as_secs_f64());
    }
    let agreement = match &options.reference {
        Some(path) => {
            let reference = read_reference(path, chunks.len(), embedder.dimensions())?;
            let cosines: Vec<f64> = vectors.iter().zip(&reference).map(|(a, b)| cosine(a, b)).collect();
            let min = cosines.iter().copied().fold(f64::INFINITY, f64::min);
            let mean = cosines.iter().sum::<f64>() / cosines.len() as f64;
            format!("{:.1e} | {:.1e}", 1.0 - min, 1.0 - mean)
        }
        None => "- | -".to_owned(),
    };
    if options.header {
        println!("| engine | chunks | batch | threads | chunks/s | peak RSS MiB | 1 - min cosine | 1 - mean cosine |");
        println!("|---|---|---|---|---|---|---|---|");
    }
    let threads = match options.settings.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    println!(
        "| {} | {} | {} | {} | {:.1} | {:.0} | {agreement} |",
        options.label.as_deref().unwrap_or(options.settings.provider.as_str()),
        chunks.len(),
        options.settings.batch_size,
        threads,
        chunks.len() as f64 / best,
        peak_rss_mib()?,
    );
    Ok(())
}
