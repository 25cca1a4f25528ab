//! The live tuning knobs (SPEC section 5, the original HBI's RAGConfig plus search weights and
//! quality-gate thresholds): one validated set, persisted as one JSON row of the `settings`
//! table (key `knobs`), so every replica reads the same values. `GET/PUT /config` expose it.
//!
//! Reads go through a short in-process cache ([`CACHE_TTL`]): a change made through another
//! replica is seen within that time. Writes are compare-and-swap on the stored text, so two
//! partial updates made at once on two replicas both land.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, Set, TryInsertResult};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::db::entities::setting;

/// The `settings` row that holds the knobs.
pub const KNOBS_KEY: &str = "knobs";

/// How long a replica trusts the knobs it read: another replica's change is seen within it.
pub const CACHE_TTL: Duration = Duration::from_secs(1);

/// The one table of live knobs: for each its doc, name, Rust type, default, JSON kind and
/// inclusive range, written as floats (a boolean has none). It calls `$then!` with the rows, so that each shape
/// of a knob is made from it: [`Knobs`], its defaults and its validation here, the API's
/// `Config` and `ConfigUpdate` schemas in `api/src/routes/config.rs`. A knob is added here,
/// and only here (README's knob table is checked against it by a test).
#[macro_export]
macro_rules! knob_table {
    ($then:ident) => {
        $then! {
            /// Chunks retrieved for a question (`top_k` of POST /query overrides it per request).
            retrieval_top_k: u32 = 10, Integer, 1.0 ..= 100.0;
            /// Fewest relevant chunks needed before the language model is asked (at most
            /// `retrieval_top_k`).
            min_chunks: u32 = 2, Integer, 1.0 ..= 100.0;
            /// Answers whose confidence is below this are replaced by the fallback message.
            confidence_threshold: f64 = 0.7, Number, 0.0 ..= 1.0;
            /// A retrieved chunk counts as relevant from this normalised score (0..1) on.
            relevance_threshold: f64 = 0.5, Number, 0.0 ..= 1.0;
            /// Characters of retrieved book text put in the prompt.
            max_context_length: u32 = 4000, Integer, 100.0 ..= 32000.0;
            /// Sampling temperature of the language model.
            temperature: f64 = 0.1, Number, 0.0 ..= 2.0;
            /// When false, the retrieval and confidence gates no longer withhold an answer.
            enable_fallback: bool = true, Boolean;
            /// Share of the keyword (full-text) ranking in hybrid search; keyword mode weighs it 1.
            keyword_weight: f64 = 1.0, Number, 0.0 ..= 10.0;
            /// Share of the semantic (vector) ranking in hybrid search; semantic mode weighs it 1.
            /// Half the keyword weight by default: chosen by `scripts/evaluate_search.py`, where
            /// equal weights let pages both lists merely agree on (a printed contents page)
            /// outrank keyword's best page.
            semantic_weight: f64 = 0.5, Number, 0.0 ..= 10.0;
            /// Weight of the back-of-book index-term boost, in every search mode.
            index_boost_weight: f64 = 0.25, Number, 0.0 ..= 10.0;
            /// The `k` of reciprocal rank fusion: higher flattens the rank differences.
            rrf_k: u32 = 60, Integer, 1.0 ..= 1000.0;
            /// Candidates (the best of the fused lists) that the reranker scores again, when
            /// `reranker.url` is set.
            rerank_candidates: u32 = 20, Integer, 1.0 ..= 100.0;
            /// Quality gate: least share of pages with text.
            min_text_coverage: f64 = 0.9, Number, 0.0 ..= 1.0;
            /// Quality gate: highest share of unreadable (garbage) characters.
            max_garbage_ratio: f64 = 0.02, Number, 0.0 ..= 1.0;
            /// Quality gate: least share of index locators whose page shows the entry.
            min_index_support_rate: f64 = 0.8, Number, 0.0 ..= 1.0;
            /// Quality gate of a book read by OCR: least mean word confidence (0..1).
            min_ocr_confidence: f64 = 0.7, Number, 0.0 ..= 1.0;
        }
    };
}

