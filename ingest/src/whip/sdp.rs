//! The first look at a WHIP offer (SDP, RFC 8866), before the WebRTC stack answers it: the
//! text must be SDP, hold media, hold video, and offer a video codec Sluice takes (H.264 or
//! VP8). Each refusal names what was wrong, so a publisher learns why (400 for SDP that is
//! malformed or has no media, 406 for codecs). The WebRTC stack parses the offer in full
//! afterwards; this check only reads `v=`, `m=`, `a=rtpmap:` and `a=candidate:` lines.
//!
//! The text comes from the network: every line is bounds-checked, nothing is indexed blindly.

/// Video codecs a WHIP publisher may send (names as in `a=rtpmap`, compared without case).
pub const ACCEPTED_VIDEO_CODECS: [&str; 2] = ["H264", "VP8"];
/// The audio codec taken (transcoded to AAC); other audio is left out of the answer.
pub const ACCEPTED_AUDIO_CODEC: &str = "opus";
/// Media sections read before an offer is refused as unreasonable.
const MAX_MEDIA_SECTIONS: usize = 16;

/// What an acceptable offer holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferedMedia {
    /// The accepted video codecs offered, upper-case, first preference first.
    pub video_codecs: Vec<String>,
    /// Whether Opus audio is offered.
    pub opus: bool,
    /// `ip:port` of the first ICE candidate offered (a browser may hide its address behind an
    /// mDNS name), for the session's record.
    pub first_candidate: Option<String>,
}

/// Why an offer was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OfferError {
    #[error("malformed SDP offer: {0}")]
    Malformed(String),
    #[error("the SDP offer has no media sections")]
    NoMedia,
    #[error("the SDP offer has no video: send H.264 or VP8 video (audio alone is not taken)")]
    NoVideo,
    #[error("the SDP offer's video codecs ({offered}) are not taken: send H.264 or VP8")]
    NoAcceptedVideoCodec { offered: String },
}

/// A media section being read.
struct Section {
    kind: String,
    codecs: Vec<String>,
}

