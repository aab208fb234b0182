//! Subtitles and transcripts from timed text: whole-file renderings of a transcript (WebVTT,
//! SRT, plain text) and an HLS subtitles rendition (RFC 8216bis §3.1.4, "WebVTT"; §3.5 in
//! RFC 8216) cut on the video's segment boundaries, with its media playlist and its entry in
//! the multivariant playlist.
//!
//! * [`Cue`]: a stretch of text shown from `start` to `end`, on the asset's presentation
//!   timeline. [`to_webvtt`], [`to_srt`] and [`to_text`] render a whole transcript.
//! * [`webvtt_segments`] cuts cues into one WebVTT segment per video segment, each with every
//!   cue that overlaps it: a cue crossing a boundary is in both segments (RFC 8216bis §3.1.4:
//!   a segment holds every cue meant to be shown during its EXTINF, each with its whole
//!   timing even where part of it lies outside the segment; players drop the duplicate,
//!   hls.js by a cue id made of its times and text, ffmpeg too). A segment without cues is the
//!   header alone (the same section allows a segment with no cues). [`subtitle_playlist`] is
//!   its VOD media playlist, segments named by [`subtitle_segment_name`].
//! * [`add_subtitle_rendition`] adds an `EXT-X-MEDIA:TYPE=SUBTITLES` rendition to a
//!   multivariant playlist and names its group in `SUBTITLES` on every `EXT-X-STREAM-INF`
//!   (never on `EXT-X-I-FRAME-STREAM-INF`, which RFC 8216bis §4.4.6.3 does not let carry
//!   SUBTITLES). CODECS is left alone: WebVTT renditions have no codec to declare (Apple's own
//!   examples list only the audio and video formats).
//!
//! Cue text is plain text. WebVTT escapes `&`, `<` and `>` as `&amp;`, `&lt;` and `&gt;`
//! (W3C WebVTT, cue text escapes), which also keeps `-->` out of any cue payload, as WebVTT
//! requires; every format drops blank lines inside a cue's text (a blank line ends a cue) and
//! control characters, and trims each line. A cue with no text left is not written. Times are
//! rounded to milliseconds; cues are written by start time, and one that would not end after
//! its start ends 1 ms after it (WebVTT requires the end to be later than the start).
//!
//! Every WebVTT file and segment ends with a blank line: ffmpeg's HLS demuxer reads a
//! playlist's segments as one byte stream, and without it the next segment's `WEBVTT` header
//! would be read as the last line of the previous segment's last cue.
//!
//! # X-TIMESTAMP-MAP for fMP4
//!
//! Each segment's header maps its cue times onto the media timeline of the other renditions
//! (RFC 8216bis §3.1.4): `X-TIMESTAMP-MAP=MPEGTS:<media time>,LOCAL:<cue time>`, the media
//! time in a 90 kHz timescale even when the media segments use another one; without the
//! header a client assumes cue time 0 is media time 0. For fMP4/CMAF media the media time is
//! the track's presentation time (`tfdt` decode time plus composition offset). Sluice's
//! segmenter makes the first sample's decode time its presentation time, and an asset's
//! timeline starts at 0, so the presentation time of the first picture is 0 and Sluice
//! writes [`FMP4_MPEGTS`] = `MPEGTS:0,LOCAL:00:00:00.000`: cue times are then presentation
//! times of the media timeline, which are also playlist times (0 at the first segment).
//!
//! hls.js agrees (video-dev/hls.js `src/utils/webvtt-parser.ts`, `parseWebVTT`): it shifts
//! every cue by `(MPEGTS - initPTS) / 90000` seconds, where `initPTS` is the media time it
//! found at playlist time 0 (`src/remux/passthrough-remuxer.ts`: the first fragment's start
//! minus its playlist time, times the track timescale; 0 here), then subtracts LOCAL. With
//! `MPEGTS:0` the shift is 0 and cues land at their own times.
//!
//! The `MPEGTS:900000` seen in Apple's examples is MPEG-2 TS's convention: TS segmenters
//! start PTS at 10 s (ffmpeg at 1.4 s) so decode times before the first PTS stay positive,
//! and the subtitles follow. fMP4 media here starts at decode time 0, so that value would show
//! every cue 10 s late in hls.js and in Apple's players alike.

use std::collections::HashMap;
use std::time::Duration;

use m3u8_rs::{
    AlternativeMedia, AlternativeMediaType, MediaPlaylist, MediaPlaylistType, MediaSegment,
    Playlist, QuotedOrUnquoted,
};

use crate::playlist::HLS_VERSION;
use crate::tree::MEDIA_PLAYLIST;

/// `MPEGTS` of every VOD subtitle segment: the 90 kHz media time of cue time 0 for fMP4
/// media whose timeline starts at 0 (see the module documentation).
pub const FMP4_MPEGTS: u64 = 0;
/// GROUP-ID of the subtitles rendition group.
pub const SUBTITLES_GROUP_ID: &str = "subs";
/// Directory of the subtitle renditions in an HLS tree: one per language below it
/// (`subs/en/index.m3u8`).
pub const SUBTITLES_DIR: &str = "subs";
/// Start of a WebVTT segment's file name, before its index (`sub-0.vtt`).
pub const SUBTITLE_SEGMENT_PREFIX: &str = "sub-";
/// End of a WebVTT segment's file name, after its index.
pub const SUBTITLE_SEGMENT_SUFFIX: &str = ".vtt";

/// Milliseconds in a second.
const MS_PER_SEC: u64 = 1_000;

/// A stretch of text shown from `start` to `end`, on the asset's presentation timeline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cue {
    pub start: Duration,
    pub end: Duration,
    /// Plain text (not markup); lines are separated by `\n`.
    pub text: String,
}

impl Cue {
    /// A cue from `start` to `end`.
    pub fn new(start: Duration, end: Duration, text: impl Into<String>) -> Self {
        Cue {
            start,
            end,
            text: text.into(),
        }
    }

    /// A cue from times in seconds (a transcriber's line); negative or NaN times are 0.
    pub fn from_secs(start_secs: f64, end_secs: f64, text: impl Into<String>) -> Self {
        Cue::new(duration(start_secs), duration(end_secs), text)
    }

    /// A cue from times in milliseconds (a stored transcript line); negative times are 0.
    pub fn from_millis(start_ms: i64, end_ms: i64, text: impl Into<String>) -> Self {
        let at = |ms: i64| Duration::from_millis(u64::try_from(ms).unwrap_or(0));
        Cue::new(at(start_ms), at(end_ms), text)
    }
}

