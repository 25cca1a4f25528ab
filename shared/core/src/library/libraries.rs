//! Libraries (collections of books) and who may reach them: every use case that touches a
//! book asks here first, so that no door can forget. A book in a library the caller may not
//! read is not found (its existence is not disclosed); one it may read but not change is
//! forbidden.

use super::books::check_text;
use super::{Library, LibraryError, LibraryResult};
use crate::access::{Principal, Scope};
use crate::audit::AuditEvent;
use crate::catalog::DEFAULT_LIBRARY;
use crate::db::entities::{audit_entry, book, job, library};
use crate::domain::{BookFilter, BookId, JobId};

/// Longest library id, in characters.
const MAX_LIBRARY_ID_CHARS: usize = 64;

/// Longest library name and description, in characters.
const MAX_LIBRARY_NAME_CHARS: usize = 200;
const MAX_LIBRARY_DESCRIPTION_CHARS: usize = 2000;

/// A library with how many books it holds.
#[derive(Debug, Clone)]
pub struct LibraryView {
    pub library: library::Model,
    pub books: u64,
    /// What the caller may do there.
    pub scope: Scope,
}

impl Library {
    /// The book, when `who` may do `needed` in its library.
    pub(super) async fn book_for(&self, who: &Principal, id: &BookId, needed: Scope) -> LibraryResult<book::Model> {
        let book = self
            .stores
            .catalog
            .book(id.as_str())
            .await?
            .ok_or(LibraryError::BookNotFound)?;
        allowed(who, &book.library_id, needed, LibraryError::BookNotFound)?;
        Ok(book)
    }

    /// The job, when `who` may do `needed` in its book's library (a job of a book it may
    /// not read is not found).
    pub(super) async fn job_for(&self, who: &Principal, id: &JobId, needed: Scope) -> LibraryResult<job::Model> {
        let job = self
            .stores
            .jobs
            .get(id.as_str())
            .await?
            .ok_or(LibraryError::JobNotFound)?;
        if who.readable_libraries().is_some() {
            let library = self
                .stores
                .catalog
                .book(&job.book_id)
                .await?
                .map(|book| book.library_id)
                .ok_or(LibraryError::JobNotFound)?;
            allowed(who, &library, needed, LibraryError::JobNotFound)?;
        }
        Ok(job)
    }

    /// The books `who` may read, as a search filter: every book for a key over every
    /// library, else the books of its libraries (read before ranking, so that no hit leaks
    /// and `k` hits still come back).
    pub(super) async fn readable_books(&self, who: &Principal) -> LibraryResult<BookFilter> {
        Ok(match who.readable_libraries() {
            None => BookFilter::All,
            Some(libraries) => BookFilter::among(self.stores.catalog.book_ids_in(&libraries).await?),
        })
    }

    /// Refuses what only operators may do.
    pub(super) fn operators_only(who: &Principal, what: &str) -> LibraryResult<()> {
        if who.is_operator() {
            Ok(())
        } else {
            Err(LibraryError::Forbidden(format!(
                "{what} is for operators: an admin key over every library"
            )))
        }
    }

    /// Writes an audit entry for what `who` just did.
    pub(super) async fn audit(&self, who: &Principal, event: AuditEvent<'_>) -> LibraryResult<()> {
        Ok(self.stores.audit.record(&who.key_id, event).await?)
    }

    /// Records a change an operator made outside the book use cases (the live knobs, a
    /// webhook), so that the audit log holds every write.
    pub async fn audit_change(&self, who: &Principal, action: &str, target: Option<&str>) -> LibraryResult<()> {
        self.audit(
            who,
            AuditEvent {
                action,
                target,
                ..AuditEvent::default()
            },
        )
        .await
    }

    /// The libraries `who` may read, each with its book count.
    pub async fn libraries(&self, who: &Principal) -> LibraryResult<Vec<LibraryView>> {
        let readable = who.readable_libraries();
        let libraries = self.stores.catalog.libraries(readable.as_deref()).await?;
        let counts = self.stores.catalog.book_counts_by_library(readable.as_deref()).await?;
        Ok(libraries
            .into_iter()
            .filter_map(|library| {
                let scope = who.scope_in(&library.id)?;
                let books = counts.get(&library.id).copied().unwrap_or(0);
                Some(LibraryView { library, books, scope })
            })
            .collect())
    }

