//! `.dockerignore` exactly as the Docker CLI reads and applies it: moby's `ignorefile.ReadAll`
//! and `patternmatcher` (v0.6, the version docker CLI 28 vendors), ported behaviour for
//! behaviour (not code):
//!
//! - Reading: lines split at `\n` (a trailing `\r` dropped), a UTF-8 BOM stripped from the first
//!   line, a line whose first byte is `#` is a comment (an indented `#` is a pattern), then
//!   whitespace trimmed, `!` and the rest trimmed again, the pattern cleaned as Go's
//!   `filepath.Clean` does (so `../x` stays `../x` and matches nothing) and one leading `/`
//!   dropped. A bare `!` is the error `illegal exclusion pattern`.
//! - Syntax check: a pattern must be valid for Go's `filepath.Match` (`[]a]`, `[a-]`, a trailing
//!   `\` are errors), as `patternmatcher.New` checks.
//! - Matching: the pattern is translated to a regular expression the way `patternmatcher` does:
//!   `*` and `?` stay inside one path component, `**` spans components, `\` escapes the next
//!   character (so `dir\file.txt` holds the escape `\f`, a form feed, and matches nothing
//!   ordinary), `[...]` is a regular-expression class (`[!a]` is the class of `!` and `a`; `^`
//!   negates), `{a,b}` is literal. Patterns without wildcards compare exactly, a trailing `**`
//!   compares a prefix and a leading `**` a suffix, as upstream does.
//! - Deciding: the last pattern that matches the path or one of its parent folders wins, with
//!   upstream's shortcuts (an inclusion is not evaluated once the path is excluded, an exclusion
//!   not while it is included), and the walk's variant that reuses the parent folder's results
//!   ([`MatchInfo`]).
//!
//! Go's `regexp` syntax is translated to the `regex` crate's: character classes are re-emitted
//! item by item (Go reads `[` inside a class literally, `regex` nests it) and the Perl classes
//! `\d \s \w \b` keep their ASCII meaning.

use std::path::Path;

/// Why a `.dockerignore` file or one of its patterns is refused (what the Docker CLI refuses).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IgnoreError {
    /// A line `!` with nothing after it.
    #[error("illegal exclusion pattern: \"!\"")]
    IllegalExclusion,
    /// Not a valid Go `filepath.Match` pattern, or its regular expression does not compile.
    #[error("syntax error in pattern {pattern:?}")]
    BadPattern { pattern: String },
    /// A line longer than Go's `bufio.Scanner` reads (64 KiB).
    #[error("bufio.Scanner: token too long")]
    LineTooLong,
}

/// Go's `bufio.MaxScanTokenSize`: a line this long or longer is an error.
const MAX_LINE: usize = 64 * 1024;

/// One compiled pattern.
#[derive(Debug, Clone)]
pub struct Pattern {
    /// The cleaned pattern, without its `!`.
    cleaned: Vec<u8>,
    exclusion: bool,
    /// Its number of `/`-separated components (for the CLI's older `Matches`).
    dirs: usize,
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    Exact,
    /// A trailing `**`: the path starts with this.
    Prefix(Vec<u8>),
    /// A leading `**`: the path ends with this (or is it without its leading `/`).
    Suffix(Vec<u8>),
    Regex(regex::Regex),
    /// The translated expression does not compile: an error when the pattern is evaluated
    /// (upstream compiles lazily, so a pattern never reached is no error).
    Bad,
}

impl Pattern {
    fn new(cleaned: Vec<u8>, exclusion: bool) -> Self {
        let dirs = cleaned.split(|b| *b == b'/').count();
        let kind = compile(&cleaned);
        Pattern {
            cleaned,
            exclusion,
            dirs,
            kind,
        }
    }

    /// The cleaned pattern, without its `!`.
    pub fn text(&self) -> &[u8] {
        &self.cleaned
    }

    /// Whether it is a `!` exception.
    pub fn is_exclusion(&self) -> bool {
        self.exclusion
    }

    fn matches(&self, path: &[u8]) -> Result<bool, IgnoreError> {
        Ok(match &self.kind {
            Kind::Exact => path == self.cleaned.as_slice(),
            Kind::Prefix(prefix) => path.starts_with(prefix),
            Kind::Suffix(suffix) => {
                path.ends_with(suffix) || (suffix.first() == Some(&b'/') && path == &suffix[1..])
            }
            Kind::Regex(re) => match std::str::from_utf8(path) {
                Ok(text) => re.is_match(text),
                Err(_) => re.is_match(&go_decode(path)),
            },
            Kind::Bad => {
                return Err(IgnoreError::BadPattern {
                    pattern: String::from_utf8_lossy(&self.cleaned).into_owned(),
                });
            }
        })
    }
}

