//! A room's composite against the ffmpeg CLI composing the same participants, in one run.
//!
//! Four participants are made here with the ffmpeg CLI the way a browser publishes them: 20 s
//! WebM files of 720p30 VP8 (libvpx realtime, `-cpu-used 8`, 1.5 Mb/s, a key frame every
//! 2.5 s) and 48 kHz Opus in 20 ms frames, each `testsrc2` in a hue of its own with a tone of
//! its own. Both sides compose them into a 1080p30 grid, mix their audio, and put the canvas
//! through the default live ladder planned for a 1080p source (x264 with the same preset,
//! bitrates and VBV, 2 s IDRs), HLS fMP4 on disk:
//!
//! - Sluice, in process: the files' VP8 frames and Opus packets go into one [`Compositor`] on
//!   a synthetic clock, each arriving at `start +` its media time, so nothing sleeps and the
//!   run goes as fast as the CPU allows. Its canvas pictures go into the [`LiveTranscoder`] as
//!   a raw source with [`WhenBehind::Wait`] (nothing is dropped), the rungs and the AAC mix
//!   into the live packager.
//! - The ffmpeg CLI: the four files decoded, each scaled to its tile of the compositor's grid,
//!   `xstack` onto the canvas, split into the same rungs, `amix` into AAC, HLS fMP4.
//!
//! Each side is measured in CPU-seconds per second of media (user + system, all threads) and
//! speed (media seconds per wall second). Two more rows, the composition alone (Sluice's
//! compositor with its pictures dropped; the ffmpeg CLI's canvas and mix into the null muxer),
//! show how much of each side is the composition and how much the ladder.
//!
//! Usage: `cargo bench --locked --bench room_composite [-- --preset veryfast]` (the default
//! preset is the live default, superfast).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc::{self, Sender};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use common::{
    cpu_seconds, directory_packager, ffmpeg_composed_ladder_command, num_cores, preset_argument,
    run, targets,
};
use sluice_compositor::layout::{self, Tile};
use sluice_compositor::{
    Compositor, CompositorSettings, Layout, Member, Output, VideoCodec, PLAYOUT_DELAY,
};
use sluice_live::config::DEFAULT_LIVE_PRESET;
use sluice_live::renditions::{AudioInput, PackagingInput, VideoRenditionPlan};
use sluice_media::{Packet, Timebase, TrackKind};
use sluice_transcoder::{
    plan, EncoderSettings, FileDemuxer, Ladder, LiveTranscoder, PlannedRung, Preset, ProbeLimits,
    VideoSource, WhenBehind,
};

const PARTICIPANTS: usize = 4;
const MEDIA_SECONDS: u32 = 20;
const CANVAS_WIDTH: u32 = 1920;
const CANVAS_HEIGHT: u32 = 1080;
const FRAME_RATE: u32 = 30;
/// The compositor's AAC mix: stereo at 64 kb/s a channel.
const MIX_BITRATE: &str = "128k";
/// Raw canvas pictures (3 MB each at 1080p) waiting for the ladder, as in a live session.
const RAW_PICTURE_QUEUE: usize = 8;
/// Nanoseconds: the clock the arrivals are placed on.
const NANOS: Timebase = Timebase(1_000_000_000);

struct Measurement {
    cpu_seconds: f64,
    wall_seconds: f64,
}

impl Measurement {
    fn cpu_per_media_second(&self) -> f64 {
        self.cpu_seconds / f64::from(MEDIA_SECONDS)
    }

    fn speed(&self) -> f64 {
        f64::from(MEDIA_SECONDS) / self.wall_seconds
    }
}

/// Measures `work`: CPU (of this process, or of the children it waits for) and wall time.
fn measure(who: libc::c_int, work: impl FnOnce()) -> Measurement {
    let cpu_before = cpu_seconds(who);
    let started = Instant::now();
    work();
    Measurement {
        wall_seconds: started.elapsed().as_secs_f64(),
        cpu_seconds: cpu_seconds(who) - cpu_before,
    }
}

