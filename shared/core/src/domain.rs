//! Domain vocabulary shared by the API, the worker and the stores.

use std::fmt;
use std::str::FromStr;

use sea_orm::{DeriveActiveEnum, EnumIter};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A SHA-256 of a file's bytes, lower-case hex. Parsing guarantees the shape, so a
/// `ContentHash` is always safe to use as a blob key or a path component.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ContentHash(String);

impl ContentHash {
    pub fn of(bytes: &[u8]) -> Self {
        Self(hex::encode(Sha256::digest(bytes)))
    }

    pub fn from_digest(digest: &[u8]) -> Self {
        Self(hex::encode(digest))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for ContentHash {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            Ok(Self(s.to_owned()))
        } else {
            Err(format!("not a sha256 hex digest: {s:?}"))
        }
    }
}

impl TryFrom<String> for ContentHash {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<ContentHash> for String {
    fn from(hash: ContentHash) -> Self {
        hash.0
    }
}

impl fmt::Display for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        // Stored as its text in a text column: entities hold the enum, the database the word.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, EnumIter, DeriveActiveEnum)]
        #[serde(rename_all = "snake_case")]
        #[sea_orm(rs_type = "String", db_type = "Text")]
        pub enum $name { $(#[sea_orm(string_value = $text)] $variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(format!("unknown {}: {other:?}", stringify!($name))),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

string_enum! {
    /// `queued -> running -> succeeded | failed (retry scheduled) | dead (in the DLQ) | cancelled`.
    JobState {
        Queued => "queued",
        Running => "running",
        Succeeded => "succeeded",
        Failed => "failed",
        Dead => "dead",
        Cancelled => "cancelled",
    }
}

impl JobState {
    /// The states of a job that may still run (queued, running, awaiting its retry): a book
    /// has one such job at most, enforced by the index `idx_jobs_one_live_per_book`.
    pub const LIVE: [JobState; 3] = [JobState::Queued, JobState::Running, JobState::Failed];

    /// A job in one of these states will never run again by itself.
    pub fn is_final(self) -> bool {
        matches!(self, JobState::Succeeded | JobState::Dead | JobState::Cancelled)
    }
}

string_enum! {
    /// Pipeline stages, in the order they run.
    Stage {
        Validate => "validate",
        Store => "store",
        ExtractText => "extract_text",
        Toc => "toc",
        Index => "index",
        Chunk => "chunk",
        Embed => "embed",
        IndexText => "index_text",
        IndexVectors => "index_vectors",
        Graph => "graph",
        Quality => "quality",
    }
}

string_enum! {
    /// What a book is ready for.
    BookStatus {
        Created => "created",
        Queued => "queued",
        Processing => "processing",
        Ready => "ready",
        NeedsReview => "needs_review",
        Failed => "failed",
    }
}

/// What travels on the queue: only ids. Everything else is read from the database, so a
/// message delivered twice, late or to another replica is harmless.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobMessage {
    pub job_id: String,
    /// One part of the job (a range of a large book's chunks to embed, see
    /// `jobs::parts`), not the job itself. Absent in the messages of earlier versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part: Option<u32>,
}

impl JobMessage {
    /// Run the job.
    pub fn job(job_id: impl Into<String>) -> Self {
        Self {
            job_id: job_id.into(),
            part: None,
        }
    }

    /// Run part `part` of the job.
    pub fn part(job_id: impl Into<String>, part: u32) -> Self {
        Self {
            job_id: job_id.into(),
            part: Some(part),
        }
    }
}

/// A printed page label as every store keeps it: without control characters. A /PageLabels
/// prefix may hold any byte, and PostgreSQL text and FalkorDB cannot carry a NUL; a label is
/// a short printed string, so nothing readable is lost.
pub fn clean_label(label: &str) -> String {
    label.chars().filter(|c| !c.is_control()).collect()
}

/// A new random id for books and jobs (time-ordered, so listings sort by creation).
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Accepts only canonical UUIDs as resource ids, so an id from a URL is safe anywhere.
pub fn parse_id(raw: &str) -> Option<String> {
    uuid::Uuid::parse_str(raw).ok().map(|id| id.to_string())
}

/// An id that was not a UUID; the caller answers "not found", as no such resource can exist.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an id: {0:?}")]
pub struct NotAnId(String);

macro_rules! resource_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub struct $name(String);

