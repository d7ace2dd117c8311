//! The npm source against a fake registry on loopback: listing, mapping, download, cache,
//! tokens, rendering of the release tree.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use uplift_npm::testing::{FakeRegistry, FakeRelease, files_of};
use uplift_npm::{NpmSettings, NpmSource};
use uplift_template::{Release, ReleaseSource, RenderContext};
use uplift_tree::RelPath;

const PACKAGE: &str = "@backstage/create-app";

fn acme() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/templates/acme")
}

/// A release built from the acme fixture release `acme` (its `default-app` as
/// `templates/default-app`, its versions as the manifest's packages).
fn release(release: &str, package_version: &str, acme_release: &str) -> FakeRelease {
    let dir = acme().join(acme_release);
    let versions: BTreeMap<String, String> =
        serde_json::from_slice(&std::fs::read(dir.join("versions.json")).unwrap()).unwrap();
    let mut files = files_of(&dir.join("default-app"), "templates/default-app/").unwrap();
    files.push((
        "package.json".into(),
        format!("{{\"name\": \"{PACKAGE}\", \"version\": \"{package_version}\"}}").into_bytes(),
        false,
    ));
    FakeRelease {
        release: release.into(),
        package_version: package_version.into(),
        files,
        packages: versions.into_iter().filter(|(k, _)| k != "root").collect(),
    }
}

fn settings(registry: &FakeRegistry, cache: &Path) -> NpmSettings {
    NpmSettings {
        registry: format!("{}/", registry.url()),
        versions_url: registry.url().to_string(),
        cache_dir: Some(cache.to_path_buf()),
        ..NpmSettings::default()
    }
}

fn find(releases: &[Release], version: &str) -> Release {
    releases
        .iter()
        .find(|r| r.version.to_string() == version)
        .unwrap()
        .clone()
}

#[test]
fn lists_maps_downloads_caches_and_renders() {
    let registry = FakeRegistry::start(
        PACKAGE,
        &[
            release("1.48.0", "0.8.0", "1.0.0"),
            release("1.49.0", "0.8.1", "1.1.0"),
        ],
    )
    .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let source = NpmSource::open(
        "npm:@backstage/create-app",
        settings(&registry, cache.path()),
    )
    .unwrap();
    assert_eq!(source.describe(), "npm:@backstage/create-app");
    let releases = source.releases().unwrap();
    let names: Vec<_> = releases.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["1.48.0", "1.49.0"]);

    let r148 = find(&releases, "1.48.0");
    let files = source.files(&r148).unwrap();
    assert!(files.contains(&RelPath::new("templates/default-app/package.json.hbs").unwrap()));
    assert!(files.contains(&RelPath::new("package.json").unwrap()));
    // The executable bit survives the tarball and the cache.
    let setup = files
        .get(&RelPath::new("templates/default-app/scripts/setup.sh").unwrap())
        .unwrap();
    let original = uplift_tree::read_entry(
        &acme().join("1.0.0/default-app"),
        &RelPath::new("scripts/setup.sh").unwrap(),
    )
    .unwrap()
    .unwrap();
    assert_eq!(setup.mode, original.mode);

    // The versions map is the manifest's, with `root` = the release.
    let versions = uplift_template::versions_map(&files, uplift_npm::VERSIONS_FILE)
        .unwrap()
        .unwrap();
    assert_eq!(versions["root"], "1.48.0");
    assert_eq!(versions["@acme/cli"], "0.20.0");
    assert_eq!(versions[PACKAGE], "0.8.0");

    let template =
        uplift_template::template_files(&files, &r148, Some("templates/default-app")).unwrap();
    let values: uplift_template::Values = [
        ("name".to_string(), "portal".into()),
        ("defaultBranch".to_string(), "main".into()),
    ]
    .into_iter()
    .collect();
    let rendered = uplift_template::render(
        &template,
        RenderContext {
            values: &values,
            versions: Some(&versions),
        },
    )
    .unwrap();
    let marker = rendered
        .get(&RelPath::new("backstage.json").unwrap())
        .unwrap();
    assert_eq!(marker.text().unwrap(), "{\n  \"version\": \"1.48.0\"\n}\n");
    let package = rendered
        .get(&RelPath::new("package.json").unwrap())
        .unwrap();
    assert!(
        package
            .text()
            .unwrap()
            .contains("\"@acme/cli\": \"^0.20.0\"")
    );

    let tarballs = |registry: &FakeRegistry| {
        registry
            .requests()
            .iter()
            .filter(|r| r.path.ends_with(".tgz"))
            .count()
    };
    assert_eq!(tarballs(&registry), 1);
    // A second source on the same cache downloads nothing for a cached release.
    let again = NpmSource::open(
        "npm:@backstage/create-app",
        settings(&registry, cache.path()),
    )
    .unwrap();
    assert_eq!(again.files(&r148).unwrap(), files);
    assert_eq!(tarballs(&registry), 1);
    assert!(
        cache
            .path()
            .join("npm/backstage+create-app/1.48.0/manifest.json")
            .is_file()
    );
    // Another release is fetched.
    let r149 = find(&releases, "1.49.0");
    let files = again.files(&r149).unwrap();
    assert_eq!(
        uplift_template::versions_map(&files, uplift_npm::VERSIONS_FILE)
            .unwrap()
            .unwrap()["root"],
        "1.49.0"
    );
    assert_eq!(tarballs(&registry), 2);
}

