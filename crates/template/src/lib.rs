//! Upstream releases of a template, and rendering them.
//!
//! - [`ReleaseSource`]: lists [`Release`]s and gives the raw file tree of one. Built by
//!   [`open_source`] from a spec: `git:PATH_OR_URL` ([`GitSource`]: tags are releases, trees are
//!   read from the object database) or `dir:PATH` ([`DirSource`]: one folder per release).
//! - [`ReleaseList`]: releases ordered by semver, with `latest` of a [`ReleaseLine`] (`main`,
//!   `next`) and lookups (the app's own release is found even when it is a hidden pre-release).
//! - [`Lineage`]: which template folder inside a release an app follows, by release.
//! - [`render`]: turns a template tree into an app tree (`*.hbs` through strict Handlebars, with
//!   the `version` helper reading the release's versions map).

mod dir;
mod error;
mod git;
mod lineage;
mod release;
mod render;

pub use dir::DirSource;
pub use error::{Error, ForeignError};
pub use git::GitSource;
pub use lineage::Lineage;
pub use release::{Release, ReleaseLine, ReleaseList, TagPattern};
pub use render::{RenderContext, Values, render, versions_map};

use uplift_tree::Tree;

/// Where releases come from.
pub trait ReleaseSource: Send + Sync {
    /// A short description for messages, e.g. `git:/path/to/repo`.
    fn describe(&self) -> String;
    /// Every release the source has, pre-releases included, in any order.
    fn releases(&self) -> Result<Vec<Release>, Error>;
    /// The whole file tree of one release (all templates, plus files such as `versions.json`).
    fn files(&self, release: &Release) -> Result<Tree, Error>;
    /// The newest release of each line as the source itself publishes it (Backstage's versions
    /// site has `v1/tags/main` and `v1/tags/next`); empty when the source has no such word and
    /// the newest release is computed from the list.
    fn line_latest(&self) -> Result<Vec<(ReleaseLine, Release)>, Error> {
        Ok(Vec::new())
    }
}

/// Options that shape how a source reads releases.
#[derive(Debug, Clone, Default)]
pub struct SourceOptions {
    /// How tags name releases; `None` accepts `v1.2.3` and `1.2.3`.
    pub tag_pattern: Option<TagPattern>,
    /// Where remote repositories and bundles are mirrored; defaults to the user cache folder.
    pub cache_dir: Option<std::path::PathBuf>,
}

/// Opens a source from its spec: `git:PATH_OR_URL` or `dir:PATH`.
pub fn open_source(spec: &str, options: &SourceOptions) -> Result<Box<dyn ReleaseSource>, Error> {
    if let Some(location) = spec.strip_prefix("git:") {
        return Ok(Box::new(GitSource::open(location, options)?));
    }
    if let Some(path) = spec.strip_prefix("dir:") {
        return Ok(Box::new(DirSource::open(std::path::Path::new(path))?));
    }
    Err(Error::UnknownSourceKind {
        spec: spec.to_string(),
    })
}

/// The template folder `subdir` inside a release's files, with paths relative to it.
pub fn template_files(
    files: &Tree,
    release: &Release,
    subdir: Option<&str>,
) -> Result<Tree, Error> {
    let Some(subdir) = subdir.filter(|s| !s.is_empty() && *s != ".") else {
        return Ok(files.clone());
    };
    let prefix = uplift_tree::RelPath::new(subdir.trim_end_matches('/'))?;
    let tree = files.subtree(&prefix);
    if tree.is_empty() {
        let mut folders: Vec<&str> = files
            .paths()
            .filter_map(|p| p.as_str().split_once('/').map(|(top, _)| top))
            .collect();
        folders.dedup();
        return Err(Error::NoSuchTemplate {
            release: release.to_string(),
            subdir: subdir.to_string(),
            available: folders.join(", "),
        });
    }
    Ok(tree)
}
