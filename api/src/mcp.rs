//! The MCP door (Model Context Protocol, through the official Rust SDK `rmcp`): the library's
//! reading, finding and asking use cases as tools, its books and pages as resources. The
//! same server is mounted at `/mcp` on the API (streamable HTTP, stateless, so any replica
//! answers any request) and run over stdin/stdout by `hbi mcp` for desktop clients.
//!
//! Like every door it only parses, calls [`Library`] and maps. Who may do what follows the
//! API keys: over HTTP the access middleware has checked the request's key (any scope opens
//! `/mcp`) and left its [`Principal`] on the request; over stdio the key of `HBI_API_KEY` is
//! the caller's for the whole session. `ask` needs the write scope, as `POST /query` does.
//! Every result that names a page cites its book, its physical page and its printed label.

use std::sync::Arc;

use hbi_shared::LibraryError;
use hbi_shared::access::{Principal, Scope};
use hbi_shared::domain::BookId;
use hbi_shared::library::{
    Ask, IndexNode, Library, MAX_TERM_RESULTS, PageQuery, PageRange, PageView, TermQuery, TocNode,
};
use hbi_shared::search::SearchMode;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::IntoCallToolResult;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CallToolResponse, CallToolResult, ContentBlock, Implementation, ListResourceTemplatesResult, ListResourcesResult,
    PaginatedRequestParams, ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult, Resource,
    ResourceContents, ResourceTemplate, ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, Json, RoleServer, ServerHandler, tool, tool_handler, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

/// Books listed as resources, at most.
const MAX_LISTED_BOOKS: u64 = 1000;

/// What the server tells a client about itself when it connects.
const INSTRUCTIONS: &str = "HBI (Hybrid Book Index) holds books with their printed structure: \
the table of contents, the back-of-book index (terms, sub-terms, see / see also) and printed page \
labels. list_books names the books; search finds pages by keyword, meaning or both; toc and \
index_lookup navigate a book's own structure; get_page reads one page (by physical number or by \
its printed label, e.g. \"xiv\"); ask answers a question with claims cited to pages. Cite pages \
by their printed label.";

/// Why a tool call failed: a refusal the caller can read and act on (a tool error result),
/// or a fault of the server (a protocol error; the log has its detail).
#[derive(Debug)]
pub enum ToolFailure {
    Refused(String),
    Internal(String),
}

impl From<LibraryError> for ToolFailure {
    fn from(err: LibraryError) -> Self {
        match err {
            LibraryError::Internal(err) => {
                tracing::error!(error = %format!("{err:#}"), "an MCP tool failed");
                Self::Internal("internal error; the server log has its detail".to_owned())
            }
            other => Self::Refused(other.to_string()),
        }
    }
}

impl IntoCallToolResult for ToolFailure {
    fn into_call_tool_result(self) -> Result<CallToolResponse, ErrorData> {
        match self {
            Self::Refused(message) => Ok(CallToolResult::error(vec![ContentBlock::text(message)]).into()),
            Self::Internal(message) => Err(ErrorData::internal_error(message, None)),
        }
    }
}

type ToolResult<T> = Result<Json<T>, ToolFailure>;

