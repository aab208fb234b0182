//! Local media files as input: the probe on real clips made by the ffmpeg CLI and on files that
//! must be refused, and `FileTranscode` running a clip through the ladder.

use sluice_media::fixtures::ffmpeg_clip;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use sluice_transcoder::{
    probe, EncoderSettings, FileTranscode, Ladder, PlannedRung, ProbeError, ProbeLimits, Rung,
    RungSpec, TranscoderOutput, VodEvent,
};

/// 4 s of 640×360 30 fps H.264 with 48 kHz mono AAC, in MP4.
fn clip_with_audio(dir: &Path) -> PathBuf {
    ffmpeg_clip(
        dir,
        "clip.mp4",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=640x360:rate=30",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000",
            "-t",
            "4",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-g",
            "60",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
        ],
    )
}

fn refusal(path: &Path, limits: &ProbeLimits) -> ProbeError {
    match probe(path, limits) {
        Ok(report) => panic!("{} was accepted: {report:?}", path.display()),
        Err(e) => e,
    }
}

#[test]
fn a_real_clip_probes_right() {
    let dir = tempfile::tempdir().unwrap();
    let report = probe(&clip_with_audio(dir.path()), &ProbeLimits::default()).unwrap();
    assert!(
        report.container.split(',').any(|name| name == "mp4"),
        "{report:?}"
    );
    assert_eq!(report.stream_count, 2);
    let duration = report.duration.expect("an MP4 knows its duration");
    assert!(
        duration >= Duration::from_millis(3_900) && duration <= Duration::from_millis(4_100),
        "{duration:?}"
    );
    let video = report.video.expect("a video stream");
    assert_eq!(
        (
            video.codec.as_str(),
            video.width,
            video.height,
            video.rotation
        ),
        ("h264", 640, 360, 0)
    );
    assert_eq!(video.frame_rate, Some(30.0));
    assert_eq!(video.pixel_format.as_deref(), Some("yuv420p"));
    let audio = report.audio.expect("an audio stream");
    assert_eq!(
        (audio.codec.as_str(), audio.sample_rate, audio.channels),
        ("aac", 48_000, 1)
    );
}

#[test]
fn rotation_metadata_is_reported_clockwise() {
    let dir = tempfile::tempdir().unwrap();
    let clip = clip_with_audio(dir.path());
    let rotated = ffmpeg_clip(
        dir.path(),
        "rotated.mp4",
        &[
            "-i",
            clip.to_str().unwrap(),
            "-c",
            "copy",
            "-metadata:s:v:0",
            "rotate=90",
        ],
    );
    // ffprobe prints the display matrix's rotation counterclockwise (av_display_rotation_get);
    // players turn the picture the other way. (How a `rotate` tag maps onto the matrix has
    // changed between FFmpeg versions, so the expected value comes from ffprobe itself.)
    let output = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0"])
        .args([
            "-show_entries",
            "stream_side_data=rotation",
            "-of",
            "csv=p=0",
        ])
        .arg(&rotated)
        .output()
        .expect("ffprobe runs");
    let counterclockwise: i64 = String::from_utf8_lossy(&output.stdout)
        .trim()
        .trim_end_matches(',')
        .parse()
        .expect("ffprobe reports a rotation");
    let expected = (-counterclockwise).rem_euclid(360) as u32;
    assert!(expected == 90 || expected == 270, "{expected}");
    let report = probe(&rotated, &ProbeLimits::default()).unwrap();
    assert_eq!(report.video.unwrap().rotation, expected);
}

#[test]
fn files_that_are_not_media_are_refused_with_clear_messages() {
    let dir = tempfile::tempdir().unwrap();
    let limits = ProbeLimits::default();

    let empty = dir.path().join("empty.mp4");
    std::fs::write(&empty, b"").unwrap();
    let error = refusal(&empty, &limits);
    assert!(matches!(error, ProbeError::Empty), "{error}");
    assert_eq!(error.to_string(), "the file is empty");

    let text = dir.path().join("notes.mp4");
    std::fs::write(&text, "These are my holiday notes, not a video.\n").unwrap();
    let error = refusal(&text, &limits);
    assert!(matches!(error, ProbeError::NotMedia), "{error}");
    assert!(error.to_string().starts_with("not a media file"), "{error}");

    let missing = refusal(&dir.path().join("missing.mp4"), &limits);
    assert!(matches!(missing, ProbeError::Read { .. }), "{missing}");
    assert!(missing.to_string().contains("missing.mp4"), "{missing}");

    let error = refusal(dir.path(), &limits);
    assert!(matches!(error, ProbeError::NotAFile(_)), "{error}");
}

