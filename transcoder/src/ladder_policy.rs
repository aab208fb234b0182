//! Which ladders a live stream or an asset may ask for: the ladder format of [`crate::ladder`]
//! plus the bounds the server enforces before a stream or asset is created, so a bad rung is a
//! clear 400 at creation and never a failure at publish or transcode time.

use crate::ladder::{Ladder, RungSpec};

/// Most renditions one live stream may ask for (each encoded rung costs a core-share).
const MAX_RUNGS: usize = 8;
/// Bounds of an encoded rung's height in pixels.
const MIN_RUNG_HEIGHT: u32 = 72;
const MAX_RUNG_HEIGHT: u32 = 2160;
/// Bounds of an encoded rung's bitrate in kb/s.
const MIN_RUNG_KBPS: u32 = 50;
const MAX_RUNG_KBPS: u32 = 50_000;
/// Highest frame-rate cap a rung may ask for.
const MAX_RUNG_FPS: u32 = 120;

/// Parses and normalises a ladder given to the API (`null` means the default ladder).
///
/// The API prefixes the message with the field name (`ladder: …`).
pub fn validate_ladder(value: &serde_json::Value) -> Result<serde_json::Value, String> {
    let ladder = if value.is_null() {
        Ladder::DEFAULT
    } else {
        serde_json::from_value::<Ladder>(value.clone()).map_err(|e| {
            format!("{e}; each rung is \"source\", a preset name (1080p, 720p, 480p, 360p) or {{\"name\", \"height\", \"bitrate_kbps\", \"max_fps\"}}")
        })?
    };
    if ladder.rungs.is_empty() {
        return Err("at least one rung is needed".to_owned());
    }
    if ladder.rungs.len() > MAX_RUNGS {
        return Err(format!("at most {MAX_RUNGS} rungs"));
    }
    for rung in ladder.rungs.iter() {
        if let RungSpec::Encode(rung) = rung {
            if !(MIN_RUNG_HEIGHT..=MAX_RUNG_HEIGHT).contains(&rung.height) {
                return Err(format!(
                    "rung {:?}: height must be between {MIN_RUNG_HEIGHT} and {MAX_RUNG_HEIGHT}",
                    rung.name
                ));
            }
            if !(MIN_RUNG_KBPS..=MAX_RUNG_KBPS).contains(&rung.bitrate_kbps) {
                return Err(format!(
                    "rung {:?}: bitrate_kbps must be between {MIN_RUNG_KBPS} and {MAX_RUNG_KBPS}",
                    rung.name
                ));
            }
            if !(1..=MAX_RUNG_FPS).contains(&rung.max_fps) {
                return Err(format!(
                    "rung {:?}: max_fps must be between 1 and {MAX_RUNG_FPS}",
                    rung.name
                ));
            }
        }
    }
    serde_json::to_value(&ladder).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ladders_are_validated_with_bounds() {
        assert!(validate_ladder(&serde_json::Value::Null).is_ok());
        assert!(validate_ladder(&serde_json::json!(["source", "720p"])).is_ok());
        for bad in [
            serde_json::json!([]),
            serde_json::json!(["4k"]),
            serde_json::json!([{"name": "tiny", "height": 10, "bitrate_kbps": 500}]),
            serde_json::json!([{"name": "free", "height": 360, "bitrate_kbps": 0}]),
            serde_json::json!([{"name": "fast", "height": 360, "bitrate_kbps": 500, "max_fps": 0}]),
        ] {
            assert!(validate_ladder(&bad).is_err(), "{bad} must be refused");
        }
    }
}
