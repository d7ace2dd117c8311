//! Releases from a folder with one subfolder per release.

use std::path::{Path, PathBuf};

use uplift_tree::Tree;

use crate::release::parse_version;
use crate::{Error, Release, ReleaseSource};

/// A folder whose subfolders are named by version (`1.2.3` or `v1.2.3`).
#[derive(Debug)]
pub struct DirSource {
    root: PathBuf,
}

impl DirSource {
    pub fn open(root: &Path) -> Result<Self, Error> {
        if !root.is_dir() {
            return Err(Error::Io {
                path: root.to_path_buf(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such folder"),
            });
        }
        Ok(Self {
            root: root.to_path_buf(),
        })
    }
}

impl ReleaseSource for DirSource {
    fn describe(&self) -> String {
        format!("dir:{}", self.root.display())
    }

    fn releases(&self) -> Result<Vec<Release>, Error> {
        let entries = std::fs::read_dir(&self.root).map_err(|source| Error::Io {
            path: self.root.clone(),
            source,
        })?;
        let mut releases = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| Error::Io {
                path: self.root.clone(),
                source,
            })?;
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if !entry.path().is_dir() {
                continue;
            }
            if let Some(version) = parse_version(&name) {
                releases.push(Release { version, name });
            }
        }
        Ok(releases)
    }

    fn files(&self, release: &Release) -> Result<Tree, Error> {
        Ok(uplift_tree::read_dir(
            &self.root.join(&release.name),
            &[".git"],
        )?)
    }
}
