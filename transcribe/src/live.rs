//! Live recognition: timed audio in as it arrives, lines out as they are recognised, with the
//! engine's work on a thread of its own so the caller (a packaging thread, a room's audio)
//! never waits for it.
//!
//! [`LiveRecognition::push`] queues a block of 16 kHz mono samples with the time of its first
//! sample on the caller's timeline; the queue is bounded, and when the recogniser falls behind
//! a block is dropped (and counted) rather than waited for. The thread feeds one
//! [`SpeechStream`] of the process's engine and asks it for lines every [`RECOGNISE_EVERY`];
//! what it finds comes back as [`Recognised`] values, every time on the caller's timeline:
//!
//! - a gap in the audio up to [`MAX_SILENCE_FILL`] is filled with silence; a longer one (or a
//!   step back) finishes the engine's stream and starts another at the new time;
//! - line ids are unique within one recognition (an engine's ids restart with each stream, so
//!   the stream's number is folded into them): a partial line and the complete line it
//!   becomes share an id.
//!
//! Without an engine (not installed, failed to load) nothing is recognised: the recognition
//! answers at once that everything is settled, and takes and drops its audio.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tracing::{debug, warn};

use crate::{Line, Speech, SpeechStream, SAMPLE_RATE};

/// How often the recogniser asks the engine for lines: often enough that a line is known soon
/// after it ends, seldom enough that the line being spoken is not recognised again and again
/// (each time costs the CPU of its audio so far).
pub const RECOGNISE_EVERY: Duration = Duration::from_millis(400);
/// The longest gap in the audio filled with silence; a longer one starts a new engine stream.
pub const MAX_SILENCE_FILL: Duration = Duration::from_secs(2);

/// What a recognition found.
#[derive(Debug, Clone, PartialEq)]
pub enum Recognised {
    /// Complete lines, in order, each sent once.
    Lines(Vec<Line>),
    /// The line being spoken now: its text and end may change; it comes again, updated, until
    /// a [`Recognised::Lines`] holds it complete under the same id.
    Partial(Line),
    /// Every line ending before this time is complete and was sent.
    Settled(f64),
    /// Recognition ended; nothing more comes.
    Done,
}

/// Audio for the recogniser.
enum ToRecogniser {
    Audio { start_s: f64, samples: Vec<f32> },
    Finish,
}

/// One stream of speech recognised on a thread of its own; see the module documentation.
pub struct LiveRecognition {
    to_recogniser: SyncSender<ToRecogniser>,
    from_recogniser: Receiver<Recognised>,
    recogniser: Option<JoinHandle<()>>,
    dropped_blocks: u64,
}

impl LiveRecognition {
    /// Starts the recogniser's thread (named `thread_name`), which loads the engine on first
    /// use. At most `queue` blocks of audio wait for it.
    pub fn start(speech: Arc<Speech>, thread_name: &str, queue: usize) -> std::io::Result<Self> {
        let (to_recogniser, inbox) = mpsc::sync_channel(queue);
        let (outbox, from_recogniser) = mpsc::channel();
        let recogniser = std::thread::Builder::new()
            .name(thread_name.to_owned())
            .spawn(move || recognise(&speech, &inbox, &outbox))?;
        Ok(LiveRecognition {
            to_recogniser,
            from_recogniser,
            recogniser: Some(recogniser),
            dropped_blocks: 0,
        })
    }

