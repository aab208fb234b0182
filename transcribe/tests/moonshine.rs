//! The Moonshine engine as installed by `scripts/install-deps.sh test`, on speech made with
//! espeak-ng at test time. Without the library these tests fail, saying what to run.

mod common;

use std::collections::HashSet;
use std::path::Path;

use sluice_transcribe::{
    Line, Moonshine, SpeechEngine, TranscribeError, LIBRARY_FILE, MAX_CLIP_SECONDS, MODEL_DIR,
    SAMPLE_RATE,
};

const SENTENCES: [&str; 3] = [
    "The river runs past the old mill every morning.",
    "Children walk to school along the stone bridge.",
    "A small boat carries apples and bread to the village.",
];

/// Lines are ordered, within `0..=duration` (a little slack for the detector's windows) and
/// each runs forward.
fn assert_times_within(lines: &[Line], duration: f64) {
    let mut previous_end = 0.0;
    for line in lines {
        assert!(
            line.start_s >= 0.0 && line.start_s < line.end_s && line.end_s <= duration + 0.1,
            "line outside the audio (0–{duration:.2} s):\n{}",
            common::text_of(lines)
        );
        assert!(
            line.start_s >= previous_end - 0.05,
            "lines out of order:\n{}",
            common::text_of(lines)
        );
        previous_end = line.end_s;
    }
}

/// Each phrase's speech lies within some line (half a second of slack either side).
fn assert_phrases_covered(lines: &[Line], times: &[(f64, f64)]) {
    for (start, end) in times {
        assert!(
            lines
                .iter()
                .any(|l| l.start_s <= start + 0.5 && l.end_s >= end - 0.5),
            "no line covers the phrase at {start:.2}–{end:.2} s:\n{}",
            common::text_of(lines)
        );
    }
}

#[test]
fn transcribes_a_clip_with_most_words_at_their_times() {
    let engine = common::engine();
    let (audio, times) = common::phrases(&SENTENCES, 0.6);
    let duration = common::seconds(audio.len());
    let lines = engine.transcribe(&audio).expect("transcribe");
    let recall = common::recall(&SENTENCES.join(" "), &lines);
    assert!(
        recall >= 0.8,
        "only {:.0} % of the words heard:\n{}",
        100.0 * recall,
        common::text_of(&lines)
    );
    assert!(
        lines.iter().all(|l| l.complete),
        "{}",
        common::text_of(&lines)
    );
    assert_times_within(&lines, duration);
    assert_phrases_covered(&lines, &times);
    let ids: HashSet<u64> = lines.iter().map(|l| l.id).collect();
    assert_eq!(ids.len(), lines.len(), "line ids repeat");
}

#[test]
fn a_stream_completes_lines_as_the_speech_pauses() {
    let engine = common::engine();
    let (audio, times) = common::phrases(&SENTENCES, 1.0);
    let duration = common::seconds(audio.len());
    let mut stream = engine.stream().expect("stream");
    let mut complete = Vec::new();
    let mut partial_ids = HashSet::new();
    // A tenth of a second at a time, as a live source would deliver it.
    for piece in audio.chunks(SAMPLE_RATE as usize / 10) {
        stream.add_audio(piece).expect("add_audio");
        for line in stream.lines().expect("lines") {
            if line.complete {
                complete.push(line);
            } else {
                partial_ids.insert(line.id);
            }
        }
    }
    let during = complete.len();
    complete.extend(stream.finish().expect("finish"));
    // Each phrase is followed by a second of silence: its line is complete before the end.
    assert_eq!(
        during,
        SENTENCES.len(),
        "lines completed while streaming:\n{}",
        common::text_of(&complete)
    );
    let recall = common::recall(&SENTENCES.join(" "), &complete);
    assert!(
        recall >= 0.8,
        "only {:.0} % of the words heard:\n{}",
        100.0 * recall,
        common::text_of(&complete)
    );
    assert_times_within(&complete, duration);
    assert_phrases_covered(&complete, &times);
    let ids: Vec<u64> = complete.iter().map(|l| l.id).collect();
    assert_eq!(
        ids.iter().collect::<HashSet<_>>().len(),
        ids.len(),
        "a line was completed twice"
    );
    // Lines were seen while still being spoken, under the id they completed with.
    assert!(
        ids.iter().any(|id| partial_ids.contains(id)),
        "no partial line before completion"
    );
}

