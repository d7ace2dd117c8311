//! Preparing an upgrade: the plan and the changes that carry it out.

use std::path::{Path, PathBuf};

use serde::Serialize;
use std::collections::BTreeMap;
use uplift_merge::{Action, FilePlan, Labels, MergeOptions, Summary, merge_trees, paths_to_read};

use uplift_template::{Release, ReleaseLine};
use uplift_tree::{Change, FileEntry, RelPath, Tree};

use crate::{Error, Marker, Upstream};

/// The version of the plan's JSON form. Bumped on any incompatible change.
pub const PLAN_SCHEMA: u32 = 1;

/// What to upgrade, and how.
#[derive(Debug, Clone)]
pub struct UpgradeRequest {
    pub app: PathBuf,
    /// The app's release; `None` reads it from the marker.
    pub from: Option<String>,
    /// A release or `latest`.
    pub to: String,
    pub marker: Marker,
    pub merge: MergeOptions,
}

/// A command the user (or the pipeline) should run after the merge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FollowUp {
    pub command: String,
    pub reason: String,
}

/// The plan of one upgrade. Serialized as the documented JSON (see the README).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub schema: u32,
    pub source: String,
    pub from: String,
    pub to: String,
    /// Template folder at `from` and at `to` (absent when the template is the release root).
    pub template_from: Option<String>,
    pub template_to: Option<String>,
    /// The release line `latest` followed: `main` or `next`.
    pub line: String,
    pub files: Vec<FilePlan>,
    pub summary: Summary,
    pub follow_up: Vec<FollowUp>,
    /// What the user should know about the choice of releases (e.g. an app on a pre-release
    /// that follows `main`).
    pub notes: Vec<String>,
}

impl Plan {
    pub fn has_conflicts(&self) -> bool {
        self.summary.conflict > 0
    }
}

/// A plan with everything needed to apply it.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub plan: Plan,
    pub changes: Vec<Change>,
    /// The app's versions of the paths the plan touches (for patches).
    pub ours: Tree,
    pub app: PathBuf,
}

/// Renders base and target, reads the touched app paths, and merges. Writes nothing.
pub fn prepare(upstream: &Upstream, request: &UpgradeRequest) -> Result<Prepared, Error> {
    prepare_over(upstream, request, &Overlay::default())
}

/// Changes not yet written to the app, seen on top of it (`None`: deleted). Lets a stepwise
/// plan show every step without writing anything.
pub type Overlay = BTreeMap<RelPath, Option<FileEntry>>;

fn read_over(app: &Path, overlay: &Overlay, path: &RelPath) -> Result<Option<FileEntry>, Error> {
    match overlay.get(path) {
        Some(entry) => Ok(entry.clone()),
        None => Ok(uplift_tree::read_entry(app, path)?),
    }
}

/// An upgrade cut into one step per release, each prepared on top of the previous ones.
#[derive(Debug, Clone)]
pub struct Steps {
    pub steps: Vec<Prepared>,
    /// The release whose step conflicts (the last step listed); `None` when all are clean.
    pub stopped_at: Option<String>,
    /// Releases after the conflicting step, not planned.
    pub remaining: Vec<String>,
}

