//! Behaviour every [`ObjectStore`] backend shares, checked the same way on [`LocalStore`] and
//! on [`S3Store`] against a real S3-compatible server, plus the S3 store's own health check and
//! multipart uploads.
//!
//! The S3 variants use the server `scripts/test-s3.sh` starts: the bucket SLUICE_TEST_S3_BUCKET
//! reached through the standard AWS variables (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, …). Without
//! them the S3 variants are skipped, unless SLUICE_TEST_REQUIRE_S3 is set (`make test-s3` sets
//! it), in which case they fail.

use std::path::Path;

use bytes::Bytes;

use crate::object_store::{ObjectKey, ObjectStore, Playback};
use crate::s3_store::{S3Config, S3Credentials, S3Store, MULTIPART_THRESHOLD};
use crate::LocalStore;

fn key(s: &str) -> ObjectKey {
    ObjectKey::parse(s).unwrap()
}

/// Bytes that differ from one offset to the next, so a misplaced part shows.
fn patterned(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i % 251) as u8 ^ (i / 65_536) as u8)
        .collect()
}

async fn put_get_and_replace(store: &dyn ObjectStore, _scratch: &Path) {
    let k = key("live/ls_1/v0/seg1.m4s");
    store.put(&k, Bytes::from_static(b"first")).await.unwrap();
    assert_eq!(store.get(&k).await.unwrap(), Bytes::from_static(b"first"));
    store.put(&k, Bytes::from_static(b"second")).await.unwrap();
    assert_eq!(store.get(&k).await.unwrap(), Bytes::from_static(b"second"));
    store.put(&k, Bytes::new()).await.unwrap();
    assert!(store.get(&k).await.unwrap().is_empty());
}

async fn files_go_in_and_come_out_whole(store: &dyn ObjectStore, scratch: &Path) {
    // One file under the multipart threshold, one over it that does not end on a part
    // boundary.
    for (name, len) in [
        ("small", 300_000),
        ("large", MULTIPART_THRESHOLD as usize + 5 * 1024 * 1024 + 7),
    ] {
        let body = patterned(len);
        let source = scratch.join(format!("{name}.in"));
        std::fs::write(&source, &body).unwrap();
        let k = key(&format!("uploads/{name}/source"));
        store.put_file(&k, &source).await.unwrap();
        let out = scratch.join(format!("{name}.out"));
        let copied = store.get_to_file(&k, &out).await.unwrap();
        assert_eq!(copied, len as u64, "{name}");
        assert!(
            std::fs::read(&out).unwrap() == body,
            "{name} came back altered"
        );
    }
    let absent = store
        .put_file(&key("uploads/none/source"), &scratch.join("absent"))
        .await
        .unwrap_err();
    assert!(!absent.is_not_found(), "{absent}");
}

async fn missing_objects_are_not_found(store: &dyn ObjectStore, scratch: &Path) {
    let missing = key("assets/none/hls/master.m3u8");
    assert!(store.get(&missing).await.unwrap_err().is_not_found());
    let error = store
        .get_to_file(&missing, &scratch.join("out"))
        .await
        .unwrap_err();
    assert!(error.is_not_found(), "{error}");
    assert!(error.to_string().contains(missing.as_str()), "{error}");
    let error = store.copy(&missing, &key("b/c")).await.unwrap_err();
    assert!(error.is_not_found(), "{error}");
}

async fn copy_makes_an_independent_object(store: &dyn ObjectStore, _scratch: &Path) {
    store
        .put(&key("a/one"), Bytes::from_static(b"first"))
        .await
        .unwrap();
    store.copy(&key("a/one"), &key("b/two")).await.unwrap();
    store
        .put(&key("a/one"), Bytes::from_static(b"second"))
        .await
        .unwrap();
    store.delete(&key("a/one")).await.unwrap();
    assert_eq!(
        store.get(&key("b/two")).await.unwrap(),
        Bytes::from_static(b"first")
    );
    // Copying over an existing object replaces it.
    store
        .put(&key("a/three"), Bytes::from_static(b"third"))
        .await
        .unwrap();
    store.copy(&key("a/three"), &key("b/two")).await.unwrap();
    assert_eq!(
        store.get(&key("b/two")).await.unwrap(),
        Bytes::from_static(b"third")
    );
}

