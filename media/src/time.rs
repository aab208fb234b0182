//! Timestamps that always carry their timebase.
//!
//! RTMP speaks milliseconds, MP4 video tracks speak 90 kHz, AAC tracks speak the sample rate:
//! a bare integer is never enough, so a [`MediaTime`] carries both the tick count and the
//! [`Timebase`] it counts in, and conversions round to the nearest tick.

use std::fmt;

/// Ticks per second of a clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Timebase(pub u32);

impl Timebase {
    /// Milliseconds: the RTMP/FLV clock.
    pub const MILLIS: Timebase = Timebase(1_000);
    /// 90 kHz: the MPEG clock used for video tracks.
    pub const MPEG: Timebase = Timebase(90_000);

    /// Converts `ticks` counted in `self` into ticks of `to`, rounding to the nearest tick.
    pub fn rescale(self, ticks: i64, to: Timebase) -> i64 {
        if self == to || self.0 == 0 {
            return ticks;
        }
        let num = i128::from(ticks) * i128::from(to.0);
        let den = i128::from(self.0);
        let half = den / 2;
        let rounded = if num >= 0 {
            (num + half) / den
        } else {
            (num - half) / den
        };
        rounded.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
    }
}

/// A point or span on a media clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MediaTime {
    /// Number of ticks.
    pub ticks: i64,
    /// What one tick is worth.
    pub timebase: Timebase,
}

impl MediaTime {
    /// A time of `ticks` counted in `timebase`.
    pub const fn new(ticks: i64, timebase: Timebase) -> Self {
        MediaTime { ticks, timebase }
    }

    /// The same instant expressed in another timebase (rounded to the nearest tick).
    pub fn rescale(self, to: Timebase) -> MediaTime {
        MediaTime::new(self.timebase.rescale(self.ticks, to), to)
    }

    /// Seconds as a float, for logs, playlists and reports.
    pub fn as_secs_f64(self) -> f64 {
        if self.timebase.0 == 0 {
            return 0.0;
        }
        self.ticks as f64 / f64::from(self.timebase.0)
    }
}

impl fmt::Display for MediaTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.3}s", self.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rescale_rounds_to_nearest_tick() {
        assert_eq!(Timebase::MILLIS.rescale(1, Timebase::MPEG), 90);
        assert_eq!(Timebase::MPEG.rescale(3_003, Timebase::MILLIS), 33);
        assert_eq!(Timebase(48_000).rescale(1_024, Timebase::MILLIS), 21);
        assert_eq!(Timebase::MILLIS.rescale(-1, Timebase::MPEG), -90);
    }

    #[test]
    fn rescale_does_not_overflow_on_extremes() {
        assert_eq!(Timebase(1).rescale(i64::MAX, Timebase::MPEG), i64::MAX);
    }

    #[test]
    fn media_time_reports_seconds() {
        assert_eq!(MediaTime::new(180_000, Timebase::MPEG).as_secs_f64(), 2.0);
        assert_eq!(
            MediaTime::new(2_000, Timebase::MILLIS).to_string(),
            "2.000s"
        );
    }
}
