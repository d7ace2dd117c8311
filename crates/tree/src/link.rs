//! Symlink targets that stay inside the root.

use crate::RelPath;

/// Whether a symlink at `path` pointing at `target` resolves inside the root it is joined to:
/// the target is relative and its `..` never climb above the root, read from the link's folder.
///
/// The check is lexical (as git and tar extractors do it): it does not look at the disk, so a
/// link is judged the same whether or not what it points at exists yet.
pub fn link_stays_inside(path: &RelPath, target: &[u8]) -> bool {
    let Ok(target) = std::str::from_utf8(target) else {
        return false;
    };
    if target.is_empty() || target.starts_with('/') || target.contains('\0') {
        return false;
    }
    let mut depth = path
        .parent()
        .map_or(0, |parent| parent.as_str().split('/').count());
    for component in target.split('/') {
        match component {
            "" | "." => {}
            ".." => match depth.checked_sub(1) {
                Some(up) => depth = up,
                None => return false,
            },
            _ => depth += 1,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn inside(path: &str, target: &str) -> bool {
        link_stays_inside(&RelPath::new(path).unwrap(), target.as_bytes())
    }

    #[test]
    fn relative_targets_inside_the_root_are_accepted() {
        assert!(inside("a", "b"));
        assert!(inside("a/b/link", "../c"));
        assert!(inside("a/b/link", "../../c"));
        assert!(inside("a/link", "./x/../y"));
        assert!(inside("link", "x/.."));
    }

    #[test]
    fn absolute_and_climbing_targets_are_refused() {
        assert!(!inside("link", "/etc/passwd"));
        assert!(!inside("link", ".."));
        assert!(!inside("a/link", "../../outside"));
        assert!(!inside("a/link", "x/../../../y"));
        assert!(!inside("link", ""));
        assert!(!link_stays_inside(
            &RelPath::new("l").unwrap(),
            &b"\xff"[..]
        ));
    }
}
