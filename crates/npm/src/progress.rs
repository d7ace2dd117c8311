//! Progress of a download, reported while its body is read, for whoever shows it (the CLI draws
//! a bar, a pipeline stage sends events); this crate only counts.

use std::io::{ErrorKind, Read};
use std::sync::Arc;

/// How far one download is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownloadProgress {
    /// What is downloaded, e.g. `@backstage/create-app 0.9.0`.
    pub what: String,
    /// Bytes read so far.
    pub current: u64,
    /// The size the server announced (`Content-Length`), if any.
    pub total: Option<u64>,
    /// The last report of this download (it completed, or `failed`).
    pub done: bool,
    /// The download stopped on an error (only with `done`).
    pub failed: bool,
}

/// Receives the [`DownloadProgress`] reports.
pub type DownloadProgressFn = Arc<dyn Fn(DownloadProgress) + Send + Sync>;

/// Bytes between two reports: a tarball of a few MiB moves a bar smoothly without a call per
/// read.
pub(crate) const REPORT_EVERY: u64 = 64 * 1024;

/// Counts the bytes read through it and reports them to a hook: at most once per
/// [`REPORT_EVERY`] bytes while reading, then once with `done` at the end of the body, on a
/// read error, or when dropped before either.
pub(crate) struct CountingReader<R> {
    inner: R,
    what: String,
    total: Option<u64>,
    read: u64,
    reported: u64,
    hook: DownloadProgressFn,
    finished: bool,
}

impl<R> CountingReader<R> {
    pub(crate) fn new(
        inner: R,
        what: impl Into<String>,
        total: Option<u64>,
        hook: DownloadProgressFn,
    ) -> Self {
        Self {
            inner,
            what: what.into(),
            total,
            read: 0,
            reported: 0,
            hook,
            finished: false,
        }
    }

    fn report(&mut self, done: bool, failed: bool) {
        self.reported = self.read;
        (self.hook)(DownloadProgress {
            what: self.what.clone(),
            current: self.read,
            total: self.total,
            done,
            failed,
        });
    }

    fn finish(&mut self, failed: bool) {
        if !self.finished {
            self.finished = true;
            self.report(true, failed);
        }
    }
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self.inner.read(buf) {
            Ok(0) if !buf.is_empty() => {
                self.finish(false);
                Ok(0)
            }
            Ok(n) => {
                self.read = self.read.saturating_add(n as u64);
                if !self.finished && self.read - self.reported >= REPORT_EVERY {
                    self.report(false, false);
                }
                Ok(n)
            }
            // Retried by the caller: not the end of the download.
            Err(e) if e.kind() == ErrorKind::Interrupted => Err(e),
            Err(e) => {
                self.finish(true);
                Err(e)
            }
        }
    }
}

impl<R> Drop for CountingReader<R> {
    fn drop(&mut self) {
        // A reader abandoned mid-body (the caller gave up) still ends its task.
        self.finish(true);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::Mutex;

    use super::*;

    fn recorder() -> (DownloadProgressFn, Arc<Mutex<Vec<DownloadProgress>>>) {
        let reports = Arc::new(Mutex::new(Vec::new()));
        let sink = reports.clone();
        let hook: DownloadProgressFn = Arc::new(move |p| sink.lock().unwrap().push(p));
        (hook, reports)
    }

    /// Hands out at most `chunk` bytes per read, like a socket.
    struct Chunked<'a> {
        data: &'a [u8],
        chunk: usize,
    }

    impl Read for Chunked<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.chunk.min(buf.len()).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    #[test]
    fn reports_are_few_growing_and_end_with_every_byte() {
        let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
        let (hook, reports) = recorder();
        let mut reader = CountingReader::new(
            Chunked {
                data: &data,
                chunk: 1000,
            },
            "pkg 1.0.0",
            Some(data.len() as u64),
            hook,
        );
        let mut body = Vec::new();
        reader.read_to_end(&mut body).unwrap();
        drop(reader);
        assert_eq!(body, data);
        let reports = reports.lock().unwrap();
        // 1000 reads of 1000 bytes: one report per 64 KiB (15) and the final one.
        let bound = data.len() as u64 / REPORT_EVERY + 1;
        assert!(
            reports.len() as u64 <= bound && reports.len() >= 2,
            "{} reports",
            reports.len()
        );
        // Growing; the final report may repeat the count when the body ended on a report.
        assert!(
            reports
                .windows(2)
                .all(|w| w[0].current < w[1].current || w[1].done)
        );
        assert!(reports.iter().all(|r| r.what == "pkg 1.0.0"));
        assert!(reports.iter().all(|r| r.total == Some(1_000_000)));
        let (last, rest) = reports.split_last().unwrap();
        assert!(rest.iter().all(|r| !r.done));
        assert!(last.done && !last.failed);
        assert_eq!(last.current, body.len() as u64);
    }

    struct FailsAfter {
        left: usize,
    }

    impl Read for FailsAfter {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.left == 0 {
                return Err(std::io::Error::other("connection reset"));
            }
            let n = self.left.min(buf.len());
            buf[..n].fill(7);
            self.left -= n;
            Ok(n)
        }
    }

    #[test]
    fn a_read_error_ends_the_download_once_as_failed() {
        let (hook, reports) = recorder();
        let mut reader = CountingReader::new(FailsAfter { left: 10 }, "pkg", None, hook);
        let mut body = Vec::new();
        assert!(reader.read_to_end(&mut body).is_err());
        drop(reader);
        let reports = reports.lock().unwrap();
        assert_eq!(
            *reports,
            vec![DownloadProgress {
                what: "pkg".into(),
                current: 10,
                total: None,
                done: true,
                failed: true,
            }]
        );
    }

    #[test]
    fn a_reader_dropped_mid_body_still_ends_its_download() {
        let (hook, reports) = recorder();
        let data = [1u8; 100];
        let mut reader = CountingReader::new(
            Chunked {
                data: &data,
                chunk: 10,
            },
            "pkg",
            Some(100),
            hook,
        );
        let mut first = [0u8; 10];
        reader.read_exact(&mut first).unwrap();
        drop(reader);
        let reports = reports.lock().unwrap();
        assert_eq!(reports.len(), 1);
        assert!(reports[0].done && reports[0].failed);
        assert_eq!(reports[0].current, 10);
    }
}
