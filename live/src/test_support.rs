//! What the live crate's tests share: a real local store that notes, in order, what it
//! accepted (and which segments each stored playlist listed), to check ordering rules on.

use std::path::Path;
use std::sync::Mutex;

use async_trait::async_trait;
use bytes::Bytes;
use sluice_storage::{LocalStore, ObjectKey, ObjectStore, StoreError};

/// A real [`LocalStore`] that also notes, in order, every write and delete it accepted.
pub struct NotingStore {
    inner: LocalStore,
    accepted: Mutex<Vec<String>>,
    /// Each media playlist stored, with the URIs of the segments it listed then.
    playlists: Mutex<Vec<(ObjectKey, Vec<String>)>>,
}

impl NotingStore {
    pub fn new(root: &Path) -> Self {
        NotingStore {
            inner: LocalStore::new(root),
            accepted: Mutex::default(),
            playlists: Mutex::default(),
        }
    }

    fn note<T>(&self, what: &str, key: &ObjectKey, result: &Result<T, StoreError>) {
        if result.is_ok() {
            self.accepted.lock().unwrap().push(format!("{what} {key}"));
        }
    }

    /// `put {key}` and `delete {key}`, in the order the store accepted them.
    pub fn accepted(&self) -> Vec<String> {
        self.accepted.lock().unwrap().clone()
    }

    /// Every media playlist stored, in order, with the segment URIs it listed.
    pub fn playlists(&self) -> Vec<(ObjectKey, Vec<String>)> {
        self.playlists.lock().unwrap().clone()
    }
}

#[async_trait]
impl ObjectStore for NotingStore {
    async fn put(&self, key: &ObjectKey, body: Bytes) -> Result<(), StoreError> {
        if let Ok((_, m3u8_rs::Playlist::MediaPlaylist(playlist))) = m3u8_rs::parse_playlist(&body)
        {
            let uris = playlist.segments.into_iter().map(|s| s.uri).collect();
            self.playlists.lock().unwrap().push((key.clone(), uris));
        }
        let result = self.inner.put(key, body).await;
        self.note("put", key, &result);
        result
    }
    async fn put_file(&self, key: &ObjectKey, path: &Path) -> Result<(), StoreError> {
        let result = self.inner.put_file(key, path).await;
        self.note("put", key, &result);
        result
    }
    async fn get_to_file(&self, key: &ObjectKey, path: &Path) -> Result<u64, StoreError> {
        self.inner.get_to_file(key, path).await
    }
    async fn get(&self, key: &ObjectKey) -> Result<Bytes, StoreError> {
        self.inner.get(key).await
    }
    async fn copy(&self, from: &ObjectKey, to: &ObjectKey) -> Result<(), StoreError> {
        self.inner.copy(from, to).await
    }
    async fn delete(&self, key: &ObjectKey) -> Result<(), StoreError> {
        let result = self.inner.delete(key).await;
        self.note("delete", key, &result);
        result
    }
    async fn delete_prefix(&self, prefix: &ObjectKey) -> Result<(), StoreError> {
        self.inner.delete_prefix(prefix).await
    }
}
