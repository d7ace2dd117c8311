//! Helpers of the Docker deploy tests: the engine check, the fixture service image, clean-up.

use std::process::Command;

use super::root;

/// Whether a Docker engine answers; with `CI=true` a missing engine fails the test.
pub fn docker_available() -> bool {
    let ok = Command::new("docker")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true and no Docker engine"
        );
        eprintln!("skipping: no Docker engine");
    }
    ok
}

/// Builds `uplift-deploy-fixture:TAG` from `fixtures/deploy/DOCKERFILE` (busybox httpd serving
/// `health` and `version`), with the classic builder.
pub fn build_fixture(tag: &str, dockerfile: &str) {
    let ctx = tempfile::tempdir().unwrap();
    std::fs::copy("/bin/busybox", ctx.path().join("busybox")).unwrap();
    std::fs::create_dir(ctx.path().join("www")).unwrap();
    std::fs::write(ctx.path().join("www/health"), "ok\n").unwrap();
    std::fs::write(ctx.path().join("www/version"), format!("{tag}\n")).unwrap();
    let out = Command::new("docker")
        .env("DOCKER_BUILDKIT", "0")
        .args([
            "build",
            "-q",
            "-t",
            &format!("uplift-deploy-fixture:{tag}"),
            "-f",
        ])
        .arg(root().join("fixtures/deploy").join(dockerfile))
        .arg(ctx.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Removes a deploy target's containers, its load-loop container and its network when dropped.
pub struct Cleanup(pub String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Ok(out) = Command::new("docker")
            .args([
                "ps",
                "-aq",
                "--filter",
                &format!("label=dev.uplift.deploy.target={}", self.0),
            ])
            .output()
        {
            for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("docker").args(["rm", "-f", id]).output();
            }
        }
        let _ = Command::new("docker")
            .args(["rm", "-f", &format!("{}-load", self.0)])
            .output();
        let _ = Command::new("docker")
            .args(["network", "rm", &self.0])
            .output();
    }
}
