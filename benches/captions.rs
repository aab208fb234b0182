//! `cargo bench --locked --bench captions [-- MODE [MAX]]`: live captions on a real
//! `sluice serve` (release). How long after a phrase is spoken at the ingest its cue is in the
//! live subtitle playlist, what captioning one stream costs the server in CPU, and how many
//! captioned streams this machine holds. MODE is the streams' latency mode: `standard` (the
//! default), `reduced` or `low`; MAX the most streams published at once (default 8). Results in
//! docs/BENCHMARKS.md.
//!
//! - **The talk**: [`SENTENCES`], each spoken by espeak-ng (`-v en-us -s 130`) into a WAV file
//!   of its own, joined here after [`LEAD_IN_S`] of silence with [`GAPS_S`] of silence added
//!   between them in turn (espeak-ng's own silence at either end makes the pauses longer) and
//!   [`TAIL_S`] at the end, so where each phrase starts and ends in the talk is known to the
//!   sample (the first and last samples louder than [`SPEECH_LEVEL`]). The ffmpeg
//!   CLI muxes it with a 320x180 `testsrc2` picture (x264 ultrafast, a key frame every 2 s) as
//!   AAC (96 kb/s, 48 kHz) into FLV, whose timestamps are the ones published; the AAC encoder's
//!   priming delays both tracks by the video's start time (about 21 ms), which ffprobe reads and
//!   which is added to the phrase times to put them on the media timeline.
//! - **Publishing**: `ffmpeg -re -i talk.flv -c copy -f flv rtmp://…` to live streams with the
//!   passthrough ladder (`["source"]`, so no transcoding competes with the recogniser), the
//!   latency mode MODE (standard: 2 s segments; reduced and low: 1 s), `reconnect_window_s: 0`
//!   (the session ends when the publisher does) and `"captions": {"language": "en"}`. A short
//!   captioned publish first loads the speech engine, so no measured stream pays for loading it.
//! - **Caption delay**: each stream's subtitle playlist (`/hls/{playback_id}/subs/en/index.m3u8`)
//!   is read every [`POLL_EVERY`] until it ends, every new segment fetched, and each cue noted
//!   with the wall-clock time its segment had arrived. Media time 0 is placed on the wall clock
//!   from the server's own stamp: the `EXT-X-PROGRAM-DATE-TIME` of the first segment is the
//!   time the first packet of the session reached the packager plus the segment's media start
//!   (the first video timestamp), so the phrase's end reached the ingest at that stamp minus
//!   the video's start time plus the phrase's end on the media timeline. (The time ffmpeg was
//!   started is printed beside it as a check: the difference is ffmpeg's start-up and the RTMP
//!   handshake.) A phrase's cue is the first cue seen that overlaps its last [`PHRASE_TAIL_S`]
//!   (the cue carrying its last words), or, when none does, the overlapping cue that ends last;
//!   its delay is the time that cue was seen minus the time the phrase ended at the ingest, so
//!   it includes up to [`POLL_EVERY`] of polling. A phrase without an overlapping cue has no
//!   cue; coverage is the share of phrases with one. Words recalled is the share of the talk's
//!   distinct words of four letters or more found in the cues, a check on what the cues say.
//! - **CPU**: user + system time of the server process (`/proc/{pid}/stat`) from just before the
//!   publishers start until the server is idle again after the sessions end (the recogniser's
//!   last lines included), per second of media published; the talk is published once to a
//!   stream with captions and once to one without, on the same server, and the difference is
//!   what captioning costs. The machine's busy time (`/proc/stat`, every core) is measured over
//!   the same span, so that what other processes used (the publishers, this bench, anything
//!   else running) is reported beside the server's share.
//! - **Capacity**: the talk published to N captioned streams at once (N = 2, 4, 8, … up to MAX
//!   after the single stream above; all start together, so they speak at the same moments),
//!   stopping at the first N that misses the bar. The machine holds the largest N whose caption delay p90
//!   stays under [`DELAY_P90_LIMIT_S`] with at least [`MIN_COVERAGE`] of the phrases captioned.
//!
//! Each stream's phrases and cues are written to `target/tmp/captions/` for reading. The whole
//! bench takes about 13 minutes (MAX 8; 16 adds about 3).

