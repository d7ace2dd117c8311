//! Progress of a run's long tasks (`StageProgress` events: pushed layers, build steps, rollout
//! replicas). On a terminal (and not `--quiet`, not GitHub Actions, not `--events json`): one
//! indicatif bar per task under a `MultiProgress`, cleared when the task ends. Anywhere else:
//! nothing while a task runs and one plain line when it ends ([`finished_line`]), so CI logs
//! stay readable. Colour only when `NO_COLOR` is unset or empty.

use std::collections::HashMap;
use std::io::IsTerminal;

use indicatif::{DecimalBytes, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use uplift_exec::ProgressUnit;

/// One progress report, borrowed from an `Event::StageProgress`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Update<'a> {
    pub stage: &'a str,
    pub task: &'a str,
    pub current: u64,
    pub total: Option<u64>,
    pub unit: ProgressUnit,
    pub message: &'a str,
    pub done: bool,
}

/// The line a finished task leaves in a log, prefixed like stage output
/// (`image | push 127.0.0.1:5000/app:1 layer 3f2a12ab34cd: pushed (2.10 MB)`); `None` while the
/// task runs.
pub fn finished_line(update: &Update<'_>, width: usize) -> Option<String> {
    let text = finished_text(update)?;
    Some(format!("{:>width$} | {text}", update.stage))
}

/// [`finished_line`] without the stage (for a GitHub log group, which names the stage).
pub fn finished_text(update: &Update<'_>) -> Option<String> {
    if !update.done {
        return None;
    }
    let task = update.task;
    let message = if update.message.is_empty() {
        "done"
    } else {
        update.message
    };
    Some(match amount(update) {
        Some(amount) => format!("{task}: {message} ({amount})"),
        None => format!("{task}: {message}"),
    })
}

/// The count in words: bytes sent (none for a layer the registry already had), `N/M steps`.
fn amount(update: &Update<'_>) -> Option<String> {
    match update.unit {
        ProgressUnit::Bytes if update.current == 0 => None,
        ProgressUnit::Bytes => Some(DecimalBytes(update.current).to_string()),
        ProgressUnit::Steps | ProgressUnit::Replicas => {
            let unit = update.unit.as_str();
            Some(match update.total {
                Some(total) => format!("{}/{total} {unit}", update.current),
                None => format!("{} {unit}", update.current),
            })
        }
    }
}

/// Whether bars are drawn: stderr is a terminal, and not `--quiet`, GitHub Actions or JSON events.
pub fn bars_wanted(quiet: bool, github: bool, json: bool) -> bool {
    !quiet && !github && !json && std::io::stderr().is_terminal()
}

/// Whether colour is allowed (`NO_COLOR` unset or empty).
pub fn colour_allowed() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Progress outside a pipeline run (`uplift rollback`, template downloads): bars on a terminal,
/// one line on stderr per finished task elsewhere, nothing with `--quiet`. Shareable between
/// threads, as the libraries report from theirs.
pub struct StandaloneView {
    view: std::sync::Mutex<ProgressView>,
    quiet: bool,
}

impl StandaloneView {
    pub fn new(quiet: bool) -> Self {
        let github = std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true");
        Self {
            view: std::sync::Mutex::new(ProgressView::new(
                bars_wanted(quiet, github, false),
                colour_allowed(),
                0,
            )),
            quiet,
        }
    }

    /// Takes one update: moves its bar, or prints its line when the task ends.
    pub fn show(&self, update: &Update<'_>) {
        if let Ok(mut view) = self.view.lock()
            && let Some(line) = view.update(update)
            && !self.quiet
        {
            errln!("{line}");
        }
    }
}

/// Renders progress events as bars or as plain lines.
pub enum ProgressView {
    Bars(Bars),
    Lines { width: usize },
}

/// The bars of the tasks running now.
pub struct Bars {
    multi: MultiProgress,
    bars: HashMap<(String, String), ProgressBar>,
    width: usize,
    colour: bool,
}

impl ProgressView {
    /// Bars on stderr when `bars` is true, plain lines otherwise.
    pub fn new(bars: bool, colour: bool, width: usize) -> Self {
        if bars {
            Self::with_target(ProgressDrawTarget::stderr(), colour, width)
        } else {
            ProgressView::Lines { width }
        }
    }

    /// Bars drawn to `target` (a hidden target in tests).
    pub fn with_target(target: ProgressDrawTarget, colour: bool, width: usize) -> Self {
        ProgressView::Bars(Bars {
            multi: MultiProgress::with_draw_target(target),
            bars: HashMap::new(),
            width,
            colour,
        })
    }

    /// Takes one update; returns the line to print, if any (the bars print their own).
    pub fn update(&mut self, update: &Update<'_>) -> Option<String> {
        match self {
            ProgressView::Lines { width } => finished_line(update, *width),
            ProgressView::Bars(bars) => {
                bars.update(update);
                None
            }
        }
    }

