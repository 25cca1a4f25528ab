use hbi_shared::db::entities::{book, job, toc_entry};
use hbi_shared::domain::{ContentHash, JobState, parse_id};
use hbi_shared::jobs::relay;
use hbi_shared::jobs::store::{BookBusy, BookGone, StoredFile};
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::types::multipart::Upload;
use poem_openapi::{ApiResponse, Multipart, Object, OpenApi};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::ApiTags;
use crate::AppState;
use crate::error::{ErrorDetail, ValidationError, ValidationIssue, internal};

pub struct BooksApi;

/// A book in the catalogue.
#[derive(Debug, Clone, Object)]
pub struct Book {
    pub id: String,
    pub title: String,
    #[oai(nullable)]
    pub author: Option<String>,
    /// File name of the uploaded original.
    #[oai(nullable)]
    pub source_path: Option<String>,
    /// `created`, `queued`, `processing`, `ready`, `needs_review` or `failed`.
    pub status: String,
    /// SHA-256 of the uploaded original.
    #[oai(nullable)]
    pub content_hash: Option<String>,
    #[oai(nullable)]
    pub page_count: Option<i32>,
    /// Where the ToC came from: `outline`, `printed_contents`, `headings` or `none`.
    #[oai(nullable)]
    pub toc_source: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

impl From<book::Model> for Book {
    fn from(m: book::Model) -> Self {
        Self {
            id: m.id,
            title: m.title,
            author: m.author,
            source_path: m.source_path,
            status: m.status,
            content_hash: m.content_hash,
            page_count: m.page_count,
            toc_source: m.toc_source,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

// Stored text has no NUL character (`pattern`): PostgreSQL cannot hold one in text (the
// production shape answered 500 for it); both shapes answer 422.
#[derive(Debug, Object)]
pub struct BookCreate {
    /// 1 to 1000 characters, no NUL.
    #[oai(validator(min_length = 1, max_length = 1000, pattern = "^[^\\x00]*$"))]
    pub title: String,
    /// Up to 1000 characters, no NUL.
    #[oai(nullable, validator(max_length = 1000, pattern = "^[^\\x00]*$"))]
    pub author: Option<String>,
}

#[derive(Debug, Multipart)]
pub struct UploadForm {
    /// The book as a PDF file.
    pub file: Upload,
}

#[derive(Debug, Object)]
pub struct UploadAccepted {
    pub book: Book,
    pub job_id: String,
    /// Where to poll the job: `/jobs/{job_id}`.
    pub status_url: String,
    /// The job's state at the time of the answer.
    pub status: String,
}

/// One node of the nested table of contents.
#[derive(Debug, Clone, Object)]
pub struct TocNode {
    pub title: String,
    /// 1-based physical page, when known.
    #[oai(nullable)]
    pub page_number: Option<u32>,
    /// The page number as printed in the book (`xii`, `7`...).
    #[oai(nullable)]
    pub page_label: Option<String>,
    /// 1 for chapters, 2 for their sections, and so on.
    pub level: u32,
    pub children: Vec<TocNode>,
}

#[derive(Debug, Object)]
pub struct PageView {
    pub book_id: String,
    /// 1-based physical page.
    pub number: u32,
    /// The page number as printed.
    pub label: String,
    pub text: String,
    /// Titles of the ToC entries enclosing this page, outermost first.
    pub section_path: Vec<String>,
    /// Back-of-book index terms whose locators point at this page.
    pub index_terms: Vec<String>,
}

#[derive(ApiResponse)]
pub enum CreateBookResponse {
    #[oai(status = 201)]
    Created(Json<Book>),
    #[oai(status = 422)]
    Invalid(Json<ValidationError>),
    #[oai(status = 500)]
    Internal(Json<ErrorDetail>),
}

#[derive(ApiResponse)]
pub enum ListBooksResponse {
    #[oai(status = 200)]
    Ok(Json<Vec<Book>>),
    #[oai(status = 500)]
    Internal(Json<ErrorDetail>),
}

#[derive(ApiResponse)]
pub enum BookResponse {
    #[oai(status = 200)]
    Ok(Json<Book>),
    #[oai(status = 404)]
    NotFound(Json<ErrorDetail>),
    #[oai(status = 500)]
    Internal(Json<ErrorDetail>),
}

#[derive(ApiResponse)]
pub enum DeleteBookResponse {
    /// The book, its file, rows, index and graph are gone.
    #[oai(status = 204)]
    Deleted,
    #[oai(status = 404)]
    NotFound(Json<ErrorDetail>),
    /// A job is running on the book; cancel it first.
    #[oai(status = 409)]
    Conflict(Json<ErrorDetail>),
    #[oai(status = 500)]
    Internal(Json<ErrorDetail>),
}

#[derive(ApiResponse)]
pub enum UploadResponse {
    /// The same content was processed before; this is its result.
    #[oai(status = 200)]
    AlreadyProcessed(Json<UploadAccepted>),
    /// Stored and queued; poll `status_url`.
    #[oai(status = 202)]
    Accepted(Json<UploadAccepted>),
    /// Empty file or not a PDF.
    #[oai(status = 400)]
    BadFile(Json<ErrorDetail>),
    #[oai(status = 404)]
    NotFound(Json<ErrorDetail>),
    /// A job for this book is still queued or running.
    #[oai(status = 409)]
    Conflict(Json<ErrorDetail>),
    /// Over the upload size limit.
    #[oai(status = 413)]
    TooLarge(Json<ErrorDetail>),
    #[oai(status = 500)]
    Internal(Json<ErrorDetail>),
    /// The blob store cannot take the file right now; nothing was recorded, try again later.
    #[oai(status = 503)]
    Unavailable(Json<ErrorDetail>),
}

/// One quality gate's verdict.
#[derive(Debug, Clone, Object)]
pub struct QualityGate {
    /// `text_coverage`, `garbage_ratio`, `toc_sanity`, `index_locator_support`, `index_structure` or
    /// `chunk_vector_consistency`.
    pub gate: String,
    pub metric: f64,
    pub threshold: f64,
    pub passed: bool,
    /// What was measured and, on failure, what to do.
    pub detail: String,
}

#[derive(Debug, Clone, Object)]
pub struct BookQuality {
    pub book_id: String,
    pub status: String,
    /// The job whose run produced these results (none before the first run).
    #[oai(nullable)]
    pub job_id: Option<String>,
    /// Whether every gate passed.
    pub passed: bool,
    pub gates: Vec<QualityGate>,
}

#[derive(ApiResponse)]
pub enum QualityResponse {
    #[oai(status = 200)]
    Ok(Json<BookQuality>),
    #[oai(status = 404)]
    NotFound(Json<ErrorDetail>),
    #[oai(status = 500)]
    Internal(Json<ErrorDetail>),
}

#[derive(ApiResponse)]
pub enum TocResponse {
    #[oai(status = 200)]
    Ok(Json<Vec<TocNode>>),
    #[oai(status = 404)]
    NotFound(Json<ErrorDetail>),
    #[oai(status = 500)]
    Internal(Json<ErrorDetail>),
}

/// A physical page range of an index entry, with the printed labels of its ends.
#[derive(Debug, Clone, Object)]
pub struct PageRange {
    pub first_page: u32,
    pub last_page: u32,
    #[oai(nullable)]
    pub first_label: Option<String>,
    #[oai(nullable)]
    pub last_label: Option<String>,
}

/// One entry of a back-of-book index, with its sub-entries.
#[derive(Debug, Clone, Object)]
pub struct IndexEntryView {
    pub term: String,
    /// The index it belongs to ("Concept Index"); books can have several.
    pub index_name: String,
    /// Locators as printed in the book (`45–47`, `xii`, `12n`).
    pub printed_pages: Vec<String>,
    /// The same locators as 1-based physical page ranges.
    pub pages: Vec<PageRange>,
    pub see: Vec<String>,
    pub see_also: Vec<String>,
    pub subentries: Vec<IndexEntryView>,
}

#[derive(ApiResponse)]
pub enum IndexResponse {
    #[oai(status = 200)]
    Ok(Json<Vec<IndexEntryView>>),
    #[oai(status = 404)]
    NotFound(Json<ErrorDetail>),
    #[oai(status = 500)]
    Internal(Json<ErrorDetail>),
}

#[derive(ApiResponse)]
pub enum PageResponse {
    #[oai(status = 200)]
    Ok(Json<PageView>),
    #[oai(status = 404)]
    NotFound(Json<ErrorDetail>),
    #[oai(status = 500)]
    Internal(Json<ErrorDetail>),
}

const BOOK_NOT_FOUND: &str = "Book not found";

/// Largest page a book may list at once.
const MAX_LIST_LIMIT: u64 = 1000;

#[OpenApi]
impl BooksApi {
    /// Create a book (metadata only; upload its PDF next)
    #[oai(
        path = "/books/",
        method = "post",
        tag = "ApiTags::Books",
        operation_id = "create_book"
    )]
    async fn create(&self, state: Data<&AppState>, body: Json<BookCreate>) -> CreateBookResponse {
        let title = body.title.trim();
        if title.is_empty() {
            // The validator has checked the length; a title of spaces only is empty too.
            return CreateBookResponse::Invalid(Json(ValidationError {
                detail: vec![ValidationIssue {
                    loc: vec!["body".to_owned(), "title".to_owned()],
                    msg: "title must not be blank".to_owned(),
                    kind: "value_error".to_owned(),
                }],
            }));
        }
        match state
            .backends
            .catalog
            .create_book(title, body.author.as_deref().map(str::trim))
            .await
        {
            Ok(book) => CreateBookResponse::Created(Json(book.into())),
            Err(err) => CreateBookResponse::Internal(ErrorDetail::json(internal(&err))),
        }
    }

    /// List books, oldest first
    #[oai(
        path = "/books/",
        method = "get",
        tag = "ApiTags::Books",
        operation_id = "list_books"
    )]
    async fn list(
        &self,
        state: Data<&AppState>,
        /// How many books to skip.
        #[oai(default)]
        skip: Query<u64>,
        /// How many books to return (at most 1000).
        #[oai(default = "default_limit", validator(minimum(value = "1"), maximum(value = "1000")))]
        limit: Query<u64>,
    ) -> ListBooksResponse {
        match state.backends.catalog.books(skip.0, limit.0.min(MAX_LIST_LIMIT)).await {
            Ok(books) => ListBooksResponse::Ok(Json(books.into_iter().map(Book::from).collect())),
            Err(err) => ListBooksResponse::Internal(ErrorDetail::json(internal(&err))),
        }
    }

