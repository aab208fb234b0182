//! Which simulcast layer each subscriber receives, and the forwarding that switches layers
//! cleanly, sans-IO.
//!
//! A publisher's browser sends up to three encodings of one camera (rids `q`, `h`, `f`, lowest
//! first). For each subscriber, [`choose_layer`] picks the highest layer no better than the
//! quality it asked for (LiveKit's `UpdateTrackSettings`) whose bitrate fits its bandwidth
//! estimate, and [`LayerForwarder`] forwards that layer's frames only: a switch waits for a key
//! frame of the new layer (asking for one), and the RTP timestamps stay continuous across the
//! switch, as each layer counts time from its own random start.

use std::time::Instant;

/// A layer a publisher sends: its rid and the bitrate it announced (bits per second; 0 when
/// unknown).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    pub rid: String,
    pub bitrate: u32,
}

/// The quality a subscriber asks for, LiveKit's `VideoQuality` (Low, Medium, High).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Quality {
    Low,
    Medium,
    High,
}

/// The rid to send a subscriber: the layer at the asked quality (layers are lowest first; with
/// fewer than three, the top one stands for the higher qualities), stepped down while its
/// bitrate exceeds the bandwidth estimate. `None` when the track has no layers (no simulcast).
pub fn choose_layer(layers: &[Layer], quality: Quality, estimate_bps: Option<u64>) -> Option<&str> {
    if layers.is_empty() {
        return None;
    }
    let wanted = match quality {
        Quality::Low => 0,
        Quality::Medium => 1,
        Quality::High => 2,
    };
    let mut index = wanted.min(layers.len() - 1);
    if let Some(estimate) = estimate_bps {
        while index > 0 && layers[index].bitrate > 0 && u64::from(layers[index].bitrate) > estimate
        {
            index -= 1;
        }
    }
    Some(&layers[index].rid)
}

/// What to do with one received frame for one subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forward {
    /// Send it with this RTP time (in the track's clock).
    Send { rtp_time: u64 },
    /// Not this subscriber's layer (or waiting for a key frame).
    Drop,
}

/// Forwards one simulcast track to one subscriber.
#[derive(Debug, Default)]
pub struct LayerForwarder {
    /// The layer being forwarded.
    current: Option<String>,
    /// Added to a frame's RTP time: keeps the output continuous across switches.
    offset: u64,
    /// The last frame sent: its output RTP time and arrival.
    last_sent: Option<(u64, Instant)>,
}

impl LayerForwarder {
    /// The layer being forwarded.
    pub fn current(&self) -> Option<&str> {
        self.current.as_deref()
    }

    /// Decides for a frame of layer `rid` (`None`: the track has no layers), `rtp_time` in a
    /// `clock_rate` clock, when `target` is the layer wanted.
    pub fn forward(
        &mut self,
        rid: Option<&str>,
        target: Option<&str>,
        rtp_time: u64,
        clock_rate: u32,
        keyframe: bool,
        arrival: Instant,
    ) -> Forward {
        if rid.is_none() || target.is_none() {
            return self.send(rtp_time);
        }
        if rid == target && keyframe && rid != self.current.as_deref() {
            // Switch: this key frame follows the last frame sent by the time that passed.
            self.offset = match self.last_sent {
                Some((last_time, last_arrival)) => {
                    let elapsed = arrival.saturating_duration_since(last_arrival);
                    let ticks = (elapsed.as_secs_f64() * f64::from(clock_rate)).round() as u64;
                    last_time.wrapping_add(ticks.max(1)).wrapping_sub(rtp_time)
                }
                None => 0,
            };
            self.current = rid.map(str::to_owned);
            return self.send(rtp_time);
        }
        if rid == self.current.as_deref() {
            // The current layer flows until the wanted one's key frame arrives.
            return self.send(rtp_time);
        }
        Forward::Drop
    }

    /// Whether the forwarder waits for a key frame of `target` (so one should be asked for).
    pub fn needs_keyframe(&self, target: Option<&str>) -> bool {
        target.is_some() && self.current.as_deref() != target
    }

    fn send(&self, rtp_time: u64) -> Forward {
        Forward::Send {
            rtp_time: rtp_time.wrapping_add(self.offset),
        }
    }

    /// Notes that a frame went out at `rtp_time` (as returned by [`Self::forward`]).
    pub fn sent(&mut self, rtp_time: u64, arrival: Instant) {
        self.last_sent = Some((rtp_time, arrival));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn layers() -> Vec<Layer> {
        [("q", 150_000), ("h", 500_000), ("f", 1_700_000)]
            .into_iter()
            .map(|(rid, bitrate)| Layer {
                rid: rid.into(),
                bitrate,
            })
            .collect()
    }

    #[test]
    fn the_asked_quality_picks_the_layer_and_bandwidth_steps_it_down() {
        let layers = layers();
        assert_eq!(choose_layer(&layers, Quality::High, None), Some("f"));
        assert_eq!(choose_layer(&layers, Quality::Medium, None), Some("h"));
        assert_eq!(choose_layer(&layers, Quality::Low, None), Some("q"));
        assert_eq!(
            choose_layer(&layers, Quality::High, Some(600_000)),
            Some("h")
        );
        assert_eq!(
            choose_layer(&layers, Quality::High, Some(10_000)),
            Some("q")
        );
        assert_eq!(choose_layer(&layers[..2], Quality::High, None), Some("h"));
        assert_eq!(choose_layer(&[], Quality::High, None), None);
    }

    #[test]
    fn a_switch_waits_for_a_keyframe_of_the_new_layer_and_keeps_time_continuous() {
        let mut forwarder = LayerForwarder::default();
        let start = Instant::now();
        // Nothing is sent before the wanted layer's key frame.
        assert_eq!(
            forwarder.forward(Some("f"), Some("f"), 1_000, 90_000, false, start),
            Forward::Drop
        );
        assert!(forwarder.needs_keyframe(Some("f")));
        let Forward::Send { rtp_time } =
            forwarder.forward(Some("f"), Some("f"), 1_000, 90_000, true, start)
        else {
            panic!("the key frame starts the layer");
        };
        forwarder.sent(rtp_time, start);
        assert_eq!(
            forwarder.forward(Some("q"), Some("f"), 77_000, 90_000, true, start),
            Forward::Drop,
            "another layer is not forwarded"
        );

        // Asked for low: f keeps flowing until q's key frame, 100 ms later.
        let at = start + Duration::from_millis(100);
        assert!(matches!(
            forwarder.forward(Some("f"), Some("q"), 10_000, 90_000, false, at),
            Forward::Send { .. }
        ));
        forwarder.sent(10_000, at);
        assert_eq!(
            forwarder.forward(Some("q"), Some("q"), 500_000, 90_000, false, at),
            Forward::Drop
        );
        let later = at + Duration::from_millis(33);
        let Forward::Send { rtp_time } =
            forwarder.forward(Some("q"), Some("q"), 500_000, 90_000, true, later)
        else {
            panic!("q's key frame switches");
        };
        assert_eq!(rtp_time, 10_000 + 2_970, "33 ms after the last frame sent");
        assert_eq!(forwarder.current(), Some("q"));
        assert_eq!(
            forwarder.forward(Some("q"), Some("q"), 503_000, 90_000, false, later),
            Forward::Send {
                rtp_time: 13_000 + 2_970
            }
        );
    }

    #[test]
    fn a_track_without_layers_is_forwarded_as_is() {
        let mut forwarder = LayerForwarder::default();
        assert_eq!(
            forwarder.forward(None, None, 4_242, 48_000, false, Instant::now()),
            Forward::Send { rtp_time: 4_242 }
        );
    }
}
