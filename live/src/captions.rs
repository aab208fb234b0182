//! Live captions: a WebVTT subtitles rendition of a live session, recognised from its audio
//! while it is published, in the same playlist window as its other renditions.
//!
//! Two halves, so recognising speech never holds back a video or audio segment:
//!
//! - On the packaging thread, [`LiveCaptions`] decodes each AAC frame of the audio rendition
//!   to 16 kHz mono ([`LiveSpeechAudio`], cheap) and hands the samples to the recogniser over a
//!   bounded queue: when the recogniser falls behind, audio is dropped (and counted) rather
//!   than waited for. It takes back the lines the recogniser completed and how far its
//!   recognition is settled, and publishes the captions segments ([`CaptionTrack`], sans-IO).
//! - On a thread of its own, a [`LiveRecognition`] feeds one stream of the process's speech
//!   engine (see `sluice_transcribe::live`); times stay on the session's media timeline.
//!
//! # Segments
//!
//! The captions rendition is cut where the first video rendition is cut: each time it closes a
//! segment, a captions segment of the same span waits until recognition is settled past its end
//! (every line that overlaps it is complete) or [`CAPTION_HOLD`] passed, whichever comes
//! first; it then holds every complete line overlapping it, and any line completed too late for
//! the segments it overlaps (a sentence still being spoken when they were published). Cue times
//! are media times with `X-TIMESTAMP-MAP=MPEGTS:0` (see `sluice_packager::subtitles`), which is
//! what the fMP4 segments' decode times are on. The playlist (`subs/{language}/index.m3u8`, no
//! init segment, no parts: players load captions beside the low-latency renditions) lists a
//! segment once it is written; a reconnection marks a discontinuity as in the other renditions.
//!
//! A publisher that recognises its speech itself (a room's composite, from its participants'
//! transcription) sends its lines instead ([`CaptionSource::Publisher`]): nothing is decoded or
//! recognised here, its complete lines go to the track as they come, and segments are
//! published once their hold passed.
//!
//! Captions are best effort: the engine missing, failing or too slow leaves segments without
//! cues (logged once), never the session without video.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sluice_media::{AudioSpecificConfig, Packet};
use sluice_packager::subtitles::{
    subtitles_playlist_uri, webvtt_segment, Cue, FMP4_MPEGTS, SUBTITLE_SEGMENT_SUFFIX,
};
use sluice_packager::{LivePlaylist, MEDIA_PLAYLIST};
use sluice_transcoder::speech::LiveSpeechAudio;
use sluice_transcribe::live::{LiveRecognition, Recognised};
use sluice_transcribe::{Line, Speech};
use tracing::{debug, info, warn};

use crate::renditions::{PlaylistWindow, SpoolKind, TreeOutput};

/// How long a closed segment waits for its speech to be recognised before its captions are
/// published without what is still being said.
pub const CAPTION_HOLD: Duration = Duration::from_secs(2);
/// Blocks of audio (one per AAC frame, 21 to 64 ms) waiting for the recogniser: about 10 s.
const AUDIO_QUEUE: usize = 400;
/// How long the end of a session waits for the recogniser's last lines.
const FINISH_WAIT: Duration = Duration::from_secs(10);
/// Captions segments kept in the store after they leave the playlist window.
const EVICTION_GRACE_SEGMENTS: usize = 4;

/// What a session's captions are.
#[derive(Clone)]
pub struct CaptionSettings {
    /// The language spoken (a language tag): the rendition's LANGUAGE and directory.
    pub language: String,
    /// The rendition's NAME.
    pub name: String,
    /// Where the lines come from.
    pub source: CaptionSource,
}

/// Where a session's caption lines come from.
#[derive(Clone)]
pub enum CaptionSource {
    /// Recognised from the session's audio with the process's speech engine.
    Speech(Arc<Speech>),
    /// Sent by the publisher, which recognised its speech itself (a room's composite): its
    /// audio is not recognised again.
    Publisher,
}

impl std::fmt::Debug for CaptionSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptionSettings")
            .field("language", &self.language)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// A closed segment of the first video rendition whose captions are not published yet.
#[derive(Clone, Debug, PartialEq)]
struct PendingSegment {
    start_s: f64,
    end_s: f64,
    program_date_time: DateTime<Utc>,
    /// When the video segment closed, by the packager's clock.
    closed_at: DateTime<Utc>,
    /// It follows a reconnection.
    discontinuity: bool,
}

