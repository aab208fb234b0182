//! Making a file's decoded pictures regular before the ladder scales and encodes them:
//! progressive, upright, square pixels, 8-bit 4:2:0, at a constant frame rate.
//!
//! Uploaded files come in every shape: phone videos stored sideways with a display matrix,
//! anamorphic DVD and broadcast sources (sample aspect ratio other than 1:1, often interlaced),
//! 10-bit and 4:2:2 or 4:4:4 pictures, and variable frame rates. The rungs' encoders want none of that, so one
//! libavfilter graph per source (through ffmpeg-next's `filter`) turns every decoded picture
//! into what they take:
//!
//! ```text
//! buffer ─> yadif ─> fps=RATE ─> [scale=W:H] ─> format=yuv420p ─> [transpose / hflip / vflip] ─> setsar=1 ─> buffersink
//! ```
//!
//! - `yadif` deinterlaces the pictures the decoder marks as interlaced (one picture per
//!   frame, field order from the stream) and passes progressive ones through untouched.
//! - `fps` resamples the timeline to a constant rate (pictures repeated or left out, timestamps
//!   on a regular grid), at the source's own rate as [`Normalization::frame_rate`] gives it.
//!   The stream's end is given to the graph one frame after the last picture, so the output
//!   lasts as long as the source, to within a frame.
//! - `scale` to square pixels only when the sample aspect ratio is not 1:1: the width is
//!   stretched (or narrowed) by the ratio, the height kept, as players show such pictures.
//! - `format=yuv420p` converts the bit depth and chroma subsampling once for every rung
//!   (libavfilter folds it into the `scale` pass when there is one), full-range sources
//!   included.
//! - the orientation filters follow FFmpeg's own display-matrix handling (`ffmpeg` CLI
//!   autorotate): `transpose=clock` for 90° clockwise, `transpose=cclock` for 270°,
//!   `hflip`+`vflip` for 180°, and the `_flip` variants for mirrored matrices.
//!
//! Timestamps go in and come out on the 90 kHz clock. The graph is built on the first picture
//! (its size and pixel format are what the buffer source needs) and built again when a later
//! picture changes them (a VP9 or H.264 stream may change size mid-stream).

use ffmpeg_next::filter::{self, Graph};
use ffmpeg_next::format::Pixel;
use ffmpeg_next::{frame, Rational};
use sluice_media::Timebase;

use crate::decode::DecodedPicture;
use crate::TranscodeError;

/// The 90 kHz clock as a rational time base.
fn mpeg_time_base() -> Rational {
    Rational::new(1, Timebase::MPEG.0 as i32)
}

/// How a display matrix turns the coded picture upright, in libavfilter's terms.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Orientation {
    /// A `transpose` filter direction (`clock`, `cclock`, `clock_flip`, `cclock_flip`), for
    /// quarter turns; the picture's width and height swap.
    pub transpose: Option<&'static str>,
    /// Mirror left to right.
    pub hflip: bool,
    /// Mirror top to bottom.
    pub vflip: bool,
}

impl Orientation {
    /// Upright already.
    pub const UPRIGHT: Orientation = Orientation {
        transpose: None,
        hflip: false,
        vflip: false,
    };

    /// What turns a picture stored with `matrix` (a stream's display matrix, ISO/IEC 14496-12
    /// §8.2.2.3 as libavutil keeps it) upright. Angles other than quarter turns are rounded to
    /// the nearest one.
    pub fn from_display_matrix(matrix: &[i32; 9]) -> Orientation {
        // The same decisions as FFmpeg's `ffmpeg` CLI (fftools/ffmpeg_filter.c), which
        // players follow too: the matrix's signs tell a mirrored picture from a turned one.
        match display_rotation(matrix) {
            90 => Orientation {
                transpose: Some(if matrix[3] > 0 {
                    "cclock_flip"
                } else {
                    "clock"
                }),
                ..Self::UPRIGHT
            },
            180 => Orientation {
                transpose: None,
                hflip: matrix[0] < 0,
                vflip: matrix[4] < 0,
            },
            270 => Orientation {
                transpose: Some(if matrix[3] < 0 {
                    "clock_flip"
                } else {
                    "cclock"
                }),
                ..Self::UPRIGHT
            },
            _ => Orientation {
                vflip: matrix[4] < 0,
                ..Self::UPRIGHT
            },
        }
    }

    /// A plain clockwise rotation (a `rotate` tag without a display matrix).
    pub fn from_rotation(clockwise: u32) -> Orientation {
        match clockwise {
            90 => Orientation {
                transpose: Some("clock"),
                ..Self::UPRIGHT
            },
            180 => Orientation {
                transpose: None,
                hflip: true,
                vflip: true,
            },
            270 => Orientation {
                transpose: Some("cclock"),
                ..Self::UPRIGHT
            },
            _ => Self::UPRIGHT,
        }
    }

