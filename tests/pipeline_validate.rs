//! `uplift validate`: every kind of error, each with its exact line and column, all at once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};

fn uplift(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_uplift"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("UPLIFT_LOG")
        .output()
        .unwrap()
}

/// Validates `text` with `--format json`; returns (exit code, [(line, column, message)]).
fn problems(text: &str) -> (i32, Vec<(usize, usize, String)>) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("p.yml"), text).unwrap();
    let out = uplift(dir.path(), &["validate", "-p", "p.yml", "--format", "json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    let list = json["problems"].as_array().unwrap();
    let list = list
        .iter()
        .map(|p| {
            (
                p["line"].as_u64().unwrap() as usize,
                p["column"].as_u64().unwrap() as usize,
                p["message"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    (out.status.code().unwrap(), list)
}

fn assert_one(text: &str, line: usize, column: usize, needle: &str) {
    let (code, list) = problems(text);
    assert_eq!(code, 2, "{list:?}");
    assert_eq!(list.len(), 1, "{list:?}");
    let (l, c, m) = &list[0];
    assert_eq!((*l, *c), (line, column), "{m}");
    assert!(m.contains(needle), "{m:?} should contain {needle:?}");
}

#[test]
fn valid_file_passes() {
    let (code, list) = problems("stages:\n  a:\n    uses: run\n    with:\n      run: echo hi\n");
    assert_eq!((code, list.len()), (0, 0));
}

#[test]
fn yaml_syntax_error() {
    assert_one(
        "stages:\n  a:\n    uses: run\n   with: [\n",
        4,
        4,
        "invalid YAML",
    );
}

#[test]
fn unknown_top_level_key() {
    assert_one(
        "nmae: x\nstages:\n  a:\n    uses: run\n    with: {run: x}\n",
        1,
        1,
        "unknown key `nmae`",
    );
}

#[test]
fn unknown_stage_key() {
    assert_one(
        "stages:\n  a:\n    uses: run\n    neds: [b]\n    with: {run: x}\n",
        4,
        5,
        "unknown key `neds` in stage `a`",
    );
}

#[test]
fn unknown_with_key() {
    assert_one(
        "stages:\n  a:\n    uses: run\n    with:\n      run: x\n      shel: bash\n",
        6,
        7,
        "unknown field `shel`",
    );
}

#[test]
fn wrong_type() {
    assert_one(
        "stages:\n  a:\n    uses: run\n    continue-on-error: maybe\n    with: {run: x}\n",
        4,
        24,
        "invalid type",
    );
}

#[test]
fn unknown_stage_type() {
    assert_one(
        "stages:\n  a:\n    uses: runn\n    with: {run: x}\n",
        3,
        11,
        "unknown stage type `runn`",
    );
}

#[test]
fn needs_unknown_stage() {
    assert_one(
        "stages:\n  a:\n    uses: run\n    with: {run: x}\n  b:\n    uses: run\n    needs: [a, c]\n    with: {run: x}\n",
        7,
        16,
        "needs `c`, which is not a stage",
    );
}

#[test]
fn cycle_is_named() {
    let text = "stages:\n  a:\n    uses: run\n    needs: c\n    with: {run: x}\n  b:\n    uses: run\n    needs: a\n    with: {run: x}\n  c:\n    uses: run\n    needs: b\n    with: {run: x}\n";
    assert_one(text, 4, 12, "dependency cycle: a → c → b → a");
}

#[test]
fn expression_does_not_parse() {
    assert_one(
        "stages:\n  a:\n    uses: run\n    with:\n      run: echo ${{ env.X == }}\n",
        5,
        30,
        "invalid expression",
    );
}

#[test]
fn condition_does_not_parse() {
    assert_one(
        "stages:\n  a:\n    uses: run\n    if: success( && true\n    with: {run: x}\n",
        4,
        16,
        "invalid expression",
    );
}

#[test]
fn expression_unknown_stage() {
    assert_one(
        "stages:\n  a:\n    uses: run\n    with:\n      run: echo ${{ stages.nope.outputs.x }}\n",
        5,
        21,
        "unknown stage `nope`",
    );
}

#[test]
fn expression_unknown_output() {
    let text = "stages:\n  a:\n    uses: run\n    outputs: [version]\n    with: {run: x}\n  b:\n    uses: run\n    needs: a\n    env:\n      V: ${{ stages.a.outputs.versoin }}\n    with: {run: x}\n";
    assert_one(text, 10, 14, "stage `a` has no output `versoin`");
}

#[test]
fn expression_stage_not_needed() {
    let text = "stages:\n  a:\n    uses: run\n    outputs: [v]\n    with: {run: x}\n  b:\n    uses: run\n    if: stages.a.result == 'success'\n    with: {run: x}\n";
    assert_one(text, 8, 9, "stage `a` is not in the `needs` of `b`");
}

#[test]
fn unknown_function_and_root() {
    assert_one(
        "stages:\n  a:\n    uses: run\n    if: succes()\n    with: {run: x}\n",
        4,
        9,
        "unknown function `succes()`",
    );
    assert_one(
        "stages:\n  a:\n    uses: run\n    with:\n      run: ${{ github.sha }}\n",
        5,
        16,
        "unknown name `github`",
    );
}

#[test]
fn all_errors_at_once_rendered_with_snippets() {
    let text = "name: broken\nbogus: 1\nstages:\n  build:\n    uses: runn\n  test:\n    uses: run\n    needs: [build, nope]\n    timeout: soon\n    with:\n      run: echo ${{ stages.build.outputs.missing }}\n";
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("broken.yml"), text).unwrap();
    let out = uplift(dir.path(), &["validate", "-p", "broken.yml"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The list of stage types grows as stage types are added: keep it out of the snapshot.
    insta::with_settings!({filters => vec![(r"(help: expected one of: )[a-z, -]*\bupgrade\b[a-z, -]*", "${1}<stage types>")]}, {
        insta::assert_snapshot!(stderr);
    });
}

#[test]
fn examples_are_valid() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut checked = 0;
    for entry in std::fs::read_dir(root.join("pipelines")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yml") {
            let out = uplift(root, &["validate", "-p", path.to_str().unwrap()]);
            assert!(
                out.status.success(),
                "{}: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            checked += 1;
        }
    }
    assert!(
        checked >= 3,
        "expected the example pipelines, found {checked}"
    );
}

#[test]
fn committed_schema_is_current() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = uplift(root, &["validate", "--print-schema"]);
    assert!(out.status.success());
    let committed = std::fs::read_to_string(root.join("pipelines/schema.json")).unwrap();
    let generated = String::from_utf8_lossy(&out.stdout);
    if let Some((n, (a, b))) = generated
        .lines()
        .zip(committed.lines())
        .enumerate()
        .find(|(_, (a, b))| a != b)
    {
        panic!(
            "pipelines/schema.json is stale at line {}: generated {a:?}, committed {b:?}; \
             run `cargo run -- validate --print-schema > pipelines/schema.json`",
            n + 1
        );
    }
    assert_eq!(
        generated.lines().count(),
        committed.lines().count(),
        "pipelines/schema.json is stale"
    );
    let schema: serde_json::Value = serde_json::from_str(&committed).unwrap();
    let uses = &schema["definitions"]["StageFile"]["properties"]["uses"]["enum"];
    assert!(
        uses.as_array().unwrap().iter().any(|v| v == "run"),
        "{uses}"
    );
}

#[test]
fn wrong_type_of_a_union_field() {
    assert_one(
        "stages:\n  a:\n    uses: run\n    needs: {x: 1}\n    with: {run: x}\n",
        4,
        12,
        "expected a stage id or a list of stage ids",
    );
}

/// `uses: deploy` with `target: kubernetes`: the `kubernetes:` block is typed to its leaves.
/// Each stage's `with` reports its first problem, so three bad stages give three errors, each
/// at `file:line:column`.
#[test]
fn bad_kubernetes_block_of_a_deploy_stage() {
    let deploy = |id: &str, body: &str| {
        format!(
            "  {id}:\n    uses: deploy\n    with:\n      target: kubernetes\n      name: portal\n      image: registry.local/portal@sha256:2222222222222222222222222222222222222222222222222222222222222222\n      kubernetes:\n{body}"
        )
    };
    let text = format!(
        "stages:\n{}{}{}",
        deploy(
            "unknown",
            "        namespace: web\n        ingress: { host: portal.example.com, tls: portal-tls }\n"
        ),
        deploy(
            "wrong-type",
            "        services:\n          catalog: { plugins: catalog }\n"
        ),
        deploy("docker-setting", "        probes: { readiness: /ready }\n").replace(
            "      target: kubernetes\n",
            "      target: kubernetes\n      health: { path: /ready }\n",
        ),
    );
    let (code, list) = problems(&text);
    assert_eq!(code, 2, "{list:?}");
    let found: Vec<(usize, usize)> = list.iter().map(|(l, c, _)| (*l, *c)).collect();
    assert_eq!(found, [(10, 46), (19, 31), (24, 7)], "{list:?}");
    assert!(
        list[0].2.contains("`with.kubernetes.ingress.tls`"),
        "{list:?}"
    );
    assert!(
        list[0]
            .2
            .contains("unknown field `tls`, expected one of `host`, `class-name`, `tls-secret`"),
        "{list:?}"
    );
    assert!(
        list[1]
            .2
            .contains("`with.kubernetes.services.catalog.plugins`"),
        "{list:?}"
    );
    assert!(
        list[1]
            .2
            .contains("invalid type: string \"catalog\", expected a sequence"),
        "{list:?}"
    );
    assert!(
        list[2].2.contains("`health` is a Docker setting"),
        "{list:?}"
    );
    assert!(list[2].2.contains("use `kubernetes.probes`"), "{list:?}");

    // The text format names the file, line and column of each.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("k8s.yml"), &text).unwrap();
    let out = uplift(dir.path(), &["validate", "-p", "k8s.yml"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for line in [
        "k8s.yml:10:46: error: `with.kubernetes.ingress.tls` of stage `unknown` (deploy): unknown field `tls`",
        "k8s.yml:19:31: error: `with.kubernetes.services.catalog.plugins` of stage `wrong-type` (deploy): invalid type",
        "k8s.yml:24:7: error: `with.health` of stage `docker-setting` (deploy): `health` is a Docker setting",
    ] {
        assert!(stderr.contains(line), "{line}\n{stderr}");
    }
}

/// A problem past column 65,535 is shown (the snippet cut around it), not a panic (issue 10).
#[test]
fn an_error_past_column_65535_is_shown_with_a_cut_snippet() {
    let dir = tempfile::tempdir().unwrap();
    let padding = "x".repeat(70_000);
    let text = format!("stages:\n  a:\n    uses: run\n    with: {{ run: \"{padding}\", rn: 1 }}\n");
    std::fs::write(dir.path().join("wide.yml"), &text).unwrap();
    let out = uplift(dir.path(), &["validate", "-p", "wide.yml"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let column = text.lines().nth(3).unwrap().find("rn:").unwrap() + 1;
    assert!(
        stderr.contains(&format!("wide.yml:4:{column}: error:")),
        "{stderr}"
    );
    // The snippet shows the key itself, and no line of it is anywhere near the file's width.
    assert!(stderr.contains("rn: 1"), "{stderr}");
    assert!(stderr.lines().all(|l| l.chars().count() < 400), "{stderr}");
    assert!(stderr.contains('…'), "{stderr}");
}

/// An `if:` of 60,000 `!`s (under the 64 KiB expression cap) is refused by validation: its
/// depth would overflow the evaluator's stack (issue 10).
#[test]
fn a_condition_nested_past_the_depth_limit_is_refused() {
    let text = format!(
        "stages:\n  a:\n    uses: run\n    if: \"{}true\"\n    with: {{ run: \"true\" }}\n",
        "!".repeat(60_000)
    );
    let (code, list) = problems(&text);
    assert_eq!(code, 2, "{list:?}");
    assert_eq!(list.len(), 1, "{list:?}");
    assert!(list[0].2.contains("nested deeper than 32"), "{list:?}");
}

/// `-p /dev/zero` stops at the 1 MiB cap instead of reading without bound (issue 10).
#[test]
fn an_endless_pipeline_file_is_refused_at_the_cap() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_uplift"))
        .args(["validate", "-p", "/dev/zero"])
        .current_dir(dir.path())
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            panic!("validate -p /dev/zero still reading after 30 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("larger than 1048576 bytes"), "{stderr}");
}

/// One stage's first problem does not hide its others, and unknown names get the nearest
/// known one (issue 11): `retires:` does not hide `with.rn`; `retries: two` does not hide a bad
/// timeout, a bad expression and an unknown stage.
#[test]
fn every_problem_of_a_stage_at_once_with_suggestions() {
    let text = "\
stages:
  build:
    uses: run
    retires: 2
    with: { rn: make }
  test:
    uses: run
    needs: [biuld]
    retries: two
    timeout: soon
    if: \"success( &&\"
    with: { run: make test }
  lint:
    uses: runn
    nedds: test
";
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("many.yml"), text).unwrap();
    let out = uplift(dir.path(), &["validate", "-p", "many.yml"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    insta::assert_snapshot!(stderr);
}
