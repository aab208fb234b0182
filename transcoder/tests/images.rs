//! Thumbnails and storyboards of real clips made by the ffmpeg CLI, read back with ffmpeg and
//! ffprobe: the right picture for the time, the right size for each fit mode, and clear
//! refusals.

use sluice_media::fixtures::ffmpeg_clip;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use sluice_transcoder::{
    storyboard, thumbnail, FitMode, ImageError, ImageFormat, ProbeLimits, StoryboardLayout,
    ThumbnailRequest,
};

/// The colours of [`colour_clip`], one per second.
const COLOURS: [(&str, [u8; 3]); 4] = [
    ("red", [255, 0, 0]),
    ("lime", [0, 255, 0]),
    ("blue", [0, 0, 255]),
    ("white", [255, 255, 255]),
];

/// 4 s of 640×360 25 fps H.264 in MP4, one plain colour per second (red, green, blue,
/// white), with a keyframe every 48 pictures so a seek lands before the asked time.
fn colour_clip(dir: &Path) -> PathBuf {
    let inputs: Vec<String> = COLOURS
        .iter()
        .enumerate()
        .map(|(i, (name, _))| format!("color=c={name}:s=640x360:r=25:d=1[c{i}]"))
        .collect();
    let graph = format!("{};[c0][c1][c2][c3]concat=n=4:v=1:a=0", inputs.join(";"));
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
            "48",
            "-bf",
            "2",
            "-pix_fmt",
            "yuv420p",
        ],
    )
}