#[test]
fn finishing_a_stream_completes_the_line_being_spoken() {
    let engine = common::engine();
    // No pause after the speech: the line is still open when the stream ends.
    let audio = common::speak(SENTENCES[0]);
    let mut stream = engine.stream().expect("stream");
    stream.add_audio(&audio).expect("add_audio");
    let lines = stream.finish().expect("finish");
    assert!(!lines.is_empty() && lines.iter().all(|l| l.complete));
    assert!(
        common::recall(SENTENCES[0], &lines) >= 0.8,
        "{}",
        common::text_of(&lines)
    );
}

#[test]
fn silence_gives_no_lines() {
    let engine = common::engine();
    let quiet = common::silence(10.0);
    let lines = engine.transcribe(&quiet).expect("transcribe");
    assert!(lines.is_empty(), "{}", common::text_of(&lines));
    let mut stream = engine.stream().expect("stream");
    let mut lines = Vec::new();
    for piece in quiet.chunks(SAMPLE_RATE as usize / 2) {
        stream.add_audio(piece).expect("add_audio");
        lines.extend(stream.lines().expect("lines"));
    }
    lines.extend(stream.finish().expect("finish"));
    assert!(lines.is_empty(), "{}", common::text_of(&lines));
    assert!(engine.transcribe(&[]).expect("empty clip").is_empty());
}

#[test]
fn clips_over_the_limit_are_refused() {
    let engine = common::engine();
    assert_eq!(engine.max_clip_seconds(), MAX_CLIP_SECONDS);
    let long = common::silence(MAX_CLIP_SECONDS + 0.5);
    let error = engine.transcribe(&long).expect_err("a clip over the limit");
    assert!(matches!(error, TranscribeError::TooLong { .. }), "{error}");
    assert!(error.to_string().contains("stream"), "{error}");
    let at_limit = common::silence(MAX_CLIP_SECONDS);
    assert!(engine
        .transcribe(&at_limit)
        .expect("at the limit")
        .is_empty());
}

/// More lines than a stream keeps before restarting the library's stream: times go on from
/// where they were, and every phrase is heard once.
#[test]
fn a_long_stream_keeps_its_clock_across_restarts() {
    let engine = common::engine();
    let words = [
        "apple", "river", "yellow", "window", "garden", "seven", "orange", "music",
    ];
    let texts: Vec<&str> = (0..40).map(|i| words[i % words.len()]).collect();
    let (audio, times) = common::phrases(&texts, 0.8);
    let mut stream = engine.stream().expect("stream");
    let mut lines = Vec::new();
    // Two seconds at a time, a file fed as fast as it is decoded.
    for piece in audio.chunks(2 * SAMPLE_RATE as usize) {
        stream.add_audio(piece).expect("add_audio");
        lines.extend(
            stream
                .lines()
                .expect("lines")
                .into_iter()
                .filter(|l| l.complete),
        );
    }
    lines.extend(stream.finish().expect("finish"));
    assert_times_within(&lines, common::seconds(audio.len()));
    // Every line starts near a phrase, and most phrases have their line.
    let mut matched = HashSet::new();
    for line in &lines {
        let nearest = times
            .iter()
            .enumerate()
            .min_by(|(_, a), (_, b)| {
                (a.0 - line.start_s)
                    .abs()
                    .total_cmp(&(b.0 - line.start_s).abs())
            })
            .map(|(i, _)| i)
            .expect("phrases");
        assert!(
            (times[nearest].0 - line.start_s).abs() < 0.6,
            "a line far from every phrase's start:\n{}",
            common::text_of(&lines)
        );
        matched.insert(nearest);
    }
    assert!(
        matched.len() >= texts.len() * 9 / 10,
        "{} of {} phrases found:\n{}",
        matched.len(),
        texts.len(),
        common::text_of(&lines)
    );
}

