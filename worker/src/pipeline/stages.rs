//! The stages of one run, in order, one function each; [`Pipeline::run`] calls each through
//! the stage wrapper, which records the stage and names it in a failure.

use std::path::Path;

use hbi_extraction::{Extraction, PageText};
use hbi_shared::chunking::Chunk;
use hbi_shared::db::entities::job;
use hbi_shared::domain::{BookLanguages, BookStatus, ContentHash, Stage};
use hbi_shared::graph::{BookGraph, chapters_from_flat_toc, index_terms_from_entries};
use hbi_shared::jobs::store::JobStore;
use hbi_shared::text_index::IndexedPage;
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;
use tokio_util::sync::CancellationToken;

use super::{Failure, Pipeline, RunEnd, StageError, StageResult, Step, WATCH_INTERVAL};
use crate::extractor::{ExtractorFailure, extract_in_child};

impl Pipeline {
    /// Runs the stages in order; the first failure ends the run.
    pub(super) async fn run(&self, job: &job::Model, cancel: &CancellationToken) -> Result<RunEnd, StageError> {
        let hash: ContentHash = job
            .file_sha256
            .parse()
            .map_err(|err: String| StageError::at(Stage::Validate, Failure::Refused(err)))?;
        // Removed with everything in it when the run ends, however it ends.
        let scratch = self
            .scratch()
            .await
            .map_err(|failure| StageError::at(Stage::Validate, failure))?;
        let local_pdf = scratch.path().join("book.pdf");

        self.stage(job, Stage::Validate, self.validate(&hash, &local_pdf))
            .await?;
        self.stage(job, Stage::Store, self.check_stored(&hash)).await?;
        let extraction = match self
            .stage(job, Stage::ExtractText, self.extract_text(job, &local_pdf, cancel))
            .await?
        {
            Step::Next(extraction) => extraction,
            Step::Cancelled => return Ok(RunEnd::Cancelled),
        };
        self.stage(job, Stage::Toc, check_toc(&extraction)).await?;
        self.stage(job, Stage::Index, self.save_structure(job, &extraction))
            .await?;
        let chunks = self.stage(job, Stage::Chunk, self.chunk(job, &extraction)).await?;
        let vectors_stored = match self.backends.embedder.clone() {
            Some(embedder) => {
                let vectors = match self
                    .stage(job, Stage::Embed, self.embed(job, embedder.as_ref(), &chunks, cancel))
                    .await?
                {
                    Step::Next(vectors) => vectors,
                    Step::Cancelled => return Ok(RunEnd::Cancelled),
                };
                let model = embedder.model();
                Some(
                    self.stage(
                        job,
                        Stage::IndexVectors,
                        self.index_vectors(job, model, &chunks, &vectors),
                    )
                    .await?,
                )
            }
            None => None,
        };
        self.stage(job, Stage::IndexText, self.index_text(job, &extraction))
            .await?;
        self.stage(job, Stage::Graph, self.write_graph(job, &hash, &extraction))
            .await?;
        let status = self
            .stage(
                job,
                Stage::Quality,
                self.assess_quality(job, &extraction, &chunks, vectors_stored),
            )
            .await?;
        Ok(RunEnd::Done(status))
    }

    /// A scratch folder of this run's own under the worker's scratch directory.
    async fn scratch(&self) -> StageResult<tempfile::TempDir> {
        tokio::fs::create_dir_all(&self.settings.scratch_dir).await?;
        Ok(tempfile::Builder::new()
            .prefix("hbi-job-")
            .tempdir_in(&self.settings.scratch_dir)?)
    }

    /// `validate`: the stored file, fetched to `local_pdf`, is what the upload promised.
    async fn validate(&self, hash: &ContentHash, local_pdf: &Path) -> StageResult<()> {
        self.backends.blobs.fetch_to_file(hash, local_pdf).await?;
        validate_file(local_pdf, hash, self.settings.max_file_bytes).await
    }