    /// One book
    #[oai(
        path = "/books/:book_id",
        method = "get",
        tag = "ApiTags::Books",
        operation_id = "get_book"
    )]
    async fn get(&self, state: Data<&AppState>, book_id: Path<String>) -> BookResponse {
        match find_book(&state, &book_id).await {
            Ok(Some(book)) => BookResponse::Ok(Json(book.into())),
            Ok(None) => BookResponse::NotFound(ErrorDetail::json(BOOK_NOT_FOUND)),
            Err(err) => BookResponse::Internal(ErrorDetail::json(internal(&err))),
        }
    }

    /// Delete a book with its file, pages, ToC, index entries, search index and graph
    #[oai(
        path = "/books/:book_id",
        method = "delete",
        tag = "ApiTags::Books",
        operation_id = "delete_book"
    )]
    async fn delete(&self, state: Data<&AppState>, book_id: Path<String>) -> DeleteBookResponse {
        match delete_book(&state, &book_id).await {
            Ok(DeleteOutcome::Deleted) => DeleteBookResponse::Deleted,
            Ok(DeleteOutcome::NotFound) => DeleteBookResponse::NotFound(ErrorDetail::json(BOOK_NOT_FOUND)),
            Ok(DeleteOutcome::Busy) => DeleteBookResponse::Conflict(ErrorDetail::json(
                "a job is processing this book; cancel it or wait for it to finish",
            )),
            Err(err) => DeleteBookResponse::Internal(ErrorDetail::json(internal(&err))),
        }
    }

    /// Upload the book's PDF and queue its processing
    ///
    /// Answers 202 with the job to poll. Uploading the same content again answers 200 with
    /// the existing result, unless `reprocess=true`.
    #[oai(
        path = "/books/:book_id/upload",
        method = "post",
        tag = "ApiTags::Books",
        operation_id = "upload_book"
    )]
    async fn upload(
        &self,
        state: Data<&AppState>,
        book_id: Path<String>,
        /// Process the file again even if this content was processed before.
        #[oai(default)]
        reprocess: Query<bool>,
        form: UploadForm,
    ) -> UploadResponse {
        match upload(&state, &book_id, reprocess.0, form.file).await {
            Ok(response) => response,
            Err(err) => UploadResponse::Internal(ErrorDetail::json(internal(&err))),
        }
    }

    /// The book's table of contents, nested
    #[oai(
        path = "/books/:book_id/toc",
        method = "get",
        tag = "ApiTags::Books",
        operation_id = "get_toc"
    )]
    async fn toc(&self, state: Data<&AppState>, book_id: Path<String>) -> TocResponse {
        match book_toc(&state, &book_id).await {
            Ok(Some(toc)) => TocResponse::Ok(Json(toc)),
            Ok(None) => TocResponse::NotFound(ErrorDetail::json(BOOK_NOT_FOUND)),
            Err(err) => TocResponse::Internal(ErrorDetail::json(internal(&err))),
        }
    }

    /// The quality gates of the book's last run
    ///
    /// Each gate with what it measured, its threshold and whether it passed. A failed gate
    /// marks the book `needs_review`; the job itself still succeeds.
    #[oai(
        path = "/books/:book_id/quality",
        method = "get",
        tag = "ApiTags::Books",
        operation_id = "get_quality"
    )]
    async fn quality(&self, state: Data<&AppState>, book_id: Path<String>) -> QualityResponse {
        let result = async {
            let Some(book) = find_book(&state, &book_id).await? else {
                return Ok(None);
            };
            let gates = state.backends.catalog.quality(&book.id).await?;
            Ok::<_, anyhow::Error>(Some(BookQuality {
                book_id: book.id,
                status: book.status,
                job_id: gates.first().map(|gate| gate.job_id.clone()),
                passed: gates.iter().all(|gate| gate.passed),
                gates: gates
                    .into_iter()
                    .map(|gate| QualityGate {
                        gate: gate.gate,
                        metric: gate.metric,
                        threshold: gate.threshold,
                        passed: gate.passed,
                        detail: gate.detail,
                    })
                    .collect(),
            }))
        }
        .await;
        match result {
            Ok(Some(quality)) => QualityResponse::Ok(Json(quality)),
            Ok(None) => QualityResponse::NotFound(ErrorDetail::json(BOOK_NOT_FOUND)),
            Err(err) => QualityResponse::Internal(ErrorDetail::json(internal(&err))),
        }
    }

    /// The book's back-of-book index (every index it has), nested by sub-entry
    #[oai(
        path = "/books/:book_id/index",
        method = "get",
        tag = "ApiTags::Books",
        operation_id = "get_index"
    )]
    async fn index(
        &self,
        state: Data<&AppState>,
        book_id: Path<String>,
        /// Only entries whose term (or a sub-entry's) contains this text, case-insensitively.
        #[oai(validator(max_length = 200))]
        q: Query<Option<String>>,
    ) -> IndexResponse {
        match book_index(&state, &book_id, q.0.as_deref()).await {
            Ok(Some(index)) => IndexResponse::Ok(Json(index)),
            Ok(None) => IndexResponse::NotFound(ErrorDetail::json(BOOK_NOT_FOUND)),
            Err(err) => IndexResponse::Internal(ErrorDetail::json(internal(&err))),
        }
    }

    /// One page: printed label, text, section path and index terms
    #[oai(
        path = "/books/:book_id/pages/:number",
        method = "get",
        tag = "ApiTags::Books",
        operation_id = "get_page"
    )]
    async fn page(
        &self,
        state: Data<&AppState>,
        book_id: Path<String>,
        /// 1-based physical page number.
        #[oai(validator(minimum(value = "1")))]
        number: Path<u32>,
    ) -> PageResponse {
        match book_page(&state, &book_id, number.0).await {
            Ok(Ok(page)) => PageResponse::Ok(Json(page)),
            Ok(Err(detail)) => PageResponse::NotFound(ErrorDetail::json(detail)),
            Err(err) => PageResponse::Internal(ErrorDetail::json(internal(&err))),
        }
    }
}

