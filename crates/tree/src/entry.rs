//! File contents and modes.

use std::sync::Arc;

/// How a file is stored: the part of its mode that git (and so a template) records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileMode {
    Regular,
    Executable,
    /// A symbolic link; the entry's content is the link target.
    Symlink,
}

impl FileMode {
    /// The name used in plans: `regular`, `executable`, `symlink`.
    pub fn as_str(self) -> &'static str {
        match self {
            FileMode::Regular => "regular",
            FileMode::Executable => "executable",
            FileMode::Symlink => "symlink",
        }
    }
}

/// One file: its mode and its bytes. Cloning is cheap (the bytes are shared).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FileEntry {
    pub mode: FileMode,
    pub content: Arc<[u8]>,
}

impl FileEntry {
    pub fn new(mode: FileMode, content: impl Into<Arc<[u8]>>) -> Self {
        Self {
            mode,
            content: content.into(),
        }
    }

    pub fn regular(content: impl Into<Arc<[u8]>>) -> Self {
        Self::new(FileMode::Regular, content)
    }

    pub fn executable(content: impl Into<Arc<[u8]>>) -> Self {
        Self::new(FileMode::Executable, content)
    }

    /// Binary as git decides it: a NUL byte in the first 8000 bytes, or not UTF-8.
    pub fn is_binary(&self) -> bool {
        let head = &self.content[..self.content.len().min(8000)];
        head.contains(&0) || std::str::from_utf8(&self.content).is_err()
    }

    /// The content as text, when it is text.
    pub fn text(&self) -> Option<&str> {
        if self.is_binary() {
            None
        } else {
            std::str::from_utf8(&self.content).ok()
        }
    }

    /// Same bytes and same mode.
    pub fn same_as(&self, other: &FileEntry) -> bool {
        self.mode == other.mode && self.content == other.content
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_binary_like_git() {
        assert!(FileEntry::regular(&b"\x89PNG\r\n\x1a\n\0\0"[..]).is_binary());
        assert!(FileEntry::regular(&b"\xff\xfe"[..]).is_binary());
        assert!(!FileEntry::regular(&b"hello\n"[..]).is_binary());
        assert_eq!(FileEntry::regular(&b"hi"[..]).text(), Some("hi"));
    }
}
