//! Where each participant goes on the canvas: pure placement, no pixels.
//!
//! [`place`] turns a [`Layout`], the canvas size, the members (in join order) and the active
//! speaker into [`Tile`]s. Every rectangle starts and ends on even coordinates, so each tile
//! owns whole 4:2:0 chroma samples. Camera tiles are 16:9 (the picture is cropped to cover
//! them); a screen share's tile takes whatever space its region has (the picture is letterboxed
//! inside it).
//!
//! - [`Layout::Grid`]: every member in an equal tile, `ceil(sqrt(n))` columns, the rows
//!   centred. With a screen share, the share takes the left three quarters and every member's
//!   camera goes in a column beside it.
//! - [`Layout::Speaker`]: the active speaker's camera (or a screen share) large, the other
//!   members (every member, beside a share) in a strip along the bottom.
//! - [`Layout::Single`]: the active speaker's camera (or a screen share) alone.
//!
//! Until a speaker is known, the first member counts as the active speaker. The screen share
//! shown is the active speaker's when they share one, otherwise the first member's who does.

use crate::{Layout, Member};

/// Width over height of a camera tile.
const CAMERA_ASPECT: (u32, u32) = (16, 9);

/// A rectangle on the canvas, in pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Rect {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

impl Rect {
    /// The point in the middle of the rectangle.
    pub fn centre(&self) -> (u32, u32) {
        (self.x + self.width / 2, self.y + self.height / 2)
    }

    /// The rectangle shrunk by `margin` on every side.
    fn inset(&self, margin: u32) -> Rect {
        Rect {
            x: self.x + margin,
            y: self.y + margin,
            width: self.width.saturating_sub(2 * margin),
            height: self.height.saturating_sub(2 * margin),
        }
    }
}

/// Which of a member's pictures a tile shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    /// The camera, cropped to cover its tile (a placeholder when there is none).
    Camera,
    /// The screen share, letterboxed to fit its tile.
    ScreenShare,
}

/// One member's picture placed on the canvas.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tile {
    /// Index of the member in the list given to [`place`].
    pub member: usize,
    pub source: Source,
    pub rect: Rect,
}

/// Places `members` on a `width × height` canvas. Tiles too small to hold a pixel are left out.
pub fn place(
    layout: Layout,
    width: u32,
    height: u32,
    members: &[Member],
    active_speaker: Option<&str>,
) -> Vec<Tile> {
    let Some(speaker) = speaker_index(members, active_speaker) else {
        return Vec::new();
    };
    let canvas = Rect {
        x: 0,
        y: 0,
        width,
        height,
    };
    let margin = even(width.min(height) / 90).max(2);
    let sharer = sharer_index(members, speaker);
    let everyone: Vec<usize> = (0..members.len()).collect();
    let mut tiles = match (layout, sharer) {
        (Layout::Grid, None) => cameras(&everyone, arrange(canvas, &everyone, margin)),
        (Layout::Grid, Some(sharer)) => {
            let share_width = even(width * 3 / 4);
            let (share, column) = split_columns(canvas, share_width);
            let mut tiles = vec![screen_share(sharer, share.inset(margin))];
            tiles.extend(cameras(
                &everyone,
                arrange_column(column, &everyone, margin),
            ));
            tiles
        }
        (Layout::Speaker, _) => {
            let (large, strip): (Tile, Vec<usize>) = match sharer {
                Some(sharer) => (screen_share(sharer, canvas), everyone),
                None => {
                    let others = everyone.into_iter().filter(|&i| i != speaker).collect();
                    (camera(speaker, canvas), others)
                }
            };
            if strip.is_empty() {
                vec![fill_region(large, canvas, margin)]
            } else {
                let (stage, bottom) = split_rows(canvas, height - even(height / 5));
                let mut tiles = vec![fill_region(large, stage, margin)];
                tiles.extend(cameras(&strip, arrange_row(bottom, &strip, margin)));
                tiles
            }
        }
        (Layout::Single, Some(sharer)) => vec![screen_share(sharer, canvas.inset(margin))],
        (Layout::Single, None) => vec![fill_region(camera(speaker, canvas), canvas, margin)],
    };
    tiles.retain(|tile| tile.rect.width >= 2 && tile.rect.height >= 2);
    tiles
}

