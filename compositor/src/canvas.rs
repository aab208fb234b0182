//! The canvas: one yuv420p picture the tiles are drawn on, kept from one output picture to the
//! next so that only what changed is drawn again.
//!
//! Each tile's picture is scaled with swscale: a camera is cropped (centred) to the tile's
//! shape and scaled to *cover* it, a screen share is scaled to *fit* inside it, letterboxed on
//! the tile colour. Every tile keeps its own scaler and its scaled picture, so a picture is
//! scaled once however many canvas pictures show it, and only when it or its tile changes.
//! When the tiles move (a member joins or leaves, the speaker or the layout changes) the whole
//! canvas is painted again; otherwise only the tiles whose picture or name changed are copied
//! in, and a canvas nothing was drawn on is handed out again without a copy.
//!
//! A tile with no picture shows a placeholder: the tile colour with the name in the middle.
//! Every tile with a picture has its name drawn bottom-left ([`crate::label`]).

use std::collections::HashMap;

use bytes::Bytes;
use ffmpeg_next::format::Pixel;
use ffmpeg_next::frame;
use ffmpeg_next::software::scaling;

use crate::label::Label;
use crate::layout::{even, Rect, Source};

/// A colour as limited-range BT.601 Y, U and V.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Yuv {
    pub y: u8,
    pub u: u8,
    pub v: u8,
}

/// Between the tiles: nearly black.
pub(crate) const BACKGROUND: Yuv = Yuv {
    y: 24,
    u: 128,
    v: 128,
};
/// Behind a placeholder's name and around a letterboxed screen share: dark grey.
pub(crate) const TILE: Yuv = Yuv {
    y: 48,
    u: 128,
    v: 128,
};
/// Chroma under a label: neutral, so the text is grey whatever the picture beneath.
const LABEL_CHROMA: u8 = 128;

/// A tile's place in the canvas from one picture to the next: whose, and which picture.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct TileKey {
    pub member: String,
    pub source: Source,
}

/// Identifies one decoded picture: the same id is the same pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PictureId {
    /// The video input it came from, unique within a compositor.
    pub input: u64,
    /// Its place among that input's pictures.
    pub sequence: u64,
}

/// What a tile shows.
pub(crate) enum TileContent<'a> {
    Picture {
        id: PictureId,
        picture: &'a frame::Video,
    },
    Placeholder,
}

/// One tile to draw.
pub(crate) struct TileDraw<'a> {
    pub key: TileKey,
    pub rect: Rect,
    pub content: TileContent<'a>,
    pub name: &'a str,
}

/// What a tile's pixels in the canvas show; drawn again only when it differs.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Appearance {
    rect: Rect,
    picture: Option<PictureId>,
    name: String,
}

/// One tile's scaler and scaled picture, kept between canvas pictures.
#[derive(Default)]
struct Surface {
    drawn: Option<Appearance>,
    scaler: Option<scaling::Context>,
    scaled: Option<Scaled>,
    label: Option<CachedLabel>,
}

/// A picture scaled for a tile, and where in the tile it goes.
struct Scaled {
    from: PictureId,
    rect: Rect,
    picture: frame::Video,
    /// Offset of the scaled picture within the tile (letterboxing).
    offset: (u32, u32),
}

struct CachedLabel {
    text: String,
    max_width: u32,
    label: Option<Label>,
}

/// The composed picture, yuv420p planes packed one after another.
pub(crate) struct Canvas {
    width: u32,
    height: u32,
    planes: Vec<u8>,
    label_scale: u32,
    /// The tiles the canvas was last painted for.
    tiles: Vec<(TileKey, Rect)>,
    surfaces: HashMap<TileKey, Surface>,
    /// The last picture handed out, while nothing was drawn since.
    snapshot: Option<Bytes>,
}

impl Canvas {
    /// A `width × height` canvas (both even) filled with the background.
    pub fn new(width: u32, height: u32) -> Self {
        let luma = (width * height) as usize;
        let mut canvas = Canvas {
            width,
            height,
            planes: vec![0; luma + luma / 2],
            label_scale: Label::scale_for(height),
            tiles: Vec::new(),
            surfaces: HashMap::new(),
            snapshot: None,
        };
        canvas.fill(
            Rect {
                x: 0,
                y: 0,
                width,
                height,
            },
            BACKGROUND,
        );
        canvas
    }