async fn delete_is_idempotent(store: &dyn ObjectStore, _scratch: &Path) {
    let k = key("live/ls_1/a.m4s");
    store.put(&k, Bytes::from_static(b"x")).await.unwrap();
    store.delete(&k).await.unwrap();
    assert!(store.get(&k).await.unwrap_err().is_not_found());
    store.delete(&k).await.unwrap();
    store.delete(&key("never/there")).await.unwrap();
}

async fn delete_prefix_leaves_siblings(store: &dyn ObjectStore, _scratch: &Path) {
    let doomed = ["live/ls_1/v0/a.m4s", "live/ls_1/master.m3u8"];
    // `live/ls_10` and `live/ls_1.m3u8` start with the same characters as `live/ls_1` but are
    // outside its prefix.
    let kept = [
        "live/ls_10/master.m3u8",
        "live/ls_2/master.m3u8",
        "live/ls_1.m3u8",
    ];
    for k in doomed.iter().chain(&kept) {
        store.put(&key(k), Bytes::from_static(b"x")).await.unwrap();
    }
    // More objects than one S3 listing page or DeleteObjects request holds.
    for i in 0..1_005 {
        store
            .put(&key(&format!("live/ls_1/v1/s{i}.m4s")), Bytes::new())
            .await
            .unwrap();
    }
    store.delete_prefix(&key("live/ls_1")).await.unwrap();
    store.delete_prefix(&key("live/ls_9")).await.unwrap();
    for k in doomed
        .iter()
        .chain(&["live/ls_1/v1/s0.m4s", "live/ls_1/v1/s1004.m4s"])
    {
        assert!(
            store.get(&key(k)).await.unwrap_err().is_not_found(),
            "{k} is left"
        );
    }
    for k in kept {
        assert!(store.get(&key(k)).await.is_ok(), "{k} was removed");
    }
}

/// The test bucket of the S3 server, or `None` (skip) when its environment is not set.
fn s3_bucket() -> Option<String> {
    match std::env::var("SLUICE_TEST_S3_BUCKET") {
        Ok(bucket) if !bucket.is_empty() && std::env::var("AWS_ENDPOINT_URL").is_ok() => {
            Some(bucket)
        }
        _ if std::env::var_os("SLUICE_TEST_REQUIRE_S3").is_some() => panic!(
            "SLUICE_TEST_REQUIRE_S3 is set but SLUICE_TEST_S3_BUCKET or AWS_ENDPOINT_URL is \
             not: start the server with `eval \"$(scripts/test-s3.sh start)\"`"
        ),
        _ => {
            eprintln!("skipped: no S3 server (SLUICE_TEST_S3_BUCKET, see scripts/test-s3.sh)");
            None
        }
    }
}

/// The test bucket as `url` (`s3://BUCKET/PREFIX`) names it, reached through the AWS
/// environment with path-style addressing (s3s-fs has no virtual hosts).
fn s3_config(url: &str) -> S3Config {
    S3Config {
        force_path_style: true,
        ..S3Config::from_url(url).unwrap()
    }
}

/// A store on a fresh prefix of the test bucket; `None` when there is no S3 server.
async fn s3_store() -> Option<(S3Store, String)> {
    let bucket = s3_bucket()?;
    let prefix = format!("conformance-{:016x}", rand::random::<u64>());
    let store = S3Store::connect(s3_config(&format!("s3://{bucket}/{prefix}")))
        .await
        .unwrap();
    store.check().await.unwrap();
    Some((store, prefix))
}

/// Removes what a test left under its prefix.
async fn remove_prefix(prefix: &str) {
    let bucket = std::env::var("SLUICE_TEST_S3_BUCKET").unwrap();
    let whole_bucket = S3Store::connect(s3_config(&format!("s3://{bucket}")))
        .await
        .unwrap();
    whole_bucket.delete_prefix(&key(prefix)).await.unwrap();
}