mod common;

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::speech::spoken;
use common::{process_cpu_seconds, BenchServer};
use futures_util::future::join_all;
use serde_json::json;
use sluice_transcribe::{Moonshine, DEFAULT_LIBRARY_DIR};

/// What the talk says, one phrase per sentence: everyday English without digits, of varied
/// length and sound.
const SENTENCES: [&str; 25] = [
    "The river runs quietly past the old stone mill every morning.",
    "Our neighbours painted their front door a bright shade of yellow.",
    "Please remember to bring a warm jacket because the evening will be cold.",
    "The library opens late on Thursdays so students can finish their projects.",
    "A small brown dog chased the ball across the wet green field.",
    "Fresh bread from the corner bakery smells wonderful before sunrise.",
    "The train to the coast leaves from the second platform.",
    "She planted tulips and daffodils along the garden fence last autumn.",
    "Heavy clouds gathered over the mountains and the wind began to howl.",
    "Our team meets every Monday to plan the work for the week ahead.",
    "The museum has a new exhibition about ancient ships and sailors.",
    "He poured a cup of strong coffee and opened the morning newspaper.",
    "Children laughed as the puppet show began in the village square.",
    "The bridge was closed for repairs so we took the longer road home.",
    "Bright lanterns hung from the trees during the summer festival.",
    "A gentle rain fell through the night and washed the streets clean.",
    "The chef added garlic, lemon and a little pepper to the soup.",
    "Visitors should keep to the marked paths inside the nature reserve.",
    "The old clock in the hallway stopped exactly at midnight.",
    "We watched the sailboats drift slowly across the calm blue lake.",
    "Her grandmother taught her how to knit scarves and thick woollen socks.",
    "The concert was moved indoors because of the storm warning.",
    "Farmers brought apples, honey and fresh cheese to the weekend market.",
    "A quiet owl watched the travellers from a branch above the trail.",
    "Thank you for listening and have a pleasant evening.",
];
/// Silence before the first phrase, in seconds.
const LEAD_IN_S: f64 = 2.0;
/// Silence after each phrase but the last, in seconds, taken in turn.
const GAPS_S: [f64; 3] = [0.7, 1.0, 1.3];
/// Silence after the last phrase, in seconds: enough for its line to end and its segment to
/// close while the stream is live.
const TAIL_S: f64 = 4.0;
/// A sample louder than this (of 32,767) is speech: where a phrase starts and ends.
const SPEECH_LEVEL: i16 = 300;
/// The part of a phrase the cue that carries its last words overlaps, in seconds.
const PHRASE_TAIL_S: f64 = 0.5;
/// How often each subtitle playlist is read.
const POLL_EVERY: Duration = Duration::from_millis(100);
/// How long a subtitle playlist may take to end after its publisher stopped.
const END_WAIT: Duration = Duration::from_secs(60);
/// What the warm-up publishes of the talk, in seconds.
const WARM_UP_S: u32 = 12;
/// The caption delay p90 a held stream count stays under, in seconds.
const DELAY_P90_LIMIT_S: f64 = 5.0;
/// The share of phrases a held stream count captions.
const MIN_COVERAGE: f64 = 0.9;
/// The most streams published at once, unless MAX says otherwise.
const DEFAULT_MAX_STREAMS: usize = 8;
/// The server is idle when it uses less than this many CPU-seconds per second.
const IDLE_CPU: f64 = 0.03;
/// Where the phrases and cues of each stream are written.
const OUTPUT_DIR: &str = concat!(env!("CARGO_TARGET_TMPDIR"), "/captions");
/// What installs the tools this bench drives.
const INSTALL: &str = "scripts/install-deps.sh bench";

/// One spoken phrase, in seconds of the talk's audio.
struct Phrase {
    text: &'static str,
    start_s: f64,
    end_s: f64,
}

/// The talk to publish and what is known of it.
struct Talk {
    /// The FLV file published.
    file: PathBuf,
    phrases: Vec<Phrase>,
    /// How long it lasts, in seconds.
    duration_s: f64,
    /// Where the talk's audio starts on the media timeline (the video's start time), seconds.
    media_offset_s: f64,
}

