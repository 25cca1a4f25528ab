//! HBI's shared core: domain types, configuration, the book pipeline, job handling and one
//! module per storage backend behind small traits. Nothing here knows about HTTP.

pub mod backends;
pub mod blobs;
pub mod catalog;
pub mod chunking;
pub mod config;
pub mod db;
pub mod domain;
pub mod graph;
pub mod jobs;
pub mod pipeline;
pub mod text_index;
pub mod vectors;

pub use backends::Backends;
pub use config::Settings;
