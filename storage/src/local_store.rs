//! [`LocalStore`]: an [`ObjectStore`] on the local file system, the default backend.
//!
//! Each key segment becomes one path component under the root. [`ObjectKey`] already refuses
//! `..`, separators and empty segments, so a key cannot name anything outside the root. Writes
//! go to a uniquely named temporary file in the destination directory and are renamed into
//! place (rename is atomic on POSIX file systems), so a reader never sees half a segment.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;

use crate::object_store::{ObjectKey, ObjectStore, StoreError};

/// Where a server keeps its local files when not told otherwise: the SQLite database (unless
/// `database_url` names another), the objects of a [`LocalStore`], the spools and the first
/// API key.
pub const DEFAULT_DATA_DIR: &str = "./data";

/// Objects stored as files under one root directory.
#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
}

/// Tries at removing a tree that writers keep adding to.
const DELETE_PREFIX_ATTEMPTS: u32 = 5;

impl LocalStore {
    /// A store rooted at `root`; the directory is created on the first write.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    fn path_of(&self, key: &ObjectKey) -> PathBuf {
        let mut path = self.root.clone();
        path.extend(key.segments());
        path
    }
}

/// Whether an I/O error means "there is no object there": a missing file, a directory where
/// the object would be, or a file where a parent directory would be.
fn means_absent(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        ErrorKind::NotFound | ErrorKind::IsADirectory | ErrorKind::NotADirectory
    )
}

fn io_error(key: &ObjectKey, source: std::io::Error) -> StoreError {
    StoreError::Io {
        key: key.clone(),
        source,
    }
}

