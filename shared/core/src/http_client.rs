//! What every HTTP client of a model server shares (the chat model, the embedding endpoint,
//! the reranker): one way to build the client with its deadlines, and one way to quote an
//! error body in a message.

use std::time::Duration;

use anyhow::Context;

/// How much of an error body goes into an error message.
pub(crate) const BODY_EXCERPT_CHARS: usize = 300;

/// A client whose requests end after `timeout` (the answer included) and whose connection
/// attempts after `timeout` or 10 s, whichever is less.
pub(crate) fn client_with_deadline(timeout: Duration) -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .user_agent(concat!("hbi/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("building the HTTP client")
}

/// The first characters of an answer's body, on one line, for an error message.
pub(crate) fn body_excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    let mut out: String = text
        .chars()
        .take(BODY_EXCERPT_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.chars().count() > BODY_EXCERPT_CHARS {
        out.push('…');
    }
    if out.is_empty() { "(empty body)".to_owned() } else { out }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_are_short_single_lines() {
        let long = "é\n".repeat(BODY_EXCERPT_CHARS);
        let out = body_excerpt(long.as_bytes());
        assert_eq!(out.chars().count(), BODY_EXCERPT_CHARS + 1);
        assert!(!out.contains('\n'));
        assert_eq!(body_excerpt(b"  short  "), "short");
        assert_eq!(body_excerpt(b""), "(empty body)");
    }
}
