//! all-MiniLM-L6-v2 in-process, with ONNX Runtime (the `ort` crate, libonnxruntime loaded at
//! run time). The model folder holds `model.onnx` (written from `model.safetensors` by
//! `scripts/lib/minilm_onnx.py`, mean pooling included), its int8 copy `model-int8.onnx`
//! (`scripts/lib/minilm_quantize.py`) and `tokenizer.json`; `install_model` of
//! `scripts/lib/install-tools.sh` prepares them.
//!
//! Texts are tokenised as sentence-transformers does (at most 256 tokens with `[CLS]` and
//! `[SEP]`), sorted by length and padded per batch to its longest text, so a batch of short
//! texts costs little. Inference runs on the blocking pool, never on the async runtime.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, anyhow, bail};
use async_trait::async_trait;
use ort::environment::Environment;
use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use ort::value::Tensor;
use tokenizers::{Encoding, Tokenizer, TruncationParams};

use super::{Embedder, ModelPrecision, distinct, l2_normalize};

pub const MODEL_NAME: &str = "all-MiniLM-L6-v2";
pub const DIMENSIONS: usize = 384;
/// sentence-transformers' `max_seq_length` for this model (tokenizer.json itself says 128).
pub const MAX_TOKENS: usize = 256;

pub struct MiniLmEmbedder {
    inner: Arc<Inner>,
}

struct Inner {
    tokenizer: Tokenizer,
    /// `Session::run` needs `&mut`; one run at a time uses every intra-op thread anyway.
    session: Mutex<Session>,
    batch_size: usize,
}

impl MiniLmEmbedder {
    /// Loads the `precision` copy of the model of `model_dir` with the libonnxruntime at
    /// `onnxruntime_lib`; `threads` 0 means one per core.
    pub fn open(
        model_dir: &Path,
        onnxruntime_lib: &Path,
        batch_size: usize,
        threads: usize,
        precision: ModelPrecision,
    ) -> anyhow::Result<Self> {
        let tokenizer = load_tokenizer(model_dir)?;
        let model = model_file(model_dir, precision.model_file())?;
        let environment = environment(onnxruntime_lib)?;
        let threads = if threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            threads
        };
        let session = Session::builder(&environment)
            .and_then(|builder| Ok(builder.with_optimization_level(GraphOptimizationLevel::All)?))
            .and_then(|builder| Ok(builder.with_intra_threads(threads)?))
            .and_then(|mut builder| builder.commit_from_file(&model))
            .map_err(|err| anyhow!("loading {}: {err}", model.display()))?;
        let outputs: Vec<&str> = session.outputs().iter().map(|output| output.name()).collect();
        if outputs != ["sentence_embedding"] {
            bail!(
                "{} is not the sentence-embedding graph of minilm_onnx.py (outputs {outputs:?})",
                model.display()
            );
        }
        Ok(Self {
            inner: Arc::new(Inner {
                tokenizer,
                session: Mutex::new(session),
                batch_size: batch_size.max(1),
            }),
        })
    }
}

#[async_trait]
impl Embedder for MiniLmEmbedder {
    fn kind(&self) -> &'static str {
        "minilm"
    }

    fn model(&self) -> &str {
        MODEL_NAME
    }

    fn dimensions(&self) -> usize {
        DIMENSIONS
    }

    async fn embed(&self, texts: &[String]) -> anyhow::Result<Vec<Vec<f32>>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let inner = Arc::clone(&self.inner);
        let texts = texts.to_vec();
        tokio::task::spawn_blocking(move || inner.embed_blocking(&texts))
            .await
            .context("embedding task")?
    }
}

impl Inner {
    fn embed_blocking(&self, texts: &[String]) -> anyhow::Result<Vec<Vec<f32>>> {
        let (unique, slots) = distinct(texts);
        let encodings = encode(&self.tokenizer, &unique)?;
        let mut vectors = vec![Vec::new(); unique.len()];
        for batch in length_sorted_batches(&encodings, self.batch_size) {
            let (ids, mask, tokens) = padded_batch(&encodings, &batch);
            let shape = [batch.len(), tokens];
            let ids = Tensor::from_array((shape, ids)).context("input_ids tensor")?;
            let mask = Tensor::from_array((shape, mask)).context("attention_mask tensor")?;
            let mut session = self
                .session
                .lock()
                .map_err(|_| anyhow!("the model session was poisoned by a panic"))?;
            let outputs = session
                .run(ort::inputs!["input_ids" => ids, "attention_mask" => mask])
                .context("running all-MiniLM-L6-v2")?;
            let (shape, values) = outputs["sentence_embedding"]
                .try_extract_tensor::<f32>()
                .context("reading the sentence embeddings")?;
            if shape.len() != 2 || shape[0] as usize != batch.len() || shape[1] as usize != DIMENSIONS {
                bail!("the model answered shape {shape:?} for {} texts", batch.len());
            }
            for (row, &index) in values.chunks_exact(DIMENSIONS).zip(&batch) {
                let mut vector = row.to_vec();
                l2_normalize(&mut vector);
                vectors[index] = vector;
            }
        }
        Ok(slots.into_iter().map(|slot| vectors[slot].clone()).collect())
    }
}