    /// Draws `tiles` and returns the canvas: yuv420p planes packed one after another.
    pub fn compose(&mut self, tiles: &[TileDraw]) -> Bytes {
        let placement: Vec<(TileKey, Rect)> = tiles
            .iter()
            .map(|tile| (tile.key.clone(), tile.rect))
            .collect();
        if placement != self.tiles {
            self.repaint(placement);
        }
        for tile in tiles {
            self.draw(tile);
        }
        self.snapshot
            .get_or_insert_with(|| Bytes::copy_from_slice(&self.planes))
            .clone()
    }

    /// Fills the canvas with the background for a new placement; every tile is drawn again.
    fn repaint(&mut self, placement: Vec<(TileKey, Rect)>) {
        self.surfaces
            .retain(|key, _| placement.iter().any(|(placed, _)| placed == key));
        for surface in self.surfaces.values_mut() {
            surface.drawn = None;
        }
        self.fill(
            Rect {
                x: 0,
                y: 0,
                width: self.width,
                height: self.height,
            },
            BACKGROUND,
        );
        self.tiles = placement;
    }

    fn draw(&mut self, tile: &TileDraw) {
        let picture = match tile.content {
            TileContent::Picture { id, .. } => Some(id),
            TileContent::Placeholder => None,
        };
        let appearance = Appearance {
            rect: tile.rect,
            picture,
            name: tile.name.to_owned(),
        };
        let mut surface = self.surfaces.remove(&tile.key).unwrap_or_default();
        if surface.drawn.as_ref() != Some(&appearance) {
            self.snapshot = None;
            let shown = match tile.content {
                TileContent::Picture { id, picture } => {
                    self.draw_picture(&mut surface, tile.rect, tile.key.source, id, picture)
                }
                TileContent::Placeholder => false,
            };
            if shown {
                self.draw_label(&mut surface, tile.rect, tile.name, Anchor::BottomLeft);
            } else {
                self.fill(tile.rect, TILE);
                self.draw_label(&mut surface, tile.rect, tile.name, Anchor::Centre);
            }
            surface.drawn = Some(appearance);
        }
        self.surfaces.insert(tile.key.clone(), surface);
    }

    /// Scales `picture` for the tile (when not already done) and copies it in; false when it
    /// could not be scaled.
    fn draw_picture(
        &mut self,
        surface: &mut Surface,
        rect: Rect,
        source: Source,
        id: PictureId,
        picture: &frame::Video,
    ) -> bool {
        let current = surface
            .scaled
            .as_ref()
            .is_some_and(|scaled| scaled.from == id && scaled.rect == rect);
        if !current {
            let reused = surface.scaled.take().map(|scaled| scaled.picture);
            match scale(&mut surface.scaler, picture, rect, source, reused) {
                Ok((scaled, offset)) => {
                    surface.scaled = Some(Scaled {
                        from: id,
                        rect,
                        picture: scaled,
                        offset,
                    })
                }
                Err(error) => {
                    tracing::warn!(%error, "scaling a participant's picture for its tile");
                    return false;
                }
            }
        }
        let Some(scaled) = &surface.scaled else {
            return false;
        };
        if scaled.offset != (0, 0) {
            self.fill(rect, TILE);
        }
        self.copy_in(
            &scaled.picture,
            rect.x + scaled.offset.0,
            rect.y + scaled.offset.1,
        );
        true
    }

