//! Step outputs in `$GITHUB_OUTPUT`'s format.

use crate::Error;

/// Step outputs, in the order set. Written as heredocs:
///
/// ```text
/// name<<ghadelimiter_5f0c…
/// value (any text, several lines too)
/// ghadelimiter_5f0c…
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outputs {
    items: Vec<(String, String)>,
}

impl Outputs {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets an output; a name set twice keeps the last value. Names are `[A-Za-z0-9_-]+`.
    pub fn set(&mut self, name: &str, value: impl Into<String>) -> Result<(), Error> {
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !valid {
            return Err(Error::OutputName(name.to_string()));
        }
        let value = value.into();
        match self.items.iter_mut().find(|(n, _)| n == name) {
            Some(item) => item.1 = value,
            None => self.items.push((name.to_string(), value)),
        }
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.items
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.items.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The file text: one heredoc per output, each with its own random delimiter that does not
    /// occur in the value.
    pub fn render(&self) -> Result<String, Error> {
        let mut out = String::new();
        for (name, value) in &self.items {
            let mut delimiter = random_delimiter()?;
            // 128 random bits cannot realistically collide; the loop is bounded regardless.
            for _ in 0..8 {
                if !value.contains(&delimiter) {
                    break;
                }
                delimiter = random_delimiter()?;
            }
            if value.contains(&delimiter) {
                return Err(Error::Random("delimiter occurs in the value".into()));
            }
            out.push_str(name);
            out.push_str("<<");
            out.push_str(&delimiter);
            out.push('\n');
            out.push_str(value);
            out.push('\n');
            out.push_str(&delimiter);
            out.push('\n');
        }
        Ok(out)
    }

    /// Appends the outputs to `$GITHUB_OUTPUT` at `path`.
    pub fn write(&self, path: &std::path::Path) -> Result<(), Error> {
        crate::append(path, &self.render()?)
    }
}

/// `ghadelimiter_` and 32 random hex digits (the runner's own style).
pub fn random_delimiter() -> Result<String, Error> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| Error::Random(e.to_string()))?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("ghadelimiter_{hex}"))
}

/// Reads a `$GITHUB_OUTPUT` file as the Actions runner does: `name=value` lines and
/// `name<<DELIMITER` heredocs whose value is the lines up to a line equal to the delimiter,
/// joined with `\n`. Returns `None` for a heredoc that never ends (the runner fails the step).
pub fn parse_outputs(text: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut lines = text.split('\n');
    while let Some(line) = lines.next() {
        if line.is_empty() {
            continue;
        }
        let eq = line.find('=');
        let heredoc = line.find("<<");
        match (eq, heredoc) {
            (Some(e), h) if h.is_none_or(|h| e < h) => {
                out.push((line[..e].to_string(), line[e + 1..].to_string()));
            }
            (_, Some(h)) => {
                let name = &line[..h];
                let delimiter = &line[h + 2..];
                let mut value: Vec<&str> = Vec::new();
                let mut closed = false;
                for next in lines.by_ref() {
                    if next == delimiter {
                        closed = true;
                        break;
                    }
                    value.push(next);
                }
                if !closed {
                    return None;
                }
                out.push((name.to_string(), value.join("\n")));
            }
            _ => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn round_trips_any_value() {
        let mut outputs = Outputs::new();
        let values = [
            ("plain", "1.2.0"),
            ("multi", "line one\nline two\n\nline four"),
            ("trailing", "ends with newline\n"),
            ("empty", ""),
            ("tricky", "x=y\nEOF\nghadelimiter_\n<<EOF"),
        ];
        for (name, value) in values {
            outputs.set(name, value).unwrap();
        }
        let text = outputs.render().unwrap();
        let parsed = parse_outputs(&text).unwrap();
        let expected: Vec<(String, String)> = values
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        assert_eq!(parsed, expected);
    }

    #[test]
    fn delimiters_are_random_and_distinct() {
        let a = random_delimiter().unwrap();
        let b = random_delimiter().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), "ghadelimiter_".len() + 32);
    }

    #[test]
    fn rejects_bad_names_and_keeps_last_value() {
        let mut outputs = Outputs::new();
        assert!(outputs.set("", "x").is_err());
        assert!(outputs.set("a<<b", "x").is_err());
        assert!(outputs.set("a=b", "x").is_err());
        outputs.set("result", "failure").unwrap();
        outputs.set("result", "success").unwrap();
        assert_eq!(outputs.get("result"), Some("success"));
        assert_eq!(outputs.iter().count(), 1);
    }

    #[test]
    fn parser_follows_the_runner() {
        let parsed = parse_outputs("a=1\nb<<X\nl1\nl2\nX\nc=x<<y\n").unwrap();
        assert_eq!(
            parsed,
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "l1\nl2".into()),
                ("c".into(), "x<<y".into())
            ]
        );
        assert_eq!(parse_outputs("b<<X\nnever closed\n"), None);
    }
}
