//! The upstream: a release source plus what it takes to render one of its releases.

use uplift_template::{
    Lineage, Release, ReleaseLine, ReleaseList, ReleaseSource, RenderContext, SourceOptions,
    TagPattern, Values,
};
use uplift_tree::Tree;

use crate::Error;

/// Picks the template folder from a release's own files (`None`: follow the lineage). A preset
/// uses it where a template moved on a pre-release whose number is not known in advance.
pub type TemplateChoice = std::sync::Arc<dyn Fn(&Tree) -> Option<String> + Send + Sync>;

/// Where the template comes from and how to render it. The defaults fit `@backstage/create-app`
/// release bundles (`versions.json` at the release root).
#[derive(Clone)]
pub struct UpstreamConfig {
    /// `git:PATH_OR_URL` or `dir:PATH`.
    pub source: String,
    /// Template folder inside a release, by release (empty: the release root).
    pub lineage: Lineage,
    /// Template folder chosen from each release's files, before the lineage (set by presets,
    /// cleared when the user names the template).
    pub template_choice: Option<TemplateChoice>,
    /// How tags name releases (`git:` sources), with one `{version}`.
    pub tag_pattern: Option<String>,
    /// List pre-releases too.
    pub include_pre: bool,
    /// The release line `latest` follows; `None` is `main`, chosen by default (a plan of an app
    /// already on a pre-release then suggests `next`).
    pub line: Option<ReleaseLine>,
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
            .field("template_choice", &self.template_choice.is_some())
            .field("tag_pattern", &self.tag_pattern)
            .field("include_pre", &self.include_pre)
            .field("line", &self.line)
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
            template_choice: None,
            tag_pattern: None,
            include_pre: false,
            line: None,
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
        let mut releases = ReleaseList::new(source.describe(), listed, config.include_pre)
            .with_line(config.line.unwrap_or_default());
        for (line, release) in source.line_latest()? {
            releases = releases.with_line_latest(line, release);
        }
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

    /// The release line followed.
    pub fn line(&self) -> ReleaseLine {
        self.releases.line()
    }

    /// The template folder followed at `release` (`None`: the release root).
    pub fn template_at(&self, release: &Release) -> Option<&str> {
        self.config.lineage.subdir_at(&release.version)
    }

    /// Renders the template of `release` with the configured values.
    pub fn render(&self, release: &Release) -> Result<Tree, Error> {
        Ok(self.render_template(release)?.0)
    }

    /// Renders the template of `release`; also returns the template folder used (from the
    /// release's files when a preset chooses, else from the lineage).
    pub fn render_template(&self, release: &Release) -> Result<(Tree, Option<String>), Error> {
        let files = self.source.files(release)?;
        let versions = uplift_template::versions_map(&files, &self.config.versions_file)?;
        let subdir = self
            .config
            .template_choice
            .as_ref()
            .and_then(|choose| choose(&files))
            .or_else(|| self.template_at(release).map(str::to_string));
        let template = uplift_template::template_files(&files, release, subdir.as_deref())?;
        let context = RenderContext {
            values: &self.config.values,
            versions: versions.as_ref(),
        };
        Ok((uplift_template::render(&template, context)?, subdir))
    }
}
