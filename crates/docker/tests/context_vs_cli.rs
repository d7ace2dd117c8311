//! Differential tests: the same folder built by the docker CLI (`DOCKER_BUILDKIT=0 docker
//! build`) and by Uplift (`build_image`, classic builder) on this machine's engine, the two
//! images compared file by file (`docker create` + `docker export`: names as bytes, types, modes,
//! owners, link targets, contents).
//!
//! Timestamps are left out of the comparison: Uplift writes one fixed time in the context by
//! default (reproducible contexts, see `ContextTimestamps`), the CLI each file's own. The rows
//! marked `Expect::SameWithTimes` build with `ContextTimestamps::Source` and compare the
//! regular files' times too.
//!
//! One row per case in `CASES`; adding a case is adding a row. Every image is `FROM scratch`
//! with `COPY . /ctx/` (nothing is pulled). Without an engine the test is skipped, except with
//! `CI=true`, where it fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use futures_util::StreamExt;
use uplift_docker::{BuildRequest, Builder, ContextTimestamps, Engine, build_image};
use uplift_testkit::docker::{self, docker_quiet};
use uplift_testkit::per_process;

const DOCKERFILE: &str = "FROM scratch\nCOPY . /ctx/\nCMD [\"/x\"]\n";

/// What the row expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Both build, and the images hold the same files (timestamps aside).
    Same,
    /// Both build the same files, with the same regular files' timestamps when Uplift uses
    /// `ContextTimestamps::Source`.
    SameWithTimes,
    /// Both refuse to build.
    BothFail,
}

struct Case {
    name: &'static str,
    /// The `.dockerignore` bytes (`None`: no file).
    ignore: Option<&'static [u8]>,
    /// What to add to the context folder besides the common files (the folder is `ctx` inside
    /// a scratch folder, whose other entries lie outside the context).
    setup: fn(&Path),
    /// The Dockerfile relative to the context folder (`None`: `Dockerfile`).
    dockerfile: Option<&'static str>,
    expect: Expect,
}

const fn ignore(name: &'static str, patterns: &'static [u8]) -> Case {
    Case {
        name,
        ignore: Some(patterns),
        setup: nothing,
        dockerfile: None,
        expect: Expect::Same,
    }
}

const fn special(name: &'static str, setup: fn(&Path)) -> Case {
    Case {
        name,
        ignore: None,
        setup,
        dockerfile: None,
        expect: Expect::Same,
    }
}

fn nothing(_: &Path) {}

#[rustfmt::skip]
const CASES: &[Case] = &[
    // The issue's table: where the CLI and Uplift used to differ.
    special("modes 0600 0444 0700 sticky setgid setuid", modes),
    special("hard links", hard_links),
    special("a sparse file", sparse_file),
    special("a fifo", fifo),
    special("a unix socket is left out", socket),
    special("a non-UTF-8 file name", non_utf8_name),
    ignore("[!a].txt is a class of ! and a", b"[!a].txt\n"),
    ignore("{a,b}.txt is literal", b"{a,b}.txt\n"),
    ignore("an indented # is a pattern", b"  #keep\n"),
    ignore("a BOM before the first pattern", b"\xEF\xBB\xBFsecret.txt\n"),
    ignore("../x matches nothing", b"../x\n"),
    Case { expect: Expect::BothFail, ..ignore("a bare ! is an error", b"a.txt\n!\n") },
    ignore("dist then !**/keep.txt", b"dist\n!**/keep.txt\n"),
    ignore("dir\\file.txt on Linux", b"dir\\file.txt\n"),
    Case { dockerfile: Some("build/Dockerfile"), setup: dockerfile_in_build, ..ignore("the Dockerfile in an excluded folder", b"build\n") },
    Case { dockerfile: Some("../Dockerfile.x"), setup: dockerfile_outside, ..special("a Dockerfile outside the context", nothing) },
    Case { dockerfile: Some("../Dockerfile.x"), setup: dockerfile_outside, ..ignore("outside Dockerfile and a .dockerignore", b"secret.txt\n") },
    Case { expect: Expect::SameWithTimes, ..special("source timestamps, as the CLI", nothing) },
    // Patterns that already agreed.
    ignore("a folder name", b"node_modules\n"),
    ignore("*.md then !README.md", b"*.md\n!README.md\n"),
    ignore("**/ patterns", b"**/node_modules\n**/*.log\n"),
    ignore("* stays in one component", b"docs/*.txt\n"),
    ignore("cleaned patterns", b"/dist/\n./tmp\nbuild/../out\n  spaced  \n"),
    ignore("? and classes", b"file?.txt\n[ab].bin\n[^a].txt\n"),
    ignore("the Dockerfile and .dockerignore listed", b"Dockerfile\n.dockerignore\n"),
    ignore("everything but src", b"*\n!src\n"),
    ignore("an exception inside an excluded folder", b"dist\n!dist/keep.txt\n"),
    ignore("trailing ** and CRLF lines", b"dist/**\r\n# comment\r\n\r\nsrc/**/*.ts\r\n"),
    ignore("an escaped star", b"a\\*b\n"),
    ignore("last match wins", b"!README.md\n*.md\n"),
    ignore("a comment and a blank line only", b"# nothing\n\n"),
    special("symlinks", symlinks),
    special("long names", long_names),
    special("an empty folder", |p| std::fs::create_dir(p.join("empty")).unwrap()),
];

