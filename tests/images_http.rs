//! Black-box: images of an asset over real HTTP from the real binary. The asset is seeded
//! through the database API (its processing job cancelled) with a clip the ffmpeg CLI made,
//! one plain colour per second so a picture tells its time; the images are read back with
//! ffprobe and ffmpeg: thumbnail sizes and times, storyboard cues inside their sprite and
//! covering the clip, animation frame counts, caching, and signed playback ids.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use common::{create_signing_key, http_request, playback_token, HttpResponse, Launch, Server};
use serde_json::{json, Value};
use sluice_media::fixtures::{ffmpeg_clip, read_webp_animation};
use sluice_storage::test_support::TestDatabase;
use sluice_storage::{AssetInput, Db, LocalStore, NewAsset, ObjectStore, PlaybackPolicy};

/// The clip's colours, one a second.
const COLOURS: [(&str, [u8; 3]); 6] = [
    ("red", [255, 0, 0]),
    ("lime", [0, 255, 0]),
    ("blue", [0, 0, 255]),
    ("white", [255, 255, 255]),
    ("yellow", [255, 255, 0]),
    ("magenta", [255, 0, 255]),
];
const CLIP_SECONDS: usize = COLOURS.len();

/// A server and a ready asset of [`colour_clip`] with one playback id.
struct Fixture {
    server: Server,
    asset_id: String,
    playback_id: String,
    _clips: tempfile::TempDir,
}

/// 6 s of 320×180 25 fps H.264, one colour per second, a keyframe every 2 s.
fn colour_clip(dir: &Path) -> PathBuf {
    let inputs: Vec<String> = COLOURS
        .iter()
        .enumerate()
        .map(|(i, (name, _))| format!("color=c={name}:s=320x180:r=25:d=1[c{i}]"))
        .collect();
    let labels: String = (0..CLIP_SECONDS).map(|i| format!("[c{i}]")).collect();
    let graph = format!(
        "{};{labels}concat=n={CLIP_SECONDS}:v=1:a=0",
        inputs.join(";")
    );
    ffmpeg_clip(
        dir,
        "colours.mp4",
        &[
            "-filter_complex",
            &graph,
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-g",
            "50",
            "-pix_fmt",
            "yuv420p",
        ],
    )
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

impl Fixture {
    fn start(policy: PlaybackPolicy) -> Fixture {
        let database = Arc::new(TestDatabase::new());
        let server = Server::launch(Launch {
            database: Some(database.clone()),
            ..Launch::default()
        });
        let clips = tempfile::tempdir().unwrap();
        let clip = colour_clip(clips.path());
        let objects = LocalStore::new(server.objects_dir());
        let (asset_id, playback_id) = runtime().block_on(async {
            let db = Db::connect(database.url()).await.unwrap();
            let asset = db
                .create_asset(&NewAsset {
                    input: AssetInput::Url {
                        url: "https://example.com/colours.mp4".to_owned(),
                    },
                    settings: None,
                    playback_policies: vec![policy],
                })
                .await
                .unwrap();
            // No worker is to process it: the test plays the worker's part.
            db.cancel_jobs_for(&asset.id).await.unwrap();
            objects
                .put_file(&asset.source_key().unwrap(), &clip)
                .await
                .unwrap();
            let duration_ms = CLIP_SECONDS as i64 * 1000;
            db.set_asset_probed(&asset.id, Some(duration_ms), &json!([]), &json!({}))
                .await
                .unwrap();
            db.set_asset_ready(&asset.id, &json!([])).await.unwrap();
            let playback_id = db.asset_playback_ids(&asset.id).await.unwrap()[0]
                .id
                .clone();
            (asset.id.to_string(), playback_id)
        });
        Fixture {
            server,
            asset_id,
            playback_id,
            _clips: clips,
        }
    }

    /// GETs `{route}/{playback_id}.{rest}`.
    fn image(&self, route: &str, rest: &str) -> HttpResponse {
        self.server
            .get(&format!("/{route}/{}.{rest}", self.playback_id))
    }

    /// The objects cached for the asset: name → bytes.
    fn cached(&self) -> Vec<(String, Vec<u8>)> {
        let dir = self
            .server
            .objects_dir()
            .join("assets")
            .join(&self.asset_id)
            .join("cache");
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        entries
            .map(|entry| {
                let entry = entry.unwrap();
                (
                    entry.file_name().to_string_lossy().into_owned(),
                    std::fs::read(entry.path()).unwrap(),
                )
            })
            .collect()
    }
}

/// Asserts a 200 image of `content_type` and writes it to a file for ffprobe.
fn saved(response: &HttpResponse, content_type: &str, dir: &Path, name: &str) -> PathBuf {
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.header("content-type"), Some(content_type));
    let path = dir.join(name);
    std::fs::write(&path, &response.body).unwrap();
    path
}

