//! Fixture folders.

use std::path::Path;

/// Copies a folder's contents into `to` (created as needed), keeping symlinks as symlinks.
pub fn copy_dir(from: &Path, to: &Path) {
    for entry in walkdir::WalkDir::new(from) {
        let entry = entry.unwrap();
        let target = to.join(entry.path().strip_prefix(from).unwrap());
        let file_type = entry.file_type();
        if file_type.is_dir() {
            std::fs::create_dir_all(&target).unwrap();
        } else if file_type.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(entry.path()).unwrap(), &target).unwrap();
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}