/// Files every context holds: what the patterns above select from.
fn common_files(ctx: &Path) {
    let files: &[&str] = &[
        "a.txt",
        "b.txt",
        "c.txt",
        "!.txt",
        "{a,b}.txt",
        "#keep",
        "secret.txt",
        "x",
        "dirfile.txt",
        "dir\\file.txt",
        "dist/keep.txt",
        "dist/sub/keep.txt",
        "dist/main.js",
        "node_modules/x/i.js",
        "packages/app/node_modules/y.js",
        "src/a.ts",
        "src/deep/b.ts",
        "README.md",
        "CHANGES.md",
        "docs/a.txt",
        "docs/sub/a.txt",
        "a/b/c.log",
        "c.log",
        "file1.txt",
        "file10.txt",
        "a.bin",
        "c.bin",
        "tmp/t",
        "out/o",
        "spaced",
        "a*b",
        "axb",
    ];
    for f in files {
        let path = ctx.join(f);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, format!("content of {f}\n")).unwrap();
    }
    std::fs::write(ctx.join("Dockerfile"), DOCKERFILE).unwrap();
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn modes(ctx: &Path) {
    for (name, mode) in [
        ("key", 0o600),
        ("ro", 0o444),
        ("exe", 0o755),
        ("suid", 0o4755),
    ] {
        std::fs::write(ctx.join(name), name).unwrap();
        chmod(&ctx.join(name), mode);
    }
    for (name, mode) in [("private", 0o700), ("sticky", 0o1777), ("setgid", 0o2755)] {
        std::fs::create_dir(ctx.join(name)).unwrap();
        std::fs::write(ctx.join(name).join("f"), "f").unwrap();
        chmod(&ctx.join(name), mode);
    }
}

fn hard_links(ctx: &Path) {
    std::fs::write(ctx.join("one"), "shared").unwrap();
    std::fs::create_dir(ctx.join("sub")).unwrap();
    std::fs::hard_link(ctx.join("one"), ctx.join("sub/two")).unwrap();
    std::fs::hard_link(ctx.join("one"), ctx.join("zzz")).unwrap();
}

fn sparse_file(ctx: &Path) {
    use std::io::{Seek, SeekFrom, Write};
    let mut f = std::fs::File::create(ctx.join("sparse.img")).unwrap();
    f.write_all(b"start").unwrap();
    f.seek(SeekFrom::Start(16 << 20)).unwrap();
    f.write_all(b"end").unwrap();
}

fn fifo(ctx: &Path) {
    let ok = Command::new("mkfifo")
        .arg(ctx.join("pipe"))
        .status()
        .unwrap();
    assert!(ok.success());
}

