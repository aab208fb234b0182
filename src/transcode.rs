//! `sluice transcode INPUT -o OUTDIR`: one local file through the live ladder, written as a
//! video-on-demand HLS tree, without a server.
//!
//! The file is probed first (`sluice_transcoder::probe`: local file only, no playlist
//! demuxers, limits on size, duration, streams and picture size), then transcoded by
//! [`FileTranscode`] and packaged here:
//!
//! ```text
//! OUTDIR/master.m3u8            multivariant playlist: measured BANDWIDTH/AVERAGE-BANDWIDTH,
//!                               CODECS, RESOLUTION, FRAME-RATE
//! OUTDIR/v{N}/index.m3u8        one VOD media playlist per video rung (PLAYLIST-TYPE:VOD, ENDLIST);
//!                               with `--codecs h264,av1` the AV1 rungs come after the H.264 ones
//! OUTDIR/v{N}/init.mp4          its CMAF header (EXT-X-MAP)
//! OUTDIR/v{N}/segment-{S}.m4s   its CMAF segments
//! OUTDIR/a0/…                   the AAC-LC audio rendition (`.m4a` segments), when there is audio
//! OUTDIR/poster.jpg             the poster frame (see `sluice_transcoder::poster_time`), at
//!                               the source's display size, scaled to 1920 wide when its
//!                               coded width is larger (video only)
//! OUTDIR/storyboard.jpg         seek-preview sprite: tiles 160 on their longer side, 10 a row
//! OUTDIR/storyboard.vtt         WebVTT cues pointing at the sprite's tiles (`#xywh=`)
//! ```
//!
//! Every video rung is cut at the same instants (the ladder forces IDRs on the same source
//! pictures and each rung's segmenter cuts at the first keyframe past the target duration);
//! audio segments are cut where the first video rung was cut. An audio-only file gets an
//! audio rendition listed as the only variant; a video-only file gets no audio rendition.
//!
//! The tree is built in a hidden directory next to OUTDIR and moved into place only once it
//! is complete, so a failed run leaves no partial files behind. OUTDIR must be absent or empty.

use std::collections::VecDeque;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use sluice_media::VideoCodec;
use sluice_media::{AudioSpecificConfig, MediaTime, Packet, Timebase, TrackInfo, VideoConfig};
use sluice_packager::{
    fmp4, AudioRendition, BitrateMeter, BoundaryPolicy, CompletedSegment, MasterPlaylist,
    SegmentEvent, TrackSegmenter, VideoVariant, VodPlaylist,
};
use sluice_transcoder::{
    encodable_codec, storyboard, thumbnail, EncoderSettings, FileTranscode, Ladder, PlannedRung,
    Preset, ProbeLimits, StoryboardLayout, ThumbnailRequest, TranscoderOutput, VodEvent,
};

/// Track id inside every init segment (CMAF: one track per file).
const TRACK_ID: u32 = 1;
/// Apple's recommended VOD segment duration (HLS Authoring Spec §1.10).
const DEFAULT_SEGMENT_SECONDS: u32 = 6;
/// The poster is scaled down to this width when the source's coded width is larger (an
/// anamorphic source's display width may still exceed it).
const POSTER_MAX_WIDTH: u32 = 1920;
/// The storyboard sprite's name, as the WebVTT cues refer to it.
const STORYBOARD_SPRITE: &str = "storyboard.jpg";