/// A complete line and whether a published segment holds it.
#[derive(Clone, Debug, PartialEq)]
struct HeldLine {
    start_s: f64,
    end_s: f64,
    text: String,
    published: bool,
}

/// The captions rendition's segments and playlist (no I/O: objects go to a [`TreeOutput`]).
pub struct CaptionTrack {
    /// Directory under the live stream: `subs/{language}`.
    dir: Vec<String>,
    session_id: String,
    playlist: LivePlaylist,
    pending: VecDeque<PendingSegment>,
    lines: Vec<HeldLine>,
    /// Recognition is settled up to here (media seconds).
    settled_s: f64,
    next_sequence: u64,
    segments_written: u64,
    evicted: VecDeque<String>,
    /// The next segment closed follows a reconnection.
    discontinuity_pending: bool,
}

impl CaptionTrack {
    /// An empty captions rendition for `language`, its playlist keeping `window` with segments
    /// of `target` (as the session's other renditions).
    pub fn new(language: &str, session_id: &str, target: Duration, window: PlaylistWindow) -> Self {
        let target_secs = target.as_secs().max(1);
        let playlist = match window {
            PlaylistWindow::Segments(segments) => {
                LivePlaylist::new(target_secs, segments, String::new())
            }
            PlaylistWindow::Event => LivePlaylist::event(target_secs, String::new()),
        }
        .without_init();
        let uri = subtitles_playlist_uri(language);
        let mut dir: Vec<String> = uri.split('/').map(str::to_owned).collect();
        dir.pop();
        CaptionTrack {
            dir,
            session_id: session_id.to_owned(),
            playlist,
            pending: VecDeque::new(),
            lines: Vec::new(),
            settled_s: f64::NEG_INFINITY,
            next_sequence: 0,
            segments_written: 0,
            evicted: VecDeque::new(),
            discontinuity_pending: false,
        }
    }

    /// Whether a segment was published (the multivariant playlist may then list the rendition).
    pub fn has_segments(&self) -> bool {
        self.segments_written > 0
    }

    /// The first video rendition closed the segment `[start_s, end_s)` (media seconds) at
    /// `now`; it starts at wall-clock `program_date_time`.
    pub fn segment_closed(
        &mut self,
        start_s: f64,
        end_s: f64,
        program_date_time: DateTime<Utc>,
        now: DateTime<Utc>,
    ) {
        self.pending.push_back(PendingSegment {
            start_s,
            end_s,
            program_date_time,
            closed_at: now,
            discontinuity: std::mem::take(&mut self.discontinuity_pending),
        });
    }

    /// The next segment closed follows a reconnection.
    pub fn mark_discontinuity(&mut self) {
        self.discontinuity_pending = true;
    }

    /// Takes complete lines (media seconds).
    fn add_lines(&mut self, lines: Vec<Line>) {
        self.lines.extend(lines.into_iter().map(|line| HeldLine {
            start_s: line.start_s,
            end_s: line.end_s,
            text: line.text,
            published: false,
        }));
    }

    /// Recognition is settled up to `settled_s`.
    fn settle(&mut self, settled_s: f64) {
        self.settled_s = self.settled_s.max(settled_s);
    }

    /// Publishes the pending segments whose captions are due at `now` (`None`: every one, the
    /// session is ending); returns whether any was.
    pub fn publish_due(&mut self, output: &dyn TreeOutput, now: Option<DateTime<Utc>>) -> bool {
        let hold = chrono::Duration::from_std(CAPTION_HOLD).unwrap_or(chrono::Duration::zero());
        let mut published = false;
        while let Some(segment) = self.pending.front() {
            let due = match now {
                Some(now) => self.settled_s >= segment.end_s || now - segment.closed_at >= hold,
                None => true,
            };
            if !due {
                break;
            }
            let segment = self.pending.pop_front().expect("a pending segment");
            self.publish(output, &segment);
            published = true;
        }
        if published {
            self.write_playlist(output);
        }
        published
    }

