//! The fast tier: units and contracts on the embedded backends, nothing to start but
//! `hbi` itself and the tools scripts/test installs.
//! One binary per tier: each test file is a module, the harness is linked once.

#[path = "../support/graph_contract.rs"]
mod contract;

mod embeddings_minilm;
mod embeddings_openai;
mod graph_sql;
mod sanitize_corpus;
