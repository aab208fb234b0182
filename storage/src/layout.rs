//! The object-key layout: the root of every tree Sluice keeps in a store is built here, and
//! only from server-made ids (the paths inside a tree are relative to its root; the readiness
//! probe's `.sluice/readiness-probe` is the one object outside):
//!
//! ```text
//! live/{live_stream_id}/master.m3u8                a live session's HLS tree (the newest session)
//! live/{live_stream_id}/{rendition}/…              its media playlists, init and media segments
//! uploads/{upload_id}/source                       a direct upload's file
//! assets/{asset_id}/source                         an imported asset's file
//! assets/{asset_id}/hls/master.m3u8                an asset's HLS tree
//! assets/{asset_id}/hls/{rendition}/…
//! assets/{asset_id}/images/…                       its poster and storyboard
//! assets/{asset_id}/cache/…                        thumbnails, storyboards and previews rendered on request
//! ```
//!
//! The rendition directories and file names inside a tree are the packager's
//! (`sluice_packager::tree`); the names of pictures and cached renders are the image code's.

use crate::object_store::{InvalidKey, ObjectKey};

/// The top folder of live streams' trees.
const LIVE: &str = "live";
/// The top folder of direct uploads.
const UPLOADS: &str = "uploads";
/// The top folder of assets.
const ASSETS: &str = "assets";
/// An uploaded or imported file, under its upload or asset.
const SOURCE: &str = "source";
/// What an asset is made into, under the asset: its HLS tree, its pictures, its renders.
const ASSET_HLS: &str = "hls";
const ASSET_IMAGES: &str = "images";
const ASSET_CACHE: &str = "cache";

/// `live/{live_stream_id}`: everything a live stream's sessions wrote.
pub fn live_stream(live_stream_id: &str) -> Result<ObjectKey, InvalidKey> {
    ObjectKey::new([LIVE, live_stream_id])
}

/// `live/{live_stream_id}/{path…}`: an object of a live stream's HLS tree.
pub fn live_object(live_stream_id: &str, path: &[&str]) -> Result<ObjectKey, InvalidKey> {
    ObjectKey::new(
        [LIVE, live_stream_id]
            .into_iter()
            .chain(path.iter().copied()),
    )
}

/// `uploads/{upload_id}`: everything of a direct upload.
pub fn upload(upload_id: &str) -> Result<ObjectKey, InvalidKey> {
    ObjectKey::new([UPLOADS, upload_id])
}

/// `uploads/{upload_id}/source`: the uploaded file, kept there once its asset exists.
pub fn upload_source(upload_id: &str) -> Result<ObjectKey, InvalidKey> {
    ObjectKey::new([UPLOADS, upload_id, SOURCE])
}

/// `assets/{asset_id}`: everything of an asset.
pub fn asset(asset_id: &str) -> Result<ObjectKey, InvalidKey> {
    ObjectKey::new([ASSETS, asset_id])
}

/// `assets/{asset_id}/source`: an imported asset's file.
pub fn asset_source(asset_id: &str) -> Result<ObjectKey, InvalidKey> {
    ObjectKey::new([ASSETS, asset_id, SOURCE])
}

/// `assets/{asset_id}/hls/{path…}`: an asset's HLS tree (the tree itself for an empty path).
pub fn asset_hls(asset_id: &str, path: &[&str]) -> Result<ObjectKey, InvalidKey> {
    asset_part(asset_id, ASSET_HLS, path)
}

/// `assets/{asset_id}/images/{path…}`: an asset's poster and storyboard.
pub fn asset_images(asset_id: &str, path: &[&str]) -> Result<ObjectKey, InvalidKey> {
    asset_part(asset_id, ASSET_IMAGES, path)
}

/// `assets/{asset_id}/cache/{name}`: a picture rendered on request.
pub fn asset_cache(asset_id: &str, name: &str) -> Result<ObjectKey, InvalidKey> {
    asset_part(asset_id, ASSET_CACHE, &[name])
}

/// What processing writes under an asset (its HLS tree and pictures, not its source nor the
/// renders cached on request): removed before an asset is processed again.
pub fn asset_outputs(asset_id: &str) -> Result<[ObjectKey; 2], InvalidKey> {
    Ok([asset_hls(asset_id, &[])?, asset_images(asset_id, &[])?])
}

fn asset_part(asset_id: &str, part: &str, path: &[&str]) -> Result<ObjectKey, InvalidKey> {
    ObjectKey::new(
        [ASSETS, asset_id, part]
            .into_iter()
            .chain(path.iter().copied()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_follows_the_documented_layout() {
        let keys = [
            live_stream("ls_1").unwrap(),
            live_object("ls_1", &["master.m3u8"]).unwrap(),
            live_object("ls_1", &["v0", "ses_1-3.m4s"]).unwrap(),
            upload("up_1").unwrap(),
            upload_source("up_1").unwrap(),
            asset("as_1").unwrap(),
            asset_source("as_1").unwrap(),
            asset_hls("as_1", &[]).unwrap(),
            asset_hls("as_1", &["v0", "index.m3u8"]).unwrap(),
            asset_images("as_1", &["poster.jpg"]).unwrap(),
            asset_cache("as_1", "thumbnail_t2_w320.jpg").unwrap(),
        ];
        let keys: Vec<&str> = keys.iter().map(ObjectKey::as_str).collect();
        assert_eq!(
            keys,
            [
                "live/ls_1",
                "live/ls_1/master.m3u8",
                "live/ls_1/v0/ses_1-3.m4s",
                "uploads/up_1",
                "uploads/up_1/source",
                "assets/as_1",
                "assets/as_1/source",
                "assets/as_1/hls",
                "assets/as_1/hls/v0/index.m3u8",
                "assets/as_1/images/poster.jpg",
                "assets/as_1/cache/thumbnail_t2_w320.jpg",
            ]
        );
        let outputs = asset_outputs("as_1").unwrap();
        assert_eq!(
            outputs.map(|key| key.as_str().to_owned()),
            ["assets/as_1/hls", "assets/as_1/images"]
        );
    }

    #[test]
    fn an_id_that_would_leave_its_folder_is_refused() {
        assert!(live_stream("..").is_err());
        assert!(asset_hls("as_1", &["..", "secret"]).is_err());
        assert!(upload_source("a/b").is_err());
    }
}