/// Prepares a stepwise upgrade: one step per release between the app's and the target,
/// stopping after the first step with conflicts. Writes nothing.
pub fn prepare_steps(upstream: &Upstream, request: &UpgradeRequest) -> Result<Steps, Error> {
    let (from, to, _) = resolve_range(upstream, request, &Overlay::default())?;
    let releases: Vec<Release> = upstream
        .releases()
        .steps(&from, &to)
        .into_iter()
        .cloned()
        .collect();
    let mut overlay = Overlay::new();
    let mut steps = Vec::new();
    // Each release is rendered once: a step's target is the next step's base.
    let mut previous_tree = crate::phase("render base", || upstream.render_template(&from))?;
    let mut previous = from;
    for (index, release) in releases.iter().enumerate() {
        let theirs = crate::phase("render target", || upstream.render_template(release))?;
        let prepared = prepare_rendered(
            upstream,
            request,
            &overlay,
            (&previous, &previous_tree),
            (release, &theirs),
            line_notes(upstream, &previous),
        )?;
        for change in &prepared.changes {
            match change {
                Change::Write { path, entry } => overlay.insert(path.clone(), Some(entry.clone())),
                Change::Delete { path } => overlay.insert(path.clone(), None),
            };
        }
        let conflicted = prepared.plan.has_conflicts();
        steps.push(prepared);
        if conflicted {
            let remaining = releases[index + 1..]
                .iter()
                .map(|r| r.version.to_string())
                .collect();
            return Ok(Steps {
                steps,
                stopped_at: Some(release.version.to_string()),
                remaining,
            });
        }
        previous = release.clone();
        previous_tree = theirs;
    }
    Ok(Steps {
        steps,
        stopped_at: None,
        remaining: Vec::new(),
    })
}

/// The app's release and the target, with notes on the choice. The app's release resolves
/// whatever the options (pre-release or not); `latest` is the newest release of the line, and
/// an app already past it (a pre-release ahead of `main`) stays where it is.
fn resolve_range(
    upstream: &Upstream,
    request: &UpgradeRequest,
    overlay: &Overlay,
) -> Result<(Release, Release, Vec<String>), Error> {
    let app = request.app.as_path();
    if !app.is_dir() {
        return Err(Error::NoApp {
            path: app.to_path_buf(),
        });
    }
    // An interrupted apply is finished or undone before anything is read.
    crate::recover(app)?;
    let from_text = match &request.from {
        Some(from) => from.clone(),
        None => {
            let path = request.marker.rel_path()?;
            let entry = match overlay.get(&path) {
                Some(entry) => entry.clone(),
                None => request.marker.read_entry(app)?,
            };
            match entry {
                Some(entry) => request.marker.parse(&path.to_native(app), &entry)?,
                None => {
                    return Err(Error::NoMarker {
                        path: path.to_native(app),
                    });
                }
            }
        }
    };
    let releases = upstream.releases();
    let from = releases.resolve_current(&from_text)?.clone();
    let mut to = releases.resolve(&request.to)?.clone();
    let mut notes = line_notes(upstream, &from);
    if request.to == "latest" && to.version < from.version {
        notes.push(format!(
            "the app's release {from} is newer than the latest release of the {line} line \
             ({to}): nothing to upgrade on this line",
            line = releases.line()
        ));
        to = from.clone();
    }
    if to.version < from.version {
        return Err(Error::Downgrade {
            from: from.to_string(),
            to: to.to_string(),
        });
    }
    Ok((from, to, notes))
}

/// A note for an app on a pre-release that follows `main` only because it is the default:
/// the line is never switched silently, only suggested.
pub fn line_notes(upstream: &Upstream, from: &Release) -> Vec<String> {
    let defaulted = upstream.config().line.is_none();
    if defaulted && ReleaseLine::of(&from.version) == ReleaseLine::Next {
        vec![format!(
            "the app is on the pre-release {from} but follows the main line (the default): \
             pass `--line next` (or `line: next` in the pipeline's `upstream:` block) to follow \
             the weekly next releases"
        )]
    } else {
        Vec::new()
    }
}

fn prepare_over(
    upstream: &Upstream,
    request: &UpgradeRequest,
    overlay: &Overlay,
) -> Result<Prepared, Error> {
    let (from, to, notes) = resolve_range(upstream, request, overlay)?;
    let base = crate::phase("render base", || upstream.render_template(&from))?;
    let theirs = crate::phase("render target", || upstream.render_template(&to))?;
    prepare_rendered(
        upstream,
        request,
        overlay,
        (&from, &base),
        (&to, &theirs),
        notes,
    )
}

/// A release's rendered template, and the template folder it came from.
type Rendered = (Tree, Option<String>);