    /// `store`: the original is in the blob store, where the reader's downloads come from.
    async fn check_stored(&self, hash: &ContentHash) -> StageResult<()> {
        if self.backends.blobs.exists(hash).await? {
            Ok(())
        } else {
            Err(Failure::Retryable(
                "the original file is missing from the blob store".to_owned(),
            ))
        }
    }

    /// `extract_text`: pages, ToC and index, from the extractor child, its progress written to
    /// the job as it goes.
    async fn extract_text(
        &self,
        job: &job::Model,
        local_pdf: &Path,
        cancel: &CancellationToken,
    ) -> StageResult<Step<Extraction>> {
        let jobs = &self.backends.jobs;
        let (progress_tx, progress_rx) = tokio::sync::watch::channel((0u32, 0u32));
        let progress_writer = spawn_progress_writer(jobs.clone(), job.id.clone(), progress_rx);
        // A book stored before languages were kept, or one whose stored value no longer
        // parses, is read as English: the default, not a failed job.
        let languages = self
            .backends
            .catalog
            .book(&job.book_id)
            .await?
            .and_then(|book| book.language.parse::<BookLanguages>().ok())
            .unwrap_or_default();
        let extracted = extract_in_child(
            &self.settings.extractor,
            local_pdf,
            &languages,
            cancel,
            &move |done, total| {
                progress_tx.send_replace((done, total));
            },
        )
        .await;
        progress_writer.abort();
        let extraction = match extracted {
            Ok(extraction) => extraction,
            Err(ExtractorFailure::Cancelled) => return Ok(Step::Cancelled),
            Err(ExtractorFailure::InputRefused(message)) => return Err(Failure::Refused(message)),
            Err(err) => return Err(Failure::Retryable(err.to_string())),
        };
        let total = extraction.page_count;
        hbi_shared::metrics::pages_processed(u64::from(total));
        if let Some(ocr) = &extraction.ocr {
            hbi_shared::metrics::pages_ocr(u64::from(ocr.pages), ocr.page_seconds);
        }
        if let Some(ratio) = extraction.index_support_rate {
            hbi_shared::metrics::index_locator_support(ratio);
        }
        jobs.report_progress(&job.id, Stage::ExtractText, total, total).await?;
        Ok(if cancel.is_cancelled() {
            Step::Cancelled
        } else {
            Step::Next(extraction)
        })
    }

    /// `index` (with `toc`): pages, ToC and index stored together, in one transaction, one copy
    /// per book.
    async fn save_structure(&self, job: &job::Model, extraction: &Extraction) -> StageResult<()> {
        Ok(self.backends.catalog.save_extraction(&job.book_id, extraction).await?)
    }

    /// `chunk`: passages of the text that discusses something. Contents and index pages repeat
    /// every title and term, so chunks (and so vectors and the answers' sources) leave them out.
    async fn chunk(&self, job: &job::Model, extraction: &Extraction) -> StageResult<Vec<Chunk>> {
        let discussion_pages: Vec<PageText> = extraction
            .pages
            .iter()
            .filter_map(|page| {
                extraction.discussion_text(page).map(|text| PageText {
                    text: text.to_owned(),
                    ..page.clone()
                })
            })
            .collect();
        let chunks = hbi_shared::chunking::chunk_book(&discussion_pages, &extraction.toc, self.settings.chunk_sizes);
        self.backends.catalog.replace_chunks(&job.book_id, &chunks).await?;
        Ok(chunks)
    }

    /// `index_text`: the pages into the full-text index.
    async fn index_text(&self, job: &job::Model, extraction: &Extraction) -> StageResult<()> {
        let indexed = text_index_pages(extraction);
        Ok(self.backends.text.index_pages(&job.book_id, &indexed).await?)
    }

