//! Sentence embeddings behind one trait: all-MiniLM-L6-v2 run in-process (`minilm`) or any
//! OpenAI-compatible `/v1/embeddings` endpoint (`openai`: OpenAI, Ollama, TEI, vLLM). Both
//! batch their input, embed each distinct text of a call once and return L2-normalised vectors
//! in input order. `open_embedder` is the one place that picks the implementation.

pub mod minilm;
pub mod openai;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use secrecy::SecretString;
use serde::Deserialize;

use crate::blank::blank_is_none;

pub use minilm::MiniLmEmbedder;
pub use openai::OpenAiEmbedder;

#[async_trait]
pub trait Embedder: Send + Sync {
    /// `minilm` or `openai`.
    fn kind(&self) -> &'static str;

    /// The model's name, as stored beside the vectors it made.
    fn model(&self) -> &str;

    /// Length of every vector `embed` returns.
    fn dimensions(&self) -> usize;

    /// One unit-length vector per text, in the order of `texts`.
    async fn embed(&self, texts: &[String]) -> anyhow::Result<Vec<Vec<f32>>>;
}

/// Which model embeds the chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EmbeddingProvider {
    /// all-MiniLM-L6-v2 in this process (ONNX Runtime).
    Minilm,
    /// An OpenAI-compatible `/v1/embeddings` endpoint.
    Openai,
    /// No vectors: search is keyword only.
    None,
}

impl EmbeddingProvider {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Minilm => "minilm",
            Self::Openai => "openai",
            Self::None => "none",
        }
    }
}

/// Which copy of the in-process model runs: both are all-MiniLM-L6-v2 and their vectors share
/// one space (cosine about 0.99 between them), so a store filled by one is searched by the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelPrecision {
    /// `model-int8.onnx`: int8 weights, activations quantised per batch; the faster.
    Int8,
    /// `model.onnx`: the model's own f32 weights, equal to sentence-transformers' vectors.
    F32,
}

impl ModelPrecision {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Int8 => "int8",
            Self::F32 => "f32",
        }
    }

    /// The graph file of this precision in the model folder.
    pub fn model_file(self) -> &'static str {
        match self {
            Self::Int8 => "model-int8.onnx",
            Self::F32 => "model.onnx",
        }
    }
}

/// The `[embeddings]` section of the configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct EmbeddingSettings {
    /// `minilm` (in-process all-MiniLM-L6-v2), `openai` (an OpenAI-compatible endpoint) or
    /// `none`.
    pub provider: EmbeddingProvider,
    /// Folder with the model files; absent: `$HBI_TOOLS_DIR/models/all-MiniLM-L6-v2`, where
    /// `install_model` of `scripts/lib/install-tools.sh` puts them.
    #[serde(deserialize_with = "blank_is_none")]
    pub model_dir: Option<PathBuf>,
    /// Texts per inference run or per HTTP request.
    pub batch_size: usize,
    /// Threads of the in-process model; 0: every core.
    pub threads: usize,
    /// `int8` or `f32` copy of the in-process model.
    pub precision: ModelPrecision,
    /// libonnxruntime for the in-process model; absent: `ORT_DYLIB_PATH`, else the copy
    /// `install_model` puts beside the tools.
    #[serde(deserialize_with = "blank_is_none")]
    pub onnxruntime_lib: Option<PathBuf>,
    /// Base URL up to and including `/v1`, e.g. `http://127.0.0.1:11434/v1` for Ollama.
    pub openai_base_url: String,
    /// Sent as a bearer token when set; `OPENAI_API_KEY`.
    #[serde(deserialize_with = "blank_is_none")]
    pub openai_api_key: Option<SecretString>,
    pub openai_model: String,
    /// Length of the endpoint's vectors; a response of another length is an error.
    pub openai_dimensions: usize,
    /// Deadline of one HTTP request.
    pub openai_timeout_secs: u64,
}

impl Default for EmbeddingSettings {
    fn default() -> Self {
        Self {
            provider: EmbeddingProvider::Minilm,
            model_dir: None,
            batch_size: 32,
            threads: 0,
            precision: ModelPrecision::Int8,
            onnxruntime_lib: None,
            openai_base_url: String::new(),
            openai_api_key: None,
            openai_model: "text-embedding-3-small".to_owned(),
            openai_dimensions: 1536,
            openai_timeout_secs: 60,
        }
    }
}

