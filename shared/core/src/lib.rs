//! HBI's shared core: domain types, configuration, the use cases (`library`), job storage and one
//! module per storage backend behind small traits. Nothing here knows about HTTP.

pub mod access;
pub mod answer;
pub mod audit;
pub mod backends;
pub mod blank;
pub mod blobs;
pub mod catalog;
pub mod chunking;
pub mod config;
pub mod db;
pub mod domain;
pub mod embeddings;
pub mod graph;
mod http_client;
pub mod jobs;
pub mod knobs;
pub mod library;
pub mod llm;
pub mod metrics;
pub mod outline;
pub mod page_images;
pub mod quality;
pub mod rerank;
pub mod sanitize;
pub mod scratch;
pub mod search;
pub mod text_index;
pub mod trace_context;
pub mod vectors;
pub mod webhooks;

pub use backends::Backends;
pub use config::Settings;
pub use library::{Library, LibraryError};
