//! Speech to text for Sluice's captions and transcripts, on the CPU, offline.
//!
//! The rest of Sluice sees two small traits and knows no engine: a [`SpeechEngine`] turns a
//! clip of 16 kHz mono samples into [`Line`]s ([`SpeechEngine::transcribe`]) or opens a
//! [`SpeechStream`] that takes audio as it arrives and hands back lines as the speech in it is
//! recognised, each first as a partial line (`complete: false`) and once as a complete one.
//! Another engine (whisper.cpp, a GPU service) is one more implementation of these traits.
//! [`live::LiveRecognition`] runs a stream on a thread of its own for live audio (a live
//! stream's captions, a room's microphones).
//!
//! # Moonshine
//!
//! The engine provided is [`Moonshine`]: the Moonshine tiny-en model (MIT) and the C++ library
//! that runs it, `libmoonshine.so`, as shipped in the PyPI wheel `moonshine-voice==0.0.73` (with
//! ONNX Runtime beside it). `scripts/install-deps.sh` (roles `run`, `test`, `bench`, `soak`)
//! fetches that exact wheel, checks its hash and unpacks it to [`DEFAULT_LIBRARY_DIR`];
//! [`Moonshine::load`] takes that folder, opens `moonshine_voice/libmoonshine.so` in it at run
//! time (`libloading`, with declarations written from the C header of that version, checked
//! against the library's version and the wheel's metadata) and loads the model from
//! `moonshine_voice/assets/tiny-en/`. Nothing is linked at build time: without the library,
//! loading fails with [`TranscribeError::NotInstalled`], which names the missing path and the
//! command that installs it, and everything else keeps working.
//!
//! # Limits
//!
//! - Audio is 16 kHz mono `f32` samples in −1..1 ([`SAMPLE_RATE`]); resampling is the caller's.
//! - [`SpeechEngine::transcribe`] takes at most [`SpeechEngine::max_clip_seconds`] of audio
//!   (30 s for Moonshine) and refuses more with [`TranscribeError::TooLong`]: the library holds
//!   several copies of the clip while it works, and its voice activity pass costs time
//!   quadratic in the length of one call's audio. Longer audio (a whole file) goes through a
//!   stream, fed as fast as it is decoded: its memory stays bounded however long it runs.
//! - A line is one stretch of speech between pauses, at most about 15 s (the library then cuts
//!   it). Lines whose text is empty (speech detected, nothing recognised) are left out.
//! - The bundled tiny-en model gives no word timings, and recognises English only.
//! - One [`Moonshine`] recognises one thing at a time (its clips and streams take turns); the
//!   library's speech detector keeps one state for the whole process, shared by every stream.
//! - The library writes nothing to standard output; it writes its reasons for failures to
//!   standard error. ONNX Runtime starts worker threads of its own when the model is loaded
//!   (one per core, less one, for each of the model's two parts), or runs each part on one
//!   thread with [`SINGLE_THREAD_ENV`] set, as the server sets it.

#![deny(unsafe_code)]

pub mod live;
mod moonshine;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

pub use moonshine::{Moonshine, DEFAULT_LIBRARY_DIR, LIBRARY_FILE, MAX_CLIP_SECONDS, MODEL_DIR};

/// The sample rate every engine takes, in Hz (mono `f32` samples).
pub const SAMPLE_RATE: u32 = 16_000;

/// The environment variable `libmoonshine.so` reads when it loads a model: `1` runs each model
/// part on one thread instead of ONNX Runtime's pools sized to the machine. The server sets it
/// at start unless the environment already does (docs/BENCHMARKS.md, "Transcription: VOD").
pub const SINGLE_THREAD_ENV: &str = "MOONSHINE_ORT_SINGLE_THREAD";

/// The speech engine of a process (generated subtitles, live captions), loaded by the first
/// user that needs it (loading takes the model's memory and half a second), then kept for the
/// life of the process, as is a failure to load it (a reason for a person, which becomes the
/// error of what needed it; installing the engine takes a restart).
pub struct Speech {
    load: Box<dyn Fn() -> Result<Arc<dyn SpeechEngine>, String> + Send + Sync>,
    loaded: Mutex<Option<Result<Arc<dyn SpeechEngine>, String>>>,
}

impl Speech {
    /// An engine `load` makes when it is first needed.
    pub fn new(
        load: impl Fn() -> Result<Arc<dyn SpeechEngine>, String> + Send + Sync + 'static,
    ) -> Self {
        Speech {
            load: Box::new(load),
            loaded: Mutex::new(None),
        }
    }

