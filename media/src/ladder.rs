//! The rendition ladder as configured: which renditions a live stream or an asset asks for.
//!
//! A [`Ladder`] is a list of [`RungSpec`]s. In JSON (API, config, the database) it is a list
//! whose items are either a string or an object:
//!
//! ```json
//! ["source", "720p", {"name": "540p", "height": 540, "bitrate_kbps": 2000, "max_fps": 30}]
//! ```
//!
//! - `"source"`: repackage the incoming video as it is (no decode, no encode).
//! - `"1080p"`, `"720p"`, `"480p"`, `"360p"`: the rungs of [`Ladder::DEFAULT`].
//! - an object: a custom [`Rung`]. `max_fps` is optional (default [`Rung::DEFAULT_MAX_FPS`]).
//!
//! A rung names a height only: the width always follows the source's aspect ratio. Rungs are
//! serialised back as `"source"` or as full objects, so a round trip is lossless.
//!
//! [`Ladder::from_request`] adds the bounds the server enforces before a stream or asset is
//! created, so a bad rung is a clear 400 at creation and never a failure at publish or
//! transcode time. How a ladder is fitted to a given source is the transcoder's business.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

/// A ladder names a preset rung that does not exist.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown rung {0:?}: expected \"source\", a preset name (1080p, 720p, 480p, 360p) or a rung object")]
pub struct UnknownRung(pub String);

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

/// One encoded rendition, as configured.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rung {
    /// Name shown in the API and logs (`720p`); storage keys use the rung's position instead.
    pub name: Cow<'static, str>,
    /// Target height in pixels; the width follows the source's aspect ratio.
    pub height: u32,
    /// Average video bitrate in kb/s (x264 ABR target).
    pub bitrate_kbps: u32,
    /// Highest frame rate this rung is encoded at; faster sources are decimated.
    #[serde(default = "Rung::default_max_fps")]
    pub max_fps: u32,
}

impl Rung {
    /// Frame-rate cap when a rung does not name one.
    pub const DEFAULT_MAX_FPS: u32 = 60;

    fn default_max_fps() -> u32 {
        Self::DEFAULT_MAX_FPS
    }
}

/// One entry of a ladder.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RungSpecRepr", into = "RungSpecRepr")]
pub enum RungSpec {
    /// The source's own H.264, repackaged without re-encoding.
    Source,
    /// A rendition encoded with x264.
    Encode(Rung),
}

impl RungSpec {
    /// The rung's name: `source`, or the encoded rung's (`720p`).
    pub fn name(&self) -> &str {
        match self {
            RungSpec::Source => SOURCE_NAME,
            RungSpec::Encode(rung) => &rung.name,
        }
    }
}

/// The JSON shape of a [`RungSpec`]: a name or a rung object.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum RungSpecRepr {
    Name(String),
    Rung(Rung),
}

/// The JSON name of [`RungSpec::Source`].
pub const SOURCE_NAME: &str = "source";

impl TryFrom<RungSpecRepr> for RungSpec {
    type Error = UnknownRung;

    fn try_from(repr: RungSpecRepr) -> Result<Self, Self::Error> {
        match repr {
            RungSpecRepr::Rung(rung) => Ok(RungSpec::Encode(rung)),
            RungSpecRepr::Name(name) if name == SOURCE_NAME => Ok(RungSpec::Source),
            RungSpecRepr::Name(name) => Ladder::DEFAULT
                .rungs
                .iter()
                .find(|spec| matches!(spec, RungSpec::Encode(rung) if rung.name == name))
                .cloned()
                .ok_or(UnknownRung(name)),
        }
    }
}

impl From<RungSpec> for RungSpecRepr {
    fn from(spec: RungSpec) -> Self {
        match spec {
            RungSpec::Source => RungSpecRepr::Name(SOURCE_NAME.to_owned()),
            RungSpec::Encode(rung) => RungSpecRepr::Rung(rung),
        }
    }
}