    /// Whether the picture is already upright.
    pub fn is_upright(&self) -> bool {
        *self == Self::UPRIGHT
    }

    /// Whether width and height swap.
    pub fn swaps_dimensions(&self) -> bool {
        self.transpose.is_some()
    }

    fn filters(&self) -> Vec<String> {
        let mut filters = Vec::new();
        if let Some(direction) = self.transpose {
            filters.push(format!("transpose={direction}"));
        }
        if self.hflip {
            filters.push("hflip".to_owned());
        }
        if self.vflip {
            filters.push("vflip".to_owned());
        }
        filters
    }
}

/// The clockwise rotation a player applies to pictures stored with display `matrix`, rounded
/// to a quarter turn (0, 90, 180 or 270).
pub fn display_rotation(matrix: &[i32; 9]) -> u32 {
    // SAFETY: `matrix` holds the nine 32-bit values av_display_rotation_get reads.
    let counterclockwise = unsafe { ffmpeg_next::ffi::av_display_rotation_get(matrix.as_ptr()) };
    if counterclockwise.is_finite() {
        quarter_turns(-counterclockwise)
    } else {
        0
    }
}

/// `degrees` clockwise, rounded to the nearest quarter turn in 0..360.
pub(crate) fn quarter_turns(degrees: f64) -> u32 {
    let turned = (degrees / 90.0).round() as i64 * 90;
    turned.rem_euclid(360) as u32
}

/// What a source's pictures need to become upright, square-pixel, 8-bit 4:2:0 pictures at a
/// constant rate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Normalization {
    /// How to turn the coded picture upright.
    pub orientation: Orientation,
    /// The coded pictures' sample aspect ratio (1:1 for square pixels).
    pub sample_aspect_ratio: Rational,
    /// The constant output frame rate.
    pub frame_rate: Rational,
}

impl Normalization {
    /// The filter chain between the buffer source and the sink, for `width`×`height` input.
    fn chain(&self, width: u32, height: u32) -> String {
        let mut filters = vec![
            "yadif=mode=send_frame:parity=auto:deint=interlaced".to_owned(),
            format!(
                "fps=fps={}/{}",
                self.frame_rate.numerator(),
                self.frame_rate.denominator()
            ),
        ];
        let (display_width, _) = square_pixel_size(width, height, self.sample_aspect_ratio);
        if display_width != width {
            filters.push(format!("scale=w={display_width}:h={height}"));
        }
        filters.push("format=pix_fmts=yuv420p".to_owned());
        filters.extend(self.orientation.filters());
        filters.push("setsar=sar=1".to_owned());
        filters.join(",")
    }

    /// The upright, square-pixel size of `width`×`height` coded pictures.
    pub fn display_size(&self, width: u32, height: u32) -> (u32, u32) {
        let (width, height) = square_pixel_size(width, height, self.sample_aspect_ratio);
        if self.orientation.swaps_dimensions() {
            (height, width)
        } else {
            (width, height)
        }
    }
}

/// `width`×`height` pictures of sample aspect ratio `sar`, in square pixels: the width scaled
/// by the ratio (at least 2 pixels, and even when it changes so 4:2:0 chroma fits), the height
/// kept. An unknown or invalid ratio counts as 1:1.
pub fn square_pixel_size(width: u32, height: u32, sar: Rational) -> (u32, u32) {
    let (num, den) = (sar.numerator(), sar.denominator());
    if num <= 0 || den <= 0 || num == den {
        return (width, height);
    }
    let scaled = f64::from(width) * f64::from(num) / f64::from(den);
    let even = ((scaled / 2.0).round() as u32).max(1) * 2;
    (even, height)
}

/// The input a graph was built for.
#[derive(Clone, Copy, PartialEq, Eq)]
struct InputShape {
    width: u32,
    height: u32,
    format: Pixel,
}

/// A configured graph and the output clock of its sink.
struct BuiltGraph {
    graph: Graph,
    shape: InputShape,
    /// The filter chain, for error messages.
    chain: String,
    output_time_base: Rational,
}

/// Runs decoded pictures through a [`Normalization`]'s filter graph.
pub struct PictureNormalizer {
    normalization: Normalization,
    graph: Option<BuiltGraph>,
    /// The latest picture's time (90 kHz), for the end of the stream.
    last_pts: Option<i64>,
}

const SOURCE: &str = "in";
const SINK: &str = "out";

impl PictureNormalizer {
    /// A normaliser; its graph is built on the first picture.
    pub fn new(normalization: Normalization) -> Self {
        crate::init_ffmpeg();
        PictureNormalizer {
            normalization,
            graph: None,
            last_pts: None,
        }
    }

