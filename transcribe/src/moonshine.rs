//! [`Moonshine`]: the tiny-en model run by `libmoonshine.so` from the moonshine-voice 0.0.73
//! wheel, loaded at run time. The calls into the library and every `unsafe` are in `ffi.rs`;
//! this file is the engine's behaviour: finding the files, bounding what one call takes,
//! turning the library's cumulative stream transcripts into "new lines since the last call".

#[allow(unsafe_code)]
mod ffi;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::{Line, SpeechEngine, SpeechStream, TranscribeError, SAMPLE_RATE};

/// Where `scripts/install-deps.sh` unpacks the moonshine-voice 0.0.73 wheel.
pub const DEFAULT_LIBRARY_DIR: &str = "/usr/local/lib/sluice/moonshine-voice-0.0.73";
/// The library, under the unpacked wheel's root.
pub const LIBRARY_FILE: &str = "moonshine_voice/libmoonshine.so";
/// The tiny-en model's folder, under the unpacked wheel's root.
pub const MODEL_DIR: &str = "moonshine_voice/assets/tiny-en";
/// The files the model folder must hold.
const MODEL_FILES: [&str; 3] = [
    "encoder_model.ort",
    "decoder_model_merged.ort",
    "tokenizer.bin",
];
/// The wheel's metadata folder: the header version (20000) is shared by library versions whose
/// structures differ, so the wheel's own version is checked too.
const DIST_INFO_DIR: &str = "moonshine_voice-0.0.73.dist-info";

/// The longest clip [`Moonshine`] transcribes in one call, in seconds.
pub const MAX_CLIP_SECONDS: f64 = 30.0;

/// How much audio a stream holds before `add_audio` has it recognised.
const MAX_PENDING_SAMPLES: usize = 5 * SAMPLE_RATE as usize;
/// The library's transcription interval, passed to it explicitly: a stream analyses new audio
/// only once this much arrived (unless forced).
const TRANSCRIPTION_INTERVAL_SAMPLES: usize = SAMPLE_RATE as usize / 2;
/// A stream keeps every line since it started and rebuilds them all on each analysis; once
/// this many are complete and nobody is speaking, the stream is restarted (its clock offset
/// kept here) so that work and memory stay bounded.
const RESTART_AFTER_LINES: usize = 32;

/// Options given to the library when loading. `return_audio_data=false` stops every line from
/// carrying a copy of its audio, which a long stream would otherwise accumulate.
const OPTIONS: [(&str, &str); 2] = [
    ("return_audio_data", "false"),
    ("transcription_interval", "0.5"),
];

/// Moonshine tiny-en, English, on the CPU.
///
/// One transcriber (one copy of the model, about 45 MB of files) serves every clip and stream
/// of the engine. The library runs one recognition at a time per transcriber; streams and
/// clips on other threads wait for it. ONNX Runtime starts its own worker threads (one pool
/// per model, sized to the machine's cores).
pub struct Moonshine {
    transcriber: Arc<ffi::Transcriber>,
    library_dir: PathBuf,
}

impl std::fmt::Debug for Moonshine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Moonshine")
            .field("library_dir", &self.library_dir)
            .finish_non_exhaustive()
    }
}

impl Moonshine {
    /// Whether the library and the model's files are in `library_dir`, without loading them:
    /// what a process that only takes requests checks. [`TranscribeError::NotInstalled`] names
    /// the first file missing.
    pub fn check_installed(library_dir: &Path) -> Result<(), TranscribeError> {
        let model = library_dir.join(MODEL_DIR);
        let files = std::iter::once(library_dir.join(LIBRARY_FILE))
            .chain(MODEL_FILES.iter().map(|file| model.join(file)));
        for path in files {
            if !path.is_file() {
                return Err(TranscribeError::NotInstalled { path });
            }
        }
        Ok(())
    }

    /// Loads the library and the tiny-en model from `library_dir`, the root of the unpacked
    /// wheel ([`DEFAULT_LIBRARY_DIR`] as installed). Takes about half a second.
    pub fn load(library_dir: &Path) -> Result<Moonshine, TranscribeError> {
        Self::check_installed(library_dir)?;
        let library = library_dir.join(LIBRARY_FILE);
        let model = library_dir.join(MODEL_DIR);
        let broken = |path: &Path, reason: String| TranscribeError::Broken {
            path: path.to_owned(),
            library_dir: library_dir.to_owned(),
            reason,
        };
        let dist_info = library_dir.join(DIST_INFO_DIR);
        if !dist_info.is_dir() {
            return Err(broken(
                &library,
                format!(
                    "{} is missing, so this is not moonshine-voice 0.0.73, whose C API this \
                     build declares",
                    dist_info.display()
                ),
            ));
        }
        let api = ffi::Api::open(&library).map_err(|error| {
            broken(
                &library,
                match error {
                    ffi::OpenError::Load(reason) => reason,
                    ffi::OpenError::Symbol(name, reason) => {
                        format!("it lacks the function {name} ({reason})")
                    }
                    ffi::OpenError::Version(version) => format!(
                        "it reports API version {version}, this build declares {}",
                        ffi::HEADER_VERSION
                    ),
                },
            )
        })?;
        let transcriber = ffi::Transcriber::load(api, &model, ffi::MODEL_ARCH_TINY, &OPTIONS)
            .map_err(|error| {
                broken(
                    &model,
                    format!(
                        "loading the model failed: {} (code {}; the library writes its reason to \
                         standard error)",
                        error.message, error.code
                    ),
                )
            })?;
        Ok(Moonshine {
            transcriber: Arc::new(transcriber),
            library_dir: library_dir.to_owned(),
        })
    }

