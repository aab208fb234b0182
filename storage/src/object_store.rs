//! Object storage: the [`ObjectStore`] trait every backend implements and the [`ObjectKey`]
//! type that names objects.
//!
//! Keys follow the rule of DESIGN.md ("Object keys and paths are built only from server-made
//! ids"): an [`ObjectKey`] can only be made of segments drawn from `[A-Za-z0-9._-]`, none empty,
//! none `.` or `..`, so no key can climb out of a store's root whatever the caller passes in.
//! The semantics mirror S3's (overwrite on put, idempotent delete) so an S3 backend can follow.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

/// Longest segment accepted, matching the usual file-system name limit.
const MAX_SEGMENT_LEN: usize = 255;
/// Most segments in one key; Sluice's deepest key is `live/{id}/{rendition}/{segment}`.
const MAX_SEGMENTS: usize = 16;

/// Why a string was refused as an [`ObjectKey`] or one of its segments.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidKey {
    #[error("an object key needs at least one segment")]
    Empty,
    #[error("object key has more than {MAX_SEGMENTS} segments")]
    TooDeep,
    #[error("object key segment {index} is empty")]
    EmptySegment { index: usize },
    #[error("object key segment {index} is `.` or `..`")]
    DotSegment { index: usize },
    #[error("object key segment {index} is longer than {MAX_SEGMENT_LEN} bytes")]
    SegmentTooLong { index: usize },
    #[error("object key segment {index} holds {found:?}, outside [A-Za-z0-9._-]")]
    ForbiddenCharacter { index: usize, found: char },
}

/// A validated, `/`-separated object name such as `live/ls_abc/720p/seg12.m4s`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey(String);

impl ObjectKey {
    /// Builds a key from its segments, refusing any segment that is not a plain name.
    pub fn new<I, S>(segments: I) -> Result<Self, InvalidKey>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut key = String::new();
        let mut count = 0;
        for (index, segment) in segments.into_iter().enumerate() {
            let segment = segment.as_ref();
            validate_segment(index, segment)?;
            count += 1;
            if count > MAX_SEGMENTS {
                return Err(InvalidKey::TooDeep);
            }
            if !key.is_empty() {
                key.push('/');
            }
            key.push_str(segment);
        }
        if count == 0 {
            return Err(InvalidKey::Empty);
        }
        Ok(Self(key))
    }

    /// Parses a `/`-separated key; a leading, trailing or doubled `/` is an empty segment and
    /// is refused.
    pub fn parse(key: &str) -> Result<Self, InvalidKey> {
        Self::new(key.split('/'))
    }

    /// The key with `segment` appended.
    pub fn join(&self, segment: &str) -> Result<Self, InvalidKey> {
        Self::new(self.segments().chain(std::iter::once(segment)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks one segment alone; `index` only labels the error.
fn validate_segment(index: usize, segment: &str) -> Result<(), InvalidKey> {
    if segment.is_empty() {
        return Err(InvalidKey::EmptySegment { index });
    }
    if segment == "." || segment == ".." {
        return Err(InvalidKey::DotSegment { index });
    }
    if segment.len() > MAX_SEGMENT_LEN {
        return Err(InvalidKey::SegmentTooLong { index });
    }
    if let Some(found) = segment
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(InvalidKey::ForbiddenCharacter { index, found });
    }
    Ok(())
}

/// A storage backend failure, with the key it concerned.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("object {key} not found")]
    NotFound { key: ObjectKey },
    #[error("object store I/O on {key} failed: {source}")]
    Io {
        key: ObjectKey,
        #[source]
        source: std::io::Error,
    },
    /// A remote backend (S3) refused or failed a request about `key` (the object, or the
    /// prefix of a bulk operation), after its retries.
    #[error("object store request on {key} failed: {message}")]
    Backend { key: ObjectKey, message: String },
}

impl StoreError {
    /// True when the object does not exist (HTTP 404 material), false for real failures.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound { .. })
    }
}

/// How viewers fetch a store's media objects (init and media segments).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Playback {
    /// Through the API server, which reads each object from the store (the default).
    Proxy,
    /// The API answers segment requests with a redirect to a presigned URL of the object,
    /// valid for `expires_in`.
    Redirect { expires_in: Duration },
    /// Playlists point straight at `{base_url}/{object name}`: a CDN or public bucket URL.
    Public { base_url: String },
}