/// A cue as it was first seen in a subtitle playlist.
struct SeenCue {
    /// Media seconds.
    start_s: f64,
    end_s: f64,
    text: String,
    /// Wall-clock seconds (Unix time) when its segment had been fetched.
    seen_at: f64,
}

/// What was seen of one stream while its talk was published.
struct Watched {
    playback_id: String,
    /// Wall-clock seconds when its publisher was started.
    spawned_at: f64,
    /// Wall-clock seconds of `EXT-X-PROGRAM-DATE-TIME` of its first subtitle segment.
    first_segment_at: Option<f64>,
    cues: Vec<SeenCue>,
}

/// One publish of the talk to one or more streams at once.
struct Publish {
    streams: Vec<Watched>,
    /// Server CPU-seconds from the publishers' start until it was idle again.
    cpu_s: f64,
    /// Busy CPU-seconds of the whole machine over the same time.
    machine_cpu_s: f64,
    /// Wall seconds from the publishers' start until the last playlist ended.
    wall_s: f64,
}

/// Caption delays and coverage of one or more streams of a publish.
struct Delays {
    /// Seconds, one per phrase that got a cue.
    delays: Vec<f64>,
    /// Phrases published (phrases × streams).
    phrases: usize,
    /// Share of the talk's distinct words found in the cues (the mean over streams).
    recall: f64,
}

impl Delays {
    fn coverage(&self) -> f64 {
        self.delays.len() as f64 / self.phrases as f64
    }

    fn percentile(&self, p: f64) -> f64 {
        percentile(&self.delays, p)
    }

