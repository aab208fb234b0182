//! rav1e behind a small, non-generic API: one [`Av1Session`] per AV1 rung.
//!
//! rav1e's encoder is generic over the pixel type, so its code is compiled in whichever crate
//! first names `Context<u8>`. Keeping that in this crate, built optimised even in debug
//! builds (see the workspace `Cargo.toml`), makes AV1 rungs run at encoder speed in tests
//! while the transcoder itself stays quick to rebuild. Everything Sluice-specific (which
//! pictures, levels, OBU handling, errors in context) lives in `sluice_transcoder::av1`.

use rav1e::prelude::{
    ChromaSampling, Config, Context, EncoderConfig, EncoderStatus, FrameParameters, FrameType,
    FrameTypeOverride, Opaque, Rational, SceneDetectionSpeed,
};

/// Why rav1e refused the settings or a picture.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct Av1Error(String);

/// How a session encodes.
#[derive(Clone, Debug, PartialEq)]
pub struct SessionParams {
    pub width: u32,
    pub height: u32,
    /// Nominal frame rate, for rate control.
    pub frame_rate: f64,
    pub bitrate_bps: i32,
    /// Frames over which rate control may borrow and repay bits: the rate buffer, like a VBV
    /// buffer, in frames (rav1e takes at least 12).
    pub reservoir_frames: i32,
    /// `seq_level_idx` written in the sequence header (31: no level).
    pub level_idx: u8,
    /// Speed preset, 0–10 (10 fastest).
    pub speed: u8,
    /// Worker threads; 0 shares rayon's global pool.
    pub threads: usize,
}

/// One temporal unit as rav1e wrote it (temporal delimiter included).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodedUnit {
    /// The time given with the picture it shows.
    pub pts: i64,
    /// Whether the shown frame is a key frame.
    pub keyframe: bool,
    pub data: Vec<u8>,
}

/// An 8-bit 4:2:0 rav1e encoder that places key frames only where asked: infinite maximum
/// key-frame interval, scene detection off.
pub struct Av1Session {
    context: Context<u8>,
}

impl Av1Session {
    pub fn open(params: &SessionParams) -> Result<Self, Av1Error> {
        let mut encoder = EncoderConfig::with_speed_preset(params.speed);
        encoder.width = params.width as usize;
        encoder.height = params.height as usize;
        encoder.bit_depth = 8;
        encoder.chroma_sampling = ChromaSampling::Cs420;
        // In milliframes, so fractional rates (29.97) keep their precision.
        encoder.time_base = Rational {
            num: 1000,
            den: (params.frame_rate * 1000.0).round() as u64,
        };
        encoder.bitrate = params.bitrate_bps;
        // In bitrate mode `quantizer` is the highest quantizer rate control may use; rav1e's
        // default (100) stops it well short of a low bitrate, which it then overshoots.
        encoder.quantizer = 255;
        encoder.reservoir_frame_delay = Some(params.reservoir_frames.max(12));
        encoder.level_idx = Some(params.level_idx);
        encoder.set_key_frame_interval(0, 0);
        encoder.speed_settings.scene_detection_mode = SceneDetectionSpeed::None;
        let context = Config::new()
            .with_encoder_config(encoder)
            .with_threads(params.threads)
            .new_context()
            .map_err(|err| Av1Error(err.to_string()))?;
        Ok(Av1Session { context })
    }

    /// Encodes one picture given as its three planes (`(bytes, stride)`, each plane at least
    /// `stride` × its height), stamped `pts`; returns the temporal units finished meanwhile.
    pub fn send(
        &mut self,
        planes: [(&[u8], usize); 3],
        pts: i64,
        force_keyframe: bool,
    ) -> Result<Vec<EncodedUnit>, Av1Error> {
        let mut frame = self.context.new_frame();
        for (plane, (data, stride)) in frame.planes.iter_mut().zip(planes) {
            if stride == 0 {
                return Err(Av1Error("a plane has a zero stride".into()));
            }
            plane.copy_from_raw_u8(data, stride, 1);
        }
        let parameters = FrameParameters {
            frame_type_override: if force_keyframe {
                FrameTypeOverride::Key
            } else {
                FrameTypeOverride::No
            },
            opaque: Some(Opaque::new(pts)),
            ..FrameParameters::default()
        };
        self.context
            .send_frame((frame, parameters))
            .map_err(failed)?;
        self.drain()
    }

    /// Ends the stream; returns the temporal units rav1e still held.
    pub fn flush(&mut self) -> Result<Vec<EncodedUnit>, Av1Error> {
        self.context.send_frame(None).map_err(failed)?;
        self.drain()
    }

    fn drain(&mut self) -> Result<Vec<EncodedUnit>, Av1Error> {
        let mut units = Vec::new();
        loop {
            match self.context.receive_packet() {
                Ok(packet) => {
                    let pts = packet
                        .opaque
                        .and_then(|opaque| opaque.downcast::<i64>().ok())
                        .map(|pts| *pts)
                        .ok_or_else(|| {
                            Av1Error(format!(
                                "frame {} came back without its time",
                                packet.input_frameno
                            ))
                        })?;
                    units.push(EncodedUnit {
                        pts,
                        keyframe: packet.frame_type == FrameType::KEY,
                        data: packet.data,
                    });
                }
                Err(EncoderStatus::Encoded) => {}
                Err(EncoderStatus::NeedMoreData | EncoderStatus::LimitReached) => break,
                Err(status) => return Err(failed(status)),
            }
        }
        Ok(units)
    }
}

fn failed(status: EncoderStatus) -> Av1Error {
    Av1Error(status.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> SessionParams {
        SessionParams {
            width: 64,
            height: 64,
            frame_rate: 25.0,
            bitrate_bps: 100_000,
            reservoir_frames: 50,
            level_idx: 0,
            speed: 10,
            threads: 1,
        }
    }

    #[test]
    fn key_frames_fall_where_forced_and_times_come_back_in_order() {
        let mut session = Av1Session::open(&params()).unwrap();
        let luma: Vec<u8> = (0..64 * 64).map(|i| (i % 251) as u8).collect();
        let chroma = vec![128u8; 32 * 32];
        let mut units = Vec::new();
        for index in 0..12 {
            let planes = [(&luma[..], 64), (&chroma[..], 32), (&chroma[..], 32)];
            units.extend(session.send(planes, index * 3600, index == 5).unwrap());
        }
        units.extend(session.flush().unwrap());
        let times: Vec<i64> = units.iter().map(|unit| unit.pts).collect();
        assert_eq!(times, (0..12).map(|i| i * 3600).collect::<Vec<_>>());
        let keys: Vec<i64> = units.iter().filter(|u| u.keyframe).map(|u| u.pts).collect();
        assert_eq!(keys, [0, 5 * 3600], "the first picture and the forced one");
        assert!(units
            .iter()
            .all(|unit| unit.data.starts_with(&[0x12, 0x00])));
    }

    #[test]
    fn bad_settings_are_refused() {
        let zero = SessionParams {
            width: 0,
            ..params()
        };
        assert!(Av1Session::open(&zero).is_err());
        let level_too_low = SessionParams {
            width: 1920,
            height: 1080,
            ..params()
        };
        assert!(Av1Session::open(&level_too_low).is_err());
    }
}