    fn draw_label(&mut self, surface: &mut Surface, rect: Rect, name: &str, anchor: Anchor) {
        let inset = 4 * self.label_scale;
        let max_width = rect.width.saturating_sub(2 * inset);
        let cached = surface
            .label
            .as_ref()
            .is_some_and(|cached| cached.text == name && cached.max_width == max_width);
        if !cached {
            surface.label = Some(CachedLabel {
                text: name.to_owned(),
                max_width,
                label: Label::render(name, self.label_scale, max_width),
            });
        }
        let Some(label) = surface
            .label
            .as_ref()
            .and_then(|cached| cached.label.as_ref())
        else {
            return;
        };
        if label.height + 2 * inset > rect.height {
            return;
        }
        let (x, y) = match anchor {
            Anchor::BottomLeft => (rect.x + inset, rect.y + rect.height - inset - label.height),
            Anchor::Centre => (
                rect.x + even((rect.width - label.width) / 2),
                rect.y + even((rect.height - label.height) / 2),
            ),
        };
        let box_rect = Rect {
            x,
            y,
            width: label.width,
            height: label.height,
        };
        let width = self.width as usize;
        for (row, luma) in label.luma.chunks(label.width as usize).enumerate() {
            let start = (y as usize + row) * width + x as usize;
            self.planes[start..start + luma.len()].copy_from_slice(luma);
        }
        self.fill_chroma(box_rect, LABEL_CHROMA, LABEL_CHROMA);
    }

    /// Copies a yuv420p `picture` into the canvas with its top-left corner at (`x`, `y`).
    fn copy_in(&mut self, picture: &frame::Video, x: u32, y: u32) {
        for plane in 0..3 {
            let shift = u32::from(plane > 0);
            let (offset, stride) = self.plane(plane);
            let (width, height) = (
                (picture.width() >> shift) as usize,
                (picture.height() >> shift) as usize,
            );
            let source = picture.data(plane);
            let source_stride = picture.stride(plane);
            for row in 0..height {
                let target =
                    offset + ((y >> shift) as usize + row) * stride + (x >> shift) as usize;
                let from = row * source_stride;
                self.planes[target..target + width].copy_from_slice(&source[from..from + width]);
            }
        }
    }

    fn fill(&mut self, rect: Rect, colour: Yuv) {
        let (offset, stride) = self.plane(0);
        for row in rect.y..rect.y + rect.height {
            let start = offset + row as usize * stride + rect.x as usize;
            self.planes[start..start + rect.width as usize].fill(colour.y);
        }
        self.fill_chroma(rect, colour.u, colour.v);
    }

    fn fill_chroma(&mut self, rect: Rect, u: u8, v: u8) {
        for (plane, value) in [(1, u), (2, v)] {
            let (offset, stride) = self.plane(plane);
            for row in rect.y / 2..(rect.y + rect.height) / 2 {
                let start = offset + row as usize * stride + (rect.x / 2) as usize;
                self.planes[start..start + (rect.width / 2) as usize].fill(value);
            }
        }
    }

    /// Where plane `index` starts in the packed planes, and its row length.
    fn plane(&self, index: usize) -> (usize, usize) {
        let luma = (self.width * self.height) as usize;
        match index {
            0 => (0, self.width as usize),
            1 => (luma, (self.width / 2) as usize),
            _ => (luma + luma / 4, (self.width / 2) as usize),
        }
    }
}

/// Where a label goes in its tile.
enum Anchor {
    BottomLeft,
    Centre,
}

