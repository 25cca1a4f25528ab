//! sea-orm entities, one module per table of the migrations crate.

pub mod book {
    use sea_orm::entity::prelude::*;

    use crate::domain::BookStatus;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "books")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub title: String,
        pub author: Option<String>,
        pub status: BookStatus,
        pub source_path: Option<String>,
        pub content_hash: Option<String>,
        pub page_count: Option<i32>,
        pub toc_source: Option<String>,
        /// Tesseract's names of the book's languages, `+`-joined ([`crate::domain::BookLanguages`]).
        pub language: String,
        /// The library the book belongs to; who may read it follows from that.
        pub library_id: String,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod file {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "files")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub sha256: String,
        pub size_bytes: i64,
        pub content_type: String,
        pub original_name: Option<String>,
        pub created_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod job {
    use sea_orm::entity::prelude::*;

    use crate::domain::{JobState, Stage};

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "jobs")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub book_id: String,
        pub file_sha256: String,
        pub state: JobState,
        pub stage: Option<Stage>,
        pub progress_done: i32,
        pub progress_total: i32,
        pub attempts: i32,
        pub max_attempts: i32,
        pub error: Option<String>,
        pub error_stage: Option<Stage>,
        pub retryable: bool,
        pub worker_id: Option<String>,
        pub lease_until: Option<DateTimeUtc>,
        pub enqueued_at: Option<DateTimeUtc>,
        pub run_after: Option<DateTimeUtc>,
        pub cancel_requested: bool,
        pub created_at: DateTimeUtc,
        pub started_at: Option<DateTimeUtc>,
        pub finished_at: Option<DateTimeUtc>,
        pub updated_at: DateTimeUtc,
        /// The creating request's W3C trace context (see `crate::trace_context`).
        pub trace_context: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod job_attempt {
    use sea_orm::entity::prelude::*;

    use crate::domain::Stage;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "job_attempts")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub job_id: String,
        pub attempt: i32,
        pub worker_id: String,
        pub stage: Option<Stage>,
        pub outcome: String,
        pub error: Option<String>,
        pub started_at: DateTimeUtc,
        pub finished_at: Option<DateTimeUtc>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod page {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "pages")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub book_id: String,
        pub number: i32,
        pub label: String,
        pub text: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod chunk {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "chunks")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub book_id: String,
        pub position: i32,
        /// JSON array of ToC titles, chapter first.
        pub section_path: String,
        pub first_page: i32,
        pub last_page: i32,
        pub first_label: String,
        pub last_label: String,
        pub text: String,
        /// SHA-256 of `text`.
        pub content_hash: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod quality_result {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "quality_results")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub book_id: String,
        pub job_id: String,
        pub gate: String,
        pub metric: f64,
        pub threshold: f64,
        pub passed: bool,
        pub detail: String,
        pub created_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod toc_entry {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "toc_entries")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub book_id: String,
        pub position: i32,
        pub level: i32,
        pub title: String,
        pub page: Option<i32>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod setting {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "settings")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub key: String,
        pub value: String,
        pub updated_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod graph_node {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "graph_nodes")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub label: String,
        pub book_id: Option<String>,
        pub props: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod graph_edge {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "graph_edges")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub src: String,
        pub rel: String,
        pub dst: String,
        pub book_id: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod index_entry {
    use sea_orm::entity::prelude::*;

    /// One printed index line (an entry or a sub-entry). JSON columns keep lists of strings.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "index_entries")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub book_id: String,
        pub position: i32,
        pub index_name: String,
        /// JSON array: the entry with its parents, outermost first.
        pub path: String,
        pub term: String,
        pub depth: i32,
        /// JSON array: the locators as printed (`xii`, `45–47`, `12n`).
        pub printed: String,
        /// JSON array of cross-reference targets.
        pub see: String,
        /// JSON array of cross-reference targets.
        pub see_also: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod index_locator {
    use sea_orm::entity::prelude::*;

    /// A physical page range an index entry points to.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "index_locators")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub entry_id: i64,
        pub book_id: String,
        pub first_page: i32,
        pub last_page: i32,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod api_key {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "api_keys")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub name: String,
        /// `read`, `write` or `admin`.
        pub scope: String,
        /// SHA-256 of the whole key, lower-case hex; the key itself is never stored.
        pub key_hash: String,
        /// The key's first characters, to tell keys apart in lists (not enough to use it).
        pub prefix: String,
        pub created_at: DateTimeUtc,
        pub last_used_at: Option<DateTimeUtc>,
        pub revoked_at: Option<DateTimeUtc>,
        /// Whether the key reaches every library with its scope (operators, and every key
        /// made before libraries); otherwise only those of its `api_key_libraries` rows.
        pub all_libraries: bool,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod webhook_endpoint {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "webhook_endpoints")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub url: String,
        /// The event types it receives, comma-separated.
        pub events: String,
        pub description: Option<String>,
        /// The signing secret, AES-256-GCM-sealed (`crate::webhooks::secrets`), base64.
        pub secret_ciphertext: String,
        /// Which master key sealed it.
        pub secret_key_id: String,
        /// `dlq.size_above` fires when the dead-letter queue grows past this.
        pub dlq_threshold: Option<i64>,
        /// Whether that alert fired and the queue has not gone back under the threshold since.
        pub dlq_alerted: bool,
        pub created_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod webhook_event {
    use sea_orm::entity::prelude::*;

    /// An event not yet fanned out to the endpoints (the outbox).
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "webhook_events")]
    pub struct Model {
        /// `msg_…`: the `webhook-id` every delivery of it carries.
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub event_type: String,
        /// The JSON body sent.
        pub payload: String,
        pub created_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod webhook_delivery {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "webhook_deliveries")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub endpoint_id: String,
        pub event_id: String,
        pub event_type: String,
        pub payload: String,
        /// `pending`, `delivered` or `failed` (every attempt of the schedule failed).
        pub state: String,
        pub attempts: i32,
        pub next_attempt_at: DateTimeUtc,
        /// A sender holds it until then.
        pub lease_until: Option<DateTimeUtc>,
        pub last_status: Option<i32>,
        pub last_error: Option<String>,
        pub created_at: DateTimeUtc,
        pub delivered_at: Option<DateTimeUtc>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod job_part {
    use sea_orm::entity::prelude::*;

    /// A range of a large book's chunks to embed, which any worker may take (see
    /// `crate::jobs::parts`).
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "job_parts")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub job_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub part: i32,
        /// Chunk positions `first_chunk..end_chunk`.
        pub first_chunk: i32,
        pub end_chunk: i32,
        /// Chunks of the whole book when the parts were laid out: a run that cut the book
        /// differently lays them out again.
        pub chunk_count: i32,
        /// `queued`, `running` or `done`.
        pub state: String,
        pub worker_id: Option<String>,
        pub lease_until: Option<DateTimeUtc>,
        pub attempts: i32,
        pub error: Option<String>,
        pub updated_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod job_part_vector {
    use sea_orm::entity::prelude::*;

    /// A vector a finished part computed, by the embedded text's hash, until the book's job
    /// stores the book's vectors.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "job_part_vectors")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub job_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub content_hash: String,
        /// Little-endian f32s.
        pub embedding: Vec<u8>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod library {
    use sea_orm::entity::prelude::*;

    /// A collection of books; access is given per library.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "libraries")]
    pub struct Model {
        /// A short name chosen when it is made (`default`, `physics-team`).
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub name: String,
        pub description: Option<String>,
        pub created_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod api_key_library {
    use sea_orm::entity::prelude::*;

    /// A library a key restricted to libraries reaches, and what it may do there.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "api_key_libraries")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub key_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub library_id: String,
        /// `read`, `write` or `admin` of that library.
        pub scope: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod audit_entry {
    use sea_orm::entity::prelude::*;

    /// One change someone made: a write, a delete, a key or access change.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "audit_log")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub at: DateTimeUtc,
        /// The key that did it (`bootstrap`, `local`, or a key's id).
        pub key_id: String,
        /// What was done, as `noun.verb` (`book.create`, `book.delete`, `key.create`).
        pub action: String,
        pub library_id: Option<String>,
        pub book_id: Option<String>,
        /// What else it was done to (a key, a job, a webhook), by id.
        pub target: Option<String>,
        pub request_id: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