/// Participant `index`'s WebM file, as a browser would send it: VP8 in real-time mode with no
/// frames held back, Opus in 20 ms frames.
fn make_participant(dir: &Path, index: usize) -> PathBuf {
    let path = dir.join(format!("participant-{index}.webm"));
    let hue = index * 360 / PARTICIPANTS;
    let tone = 330 + 110 * index;
    run(Command::new("ffmpeg")
        .args(["-hide_banner", "-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!(
            "testsrc2=size=1280x720:rate={FRAME_RATE}:duration={MEDIA_SECONDS},hue=h={hue}"
        ))
        .args(["-f", "lavfi", "-i"])
        .arg(format!(
            "sine=frequency={tone}:sample_rate=48000:duration={MEDIA_SECONDS}"
        ))
        .args(["-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8"])
        .args(["-b:v", "1500k", "-g", "75", "-lag-in-frames", "0"])
        .args(["-pix_fmt", "yuv420p", "-c:a", "libopus", "-b:a", "32k"])
        .args(["-frame_duration", "20", "-ac", "2"])
        .arg(&path));
    path
}

/// The compositor's members: participant `index` publishes a camera and a microphone.
fn members() -> Vec<Member> {
    (0..PARTICIPANTS)
        .map(|index| Member {
            id: format!("participant-{index}"),
            name: format!("Participant {}", index + 1),
            camera: Some(camera_track(index)),
            screen_share: None,
            microphone: Some(microphone_track(index)),
        })
        .collect()
}

fn camera_track(index: usize) -> String {
    format!("participant-{index}-camera")
}

fn microphone_track(index: usize) -> String {
    format!("participant-{index}-microphone")
}

/// The canvas's tiles, where the compositor's grid places the members.
fn grid_tiles() -> Vec<Tile> {
    layout::place(Layout::Grid, CANVAS_WIDTH, CANVAS_HEIGHT, &members(), None)
}

/// The ffmpeg CLI's composition of the participants (inputs in member order), as a
/// filtergraph: each picture scaled to its tile, the tiles stacked on a black canvas
/// (`[canvas]`), the tones mixed (`[mix]`).
fn ffmpeg_canvas_graph() -> String {
    let tiles = grid_tiles();
    let mut graph = String::new();
    for tile in &tiles {
        graph.push_str(&format!(
            "[{}:v]scale={}:{}[t{}];",
            tile.member, tile.rect.width, tile.rect.height, tile.member
        ));
    }
    let stacked: String = tiles
        .iter()
        .map(|tile| format!("[t{}]", tile.member))
        .collect();
    let positions: Vec<String> = tiles
        .iter()
        .map(|tile| format!("{}_{}", tile.rect.x, tile.rect.y))
        .collect();
    // xstack's picture ends at the last tile: the pad restores the right and bottom margins.
    graph.push_str(&format!(
        "{stacked}xstack=inputs={}:layout={}:fill=black,pad={CANVAS_WIDTH}:{CANVAS_HEIGHT}:0:0:black[canvas];",
        tiles.len(),
        positions.join("|")
    ));
    let tones: String = (0..PARTICIPANTS)
        .map(|index| format!("[{index}:a]"))
        .collect();
    graph.push_str(&format!("{tones}amix=inputs={PARTICIPANTS}[mix]"));
    graph
}

/// The ffmpeg CLI: composition, ladder and AAC mix into HLS fMP4.
fn ffmpeg_composite(participants: &[&Path], rungs: &[PlannedRung], preset: &str, out: &Path) {
    let targets = targets(rungs);
    let mut command =
        ffmpeg_composed_ladder_command(participants, &ffmpeg_canvas_graph(), &targets, preset);
    let mut stream_map: Vec<String> = (0..targets.len())
        .map(|index| format!("v:{index},agroup:mix"))
        .collect();
    stream_map.push("a:0,agroup:mix".to_owned());
    command
        .args(["-map", "[mix]", "-c:a", "aac", "-b:a", MIX_BITRATE])
        .args(["-f", "hls", "-hls_time", "2", "-hls_playlist_type", "vod"])
        .args([
            "-hls_segment_type",
            "fmp4",
            "-var_stream_map",
            &stream_map.join(" "),
        ])
        .args(["-master_pl_name", "master.m3u8", "-hls_segment_filename"])
        .arg(out.join("v%v-%d.m4s"))
        .arg(out.join("v%v.m3u8"));
    run(&mut command);
}

