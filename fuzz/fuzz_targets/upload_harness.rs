//! The upload request handling in process: the app's real routes and middleware
//! (`hbi_api::routes`) with its real state on the embedded stores (SQLite, the local blob
//! store, the SQLite queue) in a temporary directory, called through poem's `Endpoint` (no
//! network). Shared by the `upload_request` fuzz target and the replay of its kept inputs in
//! `cli/tests/fast/upload_fuzz_regressions.rs`.
//!
//! An input is one request to `POST /books/{id}/upload`:
//!
//! ```text
//! byte 0      flags: bit 0 declares Content-Length, bit 1 adds ?reprocess=true,
//!             bit 2 streams the body in chunks of (byte 1 + 1) bytes, else in one piece
//! byte 1      the chunk size
//! ...\n       the Content-Type header value (boundary included), up to the first newline
//! rest        the body (multipart parts: names, file names, headers, contents)
//! ```
//!
//! Checked after every request: no panic (the fuzzer's own check), no 5xx, and nothing
//! written outside the data directory's own layout; an accepted upload is deleted again
//! through `DELETE /books/{id}`, which must leave no blob behind.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use hbi_api::AppState;
use hbi_shared::config::Overrides;
use hbi_shared::embeddings::EmbeddingProvider;
use hbi_shared::{Backends, Settings};
use poem::endpoint::BoxEndpoint;
use poem::http::{HeaderValue, Method, StatusCode, header};
use poem::{Endpoint, EndpointExt, Request};

/// The admin key the harness sends (`auth.bootstrap_api_key`).
const KEY: &str = "hbi-fuzz-bootstrap-admin-key-3c7e21";

/// Files and directories the embedded stores keep directly under the data directory.
const DATA_DIR_LAYOUT: &[&str] = &[
    "hbi.db",
    "hbi.db-wal",
    "hbi.db-shm",
    "hbi.db-journal",
    "queue.db",
    "queue.db-wal",
    "queue.db-shm",
    "queue.db-journal",
    "blobs",
    "scratch",
];

/// One request decoded from fuzz bytes.
pub struct UploadRequest {
    pub declare_length: bool,
    pub reprocess: bool,
    /// `None`: the body in one piece.
    pub chunk_size: Option<usize>,
    pub content_type: Vec<u8>,
    pub body: Vec<u8>,
}

impl UploadRequest {
    pub fn decode(data: &[u8]) -> Self {
        let flags = data.first().copied().unwrap_or(0);
        let chunk = data.get(1).copied().unwrap_or(0);
        let rest = data.get(2..).unwrap_or_default();
        let (content_type, body) = match rest.iter().position(|&b| b == b'\n') {
            Some(end) => (&rest[..end], &rest[end + 1..]),
            None => (rest, &[][..]),
        };
        Self {
            declare_length: flags & 1 != 0,
            reprocess: flags & 2 != 0,
            chunk_size: (flags & 4 != 0).then_some(usize::from(chunk) + 1),
            content_type: content_type.to_vec(),
            body: body.to_vec(),
        }
    }
}

/// What one request came to, for the replay test's summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub status: u16,
}

pub struct Harness {
    runtime: tokio::runtime::Runtime,
    app: BoxEndpoint<'static, poem::Response>,
    state: AppState,
    /// Holds `data` alone; removed on drop.
    root: tempfile::TempDir,
    data_dir: PathBuf,
    temp_dir: Option<PathBuf>,
    /// A book with no job yet, used by the next request.
    book: Mutex<Option<String>>,
}

impl Harness {
    /// Opens the embedded stores in a fresh temporary directory. `watched_temp_dir`, when
    /// given, is the process's TMPDIR, made for the run and empty: a named temporary file
    /// anywhere in the request's path would show up there (the fuzz target sets it; the
    /// replay test cannot change its environment and passes `None`).
    pub fn open(watched_temp_dir: Option<PathBuf>) -> anyhow::Result<Self> {
        let root = tempfile::Builder::new().prefix("hbi-fuzz-upload-").tempdir()?;
        let data_dir = root.path().join("data");
        let overrides = Overrides {
            bind: None,
            data_dir: Some(data_dir.clone()),
        };
        // No configuration files: the built-in defaults, then the fixed choices below.
        let no_config = root.path().join("no-config");
        let mut settings = Settings::load(Some(no_config.as_path()), &overrides)?;
        // The embedded shape whatever the environment says.
        settings.database.url = None;
        settings.queue.redis_url = None;
        settings.blobs.s3_endpoint = None;
        settings.graph.neo4j_uri = None;
        settings.graph.falkordb_url = None;
        settings.llm.base_url = None;
        settings.llm.api_key = None;
        settings.embeddings.provider = EmbeddingProvider::None;
        settings.server.cors_origins.clear();
        settings.auth.enabled = true;
        settings.auth.bootstrap_api_key = Some(KEY.into());
        settings.rate_limit.requests_per_minute = 0;
        settings.rate_limit.uploads_per_minute = 0;
        settings.limits.max_upload_mb = 1;
        let settings = Arc::new(settings);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        let backends = runtime.block_on(Backends::open(&settings, true))?;
        let state = AppState::new(backends, settings);
        let app = hbi_api::routes(state.clone()).map_to_response().boxed();
        Ok(Self {
            runtime,
            app,
            state,
            data_dir,
            temp_dir: watched_temp_dir,
            root,
            book: Mutex::new(None),
        })
    }