fn default_limit() -> u64 {
    100
}

async fn find_book(state: &AppState, raw_id: &str) -> anyhow::Result<Option<book::Model>> {
    match parse_id(raw_id) {
        Some(id) => state.backends.catalog.book(&id).await,
        None => Ok(None),
    }
}

enum DeleteOutcome {
    Deleted,
    NotFound,
    Busy,
}

async fn delete_book(state: &AppState, raw_id: &str) -> anyhow::Result<DeleteOutcome> {
    let Some(book) = find_book(state, raw_id).await? else {
        return Ok(DeleteOutcome::NotFound);
    };
    let backends = &state.backends;
    // Queued and retrying jobs end here, in a statement a worker's claim cannot slip past:
    // nothing writes to the book once it is being deleted.
    if !backends.jobs.stop_for_delete(&book.id).await? {
        return Ok(DeleteOutcome::Busy);
    }
    backends.text.delete_book(&book.id).await?;
    backends.vectors.delete_book(&book.id).await?;
    backends.graph.delete_book(&book.id).await?;
    backends.catalog.delete_book(&book.id).await?;
    // The blob is shared by every book with the same content: remove it with the last one.
    if let Some(hash) = book.content_hash.as_deref().and_then(|h| h.parse::<ContentHash>().ok())
        && backends.catalog.books_with_content(hash.as_str()).await?.is_empty()
    {
        backends.blobs.delete(&hash).await?;
    }
    Ok(DeleteOutcome::Deleted)
}