/// The ffmpeg CLI's composition alone: the canvas and the AAC mix into the null muxer.
fn ffmpeg_composition_alone(participants: &[&Path]) {
    let mut command = Command::new("ffmpeg");
    command.args(["-hide_banner", "-v", "error", "-y"]);
    for participant in participants {
        command.arg("-i").arg(participant);
    }
    command
        .args(["-filter_complex", &ffmpeg_canvas_graph()])
        .args(["-map", "[canvas]", "-map", "[mix]"])
        .args(["-c:a", "aac", "-b:a", MIX_BITRATE, "-f", "null", "-"]);
    run(&mut command);
}

/// A participant's packet and when it arrives, counted from the composite's start.
struct Arrival {
    participant: usize,
    at: Duration,
    packet: Packet,
}

/// Every participant's VP8 frames and Opus packets, in arrival order.
fn arrivals(participants: &[&Path]) -> Vec<Arrival> {
    let mut arrivals = Vec::new();
    for (participant, path) in participants.iter().enumerate() {
        let mut demuxer = FileDemuxer::open(path, &ProbeLimits::default()).expect("open WebM");
        arrivals.extend(demuxer.packets().map(|packet| Arrival {
            participant,
            at: Duration::from_nanos(packet.pts_time().rescale(NANOS).ticks.max(0) as u64),
            packet,
        }));
    }
    arrivals.sort_by_key(|arrival| arrival.at);
    arrivals
}

/// The RTP timestamp a sender would give `packet`, on the clock `rate`.
fn rtp_time(packet: &Packet, rate: Timebase) -> u32 {
    packet.pts_time().rescale(rate).ticks as u32
}

/// The live ladder a composite publishes to, with the packager writing its HLS tree.
struct LiveLadder {
    transcoder: LiveTranscoder,
    audio: Sender<PackagingInput>,
    rungs_forwarder: JoinHandle<()>,
    packager: JoinHandle<()>,
}

impl LiveLadder {
    fn start(rungs: Vec<PlannedRung>, preset: Preset, compositor: &Compositor, out: &Path) -> Self {
        let settings = EncoderSettings {
            preset,
            when_behind: WhenBehind::Wait,
            packet_queue: RAW_PICTURE_QUEUE,
            ..EncoderSettings::default()
        };
        let plans = rungs
            .iter()
            .map(|rung| VideoRenditionPlan {
                name: rung.name().to_owned(),
                frame_rate: f64::from(FRAME_RATE),
            })
            .collect();
        let source = VideoSource::Raw {
            width: CANVAS_WIDTH,
            height: CANVAS_HEIGHT,
        };
        let (transcoder, outputs) = LiveTranscoder::start(source, rungs, settings).expect("start");
        let (inputs, packaging) = mpsc::channel();
        let rung_inputs = inputs.clone();
        let rungs_forwarder = thread::spawn(move || {
            for input in outputs.into_iter().filter_map(PackagingInput::from_rung) {
                rung_inputs.send(input).expect("packager running");
            }
        });
        let mut packager = directory_packager(
            out,
            plans,
            Some(AudioInput::PassThrough(compositor.audio_config().clone())),
        );
        // The live packager, on a thread of its own as in a session.
        let packager = thread::spawn(move || {
            for input in packaging {
                packager.handle(input, chrono::Utc::now());
            }
            packager.finish();
        });
        LiveLadder {
            transcoder,
            audio: inputs,
            rungs_forwarder,
            packager,
        }
    }

    fn take(&self, outputs: Vec<Output>) {
        for output in outputs {
            match output {
                Output::Picture(picture) => self.transcoder.push(picture).expect("push"),
                Output::Audio(packet) => self
                    .audio
                    .send(PackagingInput::Audio(packet))
                    .expect("packager running"),
            }
        }
    }

    fn finish(self) {
        let stats = self.transcoder.finish();
        assert_eq!(
            stats.packets_dropped, 0,
            "nothing is dropped with WhenBehind::Wait"
        );
        drop(self.audio);
        self.rungs_forwarder.join().expect("forwarder thread");
        self.packager.join().expect("packager thread");
    }
}

