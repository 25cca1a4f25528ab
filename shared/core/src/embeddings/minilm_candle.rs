//! all-MiniLM-L6-v2 with candle (pure Rust, CPU), from `model.safetensors`: the engine measured
//! against ONNX Runtime. Same tokenisation, batching and pooling as `minilm`.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, anyhow, bail};
use async_trait::async_trait;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::Tokenizer;

use super::minilm::{DIMENSIONS, MODEL_NAME, encode, length_sorted_batches, load_tokenizer, model_file, padded_batch};
use super::{Embedder, distinct, l2_normalize};

pub struct CandleMiniLm {
    inner: Arc<Inner>,
}

struct Inner {
    tokenizer: Tokenizer,
    model: BertModel,
    batch_size: usize,
}

impl CandleMiniLm {
    pub fn open(model_dir: &Path, batch_size: usize) -> anyhow::Result<Self> {
        let tokenizer = load_tokenizer(model_dir)?;
        let config_path = model_file(model_dir, "config.json")?;
        let config: Config = serde_json::from_slice(&std::fs::read(&config_path)?)
            .with_context(|| format!("reading {}", config_path.display()))?;
        let weights = model_file(model_dir, "model.safetensors")?;
        let device = Device::Cpu;
        let tensors = candle_core::safetensors::load(&weights, &device)
            .map_err(|err| anyhow!("reading {}: {err}", weights.display()))?;
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &device);
        let model = BertModel::load(vb, &config).map_err(|err| anyhow!("loading {}: {err}", weights.display()))?;
        Ok(Self {
            inner: Arc::new(Inner {
                tokenizer,
                model,
                batch_size: batch_size.max(1),
            }),
        })
    }
}

#[async_trait]
impl Embedder for CandleMiniLm {
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
            let pooled = self
                .run(&encodings, &batch)
                .map_err(|err| anyhow!("running {MODEL_NAME}: {err}"))?;
            if pooled.len() != batch.len() {
                bail!("the model answered {} vectors for {} texts", pooled.len(), batch.len());
            }
            for (mut vector, &index) in pooled.into_iter().zip(&batch) {
                l2_normalize(&mut vector);
                vectors[index] = vector;
            }
        }
        Ok(slots.into_iter().map(|slot| vectors[slot].clone()).collect())
    }

    fn run(&self, encodings: &[tokenizers::Encoding], batch: &[usize]) -> candle_core::Result<Vec<Vec<f32>>> {
        let (ids, mask, tokens) = padded_batch(encodings, batch);
        let device = Device::Cpu;
        let ids = Tensor::from_vec(ids, (batch.len(), tokens), &device)?;
        let mask = Tensor::from_vec(mask, (batch.len(), tokens), &device)?;
        let token_types = ids.zeros_like()?;
        let hidden = self.model.forward(&ids, &token_types, Some(&mask))?;
        let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
        let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
        let counts = mask.sum(1)?.clamp(1e-9, f64::MAX)?;
        summed.broadcast_div(&counts)?.to_vec2::<f32>()
    }
}