/// Streams the upload into a scratch file while hashing it, so a large book never sits
/// in memory, then stores it content-addressed and commits the job.
async fn upload(state: &AppState, raw_id: &str, reprocess: bool, file: Upload) -> anyhow::Result<UploadResponse> {
    let Some(book) = find_book(state, raw_id).await? else {
        return Ok(UploadResponse::NotFound(ErrorDetail::json(BOOK_NOT_FOUND)));
    };
    let backends = &state.backends;
    if let Some(job) = backends.jobs.latest_for_book(&book.id).await? {
        let job_state: Option<JobState> = job.state.parse().ok();
        if matches!(job_state, Some(JobState::Queued | JobState::Running | JobState::Failed)) {
            return Ok(UploadResponse::Conflict(ErrorDetail::json(format!(
                "job {} for this book is still {}; wait for it or cancel it",
                job.id, job.state
            ))));
        }
    }
    let original_name = file.file_name().map(sanitize_file_name);
    let limit = state.settings.max_upload_bytes();
    let scratch = tempfile::NamedTempFile::new_in(backends.scratch.path())?;
    let mut output = tokio::fs::File::create(scratch.path()).await?;
    let mut input = file.into_async_read();
    let mut hasher = Sha256::new();
    let mut head = Vec::with_capacity(1024);
    let mut size: u64 = 0;
    let mut buffer = vec![0u8; 1 << 16];
    loop {
        let read = input.read(&mut buffer).await?;
        if read == 0 {
            break;
        }
        size += read as u64;
        if size > limit {
            return Ok(UploadResponse::TooLarge(ErrorDetail::json(format!(
                "the file is larger than the upload limit of {} MB",
                state.settings.limits.max_upload_mb
            ))));
        }
        if head.len() < 1024 {
            head.extend_from_slice(&buffer[..read.min(1024 - head.len())]);
        }
        hasher.update(&buffer[..read]);
        output.write_all(&buffer[..read]).await?;
    }
    output.flush().await?;
    drop(output);
    if let Err(err) = hbi_extraction::validate_header(&head) {
        return Ok(UploadResponse::BadFile(ErrorDetail::json(err.to_string())));
    }
    let hash = ContentHash::from_digest(&hasher.finalize());

    if !reprocess
        && book.content_hash.as_deref() == Some(hash.as_str())
        && let Some(job) = backends.jobs.latest_for_book(&book.id).await?
        && job.state == JobState::Succeeded.as_str()
    {
        return Ok(UploadResponse::AlreadyProcessed(Json(accepted(book, &job))));
    }

    if let Err(err) = backends.blobs.put_file(&hash, scratch.path()).await {
        tracing::warn!(book_id = %book.id, error = %format!("{err:#}"), "upload refused: the blob store is unavailable");
        return Ok(UploadResponse::Unavailable(ErrorDetail::json(format!(
            "the {} blob store is unavailable; nothing was stored, try again later",
            backends.blobs.kind()
        ))));
    }
    let stored = StoredFile {
        sha256: hash,
        size_bytes: size,
        content_type: "application/pdf".to_owned(),
        original_name,
    };
    let created = backends
        .jobs
        .create_ingest_job(
            &book.id,
            &stored,
            state.settings.worker.max_attempts,
            // The job's spans, in whichever worker runs it, continue this request's trace.
            hbi_shared::trace_context::capture(),
        )
        .await;
    let job = match created {
        Ok(job) => job,
        // Another upload of the book committed its job since the check above.
        Err(err) if err.is::<BookBusy>() => {
            return Ok(UploadResponse::Conflict(ErrorDetail::json(
                "another job for this book is still queued or running; wait for it or cancel it",
            )));
        }
        Err(err) if err.is::<BookGone>() => return Ok(UploadResponse::NotFound(ErrorDetail::json(BOOK_NOT_FOUND))),
        Err(err) => return Err(err),
    };
    // The book's previous file goes with the last book that used it, as on delete; a failure
    // leaves an unused blob behind, never a book without its file.
    if let Some(previous) = book.content_hash.as_deref().and_then(|h| h.parse::<ContentHash>().ok())
        && previous != stored.sha256
        && backends.catalog.books_with_content(previous.as_str()).await?.is_empty()
        && let Err(err) = backends.blobs.delete(&previous).await
    {
        tracing::warn!(book_id = %book.id, error = %format!("{err:#}"), "the replaced file stays in the blob store");
    }
    // The job is committed; enqueue now, or leave it to the outbox relay if the queue is down.
    if let Err(err) = relay::publish(&backends.jobs, backends.queue.as_ref(), &job).await {
        tracing::warn!(job_id = %job.id, error = %format!("{err:#}"), "job left to the outbox relay");
    }
    tracing::info!(book_id = %book.id, job_id = %job.id, bytes = size, "upload accepted");
    let book = backends.catalog.book(&book.id).await?.unwrap_or(book);
    Ok(UploadResponse::Accepted(Json(accepted(book, &job))))
}