/// Per pattern, whether a folder matched it: what the walk hands down to the folder's entries
/// (`patternmatcher.MatchInfo`). Empty means "no information" (the root's entries).
#[derive(Debug, Clone, Default)]
pub struct MatchInfo {
    parent_matched: Vec<bool>,
}

/// The compiled patterns of a `.dockerignore` file (`patternmatcher.PatternMatcher`).
#[derive(Debug, Clone, Default)]
pub struct DockerIgnore {
    patterns: Vec<Pattern>,
    exclusions: bool,
}

impl DockerIgnore {
    /// Parses the bytes of a `.dockerignore` file (`ReadAll`, then `New`).
    pub fn parse(text: &[u8]) -> Result<Self, IgnoreError> {
        Self::from_patterns(read_all(text)?)
    }

    /// Compiles patterns as `patternmatcher.New` does (each trimmed and cleaned again).
    pub fn from_patterns<P: AsRef<[u8]>>(
        patterns: impl IntoIterator<Item = P>,
    ) -> Result<Self, IgnoreError> {
        let mut out = DockerIgnore::default();
        for p in patterns {
            let p = go_trim_space(p.as_ref());
            if p.is_empty() {
                continue;
            }
            let mut p = go_clean(p);
            let exclusion = p.first() == Some(&b'!');
            if exclusion {
                if p.len() == 1 {
                    return Err(IgnoreError::IllegalExclusion);
                }
                p.remove(0);
                out.exclusions = true;
            }
            if !filepath_match_is_valid(&p) {
                return Err(IgnoreError::BadPattern {
                    pattern: String::from_utf8_lossy(&p).into_owned(),
                });
            }
            out.patterns.push(Pattern::new(p, exclusion));
        }
        Ok(out)
    }

    /// Reads `<dir>/.dockerignore`; no file means no pattern.
    pub fn load(dir: &Path) -> crate::Result<Self> {
        Self::load_file(&dir.join(".dockerignore"))
    }

    /// Reads an ignore file; no file means no pattern.
    pub fn load_file(path: &Path) -> crate::Result<Self> {
        let patterns = read_ignore_file(path)?.unwrap_or_default();
        Self::from_patterns(patterns).map_err(|source| crate::Error::IgnoreFile {
            path: path.into(),
            source,
        })
    }

    /// Whether any pattern is a `!` exception.
    pub fn has_exclusions(&self) -> bool {
        self.exclusions
    }

    /// The patterns, in file order.
    pub fn patterns(&self) -> &[Pattern] {
        &self.patterns
    }

    /// Whether the `/`-separated path relative to the context root is excluded
    /// (`MatchesOrParentMatches`: the path or any of its parent folders).
    pub fn matches_or_parent_matches(&self, file: &[u8]) -> Result<bool, IgnoreError> {
        let parents = parent_dirs(file);
        let mut matched = false;
        for pattern in &self.patterns {
            if pattern.exclusion != matched {
                continue;
            }
            let mut hit = pattern.matches(file)?;
            if !hit {
                for prefix in &parents {
                    if pattern.matches(prefix).unwrap_or(false) {
                        hit = true;
                        break;
                    }
                }
            }
            if hit {
                matched = !pattern.exclusion;
            }
        }
        Ok(matched)
    }

    /// The CLI's older, deprecated `Matches` (it tries only the parent folder with as many
    /// components as the pattern): what `TrimBuildFilesFromExcludes` uses to decide whether
    /// the Dockerfile and `.dockerignore` must be re-included.
    pub(crate) fn matches_deprecated(&self, file: &[u8]) -> Result<bool, IgnoreError> {
        let file = go_clean(file);
        if file == b"." {
            return Ok(false);
        }
        let parent = go_dir(&file);
        let parent_dirs: Vec<&[u8]> = parent.split(|b| *b == b'/').collect();
        let mut matched = false;
        for pattern in &self.patterns {
            if pattern.exclusion != matched {
                continue;
            }
            let mut hit = pattern.matches(&file)?;
            if !hit && parent != b"." && pattern.dirs <= parent_dirs.len() {
                hit = pattern
                    .matches(&parent_dirs[..pattern.dirs].join(&b'/'))
                    .unwrap_or(false);
            }
            if hit {
                matched = !pattern.exclusion;
            }
        }
        Ok(matched)
    }

