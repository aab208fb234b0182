//! Files of any codec, bit depth, orientation, pixel shape and frame timing through
//! `FileTranscode`: clips made by the ffmpeg CLI, every output rung decoded again and checked
//! to be 8-bit 4:2:0 H.264 of the expected size, upright, at a regular frame rate.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ffmpeg_next::format::Pixel;
use ffmpeg_next::frame;
use ffmpeg_next::software::scaling;
use sluice_media::fixtures::ffmpeg_clip;
use sluice_media::{AvcConfig, Packet, VideoCodec, VideoConfig};
use sluice_transcoder::{
    probe, EncoderSettings, FileDemuxer, FileTranscode, Ladder, PlannedRung, ProbeLimits,
    ProbeReport, Rung, RungSpec, TranscoderOutput, VideoDecoder, VideoSource, VodEvent,
};

/// 90 kHz ticks per second.
const TICKS: i64 = 90_000;

fn rung(name: &'static str, height: u32) -> RungSpec {
    RungSpec::Encode(Rung {
        name: name.into(),
        height,
        bitrate_kbps: 300,
        max_fps: 30,
    })
}

fn ladder(rungs: Vec<RungSpec>) -> Ladder {
    Ladder {
        rungs: rungs.into(),
    }
}

/// One video rung's output.
struct RungOutput {
    planned: PlannedRung,
    config: AvcConfig,
    packets: Vec<Packet>,
}

impl RungOutput {
    /// Presentation times in order.
    fn sorted_pts(&self) -> Vec<i64> {
        let mut pts: Vec<i64> = self.packets.iter().map(|p| p.pts).collect();
        pts.sort_unstable();
        pts
    }

    /// Every picture, decoded; each checked to be 8-bit 4:2:0.
    fn decode(&self) -> Vec<frame::Video> {
        assert!(
            [66, 77, 100].contains(&self.config.profile_idc),
            "an 8-bit 4:2:0 H.264 profile, not {}",
            self.config.profile_idc
        );
        let mut decoder = VideoDecoder::open_h264(&self.config).unwrap();
        let mut pictures = Vec::new();
        for packet in &self.packets {
            pictures.extend(decoder.decode(packet).expect("the rung's packets decode"));
        }
        pictures.extend(decoder.flush());
        assert_eq!(pictures.len(), self.packets.len(), "every packet decodes");
        pictures
            .into_iter()
            .map(|decoded| {
                assert_eq!(decoded.picture.format(), Pixel::YUV420P);
                decoded.picture
            })
            .collect()
    }

    /// Checks every picture decodes as 8-bit 4:2:0 at `width`×`height`; returns how many.
    fn assert_decodes_at(&self, width: u32, height: u32) -> usize {
        assert_eq!((self.config.width, self.config.height), (width, height));
        let pictures = self.decode();
        for picture in &pictures {
            assert_eq!((picture.width(), picture.height()), (width, height));
        }
        pictures.len()
    }
}

/// What a file transcode produced.
struct Transcoded {
    report: ProbeReport,
    rungs: Vec<RungOutput>,
    audio_frames: usize,
}

/// Transcodes `path` with `ladder`; returns the probe report and each rung's output.
fn transcode(path: &Path, ladder: &Ladder) -> Transcoded {
    let (transcode, events) = FileTranscode::start(
        path,
        ladder,
        EncoderSettings::default(),
        &ProbeLimits::default(),
    )
    .expect("the file is taken");
    let report = transcode.report().clone();
    let planned = transcode.rungs().to_vec();
    let events: Vec<VodEvent> = events.into_iter().collect();
    let stats = transcode.wait().expect("the transcode succeeds");
    let stats = stats.expect("video stats");
    assert_eq!(stats.packets_dropped, 0, "{stats:?}");
    let rungs = planned
        .into_iter()
        .enumerate()
        .map(|(index, planned)| {
            let config = events
                .iter()
                .find_map(|event| match event {
                    VodEvent::Video(TranscoderOutput::Config {
                        rung,
                        config: VideoConfig::Avc(config),
                    }) if *rung == index => Some(config.clone()),
                    _ => None,
                })
                .expect("each rung's configuration");
            let packets = events
                .iter()
                .filter_map(|event| match event {
                    VodEvent::Video(TranscoderOutput::Packet { rung, packet })
                        if *rung == index =>
                    {
                        Some(packet.clone())
                    }
                    _ => None,
                })
                .collect();
            RungOutput {
                planned,
                config,
                packets,
            }
        })
        .collect();
    let audio_frames = events
        .iter()
        .filter(|event| matches!(event, VodEvent::Audio(_)))
        .count();
    Transcoded {
        report,
        rungs,
        audio_frames,
    }
}