    /// Whether this meets the bar for the streams to be held.
    fn holds(&self) -> bool {
        !self.delays.is_empty()
            && self.percentile(0.9) < DELAY_P90_LIMIT_S
            && self.coverage() >= MIN_COVERAGE
    }
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with('-'))
        .collect();
    let mode = args.first().map_or("standard", String::as_str).to_owned();
    assert!(
        ["standard", "reduced", "low"].contains(&mode.as_str()),
        "MODE is standard, reduced or low, not {mode:?}"
    );
    let max_streams: usize = args.get(1).map_or(DEFAULT_MAX_STREAMS, |max| {
        max.parse().expect("MAX is a whole number of streams")
    });
    require("espeak-ng", "--version");
    require("ffmpeg", "-version");
    require("ffprobe", "-version");
    if let Err(e) = Moonshine::check_installed(Path::new(DEFAULT_LIBRARY_DIR)) {
        panic!("the speech engine is missing ({e}): `{INSTALL}` installs it");
    }
    let work = tempfile::tempdir().expect("temporary directory");
    let talk = make_talk(work.path());
    println!(
        "talk: {} phrases, {:.1} s, media offset {:.3} s; latency mode {mode}",
        talk.phrases.len(),
        talk.duration_s,
        talk.media_offset_s
    );
    std::fs::create_dir_all(OUTPUT_DIR).expect("output directory");
    let bench = Bench {
        server: BenchServer::start(&work.path().join("data")),
        client: reqwest::Client::new(),
        talk,
        mode,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");

    // Loads the speech engine (once per process) so that no measured stream waits for it.
    runtime.block_on(bench.publish(1, true, Some(WARM_UP_S)));

    let captioned = runtime.block_on(bench.publish(1, true, None));
    for stream in &captioned.streams {
        if let Some(first) = stream.first_segment_at {
            println!(
                "media time 0 reached the packager {:.3} s after ffmpeg was started",
                first - bench.talk.media_offset_s - stream.spawned_at
            );
        }
    }
    let mut capacity = vec![Row::of(&bench.talk, &captioned)];
    println!("{}", capacity[0].line());
    let plain = runtime.block_on(bench.publish(1, false, None));
    let mut streams = 2;
    while capacity.last().is_some_and(|row| row.delays.holds()) && streams <= max_streams {
        let run = runtime.block_on(bench.publish(streams, true, None));
        capacity.push(Row::of(&bench.talk, &run));
        println!("{}", capacity[capacity.len() - 1].line());
        streams *= 2;
    }

    let per_media_s = |run: &Publish| run.cpu_s / bench.talk.duration_s;
    println!(
        "\n| one stream | server CPU-s per media second | server CPU-s over the run | run (s) |\n| --- | --- | --- | --- |"
    );
    for (name, run) in [("without captions", &plain), ("with captions", &captioned)] {
        println!(
            "| {name} | {:.3} | {:.1} | {:.0} |",
            per_media_s(run),
            run.cpu_s,
            run.wall_s
        );
    }
    println!(
        "| captions alone (difference) | {:.3} | {:.1} | |",
        per_media_s(&captioned) - per_media_s(&plain),
        captioned.cpu_s - plain.cpu_s
    );
    println!(
        "\n| captioned streams at once | caption delay p50 (s) | p90 (s) | max (s) | phrases with a cue | words recalled | server CPU (cores) | other processes (cores) | held |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    );
    for row in &capacity {
        println!(
            "| {} | {} | {} |",
            row.streams,
            row.cells(),
            if row.delays.holds() { "yes" } else { "no" }
        );
    }
    let held = capacity
        .iter()
        .take_while(|row| row.delays.holds())
        .last()
        .map_or(0, |row| row.streams);
    let bar = format!(
        "caption delay p90 under {DELAY_P90_LIMIT_S} s, at least {:.0} % of phrases with a cue",
        MIN_COVERAGE * 100.0
    );
    if held * 2 > max_streams {
        println!(
            "\nThis machine holds at least {held} captioned streams ({bar}; no more were tried)."
        );
    } else {
        println!("\nThis machine holds {held} captioned stream(s) ({bar}).");
    }
}

/// What every publish of the bench shares.
struct Bench {
    server: BenchServer,
    client: reqwest::Client,
    talk: Talk,
    /// The live streams' latency mode.
    mode: String,
}

/// One line of the capacity table: a publish to one or more captioned streams.
struct Row {
    streams: usize,
    delays: Delays,
    /// Server CPU-seconds per wall second over the publish.
    server_cores: f64,
    /// CPU-seconds per wall second of every other process on the machine (the publishers,
    /// this bench, and whatever else ran).
    other_cores: f64,
}

impl Row {
    fn of(talk: &Talk, run: &Publish) -> Self {
        Row {
            streams: run.streams.len(),
            delays: delays(talk, run),
            server_cores: run.cpu_s / run.wall_s,
            other_cores: (run.machine_cpu_s - run.cpu_s) / run.wall_s,
        }
    }

    /// Its cells but the first and last.
    fn cells(&self) -> String {
        format!(
            "{} | {:.2} | {:.2}",
            row_cells(&self.delays),
            self.server_cores,
            self.other_cores
        )
    }

    /// What is printed as the run ends.
    fn line(&self) -> String {
        format!("{} captioned stream(s): {}", self.streams, self.cells())
    }
}

/// Fails clearly when `tool` does not run.
fn require(tool: &str, version_arg: &str) {
    let runs = Command::new(tool)
        .arg(version_arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    assert!(runs, "{tool} is missing: `{INSTALL}` installs it");
}

/// The delay, coverage and recall cells of a table row.
fn row_cells(delays: &Delays) -> String {
    let seconds = |p: f64| {
        if delays.delays.is_empty() {
            "–".to_owned()
        } else {
            format!("{:.2}", delays.percentile(p))
        }
    };
    format!(
        "{} | {} | {} | {} of {} ({:.0} %) | {:.0} %",
        seconds(0.5),
        seconds(0.9),
        seconds(1.0),
        delays.delays.len(),
        delays.phrases,
        delays.coverage() * 100.0,
        delays.recall * 100.0
    )
}

/// The talk: [`SENTENCES`] spoken one by one, joined with known silences, muxed with a test
/// picture into `dir/talk.flv`.
fn make_talk(dir: &Path) -> Talk {
    let mut rate = None;
    let mut samples: Vec<i16> = Vec::new();
    let mut phrases = Vec::new();
    for (index, text) in SENTENCES.iter().enumerate() {
        let wav = spoken(dir, text);
        let (sentence_rate, spoken) = read_wav(&wav);
        std::fs::remove_file(&wav).expect("remove a sentence's WAV");
        let rate = *rate.get_or_insert(sentence_rate);
        assert_eq!(rate, sentence_rate, "espeak-ng speaks at one sample rate");
        let silence = |seconds: f64| vec![0; (seconds * f64::from(rate)).round() as usize];
        samples.extend(silence(if index == 0 {
            LEAD_IN_S
        } else {
            GAPS_S[(index - 1) % GAPS_S.len()]
        }));
        let loud = |sample: &i16| sample.unsigned_abs() > SPEECH_LEVEL.unsigned_abs();
        let first = spoken.iter().position(loud).expect("espeak-ng spoke");
        let last = spoken.iter().rposition(loud).expect("espeak-ng spoke");
        let at = |sample: usize| (samples.len() + sample) as f64 / f64::from(rate);
        phrases.push(Phrase {
            text,
            start_s: at(first),
            end_s: at(last + 1),
        });
        samples.extend(&spoken);
    }
    let rate = rate.expect("a sentence");
    samples.extend(vec![0; (TAIL_S * f64::from(rate)).round() as usize]);
    let duration_s = samples.len() as f64 / f64::from(rate);
    let wav = dir.join("talk.wav");
    write_wav(&wav, rate, &samples);
    let file = dir.join("talk.flv");
    common::run(
        Command::new("ffmpeg")
            .args(["-hide_banner", "-v", "error", "-y", "-f", "lavfi", "-i"])
            .arg(format!(
                "testsrc2=size=320x180:rate=15:duration={duration_s:.3}"
            ))
            .arg("-i")
            .arg(&wav)
            .args(["-c:v", "libx264", "-preset", "ultrafast", "-g", "30"])
            .args(["-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "96k"])
            .args(["-ar", "48000", "-f", "flv"])
            .arg(&file),
    );
    std::fs::remove_file(&wav).expect("remove the talk's WAV");
    let probe = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0"])
        .args(["-show_entries", "stream=start_time", "-of", "csv=p=0"])
        .arg(&file)
        .output()
        .expect("ffprobe runs");
    let media_offset_s = String::from_utf8_lossy(&probe.stdout)
        .trim()
        .parse()
        .expect("the video's start time");
    Talk {
        file,
        phrases,
        duration_s,
        media_offset_s,
    }
}

/// The sample rate and samples of a 16-bit mono PCM WAV file (as espeak-ng writes).
fn read_wav(path: &Path) -> (u32, Vec<i16>) {
    let bytes = std::fs::read(path).expect("read a WAV file");
    assert!(
        bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WAVE",
        "{} is not a WAV file",
        path.display()
    );
    let mut rate = None;
    let mut at = 12;
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let size = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
        let body = &bytes[at + 8..(at + 8 + size).min(bytes.len())];
        match id {
            b"fmt " => {
                let field = |offset: usize| u16::from_le_bytes([body[offset], body[offset + 1]]);
                assert_eq!(
                    (field(0), field(2), field(14)),
                    (1, 1, 16),
                    "{} is not 16-bit mono PCM",
                    path.display()
                );
                rate = Some(u32::from_le_bytes(body[4..8].try_into().unwrap()));
            }
            b"data" => {
                let samples = body
                    .chunks_exact(2)
                    .map(|pair| i16::from_le_bytes([pair[0], pair[1]]))
                    .collect();
                return (rate.expect("fmt before data"), samples);
            }
            _ => {}
        }
        at += 8 + size + size % 2;
    }
    panic!("{} has no data", path.display());
}

/// Writes 16-bit mono PCM `samples` at `rate` as a WAV file.
fn write_wav(path: &Path, rate: u32, samples: &[i16]) {
    let data_len = (samples.len() * 2) as u32;
    let mut bytes = Vec::with_capacity(44 + samples.len() * 2);
    bytes.extend_from_slice(b"RIFF");
    bytes.extend_from_slice(&(36 + data_len).to_le_bytes());
    bytes.extend_from_slice(b"WAVEfmt ");
    bytes.extend_from_slice(&16u32.to_le_bytes());
    bytes.extend_from_slice(&1u16.to_le_bytes()); // PCM
    bytes.extend_from_slice(&1u16.to_le_bytes()); // mono
    bytes.extend_from_slice(&rate.to_le_bytes());
    bytes.extend_from_slice(&(rate * 2).to_le_bytes()); // bytes per second
    bytes.extend_from_slice(&2u16.to_le_bytes()); // bytes per frame
    bytes.extend_from_slice(&16u16.to_le_bytes()); // bits per sample
    bytes.extend_from_slice(b"data");
    bytes.extend_from_slice(&data_len.to_le_bytes());
    for sample in samples {
        bytes.extend_from_slice(&sample.to_le_bytes());
    }
    std::fs::write(path, bytes).expect("write the talk's WAV");
}

/// Wall-clock now, in seconds of Unix time (as the server's program date times).
fn wall_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_secs_f64()
}

impl Bench {
    /// Publishes the talk (its first `seconds`, or all of it) to `streams` new live streams at
    /// once, with or without captions, reading their subtitle playlists until they end;
    /// measures the server's CPU and the machine's until the server is idle again.
    async fn publish(&self, streams: usize, captions: bool, seconds: Option<u32>) -> Publish {
        let created: Vec<(String, String)> = (0..streams)
            .map(|index| {
                let mut body = json!({
                    "name": format!("captions bench {index}"),
                    "ladder": ["source"],
                    "latency_mode": self.mode,
                    "reconnect_window_s": 0,
                });
                if captions {
                    body["captions"] = json!({"language": "en"});
                }
                let stream = self.server.api("/v1/live-streams", Some(&body.to_string()));
                let key = stream["data"]["stream_key"]
                    .as_str()
                    .unwrap_or_else(|| panic!("a live stream is created: {stream}"));
                let playback_id = stream["data"]["playback_ids"][0]["id"]
                    .as_str()
                    .expect("a playback id");
                (key.to_owned(), playback_id.to_owned())
            })
            .collect();
        let cpu_before = process_cpu_seconds(self.server.pid());
        let machine_before = machine_cpu_seconds();
        let started = Instant::now();
        let watches = created.into_iter().map(|(key, playback_id)| {
            let mut command = Command::new("ffmpeg");
            command.args(["-hide_banner", "-v", "error", "-re", "-i"]);
            command.arg(&self.talk.file);
            if let Some(seconds) = seconds {
                command.args(["-t", &seconds.to_string()]);
            }
            command
                .args(["-c", "copy", "-f", "flv"])
                .arg(format!(
                    "rtmp://127.0.0.1:{}/live/{key}",
                    self.server.rtmp_port
                ))
                .stdin(Stdio::null());
            let spawned_at = wall_now();
            let publisher = command.spawn().expect("start ffmpeg");
            watch(
                &self.client,
                &self.server.base,
                playback_id,
                publisher,
                spawned_at,
                captions,
            )
        });
        let watched = join_all(watches).await;
        let wall_s = started.elapsed().as_secs_f64();
        wait_until_idle(self.server.pid()).await;
        let run = Publish {
            streams: watched,
            cpu_s: process_cpu_seconds(self.server.pid()) - cpu_before,
            machine_cpu_s: machine_cpu_seconds() - machine_before,
            wall_s,
        };
        if captions && seconds.is_none() {
            write_details(&self.talk, &self.mode, &run);
        }
        run
    }
}

/// Busy CPU-seconds of the whole machine so far (every core), from `/proc/stat`.
fn machine_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").expect("read /proc/stat");
    let ticks: Vec<f64> = stat
        .lines()
        .next()
        .and_then(|line| line.strip_prefix("cpu "))
        .expect("the cpu line of /proc/stat")
        .split_whitespace()
        .map(|field| field.parse().unwrap_or(0.0))
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is inside user and nice).
    let busy: f64 = [0, 1, 2, 5, 6, 7]
        .iter()
        .filter_map(|&index| ticks.get(index))
        .sum();
    // SAFETY: sysconf only reads a configuration value.
    let clock = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    busy / clock
}