/// Why a multivariant playlist could not take a subtitles rendition.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SubtitlesError {
    /// The text is not an HLS playlist.
    #[error("the master playlist cannot be parsed")]
    Unparsable,
    /// The text is a media playlist, not a multivariant one.
    #[error("a media playlist was given where a multivariant playlist was expected")]
    NotMultivariant,
    /// Another language of the group already has this NAME (RFC 8216bis §4.4.6.1.1: names
    /// within a group differ).
    #[error("the subtitles group {group_id} already has a rendition named {name:?}")]
    DuplicateName { group_id: String, name: String },
    /// LANGUAGE is not a BCP 47 tag's characters (see [`is_language_tag`]).
    #[error("{0:?} is not a language tag")]
    BadLanguage(String),
    /// A quoted attribute would hold a double quote, CR or LF (RFC 8216bis §4.2: a
    /// quoted-string cannot).
    #[error("{what} {value:?} cannot be written as a quoted string")]
    BadQuotedString { what: &'static str, value: String },
}

/// Whether `tag` can be a BCP 47 language tag: subtags of 1 to 8 ASCII letters or digits
/// joined by `-` (`en`, `pt-BR`, `zh-Hant-TW`), so it is also safe as a directory name.
pub fn is_language_tag(tag: &str) -> bool {
    !tag.is_empty()
        && tag.split('-').all(|subtag| {
            (1..=8).contains(&subtag.len()) && subtag.chars().all(|c| c.is_ascii_alphanumeric())
        })
}

/// A subtitles rendition as the multivariant playlist lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubtitleRendition {
    /// GROUP-ID, named by each variant's SUBTITLES.
    pub group_id: String,
    /// BCP 47 language tag (LANGUAGE), `en`.
    pub language: String,
    /// Human-readable NAME, `English (generated)`.
    pub name: String,
    /// URI of its media playlist, relative to the multivariant playlist.
    pub uri: String,
}

impl SubtitleRendition {
    /// The rendition of `language` in Sluice's layout: group [`SUBTITLES_GROUP_ID`], media
    /// playlist at [`subtitles_playlist_uri`].
    pub fn new(language: &str, name: &str) -> Self {
        SubtitleRendition {
            group_id: SUBTITLES_GROUP_ID.to_owned(),
            language: language.to_owned(),
            name: name.to_owned(),
            uri: subtitles_playlist_uri(language),
        }
    }
}

/// The media playlist of the subtitles in `language` (a BCP 47 tag: check it with
/// [`is_language_tag`] first), relative to the master playlist: `subs/en/index.m3u8`.
pub fn subtitles_playlist_uri(language: &str) -> String {
    format!("{SUBTITLES_DIR}/{language}/{MEDIA_PLAYLIST}")
}

/// The file name of WebVTT segment `index` (from 0), relative to its media playlist.
pub fn subtitle_segment_name(index: usize) -> String {
    format!("{SUBTITLE_SEGMENT_PREFIX}{index}{SUBTITLE_SEGMENT_SUFFIX}")
}

/// The whole transcript as a WebVTT file.
pub fn to_webvtt(cues: &[Cue]) -> String {
    let mut out = String::from("WEBVTT\n\n");
    for cue in prepare(cues) {
        push_webvtt_cue(&mut out, &cue);
    }
    out
}

/// The whole transcript as SubRip (SRT): numbered from 1, `HH:MM:SS,mmm` times. SRT has no
/// escapes: text is written as it is, except that `-->` becomes `->` so no text line reads
/// as a timing line.
pub fn to_srt(cues: &[Cue]) -> String {
    let mut out = String::new();
    for (number, cue) in prepare(cues).iter().enumerate() {
        out.push_str(&format!(
            "{}\n{} --> {}\n",
            number + 1,
            timestamp(cue.start_ms, ','),
            timestamp(cue.end_ms, ',')
        ));
        for line in &cue.lines {
            out.push_str(&line.replace("-->", "->"));
            out.push('\n');
        }
        out.push('\n');
    }
    out
}

/// The transcript as plain text: one line per cue (its lines joined by spaces), in time order.
pub fn to_text(cues: &[Cue]) -> String {
    prepare(cues)
        .iter()
        .map(|cue| cue.lines.join(" ") + "\n")
        .collect()
}

/// One WebVTT segment holding `cues` as they are (the caller chose them), its header mapping
/// cue time 0 to the 90 kHz media time `mpegts`.
pub fn webvtt_segment(cues: &[Cue], mpegts: u64) -> String {
    render_segment(prepare(cues).iter(), mpegts)
}

/// One WebVTT segment per video segment, `segment_durations` being the video media
/// playlist's segment durations in seconds (the first segment starting at 0): each holds the
/// cues that overlap it, with [`FMP4_MPEGTS`]. Boundaries are sums of the durations rounded
/// to milliseconds, as EXTINF writes them; a segment holds a cue when the cue starts before
/// the segment ends and ends after it starts, so a cue ending exactly on a boundary is only in
/// the earlier segment. Cues starting after the last segment ends are in none.
pub fn webvtt_segments(cues: &[Cue], segment_durations: &[f64]) -> Vec<String> {
    let cues = prepare(cues);
    let mut start: u64 = 0;
    segment_durations
        .iter()
        .map(|secs| {
            let end = start.saturating_add(millis_of_secs(*secs));
            let inside = cues
                .iter()
                .filter(|cue| cue.start_ms < end && cue.end_ms > start);
            let segment = render_segment(inside, FMP4_MPEGTS);
            start = end;
            segment
        })
        .collect()
}

/// The VOD media playlist of a subtitles rendition whose segments last `segment_durations`
/// seconds, named by [`subtitle_segment_name`]: EXT-X-TARGETDURATION is the longest EXTINF
/// rounded up to whole seconds.
pub fn subtitle_playlist(segment_durations: &[f64]) -> Vec<u8> {
    let millis: Vec<u64> = segment_durations
        .iter()
        .map(|secs| millis_of_secs(*secs))
        .collect();
    let longest = millis.iter().copied().max().unwrap_or(0);
    let playlist = MediaPlaylist {
        version: Some(HLS_VERSION),
        target_duration: longest.div_ceil(MS_PER_SEC).max(1),
        independent_segments: true,
        playlist_type: Some(MediaPlaylistType::Vod),
        end_list: true,
        segments: millis
            .iter()
            .enumerate()
            .map(|(index, ms)| MediaSegment {
                uri: subtitle_segment_name(index),
                duration: (*ms as f64 / MS_PER_SEC as f64) as f32,
                ..MediaSegment::default()
            })
            .collect(),
        ..MediaPlaylist::default()
    };
    let mut out = Vec::new();
    // Writing into a Vec<u8> cannot fail.
    let _ = playlist.write_to(&mut out);
    out
}

