//! A small safe wrapper over libx264 (through the raw `x264-sys` bindings).
//!
//! Why not the `x264` crate: its safe wrapper (0.5) exposes no VBV settings, no per-picture
//! forced-IDR type and no closed-GOP/scene-cut control, and Sluice needs all three (capped VBR
//! for HLS BANDWIDTH, IDRs forced on the source timeline so every rung cuts at the same instant,
//! closed GOPs so every segment decodes on its own). So this module drives `x264_param_t` and
//! `x264_picture_t` itself; all `unsafe` of the crate's encoding side lives here.
//!
//! What the encoder is set to (x264.h; HLS Authoring Spec §1.13, §7.4):
//! - ABR at the rung bitrate with VBV (`vbv-maxrate`, `vbv-bufsize`), High profile, level
//!   chosen by x264 from size, rate and VBV.
//! - `keyint` infinite, scene-cut off, no intra refresh, closed GOPs: x264 never cuts by
//!   itself; the caller forces every IDR (see `live`), so all rungs cut together.
//! - Timestamps: a 90 kHz clock with variable-frame-rate input (`b_vfr_input`), so rate control
//!   follows real timestamps even when frames are dropped under load. The SPS therefore declares
//!   a 90 kHz tick clock (`fixed_frame_rate_flag` 0), not a frame rate; [`X264Encoder::config`]
//!   reports the rung's nominal rate in `sps_frame_rate` instead.
//! - Output: AVCC (4-byte NAL lengths, `b_annexb` 0), no repeated SPS/PPS in the stream
//!   (`b_repeat_headers` 0): the parameter sets go to the avcC once.
//! - [`Tune::Quality`] (the default) is not `tune=zerolatency`: that turns off B-frames and the
//!   rate-control lookahead. The preset's B-frames (3 for `veryfast`) and lookahead (10 frames
//!   at `veryfast`, 0 at `superfast` and `ultrafast`) add a few hundred milliseconds of delay at
//!   30 fps, small next to a 2 s segment, for roughly 10–15 % fewer bits at equal quality.
//!   [`Tune::ZeroLatency`] is for low-latency streams, where that delay would be most of a
//!   partial segment (about a third of a second).

use std::ffi::{c_int, CStr};
use std::mem::MaybeUninit;
use std::ptr::{self, NonNull};
use std::slice;

use bytes::Bytes;
use ffmpeg_next::format::Pixel;
use ffmpeg_next::frame;
use serde::{Deserialize, Serialize};
use sluice_media::AvcConfig;
use x264_sys as sys;

use crate::ladder::EncodeTarget;
use crate::TranscodeError;

/// x264 speed/quality preset: faster presets spend less CPU per frame for more bits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    Ultrafast,
    Superfast,
    /// The usual live choice: B-frames and a short lookahead at moderate CPU.
    #[default]
    Veryfast,
    Faster,
    Fast,
    Medium,
}

impl Preset {
    fn name(self) -> &'static CStr {
        match self {
            Preset::Ultrafast => c"ultrafast",
            Preset::Superfast => c"superfast",
            Preset::Veryfast => c"veryfast",
            Preset::Faster => c"faster",
            Preset::Fast => c"fast",
            Preset::Medium => c"medium",
        }
    }
}

/// Whether an encoder spends delay on compression: B-frames and lookahead save bits but hold
/// pictures back.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Tune {
    /// The preset as it is: B-frames and the preset's lookahead, for fewer bits.
    #[default]
    Quality,
    /// x264's `zerolatency` tune: no B-frames, no lookahead, sliced threads instead of frame
    /// threads, so each picture comes out as soon as it is encoded.
    ZeroLatency,
}

impl Tune {
    fn name(self) -> Option<&'static CStr> {
        match self {
            Tune::Quality => None,
            Tune::ZeroLatency => Some(c"zerolatency"),
        }
    }
}

/// One encoded access unit (AVCC), timestamps on the 90 kHz clock of the input pictures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodedFrame {
    pub pts: i64,
    pub dts: i64,
    /// An IDR picture (with closed GOPs, the only kind of keyframe x264 emits here).
    pub keyframe: bool,
    pub data: Bytes,
}