/// `sluice transcode`'s arguments.
#[derive(Debug, clap::Args)]
pub struct TranscodeArgs {
    /// The media file to transcode (MP4/MOV, Matroska/WebM, FLV, …; video must be H.264).
    pub input: PathBuf,
    /// Directory to write the HLS tree into; created if missing, and must be empty if not.
    #[arg(short, long, value_name = "OUTDIR")]
    pub output: PathBuf,
    /// Renditions, as for live streams: a JSON ladder such as
    /// '["source", {"name":"540p","height":540,"bitrate_kbps":2000}]' or comma-separated
    /// names such as 'source,720p,360p'. Rungs taller than the source are left out.
    /// Default: 1080p,720p,480p,360p.
    #[arg(long)]
    pub ladder: Option<String>,
    /// x264 preset of the encoded rungs: ultrafast, superfast, veryfast, faster, fast, medium.
    #[arg(long, default_value = "veryfast", value_parser = parse_preset)]
    pub preset: Preset,
    /// Video codecs, comma-separated: h264 and av1. H.264 renditions are always written; with
    /// av1 every encoded H.264 rung also gets an AV1 twin (rav1e, same size, about 65 % of the
    /// bitrate, key frames on the same pictures), listed after the H.264 ones.
    #[arg(long, default_value = "h264", value_delimiter = ',', value_parser = parse_codec)]
    pub codecs: Vec<VideoCodec>,
    /// Target segment duration in seconds, also the distance between the IDRs forced on
    /// encoded rungs (with a "source" rung, segments follow the source's keyframes).
    #[arg(long, default_value_t = DEFAULT_SEGMENT_SECONDS,
          value_parser = clap::value_parser!(u32).range(1..=30))]
    pub segment_seconds: u32,
}

fn parse_codec(text: &str) -> Result<VideoCodec, String> {
    encodable_codec(text).map_err(|err| err.to_string())
}

fn parse_preset(text: &str) -> Result<Preset, String> {
    serde_json::from_value(serde_json::Value::String(text.to_owned()))
        .map_err(|_| format!("unknown preset {text:?}"))
}

/// Reads `--ladder` with the same parser and bounds as a live stream's ladder.
fn parse_ladder(text: Option<&str>) -> anyhow::Result<Ladder> {
    let value = match text.map(str::trim) {
        None => serde_json::Value::Null,
        Some(json) if json.starts_with('[') => {
            serde_json::from_str(json).context("--ladder is not valid JSON")?
        }
        Some(names) => serde_json::Value::Array(
            names
                .split(',')
                .map(|name| serde_json::Value::String(name.trim().to_owned()))
                .collect(),
        ),
    };
    let normalised = crate::live::validate_ladder(&value)
        .map_err(|message| anyhow::anyhow!("--ladder: {message}"))?;
    Ok(serde_json::from_value(normalised)?)
}

/// Runs the command.
pub fn run(args: TranscodeArgs) -> anyhow::Result<()> {
    let ladder = parse_ladder(args.ladder.as_deref())?;
    let segment = Duration::from_secs(u64::from(args.segment_seconds));
    let settings = EncoderSettings {
        preset: args.preset,
        keyframe_interval: segment,
        // Rungs already run in parallel; x264 picks its own thread count per rung for files.
        threads_per_rung: 0,
        codecs: args.codecs,
        ..EncoderSettings::default()
    };
    // OUTDIR is checked before any work starts; the working directory goes away with
    // `staging` on any error, so a refused file leaves nothing on disk.
    let staging = Staging::create(&args.output)?;
    let started = Instant::now();
    let (transcode, events) =
        FileTranscode::start(&args.input, &ladder, settings, &ProbeLimits::default())
            .with_context(|| format!("cannot transcode {}", args.input.display()))?;

    let report = transcode.report().clone();
    let progress = Progress::new(report.duration);
    let source_fps = report.video.as_ref().and_then(|video| video.frame_rate);
    let mut tree = HlsTree::new(
        staging.path(),
        transcode.rungs(),
        source_fps,
        segment,
        report.video.is_some(),
    );
    for event in events {
        if let Some(at) = tree.handle(event)? {
            progress.update(at);
        }
    }
    transcode
        .wait()
        .with_context(|| format!("cannot transcode {}", args.input.display()))?;
    let mut summary = tree.finish()?;
    if let Some(video) = &report.video {
        progress.phase("poster and storyboard");
        let storyboard = report.duration.is_some();
        write_pictures(&args.input, video.width, storyboard, staging.path())?;
        summary.push_str(if storyboard {
            ", poster and storyboard"
        } else {
            ", poster (no storyboard: the file does not give its duration)"
        });
    }
    progress.finish();
    staging.commit(&args.output)?;

    let media = report.duration.unwrap_or(progress.done()).as_secs_f64();
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "Wrote {}: {summary}; {media:.1} s of media in {elapsed:.1} s ({:.1}× real time).",
        args.output.join("master.m3u8").display(),
        media / elapsed.max(1e-3),
    );
    Ok(())
}

