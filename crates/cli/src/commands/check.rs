//! `uplift check`: for scheduled jobs. Is there a newer upstream release (the latest, or within
//! a range), and with `--plan`, does it merge cleanly? Reads only.
//!
//! Exit codes: 0 (up to date, or any answer without `--exit-code`), 1 (with `--exit-code`: an
//! upgrade is available), 2 (bad input: no upstream, unknown release, bad marker),
//! 3 (the upstream or the app cannot be read: unreachable repository, I/O).

use std::fmt::Write as _;

use serde_json::json;
use uplift_github::{Level, Outputs, StepSummary};
use uplift_template::{Release, ReleaseLine};
use uplift_upgrade::{Prepared, UpgradeRequest, report};

use crate::GlobalArgs;
use crate::commands::plan::UpgradeArgs;
use crate::commands::upstream::upgrade_error;
use crate::exit::{CliError, CliResult, Exit};
use crate::gha::{Gha, conflict_annotations};

#[derive(Debug, clap::Args)]
// `check` looks at one target release: the shared `--stepwise` means nothing here.
#[command(mut_arg("stepwise", |a| a.hide(true)))]
pub struct Args {
    #[command(flatten)]
    pub upgrade: UpgradeArgs,
    /// Which newer releases count: any (`major`, the default, up to `--to`), the same major
    /// (`minor`), or the same major.minor (`patch`).
    #[arg(long, value_enum, default_value_t = Within::Major)]
    pub within: Within,
    /// Also prepare the upgrade and say whether it merges cleanly (lists the conflicts).
    #[arg(long)]
    pub plan: bool,
    /// Exit 1 when an upgrade is available (like `git diff --exit-code`).
    #[arg(long)]
    pub exit_code: bool,
    /// The output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Write GitHub Actions outputs, step summary and annotations even outside Actions
    /// (on by default when `GITHUB_ACTIONS=true`).
    #[arg(long)]
    pub github: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Within {
    Major,
    Minor,
    Patch,
}

impl Within {
    fn as_str(self) -> &'static str {
        match self {
            Within::Major => "major",
            Within::Minor => "minor",
            Within::Patch => "patch",
        }
    }