/// Sluice: the participants' files read, composed on a synthetic clock, and (with `ladder`,
/// the rungs and their preset) published through the live ladder to HLS under `out`; without
/// it the canvas pictures and the mix are dropped.
fn sluice_composite(
    participants: &[&Path],
    ladder: Option<(Vec<PlannedRung>, Preset)>,
    out: &Path,
) {
    let arrivals = arrivals(participants);
    let start = Instant::now();
    let settings = CompositorSettings {
        width: CANVAS_WIDTH,
        height: CANVAS_HEIGHT,
        frame_rate: FRAME_RATE,
        layout: Layout::Grid,
    };
    let mut compositor = Compositor::new(settings, start).expect("compositor");
    compositor.set_members(members());
    let live = ladder.map(|(rungs, preset)| LiveLadder::start(rungs, preset, &compositor, out));
    let publish = |outputs: Vec<Output>| {
        if let Some(live) = &live {
            live.take(outputs);
        }
    };
    for Arrival {
        participant,
        at,
        packet,
    } in arrivals
    {
        let now = start + at;
        match packet.kind {
            TrackKind::Video => {
                let rtp_time = rtp_time(&packet, Timebase::MPEG);
                let track = camera_track(participant);
                let codec = VideoCodec::Vp8;
                compositor.push_video(&track, codec, packet.data, packet.keyframe, rtp_time, now)
            }
            TrackKind::Audio => {
                let rtp_time = rtp_time(&packet, Timebase(48_000));
                let track = microphone_track(participant);
                compositor.push_audio(&track, rtp_time, packet.data, now)
            }
        }
        publish(compositor.poll(now));
    }
    // The last picture shows the instant one frame before the end of the media.
    let end = start + Duration::from_secs(MEDIA_SECONDS.into()) + PLAYOUT_DELAY;
    publish(compositor.poll(end - Duration::from_nanos(1)));
    assert_eq!(
        compositor.skipped_pictures(),
        0,
        "a synthetic clock never lags"
    );
    publish(compositor.finish());
    if let Some(live) = live {
        live.finish();
    }
}

fn main() {
    let (preset_name, preset) = preset_argument(DEFAULT_LIVE_PRESET);
    let work = tempfile::tempdir().expect("temp dir");
    let files: Vec<PathBuf> = (0..PARTICIPANTS)
        .map(|index| make_participant(work.path(), index))
        .collect();
    let participants: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let mut rungs = plan(
        &Ladder::DEFAULT,
        CANVAS_WIDTH,
        CANVAS_HEIGHT,
        Some(f64::from(FRAME_RATE)),
    )
    .expect("plan");
    // Raw pictures have nothing to repackage: only encoded rungs, as the live pipeline plans.
    rungs.retain(|rung| matches!(rung, PlannedRung::Encode(_)));
    let names: Vec<&str> = rungs.iter().map(PlannedRung::name).collect();
    let (ffmpeg_out, sluice_out) = (work.path().join("ffmpeg"), work.path().join("sluice"));
    std::fs::create_dir_all(&ffmpeg_out).expect("mkdir");
    std::fs::create_dir_all(&sluice_out).expect("mkdir");

    let ffmpeg = measure(libc::RUSAGE_CHILDREN, || {
        ffmpeg_composite(&participants, &rungs, &preset_name, &ffmpeg_out)
    });
    let sluice = measure(libc::RUSAGE_SELF, || {
        sluice_composite(&participants, Some((rungs.clone(), preset)), &sluice_out)
    });
    let ffmpeg_composition = measure(libc::RUSAGE_CHILDREN, || {
        ffmpeg_composition_alone(&participants)
    });
    let sluice_composition = measure(libc::RUSAGE_SELF, || {
        sluice_composite(&participants, None, &sluice_out)
    });

    println!(
        "Room composite: {PARTICIPANTS} participants (720p30 VP8 + Opus, {MEDIA_SECONDS} s) into \
         {CANVAS_WIDTH}x{CANVAS_HEIGHT}@{FRAME_RATE}, ladder {} (x264 {preset_name}), {} cores",
        names.join(" "),
        num_cores()
    );
    println!();
    println!("| run | ffmpeg CLI CPU-s/s | Sluice CPU-s/s | Sluice / ffmpeg CPU | ffmpeg speed | Sluice speed |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for (run, ffmpeg, sluice) in [
        ("composite + ladder + HLS", &ffmpeg, &sluice),
        (
            "composition alone",
            &ffmpeg_composition,
            &sluice_composition,
        ),
    ] {
        println!(
            "| {run} | {:.2} | {:.2} | {:.2} | {:.2}x | {:.2}x |",
            ffmpeg.cpu_per_media_second(),
            sluice.cpu_per_media_second(),
            sluice.cpu_seconds / ffmpeg.cpu_seconds,
            ffmpeg.speed(),
            sluice.speed(),
        );
    }
}