fn encoded_size(planned: &PlannedRung) -> (&str, u32, u32) {
    match planned {
        PlannedRung::Encode(target) => (target.name.as_str(), target.width, target.height),
        PlannedRung::Source => panic!("the source rung is not repackaged here"),
    }
}

#[test]
fn hevc_10_bit_comes_out_as_8_bit_h264_on_every_rung() {
    let dir = tempfile::tempdir().unwrap();
    let clip = ffmpeg_clip(
        dir.path(),
        "hevc10.mp4",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=25",
            "-t",
            "2",
            "-c:v",
            "libx265",
            "-preset",
            "ultrafast",
            "-x265-params",
            "log-level=error",
            "-pix_fmt",
            "yuv420p10le",
            "-tag:v",
            "hvc1",
        ],
    );
    let Transcoded {
        report,
        rungs: outputs,
        ..
    } = transcode(&clip, &ladder(vec![rung("240p", 240), rung("120p", 120)]));
    let video = report.video.expect("video");
    assert_eq!(video.codec, "hevc");
    assert_eq!(video.pixel_format.as_deref(), Some("yuv420p10le"));
    assert_eq!(video.bit_depth, Some(10));
    assert_eq!(video.chroma_subsampling.as_deref(), Some("4:2:0"));
    assert!(!video.interlaced);
    assert!(report.audio.is_none(), "a video-only file");

    assert_eq!(outputs.len(), 2);
    assert_eq!(outputs[0].assert_decodes_at(320, 240), 50);
    assert_eq!(outputs[1].assert_decodes_at(160, 120), 50);
}

#[test]
fn vp9_webm_with_opus_becomes_h264_and_its_source_rung_is_encoded() {
    let dir = tempfile::tempdir().unwrap();
    let clip = ffmpeg_clip(
        dir.path(),
        "clip.webm",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x180:rate=30",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000",
            "-t",
            "2",
            "-c:v",
            "libvpx-vp9",
            "-deadline",
            "realtime",
            "-cpu-used",
            "8",
            "-c:a",
            "libopus",
        ],
    );
    let Transcoded {
        report,
        rungs,
        audio_frames,
    } = transcode(&clip, &ladder(vec![RungSpec::Source, rung("90p", 90)]));
    assert_eq!(report.video.unwrap().codec, "vp9");
    assert_eq!(report.audio.unwrap().codec, "opus");
    let names: Vec<(&str, u32, u32)> = rungs.iter().map(|r| encoded_size(&r.planned)).collect();
    assert_eq!(names, [("source", 320, 180), ("90p", 160, 90)]);
    assert_eq!(rungs[0].assert_decodes_at(320, 180), 60);
    assert_eq!(rungs[1].assert_decodes_at(160, 90), 60);
    // 2 s at 48 kHz is about 94 AAC frames.
    assert!(
        (90..=96).contains(&audio_frames),
        "{audio_frames} AAC frames"
    );
}

/// A copy of the MP4 `clip` whose video carries a `rotate` tag of `degrees` (the MP4 muxer
/// turns it into a display matrix; only a stream copy keeps it).
fn with_rotate_tag(dir: &Path, clip: &Path, degrees: u32) -> PathBuf {
    ffmpeg_clip(
        dir,
        &format!("rotated-{degrees}.mp4"),
        &[
            "-i",
            clip.to_str().unwrap(),
            "-c",
            "copy",
            "-metadata:s:v:0",
            &format!("rotate={degrees}"),
        ],
    )
}