/// The one ONNX Runtime environment of the process, created on first use. A failed load (a
/// missing library) is not remembered, so a later call with a good path still succeeds; the
/// library first loaded stays for the life of the process.
fn environment(onnxruntime_lib: &Path) -> anyhow::Result<Environment> {
    static ENVIRONMENT: Mutex<Option<Environment>> = Mutex::new(None);
    if !onnxruntime_lib.is_file() {
        bail!(
            "ONNX Runtime library {} not found: set embeddings.onnxruntime_lib or ORT_DYLIB_PATH, \
             or run `source scripts/lib/install-tools.sh && install_model`",
            onnxruntime_lib.display()
        );
    }
    let mut slot = ENVIRONMENT
        .lock()
        .map_err(|_| anyhow!("the ONNX Runtime environment was poisoned by a panic"))?;
    if let Some(environment) = slot.as_ref() {
        return Ok(environment.clone());
    }
    let environment = ort::init_from(onnxruntime_lib)
        .map_err(|err| anyhow!("loading ONNX Runtime: {err}"))?
        .with_name("hbi")
        .build()
        .map_err(|err| anyhow!("starting ONNX Runtime from {}: {err}", onnxruntime_lib.display()))?;
    *slot = Some(environment.clone());
    Ok(environment)
}

/// `dir/name`, or an error that says how to get the model.
pub(crate) fn model_file(dir: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let path = dir.join(name);
    if !path.is_file() {
        bail!(
            "model file {} not found: run `source scripts/lib/install-tools.sh && install_model`, \
             or point embeddings.model_dir at a folder with the {MODEL_NAME} files",
            path.display()
        );
    }
    Ok(path)
}

/// The model's tokenizer, truncating at `MAX_TOKENS` and not padding (batches pad themselves).
pub(crate) fn load_tokenizer(model_dir: &Path) -> anyhow::Result<Tokenizer> {
    let path = model_file(model_dir, "tokenizer.json")?;
    let mut tokenizer =
        Tokenizer::from_file(&path).map_err(|err| anyhow!("reading tokenizer {}: {err}", path.display()))?;
    tokenizer
        .with_truncation(Some(TruncationParams {
            max_length: MAX_TOKENS,
            ..TruncationParams::default()
        }))
        .map_err(|err| anyhow!("tokenizer truncation: {err}"))?;
    tokenizer.with_padding(None);
    Ok(tokenizer)
}

pub(crate) fn encode(tokenizer: &Tokenizer, texts: &[&str]) -> anyhow::Result<Vec<Encoding>> {
    tokenizer
        .encode_batch(texts.to_vec(), true)
        .map_err(|err| anyhow!("tokenizing: {err}"))
}

/// Indices of `encodings` in batches of at most `batch_size`, longest texts first, so each
/// batch pads to a length close to all of its texts.
pub(crate) fn length_sorted_batches(encodings: &[Encoding], batch_size: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..encodings.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(encodings[i].get_ids().len()));
    order.chunks(batch_size.max(1)).map(<[usize]>::to_vec).collect()
}

/// Token ids and attention mask of one batch, row-major, padded with 0 to its longest text;
/// and that length.
pub(crate) fn padded_batch(encodings: &[Encoding], batch: &[usize]) -> (Vec<i64>, Vec<i64>, usize) {
    let tokens = batch
        .iter()
        .map(|&i| encodings[i].get_ids().len())
        .max()
        .unwrap_or(0)
        .max(1);
    let mut ids = vec![0_i64; batch.len() * tokens];
    let mut mask = vec![0_i64; batch.len() * tokens];
    for (row, &i) in batch.iter().enumerate() {
        for (column, &id) in encodings[i].get_ids().iter().enumerate() {
            ids[row * tokens + column] = i64::from(id);
            mask[row * tokens + column] = 1;
        }
    }
    (ids, mask, tokens)
}