/// The clock of the timestamps given to and returned by the encoder.
const TIMEBASE_DEN: u32 = 90_000;

/// An open x264 encoder.
pub struct X264Encoder {
    handle: Handle,
    width: u32,
    height: u32,
    config: AvcConfig,
}

/// Owns an `x264_t` and closes it on drop.
struct Handle(NonNull<sys::x264_t>);

// SAFETY: an x264 encoder has no thread affinity; it only must not be used from two threads at
// once, which `&mut self` on every encoding call guarantees.
unsafe impl Send for Handle {}

impl Handle {
    fn as_ptr(&self) -> *mut sys::x264_t {
        self.0.as_ptr()
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: the pointer came from x264_encoder_open and is closed exactly once.
        unsafe { sys::x264_encoder_close(self.0.as_ptr()) }
    }
}

impl X264Encoder {
    /// Opens an encoder for a planned rung (size, nominal frame rate, ABR bitrate and VBV) at
    /// `preset` and `tune` with `threads` encoder threads (0 lets x264 choose: 1.5 × cores),
    /// and reads its parameter sets.
    pub fn open(
        target: &EncodeTarget,
        preset: Preset,
        tune: Tune,
        threads: u32,
    ) -> Result<Self, TranscodeError> {
        let refuse = |reason| TranscodeError::EncoderOpen {
            width: target.width,
            height: target.height,
            bitrate_kbps: target.bitrate_kbps,
            reason,
        };
        let to_int = |value: u32| {
            c_int::try_from(value).map_err(|_| refuse("a setting exceeds x264's range"))
        };
        if !(target.frame_rate.is_finite()
            && target.frame_rate > 0.0
            && target.frame_rate <= 1000.0)
        {
            return Err(refuse("frame rate outside (0, 1000]"));
        }

        let mut param = MaybeUninit::<sys::x264_param_t>::uninit();
        // SAFETY: x264_param_default_preset fully initialises `param` (it starts with
        // x264_param_default) and only reads the two C strings, which are NUL-terminated
        // statics (a null tune means none).
        let status = unsafe {
            sys::x264_param_default_preset(
                param.as_mut_ptr(),
                preset.name().as_ptr(),
                tune.name().map_or(ptr::null(), CStr::as_ptr),
            )
        };
        if status < 0 {
            return Err(refuse("x264 does not know the preset"));
        }
        // SAFETY: initialised by the successful call above.
        let mut param = unsafe { param.assume_init() };

        param.i_log_level = sys::X264_LOG_ERROR as c_int;
        param.i_threads = to_int(threads)?;
        param.i_width = to_int(target.width)?;
        param.i_height = to_int(target.height)?;
        param.i_csp = sys::X264_CSP_I420 as c_int;
        param.i_fps_num = (target.frame_rate * 1000.0).round() as u32;
        param.i_fps_den = 1000;
        // Set after the tune, which turns it off.
        param.b_vfr_input = 1;
        param.i_timebase_num = 1;
        param.i_timebase_den = TIMEBASE_DEN;

        param.i_keyint_max = sys::X264_KEYINT_MAX_INFINITE as c_int;
        param.i_scenecut_threshold = 0;
        param.b_intra_refresh = 0;
        param.b_open_gop = 0;

        param.rc.i_rc_method = sys::X264_RC_ABR as c_int;
        param.rc.i_bitrate = to_int(target.bitrate_kbps)?;
        param.rc.i_vbv_max_bitrate = to_int(target.vbv_maxrate_kbps)?;
        param.rc.i_vbv_buffer_size = to_int(target.vbv_bufsize_kbit)?;

        param.b_annexb = 0;
        param.b_repeat_headers = 0;
        param.b_aud = 0;

        // SAFETY: `param` is a valid, initialised parameter set; the profile is a static C string.
        if unsafe { sys::x264_param_apply_profile(&mut param, c"high".as_ptr()) } < 0 {
            return Err(refuse("the settings do not fit the High profile"));
        }
        // SAFETY: x264 copies `param` into the encoder and keeps no pointer to it.
        let handle = NonNull::new(unsafe { sys::x264_encoder_open(&mut param) })
            .map(Handle)
            .ok_or_else(|| refuse("x264_encoder_open refused the parameters"))?;
        let mut config = read_config(&handle).map_err(|reason| match reason {
            HeaderFault::Missing(reason) => refuse(reason),
            HeaderFault::Invalid(err) => TranscodeError::EncoderHeaders(err),
        })?;
        config.sps_frame_rate = Some(target.frame_rate);
        Ok(X264Encoder {
            handle,
            width: target.width,
            height: target.height,
            config,
        })
    }