/// A 320×180 picture in four coloured quadrants: red top left, green top right, blue bottom
/// left, white bottom right.
const QUADRANTS: &str = "color=c=red:size=320x180:rate=30,\
    drawbox=x=160:y=0:w=160:h=90:color=lime:t=fill,\
    drawbox=x=0:y=90:w=160:h=90:color=blue:t=fill,\
    drawbox=x=160:y=90:w=160:h=90:color=white:t=fill";

#[derive(Clone, Copy, Debug, PartialEq)]
enum Colour {
    Red,
    Green,
    Blue,
    White,
}

/// The colours at `points` of the first picture of `clip` as the ffmpeg CLI shows it
/// (autorotated), `width` pixels wide.
fn cli_upright_colours(clip: &Path, width: usize, points: [(u32, u32); 4]) -> [Colour; 4] {
    let output = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-i"])
        .arg(clip)
        .args(["-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        .output()
        .expect("the ffmpeg CLI runs");
    assert!(output.status.success(), "ffmpeg decoded the clip");
    points.map(|(x, y)| {
        let offset = (y as usize * width + x as usize) * 3;
        colour_of(&output.stdout[offset..offset + 3])
    })
}

/// The quadrant colour an RGB pixel shows.
fn colour_of(pixel: &[u8]) -> Colour {
    let high = |value: u8| value > 160;
    match (high(pixel[0]), high(pixel[1]), high(pixel[2])) {
        (true, false, false) => Colour::Red,
        (false, true, false) => Colour::Green,
        (false, false, true) => Colour::Blue,
        (true, true, true) => Colour::White,
        _ => panic!("unexpected colour {pixel:?}"),
    }
}

/// The colour at (`x`, `y`) of a yuv420p picture.
fn colour_at(picture: &frame::Video, x: u32, y: u32) -> Colour {
    let mut rgb = frame::Video::empty();
    scaling::Context::get(
        picture.format(),
        picture.width(),
        picture.height(),
        Pixel::RGB24,
        picture.width(),
        picture.height(),
        scaling::Flags::POINT,
    )
    .unwrap()
    .run(picture, &mut rgb)
    .unwrap();
    let offset = y as usize * rgb.stride(0) + x as usize * 3;
    colour_of(&rgb.data(0)[offset..offset + 3])
}

#[test]
fn a_rotated_phone_clip_comes_out_upright_and_portrait() {
    let dir = tempfile::tempdir().unwrap();
    let clip = ffmpeg_clip(
        dir.path(),
        "rotated.mp4",
        &[
            "-f",
            "lavfi",
            "-i",
            QUADRANTS,
            "-t",
            "1",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
        ],
    );
    let clip = with_rotate_tag(dir.path(), &clip, 90);
    let Transcoded {
        report,
        rungs: outputs,
        ..
    } = transcode(&clip, &ladder(vec![RungSpec::Source, rung("160p", 160)]));
    let video = report.video.expect("video");
    assert!(video.rotation == 90 || video.rotation == 270, "{video:?}");
    assert_eq!((video.width, video.height), (320, 180));
    assert_eq!((video.display_width, video.display_height), (180, 320));
    assert_eq!(video.display_aspect_ratio, (9, 16));

    // The source rung cannot be repackaged sideways: it is encoded upright at full size.
    assert_eq!(encoded_size(&outputs[0].planned), ("source", 180, 320));
    assert_eq!(outputs[0].assert_decodes_at(180, 320), 30);
    assert_eq!(outputs[1].assert_decodes_at(90, 160), 30);

    // Turned clockwise by 90°, the bottom-left quadrant comes to the top left; turned by 270°,
    // the top-right one does.
    let expected = if video.rotation == 90 {
        [Colour::Blue, Colour::Red, Colour::White, Colour::Green]
    } else {
        [Colour::Green, Colour::White, Colour::Red, Colour::Blue]
    };
    let points = [(45, 80), (135, 80), (45, 240), (135, 240)];
    let picture = &outputs[0].decode()[0];
    let seen = points.map(|(x, y)| colour_at(picture, x, y));
    assert_eq!(
        seen, expected,
        "top left, top right, bottom left, bottom right"
    );
    // Players agree: the ffmpeg CLI turns it the same way.
    assert_eq!(cli_upright_colours(&clip, 180, points), expected);
}

#[test]
fn an_anamorphic_source_comes_out_in_square_pixels() {
    let dir = tempfile::tempdir().unwrap();
    let clip = ffmpeg_clip(
        dir.path(),
        "anamorphic.mp4",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=25,setsar=32/27",
            "-t",
            "1",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
        ],
    );
    let Transcoded {
        report,
        rungs: outputs,
        ..
    } = transcode(&clip, &ladder(vec![RungSpec::Source, rung("120p", 120)]));
    let video = report.video.expect("video");
    assert_eq!(video.sample_aspect_ratio, (32, 27));
    // 320 × 32/27 = 379.3, made even.
    assert_eq!((video.display_width, video.display_height), (380, 240));
    assert_eq!(video.display_aspect_ratio, (128, 81));
    assert_eq!(outputs[0].assert_decodes_at(380, 240), 25);
    assert_eq!(outputs[1].assert_decodes_at(190, 120), 25);
}

#[test]
fn odd_sized_mpeg4_part_2_comes_out_even() {
    let dir = tempfile::tempdir().unwrap();
    let clip = ffmpeg_clip(
        dir.path(),
        "odd.avi",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=640x360:rate=25",
            "-vf",
            "scale=641:361",
            "-t",
            "1",
            "-c:v",
            "mpeg4",
        ],
    );
    let Transcoded {
        report,
        rungs: outputs,
        ..
    } = transcode(&clip, &Ladder::DEFAULT);
    let video = report.video.expect("video");
    assert_eq!(
        (video.codec.as_str(), video.width, video.height),
        ("mpeg4", 641, 361)
    );
    assert_eq!(outputs.len(), 1, "only 360p fits");
    assert_eq!(outputs[0].assert_decodes_at(640, 360), 25);
}

