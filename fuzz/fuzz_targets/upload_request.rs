//! Fuzz bytes as one upload request (`POST /books/{id}/upload`: Content-Type with its
//! boundary, the multipart body with its names, file names and contents, how the body is
//! streamed) through the app's real routes and state on the embedded stores, in process.
//! The layout of an input and the checks are in `upload_harness.rs`.
#![no_main]

mod upload_harness;

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use upload_harness::Harness;

static HARNESS: OnceLock<(Harness, tempfile::TempDir)> = OnceLock::new();

fn open() -> anyhow::Result<(Harness, tempfile::TempDir)> {
    // A TMPDIR of the run's own, empty, so that the harness sees any named temporary file.
    let temp = tempfile::Builder::new().prefix("hbi-fuzz-tmpdir-").tempdir()?;
    // SAFETY: the first input runs before any thread of ours (the runtime, the database
    // pools) exists, and libFuzzer's own threads do not read the environment.
    unsafe { std::env::set_var("TMPDIR", temp.path()) };
    Ok((Harness::open(Some(temp.path().to_path_buf()))?, temp))
}

fuzz_target!(|data: &[u8]| {
    let (harness, _temp) = HARNESS.get_or_init(|| open().unwrap_or_else(|err| panic!("open the harness: {err:#}")));
    harness.run(data);
});