    /// The avcC for this encoder's output. `sps_frame_rate` is the nominal frame rate it was
    /// opened with (the SPS itself only declares the 90 kHz clock, see the module doc).
    pub fn config(&self) -> &AvcConfig {
        &self.config
    }

    /// Encodes one YUV 4:2:0 picture stamped `pts` (90 kHz). `force_idr` makes it an IDR that
    /// starts a closed GOP. Returns the access unit x264 finished, if any (x264 holds a few
    /// pictures back for B-frames and lookahead).
    pub fn encode(
        &mut self,
        picture: &frame::Video,
        pts: i64,
        force_idr: bool,
    ) -> Result<Option<EncodedFrame>, TranscodeError> {
        ensure_yuv420p(picture, self.width, self.height)?;
        let mismatch = || picture_mismatch(picture, self.width, self.height);

        let mut input = MaybeUninit::<sys::x264_picture_t>::uninit();
        // SAFETY: x264_picture_init fills every field with defaults.
        let mut input = unsafe {
            sys::x264_picture_init(input.as_mut_ptr());
            input.assume_init()
        };
        input.img.i_csp = sys::X264_CSP_I420 as c_int;
        input.img.i_plane = 3;
        for plane in 0..3 {
            // `data` spans stride × plane height bytes, so a stride at least as wide as the
            // plane is all x264 needs to read the picture in bounds.
            let stride = picture.stride(plane);
            if stride < picture.plane_width(plane) as usize {
                return Err(mismatch());
            }
            input.img.i_stride[plane] = c_int::try_from(stride).map_err(|_| mismatch())?;
            // x264 only reads the input planes; the pointer is mutable in its C signature only.
            input.img.plane[plane] = picture.data(plane).as_ptr().cast_mut();
        }
        input.i_pts = pts;
        input.i_type = if force_idr {
            sys::X264_TYPE_IDR
        } else {
            sys::X264_TYPE_AUTO
        } as c_int;
        // SAFETY: the planes are borrowed from `picture` for the whole call, and x264 copies
        // them into its own frame before returning.
        unsafe { self.encode_raw(&mut input, pts) }
    }

    /// Drains the pictures x264 still holds, in output order.
    pub fn flush(&mut self) -> Result<Vec<EncodedFrame>, TranscodeError> {
        let mut frames = Vec::new();
        // As x264's own example flushes: a call may return nothing while frame threads are
        // still busy, so keep asking until no frame is delayed (each call makes progress).
        // SAFETY: the handle is open for as long as `self` lives.
        while unsafe { sys::x264_encoder_delayed_frames(self.handle.as_ptr()) } > 0 {
            // SAFETY: a null input picture asks x264 for a delayed frame.
            if let Some(frame) = unsafe { self.encode_raw(ptr::null_mut(), i64::MAX) }? {
                frames.push(frame);
            }
        }
        Ok(frames)
    }