/// Reads one stream's subtitle playlist every [`POLL_EVERY`] while `publisher` runs and until
/// the playlist ends (without captions: until the publisher exits), noting each new cue.
async fn watch(
    client: &reqwest::Client,
    base: &str,
    playback_id: String,
    mut publisher: Child,
    spawned_at: f64,
    captions: bool,
) -> Watched {
    let playlist_url = format!("{base}/hls/{playback_id}/subs/en/index.m3u8");
    let mut fetched = HashSet::new();
    let mut cues: Vec<SeenCue> = Vec::new();
    let mut first_segment_at = None;
    let mut publisher_ended: Option<Instant> = None;
    let mut ticks = tokio::time::interval(POLL_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if publisher_ended.is_none() {
            if let Some(status) = publisher.try_wait().expect("the publisher's status") {
                assert!(status.success(), "ffmpeg failed to publish: {status}");
                publisher_ended = Some(Instant::now());
            }
        }
        if !captions {
            if publisher_ended.is_some() {
                break;
            }
            continue;
        }
        if let Some(ended) = publisher_ended {
            assert!(
                ended.elapsed() < END_WAIT,
                "{playlist_url} did not end within {END_WAIT:?} of the publisher"
            );
        }
        let Some(playlist) = get(client, &playlist_url).await else {
            continue;
        };
        if first_segment_at.is_none() {
            first_segment_at = first_segment_time(&playlist);
        }
        for uri in playlist.lines().filter(|line| line.ends_with(".vtt")) {
            if !fetched.insert(uri.to_owned()) {
                continue;
            }
            let url = playlist_url.replace("index.m3u8", uri);
            let Some(segment) = get(client, &url).await else {
                // Gone before it was read (it left the window): noted as read.
                continue;
            };
            let seen_at = wall_now();
            for (start_s, end_s, text) in parse_cues(&segment) {
                let known = cues
                    .iter()
                    .any(|cue| cue.start_s == start_s && cue.end_s == end_s && cue.text == text);
                if !known {
                    cues.push(SeenCue {
                        start_s,
                        end_s,
                        text,
                        seen_at,
                    });
                }
            }
        }
        if playlist.contains("#EXT-X-ENDLIST") {
            break;
        }
    }
    Watched {
        playback_id,
        spawned_at,
        first_segment_at,
        cues,
    }
}

