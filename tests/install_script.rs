//! `scripts/install-uplift.sh` (what action.yml runs) against a loopback HTTP server standing
//! in for GitHub's release downloads: the right checksum installs, a wrong one is refused, a
//! release without this machine's asset falls back to the source build (stubbed, and without
//! the workflow's `UPLIFT_SECRET_*`), an unknown architecture is a clear error, and `resolve`
//! finds the repository, ref, commit and release tag from the action's path.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output};

use common::*;

/// Serves `files` (URL path → body) on 127.0.0.1, 404 for anything else. Returns the base URL.
fn serve(files: HashMap<String, Vec<u8>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            if reader.read_line(&mut request).is_err() {
                continue;
            }
            // Skip the headers.
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let path = request.split_whitespace().nth(1).unwrap_or("/").to_string();
            let (status, body) = match files.get(&path) {
                Some(body) => ("200 OK", body.clone()),
                None => ("404 Not Found", b"not found".to_vec()),
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(&body);
        }
    });
    base
}

/// A release asset: a tar.gz holding an `uplift` script, and its SHA-256 line.
fn asset(dir: &Path) -> (Vec<u8>, String) {
    std::fs::write(dir.join("uplift"), "#!/bin/sh\necho fake uplift\n").unwrap();
    let status = Command::new("tar")
        .args(["-czf", "asset.tar.gz", "uplift"])
        .current_dir(dir)
        .status()
        .unwrap();
    assert!(status.success());
    let bytes = std::fs::read(dir.join("asset.tar.gz")).unwrap();
    let sum = Command::new("sha256sum")
        .arg(dir.join("asset.tar.gz"))
        .output()
        .unwrap();
    let hash = String::from_utf8_lossy(&sum.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    (bytes, hash)
}

fn script(install_dir: &Path, envs: &[(&str, &str)], subcommand: &str) -> Output {
    let mut command = Command::new("bash");
    command
        .arg(root().join("scripts/install-uplift.sh"))
        .arg(subcommand)
        .env("UPLIFT_INSTALL_DIR", install_dir)
        .env("UPLIFT_UNAME_S", "Linux")
        .env("UPLIFT_UNAME_M", "x86_64")
        .env_remove("GITHUB_OUTPUT")
        .env_remove("GITHUB_ACTION_PATH");
    for (k, v) in envs {
        command.env(k, v);
    }
    command.output().unwrap()
}

#[test]
fn install_checks_the_checksum_and_falls_back_to_a_source_build() {
    let work = tempfile::tempdir().unwrap();
    let (tarball, hash) = asset(work.path());
    let name = "uplift-x86_64-unknown-linux-musl.tar.gz";
    let mut files = HashMap::new();
    files.insert(format!("/good/v1.2.3/{name}"), tarball.clone());
    files.insert(
        format!("/good/v1.2.3/{name}.sha256"),
        format!("{hash}  {name}\n").into_bytes(),
    );
    files.insert(format!("/bad/v1.2.3/{name}"), tarball);
    files.insert(
        format!("/bad/v1.2.3/{name}.sha256"),
        format!("{}  {name}\n", "0".repeat(64)).into_bytes(),
    );
    let base = serve(files);

    // The right checksum: installed, and it runs.
    let bin = work.path().join("good/bin");
    let good = format!("{base}/good");
    let output = script(
        &bin,
        &[("UPLIFT_TAG", "1.2.3"), ("UPLIFT_DOWNLOAD_BASE", &good)],
        "install",
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let ran = Command::new(bin.join("uplift")).output().unwrap();
    assert_eq!(stdout(&ran), "fake uplift\n");
    assert!(stderr(&output).contains(&hash));

    // A wrong checksum: refused, nothing installed.
    let bin = work.path().join("bad/bin");
    let bad = format!("{base}/bad");
    let output = script(
        &bin,
        &[("UPLIFT_TAG", "v1.2.3"), ("UPLIFT_DOWNLOAD_BASE", &bad)],
        "install",
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("checksum mismatch"),
        "{}",
        stderr(&output)
    );
    assert!(!bin.join("uplift").exists());

    // No asset for this machine (aarch64): the source build runs, without the secrets.
    let bin = work.path().join("arm/bin");
    let output = script(
        &bin,
        &[
            ("UPLIFT_TAG", "v1.2.3"),
            ("UPLIFT_DOWNLOAD_BASE", &good),
            ("UPLIFT_UNAME_M", "aarch64"),
            ("UPLIFT_SECRET_REGISTRY_PASSWORD", "hunter2"),
            (
                "UPLIFT_BUILD_COMMAND",
                r#"env > "$UPLIFT_INSTALL_DIR/build-env"; echo built > "$UPLIFT_INSTALL_DIR/uplift""#,
            ),
        ],
        "install",
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stderr(&output).contains("has no uplift-aarch64-unknown-linux-musl.tar.gz"));
    let env = std::fs::read_to_string(bin.join("build-env")).unwrap();
    assert!(env.contains("UPLIFT_INSTALL_DIR="), "the stub ran");
    assert!(!env.contains("UPLIFT_SECRET_"), "{env}");
    assert!(!env.contains("hunter2"));

    // An architecture nothing is built for: a clear error.
    let output = script(
        &work.path().join("riscv/bin"),
        &[
            ("UPLIFT_TAG", "v1.2.3"),
            ("UPLIFT_DOWNLOAD_BASE", &good),
            ("UPLIFT_UNAME_M", "riscv64"),
        ],
        "install",
    );
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(err.contains("no uplift build for Linux/riscv64"), "{err}");
    assert!(
        err.contains("Linux x86_64 and aarch64, macOS arm64"),
        "{err}"
    );
}

#[test]
fn resolve_reads_the_action_path_and_finds_the_release_tag_of_a_moving_ref() {
    // The action's repository: v1 (moving) and v1.2.3 on the same commit, v1.1.0 older.
    let remote = tempfile::tempdir().unwrap();
    std::fs::write(remote.path().join("a"), "1").unwrap();
    let repo = git_commit_all(remote.path());
    let first = repo.head().unwrap().peel_to_commit().unwrap();
    repo.tag(
        "v1.1.0",
        first.as_object(),
        &first.author(),
        "v1.1.0",
        false,
    )
    .unwrap();
    std::fs::write(remote.path().join("a"), "2").unwrap();
    let mut index = repo.index().unwrap();
    index.add_path(Path::new("a")).unwrap();
    index.write().unwrap();
    let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
    let signature = git2::Signature::now("t", "t@example.invalid").unwrap();
    let head = repo
        .commit(
            Some("HEAD"),
            &signature,
            &signature,
            "two",
            &tree,
            &[&first],
        )
        .unwrap();
    let object = repo.find_object(head, None).unwrap();
    repo.tag("v1.2.3", &object, &signature, "v1.2.3", false)
        .unwrap();
    repo.tag_lightweight("v1", &object, true).unwrap();

    let work = tempfile::tempdir().unwrap();
    let output_file = work.path().join("github_output");
    let action = "/home/runner/work/_actions/acme/uplift/v1";
    let output = script(
        &work.path().join("bin"),
        &[
            ("UPLIFT_ACTION_PATH", action),
            ("UPLIFT_GIT_REMOTE", remote.path().to_str().unwrap()),
            ("GITHUB_OUTPUT", output_file.to_str().unwrap()),
        ],
        "resolve",
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let outputs: HashMap<String, String> =
        uplift_github::parse_outputs(&std::fs::read_to_string(&output_file).unwrap())
            .unwrap()
            .into_iter()
            .collect();
    assert_eq!(outputs["repository"], "acme/uplift");
    assert_eq!(outputs["ref"], "v1");
    assert_eq!(outputs["commit"], head.to_string());
    assert_eq!(outputs["tag"], "v1.2.3");
    assert_eq!(outputs["target"], "x86_64-unknown-linux-musl");
}
