//! Books: create, list, find, upload (store the original and queue its job) and delete.

use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use super::{Library, LibraryError, LibraryResult};
use crate::access::{Principal, Scope};
use crate::audit::AuditEvent;
use crate::catalog::DEFAULT_LIBRARY;
use crate::db::entities::{book, job};
use crate::domain::{BookId, BookLanguages, ContentHash, JobState};
use crate::jobs::relay;
use crate::jobs::store::{BookBusy, BookGone, StoredFile};

/// Longest title or author a book may have, in characters.
pub const MAX_BOOK_FIELD_CHARS: usize = 1000;

/// Bytes of the file's head kept to recognise its format.
const HEAD_BYTES: usize = 1024;

/// A book to make.
#[derive(Debug, Clone, Copy, Default)]
pub struct NewBook<'a> {
    /// The library it goes to; the default library when absent.
    pub library: Option<&'a str>,
    pub title: &'a str,
    pub author: Option<&'a str>,
    pub language: Option<&'a str>,
}

/// An upload as it arrives: the body streams, nothing is held in memory.
pub struct Upload<R> {
    pub body: R,
    /// The file name the client gave, if any; kept as a label only.
    pub file_name: Option<String>,
    /// Process the file again even if this content was processed before.
    pub reprocess: bool,
}

/// What an accepted upload led to.
#[derive(Debug)]
pub enum UploadOutcome {
    /// Stored and queued.
    Queued { book: book::Model, job: job::Model },
    /// The same content was processed before; this is its job.
    AlreadyProcessed { book: book::Model, job: job::Model },
}

impl Library {
    /// A new book without a file yet, in `library` (the default library when absent), where
    /// `who` must have the write scope. The title is trimmed and must not be blank;
    /// `language` ([`BookLanguages`]: ISO 639 codes, `+`-joined) is what OCR reads its scans
    /// with, English when absent.
    pub async fn create_book(&self, who: &Principal, new: NewBook<'_>) -> LibraryResult<book::Model> {
        let NewBook {
            library,
            title,
            author,
            language,
        } = new;
        let library = library.unwrap_or(DEFAULT_LIBRARY);
        super::libraries::allowed(who, library, Scope::Write, LibraryError::LibraryNotFound)?;
        if self.stores.catalog.library(library).await?.is_none() {
            return Err(LibraryError::LibraryNotFound);
        }
        let title = title.trim();
        if title.is_empty() {
            return Err(LibraryError::Invalid {
                field: "title",
                reason: "must not be blank".to_owned(),
            });
        }
        for (field, value) in [("title", Some(title)), ("author", author)] {
            if let Some(value) = value {
                check_text_field(field, value)?;
            }
        }
        let languages = match language {
            Some(language) => language
                .parse::<BookLanguages>()
                .map_err(|reason| LibraryError::Invalid {
                    field: "language",
                    reason,
                })?,
            None => BookLanguages::default(),
        };
        let book = self
            .stores
            .catalog
            .create_book_in(library, title, author.map(str::trim), &languages)
            .await?;
        self.audit(
            who,
            AuditEvent {
                action: "book.create",
                library_id: Some(library),
                book_id: Some(&book.id),
                ..AuditEvent::default()
            },
        )
        .await?;
        Ok(book)
    }

    /// The books `who` may read, oldest first, of one library if `library` is given (a
    /// library it may not read is not found).
    pub async fn books(
        &self,
        who: &Principal,
        library: Option<&str>,
        skip: u64,
        limit: u64,
    ) -> LibraryResult<Vec<book::Model>> {
        let libraries = match library {
            Some(library) => {
                if who.scope_in(library).is_none() {
                    return Err(LibraryError::LibraryNotFound);
                }
                Some(vec![library.to_owned()])
            }
            None => who.readable_libraries(),
        };
        Ok(self.stores.catalog.books_in(libraries.as_deref(), skip, limit).await?)
    }

    pub async fn book(&self, who: &Principal, id: &BookId) -> LibraryResult<book::Model> {
        self.book_for(who, id, Scope::Read).await
    }