    /// Writes one segment with its cues and lists it.
    fn publish(&mut self, output: &dyn TreeOutput, segment: &PendingSegment) {
        let mut cues = Vec::new();
        for line in &mut self.lines {
            let overlaps = line.start_s < segment.end_s && line.end_s > segment.start_s;
            let late = !line.published && line.end_s <= segment.start_s;
            if overlaps || late {
                cues.push(Cue::from_secs(
                    line.start_s.max(0.0),
                    line.end_s.max(0.0),
                    line.text.clone(),
                ));
                line.published = true;
            }
        }
        // A published line that ends inside this segment is in no later one.
        self.lines
            .retain(|line| !(line.published && line.end_s <= segment.end_s));
        let name = format!(
            "{}-{}{SUBTITLE_SEGMENT_SUFFIX}",
            self.session_id, self.next_sequence
        );
        self.next_sequence += 1;
        let body = webvtt_segment(&cues, FMP4_MPEGTS);
        if !output.put_media(&self.path(&name), body.as_bytes(), SpoolKind::Segment) {
            // The next segment's cues still go out; this span stays without captions.
            warn!(segment = %name, "Captions segment dropped: the spool refused it.");
            return;
        }
        self.segments_written += 1;
        if segment.discontinuity {
            self.playlist.mark_discontinuity();
        }
        let evicted = self.playlist.push_segment(
            name,
            segment.end_s - segment.start_s,
            segment.program_date_time,
        );
        self.evicted.extend(evicted);
        while self.evicted.len() > EVICTION_GRACE_SEGMENTS {
            if let Some(old) = self.evicted.pop_front() {
                output.delete(&self.path(&old));
            }
        }
    }

    fn write_playlist(&self, output: &dyn TreeOutput) {
        output.put_playlist(&self.path(MEDIA_PLAYLIST), self.playlist.render());
    }

    /// `name` inside the rendition's directory, as path segments.
    fn path<'a>(&'a self, name: &'a str) -> Vec<&'a str> {
        self.dir
            .iter()
            .map(String::as_str)
            .chain(std::iter::once(name))
            .collect()
    }

    /// Ends the playlist (EXT-X-ENDLIST) once every pending segment is published.
    pub fn end(&mut self, output: &dyn TreeOutput) {
        self.publish_due(output, None);
        self.playlist.end();
        if self.segments_written > 0 {
            self.write_playlist(output);
        }
    }
}

/// A session's live captions: the decoder and the recogniser feeding a [`CaptionTrack`], or
/// the publisher's lines.
pub struct LiveCaptions {
    pub track: CaptionTrack,
    settings: CaptionSettings,
    decoder: Option<LiveSpeechAudio>,
    /// `None` when the publisher sends the lines.
    recognition: Option<LiveRecognition>,
    /// The decoder failed to open or decode; logged once.
    decoder_failed: bool,
}

impl LiveCaptions {
    /// Captions of session `session_id` cut like its renditions (`target`, `window`); starts
    /// the recogniser's thread (which loads the engine on first use).
    pub fn start(
        settings: CaptionSettings,
        session_id: &str,
        target: Duration,
        window: PlaylistWindow,
    ) -> std::io::Result<Self> {
        let recognition = match &settings.source {
            CaptionSource::Speech(speech) => Some(LiveRecognition::start(
                speech.clone(),
                "sluice-captions",
                AUDIO_QUEUE,
            )?),
            CaptionSource::Publisher => None,
        };
        info!(session_id, language = %settings.language, recognised = recognition.is_some(), "Live captions started.");
        Ok(LiveCaptions {
            track: CaptionTrack::new(&settings.language, session_id, target, window),
            settings,
            decoder: None,
            recognition,
            decoder_failed: false,
        })
    }

    /// The rendition's language and name.
    pub fn settings(&self) -> &CaptionSettings {
        &self.settings
    }

    /// Decodes one AAC frame of the audio rendition and queues its samples for the recogniser
    /// (dropped when it is behind).
    pub fn push_audio(&mut self, config: &AudioSpecificConfig, packet: &Packet) {
        let Some(recognition) = &mut self.recognition else {
            return;
        };
        if self.decoder.is_none() && !self.decoder_failed {
            match LiveSpeechAudio::new(config) {
                Ok(decoder) => self.decoder = Some(decoder),
                Err(e) => {
                    self.decoder_failed = true;
                    warn!(error = %e, "Live captions are off for this session: the audio cannot be decoded.");
                }
            }
        }
        let Some(decoder) = &mut self.decoder else {
            return;
        };
        match decoder.push(config, packet) {
            Ok(samples) if !samples.samples.is_empty() => {
                recognition.push(samples.start_s, samples.samples.to_vec());
            }
            Ok(_) => {}
            Err(e) => debug!(error = %e, "An audio frame was left out of the captions."),
        }
    }