    /// The walk's variant (`MatchesUsingParentResults`): the parent folder's results are reused
    /// (a pattern the parent matched matches), else only the path itself is tried, except when
    /// `parent` is empty (then its parent folders are tried too).
    pub fn matches_using_parent_results(
        &self,
        file: &[u8],
        parent: &MatchInfo,
    ) -> Result<(bool, MatchInfo), IgnoreError> {
        let parent_matched = &parent.parent_matched;
        let mut info = MatchInfo {
            parent_matched: vec![false; self.patterns.len()],
        };
        let mut matched = false;
        for (i, pattern) in self.patterns.iter().enumerate() {
            let mut hit = parent_matched.get(i).copied().unwrap_or(false);
            if !hit {
                if pattern.exclusion != matched {
                    continue;
                }
                hit = pattern.matches(file)?;
                if !hit && parent_matched.is_empty() {
                    for prefix in parent_dirs(file) {
                        if pattern.matches(&prefix).unwrap_or(false) {
                            hit = true;
                            break;
                        }
                    }
                }
            }
            info.parent_matched[i] = hit;
            if hit {
                matched = !pattern.exclusion;
            }
        }
        Ok((matched, info))
    }
}

/// Reads an ignore file's patterns; `None` when there is no such file.
pub(crate) fn read_ignore_file(path: &Path) -> crate::Result<Option<Vec<Vec<u8>>>> {
    match std::fs::read(path) {
        Ok(bytes) => read_all(&bytes)
            .map(Some)
            .map_err(|source| crate::Error::IgnoreFile {
                path: path.into(),
                source,
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(crate::Error::Context {
            path: path.into(),
            source,
        }),
    }
}

/// `ignorefile.ReadAll`: the patterns of an ignore file, cleaned, `!` kept in front.
pub fn read_all(text: &[u8]) -> Result<Vec<Vec<u8>>, IgnoreError> {
    let mut out = Vec::new();
    let mut lines: Vec<&[u8]> = text.split(|b| *b == b'\n').collect();
    // A final newline ends the last line; it does not start an empty one.
    if lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    for (n, line) in lines.into_iter().enumerate() {
        if line.len() >= MAX_LINE {
            return Err(IgnoreError::LineTooLong);
        }
        let mut line = line.strip_suffix(b"\r").unwrap_or(line);
        if n == 0 {
            line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
        }
        if line.first() == Some(&b'#') {
            continue;
        }
        let mut pattern = go_trim_space(line);
        if pattern.is_empty() {
            continue;
        }
        let invert = pattern[0] == b'!';
        if invert {
            pattern = go_trim_space(&pattern[1..]);
        }
        let mut cleaned = Vec::new();
        if !pattern.is_empty() {
            cleaned = go_clean(pattern);
            if cleaned.len() > 1 && cleaned[0] == b'/' {
                cleaned.remove(0);
            }
        }
        if invert {
            cleaned.insert(0, b'!');
        }
        out.push(cleaned);
    }
    Ok(out)
}

/// The `/`-separated prefixes of `file`'s parent folder (`a`, `a/b` for `a/b/c`).
fn parent_dirs(file: &[u8]) -> Vec<Vec<u8>> {
    let parent = go_dir(file);
    if parent == b"." {
        return Vec::new();
    }
    let parts: Vec<&[u8]> = parent.split(|b| *b == b'/').collect();
    (1..=parts.len()).map(|i| parts[..i].join(&b'/')).collect()
}

/// Go's `filepath.Dir` on a `/`-separated path.
fn go_dir(path: &[u8]) -> Vec<u8> {
    match path.iter().rposition(|b| *b == b'/') {
        Some(i) => go_clean(&path[..=i]),
        None => b".".to_vec(),
    }
}

/// Go's `filepath.Clean` (Unix): one `/` between names, no `.`, `name/..` removed, `..`
/// kept at the start of a relative path and dropped at the root, no trailing `/`.
pub(crate) fn go_clean(path: &[u8]) -> Vec<u8> {
    if path.is_empty() {
        return b".".to_vec();
    }
    let rooted = path[0] == b'/';
    let mut parts: Vec<&[u8]> = Vec::new();
    for part in path.split(|b| *b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => match parts.last() {
                Some(last) if *last != b".." => {
                    parts.pop();
                }
                _ if rooted => {}
                _ => parts.push(part),
            },
            _ => parts.push(part),
        }
    }
    let mut out = Vec::with_capacity(path.len());
    if rooted {
        out.push(b'/');
    }
    out.extend_from_slice(&parts.join(&b'/'));
    if out.is_empty() {
        out.push(b'.');
    }
    out
}

/// Go's `strings.TrimSpace` on bytes (Unicode white space; invalid UTF-8 is not space).
fn go_trim_space(mut s: &[u8]) -> &[u8] {
    while let Some((c, n)) = first_char(s) {
        if !c.is_whitespace() {
            break;
        }
        s = &s[n..];
    }
    while let Some((c, n)) = last_char(s) {
        if !c.is_whitespace() {
            break;
        }
        s = &s[..s.len() - n];
    }
    s
}

fn first_char(s: &[u8]) -> Option<(char, usize)> {
    let head = &s[..s.len().min(4)];
    let valid = match std::str::from_utf8(head) {
        Ok(t) => t,
        Err(e) => std::str::from_utf8(&head[..e.valid_up_to()]).ok()?,
    };
    valid.chars().next().map(|c| (c, c.len_utf8()))
}

fn last_char(s: &[u8]) -> Option<(char, usize)> {
    let start = s.len().saturating_sub(4);
    (start..s.len()).find_map(|i| {
        std::str::from_utf8(&s[i..])
            .ok()
            .and_then(|t| t.chars().next().filter(|c| c.len_utf8() == s.len() - i))
            .map(|c| (c, c.len_utf8()))
    })
}

/// Decodes bytes as Go does when it ranges over a string: each byte of an invalid sequence
/// becomes one U+FFFD.
fn go_decode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    let mut rest = bytes;
    loop {
        match std::str::from_utf8(rest) {
            Ok(valid) => {
                out.push_str(valid);
                return out;
            }
            Err(e) => {
                let (valid, after) = rest.split_at(e.valid_up_to());
                out.push_str(std::str::from_utf8(valid).unwrap_or_default());
                let bad = e.error_len().unwrap_or(after.len());
                out.extend(std::iter::repeat_n('\u{FFFD}', bad));
                rest = &after[bad..];
            }
        }
    }
}