impl EmbeddingSettings {
    /// The first problem found, as (key, problem).
    pub fn problem(&self) -> Option<(&'static str, &'static str)> {
        if self.batch_size == 0 || self.batch_size > 4096 {
            return Some(("embeddings.batch_size", "must be between 1 and 4096"));
        }
        match self.provider {
            EmbeddingProvider::None | EmbeddingProvider::Minilm => None,
            EmbeddingProvider::Openai => {
                if !(self.openai_base_url.starts_with("http://") || self.openai_base_url.starts_with("https://")) {
                    Some(("embeddings.openai_base_url", "must start with http:// or https://"))
                } else if self.openai_model.trim().is_empty() {
                    Some(("embeddings.openai_model", "must not be empty"))
                } else if self.openai_dimensions == 0 {
                    Some(("embeddings.openai_dimensions", "must be at least 1"))
                } else if self.openai_timeout_secs == 0 {
                    Some(("embeddings.openai_timeout_secs", "must be at least 1"))
                } else {
                    None
                }
            }
        }
    }

    /// The model folder in force.
    pub fn model_dir(&self) -> PathBuf {
        match &self.model_dir {
            Some(dir) => dir.clone(),
            None => tools_dir().join("models").join(minilm::MODEL_NAME),
        }
    }

    /// The libonnxruntime in force.
    pub fn onnxruntime_lib(&self) -> PathBuf {
        if let Some(lib) = &self.onnxruntime_lib {
            return lib.clone();
        }
        match std::env::var("ORT_DYLIB_PATH") {
            Ok(path) if !path.trim().is_empty() => PathBuf::from(path),
            _ => tools_dir().join("onnxruntime").join("libonnxruntime.so"),
        }
    }
}

/// `$HBI_TOOLS_DIR`, else `$HOME/.cache/hbi-tools`, as in `scripts/lib/services.sh`.
fn tools_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("HBI_TOOLS_DIR")
        && !dir.trim().is_empty()
    {
        return PathBuf::from(dir);
    }
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".to_owned());
    PathBuf::from(home).join(".cache").join("hbi-tools")
}

/// Opens the embedder the settings call for. The in-process model is loaded here, so a
/// missing or damaged model folder is reported at start, not at the first book.
pub fn open_embedder(settings: &EmbeddingSettings) -> anyhow::Result<Arc<dyn Embedder>> {
    if let Some((key, problem)) = settings.problem() {
        anyhow::bail!("configuration key `{key}`: {problem}");
    }
    Ok(match settings.provider {
        EmbeddingProvider::Openai => Arc::new(OpenAiEmbedder::new(settings)?),
        EmbeddingProvider::Minilm | EmbeddingProvider::None => Arc::new(MiniLmEmbedder::open(
            &settings.model_dir(),
            &settings.onnxruntime_lib(),
            settings.batch_size,
            settings.threads,
            settings.precision,
        )?),
    })
}

/// Scales `vector` to unit length (a zero vector stays zero).
pub(crate) fn l2_normalize(vector: &mut [f32]) {
    let norm = vector.iter().map(|x| f64::from(*x) * f64::from(*x)).sum::<f64>().sqrt();
    if norm > 0.0 {
        let scale = (1.0 / norm) as f32;
        vector.iter_mut().for_each(|x| *x *= scale);
    }
}

/// The distinct texts of `texts`, and for each text the index of its distinct copy: a text that
/// appears several times in one call is embedded once.
pub(crate) fn distinct(texts: &[String]) -> (Vec<&str>, Vec<usize>) {
    let mut seen: HashMap<&str, usize> = HashMap::with_capacity(texts.len());
    let mut unique = Vec::with_capacity(texts.len());
    let slots = texts
        .iter()
        .map(|text| {
            *seen.entry(text.as_str()).or_insert_with(|| {
                unique.push(text.as_str());
                unique.len() - 1
            })
        })
        .collect();
    (unique, slots)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_texts_map_back_to_every_input() {
        let texts: Vec<String> = ["a", "b", "a", "c", "b"].iter().map(|s| s.to_string()).collect();
        let (unique, slots) = distinct(&texts);
        assert_eq!(unique, ["a", "b", "c"]);
        assert_eq!(slots, [0, 1, 0, 2, 1]);
    }

    #[test]
    fn normalised_vectors_have_unit_length() {
        let mut v = vec![3.0, 4.0];
        l2_normalize(&mut v);
        assert!((v[0] - 0.6).abs() < 1e-7 && (v[1] - 0.8).abs() < 1e-7);
        let mut zero = vec![0.0; 3];
        l2_normalize(&mut zero);
        assert_eq!(zero, [0.0; 3]);
    }

    #[test]
    fn settings_problems_name_the_key() {
        let mut settings = EmbeddingSettings::default();
        assert_eq!(settings.problem(), None);
        settings.provider = EmbeddingProvider::Openai;
        assert_eq!(settings.problem().map(|p| p.0), Some("embeddings.openai_base_url"));
        settings.openai_base_url = "http://127.0.0.1:11434/v1".to_owned();
        assert_eq!(settings.problem(), None);
        settings.batch_size = 0;
        assert_eq!(settings.problem().map(|p| p.0), Some("embeddings.batch_size"));
    }
}