/// Writes the poster frame of the video in `input` into `dir`, and its storyboard when
/// `with_storyboard` (a storyboard's tiles are spread over the duration, which a few
/// containers do not give).
fn write_pictures(
    input: &Path,
    source_width: u32,
    with_storyboard: bool,
    dir: &Path,
) -> anyhow::Result<()> {
    let limits = ProbeLimits::default();
    let poster = ThumbnailRequest {
        width: (source_width > POSTER_MAX_WIDTH).then_some(POSTER_MAX_WIDTH),
        ..ThumbnailRequest::default()
    };
    let poster = thumbnail(input, &limits, &poster).context("cannot make the poster frame")?;
    write(&dir.join("poster.jpg"), &poster.data)?;
    if !with_storyboard {
        return Ok(());
    }
    let board = storyboard(
        input,
        &limits,
        &StoryboardLayout::default(),
        STORYBOARD_SPRITE,
    )
    .context("cannot make the storyboard")?;
    write(&dir.join(STORYBOARD_SPRITE), &board.sprite.data)?;
    write(&dir.join("storyboard.vtt"), board.vtt.as_bytes())
}

/// The progress bar: media time done against the duration, speed and ETA. It draws only on
/// a terminal (indicatif hides it otherwise).
struct Progress {
    bar: ProgressBar,
    started: Instant,
}