/// Codec, width, height and (counted) frames of the first video stream.
fn probe(path: &Path) -> (String, u32, u32, u32) {
    let output = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args([
            "-show_entries",
            "stream=codec_name,width,height,nb_read_frames",
        ])
        .args(["-of", "json"])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    assert!(output.status.success(), "ffprobe reads {}", path.display());
    let json: Value = serde_json::from_slice(&output.stdout).unwrap();
    let stream = &json["streams"][0];
    let number = |field: &str| -> u32 {
        match &stream[field] {
            Value::String(text) => text.parse().unwrap(),
            other => other.as_u64().unwrap() as u32,
        }
    };
    (
        stream["codec_name"].as_str().unwrap().to_owned(),
        number("width"),
        number("height"),
        number("nb_read_frames"),
    )
}

/// An image decoded to RGB24 by the ffmpeg CLI: width, height, pixels (first frame).
fn pixels(path: &Path) -> (u32, u32, Vec<u8>) {
    let (_, width, height, _) = probe(path);
    let output = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        .output()
        .expect("ffmpeg runs");
    assert!(output.status.success());
    (width, height, output.stdout)
}

fn pixel_at(image: &(u32, u32, Vec<u8>), x: u32, y: u32) -> [u8; 3] {
    let at = ((y * image.0 + x) * 3) as usize;
    [image.2[at], image.2[at + 1], image.2[at + 2]]
}

fn assert_colour(actual: [u8; 3], expected: [u8; 3], what: &str) {
    let close = actual
        .iter()
        .zip(expected)
        .all(|(&a, e)| (i32::from(a) - i32::from(e)).abs() <= 32);
    assert!(close, "{what}: {actual:?}, expected about {expected:?}");
}

#[test]
fn thumbnails_have_the_asked_size_and_show_the_asked_time() {
    let fixture = Fixture::start(PlaybackPolicy::Public);
    let dir = tempfile::tempdir().unwrap();

    for (query, size) in [
        ("width=160", (160, 90)),
        ("height=90", (160, 90)),
        ("width=100&height=100", (100, 56)),
        ("width=100&height=100&fit_mode=preserve", (100, 56)),
        ("width=100&height=100&fit_mode=crop", (100, 100)),
        ("width=100&height=100&fit_mode=pad", (100, 100)),
        ("width=100&height=100&fit_mode=stretch", (100, 100)),
    ] {
        let response = fixture.image("thumbnails", &format!("jpg?time=1.5&{query}"));
        let path = saved(&response, "image/jpeg", dir.path(), "sized.jpg");
        let (codec, width, height, _) = probe(&path);
        assert_eq!(
            (codec.as_str(), (width, height)),
            ("mjpeg", size),
            "{query}"
        );
    }
    // Padding is black around the picture; the picture shows second 1 (lime).
    let path = saved(
        &fixture.image(
            "thumbnails",
            "png?time=1.5&width=100&height=100&fit_mode=pad",
        ),
        "image/png",
        dir.path(),
        "pad.png",
    );
    let padded = pixels(&path);
    assert_colour(pixel_at(&padded, 50, 5), [0, 0, 0], "pad bar");
    assert_colour(pixel_at(&padded, 50, 50), COLOURS[1].1, "padded picture");

    // Each time shows its second's colour; past the end, the last picture.
    for (time, second) in [("0", 0), ("2.5", 2), ("3.96", 3), ("5.2", 5), ("600", 5)] {
        let response = fixture.image("thumbnails", &format!("png?time={time}"));
        let path = saved(&response, "image/png", dir.path(), "at.png");
        let image = pixels(&path);
        assert_eq!((image.0, image.1), (320, 180));
        assert_colour(
            pixel_at(&image, 160, 90),
            COLOURS[second].1,
            &format!("time={time}"),
        );
    }
    // No parameters: the poster frame, at 10 % of 6 s (red).
    let poster = fixture.image("thumbnails", "jpg");
    let path = saved(&poster, "image/jpeg", dir.path(), "poster.jpg");
    assert_colour(pixel_at(&pixels(&path), 160, 90), COLOURS[0].1, "poster");
    let webp = fixture.image("thumbnails", "webp?time=4.5&width=64");
    let path = saved(&webp, "image/webp", dir.path(), "t.webp");
    assert_eq!(probe(&path).1, 64);

    // The second request is the cached object: same bytes, same ETag, 304 when held.
    let first = fixture.image("thumbnails", "jpg?time=2.5&width=128");
    let etag = first.header("etag").unwrap().to_owned();
    assert_eq!(first.header("cache-control"), Some("public, max-age=86400"));
    assert!(
        fixture
            .cached()
            .iter()
            .any(|(name, body)| name.ends_with(".jpg") && *body == first.body),
        "the thumbnail is cached in the object store"
    );
    let second = fixture.image("thumbnails", "jpg?time=2.5&width=128");
    assert_eq!(second.header("etag"), Some(etag.as_str()));
    assert_eq!(second.body, first.body);
    let url = fixture.server.url(&format!(
        "/thumbnails/{}.jpg?time=2.5&width=128",
        fixture.playback_id
    ));
    let held = http_request("GET", &url, &[&format!("If-None-Match: {etag}")], None);
    assert_eq!(held.status, 304);

    let refused = fixture.image("thumbnails", "jpg?width=5000");
    assert_eq!(refused.status, 400, "{}", refused.text());
    assert!(
        refused.text().contains("width must be"),
        "{}",
        refused.text()
    );
}