/// One test per behaviour and backend.
macro_rules! conformance {
    ($($behaviour:ident),* $(,)?) => {
        mod local {
            $(
                #[tokio::test]
                async fn $behaviour() {
                    let dir = tempfile::tempdir().unwrap();
                    let store = super::LocalStore::new(dir.path().join("objects"));
                    super::$behaviour(&store, dir.path()).await;
                }
            )*
        }

        mod s3 {
            $(
                #[tokio::test]
                async fn $behaviour() {
                    let Some((store, prefix)) = super::s3_store().await else {
                        return;
                    };
                    let scratch = tempfile::tempdir().unwrap();
                    super::$behaviour(&store, scratch.path()).await;
                    super::remove_prefix(&prefix).await;
                }
            )*
        }
    };
}

conformance!(
    put_get_and_replace,
    files_go_in_and_come_out_whole,
    missing_objects_are_not_found,
    copy_makes_an_independent_object,
    delete_is_idempotent,
    delete_prefix_leaves_siblings,
);

#[tokio::test]
async fn s3_large_files_go_up_in_parts() {
    let Some((store, prefix)) = s3_store().await else {
        return;
    };
    let scratch = tempfile::tempdir().unwrap();
    let source = scratch.path().join("large");
    std::fs::write(&source, patterned(MULTIPART_THRESHOLD as usize + 1)).unwrap();
    let k = key("uploads/u1/source");
    store.put_file(&k, &source).await.unwrap();
    // A multipart object's ETag ends with its number of parts: 16 MiB + 1 in 8 MiB parts.
    let e_tag = store.e_tag(&k).await;
    assert!(e_tag.trim_matches('"').ends_with("-3"), "{e_tag}");
    remove_prefix(&prefix).await;
}

#[tokio::test]
async fn s3_health_check_names_what_is_wrong() {
    let Some(bucket) = s3_bucket() else {
        return;
    };
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap();
    let missing = S3Store::connect(s3_config("s3://no-such-bucket-here"))
        .await
        .unwrap();
    let error = missing.check().await.unwrap_err().to_string();
    assert!(
        error.contains("\"no-such-bucket-here\" does not exist") && error.contains(&endpoint),
        "{error}"
    );

    let mut wrong_secret = s3_config(&format!("s3://{bucket}"));
    wrong_secret.credentials = Some(S3Credentials {
        access_key_id: std::env::var("AWS_ACCESS_KEY_ID").unwrap(),
        secret_access_key: "not-the-secret".into(),
    });
    let error = S3Store::connect(wrong_secret)
        .await
        .unwrap()
        .check()
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("was denied"), "{error}");
    assert!(error.contains(&bucket), "{error}");

    // A loopback port nothing listens on: bound, then closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut unreachable = s3_config(&format!("s3://{bucket}"));
    unreachable.endpoint = Some(format!("http://127.0.0.1:{port}"));
    let error = S3Store::connect(unreachable)
        .await
        .unwrap()
        .check()
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("cannot reach") && error.contains(&format!("127.0.0.1:{port}")),
        "{error}"
    );
}

#[tokio::test]
async fn s3_playback_urls_follow_the_mode() {
    let Some(bucket) = s3_bucket() else {
        return;
    };
    let k = key("live/ls_1/v0/seg1.m4s");
    let url = format!("s3://{bucket}/tenant");
    let proxy = S3Store::connect(s3_config(&url)).await.unwrap();
    assert_eq!(proxy.public_url(&k), None);
    assert_eq!(proxy.redirect_url(&k).await.unwrap(), None);

    let public = S3Store::connect(S3Config {
        playback: Playback::Public {
            base_url: "https://cdn.example/media".into(),
        },
        ..s3_config(&url)
    })
    .await
    .unwrap();
    assert_eq!(
        public.public_url(&k).as_deref(),
        Some("https://cdn.example/media/tenant/live/ls_1/v0/seg1.m4s")
    );
    assert_eq!(public.redirect_url(&k).await.unwrap(), None);

    let redirect = S3Store::connect(S3Config {
        playback: Playback::Redirect {
            expires_in: std::time::Duration::from_secs(60),
        },
        ..s3_config(&url)
    })
    .await
    .unwrap();
    let presigned = redirect.redirect_url(&k).await.unwrap().unwrap();
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap();
    assert!(
        presigned.starts_with(&format!(
            "{endpoint}/{bucket}/tenant/live/ls_1/v0/seg1.m4s?"
        )),
        "{presigned}"
    );
    assert!(presigned.contains("X-Amz-Expires=60"), "{presigned}");
    assert_eq!(redirect.public_url(&k), None);
}