/// `picture` scaled for a tile of `rect`'s size: cropped to cover it for a camera, fitted
/// inside it for a screen share. Returns the scaled picture, written into `reused` when that
/// has the size, and its offset in the tile.
fn scale(
    scaler: &mut Option<scaling::Context>,
    picture: &frame::Video,
    rect: Rect,
    source: Source,
    reused: Option<frame::Video>,
) -> Result<(frame::Video, (u32, u32)), ffmpeg_next::Error> {
    let (width, height) = (picture.width(), picture.height());
    if width == 0 || height == 0 {
        return Err(ffmpeg_next::Error::InvalidData);
    }
    let (input, size, offset) = match source {
        Source::Camera => {
            let window = cover_window(width, height, rect.width, rect.height);
            (crop(picture, window)?, (rect.width, rect.height), (0, 0))
        }
        Source::ScreenShare => {
            let size = fit_size(width, height, rect.width, rect.height);
            let offset = (
                even((rect.width - size.0) / 2),
                even((rect.height - size.1) / 2),
            );
            (None, size, offset)
        }
    };
    let input = input.as_ref().unwrap_or(picture);
    let stale = scaler.as_ref().is_none_or(|context| {
        let (from, to) = (context.input(), context.output());
        (from.format, from.width, from.height, to.width, to.height)
            != (
                input.format(),
                input.width(),
                input.height(),
                size.0,
                size.1,
            )
    });
    if stale {
        *scaler = Some(scaling::Context::get(
            input.format(),
            input.width(),
            input.height(),
            Pixel::YUV420P,
            size.0,
            size.1,
            scaling::Flags::BILINEAR,
        )?);
    }
    let context = scaler.as_mut().ok_or(ffmpeg_next::Error::Bug)?;
    let mut scaled = reused
        .filter(|reused| (reused.width(), reused.height()) == size)
        .unwrap_or_else(frame::Video::empty);
    context.run(input, &mut scaled)?;
    Ok((scaled, offset))
}

/// The part of a `width × height` picture with the tile's shape, centred: (x, y, width,
/// height), on even coordinates.
fn cover_window(width: u32, height: u32, tile_width: u32, tile_height: u32) -> Rect {
    let wider =
        u64::from(width) * u64::from(tile_height) > u64::from(height) * u64::from(tile_width);
    let (kept_width, kept_height) = if wider {
        let kept = u64::from(height) * u64::from(tile_width) / u64::from(tile_height);
        ((kept as u32).max(1), height)
    } else {
        let kept = u64::from(width) * u64::from(tile_height) / u64::from(tile_width);
        (width, (kept as u32).max(1))
    };
    Rect {
        x: even((width - kept_width) / 2),
        y: even((height - kept_height) / 2),
        width: kept_width,
        height: kept_height,
    }
}

/// The largest even size with the picture's shape within the tile.
fn fit_size(width: u32, height: u32, tile_width: u32, tile_height: u32) -> (u32, u32) {
    let wider =
        u64::from(width) * u64::from(tile_height) > u64::from(height) * u64::from(tile_width);
    let (fitted_width, fitted_height) = if wider {
        let fitted = u64::from(tile_width) * u64::from(height) / u64::from(width);
        (tile_width, fitted as u32)
    } else {
        let fitted = u64::from(tile_height) * u64::from(width) / u64::from(height);
        (fitted as u32, tile_height)
    };
    (even(fitted_width).max(2), even(fitted_height).max(2))
}