/// The plan from `from` to `to`, both already rendered (the request's own range is not read).
fn prepare_rendered(
    upstream: &Upstream,
    request: &UpgradeRequest,
    overlay: &Overlay,
    (from, (base, template_from)): (&Release, &Rendered),
    (to, (theirs, template_to)): (&Release, &Rendered),
    notes: Vec<String>,
) -> Result<Prepared, Error> {
    let app = request.app.as_path();
    tracing::info!(from = %from, to = %to, source = %upstream.describe(), "preparing upgrade");
    let ours = crate::phase("read app", || read_paths(app, overlay, base, theirs))?;
    let mut options = request.merge.clone();
    options.text.labels = Labels {
        ours: "app".to_string(),
        base: format!("upstream {from}"),
        theirs: format!("upstream {to}"),
    };
    let mut outcome = crate::phase("merge", || merge_trees(base, theirs, &ours, &options));
    record_release(
        app,
        overlay,
        &request.marker,
        &to.version.to_string(),
        &mut outcome,
    )?;
    let follow_up = follow_ups(&outcome.files);
    let plan = Plan {
        schema: PLAN_SCHEMA,
        source: upstream.describe(),
        from: from.to_string(),
        to: to.to_string(),
        template_from: template_from.clone(),
        template_to: template_to.clone(),
        line: upstream.line().to_string(),
        summary: Summary::of(&outcome.files),
        files: outcome.files,
        follow_up,
        notes,
    };
    Ok(Prepared {
        plan,
        changes: outcome.changes,
        ours,
        app: app.to_path_buf(),
    })
}

/// Reads the app's version of every path upstream changed (and nothing else).
fn read_paths(app: &Path, overlay: &Overlay, base: &Tree, theirs: &Tree) -> Result<Tree, Error> {
    let mut ours = Tree::new();
    for path in paths_to_read(base, theirs) {
        if let Some(entry) = read_over(app, overlay, &path)? {
            ours.insert(path, entry);
        }
    }
    Ok(ours)
}

/// Makes sure the marker records the target release, whatever the merge did to it.
fn record_release(
    app: &Path,
    overlay: &Overlay,
    marker: &Marker,
    version: &str,
    outcome: &mut uplift_merge::MergeOutcome,
) -> Result<(), Error> {
    let path = marker.rel_path()?;
    let written = outcome
        .changes
        .iter()
        .position(|change| matches!(change, Change::Write { path: p, .. } if *p == path));
    let native = path.to_native(app);
    if outcome
        .changes
        .iter()
        .any(|change| matches!(change, Change::Delete { path: p } if *p == path))
    {
        return Err(Error::Marker {
            path: native,
            message: format!("the upgrade to {version} deletes it (upstream removed or moved it)"),
        });
    }
    if outcome
        .files
        .iter()
        .any(|file| file.path == path && file.action == Action::Conflict)
    {
        // The conflict markers are the user's to resolve; the plan lists the file.
        return Ok(());
    }
    let current = match written {
        Some(index) => match &outcome.changes[index] {
            Change::Write { entry, .. } => Some(entry.clone()),
            Change::Delete { .. } => None,
        },
        None => match overlay.get(&path) {
            Some(entry) => entry.clone(),
            None => marker.read_entry(app)?,
        },
    };
    let Some(current) = current else {
        return Ok(());
    };
    let Some(updated) = marker.updated(&native, &current, version)? else {
        return Ok(());
    };
    let change = Change::Write {
        path: path.clone(),
        entry: updated,
    };
    match written {
        Some(index) => outcome.changes[index] = change,
        None => {
            outcome.changes.push(change);
            match outcome.files.iter_mut().find(|file| file.path == path) {
                Some(file) if file.action == Action::UpToDate => {
                    file.action = Action::Update;
                    file.reason = Some(format!("records release {version}"));
                }
                Some(_) => {}
                None => {
                    let file = FilePlan::new(path, Action::Update)
                        .with_reason(format!("records release {version}"));
                    let at = outcome.files.partition_point(|f| f.path < file.path);
                    outcome.files.insert(at, file);
                }
            }
        }
    }
    Ok(())
}