/// An image's size and codec, by ffprobe.
fn probe_image(path: &Path) -> (u32, u32, String) {
    let output = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries"])
        .args(["stream=width,height,codec_name", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    assert!(output.status.success(), "ffprobe reads {}", path.display());
    let text = String::from_utf8(output.stdout).unwrap();
    let fields: Vec<&str> = text.trim().split(',').collect();
    (
        fields[1].parse().unwrap(),
        fields[2].parse().unwrap(),
        fields[0].to_owned(),
    )
}

/// An image decoded by the ffmpeg CLI to RGB24: width, height, pixels.
fn pixels(path: &Path) -> (u32, u32, Vec<u8>) {
    let (width, height, _) = probe_image(path);
    let output = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        .output()
        .expect("ffmpeg runs");
    assert!(output.status.success());
    assert_eq!(output.stdout.len(), (width * height * 3) as usize);
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
        .all(|(&a, e)| (i32::from(a) - i32::from(e)).abs() <= 24);
    assert!(close, "{what}: {actual:?}, expected about {expected:?}");
}

fn save(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, data).unwrap();
    path
}

fn at(seconds: f64, format: ImageFormat) -> ThumbnailRequest {
    ThumbnailRequest {
        time: Some(Duration::from_secs_f64(seconds)),
        format,
        ..ThumbnailRequest::default()
    }
}

#[test]
fn the_picture_at_a_time_shows_that_second() {
    let dir = tempfile::tempdir().unwrap();
    let clip = colour_clip(dir.path());
    let limits = ProbeLimits::default();
    for (seconds, expected) in [
        (0.0, COLOURS[0].1),
        (0.5, COLOURS[0].1),
        (1.5, COLOURS[1].1),
        (2.5, COLOURS[2].1),
        (3.5, COLOURS[3].1),
        // Past the end: clamped to the last picture.
        (60.0, COLOURS[3].1),
    ] {
        for format in [ImageFormat::Jpeg, ImageFormat::Png] {
            let image = thumbnail(&clip, &limits, &at(seconds, format)).unwrap();
            assert_eq!((image.width, image.height), (640, 360));
            let path = save(
                dir.path(),
                &format!("t.{}", format.extension()),
                &image.data,
            );
            let decoded = pixels(&path);
            let codec = probe_image(&path).2;
            assert_eq!(
                codec,
                if format == ImageFormat::Jpeg {
                    "mjpeg"
                } else {
                    "png"
                }
            );
            for (x, y) in [(320, 180), (5, 5), (634, 354)] {
                assert_colour(
                    pixel_at(&decoded, x, y),
                    expected,
                    &format!("{format:?} at {seconds} s, pixel {x},{y}"),
                );
            }
        }
    }
    // The poster frame of a 4 s clip is at 0.4 s.
    let poster = thumbnail(&clip, &limits, &ThumbnailRequest::default()).unwrap();
    let path = save(dir.path(), "poster.jpg", &poster.data);
    assert_colour(pixel_at(&pixels(&path), 320, 180), COLOURS[0].1, "poster");
}

#[test]
fn each_fit_mode_gives_its_size() {
    let dir = tempfile::tempdir().unwrap();
    let clip = colour_clip(dir.path());
    let limits = ProbeLimits::default();
    let square = |fit| ThumbnailRequest {
        time: Some(Duration::from_millis(2500)),
        width: Some(200),
        height: Some(200),
        fit,
        format: ImageFormat::Png,
    };
    let blue = COLOURS[2].1;
    for (fit, size) in [
        (FitMode::Preserve, (200, 112)),
        (FitMode::Crop, (200, 200)),
        (FitMode::Pad, (200, 200)),
        (FitMode::Stretch, (200, 200)),
    ] {
        let image = thumbnail(&clip, &limits, &square(fit)).unwrap();
        assert_eq!((image.width, image.height), size, "{fit:?}");
        let path = save(dir.path(), "fit.png", &image.data);
        let decoded = pixels(&path);
        assert_eq!((decoded.0, decoded.1), size, "{fit:?} as decoded");
        assert_colour(
            pixel_at(&decoded, 100, 100),
            blue,
            &format!("{fit:?} centre"),
        );
        let corner = pixel_at(&decoded, 100, 2);
        if fit == FitMode::Pad {
            assert_eq!(corner, [0, 0, 0], "pad bars are black");
        } else {
            assert_colour(corner, blue, &format!("{fit:?} top edge"));
        }
    }
    // One side given: the other follows the aspect ratio.
    let wide = ThumbnailRequest {
        width: Some(320),
        ..at(1.0, ImageFormat::Jpeg)
    };
    let image = thumbnail(&clip, &limits, &wide).unwrap();
    let path = save(dir.path(), "wide.jpg", &image.data);
    assert_eq!(probe_image(&path), (320, 180, "mjpeg".to_owned()));
}

#[test]
fn crop_keeps_the_centre_and_the_sample_aspect_ratio_is_honoured() {
    let dir = tempfile::tempdir().unwrap();
    // Red, with a blue band over the left 136 columns: cropping 640×360 to a square keeps
    // columns 140..500, so the band is cut off (a crop whose left edge were rounded down to a
    // pointer alignment, 128, would keep part of it); the other modes keep it at the left edge.
    let banded = ffmpeg_clip(
        dir.path(),
        "banded.mp4",
        &[
            "-f",
            "lavfi",
            "-i",
            "color=c=red:s=640x360:r=25:d=1,drawbox=x=0:y=0:w=136:h=360:c=blue:t=fill",
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
        ],
    );
    let limits = ProbeLimits::default();
    for (fit, left_edge) in [
        (FitMode::Crop, COLOURS[0].1),
        (FitMode::Stretch, COLOURS[2].1),
        (FitMode::Preserve, COLOURS[2].1),
    ] {
        let request = ThumbnailRequest {
            width: Some(200),
            height: Some(200),
            fit,
            format: ImageFormat::Png,
            ..ThumbnailRequest::default()
        };
        let image = thumbnail(&banded, &limits, &request).unwrap();
        let path = save(dir.path(), "band.png", &image.data);
        let decoded = pixels(&path);
        assert_colour(
            pixel_at(&decoded, 3, 50),
            left_edge,
            &format!("{fit:?} left edge"),
        );
        assert_colour(
            pixel_at(&decoded, 196, 50),
            COLOURS[0].1,
            &format!("{fit:?} right"),
        );
    }

    // Pixels twice as wide as tall: shown at 1280×360.
    let anamorphic = ffmpeg_clip(
        dir.path(),
        "anamorphic.mp4",
        &[
            "-f",
            "lavfi",
            "-i",
            "color=c=blue:s=640x360:r=25:d=1,setsar=2",
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
        ],
    );
    let image = thumbnail(&anamorphic, &limits, &ThumbnailRequest::default()).unwrap();
    assert_eq!((image.width, image.height), (1280, 360));
    let request = ThumbnailRequest {
        height: Some(90),
        ..ThumbnailRequest::default()
    };
    let image = thumbnail(&anamorphic, &limits, &request).unwrap();
    assert_eq!((image.width, image.height), (320, 90));
}

#[test]
fn full_range_bt709_video_keeps_its_colours() {
    let dir = tempfile::tempdir().unwrap();
    let tagged = ffmpeg_clip(
        dir.path(),
        "full709.mp4",
        &[
            "-f",
            "lavfi",
            "-i",
            "color=c=0x20C040:s=320x180:r=25:d=1,\
             scale=out_color_matrix=bt709:out_range=full,format=yuv420p",
            "-c:v",
            "libx264",
            "-color_range",
            "pc",
            "-colorspace",
            "bt709",
        ],
    );
    let image = thumbnail(&tagged, &ProbeLimits::default(), &at(0.5, ImageFormat::Png)).unwrap();
    let path = save(dir.path(), "tagged.png", &image.data);
    let centre = pixel_at(&pixels(&path), 160, 90);
    let close = centre
        .iter()
        .zip([0x20, 0xC0, 0x40])
        .all(|(&a, e): (&u8, i32)| (i32::from(a) - e).abs() <= 6);
    assert!(close, "{centre:?}, expected about [32, 192, 64]");
}

#[test]
fn webp_is_made_when_libavcodec_has_an_encoder() {
    let dir = tempfile::tempdir().unwrap();
    let clip = colour_clip(dir.path());
    let request = at(1.5, ImageFormat::Webp);
    let result = thumbnail(&clip, &ProbeLimits::default(), &request);
    if ImageFormat::Webp.is_available() {
        let image = result.unwrap();
        let path = save(dir.path(), "t.webp", &image.data);
        assert_eq!(probe_image(&path), (640, 360, "webp".to_owned()));
        assert_colour(pixel_at(&pixels(&path), 320, 180), COLOURS[1].1, "webp");
    } else {
        let message = result.unwrap_err().to_string();
        assert!(message.contains("no libwebp encoder"), "{message}");
    }
}

#[test]
fn bad_requests_and_inputs_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let clip = colour_clip(dir.path());
    let limits = ProbeLimits::default();
    for (width, height) in [(Some(8), None), (None, Some(5000)), (Some(0), Some(100))] {
        let request = ThumbnailRequest {
            width,
            height,
            ..ThumbnailRequest::default()
        };
        let error = thumbnail(&clip, &limits, &request).unwrap_err();
        assert!(matches!(error, ImageError::BadDimension { .. }), "{error}");
        assert!(
            error
                .to_string()
                .contains("must be between 16 and 4096 pixels"),
            "{error}"
        );
    }

    let audio = ffmpeg_clip(
        dir.path(),
        "tone.m4a",
        &["-f", "lavfi", "-i", "sine=d=2", "-c:a", "aac"],
    );
    let error = thumbnail(&audio, &limits, &ThumbnailRequest::default()).unwrap_err();
    assert_eq!(error.to_string(), "no video to take a picture of");
    let error = storyboard(&audio, &limits, &StoryboardLayout::default(), "s.jpg").unwrap_err();
    assert_eq!(error.to_string(), "no video to take a picture of");

    let text = save(dir.path(), "notes.mp4", b"not a video at all");
    let error = thumbnail(&text, &limits, &ThumbnailRequest::default()).unwrap_err();
    assert!(matches!(error, ImageError::Probe(_)), "{error}");
    let missing = dir.path().join("missing.mp4");
    let error = thumbnail(&missing, &limits, &ThumbnailRequest::default()).unwrap_err();
    assert!(error.to_string().starts_with("cannot read"), "{error}");
}