    /// `graph`: the book, its chapters and index terms into the graph store.
    async fn write_graph(&self, job: &job::Model, hash: &ContentHash, extraction: &Extraction) -> StageResult<()> {
        let title = self
            .backends
            .catalog
            .book(&job.book_id)
            .await?
            .map(|book| book.title)
            .unwrap_or_default();
        let graph = BookGraph {
            book_id: job.book_id.clone(),
            content_hash: hash.to_string(),
            title,
            page_labels: extraction.page_labels.clone(),
            chapters: chapters_from_flat_toc(&extraction.toc),
            index_terms: index_terms_from_entries(&extraction.index),
        };
        Ok(self.backends.graph.write_book(&graph).await?)
    }

    /// `quality`: the gates, with the thresholds of the live knobs (read for each run, so a
    /// change applies to the next book); a failed gate makes the book `needs_review`.
    async fn assess_quality(
        &self,
        job: &job::Model,
        extraction: &Extraction,
        chunks: &[Chunk],
        vectors_stored: Option<u64>,
    ) -> StageResult<BookStatus> {
        let stored = hbi_shared::quality::StoredCounts {
            chunks: chunks.len() as u64,
            vectors: vectors_stored,
        };
        let knobs = self.backends.knobs.get().await?;
        let thresholds = hbi_shared::quality::QualityThresholds {
            min_text_coverage: knobs.min_text_coverage,
            max_garbage_ratio: knobs.max_garbage_ratio,
            min_index_support_rate: knobs.min_index_support_rate,
            min_ocr_confidence: knobs.min_ocr_confidence,
        };
        let gates = hbi_shared::quality::assess(extraction, stored, &thresholds);
        self.backends
            .catalog
            .replace_quality(&job.book_id, &job.id, &gates)
            .await?;
        for gate in &gates {
            hbi_shared::metrics::quality_gate(gate.gate, gate.passed);
        }
        let failed: Vec<&str> = gates.iter().filter(|g| !g.passed).map(|g| g.gate).collect();
        if failed.is_empty() {
            Ok(BookStatus::Ready)
        } else {
            tracing::warn!(gates = ?failed, "quality gates failed; the book needs review");
            Ok(BookStatus::NeedsReview)
        }
    }
}

/// `toc`: nothing to store apart from the index stage; a book without contents is said so.
async fn check_toc(extraction: &Extraction) -> StageResult<()> {
    if extraction.toc.is_empty() {
        tracing::warn!(
            toc_source = extraction.toc_source.as_str(),
            "no table of contents found"
        );
    }
    Ok(())
}

/// The pages as the full-text index gets them. A contents or index page is indexed by what
/// it discusses (the end of a chapter above an index heading) and the titles of the ToC
/// entries that start on it ("Concept Index"), or not at all: its listing names every section
/// and term of the book and would match every query about them.
fn text_index_pages(extraction: &Extraction) -> Vec<IndexedPage> {
    extraction
        .pages
        .iter()
        .filter_map(|page| {
            if !extraction.is_navigation_page(page.number) {
                return Some(IndexedPage {
                    number: page.number,
                    text: page.text.clone(),
                });
            }
            let text: Vec<&str> = extraction
                .discussion_text(page)
                .into_iter()
                .chain(
                    extraction
                        .toc
                        .iter()
                        .filter(|entry| entry.page == Some(page.number))
                        .map(|entry| entry.title.as_str()),
                )
                .collect();
            (!text.is_empty()).then(|| IndexedPage {
                number: page.number,
                text: text.join("\n"),
            })
        })
        .collect()
}