    /// Sends one request and checks what it left behind; panics on a broken rule.
    pub fn run(&self, data: &[u8]) -> Outcome {
        let request = UploadRequest::decode(data);
        self.runtime.block_on(self.send(request))
    }

    async fn send(&self, upload: UploadRequest) -> Outcome {
        let book_id = self.fresh_book().await;
        let mut uri = format!("/books/{book_id}/upload");
        if upload.reprocess {
            uri.push_str("?reprocess=true");
        }
        let mut builder = Request::builder()
            .method(Method::POST)
            .uri_str(&uri)
            .header("x-api-key", KEY);
        // A value the HTTP layer would refuse never reaches the app: send none instead.
        if let Ok(value) = HeaderValue::from_bytes(&upload.content_type) {
            builder = builder.header(header::CONTENT_TYPE, value);
        }
        if upload.declare_length {
            builder = builder.header(header::CONTENT_LENGTH, upload.body.len());
        }
        let body = match upload.chunk_size {
            Some(size) => {
                let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
                    upload.body.chunks(size).map(|chunk| Ok(chunk.to_vec())).collect();
                poem::Body::from_bytes_stream(futures::stream::iter(chunks))
            }
            None => poem::Body::from_vec(upload.body),
        };
        let response = self.call(builder.body(body)).await;
        let status = response.status();
        let answer = response.into_body().into_vec().await.unwrap_or_default();
        assert!(
            !status.is_server_error(),
            "upload answered {status}: {}",
            String::from_utf8_lossy(&answer)
        );
        self.check_data_dir();
        if status == StatusCode::ACCEPTED {
            // The book has a job now: the next request gets a fresh one. Deleting it through
            // the API keeps the stores small and must take the blob with it.
            self.book.lock().unwrap_or_else(|e| e.into_inner()).take();
            let delete = Request::builder()
                .method(Method::DELETE)
                .uri_str(format!("/books/{book_id}"))
                .header("x-api-key", KEY)
                .finish();
            let deleted = self.call(delete).await.status();
            assert_eq!(deleted, StatusCode::NO_CONTENT, "DELETE of an accepted upload's book");
            let blobs = files_under(&self.data_dir.join("blobs"));
            assert!(blobs.is_empty(), "blobs left after the book was deleted: {blobs:?}");
        }
        Outcome {
            status: status.as_u16(),
        }
    }

    async fn call(&self, request: Request) -> poem::Response {
        match self.app.call(request).await {
            Ok(response) => response,
            Err(err) => err.into_response(),
        }
    }

    /// The book the next upload goes to: one without a job, made once and reused until an
    /// upload is accepted.
    async fn fresh_book(&self) -> String {
        if let Some(id) = self.book.lock().unwrap_or_else(|e| e.into_inner()).clone() {
            return id;
        }
        let book = self
            .state
            .backends
            .catalog
            .create_book("fuzzed upload", None)
            .await
            .unwrap_or_else(|err| panic!("create a book: {err:#}"));
        *self.book.lock().unwrap_or_else(|e| e.into_inner()) = Some(book.id.clone());
        book.id
    }

    /// Nothing outside the data directory's layout: the temporary root holds `data` alone,
    /// the watched TMPDIR nothing else; the data directory its stores; the scratch directory
    /// no file but its lock once the request is answered; the blob store content-addressed
    /// names only.
    fn check_data_dir(&self) {
        let root: Vec<String> = names_in(self.root.path());
        assert!(
            root.iter().all(|name| name == "data"),
            "written beside the data directory: {root:?}"
        );
        if let Some(temp_dir) = &self.temp_dir {
            // The root itself is made in TMPDIR, before the app runs.
            let own = self.root.path().file_name().map(|name| name.to_string_lossy());
            let temp: Vec<String> = names_in(temp_dir)
                .into_iter()
                .filter(|name| Some(name.as_str()) != own.as_deref())
                .collect();
            assert!(temp.is_empty(), "left in TMPDIR: {temp:?}");
        }
        let data = names_in(&self.data_dir);
        assert!(
            data.iter().all(|name| DATA_DIR_LAYOUT.contains(&name.as_str())),
            "unexpected entries in the data directory: {data:?}"
        );
        // The process's own scratch directory stays, holding its lock file only.
        let scratch: Vec<PathBuf> = files_under(&self.data_dir.join("scratch"))
            .into_iter()
            .filter(|file| file.file_name().is_none_or(|name| name != ".lock"))
            .collect();
        assert!(scratch.is_empty(), "scratch files left: {scratch:?}");
        for blob in files_under(&self.data_dir.join("blobs")) {
            let name = blob.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            let hash = name.strip_suffix(".pdf").unwrap_or_default();
            let shard = blob.parent().and_then(|p| p.file_name()).and_then(|n| n.to_str());
            assert!(
                hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()) && shard == hash.get(..2),
                "a blob outside the content-addressed layout: {}",
                blob.display()
            );
        }
    }
}

fn names_in(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Every file (not directory) under `dir`.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files
}