fn accepted(book: book::Model, job: &job::Model) -> UploadAccepted {
    UploadAccepted {
        book: book.into(),
        job_id: job.id.clone(),
        status_url: format!("/jobs/{}", job.id),
        status: job.state.clone(),
    }
}

/// Keeps only the last path component, without control characters: a file name is a label,
/// never a path.
fn sanitize_file_name(name: &str) -> String {
    let last = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = last.chars().filter(|c| !c.is_control()).take(255).collect();
    if cleaned.is_empty() || cleaned == "." || cleaned == ".." {
        "upload.pdf".to_owned()
    } else {
        cleaned
    }
}

async fn book_toc(state: &AppState, raw_id: &str) -> anyhow::Result<Option<Vec<TocNode>>> {
    let Some(book) = find_book(state, raw_id).await? else {
        return Ok(None);
    };
    let labels = state.backends.catalog.page_labels(&book.id).await?;
    let chapters = state.backends.graph.chapters(&book.id).await?;
    let flat: Vec<(u32, String, Option<u32>)> = chapters.into_iter().map(|c| (c.level, c.title, c.page)).collect();
    Ok(Some(nest_toc(&flat, &labels)))
}

/// Builds the nested ToC from flat `(level, title, page)` rows in document order.
pub fn nest_toc(flat: &[(u32, String, Option<u32>)], labels: &[String]) -> Vec<TocNode> {
    fn take_children(
        flat: &[(u32, String, Option<u32>)],
        labels: &[String],
        index: &mut usize,
        level: u32,
    ) -> Vec<TocNode> {
        let mut nodes = Vec::new();
        while let Some((entry_level, title, page)) = flat.get(*index) {
            if *entry_level < level {
                break;
            }
            *index += 1;
            let children = take_children(flat, labels, index, entry_level + 1);
            nodes.push(TocNode {
                title: title.clone(),
                page_number: *page,
                page_label: page.and_then(|p| labels.get((p as usize).checked_sub(1)?).cloned()),
                level: *entry_level,
                children,
            });
        }
        nodes
    }
    let mut index = 0;
    let mut roots = Vec::new();
    while index < flat.len() {
        let level = flat[index].0;
        roots.extend(take_children(flat, labels, &mut index, level));
    }
    roots
}