/// Whether Go's `filepath.Match(pattern, ".")` returns no error, i.e. the pattern is well
/// formed: every class has an item, no item starts with `-` or `]`, no `\` ends a chunk or a
/// class, no range is left open.
fn filepath_match_is_valid(pattern: &[u8]) -> bool {
    let mut rest = pattern;
    while !rest.is_empty() {
        while rest.first() == Some(&b'*') {
            rest = &rest[1..];
        }
        let (chunk, after) = scan_chunk(rest);
        if !chunk_is_valid(chunk) {
            return false;
        }
        rest = after;
    }
    true
}

/// Go's `scanChunk` after the leading stars: up to the next `*` outside a class.
fn scan_chunk(pattern: &[u8]) -> (&[u8], &[u8]) {
    let mut in_range = false;
    let mut i = 0;
    while i < pattern.len() {
        match pattern[i] {
            b'\\' if i + 1 < pattern.len() => i += 1,
            b'[' => in_range = true,
            b']' => in_range = false,
            b'*' if !in_range => break,
            _ => {}
        }
        i += 1;
    }
    pattern.split_at(i)
}

fn chunk_is_valid(mut chunk: &[u8]) -> bool {
    while let Some(&c) = chunk.first() {
        match c {
            b'[' => {
                chunk = &chunk[1..];
                if chunk.first() == Some(&b'^') {
                    chunk = &chunk[1..];
                }
                let mut ranges = 0;
                loop {
                    if chunk.first() == Some(&b']') && ranges > 0 {
                        chunk = &chunk[1..];
                        break;
                    }
                    let Some(after) = class_escape(chunk) else {
                        return false;
                    };
                    chunk = after;
                    if chunk.first() == Some(&b'-') {
                        let Some(after) = class_escape(&chunk[1..]) else {
                            return false;
                        };
                        chunk = after;
                    }
                    ranges += 1;
                }
            }
            b'\\' => {
                if chunk.len() < 2 {
                    return false;
                }
                chunk = &chunk[2..];
            }
            _ => chunk = &chunk[1..],
        }
    }
    true
}

/// Go's `getEsc`: one class character; `None` where Go reports `ErrBadPattern`.
fn class_escape(chunk: &[u8]) -> Option<&[u8]> {
    let mut chunk = chunk;
    match chunk.first() {
        None | Some(b'-') | Some(b']') => return None,
        Some(b'\\') => {
            chunk = &chunk[1..];
            if chunk.is_empty() {
                return None;
            }
        }
        _ => {}
    }
    let (_, n) = first_char(chunk)?;
    let after = &chunk[n..];
    (!after.is_empty()).then_some(after)
}

