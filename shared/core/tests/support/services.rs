//! Real services for integration tests, started through `scripts/lib/services.sh` on
//! 127.0.0.1, a free port and a temporary state directory, and stopped on drop.

#![allow(dead_code)] // each test binary uses some of these

use std::path::{Path, PathBuf};
use std::process::Command;

fn repository_root() -> PathBuf {
    let mut dir = Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf();
    while !dir.join("scripts/lib/services.sh").exists() {
        assert!(
            dir.pop(),
            "scripts/lib/services.sh not found above {}",
            env!("CARGO_MANIFEST_DIR")
        );
    }
    dir
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local addr").port()
}

/// One running service: `redis`, `postgres`, `s3` or `falkordb`.
pub struct Service {
    pub kind: &'static str,
    pub port: u16,
    /// What the start function printed: `redis://...`, `postgres://...`, `http://...`, `falkor://...`.
    pub url: String,
    state: tempfile::TempDir,
}

impl Service {
    pub fn start(kind: &'static str) -> Self {
        let state = tempfile::Builder::new()
            .prefix(&format!("hbi-{kind}-"))
            .tempdir_in("/tmp")
            .expect("state dir");
        let port = free_port();
        let url = call(kind, "start", port, state.path());
        Self { kind, port, url, state }
    }

    pub fn state_dir(&self) -> &Path {
        self.state.path()
    }

    /// Stops the service, keeping its data (to test outages and restarts).
    pub fn stop(&self) {
        call(self.kind, "stop", self.port, self.state.path());
    }

    /// Starts it again on the same port and data.
    pub fn restart(&self) {
        call(self.kind, "start", self.port, self.state.path());
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = run(self.kind, "stop", self.port, self.state.path());
    }
}

fn run(kind: &str, action: &str, port: u16, state: &Path) -> std::process::Output {
    let root = repository_root();
    Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source '{}/scripts/lib/services.sh' && hbi_{kind}_{action} \"$0\" \"$1\"",
            root.display()
        ))
        .arg(port.to_string())
        .arg(state)
        .output()
        .expect("run bash")
}

fn call(kind: &str, action: &str, port: u16, state: &Path) -> String {
    let output = run(kind, action, port, state);
    assert!(
        output.status.success(),
        "hbi_{kind}_{action} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}