/// A book id from a tool's arguments: one that is not a UUID names no book.
fn book_id(raw: &str) -> Result<BookId, ToolFailure> {
    raw.trim()
        .parse()
        .map_err(|_| ToolFailure::Refused(LibraryError::BookNotFound.to_string()))
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ListBooksArgs {
    /// How many books to skip (newest first), default 0.
    #[serde(default)]
    pub skip: u64,
    /// How many books to return, 1 to 1000, default 100.
    #[serde(default)]
    pub limit: Option<u64>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct BookSummary {
    pub book_id: String,
    pub title: String,
    pub author: Option<String>,
    /// `created`, `processing`, `ready`, `needs_review` or `failed`.
    pub status: String,
    pub pages: Option<i32>,
    /// Tesseract's names of the book's languages (`eng`, `deu+eng`).
    pub language: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Books {
    pub books: Vec<BookSummary>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Full-text ranking.
    Keyword,
    /// Nearest chunks by meaning (needs an embedding model).
    Semantic,
    /// Both, fused (the default).
    #[default]
    Hybrid,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct SearchArgs {
    /// What to look for.
    pub query: String,
    #[serde(default)]
    pub mode: Mode,
    /// Only this book (its id, from list_books).
    #[serde(default)]
    pub book_id: Option<String>,
    /// How many pages to return, 1 to 50, default 10.
    #[serde(default)]
    pub k: Option<u32>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct SearchHitView {
    pub book_id: String,
    /// 1-based physical page.
    pub page: u32,
    /// The page number printed on the page.
    pub page_label: String,
    /// ToC titles from the chapter down to the section.
    pub section_path: Vec<String>,
    /// Text around the match, matches in <b>..</b>.
    pub snippet: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct SearchHits {
    pub results: Vec<SearchHitView>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct BookArgs {
    /// The book's id, from list_books.
    pub book_id: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct TocEntryView {
    pub title: String,
    /// 1 for chapters, 2 for their sections, and so on.
    pub level: u32,
    /// 1-based physical page, when known.
    pub page: Option<u32>,
    /// The page number as printed.
    pub page_label: Option<String>,
    pub children: Vec<TocEntryView>,
}

impl From<TocNode> for TocEntryView {
    fn from(node: TocNode) -> Self {
        Self {
            title: node.title,
            level: node.level,
            page: node.page_number,
            page_label: node.page_label,
            children: node.children.into_iter().map(Self::from).collect(),
        }
    }
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Toc {
    pub book_id: String,
    pub entries: Vec<TocEntryView>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct IndexLookupArgs {
    /// The term, as a reader would look it up ("vector", "assignment operator").
    pub term: String,
    /// Only this book's index; without it, every book's.
    #[serde(default)]
    pub book_id: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct PagesView {
    pub first_page: u32,
    pub last_page: u32,
    pub first_label: Option<String>,
    pub last_label: Option<String>,
}

impl From<PageRange> for PagesView {
    fn from(range: PageRange) -> Self {
        Self {
            first_page: range.first_page,
            last_page: range.last_page,
            first_label: range.first_label,
            last_label: range.last_label,
        }
    }
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct IndexEntryView {
    pub book_id: String,
    pub term: String,
    /// The entry's path, top-level term first (a sub-entry has two or more).
    pub path: Vec<String>,
    /// Physical page ranges the index lists, with their printed labels.
    pub pages: Vec<PagesView>,
    /// Where "see" sends the reader.
    pub see: Vec<String>,
    pub see_also: Vec<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct IndexEntries {
    pub entries: Vec<IndexEntryView>,
}

/// A book's index nodes, flattened with their paths.
fn flatten_index(book_id: &str, nodes: Vec<IndexNode>, parents: &[String], out: &mut Vec<IndexEntryView>) {
    for node in nodes {
        let mut path = parents.to_vec();
        path.push(node.term.clone());
        out.push(IndexEntryView {
            book_id: book_id.to_owned(),
            term: node.term,
            path: path.clone(),
            pages: node.pages.into_iter().map(PagesView::from).collect(),
            see: node.see,
            see_also: node.see_also,
        });
        flatten_index(book_id, node.subentries, &path, out);
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct GetPageArgs {
    /// The book's id, from list_books.
    pub book_id: String,
    /// 1-based physical page.
    #[serde(default)]
    pub page: Option<u32>,
    /// Or the page's printed label ("xiv", "143").
    #[serde(default)]
    pub label: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct PageText {
    pub book_id: String,
    pub page: u32,
    pub page_label: String,
    pub section_path: Vec<String>,
    /// Index terms whose locators point at the page.
    pub index_terms: Vec<String>,
    pub text: String,
}

impl From<PageView> for PageText {
    fn from(page: PageView) -> Self {
        Self {
            book_id: page.book_id,
            page: page.number,
            page_label: page.label,
            section_path: page.section_path,
            index_terms: page.index_terms,
            text: page.text,
        }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct AskArgs {
    /// The question.
    pub question: String,
    /// Only this book.
    #[serde(default)]
    pub book_id: Option<String>,
    /// Passages retrieved, 1 to 100 (the server's setting otherwise).
    #[serde(default)]
    pub top_k: Option<u32>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct CitedClaim {
    pub text: String,
    pub book_id: String,
    pub page: u32,
    pub page_label: String,
    pub chunk_id: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Answered {
    /// The answer, or none when the gates withheld it.
    pub answer: Option<String>,
    pub claims: Vec<CitedClaim>,
    pub confidence: Option<f64>,
    /// Why no answer was given, in words.
    pub fallback_message: Option<String>,
}

/// The MCP server over one [`Library`].
#[derive(Clone)]
pub struct LibraryMcp {
    library: Library,
    /// The caller for the whole session (stdio); `None` over HTTP, where each request's key
    /// decides.
    session_caller: Option<Principal>,
    tool_router: ToolRouter<Self>,
}

#[tool_router]
impl LibraryMcp {
    pub fn new(library: Library, session_caller: Option<Principal>) -> Self {
        Self {
            library,
            session_caller,
            tool_router: Self::tool_router(),
        }
    }

    /// The caller of this request: the request's key over HTTP, the session's over stdio.
    fn caller(&self, context: &RequestContext<RoleServer>) -> Option<Principal> {
        context
            .extensions
            .get::<poem::http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<Principal>().cloned())
            .or_else(|| self.session_caller.clone())
    }

    /// The caller, when its key has `needed` somewhere; the library it reaches is checked
    /// by each use case.
    fn require(
        &self,
        context: &RequestContext<RoleServer>,
        needed: Scope,
        what: &str,
    ) -> Result<Principal, ToolFailure> {
        match self.caller(context) {
            Some(principal) if principal.scope.includes(needed) => Ok(principal),
            Some(principal) => Err(ToolFailure::Refused(format!(
                "Not enough permissions: this API key has the {} scope, {what} needs {needed}",
                principal.scope
            ))),
            None => Err(ToolFailure::Refused("Not authenticated".to_owned())),
        }
    }

    #[tool(description = "The books in the library, newest first: id, title, author, status, pages.")]
    async fn list_books(
        &self,
        Parameters(args): Parameters<ListBooksArgs>,
        context: RequestContext<RoleServer>,
    ) -> ToolResult<Books> {
        let who = self.require(&context, Scope::Read, "list_books")?;
        let limit = args.limit.unwrap_or(100);
        if !(1..=1000).contains(&limit) {
            return Err(ToolFailure::Refused("limit must be between 1 and 1000".to_owned()));
        }
        let books = self.library.books(&who, None, args.skip, limit).await?;
        Ok(Json(Books {
            books: books
                .into_iter()
                .map(|book| BookSummary {
                    book_id: book.id,
                    title: book.title,
                    author: book.author,
                    status: book.status.to_string(),
                    pages: book.page_count,
                    language: book.language,
                })
                .collect(),
        }))
    }

    #[tool(
        description = "Search the pages of every book, or of one, by keyword, by meaning (semantic) or both (hybrid): each hit with its book, physical page, printed page label, section path and snippet."
    )]
    async fn search(
        &self,
        Parameters(args): Parameters<SearchArgs>,
        context: RequestContext<RoleServer>,
    ) -> ToolResult<SearchHits> {
        let who = self.require(&context, Scope::Read, "search")?;
        if args.query.trim().is_empty() {
            return Err(ToolFailure::Refused("query must not be blank".to_owned()));
        }
        let k = args.k.unwrap_or(10);
        if !(1..=50).contains(&k) {
            return Err(ToolFailure::Refused("k must be between 1 and 50".to_owned()));
        }
        let mode = match args.mode {
            Mode::Keyword => SearchMode::Keyword,
            Mode::Semantic => SearchMode::Semantic,
            Mode::Hybrid => SearchMode::Hybrid,
        };
        let book_id = args.book_id.as_deref().map(book_id).transpose()?;
        let hits = self
            .library
            .search(
                &who,
                PageQuery {
                    text: args.query,
                    mode,
                    book_id,
                    section: None,
                    k: k as usize,
                    index_boost: true,
                },
            )
            .await?;
        Ok(Json(SearchHits {
            results: hits
                .into_iter()
                .map(|hit| SearchHitView {
                    book_id: hit.book_id,
                    page: hit.page,
                    page_label: hit.page_label,
                    section_path: hit.section_path,
                    snippet: hit.snippet,
                })
                .collect(),
        }))
    }

    #[tool(
        description = "A book's table of contents, nested, each entry with its physical page and printed page label."
    )]
    async fn toc(
        &self,
        Parameters(args): Parameters<BookArgs>,
        context: RequestContext<RoleServer>,
    ) -> ToolResult<Toc> {
        let who = self.require(&context, Scope::Read, "toc")?;
        let id = book_id(&args.book_id)?;
        let toc = self.library.toc(&who, &id).await?;
        Ok(Json(Toc {
            book_id: id.as_str().to_owned(),
            entries: toc.into_iter().map(TocEntryView::from).collect(),
        }))
    }

    #[tool(
        description = "Look a term up in the back-of-book index of one book, or of every book: the matching entries and sub-entries with their pages (physical and printed) and see / see also references."
    )]
    async fn index_lookup(
        &self,
        Parameters(args): Parameters<IndexLookupArgs>,
        context: RequestContext<RoleServer>,
    ) -> ToolResult<IndexEntries> {
        let who = self.require(&context, Scope::Read, "index_lookup")?;
        let term = args.term.trim();
        if term.is_empty() {
            return Err(ToolFailure::Refused("term must not be blank".to_owned()));
        }
        let mut entries = Vec::new();
        match args.book_id.as_deref() {
            Some(raw) => {
                let id = book_id(raw)?;
                let nodes = self.library.index(&who, &id, Some(term)).await?;
                flatten_index(id.as_str(), nodes, &[], &mut entries);
            }
            None => {
                let query = TermQuery {
                    text: term.to_owned(),
                    book_id: None,
                    limit: MAX_TERM_RESULTS,
                };
                for found in self.library.find_terms(&who, query).await? {
                    entries.push(IndexEntryView {
                        book_id: found.hit.book_id,
                        term: found.hit.term,
                        path: found.hit.path,
                        pages: found
                            .hit
                            .pages
                            .iter()
                            .zip(found.page_labels)
                            .map(|(&[first_page, last_page], [first_label, last_label])| PagesView {
                                first_page,
                                last_page,
                                first_label: Some(first_label),
                                last_label: Some(last_label),
                            })
                            .collect(),
                        see: Vec::new(),
                        see_also: Vec::new(),
                    });
                }
            }
        }
        Ok(Json(IndexEntries { entries }))
    }

    #[tool(
        description = "One page of a book, by its physical number (page) or its printed label (label, e.g. \"xiv\"): its text, printed label, section path and the index terms that point at it."
    )]
    async fn get_page(
        &self,
        Parameters(args): Parameters<GetPageArgs>,
        context: RequestContext<RoleServer>,
    ) -> ToolResult<PageText> {
        let who = self.require(&context, Scope::Read, "get_page")?;
        let id = book_id(&args.book_id)?;
        let page = match (args.page, args.label.as_deref()) {
            (Some(number), None) => self.library.page(&who, &id, number).await?,
            (None, Some(label)) if !label.trim().is_empty() => self.library.page_labelled(&who, &id, label).await?,
            _ => {
                return Err(ToolFailure::Refused(
                    "give either page (a physical page number) or label (a printed page label)".to_owned(),
                ));
            }
        };
        Ok(Json(page.into()))
    }

    #[tool(
        description = "Ask a question about the books: an answer whose claims each cite a book, physical page and printed label, or the reason none is given (too little relevant text found, low confidence). Needs an API key with the write scope."
    )]
    async fn ask(
        &self,
        Parameters(args): Parameters<AskArgs>,
        context: RequestContext<RoleServer>,
    ) -> ToolResult<Answered> {
        let who = self.require(&context, Scope::Write, "ask")?;
        if let Some(top_k) = args.top_k
            && !(1..=100).contains(&top_k)
        {
            return Err(ToolFailure::Refused("top_k must be between 1 and 100".to_owned()));
        }
        let outcome = self
            .library
            .ask(
                &who,
                Ask {
                    question: args.question,
                    book_id: args.book_id.as_deref().map(book_id).transpose()?,
                    top_k: args.top_k.map(|k| k as usize),
                },
            )
            .await?;
        let book_of = |chunk_id: &str| {
            outcome
                .retrieved
                .iter()
                .find(|(chunk, _)| chunk.chunk_id == chunk_id)
                .map(|(chunk, _)| chunk.book_id.clone())
                .unwrap_or_default()
        };
        let claims = outcome
            .answer
            .as_ref()
            .map(|answer| {
                answer
                    .claims
                    .iter()
                    .map(|claim| CitedClaim {
                        text: claim.text.clone(),
                        book_id: book_of(&claim.source_chunk_id),
                        page: claim.page_number,
                        page_label: claim.page_label.clone(),
                        chunk_id: claim.source_chunk_id.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(Json(Answered {
            answer: outcome.answer.as_ref().map(|answer| answer.answer_summary.clone()),
            confidence: outcome.answer.as_ref().map(|answer| answer.confidence_score),
            claims,
            fallback_message: outcome.fallback_message,
        }))
    }
}

/// A resource URI: `hbi://books/{id}` or `hbi://books/{id}/pages/{n}`.
enum ResourceUri {
    Book(BookId),
    Page(BookId, u32),
}

fn parse_resource_uri(uri: &str) -> Option<ResourceUri> {
    let rest = uri.strip_prefix("hbi://books/")?;
    let mut parts = rest.split('/');
    let id: BookId = parts.next()?.parse().ok()?;
    match (parts.next(), parts.next(), parts.next()) {
        (None, _, _) => Some(ResourceUri::Book(id)),
        (Some("pages"), Some(number), None) => Some(ResourceUri::Page(id, number.parse().ok()?)),
        _ => None,
    }
}

fn json_contents(uri: &str, value: &impl Serialize) -> Result<ReadResourceResponse, ErrorData> {
    let text = serde_json::to_string(value).map_err(|err| ErrorData::internal_error(err.to_string(), None))?;
    Ok(ReadResourceResult::new(vec![
        ResourceContents::text(text, uri).with_mime_type("application/json"),
    ])
    .into())
}

/// A resource read that the library refused, as MCP names it.
fn resource_error(uri: &str, err: LibraryError) -> ErrorData {
    match err {
        LibraryError::Internal(err) => {
            tracing::error!(error = %format!("{err:#}"), "an MCP resource read failed");
            ErrorData::internal_error("internal error; the server log has its detail", None)
        }
        other => ErrorData::resource_not_found(format!("{uri}: {other}"), None),
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for LibraryMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().enable_resources().build())
            .with_server_info(Implementation::new("hbi", env!("CARGO_PKG_VERSION")))
            .with_instructions(INSTRUCTIONS)
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let Ok(who) = self.require(&context, Scope::Read, "reading resources") else {
            return Err(ErrorData::invalid_request("Not authenticated", None));
        };
        let books = self
            .library
            .books(&who, None, 0, MAX_LISTED_BOOKS)
            .await
            .map_err(|err| resource_error("hbi://books", err))?;
        Ok(ListResourcesResult::with_all_items(
            books
                .into_iter()
                .map(|book| {
                    Resource::new(format!("hbi://books/{}", book.id), book.title.clone())
                        .with_title(book.title)
                        .with_description("The book: title, author, status, pages and its table of contents")
                        .with_mime_type("application/json")
                })
                .collect(),
        ))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        Ok(ListResourceTemplatesResult::with_all_items(vec![
            ResourceTemplate::new("hbi://books/{book_id}/pages/{page}", "page")
                .with_description("One page of a book: its text, printed label, section path and index terms")
                .with_mime_type("application/json"),
        ]))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let Ok(who) = self.require(&context, Scope::Read, "reading resources") else {
            return Err(ErrorData::invalid_request("Not authenticated", None));
        };
        let uri = request.uri.as_str();
        match parse_resource_uri(uri) {
            Some(ResourceUri::Book(id)) => {
                let book = self
                    .library
                    .book(&who, &id)
                    .await
                    .map_err(|err| resource_error(uri, err))?;
                let toc = self
                    .library
                    .toc(&who, &id)
                    .await
                    .map_err(|err| resource_error(uri, err))?;
                json_contents(
                    uri,
                    &serde_json::json!({
                        "book_id": book.id,
                        "title": book.title,
                        "author": book.author,
                        "status": book.status.to_string(),
                        "pages": book.page_count,
                        "toc": toc.into_iter().map(TocEntryView::from).collect::<Vec<_>>(),
                    }),
                )
            }
            Some(ResourceUri::Page(id, number)) => {
                let page = self
                    .library
                    .page(&who, &id, number)
                    .await
                    .map_err(|err| resource_error(uri, err))?;
                json_contents(uri, &PageText::from(page))
            }
            None => Err(ErrorData::resource_not_found(
                format!(
                    "{uri}: not an HBI resource (hbi://books/{{book_id}} or hbi://books/{{book_id}}/pages/{{page}})"
                ),
                None,
            )),
        }
    }
}

/// `/mcp`: the server over streamable HTTP. Stateless (no MCP session is kept between
/// requests), so any API replica answers any request and a restart loses nothing; answers
/// are JSON unless a tool streams. The request's `Host` is not checked here: the API's
/// keys and its CORS origins guard `/mcp` as they guard every route, and a host list would
/// refuse every name a deployment reaches the API by.
pub fn http_endpoint(library: Library, stop: CancellationToken) -> impl poem::Endpoint {
    use poem::endpoint::TowerCompatExt;
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_cancellation_token(stop)
        .disable_allowed_hosts();
    StreamableHttpService::new(
        move || Ok(LibraryMcp::new(library.clone(), None)),
        Arc::new(LocalSessionManager::default()),
        config,
    )
    .compat()
}

/// `hbi mcp`: the server over stdin and stdout until the client closes them, `caller` being
/// whoever the session's API key names.
pub async fn serve_stdio(library: Library, caller: Principal) -> anyhow::Result<()> {
    use rmcp::ServiceExt;
    let running = LibraryMcp::new(library, Some(caller))
        .serve(rmcp::transport::stdio())
        .await?;
    running.waiting().await?;
    Ok(())
}