/// Clips and streams on several threads at once share one engine.
#[test]
fn one_engine_serves_several_threads() {
    let engine = common::engine();
    let (audio, _) = common::phrases(&SENTENCES[..2], 0.6);
    let expected = SENTENCES[..2].join(" ");
    std::thread::scope(|scope| {
        let clips: Vec<_> = (0..2)
            .map(|_| scope.spawn(|| engine.transcribe(&audio).expect("transcribe")))
            .collect();
        let streamed = scope.spawn(|| {
            let mut stream = engine.stream().expect("stream");
            let mut lines = Vec::new();
            for piece in audio.chunks(SAMPLE_RATE as usize / 4) {
                stream.add_audio(piece).expect("add_audio");
                lines.extend(
                    stream
                        .lines()
                        .expect("lines")
                        .into_iter()
                        .filter(|l| l.complete),
                );
            }
            lines.extend(stream.finish().expect("finish"));
            lines
        });
        for lines in clips
            .into_iter()
            .map(|c| c.join().expect("clip thread"))
            .chain([streamed.join().expect("stream thread")])
        {
            assert!(
                common::recall(&expected, &lines) >= 0.8,
                "{}",
                common::text_of(&lines)
            );
        }
    });
}

#[test]
fn a_folder_without_the_library_gives_a_clear_error() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("transcribe-no-library");
    std::fs::create_dir_all(&dir).expect("test folder");
    let error = Moonshine::load(&dir).expect_err("no library there");
    let message = error.to_string();
    assert!(
        matches!(&error, TranscribeError::NotInstalled { path } if *path == dir.join(LIBRARY_FILE)),
        "{message}"
    );
    assert!(error.is_unavailable());
    assert!(
        message.contains(&dir.join(LIBRARY_FILE).display().to_string()),
        "{message}"
    );
    assert!(message.contains("scripts/install-deps.sh"), "{message}");
}

#[test]
fn a_broken_library_gives_a_clear_error() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("transcribe-broken-library");
    let _ = std::fs::remove_dir_all(&dir);
    let model = dir.join(MODEL_DIR);
    std::fs::create_dir_all(&model).expect("test folder");
    std::fs::create_dir_all(dir.join("moonshine_voice-0.0.73.dist-info")).expect("test folder");
    for file in [
        "encoder_model.ort",
        "decoder_model_merged.ort",
        "tokenizer.bin",
    ] {
        std::fs::write(model.join(file), b"").expect("model file");
    }
    std::fs::write(dir.join(LIBRARY_FILE), b"not a shared object").expect("library file");
    let error = Moonshine::load(&dir).expect_err("a broken library");
    let message = error.to_string();
    assert!(matches!(error, TranscribeError::Broken { .. }), "{message}");
    assert!(error.is_unavailable());
    assert!(
        message.contains(&dir.join(LIBRARY_FILE).display().to_string()),
        "{message}"
    );
    assert!(message.contains("scripts/install-deps.sh"), "{message}");

    // The real library (linked, with ONNX Runtime beside it) and a model it cannot read.
    let installed = Path::new(sluice_transcribe::DEFAULT_LIBRARY_DIR);
    assert!(
        installed.join(LIBRARY_FILE).is_file(),
        "{} is missing: run `scripts/install-deps.sh test`",
        installed.join(LIBRARY_FILE).display()
    );
    std::fs::remove_file(dir.join(LIBRARY_FILE)).expect("remove the fake library");
    for path in [LIBRARY_FILE, "moonshine_voice.libs"] {
        std::os::unix::fs::symlink(installed.join(path), dir.join(path)).expect("link");
    }
    let error = Moonshine::load(&dir).expect_err("an unreadable model");
    let message = error.to_string();
    assert!(matches!(error, TranscribeError::Broken { .. }), "{message}");
    assert!(message.contains(&model.display().to_string()), "{message}");
}
