//! Pictures of a local video file: a thumbnail at a given time ([`thumbnail`]) and a
//! storyboard for seek previews ([`storyboard`]: a sprite sheet of tiles and the WebVTT file
//! that maps each time range to its tile).
//!
//! Files are opened through the same probe as every other input (local file only, accepted
//! containers, limits), and any video codec libavcodec decodes is accepted. Pictures are
//! measured at their display size (the sample aspect ratio applied; the rotation a player
//! would apply is not), converted with the YUV matrix and range they are tagged with, scaled
//! with swscale and encoded with libavcodec's own image encoders:
//! `mjpeg` (full-range 4:2:0), `png` (RGB) and, when libavcodec was built with it, `libwebp`
//! ([`ImageFormat::is_available`]).
//!
//! - A thumbnail seeks to the keyframe at or before the time, then decodes forward to the first
//!   picture at or after it. A time past the end is clamped: the last picture is taken.
//! - The poster frame ([`poster_time`]) is the picture at 10 % of the duration, or at 5 s
//!   when that comes first, so a long video's poster is taken from its opening rather than
//!   from a title card or black lead-in at 0 s.
//! - A storyboard is one pass through the file, decoding reference pictures only (B-pictures
//!   are skipped) and keeping the first one at or after each tile's time; there is no seek per
//!   tile. See [`storyboard_interval`] for how many tiles there are.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use ffmpeg_next::codec::{self, decoder, encoder};
use ffmpeg_next::format::context::Input;
use ffmpeg_next::format::Pixel;
use ffmpeg_next::software::scaling;
use ffmpeg_next::util::color;
use ffmpeg_next::{frame, Rational};

use crate::probe::{self, ProbeError, ProbeLimits};

/// Smallest width or height a picture may be asked for.
pub const MIN_DIMENSION: u32 = 16;
/// Largest width or height a picture may be asked for.
pub const MAX_DIMENSION: u32 = 4096;
/// The poster frame is taken no later than this.
pub const POSTER_MAX_TIME: Duration = Duration::from_secs(5);
/// JPEG quantiser scale (ffmpeg's `-q:v`; 2 is best, 31 worst).
const JPEG_QSCALE: i32 = 3;

/// How a picture is fitted into a requested width and height. With only one of them given,
/// the other follows the video's aspect ratio and the mode does not matter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FitMode {
    /// Fit inside the box keeping the aspect ratio; the picture may be smaller than the box.
    #[default]
    Preserve,
    /// Fill the box keeping the aspect ratio, cutting off what overflows, centred.
    Crop,
    /// Fit inside the box keeping the aspect ratio, with black bars filling the rest.
    Pad,
    /// Fill the box exactly, distorting the aspect ratio.
    Stretch,
}

impl FitMode {
    /// Every mode, in the order of [`FitMode::as_str`]'s names.
    pub const ALL: [FitMode; 4] = [
        FitMode::Preserve,
        FitMode::Crop,
        FitMode::Pad,
        FitMode::Stretch,
    ];

    /// `preserve`, `crop`, `pad` or `stretch`.
    pub fn as_str(self) -> &'static str {
        match self {
            FitMode::Preserve => "preserve",
            FitMode::Crop => "crop",
            FitMode::Pad => "pad",
            FitMode::Stretch => "stretch",
        }
    }

    /// The mode named `name` (as [`FitMode::as_str`] writes it).
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|mode| mode.as_str() == name)
    }
}

/// An image file format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageFormat {
    Jpeg,
    Png,
    Webp,
}

impl ImageFormat {
    /// The format a file extension names (`jpg`, `jpeg`, `png`, `webp`).
    pub fn from_extension(extension: &str) -> Option<Self> {
        match extension.to_ascii_lowercase().as_str() {
            "jpg" | "jpeg" => Some(ImageFormat::Jpeg),
            "png" => Some(ImageFormat::Png),
            "webp" => Some(ImageFormat::Webp),
            _ => None,
        }
    }

