//! The transcoder behind the API's image routes: [`TranscoderImages`] makes thumbnails,
//! storyboards and animated previews of a local source with `sluice_transcoder`, for
//! `sluice_api::Images`, which fetches sources, caches results and bounds concurrent renders.

use std::path::Path;
use std::sync::Arc;

use sluice_api::{
    AnimatedFormat, AnimatedSpec, FitMode, ImageRenderer, Images, RenderError, RenderedStoryboard,
    StillFormat, ThumbnailSpec, DEFAULT_SOURCE_CACHE_BYTES, MAX_ANIMATED_DIMENSION,
    MAX_ANIMATED_FPS, MAX_ANIMATED_SPAN, MAX_THUMBNAIL_DIMENSION, MIN_IMAGE_DIMENSION,
};
use sluice_transcoder::images::{MAX_DIMENSION, MIN_DIMENSION};
use sluice_transcoder::{
    AnimationFormat, AnimationRequest, ImageError, ImageFormat, ProbeLimits, StoryboardLayout,
    ThumbnailRequest, MAX_ANIMATION_DIMENSION, MAX_ANIMATION_FPS, MAX_ANIMATION_SPAN,
};

// The API refuses what the transcoder would: both sides must draw the same bounds.
const _: () = assert!(
    MIN_IMAGE_DIMENSION == MIN_DIMENSION
        && MAX_THUMBNAIL_DIMENSION == MAX_DIMENSION
        && MAX_ANIMATED_DIMENSION == MAX_ANIMATION_DIMENSION
        && MAX_ANIMATED_FPS == MAX_ANIMATION_FPS
        && MAX_ANIMATED_SPAN.as_millis() == MAX_ANIMATION_SPAN.as_millis()
);

/// The image service of a server whose data directory is `data_dir`: sources are copied
/// under `data_dir/cache/sources`.
pub fn images(data_dir: &Path) -> Images {
    Images::new(
        Arc::new(TranscoderImages::default()),
        data_dir.join("cache").join("sources"),
        DEFAULT_SOURCE_CACHE_BYTES,
    )
}

/// [`ImageRenderer`] on the transcoder, reading sources within the usual probe limits.
#[derive(Default)]
pub struct TranscoderImages {
    limits: ProbeLimits,
}

fn still_format(format: StillFormat) -> ImageFormat {
    match format {
        StillFormat::Jpeg => ImageFormat::Jpeg,
        StillFormat::Png => ImageFormat::Png,
        StillFormat::Webp => ImageFormat::Webp,
    }
}

fn fit_mode(mode: FitMode) -> sluice_transcoder::FitMode {
    match mode {
        FitMode::Preserve => sluice_transcoder::FitMode::Preserve,
        FitMode::Crop => sluice_transcoder::FitMode::Crop,
        FitMode::Pad => sluice_transcoder::FitMode::Pad,
        FitMode::Stretch => sluice_transcoder::FitMode::Stretch,
    }
}

/// What the request could change is the requester's to fix (400); the rest is ours (500).
fn render_error(error: ImageError) -> RenderError {
    match error {
        ImageError::BadDimension { .. }
        | ImageError::BadAnimation(_)
        | ImageError::EncoderMissing { .. } => RenderError::Invalid(error.to_string()),
        other => RenderError::Failed(other.to_string()),
    }
}

impl ImageRenderer for TranscoderImages {
    fn thumbnail(&self, source: &Path, spec: &ThumbnailSpec) -> Result<Vec<u8>, RenderError> {
        let request = ThumbnailRequest {
            time: spec.time,
            width: spec.width,
            height: spec.height,
            fit: fit_mode(spec.fit_mode),
            format: still_format(spec.format),
        };
        sluice_transcoder::thumbnail(source, &self.limits, &request)
            .map(|image| image.data)
            .map_err(render_error)
    }

    fn storyboard(
        &self,
        source: &Path,
        format: StillFormat,
        sprite_uri: &str,
    ) -> Result<RenderedStoryboard, RenderError> {
        let layout = StoryboardLayout {
            format: still_format(format),
            ..StoryboardLayout::default()
        };
        sluice_transcoder::storyboard(source, &self.limits, &layout, sprite_uri)
            .map(|board| RenderedStoryboard {
                sprite: board.sprite.data,
                vtt: board.vtt,
            })
            .map_err(render_error)
    }

    fn animated(&self, source: &Path, spec: &AnimatedSpec) -> Result<Vec<u8>, RenderError> {
        let request = AnimationRequest {
            start: spec.start,
            end: spec.end,
            width: spec.width,
            height: spec.height,
            fps: spec.fps,
            format: match spec.format {
                AnimatedFormat::Gif => AnimationFormat::Gif,
                AnimatedFormat::Webp => AnimationFormat::Webp,
            },
        };
        sluice_transcoder::animated(source, &self.limits, &request)
            .map(|animation| animation.data)
            .map_err(render_error)
    }
}