impl Progress {
    fn new(duration: Option<Duration>) -> Self {
        let length = duration.map_or(0, |d| d.as_millis() as u64);
        let bar = ProgressBar::new(length);
        let template = if length > 0 {
            "{bar:40.cyan/blue} {percent:>3}%  {msg}  ETA {eta}"
        } else {
            "{spinner} {msg}"
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style);
        }
        Progress {
            bar,
            started: Instant::now(),
        }
    }

    /// Media time transcoded so far.
    fn update(&self, done: Duration) {
        let done_ms = done.as_millis() as u64;
        if done_ms <= self.bar.position() {
            return;
        }
        self.bar.set_position(done_ms);
        let speed = done.as_secs_f64() / self.started.elapsed().as_secs_f64().max(1e-3);
        self.bar.set_message(format!("{speed:.1}× real time"));
    }

    /// Shows a step after the media is transcoded.
    fn phase(&self, step: &str) {
        self.bar.set_message(step.to_owned());
    }

    fn done(&self) -> Duration {
        Duration::from_millis(self.bar.position())
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// The output tree under construction, in a hidden sibling of OUTDIR that is removed unless
/// [`Staging::commit`] moves it into place.
struct Staging {
    dir: tempfile::TempDir,
}

impl Staging {
    fn create(output: &Path) -> anyhow::Result<Self> {
        if output.exists() {
            let mut entries = fs::read_dir(output)
                .with_context(|| format!("cannot read {}", output.display()))?;
            if entries.next().is_some() {
                bail!("{} is not empty", output.display());
            }
        }
        let parent = match output.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
            _ => PathBuf::from("."),
        };
        fs::create_dir_all(&parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
        let dir = tempfile::Builder::new()
            .prefix(".sluice-transcode-")
            .tempdir_in(&parent)
            .with_context(|| {
                format!("cannot create a working directory in {}", parent.display())
            })?;
        Ok(Staging { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn commit(self, output: &Path) -> anyhow::Result<()> {
        if output.exists() {
            // Checked empty before the work began; an empty directory is replaced.
            fs::remove_dir(output)
                .with_context(|| format!("{} is no longer empty", output.display()))?;
        }
        let staged = self.dir.keep();
        fs::rename(&staged, output).with_context(|| {
            let _ = fs::remove_dir_all(&staged);
            format!("cannot move the output into {}", output.display())
        })
    }
}

/// One rendition: its segmenter, playlist and measured bitrate.
struct Track {
    dir: PathBuf,
    extension: &'static str,
    segmenter: TrackSegmenter,
    playlist: VodPlaylist,
    meter: BitrateMeter,
}

impl Track {
    fn new(
        root: &Path,
        name: &str,
        extension: &'static str,
        timescale: Timebase,
        segment: Duration,
        policy: BoundaryPolicy,
    ) -> Self {
        Track {
            dir: root.join(name),
            extension,
            segmenter: TrackSegmenter::new(TRACK_ID, timescale, segment).with_policy(policy),
            playlist: VodPlaylist::new("init.mp4".to_owned()),
            meter: BitrateMeter::new(),
        }
    }

    fn write_init(&self, track: &TrackInfo, timescale: u32) -> anyhow::Result<()> {
        let init = fmp4::init_segment(track, TRACK_ID, timescale)
            .with_context(|| format!("cannot write the init segment of {}", self.dir.display()))?;
        fs::create_dir_all(&self.dir)?;
        write(&self.dir.join("init.mp4"), &init)
    }

    /// Writes the segments a segmenter returned; returns their end times.
    fn absorb(&mut self, events: Vec<SegmentEvent>) -> anyhow::Result<Vec<MediaTime>> {
        let segments = events.into_iter().filter_map(|event| match event {
            SegmentEvent::Segment(segment) => Some(segment),
            _ => None,
        });
        segments
            .map(|segment| self.write_segment(segment))
            .collect()
    }

    fn write_segment(&mut self, segment: CompletedSegment) -> anyhow::Result<MediaTime> {
        let name = format!("segment-{}.{}", segment.sequence, self.extension);
        write(&self.dir.join(&name), &segment.data)?;
        self.meter
            .add_segment(segment.data.len() as u64, segment.duration);
        self.playlist
            .push_segment(name, segment.duration.as_secs_f64());
        Ok(MediaTime::new(
            segment.start.ticks + segment.duration.ticks,
            segment.start.timebase,
        ))
    }

    /// Flushes the segmenter; returns the end times of the last segments.
    fn finish(&mut self) -> anyhow::Result<Vec<MediaTime>> {
        let segments = self
            .segmenter
            .finish()
            .with_context(|| format!("cannot finish {}", self.dir.display()))?;
        segments
            .into_iter()
            .map(|segment| self.write_segment(segment))
            .collect()
    }

    fn write_playlist(&self) -> anyhow::Result<()> {
        write(&self.dir.join("index.m3u8"), &self.playlist.render())
    }
}

fn write(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}

/// A video rung being packaged.
struct VideoTrack {
    track: Track,
    frame_rate: Option<f64>,
    config: Option<VideoConfig>,
    /// First and last presentation time seen, and the frame count, to measure the frame
    /// rate when the container does not say it.
    first_pts: Option<i64>,
    last_pts: i64,
    frames: u64,
}

impl VideoTrack {
    fn frame_rate(&self) -> f64 {
        self.frame_rate.unwrap_or_else(|| {
            let span = self.last_pts - self.first_pts.unwrap_or(self.last_pts);
            if span > 0 && self.frames > 1 {
                (self.frames - 1) as f64 * f64::from(Timebase::MPEG.0) / span as f64
            } else {
                0.0
            }
        })
    }
}

/// The audio rendition being packaged.
struct AudioTrack {
    track: Track,
    config: AudioSpecificConfig,
    /// With video: frames waiting for the first video rung to be cut past them, so audio
    /// segments end where video segments end however far ahead the audio was demuxed.
    held: VecDeque<Packet>,
}

/// Everything written under the staging directory.
struct HlsTree {
    root: PathBuf,
    segment: Duration,
    video: Vec<VideoTrack>,
    audio: Option<AudioTrack>,
    has_video: bool,
    /// Media time of the first packet, for progress.
    origin: Option<MediaTime>,
}

impl HlsTree {
    fn new(
        root: &Path,
        rungs: &[PlannedRung],
        source_fps: Option<f64>,
        segment: Duration,
        has_video: bool,
    ) -> Self {
        let video = rungs
            .iter()
            .enumerate()
            .map(|(index, rung)| VideoTrack {
                track: Track::new(
                    root,
                    &format!("v{index}"),
                    "m4s",
                    Timebase::MPEG,
                    segment,
                    BoundaryPolicy::TargetDuration,
                ),
                frame_rate: match rung {
                    PlannedRung::Source => source_fps,
                    PlannedRung::Encode(target) => Some(target.frame_rate),
                },
                config: None,
                first_pts: None,
                last_pts: 0,
                frames: 0,
            })
            .collect();
        HlsTree {
            root: root.to_owned(),
            segment,
            video,
            audio: None,
            has_video,
            origin: None,
        }
    }

    /// Packages one event; returns the media time reached when it tells progress.
    fn handle(&mut self, event: VodEvent) -> anyhow::Result<Option<Duration>> {
        match event {
            VodEvent::Video(TranscoderOutput::Config { rung, config }) => {
                if let Some(video) = self.video.get_mut(rung) {
                    let info = config.track_info(video.frame_rate);
                    video.track.write_init(&info, Timebase::MPEG.0)?;
                    video.config = Some(config);
                }
                Ok(None)
            }
            VodEvent::Video(TranscoderOutput::Packet { rung, packet }) => {
                let at = self.reached(&packet);
                let Some(video) = self.video.get_mut(rung) else {
                    return Ok(None);
                };
                video.first_pts.get_or_insert(packet.pts);
                video.last_pts = video.last_pts.max(packet.pts);
                video.frames += 1;
                let events = video
                    .track
                    .segmenter
                    .push(packet)
                    .context("a video packet was refused by the segmenter")?;
                let ends = video.track.absorb(events)?;
                if rung == 0 {
                    self.cut_audio(&ends)?;
                    return Ok(at);
                }
                Ok(None)
            }
            VodEvent::Video(TranscoderOutput::Finished { .. }) => Ok(None),
            VodEvent::AudioConfig(config) => {
                let policy = if self.has_video {
                    BoundaryPolicy::Explicit
                } else {
                    BoundaryPolicy::TargetDuration
                };
                let track = Track::new(
                    &self.root,
                    "a0",
                    "m4a",
                    Timebase(config.sample_rate),
                    self.segment,
                    policy,
                );
                track.write_init(
                    &TrackInfo::Aac {
                        config: config.clone(),
                    },
                    config.sample_rate,
                )?;
                self.audio = Some(AudioTrack {
                    track,
                    config,
                    held: VecDeque::new(),
                });
                Ok(None)
            }
            VodEvent::Audio(packet) => {
                let at = (!self.has_video).then(|| self.reached(&packet)).flatten();
                let has_video = self.has_video;
                let Some(audio) = &mut self.audio else {
                    return Ok(None);
                };
                if has_video {
                    audio.held.push_back(packet);
                } else {
                    push_audio(&mut audio.track, packet)?;
                }
                Ok(at)
            }
        }
    }

    /// How far into the file `packet` is, from the first packet seen.
    fn reached(&mut self, packet: &Packet) -> Option<Duration> {
        let time = packet.pts_time();
        let origin = *self.origin.get_or_insert(time);
        let secs = time.as_secs_f64() - origin.as_secs_f64();
        (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
    }

    /// Asks the audio rendition for boundaries at `ends`, then segments the held audio that
    /// comes before the last of them.
    fn cut_audio(&mut self, ends: &[MediaTime]) -> anyhow::Result<()> {
        let (Some(audio), Some(last)) = (&mut self.audio, ends.last()) else {
            return Ok(());
        };
        for end in ends {
            let events = audio
                .track
                .segmenter
                .cut_at(*end)
                .context("the audio segmenter refused a cut")?;
            audio.track.absorb(events)?;
        }
        while let Some(packet) = audio.held.front() {
            if packet.timebase.rescale(packet.dts, last.timebase) >= last.ticks {
                break;
            }
            if let Some(packet) = audio.held.pop_front() {
                push_audio(&mut audio.track, packet)?;
            }
        }
        Ok(())
    }

    /// Flushes every rendition and writes every playlist; returns a summary of what was made.
    fn finish(mut self) -> anyhow::Result<String> {
        let mut last_video_ends = Vec::new();
        for (index, video) in self.video.iter_mut().enumerate() {
            let ends = video.track.finish()?;
            if index == 0 {
                last_video_ends = ends;
            }
        }
        // The last video end is the end of the file: audio past it (the AAC encoder's last,
        // padded frame) stays in the last audio segment rather than making a sliver of its own.
        last_video_ends.pop();
        self.cut_audio(&last_video_ends)?;
        if let Some(audio) = &mut self.audio {
            while let Some(packet) = audio.held.pop_front() {
                push_audio(&mut audio.track, packet)?;
            }
            audio.track.finish()?;
        }

        let mut master = MasterPlaylist::new();
        let mut sizes = Vec::new();
        for video in &self.video {
            let Some(config) = &video.config else {
                continue;
            };
            if video.track.playlist.is_empty() {
                continue;
            }
            video.track.write_playlist()?;
            let name = video.track.dir.file_name().unwrap_or_default();
            sizes.push(format!("{}x{}", config.width(), config.height()));
            master.add_variant(VideoVariant {
                uri: format!("{}/index.m3u8", name.to_string_lossy()),
                codec: config.codec_string(),
                width: config.width(),
                height: config.height(),
                frame_rate: video.frame_rate(),
                peak_bps: video.track.meter.peak_bps(),
                average_bps: video.track.meter.average_bps(),
            });
        }
        if self.has_video && sizes.is_empty() {
            bail!("no video segment was produced");
        }
        let mut summary = match sizes.len() {
            0 => "audio only".to_owned(),
            1 => format!("1 video rendition ({})", sizes[0]),
            n => format!("{n} video renditions ({})", sizes.join(", ")),
        };
        if let Some(audio) = self.audio.as_ref().filter(|a| !a.track.playlist.is_empty()) {
            audio.track.write_playlist()?;
            master.set_audio(AudioRendition {
                uri: "a0/index.m3u8".to_owned(),
                name: "Audio".to_owned(),
                language: None,
                channels: audio.config.channels.max(1),
                codec: audio.config.codec_string(),
                peak_bps: audio.track.meter.peak_bps(),
                average_bps: audio.track.meter.average_bps(),
            });
            if !sizes.is_empty() {
                summary.push_str(" and audio");
            }
        } else if sizes.is_empty() {
            bail!("no audio segment was produced");
        }
        write(&self.root.join("master.m3u8"), &master.render())?;
        Ok(summary)
    }
}

fn push_audio(track: &mut Track, packet: Packet) -> anyhow::Result<()> {
    let events = track
        .segmenter
        .push(packet)
        .context("an audio packet was refused by the segmenter")?;
    track.absorb(events)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_transcoder::RungSpec;

    #[test]
    fn ladder_argument_takes_names_or_json_with_the_live_bounds() {
        assert_eq!(parse_ladder(None).unwrap(), Ladder::DEFAULT);
        let names = parse_ladder(Some("source, 360p")).unwrap();
        assert_eq!(
            names.rungs.as_ref(),
            [RungSpec::Source, Ladder::DEFAULT.rungs[3].clone()]
        );
        let json = parse_ladder(Some(r#"["source", "360p"]"#)).unwrap();
        assert_eq!(json, names);

        let unknown = parse_ladder(Some("source,4k")).unwrap_err().to_string();
        assert!(
            unknown.starts_with("--ladder: unknown rung \"4k\""),
            "{unknown}"
        );
        let tiny = parse_ladder(Some(r#"[{"name":"x","height":10,"bitrate_kbps":500}]"#))
            .unwrap_err()
            .to_string();
        assert!(tiny.contains("height must be between"), "{tiny}");
        assert!(parse_ladder(Some("[oops")).is_err());
    }

    #[test]
    fn codecs_are_h264_and_av1() {
        assert_eq!(parse_codec("av1"), Ok(VideoCodec::Av1));
        assert_eq!(parse_codec("h264"), Ok(VideoCodec::H264));
        assert!(parse_codec("vp9").unwrap_err().contains("vp9"));
    }

    #[test]
    fn preset_names_are_x264_names() {
        assert_eq!(parse_preset("medium"), Ok(Preset::Medium));
        assert!(parse_preset("placebo").is_err());
    }
}