/// `Pattern.compile`: the pattern's kind, and its regular expression when it needs one.
fn compile(cleaned: &[u8]) -> Kind {
    let text = go_decode(cleaned);
    let mut chars: Vec<char> = text.chars().collect();
    // Go's text/scanner skips a byte order mark at the start.
    if chars.first() == Some(&'\u{FEFF}') {
        chars.remove(0);
    }
    #[derive(PartialEq)]
    enum Detected {
        Exact,
        Prefix,
        Suffix,
        Regex,
    }
    let mut detected = Detected::Exact;
    let mut re = String::from("^");
    let mut i = 0;
    let mut step = 0;
    while i < chars.len() {
        let ch = chars[i];
        i += 1;
        if ch == '*' {
            if chars.get(i) == Some(&'*') {
                i += 1;
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                if i == chars.len() {
                    if detected == Detected::Exact {
                        detected = Detected::Prefix;
                    } else {
                        re.push_str(".*");
                        detected = Detected::Regex;
                    }
                } else {
                    re.push_str("(.*/)?");
                    detected = Detected::Regex;
                }
                if step == 0 {
                    detected = Detected::Suffix;
                }
            } else {
                re.push_str("[^/]*");
                detected = Detected::Regex;
            }
        } else if ch == '?' {
            re.push_str("[^/]");
            detected = Detected::Regex;
        } else if ".+()|{}$".contains(ch) {
            re.push('\\');
            re.push(ch);
        } else if ch == '\\' {
            if let Some(&next) = chars.get(i) {
                i += 1;
                re.push('\\');
                re.push(next);
                detected = Detected::Regex;
            } else {
                re.push('\\');
            }
        } else if ch == '[' || ch == ']' {
            re.push(ch);
            detected = Detected::Regex;
        } else {
            re.push(ch);
        }
        step += 1;
    }
    match detected {
        Detected::Exact => Kind::Exact,
        Detected::Prefix => Kind::Prefix(cleaned[..cleaned.len().saturating_sub(2)].to_vec()),
        Detected::Suffix => Kind::Suffix(cleaned.get(2..).unwrap_or_default().to_vec()),
        Detected::Regex => {
            re.push('$');
            match go_regex_to_rust(&re).and_then(|r| regex::Regex::new(&r).ok()) {
                Some(re) => Kind::Regex(re),
                None => Kind::Bad,
            }
        }
    }
}

/// Rewrites a Go (RE2) regular expression, as `compile` builds them, in the `regex` crate's
/// syntax with the same meaning; `None` where Go's `regexp.Compile` fails.
fn go_regex_to_rust(go: &str) -> Option<String> {
    let chars: Vec<char> = go.chars().collect();
    let mut out = String::with_capacity(go.len() + 8);
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '\\' => {
                let (text, next) = escape(&chars, i, false)?;
                out.push_str(&text);
                i = next;
            }
            '[' => i = class(&chars, i, &mut out)?,
            // Outside a class Go reads `]` literally.
            ']' => out.push_str("\\]"),
            _ => out.push(c),
        }
    }
    Some(out)
}

/// A literal character, written so that it means itself anywhere (also inside a class).
fn literal(c: char) -> String {
    if c.is_alphanumeric() || c == '_' || c == '/' {
        c.to_string()
    } else {
        format!("\\x{{{:X}}}", u32::from(c))
    }
}