/// Makes [`Knobs`], its `Default` and [`FIELDS`] from the rows of [`knob_table!`].
macro_rules! define_knobs {
    ($(
        $(#[doc = $doc:literal])*
        $name:ident : $ty:ty = $default:expr, $kind:ident $(, $min:tt ..= $max:tt)?;
    )*) => {
        /// Every live knob. Stored rows may miss knobs added later (they take their defaults)
        /// and may hold knobs this version does not know (they are ignored), so replicas of two
        /// versions can share one database during a rolling update.
        #[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
        #[serde(default)]
        pub struct Knobs {
            $( $(#[doc = $doc])* pub $name: $ty, )*
        }

        impl Default for Knobs {
            fn default() -> Self {
                Self { $( $name: $default, )* }
            }
        }

        /// Name, JSON kind and inclusive range of every knob, in the table's order: what
        /// validation and partial updates read. (`min_chunks` is further bounded by
        /// `retrieval_top_k`.)
        pub const FIELDS: &[KnobField] = &[
            $( KnobField {
                name: stringify!($name),
                kind: KnobKind::$kind,
                range: define_knobs!(@range $($min, $max)?),
            }, )*
        ];
    };
    (@range $min:tt, $max:tt) => { Some(($min, $max)) };
    (@range) => { None };
}

/// The JSON kind of a knob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KnobKind {
    Integer,
    Number,
    Boolean,
}

/// One row of the knob table, as validation reads it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KnobField {
    pub name: &'static str,
    pub kind: KnobKind,
    /// Inclusive bounds; `None` for a boolean.
    pub range: Option<(f64, f64)>,
}

knob_table!(define_knobs);

/// One problem with a knob, in the terms of FastAPI's (pydantic's) validation errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnobIssue {
    /// The knob; empty when the problem is the whole body.
    pub field: String,
    pub message: String,
    /// pydantic's error type: `int_type`, `greater_than_equal`, `extra_forbidden`...
    pub kind: &'static str,
}

impl std::fmt::Display for KnobIssue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "knob `{}`: {}", self.field, self.message)
        }
    }
}

impl std::error::Error for KnobIssue {}

fn issue(field: &str, kind: &'static str, message: String) -> KnobIssue {
    KnobIssue {
        field: field.to_owned(),
        message,
        kind,
    }
}

/// Writes a range bound as pydantic does: `1`, `0.5`.
fn bound(value: f64) -> String {
    format!("{value}")
}

/// Checks one value against a knob's kind and range; returns the value to store.
fn check_value(field: &KnobField, value: &Value) -> Result<Value, KnobIssue> {
    let KnobField {
        name: field,
        kind,
        range,
    } = *field;
    let number = match kind {
        KnobKind::Boolean => {
            return value
                .as_bool()
                .map(Value::Bool)
                .ok_or_else(|| issue(field, "bool_type", "Input should be a valid boolean".to_owned()));
        }
        KnobKind::Integer => match (value.as_i64(), value.as_f64()) {
            (Some(integer), _) => integer as f64,
            // 10.0 is an integer, as pydantic reads it.
            (None, Some(float)) if float.fract() == 0.0 && float.abs() < 1e15 => float,
            _ => return Err(issue(field, "int_type", "Input should be a valid integer".to_owned())),
        },
        KnobKind::Number => value
            .as_f64()
            .ok_or_else(|| issue(field, "float_type", "Input should be a valid number".to_owned()))?,
    };
    let (min, max) = range.unwrap_or((f64::NEG_INFINITY, f64::INFINITY));
    if number < min {
        return Err(issue(
            field,
            "greater_than_equal",
            format!("Input should be greater than or equal to {}", bound(min)),
        ));
    }
    if number > max {
        return Err(issue(
            field,
            "less_than_equal",
            format!("Input should be less than or equal to {}", bound(max)),
        ));
    }
    Ok(match kind {
        KnobKind::Integer => Value::from(number as i64),
        _ => Value::from(number),
    })
}

impl Knobs {
    fn as_map(&self) -> Map<String, Value> {
        match serde_json::to_value(self) {
            Ok(Value::Object(map)) => map,
            // A struct of numbers and booleans always serialises to an object.
            _ => Map::new(),
        }
    }