/// `hh:mm:ss.mmm` in seconds.
fn vtt_seconds(text: &str) -> f64 {
    let parts: Vec<f64> = text.split(':').map(|p| p.parse().unwrap()).collect();
    parts[0] * 3600.0 + parts[1] * 60.0 + parts[2]
}

#[test]
fn a_storyboard_has_a_tile_per_second_and_cues_covering_the_clip() {
    let dir = tempfile::tempdir().unwrap();
    let clip = colour_clip(dir.path());
    let board = storyboard(
        &clip,
        &ProbeLimits::default(),
        &StoryboardLayout {
            tile_width: 160,
            columns: 3,
            ..StoryboardLayout::default()
        },
        "storyboard.jpg",
    )
    .unwrap();
    // 4 s at one tile a second (the interval never goes under 1 s).
    assert_eq!(board.interval, Duration::from_secs(1));
    assert_eq!(board.tiles, 4);
    assert_eq!(
        (board.tile_width, board.tile_height, board.columns),
        (160, 90, 3)
    );
    let sprite_path = save(dir.path(), "storyboard.jpg", &board.sprite.data);
    let sprite = pixels(&sprite_path);
    assert_eq!((sprite.0, sprite.1), (480, 180));

    let mut lines = board.vtt.lines();
    assert_eq!(lines.next(), Some("WEBVTT"));
    let mut expected_start = 0.0;
    let mut cues = 0;
    while let Some(line) = lines.next() {
        if line.is_empty() {
            continue;
        }
        let (start, end) = line.split_once(" --> ").expect("a cue timing line");
        let (start, end) = (vtt_seconds(start), vtt_seconds(end));
        assert!((start - expected_start).abs() < 1e-6, "cues are contiguous");
        assert!(end > start);
        expected_start = end;
        let target = lines.next().expect("a cue payload");
        let (uri, rect) = target.split_once("#xywh=").expect("a media fragment");
        assert_eq!(uri, "storyboard.jpg");
        let rect: Vec<u32> = rect.split(',').map(|n| n.parse().unwrap()).collect();
        let [x, y, w, h] = rect[..] else {
            panic!("four numbers in {target}")
        };
        assert!(
            x + w <= sprite.0 && y + h <= sprite.1,
            "{target} inside the sprite"
        );
        assert_eq!((w, h), (160, 90));
        // Each tile shows its second's colour.
        assert_colour(
            pixel_at(&sprite, x + w / 2, y + h / 2),
            COLOURS[cues].1,
            &format!("tile {cues}"),
        );
        cues += 1;
    }
    assert_eq!(cues, 4);
    assert!(
        (expected_start - 4.0).abs() < 0.05,
        "cues end at the duration"
    );
    // The unused slot of the last row stays black.
    assert_eq!(pixel_at(&sprite, 400, 135), [0, 0, 0]);

    // A portrait video's tiles are as tall as a landscape one's are wide; a sprite can be PNG.
    let portrait = ffmpeg_clip(
        dir.path(),
        "portrait.mp4",
        &["-f", "lavfi", "-i", "color=c=blue:s=360x640:r=25:d=1.6"],
    );
    let board = storyboard(
        &portrait,
        &ProbeLimits::default(),
        &StoryboardLayout {
            format: ImageFormat::Png,
            ..StoryboardLayout::default()
        },
        "s.jpg",
    )
    .unwrap();
    let png = save(dir.path(), "portrait.png", &board.sprite.data);
    assert_eq!(probe_image(&png), (180, 160, "png".to_owned()));
    assert_eq!(
        (board.tiles, board.tile_width, board.tile_height),
        (2, 90, 160)
    );
    assert_eq!((board.sprite.width, board.sprite.height), (180, 160));
    assert!(board
        .vtt
        .ends_with("00:00:01.000 --> 00:00:01.600\ns.jpg#xywh=90,0,90,160\n"));
}