    /// The folder the engine was loaded from.
    pub fn library_dir(&self) -> &Path {
        &self.library_dir
    }
}

impl From<ffi::CallError> for TranscribeError {
    fn from(error: ffi::CallError) -> Self {
        TranscribeError::Engine {
            operation: error.operation,
            code: error.code,
            message: error.message,
        }
    }
}

impl SpeechEngine for Moonshine {
    fn max_clip_seconds(&self) -> f64 {
        MAX_CLIP_SECONDS
    }

    fn transcribe(&self, pcm16k_mono: &[f32]) -> Result<Vec<Line>, TranscribeError> {
        let seconds = pcm16k_mono.len() as f64 / f64::from(SAMPLE_RATE);
        if seconds > MAX_CLIP_SECONDS {
            return Err(TranscribeError::TooLong {
                seconds,
                max_seconds: MAX_CLIP_SECONDS,
            });
        }
        if pcm16k_mono.is_empty() {
            return Ok(Vec::new());
        }
        Ok(self
            .transcriber
            .transcribe(pcm16k_mono)?
            .into_iter()
            .filter_map(|line| to_line(line, 0.0, true))
            .collect())
    }

    fn stream(&self) -> Result<Box<dyn SpeechStream>, TranscribeError> {
        let mut stream = ffi::Stream::create(self.transcriber.clone())?;
        stream.start()?;
        Ok(Box::new(MoonshineStream {
            stream,
            offset_s: 0.0,
            session_samples: 0,
            pending_samples: 0,
            reported: 0,
            ready: Vec::new(),
            partial: None,
        }))
    }
}

/// A library line as a [`Line`], its times shifted by `offset_s`; `None` when it has no text.
fn to_line(line: ffi::RawLine, offset_s: f64, complete: bool) -> Option<Line> {
    let text = line.text.trim();
    if text.is_empty() {
        return None;
    }
    let start_s = offset_s + f64::from(line.start_s.max(0.0));
    Some(Line {
        id: line.id,
        start_s,
        end_s: start_s + f64::from(line.duration_s.max(0.0)),
        text: text.to_owned(),
        complete: complete || line.complete,
    })
}

/// A library stream, restarted now and then (see [`RESTART_AFTER_LINES`]); a "session" is the
/// stretch since the last (re)start, whose lines the library returns in full on each analysis.
struct MoonshineStream {
    stream: ffi::Stream,
    /// Where the current session starts in the stream's audio, in seconds.
    offset_s: f64,
    /// Samples added in the current session.
    session_samples: u64,
    /// Samples added since the library last analysed the stream.
    pending_samples: usize,
    /// Lines of the current session already taken as complete.
    reported: usize,
    /// Complete lines not yet returned.
    ready: Vec<Line>,
    /// The line being spoken, as of the last analysis.
    partial: Option<Line>,
}

impl MoonshineStream {
    /// Has the library analyse the stream (`flags`: 0 or [`ffi::FLAG_FORCE_UPDATE`]) and takes
    /// what it found.
    fn analyse(&mut self, flags: u32, may_restart: bool) -> Result<(), TranscribeError> {
        let lines = self.stream.transcribe(flags)?;
        // The library analyses only when there is new audio, and without the force flag only
        // once a transcription interval of it arrived; otherwise it returns the last result.
        if flags & ffi::FLAG_FORCE_UPDATE != 0
            || self.pending_samples >= TRANSCRIPTION_INTERVAL_SAMPLES
        {
            self.pending_samples = 0;
        }
        self.partial = None;
        let mut speaking = false;
        // Lines are never removed and only the last may be incomplete.
        for line in lines.into_iter().skip(self.reported) {
            if line.complete {
                self.reported += 1;
                self.ready.extend(to_line(line, self.offset_s, true));
            } else {
                speaking = true;
                self.partial = to_line(line, self.offset_s, false);
            }
        }
        // Restart once enough lines piled up, between two lines (an open one may have no text
        // yet) and with nothing left unanalysed, so no speech is cut.
        if may_restart
            && self.reported >= RESTART_AFTER_LINES
            && self.pending_samples == 0
            && !speaking
        {
            self.stream.start()?;
            self.offset_s += self.session_samples as f64 / f64::from(SAMPLE_RATE);
            self.session_samples = 0;
            self.reported = 0;
        }
        Ok(())
    }
}

impl SpeechStream for MoonshineStream {
    fn add_audio(&mut self, pcm16k_mono: &[f32]) -> Result<(), TranscribeError> {
        let mut rest = pcm16k_mono;
        while !rest.is_empty() {
            let take = rest.len().min(MAX_PENDING_SAMPLES - self.pending_samples);
            let (piece, after) = rest.split_at(take);
            self.stream.add_audio(piece)?;
            self.pending_samples += piece.len();
            self.session_samples += piece.len() as u64;
            rest = after;
            if self.pending_samples >= MAX_PENDING_SAMPLES {
                self.analyse(ffi::FLAG_FORCE_UPDATE, true)?;
            }
        }
        Ok(())
    }

    fn lines(&mut self) -> Result<Vec<Line>, TranscribeError> {
        self.analyse(0, true)?;
        let mut lines = std::mem::take(&mut self.ready);
        lines.extend(self.partial.clone());
        Ok(lines)
    }

    fn finish(mut self: Box<Self>) -> Result<Vec<Line>, TranscribeError> {
        // Analyse what is pending first: a stopped stream ignores new audio.
        self.analyse(ffi::FLAG_FORCE_UPDATE, false)?;
        self.stream.stop()?;
        // Stopping ends the speech under way; this marks its line complete.
        self.analyse(ffi::FLAG_FORCE_UPDATE, false)?;
        Ok(std::mem::take(&mut self.ready))
    }
}