    /// Runs `write` (which prints other lines to stderr) with the bars out of the way.
    pub fn suspend<R>(&self, write: impl FnOnce() -> R) -> R {
        match self {
            ProgressView::Bars(bars) => bars.multi.suspend(write),
            ProgressView::Lines { .. } => write(),
        }
    }

    /// Clears the bars left of `stage` (all stages with `None`): tasks that never finished,
    /// in a failed or cancelled stage.
    pub fn clear_stage(&mut self, stage: Option<&str>) {
        if let ProgressView::Bars(bars) = self {
            bars.bars.retain(|(s, _), bar| {
                let keep = stage.is_some_and(|stage| stage != s);
                if !keep {
                    bar.finish_and_clear();
                    bars.multi.remove(bar);
                }
                keep
            });
        }
    }

    /// The tasks with a bar now, with their position and length (for tests).
    #[cfg(test)]
    fn active(&self) -> Vec<(String, u64, Option<u64>)> {
        let ProgressView::Bars(bars) = self else {
            return Vec::new();
        };
        let mut active: Vec<_> = bars
            .bars
            .iter()
            .map(|((_, task), bar)| (task.clone(), bar.position(), bar.length()))
            .collect();
        active.sort();
        active
    }
}

impl Bars {
    fn update(&mut self, update: &Update<'_>) {
        let key = (update.stage.to_owned(), update.task.to_owned());
        if update.done {
            if let Some(bar) = self.bars.remove(&key) {
                bar.finish_and_clear();
                self.multi.remove(&bar);
            }
            // The finished task stays as one line above the bars.
            if let Some(line) = finished_line(update, self.width) {
                let _ = self.multi.println(line);
            }
            return;
        }
        let style = style(update.unit, update.total.is_some(), self.colour);
        let bar = match self.bars.entry(key) {
            std::collections::hash_map::Entry::Occupied(entry) => {
                let bar = entry.into_mut();
                bar.set_style(style);
                bar
            }
            std::collections::hash_map::Entry::Vacant(entry) => {
                // Styled and named before it is shown, so it never draws with the default style.
                let bar = ProgressBar::hidden().with_style(style).with_prefix(format!(
                    "{:>width$} | {}",
                    update.stage,
                    update.task,
                    width = self.width
                ));
                entry.insert(self.multi.add(bar))
            }
        };
        match update.total {
            Some(total) => bar.set_length(total.max(update.current)),
            None => bar.unset_length(),
        }
        bar.set_position(update.current);
        bar.set_message(update.message.to_owned());
    }
}