    fn allows(self, current: &semver::Version, candidate: &semver::Version) -> bool {
        match self {
            Within::Major => true,
            Within::Minor => candidate.major == current.major,
            Within::Patch => candidate.major == current.major && candidate.minor == current.minor,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
    Markdown,
}

/// The answer of a check.
#[derive(Debug)]
pub struct Check {
    pub source: String,
    pub current: Release,
    pub latest: Option<Release>,
    pub target: Option<Release>,
    pub within: Within,
    /// The release line followed (`main`, `next`).
    pub line: ReleaseLine,
    /// What the user should know about the line (an app on a pre-release following `main`).
    pub notes: Vec<String>,
    pub prepared: Option<Prepared>,
}

impl Check {
    pub fn available(&self) -> bool {
        self.target.is_some()
    }

    /// `up-to-date`, `upgrade-available`, or with `--plan`, `conflicts` when it would not merge cleanly.
    pub fn result(&self) -> &'static str {
        match (&self.target, &self.prepared) {
            (None, _) => "up-to-date",
            (Some(_), Some(p)) if p.plan.has_conflicts() => "conflicts",
            (Some(_), _) => "upgrade-available",
        }
    }

    fn json(&self) -> serde_json::Value {
        let mut doc = json!({
            "source": self.source,
            "current": self.current.version.to_string(),
            "latest": self.latest.as_ref().map(|r| r.version.to_string()),
            "target": self.target.as_ref().map(|r| r.version.to_string()),
            "within": self.within.as_str(),
            "line": self.line.as_str(),
            "notes": self.notes,
            "upgrade_available": self.available(),
            "result": self.result(),
        });
        if let Some(prepared) = &self.prepared {
            let plan = &prepared.plan;
            let conflicts: Vec<_> = plan
                .files
                .iter()
                .filter(|f| f.action == uplift_merge::Action::Conflict)
                .map(|f| json!({ "path": f.path.to_string(), "regions": f.conflicts, "reason": f.reason }))
                .collect();
            doc["merges_cleanly"] = json!(!plan.has_conflicts());
            doc["files"] = json!(plan.summary.files);
            doc["conflicts"] = json!(conflicts);
        }
        doc
    }

    fn headline(&self) -> String {
        let latest = self
            .latest
            .as_ref()
            .map(|r| r.version.to_string())
            .unwrap_or_else(|| "none".into());
        let line = match self.line {
            ReleaseLine::Main => String::new(),
            line => format!(" on the {line} line"),
        };
        match &self.target {
            None => format!(
                "up to date: the app is at {} (latest {latest}{line}, within {})",
                self.current.version,
                self.within.as_str()
            ),
            Some(target) => format!(
                "upgrade available: {} -> {} (latest {latest}{line}, within {})",
                self.current.version,
                target.version,
                self.within.as_str()
            ),
        }
    }

    fn text(&self) -> String {
        let mut out = format!("{}\n", self.headline());
        for note in &self.notes {
            let _ = writeln!(out, "note: {note}");
        }
        if let Some(prepared) = &self.prepared {
            let _ = writeln!(out, "{}", report::summary_line(&prepared.plan));
            for file in prepared
                .plan
                .files
                .iter()
                .filter(|f| f.action == uplift_merge::Action::Conflict)
            {
                let _ = writeln!(
                    out,
                    "  conflict  {}  {}",
                    file.path,
                    file.reason.as_deref().unwrap_or("")
                );
            }
        }
        out
    }

    /// Markdown for people (and the step summary).
    pub fn markdown(&self) -> String {
        let mut out = format!("## Upstream check\n\n{}\n\n", capitalize(&self.headline()));
        let _ = writeln!(
            out,
            "Upstream: `{}`, release line `{}`.\n",
            self.source,
            self.line.as_str()
        );
        for note in &self.notes {
            let _ = writeln!(out, "> [!NOTE]\n> {note}\n");
        }
        if let Some(prepared) = &self.prepared {
            out.push_str(&report::markdown(&prepared.plan));
        }
        out
    }

    fn outputs(&self) -> Result<Outputs, uplift_github::Error> {
        let mut o = Outputs::new();
        o.set("upgrade-available", self.available().to_string())?;
        o.set("current", self.current.version.to_string())?;
        o.set(
            "target",
            self.target
                .as_ref()
                .map(|r| r.version.to_string())
                .unwrap_or_default(),
        )?;
        o.set(
            "latest",
            self.latest
                .as_ref()
                .map(|r| r.version.to_string())
                .unwrap_or_default(),
        )?;
        if let Some(prepared) = &self.prepared {
            o.set("conflicts", prepared.plan.summary.conflict.to_string())?;
            let files: Vec<String> = prepared
                .plan
                .files
                .iter()
                .filter(|f| f.action == uplift_merge::Action::Conflict)
                .map(|f| f.path.to_string())
                .collect();
            o.set("conflicting-files", files.join("\n"))?;
            o.set(
                "conflict-regions",
                prepared.plan.summary.conflicts.to_string(),
            )?;
        }
        o.set("line", self.line.as_str())?;
        o.set("result", self.result())?;
        Ok(o)
    }
}

fn capitalize(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Runs the check (reads only).
pub fn check(args: &Args) -> Result<Check, CliError> {
    let (upstream, marker) = args.upgrade.open_upstream()?;
    let app = &args.upgrade.app;
    // An interrupted apply is finished or undone before the marker is read.
    uplift_upgrade::recover(app).map_err(upgrade_error)?;
    let current_text = match &args.upgrade.from {
        Some(from) => from.clone(),
        None => marker.read(app).map_err(upgrade_error)?,
    };
    let releases = upstream.releases();
    // The app's release is where it is: found even when it is a pre-release `--pre` hides.
    let current = releases
        .resolve_current(&current_text)
        .map_err(|e| upgrade_error(e.into()))?
        .clone();
    // `latest` caps at the line's newest release (on Backstage, what `v1/tags/<line>` names),
    // except that `--pre` on `main` lets any newer pre-release count.
    let include_pre = args.upgrade.upstream.pre || releases.line() == ReleaseLine::Next;
    let latest = releases.latest().ok().cloned();
    let ceiling = match args.upgrade.to.as_str() {
        "latest" if args.upgrade.upstream.pre && releases.line() == ReleaseLine::Main => None,
        "latest" => latest.as_ref().map(|r| r.version.clone()),
        to => Some(
            releases
                .resolve(to)
                .map_err(|e| upgrade_error(e.into()))?
                .version
                .clone(),
        ),
    };
    let target = releases
        .all()
        .iter()
        .filter(|r| r.version > current.version)
        .filter(|r| ceiling.as_ref().is_none_or(|c| r.version <= *c))
        .filter(|r| include_pre || r.version.pre.is_empty())
        .filter(|r| args.within.allows(&current.version, &r.version))
        .max_by(|a, b| a.version.cmp(&b.version))
        .cloned();
    let notes = uplift_upgrade::line_notes(&upstream, &current);
    tracing::info!(current = %current, target = ?target.as_ref().map(|r| r.to_string()), "checked upstream");
    let prepared = match (&target, args.plan) {
        (Some(target), true) => {
            let request = UpgradeRequest {
                app: app.clone(),
                from: Some(current.version.to_string()),
                to: target.version.to_string(),
                marker,
                merge: args.upgrade.merge.options(),
            };
            Some(uplift_upgrade::prepare(&upstream, &request).map_err(upgrade_error)?)
        }
        _ => None,
    };
    Ok(Check {
        source: upstream.describe(),
        current,
        latest,
        target,
        within: args.within,
        line: releases.line(),
        notes,
        prepared,
    })
}

pub fn run(args: Args, global: &GlobalArgs) -> CliResult {
    if args.upgrade.stepwise {
        return Err(CliError::new(
            Exit::BadInput,
            "`check` has no --stepwise: it checks the one target release",
        )
        .with_hint("`uplift plan --stepwise` plans release by release"));
    }
    let gha = Gha::detect(args.github);
    let progress = crate::progress::Progress::start(global, "reading the upstream's releases");
    let check = check(&args);
    match &check {
        Ok(c) => progress.done(&format!("read {}", c.source), global),
        Err(_) => drop(progress),
    }
    let check = check.map_err(|error| match (error.exit, &error.hint) {
        (Exit::Environment, None) => error.with_hint(
            "the upstream or the app could not be read (exit 3): check the source, the network and the paths",
        ),
        _ => error,
    })?;
    match args.format {
        Format::Text if !global.quiet => out!("{}", check.text()),
        Format::Text => {}
        Format::Json => crate::output::write_json(
            &serde_json::to_string_pretty(&check.json()).unwrap_or_default(),
        ),
        Format::Markdown => out!("{}", check.markdown()),
    }
    if gha.on {
        if let Some(prepared) = &check.prepared {
            gha.commands(conflict_annotations(prepared, Level::Warning).render());
        }
        let outputs = check
            .outputs()
            .map_err(|e| CliError::from_error(Exit::Environment, &e))?;
        gha.outputs(&outputs)?;
        let mut summary = StepSummary::new();
        summary.section("Upstream check", check.markdown());
        gha.summary(&summary)?;
    }
    Ok(if args.exit_code && check.available() {
        Exit::Negative
    } else {
        Exit::Success
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn within_ranges() {
        let v = |s: &str| semver::Version::parse(s).unwrap();
        assert!(Within::Major.allows(&v("1.0.0"), &v("2.0.0")));
        assert!(!Within::Minor.allows(&v("1.0.0"), &v("2.0.0")));
        assert!(Within::Minor.allows(&v("1.0.0"), &v("1.2.0")));
        assert!(!Within::Patch.allows(&v("1.0.0"), &v("1.1.0")));
        assert!(Within::Patch.allows(&v("1.0.0"), &v("1.0.3")));
    }
}