    /// Takes what the recogniser found and publishes the segments due at `now`; returns
    /// whether a segment was published.
    pub fn poll(&mut self, output: &dyn TreeOutput, now: DateTime<Utc>) -> bool {
        while let Some(found) = self
            .recognition
            .as_ref()
            .and_then(LiveRecognition::try_recv)
        {
            self.take(found);
        }
        self.track.publish_due(output, Some(now))
    }

    /// Takes complete lines the publisher sent (on the media timeline). A segment they came
    /// too late for is published after its hold without them, and they go into the next one.
    pub fn take_publisher_lines(&mut self, lines: Vec<Line>) {
        if self.recognition.is_none() {
            self.track
                .add_lines(lines.into_iter().filter(|line| line.complete).collect());
        }
    }

    fn take(&mut self, found: Recognised) {
        match found {
            Recognised::Lines(lines) => self.track.add_lines(lines),
            Recognised::Settled(settled_s) => self.track.settle(settled_s),
            // Captions show complete lines only.
            Recognised::Partial(_) | Recognised::Done => {}
        }
    }

    /// Ends the captions: the recogniser finishes what it holds (waited for up to
    /// [`FINISH_WAIT`]), every pending segment is published and the playlist ended.
    pub fn finish(&mut self, output: &dyn TreeOutput) {
        if let Some(recognition) = &mut self.recognition {
            if let Some(decoder) = &mut self.decoder {
                if let Ok(samples) = decoder.flush() {
                    if !samples.samples.is_empty() {
                        recognition.push(samples.start_s, samples.samples.to_vec());
                    }
                }
            }
            for found in recognition.finish(FINISH_WAIT) {
                self.take(found);
            }
        }
        self.track.end(output);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use chrono::TimeZone;

    use super::*;

    /// An output that notes the media and playlists it took, in order.
    #[derive(Default)]
    struct Noted {
        media: Mutex<Vec<(String, String)>>,
        playlists: Mutex<Vec<(String, String)>>,
    }

    impl TreeOutput for Noted {
        fn put_media(&self, path: &[&str], body: &[u8], _kind: SpoolKind) -> bool {
            self.media
                .lock()
                .unwrap()
                .push((path.join("/"), String::from_utf8(body.to_vec()).unwrap()));
            true
        }

        fn put_playlist(&self, path: &[&str], body: Vec<u8>) {
            self.playlists
                .lock()
                .unwrap()
                .push((path.join("/"), String::from_utf8(body).unwrap()));
        }

        fn delete(&self, _path: &[&str]) {}
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000 + seconds, 0).unwrap()
    }

    fn line(start_s: f64, end_s: f64, text: &str) -> Line {
        Line {
            id: 0,
            start_s,
            end_s,
            text: text.to_owned(),
            complete: true,
        }
    }

    fn track() -> CaptionTrack {
        CaptionTrack::new(
            "en",
            "ses_1",
            Duration::from_secs(2),
            PlaylistWindow::Segments(6),
        )
    }

    #[test]
    fn a_segment_waits_until_its_speech_is_settled_then_holds_the_lines_over_it() {
        let output = Noted::default();
        let mut track = track();
        track.segment_closed(0.0, 2.0, at(0), at(2));
        assert!(
            !track.publish_due(&output, Some(at(2))),
            "recognition is not settled yet"
        );
        track.add_lines(vec![
            line(0.5, 1.5, "Hello there."),
            line(1.8, 2.6, "Next one."),
        ]);
        track.settle(2.7);
        assert!(track.publish_due(&output, Some(at(2))));
        let media = output.media.lock().unwrap().clone();
        assert_eq!(media[0].0, "subs/en/ses_1-0.vtt");
        assert!(media[0]
            .1
            .starts_with("WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:0,LOCAL:00:00:00.000\n"));
        assert!(media[0]
            .1
            .contains("00:00:00.500 --> 00:00:01.500\nHello there."));
        assert!(media[0]
            .1
            .contains("00:00:01.800 --> 00:00:02.600\nNext one."));
        // The line crossing the boundary is in the next segment too.
        track.segment_closed(2.0, 4.0, at(2), at(4));
        track.settle(4.0);
        track.publish_due(&output, Some(at(4)));
        let media = output.media.lock().unwrap().clone();
        assert!(media[1].1.contains("Next one."), "{}", media[1].1);
        assert!(!media[1].1.contains("Hello there."), "{}", media[1].1);
        let playlist = &output.playlists.lock().unwrap().last().unwrap().1.clone();
        assert!(playlist.contains("#EXTINF:2,\nses_1-1.vtt\n"), "{playlist}");
        assert!(!playlist.contains("EXT-X-MAP"), "{playlist}");
    }