/// `master` (a multivariant playlist's text) with `rendition` listed as an
/// `EXT-X-MEDIA:TYPE=SUBTITLES` rendition (AUTOSELECT=YES, DEFAULT=NO) and its group named
/// in SUBTITLES on every `EXT-X-STREAM-INF`; every other tag and attribute is kept.
///
/// The rendition of the same group and language (compared ignoring ASCII case, as BCP 47
/// tags are) is replaced where it stands, so adding one twice lists it once; another language
/// is added to the group. A variant naming another subtitles group is moved to this one.
/// LANGUAGE must be a language tag ([`is_language_tag`]), and no quoted attribute may hold a
/// double quote, CR or LF.
pub fn add_subtitle_rendition(
    master: &[u8],
    rendition: &SubtitleRendition,
) -> Result<Vec<u8>, SubtitlesError> {
    if !is_language_tag(&rendition.language) {
        return Err(SubtitlesError::BadLanguage(rendition.language.clone()));
    }
    for (what, value) in [
        ("GROUP-ID", &rendition.group_id),
        ("NAME", &rendition.name),
        ("URI", &rendition.uri),
    ] {
        if value.contains(['"', '\r', '\n']) {
            return Err(SubtitlesError::BadQuotedString {
                what,
                value: value.clone(),
            });
        }
    }
    let mut playlist = match m3u8_rs::parse_playlist_res(master) {
        Ok(Playlist::MasterPlaylist(playlist)) => playlist,
        Ok(Playlist::MediaPlaylist(_)) => return Err(SubtitlesError::NotMultivariant),
        Err(_) => return Err(SubtitlesError::Unparsable),
    };
    let in_group = |media: &AlternativeMedia| {
        media.media_type == AlternativeMediaType::Subtitles && media.group_id == rendition.group_id
    };
    let same_language = |media: &AlternativeMedia| {
        media
            .language
            .as_deref()
            .is_some_and(|language| language.eq_ignore_ascii_case(&rendition.language))
    };
    if playlist
        .alternatives
        .iter()
        .any(|media| in_group(media) && !same_language(media) && media.name == rendition.name)
    {
        return Err(SubtitlesError::DuplicateName {
            group_id: rendition.group_id.clone(),
            name: rendition.name.clone(),
        });
    }
    let entry = AlternativeMedia {
        media_type: AlternativeMediaType::Subtitles,
        uri: Some(rendition.uri.clone()),
        group_id: rendition.group_id.clone(),
        language: Some(rendition.language.clone()),
        name: rendition.name.clone(),
        default: false,
        autoselect: true,
        ..AlternativeMedia::default()
    };
    match playlist
        .alternatives
        .iter()
        .position(|media| in_group(media) && same_language(media))
    {
        Some(index) => playlist.alternatives[index] = entry,
        None => playlist.alternatives.push(entry),
    }
    // m3u8-rs leaves DEFAULT out when it is NO (its implicit value) and reads an explicit NO
    // as absent: the group's renditions say it again, for readers.
    for media in playlist
        .alternatives
        .iter_mut()
        .filter(|m| in_group(m) && !m.default)
    {
        media
            .other_attributes
            .get_or_insert_with(HashMap::new)
            .insert(
                "DEFAULT".to_owned(),
                QuotedOrUnquoted::Unquoted("NO".to_owned()),
            );
    }
    for variant in playlist.variants.iter_mut().filter(|v| !v.is_i_frame) {
        variant.subtitles = Some(rendition.group_id.clone());
    }
    let mut out = Vec::new();
    // Writing into a Vec<u8> cannot fail.
    let _ = playlist.write_to(&mut out);
    Ok(out)
}

/// A cue ready to write: times in milliseconds, its text lines cleaned and not escaped.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Prepared {
    start_ms: u64,
    end_ms: u64,
    lines: Vec<String>,
}

/// The cues with text, in start time order (stable), each ending after it starts.
fn prepare(cues: &[Cue]) -> Vec<Prepared> {
    let mut prepared: Vec<Prepared> = cues
        .iter()
        .filter_map(|cue| {
            let lines = text_lines(&cue.text);
            if lines.is_empty() {
                return None;
            }
            let start_ms = millis(cue.start);
            Some(Prepared {
                start_ms,
                end_ms: millis(cue.end).max(start_ms.saturating_add(1)),
                lines,
            })
        })
        .collect();
    prepared.sort_by_key(|cue| cue.start_ms);
    prepared
}

/// The non-blank lines of `text` (split at CR, LF and CRLF), trimmed, without control
/// characters other than tabs.
fn text_lines(text: &str) -> Vec<String> {
    text.split(['\n', '\r'])
        .map(|line| {
            let kept: String = line
                .chars()
                .filter(|c| !c.is_control() || *c == '\t')
                .collect();
            kept.trim().to_owned()
        })
        .filter(|line| !line.is_empty())
        .collect()
}

/// Appends a WebVTT cue block (timing line, escaped text, blank line).
fn push_webvtt_cue(out: &mut String, cue: &Prepared) {
    out.push_str(&format!(
        "{} --> {}\n",
        timestamp(cue.start_ms, '.'),
        timestamp(cue.end_ms, '.')
    ));
    for line in &cue.lines {
        out.push_str(&escape_webvtt(line));
        out.push('\n');
    }
    out.push('\n');
}

/// A WebVTT segment: header with X-TIMESTAMP-MAP, then the cues.
fn render_segment<'a>(cues: impl Iterator<Item = &'a Prepared>, mpegts: u64) -> String {
    let mut out = format!("WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:{mpegts},LOCAL:00:00:00.000\n\n");
    for cue in cues {
        push_webvtt_cue(&mut out, cue);
    }
    out
}