    /// The usual file extension.
    pub fn extension(self) -> &'static str {
        match self {
            ImageFormat::Jpeg => "jpg",
            ImageFormat::Png => "png",
            ImageFormat::Webp => "webp",
        }
    }

    /// The media type.
    pub fn content_type(self) -> &'static str {
        match self {
            ImageFormat::Jpeg => "image/jpeg",
            ImageFormat::Png => "image/png",
            ImageFormat::Webp => "image/webp",
        }
    }

    /// Whether this build of libavcodec has an encoder for the format (WebP needs libwebp).
    pub fn is_available(self) -> bool {
        crate::init_ffmpeg();
        encoder::find_by_name(self.encoder_name()).is_some()
    }

    fn encoder_name(self) -> &'static str {
        match self {
            ImageFormat::Jpeg => "mjpeg",
            ImageFormat::Png => "png",
            ImageFormat::Webp => "libwebp",
        }
    }

    /// The pixel format handed to the encoder.
    fn pixel(self) -> Pixel {
        match self {
            ImageFormat::Jpeg => Pixel::YUVJ420P,
            ImageFormat::Png => Pixel::RGB24,
            ImageFormat::Webp => Pixel::YUV420P,
        }
    }
}

/// Which picture of a video to take, and how to shape it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ThumbnailRequest {
    /// Time from the start of the video; `None` takes the poster frame ([`poster_time`]).
    pub time: Option<Duration>,
    /// Width in pixels ([`MIN_DIMENSION`]..=[`MAX_DIMENSION`]); `None` follows the height, or
    /// the video's display width when neither is given.
    pub width: Option<u32>,
    /// Height in pixels, as for `width`.
    pub height: Option<u32>,
    /// How the picture fits when both width and height are given.
    pub fit: FitMode,
    /// The file format of the result.
    pub format: ImageFormat,
}

impl Default for ThumbnailRequest {
    fn default() -> Self {
        ThumbnailRequest {
            time: None,
            width: None,
            height: None,
            fit: FitMode::Preserve,
            format: ImageFormat::Jpeg,
        }
    }
}

/// An encoded image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    pub format: ImageFormat,
    pub width: u32,
    pub height: u32,
    /// The image file's bytes.
    pub data: Vec<u8>,
}

/// How a storyboard is laid out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoryboardLayout {
    /// Longer side of each tile ([`MIN_DIMENSION`]..=[`MAX_DIMENSION`]): tiles fit in a
    /// square of this side keeping the video's aspect ratio, so a landscape video's tiles are
    /// this wide and a portrait video's this tall.
    pub tile_width: u32,
    /// Tiles per row of the sprite (at least 1).
    pub columns: u32,
    /// Most tiles (at least 1); see [`storyboard_interval`].
    pub max_tiles: u32,
    /// The sprite's file format.
    pub format: ImageFormat,
}

impl Default for StoryboardLayout {
    fn default() -> Self {
        StoryboardLayout {
            tile_width: 160,
            columns: 10,
            max_tiles: 100,
            format: ImageFormat::Jpeg,
        }
    }
}

/// A storyboard: the sprite sheet and the WebVTT file that points into it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Storyboard {
    /// The sprite sheet, in the layout's format: tiles left to right, top to bottom.
    pub sprite: Image,
    /// WebVTT: one cue per tile, `[t, t + interval)`, whose text is
    /// `{sprite_uri}#xywh=x,y,w,h`.
    pub vtt: String,
    /// Time between tiles.
    pub interval: Duration,
    /// Number of tiles.
    pub tiles: u32,
    pub tile_width: u32,
    pub tile_height: u32,
    pub columns: u32,
}

