//! The pipeline plan (`uplift run --plan`, also behind `uplift plan -p`): DAG order, resolved
//! and masked settings, what each stage would do; nothing runs, nothing changes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};
use std::time::SystemTime;

const PIPELINE: &str = r#"
name: plan-demo
env:
  TARGET: staging
stages:
  build:
    uses: run
    outputs: [tag]
    with:
      run: |
        touch created-by-build
        echo "tag=v1" >> "$UPLIFT_OUTPUT"
  deploy:
    uses: run
    needs: build
    timeout: 5m
    retries: 2
    env:
      TOKEN: ${{ secrets.DEPLOY_TOKEN }}
    with:
      run: echo deploying ${{ stages.build.outputs.tag }} to ${{ env.TARGET }} with ${{ secrets.DEPLOY_TOKEN }}
      working-directory: sub
  prod-only:
    uses: run
    needs: build
    if: env.TARGET == 'production'
    with:
      run: touch created-by-prod
finally:
  notify:
    uses: run
    with:
      run: touch created-by-finally
"#;

fn plan(dir: &Path, format: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_uplift"))
        .args(["run", "--plan", "-p", "p.yml", "--format", format])
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env("UPLIFT_SECRET_DEPLOY_TOKEN", "tok-9f8e7d")
        .output()
        .unwrap()
}

/// Every path under `dir` with its modification time and size.
fn listing(dir: &Path) -> BTreeMap<String, (SystemTime, u64)> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let entry = entry.unwrap();
            let meta = entry.metadata().unwrap();
            if meta.is_dir() {
                todo.push(entry.path());
            }
            out.insert(
                entry.path().display().to_string(),
                (meta.modified().unwrap(), meta.len()),
            );
        }
    }
    out
}

fn filtered(dir: &Path, text: &str) -> String {
    text.replace(&dir.display().to_string(), "[DIR]")
}

#[test]
fn plan_runs_nothing_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("p.yml"), PIPELINE).unwrap();
    std::fs::create_dir(d.join("sub")).unwrap();
    let before = listing(d);
    for format in ["text", "json", "markdown"] {
        let out = plan(d, format);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(listing(d), before, "the plan changed files");
    assert!(!d.join("created-by-build").exists());
    assert!(!d.join(".uplift").exists());
}

#[test]
fn plan_text_json_markdown() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("p.yml"), PIPELINE).unwrap();
    let text = plan(d, "text");
    let text = filtered(d, &String::from_utf8_lossy(&text.stdout));
    assert!(!text.contains("tok-9f8e7d"));
    insta::assert_snapshot!("plan_text", text);

    let json = plan(d, "json");
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let ids: Vec<&str> = json["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["build", "deploy", "prod-only", "notify"]);
    let layers: Vec<u64> = json["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["layer"].as_u64().unwrap())
        .collect();
    assert_eq!(layers, [1, 2, 2, 3]);
    let deploy = &json["stages"][1];
    assert_eq!(deploy["env"]["TOKEN"], "***");
    assert_eq!(
        deploy["with"]["run"],
        "echo deploying ${{ stages.build.outputs.tag }} to staging with ***"
    );
    assert_eq!(json["stages"][2]["would_run"], false);
    assert!(!json.to_string().contains("tok-9f8e7d"));

    let md = plan(d, "markdown");
    let md = filtered(d, &String::from_utf8_lossy(&md.stdout));
    insta::assert_snapshot!("plan_markdown", md);
}