/// Plain text as WebVTT cue text: `&`, `<` and `>` escaped.
fn escape_webvtt(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    for c in line.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// `HH:MM:SS<separator>mmm`, hours with at least two digits.
fn timestamp(ms: u64, separator: char) -> String {
    let hours = ms / 3_600_000;
    let minutes = ms / 60_000 % 60;
    let seconds = ms / MS_PER_SEC % 60;
    let millis = ms % MS_PER_SEC;
    format!("{hours:02}:{minutes:02}:{seconds:02}{separator}{millis:03}")
}

/// `time` rounded to the nearest millisecond.
fn millis(time: Duration) -> u64 {
    u64::try_from(time.as_nanos().saturating_add(500_000) / 1_000_000).unwrap_or(u64::MAX)
}

/// Seconds rounded to the nearest millisecond; negative or NaN is 0.
fn millis_of_secs(secs: f64) -> u64 {
    let ms = (secs * MS_PER_SEC as f64).round();
    if ms.is_nan() || ms <= 0.0 {
        0
    } else {
        // A float-to-int cast saturates.
        ms as u64
    }
}

/// Seconds as a duration; negative or NaN is 0, too large saturates.
fn duration(secs: f64) -> Duration {
    if secs.is_nan() || secs <= 0.0 {
        return Duration::ZERO;
    }
    Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::playlist::{AudioRendition, IFrameVariant, MasterPlaylist, VideoVariant};

    fn cue(start_ms: u64, end_ms: u64, text: &str) -> Cue {
        Cue::new(
            Duration::from_millis(start_ms),
            Duration::from_millis(end_ms),
            text,
        )
    }

    fn text(bytes: Vec<u8>) -> String {
        String::from_utf8(bytes).unwrap()
    }

    /// A cue read back from WebVTT: times in milliseconds, text unescaped.
    #[derive(Debug, PartialEq, Eq)]
    struct ParsedCue {
        start_ms: u64,
        end_ms: u64,
        text: String,
    }

    /// A strict reader of what Sluice writes: `WEBVTT`, header lines up to a blank line, then
    /// blocks of a timing line and one or more text lines, each block followed by a blank line
    /// (the file ends with one). Text may hold no raw `<` or `>`, only the three entities
    /// Sluice writes, and never `-->`. Returns the header lines and the cues.
    fn parse_webvtt(file: &str) -> Result<(Vec<String>, Vec<ParsedCue>), String> {
        let body = file.strip_suffix("\n\n").ok_or("no final blank line")?;
        let mut lines = body.split('\n');
        if lines.next() != Some("WEBVTT") {
            return Err("no WEBVTT signature line".into());
        }
        let header: Vec<String> = lines
            .by_ref()
            .take_while(|line| !line.is_empty())
            .map(str::to_owned)
            .collect();
        if header.iter().any(|line| line.contains("-->")) {
            return Err("a cue inside the header".into());
        }
        let rest: Vec<&str> = lines.collect();
        let blocks = match rest.is_empty() {
            true => Vec::new(),
            false => rest.split(|line| line.is_empty()).collect(),
        };
        let mut cues = Vec::new();
        for block in blocks {
            let mut lines = block.iter();
            let timing = lines.next().ok_or("two blank lines in a row")?;
            let (start, end) = timing
                .split_once(" --> ")
                .ok_or_else(|| format!("bad timing line {timing:?}"))?;
            let (start_ms, end_ms) = (parse_time(start)?, parse_time(end)?);
            if end_ms <= start_ms {
                return Err(format!("cue ends before it starts: {timing}"));
            }
            let mut text = Vec::new();
            for line in lines {
                if line.trim().is_empty() {
                    return Err(format!("blank line inside a cue: {block:?}"));
                }
                if line.contains("-->") || line.contains('<') || line.contains('>') {
                    return Err(format!("unescaped text {line:?}"));
                }
                text.push(unescape(line)?);
            }
            if text.is_empty() {
                return Err(format!("cue without text: {block:?}"));
            }
            cues.push(ParsedCue {
                start_ms,
                end_ms,
                text: text.join("\n"),
            });
        }
        Ok((header, cues))
    }

    /// `HH:MM:SS.mmm`, hours two digits or more.
    fn parse_time(text: &str) -> Result<u64, String> {
        let bad = || format!("bad timestamp {text:?}");
        let (clock, millis) = text.split_once('.').ok_or_else(bad)?;
        let parts: Vec<&str> = clock.split(':').collect();
        let [hours, minutes, seconds] = parts[..] else {
            return Err(bad());
        };
        let digits = |s: &str, len: usize| {
            (s.len() >= len && s.chars().all(|c| c.is_ascii_digit()))
                .then(|| s.parse::<u64>().ok())
                .flatten()
        };
        let exact = |s: &str, len: usize| digits(s, len).filter(|_| s.len() == len);
        let (h, m, s, ms) = (
            digits(hours, 2).ok_or_else(bad)?,
            exact(minutes, 2).filter(|m| *m < 60).ok_or_else(bad)?,
            exact(seconds, 2).filter(|s| *s < 60).ok_or_else(bad)?,
            exact(millis, 3).ok_or_else(bad)?,
        );
        Ok(((h * 60 + m) * 60 + s) * 1_000 + ms)
    }

    fn unescape(line: &str) -> Result<String, String> {
        let mut out = String::new();
        let mut rest = line;
        while let Some(at) = rest.find('&') {
            out.push_str(&rest[..at]);
            rest = &rest[at..];
            let (entity, c) = [("&amp;", '&'), ("&lt;", '<'), ("&gt;", '>')]
                .into_iter()
                .find(|(entity, _)| rest.starts_with(entity))
                .ok_or_else(|| format!("bare & in {line:?}"))?;
            out.push(c);
            rest = &rest[entity.len()..];
        }
        out.push_str(rest);
        Ok(out)
    }

    fn parsed(start_ms: u64, end_ms: u64, text: &str) -> ParsedCue {
        ParsedCue {
            start_ms,
            end_ms,
            text: text.into(),
        }
    }

    const MAP: &str = "X-TIMESTAMP-MAP=MPEGTS:0,LOCAL:00:00:00.000";

    #[test]
    fn a_transcript_renders_as_webvtt_with_hour_timestamps_and_escaped_text() {
        let cues = [
            cue(1_000, 2_500, "Hello, world."),
            cue(2_500, 4_000, "Fish & chips <b>are</b> good"),
        ];
        assert_eq!(
            to_webvtt(&cues),
            "WEBVTT

00:00:01.000 --> 00:00:02.500
Hello, world.

00:00:02.500 --> 00:00:04.000
Fish &amp; chips &lt;b&gt;are&lt;/b&gt; good

"
        );
    }

    #[test]
    fn a_transcript_renders_as_numbered_srt_with_comma_milliseconds() {
        let cues = [
            cue(1_000, 2_500, "Hello,\nworld."),
            cue(62_005, 63_000, "Bye"),
        ];
        assert_eq!(
            to_srt(&cues),
            "1
00:00:01,000 --> 00:00:02,500
Hello,
world.

2
00:01:02,005 --> 00:01:03,000
Bye

"
        );
    }

    #[test]
    fn a_transcript_renders_as_text_one_line_per_cue() {
        let cues = [cue(0, 1_000, "Hello,\nworld."), cue(1_000, 2_000, "Bye")];
        assert_eq!(to_text(&cues), "Hello, world.\nBye\n");
    }

    #[test]
    fn an_empty_transcript_is_a_bare_webvtt_header_and_empty_srt_and_text() {
        assert_eq!(to_webvtt(&[]), "WEBVTT\n\n");
        assert_eq!(to_srt(&[]), "");
        assert_eq!(to_text(&[]), "");
        assert_eq!(parse_webvtt(&to_webvtt(&[])).unwrap().1, []);
    }

    #[test]
    fn times_past_an_hour_and_past_a_hundred_hours_keep_every_hour_digit() {
        let cues = [
            cue(3_723_456, 3_724_000, "an hour in"),
            cue(360_000_000, 360_001_001, "a hundred hours in"),
        ];
        let vtt = to_webvtt(&cues);
        assert!(vtt.contains("\n01:02:03.456 --> 01:02:04.000\n"), "{vtt}");
        assert!(vtt.contains("\n100:00:00.000 --> 100:00:01.001\n"), "{vtt}");
        assert_eq!(
            parse_webvtt(&vtt).unwrap().1,
            [
                parsed(3_723_456, 3_724_000, "an hour in"),
                parsed(360_000_000, 360_001_001, "a hundred hours in")
            ]
        );
        assert!(to_srt(&cues).contains("\n01:02:03,456 --> 01:02:04,000\n"));
    }

    #[test]
    fn a_cue_from_stored_milliseconds_starts_no_earlier_than_zero() {
        assert_eq!(Cue::from_millis(1_500, 2_250, "a"), cue(1_500, 2_250, "a"));
        assert_eq!(Cue::from_millis(-40, 300, "b"), cue(0, 300, "b"));
    }

    #[test]
    fn cue_times_round_to_the_nearest_millisecond() {
        let cues = [Cue::from_secs(1.0004, 2.0005, "a")];
        assert!(to_webvtt(&cues).contains("00:00:01.000 --> 00:00:02.001\n"));
        let negative = [Cue::from_secs(-3.0, f64::NAN, "b")];
        // Both times are 0: the cue ends a millisecond after it starts.
        assert!(to_webvtt(&negative).contains("00:00:00.000 --> 00:00:00.001\n"));
    }

    #[test]
    fn arrows_markup_and_ampersands_never_reach_webvtt_text_raw() {
        let cues = [cue(0, 1_000, "a --> b <c.x>&amp; d->e")];
        let vtt = to_webvtt(&cues);
        assert!(
            vtt.contains("\na --&gt; b &lt;c.x&gt;&amp;amp; d-&gt;e\n"),
            "{vtt}"
        );
        assert_eq!(vtt.matches("-->").count(), 1, "{vtt}");
        assert_eq!(
            parse_webvtt(&vtt).unwrap().1,
            [parsed(0, 1_000, "a --> b <c.x>&amp; d->e")]
        );
        // SRT has no escapes: the arrow is broken, the rest kept.
        assert_eq!(
            to_srt(&cues),
            "1\n00:00:00,000 --> 00:00:01,000\na -> b <c.x>&amp; d->e\n\n"
        );
    }

    #[test]
    fn blank_lines_and_control_characters_inside_a_cue_text_are_removed() {
        let cues = [
            cue(0, 1_000, "  first\r\n\r\n \n\tsecond\u{0}\u{7}  \r\n"),
            cue(1_000, 2_000, " \n \r\n"),
            cue(2_000, 3_000, ""),
        ];
        let vtt = to_webvtt(&cues);
        assert_eq!(
            vtt,
            "WEBVTT\n\n00:00:00.000 --> 00:00:01.000\nfirst\nsecond\n\n"
        );
        assert_eq!(
            to_srt(&cues),
            "1\n00:00:00,000 --> 00:00:01,000\nfirst\nsecond\n\n"
        );
        assert_eq!(to_text(&cues), "first second\n");
    }

    #[test]
    fn unicode_text_is_written_as_it_is() {
        let text = "Zoë says 你好 — «ça va?» 👋🏽 ‏مرحبا";
        let cues = [cue(0, 1_000, text)];
        assert_eq!(parse_webvtt(&to_webvtt(&cues)).unwrap().1[0].text, text);
        assert!(to_srt(&cues).contains(text));
        assert_eq!(to_text(&cues), format!("{text}\n"));
    }

    #[test]
    fn very_long_text_stays_one_cue() {
        let long = "word ".repeat(20_000);
        let cues = [cue(0, 600_000, &long), cue(600_000, 601_000, "after")];
        let (_, read) = parse_webvtt(&to_webvtt(&cues)).unwrap();
        assert_eq!(read.len(), 2);
        assert_eq!(read[0].text, long.trim());
        assert_eq!(to_text(&cues).lines().count(), 2);
        let segments = webvtt_segments(&cues, &[300.0, 300.0, 6.0]);
        for segment in &segments[..2] {
            let (_, read) = parse_webvtt(segment).unwrap();
            assert_eq!(read.len(), 1);
            assert_eq!(read[0].text, long.trim());
        }
        assert_eq!(
            parse_webvtt(&segments[2]).unwrap().1,
            [parsed(600_000, 601_000, "after")]
        );
    }

    #[test]
    fn cues_are_written_in_start_time_order() {
        let cues = [cue(5_000, 6_000, "late"), cue(1_000, 2_000, "early")];
        assert_eq!(to_text(&cues), "early\nlate\n");
        assert!(to_srt(&cues).starts_with("1\n00:00:01,000 --> 00:00:02,000\nearly\n"));
    }

    #[test]
    fn segments_hold_the_cues_that_overlap_them_with_the_fmp4_timestamp_map() {
        let cues = [
            cue(1_000, 2_500, "in the first"),
            cue(5_500, 6_500, "across the boundary"),
            cue(7_000, 8_000, "in the second"),
        ];
        let segments = webvtt_segments(&cues, &[6.0, 4.0, 2.0]);
        assert_eq!(
            segments,
            [
                "WEBVTT
X-TIMESTAMP-MAP=MPEGTS:0,LOCAL:00:00:00.000

00:00:01.000 --> 00:00:02.500
in the first

00:00:05.500 --> 00:00:06.500
across the boundary

",
                "WEBVTT
X-TIMESTAMP-MAP=MPEGTS:0,LOCAL:00:00:00.000

00:00:05.500 --> 00:00:06.500
across the boundary

00:00:07.000 --> 00:00:08.000
in the second

",
                "WEBVTT
X-TIMESTAMP-MAP=MPEGTS:0,LOCAL:00:00:00.000

",
            ]
        );
        for segment in &segments {
            let (header, _) = parse_webvtt(segment).unwrap();
            assert_eq!(header, [MAP]);
        }
    }

    #[test]
    fn a_cue_touching_a_boundary_belongs_only_to_the_segment_it_overlaps() {
        let cues = [
            cue(4_000, 6_000, "ends on the boundary"),
            cue(6_000, 7_000, "starts on the boundary"),
        ];
        let segments = webvtt_segments(&cues, &[6.0, 6.0]);
        let read: Vec<Vec<ParsedCue>> = segments
            .iter()
            .map(|segment| parse_webvtt(segment).unwrap().1)
            .collect();
        assert_eq!(
            read,
            [
                vec![parsed(4_000, 6_000, "ends on the boundary")],
                vec![parsed(6_000, 7_000, "starts on the boundary")],
            ]
        );
    }

    #[test]
    fn boundaries_are_the_millisecond_rounded_extinf_sums() {
        // Three 6.006 s segments (NTSC frame counts): the third starts at 12.012 s, not at
        // 12.011999… as a float sum would have it.
        let cues = [cue(12_012, 13_000, "third")];
        let segments = webvtt_segments(&cues, &[6.006, 6.006, 6.006]);
        assert_eq!(parse_webvtt(&segments[1]).unwrap().1, []);
        assert_eq!(parse_webvtt(&segments[2]).unwrap().1.len(), 1);
    }

    #[test]
    fn a_cue_spanning_several_segments_is_in_each_of_them() {
        let cues = [cue(1_000, 13_000, "long")];
        let segments = webvtt_segments(&cues, &[2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0]);
        let holding: Vec<usize> = segments
            .iter()
            .enumerate()
            .filter(|(_, s)| !parse_webvtt(s).unwrap().1.is_empty())
            .map(|(index, _)| index)
            .collect();
        assert_eq!(holding, [0, 1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn no_cues_give_one_header_only_segment_per_video_segment() {
        let segments = webvtt_segments(&[], &[6.0, 6.0, 1.5]);
        assert_eq!(segments.len(), 3);
        for segment in &segments {
            assert_eq!(segment, &format!("WEBVTT\n{MAP}\n\n"));
            assert_eq!(
                parse_webvtt(segment).unwrap(),
                (vec![MAP.to_owned()], vec![])
            );
        }
        assert!(webvtt_segments(&[cue(0, 1_000, "x")], &[]).is_empty());
    }

    #[test]
    fn cues_after_the_last_segment_are_in_none() {
        let cues = [cue(1_000, 2_000, "in"), cue(4_000, 5_000, "past the end")];
        let segments = webvtt_segments(&cues, &[3.0]);
        assert_eq!(
            parse_webvtt(&segments[0]).unwrap().1,
            [parsed(1_000, 2_000, "in")]
        );
    }

    #[test]
    fn a_single_segment_maps_cue_time_zero_to_the_given_media_time() {
        let segment = webvtt_segment(&[cue(0, 500, "x")], 900_000);
        assert_eq!(
            segment,
            "WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:900000,LOCAL:00:00:00.000\n\n00:00:00.000 --> 00:00:00.500\nx\n\n"
        );
    }

    #[test]
    fn every_segment_of_a_long_transcript_parses_back_with_its_cues() {
        // A cue every 1.7 s over 2 hours, 6.006 s segments: each cue is read back from every
        // segment it overlaps and from no other.
        let cues: Vec<Cue> = (0..4_236u64)
            .map(|i| cue(i * 1_700, i * 1_700 + 1_500, &format!("line {i} & <more>")))
            .collect();
        let durations = vec![6.006; 1_199];
        let segments = webvtt_segments(&cues, &durations);
        assert_eq!(segments.len(), durations.len());
        let mut seen = vec![0usize; cues.len()];
        for (index, segment) in segments.iter().enumerate() {
            let (header, read) = parse_webvtt(segment).unwrap_or_else(|e| panic!("{index}: {e}"));
            assert_eq!(header, [MAP]);
            let (start, end) = (index as u64 * 6_006, (index as u64 + 1) * 6_006);
            for parsed_cue in read {
                assert!(parsed_cue.start_ms < end && parsed_cue.end_ms > start);
                let i = (parsed_cue.start_ms / 1_700) as usize;
                assert_eq!(parsed_cue.text, format!("line {i} & <more>"));
                seen[i] += 1;
            }
        }
        let total_ms = 1_199 * 6_006;
        for (i, count) in seen.iter().enumerate() {
            let (start, end) = (i as u64 * 1_700, i as u64 * 1_700 + 1_500);
            let expected = if start >= total_ms {
                0
            } else {
                (start / 6_006..=(end - 1) / 6_006)
                    .filter(|s| s * 6_006 < total_ms)
                    .count()
            };
            assert_eq!(*count, expected, "cue {i}");
        }
    }

    #[test]
    fn the_subtitle_playlist_lists_one_segment_per_video_segment() {
        assert_eq!(
            text(subtitle_playlist(&[6.006, 6.006, 2.5])),
            "#EXTM3U
#EXT-X-VERSION:7
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-TARGETDURATION:7
#EXT-X-PLAYLIST-TYPE:VOD
#EXTINF:6.006,
sub-0.vtt
#EXTINF:6.006,
sub-1.vtt
#EXTINF:2.5,
sub-2.vtt
#EXT-X-ENDLIST
"
        );
    }

    #[test]
    fn the_target_duration_is_the_longest_segment_rounded_up() {
        let target = |durations: &[f64]| {
            let rendered = text(subtitle_playlist(durations));
            let line = rendered
                .lines()
                .find_map(|l| l.strip_prefix("#EXT-X-TARGETDURATION:"))
                .unwrap()
                .to_owned();
            line
        };
        assert_eq!(target(&[6.0, 4.0]), "6");
        assert_eq!(target(&[2.0, 6.001]), "7");
        // Below a millisecond over, as EXTINF writes it, is not over.
        assert_eq!(target(&[6.0000004]), "6");
        assert_eq!(target(&[]), "1");
        assert_eq!(target(&[0.2]), "1");
    }

    #[test]
    fn the_subtitle_playlist_parses_as_a_vod_media_playlist() {
        let rendered = subtitle_playlist(&[6.0, 6.0, 3.2]);
        let Ok(Playlist::MediaPlaylist(playlist)) = m3u8_rs::parse_playlist_res(&rendered) else {
            panic!("not a media playlist");
        };
        assert_eq!(playlist.playlist_type, Some(MediaPlaylistType::Vod));
        assert!(playlist.end_list);
        let uris: Vec<&str> = playlist.segments.iter().map(|s| s.uri.as_str()).collect();
        assert_eq!(uris, ["sub-0.vtt", "sub-1.vtt", "sub-2.vtt"]);
        assert_eq!(subtitle_segment_name(12), "sub-12.vtt");
    }

    /// The master playlist the VOD packager writes for a two-rung ladder with audio and
    /// I-frame playlists.
    fn packaged_master() -> String {
        let rung = |dir: &str, width, height, peak_bps, average_bps| VideoVariant {
            uri: format!("{dir}/index.m3u8"),
            codec: "avc1.64001f".into(),
            width,
            height,
            frame_rate: 30_000.0 / 1_001.0,
            peak_bps,
            average_bps,
        };
        let iframes = |dir: &str, width, height| IFrameVariant {
            uri: format!("{dir}/iframes.m3u8"),
            codec: "avc1.64001f".into(),
            width,
            height,
            peak_bps: 90_000,
            average_bps: 80_000,
        };
        let mut master = MasterPlaylist::new();
        master
            .add_variant(rung("v0", 1280, 720, 3_300_000, 3_000_000))
            .add_i_frame_variant(iframes("v0", 1280, 720))
            .add_variant(rung("v1", 640, 360, 900_000, 800_000))
            .add_i_frame_variant(iframes("v1", 640, 360))
            .set_audio(AudioRendition {
                uri: "a0/index.m3u8".into(),
                name: "Audio".into(),
                language: None,
                channels: 2,
                codec: "mp4a.40.2".into(),
                peak_bps: 130_000,
                average_bps: 128_000,
            });
        text(master.render())
    }

    const ENGLISH_MEDIA: &str = "#EXT-X-MEDIA:TYPE=SUBTITLES,URI=\"subs/en/index.m3u8\",GROUP-ID=\"subs\",LANGUAGE=\"en\",NAME=\"English (generated)\",AUTOSELECT=YES,DEFAULT=NO\n";

    #[test]
    fn a_subtitles_rendition_is_listed_and_named_by_every_variant_but_i_frame_ones() {
        let master = packaged_master();
        let with_subtitles = add_subtitle_rendition(
            master.as_bytes(),
            &SubtitleRendition::new("en", "English (generated)"),
        )
        .unwrap();
        assert_eq!(
            text(with_subtitles),
            "#EXTM3U
#EXT-X-VERSION:7
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-MEDIA:TYPE=AUDIO,URI=\"a0/index.m3u8\",GROUP-ID=\"audio\",NAME=\"Audio\",DEFAULT=YES,AUTOSELECT=YES,CHANNELS=\"2\"
#EXT-X-MEDIA:TYPE=SUBTITLES,URI=\"subs/en/index.m3u8\",GROUP-ID=\"subs\",LANGUAGE=\"en\",NAME=\"English (generated)\",AUTOSELECT=YES,DEFAULT=NO
#EXT-X-STREAM-INF:BANDWIDTH=3430000,AVERAGE-BANDWIDTH=3128000,CODECS=\"avc1.64001f,mp4a.40.2\",RESOLUTION=1280x720,FRAME-RATE=29.97,AUDIO=\"audio\",SUBTITLES=\"subs\"
v0/index.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=1030000,AVERAGE-BANDWIDTH=928000,CODECS=\"avc1.64001f,mp4a.40.2\",RESOLUTION=640x360,FRAME-RATE=29.97,AUDIO=\"audio\",SUBTITLES=\"subs\"
v1/index.m3u8
#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=90000,AVERAGE-BANDWIDTH=80000,CODECS=\"avc1.64001f\",RESOLUTION=1280x720,URI=\"v0/iframes.m3u8\"
#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=90000,AVERAGE-BANDWIDTH=80000,CODECS=\"avc1.64001f\",RESOLUTION=640x360,URI=\"v1/iframes.m3u8\"
"
        );
    }

    #[test]
    fn adding_subtitles_keeps_every_other_tag_of_the_master_as_it_was() {
        let master = packaged_master();
        let added = text(
            add_subtitle_rendition(
                master.as_bytes(),
                &SubtitleRendition::new("en", "English (generated)"),
            )
            .unwrap(),
        );
        assert_eq!(
            added
                .replace(ENGLISH_MEDIA, "")
                .replace(",SUBTITLES=\"subs\"", ""),
            master
        );
        for tag in [
            "#EXT-X-INDEPENDENT-SEGMENTS\n",
            "#EXT-X-MEDIA:TYPE=AUDIO,",
            "#EXT-X-I-FRAME-STREAM-INF:",
        ] {
            assert_eq!(
                added.matches(tag).count(),
                master.matches(tag).count(),
                "{tag}"
            );
        }
        assert_eq!(added.matches("SUBTITLES=\"subs\"").count(), 2);
        for line in added
            .lines()
            .filter(|l| l.starts_with("#EXT-X-I-FRAME-STREAM-INF"))
        {
            assert!(!line.contains("SUBTITLES"), "{line}");
        }
    }

    #[test]
    fn adding_the_same_language_twice_lists_it_once() {
        let master = packaged_master();
        let english = SubtitleRendition::new("en", "English (generated)");
        let once = add_subtitle_rendition(master.as_bytes(), &english).unwrap();
        let twice = add_subtitle_rendition(&once, &english).unwrap();
        assert_eq!(text(twice.clone()), text(once));
        // A renamed rendition of the same language replaces it where it stands.
        let renamed =
            add_subtitle_rendition(&twice, &SubtitleRendition::new("EN", "English (automatic)"))
                .unwrap();
        let renamed = text(renamed);
        assert_eq!(renamed.matches("TYPE=SUBTITLES").count(), 1, "{renamed}");
        assert!(renamed.contains("LANGUAGE=\"EN\",NAME=\"English (automatic)\""));
    }

    #[test]
    fn another_language_joins_the_same_group() {
        let master = packaged_master();
        let english = add_subtitle_rendition(
            master.as_bytes(),
            &SubtitleRendition::new("en", "English (generated)"),
        )
        .unwrap();
        let both = text(
            add_subtitle_rendition(&english, &SubtitleRendition::new("fr", "Français (généré)"))
                .unwrap(),
        );
        assert!(both.contains(&format!(
            "{ENGLISH_MEDIA}#EXT-X-MEDIA:TYPE=SUBTITLES,URI=\"subs/fr/index.m3u8\",GROUP-ID=\"subs\",LANGUAGE=\"fr\",NAME=\"Français (généré)\",AUTOSELECT=YES,DEFAULT=NO\n"
        )), "{both}");
        assert_eq!(both.matches("SUBTITLES=\"subs\"").count(), 2, "{both}");
        let Ok(Playlist::MasterPlaylist(parsed)) = m3u8_rs::parse_playlist_res(both.as_bytes())
        else {
            panic!("not a master playlist");
        };
        let subtitles = parsed
            .alternatives
            .iter()
            .filter(|m| m.media_type == AlternativeMediaType::Subtitles);
        assert!(subtitles
            .clone()
            .all(|m| m.autoselect && !m.default && m.group_id == "subs"));
        assert_eq!(subtitles.count(), 2);
    }

    #[test]
    fn a_name_taken_by_another_language_of_the_group_is_refused() {
        let master = packaged_master();
        let english = add_subtitle_rendition(
            master.as_bytes(),
            &SubtitleRendition::new("en", "Generated"),
        )
        .unwrap();
        assert_eq!(
            add_subtitle_rendition(&english, &SubtitleRendition::new("fr", "Generated")),
            Err(SubtitlesError::DuplicateName {
                group_id: "subs".into(),
                name: "Generated".into()
            })
        );
    }

    #[test]
    fn an_audio_only_master_gets_subtitles_on_its_only_variant() {
        let mut master = MasterPlaylist::new();
        master.set_audio(AudioRendition {
            uri: "a0/index.m3u8".into(),
            name: "Audio".into(),
            language: None,
            channels: 2,
            codec: "mp4a.40.2".into(),
            peak_bps: 130_000,
            average_bps: 128_000,
        });
        let added = text(
            add_subtitle_rendition(
                &master.render(),
                &SubtitleRendition::new("en", "English (generated)"),
            )
            .unwrap(),
        );
        assert_eq!(
            added,
            format!(
                "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n{ENGLISH_MEDIA}#EXT-X-STREAM-INF:BANDWIDTH=130000,AVERAGE-BANDWIDTH=128000,CODECS=\"mp4a.40.2\",SUBTITLES=\"subs\"\na0/index.m3u8\n"
            )
        );
    }

    #[test]
    fn a_media_playlist_or_garbage_is_not_a_master() {
        let english = SubtitleRendition::new("en", "English (generated)");
        assert_eq!(
            add_subtitle_rendition(&subtitle_playlist(&[6.0]), &english),
            Err(SubtitlesError::NotMultivariant)
        );
        assert_eq!(
            add_subtitle_rendition(b"not a playlist", &english),
            Err(SubtitlesError::Unparsable)
        );
    }

    #[test]
    fn a_rendition_that_would_break_the_master_is_refused() {
        let master = packaged_master();
        let add =
            |rendition: SubtitleRendition| add_subtitle_rendition(master.as_bytes(), &rendition);
        assert_eq!(
            add(SubtitleRendition::new("../../x", "X")),
            Err(SubtitlesError::BadLanguage("../../x".into()))
        );
        assert_eq!(
            add(SubtitleRendition::new("en", "Say \"hi\"")),
            Err(SubtitlesError::BadQuotedString {
                what: "NAME",
                value: "Say \"hi\"".into()
            })
        );
        assert!(add(SubtitleRendition::new("en", "two\nlines")).is_err());
    }

    #[test]
    fn language_tags_are_bcp_47_shaped() {
        for tag in ["en", "pt-BR", "zh-Hant-TW", "es-419", "x-klingon"] {
            assert!(is_language_tag(tag), "{tag}");
        }
        for tag in ["", "en_US", "en-", "-en", "en/..", "..", "toolongtag", "é"] {
            assert!(!is_language_tag(tag), "{tag}");
        }
    }

    #[test]
    fn the_default_rendition_lives_under_subs_by_language() {
        assert_eq!(
            SubtitleRendition::new("pt-BR", "Português"),
            SubtitleRendition {
                group_id: "subs".into(),
                language: "pt-BR".into(),
                name: "Português".into(),
                uri: "subs/pt-BR/index.m3u8".into(),
            }
        );
    }

    /// ffmpeg's HLS demuxer (an independent reader) reads the subtitle playlist and its
    /// segments back: every cue, once, at its time. Panics when ffmpeg is not installed: the
    /// test fails rather than skipping.
    #[test]
    fn ffmpeg_reads_every_cue_back_from_the_subtitle_playlist() {
        use std::process::Command;

        let cues = [
            cue(1_000, 2_500, "Hello & <welcome>"),
            cue(5_500, 6_500, "across\nthe boundary"),
            cue(7_000, 8_000, "second segment"),
            cue(3_600_500, 3_601_000, "an hour in"),
        ];
        let durations = [6.0, 6.0, 3_588.0, 6.0];
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(MEDIA_PLAYLIST),
            subtitle_playlist(&durations),
        )
        .unwrap();
        for (index, segment) in webvtt_segments(&cues, &durations).iter().enumerate() {
            std::fs::write(dir.path().join(subtitle_segment_name(index)), segment).unwrap();
        }
        let output = Command::new("ffmpeg")
            .args(["-v", "error", "-i"])
            .arg(dir.path().join(MEDIA_PLAYLIST))
            .args(["-f", "webvtt", "-"])
            .output()
            .expect("ffmpeg must be installed (`make test` installs it)");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success() && stderr.is_empty(),
            "ffmpeg: {stderr}"
        );
        let out = String::from_utf8(output.stdout).unwrap();
        // ffmpeg writes `MM:SS.mmm` below an hour and its text unescaped: read its blocks.
        let time = |t: &str| {
            let padded = if t.matches(':').count() == 1 {
                format!("00:{t}")
            } else {
                t.to_owned()
            };
            parse_time(&padded).unwrap()
        };
        let read: Vec<ParsedCue> = out
            .trim_end()
            .split("\n\n")
            .skip(1)
            .map(|block| {
                let (timing, text) = block.split_once('\n').unwrap();
                let (start, end) = timing.split_once(" --> ").unwrap();
                parsed(time(start), time(end), text)
            })
            .collect();
        assert_eq!(
            read,
            [
                parsed(1_000, 2_500, "Hello & <welcome>"),
                parsed(5_500, 6_500, "across\nthe boundary"),
                parsed(7_000, 8_000, "second segment"),
                parsed(3_600_500, 3_601_000, "an hour in"),
            ],
            "{out}"
        );
    }
}