    /// Deletes the book from every store (the admin scope in its library): its jobs end
    /// first, in a statement a worker's claim cannot slip past, so nothing writes to the
    /// book once it is being deleted.
    pub async fn delete_book(&self, who: &Principal, id: &BookId) -> LibraryResult<()> {
        let book = self.book_for(who, id, Scope::Admin).await?;
        if !self.stores.jobs.stop_for_delete(&book.id).await? {
            return Err(LibraryError::Conflict(
                "a job is processing this book; cancel it or wait for it to finish".to_owned(),
            ));
        }
        self.stores.text.delete_book(&book.id).await?;
        self.stores.vectors.delete_book(&book.id).await?;
        self.stores.graph.delete_book(&book.id).await?;
        self.stores.catalog.delete_book(&book.id).await?;
        self.collect_blob(book.content_hash.as_deref(), None).await?;
        self.audit(
            who,
            AuditEvent {
                action: "book.delete",
                library_id: Some(&book.library_id),
                book_id: Some(&book.id),
                ..AuditEvent::default()
            },
        )
        .await
    }

    /// Streams the upload into a scratch file while hashing it (a large book never sits in
    /// memory and a body over the limit is cut off as it streams), stores it
    /// content-addressed, commits the job and puts it on the queue.
    pub async fn upload<R: AsyncRead + Unpin>(
        &self,
        who: &Principal,
        id: &BookId,
        upload: Upload<R>,
    ) -> LibraryResult<UploadOutcome> {
        let book = self.book_for(who, id, Scope::Write).await?;
        if let Some(job) = self.stores.jobs.latest_for_book(&book.id).await?
            && JobState::LIVE.contains(&job.state)
        {
            return Err(LibraryError::Conflict(format!(
                "job {} for this book is still {}; wait for it or cancel it",
                job.id, job.state
            )));
        }
        let Upload {
            mut body,
            file_name,
            reprocess,
        } = upload;
        let scratch = tempfile::NamedTempFile::new_in(self.stores.scratch.path())?;
        let (hash, size) = self.receive(&mut body, scratch.path()).await?;

        if !reprocess
            && book.content_hash.as_deref() == Some(hash.as_str())
            && let Some(job) = self.stores.jobs.latest_for_book(&book.id).await?
            && job.state == JobState::Succeeded
        {
            return Ok(UploadOutcome::AlreadyProcessed { book, job });
        }

        if let Err(err) = self.stores.blobs.put_file(&hash, scratch.path()).await {
            tracing::warn!(book_id = %book.id, error = %format!("{err:#}"), "upload refused: the blob store is unavailable");
            return Err(LibraryError::Unavailable(format!(
                "{} blob store",
                self.stores.blobs.kind()
            )));
        }
        let stored = StoredFile {
            sha256: hash,
            size_bytes: size,
            content_type: "application/pdf".to_owned(),
            original_name: file_name.as_deref().map(sanitize_file_name),
        };
        let created = self
            .stores
            .jobs
            .create_ingest_job(
                &book.id,
                &stored,
                self.limits.max_attempts,
                // The job's spans, in whichever worker runs it, continue the caller's trace.
                crate::trace_context::capture(),
            )
            .await;
        let job = match created {
            Ok(job) => job,
            // Another upload of the book committed its job since the check above.
            Err(err) if err.is::<BookBusy>() => {
                return Err(LibraryError::Conflict(
                    "another job for this book is still queued or running; wait for it or cancel it".to_owned(),
                ));
            }
            Err(err) if err.is::<BookGone>() => return Err(LibraryError::BookNotFound),
            Err(err) => return Err(err.into()),
        };
        // The book's previous file goes with the last book that used it, as on delete; a
        // failure leaves an unused blob behind, never a book without its file.
        if let Err(err) = self
            .collect_blob(book.content_hash.as_deref(), Some(&stored.sha256))
            .await
        {
            tracing::warn!(book_id = %book.id, error = %format!("{err:#}"), "the replaced file stays in the blob store");
        }
        // The job is committed; enqueue now, or leave it to the outbox relay if the queue is down.
        if let Err(err) = relay::publish(&self.stores.jobs, self.stores.queue.as_ref(), &job).await {
            tracing::warn!(job_id = %job.id, error = %format!("{err:#}"), "job left to the outbox relay");
        }
        tracing::info!(book_id = %book.id, job_id = %job.id, bytes = size, "upload accepted");
        self.audit(
            who,
            AuditEvent {
                action: "book.upload",
                library_id: Some(&book.library_id),
                book_id: Some(&book.id),
                target: Some(&job.id),
            },
        )
        .await?;
        let book = self.stores.catalog.book(&book.id).await?.unwrap_or(book);
        Ok(UploadOutcome::Queued { book, job })
    }