async fn book_page(state: &AppState, raw_id: &str, number: u32) -> anyhow::Result<Result<PageView, String>> {
    let Some(book) = find_book(state, raw_id).await? else {
        return Ok(Err(BOOK_NOT_FOUND.to_owned()));
    };
    let Some(page) = state.backends.catalog.page(&book.id, number).await? else {
        return Ok(Err(format!(
            "page {number} not found; the book has {} pages",
            book.page_count.unwrap_or(0)
        )));
    };
    let toc = state.backends.catalog.toc(&book.id).await?;
    let index_terms = state
        .backends
        .catalog
        .index_entries_on_page(&book.id, number)
        .await?
        .iter()
        .map(|entry| json_strings(&entry.path).join(", "))
        .collect();
    Ok(Ok(PageView {
        book_id: book.id,
        number,
        label: page.label,
        text: page.text,
        section_path: section_path(&toc, number),
        index_terms,
    }))
}

fn json_strings(raw: &str) -> Vec<String> {
    serde_json::from_str(raw).unwrap_or_default()
}

async fn book_index(
    state: &AppState,
    raw_id: &str,
    query: Option<&str>,
) -> anyhow::Result<Option<Vec<IndexEntryView>>> {
    let Some(book) = find_book(state, raw_id).await? else {
        return Ok(None);
    };
    let labels = state.backends.catalog.page_labels(&book.id).await?;
    let label = |page: i32| labels.get(usize::try_from(page).ok()?.checked_sub(1)?).cloned();
    let rows = state.backends.catalog.index_entries(&book.id).await?;
    let flat: Vec<(usize, IndexEntryView)> = rows
        .into_iter()
        .map(|(entry, locators)| {
            let depth = usize::try_from(entry.depth).unwrap_or(1).max(1);
            let view = IndexEntryView {
                term: entry.term,
                index_name: entry.index_name,
                printed_pages: json_strings(&entry.printed),
                pages: locators
                    .iter()
                    .map(|l| PageRange {
                        first_page: u32::try_from(l.first_page).unwrap_or(0),
                        last_page: u32::try_from(l.last_page).unwrap_or(0),
                        first_label: label(l.first_page),
                        last_label: label(l.last_page),
                    })
                    .collect(),
                see: json_strings(&entry.see),
                see_also: json_strings(&entry.see_also),
                subentries: Vec::new(),
            };
            (depth, view)
        })
        .collect();
    let tree = nest_index(flat);
    Ok(Some(match query.map(str::trim).filter(|q| !q.is_empty()) {
        Some(q) => filter_index(tree, &q.to_lowercase()),
        None => tree,
    }))
}