/// `parts` of testsrc2 at different rates, each one second, joined with their own timing.
fn variable_rate_clip(dir: &Path, name: &str, rates: &[u32]) -> PathBuf {
    let mut args: Vec<String> = Vec::new();
    let mut graph = String::new();
    for (index, rate) in rates.iter().enumerate() {
        args.extend([
            "-f".to_owned(),
            "lavfi".to_owned(),
            "-i".to_owned(),
            format!("testsrc2=size=320x180:rate={rate}:duration=1"),
        ]);
        graph.push_str(&format!("[{index}:v]"));
    }
    graph.push_str(&format!("concat=n={}:v=1[v]", rates.len()));
    args.extend(
        [
            "-filter_complex",
            &graph,
            "-map",
            "[v]",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-vsync",
            "vfr",
        ]
        .map(str::to_owned),
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ffmpeg_clip(dir, name, &args)
}

#[test]
fn variable_frame_rate_becomes_constant_and_lasts_as_long() {
    let dir = tempfile::tempdir().unwrap();
    let clip = variable_rate_clip(dir.path(), "vfr.mkv", &[30, 10, 30]);
    let Transcoded {
        report,
        rungs: outputs,
        ..
    } = transcode(&clip, &ladder(vec![RungSpec::Source, rung("90p", 90)]));
    let video = report.video.as_ref().expect("video");
    assert!(video.variable_frame_rate, "{video:?}");
    assert_eq!(video.frame_rate, Some(30.0));
    let duration = report.duration.expect("a duration");

    for output in &outputs {
        let pts = output.sorted_pts();
        let steps: Vec<i64> = pts.windows(2).map(|pair| pair[1] - pair[0]).collect();
        assert!(
            steps.iter().all(|&step| step == TICKS / 30),
            "regular timestamps: {steps:?}"
        );
        let lasts = Duration::from_micros(
            ((pts[pts.len() - 1] - pts[0] + TICKS / 30) * 1_000_000 / TICKS) as u64,
        );
        let frame = Duration::from_micros(1_000_000 / 30);
        assert!(
            lasts.abs_diff(duration) <= frame,
            "output lasts {lasts:?}, the source {duration:?}"
        );
    }
    assert_eq!(
        outputs[0].assert_decodes_at(320, 180),
        outputs[0].packets.len()
    );
    outputs[1].assert_decodes_at(160, 90);
}

#[test]
fn an_mp4_whose_average_rate_departs_from_the_nominal_one_is_variable() {
    let dir = tempfile::tempdir().unwrap();
    let clip = variable_rate_clip(dir.path(), "vfr.mp4", &[30, 10]);
    let report = probe(&clip, &ProbeLimits::default()).unwrap();
    let video = report.video.expect("video");
    assert!(video.variable_frame_rate, "{video:?}");
    // 40 pictures over 2 s, less the last one's time: the average, well below 30.
    let rate = video.frame_rate.expect("a rate");
    assert!((19.0..23.0).contains(&rate), "{rate}");

    let constant = ffmpeg_clip(
        dir.path(),
        "cfr.mp4",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=160x90:rate=30000/1001",
            "-t",
            "1",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
        ],
    );
    let video = probe(&constant, &ProbeLimits::default())
        .unwrap()
        .video
        .expect("video");
    assert!(!video.variable_frame_rate, "{video:?}");
    assert_eq!(video.frame_rate, Some(30000.0 / 1001.0));
    assert_eq!(video.sample_aspect_ratio, (1, 1));
    assert_eq!(
        (video.bit_depth, video.chroma_subsampling.as_deref()),
        (Some(8), Some("4:2:0"))
    );

    // Ogg gives no average rate for a perfectly regular Theora stream.
    let theora = ffmpeg_clip(
        dir.path(),
        "cfr.ogv",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=160x90:rate=25",
            "-t",
            "1",
            "-c:v",
            "libtheora",
        ],
    );
    let video = probe(&theora, &ProbeLimits::default())
        .unwrap()
        .video
        .expect("video");
    assert_eq!(video.codec, "theora");
    assert!(!video.variable_frame_rate, "{video:?}");
    assert_eq!(video.frame_rate, Some(25.0));
}

