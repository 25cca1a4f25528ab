use hbi_shared::LibraryError;
use hbi_shared::access::Principal;
use hbi_shared::db::entities::{book, job};
use hbi_shared::domain::BookId;
use hbi_shared::library::{self, NewBook, UploadOutcome};
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::types::multipart::Upload;
use poem_openapi::{ApiResponse, Multipart, Object, OpenApi};

use super::ApiTags;
use crate::AppState;
use crate::error::{ApiError, status};

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
    /// The languages OCR reads the book's scanned pages with, as Tesseract names them, joined
    /// by `+` (`eng`, `deu+eng`).
    pub language: String,
    /// The library the book belongs to (`default` unless made in another).
    pub library_id: String,
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
            status: m.status.to_string(),
            content_hash: m.content_hash,
            page_count: m.page_count,
            toc_source: m.toc_source,
            language: m.language,
            library_id: m.library_id,
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
    /// The book's languages, for OCR of its scanned pages: ISO 639-1 or 639-2 codes joined by
    /// `+` (`en`, `deu`, `eng+deu`, `chi_sim`); absent or null: English. Stored as Tesseract
    /// names them.
    #[oai(nullable, validator(max_length = 100))]
    pub language: Option<String>,
    /// The library the book goes to, where the key needs the write scope; absent or null:
    /// `default`.
    #[oai(nullable, validator(max_length = 64))]
    pub library_id: Option<String>,
}

#[derive(Debug, Multipart)]
pub struct UploadForm {
    /// The book: a PDF, an EPUB (2 or 3) or a DjVu document, told apart by its bytes, not
    /// its name.
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

/// One quality gate's verdict.
#[derive(Debug, Clone, Object)]
pub struct QualityGate {
    /// `text_coverage`, `garbage_ratio`, `toc_sanity`, `index_locator_support`, `index_structure`,
    /// `ocr_confidence` (books read by OCR) or `chunk_vector_consistency`.
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

/// A new book.
#[derive(ApiResponse)]
pub enum CreatedBook {
    #[oai(status = 201)]
    Created(Json<Book>),
}

/// The book is gone.
#[derive(ApiResponse)]
pub enum DeletedBook {
    /// The book, its file, rows, index and graph are gone.
    #[oai(status = 204)]
    Deleted,
}

#[derive(ApiResponse)]
pub enum UploadResponse {
    /// The same content was processed before; this is its result.
    #[oai(status = 200)]
    AlreadyProcessed(Json<UploadAccepted>),
    /// Stored and queued; poll `status_url`.
    #[oai(status = 202)]
    Accepted(Json<UploadAccepted>),
}

/// Largest page a book may list at once.
const MAX_LIST_LIMIT: u64 = 1000;

/// What a lookup of one book can answer besides its result.
type LookupError = ApiError<{ status::NOT_FOUND }>;

#[OpenApi]
impl BooksApi {
    /// Create a book (metadata only; upload its PDF next)
    #[oai(
        path = "/books/",
        method = "post",
        tag = "ApiTags::Books",
        operation_id = "create_book"
    )]
    async fn create(
        &self,
        state: Data<&AppState>,
        caller: Data<&Principal>,
        body: Json<BookCreate>,
    ) -> Result<CreatedBook, ApiError<{ status::NOT_FOUND | status::INVALID }>> {
        let book = state
            .library
            .create_book(
                &caller,
                NewBook {
                    library: body.library_id.as_deref(),
                    title: &body.title,
                    author: body.author.as_deref(),
                    language: body.language.as_deref(),
                },
            )
            .await?;
        Ok(CreatedBook::Created(Json(book.into())))
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
        caller: Data<&Principal>,
        /// Only the books of this library (which the key must reach).
        #[oai(validator(max_length = 64))]
        library_id: Query<Option<String>>,
        /// How many books to skip.
        #[oai(default)]
        skip: Query<u64>,
        /// How many books to return (at most 1000).
        #[oai(default = "default_limit", validator(minimum(value = "1"), maximum(value = "1000")))]
        limit: Query<u64>,
    ) -> Result<Json<Vec<Book>>, ApiError<{ status::NOT_FOUND }>> {
        let books = state
            .library
            .books(&caller, library_id.0.as_deref(), skip.0, limit.0.min(MAX_LIST_LIMIT))
            .await?;
        Ok(Json(books.into_iter().map(Book::from).collect()))
    }