fn socket(ctx: &Path) {
    // The listener is dropped but its file stays: a socket in the folder.
    std::os::unix::net::UnixListener::bind(ctx.join("sock")).unwrap();
}

fn non_utf8_name(ctx: &Path) {
    let name = OsStr::from_bytes(b"caf\xE9-latin1.txt");
    std::fs::write(ctx.join(name), "latin-1").unwrap();
    std::fs::create_dir(ctx.join(OsStr::from_bytes(b"dir-\xFF"))).unwrap();
    std::fs::write(ctx.join(OsStr::from_bytes(b"dir-\xFF/inner")), "i").unwrap();
}

fn dockerfile_in_build(ctx: &Path) {
    std::fs::create_dir_all(ctx.join("build")).unwrap();
    std::fs::write(ctx.join("build/Dockerfile"), DOCKERFILE).unwrap();
    std::fs::write(ctx.join("build/other"), "excluded").unwrap();
}

fn dockerfile_outside(ctx: &Path) {
    std::fs::write(ctx.parent().unwrap().join("Dockerfile.x"), DOCKERFILE).unwrap();
}

fn symlinks(ctx: &Path) {
    std::os::unix::fs::symlink("a.txt", ctx.join("to-file")).unwrap();
    std::os::unix::fs::symlink("src", ctx.join("to-dir")).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", ctx.join("absolute")).unwrap();
    std::os::unix::fs::symlink("missing", ctx.join("dangling")).unwrap();
    std::os::unix::fs::symlink("./a//b/../a.txt", ctx.join("unclean")).unwrap();
}

fn long_names(ctx: &Path) {
    let long = "n".repeat(120);
    std::fs::write(ctx.join(&long), "long").unwrap();
    let deep = ctx.join("d".repeat(90)).join("e".repeat(90));
    std::fs::create_dir_all(&deep).unwrap();
    std::fs::write(deep.join("f".repeat(80)), "deep").unwrap();
    std::os::unix::fs::symlink("t".repeat(150), ctx.join("long-link")).unwrap();
}

/// One entry of an exported file system, as compared.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Listed {
    kind: u8,
    mode: u32,
    uid: u64,
    gid: u64,
    link: Vec<u8>,
    size: u64,
    content: Vec<u8>,
    mtime: u64,
}

type Listing = BTreeMap<Vec<u8>, Listed>;

/// The files below `ctx/` of the image's file system (`docker create` + `docker export`).
fn export(image: &str) -> Listing {
    let id = docker::docker(&["create", image]);
    let out = Command::new("docker")
        .args(["export", &id])
        .output()
        .unwrap();
    docker_quiet(&["rm", "-f", &id]);
    assert!(out.status.success(), "export {image}");
    let mut archive = tar::Archive::new(&out.stdout[..]);
    let mut listing = Listing::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path_bytes().into_owned();
        if !name.starts_with(b"ctx/") {
            continue;
        }
        let header = entry.header().clone();
        let mut content = Vec::new();
        entry.read_to_end(&mut content).unwrap();
        // The outside Dockerfile's name is random on the CLI's side.
        let content = normalize_dockerfile_names(&content);
        listing.insert(
            name,
            Listed {
                kind: header.entry_type().as_byte(),
                mode: header.mode().unwrap(),
                uid: header.uid().unwrap(),
                gid: header.gid().unwrap(),
                link: entry
                    .link_name_bytes()
                    .map(|l| l.into_owned())
                    .unwrap_or_default(),
                size: header.size().unwrap(),
                content,
                mtime: header.mtime().unwrap(),
            },
        );
    }
    listing
}

fn normalize_dockerfile_names(content: &[u8]) -> Vec<u8> {
    let re = regex::bytes::Regex::new(r"\.dockerfile\.[0-9a-f]{20}").unwrap();
    re.replace_all(content, &b".dockerfile.NAME"[..])
        .into_owned()
}

