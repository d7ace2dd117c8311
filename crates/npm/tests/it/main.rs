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
const PACKAGE_SPEC: &str = "npm:@backstage/create-app";

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
        releases_git: registry.releases_git(),
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
    // Listed from the release tags: nothing was asked of the versions site or the registry.
    assert!(registry.requests().is_empty(), "{:?}", registry.requests());

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

#[test]
fn releases_come_from_the_tags_and_each_line_from_the_versions_site() {
    let registry = FakeRegistry::start(
        PACKAGE,
        &[
            release("1.52.1", "0.8.4", "1.0.0"),
            release("1.53.0-next.2", "0.9.0-next.2", "1.1.0"),
            release("1.53.0", "0.9.0", "1.1.0"),
            release("1.54.0-next.0", "0.9.1-next.0", "1.2.0"),
        ],
    )
    .unwrap();
    // Tagged in the repository, not yet on the versions site.
    registry.tag_only("1.54.0-next.1").unwrap();
    let cache = tempfile::tempdir().unwrap();
    let source = NpmSource::open(PACKAGE_SPEC, settings(&registry, cache.path())).unwrap();
    let names: Vec<_> = source
        .releases()
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(
        names,
        [
            "1.52.1",
            "1.53.0-next.2",
            "1.53.0",
            "1.54.0-next.0",
            "1.54.0-next.1"
        ]
    );
    let lines = |source: &NpmSource| -> Vec<(String, String)> {
        source
            .line_latest()
            .unwrap()
            .into_iter()
            .map(|(line, r)| (line.to_string(), r.name))
            .collect()
    };
    assert_eq!(
        lines(&source),
        [
            ("main".to_string(), "1.53.0".to_string()),
            ("next".to_string(), "1.54.0-next.0".to_string())
        ]
    );
    // Only the tags' manifests were asked for: the site has no listing.
    let paths: Vec<_> = registry.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(
        paths,
        ["/v1/tags/main/manifest.json", "/v1/tags/next/manifest.json"]
    );
    // Right after a main release the site's `next` still names the last pre-release: the
    // newer of the two is next's latest, as `versions:bump --release next` picks it.
    registry.point_tag("next", "1.53.0-next.2");
    assert_eq!(
        lines(&source)[1],
        ("next".to_string(), "1.53.0".to_string())
    );
    // The real site's 404s: no listing, no tag folder, an unknown release.
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent();
    let status = |path: &str| {
        agent
            .get(format!("{}{path}", registry.url()))
            .call()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(status("/v1/releases"), 404);
    assert_eq!(status("/v1/tags/main"), 404);
    assert_eq!(status("/v1/releases/1.54.0-next.1/manifest.json"), 404);
    assert_eq!(status("/v1/releases/1.53.0/yarn-plugin"), 200);
    assert_eq!(status("/v1/tags/main/yarn-plugin"), 200);
}

#[test]
fn the_packument_is_the_registry_s_in_both_forms() {
    let registry = FakeRegistry::start(
        PACKAGE,
        &[
            release("1.53.0", "0.9.0", "1.0.0"),
            release("1.54.0-next.0", "0.9.1-next.0", "1.1.0"),
        ],
    )
    .unwrap();
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent();
    let get = |accept: &str| {
        let mut response = agent
            .get(format!("{}/@backstage%2fcreate-app", registry.url()))
            .header("Accept", accept)
            .call()
            .unwrap();
        let content_type = response
            .headers()
            .get("content-type")
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        let body: serde_json::Value =
            serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap();
        (content_type, body)
    };
    let (content_type, full) = get("application/json");
    assert_eq!(content_type, "application/json");
    assert_eq!(full["_id"], PACKAGE);
    assert_eq!(full["dist-tags"]["latest"], "0.9.0");
    assert_eq!(full["dist-tags"]["next"], "0.9.1-next.0");
    assert_eq!(
        full["versions"]["0.9.0"]["_id"],
        "@backstage/create-app@0.9.0"
    );
    assert!(full["time"]["0.9.0"].is_string());
    let (content_type, corgi) =
        get("application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8");
    assert_eq!(content_type, "application/vnd.npm.install-v1+json");
    assert!(corgi.get("_id").is_none() && corgi.get("time").is_none());
    assert!(corgi["modified"].is_string());
    let dist = &corgi["versions"]["0.9.0"]["dist"];
    assert!(dist["integrity"].as_str().unwrap().starts_with("sha512-"));
    assert!(
        dist["tarball"]
            .as_str()
            .unwrap()
            .ends_with("/@backstage/create-app/-/create-app-0.9.0.tgz")
    );
}

#[test]
fn an_unreachable_tag_repository_is_an_environment_error() {
    let cache = tempfile::tempdir().unwrap();
    let settings = NpmSettings {
        releases_git: cache.path().join("no-such-repo").display().to_string(),
        cache_dir: Some(cache.path().to_path_buf()),
        ..NpmSettings::default()
    };
    let source = NpmSource::open(PACKAGE_SPEC, settings).unwrap();
    let error = source.list_releases().unwrap_err();
    assert!(error.is_environment(), "{error:?}");
    assert!(
        error.to_string().starts_with("list the release tags of "),
        "{error}"
    );
}