#[test]
fn a_truncated_mp4_is_refused_as_damaged() {
    let dir = tempfile::tempdir().unwrap();
    let clip = std::fs::read(clip_with_audio(dir.path())).unwrap();
    let truncated = dir.path().join("truncated.mp4");
    std::fs::write(&truncated, &clip[..clip.len() / 2]).unwrap();
    let error = refusal(&truncated, &ProbeLimits::default());
    assert!(matches!(error, ProbeError::Damaged { .. }), "{error}");
    assert!(
        error
            .to_string()
            .starts_with("the MP4/MOV file is damaged or truncated"),
        "{error}"
    );
}

#[test]
fn playlists_and_file_lists_are_refused_before_they_open_anything() {
    let dir = tempfile::tempdir().unwrap();
    clip_with_audio(dir.path());
    let limits = ProbeLimits::default();

    let hls = dir.path().join("list.m3u8");
    std::fs::write(
        &hls,
        "#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXTINF:4,\nclip.mp4\n#EXT-X-ENDLIST\n",
    )
    .unwrap();
    let error = refusal(&hls, &limits);
    assert!(
        matches!(error, ProbeError::Playlist { kind: "HLS" }),
        "{error}"
    );
    assert_eq!(
        error.to_string(),
        "HLS playlists are not accepted as input: give the media file itself"
    );

    // Named like a video, still recognised by its content.
    let concat = dir.path().join("list.mp4");
    std::fs::write(&concat, "ffconcat version 1.0\nfile 'clip.mp4'\n").unwrap();
    let error = refusal(&concat, &limits);
    assert!(
        matches!(error, ProbeError::Playlist { kind: "ffconcat" }),
        "{error}"
    );
}

#[test]
fn containers_off_the_list_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let image = ffmpeg_clip(
        dir.path(),
        "still.png",
        &["-f", "lavfi", "-i", "testsrc2=size=64x64", "-frames:v", "1"],
    );
    let error = refusal(&image, &ProbeLimits::default());
    assert!(
        matches!(error, ProbeError::UnsupportedContainer { .. }),
        "{error}"
    );
    assert!(
        error.to_string().contains("not accepted as input"),
        "{error}"
    );
}

#[test]
fn limits_are_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let clip = clip_with_audio(dir.path());
    let limits = ProbeLimits::default();

    let error = refusal(
        &clip,
        &ProbeLimits {
            max_pixels: 640 * 360 - 1,
            ..limits.clone()
        },
    );
    assert_eq!(
        error.to_string(),
        "picture 640×360 exceeds the 230399-pixel limit"
    );

    let error = refusal(
        &clip,
        &ProbeLimits {
            max_duration: Duration::from_secs(2),
            ..limits.clone()
        },
    );
    assert_eq!(
        error.to_string(),
        "duration 4.00 s exceeds the 2.00 s limit"
    );

    let error = refusal(
        &clip,
        &ProbeLimits {
            max_streams: 1,
            ..limits.clone()
        },
    );
    assert_eq!(
        error.to_string(),
        "the file has 2 streams, over the 1-stream limit"
    );

    let error = refusal(
        &clip,
        &ProbeLimits {
            max_file_size: 1_000,
            ..limits.clone()
        },
    );
    assert!(
        matches!(error, ProbeError::FileTooLarge { limit: 1_000, .. }),
        "{error}"
    );
}

