//! The library's use cases: what a reader or an operator does with books and their jobs
//! (create, upload, delete, read the ToC, index and pages, follow, cancel and run jobs
//! again), with libraries (collections of books), API keys and the audit log. Every door
//! (the HTTP API, the portal, MCP) calls these and only maps their answers; none of them
//! writes to a store itself. Each use case takes the caller (`Principal`) and checks its
//! access to the book's library here (`libraries.rs`), so no door can forget to.

mod books;
mod finding;
mod jobs;
mod keys;
mod libraries;
mod reading;

use std::sync::Arc;

pub use books::{NewBook, Upload, UploadOutcome};
pub use finding::{Ask, MAX_TERM_RESULTS, NO_EMBEDDER, NO_LLM, PageQuery, TermFound, TermQuery};
pub use jobs::{JobReport, JobUpdate};
pub use keys::KeyListing;
pub use libraries::LibraryView;
pub use reading::{BookQuality, IndexNode, PageImage, PageRange, PageView, TocNode};

use crate::access::ApiKeyStore;
use crate::answer::Retriever;
use crate::audit::AuditLog;
use crate::blobs::BlobStore;
use crate::catalog::Catalog;
use crate::graph::GraphStore;
use crate::jobs::JobQueue;
use crate::jobs::store::JobStore;
use crate::knobs::KnobStore;
use crate::llm::ChatModel;
use crate::page_images::PageRenderer;
use crate::scratch::ScratchDir;
use crate::search::Searcher;
use crate::text_index::TextIndex;
use crate::vectors::VectorIndex;

/// What a use case refused, in the library's words; each door maps it to its own shape
/// (an HTTP status, an MCP error). Anything else is `Internal`.
#[derive(Debug, thiserror::Error)]
pub enum LibraryError {
    #[error("Book not found")]
    BookNotFound,
    #[error("Job not found")]
    JobNotFound,
    #[error("Library not found")]
    LibraryNotFound,
    /// The caller may read what it asked for but not do this to it (or this is for
    /// operators).
    #[error("{0}")]
    Forbidden(String),
    #[error("Job not found in the dead-letter queue")]
    NotInDeadLetterQueue,
    #[error("page {number} not found; the book has {page_count} pages")]
    PageNotFound { number: u32, page_count: u32 },
    #[error("no page of the book is labelled {label:?}")]
    PageLabelNotFound { label: String },
    /// The book has no image of this page (an EPUB, not processed yet, a page that cannot be drawn).
    #[error("{0}")]
    NoPageImage(String),
    /// The request is well formed but the book or job is not in a state that allows it.
    #[error("{0}")]
    Conflict(String),
    /// A field's value is refused (the field, as the caller named it, and why).
    #[error("{field} {reason}")]
    Invalid { field: &'static str, reason: String },
    /// The uploaded file is empty or of a kind the pipeline does not read.
    #[error("{0}")]
    BadFile(String),
    #[error("the file is larger than the upload limit of {limit_mb} MB")]
    TooLarge { limit_mb: u64 },
    /// Something the use case needs is down or not configured; nothing was recorded.
    #[error("{0}")]
    Unavailable(String),
    /// The language model failed (an error status, unreachable, an unreadable response).
    #[error("{0}")]
    ModelFailed(String),
    /// The language model did not answer in time.
    #[error("{0}")]
    ModelTimedOut(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sea_orm::DbErr> for LibraryError {
    fn from(err: sea_orm::DbErr) -> Self {
        Self::Internal(err.into())
    }
}

impl From<std::io::Error> for LibraryError {
    fn from(err: std::io::Error) -> Self {
        Self::Internal(err.into())
    }
}

pub type LibraryResult<T> = Result<T, LibraryError>;

/// The limits a use case enforces, from the settings.
#[derive(Debug, Clone, Copy)]
pub struct LibraryLimits {
    pub max_upload_bytes: u64,
    /// How the upload limit is named to the user.
    pub max_upload_mb: u64,
    /// Attempts a new or re-run job gets before it goes to the dead-letter queue.
    pub max_attempts: u32,
}

/// Every store of [`Library`], named, so that the composition root cannot swap two.
#[derive(Clone)]
pub struct LibraryStores {
    pub catalog: Catalog,
    pub jobs: JobStore,
    pub queue: Arc<dyn JobQueue>,
    pub blobs: Arc<dyn BlobStore>,
    pub text: Arc<dyn TextIndex>,
    pub vectors: Arc<dyn VectorIndex>,
    pub graph: Arc<dyn GraphStore>,
    pub scratch: Arc<ScratchDir>,
    pub searcher: Arc<Searcher>,
    pub knobs: KnobStore,
    /// What questions retrieve their passages with.
    pub retriever: Arc<dyn Retriever>,
    /// `None` when no language model is configured.
    pub llm: Option<Arc<dyn ChatModel>>,
    /// Draws page images.
    pub renderer: PageRenderer,
    /// Who changed what.
    pub audit: AuditLog,
    pub api_keys: ApiKeyStore,
}

/// The use cases over the stores, each behind its trait.
#[derive(Clone)]
pub struct Library {
    stores: LibraryStores,
    limits: LibraryLimits,
}

impl Library {
    pub fn new(stores: LibraryStores, limits: LibraryLimits) -> Self {
        Self { stores, limits }
    }

    pub fn limits(&self) -> LibraryLimits {
        self.limits
    }
}