/// A new reference to `picture` showing only `window`, or `None` when the window is the whole
/// picture. No pixels are copied.
fn crop(picture: &frame::Video, window: Rect) -> Result<Option<frame::Video>, ffmpeg_next::Error> {
    if (window.width, window.height) == (picture.width(), picture.height()) {
        return Ok(None);
    }
    let mut cropped = frame::Video::empty();
    // SAFETY: `cropped` is a fresh empty frame; av_frame_ref makes it share `picture`'s
    // reference-counted buffers. The crop fields are then set within the picture's size and
    // av_frame_apply_cropping only moves `cropped`'s data pointers and dimensions.
    unsafe {
        let raw = cropped.as_mut_ptr();
        let status = ffmpeg_next::ffi::av_frame_ref(raw, picture.as_ptr());
        if status < 0 {
            return Err(ffmpeg_next::Error::from(status));
        }
        (*raw).crop_left = window.x as usize;
        (*raw).crop_top = window.y as usize;
        (*raw).crop_right = (picture.width() - window.x - window.width) as usize;
        (*raw).crop_bottom = (picture.height() - window.y - window.height) as usize;
        let status = ffmpeg_next::ffi::av_frame_apply_cropping(
            raw,
            ffmpeg_next::ffi::AV_FRAME_CROP_UNALIGNED as i32,
        );
        if status < 0 {
            return Err(ffmpeg_next::Error::from(status));
        }
    }
    Ok(Some(cropped))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rect(x: u32, y: u32, width: u32, height: u32) -> Rect {
        Rect {
            x,
            y,
            width,
            height,
        }
    }

    #[test]
    fn cover_crops_the_sides_of_a_wider_picture_and_the_top_and_bottom_of_a_taller_one() {
        assert_eq!(cover_window(1280, 720, 640, 360), rect(0, 0, 1280, 720));
        assert_eq!(cover_window(1280, 720, 360, 360), rect(280, 0, 720, 720));
        assert_eq!(cover_window(640, 480, 640, 360), rect(0, 60, 640, 360));
    }

    #[test]
    fn fit_letterboxes_within_the_tile() {
        assert_eq!(fit_size(1920, 1080, 1416, 1056), (1416, 796));
        assert_eq!(fit_size(1080, 1920, 1416, 1056), (594, 1056));
    }

    fn solid(width: u32, height: u32, colour: Yuv) -> frame::Video {
        let mut picture = frame::Video::new(Pixel::YUV420P, width, height);
        for (plane, value) in [(0, colour.y), (1, colour.u), (2, colour.v)] {
            picture.data_mut(plane).fill(value);
        }
        picture
    }

    fn pixel(planes: &[u8], width: u32, height: u32, x: u32, y: u32) -> Yuv {
        let luma = (width * height) as usize;
        let chroma = ((y / 2) * (width / 2) + x / 2) as usize;
        Yuv {
            y: planes[(y * width + x) as usize],
            u: planes[luma + chroma],
            v: planes[luma + luma / 4 + chroma],
        }
    }

    const RED: Yuv = Yuv {
        y: 81,
        u: 90,
        v: 240,
    };

    fn key(member: &str) -> TileKey {
        TileKey {
            member: member.to_owned(),
            source: Source::Camera,
        }
    }

    #[test]
    fn draws_pictures_placeholders_and_labels() {
        let mut canvas = Canvas::new(640, 360);
        let picture = solid(320, 240, RED);
        let id = PictureId {
            input: 1,
            sequence: 1,
        };
        let tiles = [
            TileDraw {
                key: key("a"),
                rect: rect(0, 0, 320, 180),
                content: TileContent::Picture {
                    id,
                    picture: &picture,
                },
                name: "Ann",
            },
            TileDraw {
                key: key("b"),
                rect: rect(320, 180, 320, 180),
                content: TileContent::Placeholder,
                name: "Bob",
            },
        ];
        let planes = canvas.compose(&tiles);
        let centre = pixel(&planes, 640, 360, 160, 90);
        assert!(centre.y.abs_diff(RED.y) <= 2 && centre.v.abs_diff(RED.v) <= 2);
        assert_eq!(pixel(&planes, 640, 360, 480, 200), TILE);
        assert_eq!(pixel(&planes, 640, 360, 100, 300), BACKGROUND);
        // The label's box sits bottom-left, with neutral chroma.
        let corner = pixel(&planes, 640, 360, 5, 163);
        assert_eq!(
            corner,
            Yuv {
                y: 16,
                u: 128,
                v: 128
            }
        );

        // Nothing changed: the same bytes are handed out again.
        let again = canvas.compose(&tiles);
        assert_eq!(again.as_ptr(), planes.as_ptr());
    }

    #[test]
    fn a_screen_share_is_letterboxed_on_the_tile_colour() {
        let mut canvas = Canvas::new(640, 360);
        let picture = solid(240, 240, RED);
        let tiles = [TileDraw {
            key: TileKey {
                member: "a".to_owned(),
                source: Source::ScreenShare,
            },
            rect: rect(0, 0, 640, 360),
            content: TileContent::Picture {
                id: PictureId {
                    input: 1,
                    sequence: 1,
                },
                picture: &picture,
            },
            name: "",
        }];
        let planes = canvas.compose(&tiles);
        assert_eq!(pixel(&planes, 640, 360, 100, 180), TILE);
        assert_eq!(pixel(&planes, 640, 360, 540, 180), TILE);
        let centre = pixel(&planes, 640, 360, 320, 180);
        assert!(centre.y.abs_diff(RED.y) <= 2 && centre.u.abs_diff(RED.u) <= 2);
    }
}