/// Where media objects (segments, playlists, thumbnails) live.
#[async_trait]
pub trait ObjectStore: Send + Sync {
    /// Stores `body` under `key`, replacing any previous object. Readers see either the old
    /// object or the whole new one, never a partial write.
    async fn put(&self, key: &ObjectKey, body: Bytes) -> Result<(), StoreError>;

    /// Stores a copy of the local file at `path` under `key`, as [`ObjectStore::put`] does,
    /// without reading it into memory (uploaded sources can be many gigabytes).
    async fn put_file(&self, key: &ObjectKey, path: &Path) -> Result<(), StoreError>;

    /// Copies the object into the local file at `path` (created or replaced), without
    /// holding it in memory; returns its size. [`StoreError::NotFound`] when there is none.
    async fn get_to_file(&self, key: &ObjectKey, path: &Path) -> Result<u64, StoreError>;

    /// Reads the whole object; [`StoreError::NotFound`] when there is none.
    async fn get(&self, key: &ObjectKey) -> Result<Bytes, StoreError>;

    /// Copies the object at `from` to `to` (replacing any object there) without passing its
    /// bytes through this process where the backend can copy by itself.
    /// [`StoreError::NotFound`] when `from` does not exist.
    async fn copy(&self, from: &ObjectKey, to: &ObjectKey) -> Result<(), StoreError>;

    /// Removes the object; removing a missing object succeeds.
    async fn delete(&self, key: &ObjectKey) -> Result<(), StoreError>;

    /// Removes every object whose key starts with `prefix/`; a prefix with nothing under it
    /// succeeds.
    async fn delete_prefix(&self, prefix: &ObjectKey) -> Result<(), StoreError>;

    /// The absolute URL viewers fetch the object at when the store plays back
    /// [`Playback::Public`]; `None` (the default) when objects are served through the API.
    fn public_url(&self, _key: &ObjectKey) -> Option<String> {
        None
    }

    /// A presigned URL of the object to redirect viewers to when the store plays back
    /// [`Playback::Redirect`]; `None` (the default) when objects are served through the API.
    async fn redirect_url(&self, _key: &ObjectKey) -> Result<Option<String>, StoreError> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_from_segments_joins_with_slashes() {
        let key = ObjectKey::new(["live", "ls_abc", "720p", "seg12.m4s"]).unwrap();
        assert_eq!(key.as_str(), "live/ls_abc/720p/seg12.m4s");
        assert_eq!(ObjectKey::parse("live/ls_abc/720p/seg12.m4s").unwrap(), key);
        assert_eq!(
            key.segments().collect::<Vec<_>>(),
            ["live", "ls_abc", "720p", "seg12.m4s"]
        );
    }

    #[test]
    fn key_refuses_traversal_and_empty_segments() {
        for bad in [
            "",
            "/",
            "/etc/passwd",
            "live/../x",
            "live/./x",
            "..",
            "live//x",
            "live/x/",
        ] {
            assert!(ObjectKey::parse(bad).is_err(), "{bad:?} was accepted");
        }
        assert_eq!(
            ObjectKey::new(["live", ".."]),
            Err(InvalidKey::DotSegment { index: 1 })
        );
        assert_eq!(ObjectKey::new(Vec::<&str>::new()), Err(InvalidKey::Empty));
    }

    #[test]
    fn key_refuses_characters_outside_the_safe_set() {
        for bad in ["a\\b", "a b", "a%2e", "ünï", "a\0b", "c:", "a?b"] {
            assert!(
                matches!(
                    ObjectKey::new([bad]),
                    Err(InvalidKey::ForbiddenCharacter { index: 0, .. })
                ),
                "{bad:?} was accepted"
            );
        }
        assert!(ObjectKey::new(["a.B_c-9"]).is_ok());
    }

    #[test]
    fn key_refuses_overlong_segments_and_depth() {
        assert_eq!(
            ObjectKey::new(["x".repeat(256)]),
            Err(InvalidKey::SegmentTooLong { index: 0 })
        );
        assert_eq!(
            ObjectKey::new(std::iter::repeat_n("a", 17)),
            Err(InvalidKey::TooDeep)
        );
    }

    #[test]
    fn join_validates_the_new_segment() {
        let base = ObjectKey::new(["live", "ls_1"]).unwrap();
        assert_eq!(
            base.join("master.m3u8").unwrap().as_str(),
            "live/ls_1/master.m3u8"
        );
        assert!(base.join("..").is_err());
        assert!(base.join("a/b").is_err());
    }
}