#[test]
fn a_plain_h264_clip_keeps_its_repackaged_source_rung() {
    let dir = tempfile::tempdir().unwrap();
    let clip = ffmpeg_clip(
        dir.path(),
        "plain.mp4",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x180:rate=30",
            "-t",
            "1",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
        ],
    );
    let outputs = transcode(&clip, &ladder(vec![RungSpec::Source, rung("90p", 90)])).rungs;
    assert!(matches!(outputs[0].planned, PlannedRung::Source));
    assert_eq!(outputs[0].packets.len(), 30);
    assert_eq!(outputs[1].assert_decodes_at(160, 90), 30);

    // 4:2:2 H.264 cannot be repackaged for players: its source rung is encoded as 4:2:0.
    let high422 = ffmpeg_clip(
        dir.path(),
        "high422.mp4",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x180:rate=30",
            "-t",
            "1",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv422p",
        ],
    );
    let Transcoded {
        report,
        rungs: outputs,
        ..
    } = transcode(&high422, &ladder(vec![RungSpec::Source]));
    assert_eq!(
        report.video.unwrap().chroma_subsampling.as_deref(),
        Some("4:2:2")
    );
    assert_eq!(encoded_size(&outputs[0].planned), ("source", 320, 180));
    assert_eq!(outputs[0].assert_decodes_at(320, 180), 30);

    // Annex B H.264 in MPEG-TS has no avcC to repackage: it is decoded and encoded.
    let transport = ffmpeg_clip(
        dir.path(),
        "clip.ts",
        &["-i", clip.to_str().unwrap(), "-c", "copy"],
    );
    let outputs = transcode(&transport, &ladder(vec![RungSpec::Source])).rungs;
    assert_eq!(encoded_size(&outputs[0].planned), ("source", 320, 180));
    assert_eq!(outputs[0].assert_decodes_at(320, 180), 30);
}