/// The active speaker's index, the first member's when no member is the active speaker; `None`
/// with no members.
fn speaker_index(members: &[Member], active_speaker: Option<&str>) -> Option<usize> {
    let named = active_speaker.and_then(|id| members.iter().position(|member| member.id == id));
    named.or((!members.is_empty()).then_some(0))
}

/// Whose screen share is shown: the speaker's, otherwise the first member's who shares one.
fn sharer_index(members: &[Member], speaker: usize) -> Option<usize> {
    if members[speaker].screen_share.is_some() {
        return Some(speaker);
    }
    members
        .iter()
        .position(|member| member.screen_share.is_some())
}

fn camera(member: usize, rect: Rect) -> Tile {
    Tile {
        member,
        source: Source::Camera,
        rect,
    }
}

fn screen_share(member: usize, rect: Rect) -> Tile {
    Tile {
        member,
        source: Source::ScreenShare,
        rect,
    }
}

fn cameras(members: &[usize], rects: Vec<Rect>) -> Vec<Tile> {
    members
        .iter()
        .zip(rects)
        .map(|(&member, rect)| camera(member, rect))
        .collect()
}

/// `tile` given the whole of `region`: a camera as the largest 16:9 tile that fits, a screen
/// share as the region less its margin.
fn fill_region(tile: Tile, region: Rect, margin: u32) -> Tile {
    let rect = match tile.source {
        Source::Camera => arrange(region, &[tile.member], margin)[0],
        Source::ScreenShare => region.inset(margin),
    };
    Tile { rect, ..tile }
}

/// `region` cut at `x` into a left and a right part.
fn split_columns(region: Rect, x: u32) -> (Rect, Rect) {
    let left = Rect { width: x, ..region };
    let right = Rect {
        x: region.x + x,
        width: region.width - x,
        ..region
    };
    (left, right)
}

/// `region` cut at `y` into a top and a bottom part.
fn split_rows(region: Rect, y: u32) -> (Rect, Rect) {
    let top = Rect {
        height: y,
        ..region
    };
    let bottom = Rect {
        y: region.y + y,
        height: region.height - y,
        ..region
    };
    (top, bottom)
}

/// A grid of `ceil(sqrt(n))` columns.
fn arrange(region: Rect, members: &[usize], margin: u32) -> Vec<Rect> {
    let columns = (1..).find(|c| c * c >= members.len()).unwrap_or(1);
    arrange_in(region, members.len(), columns, margin)
}

fn arrange_column(region: Rect, members: &[usize], margin: u32) -> Vec<Rect> {
    arrange_in(region, members.len(), 1, margin)
}

fn arrange_row(region: Rect, members: &[usize], margin: u32) -> Vec<Rect> {
    arrange_in(region, members.len(), members.len(), margin)
}

/// `count` equal 16:9 tiles in rows of `columns`, as large as `region` allows with `margin`
/// around and between them; the block of rows is centred, and so is each row (the last may be
/// short).
fn arrange_in(region: Rect, count: usize, columns: usize, margin: u32) -> Vec<Rect> {
    if count == 0 {
        return Vec::new();
    }
    let columns = columns.clamp(1, count);
    let rows = count.div_ceil(columns);
    let (columns_u32, rows_u32) = (columns as u32, rows as u32);
    let space_width = region.width.saturating_sub((columns_u32 + 1) * margin) / columns_u32;
    let space_height = region.height.saturating_sub((rows_u32 + 1) * margin) / rows_u32;
    let (width, height) = fit_aspect(space_width, space_height, CAMERA_ASPECT);
    let block_height = rows_u32 * height + (rows_u32 - 1) * margin;
    let top = region.y + even(region.height.saturating_sub(block_height) / 2);
    (0..count)
        .map(|index| {
            let (row, column) = (index / columns, index % columns);
            let in_row = columns.min(count - row * columns) as u32;
            let row_width = in_row * width + (in_row - 1) * margin;
            let left = region.x + even(region.width.saturating_sub(row_width) / 2);
            Rect {
                x: left + column as u32 * (width + margin),
                y: top + row as u32 * (height + margin),
                width,
                height,
            }
        })
        .collect()
}

/// The largest `aspect` rectangle, even-sized, within `width × height`.
fn fit_aspect(width: u32, height: u32, (across, down): (u32, u32)) -> (u32, u32) {
    if u64::from(width) * u64::from(down) <= u64::from(height) * u64::from(across) {
        (even(width), even(width * down / across))
    } else {
        (even(height * across / down), even(height))
    }
}

