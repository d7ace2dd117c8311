//! The upstream: a release source plus what it takes to render one of its releases.

use uplift_template::{
    Lineage, Release, ReleaseList, ReleaseSource, RenderContext, SourceOptions, TagPattern, Values,
};
use uplift_tree::Tree;

use crate::Error;

/// Where the template comes from and how to render it. The defaults fit `@backstage/create-app`
/// release bundles (`versions.json` at the release root).
#[derive(Clone)]
pub struct UpstreamConfig {
    /// `git:PATH_OR_URL` or `dir:PATH`.
    pub source: String,
    /// Template folder inside a release, by release (empty: the release root).
    pub lineage: Lineage,
    /// How tags name releases (`git:` sources), with one `{version}`.
    pub tag_pattern: Option<String>,
    /// List pre-releases too.
    pub include_pre: bool,
    /// Values for the templates' variables.
    pub values: Values,
    /// The versions map read by the `version` helper, relative to the release root.
    pub versions_file: String,
    pub cache_dir: Option<std::path::PathBuf>,
    /// The folder whose `.npmrc` an `npm:` source reads (the app's), besides the user's.
    pub npmrc_dir: Option<std::path::PathBuf>,
    /// The preset these settings came from (it adds follow-up commands to plans).
    pub preset: Option<String>,
    /// Told how far each download of an `npm:` source is (the caller decides how to show it).
    pub download_progress: Option<uplift_npm::DownloadProgressFn>,
}

impl std::fmt::Debug for UpstreamConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamConfig")
            .field("source", &self.source)
            .field("lineage", &self.lineage)
            .field("tag_pattern", &self.tag_pattern)
            .field("include_pre", &self.include_pre)
            .field("values", &self.values)
            .field("versions_file", &self.versions_file)
            .field("cache_dir", &self.cache_dir)
            .field("npmrc_dir", &self.npmrc_dir)
            .field("preset", &self.preset)
            // A closure has nothing to print: only whether one is set.
            .field("download_progress", &self.download_progress.is_some())
            .finish()
    }
}

impl UpstreamConfig {
    pub fn new(source: impl Into<String>) -> Self {
        Self {
            source: source.into(),
            lineage: Lineage::default(),
            tag_pattern: None,
            include_pre: false,
            values: Values::new(),
            versions_file: "versions.json".to_string(),
            cache_dir: None,
            npmrc_dir: None,
            preset: None,
            download_progress: None,
        }
    }
}

/// An opened upstream: its releases are listed once.
pub struct Upstream {
    config: UpstreamConfig,
    source: Box<dyn ReleaseSource>,
    releases: ReleaseList,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("source", &self.source.describe())
            .finish()
    }
}

impl Upstream {
    pub fn open(config: UpstreamConfig) -> Result<Self, Error> {
        let tag_pattern = config
            .tag_pattern
            .as_deref()
            .map(TagPattern::parse)
            .transpose()?;
        let options = SourceOptions {
            tag_pattern,
            cache_dir: config.cache_dir.clone(),
        };
        let source: Box<dyn ReleaseSource> = if uplift_npm::is_npm_spec(&config.source) {
            let npmrc_dir = config.npmrc_dir.as_deref();
            let mut source = uplift_npm::open_source(&config.source, npmrc_dir, options.cache_dir)?;
            if let Some(hook) = &config.download_progress {
                source = source.with_download_progress(hook.clone());
            }
            Box::new(source)
        } else {
            crate::phase("open source", || {
                uplift_template::open_source(&config.source, &options)
            })?
        };
        let listed = crate::phase("list releases", || source.releases())?;
        let releases = ReleaseList::new(source.describe(), listed, config.include_pre);
        Ok(Self {
            config,
            source,
            releases,
        })
    }

    pub fn config(&self) -> &UpstreamConfig {
        &self.config
    }

    pub fn describe(&self) -> String {
        self.source.describe()
    }

    pub fn releases(&self) -> &ReleaseList {
        &self.releases
    }

    /// The template folder followed at `release` (`None`: the release root).
    pub fn template_at(&self, release: &Release) -> Option<&str> {
        self.config.lineage.subdir_at(&release.version)
    }

    /// Renders the template of `release` with the configured values.
    pub fn render(&self, release: &Release) -> Result<Tree, Error> {
        let files = self.source.files(release)?;
        let versions = uplift_template::versions_map(&files, &self.config.versions_file)?;
        let template = uplift_template::template_files(&files, release, self.template_at(release))?;
        let context = RenderContext {
            values: &self.config.values,
            versions: versions.as_ref(),
        };
        Ok(uplift_template::render(&template, context)?)
    }
}