    /// One book
    #[oai(
        path = "/books/:book_id",
        method = "get",
        tag = "ApiTags::Books",
        operation_id = "get_book"
    )]
    async fn get(
        &self,
        state: Data<&AppState>,
        caller: Data<&Principal>,
        book_id: Path<String>,
    ) -> Result<Json<Book>, LookupError> {
        let book = state.library.book(&caller, &parse_book_id(&book_id)?).await?;
        Ok(Json(book.into()))
    }

    /// Delete a book with its file, pages, ToC, index entries, search index and graph
    ///
    /// Answers 409 while a job is processing the book: cancel it first.
    #[oai(
        path = "/books/:book_id",
        method = "delete",
        tag = "ApiTags::Books",
        operation_id = "delete_book"
    )]
    async fn delete(
        &self,
        state: Data<&AppState>,
        caller: Data<&Principal>,
        book_id: Path<String>,
    ) -> Result<DeletedBook, ApiError<{ status::NOT_FOUND | status::CONFLICT }>> {
        state.library.delete_book(&caller, &parse_book_id(&book_id)?).await?;
        Ok(DeletedBook::Deleted)
    }

    /// Upload the book's file (PDF, EPUB or DjVu) and queue its processing
    ///
    /// The kind of file is read from its first bytes; anything else is a 400 naming the
    /// accepted types.
    /// Answers 202 with the job to poll. Uploading the same content again answers 200 with
    /// the existing result, unless `reprocess=true`. 409 while a job for the book is still
    /// queued or running; 503 when the blob store cannot take the file (nothing was recorded).
    #[oai(
        path = "/books/:book_id/upload",
        method = "post",
        tag = "ApiTags::Books",
        operation_id = "upload_book"
    )]
    async fn upload(
        &self,
        state: Data<&AppState>,
        caller: Data<&Principal>,
        book_id: Path<String>,
        /// Process the file again even if this content was processed before.
        #[oai(default)]
        reprocess: Query<bool>,
        form: UploadForm,
    ) -> Result<
        UploadResponse,
        ApiError<
            { status::BAD_REQUEST | status::NOT_FOUND | status::CONFLICT | status::TOO_LARGE | status::UNAVAILABLE },
        >,
    > {
        let id = parse_book_id(&book_id)?;
        let upload = library::Upload {
            file_name: form.file.file_name().map(str::to_owned),
            body: form.file.into_async_read(),
            reprocess: reprocess.0,
        };
        Ok(match state.library.upload(&caller, &id, upload).await? {
            UploadOutcome::Queued { book, job } => UploadResponse::Accepted(Json(accepted(book, &job))),
            UploadOutcome::AlreadyProcessed { book, job } => {
                UploadResponse::AlreadyProcessed(Json(accepted(book, &job)))
            }
        })
    }

    /// The book's table of contents, nested
    #[oai(
        path = "/books/:book_id/toc",
        method = "get",
        tag = "ApiTags::Books",
        operation_id = "get_toc"
    )]
    async fn toc(
        &self,
        state: Data<&AppState>,
        caller: Data<&Principal>,
        book_id: Path<String>,
    ) -> Result<Json<Vec<TocNode>>, LookupError> {
        let toc = state.library.toc(&caller, &parse_book_id(&book_id)?).await?;
        Ok(Json(toc.into_iter().map(TocNode::from).collect()))
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
    async fn quality(
        &self,
        state: Data<&AppState>,
        caller: Data<&Principal>,
        book_id: Path<String>,
    ) -> Result<Json<BookQuality>, LookupError> {
        let quality = state.library.quality(&caller, &parse_book_id(&book_id)?).await?;
        Ok(Json(quality.into()))
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
        caller: Data<&Principal>,
        book_id: Path<String>,
        /// Only entries whose term (or a sub-entry's) contains this text, case-insensitively.
        #[oai(validator(max_length = 200))]
        q: Query<Option<String>>,
    ) -> Result<Json<Vec<IndexEntryView>>, LookupError> {
        let index = state
            .library
            .index(&caller, &parse_book_id(&book_id)?, q.0.as_deref())
            .await?;
        Ok(Json(index.into_iter().map(IndexEntryView::from).collect()))
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
        caller: Data<&Principal>,
        book_id: Path<String>,
        /// 1-based physical page number.
        #[oai(validator(minimum(value = "1")))]
        number: Path<u32>,
    ) -> Result<Json<PageView>, LookupError> {
        let page = state.library.page(&caller, &parse_book_id(&book_id)?, number.0).await?;
        Ok(Json(page.into()))
    }

    /// The page printed with a label ("xiv", "143"): as GET /books/{book_id}/pages/{number}
    ///
    /// Case and surrounding spaces aside; the first page if several share the label. 404
    /// when no page has it.
    #[oai(
        path = "/books/:book_id/labels/:label",
        method = "get",
        tag = "ApiTags::Books",
        operation_id = "get_page_by_label"
    )]
    async fn page_by_label(
        &self,
        state: Data<&AppState>,
        caller: Data<&Principal>,
        book_id: Path<String>,
        /// The page number as printed.
        #[oai(validator(min_length = 1, max_length = 50))]
        label: Path<String>,
    ) -> Result<Json<PageView>, LookupError> {
        let page = state
            .library
            .page_labelled(&caller, &parse_book_id(&book_id)?, &label.0)
            .await?;
        Ok(Json(page.into()))
    }

    /// One page as an image, for reading beside its text
    ///
    /// A PNG 1200 pixels wide, drawn from the book's original on the first request and kept
    /// in the blob store; `ETag` names the drawing, so a browser revalidates with
    /// `If-None-Match` and gets a 304. An EPUB has no page images (404).
    #[oai(
        path = "/books/:book_id/pages/:number/image",
        method = "get",
        tag = "ApiTags::Books",
        operation_id = "get_page_image"
    )]
    async fn page_image(
        &self,
        state: Data<&AppState>,
        caller: Data<&Principal>,
        book_id: Path<String>,
        /// 1-based physical page number.
        #[oai(validator(minimum(value = "1")))]
        number: Path<u32>,
        /// The `ETag` of a copy the client has.
        #[oai(name = "If-None-Match")]
        if_none_match: poem_openapi::param::Header<Option<String>>,
    ) -> Result<PageImageResponse, LookupError> {
        let image = state
            .library
            .page_image(&caller, &parse_book_id(&book_id)?, number.0)
            .await?;
        let cache = "private, max-age=86400".to_owned();
        if if_none_match
            .0
            .as_deref()
            .is_some_and(|seen| seen.split(',').any(|tag| tag.trim() == image.etag))
        {
            return Ok(PageImageResponse::NotModified(image.etag, cache));
        }
        Ok(PageImageResponse::Image(
            poem_openapi::payload::Binary(image.png),
            image.etag,
            cache,
        ))
    }

    /// The words printed on a page, each with its box on the page's image
    ///
    /// For marking a search hit on GET /books/{book_id}/pages/{number}/image: boxes are
    /// fractions of the page, located by the library that draws the image, or read by OCR
    /// in the book's languages on a page without a text layer. An EPUB has no page images
    /// (404).
    #[oai(
        path = "/books/:book_id/pages/:number/words",
        method = "get",
        tag = "ApiTags::Books",
        operation_id = "get_page_words"
    )]
    async fn page_words(
        &self,
        state: Data<&AppState>,
        caller: Data<&Principal>,
        book_id: Path<String>,
        /// 1-based physical page number.
        #[oai(validator(minimum(value = "1")))]
        number: Path<u32>,
    ) -> Result<Json<PageWords>, LookupError> {
        let id = parse_book_id(&book_id)?;
        let words = state.library.page_words(&caller, &id, number.0).await?;
        Ok(Json(PageWords {
            book_id: id.to_string(),
            number: number.0,
            aspect: words.aspect,
            words: words
                .words
                .into_iter()
                .map(|word| WordBox {
                    text: word.text,
                    x0: word.x0,
                    y0: word.y0,
                    x1: word.x1,
                    y1: word.y1,
                })
                .collect(),
        }))
    }
}

