//! Secret masking: every occurrence of a secret value becomes `***`.
//!
//! One [`Masker`] is built per run from the secret values and shared by every output channel
//! (live output, per-stage logs, events, summaries, plans and JSON). It masks each secret in
//! every form of [`secret_forms`] (the value, its base64, URL-safe base64 and JSON-escaped
//! forms), the same forms the GitHub Actions glue registers with `::add-mask::`.

use std::borrow::Cow;
use std::sync::Arc;

use aho_corasick::{AhoCorasick, MatchKind};

/// What a masked secret is shown as.
pub const MASK: &str = "***";

/// A secret and the forms of it that tools commonly print instead: standard base64 (basic-auth
/// headers, Docker config `auth` fields), URL-safe base64 with and without padding, and the
/// JSON-escaped form (inside a JSON string). Empty for an empty or blank value.
pub fn secret_forms(secret: &str) -> Vec<String> {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
    if secret.trim().is_empty() {
        return Vec::new();
    }
    let mut forms = vec![
        secret.to_owned(),
        STANDARD.encode(secret.as_bytes()),
        URL_SAFE.encode(secret.as_bytes()),
        URL_SAFE_NO_PAD.encode(secret.as_bytes()),
    ];
    if let Ok(json) = serde_json::to_string(secret) {
        let inner = &json[1..json.len() - 1];
        forms.push(inner.to_owned());
    }
    let mut seen = std::collections::HashSet::new();
    forms.retain(|f| seen.insert(f.clone()));
    forms
}

/// Replaces secret values in text (leftmost-longest, so overlapping secrets mask fully).
#[derive(Clone, Default)]
pub struct Masker {
    matcher: Option<Arc<AhoCorasick>>,
    count: usize,
    /// Length in bytes of the longest pattern.
    longest: usize,
}

impl std::fmt::Debug for Masker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Masker({} patterns)", self.count)
    }
}

impl Masker {
    /// A masker for these secret values, in every form of [`secret_forms`]. Empty values are
    /// ignored; a multi-line form is also masked line by line, since output is streamed one
    /// line at a time.
    pub fn new<I, S>(secrets: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut patterns: Vec<String> = Vec::new();
        for secret in secrets {
            let secret = secret.as_ref();
            if secret.is_empty() {
                continue;
            }
            patterns.push(secret.to_owned());
            for form in secret_forms(secret) {
                if form.contains('\n') {
                    patterns.extend(
                        form.lines()
                            .map(str::trim_end)
                            .filter(|l| !l.trim().is_empty())
                            .map(str::to_owned),
                    );
                }
                patterns.push(form);
            }
        }
        patterns.sort();
        patterns.dedup();
        if patterns.is_empty() {
            return Self::default();
        }
        let count = patterns.len();
        let longest = patterns.iter().map(String::len).max().unwrap_or(0);
        match AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(&patterns)
        {
            Ok(matcher) => Self {
                matcher: Some(Arc::new(matcher)),
                count,
                longest,
            },
            Err(error) => {
                // Only possible past the automaton's size limits: fail closed by masking
                // everything rather than printing a secret.
                tracing::error!(%error, "cannot build the secret masker; all output will be hidden");
                Self {
                    matcher: None,
                    count: usize::MAX,
                    longest,
                }
            }
        }
    }

    /// Whether there is anything to mask.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Length in bytes of the longest secret (0 when there is none): text cut into pieces must
    /// see this many bytes minus one past a cut to know that no secret crosses it.
    pub fn longest(&self) -> usize {
        self.longest
    }

    /// The first offset from `at` on where `bytes` can be cut without splitting a secret: `at`
    /// itself, or the end of the secret that crosses it. `bytes` must extend
    /// [`Masker::longest`] − 1 bytes past `at` (or to the end of the text) for the answer to hold.
    pub fn cut_point(&self, bytes: &[u8], at: usize) -> usize {
        let Some(matcher) = &self.matcher else {
            return at;
        };
        for found in matcher.find_iter(bytes) {
            if found.start() >= at {
                break;
            }
            if found.end() > at {
                return found.end();
            }
        }
        at
    }

    pub fn mask<'a>(&self, text: &'a str) -> Cow<'a, str> {
        match &self.matcher {
            Some(matcher) if matcher.is_match(text) => {
                Cow::Owned(matcher.replace_all(text, &vec![MASK; self.count]))
            }
            Some(_) => Cow::Borrowed(text),
            None if self.count == usize::MAX => Cow::Borrowed(MASK),
            None => Cow::Borrowed(text),
        }
    }

    /// Masks every string (and object key) in a JSON value.
    pub fn mask_json(&self, value: &mut serde_json::Value) {
        if self.is_empty() {
            return;
        }
        match value {
            serde_json::Value::String(s) => {
                if let Cow::Owned(masked) = self.mask(s) {
                    *s = masked;
                }
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(|v| self.mask_json(v)),
            serde_json::Value::Object(map) => {
                let old = std::mem::take(map);
                for (k, mut v) in old {
                    self.mask_json(&mut v);
                    map.insert(self.mask(&k).into_owned(), v);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn masks_every_occurrence_longest_first() {
        let m = Masker::new(["hunter2", "hunter2-extra", ""]);
        assert_eq!(m.mask("a hunter2 b hunter2-extra c"), "a *** b *** c");
        assert_eq!(m.mask("nothing here"), "nothing here");
    }

    #[test]
    fn multi_line_secret_masked_per_line() {
        let m = Masker::new(["line-one\nline-two"]);
        assert_eq!(m.mask("x line-two y"), "x *** y");
        assert_eq!(m.mask("line-one\nline-two"), "***");
    }

    #[test]
    fn cut_point_moves_past_a_crossing_secret() {
        let m = Masker::new(["abcdef", "cd"]);
        // The longest registered form is the base64 of `abcdef` (`YWJjZGVm`).
        assert_eq!(m.longest(), 8);
        assert_eq!(m.cut_point(b"xxabcdefyy", 4), 8);
        assert_eq!(m.cut_point(b"xxabcdefyy", 2), 2);
        assert_eq!(m.cut_point(b"xxabcdefyy", 8), 8);
        assert_eq!(m.cut_point(b"xxcdyy", 3), 4);
        assert_eq!(Masker::default().cut_point(b"abc", 1), 1);
    }

    #[test]
    fn json_strings_and_keys() {
        let m = Masker::new(["s3cret"]);
        let mut v = serde_json::json!({"k": ["s3cret", 1], "s3cret": "x"});
        m.mask_json(&mut v);
        assert_eq!(v, serde_json::json!({"k": ["***", 1], "***": "x"}));
    }

    #[test]
    fn derived_forms_are_masked_too() {
        let secret = "pa\"ss\\w?>rd";
        let m = Masker::new([secret]);
        let json = serde_json::to_string(secret).unwrap();
        for form in [
            "cGEic3Ncdz8+cmQ=", // base64
            "cGEic3Ncdz8-cmQ=", // URL-safe base64
            "cGEic3Ncdz8-cmQ",  // URL-safe base64 without padding
            &json[1..json.len() - 1],
        ] {
            assert_eq!(m.mask(&format!("a {form} b")), "a *** b", "{form}");
        }
        assert_eq!(secret_forms(secret).len(), 5);
        assert!(secret_forms(" ").is_empty());
    }
}