    /// Takes one decoded picture and returns the normalised pictures that became ready.
    pub fn push(
        &mut self,
        mut picture: DecodedPicture,
    ) -> Result<Vec<DecodedPicture>, TranscodeError> {
        let shape = InputShape {
            width: picture.picture.width(),
            height: picture.picture.height(),
            format: picture.picture.format(),
        };
        let mut ready = Vec::new();
        if self
            .graph
            .as_ref()
            .is_some_and(|built| built.shape != shape)
        {
            // A new size or pixel format: the old graph's pictures end where this one starts.
            ready = self.close(picture.pts)?;
        }
        let built = match &mut self.graph {
            Some(built) => built,
            empty @ None => empty.insert(build(&self.normalization, shape)?),
        };
        picture.picture.set_pts(Some(picture.pts));
        let Some(mut source) = built.graph.get(SOURCE) else {
            return Err(filter_error(&built.chain, ffmpeg_next::Error::Bug));
        };
        // SAFETY: both pointers are live; the buffer source takes the frame's references and
        // resets the frame, which we own and drop right after.
        let added = unsafe {
            ffmpeg_next::ffi::av_buffersrc_add_frame(
                source.as_mut_ptr(),
                picture.picture.as_mut_ptr(),
            )
        };
        if added < 0 {
            return Err(filter_error(&built.chain, ffmpeg_next::Error::from(added)));
        }
        self.last_pts = Some(picture.pts);
        ready.extend(drain(built)?);
        Ok(ready)
    }

    /// Ends the stream and returns the pictures the graph still holds: the last picture lasts
    /// one output frame.
    pub fn finish(&mut self) -> Result<Vec<DecodedPicture>, TranscodeError> {
        let frame_ticks = frame_ticks(self.normalization.frame_rate);
        match self.last_pts {
            Some(last) => self.close(last.saturating_add(frame_ticks)),
            None => Ok(Vec::new()),
        }
    }

    /// Closes the current graph at `end` (90 kHz) and drains it.
    fn close(&mut self, end: i64) -> Result<Vec<DecodedPicture>, TranscodeError> {
        let Some(mut built) = self.graph.take() else {
            return Ok(Vec::new());
        };
        built
            .graph
            .get(SOURCE)
            .ok_or(ffmpeg_next::Error::Bug)
            .and_then(|mut source| source.source().close(end))
            .map_err(|source| filter_error(&built.chain, source))?;
        drain(&mut built)
    }
}

/// Builds and configures the graph of `normalization` for pictures of `shape`.
fn build(normalization: &Normalization, shape: InputShape) -> Result<BuiltGraph, TranscodeError> {
    let chain = normalization.chain(shape.width, shape.height);
    let failed = |source| filter_error(&chain, source);
    let (Some(buffer), Some(buffersink)) = (filter::find("buffer"), filter::find("buffersink"))
    else {
        return Err(failed(ffmpeg_next::Error::FilterNotFound));
    };
    let sar = normalization.sample_aspect_ratio;
    let sar = if sar.numerator() > 0 && sar.denominator() > 0 {
        sar
    } else {
        Rational::new(1, 1)
    };
    let time_base = mpeg_time_base();
    let args = format!(
        "video_size={}x{}:pix_fmt={}:time_base={}/{}:pixel_aspect={}/{}",
        shape.width,
        shape.height,
        ffmpeg_next::ffi::AVPixelFormat::from(shape.format) as i32,
        time_base.numerator(),
        time_base.denominator(),
        sar.numerator(),
        sar.denominator(),
    );
    let mut graph = Graph::new();
    graph.add(&buffer, SOURCE, &args).map_err(failed)?;
    graph.add(&buffersink, SINK, "").map_err(failed)?;
    graph
        .output(SOURCE, 0)
        .and_then(|parser| parser.input(SINK, 0))
        .and_then(|parser| parser.parse(&chain))
        .map_err(failed)?;
    graph.validate().map_err(failed)?;
    let output_time_base = graph
        .get(SINK)
        .map(|mut sink| sink.sink().time_base())
        .ok_or_else(|| failed(ffmpeg_next::Error::Bug))?;
    tracing::debug!(%chain, width = shape.width, height = shape.height, "Picture normaliser built.");
    Ok(BuiltGraph {
        graph,
        shape,
        chain,
        output_time_base,
    })
}