    /// Every problem of this set: a value out of its range, `min_chunks` above `retrieval_top_k`.
    pub fn issues(&self) -> Vec<KnobIssue> {
        let map = self.as_map();
        let mut issues: Vec<KnobIssue> = FIELDS
            .iter()
            .filter_map(|field| {
                let value = map.get(field.name).unwrap_or(&Value::Null);
                check_value(field, value).err()
            })
            .collect();
        if self.min_chunks > self.retrieval_top_k {
            issues.push(issue(
                "min_chunks",
                "value_error",
                format!(
                    "Value error, min_chunks ({}) must be at most retrieval_top_k ({})",
                    self.min_chunks, self.retrieval_top_k
                ),
            ));
        }
        issues
    }

    /// The first problem, naming the knob.
    pub fn validate(&self) -> Result<(), KnobIssue> {
        match self.issues().into_iter().next() {
            Some(problem) => Err(problem),
            None => Ok(()),
        }
    }

    /// This set with the knobs of `patch` (a JSON object) changed, validated as a whole.
    /// Unknown knobs, values of the wrong type and values out of range are refused, all of
    /// them listed.
    pub fn patched(&self, patch: &Value) -> Result<Knobs, Vec<KnobIssue>> {
        let Some(patch) = patch.as_object() else {
            return Err(vec![issue(
                "",
                "model_attributes_type",
                "Input should be a valid dictionary or object to extract fields from".to_owned(),
            )]);
        };
        let mut merged = self.as_map();
        let mut issues = Vec::new();
        // In the order of the knobs, then the unknown ones, as pydantic lists them.
        for field in FIELDS {
            let Some(value) = patch.get(field.name) else {
                continue;
            };
            match check_value(field, value) {
                Ok(value) => {
                    merged.insert(field.name.to_owned(), value);
                }
                Err(problem) => issues.push(problem),
            }
        }
        for field in patch.keys() {
            if !FIELDS.iter().any(|known| known.name == field) {
                issues.push(issue(
                    field,
                    "extra_forbidden",
                    "Extra inputs are not permitted".to_owned(),
                ));
            }
        }
        if !issues.is_empty() {
            return Err(issues);
        }
        let knobs: Knobs = serde_json::from_value(Value::Object(merged))
            .map_err(|err| vec![issue("", "value_error", format!("Value error, {err}"))])?;
        let issues = knobs.issues();
        if issues.is_empty() { Ok(knobs) } else { Err(issues) }
    }

    /// Reads a stored row; `None` when it cannot be read or holds invalid values.
    fn from_stored(text: &str) -> Option<Knobs> {
        match serde_json::from_str::<Knobs>(text) {
            Ok(knobs) => match knobs.validate() {
                Ok(()) => Some(knobs),
                Err(problem) => {
                    tracing::error!(error = %problem, "the stored knobs are invalid; using the defaults");
                    None
                }
            },
            Err(err) => {
                tracing::error!(error = %err, "the stored knobs cannot be read; using the defaults");
                None
            }
        }
    }
}

/// Why a change of the knobs was not made.
#[derive(Debug, thiserror::Error)]
pub enum KnobsUpdateError {
    /// The request is wrong: each problem names its knob.
    #[error("invalid knobs: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<KnobIssue>),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] anyhow::Error),
}

impl From<sea_orm::DbErr> for KnobsUpdateError {
    fn from(err: sea_orm::DbErr) -> Self {
        Self::Store(err.into())
    }
}

#[derive(Debug, Clone, Copy)]
struct Cached {
    knobs: Knobs,
    read_at: Instant,
}

/// The knobs in the database, shared by every replica, with a short cache per process.
#[derive(Clone)]
pub struct KnobStore {
    db: DatabaseConnection,
    ttl: Duration,
    cache: Arc<Mutex<Option<Cached>>>,
}

/// Compare-and-swap attempts before a write gives up (only under a storm of writes).
const MAX_WRITE_ATTEMPTS: usize = 20;

impl KnobStore {
    pub fn new(db: DatabaseConnection) -> Self {
        Self::with_ttl(db, CACHE_TTL)
    }

    pub fn with_ttl(db: DatabaseConnection, ttl: Duration) -> Self {
        Self {
            db,
            ttl,
            cache: Arc::new(Mutex::new(None)),
        }
    }