/// The differences between two listings, one line each (timestamps aside unless `times`).
fn differences(cli: &Listing, uplift: &Listing, times: bool) -> Vec<String> {
    let mut out = Vec::new();
    let show = |n: &[u8]| String::from_utf8_lossy(n).into_owned();
    for (name, c) in cli {
        match uplift.get(name) {
            None => out.push(format!("only the CLI's image has {}", show(name))),
            Some(u) => {
                let same_times = !times || c.kind != b'0' || c.mtime == u.mtime;
                let (mut c, mut u) = (c.clone(), u.clone());
                c.mtime = 0;
                u.mtime = 0;
                if c != u || !same_times {
                    let brief = |l: &Listed| {
                        format!(
                            "type {} mode {:o} owner {}:{} link {:?} size {} time {}",
                            l.kind as char,
                            l.mode,
                            l.uid,
                            l.gid,
                            String::from_utf8_lossy(&l.link),
                            l.size,
                            l.mtime
                        )
                    };
                    out.push(format!(
                        "{}: CLI {} | Uplift {}",
                        show(name),
                        brief(&c),
                        brief(&u)
                    ));
                }
            }
        }
    }
    for name in uplift.keys().filter(|n| !cli.contains_key(*n)) {
        out.push(format!("only Uplift's image has {}", show(name)));
    }
    out
}

fn cli_build(tag: &str, ctx: &Path, dockerfile: Option<&Path>) -> Result<(), String> {
    let mut command = Command::new("docker");
    command
        .env("DOCKER_BUILDKIT", "0")
        .args(["build", "-q", "-t", tag]);
    if let Some(dockerfile) = dockerfile {
        command.arg("-f").arg(dockerfile);
    }
    let out = command.arg(ctx).output().unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}

