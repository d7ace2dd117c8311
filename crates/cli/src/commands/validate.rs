//! `uplift validate`: check a pipeline file and report every problem at once.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use crate::GlobalArgs;
use crate::exit::{CliError, CliResult, Exit};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The pipeline file (default: `uplift.yml`, else `pipelines/uplift.yml`).
    #[arg(long, short = 'p', value_name = "FILE")]
    pub pipeline: Option<PathBuf>,
    /// Print the problems as JSON on stdout.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Print the pipeline file's JSON Schema (as committed in `pipelines/schema.json`) and exit.
    #[arg(long, conflicts_with = "pipeline")]
    pub print_schema: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

/// The pipeline file to use when `-p` is not given.
pub fn pipeline_path(given: Option<&Path>) -> Result<PathBuf, CliError> {
    if let Some(path) = given {
        return Ok(path.to_owned());
    }
    for candidate in ["uplift.yml", "pipelines/uplift.yml"] {
        if Path::new(candidate).is_file() {
            return Ok(PathBuf::from(candidate));
        }
    }
    Err(CliError::new(
        Exit::BadInput,
        "no pipeline file: neither uplift.yml nor pipelines/uplift.yml exists",
    )
    .with_hint("name one with -p FILE, e.g. -p pipelines/demo.yml"))
}

/// Loads and checks a pipeline file against the built-in stage types, rendering every problem.
pub fn load_pipeline(path: &Path, json: bool) -> Result<uplift_pipeline::Pipeline, CliError> {
    match uplift_pipeline::load(path, &uplift_stages::catalog()) {
        Ok(pipeline) => Ok(pipeline),
        Err(uplift_pipeline::Error::Invalid(diagnostics)) => {
            let count = diagnostics.problems.len();
            let mut error = CliError::new(
                Exit::BadInput,
                format!("{} has {count} error(s)", diagnostics.file),
            );
            if json {
                let text = serde_json::to_string_pretty(&*diagnostics).unwrap_or_default();
                crate::output::write_json(&text);
                error.rendered = Some(String::new());
            } else {
                let colour = std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                    && std::io::stderr().is_terminal();
                error.rendered = Some(diagnostics.render(colour));
            }
            Err(error)
        }
        Err(error @ uplift_pipeline::Error::Read { .. }) => {
            Err(CliError::from_error(Exit::BadInput, &error))
        }
    }
}

pub fn run(args: Args, global: &GlobalArgs) -> CliResult {
    if args.print_schema {
        out!(
            "{}",
            uplift_pipeline::schema::schema_json(&uplift_stages::catalog())
        );
        return Ok(Exit::Success);
    }
    let path = pipeline_path(args.pipeline.as_deref())?;
    let json = args.format == Format::Json;
    let pipeline = load_pipeline(&path, json)?;
    if json {
        let ok = serde_json::json!({ "file": path.display().to_string(), "problems": [] });
        crate::output::write_json(&serde_json::to_string_pretty(&ok).unwrap_or_default());
    } else if !global.quiet {
        outln!(
            "{}: valid pipeline `{}` ({} stage(s), {} finally)",
            path.display(),
            pipeline.name,
            pipeline.stages.len(),
            pipeline.finally.len()
        );
    }
    Ok(Exit::Success)
}