    /// No engine, for `reason` (turned off, not installed).
    pub fn unavailable(reason: String) -> Self {
        Speech::new(move || Err(reason.clone()))
    }

    /// The engine, loaded on the first call (blocking: call it off an async runtime).
    pub fn engine(&self) -> Result<Arc<dyn SpeechEngine>, String> {
        let mut loaded = self.loaded.lock().unwrap_or_else(PoisonError::into_inner);
        loaded.get_or_insert_with(|| (self.load)()).clone()
    }
}

/// One recognised stretch of speech.
#[derive(Clone, Debug, PartialEq)]
pub struct Line {
    /// Stable identity within an engine: a partial line keeps its id when it is completed.
    pub id: u64,
    /// Seconds from the start of the clip or stream.
    pub start_s: f64,
    pub end_s: f64,
    pub text: String,
    /// False for the line still being spoken at the end of a stream's audio: its text and end
    /// may change; a complete line never does.
    pub complete: bool,
}

/// A speech recogniser. Shared by every pipeline of a process (`Send + Sync`); an engine may
/// run one recognition at a time, in which case callers on other threads wait.
pub trait SpeechEngine: Send + Sync {
    /// The longest clip [`SpeechEngine::transcribe`] accepts, in seconds.
    fn max_clip_seconds(&self) -> f64;

    /// Recognises a whole clip of 16 kHz mono samples; every line comes back complete, with
    /// times from the clip's start. Clips longer than [`SpeechEngine::max_clip_seconds`] are
    /// refused ([`TranscribeError::TooLong`]): feed them through a stream.
    fn transcribe(&self, pcm16k_mono: &[f32]) -> Result<Vec<Line>, TranscribeError>;

    /// Opens a stream, for live audio or for a long file fed as fast as it is decoded.
    fn stream(&self) -> Result<Box<dyn SpeechStream>, TranscribeError>;
}

/// Audio in as it arrives, lines out as they are recognised. Times count from the first
/// sample added.
pub trait SpeechStream: Send {
    /// Appends 16 kHz mono samples, any number at a time. Cheap, except that an engine may
    /// recognise what it holds when much audio arrived since the last [`SpeechStream::lines`]
    /// (Moonshine: every 5 s of audio), which keeps its memory bounded; the lines completed
    /// then are returned by the next call to `lines`.
    fn add_audio(&mut self, pcm16k_mono: &[f32]) -> Result<(), TranscribeError>;

    /// The lines completed since the last call, in order, then the line still being spoken if
    /// there is one (`complete: false`, returned again, updated, by every call until it is
    /// complete). Each call recognises the audio added since the previous one (Moonshine: once
    /// at least half a second of it arrived, else it answers from the last recognition). While
    /// someone speaks, every recognition reads the open line's audio again: calling less often
    /// costs less CPU and completes lines later. Live: two to four times a second.
    fn lines(&mut self) -> Result<Vec<Line>, TranscribeError>;

    /// Ends the stream: recognises what is left and returns the lines completed since the last
    /// call to [`SpeechStream::lines`], the last one included, all complete.
    fn finish(self: Box<Self>) -> Result<Vec<Line>, TranscribeError>;
}

/// Why speech could not be recognised.
#[derive(Debug, thiserror::Error)]
pub enum TranscribeError {
    /// The engine's library or model is not where it was looked for.
    #[error(
        "speech recognition is not installed: {} is missing; run `scripts/install-deps.sh run` \
         (`make run` and `make test` do) to install moonshine-voice 0.0.73 into {}",
        path.display(),
        DEFAULT_LIBRARY_DIR
    )]
    NotInstalled { path: PathBuf },
    /// The engine's files are there but cannot be used.
    #[error(
        "the speech recognition library {} cannot be used: {reason}; remove {} and run \
         `scripts/install-deps.sh run` to install moonshine-voice 0.0.73 again",
        path.display(),
        library_dir.display()
    )]
    Broken {
        path: PathBuf,
        library_dir: PathBuf,
        reason: String,
    },
    /// A clip longer than the engine takes in one call.
    #[error("{seconds:.1} s of audio in one call, at most {max_seconds:.0} s: feed longer audio through a stream")]
    TooLong { seconds: f64, max_seconds: f64 },
    /// The engine failed while recognising.
    #[error("speech recognition failed: {operation} returned {code} ({message}; the library writes its reason to standard error)")]
    Engine {
        operation: &'static str,
        code: i32,
        message: String,
    },
}

impl TranscribeError {
    /// Whether the engine is missing or unusable (transcription is off), rather than one
    /// request failing.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::NotInstalled { .. } | Self::Broken { .. })
    }
}