/// An ordered list of renditions, top quality first by convention.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Ladder {
    pub rungs: Cow<'static, [RungSpec]>,
}

const fn preset(name: &'static str, height: u32, bitrate_kbps: u32, max_fps: u32) -> RungSpec {
    RungSpec::Encode(Rung {
        name: Cow::Borrowed(name),
        height,
        bitrate_kbps,
        max_fps,
    })
}

impl Ladder {
    /// 1080p 6000k, 720p 3000k, 480p 1400k, 360p 800k: the Apple reference ladder's steps
    /// (HLS Authoring Spec §2.1). The two lower rungs stop at 30 fps, where the bits go further.
    pub const DEFAULT: Ladder = Ladder {
        rungs: Cow::Borrowed(&[
            preset("1080p", 1080, 6000, 60),
            preset("720p", 720, 3000, 60),
            preset("480p", 480, 1400, 30),
            preset("360p", 360, 800, 30),
        ]),
    };

    /// Parses and normalises a ladder given to the API (`null` means the default ladder) and
    /// checks it against the server's bounds.
    ///
    /// The API prefixes the message with the field name (`ladder: …`).
    pub fn from_request(value: &serde_json::Value) -> Result<Ladder, String> {
        let ladder = if value.is_null() {
            Ladder::DEFAULT
        } else {
            Ladder::deserialize(value).map_err(|e| {
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
        Ok(ladder)
    }
}

impl Default for Ladder {
    fn default() -> Self {
        Ladder::DEFAULT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ladder_json_accepts_names_and_objects_and_round_trips() {
        let json = r#"["source","720p",{"name":"540p","height":540,"bitrate_kbps":2000}]"#;
        let ladder: Ladder = serde_json::from_str(json).unwrap();
        assert_eq!(
            ladder.rungs.as_ref(),
            [
                RungSpec::Source,
                Ladder::DEFAULT.rungs[1].clone(),
                RungSpec::Encode(Rung {
                    name: "540p".into(),
                    height: 540,
                    bitrate_kbps: 2000,
                    max_fps: Rung::DEFAULT_MAX_FPS,
                }),
            ]
        );
        let again: Ladder = serde_json::from_str(&serde_json::to_string(&ladder).unwrap()).unwrap();
        assert_eq!(again, ladder);
    }

    #[test]
    fn ladder_json_rejects_unknown_names_and_fields() {
        let unknown = serde_json::from_str::<Ladder>(r#"["4k"]"#).unwrap_err();
        assert!(
            unknown.to_string().contains("unknown rung \"4k\""),
            "{unknown}"
        );
        assert!(serde_json::from_str::<Ladder>(
            r#"[{"name":"x","height":2,"bitrate_kbps":1,"crf":20}]"#
        )
        .is_err());
    }
    #[test]
    fn rung_names_come_from_presets_and_custom_rungs() {
        let ladder: Ladder = serde_json::from_str(
            r#"["source", "720p", {"name": "low", "height": 240, "bitrate_kbps": 300}]"#,
        )
        .unwrap();
        let names: Vec<_> = ladder.rungs.iter().map(RungSpec::name).collect();
        assert_eq!(names, ["source", "720p", "low"]);
    }

    #[test]
    fn ladders_are_validated_with_bounds() {
        assert!(Ladder::from_request(&serde_json::Value::Null).is_ok());
        assert!(Ladder::from_request(&serde_json::json!(["source", "720p"])).is_ok());
        for bad in [
            serde_json::json!([]),
            serde_json::json!(["4k"]),
            serde_json::json!([{"name": "tiny", "height": 10, "bitrate_kbps": 500}]),
            serde_json::json!([{"name": "free", "height": 360, "bitrate_kbps": 0}]),
            serde_json::json!([{"name": "fast", "height": 360, "bitrate_kbps": 500, "max_fps": 0}]),
        ] {
            assert!(Ladder::from_request(&bad).is_err(), "{bad} must be refused");
        }
    }
}
