//! The Moonshine C API of moonshine-voice 0.0.73, declared by hand from `core/moonshine-c-api.h`
//! at the repository's tag `v0.0.73` (`MOONSHINE_HEADER_VERSION` 20000), and the safe handles
//! over it. Every `unsafe` of the crate is in this file.
//!
//! Only the transcription part of the API is declared: loading a transcriber from model files,
//! transcribing a whole clip, streams (create, start, add audio, transcribe, stop, free) and error
//! strings. None of these hands the caller memory to free: a transcript is owned by the
//! transcriber (see [`Transcriber::transcribe`]), transcribers and streams are released with
//! `moonshine_free_transcriber` and `moonshine_free_stream` when their handles drop.
//!
//! # Threads
//!
//! The header says every call is thread safe and that calls on one transcriber are serialised.
//! Reading the 0.0.73 sources shows two gaps, closed here:
//!
//! - The table of transcriber handles is a global `std::map` that loading and freeing change
//!   under a mutex but every other call reads without it (`CHECK_TRANSCRIBER_HANDLE`). A call on
//!   one transcriber while another is loaded or freed is a data race. [`HANDLE_TABLE`] is held
//!   for writing around loading and freeing, for reading around every other call.
//! - A transcript returned by `moonshine_transcribe_without_streaming` lives in the transcriber's
//!   one batch stream and is rebuilt by its next call. [`Transcriber::transcribe`] holds the
//!   transcriber's own lock from the call until the lines are copied out. A stream's transcript
//!   lives in that stream, and its audio buffer is read by `moonshine_transcribe_stream` without
//!   a lock, so a [`Stream`] is driven through `&mut self` only (it is `Send`, and `Sync` only in
//!   the sense that a shared reference can do nothing with it).
//!
//! The voice activity detector behind every stream is one process-wide Silero model created
//! lazily, unguarded, by the first stream made: [`Transcriber::load`] makes and frees a stream
//! while it still holds the table for writing, so that happens once, alone. That model runs
//! under the library's own mutex but keeps one recurrent state for the whole process, so
//! streams analysed at the same time feed it each other's audio in turn: safe, but speech
//! detection at line edges can blur a little with many concurrent streams.

use std::ffi::{c_char, CStr, CString};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::{Mutex, PoisonError, RwLock};

/// `MOONSHINE_HEADER_VERSION` of the header these declarations were written from.
pub const HEADER_VERSION: i32 = 20000;
/// `MOONSHINE_MODEL_ARCH_TINY`.
pub const MODEL_ARCH_TINY: u32 = 0;
/// `MOONSHINE_FLAG_FORCE_UPDATE`: analyse the stream's new audio however little there is.
pub const FLAG_FORCE_UPDATE: u32 = 1 << 0;
/// The library's internal sample rate; audio is always handed over at this rate.
pub const SAMPLE_RATE: i32 = 16_000;

/// `struct moonshine_option_t`.
#[repr(C)]
struct MoonshineOption {
    name: *const c_char,
    value: *const c_char,
}

/// `struct transcript_word_t` (only filled when the model has a word alignment model, which
/// tiny-en in the wheel has not; declared for the layout of [`TranscriptLine`]).
#[repr(C)]
struct TranscriptWord {
    text: *const c_char,
    start: f32,
    end: f32,
    confidence: f32,
}

/// `struct speaker_span_t` (only filled with the `identify_speakers` option, never set here).
#[repr(C)]
struct SpeakerSpan {
    start_time: f32,
    duration: f32,
    speaker_id: u64,
    speaker_index: u32,
    start_char: u64,
    end_char: u64,
}

/// `struct transcript_line_t`.
#[repr(C)]
struct TranscriptLine {
    text: *const c_char,
    audio_data: *const f32,
    audio_data_count: usize,
    start_time: f32,
    duration: f32,
    id: u64,
    is_complete: i8,
    is_updated: i8,
    is_new: i8,
    has_text_changed: i8,
    have_speakers_changed: i8,
    speaker_spans: *const SpeakerSpan,
    speaker_span_count: u64,
    last_transcription_latency_ms: u32,
    words: *const TranscriptWord,
    word_count: u64,
}

