//! Preparing an upgrade: the plan and the changes that carry it out.

use std::path::{Path, PathBuf};

use serde::Serialize;
use std::collections::BTreeMap;
use uplift_merge::{Action, FilePlan, Labels, MergeOptions, Summary, merge_trees, paths_to_read};

use uplift_template::Release;
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
    pub files: Vec<FilePlan>,
    pub summary: Summary,
    pub follow_up: Vec<FollowUp>,
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
    let (from, to) = resolve_range(upstream, request, &Overlay::default())?;
    let releases: Vec<Release> = upstream
        .releases()
        .steps(&from, &to)
        .into_iter()
        .cloned()
        .collect();
    let mut overlay = Overlay::new();
    let mut steps = Vec::new();
    // Each release is rendered once: a step's target is the next step's base.
    let mut previous_tree = crate::phase("render base", || upstream.render(&from))?;
    let mut previous = from;
    for (index, release) in releases.iter().enumerate() {
        let theirs = crate::phase("render target", || upstream.render(release))?;
        let prepared = prepare_rendered(
            upstream,
            request,
            &overlay,
            (&previous, &previous_tree),
            (release, &theirs),
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

fn resolve_range(
    upstream: &Upstream,
    request: &UpgradeRequest,
    overlay: &Overlay,
) -> Result<(Release, Release), Error> {
    let app = request.app.as_path();
    if !app.is_dir() {
        return Err(Error::NoApp {
            path: app.to_path_buf(),
        });
    }
    let from_text = match &request.from {
        Some(from) => from.clone(),
        None => {
            let path = request.marker.rel_path()?;
            match read_over(app, overlay, &path)? {
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
    let from = releases.resolve(&from_text)?.clone();
    let to = releases.resolve(&request.to)?.clone();
    if to.version < from.version {
        return Err(Error::Downgrade {
            from: from.to_string(),
            to: to.to_string(),
        });
    }
    Ok((from, to))
}

fn prepare_over(
    upstream: &Upstream,
    request: &UpgradeRequest,
    overlay: &Overlay,
) -> Result<Prepared, Error> {
    let (from, to) = resolve_range(upstream, request, overlay)?;
    let base = crate::phase("render base", || upstream.render(&from))?;
    let theirs = crate::phase("render target", || upstream.render(&to))?;
    prepare_rendered(upstream, request, overlay, (&from, &base), (&to, &theirs))
}

/// The plan from `from` to `to`, both already rendered (the request's own range is not read).
fn prepare_rendered(
    upstream: &Upstream,
    request: &UpgradeRequest,
    overlay: &Overlay,
    (from, base): (&Release, &Tree),
    (to, theirs): (&Release, &Tree),
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
        template_from: upstream.template_at(from).map(str::to_string),
        template_to: upstream.template_at(to).map(str::to_string),
        summary: Summary::of(&outcome.files),
        files: outcome.files,
        follow_up,
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
    let current = match written {
        Some(index) => match &outcome.changes[index] {
            Change::Write { entry, .. } => Some(entry.clone()),
            Change::Delete { .. } => None,
        },
        None => read_over(app, overlay, &path)?,
    };
    let Some(updated) = current.and_then(|entry| marker.updated(&entry, version)) else {
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
