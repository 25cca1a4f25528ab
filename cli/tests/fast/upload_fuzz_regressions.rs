//! The `upload_request` fuzz target's kept inputs (`fuzz/regressions/upload_request/`: its
//! seeds, crashes found and fixed, a sample of the minimised corpus) replayed through the
//! same harness: the app's routes and state on the embedded stores, in process. The fuzzer's
//! smoke run inside the test suite (issue #7, part 1).

use crate::upload_harness;

use std::sync::{Arc, mpsc};
use std::time::Duration;

use upload_harness::Harness;

/// Hang guard for one request (each takes milliseconds).
const DEADLINE: Duration = Duration::from_secs(60);

#[test]
fn upload_fuzz_inputs_replay_cleanly() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/regressions/upload_request");
    let mut inputs: Vec<_> = std::fs::read_dir(&root)
        .unwrap_or_else(|err| panic!("{}: {err}", root.display()))
        .flatten()
        .map(|entry| entry.path())
        .collect();
    inputs.sort();
    assert!(!inputs.is_empty(), "no fuzz inputs found under {}", root.display());

    // The replay cannot point TMPDIR elsewhere (the environment is shared); the data
    // directory's layout is checked all the same.
    let harness = Arc::new(Harness::open(None).unwrap_or_else(|err| panic!("open the harness: {err:#}")));
    let mut statuses = Vec::new();
    for path in &inputs {
        let data = std::fs::read(path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
        let (sender, receiver) = mpsc::channel();
        let worker = harness.clone();
        // A panic (a 5xx, a stray file, a crash) drops the sender without an answer.
        let thread = std::thread::spawn(move || {
            let _ = sender.send(worker.run(&data));
        });
        let outcome = match receiver.recv_timeout(DEADLINE) {
            // Joined, so that the last handle on the harness (and its temporary directory)
            // is dropped by this thread, not lost at exit.
            Ok(outcome) => {
                let _ = thread.join();
                outcome
            }
            Err(mpsc::RecvTimeoutError::Timeout) => panic!("{}: no answer within {DEADLINE:?}", path.display()),
            Err(mpsc::RecvTimeoutError::Disconnected) => panic!("{}: the harness panicked (see above)", path.display()),
        };
        println!(
            "{:<60} {}",
            path.file_name().unwrap_or_default().to_string_lossy(),
            outcome.status
        );
        statuses.push(outcome.status);
    }
    // The kept inputs reach both ends of the handler: stored uploads and refusals.
    assert!(statuses.contains(&202), "no input was accepted: {statuses:?}");
    assert!(
        statuses.iter().any(|status| (400..500).contains(status)),
        "no input was refused: {statuses:?}"
    );
}
