//! Animated previews of real clips made by the ffmpeg CLI: GIFs read back with ffprobe and
//! ffmpeg (frame count, size, which picture each frame shows), animated WebPs read chunk by
//! chunk (ffmpeg's WebP decoder does not read animations), and clear refusals.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use sluice_media::fixtures::{ffmpeg_clip, read_webp_animation};
use sluice_transcoder::{
    animated, AnimationFormat, AnimationRequest, ImageError, ProbeLimits, MAX_ANIMATION_SPAN,
};

/// `seconds` of 640×360 25 fps H.264 where every picture differs (a moving test pattern).
fn moving_clip(dir: &Path, seconds: u32) -> PathBuf {
    ffmpeg_clip(
        dir,
        &format!("moving-{seconds}.mp4"),
        &[
            "-f",
            "lavfi",
            "-i",
            &format!("testsrc2=s=640x360:r=25:d={seconds}"),
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

/// 4 s of 320×180 25 fps H.264, one plain colour per second: red, lime, blue, white.
fn colour_clip(dir: &Path) -> PathBuf {
    let inputs: Vec<String> = ["red", "lime", "blue", "white"]
        .iter()
        .enumerate()
        .map(|(i, name)| format!("color=c={name}:s=320x180:r=25:d=1[c{i}]"))
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
            "-pix_fmt",
            "yuv420p",
        ],
    )
}

fn save(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, data).unwrap();
    path
}