/// `struct transcript_t`.
#[repr(C)]
struct Transcript {
    lines: *mut TranscriptLine,
    line_count: u64,
}

// The sizes the wheel's own Python binding checks against the compiled library (64-bit ABI);
// a binding walking the line array with another stride reads garbage.
const _: () = assert!(std::mem::size_of::<TranscriptWord>() == 24);
const _: () = assert!(std::mem::size_of::<SpeakerSpan>() == 40);
const _: () = assert!(std::mem::size_of::<TranscriptLine>() == 88);
const _: () = assert!(std::mem::size_of::<Transcript>() == 16);
const _: () = assert!(std::mem::size_of::<MoonshineOption>() == 16);

type GetVersion = unsafe extern "C" fn() -> i32;
type ErrorToString = unsafe extern "C" fn(error: i32) -> *const c_char;
type LoadTranscriberFromFiles = unsafe extern "C" fn(
    path: *const c_char,
    model_arch: u32,
    options: *const MoonshineOption,
    options_count: u64,
    moonshine_version: i32,
) -> i32;
type FreeTranscriber = unsafe extern "C" fn(transcriber: i32);
type TranscribeWithoutStreaming = unsafe extern "C" fn(
    transcriber: i32,
    audio_data: *mut f32,
    audio_length: u64,
    sample_rate: i32,
    flags: u32,
    out_transcript: *mut *mut Transcript,
) -> i32;
type CreateStream = unsafe extern "C" fn(transcriber: i32, flags: u32) -> i32;
type StreamCall = unsafe extern "C" fn(transcriber: i32, stream: i32) -> i32;
type AddAudioToStream = unsafe extern "C" fn(
    transcriber: i32,
    stream: i32,
    new_audio_data: *const f32,
    audio_length: u64,
    sample_rate: i32,
    flags: u32,
) -> i32;
type TranscribeStream = unsafe extern "C" fn(
    transcriber: i32,
    stream: i32,
    flags: u32,
    out_transcript: *mut *mut Transcript,
) -> i32;

/// Held for writing while a transcriber is loaded or freed, for reading around every other call
/// (see the module documentation).
static HANDLE_TABLE: RwLock<()> = RwLock::new(());

/// The library's entry points. The library is never unloaded: ONNX Runtime's thread pools and
/// the library's process-wide state (the shared voice activity model) do not survive `dlclose`.
pub struct Api {
    get_version: GetVersion,
    error_to_string: ErrorToString,
    load_transcriber_from_files: LoadTranscriberFromFiles,
    free_transcriber: FreeTranscriber,
    transcribe_without_streaming: TranscribeWithoutStreaming,
    create_stream: CreateStream,
    free_stream: StreamCall,
    start_stream: StreamCall,
    stop_stream: StreamCall,
    add_audio_to_stream: AddAudioToStream,
    transcribe_stream: TranscribeStream,
}

/// Why a call failed: the operation, the library's code and its string for it.
#[derive(Debug)]
pub struct CallError {
    pub operation: &'static str,
    pub code: i32,
    pub message: String,
}