    #[test]
    fn a_segment_is_published_after_the_hold_without_what_is_still_spoken() {
        let output = Noted::default();
        let mut track = track();
        track.segment_closed(0.0, 2.0, at(0), at(2));
        track.settle(1.0);
        assert!(!track.publish_due(&output, Some(at(3))));
        assert!(
            track.publish_due(&output, Some(at(4))),
            "published after the hold"
        );
        assert_eq!(
            output.media.lock().unwrap()[0].1,
            "WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:0,LOCAL:00:00:00.000\n\n"
        );
        // The sentence completed late goes into the next segment published.
        track.add_lines(vec![line(1.2, 2.4, "Late but here.")]);
        track.segment_closed(2.0, 4.0, at(2), at(4));
        track.segment_closed(4.0, 6.0, at(4), at(6));
        track.settle(6.0);
        track.publish_due(&output, Some(at(6)));
        let media = output.media.lock().unwrap().clone();
        assert!(media[1].1.contains("Late but here."), "{}", media[1].1);
        assert!(!media[2].1.contains("Late but here."), "{}", media[2].1);
    }

    #[test]
    fn a_line_completed_after_every_segment_it_overlaps_goes_into_the_next_one() {
        let output = Noted::default();
        let mut track = track();
        track.segment_closed(0.0, 2.0, at(0), at(2));
        track.publish_due(&output, Some(at(9)));
        track.add_lines(vec![line(0.2, 1.0, "Too late for its own.")]);
        track.segment_closed(2.0, 4.0, at(2), at(4));
        track.publish_due(&output, Some(at(9)));
        let media = output.media.lock().unwrap().clone();
        assert!(
            media[1].1.contains("Too late for its own."),
            "{}",
            media[1].1
        );
    }

    #[test]
    fn the_end_publishes_every_pending_segment_and_ends_the_playlist() {
        let output = Noted::default();
        let mut track = track();
        track.segment_closed(0.0, 2.0, at(0), at(2));
        track.mark_discontinuity();
        track.segment_closed(2.0, 3.0, at(2), at(3));
        track.end(&output);
        assert_eq!(output.media.lock().unwrap().len(), 2);
        let playlist = output.playlists.lock().unwrap().last().unwrap().1.clone();
        assert!(playlist.ends_with("#EXT-X-ENDLIST\n"), "{playlist}");
        assert!(
            playlist.contains(
                "#EXT-X-DISCONTINUITY\n#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:22.000Z\n"
            ),
            "the segment closed after the reconnection follows the discontinuity: {playlist}"
        );
    }

    #[test]
    fn a_publishers_complete_lines_become_its_captions_and_its_audio_is_left_alone() {
        let output = Noted::default();
        let mut captions = LiveCaptions::start(
            CaptionSettings {
                language: "en".into(),
                name: "English (live)".into(),
                source: CaptionSource::Publisher,
            },
            "ses_1",
            Duration::from_secs(2),
            PlaylistWindow::Segments(6),
        )
        .unwrap();
        // Audio is left alone (not decoded: this is no AAC frame, and nothing complains).
        let garbage = Packet {
            kind: sluice_media::TrackKind::Audio,
            timebase: sluice_media::Timebase::MILLIS,
            dts: 0,
            pts: 0,
            keyframe: true,
            data: bytes::Bytes::from_static(&[0xFF; 8]),
        };
        let config = AudioSpecificConfig::parse(&[0x11, 0x90]).unwrap();
        captions.push_audio(&config, &garbage);
        let mut partial = line(0.5, 1.0, "Not yet.");
        partial.complete = false;
        captions.take_publisher_lines(vec![line(0.4, 1.6, "ANA: Hello there."), partial]);
        captions.track.segment_closed(0.0, 2.0, at(0), at(2));
        assert!(
            !captions.poll(&output, at(3)),
            "nothing settles a publisher's lines: the segment waits for its hold"
        );
        assert!(captions.poll(&output, at(4)));
        let media = output.media.lock().unwrap().clone();
        assert!(
            media[0]
                .1
                .contains("00:00:00.400 --> 00:00:01.600\nANA: Hello there."),
            "{}",
            media[0].1
        );
        assert!(!media[0].1.contains("Not yet."), "{}", media[0].1);
        captions.finish(&output);
        let playlist = output.playlists.lock().unwrap().last().unwrap().1.clone();
        assert!(playlist.ends_with("#EXT-X-ENDLIST\n"), "{playlist}");
    }
}