/// One escape sequence after `\` at `chars[i]`; returns its text and the index after it.
fn escape(chars: &[char], i: usize, in_class: bool) -> Option<(String, usize)> {
    let c = *chars.get(i)?;
    let next = i + 1;
    let ascii_class = |set: &str, negated: bool| {
        let body = set.to_owned();
        match (in_class, negated) {
            (true, false) => body,
            (_, true) => format!("[^{body}]"),
            (false, false) => format!("[{body}]"),
        }
    };
    let text = match c {
        'a' => "\\x07".to_owned(),
        'f' => "\\x0C".to_owned(),
        't' => "\\t".to_owned(),
        'n' => "\\n".to_owned(),
        'r' => "\\r".to_owned(),
        'v' => "\\x0B".to_owned(),
        'd' => ascii_class("0-9", false),
        'D' => ascii_class("0-9", true),
        's' => ascii_class("\\t\\n\\x0C\\r ", false),
        'S' => ascii_class("\\t\\n\\x0C\\r ", true),
        'w' => ascii_class("0-9A-Za-z_", false),
        'W' => ascii_class("0-9A-Za-z_", true),
        'A' if !in_class => "\\A".to_owned(),
        'z' if !in_class => "\\z".to_owned(),
        'b' if !in_class => "(?-u:\\b)".to_owned(),
        'B' if !in_class => "(?-u:\\B)".to_owned(),
        'p' | 'P' => {
            // `\pL`: one-letter Unicode classes (a `{` after `\p` was escaped, which Go refuses).
            let name = *chars.get(next)?;
            if !name.is_ascii_alphabetic() {
                return None;
            }
            return Some((format!("\\{c}{name}"), next + 1));
        }
        'x' => {
            let hex: String = chars.get(next..next + 2)?.iter().collect();
            let value = u32::from_str_radix(&hex, 16).ok()?;
            return Some((literal(char::from_u32(value)?), next + 2));
        }
        '0'..='7' => {
            let mut value = c.to_digit(8)?;
            let mut j = next;
            if c != '0' && !chars.get(j).is_some_and(|d| ('0'..='7').contains(d)) {
                // `\1`: a back-reference, which RE2 does not support.
                return None;
            }
            while j < next + 2 && chars.get(j).is_some_and(|d| ('0'..='7').contains(d)) {
                value = value * 8 + chars[j].to_digit(8)?;
                j += 1;
            }
            return Some((literal(char::from_u32(value)?), j));
        }
        'Q' if !in_class => {
            let mut text = String::new();
            let mut j = next;
            while j < chars.len() {
                if chars[j] == '\\' && chars.get(j + 1) == Some(&'E') {
                    return Some((text, j + 2));
                }
                text.push_str(&literal(chars[j]));
                j += 1;
            }
            return Some((text, j));
        }
        // Escaped punctuation is the character itself.
        c if c.is_ascii() && !c.is_ascii_alphanumeric() => literal(c),
        _ => return None,
    };
    Some((text, next))
}

/// A Go character class starting after `[` at `chars[i]`, appended to `out`; returns the index
/// after its `]`.
fn class(chars: &[char], mut i: usize, out: &mut String) -> Option<usize> {
    out.push('[');
    if chars.get(i) == Some(&'^') {
        out.push('^');
        i += 1;
    }
    let mut first = true;
    loop {
        let c = *chars.get(i)?;
        if c == ']' && !first {
            out.push(']');
            return Some(i + 1);
        }
        first = false;
        if c == '[' && chars.get(i + 1) == Some(&':') {
            let rest: String = chars[i + 2..].iter().collect();
            if let Some(end) = rest.find(":]") {
                let name = &rest[..end];
                const NAMES: [&str; 14] = [
                    "alnum", "alpha", "ascii", "blank", "cntrl", "digit", "graph", "lower",
                    "print", "punct", "space", "upper", "word", "xdigit",
                ];
                if !NAMES.contains(&name.trim_start_matches('^')) {
                    return None;
                }
                out.push_str(&format!("[:{name}:]"));
                i += 2 + name.chars().count() + 2;
                continue;
            }
        }
        let (lo, lo_text, after) = class_char(chars, i)?;
        i = after;
        if chars.get(i) == Some(&'-') && chars.get(i + 1).is_some_and(|c| *c != ']') {
            let (hi, hi_text, after) = class_char(chars, i + 1)?;
            let (lo, hi) = (lo?, hi?);
            if hi < lo {
                return None;
            }
            out.push_str(&format!("{lo_text}-{hi_text}"));
            i = after;
        } else {
            out.push_str(&lo_text);
        }
    }
}

