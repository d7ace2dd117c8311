//! `uplift cleanup RUN_ID` removes what a crashed run left behind, found by its label.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use uplift_testkit::docker::{self, try_docker as docker};

#[test]
fn cleanup_removes_the_containers_labelled_with_the_run() {
    if !docker::available() {
        return;
    }
    let run_id = uplift_testkit::per_process("cleanup-test");
    let label = format!("dev.uplift.run-id={run_id}");
    // A stopped container is enough; `create` needs no image layers to run. Any local image
    // works: use the one the docker tests build, else make a one-file image from scratch.
    let image = "uplift-it/cleanup:1";
    if docker(&["image", "inspect", image]).is_none() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Dockerfile"), "FROM scratch\nCOPY f /f\n").unwrap();
        std::fs::write(dir.path().join("f"), "x").unwrap();
        docker::build_classic(image, dir.path(), None);
    }
    for _ in 0..2 {
        docker(&["create", "--label", &label, image, "/nothing"]).unwrap();
    }
    let list = || docker(&["ps", "-aq", "--filter", &format!("label={label}")]).unwrap();
    assert_eq!(list().lines().count(), 2);

    let out = Command::new(env!("CARGO_BIN_EXE_uplift"))
        .args(["cleanup", &run_id])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("removed 2 container(s)"), "{stderr}");
    assert_eq!(list(), "");
}