#[test]
fn a_turned_anamorphic_clip_is_squared_then_turned() {
    let dir = tempfile::tempdir().unwrap();
    let clip = ffmpeg_clip(
        dir.path(),
        "both.mp4",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=25,setsar=4/3",
            "-t",
            "1",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
        ],
    );
    let clip = with_rotate_tag(dir.path(), &clip, 270);
    let video = probe(&clip, &ProbeLimits::default())
        .unwrap()
        .video
        .expect("video");
    assert_eq!(video.sample_aspect_ratio, (4, 3));
    // 320 × 4/3 ≈ 427 → 426 wide, 240 high; turned a quarter: 240×426.
    assert_eq!((video.display_width, video.display_height), (240, 426));
    assert_eq!(video.display_aspect_ratio, (9, 16));
    let outputs = transcode(&clip, &ladder(vec![RungSpec::Source])).rungs;
    assert_eq!(outputs[0].assert_decodes_at(240, 426), 25);
}

#[test]
fn av1_prores_and_mjpeg_sources_come_out_as_h264() {
    let dir = tempfile::tempdir().unwrap();
    let sources = [
        (
            "av1.mp4",
            vec!["-c:v", "libaom-av1", "-cpu-used", "8", "-usage", "realtime"],
            "av1",
            "yuv420p",
        ),
        // ProRes 422 HQ: 10-bit 4:2:2.
        (
            "prores.mov",
            vec!["-c:v", "prores_ks", "-profile:v", "3"],
            "prores",
            "yuv422p10le",
        ),
        // Motion JPEG: full-range 4:2:2.
        (
            "mjpeg.avi",
            vec!["-c:v", "mjpeg", "-pix_fmt", "yuvj422p"],
            "mjpeg",
            "yuvj422p",
        ),
    ];
    for (name, codec_args, codec, pixel_format) in sources {
        let mut args = vec![
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x180:rate=25",
            "-t",
            "1",
        ];
        args.extend(codec_args);
        let clip = ffmpeg_clip(dir.path(), name, &args);
        let Transcoded {
            report,
            rungs: outputs,
            ..
        } = transcode(&clip, &ladder(vec![RungSpec::Source, rung("90p", 90)]));
        let video = report.video.expect("video");
        assert_eq!(
            (video.codec.as_str(), video.pixel_format.as_deref()),
            (codec, Some(pixel_format)),
            "{name}"
        );
        assert_eq!(outputs[0].assert_decodes_at(320, 180), 25, "{name}");
        assert_eq!(outputs[1].assert_decodes_at(160, 90), 25, "{name}");
    }
}

/// How much a luma plane's lines differ from the average of their neighbours: interlaced
/// pictures of moving content comb, and score high.
fn combing(picture: &frame::Video) -> f64 {
    let (width, height, stride) = (
        picture.width() as usize,
        picture.height() as usize,
        picture.stride(0),
    );
    let luma = picture.data(0);
    let mut total = 0u64;
    for y in 1..height - 1 {
        for x in 0..width {
            let above = i32::from(luma[(y - 1) * stride + x]);
            let below = i32::from(luma[(y + 1) * stride + x]);
            let here = i32::from(luma[y * stride + x]);
            total += u64::from((here - (above + below) / 2).unsigned_abs());
        }
    }
    total as f64 / (width * (height - 2)) as f64
}

