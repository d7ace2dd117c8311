//! Presets: upstream settings inferred from the app, so that an upgrade needs no option.
//! The only one is `backstage` (see [`uplift_npm::preset`]); the engine itself stays generic.

use std::path::Path;

use uplift_template::Lineage;
use uplift_tree::{Change, Tree};

use crate::plan::FollowUp;
use crate::{Error, Prepared, Upstream, UpstreamConfig};

/// The presets this build knows.
pub const PRESETS: &[&str] = &["backstage"];

/// The upstream settings of preset `name` for the app in `app`. Callers apply the user's
/// overrides (`--set`, `--template`, `--upstream`) on top.
pub fn preset_config(name: &str, app: &Path) -> Result<UpstreamConfig, Error> {
    match name {
        "backstage" => {
            let preset = uplift_npm::preset::backstage(app)?;
            let mut config = UpstreamConfig::new(preset.source);
            config.lineage = Lineage::parse(&preset.lineage)?;
            let frontend = preset.frontend;
            config.template_choice = Some(std::sync::Arc::new(move |files: &Tree| {
                uplift_npm::preset::template_in(frontend, files)
            }));
            config.values = preset.values;
            config.versions_file = preset.versions_file;
            config.npmrc_dir = Some(app.to_path_buf());
            config.preset = Some(name.to_string());
            Ok(config)
        }
        other => Err(Error::UnknownPreset {
            name: other.to_string(),
            known: PRESETS.join(", "),
        }),
    }
}

/// Adds the preset's follow-up commands to a prepared upgrade (nothing without a preset).
pub fn add_follow_ups(upstream: &Upstream, prepared: &mut Prepared) {
    if upstream.config().preset.as_deref() != Some("backstage") {
        return;
    }
    let written: Tree = prepared
        .changes
        .iter()
        .filter_map(|change| match change {
            Change::Write { path, entry } => Some((path.clone(), entry.clone())),
            Change::Delete { .. } => None,
        })
        .collect();
    for hint in uplift_npm::preset::follow_ups(&prepared.app, &written) {
        let follow_up = FollowUp {
            command: hint.command,
            reason: hint.reason,
        };
        if !prepared.plan.follow_up.contains(&follow_up) {
            prepared.plan.follow_up.push(follow_up);
        }
    }
}

/// Whether `error` comes from outside the input (network, registry, disk).
pub fn is_environment_error(error: &Error) -> bool {
    match error {
        Error::Npm(npm) => npm.is_environment(),
        Error::Template(uplift_template::Error::Source(foreign)) => foreign
            .0
            .downcast_ref::<uplift_npm::Error>()
            .is_some_and(uplift_npm::Error::is_environment),
        _ => false,
    }
}
