//! Releases from a git repository's tags, read straight from the object database.

use std::path::{Path, PathBuf};
use std::process::Command;

use git2::{ObjectType, Repository, TreeWalkMode, TreeWalkResult};
use uplift_tree::{FileEntry, FileMode, RelPath, Tree};

use crate::release::parse_version;
use crate::{Error, Release, ReleaseSource, SourceOptions, TagPattern};

/// A git repository (a local path, a bundle file, or a URL) whose tags are the releases.
///
/// Local repositories are read in place. Bundles and URLs are mirrored (tags only) into a bare
/// repository in the cache folder, refreshed each time the source is opened.
#[derive(Debug)]
pub struct GitSource {
    location: String,
    repo_path: PathBuf,
    tag_pattern: Option<TagPattern>,
}

impl GitSource {
    pub fn open(location: &str, options: &SourceOptions) -> Result<Self, Error> {
        read_fast();
        let local = Path::new(location);
        let repo_path = if local.is_dir() {
            local.to_path_buf()
        } else if local.is_file() {
            mirror_bundle(location, &cache_dir(options)?)?
        } else {
            mirror_remote(location, &cache_dir(options)?)?
        };
        // Fail early, with the location in the message, when it is not a repository.
        Repository::open(&repo_path).map_err(|source| Error::OpenRepo {
            location: location.to_string(),
            source,
        })?;
        Ok(Self {
            location: location.to_string(),
            repo_path,
            tag_pattern: options.tag_pattern.clone(),
        })
    }

    fn repo(&self) -> Result<Repository, Error> {
        Repository::open(&self.repo_path).map_err(|source| Error::OpenRepo {
            location: self.location.clone(),
            source,
        })
    }

    fn git_error(&self) -> impl Fn(git2::Error) -> Error + '_ {
        |source| Error::Git {
            location: self.location.clone(),
            source,
        }
    }
}

impl ReleaseSource for GitSource {
    fn describe(&self) -> String {
        format!("git:{}", self.location)
    }

    fn releases(&self) -> Result<Vec<Release>, Error> {
        let repo = self.repo()?;
        let tags = repo.tag_names(None).map_err(self.git_error())?;
        Ok(tags
            .iter()
            .flatten()
            .flatten()
            .filter_map(|tag: &str| {
                let version = match &self.tag_pattern {
                    Some(pattern) => pattern.version_of(tag)?,
                    None => parse_version(tag)?,
                };
                Some(Release {
                    version,
                    name: tag.to_string(),
                })
            })
            .collect())
    }

    fn files(&self, release: &Release) -> Result<Tree, Error> {
        let repo = self.repo()?;
        let reference = format!("refs/tags/{}", release.name);
        let object = repo.revparse_single(&reference).map_err(self.git_error())?;
        let tree = object.peel_to_tree().map_err(self.git_error())?;
        let mut files = Tree::new();
        let mut failure: Option<Error> = None;
        tree.walk(TreeWalkMode::PreOrder, |dir, entry| {
            if entry.kind() != Some(ObjectType::Blob) {
                return TreeWalkResult::Ok;
            }
            let result = (|| {
                let name = entry.name().map_err(|_| uplift_tree::Error::InvalidPath {
                    path: format!("{dir}<non-UTF-8 name>"),
                    reason: "it is not valid UTF-8",
                })?;
                let path = RelPath::new(format!("{dir}{name}"))?;
                let blob = repo.find_blob(entry.id()).map_err(self.git_error())?;
                let mode = match entry.filemode() {
                    0o100755 => FileMode::Executable,
                    0o120000 => FileMode::Symlink,
                    _ => FileMode::Regular,
                };
                files.insert(path, FileEntry::new(mode, blob.content()));
                Ok::<(), Error>(())
            })();
            match result {
                Ok(()) => TreeWalkResult::Ok,
                Err(error) => {
                    failure = Some(error);
                    TreeWalkResult::Abort
                }
            }
        })
        .or_else(|error| {
            if failure.is_some() {
                Ok(())
            } else {
                Err(error)
            }
        })
        .map_err(self.git_error())?;
        match failure {
            Some(error) => Err(error),
            None => Ok(files),
        }
    }
}