/// Takes every picture the sink has ready, with its time moved to the 90 kHz clock.
fn drain(built: &mut BuiltGraph) -> Result<Vec<DecodedPicture>, TranscodeError> {
    let mut pictures = Vec::new();
    let Some(mut sink) = built.graph.get(SINK) else {
        return Ok(pictures);
    };
    let mut sink = sink.sink();
    loop {
        let mut picture = frame::Video::empty();
        match sink.frame(&mut picture) {
            Ok(()) => {
                if let Some(pts) = picture.pts() {
                    let pts = rescale(pts, built.output_time_base, mpeg_time_base());
                    pictures.push(DecodedPicture { pts, picture });
                }
            }
            // Needs more input, or the graph has ended.
            Err(ffmpeg_next::Error::Other {
                errno: ffmpeg_next::error::EAGAIN,
            })
            | Err(ffmpeg_next::Error::Eof) => return Ok(pictures),
            Err(source) => return Err(filter_error(&built.chain, source)),
        }
    }
}

/// `ticks` from one clock to another, rounded to the nearest tick.
fn rescale(ticks: i64, from: Rational, to: Rational) -> i64 {
    let num = i128::from(ticks) * i128::from(from.numerator()) * i128::from(to.denominator());
    let den = i128::from(from.denominator()) * i128::from(to.numerator());
    if den == 0 {
        return ticks;
    }
    // Halves round away from zero, as av_rescale_q does.
    let (quotient, remainder) = (num / den, num % den);
    let rounded = if 2 * remainder.abs() >= den.abs() {
        quotient + num.signum() * den.signum()
    } else {
        quotient
    };
    i64::try_from(rounded).unwrap_or(if rounded > 0 { i64::MAX } else { i64::MIN })
}

/// One frame at `rate`, in 90 kHz ticks (at least one tick).
fn frame_ticks(rate: Rational) -> i64 {
    rescale(1, rate.invert(), mpeg_time_base()).max(1)
}

fn filter_error(chain: &str, source: ffmpeg_next::Error) -> TranscodeError {
    TranscodeError::Normalize {
        graph: chain.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// libavutil's display matrix for a clockwise turn, optionally mirrored.
    fn matrix(clockwise: f64, hflip: bool) -> [i32; 9] {
        let mut matrix = [0i32; 9];
        // SAFETY: av_display_rotation_set/flip write the nine values of `matrix`.
        unsafe {
            ffmpeg_next::ffi::av_display_rotation_set(matrix.as_mut_ptr(), clockwise);
            ffmpeg_next::ffi::av_display_matrix_flip(matrix.as_mut_ptr(), i32::from(hflip), 0);
        }
        matrix
    }

    #[test]
    fn quarter_turns_become_transposes_and_half_turns_two_flips() {
        let clockwise = matrix(90.0, false);
        assert_eq!(display_rotation(&clockwise), 90);
        assert_eq!(
            Orientation::from_display_matrix(&clockwise).transpose,
            Some("clock")
        );
        let counterclockwise = matrix(-90.0, false);
        assert_eq!(display_rotation(&counterclockwise), 270);
        assert_eq!(
            Orientation::from_display_matrix(&counterclockwise).transpose,
            Some("cclock")
        );
        let half = Orientation::from_display_matrix(&matrix(180.0, false));
        assert!(half.hflip && half.vflip && half.transpose.is_none());
        assert!(Orientation::from_display_matrix(&matrix(0.0, false)).is_upright());
        let mirrored = Orientation::from_display_matrix(&matrix(0.0, true));
        assert!(!mirrored.is_upright() && mirrored.transpose.is_none());
        assert_eq!(quarter_turns(-88.0), 270);
        assert_eq!(quarter_turns(359.0), 0);
    }

    #[test]
    fn display_size_squares_pixels_then_turns() {
        let anamorphic = Normalization {
            orientation: Orientation::UPRIGHT,
            sample_aspect_ratio: Rational::new(32, 27),
            frame_rate: Rational::new(25, 1),
        };
        assert_eq!(anamorphic.display_size(720, 480), (854, 480));
        let turned = Normalization {
            orientation: Orientation::from_rotation(90),
            sample_aspect_ratio: Rational::new(1, 1),
            frame_rate: Rational::new(30, 1),
        };
        assert_eq!(turned.display_size(641, 361), (361, 641));
        assert_eq!(square_pixel_size(720, 576, Rational::new(0, 1)), (720, 576));
    }

    #[test]
    fn timestamps_move_between_clocks_with_rounding() {
        let ntsc = Rational::new(1001, 30000);
        assert_eq!(rescale(10, ntsc, mpeg_time_base()), 30_030);
        assert_eq!(frame_ticks(Rational::new(30000, 1001)), 3003);
        assert_eq!(frame_ticks(Rational::new(400, 19)), 4275);
        assert_eq!(rescale(-10, ntsc, mpeg_time_base()), -30_030);
    }
}
