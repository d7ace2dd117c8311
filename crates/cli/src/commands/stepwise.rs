//! `--stepwise`: upgrade release by release, one commit each (with `--branch`), stopping at the
//! first step with conflicts.

use uplift_upgrade::report::{self, Colour};
use uplift_upgrade::{ApplyOptions, Steps, UpgradeRequest};

use crate::commands::plan::{Format, UpgradeArgs};
use crate::commands::upstream::upgrade_error;
use crate::exit::{CliError, CliResult, Exit};

fn request(
    args: &UpgradeArgs,
    from: Option<String>,
    to: &str,
) -> Result<(uplift_upgrade::Upstream, UpgradeRequest), CliError> {
    let (upstream, marker) = args.open_upstream()?;
    let request = UpgradeRequest {
        app: args.app.clone(),
        from,
        to: to.to_string(),
        marker,
        merge: args.merge.options(),
    };
    Ok((upstream, request))
}

/// Prints the plan of every step (the last one listed is the first that conflicts).
pub fn plan(args: &UpgradeArgs, format: Format) -> CliResult {
    let (upstream, request) = request(args, args.from.clone(), &args.to)?;
    let mut steps = uplift_upgrade::prepare_steps(&upstream, &request).map_err(upgrade_error)?;
    for step in &mut steps.steps {
        uplift_upgrade::preset::add_follow_ups(&upstream, step);
    }
    uplift_upgrade::phase("report", || print_steps(&steps, format));
    Ok(Exit::Success)
}

fn print_steps(steps: &Steps, format: Format) {
    let colour = if crate::output::stdout_colour() {
        Colour::Always
    } else {
        Colour::Never
    };
    let count = steps.steps.len();
    match format {
        Format::Json => {
            let plans: Vec<_> = steps.steps.iter().map(|s| &s.plan).collect();
            let doc = serde_json::json!({
                "schema": uplift_upgrade::PLAN_SCHEMA,
                "stepwise": true,
                "steps": plans,
                "stopped_at": steps.stopped_at,
                "remaining": steps.remaining,
            });
            crate::output::write_json(&serde_json::to_string_pretty(&doc).unwrap_or_default());
        }
        Format::Text | Format::Markdown | Format::Patch => {
            for (index, step) in steps.steps.iter().enumerate() {
                let title = format!(
                    "Step {}/{count}: {} -> {}",
                    index + 1,
                    step.plan.from,
                    step.plan.to
                );
                match format {
                    Format::Markdown => out!("# {title}\n\n{}", report::markdown(&step.plan)),
                    Format::Patch => out!("{}", report::patch(step)),
                    _ => out!("{title}\n{}\n", report::text(&step.plan, colour)),
                }
            }
            if let Some(release) = &steps.stopped_at {
                let rest = if steps.remaining.is_empty() {
                    String::new()
                } else {
                    format!("; not planned: {}", steps.remaining.join(", "))
                };
                let line = format!("Stopped: the step to {release} conflicts{rest}.");
                match format {
                    Format::Patch => errln!("{line}"),
                    _ => outln!("{line}"),
                }
            }
        }
    }
}

/// Applies step by step (one commit per step with `--branch`); stops at the first conflicting
/// step, which is applied (with markers) only with `--allow-conflicts`.
pub fn apply(
    args: &UpgradeArgs,
    branch: Option<&str>,
    allow_dirty: bool,
    allow_conflicts: bool,
    quiet: bool,
    interrupts: &crate::interrupt::Interrupts,
) -> CliResult {
    let (upstream, request) = request(args, args.from.clone(), &args.to)?;
    // Plan every step first: refuse early, and know where it stops, before writing anything.
    let planned = uplift_upgrade::prepare_steps(&upstream, &request).map_err(upgrade_error)?;
    let mut committed = false;
    let mut follow_ups: Vec<uplift_upgrade::FollowUp> = Vec::new();
    for step in &planned.steps {
        let conflicted = step.plan.has_conflicts();
        if conflicted && !allow_conflicts {
            errln!(
                "stopped before {} -> {}: {} conflict(s); apply that step alone to resolve them, or pass --allow-conflicts",
                step.plan.from,
                step.plan.to,
                step.plan.summary.conflicts
            );
            out!("{}", report::text(&step.plan, Colour::Never));
            return Ok(Exit::Negative);
        }
        // Each step is prepared again from the app as the previous step left it.
        let step_request = UpgradeRequest {
            from: None,
            to: step.plan.to.clone(),
            ..request.clone()
        };
        let mut prepared =
            uplift_upgrade::prepare(&upstream, &step_request).map_err(upgrade_error)?;
        uplift_upgrade::preset::add_follow_ups(&upstream, &mut prepared);
        for follow_up in &prepared.plan.follow_up {
            if !follow_ups.contains(follow_up) {
                follow_ups.push(follow_up.clone());
            }
        }
        let options = ApplyOptions {
            branch: branch.map(str::to_string),
            allow_dirty: allow_dirty && !committed,
            continue_branch: committed,
        };
        let outcome = interrupts
            .during_commit(|control| uplift_upgrade::apply_with(&prepared, &options, control))
            .map_err(upgrade_error)?;
        committed = outcome.commit.is_some();
        if !quiet {
            errln!(
                "step {} -> {}: {}{}",
                prepared.plan.from,
                prepared.plan.to,
                report::summary_line(&prepared.plan),
                outcome
                    .commit
                    .map(|c| format!(" (commit {})", &c[..c.len().min(12)]))
                    .unwrap_or_default()
            );
        }
        if conflicted {
            break;
        }
    }
    // Once, after every step: the commands the preset asks for (`yarn install`, ...).
    if !quiet {
        for follow_up in &follow_ups {
            errln!("Then run: {} ({})", follow_up.command, follow_up.reason);
        }
    }
    Ok(Exit::Success)
}