/// The body of a `GET url` that answered 200.
async fn get(client: &reqwest::Client, url: &str) -> Option<String> {
    let response = client.get(url).send().await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    response.text().await.ok()
}

/// The program date time (Unix seconds) of the session's first segment, when the playlist
/// still starts with it.
fn first_segment_time(playlist: &str) -> Option<f64> {
    let sequence = playlist
        .lines()
        .find_map(|line| line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))
        .map_or(Some(0), |value| value.trim().parse::<u64>().ok())?;
    if sequence != 0 {
        return None;
    }
    let stamp = playlist
        .lines()
        .find_map(|line| line.strip_prefix("#EXT-X-PROGRAM-DATE-TIME:"))?;
    let time = chrono::DateTime::parse_from_rfc3339(stamp.trim()).ok()?;
    Some(time.timestamp_millis() as f64 / 1000.0)
}

/// The cues of a WebVTT segment: start and end in seconds, and the text (lines joined).
fn parse_cues(vtt: &str) -> Vec<(f64, f64, String)> {
    let seconds = |stamp: &str| {
        stamp
            .trim()
            .split(':')
            .map(|part| part.parse::<f64>().unwrap_or(f64::NAN))
            .fold(0.0, |total, part| total * 60.0 + part)
    };
    let mut cues = Vec::new();
    let mut lines = vtt.lines();
    while let Some(line) = lines.next() {
        let Some((start, rest)) = line.split_once(" --> ") else {
            continue;
        };
        let end = rest.split_whitespace().next().unwrap_or_default();
        let text: Vec<&str> = lines.by_ref().take_while(|l| !l.is_empty()).collect();
        cues.push((seconds(start), seconds(end), text.join(" ")));
    }
    cues
}