/// Why a picture cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The file was refused by the probe.
    #[error(transparent)]
    Probe(#[from] ProbeError),
    /// The file has no video stream.
    #[error("no video to take a picture of")]
    NoVideo,
    /// A width or height out of bounds.
    #[error("{name} must be between {MIN_DIMENSION} and {MAX_DIMENSION} pixels, not {value}")]
    BadDimension { name: &'static str, value: u32 },
    /// A storyboard needs to know how long the video is.
    #[error("the file does not say how long it is, which a storyboard needs")]
    UnknownDuration,
    /// libavcodec has no encoder for the format.
    #[error("{format} images cannot be made: libavcodec has no {encoder} encoder")]
    EncoderMissing {
        format: &'static str,
        encoder: &'static str,
    },
    /// The video cannot be decoded.
    #[error("the video cannot be decoded: {0}")]
    Decode(#[source] ffmpeg_next::Error),
    /// Not a single picture came out of the decoder.
    #[error("no picture of the video could be decoded")]
    NothingDecoded,
    /// swscale refused the conversion.
    #[error("scaling the picture to {width}x{height}: {source}")]
    Scale {
        width: u32,
        height: u32,
        #[source]
        source: ffmpeg_next::Error,
    },
    /// The image encoder failed.
    #[error("encoding the {format} image: {source}")]
    Encode {
        format: &'static str,
        #[source]
        source: ffmpeg_next::Error,
    },
    /// An animated preview asked out of bounds (span, frame rate or size).
    #[error("{0}")]
    BadAnimation(String),
    /// libavfilter could not make or apply a GIF's palette.
    #[error("making the GIF palette: {0}")]
    Palette(#[source] ffmpeg_next::Error),
    /// The animation file could not be written or read back.
    #[error("writing the animation file: {0}")]
    Io(#[from] std::io::Error),
}

/// The poster frame's time: 10 % of the duration or [`POSTER_MAX_TIME`], whichever is
/// smaller; 0 when the duration is unknown.
pub fn poster_time(duration: Option<Duration>) -> Duration {
    duration.map_or(Duration::ZERO, |d| (d / 10).min(POSTER_MAX_TIME))
}

/// Time between storyboard tiles: the duration split into `max_tiles` (rounded up to the
/// millisecond), but never less than 1 s. The storyboard then has
/// `ceil(duration / interval)` tiles, at most `max_tiles`.
pub fn storyboard_interval(duration: Duration, max_tiles: u32) -> Duration {
    let share = duration.as_millis().div_ceil(u128::from(max_tiles.max(1)));
    Duration::from_millis(u64::try_from(share).unwrap_or(u64::MAX)).max(Duration::from_secs(1))
}

/// The picture of the video in `path` at `request.time`, shaped and encoded as asked.
pub fn thumbnail(
    path: &Path,
    limits: &ProbeLimits,
    request: &ThumbnailRequest,
) -> Result<Image, ImageError> {
    check_dimension("width", request.width)?;
    check_dimension("height", request.height)?;
    check_encoder(request.format)?;
    let mut reader = VideoReader::open(path, limits)?;
    let time = match request.time {
        Some(time) => reader.duration.map_or(time, |duration| time.min(duration)),
        None => poster_time(reader.duration),
    };
    reader.seek(time);
    let mut last = None;
    while let Some((at, picture)) = reader.next_picture()? {
        if at >= time {
            last = Some(picture);
            break;
        }
        last = Some(picture);
    }
    let mut picture = last.ok_or(ImageError::NothingDecoded)?;
    let shape = Shape::of(
        display_size(&picture),
        request.width,
        request.height,
        request.fit,
    );
    let rgb = render(&mut picture, &shape)?;
    encode(&rgb, request.format)
}

/// The storyboard of the video in `path`: tiles every [`storyboard_interval`], laid out as
/// `layout` says, with cues pointing at `sprite_uri` (the name the sprite is served or saved
/// under, such as `storyboard.jpg`).
pub fn storyboard(
    path: &Path,
    limits: &ProbeLimits,
    layout: &StoryboardLayout,
    sprite_uri: &str,
) -> Result<Storyboard, ImageError> {
    check_dimension("tile width", Some(layout.tile_width))?;
    check_encoder(layout.format)?;
    let mut reader = VideoReader::open(path, limits)?;
    let duration = reader
        .duration
        .filter(|d| !d.is_zero())
        .ok_or(ImageError::UnknownDuration)?;
    reader.decode_reference_pictures_only();
    let interval = storyboard_interval(duration, layout.max_tiles);
    let tiles = u32::try_from(duration.as_millis().div_ceil(interval.as_millis()))
        .unwrap_or(1)
        .max(1);
    let tile_time = |index: u32| interval * index;

    let mut sheet: Option<(frame::Video, Shape)> = None;
    let mut placed = 0;
    let mut last = None;
    let columns = layout.columns.clamp(1, tiles.max(1));
    while placed < tiles {
        let Some((at, mut picture)) = reader.next_picture()? else {
            break;
        };
        while placed < tiles && at >= tile_time(placed) {
            place_tile(&mut sheet, &mut picture, placed, columns, tiles, layout)?;
            placed += 1;
        }
        last = Some(picture);
    }
    // Tiles past the last picture (the end of the file) show the last picture.
    if let Some(mut picture) = last {
        while placed < tiles {
            place_tile(&mut sheet, &mut picture, placed, columns, tiles, layout)?;
            placed += 1;
        }
    }
    let (sheet, tile) = sheet.ok_or(ImageError::NothingDecoded)?;
    let sprite = encode(&sheet, layout.format)?;

    let mut vtt = String::from("WEBVTT\n");
    for index in 0..tiles {
        let start = tile_time(index);
        let end = tile_time(index + 1).min(duration);
        let (x, y) = tile_origin(index, columns, &tile);
        // Writing to a String cannot fail.
        let _ = write!(
            vtt,
            "\n{} --> {}\n{sprite_uri}#xywh={x},{y},{},{}\n",
            vtt_time(start),
            vtt_time(end),
            tile.canvas.0,
            tile.canvas.1,
        );
    }
    Ok(Storyboard {
        sprite,
        vtt,
        interval,
        tiles,
        tile_width: tile.canvas.0,
        tile_height: tile.canvas.1,
        columns,
    })
}

/// Renders `picture` as tile `index`, creating the sheet (black) on the first tile.
fn place_tile(
    sheet: &mut Option<(frame::Video, Shape)>,
    picture: &mut frame::Video,
    index: u32,
    columns: u32,
    tiles: u32,
    layout: &StoryboardLayout,
) -> Result<(), ImageError> {
    let (sheet, tile) = match sheet {
        Some(sheet) => sheet,
        None => {
            let side = Some(layout.tile_width);
            let tile = Shape::of(display_size(picture), side, side, FitMode::Preserve);
            let rows = tiles.div_ceil(columns);
            let canvas = black(tile.canvas.0 * columns, tile.canvas.1 * rows);
            sheet.insert((canvas, tile))
        }
    };
    let rendered = render(picture, tile)?;
    let (x, y) = tile_origin(index, columns, tile);
    blit(&rendered, sheet, x, y);
    Ok(())
}

fn tile_origin(index: u32, columns: u32, tile: &Shape) -> (u32, u32) {
    (
        index % columns * tile.canvas.0,
        index / columns * tile.canvas.1,
    )
}

/// `hh:mm:ss.mmm`, WebVTT's timestamp.
fn vtt_time(time: Duration) -> String {
    let millis = time.as_millis();
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        millis / 3_600_000,
        millis / 60_000 % 60,
        millis / 1000 % 60,
        millis % 1000
    )
}

fn check_dimension(name: &'static str, value: Option<u32>) -> Result<(), ImageError> {
    match value {
        Some(value) if !(MIN_DIMENSION..=MAX_DIMENSION).contains(&value) => {
            Err(ImageError::BadDimension { name, value })
        }
        _ => Ok(()),
    }
}

fn check_encoder(format: ImageFormat) -> Result<(), ImageError> {
    if format.is_available() {
        Ok(())
    } else {
        Err(ImageError::EncoderMissing {
            format: format.content_type(),
            encoder: format.encoder_name(),
        })
    }
}

/// The main video stream of a probed file, decoded picture by picture.
pub(crate) struct VideoReader {
    input: Input,
    decoder: decoder::Video,
    stream: usize,
    time_base: Rational,
    /// The stream's first timestamp, which is time 0.
    origin: i64,
    pub(crate) duration: Option<Duration>,
    drained: bool,
}

impl VideoReader {
    pub(crate) fn open(path: &Path, limits: &ProbeLimits) -> Result<Self, ImageError> {
        let (input, report) = probe::open(path, limits)?;
        let index = report.video.as_ref().ok_or(ImageError::NoVideo)?.index;
        let stream = input.stream(index).ok_or(ImageError::NoVideo)?;
        let time_base = stream.time_base();
        let origin = Some(stream.start_time())
            .filter(|&start| start != ffmpeg_next::ffi::AV_NOPTS_VALUE)
            .unwrap_or(0);
        let decoder = codec::Context::from_parameters(stream.parameters())
            .and_then(|context| context.decoder().video())
            .map_err(ImageError::Decode)?;
        Ok(VideoReader {
            input,
            decoder,
            stream: index,
            time_base,
            origin,
            duration: report.duration,
            drained: false,
        })
    }

    /// Moves to the keyframe at or before `time`. A file that cannot seek is read from the
    /// start instead, which finds the same picture, only slower.
    pub(crate) fn seek(&mut self, time: Duration) {
        let (num, den) = (
            i128::from(self.time_base.numerator()),
            i128::from(self.time_base.denominator()),
        );
        if num <= 0 || den <= 0 {
            return;
        }
        let ticks = time.as_micros() as i128 * den / (num * 1_000_000);
        let Ok(target) = i64::try_from(ticks + i128::from(self.origin)) else {
            return;
        };
        // SAFETY: the input is open; the stream index is one of its streams.
        unsafe {
            ffmpeg_next::ffi::avformat_seek_file(
                self.input.as_mut_ptr(),
                self.stream as i32,
                i64::MIN,
                target,
                target,
                0,
            );
        }
    }

    /// Tells the decoder to skip pictures nothing else refers to (B-pictures, mostly).
    fn decode_reference_pictures_only(&mut self) {
        // SAFETY: a plain field write on the open decoder's context, read at each packet.
        unsafe {
            (*self.decoder.as_mut_ptr()).skip_frame = ffmpeg_next::ffi::AVDiscard::AVDISCARD_NONREF;
        }
    }

    /// The next picture in presentation order and its time from the start; `None` at the end.
    pub(crate) fn next_picture(&mut self) -> Result<Option<(Duration, frame::Video)>, ImageError> {
        loop {
            let mut picture = frame::Video::empty();
            if self.decoder.receive_frame(&mut picture).is_ok() {
                if let Some(at) = self.time_of(&picture) {
                    return Ok(Some((at, picture)));
                }
                continue;
            }
            if self.drained {
                return Ok(None);
            }
            let stream = self.stream;
            let packet = self
                .input
                .packets()
                .find(|(s, _)| s.index() == stream)
                .map(|(_, packet)| packet);
            match packet {
                // A damaged packet is skipped, as players do; the pictures around it still count.
                Some(packet) => match self.decoder.send_packet(&packet) {
                    Ok(()) | Err(ffmpeg_next::Error::InvalidData) => {}
                    Err(error) => return Err(ImageError::Decode(error)),
                },
                None => {
                    // Only fails when already sent; the held pictures come out either way.
                    let _ = self.decoder.send_eof();
                    self.drained = true;
                }
            }
        }
    }

    fn time_of(&self, picture: &frame::Video) -> Option<Duration> {
        let ts = picture.timestamp().or(picture.pts())?;
        let ticks = i128::from(ts) - i128::from(self.origin);
        let (num, den) = (
            i128::from(self.time_base.numerator()),
            i128::from(self.time_base.denominator()),
        );
        if den <= 0 {
            return None;
        }
        let micros = (ticks * num * 1_000_000 / den).max(0);
        Some(Duration::from_micros(u64::try_from(micros).ok()?))
    }
}

/// The size a picture is shown at: its coded size with the sample aspect ratio applied.
pub(crate) fn display_size(picture: &frame::Video) -> (u32, u32) {
    let (width, height) = (picture.width(), picture.height());
    let sar = picture.aspect_ratio();
    let (num, den) = (sar.numerator(), sar.denominator());
    if num > 0 && den > 0 && num != den {
        let wide = (f64::from(width) * f64::from(num) / f64::from(den)).round();
        (even(wide), height)
    } else {
        (width, height)
    }
}

/// Rounds to the nearest even size, at least 2 (4:2:0 pictures need even sizes).
fn even(size: f64) -> u32 {
    ((size / 2.0).round() as u32).max(1) * 2
}

/// `size` scaled down, keeping its aspect, until neither side exceeds [`MAX_DIMENSION`] (a
/// side derived from the other, or an extreme sample aspect ratio in the file, could).
fn bounded(size: (u32, u32)) -> (u32, u32) {
    let (width, height) = (f64::from(size.0), f64::from(size.1));
    let scale = (f64::from(MAX_DIMENSION) / width.max(height)).min(1.0);
    if scale >= 1.0 {
        size
    } else {
        (
            even(width * scale).min(MAX_DIMENSION),
            even(height * scale).min(MAX_DIMENSION),
        )
    }
}

/// Where a picture goes: the image's size, the size the picture is scaled to, where it is
/// placed, and (for `crop`) the part of the picture kept, as fractions of its width and height.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Shape {
    pub(crate) canvas: (u32, u32),
    scaled: (u32, u32),
    offset: (u32, u32),
    keep: (f64, f64),
}

impl Shape {
    pub(crate) fn of(
        display: (u32, u32),
        width: Option<u32>,
        height: Option<u32>,
        fit: FitMode,
    ) -> Shape {
        let (dw, dh) = (f64::from(display.0), f64::from(display.1));
        let whole = |size: (u32, u32)| Shape {
            canvas: size,
            scaled: size,
            offset: (0, 0),
            keep: (1.0, 1.0),
        };
        let (w, h) = match (width, height) {
            (None, None) => return whole(bounded(display)),
            (Some(w), None) => return whole(bounded((w, even(f64::from(w) * dh / dw)))),
            (None, Some(h)) => return whole(bounded((even(f64::from(h) * dw / dh), h))),
            (Some(w), Some(h)) => (w, h),
        };
        let fitted = || {
            let scale = (f64::from(w) / dw).min(f64::from(h) / dh);
            (
                even(dw * scale).min(w).max(1),
                even(dh * scale).min(h).max(1),
            )
        };
        match fit {
            FitMode::Stretch => whole((w, h)),
            FitMode::Preserve => whole(fitted()),
            FitMode::Pad => {
                let scaled = fitted();
                Shape {
                    canvas: (w, h),
                    scaled,
                    offset: ((w - scaled.0) / 2, (h - scaled.1) / 2),
                    keep: (1.0, 1.0),
                }
            }
            FitMode::Crop => {
                let (source_aspect, box_aspect) = (dw / dh, f64::from(w) / f64::from(h));
                let keep = if source_aspect > box_aspect {
                    (box_aspect / source_aspect, 1.0)
                } else {
                    (1.0, source_aspect / box_aspect)
                };
                Shape {
                    keep,
                    ..whole((w, h))
                }
            }
        }
    }
}

/// A black RGB24 picture.
fn black(width: u32, height: u32) -> frame::Video {
    let mut canvas = frame::Video::new(Pixel::RGB24, width, height);
    canvas.data_mut(0).fill(0);
    canvas
}

/// `picture` shaped as `shape` says, in RGB24.
pub(crate) fn render(
    picture: &mut frame::Video,
    shape: &Shape,
) -> Result<frame::Video, ImageError> {
    if shape.keep != (1.0, 1.0) {
        crop_centre(picture, shape.keep);
    }
    let scaled = convert(picture, Pixel::RGB24, shape.scaled)?;
    if shape.scaled == shape.canvas {
        return Ok(scaled);
    }
    let mut canvas = black(shape.canvas.0, shape.canvas.1);
    blit(&scaled, &mut canvas, shape.offset.0, shape.offset.1);
    Ok(canvas)
}

/// Keeps the centre `keep` fraction of the picture's width and height.
fn crop_centre(picture: &mut frame::Video, keep: (f64, f64)) {
    let (width, height) = (picture.width(), picture.height());
    let kept_width = ((f64::from(width) * keep.0).round() as u32).clamp(1, width);
    let kept_height = ((f64::from(height) * keep.1).round() as u32).clamp(1, height);
    let (left, top) = ((width - kept_width) / 2, (height - kept_height) / 2);
    // SAFETY: crop fields set within the picture's size on a frame we own; libavutil then
    // moves the plane pointers and the size. `AV_FRAME_CROP_UNALIGNED` keeps the left edge
    // where asked (without it libavutil rounds it down to a pointer alignment, cropping
    // off-centre). On failure the frame is left uncropped, which is still a picture.
    unsafe {
        let raw = picture.as_mut_ptr();
        (*raw).crop_left = left as usize;
        (*raw).crop_right = (width - kept_width - left) as usize;
        (*raw).crop_top = top as usize;
        (*raw).crop_bottom = (height - kept_height - top) as usize;
        ffmpeg_next::ffi::av_frame_apply_cropping(
            raw,
            ffmpeg_next::ffi::AV_FRAME_CROP_UNALIGNED as i32,
        );
    }
}

/// `picture` converted to `pixel` at `size` with swscale.
pub(crate) fn convert(
    picture: &frame::Video,
    pixel: Pixel,
    size: (u32, u32),
) -> Result<frame::Video, ImageError> {
    let error = |source| ImageError::Scale {
        width: size.0,
        height: size.1,
        source,
    };
    let mut scaler = scaling::Context::get(
        picture.format(),
        picture.width(),
        picture.height(),
        pixel,
        size.0,
        size.1,
        scaling::Flags::BICUBIC,
    )
    .map_err(error)?;
    follow_colour_tags(&mut scaler, picture);
    let mut output = frame::Video::empty();
    scaler.run(picture, &mut output).map_err(error)?;
    Ok(output)
}

/// Tells swscale the picture's YUV matrix and range when it is tagged with them: swscale
/// otherwise reads every YUV picture as BT.601 limited range, which shifts BT.709 colours and
/// washes out full-range video.
fn follow_colour_tags(scaler: &mut scaling::Context, picture: &frame::Video) {
    use ffmpeg_next::ffi;
    let matrix = match picture.color_space() {
        color::Space::BT709 => ffi::SWS_CS_ITU709,
        color::Space::BT2020NCL | color::Space::BT2020CL => ffi::SWS_CS_BT2020,
        color::Space::SMPTE240M => ffi::SWS_CS_SMPTE240M,
        color::Space::FCC => ffi::SWS_CS_FCC,
        _ => ffi::SWS_CS_DEFAULT,
    };
    let full_range = picture.color_range() == color::Range::JPEG;
    if matrix == ffi::SWS_CS_DEFAULT && !full_range {
        return;
    }
    // SAFETY: the scaler is a live swscale context; the details are read back and written
    // again with only the source matrix and range changed. The coefficient tables are static
    // libswscale data. swscale ignores (and refuses, returning an error) what does not apply,
    // such as a matrix for an RGB source, leaving its defaults in place.
    unsafe {
        let context = scaler.as_mut_ptr();
        let (mut inverse, mut table) = (std::ptr::null_mut(), std::ptr::null_mut());
        let (mut source_range, mut output_range) = (0, 0);
        let (mut brightness, mut contrast, mut saturation) = (0, 0, 0);
        let read = ffi::sws_getColorspaceDetails(
            context,
            &mut inverse,
            &mut source_range,
            &mut table,
            &mut output_range,
            &mut brightness,
            &mut contrast,
            &mut saturation,
        );
        if read < 0 {
            return;
        }
        ffi::sws_setColorspaceDetails(
            context,
            ffi::sws_getCoefficients(matrix),
            i32::from(full_range),
            table,
            output_range,
            brightness,
            contrast,
            saturation,
        );
    }
}

/// Copies an RGB24 picture into an RGB24 canvas at (x, y), clipped to the canvas.
fn blit(picture: &frame::Video, canvas: &mut frame::Video, x: u32, y: u32) {
    let (x, y) = (x as usize, y as usize);
    let (canvas_width, canvas_height) = (canvas.width() as usize, canvas.height() as usize);
    let width = (picture.width() as usize).min(canvas_width.saturating_sub(x));
    let height = (picture.height() as usize).min(canvas_height.saturating_sub(y));
    let (from_stride, to_stride) = (picture.stride(0), canvas.stride(0));
    let from = picture.data(0);
    let to = canvas.data_mut(0);
    for row in 0..height {
        let source = &from[row * from_stride..][..width * 3];
        to[(y + row) * to_stride + x * 3..][..width * 3].copy_from_slice(source);
    }
}

/// Encodes an RGB24 picture as one image.
fn encode(rgb: &frame::Video, format: ImageFormat) -> Result<Image, ImageError> {
    let name = format.content_type();
    let error = |source| ImageError::Encode {
        format: name,
        source,
    };
    let codec = encoder::find_by_name(format.encoder_name()).ok_or(ImageError::EncoderMissing {
        format: name,
        encoder: format.encoder_name(),
    })?;
    let (width, height) = (rgb.width(), rgb.height());
    let pixel = format.pixel();
    let mut picture = if pixel == Pixel::RGB24 {
        rgb.clone()
    } else {
        convert(rgb, pixel, (width, height))?
    };
    let mut context = codec::Context::new_with_codec(codec)
        .encoder()
        .video()
        .map_err(error)?;
    context.set_width(width);
    context.set_height(height);
    context.set_format(pixel);
    context.set_time_base(Rational::new(1, 1));
    if format == ImageFormat::Jpeg {
        let quality = JPEG_QSCALE * ffmpeg_next::ffi::FF_QP2LAMBDA;
        context.set_color_range(color::Range::JPEG);
        context.set_flags(codec::Flags::QSCALE);
        context.set_global_quality(quality);
        picture.set_color_range(color::Range::JPEG);
        // SAFETY: a plain field write on a frame we own; the encoder reads it per frame.
        unsafe { (*picture.as_mut_ptr()).quality = quality };
    }
    picture.set_pts(Some(0));
    let mut encoder = context.open_as(codec).map_err(error)?;
    encoder.send_frame(&picture).map_err(error)?;
    encoder.send_eof().map_err(error)?;
    let mut data = Vec::new();
    let mut packet = ffmpeg_next::Packet::empty();
    while encoder.receive_packet(&mut packet).is_ok() {
        data.extend_from_slice(packet.data().unwrap_or_default());
    }
    if data.is_empty() {
        return Err(error(ffmpeg_next::Error::InvalidData));
    }
    Ok(Image {
        format,
        width,
        height,
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_modes_shape_a_wide_picture_into_a_square() {
        let source = (640, 360);
        let box_of = |fit| Shape::of(source, Some(200), Some(200), fit);
        assert_eq!(box_of(FitMode::Preserve).canvas, (200, 112));
        let pad = box_of(FitMode::Pad);
        assert_eq!(
            (pad.canvas, pad.scaled, pad.offset),
            ((200, 200), (200, 112), (0, 44))
        );
        let crop = box_of(FitMode::Crop);
        assert_eq!((crop.canvas, crop.scaled), ((200, 200), (200, 200)));
        assert!((crop.keep.0 - 0.5625).abs() < 1e-9 && crop.keep.1 == 1.0);
        assert_eq!(box_of(FitMode::Stretch).canvas, (200, 200));
        assert_eq!(
            Shape::of(source, Some(320), None, FitMode::Crop).canvas,
            (320, 180)
        );
        assert_eq!(
            Shape::of(source, None, Some(90), FitMode::Pad).canvas,
            (160, 90)
        );
        assert_eq!(Shape::of(source, None, None, FitMode::Pad).canvas, source);
    }

    #[test]
    fn derived_sizes_never_exceed_the_largest_dimension() {
        // A 16:9 picture asked 4096 tall would be 7282 wide; an extreme sample aspect ratio
        // could make any size: both are scaled down, aspect kept.
        assert_eq!(
            Shape::of((1920, 1080), None, Some(4096), FitMode::Preserve).canvas,
            (4096, 2304)
        );
        assert_eq!(
            Shape::of((100_000, 100), None, None, FitMode::Preserve).canvas,
            (4096, 4)
        );
    }

    #[test]
    fn poster_and_storyboard_rules() {
        assert_eq!(poster_time(None), Duration::ZERO);
        assert_eq!(
            poster_time(Some(Duration::from_secs(8))),
            Duration::from_millis(800)
        );
        assert_eq!(
            poster_time(Some(Duration::from_secs(3600))),
            POSTER_MAX_TIME
        );
        assert_eq!(
            storyboard_interval(Duration::from_secs(7), 100),
            Duration::from_secs(1)
        );
        let hour = storyboard_interval(Duration::from_secs(3600), 100);
        assert_eq!(hour, Duration::from_secs(36));
        let odd = Duration::from_millis(1_000_003);
        let interval = storyboard_interval(odd, 100);
        assert!(odd.as_millis().div_ceil(interval.as_millis()) <= 100);
        assert_eq!(vtt_time(Duration::from_millis(3_723_004)), "01:02:03.004");
    }

    #[test]
    fn names_parse_back() {
        for mode in FitMode::ALL {
            assert_eq!(FitMode::parse(mode.as_str()), Some(mode));
        }
        assert_eq!(FitMode::parse("zoom"), None);
        assert_eq!(ImageFormat::from_extension("JPEG"), Some(ImageFormat::Jpeg));
        assert_eq!(ImageFormat::from_extension("gif"), None);
    }
}
