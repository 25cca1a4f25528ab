//! The services tier: tests that start real servers (PostgreSQL with pgvector, Redis,
//! S3, FalkorDB, Prometheus, Chromium) on 127.0.0.1 and ports of their own.
//! One binary per tier: each test file is a module, the harness is linked once.

#[path = "../support/graph_contract.rs"]
mod contract;
#[path = "../support/services.rs"]
mod services;
#[path = "../support/text_checks.rs"]
mod text_checks;
#[path = "../support/vector_checks.rs"]
mod vector_checks;
#[path = "../support/vector_data.rs"]
mod vector_data;

mod chunk_retrievers;
mod graph_falkordb;
mod postgres_backend;
mod redis_queue;
mod s3_blob_store;
mod text_search;
mod vector_search;