    /// Queues `samples` (16 kHz mono) whose first sample is at `start_s` on the caller's
    /// timeline. Returns false when the block was dropped because the recogniser is behind
    /// (the first drop is logged; [`LiveRecognition::dropped_blocks`] counts them).
    pub fn push(&mut self, start_s: f64, samples: Vec<f32>) -> bool {
        match self
            .to_recogniser
            .try_send(ToRecogniser::Audio { start_s, samples })
        {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                if self.dropped_blocks == 0 {
                    warn!("Speech recognition falls behind the audio; audio is left out of it.");
                }
                self.dropped_blocks += 1;
                false
            }
            // The recogniser ended (no engine): nothing is recognised anyway.
            Err(TrySendError::Disconnected(_)) => true,
        }
    }

    /// Blocks of audio dropped because the recogniser was behind.
    pub fn dropped_blocks(&self) -> u64 {
        self.dropped_blocks
    }

    /// What was recognised since the last call, without waiting.
    pub fn try_recv(&self) -> Option<Recognised> {
        self.from_recogniser.try_recv().ok()
    }

    /// Ends the recognition: the recogniser finishes what it holds, and everything it still
    /// found is returned, ending with [`Recognised::Done`] unless `wait` passed first (logged).
    pub fn finish(&mut self, wait: Duration) -> Vec<Recognised> {
        // Blocks while the queue is full: the recogniser is draining it.
        let _ = self.to_recogniser.send(ToRecogniser::Finish);
        let deadline = Instant::now() + wait;
        let mut found = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.from_recogniser.recv_timeout(left) {
                Ok(Recognised::Done) => {
                    found.push(Recognised::Done);
                    break;
                }
                Ok(recognised) => found.push(recognised),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {
                    warn!("The last recognised lines did not come in time.");
                    break;
                }
            }
        }
        if let Some(recogniser) = self.recogniser.take() {
            if recogniser.is_finished() {
                let _ = recogniser.join();
            }
        }
        if self.dropped_blocks > 0 {
            warn!(
                dropped_blocks = self.dropped_blocks,
                "Speech recognition left out audio it could not keep up with."
            );
        }
        found
    }
}

/// One engine stream and where its audio sits on the caller's timeline.
struct OpenStream {
    stream: Box<dyn SpeechStream>,
    /// The stream's number within the recognition, folded into its lines' ids.
    number: u64,
    /// Time of its first sample.
    origin_s: f64,
    /// Samples added.
    fed: u64,
}

impl OpenStream {
    /// Time just after the last sample added.
    fn end_s(&self) -> f64 {
        self.origin_s + self.fed as f64 / f64::from(SAMPLE_RATE)
    }

    /// A line of this stream on the caller's timeline.
    fn on_timeline(&self, line: Line) -> Line {
        on_timeline(line, self.number, self.origin_s)
    }
}

/// A line of stream `number`, whose first sample is at `origin_s`, on the caller's timeline,
/// with an id unique in the recognition.
fn on_timeline(mut line: Line, number: u64, origin_s: f64) -> Line {
    line.start_s += origin_s;
    line.end_s += origin_s;
    line.id = (number << 32) | (line.id & u64::from(u32::MAX));
    line
}

/// The recogniser's thread: audio in, lines and settled times out, until told to finish (or
/// the caller is gone).
fn recognise(speech: &Speech, inbox: &Receiver<ToRecogniser>, outbox: &mpsc::Sender<Recognised>) {
    let engine = match speech.engine() {
        Ok(engine) => engine,
        Err(reason) => {
            warn!(reason = %reason, "Speech recognition is off: no engine.");
            let _ = outbox.send(Recognised::Settled(f64::INFINITY));
            while let Ok(ToRecogniser::Audio { .. }) = inbox.recv() {}
            let _ = outbox.send(Recognised::Done);
            return;
        }
    };
    let mut open: Option<OpenStream> = None;
    let mut streams_opened = 0;
    let mut last_recognised = Instant::now();
    loop {
        match inbox.recv_timeout(RECOGNISE_EVERY) {
            Ok(ToRecogniser::Audio { start_s, samples }) => {
                let fill = MAX_SILENCE_FILL.as_secs_f64();
                let gap = open.as_ref().map(|stream| start_s - stream.end_s());
                if let Some(gap) = gap.filter(|gap| *gap < -0.05 || *gap > fill) {
                    debug!(
                        gap_s = gap,
                        "The audio jumped; a new recognition stream starts."
                    );
                    if let Some(stream) = open.take() {
                        finish_stream(stream, outbox);
                    }
                }
                if open.is_none() {
                    match engine.stream() {
                        Ok(stream) => {
                            streams_opened += 1;
                            open = Some(OpenStream {
                                stream,
                                number: streams_opened,
                                origin_s: start_s,
                                fed: 0,
                            })
                        }
                        Err(e) => {
                            warn!(error = %e, "A recognition stream cannot be opened.");
                            continue;
                        }
                    }
                }
                let Some(stream) = &mut open else { continue };
                let silence =
                    ((start_s - stream.end_s()).max(0.0) * f64::from(SAMPLE_RATE)) as usize;
                let added = if silence > 0 {
                    stream.stream.add_audio(&vec![0.0; silence])
                } else {
                    Ok(())
                }
                .and_then(|()| stream.stream.add_audio(&samples));
                stream.fed += (silence + samples.len()) as u64;
                if let Err(e) = added {
                    warn!(error = %e, "Speech recognition failed; a new stream starts.");
                    open = None;
                }
            }
            Ok(ToRecogniser::Finish) | Err(RecvTimeoutError::Disconnected) => {
                if let Some(stream) = open.take() {
                    finish_stream(stream, outbox);
                }
                let _ = outbox.send(Recognised::Settled(f64::INFINITY));
                let _ = outbox.send(Recognised::Done);
                return;
            }
            Err(RecvTimeoutError::Timeout) => {}
        }
        if last_recognised.elapsed() < RECOGNISE_EVERY {
            continue;
        }
        last_recognised = Instant::now();
        let Some(stream) = &mut open else { continue };
        let settled_until = stream.end_s();
        match stream.stream.lines() {
            Ok(lines) => {
                let (complete, partial): (Vec<Line>, Vec<Line>) =
                    lines.into_iter().partition(|line| line.complete);
                let partial = partial
                    .into_iter()
                    .next()
                    .map(|line| stream.on_timeline(line));
                let settled = partial.as_ref().map_or(settled_until, |line| line.start_s);
                let complete: Vec<Line> = complete
                    .into_iter()
                    .map(|line| stream.on_timeline(line))
                    .collect();
                if !complete.is_empty() {
                    let _ = outbox.send(Recognised::Lines(complete));
                }
                if let Some(partial) = partial {
                    let _ = outbox.send(Recognised::Partial(partial));
                }
                let _ = outbox.send(Recognised::Settled(settled));
            }
            Err(e) => {
                warn!(error = %e, "Speech recognition failed; a new stream starts.");
                open = None;
            }
        }
    }
}