/// One word printed on a page and its box on the page's image, in fractions of the page
/// from its top left (multiply by the image's width and height).
#[derive(Debug, Object)]
pub struct WordBox {
    pub text: String,
    pub x0: f32,
    pub y0: f32,
    pub x1: f32,
    pub y1: f32,
}

/// The words of a page with their boxes.
#[derive(Debug, Object)]
pub struct PageWords {
    pub book_id: String,
    pub number: u32,
    /// The page's width over its height.
    pub aspect: f32,
    /// In reading order.
    pub words: Vec<WordBox>,
}

#[derive(ApiResponse)]
pub enum PageImageResponse {
    /// The page as a PNG.
    #[oai(status = 200, content_type = "image/png")]
    Image(
        poem_openapi::payload::Binary<Vec<u8>>,
        /// Names this drawing of the page.
        #[oai(header = "ETag")]
        String,
        #[oai(header = "Cache-Control")] String,
    ),
    /// The client's copy (`If-None-Match`) is this drawing.
    #[oai(status = 304)]
    NotModified(#[oai(header = "ETag")] String, #[oai(header = "Cache-Control")] String),
}

fn default_limit() -> u64 {
    100
}

/// A book id from a path: one that is not a UUID names no book.
pub fn parse_book_id(raw: &str) -> Result<BookId, LibraryError> {
    raw.parse().map_err(|_| LibraryError::BookNotFound)
}

fn accepted(book: book::Model, job: &job::Model) -> UploadAccepted {
    UploadAccepted {
        book: book.into(),
        job_id: job.id.clone(),
        status_url: format!("/jobs/{}", job.id),
        status: job.state.to_string(),
    }
}

impl From<library::TocNode> for TocNode {
    fn from(node: library::TocNode) -> Self {
        Self {
            title: node.title,
            page_number: node.page_number,
            page_label: node.page_label,
            level: node.level,
            children: node.children.into_iter().map(Self::from).collect(),
        }
    }
}

impl From<library::IndexNode> for IndexEntryView {
    fn from(node: library::IndexNode) -> Self {
        Self {
            term: node.term,
            index_name: node.index_name,
            printed_pages: node.printed_pages,
            pages: node
                .pages
                .into_iter()
                .map(|range| PageRange {
                    first_page: range.first_page,
                    last_page: range.last_page,
                    first_label: range.first_label,
                    last_label: range.last_label,
                })
                .collect(),
            see: node.see,
            see_also: node.see_also,
            subentries: node.subentries.into_iter().map(Self::from).collect(),
        }
    }
}

impl From<library::PageView> for PageView {
    fn from(page: library::PageView) -> Self {
        Self {
            book_id: page.book_id,
            number: page.number,
            label: page.label,
            text: page.text,
            section_path: page.section_path,
            index_terms: page.index_terms,
        }
    }
}

impl From<library::BookQuality> for BookQuality {
    fn from(quality: library::BookQuality) -> Self {
        Self {
            book_id: quality.book.id,
            status: quality.book.status.to_string(),
            job_id: quality.job_id,
            passed: quality.passed,
            gates: quality
                .gates
                .into_iter()
                .map(|gate| QualityGate {
                    gate: gate.gate,
                    metric: gate.metric,
                    threshold: gate.threshold,
                    passed: gate.passed,
                    detail: gate.detail,
                })
                .collect(),
        }
    }
}