    fn cached(&self) -> Option<Knobs> {
        let cache = self.cache.lock().ok()?;
        cache
            .filter(|cached| cached.read_at.elapsed() < self.ttl)
            .map(|cached| cached.knobs)
    }

    fn remember(&self, knobs: Knobs) {
        if let Ok(mut cache) = self.cache.lock() {
            *cache = Some(Cached {
                knobs,
                read_at: Instant::now(),
            });
        }
    }

    /// The knobs in force: from the cache when it is fresh, else from the database (the
    /// defaults while nobody has changed them, or when the stored row is unreadable).
    pub async fn get(&self) -> anyhow::Result<Knobs> {
        if let Some(knobs) = self.cached() {
            return Ok(knobs);
        }
        let (_, knobs) = self.read().await?;
        self.remember(knobs);
        Ok(knobs)
    }

    /// The stored row's text (when there is one) and the knobs it holds.
    async fn read(&self) -> anyhow::Result<(Option<String>, Knobs)> {
        let row = setting::Entity::find_by_id(KNOBS_KEY).one(&self.db).await?;
        Ok(match row {
            Some(row) => {
                let knobs = Knobs::from_stored(&row.value).unwrap_or_default();
                (Some(row.value), knobs)
            }
            None => (None, Knobs::default()),
        })
    }

    /// Replaces every knob (validated as a whole).
    pub async fn put(&self, knobs: Knobs) -> Result<Knobs, KnobsUpdateError> {
        let issues = knobs.issues();
        if !issues.is_empty() {
            return Err(KnobsUpdateError::Invalid(issues));
        }
        self.update(|_| Ok(knobs)).await
    }

    /// Changes the knobs named in `patch` (a JSON object) and keeps the others, reading the
    /// current values from the database (not the cache), so no other replica's change is lost.
    pub async fn patch(&self, patch: &Value) -> Result<Knobs, KnobsUpdateError> {
        self.update(|current| current.patched(patch)).await
    }