/// `value` rounded down to an even number.
pub(crate) fn even(value: u32) -> u32 {
    value & !1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str, sharing: bool) -> Member {
        Member {
            id: id.to_owned(),
            name: id.to_uppercase(),
            camera: Some(format!("{id}-cam")),
            screen_share: sharing.then(|| format!("{id}-screen")),
            microphone: Some(format!("{id}-mic")),
        }
    }

    fn members(count: usize) -> Vec<Member> {
        (0..count)
            .map(|i| member(&format!("m{i}"), false))
            .collect()
    }

    fn rect(x: u32, y: u32, width: u32, height: u32) -> Rect {
        Rect {
            x,
            y,
            width,
            height,
        }
    }

    /// The rectangles of camera tiles, in tile order, after checking each tile's member.
    fn camera_rects(tiles: &[Tile], expected_members: &[usize]) -> Vec<Rect> {
        let members: Vec<usize> = tiles.iter().map(|tile| tile.member).collect();
        assert_eq!(members, expected_members);
        assert!(tiles.iter().all(|tile| tile.source == Source::Camera));
        tiles.iter().map(|tile| tile.rect).collect()
    }

    fn grid(count: usize, width: u32, height: u32) -> Vec<Rect> {
        let tiles = place(Layout::Grid, width, height, &members(count), None);
        camera_rects(&tiles, &(0..count).collect::<Vec<_>>())
    }

    #[test]
    fn grid_at_1080p_places_one_to_six_members() {
        let expected: [&[Rect]; 6] = [
            &[rect(22, 12, 1876, 1056)],
            &[rect(12, 276, 942, 528), rect(966, 276, 942, 528)],
            &[
                rect(26, 12, 928, 522),
                rect(966, 12, 928, 522),
                rect(496, 546, 928, 522),
            ],
            &[
                rect(26, 12, 928, 522),
                rect(966, 12, 928, 522),
                rect(26, 546, 928, 522),
                rect(966, 546, 928, 522),
            ],
            &[
                rect(12, 184, 624, 350),
                rect(648, 184, 624, 350),
                rect(1284, 184, 624, 350),
                rect(330, 546, 624, 350),
                rect(966, 546, 624, 350),
            ],
            &[
                rect(12, 184, 624, 350),
                rect(648, 184, 624, 350),
                rect(1284, 184, 624, 350),
                rect(12, 546, 624, 350),
                rect(648, 546, 624, 350),
                rect(1284, 546, 624, 350),
            ],
        ];
        for (count, expected) in (1..=6).zip(expected) {
            assert_eq!(grid(count, 1920, 1080), expected, "{count} members");
        }
    }

    #[test]
    fn grid_at_720p_places_one_to_six_members() {
        let expected: [&[Rect]; 6] = [
            &[rect(14, 8, 1250, 704)],
            &[rect(8, 184, 628, 352), rect(644, 184, 628, 352)],
            &[
                rect(18, 8, 618, 348),
                rect(644, 8, 618, 348),
                rect(330, 364, 618, 348),
            ],
            &[
                rect(18, 8, 618, 348),
                rect(644, 8, 618, 348),
                rect(18, 364, 618, 348),
                rect(644, 364, 618, 348),
            ],
            &[
                rect(8, 122, 416, 234),
                rect(432, 122, 416, 234),
                rect(856, 122, 416, 234),
                rect(220, 364, 416, 234),
                rect(644, 364, 416, 234),
            ],
            &[
                rect(8, 122, 416, 234),
                rect(432, 122, 416, 234),
                rect(856, 122, 416, 234),
                rect(8, 364, 416, 234),
                rect(432, 364, 416, 234),
                rect(856, 364, 416, 234),
            ],
        ];
        for (count, expected) in (1..=6).zip(expected) {
            assert_eq!(grid(count, 1280, 720), expected, "{count} members");
        }
    }

    #[test]
    fn every_rectangle_is_even_and_inside_the_canvas() {
        for layout in [Layout::Grid, Layout::Speaker, Layout::Single] {
            for (width, height) in [(1920, 1080), (1280, 720), (640, 360), (854, 480)] {
                for count in 1..=12 {
                    let mut room = members(count);
                    room[count / 2].screen_share = Some("screen".into());
                    for sharing in [false, true] {
                        let room = if sharing {
                            &room[..]
                        } else {
                            &members(count)[..]
                        };
                        for tile in place(layout, width, height, room, Some("m1")) {
                            let Rect {
                                x,
                                y,
                                width: w,
                                height: h,
                            } = tile.rect;
                            assert!(
                                [x, y, w, h].iter().all(|v| v % 2 == 0),
                                "{layout:?} {count} {tile:?}"
                            );
                            assert!(x + w <= width && y + h <= height, "{layout:?} {tile:?}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn grid_gives_a_screen_share_the_left_three_quarters_and_a_column_of_cameras() {
        let mut room = members(3);
        room[1].screen_share = Some("m1-screen".into());
        let tiles = place(Layout::Grid, 1920, 1080, &room, None);
        assert_eq!(
            tiles[0],
            Tile {
                member: 1,
                source: Source::ScreenShare,
                rect: rect(12, 12, 1416, 1056),
            }
        );
        assert_eq!(
            camera_rects(&tiles[1..], &[0, 1, 2]),
            [
                rect(1452, 144, 456, 256),
                rect(1452, 412, 456, 256),
                rect(1452, 680, 456, 256),
            ]
        );
    }

    #[test]
    fn speaker_layout_puts_the_active_speaker_large_and_the_others_in_a_strip() {
        let room = members(4);
        let tiles = place(Layout::Speaker, 1920, 1080, &room, Some("m2"));
        assert_eq!(
            camera_rects(&tiles, &[2, 0, 1, 3]),
            [
                rect(214, 12, 1492, 840),
                rect(438, 876, 340, 192),
                rect(790, 876, 340, 192),
                rect(1142, 876, 340, 192),
            ]
        );
        let tiles = place(Layout::Speaker, 1280, 720, &room, Some("m2"));
        assert_eq!(
            camera_rects(&tiles, &[2, 0, 1, 3]),
            [
                rect(142, 8, 994, 560),
                rect(292, 584, 226, 128),
                rect(526, 584, 226, 128),
                rect(760, 584, 226, 128),
            ]
        );
    }

    #[test]
    fn a_speaker_change_swaps_the_large_tile() {
        let room = members(3);
        let first = place(Layout::Speaker, 1920, 1080, &room, None);
        let second = place(Layout::Speaker, 1920, 1080, &room, Some("m1"));
        let order = |tiles: &[Tile]| tiles.iter().map(|tile| tile.member).collect::<Vec<_>>();
        assert_eq!(order(&first), [0, 1, 2]);
        assert_eq!(order(&second), [1, 0, 2]);
        assert_eq!(first[0].rect, second[0].rect);
        assert_eq!(first[1].rect, second[1].rect);
    }

    #[test]
    fn an_unknown_speaker_counts_as_the_first_member() {
        let room = members(3);
        assert_eq!(
            place(Layout::Single, 1280, 720, &room, Some("gone")),
            place(Layout::Single, 1280, 720, &room, None),
        );
        assert_eq!(
            place(Layout::Single, 1280, 720, &room, None),
            [camera(0, rect(14, 8, 1250, 704))]
        );
    }

    #[test]
    fn speaker_layout_with_a_screen_share_puts_every_camera_in_the_strip() {
        let mut room = members(2);
        room[1].screen_share = Some("m1-screen".into());
        let tiles = place(Layout::Speaker, 1920, 1080, &room, Some("m0"));
        assert_eq!(tiles[0], screen_share(1, rect(12, 12, 1896, 840)));
        assert_eq!(
            camera_rects(&tiles[1..], &[0, 1]),
            [rect(614, 876, 340, 192), rect(966, 876, 340, 192)]
        );
    }

    #[test]
    fn single_shows_the_speakers_own_screen_share_before_anothers() {
        let mut room = members(3);
        room[0].screen_share = Some("m0-screen".into());
        room[2].screen_share = Some("m2-screen".into());
        let share = screen_share(2, rect(8, 8, 1264, 704));
        assert_eq!(place(Layout::Single, 1280, 720, &room, Some("m2")), [share]);
        assert_eq!(
            place(Layout::Single, 1280, 720, &room, Some("m1")),
            [Tile { member: 0, ..share }]
        );
    }

    #[test]
    fn a_lone_speaker_fills_the_canvas_without_a_strip() {
        let tiles = place(Layout::Speaker, 1920, 1080, &members(1), None);
        assert_eq!(tiles, [camera(0, rect(22, 12, 1876, 1056))]);
    }

    #[test]
    fn no_members_no_tiles() {
        assert!(place(Layout::Grid, 1920, 1080, &[], Some("m0")).is_empty());
    }
}