/// Checks an offer; see the module documentation.
pub fn check_offer(sdp: &str) -> Result<OfferedMedia, OfferError> {
    let mut lines = sdp.lines().map(|line| line.trim_end_matches('\r'));
    if lines.next() != Some("v=0") {
        return Err(OfferError::Malformed("it must start with v=0".into()));
    }
    let mut sections: Vec<Section> = Vec::new();
    let mut first_candidate = None;
    for (index, line) in lines.enumerate() {
        if line.is_empty() {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(OfferError::Malformed(format!(
                "line {} is not <type>=<value>",
                index + 2
            )));
        };
        if key.len() != 1 || !key.bytes().all(|b| b.is_ascii_lowercase()) {
            return Err(OfferError::Malformed(format!(
                "line {} has type {key:?}; SDP types are one lower-case letter",
                index + 2
            )));
        }
        match key {
            "m" => {
                if sections.len() == MAX_MEDIA_SECTIONS {
                    return Err(OfferError::Malformed(format!(
                        "more than {MAX_MEDIA_SECTIONS} media sections"
                    )));
                }
                let mut fields = value.split_ascii_whitespace();
                let (Some(kind), Some(_port), Some(_proto), Some(_format)) =
                    (fields.next(), fields.next(), fields.next(), fields.next())
                else {
                    return Err(OfferError::Malformed(format!(
                        "line {} is not m=<media> <port> <proto> <formats>",
                        index + 2
                    )));
                };
                sections.push(Section {
                    kind: kind.to_ascii_lowercase(),
                    codecs: Vec::new(),
                });
            }
            "a" => {
                if let Some(rtpmap) = value.strip_prefix("rtpmap:") {
                    let codec = rtpmap
                        .split_ascii_whitespace()
                        .nth(1)
                        .and_then(|encoding| encoding.split('/').next())
                        .filter(|name| !name.is_empty());
                    match (codec, sections.last_mut()) {
                        (Some(codec), Some(section)) => section.codecs.push(codec.to_owned()),
                        _ => {
                            return Err(OfferError::Malformed(format!(
                                "line {} is an a=rtpmap outside a media section or without \
                                 an encoding name",
                                index + 2
                            )))
                        }
                    }
                } else if let Some(candidate) = value.strip_prefix("candidate:") {
                    // foundation component transport priority address port typ …
                    let fields: Vec<&str> = candidate.split_ascii_whitespace().collect();
                    if let (None, Some(address), Some(port)) =
                        (&first_candidate, fields.get(4), fields.get(5))
                    {
                        first_candidate = Some(format!("{address}:{port}"));
                    }
                }
            }
            _ => {}
        }
    }
    if sections.is_empty() {
        return Err(OfferError::NoMedia);
    }
    let video: Vec<&String> = sections
        .iter()
        .filter(|section| section.kind == "video")
        .flat_map(|section| &section.codecs)
        .collect();
    if !sections.iter().any(|section| section.kind == "video") {
        return Err(OfferError::NoVideo);
    }
    let mut video_codecs: Vec<String> = Vec::new();
    for codec in &video {
        let upper = codec.to_ascii_uppercase();
        if ACCEPTED_VIDEO_CODECS.contains(&upper.as_str()) && !video_codecs.contains(&upper) {
            video_codecs.push(upper);
        }
    }
    if video_codecs.is_empty() {
        let mut offered: Vec<&str> = video.iter().map(|codec| codec.as_str()).collect();
        offered.dedup();
        return Err(OfferError::NoAcceptedVideoCodec {
            offered: if offered.is_empty() {
                "none".to_owned()
            } else {
                offered.join(", ")
            },
        });
    }
    let opus = sections
        .iter()
        .filter(|section| section.kind == "audio")
        .flat_map(|section| &section.codecs)
        .any(|codec| codec.eq_ignore_ascii_case(ACCEPTED_AUDIO_CODEC));
    Ok(OfferedMedia {
        video_codecs,
        opus,
        first_candidate,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape of a browser's offer: one audio and one video section, several codecs each.
    const BROWSER_OFFER: &str = "v=0\r\n\
        o=- 4611731400430051336 2 IN IP4 127.0.0.1\r\n\
        s=-\r\n\
        t=0 0\r\n\
        a=group:BUNDLE 0 1\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111 63\r\n\
        c=IN IP4 0.0.0.0\r\n\
        a=mid:0\r\n\
        a=sendonly\r\n\
        a=rtpmap:111 opus/48000/2\r\n\
        a=rtpmap:63 red/48000/2\r\n\
        a=candidate:1 1 udp 2122260223 192.168.1.20 54321 typ host\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96 97 102\r\n\
        c=IN IP4 0.0.0.0\r\n\
        a=mid:1\r\n\
        a=sendonly\r\n\
        a=rtpmap:96 VP8/90000\r\n\
        a=rtpmap:97 rtx/90000\r\n\
        a=rtpmap:102 H264/90000\r\n\
        a=rtpmap:103 vp8/90000\r\n";

    #[test]
    fn a_browser_offer_is_taken() {
        assert_eq!(
            check_offer(BROWSER_OFFER),
            Ok(OfferedMedia {
                video_codecs: vec!["VP8".into(), "H264".into()],
                opus: true,
                first_candidate: Some("192.168.1.20:54321".into()),
            })
        );
    }

    #[test]
    fn plain_newlines_are_taken_too() {
        let offer = BROWSER_OFFER.replace("\r\n", "\n");
        assert!(check_offer(&offer).is_ok());
    }

    #[test]
    fn audio_only_is_refused() {
        let audio_only = BROWSER_OFFER.split("m=video").next().unwrap();
        assert_eq!(check_offer(audio_only), Err(OfferError::NoVideo));
    }

    #[test]
    fn no_media_is_refused() {
        let session_only = BROWSER_OFFER.split("m=audio").next().unwrap();
        assert_eq!(check_offer(session_only), Err(OfferError::NoMedia));
    }

    #[test]
    fn video_without_an_accepted_codec_is_refused_naming_what_was_offered() {
        let offer = BROWSER_OFFER
            .replace("VP8/90000", "AV1/90000")
            .replace("H264/90000", "VP9/90000")
            .replace("vp8/90000", "VP9/90000");
        assert_eq!(
            check_offer(&offer),
            Err(OfferError::NoAcceptedVideoCodec {
                offered: "AV1, rtx, VP9".into()
            })
        );
    }

    #[test]
    fn text_that_is_not_sdp_is_refused() {
        for text in [
            "",
            "hello",
            "v=1\r\nm=video 9 UDP 96\r\n",
            "v=0\r\nthis is not sdp\r\n",
            "v=0\r\nAB=c\r\n",
            "v=0\r\nm=video\r\n",
            "v=0\r\na=rtpmap:96 H264/90000\r\nm=video 9 UDP 96\r\n",
            "v=0\r\nm=video 9 UDP 96\r\na=rtpmap:96\r\n",
        ] {
            assert!(
                matches!(check_offer(text), Err(OfferError::Malformed(_))),
                "{text:?}"
            );
        }
    }

    #[test]
    fn too_many_media_sections_are_refused() {
        let offer = format!("v=0\r\n{}", "m=video 9 UDP 96\r\n".repeat(17));
        assert!(matches!(check_offer(&offer), Err(OfferError::Malformed(_))));
    }

    #[test]
    fn every_truncation_is_answered_without_panicking() {
        for end in 0..=BROWSER_OFFER.len() {
            let _ = check_offer(&BROWSER_OFFER[..end]);
        }
        // Cut inside the video section's first rtpmap, there is video but no codec yet.
        let cut = BROWSER_OFFER.find("a=rtpmap:96").unwrap();
        assert_eq!(
            check_offer(&BROWSER_OFFER[..cut]),
            Err(OfferError::NoAcceptedVideoCodec {
                offered: "none".into()
            })
        );
    }
}
