//! Arbitrary text as the query string of the image routes (thumbnails, animated previews):
//! no panic, only a checked request or a 400 naming the parameter.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_api::front_ends::{animated_spec, parse_query, thumbnail_spec};
use sluice_api::{AnimatedFormat, StillFormat};

fuzz_target!(|data: &[u8]| {
    let Ok(query) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(params) = parse_query(
        Some(query),
        &["time", "width", "height", "fit_mode", "token"],
    ) {
        let _ = thumbnail_spec(&params, StillFormat::Webp);
    }
    if let Ok(params) = parse_query(
        Some(query),
        &["start", "end", "width", "height", "fps", "token"],
    ) {
        let _ = animated_spec(&params, AnimatedFormat::Gif);
    }
});
