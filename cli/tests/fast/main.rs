//! The fast tier: units and contracts on the embedded backends, nothing to start but
//! `hbi` itself and the tools scripts/test installs.
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
#[path = "../../../fuzz/fuzz_targets/upload_harness.rs"]
mod upload_harness;

mod access;
mod api_contract;
mod bad_uploads;
mod cli;
mod e2e_upload;
mod hostile_files;
mod injection;
mod job_events;
mod libraries;
mod mcp;
mod page_images;
mod portal;
mod query_llm;
mod rerank;
mod restart_durability;
mod search;
mod upload_fuzz_regressions;
mod webhooks;
