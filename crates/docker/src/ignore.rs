//! `.dockerignore` with Docker's rules (moby's `patternmatcher`): one pattern a line, `#`
//! comments, `!` re-includes, patterns are cleaned and anchored at the context root (a leading
//! `/` is dropped), `*` and `?` stay inside one path component, `**` spans any number of
//! components, the last pattern that matches wins, and a pattern that matches a directory
//! matches everything below it. Glob matching itself is `globset`'s.

use std::path::Path;

use globset::{GlobBuilder, GlobMatcher};

use crate::error::{Error, Result};

#[derive(Debug, Clone)]
struct Pattern {
    matcher: GlobMatcher,
    negated: bool,
}

/// The compiled patterns of a `.dockerignore` file.
#[derive(Debug, Clone, Default)]
pub struct DockerIgnore {
    patterns: Vec<Pattern>,
}

impl DockerIgnore {
    /// Parses the text of a `.dockerignore` file.
    pub fn parse(text: &str) -> Result<Self> {
        let mut patterns = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (negated, raw) = match line.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, line),
            };
            let cleaned = clean(raw);
            if cleaned.is_empty() {
                continue;
            }
            let matcher = GlobBuilder::new(&cleaned)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|source| Error::IgnorePattern {
                    pattern: raw.to_owned(),
                    source,
                })?
                .compile_matcher();
            patterns.push(Pattern { matcher, negated });
        }
        Ok(DockerIgnore { patterns })
    }

    /// Reads `<dir>/.dockerignore`; no file means no pattern.
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join(".dockerignore");
        match std::fs::read_to_string(&path) {
            Ok(text) => Self::parse(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(source) => Err(Error::Context { path, source }),
        }
    }

    /// Whether there is any `!` pattern (then an excluded directory must still be walked).
    pub fn has_negations(&self) -> bool {
        self.patterns.iter().any(|p| p.negated)
    }

    /// Whether the `/`-separated path relative to the context root is excluded.
    pub fn is_excluded(&self, rel: &str) -> bool {
        let mut excluded = false;
        for pattern in &self.patterns {
            if matches_or_parent_matches(&pattern.matcher, rel) {
                excluded = !pattern.negated;
            }
        }
        excluded
    }
}

fn matches_or_parent_matches(matcher: &GlobMatcher, rel: &str) -> bool {
    if matcher.is_match(rel) {
        return true;
    }
    rel.char_indices()
        .filter(|&(_, c)| c == '/')
        .any(|(i, _)| matcher.is_match(&rel[..i]))
}

/// Go's `filepath.Clean` on a `/`-separated pattern, then the leading `/` dropped.
fn clean(pattern: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in pattern.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    parts.join("/")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn ig(text: &str) -> DockerIgnore {
        DockerIgnore::parse(text).unwrap()
    }

    #[test]
    fn anchored_at_root_unlike_gitignore() {
        let i = ig("node_modules\n");
        assert!(i.is_excluded("node_modules"));
        assert!(i.is_excluded("node_modules/a/b.js"));
        // gitignore would exclude this one; Docker does not.
        assert!(!i.is_excluded("packages/app/node_modules"));
    }

    #[test]
    fn double_star_spans_components() {
        let i = ig("**/node_modules\n**/*.log\n");
        assert!(i.is_excluded("packages/app/node_modules/x.js"));
        assert!(i.is_excluded("node_modules"));
        assert!(i.is_excluded("a/b/c.log"));
        assert!(i.is_excluded("c.log"));
        assert!(!i.is_excluded("a/b/c.txt"));
    }

    #[test]
    fn star_stays_in_one_component() {
        let i = ig("*.md\ndocs/*.txt\n");
        assert!(i.is_excluded("README.md"));
        assert!(!i.is_excluded("docs/README.md"));
        assert!(i.is_excluded("docs/a.txt"));
        assert!(!i.is_excluded("docs/sub/a.txt"));
    }

    #[test]
    fn last_match_wins_and_negation_reincludes() {
        let i = ig("# comment\n*.md\n!README.md\n");
        assert!(i.is_excluded("CHANGES.md"));
        assert!(!i.is_excluded("README.md"));
        assert!(i.has_negations());
        let i = ig("!README.md\n*.md\n");
        assert!(i.is_excluded("README.md"));
    }

    #[test]
    fn patterns_are_cleaned() {
        let i = ig("/dist/\n./tmp\nbuild/../out\n  spaced  \n");
        assert!(i.is_excluded("dist/main.js"));
        assert!(i.is_excluded("tmp"));
        assert!(i.is_excluded("out/x"));
        assert!(!i.is_excluded("build/x"));
        assert!(i.is_excluded("spaced"));
    }

    #[test]
    fn question_mark_and_classes() {
        let i = ig("file?.txt\n[ab].bin\n");
        assert!(i.is_excluded("file1.txt"));
        assert!(!i.is_excluded("file10.txt"));
        assert!(i.is_excluded("a.bin"));
        assert!(!i.is_excluded("c.bin"));
    }

    #[test]
    fn invalid_pattern_is_an_error_naming_it() {
        let err = DockerIgnore::parse("[unclosed\n").unwrap_err();
        assert!(err.to_string().contains("[unclosed"), "{err}");
    }
}
