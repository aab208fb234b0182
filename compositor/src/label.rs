//! A participant's name as a small picture: light text on a dark box, in luma only (the box's
//! chroma is neutral), drawn with the public-domain 8×8 bitmap font of `font8x8`.
//!
//! Each glyph is scaled by a whole number ([`Label::scale_for`]: 2× on 720p and 1080p);
//! characters the font lacks are drawn as `?`, and a name too long for the space it is given
//! is cut to the characters that fit. Width and height are even, so a label placed on even
//! coordinates covers whole 4:2:0 chroma samples.

use font8x8::legacy::{BASIC_LEGACY, LATIN_LEGACY};

/// Luma of the box behind the text.
pub(crate) const BOX_LUMA: u8 = 16;
/// Luma of the text.
pub(crate) const TEXT_LUMA: u8 = 235;

/// Side of a glyph, in font pixels.
const GLYPH: u32 = 8;
/// Space between the text and the box's edge, in font pixels.
const PADDING: u32 = 3;

/// A rendered name: `width × height` luma samples, row by row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Label {
    pub width: u32,
    pub height: u32,
    pub luma: Vec<u8>,
}

impl Label {
    /// How much the font is scaled on a canvas `canvas_height` pixels tall: 1× up to 480
    /// lines, 2× on 720p and 1080p, growing with larger canvases.
    pub fn scale_for(canvas_height: u32) -> u32 {
        ((canvas_height + 240) / 480).max(1)
    }

    /// `text` rendered at `scale`, cut to at most `max_width` pixels; `None` when the text is
    /// empty or not one character fits.
    pub fn render(text: &str, scale: u32, max_width: u32) -> Option<Label> {
        let padding = PADDING * scale;
        let advance = GLYPH * scale;
        let fitting = max_width.saturating_sub(2 * padding) / advance;
        let glyphs: Vec<[u8; 8]> = text.chars().take(fitting as usize).map(glyph).collect();
        if glyphs.is_empty() {
            return None;
        }
        let width = glyphs.len() as u32 * advance + 2 * padding;
        let height = advance + 2 * padding;
        let mut luma = vec![BOX_LUMA; (width * height) as usize];
        for (index, rows) in glyphs.iter().enumerate() {
            let left = padding + index as u32 * advance;
            for (font_y, bits) in rows.iter().enumerate() {
                for font_x in 0..GLYPH {
                    if bits & (1 << font_x) == 0 {
                        continue;
                    }
                    let x = left + font_x * scale;
                    let y = padding + font_y as u32 * scale;
                    for row in y..y + scale {
                        let start = (row * width + x) as usize;
                        luma[start..start + scale as usize].fill(TEXT_LUMA);
                    }
                }
            }
        }
        Some(Label {
            width,
            height,
            luma,
        })
    }
}

/// The glyph of `character`: ASCII and Latin-1 from the font, `?` for anything else.
fn glyph(character: char) -> [u8; 8] {
    let code = character as usize;
    match code {
        0x20..=0x7e => BASIC_LEGACY[code],
        0xa0..=0xff => LATIN_LEGACY[code - 0xa0],
        _ => BASIC_LEGACY['?' as usize],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text_rows(label: &Label) -> Vec<String> {
        label
            .luma
            .chunks(label.width as usize)
            .map(|row| {
                row.iter()
                    .map(|&y| if y == TEXT_LUMA { '#' } else { '.' })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn draws_each_glyph_inside_a_padded_box() {
        let label = Label::render("T", 1, 100).unwrap();
        assert_eq!((label.width, label.height), (14, 14));
        let rows = text_rows(&label);
        assert_eq!(rows[0], "..............");
        assert_eq!(rows[3], "...######.....");
        assert_eq!(rows[4], "...#.##.#.....");
        assert_eq!(rows[13], "..............");
    }

    #[test]
    fn scaling_doubles_every_font_pixel() {
        let single = Label::render("Ab", 1, 1000).unwrap();
        let double = Label::render("Ab", 2, 1000).unwrap();
        assert_eq!(
            (double.width, double.height),
            (2 * single.width, 2 * single.height)
        );
        for y in 0..double.height {
            for x in 0..double.width {
                let small = single.luma[((y / 2) * single.width + x / 2) as usize];
                assert_eq!(double.luma[(y * double.width + x) as usize], small);
            }
        }
    }

    #[test]
    fn characters_the_font_lacks_become_question_marks() {
        let unknown = Label::render("李", 1, 100).unwrap();
        let question = Label::render("?", 1, 100).unwrap();
        assert_eq!(unknown, question);
        assert_ne!(Label::render("é", 1, 100), Label::render("?", 1, 100));
    }

    #[test]
    fn long_names_are_cut_to_the_width() {
        let label = Label::render("Alexandra", 2, 100).unwrap();
        assert!(label.width <= 100);
        assert_eq!(label, Label::render("Alexa", 2, 100).unwrap());
        assert_eq!(Label::render("Alexandra", 2, 20), None);
        assert_eq!(Label::render("", 2, 100), None);
    }

    #[test]
    fn sizes_are_even() {
        for scale in 1..=3 {
            let label = Label::render("Bo", scale, 500).unwrap();
            assert_eq!((label.width % 2, label.height % 2), (0, 0));
        }
    }

    #[test]
    fn scale_is_two_on_720p_and_1080p() {
        assert_eq!(Label::scale_for(360), 1);
        assert_eq!(Label::scale_for(720), 2);
        assert_eq!(Label::scale_for(1080), 2);
    }
}
