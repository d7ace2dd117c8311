//! Line endings: texts are merged on LF lines and written back with the app's convention.
//!
//! An app checked out with CRLF endings (Windows, `core.autocrlf`, `text=auto eol=crlf`) against a
//! template with LF endings differs from the template on every line; merged as bytes, every file
//! both sides changed would be one whole-file conflict with mixed endings. Like git's `text=auto`,
//! a text whose every line ends in CRLF is read as LF lines, and the merged result is written
//! with CRLF again when the app's file used it. A file with mixed endings is left as it is: its
//! bytes are merged as they are, so no ending the app chose line by line is rewritten.

use std::borrow::Cow;

use uplift_tree::{FileEntry, FileMode};

/// The line-ending convention of one text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LineEnding {
    /// LF, mixed, or no line break at all: the text is used as it is.
    Lf,
    /// Every line break is CRLF (and there is at least one).
    Crlf,
}

impl LineEnding {
    pub(crate) fn of(text: &str) -> Self {
        let breaks = text.matches('\n').count();
        if breaks > 0 && text.matches("\r\n").count() == breaks {
            LineEnding::Crlf
        } else {
            LineEnding::Lf
        }
    }

    /// The text with LF line breaks.
    pub(crate) fn normalize(self, text: &str) -> Cow<'_, str> {
        match self {
            LineEnding::Lf => Cow::Borrowed(text),
            LineEnding::Crlf => Cow::Owned(text.replace("\r\n", "\n")),
        }
    }

    /// An LF text written with this convention.
    pub(crate) fn apply(self, text: String) -> String {
        match self {
            LineEnding::Lf => text,
            LineEnding::Crlf => text.replace('\n', "\r\n"),
        }
    }
}

/// The text as LF lines, when every line of it ends in CRLF.
pub(crate) fn normalized(text: &str) -> Cow<'_, str> {
    LineEnding::of(text).normalize(text)
}

/// Two entries of the same mode whose texts differ only in line endings (and not in bytes).
pub(crate) fn same_but_line_endings(a: &FileEntry, b: &FileEntry) -> bool {
    if a.mode != b.mode || a.mode == FileMode::Symlink || a.content == b.content {
        return false;
    }
    match (a.text(), b.text()) {
        (Some(a), Some(b)) => normalized(a) == normalized(b),
        _ => false,
    }
}