/// Why the library could not be opened.
#[derive(Debug)]
pub enum OpenError {
    /// `dlopen` refused it (not a shared object, a missing dependency, …).
    Load(String),
    /// It lacks an entry point of the 0.0.73 API.
    Symbol(&'static str, String),
    /// It reports another header version than the one declared here.
    Version(i32),
}

/// One line as the library describes it, copied out of its transcript.
#[derive(Clone, Debug, PartialEq)]
pub struct RawLine {
    pub id: u64,
    pub start_s: f32,
    pub duration_s: f32,
    pub text: String,
    pub complete: bool,
}

impl Api {
    /// Opens `library` (which finds ONNX Runtime through its own RPATH), resolves every entry
    /// point and checks the header version.
    pub fn open(library: &Path) -> Result<&'static Api, OpenError> {
        // SAFETY: loading runs the library's initialisers: libmoonshine's C++ static
        // constructors and ONNX Runtime's, which only set up their own state. The handle is
        // leaked on purpose (never unloaded, see `Api`), so every symbol below stays valid for
        // the rest of the process.
        let library: &'static libloading::Library = Box::leak(Box::new(
            unsafe { libloading::Library::new(library) }
                .map_err(|e| OpenError::Load(e.to_string()))?,
        ));
        macro_rules! symbol {
            ($name:literal) => {
                // SAFETY: the type given to each symbol is its declaration in
                // moonshine-c-api.h of v0.0.73 (the `type` aliases above), and the library
                // is never unloaded, so the copied function pointer never dangles.
                *unsafe { library.get(concat!($name, "\0").as_bytes()) }
                    .map_err(|e| OpenError::Symbol($name, e.to_string()))?
            };
        }
        let api = Api {
            get_version: symbol!("moonshine_get_version"),
            error_to_string: symbol!("moonshine_error_to_string"),
            load_transcriber_from_files: symbol!("moonshine_load_transcriber_from_files"),
            free_transcriber: symbol!("moonshine_free_transcriber"),
            transcribe_without_streaming: symbol!("moonshine_transcribe_without_streaming"),
            create_stream: symbol!("moonshine_create_stream"),
            free_stream: symbol!("moonshine_free_stream"),
            start_stream: symbol!("moonshine_start_stream"),
            stop_stream: symbol!("moonshine_stop_stream"),
            add_audio_to_stream: symbol!("moonshine_transcribe_add_audio_to_stream"),
            transcribe_stream: symbol!("moonshine_transcribe_stream"),
        };
        // SAFETY: takes nothing, returns a constant.
        let version = unsafe { (api.get_version)() };
        if version != HEADER_VERSION {
            return Err(OpenError::Version(version));
        }
        Ok(Box::leak(Box::new(api)))
    }

    /// The library's string for an error code.
    fn error_string(&self, code: i32) -> String {
        // SAFETY: returns a pointer to a static C string for every code.
        let message = unsafe { (self.error_to_string)(code) };
        if message.is_null() {
            return format!("error {code}");
        }
        // SAFETY: non-null, NUL-terminated and static (see above).
        unsafe { CStr::from_ptr(message) }
            .to_string_lossy()
            .into_owned()
    }

    fn check(&self, operation: &'static str, code: i32) -> Result<(), CallError> {
        if code == 0 {
            return Ok(());
        }
        Err(CallError {
            operation,
            code,
            message: self.error_string(code),
        })
    }
}

/// Copies the lines of a transcript the library returned.
///
/// # Safety
///
/// `transcript` is null or points to a transcript the library returned, still valid: no call
/// that rebuilds it (see the module documentation) has happened since.
unsafe fn copy_lines(transcript: *const Transcript) -> Vec<RawLine> {
    if transcript.is_null() {
        return Vec::new();
    }
    // SAFETY: valid per the function's contract.
    let transcript = unsafe { &*transcript };
    if transcript.lines.is_null() || transcript.line_count == 0 {
        return Vec::new();
    }
    let Ok(count) = usize::try_from(transcript.line_count) else {
        return Vec::new();
    };
    // SAFETY: `lines` points to `line_count` initialised lines owned by the transcriber
    // (a `std::vector<transcript_line_t>`'s data), valid per the contract.
    let lines = unsafe { std::slice::from_raw_parts(transcript.lines, count) };
    lines
        .iter()
        .map(|line| RawLine {
            id: line.id,
            start_s: line.start_time,
            duration_s: line.duration,
            text: if line.text.is_null() {
                String::new()
            } else {
                // SAFETY: a NUL-terminated UTF-8 string (the library sanitises it) owned by
                // the line, valid per the contract.
                unsafe { CStr::from_ptr(line.text) }
                    .to_string_lossy()
                    .into_owned()
            },
            complete: line.is_complete != 0,
        })
        .collect()
}

/// A loaded transcriber. Freed when dropped (streams hold it alive through an `Arc`).
pub struct Transcriber {
    api: &'static Api,
    handle: i32,
    /// Held from a whole-clip call until its lines are copied out: the transcript lives in the
    /// transcriber's one batch stream.
    batch: Mutex<()>,
}