#[test]
fn garbage_never_panics() {
    let dir = tempfile::tempdir().unwrap();
    let clip = std::fs::read(clip_with_audio(dir.path())).unwrap();
    let mut samples: Vec<Vec<u8>> = vec![
        vec![0; 4096],
        vec![0xff; 4096],
        (0..65_536u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect(),
    ];
    // The clip's first kilobytes with the rest scrambled, and cut at every power of two.
    let mut scrambled = clip.clone();
    for (i, byte) in scrambled.iter_mut().enumerate().skip(2_048) {
        *byte ^= (i as u8).wrapping_mul(31);
    }
    samples.push(scrambled);
    let mut cut = 8;
    while cut < clip.len() {
        samples.push(clip[..cut].to_vec());
        cut *= 2;
    }
    for (index, bytes) in samples.iter().enumerate() {
        let path = dir.path().join(format!("garbage-{index}.mp4"));
        std::fs::write(&path, bytes).unwrap();
        // Either outcome is fine; returning at all is the point.
        let _ = probe(&path, &ProbeLimits::default());
    }
}

fn rung(name: &'static str, height: u32, bitrate_kbps: u32) -> RungSpec {
    RungSpec::Encode(Rung {
        name: name.into(),
        height,
        bitrate_kbps,
        max_fps: 30,
    })
}

#[test]
fn a_clip_goes_through_the_ladder_with_its_audio() {
    let dir = tempfile::tempdir().unwrap();
    let clip = clip_with_audio(dir.path());
    let ladder = Ladder {
        rungs: vec![RungSpec::Source, rung("240p", 240, 400)].into(),
    };
    let (transcode, events) = FileTranscode::start(
        &clip,
        &ladder,
        EncoderSettings::default(),
        &ProbeLimits::default(),
    )
    .unwrap();
    assert_eq!(transcode.rungs().len(), 2);
    assert!(matches!(transcode.rungs()[0], PlannedRung::Source));
    let events: Vec<VodEvent> = events.into_iter().collect();
    let stats = transcode.wait().unwrap().expect("video stats");

    let packets = |wanted: usize| {
        events
            .iter()
            .filter(|event| {
                matches!(event, VodEvent::Video(TranscoderOutput::Packet { rung, .. }) if *rung == wanted)
            })
            .count()
    };
    // Nothing is dropped for a file: every one of the 120 frames reaches both rungs.
    assert_eq!((packets(0), packets(1)), (120, 120));
    assert_eq!(stats.packets_dropped, 0);
    assert!(
        stats.frames_dropped_per_rung.iter().all(|&n| n == 0),
        "{stats:?}"
    );

    let audio_config = events
        .iter()
        .position(|e| matches!(e, VodEvent::AudioConfig(_)));
    let first_audio = events.iter().position(|e| matches!(e, VodEvent::Audio(_)));
    assert!(audio_config.is_some() && audio_config < first_audio);
    let audio_frames = events
        .iter()
        .filter(|e| matches!(e, VodEvent::Audio(_)))
        .count();
    // 4 s at 48 kHz is 187.5 AAC frames of 1024 samples, passed through as they are.
    assert!(
        (187..=190).contains(&audio_frames),
        "{audio_frames} audio frames"
    );
}

#[test]
fn mp3_audio_with_cover_art_becomes_aac_alone() {
    let dir = tempfile::tempdir().unwrap();
    let mp3 = ffmpeg_clip(
        dir.path(),
        "tone.mp3",
        &[
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=44100",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=64x64",
            "-t",
            "3",
            "-map",
            "0:a",
            "-map",
            "1:v",
            "-frames:v",
            "1",
            "-c:a",
            "libmp3lame",
            "-c:v",
            "png",
            "-disposition:v",
            "attached_pic",
            "-id3v2_version",
            "3",
        ],
    );
    let report = probe(&mp3, &ProbeLimits::default()).unwrap();
    assert_eq!(report.stream_count, 2, "the cover art is a stream");
    assert!(report.video.is_none(), "but not a video: {report:?}");
    let (transcode, events) = FileTranscode::start(
        &mp3,
        &Ladder::DEFAULT,
        EncoderSettings::default(),
        &ProbeLimits::default(),
    )
    .unwrap();
    assert!(transcode.rungs().is_empty());
    let events: Vec<VodEvent> = events.into_iter().collect();
    assert!(transcode.wait().unwrap().is_none());
    let Some(VodEvent::AudioConfig(config)) = events.first() else {
        panic!("the audio configuration comes first");
    };
    assert_eq!((config.object_type, config.sample_rate), (2, 44_100));
    let frames = events
        .iter()
        .filter(|e| matches!(e, VodEvent::Audio(_)))
        .count();
    // 3 s at 44.1 kHz is about 129 AAC frames.
    assert!((129..=133).contains(&frames), "{frames} AAC frames");
}