    /// Copies the body into `path`, hashing it and refusing it past the upload limit or
    /// when its head is not a file the pipeline reads.
    async fn receive<R: AsyncRead + Unpin>(
        &self,
        body: &mut R,
        path: &std::path::Path,
    ) -> LibraryResult<(ContentHash, u64)> {
        let limit = self.limits.max_upload_bytes;
        let mut output = tokio::fs::File::create(path).await?;
        let mut hasher = Sha256::new();
        let mut head = Vec::with_capacity(HEAD_BYTES);
        let mut size: u64 = 0;
        let mut buffer = vec![0u8; 1 << 16];
        loop {
            let read = body.read(&mut buffer).await?;
            if read == 0 {
                break;
            }
            size += read as u64;
            if size > limit {
                return Err(LibraryError::TooLarge {
                    limit_mb: self.limits.max_upload_mb,
                });
            }
            if head.len() < HEAD_BYTES {
                head.extend_from_slice(&buffer[..read.min(HEAD_BYTES - head.len())]);
            }
            hasher.update(&buffer[..read]);
            output.write_all(&buffer[..read]).await?;
        }
        output.flush().await?;
        hbi_extraction::validate_header(&head).map_err(|err| LibraryError::BadFile(err.to_string()))?;
        Ok((ContentHash::from_digest(&hasher.finalize()), size))
    }

    /// Removes the blob `previous` when no book uses it any more (and it is not `kept`):
    /// books with the same content share one blob.
    async fn collect_blob(&self, previous: Option<&str>, kept: Option<&ContentHash>) -> anyhow::Result<()> {
        let Some(previous) = previous.and_then(|hash| hash.parse::<ContentHash>().ok()) else {
            return Ok(());
        };
        if Some(&previous) != kept
            && self
                .stores
                .catalog
                .books_with_content(previous.as_str())
                .await?
                .is_empty()
        {
            self.stores.blobs.delete(&previous).await?;
        }
        Ok(())
    }
}

/// A book's title or author: [`check_text`] at [`MAX_BOOK_FIELD_CHARS`].
fn check_text_field(field: &'static str, value: &str) -> LibraryResult<()> {
    check_text(field, value, MAX_BOOK_FIELD_CHARS)
}

/// Stored text has no NUL (PostgreSQL cannot hold one) and at most `max_chars` characters.
pub(super) fn check_text(field: &'static str, value: &str, max_chars: usize) -> LibraryResult<()> {
    if value.contains('\0') {
        return Err(LibraryError::Invalid {
            field,
            reason: "must not contain a NUL character".to_owned(),
        });
    }
    if value.chars().count() > max_chars {
        return Err(LibraryError::Invalid {
            field,
            reason: format!("must be at most {max_chars} characters"),
        });
    }
    Ok(())
}

/// Keeps only the last path component, without control characters: a file name is a label,
/// never a path.
pub fn sanitize_file_name(name: &str) -> String {
    let last = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = last.chars().filter(|c| !c.is_control()).take(255).collect();
    if cleaned.is_empty() || cleaned == "." || cleaned == ".." {
        "upload.pdf".to_owned()
    } else {
        cleaned
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_lose_their_paths() {
        assert_eq!(sanitize_file_name("../../etc/passwd"), "passwd");
        assert_eq!(sanitize_file_name("C:\\books\\r.pdf"), "r.pdf");
        assert_eq!(sanitize_file_name(".."), "upload.pdf");
        assert_eq!(sanitize_file_name("a\u{0}b.pdf"), "ab.pdf");
    }

    #[test]
    fn book_fields_refuse_nul_and_overlong_text() {
        assert!(check_text_field("title", "Moby Dick").is_ok());
        assert!(matches!(
            check_text_field("title", "a\0b"),
            Err(LibraryError::Invalid { field: "title", .. })
        ));
        let long = "x".repeat(MAX_BOOK_FIELD_CHARS + 1);
        assert!(matches!(
            check_text_field("author", &long),
            Err(LibraryError::Invalid { field: "author", .. })
        ));
    }
}