/// `hh:mm:ss.mmm` in seconds.
fn vtt_seconds(text: &str) -> f64 {
    let parts: Vec<f64> = text.split(':').map(|p| p.parse().unwrap()).collect();
    parts[0] * 3600.0 + parts[1] * 60.0 + parts[2]
}

/// The cues of a WebVTT: start, end, sprite URL, tile rectangle.
fn cues(vtt: &str) -> Vec<(f64, f64, String, [u32; 4])> {
    let mut lines = vtt.lines();
    assert_eq!(lines.next(), Some("WEBVTT"));
    let mut cues = Vec::new();
    while let Some(line) = lines.next() {
        let Some((start, end)) = line.split_once(" --> ") else {
            continue;
        };
        let payload = lines.next().expect("a cue payload");
        let (url, rect) = payload.split_once("#xywh=").expect("a media fragment");
        let rect: Vec<u32> = rect.split(',').map(|n| n.parse().unwrap()).collect();
        cues.push((
            vtt_seconds(start),
            vtt_seconds(end),
            url.to_owned(),
            rect.try_into().unwrap(),
        ));
    }
    cues
}

#[test]
fn storyboard_cues_cover_the_asset_with_tiles_inside_the_sprite() {
    let fixture = Fixture::start(PlaybackPolicy::Public);
    let dir = tempfile::tempdir().unwrap();
    let response = fixture.image("storyboards", "vtt");
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(
        response.header("content-type"),
        Some("text/vtt; charset=utf-8")
    );
    let cues = cues(&response.text());
    assert_eq!(cues.len(), CLIP_SECONDS, "a tile a second");
    let sprite_url = fixture
        .server
        .url(&format!("/storyboards/{}.jpg", fixture.playback_id));

    let sprite = http_request("GET", &cues[0].2, &[], None);
    let path = saved(&sprite, "image/jpeg", dir.path(), "sprite.jpg");
    let sprite = pixels(&path);
    let mut covered = 0.0;
    for (index, (start, end, url, [x, y, w, h])) in cues.iter().enumerate() {
        assert_eq!(*url, sprite_url, "cues point at the sprite by absolute URL");
        assert!((start - covered).abs() < 1e-6, "cues are contiguous");
        assert!(end > start);
        covered = *end;
        assert!(
            x + w <= sprite.0 && y + h <= sprite.1,
            "tile {index} lies inside the {}x{} sprite",
            sprite.0,
            sprite.1
        );
        assert_colour(
            pixel_at(&sprite, x + w / 2, y + h / 2),
            COLOURS[index].1,
            &format!("tile {index}"),
        );
    }
    assert!(
        (covered - CLIP_SECONDS as f64).abs() < 0.05,
        "cues end at {covered}"
    );

    // Other sprite formats have the same layout.
    let png = saved(
        &fixture.image("storyboards", "png"),
        "image/png",
        dir.path(),
        "sprite.png",
    );
    let (codec, width, height, _) = probe(&png);
    assert_eq!((codec.as_str(), width, height), ("png", sprite.0, sprite.1));
}