fn style(unit: ProgressUnit, known_total: bool, colour: bool) -> ProgressStyle {
    let bar = if colour {
        "{bar:24.cyan/blue}"
    } else {
        "{bar:24}"
    };
    let template = match (unit, known_total) {
        (ProgressUnit::Bytes, true) => {
            format!("{{prefix}} [{bar}] {{decimal_bytes}}/{{decimal_total_bytes}} {{msg}}")
        }
        (ProgressUnit::Bytes, false) => "{prefix} {spinner} {decimal_bytes} {msg}".to_owned(),
        (_, true) => format!("{{prefix}} [{bar}] {{pos}}/{{len}} {{msg}}"),
        (_, false) => "{prefix} {spinner} {pos} {msg}".to_owned(),
    };
    ProgressStyle::with_template(&template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update<'a>(
        task: &'a str,
        current: u64,
        total: Option<u64>,
        unit: ProgressUnit,
        message: &'a str,
        done: bool,
    ) -> Update<'a> {
        Update {
            stage: "image",
            task,
            current,
            total,
            unit,
            message,
            done,
        }
    }

    #[test]
    fn a_finished_task_gives_one_line_and_a_running_one_none() {
        let layer = "push 127.0.0.1:5000/app:1 layer 3f2a12ab34cd";
        assert_eq!(
            finished_line(
                &update(
                    layer,
                    1_000,
                    Some(2_100_000),
                    ProgressUnit::Bytes,
                    "pushing",
                    false
                ),
                5
            ),
            None
        );
        assert_eq!(
            finished_line(
                &update(
                    layer,
                    2_100_000,
                    Some(2_100_000),
                    ProgressUnit::Bytes,
                    "pushed",
                    true
                ),
                7
            )
            .as_deref(),
            Some("  image | push 127.0.0.1:5000/app:1 layer 3f2a12ab34cd: pushed (2.10 MB)")
        );
        assert_eq!(
            finished_line(
                &update(
                    layer,
                    0,
                    Some(0),
                    ProgressUnit::Bytes,
                    "layer already exists",
                    true
                ),
                5
            )
            .as_deref(),
            Some("image | push 127.0.0.1:5000/app:1 layer 3f2a12ab34cd: layer already exists")
        );
        assert_eq!(
            finished_line(
                &update("build app", 9, Some(9), ProgressUnit::Steps, "built", true),
                5
            )
            .as_deref(),
            Some("image | build app: built (9/9 steps)")
        );
        assert_eq!(
            finished_line(
                &update(
                    "rollout portal",
                    3,
                    Some(3),
                    ProgressUnit::Replicas,
                    "",
                    true
                ),
                5
            )
            .as_deref(),
            Some("image | rollout portal: done (3/3 replicas)")
        );
    }

    #[test]
    fn plain_view_prints_only_finished_tasks() {
        let mut view = ProgressView::new(false, false, 5);
        let mut lines = Vec::new();
        for current in (0..=10).map(|i| i * 100) {
            lines.extend(view.update(&update(
                "push r layer a",
                current,
                Some(1000),
                ProgressUnit::Bytes,
                "pushing",
                false,
            )));
        }
        lines.extend(view.update(&update(
            "push r layer a",
            1000,
            Some(1000),
            ProgressUnit::Bytes,
            "pushed",
            true,
        )));
        assert_eq!(lines, vec!["image | push r layer a: pushed (1.00 kB)"]);
    }

    #[test]
    fn bars_follow_each_task_and_go_when_it_ends() {
        let mut view = ProgressView::with_target(ProgressDrawTarget::hidden(), true, 5);
        let u = |task, current, total, done| {
            update(task, current, total, ProgressUnit::Bytes, "pushing", done)
        };
        assert_eq!(view.update(&u("layer a", 10, Some(100), false)), None);
        assert_eq!(view.update(&u("layer b", 5, None, false)), None);
        view.update(&u("layer a", 60, Some(100), false));
        assert_eq!(
            view.active(),
            vec![
                ("layer a".to_owned(), 60, Some(100)),
                ("layer b".to_owned(), 5, None)
            ]
        );
        assert_eq!(view.update(&u("layer a", 100, Some(100), true)), None);
        assert_eq!(view.active(), vec![("layer b".to_owned(), 5, None)]);
        view.clear_stage(Some("other"));
        assert_eq!(view.active().len(), 1, "another stage's end leaves the bar");
        view.clear_stage(Some("image"));
        assert!(view.active().is_empty());
    }

    /// A terminal that records what is written to it.
    #[derive(Debug, Clone, Default)]
    struct Recorder(std::sync::Arc<std::sync::Mutex<String>>);

    impl Recorder {
        fn text(&self) -> String {
            self.0.lock().unwrap().clone()
        }
    }

    impl indicatif::TermLike for Recorder {
        fn width(&self) -> u16 {
            120
        }
        fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn write_line(&self, s: &str) -> std::io::Result<()> {
            self.write_str(&format!("{s}\n"))
        }
        fn write_str(&self, s: &str) -> std::io::Result<()> {
            self.0.lock().unwrap().push_str(s);
            Ok(())
        }
        fn clear_line(&self) -> std::io::Result<()> {
            self.write_str("<clear>")
        }
        fn flush(&self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn bars_are_drawn_on_a_terminal_and_replaced_by_a_line_when_done() {
        let term = Recorder::default();
        let mut view = ProgressView::with_target(
            ProgressDrawTarget::term_like(Box::new(term.clone())),
            false,
            5,
        );
        let layer = "push r:1 layer 3f2a12ab34cd";
        view.update(&update(
            layer,
            512,
            Some(1024),
            ProgressUnit::Bytes,
            "pushing",
            false,
        ));
        let drawn = term.text();
        assert!(
            drawn.contains("image | push r:1 layer 3f2a12ab34cd ["),
            "the bar: {drawn:?}"
        );
        assert!(
            drawn.contains("512 B/1.02 kB pushing"),
            "bytes of total: {drawn:?}"
        );
        assert!(drawn.contains("============"), "half the bar: {drawn:?}");
        view.update(&update(
            "build r",
            2,
            Some(5),
            ProgressUnit::Steps,
            "RUN make",
            false,
        ));
        assert!(
            term.text().contains("image | build r ["),
            "{:?}",
            term.text()
        );
        assert!(term.text().contains("2/5 RUN make"), "{:?}", term.text());
        view.update(&update(
            layer,
            1024,
            Some(1024),
            ProgressUnit::Bytes,
            "pushed",
            true,
        ));
        let after = term.text();
        assert!(
            after.contains("<clear>image | push r:1 layer 3f2a12ab34cd: pushed (1.02 kB)  "),
            "the finished task's line: {after:?}"
        );
        assert!(
            !after.contains('\u{1b}'),
            "no colour when not allowed: {after:?}"
        );
        assert!(
            !after.contains("0/0"),
            "no bar drawn before it is styled: {after:?}"
        );
        assert_eq!(view.active().len(), 1, "only the build's bar is left");
        // The last draw shows the build's bar and no longer the layer's.
        let last_draw = after.rsplit("<clear>").next().unwrap_or_default();
        assert!(last_draw.contains("build r ["), "{last_draw:?}");
        assert!(!last_draw.contains("layer 3f2a12ab34cd ["), "{last_draw:?}");
    }
}