/// Upstream's new version of a file the app changed only in line endings: upstream's text with
/// the app's endings. A file the app left byte for byte is written exactly as upstream has it.
pub(crate) fn like_app(
    theirs: &FileEntry,
    base: Option<&FileEntry>,
    ours: Option<&FileEntry>,
) -> FileEntry {
    let (Some(base), Some(ours)) = (base, ours) else {
        return theirs.clone();
    };
    let (Some(text), Some(ours_text)) = (theirs.text(), ours.text()) else {
        return theirs.clone();
    };
    if ours.same_as(base) || theirs.mode == FileMode::Symlink {
        return theirs.clone();
    }
    let written = LineEnding::of(ours_text).apply(normalized(text).into_owned());
    FileEntry::new(theirs.mode, written.into_bytes())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::{Action, MergeOptions, merge_trees};
    use uplift_tree::{Change, RelPath, Tree};

    fn crlf(text: &str) -> String {
        text.replace('\n', "\r\n")
    }

    /// Merges one file; the plan's action and conflicts, and the file written (if any).
    fn merge_one(
        name: &str,
        base: &str,
        ours: &str,
        theirs: &str,
    ) -> (Action, usize, Option<String>) {
        let tree = |text: &str| -> Tree {
            [(
                RelPath::new(name).unwrap(),
                FileEntry::regular(text.as_bytes()),
            )]
            .into_iter()
            .collect()
        };
        let outcome = merge_trees(
            &tree(base),
            &tree(theirs),
            &tree(ours),
            &MergeOptions::default(),
        );
        let written = outcome.changes.iter().find_map(|change| match change {
            Change::Write { entry, .. } => Some(String::from_utf8(entry.content.to_vec()).unwrap()),
            Change::Delete { .. } => None,
        });
        (outcome.files[0].action, outcome.files[0].conflicts, written)
    }

    const README: &str = "# Portal\n\nRun `yarn dev`.\n\nDeploy with Uplift.\n";

    #[test]
    fn an_app_that_changed_only_line_endings_takes_upstreams_change_with_crlf() {
        let theirs = README.replace("yarn dev", "yarn start");
        let (action, conflicts, written) = merge_one("README.md", README, &crlf(README), &theirs);
        assert_eq!((action, conflicts), (Action::Update, 0));
        assert_eq!(written.unwrap(), crlf(&theirs));
        // Upstream's version already there, in CRLF: nothing to do.
        let (action, _, written) = merge_one("README.md", README, &crlf(&theirs), &theirs);
        assert_eq!((action, written), (Action::UpToDate, None));
    }

    #[test]
    fn a_crlf_app_merges_line_by_line_and_keeps_crlf() {
        let ours = crlf(&README.replace("# Portal", "# Acme Portal"));
        let theirs = README.replace("Uplift.", "Uplift (see docs/).");
        let (action, conflicts, written) = merge_one("README.md", README, &ours, &theirs);
        assert_eq!((action, conflicts), (Action::Merge, 0));
        assert_eq!(
            written.unwrap(),
            crlf("# Acme Portal\n\nRun `yarn dev`.\n\nDeploy with Uplift (see docs/).\n")
        );
        // A real conflict is one region, its markers in CRLF too.
        let ours = crlf(&README.replace("yarn dev", "make dev"));
        let theirs = README.replace("yarn dev", "yarn start");
        let (action, conflicts, written) = merge_one("README.md", README, &ours, &theirs);
        assert_eq!((action, conflicts), (Action::Conflict, 1));
        let written = written.unwrap();
        assert_eq!(
            written.matches('\n').count(),
            written.matches("\r\n").count()
        );
        assert!(written.contains("<<<<<<< app\r\nRun `make dev`.\r\n=======\r\n"));
    }

    #[test]
    fn a_crlf_package_json_merges_key_by_key() {
        let base = "{\n  \"name\": \"app\",\n  \"dependencies\": {\n    \"a\": \"^1.0.0\",\n    \"c\": \"^1.0.0\"\n  }\n}\n";
        let ours = crlf(&base.replace("\"c\"", "\"b\": \"^2.0.0\",\n    \"c\""));
        let theirs = base.replace("\"a\": \"^1.0.0\"", "\"a\": \"^1.5.0\"");
        let (action, conflicts, written) = merge_one("package.json", base, &ours, &theirs);
        assert_eq!((action, conflicts), (Action::Merge, 0));
        assert_eq!(
            written.unwrap(),
            crlf(&theirs.replace("\"c\"", "\"b\": \"^2.0.0\",\n    \"c\""))
        );
    }

    #[test]
    fn only_consistent_crlf_is_converted() {
        assert_eq!(LineEnding::of("a\r\nb\r\n"), LineEnding::Crlf);
        assert_eq!(LineEnding::of("a\r\nb"), LineEnding::Crlf);
        assert_eq!(LineEnding::of("a\r\nb\n"), LineEnding::Lf);
        assert_eq!(LineEnding::of("a\nb\n"), LineEnding::Lf);
        assert_eq!(LineEnding::of("no break"), LineEnding::Lf);
        assert_eq!(LineEnding::of(""), LineEnding::Lf);
        assert_eq!(normalized("a\r\nb\r\n"), "a\nb\n");
        assert_eq!(normalized("a\r\nb\n"), "a\r\nb\n");
        assert_eq!(LineEnding::Crlf.apply("a\nb\n".into()), "a\r\nb\r\n");
    }
}