impl Transcriber {
    /// Loads the non-streaming model of architecture `model_arch` from `model_dir` (which holds
    /// `encoder_model.ort`, `decoder_model_merged.ort` and `tokenizer.bin`) with `options`.
    pub fn load(
        api: &'static Api,
        model_dir: &Path,
        model_arch: u32,
        options: &[(&str, &str)],
    ) -> Result<Transcriber, CallError> {
        let invalid = |what: &str| CallError {
            operation: "moonshine_load_transcriber_from_files",
            code: -3,
            message: format!("{what} holds a NUL byte"),
        };
        let path = CString::new(model_dir.as_os_str().as_bytes()).map_err(|_| invalid("path"))?;
        let strings = options
            .iter()
            .map(|(name, value)| Ok((CString::new(*name)?, CString::new(*value)?)))
            .collect::<Result<Vec<_>, std::ffi::NulError>>()
            .map_err(|_| invalid("an option"))?;
        let options: Vec<MoonshineOption> = strings
            .iter()
            .map(|(name, value)| MoonshineOption {
                name: name.as_ptr(),
                value: value.as_ptr(),
            })
            .collect();
        let _table = HANDLE_TABLE.write().unwrap_or_else(PoisonError::into_inner);
        // SAFETY: `path` and every option's strings are NUL-terminated and outlive the call
        // (the library copies them); `options` holds `options.len()` entries. The table lock is
        // held for writing (see the module documentation).
        let handle = unsafe {
            (api.load_transcriber_from_files)(
                path.as_ptr(),
                model_arch,
                options.as_ptr(),
                options.len() as u64,
                HEADER_VERSION,
            )
        };
        if handle < 0 {
            return Err(CallError {
                operation: "moonshine_load_transcriber_from_files",
                code: handle,
                message: api.error_string(handle),
            });
        }
        // Creates the process-wide voice activity model now, alone (see the module
        // documentation).
        let warm_up = || {
            // SAFETY: `handle` is a live transcriber; the table is held for writing.
            let stream = unsafe { (api.create_stream)(handle, 0) };
            api.check("moonshine_create_stream", stream.min(0))?;
            // SAFETY: `stream` was just created on this live transcriber and is freed once.
            let freed = unsafe { (api.free_stream)(handle, stream) };
            api.check("moonshine_free_stream", freed)
        };
        if let Err(error) = warm_up() {
            // SAFETY: the handle is live and freed exactly once; the table is held for writing.
            unsafe { (api.free_transcriber)(handle) };
            return Err(error);
        }
        Ok(Transcriber {
            api,
            handle,
            batch: Mutex::new(()),
        })
    }

    /// Transcribes a whole clip of 16 kHz mono samples; every line comes back complete.
    pub fn transcribe(&self, pcm: &[f32]) -> Result<Vec<RawLine>, CallError> {
        let _table = HANDLE_TABLE.read().unwrap_or_else(PoisonError::into_inner);
        let _batch = self.batch.lock().unwrap_or_else(PoisonError::into_inner);
        let mut transcript: *mut Transcript = std::ptr::null_mut();
        // SAFETY: `pcm` is valid for `pcm.len()` samples for the whole call; the library takes
        // a mutable pointer but only reads the samples (its voice activity detector copies them).
        // `transcript` is written before the call returns.
        let code = unsafe {
            (self.api.transcribe_without_streaming)(
                self.handle,
                pcm.as_ptr().cast_mut(),
                pcm.len() as u64,
                SAMPLE_RATE,
                0,
                &mut transcript,
            )
        };
        self.api
            .check("moonshine_transcribe_without_streaming", code)?;
        // SAFETY: the batch lock is still held, so no call has rebuilt the transcript.
        Ok(unsafe { copy_lines(transcript) })
    }
}

impl Drop for Transcriber {
    fn drop(&mut self) {
        let _table = HANDLE_TABLE.write().unwrap_or_else(PoisonError::into_inner);
        // SAFETY: the handle is live and freed exactly once; no stream of it remains (each
        // holds the transcriber alive) and the table is held for writing.
        unsafe { (self.api.free_transcriber)(self.handle) }
    }
}