/// Lockfiles to regenerate, as commands.
fn follow_ups(files: &[FilePlan]) -> Vec<FollowUp> {
    let mut follow_up: Vec<FollowUp> = Vec::new();
    for file in files.iter().filter(|f| f.action == Action::Regenerate) {
        let command = match file.path.file_name() {
            "yarn.lock" => "yarn install",
            "package-lock.json" => "npm install",
            "pnpm-lock.yaml" => "pnpm install",
            "Cargo.lock" => "cargo update --workspace",
            _ => continue,
        };
        let dir = file
            .path
            .parent()
            .map(|p| format!(" (in {p})"))
            .unwrap_or_default();
        let reason = format!("regenerates {}{dir}", file.path.file_name());
        if !follow_up
            .iter()
            .any(|f| f.command == command && f.reason == reason)
        {
            follow_up.push(FollowUp {
                command: command.to_string(),
                reason,
            });
        }
    }
    follow_up
}

#[cfg(test)]
mod line_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::UpstreamConfig;

    /// The acme fixture releases (2.1.0-next.0 is a pre-release above the stable 2.0.0) and a
    /// copy of the fixture app at `release`.
    fn setup(line: Option<ReleaseLine>, release: &str) -> (Upstream, tempfile::TempDir) {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures");
        let mut config =
            UpstreamConfig::new(format!("dir:{}", root.join("templates/acme").display()));
        config.lineage = uplift_template::Lineage::parse(&["default-app"]).unwrap();
        config.values.insert("name".into(), "acme-portal".into());
        config.values.insert("defaultBranch".into(), "main".into());
        config.line = line;
        let app = tempfile::tempdir().unwrap();
        let source = root.join("apps/acme-portal/package.json");
        std::fs::copy(&source, app.path().join("package.json")).unwrap();
        std::fs::write(
            app.path().join("backstage.json"),
            format!("{{\"version\": \"{release}\"}}\n"),
        )
        .unwrap();
        (Upstream::open(config).unwrap(), app)
    }

    fn request(app: &Path, to: &str) -> UpgradeRequest {
        UpgradeRequest {
            app: app.to_path_buf(),
            from: None,
            to: to.to_string(),
            marker: Marker::default(),
            merge: MergeOptions::default(),
        }
    }

    #[test]
    fn a_pre_release_app_on_the_default_line_is_told_and_not_moved_back() {
        let (upstream, app) = setup(None, "2.1.0-next.0");
        let plan = prepare(&upstream, &request(app.path(), "latest"))
            .unwrap()
            .plan;
        assert_eq!(
            (plan.from.as_str(), plan.to.as_str()),
            ("2.1.0-next.0", "2.1.0-next.0")
        );
        assert_eq!(plan.line, "main");
        assert_eq!(plan.notes.len(), 2, "{:?}", plan.notes);
        assert!(plan.notes[0].contains("`--line next`"));
        assert!(plan.notes[1].contains("newer than the latest release of the main line (2.0.0)"));
        // An explicit older target is still a downgrade.
        let error = prepare(&upstream, &request(app.path(), "2.0.0")).unwrap_err();
        assert!(matches!(error, Error::Downgrade { .. }), "{error:?}");
    }

    #[test]
    fn the_next_line_targets_its_newest_release_without_notes() {
        let (upstream, app) = setup(Some(ReleaseLine::Next), "2.0.0");
        let plan = prepare(&upstream, &request(app.path(), "latest"))
            .unwrap()
            .plan;
        assert_eq!(plan.to, "2.1.0-next.0");
        assert_eq!(plan.line, "next");
        assert!(plan.notes.is_empty());
        // Chosen on purpose, `main` gives no suggestion even to a pre-release app.
        let (upstream, app) = setup(Some(ReleaseLine::Main), "2.1.0-next.0");
        let plan = prepare(&upstream, &request(app.path(), "latest"))
            .unwrap()
            .plan;
        assert_eq!(plan.notes.len(), 1, "{:?}", plan.notes);
        assert!(!plan.notes[0].contains("`--line next`"));
    }
}