#[test]
fn the_token_goes_to_the_registry_only_and_a_refusal_is_reported() {
    let registry = FakeRegistry::start(PACKAGE, &[release("1.48.0", "0.8.0", "1.0.0")]).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let r148 = Release {
        version: semver::Version::new(1, 48, 0),
        name: "1.48.0".into(),
    };
    // The versions site is public; the registry needs the token from now on.
    let source = NpmSource::open(
        "npm:@backstage/create-app",
        settings(&registry, cache.path()),
    )
    .unwrap();
    assert_eq!(source.releases().unwrap().len(), 1);
    registry.require_token("t0ken");
    let error = source.files(&r148).unwrap_err().to_string();
    assert!(error.contains("the server answered 401"), "{error}");
    assert!(error.contains("_authToken"), "{error}");
    assert!(
        !cache
            .path()
            .join("npm/backstage+create-app/1.48.0")
            .exists()
    );

    let mut with_token = settings(&registry, cache.path());
    let host = registry.url().trim_start_matches("http:");
    with_token.apply_npmrc(&format!("{host}/:_authToken=${{TEST_TOKEN}}\n"), &|name| {
        (name == "TEST_TOKEN").then(|| "t0ken".to_string())
    });
    // Every request to that host carries the token (here the versions site is on it too).
    let source = NpmSource::open("npm:@backstage/create-app", with_token).unwrap();
    let files = source.files(&r148).unwrap();
    assert!(files.contains(&RelPath::new("templates/default-app/backstage.json.hbs").unwrap()));
    let seen = registry.requests();
    let last_tarball = seen
        .iter()
        .rev()
        .find(|r| r.path.ends_with(".tgz"))
        .unwrap();
    assert_eq!(last_tarball.authorization.as_deref(), Some("Bearer t0ken"));
    // The first source had no token, and sent none.
    assert!(seen[0].authorization.is_none());
}

#[test]
fn unknown_releases_and_packages_are_errors() {
    let registry = FakeRegistry::start(PACKAGE, &[release("1.48.0", "0.8.0", "1.0.0")]).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let source = NpmSource::open(
        "npm:@backstage/create-app",
        settings(&registry, cache.path()),
    )
    .unwrap();
    let missing = Release {
        version: semver::Version::new(9, 9, 9),
        name: "9.9.9".into(),
    };
    let error = source.files(&missing).unwrap_err().to_string();
    assert!(
        error.contains("/v1/releases/9.9.9/manifest.json: the server answered 404"),
        "{error}"
    );
    // A package that the release manifest does not list.
    let other = NpmSource::open("npm:@backstage/cli", settings(&registry, cache.path())).unwrap();
    let r148 = Release {
        version: semver::Version::new(1, 48, 0),
        name: "1.48.0".into(),
    };
    assert_eq!(
        other.files(&r148).unwrap_err().to_string(),
        "release 1.48.0 of Backstage does not list @backstage/cli in its manifest"
    );
}

#[test]
fn a_tarball_download_reports_its_bytes_against_the_content_length() {
    let mut big = release("1.48.0", "0.8.0", "1.0.0");
    // Incompressible bytes, so the tarball spans several reports.
    let mut state = 0x2545_f491_u32;
    let noise: Vec<u8> = (0..300_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state.to_le_bytes()[0]
        })
        .collect();
    big.files
        .push(("templates/default-app/noise.bin".into(), noise, false));
    let tarball_len = uplift_npm::testing::tgz(&big.files).unwrap().len() as u64;
    assert!(tarball_len > 256 * 1024, "{tarball_len}");
    let registry = FakeRegistry::start(PACKAGE, &[big]).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let reports = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = reports.clone();
    let source = NpmSource::open(
        "npm:@backstage/create-app",
        settings(&registry, cache.path()),
    )
    .unwrap()
    .with_download_progress(std::sync::Arc::new(move |p| sink.lock().unwrap().push(p)));
    let r148 = find(&source.releases().unwrap(), "1.48.0");
    source.files(&r148).unwrap();

    let seen = reports.lock().unwrap().clone();
    // Only the tarball is reported, never the JSON documents.
    assert!(
        seen.iter().all(|p| p.what == "@backstage/create-app 0.8.0"),
        "{seen:?}"
    );
    // The fake registry sends Content-Length: every report knows the total.
    assert!(
        seen.iter().all(|p| p.total == Some(tarball_len)),
        "{seen:?}"
    );
    assert!(seen.len() >= 4, "{seen:?}");
    assert!(
        seen.len() as u64 <= tarball_len / (64 * 1024) + 1,
        "{seen:?}"
    );
    let (last, rest) = seen.split_last().unwrap();
    // Growing; the final report may repeat the count when the body ended on a report.
    assert!(rest.windows(2).all(|w| w[0].current < w[1].current));
    assert!(rest.iter().all(|p| p.current <= last.current));
    assert!(rest.iter().all(|p| !p.done));
    assert!(last.done && !last.failed, "{last:?}");
    assert_eq!(last.current, tarball_len);

    // From the cache: nothing is downloaded, nothing reported.
    reports.lock().unwrap().clear();
    source.files(&r148).unwrap();
    assert!(reports.lock().unwrap().is_empty());
}