    /// # Safety
    /// `input` is null or a picture whose planes stay valid for the call.
    unsafe fn encode_raw(
        &mut self,
        input: *mut sys::x264_picture_t,
        pts: i64,
    ) -> Result<Option<EncodedFrame>, TranscodeError> {
        let mut nals: *mut sys::x264_nal_t = ptr::null_mut();
        let mut nal_count: c_int = 0;
        let mut output = MaybeUninit::<sys::x264_picture_t>::uninit();
        // SAFETY: the output picture is initialised before x264 writes into it; the handle is open.
        let size = unsafe {
            sys::x264_picture_init(output.as_mut_ptr());
            sys::x264_encoder_encode(
                self.handle.as_ptr(),
                &mut nals,
                &mut nal_count,
                input,
                output.as_mut_ptr(),
            )
        };
        let size = usize::try_from(size).map_err(|_| TranscodeError::Encode { pts })?;
        if size == 0 || nals.is_null() || nal_count <= 0 {
            return Ok(None);
        }
        // SAFETY: on success x264 returns NAL units whose payloads lie back to back in memory
        // (x264.h: "the payloads of all output NALs are guaranteed to be sequential"), `size`
        // bytes in all, valid until the next call on this encoder; we copy them out now.
        let (data, output) = unsafe {
            let first = (*nals).p_payload;
            (
                Bytes::copy_from_slice(slice::from_raw_parts(first, size)),
                output.assume_init(),
            )
        };
        Ok(Some(EncodedFrame {
            pts: output.i_pts,
            dts: output.i_dts,
            keyframe: output.b_keyframe != 0,
            data,
        }))
    }
}

/// Refuses a picture that is not yuv420p at `width`×`height`, what every rung encoder takes.
pub(crate) fn ensure_yuv420p(
    picture: &frame::Video,
    width: u32,
    height: u32,
) -> Result<(), TranscodeError> {
    if picture.format() != Pixel::YUV420P || picture.width() != width || picture.height() != height
    {
        return Err(picture_mismatch(picture, width, height));
    }
    Ok(())
}

fn picture_mismatch(picture: &frame::Video, width: u32, height: u32) -> TranscodeError {
    TranscodeError::PictureMismatch {
        expected: format!("{width}x{height} yuv420p"),
        actual: format!(
            "{}x{} {:?}",
            picture.width(),
            picture.height(),
            picture.format()
        ),
    }
}

const AVCC_LENGTH_SIZE: usize = 4;