/// One stream of a transcriber: audio in, lines out. Freed when dropped.
pub struct Stream {
    transcriber: std::sync::Arc<Transcriber>,
    handle: i32,
}

impl Stream {
    /// Creates a stream on `transcriber`; it still has to be started.
    pub fn create(transcriber: std::sync::Arc<Transcriber>) -> Result<Stream, CallError> {
        let _table = HANDLE_TABLE.read().unwrap_or_else(PoisonError::into_inner);
        // SAFETY: the transcriber is live (held by the `Arc`).
        let handle = unsafe { (transcriber.api.create_stream)(transcriber.handle, 0) };
        transcriber
            .api
            .check("moonshine_create_stream", handle.min(0))?;
        Ok(Stream {
            transcriber,
            handle,
        })
    }

    fn call(&mut self, operation: &'static str, function: StreamCall) -> Result<(), CallError> {
        let _table = HANDLE_TABLE.read().unwrap_or_else(PoisonError::into_inner);
        // SAFETY: both handles are live; `&mut self` keeps calls on this stream one at a time.
        let code = unsafe { function(self.transcriber.handle, self.handle) };
        self.transcriber.api.check(operation, code)
    }

    /// Starts (or restarts) the stream: its voice activity detector, its clock and its lines
    /// begin again from zero.
    pub fn start(&mut self) -> Result<(), CallError> {
        self.call("moonshine_start_stream", self.transcriber.api.start_stream)
    }

    /// Stops the stream: the speech under way ends, the next transcription marks every line
    /// complete.
    pub fn stop(&mut self) -> Result<(), CallError> {
        self.call("moonshine_stop_stream", self.transcriber.api.stop_stream)
    }

    /// Appends 16 kHz mono samples to the stream's buffer (no analysis).
    pub fn add_audio(&mut self, pcm: &[f32]) -> Result<(), CallError> {
        let _table = HANDLE_TABLE.read().unwrap_or_else(PoisonError::into_inner);
        // SAFETY: both handles are live; `pcm` is valid for `pcm.len()` samples for the call and
        // the library copies them; `&mut self` keeps calls on this stream one at a time.
        let code = unsafe {
            (self.transcriber.api.add_audio_to_stream)(
                self.transcriber.handle,
                self.handle,
                pcm.as_ptr(),
                pcm.len() as u64,
                SAMPLE_RATE,
                0,
            )
        };
        self.transcriber
            .api
            .check("moonshine_transcribe_add_audio_to_stream", code)
    }

    /// Analyses the audio added since the last analysis (only when at least the library's
    /// transcription interval of it arrived, unless `flags` has [`FLAG_FORCE_UPDATE`]) and
    /// returns every line of the stream since it started.
    pub fn transcribe(&mut self, flags: u32) -> Result<Vec<RawLine>, CallError> {
        let _table = HANDLE_TABLE.read().unwrap_or_else(PoisonError::into_inner);
        let mut transcript: *mut Transcript = std::ptr::null_mut();
        // SAFETY: both handles are live; `transcript` is written before the call returns;
        // `&mut self` keeps calls on this stream one at a time.
        let code = unsafe {
            (self.transcriber.api.transcribe_stream)(
                self.transcriber.handle,
                self.handle,
                flags,
                &mut transcript,
            )
        };
        self.transcriber
            .api
            .check("moonshine_transcribe_stream", code)?;
        // SAFETY: the transcript lives in this stream and only calls on this stream rebuild it;
        // none can happen before `copy_lines` returns, as we hold `&mut self`.
        Ok(unsafe { copy_lines(transcript) })
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        let _table = HANDLE_TABLE.read().unwrap_or_else(PoisonError::into_inner);
        // SAFETY: both handles are live (the `Arc` keeps the transcriber) and the stream is
        // freed exactly once. A failure cannot be reported from `drop`; the library only fails
        // here for a stream it does not know, which cannot happen.
        unsafe { (self.transcriber.api.free_stream)(self.transcriber.handle, self.handle) };
    }
}