/// Nests index rows (depth, entry) given in document order: each row becomes a sub-entry
/// of the nearest earlier row one level up.
fn nest_index(flat: Vec<(usize, IndexEntryView)>) -> Vec<IndexEntryView> {
    let mut roots: Vec<IndexEntryView> = Vec::new();
    // The open branch: the chain of last entries at depths 1, 2, ...
    let mut open: Vec<IndexEntryView> = Vec::new();
    let close = |open: &mut Vec<IndexEntryView>, roots: &mut Vec<IndexEntryView>| {
        if let Some(done) = open.pop() {
            match open.last_mut() {
                Some(parent) => parent.subentries.push(done),
                None => roots.push(done),
            }
        }
    };
    for (depth, entry) in flat {
        while open.len() >= depth {
            close(&mut open, &mut roots);
        }
        open.push(entry);
    }
    while !open.is_empty() {
        close(&mut open, &mut roots);
    }
    roots
}

/// Keeps entries whose term contains `needle`, with all their sub-entries, and the parents
/// of matching sub-entries (with only the matching branches).
fn filter_index(entries: Vec<IndexEntryView>, needle: &str) -> Vec<IndexEntryView> {
    entries
        .into_iter()
        .filter_map(|mut entry| {
            if entry.term.to_lowercase().contains(needle) {
                return Some(entry);
            }
            entry.subentries = filter_index(std::mem::take(&mut entry.subentries), needle);
            (!entry.subentries.is_empty()).then_some(entry)
        })
        .collect()
}

