//! The services tier: tests that start real servers (PostgreSQL with pgvector, Redis,
//! S3, FalkorDB, Prometheus, Chromium) on 127.0.0.1 and ports of their own.
//! One binary per tier: each test file is a module, the harness is linked once.

#[path = "../common/abuse.rs"]
mod abuse;
#[path = "../common/mod.rs"]
mod common;
#[path = "../../../shared/extraction/tests/support/corpus.rs"]
mod corpus;
#[path = "../../../shared/extraction/tests/support/hostile.rs"]
mod hostile;
#[path = "../common/hostile_uploads.rs"]
mod hostile_uploads;
#[path = "../ops/mod.rs"]
mod ops;
#[path = "../common/production.rs"]
mod production;
#[path = "../../../shared/core/tests/support/services.rs"]
mod services;

mod config_knobs;
mod kubernetes;
mod openapi_docs;
mod ops_config;
mod production_abuse;
mod production_shape;
mod prometheus_live;
mod redis_queue_e2e;
mod telemetry_export;