#[test]
fn interlaced_mpeg2_comes_out_progressive() {
    let dir = tempfile::tempdir().unwrap();
    // 50 fps motion woven into 25 interlaced frames a second, top field first.
    let clip = ffmpeg_clip(
        dir.path(),
        "interlaced.ts",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=50",
            "-t",
            "1",
            "-vf",
            "tinterlace=mode=interleave_top,setfield=tff",
            "-c:v",
            "mpeg2video",
            "-flags",
            "+ildct+ilme",
            "-top",
            "1",
            "-b:v",
            "4M",
        ],
    );
    let mut source = Vec::new();
    let mut demuxer = FileDemuxer::open(&clip, &ProbeLimits::default()).unwrap();
    let video = demuxer.report().video.as_ref().expect("video");
    assert!(video.interlaced, "{video:?}");
    let Some((VideoSource::Stream { parameters, .. }, _)) = demuxer
        .plan_video(&ladder(vec![RungSpec::Source]), &[VideoCodec::H264])
        .unwrap()
    else {
        panic!("MPEG-2 video is decoded from its stream");
    };
    let mut decoder = VideoDecoder::open(parameters).unwrap();
    for packet in demuxer.packets() {
        source.extend(decoder.decode(&packet).unwrap());
    }
    source.extend(decoder.flush());
    assert!(source.iter().all(|decoded| decoded.picture.is_interlaced()));
    let source_combing: f64 = source
        .iter()
        .map(|decoded| combing(&decoded.picture))
        .sum::<f64>()
        / source.len() as f64;

    let outputs = transcode(
        &clip,
        &Ladder {
            rungs: vec![RungSpec::Encode(Rung {
                name: "240p".into(),
                height: 240,
                bitrate_kbps: 4000,
                max_fps: 30,
            })]
            .into(),
        },
    )
    .rungs;
    assert_eq!(outputs[0].assert_decodes_at(320, 240), 25);
    let pictures = outputs[0].decode();
    let output_combing: f64 = pictures.iter().map(combing).sum::<f64>() / pictures.len() as f64;
    assert!(
        output_combing < source_combing * 0.7,
        "combing {output_combing:.2} out of {source_combing:.2} in"
    );
}

#[test]
fn a_picture_size_change_mid_stream_keeps_every_picture() {
    let dir = tempfile::tempdir().unwrap();
    let part = |name: &str, size: &str, offset: &str| {
        let source = format!("testsrc2=size={size}:rate=25");
        let args = [
            "-f",
            "lavfi",
            "-i",
            source.as_str(),
            "-t",
            "1",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-output_ts_offset",
            offset,
        ];
        std::fs::read(ffmpeg_clip(dir.path(), name, &args)).unwrap()
    };
    // MPEG-TS parts join byte for byte; the second one's pictures are smaller.
    let mut joined = part("large.ts", "320x180", "0");
    joined.extend(part("small.ts", "160x90", "1"));
    let clip = dir.path().join("joined.ts");
    std::fs::write(&clip, joined).unwrap();

    let outputs = transcode(&clip, &ladder(vec![RungSpec::Source])).rungs;
    assert_eq!(encoded_size(&outputs[0].planned), ("source", 320, 180));
    assert_eq!(outputs[0].assert_decodes_at(320, 180), 50);
    let pts = outputs[0].sorted_pts();
    assert!(
        pts.windows(2).all(|pair| pair[1] - pair[0] == TICKS / 25),
        "regular timestamps across the change: {pts:?}"
    );
}

#[test]
fn a_single_picture_video_becomes_a_one_frame_rendition() {
    let dir = tempfile::tempdir().unwrap();
    let clip = ffmpeg_clip(
        dir.path(),
        "one-picture.mp4",
        &[
            "-f",
            "lavfi",
            "-i",
            "color=c=black:s=320x240:r=30",
            "-frames:v",
            "1",
            "-c:v",
            "libx264",
        ],
    );
    let transcoded = transcode(&clip, &ladder(vec![rung("240p", 240)]));
    assert_eq!(transcoded.rungs[0].packets.len(), 1);
}