/// Titles of the ToC entries that enclose `page`: the last entry starting on or before the
/// page at each level, outermost first.
fn section_path(toc: &[toc_entry::Model], page: u32) -> Vec<String> {
    let mut path: Vec<(i32, String)> = Vec::new();
    for entry in toc {
        let Some(start) = entry.page else { continue };
        if i64::from(start) > i64::from(page) {
            break;
        }
        while path.last().is_some_and(|(level, _)| *level >= entry.level) {
            path.pop();
        }
        path.push((entry.level, entry.title.clone()));
    }
    path.into_iter().map(|(_, title)| title).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_follows_levels_and_labels_follow_pages() {
        let flat = vec![
            (1, "A".to_owned(), Some(1)),
            (2, "A.1".to_owned(), Some(2)),
            (3, "A.1.a".to_owned(), Some(2)),
            (1, "B".to_owned(), Some(3)),
            (2, "B.1".to_owned(), None),
        ];
        let labels = vec!["i".to_owned(), "1".to_owned(), "2".to_owned()];
        let toc = nest_toc(&flat, &labels);
        assert_eq!(toc.len(), 2);
        assert_eq!(toc[0].children[0].children[0].title, "A.1.a");
        assert_eq!(toc[0].page_label.as_deref(), Some("i"));
        assert_eq!(toc[1].page_label.as_deref(), Some("2"));
        assert_eq!(toc[1].children[0].page_label, None);
    }

    fn entry(term: &str) -> IndexEntryView {
        IndexEntryView {
            term: term.to_owned(),
            index_name: "Index".to_owned(),
            printed_pages: Vec::new(),
            pages: Vec::new(),
            see: Vec::new(),
            see_also: Vec::new(),
            subentries: Vec::new(),
        }
    }

    #[test]
    fn index_rows_nest_by_depth_and_filter_keeps_matching_branches() {
        let flat = vec![
            (1, entry("arrays")),
            (2, entry("indexing")),
            (3, entry("negative")),
            (2, entry("slicing")),
            (1, entry("vectors")),
        ];
        let tree = nest_index(flat);
        assert_eq!(tree.len(), 2);
        assert_eq!(tree[0].subentries.len(), 2);
        assert_eq!(tree[0].subentries[0].subentries[0].term, "negative");
        let found = filter_index(tree.clone(), "slic");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].term, "arrays");
        assert_eq!(found[0].subentries.len(), 1, "only the matching branch");
        assert_eq!(filter_index(tree, "VECTOR".to_lowercase().as_str())[0].term, "vectors");
    }

    #[test]
    fn file_names_lose_their_paths() {
        assert_eq!(sanitize_file_name("../../etc/passwd"), "passwd");
        assert_eq!(sanitize_file_name("C:\\books\\r.pdf"), "r.pdf");
        assert_eq!(sanitize_file_name(".."), "upload.pdf");
        assert_eq!(sanitize_file_name("a\u{0}b.pdf"), "ab.pdf");
    }
}