/// libgit2 re-hashes (collision-detecting SHA-1) every object it reads and caches each one; a
/// release is read blob by blob, once, from objects git verified when they were fetched or
/// committed (the hashing alone was a fifth of a plan's time in a profile).
fn read_fast() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        git2::opts::strict_hash_verification(false);
        git2::opts::enable_caching(false);
    });
}

fn cache_dir(options: &SourceOptions) -> Result<PathBuf, Error> {
    if let Some(dir) = &options.cache_dir {
        return Ok(dir.clone());
    }
    if let Some(dir) = std::env::var_os("UPLIFT_CACHE_DIR") {
        return Ok(PathBuf::from(dir));
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    Ok(base.join("uplift"))
}

/// A folder name for `location` in the cache: readable, and distinct for distinct locations.
fn mirror_path(cache: &Path, location: &str) -> PathBuf {
    let readable: String = location
        .chars()
        .rev()
        .take(48)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    // A content hash keeps distinct locations apart; git2 already carries one.
    let digest = git2::Oid::hash_object(ObjectType::Blob, location.as_bytes())
        .map(|oid| oid.to_string()[..16].to_string())
        .unwrap_or_default();
    cache
        .join("sources")
        .join(format!("{readable}-{digest}.git"))
}

fn init_mirror(location: &str, cache: &Path) -> Result<PathBuf, Error> {
    let path = mirror_path(cache, location);
    if path.join("HEAD").is_file() {
        return Ok(path); // initialised by an earlier run
    }
    std::fs::create_dir_all(&path).map_err(|source| Error::Io {
        path: path.clone(),
        source,
    })?;
    Repository::init_bare(&path).map_err(|source| Error::OpenRepo {
        location: path.display().to_string(),
        source,
    })?;
    Ok(path)
}

/// Where a mirror records which bundle file (size and modification time) it last fetched.
const BUNDLE_STAMP: &str = "uplift-bundle-stamp";

fn bundle_stamp(bundle: &Path) -> Option<String> {
    let metadata = std::fs::metadata(bundle).ok()?;
    let modified = metadata
        .modified()
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?;
    Some(format!(
        "{} {} {}\n",
        bundle.display(),
        metadata.len(),
        modified.as_nanos()
    ))
}

/// libgit2 cannot read bundles; git itself fetches their tags into the mirror. A bundle is a
/// file that does not change in place, so an unchanged one (same size and modification time)
/// is not fetched again.
fn mirror_bundle(location: &str, cache: &Path) -> Result<PathBuf, Error> {
    let path = init_mirror(location, cache)?;
    let bundle = std::fs::canonicalize(location).map_err(|source| Error::Io {
        path: PathBuf::from(location),
        source,
    })?;
    let stamp = bundle_stamp(&bundle);
    let stamp_path = path.join(BUNDLE_STAMP);
    if stamp.is_some() && std::fs::read_to_string(&stamp_path).ok() == stamp {
        return Ok(path);
    }
    fetch_tags(location, bundle.as_os_str(), &path)?;
    if let Some(stamp) = stamp {
        // Without the stamp the next run fetches again: slower, never wrong.
        let _ = std::fs::write(&stamp_path, stamp);
    }
    Ok(path)
}

/// URLs are fetched by git itself, so TLS (and credentials, proxies, SSH) are git's business
/// and this process never starts OpenSSL: local sources open without it.
fn mirror_remote(location: &str, cache: &Path) -> Result<PathBuf, Error> {
    let path = init_mirror(location, cache)?;
    fetch_tags(location, std::ffi::OsStr::new(location), &path)?;
    Ok(path)
}

/// `git fetch` of every tag of `from` into the bare mirror at `path`.
fn fetch_tags(location: &str, from: &std::ffi::OsStr, path: &Path) -> Result<(), Error> {
    let output = Command::new("git")
        .arg("-C")
        .arg(path)
        .args([
            "fetch",
            "--quiet",
            "--force",
            "--prune",
            "--no-write-fetch-head",
        ])
        .arg(from)
        .arg("+refs/tags/*:refs/tags/*")
        // Never wait for a password on a terminal: a pipeline has nobody to type it.
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .map_err(|error| Error::Mirror {
            location: location.to_string(),
            cache: path.to_path_buf(),
            detail: format!("could not run git: {error}"),
        })?;
    if !output.status.success() {
        return Err(Error::Mirror {
            location: location.to_string(),
            cache: path.to_path_buf(),
            detail: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A repository with two tagged commits, built with git2 (no git CLI needed).
    fn repo_with_tags(dir: &Path) {
        let repo = Repository::init(dir).unwrap();
        let signature = git2::Signature::now("t", "t@example.invalid").unwrap();
        let mut parent: Option<git2::Oid> = None;
        for (tag, content, mode) in [("v1.0.0", "one", 0o100644), ("1.1.0", "two", 0o100755)] {
            let blob = repo.blob(content.as_bytes()).unwrap();
            let mut sub = repo.treebuilder(None).unwrap();
            sub.insert("file.sh", blob, mode).unwrap();
            let sub = sub.write().unwrap();
            let mut root = repo.treebuilder(None).unwrap();
            root.insert("tpl", sub, 0o040000).unwrap();
            let tree = repo.find_tree(root.write().unwrap()).unwrap();
            let parents: Vec<_> = parent
                .iter()
                .map(|p| repo.find_commit(*p).unwrap())
                .collect();
            let parents: Vec<_> = parents.iter().collect();
            let commit = repo
                .commit(None, &signature, &signature, tag, &tree, &parents)
                .unwrap();
            repo.tag_lightweight(tag, &repo.find_object(commit, None).unwrap(), false)
                .unwrap();
            parent = Some(commit);
        }
    }

    #[test]
    fn reads_tags_and_trees_with_modes() {
        let dir = tempfile::tempdir().unwrap();
        repo_with_tags(dir.path());
        let source =
            GitSource::open(dir.path().to_str().unwrap(), &SourceOptions::default()).unwrap();
        let mut releases = source.releases().unwrap();
        releases.sort_by(|a, b| a.version.cmp(&b.version));
        assert_eq!(
            releases.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
            ["v1.0.0", "1.1.0"]
        );
        let files = source.files(&releases[1]).unwrap();
        let entry = files.get(&RelPath::new("tpl/file.sh").unwrap()).unwrap();
        assert_eq!(
            (&*entry.content, entry.mode),
            (&b"two"[..], FileMode::Executable)
        );
    }

    /// TLS belongs to the `git` that fetches URLs: a libgit2 without it never starts OpenSSL
    /// (whose start-up was most of the cost of opening a local source).
    #[test]
    fn libgit2_is_built_without_tls() {
        assert!(!git2::Version::get().https());
    }

    fn bundle_tags(repo: &Path, bundle: &Path) {
        let status = Command::new("git")
            .arg("-C")
            .arg(repo)
            .args(["bundle", "create", "--quiet"])
            .arg(bundle)
            .arg("--tags")
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn release_count(location: &Path, cache: &Path) -> usize {
        let options = SourceOptions {
            cache_dir: Some(cache.to_path_buf()),
            ..Default::default()
        };
        let source = GitSource::open(location.to_str().unwrap(), &options).unwrap();
        source.releases().unwrap().len()
    }

    #[test]
    fn an_unchanged_bundle_is_not_fetched_again_and_a_changed_one_is() {
        let dir = tempfile::tempdir().unwrap();
        let (repo, cache) = (dir.path().join("repo"), dir.path().join("cache"));
        let bundle = dir.path().join("templates.bundle");
        repo_with_tags(&repo);
        bundle_tags(&repo, &bundle);
        assert_eq!(release_count(&bundle, &cache), 2);

        // A tag removed from the mirror stays removed while the bundle is the same file ...
        let mirror = mirror_path(&cache, bundle.to_str().unwrap());
        let mirror_repo = Repository::open_bare(&mirror).unwrap();
        mirror_repo.tag_delete("1.1.0").unwrap();
        assert_eq!(release_count(&bundle, &cache), 1);

        // ... and a new bundle (another tag) is fetched.
        let repo_handle = Repository::open(&repo).unwrap();
        let head = repo_handle.revparse_single("v1.0.0").unwrap();
        repo_handle.tag_lightweight("v2.0.0", &head, false).unwrap();
        std::fs::remove_file(&bundle).unwrap();
        bundle_tags(&repo, &bundle);
        assert_eq!(release_count(&bundle, &cache), 3);
    }

    #[test]
    fn a_missing_repository_is_a_clear_error() {
        let error = GitSource::open(
            "/nonexistent/repo",
            &SourceOptions {
                cache_dir: Some(tempfile::tempdir().unwrap().path().to_path_buf()),
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(error.to_string().contains("/nonexistent/repo"), "{error}");
    }
}
