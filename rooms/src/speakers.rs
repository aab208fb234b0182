//! Active speakers from the audio level each microphone's RTP packets carry (RFC 6464, in
//! −dBov: 0 is the loudest, 127 silence), sans-IO.
//!
//! Each participant's level is smoothed over a short window; a participant speaks while the
//! smoothed level stays above [`SPEAKING_LEVEL`]. [`Speakers::changes`] returns who started or
//! stopped speaking since it was last asked, with a linear level (0–1) as LiveKit's
//! `SpeakerInfo` carries, loudest first.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Smoothed level above which a participant counts as speaking, in dBov.
const SPEAKING_LEVEL: f32 = -50.0;
/// How long a level counts: one without packets for this long is silence.
const LEVEL_WINDOW: Duration = Duration::from_millis(500);
/// Weight of a new sample in the moving average (one packet is 20 ms of Opus).
const SMOOTHING: f32 = 0.15;

#[derive(Debug, Clone, Copy)]
struct Level {
    dbov: f32,
    at: Instant,
    speaking: bool,
}

/// A room's speakers, keyed by participant sid.
#[derive(Debug, Default)]
pub struct Speakers {
    levels: HashMap<String, Level>,
}

/// A change in who speaks.
#[derive(Debug, Clone, PartialEq)]
pub struct SpeakerChange {
    pub sid: String,
    /// Linear level, 0–1.
    pub level: f32,
    pub active: bool,
}

impl Speakers {
    /// Records one audio packet's level (`-127..=0` dBov) from participant `sid`.
    pub fn observe(&mut self, sid: &str, dbov: i8, now: Instant) {
        let sample = f32::from(dbov.clamp(-127, 0));
        match self.levels.get_mut(sid) {
            Some(level) => {
                let fresh = now.duration_since(level.at) <= LEVEL_WINDOW;
                level.dbov = if fresh {
                    level.dbov + SMOOTHING * (sample - level.dbov)
                } else {
                    sample
                };
                level.at = now;
            }
            None => {
                self.levels.insert(
                    sid.to_owned(),
                    Level {
                        dbov: sample,
                        at: now,
                        speaking: false,
                    },
                );
            }
        }
    }

    /// Forgets a participant that left; returns the change to announce if it was speaking.
    pub fn remove(&mut self, sid: &str) -> Option<SpeakerChange> {
        let level = self.levels.remove(sid)?;
        level.speaking.then(|| SpeakerChange {
            sid: sid.to_owned(),
            level: 0.0,
            active: false,
        })
    }

    /// Who started or stopped speaking since the last call, loudest first.
    pub fn changes(&mut self, now: Instant) -> Vec<SpeakerChange> {
        let mut changes = Vec::new();
        for (sid, level) in &mut self.levels {
            let current = if now.duration_since(level.at) > LEVEL_WINDOW {
                -127.0
            } else {
                level.dbov
            };
            let speaking = current > SPEAKING_LEVEL;
            if speaking != level.speaking {
                level.speaking = speaking;
                changes.push(SpeakerChange {
                    sid: sid.clone(),
                    level: if speaking { linear(current) } else { 0.0 },
                    active: speaking,
                });
            }
        }
        changes.sort_by(|a, b| b.level.total_cmp(&a.level));
        changes
    }
}

/// dBov to a linear amplitude, 0–1.
fn linear(dbov: f32) -> f32 {
    10f32.powf(dbov / 20.0).clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(speakers: &mut Speakers, sid: &str, dbov: i8, from: Instant, packets: u32) -> Instant {
        let mut at = from;
        for _ in 0..packets {
            speakers.observe(sid, dbov, at);
            at += Duration::from_millis(20);
        }
        at
    }

    #[test]
    fn a_loud_participant_starts_speaking_and_stops_after_silence() {
        let mut speakers = Speakers::default();
        let start = Instant::now();
        let at = feed(&mut speakers, "PA_loud", -20, start, 25);
        feed(&mut speakers, "PA_quiet", -110, start, 25);
        let changes = speakers.changes(at);
        assert_eq!(changes.len(), 1, "{changes:?}");
        assert_eq!(changes[0].sid, "PA_loud");
        assert!(changes[0].active && changes[0].level > 0.05);
        assert!(speakers.changes(at).is_empty(), "no change, nothing said");

        let at = feed(&mut speakers, "PA_loud", -127, at, 50);
        let changes = speakers.changes(at);
        assert_eq!(changes.len(), 1);
        assert!(!changes[0].active);
    }

    #[test]
    fn a_speaker_whose_packets_stop_is_silent_and_one_who_leaves_is_announced() {
        let mut speakers = Speakers::default();
        let start = Instant::now();
        let at = feed(&mut speakers, "PA_a", -10, start, 10);
        assert!(speakers.changes(at)[0].active);
        let later = at + LEVEL_WINDOW * 2;
        assert!(!speakers.changes(later)[0].active);

        feed(&mut speakers, "PA_b", -10, later, 10);
        speakers.changes(later + Duration::from_millis(200));
        let gone = speakers.remove("PA_b").unwrap();
        assert!(!gone.active);
        assert_eq!(
            speakers.remove("PA_a"),
            None,
            "not speaking: nothing to announce"
        );
    }
}