/// One item of a class: a character (with its text) or a Perl class (`None` as character, so it
/// cannot end a range).
fn class_char(chars: &[char], i: usize) -> Option<(Option<char>, String, usize)> {
    let c = *chars.get(i)?;
    if c != '\\' {
        return Some((Some(c), literal(c), i + 1));
    }
    let e = *chars.get(i + 1)?;
    let (text, next) = escape(chars, i + 1, true)?;
    let single = match e {
        'd' | 'D' | 's' | 'S' | 'w' | 'W' | 'p' | 'P' => None,
        'a' => Some('\x07'),
        'f' => Some('\x0C'),
        't' => Some('\t'),
        'n' => Some('\n'),
        'r' => Some('\r'),
        'v' => Some('\x0B'),
        'x' | '0'..='7' => {
            // The literal's value, read back from its `\x{..}` text.
            let hex = text.trim_start_matches("\\x{").trim_end_matches('}');
            match u32::from_str_radix(hex, 16) {
                Ok(v) => char::from_u32(v),
                Err(_) => text.chars().next(),
            }
        }
        other => Some(other),
    };
    Some((single, text, next))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn ig(text: &str) -> DockerIgnore {
        DockerIgnore::parse(text.as_bytes()).unwrap()
    }

    fn excluded(i: &DockerIgnore, path: &str) -> bool {
        i.matches_or_parent_matches(path.as_bytes()).unwrap()
    }

    #[test]
    fn anchored_at_root_unlike_gitignore() {
        let i = ig("node_modules\n");
        assert!(excluded(&i, "node_modules"));
        assert!(excluded(&i, "node_modules/a/b.js"));
        assert!(!excluded(&i, "packages/app/node_modules"));
    }

    #[test]
    fn double_star_spans_components() {
        let i = ig("**/node_modules\n**/*.log\n");
        assert!(excluded(&i, "packages/app/node_modules/x.js"));
        assert!(excluded(&i, "node_modules"));
        assert!(excluded(&i, "a/b/c.log"));
        assert!(excluded(&i, "c.log"));
        assert!(!excluded(&i, "a/b/c.txt"));
    }

    #[test]
    fn star_stays_in_one_component() {
        let i = ig("*.md\ndocs/*.txt\n");
        assert!(excluded(&i, "README.md"));
        assert!(!excluded(&i, "docs/README.md"));
        assert!(excluded(&i, "docs/a.txt"));
        assert!(!excluded(&i, "docs/sub/a.txt"));
    }

    #[test]
    fn last_match_wins_and_negation_reincludes() {
        let i = ig("# comment\n*.md\n!README.md\n");
        assert!(excluded(&i, "CHANGES.md"));
        assert!(!excluded(&i, "README.md"));
        assert!(i.has_exclusions());
        let i = ig("!README.md\n*.md\n");
        assert!(excluded(&i, "README.md"));
    }

    #[test]
    fn patterns_are_cleaned_like_go() {
        assert_eq!(
            read_all(b"/dist/\n./tmp\nbuild/../out\n  spaced  \n../x\n/../y\n!/a//b/\n").unwrap(),
            [
                &b"dist"[..],
                b"tmp",
                b"out",
                b"spaced",
                b"../x",
                b"y",
                b"!a/b"
            ]
        );
        let i = ig("../x\n");
        assert!(!excluded(&i, "x"), "../x matches nothing");
    }

    #[test]
    fn classes_are_regex_classes() {
        let i = ig("[!a].txt\n");
        assert!(excluded(&i, "a.txt"));
        assert!(excluded(&i, "!.txt"));
        assert!(!excluded(&i, "b.txt"));
        let i = ig("[^a].txt\n");
        assert!(!excluded(&i, "a.txt"));
        assert!(excluded(&i, "b.txt"));
        let i = ig("file?.txt\n[ab].bin\n");
        assert!(excluded(&i, "file1.txt"));
        assert!(!excluded(&i, "file10.txt"));
        assert!(excluded(&i, "a.bin"));
        assert!(!excluded(&i, "c.bin"));
        // Go reads `[` inside a class literally.
        let i = ig("x[[a].txt\n");
        assert!(excluded(&i, "x[.txt"));
        assert!(excluded(&i, "xa.txt"));
    }

    #[test]
    fn braces_are_literal_and_backslash_escapes() {
        let i = ig("{a,b}.txt\n");
        assert!(excluded(&i, "{a,b}.txt"));
        assert!(!excluded(&i, "a.txt"));
        let i = ig("dir\\file.txt\n");
        assert!(!excluded(&i, "dirfile.txt"));
        assert!(!excluded(&i, "dir\\file.txt"));
        assert!(excluded(&i, "dir\x0Cile.txt"), "\\f is a form feed");
        let i = ig("a\\*b\n");
        assert!(excluded(&i, "a*b"));
        assert!(!excluded(&i, "axb"));
    }

    #[test]
    fn comments_only_at_line_start_and_bom_stripped() {
        let i = ig("  #keep\n#gone\n");
        assert!(excluded(&i, "#keep"));
        assert!(!excluded(&i, "#gone"));
        let i = DockerIgnore::parse(b"\xEF\xBB\xBFsecret.txt\r\nb\n").unwrap();
        assert!(excluded(&i, "secret.txt"));
        assert!(excluded(&i, "b"));
    }

    #[test]
    fn bare_exclamation_and_bad_patterns_are_errors() {
        assert_eq!(
            DockerIgnore::parse(b"a\n!\n").unwrap_err(),
            IgnoreError::IllegalExclusion
        );
        assert_eq!(
            DockerIgnore::parse(b"!/\n").unwrap_err(),
            IgnoreError::IllegalExclusion
        );
        for bad in ["[unclosed", "[]a]", "[a-]", "x\\", "[^]"] {
            assert!(
                matches!(
                    DockerIgnore::parse(bad.as_bytes()),
                    Err(IgnoreError::BadPattern { .. })
                ),
                "{bad}"
            );
        }
        // A range running backwards passes Go's filepath.Match but not regexp.Compile:
        // an error when it is evaluated.
        let i = ig("[z-a]\n");
        assert!(i.matches_or_parent_matches(b"x").is_err());
        let long = vec![b'a'; MAX_LINE];
        assert_eq!(
            DockerIgnore::parse(&long).unwrap_err(),
            IgnoreError::LineTooLong
        );
    }

    #[test]
    fn prefix_and_suffix_kinds() {
        let i = ig("foo/**\n");
        assert!(excluded(&i, "foo/x"));
        assert!(!excluded(&i, "foo"));
        let i = ig("**/foo\n");
        assert!(excluded(&i, "foo"));
        assert!(excluded(&i, "a/b/foo"));
        assert!(!excluded(&i, "xfoo"));
        let i = ig("**foo\n");
        assert!(excluded(&i, "xfoo"));
        let i = ig("**\n");
        assert!(excluded(&i, "anything/at/all"));
    }

    #[test]
    fn non_utf8_paths_compare_bytes() {
        let i = DockerIgnore::parse(b"caf\xE9\n").unwrap();
        assert!(i.matches_or_parent_matches(b"caf\xE9").unwrap());
        assert!(!i.matches_or_parent_matches(b"caf\xE8").unwrap());
        let i = ig("caf?\n");
        assert!(i.matches_or_parent_matches(b"caf\xE9").unwrap());
    }

    #[test]
    fn walk_variant_reuses_parent_results() {
        let i = ig("dist\n!**/keep.txt\n");
        let (skip, info) = i
            .matches_using_parent_results(b"dist", &MatchInfo::default())
            .unwrap();
        assert!(skip);
        // Had the walk gone in, the parent's match of `dist` decides; `!**/keep.txt` is
        // evaluated for the file and re-includes it.
        let (skip, _) = i
            .matches_using_parent_results(b"dist/keep.txt", &info)
            .unwrap();
        assert!(!skip);
    }

    #[test]
    fn deprecated_matches_tries_one_parent() {
        let i = ig("**/x\n");
        assert!(!i.matches_deprecated(b"x/y/Dockerfile").unwrap());
        assert!(i.matches_or_parent_matches(b"x/y/Dockerfile").unwrap());
        let i = ig("build\n");
        assert!(i.matches_deprecated(b"build/Dockerfile").unwrap());
    }

    #[test]
    fn go_clean_cases() {
        for (input, want) in [
            ("", "."),
            ("a/../..", ".."),
            ("../../a", "../../a"),
            ("/..", "/"),
            ("/../x", "/x"),
            ("a//b/./c/", "a/b/c"),
            ("!a/..", "."),
            ("!../x", "!../x"),
        ] {
            assert_eq!(go_clean(input.as_bytes()), want.as_bytes(), "{input}");
        }
    }

    proptest::proptest! {
        /// Any file, any path: an answer or an error, never a panic.
        #[test]
        fn never_panics(
            text in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
            path in proptest::collection::vec(proptest::prelude::any::<u8>(), 1..60),
        ) {
            if let Ok(i) = DockerIgnore::parse(&text) {
                let _ = i.matches_or_parent_matches(&path);
                let _ = i.matches_deprecated(&path);
                let _ = i.matches_using_parent_results(&path, &MatchInfo::default());
            }
        }

        /// Patterns of plain names compare exactly, and match their folder's content.
        #[test]
        fn plain_names_compare_exactly(
            pattern in "[a-z0-9_-]{1,8}(/[a-z0-9_-]{1,8}){0,2}",
            path in "[a-z0-9_-]{1,8}(/[a-z0-9_-]{1,8}){0,3}",
        ) {
            let i = DockerIgnore::parse(pattern.as_bytes()).unwrap();
            let expected = path == pattern || path.starts_with(&format!("{pattern}/"));
            proptest::prop_assert_eq!(i.matches_or_parent_matches(path.as_bytes()).unwrap(), expected);
        }

        /// `*` is `[^/]*`: a star pattern matches a name with any middle but no `/` (no folder
        /// on the way ends with `z`, so no parent matches).
        #[test]
        fn star_stays_in_its_component(middle in "[a-y/.]{0,10}") {
            let i = DockerIgnore::parse(b"a*z").unwrap();
            let name = format!("a{middle}z");
            let expected = !middle.contains('/');
            proptest::prop_assert_eq!(i.matches_or_parent_matches(name.as_bytes()).unwrap(), expected);
        }
    }
}