/// A GIF's codec, size and decoded frame count, by ffprobe.
fn probe_gif(path: &Path) -> (String, u32, u32, u32) {
    let output = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args([
            "-show_entries",
            "stream=codec_name,width,height,nb_read_frames",
        ])
        .args(["-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    assert!(output.status.success(), "ffprobe reads {}", path.display());
    let text = String::from_utf8(output.stdout).unwrap();
    let fields: Vec<&str> = text.trim().split(',').collect();
    (
        fields[0].to_owned(),
        fields[1].parse().unwrap(),
        fields[2].parse().unwrap(),
        fields[3].parse().unwrap(),
    )
}

/// The colour at the centre of each frame of a GIF, decoded by the ffmpeg CLI.
fn gif_centre_colours(path: &Path) -> Vec<[u8; 3]> {
    let (_, width, height, _) = probe_gif(path);
    let output = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args([
            "-vsync",
            "passthrough",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-",
        ])
        .output()
        .expect("ffmpeg runs");
    assert!(output.status.success());
    let frame_bytes = (width * height * 3) as usize;
    let centre = ((height / 2 * width + width / 2) * 3) as usize;
    output
        .stdout
        .chunks_exact(frame_bytes)
        .map(|frame| [frame[centre], frame[centre + 1], frame[centre + 2]])
        .collect()
}

fn close_to(actual: [u8; 3], expected: [u8; 3]) -> bool {
    actual
        .iter()
        .zip(expected)
        .all(|(&a, e)| (i32::from(a) - i32::from(e)).abs() <= 40)
}

fn request(start: f64, end: f64, fps: u32, format: AnimationFormat) -> AnimationRequest {
    AnimationRequest {
        start: Duration::from_secs_f64(start),
        end: Duration::from_secs_f64(end),
        fps,
        format,
        ..AnimationRequest::default()
    }
}

#[test]
fn a_default_gif_is_five_seconds_at_15_fps_320_wide() {
    let dir = tempfile::tempdir().unwrap();
    let clip = moving_clip(dir.path(), 8);
    let gif = animated(&clip, &ProbeLimits::default(), &AnimationRequest::default()).unwrap();
    assert_eq!(
        (gif.format, gif.width, gif.height, gif.frames),
        (AnimationFormat::Gif, 320, 180, 75)
    );
    assert!(gif.data.starts_with(b"GIF89a"));
    let loops_forever = b"NETSCAPE2.0\x03\x01\x00\x00";
    assert!(gif
        .data
        .windows(loops_forever.len())
        .any(|w| w == loops_forever));
    let path = save(dir.path(), "default.gif", &gif.data);
    assert_eq!(probe_gif(&path), ("gif".to_owned(), 320, 180, 75));
}

#[test]
fn a_gif_covers_the_asked_span_at_the_asked_size_and_rate() {
    let dir = tempfile::tempdir().unwrap();
    let clip = moving_clip(dir.path(), 8);
    let limits = ProbeLimits::default();
    let asked = AnimationRequest {
        width: Some(200),
        height: Some(200),
        ..request(2.0, 4.0, 10, AnimationFormat::Gif)
    };
    let gif = animated(&clip, &limits, &asked).unwrap();
    assert_eq!((gif.width, gif.height, gif.frames), (200, 112, 20));
    let path = save(dir.path(), "span.gif", &gif.data);
    assert_eq!(probe_gif(&path), ("gif".to_owned(), 200, 112, 20));

    // Only a height: the width follows the aspect ratio.
    let tall = AnimationRequest {
        height: Some(90),
        ..request(0.0, 1.0, 5, AnimationFormat::Gif)
    };
    let gif = animated(&clip, &limits, &tall).unwrap();
    assert_eq!((gif.width, gif.height, gif.frames), (160, 90, 5));
}

#[test]
fn each_gif_frame_shows_the_picture_of_its_time() {
    let dir = tempfile::tempdir().unwrap();
    let clip = colour_clip(dir.path());
    let (red, lime, blue) = ([255, 0, 0], [0, 255, 0], [0, 0, 255]);
    // Frames at 0.5, 1.0, 1.5, 2.0 and 2.5 s.
    let gif = animated(
        &clip,
        &ProbeLimits::default(),
        &request(0.5, 3.0, 2, AnimationFormat::Gif),
    )
    .unwrap();
    assert_eq!(gif.frames, 5);
    let path = save(dir.path(), "colours.gif", &gif.data);
    let colours = gif_centre_colours(&path);
    let expected = [red, lime, lime, blue, blue];
    assert_eq!(colours.len(), expected.len(), "{colours:?}");
    for (index, (actual, expected)) in colours.iter().zip(expected).enumerate() {
        assert!(
            close_to(*actual, expected),
            "frame {index}: {actual:?}, expected about {expected:?}"
        );
    }
}

#[test]
fn a_span_past_the_end_is_clamped_to_the_video() {
    let dir = tempfile::tempdir().unwrap();
    let clip = colour_clip(dir.path());
    let limits = ProbeLimits::default();
    // The clip lasts 4 s: 3..8 s is 3..4 s.
    let gif = animated(&clip, &limits, &request(3.0, 8.0, 10, AnimationFormat::Gif)).unwrap();
    assert_eq!(gif.frames, 10);
    // Starting past the end: the last picture alone.
    let gif = animated(&clip, &limits, &request(6.0, 9.0, 10, AnimationFormat::Gif)).unwrap();
    assert_eq!(gif.frames, 1);
    let path = save(dir.path(), "last.gif", &gif.data);
    let colours = gif_centre_colours(&path);
    assert_eq!(colours.len(), 1);
    assert!(close_to(colours[0], [255, 255, 255]), "{colours:?}");
}

#[test]
fn an_animated_webp_has_a_frame_per_step_and_lasts_the_span() {
    if !AnimationFormat::Webp.is_available() {
        eprintln!("libavcodec has no libwebp_anim encoder: animated WebP is not tested");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let clip = moving_clip(dir.path(), 6);
    let asked = AnimationRequest {
        width: Some(240),
        ..request(1.0, 4.0, 12, AnimationFormat::Webp)
    };
    let webp = animated(&clip, &ProbeLimits::default(), &asked).unwrap();
    assert_eq!(
        (webp.format, webp.width, webp.height, webp.frames),
        (AnimationFormat::Webp, 240, 136, 36)
    );
    let read = read_webp_animation(&webp.data);
    assert_eq!(read.canvas, (240, 136));
    assert_eq!(read.loop_count, Some(0), "loops forever");
    // Every picture of the moving pattern differs, so no frame is folded into another.
    assert_eq!(read.durations.len(), 36, "{read:?}");
    let total: u32 = read.durations.iter().sum();
    assert!((2900..=3100).contains(&total), "lasts {total} ms");
}

#[test]
fn bad_requests_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let clip = moving_clip(dir.path(), 1);
    let limits = ProbeLimits::default();
    let gif = AnimationFormat::Gif;
    let too_long = MAX_ANIMATION_SPAN.as_secs_f64() + 1.0;
    for (asked, words) in [
        (
            request(0.0, 1.0, 0, gif),
            "fps must be between 1 and 30, not 0",
        ),
        (
            request(0.0, 1.0, 31, gif),
            "fps must be between 1 and 30, not 31",
        ),
        (
            request(2.0, 2.0, 10, gif),
            "end of an animation must come after",
        ),
        (request(0.0, too_long, 10, gif), "spans at most 10 s"),
        (
            AnimationRequest {
                width: Some(641),
                ..request(0.0, 1.0, 10, gif)
            },
            "width must be between 16 and 640 pixels, not 641",
        ),
        (
            AnimationRequest {
                height: Some(8),
                ..request(0.0, 1.0, 10, gif)
            },
            "height must be between 16 and 640 pixels, not 8",
        ),
    ] {
        match animated(&clip, &limits, &asked) {
            Err(error @ ImageError::BadAnimation(_)) => {
                assert!(error.to_string().contains(words), "{error}")
            }
            other => panic!("{asked:?} gave {other:?}"),
        }
    }
    let audio = ffmpeg_clip(
        dir.path(),
        "audio.m4a",
        &["-f", "lavfi", "-i", "sine=d=1", "-c:a", "aac"],
    );
    assert!(matches!(
        animated(&audio, &limits, &AnimationRequest::default()),
        Err(ImageError::NoVideo)
    ));
}
