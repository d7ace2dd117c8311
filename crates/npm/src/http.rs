//! HTTP GETs on `ureq`, with the registry token where it applies and bounded bodies.

use std::io::Read;

use crate::progress::{CountingReader, DownloadProgressFn};
use crate::{Error, NpmSettings};

/// Largest JSON document read (packuments of busy packages are several MiB).
const MAX_JSON: u64 = 64 * 1024 * 1024;
/// Largest tarball read.
pub(crate) const MAX_TARBALL: u64 = 256 * 1024 * 1024;

pub(crate) struct Http {
    agent: ureq::Agent,
}

impl Http {
    pub(crate) fn new(settings: &NpmSettings) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(settings.timeout))
            .user_agent(concat!("uplift/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Self { agent }
    }

    /// GETs `url`; `Ok(None)` on 404. With `progress` (what is downloaded, and the hook), the
    /// body's bytes are reported while they are read.
    pub(crate) fn get(
        &self,
        url: &str,
        accept: &str,
        token: Option<&str>,
        limit: u64,
        progress: Option<(&str, &DownloadProgressFn)>,
    ) -> Result<Option<Vec<u8>>, Error> {
        tracing::debug!(url, authenticated = token.is_some(), "GET");
        let mut request = self.agent.get(url).header("Accept", accept);
        if let Some(token) = token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        let http_error = |source: ureq::Error| Error::Http {
            url: url.to_string(),
            source: Box::new(source),
        };
        let mut response = request.call().map_err(http_error)?;
        let status = response.status().as_u16();
        if status == 404 {
            return Ok(None);
        }
        if !(200..300).contains(&status) {
            return Err(Error::Status {
                url: url.to_string(),
                status,
            });
        }
        let total = response.body().content_length();
        let mut reader = response.body_mut().with_config().limit(limit).reader();
        let mut body = Vec::new();
        let read = match progress {
            Some((what, hook)) => {
                CountingReader::new(&mut reader, what, total, hook.clone()).read_to_end(&mut body)
            }
            None => reader.read_to_end(&mut body),
        };
        read.map_err(|source| Error::Io {
            action: "read the response of",
            path: url.into(),
            source,
        })?;
        Ok(Some(body))
    }

    /// GETs a JSON document; `Ok(None)` on 404.
    pub(crate) fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
        accept: &str,
        token: Option<&str>,
        what: &'static str,
    ) -> Result<Option<T>, Error> {
        let Some(body) = self.get(url, accept, token, MAX_JSON, None)? else {
            return Ok(None);
        };
        serde_json::from_slice(&body)
            .map(Some)
            .map_err(|e| Error::Document {
                what,
                url: url.to_string(),
                message: e.to_string(),
            })
    }
}