/// Checks the local copy against what the upload promised: the hash, the size limit and
/// the PDF signature. Deeper checks (encryption, damage) belong to the extractor.
async fn validate_file(path: &Path, expected: &ContentHash, max_bytes: u64) -> StageResult<()> {
    let size = tokio::fs::metadata(path).await?.len();
    if size > max_bytes {
        return Err(Failure::Refused(format!(
            "the file is {size} bytes, over the limit of {max_bytes}"
        )));
    }
    let mut file = tokio::fs::File::open(path).await?;
    let mut hasher = Sha256::new();
    let mut head = Vec::new();
    let mut buffer = vec![0u8; 1 << 16];
    loop {
        let read = file.read(&mut buffer).await?;
        if read == 0 {
            break;
        }
        if head.len() < 1024 {
            head.extend_from_slice(&buffer[..read.min(1024 - head.len())]);
        }
        hasher.update(&buffer[..read]);
    }
    let actual = ContentHash::from_digest(&hasher.finalize());
    if &actual != expected {
        return Err(Failure::Retryable(format!(
            "stored blob hash {actual} does not match {expected}"
        )));
    }
    hbi_extraction::validate_header(&head).map_err(|err| Failure::Refused(err.to_string()))
}

/// Writes the latest `(done, total)` to the job row, at most every [`WATCH_INTERVAL`].
fn spawn_progress_writer(
    jobs: JobStore,
    job_id: String,
    mut updates: tokio::sync::watch::Receiver<(u32, u32)>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while updates.changed().await.is_ok() {
            let (done, total) = *updates.borrow_and_update();
            if let Err(err) = jobs.report_progress(&job_id, Stage::ExtractText, done, total).await {
                tracing::warn!(job_id = %job_id, error = %format!("{err:#}"), "could not record progress");
            }
            tokio::time::sleep(WATCH_INTERVAL).await;
        }
    })
}

#[cfg(test)]
mod tests {
    use hbi_extraction::{IndexInfo, TocEntry, TocSource};

    use super::*;

    fn page(number: u32, text: &str) -> PageText {
        PageText {
            number,
            label: number.to_string(),
            text: text.into(),
        }
    }

    #[test]
    fn navigation_pages_reach_the_text_index_by_their_title_only() {
        let extraction = Extraction {
            page_count: 5,
            page_labels: (1..=5).map(|n| n.to_string()).collect(),
            toc_source: TocSource::Outline,
            toc: vec![
                TocEntry {
                    level: 1,
                    title: "Contents".into(),
                    page: Some(1),
                },
                TocEntry {
                    level: 1,
                    title: "Graphs".into(),
                    page: Some(3),
                },
                TocEntry {
                    level: 1,
                    title: "Concept Index".into(),
                    page: Some(4),
                },
            ],
            index: Vec::new(),
            indices: vec![IndexInfo {
                name: "Concept Index".into(),
                physical_pages: [4, 5],
                entries: 40,
                nesting_depth: 1,
                sibling_order: Some(1.0),
            }],
            contents_pages: vec![[1, 2]],
            index_support_rate: None,
            signals: hbi_extraction::StructureSignals::default(),
            pages: vec![
                page(1, "Contents\nGraphs 3\nConcept Index 4"),
                page(2, "Trees 3"),
                page(3, "Graphs are made of vertices and edges."),
                page(4, "the last words of Graphs.\nConcept Index\nedge, 3\nvertex, 3"),
                page(5, "tree, 3"),
            ],
            ocr: None,
            warnings: Vec::new(),
        };
        let indexed: Vec<(u32, String)> = text_index_pages(&extraction)
            .into_iter()
            .map(|page| (page.number, page.text))
            .collect();
        assert_eq!(
            indexed,
            vec![
                (1, "Contents".to_string()),
                (3, "Graphs are made of vertices and edges.".to_string()),
                (4, "the last words of Graphs.\nConcept Index".to_string()),
            ]
        );
        assert!(!extraction.is_navigation_page(3));
        let discussed: Vec<Option<&str>> = extraction
            .pages
            .iter()
            .map(|page| extraction.discussion_text(page))
            .collect();
        assert_eq!(
            discussed,
            vec![
                None,
                None,
                Some("Graphs are made of vertices and edges."),
                Some("the last words of Graphs."),
                None
            ]
        );
    }
}
