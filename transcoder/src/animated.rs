//! Animated previews of a local video file ([`animated`]): a short span of the video sampled
//! at a fixed frame rate and scaled down, as an animated GIF or an animated WebP.
//!
//! The file is opened as thumbnails open it (the probe: local file only, accepted containers,
//! limits). Frame `i` shows the first picture at or after `start + i / fps`, as a thumbnail
//! at that time would. Times are clamped to the video as thumbnails clamp theirs: the span
//! ends at the end of the video at the latest, and a `start` at or past the end gives a
//! one-frame animation of the last picture.
//!
//! - GIF: 256 colours chosen for this clip. libavfilter's `palettegen` reads every frame (a
//!   first pass), then `paletteuse` maps each frame to that palette (a second pass) with
//!   ordered (Bayer) dithering, which does not crawl from frame to frame as error diffusion
//!   does, re-encoding only the rectangle that changed. The span is decoded twice rather than
//!   held in memory until the palette is known. libavcodec's `gif` encoder and libavformat's
//!   `gif` muxer (looping forever) write the file.
//! - WebP: libavcodec's `libwebp_anim` encoder (lossy; libwebp's animation encoder, which
//!   stores only what changes and folds a frame identical to the one before into that one's
//!   duration) and the `webp` muxer, when libavcodec was built with libwebp
//!   ([`AnimationFormat::is_available`]).

use std::path::Path;
use std::time::Duration;

use ffmpeg_next::codec::{self, encoder};
use ffmpeg_next::format::Pixel;
use ffmpeg_next::{filter, format, frame, Rational};

use crate::images::{convert, display_size, render, FitMode, ImageError, Shape, VideoReader};
use crate::images::{MAX_DIMENSION, MIN_DIMENSION};
use crate::probe::ProbeLimits;

/// Longest span an animation may cover.
pub const MAX_ANIMATION_SPAN: Duration = Duration::from_secs(10);
/// Highest frame rate an animation may have.
pub const MAX_ANIMATION_FPS: u32 = 30;
/// Largest width or height an animation may be asked for or get.
pub const MAX_ANIMATION_DIMENSION: u32 = 640;
/// Width of an animation when neither width nor height is asked for.
pub const DEFAULT_ANIMATION_WIDTH: u32 = 320;

// An animation is a scaled-down picture: its bounds must lie within a still picture's.
const _: () = assert!(MAX_ANIMATION_DIMENSION <= MAX_DIMENSION);

/// The file format of an animation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnimationFormat {
    Gif,
    Webp,
}

impl AnimationFormat {
    /// The format a file extension names (`gif`, `webp`).
    pub fn from_extension(extension: &str) -> Option<Self> {
        match extension.to_ascii_lowercase().as_str() {
            "gif" => Some(AnimationFormat::Gif),
            "webp" => Some(AnimationFormat::Webp),
            _ => None,
        }
    }

    /// The usual file extension.
    pub fn extension(self) -> &'static str {
        match self {
            AnimationFormat::Gif => "gif",
            AnimationFormat::Webp => "webp",
        }
    }

    /// The media type.
    pub fn content_type(self) -> &'static str {
        match self {
            AnimationFormat::Gif => "image/gif",
            AnimationFormat::Webp => "image/webp",
        }
    }

    /// Whether this build of libavcodec has the encoder (animated WebP needs libwebp).
    pub fn is_available(self) -> bool {
        crate::init_ffmpeg();
        encoder::find_by_name(self.encoder_name()).is_some()
    }

    fn encoder_name(self) -> &'static str {
        match self {
            AnimationFormat::Gif => "gif",
            AnimationFormat::Webp => "libwebp_anim",
        }
    }

    fn muxer_name(self) -> &'static str {
        match self {
            AnimationFormat::Gif => "gif",
            AnimationFormat::Webp => "webp",
        }
    }

    /// The pixel format handed to the encoder.
    fn pixel(self) -> Pixel {
        match self {
            AnimationFormat::Gif => Pixel::PAL8,
            AnimationFormat::Webp => Pixel::YUV420P,
        }
    }
}

/// Which span of a video to animate, and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnimationRequest {
    /// Time of the first frame, from the start of the video.
    pub start: Duration,
    /// End of the span (exclusive); at most [`MAX_ANIMATION_SPAN`] after `start`.
    pub end: Duration,
    /// Width in pixels ([`MIN_DIMENSION`]..=[`MAX_ANIMATION_DIMENSION`]); the animation fits
    /// inside `width` × `height` keeping the video's aspect ratio, a missing side standing
    /// for [`MAX_ANIMATION_DIMENSION`]. With neither given, the width is
    /// [`DEFAULT_ANIMATION_WIDTH`].
    pub width: Option<u32>,
    /// Height in pixels, as for `width`.
    pub height: Option<u32>,
    /// Frames per second (1..=[`MAX_ANIMATION_FPS`]).
    pub fps: u32,
    pub format: AnimationFormat,
}