/// Waits until the server uses less than [`IDLE_CPU`] (sampled over half a second), at most
/// 30 s.
async fn wait_until_idle(pid: u32) {
    let sample = Duration::from_millis(500);
    for _ in 0..60 {
        let before = process_cpu_seconds(pid);
        tokio::time::sleep(sample).await;
        if (process_cpu_seconds(pid) - before) / sample.as_secs_f64() < IDLE_CPU {
            return;
        }
    }
}

/// A phrase's cue: the first seen that overlaps its last [`PHRASE_TAIL_S`], or else the
/// overlapping one that ends last; `None` when no cue overlaps it. Times in media seconds.
fn cue_of(cues: &[SeenCue], start_s: f64, end_s: f64) -> Option<&SeenCue> {
    let overlapping = cues
        .iter()
        .filter(|cue| cue.start_s < end_s && cue.end_s > start_s);
    overlapping
        .clone()
        .filter(|cue| cue.end_s > end_s - PHRASE_TAIL_S)
        .min_by(|a, b| a.seen_at.total_cmp(&b.seen_at))
        .or_else(|| overlapping.max_by(|a, b| a.end_s.total_cmp(&b.end_s)))
}

/// Each phrase's caption delay in seconds (`None`: no cue), for one stream.
fn phrase_delays(talk: &Talk, stream: &Watched) -> Vec<Option<f64>> {
    let first_segment_at = stream.first_segment_at.unwrap_or_else(|| {
        panic!(
            "the first subtitle segment of {} was never seen",
            stream.playback_id
        )
    });
    // Wall-clock time of media time 0 at the packager.
    let origin = first_segment_at - talk.media_offset_s;
    talk.phrases
        .iter()
        .map(|phrase| {
            let start = phrase.start_s + talk.media_offset_s;
            let end = phrase.end_s + talk.media_offset_s;
            cue_of(&stream.cues, start, end).map(|cue| cue.seen_at - (origin + end))
        })
        .collect()
}