#[test]
fn animated_previews_have_a_frame_per_step_and_are_cached() {
    let fixture = Fixture::start(PlaybackPolicy::Public);
    let dir = tempfile::tempdir().unwrap();

    // Default: 0–5 s, 15 fps, 320 wide.
    let gif = fixture.image("animated", "gif");
    let path = saved(&gif, "image/gif", dir.path(), "default.gif");
    assert_eq!(probe(&path), ("gif".to_owned(), 320, 180, 75));

    let asked = fixture.image("animated", "gif?start=1&end=3&fps=10&width=160");
    let path = saved(&asked, "image/gif", dir.path(), "asked.gif");
    assert_eq!(probe(&path), ("gif".to_owned(), 160, 90, 20));
    // Its first frame is second 1 (lime).
    assert_colour(
        pixel_at(&pixels(&path), 80, 45),
        COLOURS[1].1,
        "first frame",
    );

    // A span past the end stops at the end: 4.5–6 s at 10 fps.
    let tail = fixture.image("animated", "gif?start=4.5&end=9&fps=10&width=64");
    let path = saved(&tail, "image/gif", dir.path(), "tail.gif");
    assert_eq!(probe(&path).3, 15);

    let webp = fixture.image("animated", "webp?start=2&end=4&fps=5&height=90");
    assert_eq!(webp.status, 200, "{}", webp.text());
    assert_eq!(webp.header("content-type"), Some("image/webp"));
    let animation = read_webp_animation(&webp.body);
    assert_eq!(animation.canvas, (160, 90));
    let total: u32 = animation.durations.iter().sum();
    assert!((1900..=2100).contains(&total), "lasts {total} ms");
    // libwebp folds identical frames into one: the clip has two colours in this span.
    assert!(!animation.durations.is_empty() && animation.durations.len() <= 10);

    let again = fixture.image("animated", "gif?start=1&end=3&fps=10&width=160");
    assert_eq!(again.header("etag"), asked.header("etag"));
    assert_eq!(again.body, asked.body);
    assert!(fixture
        .cached()
        .iter()
        .any(|(name, body)| name.ends_with(".gif") && *body == asked.body));

    let refused = fixture.image("animated", "gif?fps=60");
    assert_eq!(refused.status, 400);
    assert!(refused.text().contains("fps must be"), "{}", refused.text());
}

#[test]
fn signed_images_need_a_token_for_their_audience() {
    let fixture = Fixture::start(PlaybackPolicy::Signed);
    let key = create_signing_key(&fixture.server, "ES256");
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    let token = |aud: &str| {
        playback_token(
            &key,
            json!({"sub": fixture.playback_id, "aud": aud, "exp": exp}),
        )
    };

    let missing = fixture.image("thumbnails", "jpg?time=1");
    assert_eq!(missing.status, 401, "{}", missing.text());
    assert!(missing.text().contains("signed"));
    let wrong = fixture.image(
        "thumbnails",
        &format!("jpg?time=1&token={}", token("video")),
    );
    assert_eq!(wrong.status, 403, "{}", wrong.text());
    assert!(wrong.text().contains("not thumbnail"), "{}", wrong.text());

    for aud in ["thumbnail", "t"] {
        let allowed = fixture.image("thumbnails", &format!("jpg?time=1&token={}", token(aud)));
        assert_eq!(allowed.status, 200, "{aud}: {}", allowed.text());
        assert_eq!(
            allowed.header("cache-control"),
            Some("private, max-age=86400")
        );
    }
    let gif = fixture.image("animated", &format!("gif?end=1&fps=5&token={}", token("g")));
    assert_eq!(gif.status, 200, "{}", gif.text());
    assert_eq!(fixture.image("animated", "gif?end=1").status, 401);

    // The storyboard's sprite URLs carry its token, which fetches the sprite.
    let storyboard_token = token("s");
    let vtt = fixture.image("storyboards", &format!("vtt?token={storyboard_token}"));
    assert_eq!(vtt.status, 200, "{}", vtt.text());
    let cues = cues(&vtt.text());
    assert!(cues
        .iter()
        .all(|cue| cue.2.ends_with(&format!(".jpg?token={storyboard_token}"))));
    let sprite = http_request("GET", &cues[0].2, &[], None);
    assert_eq!(sprite.status, 200, "{}", sprite.text());
    assert_eq!(sprite.header("content-type"), Some("image/jpeg"));
}

#[test]
fn an_animated_start_past_the_end_is_clamped_to_the_last_picture() {
    let fixture = Fixture::start(PlaybackPolicy::Public);
    let far = fixture.image("animated", "gif?start=1000000&fps=5&width=64");
    assert_eq!(far.status, 200, "{}", far.text());
    let names: Vec<String> = fixture.cached().into_iter().map(|(name, _)| name).collect();
    assert!(
        names.iter().all(|name| !name.contains("s1000000")),
        "one cache entry for every start past the end: {names:?}"
    );
    let again = fixture.image("animated", "gif?start=999999&fps=5&width=64");
    assert_eq!(again.status, 200);
    assert_eq!(fixture.cached().len(), names.len(), "no second render");
}

#[test]
fn a_client_rendering_without_end_is_told_to_wait_while_cached_images_still_flow() {
    let fixture = Fixture::start(PlaybackPolicy::Public);
    let first = fixture.image("thumbnails", "jpg?width=16");
    assert_eq!(first.status, 200);
    let limited = (17..400)
        .map(|width| fixture.image("thumbnails", &format!("jpg?width={width}")))
        .find(|response| response.status != 200)
        .expect("a client's renders are limited");
    assert_eq!(limited.status, 429, "{}", limited.text());
    assert!(limited.text().contains("rate_limited"));
    let retry: u64 = limited.header("Retry-After").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(
        fixture.image("thumbnails", "jpg?width=16").status,
        200,
        "a cached image costs no render"
    );
}
