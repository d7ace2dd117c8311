//! `uplift apply`: writes the upgrade into the app, all or nothing.

use uplift_upgrade::ApplyOptions;

use crate::GlobalArgs;
use crate::commands::plan::{Format, UpgradeArgs, print};
use crate::commands::upstream::upgrade_error;
use crate::exit::{CliResult, Exit};
use crate::interrupt::Interrupts;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    upgrade: UpgradeArgs,
    /// Create this branch from HEAD and commit the upgrade on it.
    #[arg(long)]
    branch: Option<String>,
    /// Apply even when the app has uncommitted changes.
    #[arg(long)]
    allow_dirty: bool,
    /// Exit 0 even when conflicts remain (their markers are written either way).
    #[arg(long)]
    allow_conflicts: bool,
    /// What to print once applied: the plan as `text` (default), `json` (the same document as
    /// `plan --format json`), `markdown` or `patch`.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Write a pull-request body (markdown: from/to, conflicts first, release links, plan) to
    /// FILE, for `gh pr create --body-file FILE`. Written even when conflicts remain.
    #[arg(long, value_name = "FILE")]
    pr_body: Option<std::path::PathBuf>,
    /// Characters of GitHub's 65,536-character body limit left free for what the workflow
    /// appends to the body (the weekly workflow appends its test summary, made with
    /// `run --summary-limit` of the same size).
    #[arg(long, value_name = "CHARS", default_value_t = crate::gha::PR_BODY_RESERVE, requires = "pr_body")]
    pr_body_reserve: usize,
}

pub fn run(args: Args, global: &GlobalArgs) -> CliResult {
    let interrupts = Interrupts::install();
    if args.upgrade.stepwise {
        let branch = args.branch.as_deref();
        return crate::commands::stepwise::apply(
            &args.upgrade,
            branch,
            args.allow_dirty,
            args.allow_conflicts,
            global.quiet,
            &interrupts,
        );
    }
    let prepared = args.upgrade.prepare()?;
    let options = ApplyOptions {
        branch: args.branch.clone(),
        allow_dirty: args.allow_dirty,
        continue_branch: false,
    };
    let outcome = interrupts
        .during_commit(|control| uplift_upgrade::apply_with(&prepared, &options, control))
        .map_err(upgrade_error)?;
    if !global.quiet || args.format == Format::Json {
        print(&prepared, args.format);
    }
    if !global.quiet {
        let written = outcome.files_changed;
        match &outcome.commit {
            Some(commit) => errln!(
                "applied: {written} change(s) committed as {} on branch {}",
                &commit[..commit.len().min(12)],
                args.branch.as_deref().unwrap_or_default()
            ),
            None => errln!("applied: {written} change(s) written"),
        }
    }
    if let Some(path) = &args.pr_body {
        let backstage =
            crate::gha::is_backstage(&prepared.plan.source, &args.upgrade.marker.marker_file);
        let limit = crate::gha::PR_BODY_LIMIT.saturating_sub(args.pr_body_reserve);
        let body = crate::gha::pr_body(&prepared, backstage, args.branch.as_deref(), limit);
        std::fs::write(path, body).map_err(|e| {
            crate::exit::CliError::from_error(crate::exit::Exit::Environment, &e)
                .with_hint(format!("--pr-body {} could not be written", path.display()))
        })?;
    }
    if prepared.plan.has_conflicts() && !args.allow_conflicts {
        errln!(
            "{} conflict(s) remain: resolve the markers, or rerun with --allow-conflicts to accept this",
            prepared.plan.summary.conflicts
        );
        return Ok(Exit::Negative);
    }
    Ok(Exit::Success)
}