    pub async fn library(&self, who: &Principal, id: &str) -> LibraryResult<LibraryView> {
        let scope = who.scope_in(id).ok_or(LibraryError::LibraryNotFound)?;
        let library = self
            .stores
            .catalog
            .library(id)
            .await?
            .ok_or(LibraryError::LibraryNotFound)?;
        let books = self
            .stores
            .catalog
            .book_counts_by_library(Some(&[id.to_owned()]))
            .await?
            .get(id)
            .copied()
            .unwrap_or(0);
        Ok(LibraryView { library, books, scope })
    }

    /// A new library (operators only). Its id is a short name: lower-case letters, digits
    /// and `-`, starting with a letter or digit.
    pub async fn create_library(
        &self,
        who: &Principal,
        id: &str,
        name: &str,
        description: Option<&str>,
    ) -> LibraryResult<LibraryView> {
        Self::operators_only(who, "making a library")?;
        check_library_id(id)?;
        let name = name.trim();
        if name.is_empty() {
            return Err(LibraryError::Invalid {
                field: "name",
                reason: "must not be blank".to_owned(),
            });
        }
        check_text("name", name, MAX_LIBRARY_NAME_CHARS)?;
        if let Some(description) = description {
            check_text("description", description, MAX_LIBRARY_DESCRIPTION_CHARS)?;
        }
        let Some(library) = self.stores.catalog.create_library(id, name, description).await? else {
            return Err(LibraryError::Conflict(format!("a library with the id {id:?} exists")));
        };
        self.audit(
            who,
            AuditEvent {
                action: "library.create",
                library_id: Some(id),
                ..AuditEvent::default()
            },
        )
        .await?;
        Ok(LibraryView {
            library,
            books: 0,
            scope: Scope::Admin,
        })
    }

    /// Removes an empty library (operators only), and every key's access to it. The
    /// default library stays.
    pub async fn delete_library(&self, who: &Principal, id: &str) -> LibraryResult<()> {
        Self::operators_only(who, "removing a library")?;
        if self.stores.catalog.library(id).await?.is_none() {
            return Err(LibraryError::LibraryNotFound);
        }
        if id == DEFAULT_LIBRARY {
            return Err(LibraryError::Conflict(
                "the default library stays: books go there when none is named".to_owned(),
            ));
        }
        if !self.stores.catalog.delete_empty_library(id).await? {
            return Err(LibraryError::Conflict(
                "the library still holds books; delete them first".to_owned(),
            ));
        }
        self.audit(
            who,
            AuditEvent {
                action: "library.delete",
                library_id: Some(id),
                ..AuditEvent::default()
            },
        )
        .await
    }

    /// The audit log, newest first (operators only).
    pub async fn audit_log(
        &self,
        who: &Principal,
        before: Option<i64>,
        limit: u64,
    ) -> LibraryResult<Vec<audit_entry::Model>> {
        Self::operators_only(who, "the audit log")?;
        Ok(self.stores.audit.list(before, limit).await?)
    }

    /// Checks that every library of a new key's access exists (operators only make keys).
    pub async fn check_libraries_exist(&self, libraries: &[String]) -> LibraryResult<()> {
        let found = self.stores.catalog.libraries(Some(libraries)).await?;
        if let Some(missing) = libraries
            .iter()
            .find(|id| !found.iter().any(|library| &library.id == *id))
        {
            return Err(LibraryError::Invalid {
                field: "libraries",
                reason: format!("names a library that does not exist: {missing:?}"),
            });
        }
        Ok(())
    }
}

/// `who` may do `needed` in `library`; `hidden` when it may not even read there.
pub(super) fn allowed(who: &Principal, library: &str, needed: Scope, hidden: LibraryError) -> LibraryResult<()> {
    match who.scope_in(library) {
        None => Err(hidden),
        Some(scope) if scope.includes(needed) => Ok(()),
        Some(scope) => Err(LibraryError::Forbidden(format!(
            "Not enough permissions: this API key has the {scope} scope in library {library:?}, this operation needs {needed}"
        ))),
    }
}

fn check_library_id(id: &str) -> LibraryResult<()> {
    let well_formed = !id.is_empty()
        && id.chars().count() <= MAX_LIBRARY_ID_CHARS
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !id.starts_with('-');
    if well_formed {
        Ok(())
    } else {
        Err(LibraryError::Invalid {
            field: "id",
            reason: format!(
                "must be 1 to {MAX_LIBRARY_ID_CHARS} lower-case letters, digits and '-', not starting with '-'"
            ),
        })
    }
}