impl Default for AnimationRequest {
    /// The first 5 s, 320 wide, 15 frames a second, as a GIF.
    fn default() -> Self {
        AnimationRequest {
            start: Duration::ZERO,
            end: Duration::from_secs(5),
            width: None,
            height: None,
            fps: 15,
            format: AnimationFormat::Gif,
        }
    }
}

/// An encoded animation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Animation {
    pub format: AnimationFormat,
    pub width: u32,
    pub height: u32,
    /// Frames handed to the encoder (a WebP may store fewer: see the module docs).
    pub frames: u32,
    /// The file's bytes.
    pub data: Vec<u8>,
}

/// The animated preview of the video in `path` that `request` asks for.
pub fn animated(
    path: &Path,
    limits: &ProbeLimits,
    request: &AnimationRequest,
) -> Result<Animation, ImageError> {
    check(request)?;
    let format = request.format;
    if !format.is_available() {
        return Err(ImageError::EncoderMissing {
            format: format.content_type(),
            encoder: format.encoder_name(),
        });
    }
    match format {
        AnimationFormat::Gif => gif(path, limits, request),
        AnimationFormat::Webp => webp(path, limits, request),
    }
}

fn check(request: &AnimationRequest) -> Result<(), ImageError> {
    let bad = |reason: String| Err(ImageError::BadAnimation(reason));
    if request.end <= request.start {
        return bad("the end of an animation must come after its start".into());
    }
    if request.end - request.start > MAX_ANIMATION_SPAN {
        return bad(format!(
            "an animation spans at most {} s",
            MAX_ANIMATION_SPAN.as_secs()
        ));
    }
    if !(1..=MAX_ANIMATION_FPS).contains(&request.fps) {
        return bad(format!(
            "fps must be between 1 and {MAX_ANIMATION_FPS}, not {}",
            request.fps
        ));
    }
    for (name, value) in [("width", request.width), ("height", request.height)] {
        match value {
            Some(value) if !(MIN_DIMENSION..=MAX_ANIMATION_DIMENSION).contains(&value) => {
                return bad(format!(
                    "{name} must be between {MIN_DIMENSION} and {MAX_ANIMATION_DIMENSION} \
                     pixels, not {value}"
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

/// The size frames are rendered at, for a picture shown at `display`.
fn shape_of(display: (u32, u32), request: &AnimationRequest) -> Shape {
    let (width, height) = match (request.width, request.height) {
        (None, None) => (Some(DEFAULT_ANIMATION_WIDTH), None),
        given => given,
    };
    Shape::of(
        display,
        Some(width.unwrap_or(MAX_ANIMATION_DIMENSION)),
        Some(height.unwrap_or(MAX_ANIMATION_DIMENSION)),
        FitMode::Preserve,
    )
}

/// Decodes the span once, calling `each` with every frame of the animation in order (its
/// index and its picture, RGB24 at the animation's size). Returns the number of frames and
/// their size.
fn for_each_frame(
    path: &Path,
    limits: &ProbeLimits,
    request: &AnimationRequest,
    mut each: impl FnMut(i64, &frame::Video) -> Result<(), ImageError>,
) -> Result<(u32, (u32, u32)), ImageError> {
    let mut reader = VideoReader::open(path, limits)?;
    let end = reader
        .duration
        .map_or(request.end, |duration| request.end.min(duration));
    let span = end.saturating_sub(request.start);
    let fps = u128::from(request.fps);
    let count = u32::try_from((span.as_nanos() * fps).div_ceil(1_000_000_000))
        .unwrap_or(u32::MAX)
        .max(1);
    let frame_time = |index: u32| {
        let offset = u128::from(index) * 1_000_000_000 / fps;
        request.start + Duration::from_nanos(u64::try_from(offset).unwrap_or(u64::MAX))
    };
    reader.seek(request.start);

    let mut shape = None;
    // Renders `picture` once and hands it out as each next frame that is `due`.
    let mut emit = |picture: &mut frame::Video, placed: &mut u32, due: &dyn Fn(u32) -> bool| {
        let shape = shape.get_or_insert_with(|| shape_of(display_size(picture), request));
        let rendered = render(picture, shape)?;
        while *placed < count && due(*placed) {
            each(i64::from(*placed), &rendered)?;
            *placed += 1;
        }
        Ok::<_, ImageError>(())
    };
    let mut placed = 0;
    let mut last = None;
    while placed < count {
        let Some((at, mut picture)) = reader.next_picture()? else {
            break;
        };
        if at >= frame_time(placed) {
            emit(&mut picture, &mut placed, &|index| at >= frame_time(index))?;
        }
        last = Some(picture);
    }
    // Frames past the last picture (the end of the file) show the last picture.
    if placed < count {
        let mut picture = last.ok_or(ImageError::NothingDecoded)?;
        emit(&mut picture, &mut placed, &|_| true)?;
    }
    let size = shape.ok_or(ImageError::NothingDecoded)?.canvas;
    Ok((count, size))
}

/// An animated GIF: a palette made from every frame, then every frame mapped to it.
fn gif(
    path: &Path,
    limits: &ProbeLimits,
    request: &AnimationRequest,
) -> Result<Animation, ImageError> {
    let time_base = Rational::new(1, request.fps as i32);

    let mut palette_graph = None;
    for_each_frame(path, limits, request, |index, picture| {
        let graph = match &mut palette_graph {
            Some(graph) => graph,
            None => palette_graph.insert(filter_graph(
                &[("in", buffer_args(picture, time_base))],
                "[in]palettegen[out]",
            )?),
        };
        push(graph, "in", index, picture)
    })?;
    let mut palette_graph = palette_graph.ok_or(ImageError::NothingDecoded)?;
    end_input(&mut palette_graph, "in")?;
    let mut palette = frame::Video::empty();
    filter_named(&mut palette_graph, "out")
        .sink()
        .frame(&mut palette)
        .map_err(ImageError::Palette)?;
    palette.set_pts(Some(0));

    let mut mapping = None;
    let mut file = None;
    let (frames, size) = for_each_frame(path, limits, request, |index, picture| {
        let graph = match &mut mapping {
            Some(graph) => graph,
            None => {
                let mut graph = filter_graph(
                    &[
                        ("in", buffer_args(picture, time_base)),
                        ("palette", buffer_args(&palette, time_base)),
                    ],
                    "[in][palette]paletteuse=dither=bayer:bayer_scale=5:diff_mode=rectangle[out]",
                )?;
                push(&mut graph, "palette", 0, &palette)?;
                end_input(&mut graph, "palette")?;
                mapping.insert(graph)
            }
        };
        push(graph, "in", index, picture)?;
        let file = match &mut file {
            Some(file) => file,
            None => file.insert(AnimationFile::create(
                AnimationFormat::Gif,
                (picture.width(), picture.height()),
                request.fps,
            )?),
        };
        drain(graph, file)
    })?;
    let (mut graph, mut file) = mapping.zip(file).ok_or(ImageError::NothingDecoded)?;
    end_input(&mut graph, "in")?;
    drain(&mut graph, &mut file)?;
    Ok(Animation {
        format: request.format,
        width: size.0,
        height: size.1,
        frames,
        data: file.finish()?,
    })
}

/// An animated WebP: each frame as it is, libwebp finding what changed.
fn webp(
    path: &Path,
    limits: &ProbeLimits,
    request: &AnimationRequest,
) -> Result<Animation, ImageError> {
    let format = AnimationFormat::Webp;
    let mut file = None;
    let (frames, size) = for_each_frame(path, limits, request, |index, picture| {
        let size = (picture.width(), picture.height());
        let file = match &mut file {
            Some(file) => file,
            None => file.insert(AnimationFile::create(format, size, request.fps)?),
        };
        let mut yuv = convert(picture, format.pixel(), size)?;
        yuv.set_pts(Some(index));
        file.push(&yuv)
    })?;
    let file = file.ok_or(ImageError::NothingDecoded)?;
    Ok(Animation {
        format: request.format,
        width: size.0,
        height: size.1,
        frames,
        data: file.finish()?,
    })
}

/// `buffer` source arguments for frames shaped like `picture`.
fn buffer_args(picture: &frame::Video, time_base: Rational) -> String {
    let pixel = ffmpeg_next::ffi::AVPixelFormat::from(picture.format()) as i32;
    format!(
        "video_size={}x{}:pix_fmt={pixel}:time_base={}/{}:pixel_aspect=1/1",
        picture.width(),
        picture.height(),
        time_base.numerator(),
        time_base.denominator(),
    )
}

/// A filter graph fed by the `buffer` sources `inputs` (name, arguments), running `spec`
/// (whose labels name those sources, and `out` its result) into a sink named `out`.
fn filter_graph(inputs: &[(&str, String)], spec: &str) -> Result<filter::Graph, ImageError> {
    let error = ImageError::Palette;
    let missing = || error(ffmpeg_next::Error::FilterNotFound);
    let mut graph = filter::Graph::new();
    for (name, args) in inputs {
        graph
            .add(&filter::find("buffer").ok_or_else(missing)?, name, args)
            .map_err(error)?;
    }
    graph
        .add(&filter::find("buffersink").ok_or_else(missing)?, "out", "")
        .map_err(error)?;
    let mut parser = graph.input("out", 0).map_err(error)?;
    for (name, _) in inputs {
        parser = parser.output(name, 0).map_err(error)?;
    }
    parser.parse(spec).map_err(error)?;
    graph.validate().map_err(error)?;
    Ok(graph)
}

/// Feeds a copy of `picture` (the source takes the frame it is given) as frame `index`.
fn push(
    graph: &mut filter::Graph,
    input: &str,
    index: i64,
    picture: &frame::Video,
) -> Result<(), ImageError> {
    let mut copy = picture.clone();
    copy.set_pts(Some(index));
    filter_named(graph, input)
        .source()
        .add(&copy)
        .map_err(ImageError::Palette)
}

/// Tells the source `input` that no more frames come.
fn end_input(graph: &mut filter::Graph, input: &str) -> Result<(), ImageError> {
    filter_named(graph, input)
        .source()
        .flush()
        .map_err(ImageError::Palette)
}

/// The filter named `name` in a graph made by [`filter_graph`], which has its sources and
/// its sink.
fn filter_named(graph: &mut filter::Graph, name: &str) -> filter::Context {
    graph.get(name).expect("filter_graph added this filter")
}

/// Encodes every frame the graph has ready.
fn drain(graph: &mut filter::Graph, file: &mut AnimationFile) -> Result<(), ImageError> {
    let mut mapped = frame::Video::empty();
    let mut out = filter_named(graph, "out");
    while out.sink().frame(&mut mapped).is_ok() {
        file.push(&mapped)?;
    }
    Ok(())
}

/// An animation being encoded into a temporary file (libavformat's muxers write to files).
struct AnimationFile {
    output: format::context::Output,
    encoder: encoder::Video,
    encoder_time_base: Rational,
    format: AnimationFormat,
    file: tempfile::NamedTempFile,
}

impl AnimationFile {
    fn create(format: AnimationFormat, size: (u32, u32), fps: u32) -> Result<Self, ImageError> {
        let name = format.content_type();
        let error = |source| ImageError::Encode {
            format: name,
            source,
        };
        let codec =
            encoder::find_by_name(format.encoder_name()).ok_or(ImageError::EncoderMissing {
                format: name,
                encoder: format.encoder_name(),
            })?;
        let file = tempfile::Builder::new()
            .prefix("sluice-animation-")
            .suffix(&format!(".{}", format.extension()))
            .tempfile()?;
        let mut output = format::output_as(file.path(), format.muxer_name()).map_err(error)?;
        let time_base = Rational::new(1, fps as i32);
        let mut context = codec::Context::new_with_codec(codec)
            .encoder()
            .video()
            .map_err(error)?;
        context.set_width(size.0);
        context.set_height(size.1);
        context.set_format(format.pixel());
        context.set_time_base(time_base);
        context.set_frame_rate(Some(Rational::new(fps as i32, 1)));
        let encoder = context.open_as(codec).map_err(error)?;
        let mut stream = output.add_stream(codec).map_err(error)?;
        stream.set_parameters(&encoder);
        stream.set_time_base(time_base);
        // Both muxers take `loop` (0: forever); the WebP muxer's own default is once.
        let mut options = ffmpeg_next::Dictionary::new();
        options.set("loop", "0");
        output.write_header_with(options).map_err(error)?;
        Ok(AnimationFile {
            output,
            encoder,
            encoder_time_base: time_base,
            format,
            file,
        })
    }

    fn error(&self) -> impl Fn(ffmpeg_next::Error) -> ImageError {
        let format = self.format.content_type();
        move |source| ImageError::Encode { format, source }
    }

    fn push(&mut self, picture: &frame::Video) -> Result<(), ImageError> {
        self.encoder.send_frame(picture).map_err(self.error())?;
        self.write_packets()
    }

    fn write_packets(&mut self) -> Result<(), ImageError> {
        let error = self.error();
        // The muxer may have chosen its own time base when it wrote the header.
        let stream_time_base = self
            .output
            .stream(0)
            .map(|stream| stream.time_base())
            .unwrap_or(self.encoder_time_base);
        let mut packet = ffmpeg_next::Packet::empty();
        while self.encoder.receive_packet(&mut packet).is_ok() {
            packet.set_stream(0);
            packet.rescale_ts(self.encoder_time_base, stream_time_base);
            packet.write_interleaved(&mut self.output).map_err(&error)?;
        }
        Ok(())
    }

    /// Flushes the encoder, closes the file and returns its bytes.
    fn finish(mut self) -> Result<Vec<u8>, ImageError> {
        self.encoder.send_eof().map_err(self.error())?;
        self.write_packets()?;
        self.output.write_trailer().map_err(self.error())?;
        // Closes the file libavformat wrote before it is read back.
        drop(self.output);
        Ok(std::fs::read(self.file.path())?)
    }
}