/// Delays, coverage and recall over every stream of `run`.
fn delays(talk: &Talk, run: &Publish) -> Delays {
    let streams = run.streams.len();
    let mut delays = Vec::new();
    let mut recall = 0.0;
    let spoken = words(&SENTENCES.join(" "));
    for stream in &run.streams {
        delays.extend(phrase_delays(talk, stream).into_iter().flatten());
        let heard = words(
            &stream
                .cues
                .iter()
                .map(|cue| cue.text.as_str())
                .collect::<Vec<_>>()
                .join(" "),
        );
        recall += spoken.intersection(&heard).count() as f64 / spoken.len() as f64;
    }
    Delays {
        delays,
        phrases: talk.phrases.len() * streams,
        recall: recall / streams as f64,
    }
}

/// The `p` quantile (0 to 1) of `values` by nearest rank; NaN when there are none.
fn percentile(values: &[f64], p: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted
        .get(rank.clamp(1, sorted.len().max(1)) - 1)
        .copied()
        .unwrap_or(f64::NAN)
}

/// Lowercase words of at least four letters.
fn words(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !c.is_alphabetic())
        .filter(|word| word.chars().count() >= 4)
        .map(str::to_lowercase)
        .collect()
}

/// Writes each stream's phrases, their cues and delays, and every cue seen, to
/// [`OUTPUT_DIR`]`/{mode}-{streams}-streams-{n}.txt`.
fn write_details(talk: &Talk, mode: &str, run: &Publish) {
    let streams = run.streams.len();
    for (index, stream) in run.streams.iter().enumerate() {
        let mut out = String::new();
        let delays = phrase_delays(talk, stream);
        let origin = stream.first_segment_at.unwrap_or_default() - talk.media_offset_s;
        for (phrase, delay) in talk.phrases.iter().zip(delays) {
            let start = phrase.start_s + talk.media_offset_s;
            let end = phrase.end_s + talk.media_offset_s;
            out.push_str(&format!("{start:7.2}–{end:7.2}  {}\n", phrase.text));
            match (cue_of(&stream.cues, start, end), delay) {
                (Some(cue), Some(delay)) => out.push_str(&format!(
                    "  cue {:7.2}–{:7.2} seen at media {:7.2}, delay {delay:.2} s: {}\n",
                    cue.start_s,
                    cue.end_s,
                    cue.seen_at - origin,
                    cue.text
                )),
                _ => out.push_str("  no cue\n"),
            }
        }
        out.push_str("\nevery cue (media seconds; seen at media time):\n");
        for cue in &stream.cues {
            out.push_str(&format!(
                "{:7.2}–{:7.2} @{:7.2}  {}\n",
                cue.start_s,
                cue.end_s,
                cue.seen_at - origin,
                cue.text
            ));
        }
        let path = Path::new(OUTPUT_DIR).join(format!("{mode}-{streams}-streams-{index}.txt"));
        std::fs::write(&path, out).expect("write the cues");
    }
}