/// Ends an engine stream and sends its last lines.
fn finish_stream(open: OpenStream, outbox: &mpsc::Sender<Recognised>) {
    let (number, origin_s) = (open.number, open.origin_s);
    match open.stream.finish() {
        Ok(lines) => {
            let lines: Vec<Line> = lines
                .into_iter()
                .map(|line| on_timeline(line, number, origin_s))
                .collect();
            if !lines.is_empty() {
                let _ = outbox.send(Recognised::Lines(lines));
            }
        }
        Err(e) => warn!(error = %e, "The last recognised lines were lost."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{SpeechEngine, TranscribeError};

    /// An engine that hears a line in every run of non-zero samples, complete once a tenth of
    /// a second of zeros follows it; its ids count from 0 in each stream, as Moonshine's do.
    struct Runs;

    #[derive(Default)]
    struct RunsStream {
        samples: Vec<f32>,
    }

    impl SpeechEngine for Runs {
        fn max_clip_seconds(&self) -> f64 {
            30.0
        }

        fn transcribe(&self, _pcm16k_mono: &[f32]) -> Result<Vec<Line>, TranscribeError> {
            unreachable!("live recognition uses streams")
        }

        fn stream(&self) -> Result<Box<dyn SpeechStream>, TranscribeError> {
            Ok(Box::<RunsStream>::default())
        }
    }

    impl RunsStream {
        fn runs(&self, finished: bool) -> Vec<Line> {
            let rate = f64::from(SAMPLE_RATE);
            let quiet_after = SAMPLE_RATE as usize / 10;
            let mut lines = Vec::new();
            let mut start = None;
            let mut zeros = 0;
            for (i, sample) in self.samples.iter().enumerate() {
                if *sample != 0.0 {
                    start.get_or_insert(i);
                    zeros = 0;
                } else if let Some(begun) = start {
                    zeros += 1;
                    if zeros == quiet_after {
                        lines.push((begun, i + 1 - zeros, true));
                        start = None;
                    }
                }
            }
            if let Some(begun) = start {
                lines.push((begun, self.samples.len() - zeros, finished));
            }
            lines
                .into_iter()
                .enumerate()
                .map(|(id, (from, to, complete))| Line {
                    id: id as u64,
                    start_s: from as f64 / rate,
                    end_s: to as f64 / rate,
                    text: format!("run {id}"),
                    complete,
                })
                .collect()
        }
    }

    impl SpeechStream for RunsStream {
        fn add_audio(&mut self, pcm16k_mono: &[f32]) -> Result<(), TranscribeError> {
            self.samples.extend_from_slice(pcm16k_mono);
            Ok(())
        }

        // Cumulative, as the trait asks: every line once complete, the open one every time.
        fn lines(&mut self) -> Result<Vec<Line>, TranscribeError> {
            Ok(self.runs(false))
        }

        fn finish(self: Box<Self>) -> Result<Vec<Line>, TranscribeError> {
            Ok(self.runs(true))
        }
    }

    fn seconds(s: f64) -> usize {
        (s * f64::from(SAMPLE_RATE)) as usize
    }

    fn speech(s: f64) -> Vec<f32> {
        vec![0.5; seconds(s)]
    }

    fn quiet(s: f64) -> Vec<f32> {
        vec![0.0; seconds(s)]
    }

    fn complete_lines(found: &[Recognised]) -> Vec<Line> {
        found
            .iter()
            .flat_map(|recognised| match recognised {
                Recognised::Lines(lines) => lines.clone(),
                _ => Vec::new(),
            })
            .collect()
    }

    fn recognition(speech: Speech) -> LiveRecognition {
        LiveRecognition::start(Arc::new(speech), "test-recognition", 64).unwrap()
    }

    #[test]
    fn lines_are_placed_on_the_callers_timeline_with_short_gaps_filled_by_silence() {
        let mut live = recognition(Speech::new(|| Ok(Arc::new(Runs))));
        assert!(live.push(100.0, [speech(1.0), quiet(0.5)].concat()));
        // 1 s missing (less than the fill): silence, same stream.
        assert!(live.push(102.5, [speech(0.5), quiet(0.5)].concat()));
        let found = live.finish(Duration::from_secs(10));
        assert_eq!(found.last(), Some(&Recognised::Done));
        let lines = complete_lines(&found);
        let times: Vec<(f64, f64)> = lines
            .iter()
            .map(|line| (line.start_s, line.end_s))
            .collect();
        assert_eq!(times, vec![(100.0, 101.0), (102.5, 103.0)], "{lines:?}");
        assert_ne!(lines[0].id, lines[1].id);
    }

    #[test]
    fn a_long_gap_starts_a_new_stream_whose_line_ids_do_not_repeat_the_first() {
        let mut live = recognition(Speech::new(|| Ok(Arc::new(Runs))));
        live.push(0.0, [speech(1.0), quiet(0.5)].concat());
        live.push(10.0, [speech(1.0), quiet(0.5)].concat());
        let lines = complete_lines(&live.finish(Duration::from_secs(10)));
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert_eq!((lines[1].start_s, lines[1].end_s), (10.0, 11.0));
        assert_eq!(
            (lines[0].text.as_str(), lines[1].text.as_str()),
            ("run 0", "run 0"),
            "each stream counts its lines from 0"
        );
        assert_ne!(lines[0].id, lines[1].id, "ids stay unique across streams");
    }

    #[test]
    fn the_line_being_spoken_comes_as_partial_then_complete_under_the_same_id() {
        let mut live = recognition(Speech::new(|| Ok(Arc::new(Runs))));
        live.push(5.0, speech(1.0));
        let deadline = Instant::now() + Duration::from_secs(10);
        let partial = loop {
            match live.try_recv() {
                Some(Recognised::Partial(line)) => break line,
                Some(Recognised::Settled(settled)) => {
                    assert!(settled <= 5.0, "settled past the open line: {settled}")
                }
                Some(other) => panic!("unexpected {other:?}"),
                None if Instant::now() < deadline => std::thread::sleep(RECOGNISE_EVERY / 4),
                None => panic!("no partial line"),
            }
        };
        assert!(!partial.complete);
        assert_eq!(partial.start_s, 5.0);
        let lines = complete_lines(&live.finish(Duration::from_secs(10)));
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].id, partial.id);
        assert!(lines[0].complete);
    }

    #[test]
    fn without_an_engine_everything_is_settled_at_once_and_audio_is_taken() {
        let mut live = recognition(Speech::unavailable("not installed".into()));
        for second in 0..100 {
            assert!(live.push(f64::from(second), speech(1.0)));
        }
        let found = live.finish(Duration::from_secs(10));
        assert_eq!(
            found,
            vec![Recognised::Settled(f64::INFINITY), Recognised::Done]
        );
        assert_eq!(live.dropped_blocks(), 0);
    }
}
