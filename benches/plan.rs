//! Benchmark: the cost of `uplift plan` follows the template, not the app.
//!
//! Plans the upgrade of a synthetic app of 100 files and of 20,000 files (the template, 100
//! files, changes 60 of them between the releases), and runs `git merge-tree --write-tree` on the
//! same three trees. Prints the median times and the ratios. Run: `cargo bench --bench plan`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use uplift_merge::MergeOptions;
use uplift_upgrade::{Marker, UpgradeRequest, Upstream, UpstreamConfig};

const TEMPLATE_FILES: usize = 100;
const CHANGED_FILES: usize = 60;
const LARGE_APP_FILES: usize = 20_000;
const RUNS: usize = 15;

fn file_text(index: usize, release: usize) -> String {
    let mut text = format!("// file {index}\n");
    for line in 0..40 {
        let value = if index < CHANGED_FILES && line == 20 {
            release * 1000 + line
        } else {
            line
        };
        text.push_str(&format!("export const value{line} = {value};\n"));
    }
    text
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// Two releases of a 100-file template, and an app rendered from the first with a few edits.
fn setup(root: &Path, extra_app_files: usize) -> (String, std::path::PathBuf) {
    for (release, name) in [(0, "1.0.0"), (1, "1.1.0")] {
        for index in 0..TEMPLATE_FILES {
            write(
                &root.join(format!(
                    "upstream/{name}/src/mod{}/file{index}.ts",
                    index % 10
                )),
                &file_text(index, release),
            );
        }
        write(
            &root.join(format!("upstream/{name}/app.json")),
            &format!("{{\"version\": \"{name}\"}}\n"),
        );
    }
    let app = root.join("app");
    for index in 0..TEMPLATE_FILES {
        let mut text = file_text(index, 0);
        if index % 7 == 0 {
            text.insert_str(0, "// customized by the app\n");
        }
        write(
            &app.join(format!("src/mod{}/file{index}.ts", index % 10)),
            &text,
        );
    }
    write(&app.join("app.json"), "{\"version\": \"1.0.0\"}\n");
    for index in 0..extra_app_files {
        write(
            &app.join(format!("own/dir{}/file{index}.ts", index % 200)),
            &format!("export const own = {index};\n"),
        );
    }
    (format!("dir:{}", root.join("upstream").display()), app)
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn time_plan(source: &str, app: &Path) -> Duration {
    let samples = (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            let upstream = Upstream::open(UpstreamConfig::new(source)).unwrap();
            let request = UpgradeRequest {
                app: app.to_path_buf(),
                from: None,
                to: "latest".to_string(),
                marker: Marker {
                    file: "app.json".into(),
                    field: "version".into(),
                },
                merge: MergeOptions::default(),
            };
            let prepared = uplift_upgrade::prepare(&upstream, &request).unwrap();
            assert_eq!(prepared.plan.summary.files, CHANGED_FILES + 1);
            start.elapsed()
        })
        .collect();
    median(samples)
}

fn git(dir: &Path, args: &[&str]) {
    let status = Command::new("git")
        .current_dir(dir)
        .args([
            "-c",
            "user.name=bench",
            "-c",
            "user.email=bench@example.invalid",
        ])
        .args(args)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "git {args:?}");
}

fn replace_tree(repo: &Path, from: &Path) {
    git(repo, &["rm", "-rq", "--ignore-unmatch", "."]);
    let status = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", from.display()))
        .arg(repo)
        .status()
        .unwrap();
    assert!(status.success());
    git(repo, &["add", "-A"]);
}

/// `git merge-tree --write-tree` on base (release 1.0.0), ours (the app), theirs (release 1.1.0).
fn time_git_merge_tree(root: &Path, app: &Path) -> Duration {
    let repo = root.join("git");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q", "-b", "base"]);
    replace_tree(&repo, &root.join("upstream/1.0.0"));
    git(&repo, &["commit", "-qm", "base"]);
    git(&repo, &["checkout", "-qb", "ours"]);
    replace_tree(&repo, app);
    git(&repo, &["commit", "-qm", "ours"]);
    git(&repo, &["checkout", "-qb", "theirs", "base"]);
    replace_tree(&repo, &root.join("upstream/1.1.0"));
    git(&repo, &["commit", "-qm", "theirs"]);
    let samples = (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            let output = Command::new("git")
                .current_dir(&repo)
                .args(["merge-tree", "--write-tree", "ours", "theirs"])
                .output()
                .unwrap();
            let elapsed = start.elapsed();
            assert!(
                output.status.success(),
                "{}",
                String::from_utf8_lossy(&output.stdout)
            );
            elapsed
        })
        .collect();
    median(samples)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let small = tempfile::tempdir().unwrap();
    let large = tempfile::tempdir().unwrap();
    let (small_source, small_app) = setup(small.path(), 0);
    let (large_source, large_app) = setup(large.path(), LARGE_APP_FILES - TEMPLATE_FILES - 1);
    let plan_small = time_plan(&small_source, &small_app);
    let plan_large = time_plan(&large_source, &large_app);
    let git_small = time_git_merge_tree(small.path(), &small_app);
    let git_large = time_git_merge_tree(large.path(), &large_app);
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "plan benchmark (median of {RUNS} runs; template {TEMPLATE_FILES} files, {CHANGED_FILES} changed)"
    );
    println!(
        "  uplift plan, 100-file app        {:>9.2} ms",
        ms(plan_small)
    );
    println!(
        "  uplift plan, 20,000-file app     {:>9.2} ms",
        ms(plan_large)
    );
    println!(
        "  git merge-tree, 100-file app     {:>9.2} ms",
        ms(git_small)
    );
    println!(
        "  git merge-tree, 20,000-file app  {:>9.2} ms",
        ms(git_large)
    );
    println!("ratios");
    println!(
        "  plan 20,000 / plan 100           {:>9.2}x  (aim: <= 1.5)",
        ms(plan_large) / ms(plan_small)
    );
    println!(
        "  plan / git merge-tree, 100       {:>9.2}x  (aim: <= 1.0)",
        ms(plan_small) / ms(git_small)
    );
    println!(
        "  plan / git merge-tree, 20,000    {:>9.2}x  (aim: <= 1.0)",
        ms(plan_large) / ms(git_large)
    );
}