    async fn update(
        &self,
        change: impl Fn(&Knobs) -> Result<Knobs, Vec<KnobIssue>>,
    ) -> Result<Knobs, KnobsUpdateError> {
        for _ in 0..MAX_WRITE_ATTEMPTS {
            let (stored, current) = self.read().await?;
            let next = change(&current).map_err(KnobsUpdateError::Invalid)?;
            let text = serde_json::to_string(&next).map_err(anyhow::Error::from)?;
            let written = match stored {
                None => {
                    let row = setting::ActiveModel {
                        key: Set(KNOBS_KEY.to_owned()),
                        value: Set(text),
                        updated_at: Set(Utc::now()),
                    };
                    let result = setting::Entity::insert(row)
                        .on_conflict_do_nothing_on([setting::Column::Key])
                        .exec_without_returning(&self.db)
                        .await?;
                    matches!(result, TryInsertResult::Inserted(1))
                }
                Some(old) => {
                    let result = setting::Entity::update_many()
                        .col_expr(setting::Column::Value, Expr::value(text))
                        .col_expr(setting::Column::UpdatedAt, Expr::value(Utc::now()))
                        .filter(setting::Column::Key.eq(KNOBS_KEY))
                        .filter(setting::Column::Value.eq(old))
                        .exec(&self.db)
                        .await?;
                    result.rows_affected == 1
                }
            };
            if written {
                self.remember(next);
                tracing::info!(knobs = %serde_json::to_string(&next).unwrap_or_default(), "knobs changed");
                return Ok(next);
            }
            // Another replica wrote in between: read its values and apply the change again.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Err(KnobsUpdateError::Store(anyhow::anyhow!(
            "the knobs kept changing under concurrent writes; try again"
        )))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn defaults_are_valid_and_follow_the_spec() {
        let knobs = Knobs::default();
        assert_eq!(knobs.validate(), Ok(()));
        assert_eq!(knobs.retrieval_top_k, 10);
        assert_eq!(knobs.min_chunks, 2);
        assert_eq!(knobs.max_context_length, 4000);
        assert!(knobs.enable_fallback);
        // Every field is in the table, and the table names no other field.
        let map = knobs.as_map();
        assert_eq!(map.len(), FIELDS.len());
        assert!(FIELDS.iter().all(|field| map.contains_key(field.name)));
    }

    /// README's knob table (names, ranges, defaults) says what the code does: every knob of
    /// the table is in one row, with its range and default.
    #[test]
    fn the_readme_documents_every_knob_as_it_is() {
        let readme = include_str!("../../../README.md");
        let defaults = Knobs::default().as_map();
        let mut documented = Vec::new();
        for row in readme.lines().filter(|line| line.starts_with("| `")) {
            let cells: Vec<&str> = row.trim_matches('|').split('|').map(str::trim).collect();
            let names: Vec<&str> = cells[0].split(',').map(|name| name.trim().trim_matches('`')).collect();
            if !FIELDS.iter().any(|field| field.name == names[0]) {
                continue; // another table of the README
            }
            let [_, range, default_values, ..] = cells[..] else {
                panic!("a knob row of three cells at least: {row}");
            };
            let default_values: Vec<&str> = default_values.split(',').map(str::trim).collect();
            assert_eq!(default_values.len(), names.len(), "one default per knob: {row}");
            for (name, default) in names.iter().zip(default_values) {
                let field = FIELDS
                    .iter()
                    .find(|field| field.name == *name)
                    .unwrap_or_else(|| panic!("README names `{name}`, which is no knob"));
                documented.push(field.name);
                let actual = &defaults[field.name];
                match field.kind {
                    KnobKind::Boolean => {
                        assert_eq!(range, "bool", "{row}");
                        assert_eq!(actual.as_bool(), default.parse::<bool>().ok(), "{name}: {row}");
                    }
                    KnobKind::Integer | KnobKind::Number => {
                        let (min, max) = field.range.expect("a number has a range");
                        let (low, high) = range.split_once("..").expect("a range a..b");
                        assert_eq!(low.parse::<f64>().ok(), Some(min), "{name}: {row}");
                        // `min_chunks` is bounded by another knob, which the README names.
                        if let Ok(high) = high.parse::<f64>() {
                            assert_eq!(high, max, "{name}: {row}");
                        }
                        assert_eq!(actual.as_f64(), default.parse::<f64>().ok(), "{name}: {row}");
                    }
                }
            }
        }
        let mut expected: Vec<&str> = FIELDS.iter().map(|field| field.name).collect();
        expected.sort_unstable();
        documented.sort_unstable();
        assert_eq!(documented, expected, "each knob in README's table once");
    }

    #[test]
    fn validation_names_the_knob() {
        let knobs = Knobs {
            temperature: 2.5,
            ..Knobs::default()
        };
        let problem = knobs.validate().expect_err("temperature above 2");
        assert_eq!(problem.field, "temperature");
        assert_eq!(problem.kind, "less_than_equal");
        let knobs = Knobs {
            min_chunks: 11,
            ..Knobs::default()
        };
        let problem = knobs.validate().expect_err("min_chunks above retrieval_top_k");
        assert_eq!(problem.field, "min_chunks");
        assert!(problem.to_string().contains("retrieval_top_k (10)"), "{problem}");
    }

    #[test]
    fn a_patch_changes_only_its_knobs() -> Result<(), Vec<KnobIssue>> {
        let knobs = Knobs::default().patched(&json!({"retrieval_top_k": 20, "temperature": 0, "rrf_k": 30.0}))?;
        assert_eq!(knobs.retrieval_top_k, 20);
        assert_eq!(knobs.temperature, 0.0);
        assert_eq!(knobs.rrf_k, 30);
        assert_eq!(knobs.min_chunks, 2);
        assert_eq!(Knobs::default().patched(&json!({}))?, Knobs::default());
        Ok(())
    }

    #[test]
    fn a_bad_patch_lists_every_problem() {
        let issues = Knobs::default()
            .patched(&json!({
                "retrieval_top_k": "ten",
                "min_chunks": 1.5,
                "temperature": 3,
                "confidence_threshold": -0.1,
                "enable_fallback": "yes",
                "colour": "blue",
                "max_context_length": null,
            }))
            .expect_err("refused");
        let found: Vec<(&str, &str)> = issues.iter().map(|issue| (issue.field.as_str(), issue.kind)).collect();
        for expected in [
            ("retrieval_top_k", "int_type"),
            ("min_chunks", "int_type"),
            ("temperature", "less_than_equal"),
            ("confidence_threshold", "greater_than_equal"),
            ("enable_fallback", "bool_type"),
            ("colour", "extra_forbidden"),
            ("max_context_length", "int_type"),
        ] {
            assert!(found.contains(&expected), "{expected:?} in {found:?}");
        }
        let issues = Knobs::default()
            .patched(&json!({"retrieval_top_k": 1}))
            .expect_err("min_chunks 2 above top_k 1");
        assert_eq!(issues[0].field, "min_chunks");
        let issues = Knobs::default().patched(&json!([1, 2])).expect_err("not an object");
        assert_eq!(issues[0].kind, "model_attributes_type");
        let issues = Knobs::default().patched(&json!({"rrf_k": 1e300})).expect_err("huge");
        assert_eq!(issues[0].kind, "int_type");
    }

    #[test]
    fn stored_rows_of_other_versions_still_read() {
        let knobs = Knobs::from_stored(r#"{"retrieval_top_k": 7, "a_knob_from_the_future": 1}"#).expect("read");
        assert_eq!(knobs.retrieval_top_k, 7);
        assert_eq!(knobs.temperature, 0.1);
        assert_eq!(Knobs::from_stored("not json"), None);
        assert_eq!(Knobs::from_stored(r#"{"temperature": 9}"#), None);
    }

    async fn sqlite_store(dir: &tempfile::TempDir) -> anyhow::Result<DatabaseConnection> {
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("k.db").display());
        crate::db::connect(&url, 4, true).await
    }

    #[tokio::test]
    async fn two_stores_on_one_database_see_each_other() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let db = sqlite_store(&dir).await?;
        let first = KnobStore::with_ttl(db.clone(), Duration::from_millis(200));
        let second = KnobStore::with_ttl(db.clone(), Duration::from_millis(200));
        assert_eq!(first.get().await?, Knobs::default());
        assert_eq!(second.get().await?, Knobs::default());
        let changed = first.patch(&json!({"retrieval_top_k": 25})).await?;
        assert_eq!(changed.retrieval_top_k, 25);
        // The second store's cache still holds the old value for at most its TTL.
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(second.get().await?.retrieval_top_k, 25);
        // A partial change from the second keeps the first one's change.
        let changed = second.patch(&json!({"temperature": 0.5})).await?;
        assert_eq!((changed.retrieval_top_k, changed.temperature), (25, 0.5));
        // A fresh store (a restarted process) reads the same.
        let third = KnobStore::new(db);
        assert_eq!(third.get().await?, changed);
        Ok(())
    }

    #[tokio::test]
    async fn concurrent_partial_updates_all_land() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let db = sqlite_store(&dir).await?;
        let stores: Vec<KnobStore> = (0..4).map(|_| KnobStore::new(db.clone())).collect();
        let fields = ["keyword_weight", "semantic_weight", "index_boost_weight", "temperature"];
        let mut tasks = Vec::new();
        for (store, field) in stores.iter().cloned().zip(fields) {
            tasks.push(tokio::spawn(async move { store.patch(&json!({ field: 1.5 })).await }));
        }
        for task in tasks {
            task.await??;
        }
        let knobs = KnobStore::new(db).get().await?;
        assert_eq!(
            (
                knobs.keyword_weight,
                knobs.semantic_weight,
                knobs.index_boost_weight,
                knobs.temperature
            ),
            (1.5, 1.5, 1.5, 1.5)
        );
        Ok(())
    }

    #[tokio::test]
    async fn an_invalid_change_is_not_stored() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let store = KnobStore::new(sqlite_store(&dir).await?);
        let refused = store.patch(&json!({"temperature": 5})).await;
        assert!(matches!(refused, Err(KnobsUpdateError::Invalid(_))), "{refused:?}");
        let refused = store
            .put(Knobs {
                rrf_k: 0,
                ..Knobs::default()
            })
            .await;
        assert!(matches!(refused, Err(KnobsUpdateError::Invalid(_))), "{refused:?}");
        assert_eq!(store.get().await?, Knobs::default());
        Ok(())
    }
}
