//! Release sources on the npm registry, and the Backstage preset.
//!
//! - [`NpmSource`]: a [`ReleaseSource`](uplift_template::ReleaseSource) for `npm:PACKAGE`
//!   (`npm:@backstage/create-app`): Backstage releases are listed from the release tags of
//!   backstage/backstage ([`tags`]), the newest of each line is the release-manifest site's
//!   `v1/tags/<line>`, each release is mapped to the package's version by its manifest, and that version's tarball
//!   is fetched from the registry, checked, unpacked safely ([`extract()`]) and cached by release.
//!   A release's files are the package's content (`templates/default-app/…`) plus
//!   [`VERSIONS_FILE`] (the manifest's package versions, `root` = the release) for the
//!   `version` helper.
//! - [`NpmSettings`]: registry URL, scoped registries and tokens as `.npmrc` gives them, the
//!   release-manifest site, the cache folder.
//! - [`preset`]: what `--preset backstage` infers from an app (values, frontend system and so
//!   the template lineage, follow-up commands).
//! - [`DownloadProgress`]: how far a tarball download is, reported to the hook given by
//!   [`NpmSource::with_download_progress`] while the body is read (no UI here).

mod config;
mod error;
pub mod extract;
mod http;
pub mod preset;
mod progress;
mod source;
pub mod tags;
#[cfg(feature = "test-registry")]
pub mod testing;

pub use config::{
    DEFAULT_REGISTRY, DEFAULT_VERSIONS_URL, ENV_REGISTRY, ENV_TOKEN, ENV_VERSIONS_URL, NpmSettings,
    nerf_dart,
};
pub use error::Error;
pub use extract::{Extracted, extract};
pub use progress::{DownloadProgress, DownloadProgressFn};
pub use source::{
    MANIFEST_FILE, ManifestPackage, NpmSource, ReleaseManifest, VERSIONS_FILE, default_cache_dir,
    package_of,
};

/// Whether `spec` names an npm source (`npm:PACKAGE`).
pub fn is_npm_spec(spec: &str) -> bool {
    spec.starts_with("npm:")
}

/// Opens an `npm:PACKAGE` source with the settings of `project` (its `.npmrc`, the user's, the
/// environment); `cache_dir` overrides the cache folder.
pub fn open_source(
    spec: &str,
    project: Option<&std::path::Path>,
    cache_dir: Option<std::path::PathBuf>,
) -> Result<NpmSource, Error> {
    let mut settings = NpmSettings::load(project)?;
    if cache_dir.is_some() {
        settings.cache_dir = cache_dir;
    }
    NpmSource::open(spec, settings)
}