/// What a write puts in place: bytes in memory, a copy of a local file, or another object of
/// the store.
enum Body<'a> {
    Bytes(&'a [u8]),
    File(&'a Path),
    /// A stored object's file. Objects are never written in place (a put renames a new file
    /// over the name), so a hard link shares the bytes safely; a copy is made where the file
    /// system cannot link.
    Link(&'a Path),
}

impl LocalStore {
    /// Writes `body` to a temporary file beside `key`'s path and renames it into place.
    async fn write_atomically(&self, key: &ObjectKey, body: Body<'_>) -> Result<(), StoreError> {
        let path = self.path_of(key);
        let parent = path.parent().unwrap_or(&self.root);
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(|e| io_error(key, e))?;
        // The temporary name contains `~`, which no ObjectKey segment may, so it can never
        // collide with or be served as a real object.
        let temp = parent.join(format!(".tmp~{}", uuid::Uuid::new_v4().simple()));
        let written = match body {
            Body::Bytes(bytes) => tokio::fs::write(&temp, bytes).await,
            // A source is often removed once stored (an upload's spool file): it reaches the
            // disk before it takes the object's name.
            Body::File(source) => match tokio::fs::copy(source, &temp).await {
                Ok(_) => match tokio::fs::File::open(&temp).await {
                    Ok(file) => file.sync_all().await,
                    Err(error) => Err(error),
                },
                Err(error) => Err(error),
            },
            Body::Link(source) => match tokio::fs::hard_link(source, &temp).await {
                Ok(()) => Ok(()),
                Err(_) => tokio::fs::copy(source, &temp).await.map(|_| ()),
            },
        };
        if let Err(error) = written {
            // Best effort: the write already failed, a leftover temp file is harmless.
            let _ = tokio::fs::remove_file(&temp).await;
            return Err(io_error(key, error));
        }
        if let Err(error) = tokio::fs::rename(&temp, &path).await {
            let _ = tokio::fs::remove_file(&temp).await;
            return Err(io_error(key, error));
        }
        Ok(())
    }
}

#[async_trait]
impl ObjectStore for LocalStore {
    async fn put(&self, key: &ObjectKey, body: Bytes) -> Result<(), StoreError> {
        self.write_atomically(key, Body::Bytes(&body)).await
    }

    async fn put_file(&self, key: &ObjectKey, path: &Path) -> Result<(), StoreError> {
        self.write_atomically(key, Body::File(path)).await
    }

    async fn get_to_file(&self, key: &ObjectKey, path: &Path) -> Result<u64, StoreError> {
        match tokio::fs::copy(self.path_of(key), path).await {
            Ok(copied) => Ok(copied),
            Err(error) if means_absent(&error) => Err(StoreError::NotFound { key: key.clone() }),
            Err(error) => Err(io_error(key, error)),
        }
    }

    async fn get(&self, key: &ObjectKey) -> Result<Bytes, StoreError> {
        match tokio::fs::read(self.path_of(key)).await {
            Ok(body) => Ok(Bytes::from(body)),
            Err(error) if means_absent(&error) => Err(StoreError::NotFound { key: key.clone() }),
            Err(error) => Err(io_error(key, error)),
        }
    }

    async fn copy(&self, from: &ObjectKey, to: &ObjectKey) -> Result<(), StoreError> {
        let source = self.path_of(from);
        match tokio::fs::metadata(&source).await {
            Ok(metadata) if metadata.is_file() => {}
            Ok(_) => return Err(StoreError::NotFound { key: from.clone() }),
            Err(error) if means_absent(&error) => {
                return Err(StoreError::NotFound { key: from.clone() })
            }
            Err(error) => return Err(io_error(from, error)),
        }
        self.write_atomically(to, Body::Link(&source)).await
    }

    async fn delete(&self, key: &ObjectKey) -> Result<(), StoreError> {
        match tokio::fs::remove_file(self.path_of(key)).await {
            Ok(()) => Ok(()),
            Err(error) if means_absent(&error) => Ok(()),
            Err(error) => Err(io_error(key, error)),
        }
    }

    async fn delete_prefix(&self, prefix: &ObjectKey) -> Result<(), StoreError> {
        let path = self.path_of(prefix);
        let mut attempt = 1;
        loop {
            match tokio::fs::remove_dir_all(&path).await {
                Ok(()) => return Ok(()),
                Err(error) if means_absent(&error) => return Ok(()),
                // A writer put an object under the prefix while the tree was being removed
                // (S3 would keep such an object too): remove what is there now.
                Err(error)
                    if error.kind() == std::io::ErrorKind::DirectoryNotEmpty
                        && attempt < DELETE_PREFIX_ATTEMPTS =>
                {
                    attempt += 1;
                }
                Err(error) => return Err(io_error(prefix, error)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> ObjectKey {
        ObjectKey::parse(s).unwrap()
    }

    #[tokio::test]
    async fn put_then_get_returns_the_body_and_creates_directories() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path().join("objects"));
        store
            .put(&key("live/ls_1/720p/seg1.m4s"), Bytes::from_static(b"moof"))
            .await
            .unwrap();
        let body = store.get(&key("live/ls_1/720p/seg1.m4s")).await.unwrap();
        assert_eq!(&body[..], b"moof");
        assert!(dir.path().join("objects/live/ls_1/720p/seg1.m4s").is_file());
    }

    #[tokio::test]
    async fn put_replaces_and_leaves_no_temporary_files() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path());
        let k = key("live/ls_1/index.m3u8");
        store.put(&k, Bytes::from_static(b"one")).await.unwrap();
        store.put(&k, Bytes::from_static(b"two")).await.unwrap();
        assert_eq!(&store.get(&k).await.unwrap()[..], b"two");
        let names: Vec<_> = std::fs::read_dir(dir.path().join("live/ls_1"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["index.m3u8"]);
    }

    #[tokio::test]
    async fn files_go_in_and_come_out_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path().join("objects"));
        let source = dir.path().join("source.bin");
        let body: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&source, &body).unwrap();
        store
            .put_file(&key("uploads/u1/source"), &source)
            .await
            .unwrap();
        let out = dir.path().join("out.bin");
        let copied = store
            .get_to_file(&key("uploads/u1/source"), &out)
            .await
            .unwrap();
        assert_eq!(copied, body.len() as u64);
        assert_eq!(std::fs::read(&out).unwrap(), body);
        let missing = store
            .get_to_file(&key("uploads/u2/source"), &out)
            .await
            .unwrap_err();
        assert!(missing.is_not_found());
        let no_file = store
            .put_file(&key("uploads/u3/source"), &dir.path().join("absent"))
            .await
            .unwrap_err();
        assert!(!no_file.is_not_found());
        let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("objects/uploads/u3"))
            .unwrap()
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[tokio::test]
    async fn a_missing_object_or_a_directory_is_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path());
        assert!(store.get(&key("nothing")).await.unwrap_err().is_not_found());
        store
            .put(&key("live/ls_1/a.m4s"), Bytes::new())
            .await
            .unwrap();
        assert!(store
            .get(&key("live/ls_1"))
            .await
            .unwrap_err()
            .is_not_found());
        assert!(store
            .get(&key("live/ls_1/a.m4s/deeper"))
            .await
            .unwrap_err()
            .is_not_found());
        assert!(store
            .copy(&key("live/ls_1"), &key("c"))
            .await
            .unwrap_err()
            .is_not_found());
    }
}
