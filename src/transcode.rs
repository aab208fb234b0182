//! `sluice transcode INPUT -o OUTDIR`: one local file through the live ladder, written as a
//! video-on-demand HLS tree, without a server.
//!
//! The file is probed first (`sluice_transcoder::probe`: local file only, no playlist
//! demuxers, limits on size, duration, streams and picture size), then transcoded by
//! [`FileTranscode`] and packaged by [`sluice_assets::package`] into OUTDIR (the tree the server
//! writes for an asset: `master.m3u8`, `v{N}/` with media and I-frame playlists, `a0/`), plus:
//!
//! ```text
//! OUTDIR/poster.jpg             the poster frame (see `sluice_transcoder::poster_time`), at
//!                               the source's display size, scaled to 1920 wide when its
//!                               coded width is larger (video only)
//! OUTDIR/storyboard.jpg         seek-preview sprite: tiles 160 on their longer side, 10 a row
//! OUTDIR/storyboard.vtt         WebVTT cues pointing at the sprite's tiles (`#xywh=`)
//! ```
//!
//! The tree is built in a hidden directory next to OUTDIR and moved into place only once it
//! is complete, so a failed run leaves no partial files behind. OUTDIR must be absent or empty.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use sluice_media::VideoCodec;
use sluice_transcoder::{
    encodable_codec, EncoderSettings, FileTranscode, Ladder, Preset, ProbeLimits,
};

use sluice_packager::MASTER_PLAYLIST;

use sluice_assets::package::{
    package, write_pictures, DirectoryOutput, PackageObserver, SegmentPlan,
};

/// Apple's recommended VOD segment duration (HLS Authoring Spec §1.10).
const DEFAULT_SEGMENT_SECONDS: u32 = 6;

/// `sluice transcode`'s arguments.
#[derive(Debug, clap::Args)]
pub struct TranscodeArgs {
    /// The media file to transcode (MP4/MOV, Matroska/WebM, FLV, …; video in any codec FFmpeg
    /// decodes).
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
    Ladder::from_request(&value).map_err(|message| anyhow::anyhow!("--ladder: {message}"))
}

/// Runs the command.
pub fn run(args: TranscodeArgs) -> anyhow::Result<()> {
    let ladder = parse_ladder(args.ladder.as_deref())?;
    let segments = SegmentPlan::new(Duration::from_secs(u64::from(args.segment_seconds)));
    let settings = EncoderSettings {
        preset: args.preset,
        keyframe_interval: segments.keyframe_interval(),
        // Rungs already run in parallel; x264 picks its own thread count per rung for files.
        threads_per_rung: 0,
        codecs: args.codecs,
        ..EncoderSettings::default()
    };
    let limits = ProbeLimits::default();
    // OUTDIR is checked before any work starts; the working directory goes away with
    // `staging` on any error, so a refused file leaves nothing on disk.
    let staging = Staging::create(&args.output)?;
    let started = Instant::now();
    let (transcode, events) = FileTranscode::start(&args.input, &ladder, settings, &limits)
        .with_context(|| format!("cannot transcode {}", args.input.display()))?;

    let report = transcode.report().clone();
    let mut progress = Progress::new(report.duration);
    let mut output = DirectoryOutput::new(staging.path());
    let packaged = package(transcode, events, segments, &mut output, &mut progress)
        .with_context(|| format!("cannot transcode {}", args.input.display()))?;
    let mut summary = packaged.summary();
    if let Some(video) = &report.video {
        progress.phase("poster and storyboard");
        let storyboard = report.duration.is_some();
        write_pictures(&args.input, &limits, video.width, storyboard, &mut output)?;
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
        args.output.join(MASTER_PLAYLIST).display(),
        media / elapsed.max(1e-3),
    );
    Ok(())
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

impl PackageObserver for Progress {
    /// Media time transcoded so far.
    fn progress(&mut self, done: Duration) -> bool {
        let done_ms = done.as_millis() as u64;
        if done_ms > self.bar.position() {
            self.bar.set_position(done_ms);
            let speed = done.as_secs_f64() / self.started.elapsed().as_secs_f64().max(1e-3);
            self.bar.set_message(format!("{speed:.1}× real time"));
        }
        true
    }

    /// Nothing to do: the tree is moved into place only once it is complete.
    fn playable(&mut self) {}
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