async fn uplift_build(
    engine: &Engine,
    tag: &str,
    ctx: &Path,
    dockerfile: Option<&str>,
    timestamps: ContextTimestamps,
) -> Result<(), String> {
    let req = BuildRequest {
        context_dir: ctx.into(),
        dockerfile: dockerfile.unwrap_or_default().into(),
        tags: vec![tag.into()],
        builder: Builder::Classic,
        timestamps,
        ..Default::default()
    };
    build_image(engine, &req, &mut |_| {})
        .await
        .map(|_| ())
        .map_err(|e| {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(cause) = source {
                text.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            text
        })
}

/// Runs one row; its failures, one line each.
async fn run_case(engine: &Engine, index: usize, case: &Case) -> Vec<String> {
    let scratch = tempfile::tempdir().unwrap();
    let ctx: PathBuf = scratch.path().join("ctx");
    std::fs::create_dir(&ctx).unwrap();
    common_files(&ctx);
    if let Some(ignore) = case.ignore {
        std::fs::write(ctx.join(".dockerignore"), ignore).unwrap();
    }
    (case.setup)(&ctx);
    let cli_tag = format!("{}:cli-{index}", per_process("uplift-ctx-diff"));
    let uplift_tag = format!("{}:uplift-{index}", per_process("uplift-ctx-diff"));
    // The CLI reads `-f` relative to the current folder: give it the absolute path.
    let cli_dockerfile = case.dockerfile.map(|d| ctx.join(d));
    let timestamps = if case.expect == Expect::SameWithTimes {
        ContextTimestamps::Source
    } else {
        ContextTimestamps::Fixed
    };
    // The two builds run side by side (each on its own image tag).
    let cli = {
        let (tag, ctx) = (cli_tag.clone(), ctx.clone());
        tokio::task::spawn_blocking(move || cli_build(&tag, &ctx, cli_dockerfile.as_deref()))
    };
    let uplift = uplift_build(engine, &uplift_tag, &ctx, case.dockerfile, timestamps).await;
    let cli = cli.await.unwrap();
    let label = case.name;
    let failures = match (case.expect, &cli, &uplift) {
        (Expect::BothFail, Err(c), Err(u)) => {
            eprintln!("{label}: both refuse (CLI: {c} | Uplift: {u})");
            Vec::new()
        }
        (Expect::BothFail, _, _) => {
            vec![format!(
                "{label}: expected both to fail: CLI {cli:?}, Uplift {uplift:?}"
            )]
        }
        (_, Ok(()), Ok(())) => {
            let cli_export = {
                let tag = cli_tag.clone();
                tokio::task::spawn_blocking(move || export(&tag))
            };
            let uplift_files = export(&uplift_tag);
            let cli_files = cli_export.await.unwrap();
            let mut d = differences(
                &cli_files,
                &uplift_files,
                case.expect == Expect::SameWithTimes,
            );
            if cli_files.len() < 2 {
                d.push(format!(
                    "the CLI's image holds almost nothing: {cli_files:?}"
                ));
            }
            d.into_iter().map(|l| format!("{label}: {l}")).collect()
        }
        _ => vec![format!("{label}: CLI {cli:?}, Uplift {uplift:?}")],
    };
    docker_quiet(&["rmi", "-f", &cli_tag, &uplift_tag]);
    failures
}

#[tokio::test]
async fn uplift_builds_the_image_the_docker_cli_builds() {
    if !docker::available() {
        return;
    }
    let Some(engine) = docker::connected(Engine::connect().await) else {
        return;
    };
    let started = std::time::Instant::now();
    let mut failures = Vec::new();
    // `UPLIFT_CASE=<part of a name>` runs only the matching rows (when debugging one).
    let only = std::env::var("UPLIFT_CASE").unwrap_or_default();
    // A few rows at a time: the engine's work is mostly waiting on the disk.
    let rows = CASES
        .iter()
        .enumerate()
        .filter(|(_, case)| case.name.contains(only.as_str()));
    let mut results = futures_util::stream::iter(rows)
        .map(|(i, case)| {
            let engine = &engine;
            async move {
                let t = std::time::Instant::now();
                let found = run_case(engine, i, case).await;
                eprintln!("{:>6.2}s {}", t.elapsed().as_secs_f64(), case.name);
                found
            }
        })
        .buffer_unordered(3);
    while let Some(found) = results.next().await {
        failures.extend(found);
    }
    eprintln!("{} cases in {:?}", CASES.len(), started.elapsed());
    assert!(
        failures.is_empty(),
        "{} difference(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// No buildx on this machine to compare with: BuildKit's own rule is checked on the image.
/// The engine applies no `.dockerignore` to an uploaded context, so what is left out here is
/// what Uplift left out: `build/App.Dockerfile.dockerignore` replaces `.dockerignore`.
#[tokio::test]
async fn buildkit_builds_with_the_dockerfiles_own_ignore_file() {
    if !docker::available() {
        return;
    }
    let Some(engine) = docker::connected(Engine::connect().await) else {
        return;
    };
    if !engine.supports_buildkit() {
        uplift_testkit::missing("an engine with BuildKit");
        return;
    }
    let scratch = tempfile::tempdir().unwrap();
    let ctx = scratch.path();
    common_files(ctx);
    std::fs::create_dir(ctx.join("build")).unwrap();
    std::fs::write(ctx.join("build/App.Dockerfile"), DOCKERFILE).unwrap();
    std::fs::write(ctx.join("build/App.Dockerfile.dockerignore"), "*.md\nsrc\n").unwrap();
    std::fs::write(ctx.join(".dockerignore"), "secret.txt\n").unwrap();
    let tag = format!("{}:buildkit", per_process("uplift-ctx-diff"));
    let req = BuildRequest {
        context_dir: ctx.into(),
        dockerfile: "build/App.Dockerfile".into(),
        tags: vec![tag.clone()],
        builder: Builder::BuildKit,
        ..Default::default()
    };
    build_image(&engine, &req, &mut |_| {}).await.unwrap();
    let files = export(&tag);
    docker_quiet(&["rmi", "-f", &tag]);
    let has = |name: &str| files.contains_key(format!("ctx/{name}").as_bytes());
    assert!(has("secret.txt"), "the root .dockerignore is replaced");
    assert!(
        !has("README.md") && !has("src/a.ts"),
        "the Dockerfile's own applies"
    );
    assert!(has("a.txt") && has("build/App.Dockerfile"));
}
