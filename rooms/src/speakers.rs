//! Active speakers from the audio level each microphone's RTP packets carry (RFC 6464, in
//! −dBov: 0 is the loudest, −127 silence), sans-IO.
//!
//! A participant speaks while at least [`SPEAKING_SHARE`] of its packets of the last
//! [`LEVEL_WINDOW`] are louder than [`SPEAKING_LEVEL`]: speech has pauses between words, and a
//! microphone's noise floor stays below the level. [`Speakers::changes`] returns who started
//! or stopped speaking since it was last asked, with a linear level (0–1, the mean of the loud
//! packets) as LiveKit's `SpeakerInfo` carries, loudest first.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// A packet louder than this counts as voice, in dBov.
const SPEAKING_LEVEL: i8 = -50;
/// The share of the window's packets that must be voice.
const SPEAKING_SHARE: f32 = 0.1;
/// How far back packets count (50 packets of 20 ms Opus).
const LEVEL_WINDOW: Duration = Duration::from_secs(1);
/// Packets kept per participant: a window's worth at 10 ms packets.
const MAX_SAMPLES: usize = 100;

#[derive(Debug, Default)]
struct Levels {
    /// Arrival and level of the window's packets, oldest first.
    samples: VecDeque<(Instant, i8)>,
    speaking: bool,
}

impl Levels {
    fn forget_before(&mut self, now: Instant) {
        while self
            .samples
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > LEVEL_WINDOW)
        {
            self.samples.pop_front();
        }
    }

    /// Whether the window holds enough voice, and the mean linear level of its voice.
    fn voice(&self) -> (bool, f32) {
        let loud: Vec<f32> = self
            .samples
            .iter()
            .filter(|(_, dbov)| *dbov > SPEAKING_LEVEL)
            .map(|(_, dbov)| linear(*dbov))
            .collect();
        let expected = (LEVEL_WINDOW.as_millis() / 20) as f32;
        let share = loud.len() as f32 / expected.max(self.samples.len() as f32);
        let level = if loud.is_empty() {
            0.0
        } else {
            loud.iter().sum::<f32>() / loud.len() as f32
        };
        (share >= SPEAKING_SHARE, level)
    }
}

/// A room's speakers, keyed by participant sid.
#[derive(Debug, Default)]
pub struct Speakers {
    levels: HashMap<String, Levels>,
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
        let levels = self.levels.entry(sid.to_owned()).or_default();
        levels.forget_before(now);
        if levels.samples.len() >= MAX_SAMPLES {
            levels.samples.pop_front();
        }
        levels.samples.push_back((now, dbov.clamp(-127, 0)));
    }

    /// Forgets a participant that left; returns the change to announce if it was speaking.
    pub fn remove(&mut self, sid: &str) -> Option<SpeakerChange> {
        let levels = self.levels.remove(sid)?;
        levels.speaking.then(|| SpeakerChange {
            sid: sid.to_owned(),
            level: 0.0,
            active: false,
        })
    }

    /// The loudest participant speaking now, if anyone speaks.
    pub fn loudest(&mut self, now: Instant) -> Option<String> {
        self.levels
            .iter_mut()
            .filter_map(|(sid, levels)| {
                levels.forget_before(now);
                let (speaking, level) = levels.voice();
                speaking.then_some((sid, level))
            })
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(sid, _)| sid.clone())
    }

    /// Who started or stopped speaking since the last call, loudest first.
    pub fn changes(&mut self, now: Instant) -> Vec<SpeakerChange> {
        let mut changes = Vec::new();
        for (sid, levels) in &mut self.levels {
            levels.forget_before(now);
            let (speaking, level) = levels.voice();
            if speaking != levels.speaking {
                levels.speaking = speaking;
                changes.push(SpeakerChange {
                    sid: sid.clone(),
                    level: if speaking { level } else { 0.0 },
                    active: speaking,
                });
            }
        }
        changes.sort_by(|a, b| b.level.total_cmp(&a.level));
        changes
    }
}

/// dBov to a linear amplitude, 0–1.
fn linear(dbov: i8) -> f32 {
    10f32.powf(f32::from(dbov) / 20.0).clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `packets` 20 ms packets, every `loud_every`-th at `loud` dBov and the others at
    /// `quiet`; returns the time after the last.
    fn feed(
        speakers: &mut Speakers,
        sid: &str,
        (loud, quiet, loud_every): (i8, i8, u32),
        from: Instant,
        packets: u32,
    ) -> Instant {
        let mut at = from;
        for n in 0..packets {
            let level = if n % loud_every == 0 { loud } else { quiet };
            speakers.observe(sid, level, at);
            at += Duration::from_millis(20);
        }
        at
    }

    #[test]
    fn speech_with_pauses_is_speaking_and_a_noise_floor_is_not() {
        let mut speakers = Speakers::default();
        let start = Instant::now();
        // Words every third packet, silence between: speaking.
        let at = feed(&mut speakers, "PA_talker", (-20, -127, 3), start, 50);
        // A constant noise floor at -65 dBov: not speaking.
        feed(&mut speakers, "PA_noise", (-65, -65, 1), start, 50);
        let changes = speakers.changes(at);
        assert_eq!(changes.len(), 1, "{changes:?}");
        assert_eq!(changes[0].sid, "PA_talker");
        assert!(changes[0].active && changes[0].level > 0.05);
        assert!(speakers.changes(at).is_empty(), "no change, nothing said");

        let at = feed(&mut speakers, "PA_talker", (-127, -127, 1), at, 60);
        let changes = speakers.changes(at);
        assert_eq!(changes.len(), 1);
        assert!(!changes[0].active);
    }

    #[test]
    fn a_speaker_whose_packets_stop_is_silent_and_one_who_leaves_is_announced() {
        let mut speakers = Speakers::default();
        let start = Instant::now();
        let at = feed(&mut speakers, "PA_a", (-10, -10, 1), start, 20);
        assert!(speakers.changes(at)[0].active);
        let later = at + LEVEL_WINDOW * 2;
        assert!(!speakers.changes(later)[0].active);

        let at = feed(&mut speakers, "PA_b", (-10, -10, 1), later, 20);
        speakers.changes(at);
        let gone = speakers.remove("PA_b").unwrap();
        assert!(!gone.active);
        assert_eq!(
            speakers.remove("PA_a"),
            None,
            "not speaking: nothing to announce"
        );
    }

    #[test]
    fn the_loudest_speaker_is_the_louder_of_two_talking_and_nobody_in_silence() {
        let mut speakers = Speakers::default();
        let start = Instant::now();
        feed(&mut speakers, "PA_soft", (-40, -40, 1), start, 50);
        let at = feed(&mut speakers, "PA_loud", (-10, -10, 1), start, 50);
        assert_eq!(speakers.loudest(at).as_deref(), Some("PA_loud"));
        assert_eq!(speakers.loudest(at + LEVEL_WINDOW * 2), None);
    }
}