enum HeaderFault {
    Missing(&'static str),
    Invalid(sluice_media::CodecError),
}

/// Reads the SPS and PPS x264 will use and builds the avcC from them.
fn read_config(handle: &Handle) -> Result<AvcConfig, HeaderFault> {
    let mut nals: *mut sys::x264_nal_t = ptr::null_mut();
    let mut nal_count: c_int = 0;
    // SAFETY: the handle is open; x264 points `nals` at `nal_count` NAL descriptions that stay
    // valid until the next call on this encoder, and everything is copied out before that.
    let status = unsafe { sys::x264_encoder_headers(handle.as_ptr(), &mut nals, &mut nal_count) };
    let count = usize::try_from(nal_count).unwrap_or(0);
    if status < 0 || nals.is_null() || count == 0 {
        return Err(HeaderFault::Missing("x264 produced no parameter sets"));
    }
    // SAFETY: see above.
    let nals = unsafe { slice::from_raw_parts(nals, count) };
    let mut sps = None;
    let mut pps = None;
    for nal in nals {
        let len = usize::try_from(nal.i_payload).unwrap_or(0);
        if nal.p_payload.is_null() || len <= AVCC_LENGTH_SIZE {
            continue;
        }
        // SAFETY: x264 describes `i_payload` bytes at `p_payload`.
        let payload = unsafe { slice::from_raw_parts(nal.p_payload, len) };
        // With `b_annexb` 0 every payload starts with its 4-byte length.
        let body = &payload[AVCC_LENGTH_SIZE..];
        match u32::try_from(nal.i_type) {
            Ok(sys::nal_unit_type_e_NAL_SPS) => sps = Some(body),
            Ok(sys::nal_unit_type_e_NAL_PPS) => pps = Some(body),
            _ => {}
        }
    }
    let (Some(sps), Some(pps)) = (sps, pps) else {
        return Err(HeaderFault::Missing("x264 headers lack an SPS or a PPS"));
    };
    AvcConfig::from_parameter_sets(sps, pps).map_err(HeaderFault::Invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gray_picture(width: u32, height: u32, shade: u8) -> frame::Video {
        let mut picture = frame::Video::new(Pixel::YUV420P, width, height);
        for plane in 0..3 {
            picture
                .data_mut(plane)
                .fill(if plane == 0 { shade } else { 128 });
        }
        picture
    }

    fn target() -> EncodeTarget {
        EncodeTarget {
            name: "72p".into(),
            codec: sluice_media::VideoCodec::H264,
            width: 128,
            height: 72,
            frame_rate: 30.0,
            bitrate_kbps: 200,
            vbv_maxrate_kbps: 220,
            vbv_bufsize_kbit: 400,
        }
    }

    /// Splits an AVCC access unit into NAL units, failing on a bad length.
    fn nal_types(mut data: &[u8]) -> Vec<u8> {
        let mut types = Vec::new();
        while !data.is_empty() {
            let len = u32::from_be_bytes(data[..4].try_into().unwrap()) as usize;
            types.push(data[4] & 0x1f);
            data = &data[4 + len..];
        }
        types
    }

    #[test]
    fn config_is_high_profile_with_the_encoder_size() {
        let encoder = X264Encoder::open(&target(), Preset::Veryfast, Tune::Quality, 1).unwrap();
        let config = encoder.config();
        assert_eq!(config.profile_idc, 100);
        assert_eq!((config.width, config.height), (128, 72));
        assert_eq!(config.sps_frame_rate, Some(30.0));
        assert_eq!(config.nal_length_size, 4);
    }

    #[test]
    fn forced_idrs_land_on_the_requested_pictures_and_nowhere_else() {
        let mut encoder = X264Encoder::open(&target(), Preset::Veryfast, Tune::Quality, 1).unwrap();
        let mut frames = Vec::new();
        for index in 0..20i64 {
            let picture = gray_picture(128, 72, (index * 10) as u8);
            let pts = 1_000_000 + index * 3000;
            frames.extend(encoder.encode(&picture, pts, index % 8 == 0).unwrap());
        }
        frames.extend(encoder.flush().unwrap());

        assert_eq!(frames.len(), 20);
        let keyframes: Vec<_> = frames
            .iter()
            .filter(|f| f.keyframe)
            .map(|f| f.pts)
            .collect();
        assert_eq!(keyframes, [1_000_000, 1_024_000, 1_048_000]);
        for frame in &frames {
            assert!(frame.dts <= frame.pts);
            let types = nal_types(&frame.data);
            assert!(
                !types.contains(&7) && !types.contains(&8),
                "no in-band SPS/PPS"
            );
            assert_eq!(
                types.contains(&5),
                frame.keyframe,
                "IDR slices exactly on keyframes"
            );
        }
        assert!(frames.windows(2).all(|w| w[0].dts < w[1].dts));
    }

    /// Pictures given before the encoder returns the first access unit, for `tune`.
    fn pictures_held_back(tune: Tune) -> usize {
        let mut encoder = X264Encoder::open(&target(), Preset::Veryfast, tune, 2).unwrap();
        (0..30i64)
            .position(|index| {
                let picture = gray_picture(128, 72, (index * 7) as u8);
                encoder
                    .encode(&picture, index * 3000, index == 0)
                    .unwrap()
                    .is_some()
            })
            .expect("an access unit within 30 pictures")
    }

    #[test]
    fn zero_latency_holds_back_at_most_one_picture_while_quality_holds_several() {
        let (zero_latency, quality) = (
            pictures_held_back(Tune::ZeroLatency),
            pictures_held_back(Tune::Quality),
        );
        assert!(
            zero_latency <= 1 && quality > zero_latency + 2,
            "{zero_latency} and {quality} held back"
        );
    }

    #[test]
    fn a_picture_of_the_wrong_size_is_refused() {
        let mut encoder =
            X264Encoder::open(&target(), Preset::Ultrafast, Tune::Quality, 1).unwrap();
        let err = encoder
            .encode(&gray_picture(64, 36, 0), 0, false)
            .unwrap_err();
        assert!(matches!(err, TranscodeError::PictureMismatch { .. }));
    }
}