        impl $name {
            /// The canonical (lower-case, hyphenated) text every store keys on.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = NotAnId;
            fn from_str(raw: &str) -> Result<Self, Self::Err> {
                parse_id(raw).map(Self).ok_or_else(|| NotAnId(raw.chars().take(64).collect()))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

resource_id! {
    /// A book's id, parsed at the edge: holding one means it is a canonical UUID.
    BookId
}

resource_id! {
    /// A job's id, parsed at the edge: holding one means it is a canonical UUID.
    JobId
}

/// The languages a book is written in, as Tesseract names its models (ISO 639-2/T or 639-3
/// codes, with a script where Tesseract has one: `chi_sim`, `deu_latf`), joined by `+`: what
/// OCR reads its scanned pages with. Parsed from ISO 639-1 or 639-2 codes in any case, so
/// `en`, `ger`, `DE+en` and `eng+deu` all mean what they say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookLanguages(String);

impl BookLanguages {
    /// Most languages a book may name.
    pub const MOST: usize = 8;

    /// Tesseract's names, `+`-joined.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for BookLanguages {
    fn default() -> Self {
        Self("eng".to_owned())
    }
}

impl fmt::Display for BookLanguages {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// ISO 639-1 codes and the ISO 639-2/B codes that differ from 639-2/T, to Tesseract's names.
const LANGUAGE_ALIASES: &[(&str, &str)] = &[
    ("af", "afr"),
    ("ar", "ara"),
    ("bg", "bul"),
    ("bn", "ben"),
    ("ca", "cat"),
    ("cs", "ces"),
    ("cy", "cym"),
    ("da", "dan"),
    ("de", "deu"),
    ("el", "ell"),
    ("en", "eng"),
    ("eo", "epo"),
    ("es", "spa"),
    ("et", "est"),
    ("eu", "eus"),
    ("fa", "fas"),
    ("fi", "fin"),
    ("fr", "fra"),
    ("ga", "gle"),
    ("gl", "glg"),
    ("he", "heb"),
    ("hi", "hin"),
    ("hr", "hrv"),
    ("hu", "hun"),
    ("hy", "hye"),
    ("id", "ind"),
    ("is", "isl"),
    ("it", "ita"),
    ("ja", "jpn"),
    ("ka", "kat"),
    ("ko", "kor"),
    ("la", "lat"),
    ("lt", "lit"),
    ("lv", "lav"),
    ("mk", "mkd"),
    ("ms", "msa"),
    ("mt", "mlt"),
    ("nb", "nor"),
    ("nl", "nld"),
    ("no", "nor"),
    ("pl", "pol"),
    ("pt", "por"),
    ("ro", "ron"),
    ("ru", "rus"),
    ("sk", "slk"),
    ("sl", "slv"),
    ("sq", "sqi"),
    ("sr", "srp"),
    ("sv", "swe"),
    ("ta", "tam"),
    ("th", "tha"),
    ("tr", "tur"),
    ("uk", "ukr"),
    ("ur", "urd"),
    ("vi", "vie"),
    ("zh", "chi_sim"),
    ("alb", "sqi"),
    ("arm", "hye"),
    ("baq", "eus"),
    ("bur", "mya"),
    ("chi", "chi_sim"),
    ("cze", "ces"),
    ("dut", "nld"),
    ("fre", "fra"),
    ("geo", "kat"),
    ("ger", "deu"),
    ("gre", "ell"),
    ("ice", "isl"),
    ("mac", "mkd"),
    ("may", "msa"),
    ("per", "fas"),
    ("rum", "ron"),
    ("slo", "slk"),
    ("tib", "bod"),
    ("wel", "cym"),
];

impl FromStr for BookLanguages {
    type Err = String;
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let mut names: Vec<String> = Vec::new();
        for part in raw.split('+') {
            let code = part.trim().to_ascii_lowercase();
            let (language, script) = code
                .split_once('_')
                .map_or((code.as_str(), None), |(l, s)| (l, Some(s)));
            let letters = |text: &str, lengths: &[usize]| {
                lengths.contains(&text.len()) && text.bytes().all(|b| b.is_ascii_lowercase())
            };
            if !letters(language, &[2, 3]) || script.is_some_and(|script| !letters(script, &[3, 4])) {
                return Err(format!(
                    "{:?} is not a language code: give ISO 639 codes such as `en`, `deu` or `chi_sim`, joined by `+`",
                    part.chars().take(32).collect::<String>()
                ));
            }
            let name = match (LANGUAGE_ALIASES.iter().find(|(alias, _)| *alias == language), script) {
                (Some((_, name)), None) => (*name).to_owned(),
                (Some((_, name)), Some(script)) => format!("{}_{script}", name.split('_').next().unwrap_or(name)),
                (None, _) if language.len() == 2 => {
                    return Err(format!(
                        "{language:?} is not an ISO 639-1 code this server knows: give its three-letter ISO 639-2 code"
                    ));
                }
                (None, None) => language.to_owned(),
                (None, Some(script)) => format!("{language}_{script}"),
            };
            if !names.contains(&name) {
                names.push(name);
            }
        }
        if names.len() > Self::MOST {
            return Err(format!("at most {} languages", Self::MOST));
        }
        Ok(Self(names.join("+")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn book_languages_become_tesseract_names() {
        for (given, expected) in [
            ("eng", "eng"),
            ("en", "eng"),
            ("DE+en", "deu+eng"),
            ("ger", "deu"),
            ("eng+deu+eng", "eng+deu"),
            ("zh", "chi_sim"),
            ("chi_tra", "chi_tra"),
            (" fra + lat ", "fra+lat"),
            ("deu_latf", "deu_latf"),
            ("frk", "frk"),
        ] {
            assert_eq!(
                given.parse::<BookLanguages>().map(|l| l.to_string()),
                Ok(expected.to_owned()),
                "{given}"
            );
        }
        for refused in [
            "", "english", "e", "xx", "en-US", "eng+", "../eng", "eng;rm", "eng_x", "eng\0",
        ] {
            assert!(refused.parse::<BookLanguages>().is_err(), "{refused:?} was taken");
        }
        let many = ["eng", "deu", "fra", "ita", "spa", "por", "nld", "swe", "dan"].join("+");
        assert!(many.parse::<BookLanguages>().is_err());
        assert_eq!(BookLanguages::default().as_str(), "eng");
    }

    #[test]
    fn content_hash_rejects_anything_but_lower_hex_sha256() {
        assert!("../../etc/passwd".parse::<ContentHash>().is_err());
        assert!("ABCDEF".repeat(11)[..64].parse::<ContentHash>().is_err());
        let hash = ContentHash::of(b"hello");
        assert_eq!(
            hash.as_str(),
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(hash.as_str().parse::<ContentHash>(), Ok(hash));
    }

    #[test]
    fn states_round_trip_through_text() {
        for state in JobState::ALL {
            assert_eq!(state.as_str().parse::<JobState>(), Ok(*state));
        }
        assert!("dead".parse::<JobState>().is_ok_and(JobState::is_final));
        assert!(!JobState::Failed.is_final());
    }
}

/// The books a search may find pages and chunks in: every book, or only some (one book, or
/// the books of the libraries an API key may read). Stores filter by it before they rank,
/// so that `k` hits come back from the books allowed and none from the others.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum BookFilter {
    #[default]
    All,
    Only(std::sync::Arc<std::collections::BTreeSet<String>>),
}

impl BookFilter {
    pub fn one(book_id: &str) -> Self {
        Self::Only(std::sync::Arc::new(std::iter::once(book_id.to_owned()).collect()))
    }

    pub fn among(book_ids: impl IntoIterator<Item = String>) -> Self {
        Self::Only(std::sync::Arc::new(book_ids.into_iter().collect()))
    }

    pub fn admits(&self, book_id: &str) -> bool {
        match self {
            Self::All => true,
            Self::Only(books) => books.contains(book_id),
        }
    }

    /// The book, when the filter names exactly one.
    pub fn single(&self) -> Option<&str> {
        match self {
            Self::Only(books) if books.len() == 1 => books.first().map(String::as_str),
            _ => None,
        }
    }

    /// Whether no book at all is allowed (a key that reads no library).
    pub fn admits_none(&self) -> bool {
        matches!(self, Self::Only(books) if books.is_empty())
    }

    /// The allowed ids as one SQL text parameter, `id,id,…` (ids are UUIDs: no commas), for
    /// `= ANY(string_to_array($n, ','))` on PostgreSQL; `None` for every book.
    pub fn comma_separated(&self) -> Option<String> {
        match self {
            Self::All => None,
            Self::Only(books) => Some(books.iter().map(String::as_str).collect::<Vec<_>>().join(",")),
        }
    }

    /// The allowed ids as a JSON array, for `IN (SELECT value FROM json_each(?))` on
    /// SQLite (one parameter, however many books); `None` for every book.
    pub fn json_array(&self) -> Option<String> {
        match self {
            Self::All => None,
            Self::Only(books) => Some(serde_json::Value::from(books.iter().cloned().collect::<Vec<_>>()).to_string()),
        }
    }
}
