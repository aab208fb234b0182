//! HLS playlists as data: `m3u8_rs` types, rendered with their writer.
//!
//! Follows RFC 8216bis (draft-pantos-hls-rfc8216bis) §4.4 and the Apple HLS Authoring
//! Specification for Apple Devices:
//!
//! * [`LivePlaylist`] is a media playlist with a sliding window (§6.2.2: the server removes
//!   segments from the start and increments EXT-X-MEDIA-SEQUENCE, and EXT-X-DISCONTINUITY-
//!   SEQUENCE when a discontinuity leaves), or the whole session as an EXT-X-PLAYLIST-TYPE:EVENT
//!   playlist that never removes a segment (§4.4.3.5), EXT-X-MAP for the CMAF header
//!   (§4.4.4.5: repeated where the header changes, after a discontinuity) and
//!   EXT-X-PROGRAM-DATE-TIME on every segment.
//! * [`MasterPlaylist`] is the multivariant playlist (§4.4.6): one EXT-X-STREAM-INF per video
//!   rung with BANDWIDTH, AVERAGE-BANDWIDTH, CODECS, RESOLUTION and FRAME-RATE (Apple §9.1–9.15),
//!   and audio as its own EXT-X-MEDIA rendition (Apple §9.5).
//! * [`VodPlaylist`] is a complete on-demand media playlist (EXT-X-PLAYLIST-TYPE:VOD,
//!   EXT-X-ENDLIST) with EXT-X-MAP; while it is still growing it renders as an
//!   EXT-X-PLAYLIST-TYPE:EVENT playlist (§4.4.3.5: segments are only ever appended). Built
//!   with [`VodPlaylist::i_frames`] it is an I-frame playlist (§4.4.3.6, EXT-X-I-FRAMES-ONLY):
//!   each entry an EXT-X-BYTERANGE of a segment holding one keyframe.
//! * [`BitrateMeter`] measures what BANDWIDTH and AVERAGE-BANDWIDTH declare (Apple §1.26–1.27).
//! * A [`LivePlaylist`] made [`LivePlaylist::with_parts`] also keeps LL-HLS partial segments
//!   (§4.4.4.9) and renders, besides its regular form, the low-latency form
//!   ([`LivePlaylist::render_low_latency`]): EXT-X-PART-INF, EXT-X-SERVER-CONTROL with
//!   CAN-BLOCK-RELOAD, PART-HOLD-BACK (three part targets), HOLD-BACK (three target durations)
//!   and CAN-SKIP-UNTIL (six), EXT-X-PART on the segments of the last three target durations and
//!   on the open one, EXT-X-PRELOAD-HINT for the next part, EXT-X-RENDITION-REPORT for the
//!   sibling renditions, and delta updates (§6.2.5.1, EXT-X-SKIP). m3u8-rs 6 writes none of
//!   these tags, so the header and tail lines are written here around its segment lines.
//!
//! The playlists never read the clock: program date times come from the caller.

use std::collections::VecDeque;

use chrono::{DateTime, Utc};
use m3u8_rs::{
    AlternativeMedia, AlternativeMediaType, ByteRange, Map, MediaPlaylist, MediaSegment,
    Resolution, VariantStream,
};
use sluice_media::MediaTime;

/// EXT-X-VERSION of every playlist: 7 covers EXT-X-MAP in non-I-frame playlists (needs 6) and
/// every attribute written here.
pub const HLS_VERSION: usize = 7;
/// EXT-X-VERSION of a low-latency playlist: CAN-SKIP-UNTIL and EXT-X-SKIP need 9 (§7).
pub const LOW_LATENCY_HLS_VERSION: usize = 9;
/// PART-HOLD-BACK in part targets (§4.4.3.8: at least two, three recommended).
const PART_HOLD_BACK_PARTS: f64 = 3.0;
/// HOLD-BACK in target durations (§4.4.3.8: at least three).
const HOLD_BACK_TARGETS: f64 = 3.0;
/// CAN-SKIP-UNTIL in target durations (§4.4.3.8: at least six).
const SKIP_UNTIL_TARGETS: f64 = 6.0;
/// Parts are listed on the segments of this many target durations before the end (§6.2.2).
const PART_LISTED_TARGETS: f64 = 3.0;
/// Completed segments whose parts are kept (more than [`PART_LISTED_TARGETS`] ever needs).
const SEGMENTS_WITH_PARTS_KEPT: usize = 8;
/// Segments kept in a live playlist by default (Apple §8.11 asks for at least six).
pub const DEFAULT_WINDOW: usize = 6;
/// GROUP-ID of the audio rendition group.
pub const AUDIO_GROUP_ID: &str = "audio";

/// A live media playlist with a sliding window of segments, or every segment of the session
/// ([`LivePlaylist::event`]).
#[derive(Clone, Debug)]
pub struct LivePlaylist {
    playlist: MediaPlaylist,
    window: usize,
    /// The init segment of the next segment pushed; `None` for segments that need none
    /// (WebVTT).
    init: Option<Map>,
    /// The next segment pushed follows a discontinuity.
    discontinuity_pending: bool,
    /// URIs of the segments in the window, oldest first (parallel to `playlist.segments`).
    uris: VecDeque<String>,
    /// The init segment of each segment in the window (parallel to `playlist.segments`).
    maps: VecDeque<Option<Map>>,
    /// LL-HLS parts, when the playlist has them.
    parts: Option<PartList>,
}

/// One LL-HLS partial segment as a playlist lists it.
#[derive(Clone, Debug, PartialEq)]
pub struct PartEntry {
    pub uri: String,
    pub duration_secs: f64,
    /// Its first sample is a sync sample (INDEPENDENT=YES).
    pub independent: bool,
}

/// The parts a low-latency playlist knows.
#[derive(Clone, Debug)]
struct PartList {
    target_secs: f64,
    /// Parts of the most recent completed segments, by media sequence number, oldest first.
    completed: VecDeque<(u64, Vec<PartEntry>)>,
    /// Parts of the segment being made.
    open: Vec<PartEntry>,
    /// Wall-clock time of the segment being made, from its first part.
    open_program_date_time: Option<DateTime<Utc>>,
    /// URI of the next part (EXT-X-PRELOAD-HINT).
    preload_hint: Option<String>,
}

/// A sibling rendition's progress, for EXT-X-RENDITION-REPORT (§4.4.5.4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RenditionReport {
    /// The sibling's media playlist, relative to this one (`../v1/index.m3u8`).
    pub uri: String,
    pub last_msn: u64,
    pub last_part: u64,
}

/// How [`LivePlaylist::render_low_latency`] renders.
pub struct LowLatencyView<'a> {
    /// A delta update (`_HLS_skip=YES` or `v2`): segments older than CAN-SKIP-UNTIL are
    /// replaced by EXT-X-SKIP.
    pub skip: bool,
    pub reports: &'a [RenditionReport],
    /// Maps each part, segment, init and report URI (a playback token added, say).
    pub uri: &'a dyn Fn(&str) -> String,
}

impl LivePlaylist {
    /// An empty live playlist keeping `window` segments (at least one; use [`DEFAULT_WINDOW`]
    /// or more), announcing `target_duration_secs` and the init segment at `init_uri`.
    ///
    /// It declares EXT-X-INDEPENDENT-SEGMENTS: Sluice's segmenter starts every segment with a
    /// sync sample.
    pub fn new(target_duration_secs: u64, window: usize, init_uri: String) -> Self {
        LivePlaylist {
            playlist: MediaPlaylist {
                version: Some(HLS_VERSION),
                target_duration: target_duration_secs.max(1),
                independent_segments: true,
                ..MediaPlaylist::default()
            },
            window: window.max(1),
            init: Some(init_map(init_uri)),
            discontinuity_pending: false,
            uris: VecDeque::new(),
            maps: VecDeque::new(),
            parts: None,
        }
    }

    /// The same playlist for segments that need no init segment (a WebVTT subtitles
    /// rendition): no EXT-X-MAP is written.
    pub fn without_init(mut self) -> Self {
        self.init = None;
        self
    }

    /// The same playlist keeping LL-HLS parts of at most `part_target_secs`.
    pub fn with_parts(mut self, part_target_secs: f64) -> Self {
        self.parts = Some(PartList {
            target_secs: part_target_secs,
            completed: VecDeque::new(),
            open: Vec::new(),
            open_program_date_time: None,
            preload_hint: None,
        });
        self
    }

    /// Appends a part of the open segment, which starts at wall-clock time `program_date_time`;
    /// `next_uri` is where the part after it will be (the preload hint). A playlist without
    /// parts ignores it.
    pub fn push_part(
        &mut self,
        part: PartEntry,
        program_date_time: DateTime<Utc>,
        next_uri: String,
    ) {
        if let Some(parts) = &mut self.parts {
            parts
                .open_program_date_time
                .get_or_insert(program_date_time);
            parts.open.push(part);
            parts.preload_hint = Some(next_uri);
        }
    }

    /// Forgets the open segment's parts (its segment will not be listed).
    pub fn discard_open_parts(&mut self) {
        if let Some(parts) = &mut self.parts {
            parts.open.clear();
            parts.open_program_date_time = None;
        }
    }

    /// Names the next part before any part of the open segment exists (after a segment).
    pub fn set_preload_hint(&mut self, uri: String) {
        if let Some(parts) = &mut self.parts {
            parts.preload_hint = Some(uri);
        }
    }

    /// The URI of the next part (EXT-X-PRELOAD-HINT), when the playlist has parts.
    pub fn preload_hint(&self) -> Option<&str> {
        self.parts.as_ref()?.preload_hint.as_deref()
    }

    /// Media sequence number of the segment being made (the one after the last listed).
    pub fn next_media_sequence(&self) -> u64 {
        self.playlist.media_sequence + self.playlist.segments.len() as u64
    }

    /// The last part listed, as (media sequence number, part index): EXT-X-RENDITION-REPORT's
    /// LAST-MSN and LAST-PART.
    pub fn last_part(&self) -> Option<(u64, u64)> {
        let parts = self.parts.as_ref()?;
        if let Some(count) = (!parts.open.is_empty()).then_some(parts.open.len()) {
            return Some((self.next_media_sequence(), count as u64 - 1));
        }
        let (msn, last) = parts.completed.back()?;
        Some((*msn, last.len().checked_sub(1)? as u64))
    }

    /// Whether part `part` of segment `msn` is listed (or gone with its segment's parts). A
    /// part index past the last part of a complete segment means part 0 of the next segment
    /// (§6.2.5.2).
    pub fn has_part(&self, msn: u64, part: u64) -> bool {
        let next = self.next_media_sequence();
        if msn > next {
            return false;
        }
        let Some(parts) = &self.parts else {
            return msn < next;
        };
        if msn == next {
            return part < parts.open.len() as u64;
        }
        match parts.completed.iter().find(|(m, _)| *m == msn) {
            Some((_, own)) if part >= own.len() as u64 => self.has_part(msn + 1, 0),
            _ => true,
        }
    }

    /// Whether a blocking request for part `part` of segment `msn` lies at or past the Advance
    /// Part Limit beyond the last part listed (§6.2.5.2: three seconds of parts, three parts
    /// when parts are a second or longer), so it gets 400 at once. A request in a later
    /// segment counts from that segment's start, and one past the last part of a complete
    /// segment means the next segment's first part: neither overstates its distance.
    pub fn part_too_far_ahead(&self, msn: u64, part: u64) -> bool {
        let (Some(parts), Some((last_msn, last_part))) = (&self.parts, self.last_part()) else {
            return false;
        };
        let limit = match parts.target_secs < 1.0 {
            true => (3.0 / parts.target_secs).ceil() as u64,
            false => 3,
        };
        let last_segment_complete = last_msn < self.next_media_sequence();
        match msn.cmp(&last_msn) {
            std::cmp::Ordering::Less => false,
            std::cmp::Ordering::Equal if last_segment_complete => false,
            std::cmp::Ordering::Equal => part >= last_part.saturating_add(limit),
            std::cmp::Ordering::Greater => part >= limit,
        }
    }

    /// EXT-X-TARGETDURATION, in seconds.
    pub fn target_duration_secs(&self) -> u64 {
        self.playlist.target_duration
    }

    /// Whether the playlist has ended (EXT-X-ENDLIST).
    pub fn is_ended(&self) -> bool {
        self.playlist.end_list
    }

    /// The low-latency form (see the module documentation), or the regular one for a
    /// playlist without parts.
    pub fn render_low_latency(&self, view: &LowLatencyView) -> Vec<u8> {
        let Some(parts) = &self.parts else {
            return self.render();
        };
        let mut playlist = self.playlist.clone();
        playlist.version = Some(LOW_LATENCY_HLS_VERSION);
        playlist.end_list = false;
        let target = playlist.target_duration as f64;
        let durations: Vec<f64> = playlist
            .segments
            .iter()
            .map(|s| f64::from(s.duration))
            .collect();
        // Seconds from each segment's start to the end of the last complete segment.
        let mut from_start = vec![0.0; durations.len()];
        let mut total = 0.0;
        for (index, duration) in durations.iter().enumerate().rev() {
            total += duration;
            from_start[index] = total;
        }
        let skip_until = SKIP_UNTIL_TARGETS * target;
        // §6.2.5.1: only segments further from the end of the last segment than the skip
        // boundary (CAN-SKIP-UNTIL) are skipped; the open segment's parts are not counted.
        let skipped = if view.skip {
            from_start
                .iter()
                .skip(1)
                .take_while(|after| **after >= skip_until)
                .count()
        } else {
            0
        };
        let open_secs: f64 = parts.open.iter().map(|part| part.duration_secs).sum();
        let first_msn = playlist.media_sequence;
        for (index, segment) in playlist.segments.iter_mut().enumerate() {
            let msn = first_msn + index as u64;
            segment.uri = (view.uri)(&segment.uri);
            if let Some(map) = &mut segment.map {
                map.uri = (view.uri)(&map.uri);
            }
            let end_to_end = from_start[index] - durations[index] + open_secs;
            if end_to_end >= PART_LISTED_TARGETS * target {
                continue;
            }
            if let Some((_, own)) = parts.completed.iter().find(|(m, _)| *m == msn) {
                segment.unknown_tags = own.iter().map(|part| part_tag(part, view)).collect();
            }
        }
        // The first segment after a skip names its init segment again.
        if skipped > 0 {
            let map = self.maps.get(skipped).cloned().flatten().map(|mut map| {
                map.uri = (view.uri)(&map.uri);
                map
            });
            playlist.segments[skipped].map = map;
        }
        let header = render_with(|out| {
            MediaPlaylist {
                segments: Vec::new(),
                ..playlist.clone()
            }
            .write_to(out)
        });
        playlist.segments.drain(..skipped);
        let full = render_with(|out| playlist.write_to(out));
        let segment_lines = &full[header.len()..];

        let mut out = header;
        let mut line = |text: String| {
            out.extend_from_slice(text.as_bytes());
            out.push(b'\n');
        };
        line(format!(
            "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL={},PART-HOLD-BACK={},HOLD-BACK={}",
            decimal(skip_until),
            decimal(PART_HOLD_BACK_PARTS * parts.target_secs),
            decimal(HOLD_BACK_TARGETS * target)
        ));
        line(format!(
            "#EXT-X-PART-INF:PART-TARGET={}",
            decimal(parts.target_secs)
        ));
        if skipped > 0 {
            line(format!("#EXT-X-SKIP:SKIPPED-SEGMENTS={skipped}"));
        }
        out.extend_from_slice(segment_lines);
        let mut line = |text: String| {
            out.extend_from_slice(text.as_bytes());
            out.push(b'\n');
        };
        if !parts.open.is_empty() {
            if self.discontinuity_pending {
                line("#EXT-X-DISCONTINUITY".to_owned());
            }
            if let Some(init) = self
                .init
                .as_ref()
                .filter(|_| self.maps.back() != Some(&self.init))
            {
                line(format!("#EXT-X-MAP:URI=\"{}\"", (view.uri)(&init.uri)));
            }
            if let Some(date) = parts.open_program_date_time {
                line(format!(
                    "#EXT-X-PROGRAM-DATE-TIME:{}",
                    date.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                ));
            }
        }
        for part in &parts.open {
            line(part_tag(part, view).to_string());
        }
        if self.playlist.end_list {
            line("#EXT-X-ENDLIST".to_owned());
        } else if let Some(hint) = &parts.preload_hint {
            line(format!(
                "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"{}\"",
                (view.uri)(hint)
            ));
        }
        for report in view.reports {
            line(format!(
                "#EXT-X-RENDITION-REPORT:URI=\"{}\",LAST-MSN={},LAST-PART={}",
                (view.uri)(&report.uri),
                report.last_msn,
                report.last_part
            ));
        }
        out
    }

    /// An empty live playlist that keeps every segment (EXT-X-PLAYLIST-TYPE:EVENT: segments
    /// are only ever appended, so players can seek back to the session's start).
    pub fn event(target_duration_secs: u64, init_uri: String) -> Self {
        let mut playlist = Self::new(target_duration_secs, usize::MAX, init_uri);
        playlist.playlist.playlist_type = Some(m3u8_rs::MediaPlaylistType::Event);
        playlist
    }

    /// Appends a segment and returns the URIs of the segments that left the window, so the
    /// caller can delete those objects.
    ///
    /// EXT-X-TARGETDURATION is raised when the segment's rounded duration exceeds it
    /// (RFC 8216bis §4.4.3.1 makes the target an upper bound on every EXTINF, rounded).
    pub fn push_segment(
        &mut self,
        uri: String,
        duration_secs: f64,
        program_date_time: DateTime<Utc>,
    ) -> Vec<String> {
        let rounded = duration_secs.round();
        if rounded.is_finite() && rounded > self.playlist.target_duration as f64 {
            self.playlist.target_duration = rounded as u64;
        }
        let msn = self.next_media_sequence();
        if let Some(parts) = &mut self.parts {
            let own = std::mem::take(&mut parts.open);
            parts.open_program_date_time = None;
            parts.completed.push_back((msn, own));
            while parts.completed.len() > SEGMENTS_WITH_PARTS_KEPT {
                parts.completed.pop_front();
            }
        }
        self.playlist.segments.push(MediaSegment {
            uri: uri.clone(),
            duration: millisecond_precision(duration_secs),
            discontinuity: std::mem::take(&mut self.discontinuity_pending),
            program_date_time: Some(program_date_time.fixed_offset()),
            ..MediaSegment::default()
        });
        self.uris.push_back(uri);

        let excess = self.playlist.segments.len().saturating_sub(self.window);
        let mut evicted = Vec::with_capacity(excess);
        for segment in self.playlist.segments.drain(..excess) {
            self.playlist.media_sequence += 1;
            if segment.discontinuity {
                self.playlist.discontinuity_sequence += 1;
            }
            if let Some(uri) = self.uris.pop_front() {
                evicted.push(uri);
            }
            self.maps.pop_front();
        }
        self.maps.push_back(self.init.clone());
        // EXT-X-MAP applies to every segment after it: it sits on the oldest one and on each
        // segment whose init segment differs from the one before.
        let mut previous: Option<&Option<Map>> = None;
        for (segment, map) in self.playlist.segments.iter_mut().zip(&self.maps) {
            segment.map = map.clone().filter(|_| previous != Some(map));
            previous = Some(map);
        }
        evicted
    }

    /// Marks the next pushed segment as following a discontinuity (a publisher reconnecting
    /// inside the reconnect window: timestamps and encoder settings may change).
    pub fn mark_discontinuity(&mut self) {
        self.discontinuity_pending = true;
    }

    /// Names the init segment of the segments pushed from now on (an EXT-X-MAP is written
    /// before the first of them); use it after [`LivePlaylist::mark_discontinuity`].
    pub fn set_init(&mut self, init_uri: String) {
        self.init = Some(init_map(init_uri));
    }

    /// Ends the playlist (EXT-X-ENDLIST): no segment will be added.
    pub fn end(&mut self) {
        self.playlist.end_list = true;
    }

    /// EXT-X-MEDIA-SEQUENCE: the sequence number of the oldest segment in the window.
    pub fn media_sequence(&self) -> u64 {
        self.playlist.media_sequence
    }

    /// The playlist as UTF-8 text.
    pub fn render(&self) -> Vec<u8> {
        render_with(|out| self.playlist.write_to(out))
    }
}

/// A video-on-demand media playlist: every segment, `EXT-X-PLAYLIST-TYPE:VOD` and
/// `EXT-X-ENDLIST` (RFC 8216bis §4.4.3.5, §4.4.3.4), EXT-X-MAP for the CMAF header.
#[derive(Clone, Debug)]
pub struct VodPlaylist {
    playlist: MediaPlaylist,
    /// The init segment of the next segment pushed.
    init: Map,
    /// The init segment of the last segment pushed.
    last_map: Option<Map>,
    /// The next segment pushed follows a discontinuity.
    discontinuity_pending: bool,
}

impl VodPlaylist {
    /// An empty VOD playlist whose segments share the init segment at `init_uri`. It declares
    /// EXT-X-INDEPENDENT-SEGMENTS: Sluice's segmenter starts every segment with a sync sample.
    pub fn new(init_uri: String) -> Self {
        VodPlaylist {
            playlist: MediaPlaylist {
                version: Some(HLS_VERSION),
                target_duration: 1,
                independent_segments: true,
                playlist_type: Some(m3u8_rs::MediaPlaylistType::Vod),
                end_list: true,
                ..MediaPlaylist::default()
            },
            init: init_map(init_uri),
            last_map: None,
            discontinuity_pending: false,
        }
    }

    /// Marks the next pushed segment as following a discontinuity (EXT-X-DISCONTINUITY: a
    /// recorded live session whose publisher reconnected).
    pub fn mark_discontinuity(&mut self) {
        self.discontinuity_pending = true;
    }

    /// Names the init segment of the segments pushed from now on (an EXT-X-MAP is written
    /// before the first of them when it differs from the previous one).
    pub fn set_init(&mut self, init_uri: String) {
        self.init = init_map(init_uri);
    }

    /// The same playlist announcing `secs` as EXT-X-TARGETDURATION from the start (a
    /// growing playlist should keep one value while players reload it, RFC 8216bis §6.2.1);
    /// a longer segment still raises it.
    pub fn with_target_duration(mut self, secs: u64) -> Self {
        self.playlist.target_duration = secs.max(1);
        self
    }

    /// An empty I-frame playlist (EXT-X-I-FRAMES-ONLY) whose entries share the init segment
    /// at `init_uri`; entries are added with [`VodPlaylist::push_byte_range`].
    pub fn i_frames(init_uri: String) -> Self {
        let mut playlist = Self::new(init_uri);
        playlist.playlist.i_frames_only = true;
        playlist
    }

    /// Appends a segment; EXT-X-TARGETDURATION becomes the longest rounded EXTINF.
    pub fn push_segment(&mut self, uri: String, duration_secs: f64) {
        self.push(uri, duration_secs, None);
    }

    /// Appends the first `length` bytes of the resource at `uri` as an entry lasting
    /// `duration_secs` (in an I-frame playlist: one keyframe, shown until the next entry).
    pub fn push_byte_range(&mut self, uri: String, duration_secs: f64, length: u64) {
        let range = ByteRange {
            length,
            offset: Some(0),
        };
        self.push(uri, duration_secs, Some(range));
    }

    fn push(&mut self, uri: String, duration_secs: f64, byte_range: Option<ByteRange>) {
        let rounded = duration_secs.round();
        if rounded.is_finite() && rounded > self.playlist.target_duration as f64 {
            self.playlist.target_duration = rounded as u64;
        }
        let map = (self.last_map.as_ref() != Some(&self.init)).then(|| self.init.clone());
        self.last_map = Some(self.init.clone());
        self.playlist.segments.push(MediaSegment {
            uri,
            duration: millisecond_precision(duration_secs),
            byte_range,
            map,
            discontinuity: std::mem::take(&mut self.discontinuity_pending),
            ..MediaSegment::default()
        });
    }

    /// Segments listed so far.
    pub fn len(&self) -> usize {
        self.playlist.segments.len()
    }

    /// Whether no segment is listed.
    pub fn is_empty(&self) -> bool {
        self.playlist.segments.is_empty()
    }

    /// The playlist as UTF-8 text.
    pub fn render(&self) -> Vec<u8> {
        render_with(|out| self.playlist.write_to(out))
    }

    /// The playlist as it stands while segments are still being added: the same segments
    /// with EXT-X-PLAYLIST-TYPE:EVENT and no EXT-X-ENDLIST, so players reload it.
    pub fn render_growing(&self) -> Vec<u8> {
        let growing = MediaPlaylist {
            playlist_type: Some(m3u8_rs::MediaPlaylistType::Event),
            end_list: false,
            ..self.playlist.clone()
        };
        render_with(|out| growing.write_to(out))
    }
}

/// The EXT-X-MAP of the init segment at `uri`.
fn init_map(uri: String) -> Map {
    Map {
        uri,
        ..Map::default()
    }
}

/// EXTINF with three decimals at most (and never negative): m3u8-rs prints an `f32` with its shortest exact form, so
/// rounding first keeps `2.002` from becoming `2.0020000934600830`.
fn millisecond_precision(secs: f64) -> f32 {
    ((secs.max(0.0) * 1_000.0).round() / 1_000.0) as f32
}

/// An EXT-X-PART line (§4.4.4.9).
fn part_tag(part: &PartEntry, view: &LowLatencyView) -> m3u8_rs::ExtTag {
    let independent = if part.independent {
        ",INDEPENDENT=YES"
    } else {
        ""
    };
    m3u8_rs::ExtTag {
        tag: "X-PART".to_owned(),
        rest: Some(format!(
            "DURATION={},URI=\"{}\"{independent}",
            decimal(part.duration_secs),
            (view.uri)(&part.uri)
        )),
    }
}

/// A decimal-floating-point value (§4.2) with at most five decimals and no trailing zeros.
fn decimal(value: f64) -> String {
    let text = format!("{:.5}", value.max(0.0));
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// Renders through an `m3u8_rs` writer into memory.
fn render_with(write: impl FnOnce(&mut Vec<u8>) -> std::io::Result<()>) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing into a Vec<u8> cannot fail.
    let _ = write(&mut out);
    out
}

/// Peak and average bit rate of a sequence of segments.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BitrateMeter {
    peak_bps: u64,
    total_bits: u128,
    /// Total duration in nanoseconds.
    total_nanos: u128,
}

impl BitrateMeter {
    /// A meter that has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a segment of `bytes` lasting `duration`; empty or negative durations are ignored.
    pub fn add_segment(&mut self, bytes: u64, duration: MediaTime) {
        let (Ok(ticks), rate) = (
            u128::try_from(duration.ticks),
            u128::from(duration.timebase.0),
        ) else {
            return;
        };
        if ticks == 0 || rate == 0 {
            return;
        }
        let bits = u128::from(bytes) * 8;
        let bps = (bits * rate).div_ceil(ticks);
        self.peak_bps = self.peak_bps.max(u64::try_from(bps).unwrap_or(u64::MAX));
        self.total_bits += bits;
        self.total_nanos += ticks * 1_000_000_000 / rate;
    }

    /// The highest segment bit rate seen (BANDWIDTH), in bits per second.
    pub fn peak_bps(&self) -> u64 {
        self.peak_bps
    }

    /// Total bits over total duration (AVERAGE-BANDWIDTH), in bits per second. Never above
    /// the peak, which rounding alone could otherwise cause (RFC 8216 §4.4.6.2).
    pub fn average_bps(&self) -> u64 {
        if self.total_nanos == 0 {
            return 0;
        }
        let bps = (self.total_bits * 1_000_000_000).div_ceil(self.total_nanos);
        u64::try_from(bps).unwrap_or(u64::MAX).min(self.peak_bps)
    }

    /// Both measurements.
    pub fn bitrates(&self) -> crate::tree::Bitrates {
        crate::tree::Bitrates {
            peak_bps: self.peak_bps(),
            average_bps: self.average_bps(),
        }
    }
}

/// One video rung of the multivariant playlist.
#[derive(Clone, Debug, PartialEq)]
pub struct VideoVariant {
    /// URI of the rung's media playlist.
    pub uri: String,
    /// RFC 6381 codec string of the video (`avc1.64001f`).
    pub codec: String,
    /// Picture width in pixels (RESOLUTION).
    pub width: u32,
    /// Picture height in pixels (RESOLUTION).
    pub height: u32,
    /// Frames per second; written rounded to three decimals.
    pub frame_rate: f64,
    /// Measured peak segment bit rate of the video alone, bits per second.
    pub peak_bps: u64,
    /// Measured average bit rate of the video alone, bits per second.
    pub average_bps: u64,
}

/// The I-frame playlist of one video rung (EXT-X-I-FRAME-STREAM-INF, RFC 8216bis §4.4.6.3).
#[derive(Clone, Debug, PartialEq)]
pub struct IFrameVariant {
    /// URI of the rung's I-frame playlist.
    pub uri: String,
    /// RFC 6381 codec string of the video.
    pub codec: String,
    /// Picture width in pixels (RESOLUTION).
    pub width: u32,
    /// Picture height in pixels (RESOLUTION).
    pub height: u32,
    /// Peak bit rate of the I-frames alone, bits per second.
    pub peak_bps: u64,
    /// Average bit rate of the I-frames alone, bits per second.
    pub average_bps: u64,
}

/// The audio rendition every video rung plays with.
#[derive(Clone, Debug, PartialEq)]
pub struct AudioRendition {
    /// URI of the audio media playlist.
    pub uri: String,
    /// Human-readable NAME.
    pub name: String,
    /// RFC 5646 LANGUAGE tag, when known.
    pub language: Option<String>,
    /// Channel count (CHANNELS, Apple §9.6).
    pub channels: u8,
    /// RFC 6381 codec string (`mp4a.40.2`).
    pub codec: String,
    /// Measured peak segment bit rate, bits per second.
    pub peak_bps: u64,
    /// Measured average bit rate, bits per second.
    pub average_bps: u64,
}

/// Builds the multivariant (master) playlist.
///
/// Without any video rung, the audio rendition is listed as the only variant (audio-only
/// content).
///
/// When there is an audio rendition, each variant's BANDWIDTH and AVERAGE-BANDWIDTH are the
/// video's plus the audio's: RFC 8216bis §4.4.6.2 defines BANDWIDTH over every rendition that
/// plays with the variant, and a player switching rungs downloads both.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MasterPlaylist {
    variants: Vec<VideoVariant>,
    i_frame_variants: Vec<IFrameVariant>,
    audio: Option<AudioRendition>,
}

impl MasterPlaylist {
    /// An empty multivariant playlist.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a video rung; the first one added is listed first (the one players start with).
    pub fn add_variant(&mut self, variant: VideoVariant) -> &mut Self {
        self.variants.push(variant);
        self
    }

    /// Adds a rung's I-frame playlist, listed after every variant.
    pub fn add_i_frame_variant(&mut self, variant: IFrameVariant) -> &mut Self {
        self.i_frame_variants.push(variant);
        self
    }

    /// Sets the audio rendition shared by every rung.
    pub fn set_audio(&mut self, audio: AudioRendition) -> &mut Self {
        self.audio = Some(audio);
        self
    }

    /// The playlist as `m3u8_rs` data.
    pub fn to_m3u8(&self) -> m3u8_rs::MasterPlaylist {
        let audio = self.audio.as_ref();
        let alternatives = audio
            .map(|audio| AlternativeMedia {
                media_type: AlternativeMediaType::Audio,
                uri: Some(audio.uri.clone()),
                group_id: AUDIO_GROUP_ID.into(),
                language: audio.language.clone(),
                name: audio.name.clone(),
                default: true,
                autoselect: true,
                channels: Some(audio.channels.to_string()),
                ..AlternativeMedia::default()
            })
            .into_iter()
            .collect();
        let i_frame_variants = self.i_frame_variants.iter().map(|video| VariantStream {
            is_i_frame: true,
            uri: video.uri.clone(),
            bandwidth: video.peak_bps,
            average_bandwidth: Some(video.average_bps),
            codecs: Some(video.codec.clone()),
            resolution: Some(Resolution {
                width: u64::from(video.width),
                height: u64::from(video.height),
            }),
            ..VariantStream::default()
        });
        let variants: Vec<VariantStream> = self
            .variants
            .iter()
            .map(|video| VariantStream {
                uri: video.uri.clone(),
                bandwidth: video
                    .peak_bps
                    .saturating_add(audio.map_or(0, |a| a.peak_bps)),
                average_bandwidth: Some(
                    video
                        .average_bps
                        .saturating_add(audio.map_or(0, |a| a.average_bps)),
                ),
                codecs: Some(match audio {
                    Some(audio) => format!("{},{}", video.codec, audio.codec),
                    None => video.codec.clone(),
                }),
                resolution: Some(Resolution {
                    width: u64::from(video.width),
                    height: u64::from(video.height),
                }),
                frame_rate: Some((video.frame_rate * 1_000.0).round() / 1_000.0),
                audio: audio.map(|_| AUDIO_GROUP_ID.to_string()),
                ..VariantStream::default()
            })
            .chain(i_frame_variants)
            .collect();
        if let (true, Some(audio)) = (variants.is_empty(), audio) {
            // Audio alone: the audio playlist is the only variant (RFC 8216bis §4.4.6.2 allows
            // a variant without RESOLUTION), with no rendition group to point at.
            return m3u8_rs::MasterPlaylist {
                version: Some(HLS_VERSION),
                independent_segments: true,
                variants: vec![VariantStream {
                    uri: audio.uri.clone(),
                    bandwidth: audio.peak_bps,
                    average_bandwidth: Some(audio.average_bps),
                    codecs: Some(audio.codec.clone()),
                    ..VariantStream::default()
                }],
                ..m3u8_rs::MasterPlaylist::default()
            };
        }
        m3u8_rs::MasterPlaylist {
            version: Some(HLS_VERSION),
            independent_segments: true,
            alternatives,
            variants,
            ..m3u8_rs::MasterPlaylist::default()
        }
    }

    /// The playlist as UTF-8 text.
    pub fn render(&self) -> Vec<u8> {
        render_with(|out| self.to_m3u8().write_to(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use sluice_media::Timebase;

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000 + secs, 0).unwrap()
    }

    fn text(bytes: Vec<u8>) -> String {
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn live_playlist_lists_segments_with_map_and_program_date_time() {
        let mut playlist = LivePlaylist::new(2, DEFAULT_WINDOW, "init.mp4".into());
        assert!(playlist
            .push_segment("0.m4s".into(), 2.002, at(0))
            .is_empty());
        assert!(playlist.push_segment("1.m4s".into(), 1.9, at(2)).is_empty());
        assert_eq!(
            text(playlist.render()),
            "#EXTM3U
#EXT-X-VERSION:7
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-TARGETDURATION:2
#EXT-X-MAP:URI=\"init.mp4\"
#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:20.000Z
#EXTINF:2.002,
0.m4s
#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:22.000Z
#EXTINF:1.9,
1.m4s
"
        );
    }

    #[test]
    fn a_subtitles_live_playlist_names_no_init_segment() {
        let mut playlist = LivePlaylist::new(2, 2, "unused.mp4".into()).without_init();
        playlist.push_segment("0.vtt".into(), 2.0, at(0));
        playlist.mark_discontinuity();
        playlist.push_segment("1.vtt".into(), 2.0, at(2));
        playlist.push_segment("2.vtt".into(), 2.0, at(4));
        assert_eq!(
            text(playlist.render()),
            "#EXTM3U
#EXT-X-VERSION:7
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-TARGETDURATION:2
#EXT-X-MEDIA-SEQUENCE:1
#EXT-X-DISCONTINUITY
#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:22.000Z
#EXTINF:2,
1.vtt
#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:24.000Z
#EXTINF:2,
2.vtt
"
        );
    }

    #[test]
    fn live_playlist_slides_its_window_and_returns_evicted_uris() {
        let mut playlist = LivePlaylist::new(2, 2, "init.mp4".into());
        playlist.push_segment("0.m4s".into(), 2.0, at(0));
        playlist.push_segment("1.m4s".into(), 2.0, at(2));
        playlist.mark_discontinuity();
        assert_eq!(playlist.push_segment("2.m4s".into(), 2.0, at(4)), ["0.m4s"]);
        assert_eq!(playlist.push_segment("3.m4s".into(), 2.0, at(6)), ["1.m4s"]);
        assert_eq!(playlist.media_sequence(), 2);
        playlist.end();
        assert_eq!(
            text(playlist.render()),
            "#EXTM3U
#EXT-X-VERSION:7
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-TARGETDURATION:2
#EXT-X-MEDIA-SEQUENCE:2
#EXT-X-MAP:URI=\"init.mp4\"
#EXT-X-DISCONTINUITY
#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:24.000Z
#EXTINF:2,
2.m4s
#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:26.000Z
#EXTINF:2,
3.m4s
#EXT-X-ENDLIST
"
        );
    }

    #[test]
    fn evicting_a_discontinuity_advances_the_discontinuity_sequence() {
        let mut playlist = LivePlaylist::new(2, 1, "init.mp4".into());
        playlist.push_segment("0.m4s".into(), 2.0, at(0));
        playlist.mark_discontinuity();
        playlist.push_segment("1.m4s".into(), 2.0, at(2));
        playlist.push_segment("2.m4s".into(), 2.0, at(4));
        let rendered = text(playlist.render());
        assert!(rendered.contains("#EXT-X-MEDIA-SEQUENCE:2\n#EXT-X-DISCONTINUITY-SEQUENCE:1\n"));
        assert!(!rendered.contains("#EXT-X-DISCONTINUITY\n"));
    }

    #[test]
    fn a_new_init_after_a_discontinuity_gets_its_own_map_while_in_the_window() {
        let mut playlist = LivePlaylist::new(2, 3, "a-init.mp4".into());
        playlist.push_segment("0.m4s".into(), 2.0, at(0));
        playlist.push_segment("1.m4s".into(), 2.0, at(2));
        playlist.mark_discontinuity();
        playlist.set_init("b-init.mp4".into());
        playlist.push_segment("2.m4s".into(), 2.0, at(4));
        let rendered = text(playlist.render());
        assert!(
            rendered.contains("#EXT-X-MAP:URI=\"a-init.mp4\"\n#EXT-X-PROGRAM-DATE-TIME"),
            "{rendered}"
        );
        let new_map = rendered.find("#EXT-X-MAP:URI=\"b-init.mp4\"").unwrap();
        let discontinuity = rendered.find("#EXT-X-DISCONTINUITY\n").unwrap();
        let first_new = rendered.find("2.m4s").unwrap();
        assert!(rendered.find("1.m4s").unwrap() < new_map.min(discontinuity));
        assert!(new_map.max(discontinuity) < first_new, "{rendered}");
        // Once the old segments leave, the new init is the oldest segment's map.
        playlist.push_segment("3.m4s".into(), 2.0, at(6));
        playlist.push_segment("4.m4s".into(), 2.0, at(8));
        let rendered = text(playlist.render());
        assert!(!rendered.contains("a-init.mp4"), "{rendered}");
        assert_eq!(rendered.matches("#EXT-X-MAP:").count(), 1, "{rendered}");
        assert!(rendered.contains("#EXT-X-MEDIA-SEQUENCE:2\n"), "{rendered}");
        assert!(!rendered.contains("DISCONTINUITY-SEQUENCE"), "{rendered}");
        playlist.push_segment("5.m4s".into(), 2.0, at(10));
        let rendered = text(playlist.render());
        assert!(rendered.contains("#EXT-X-MEDIA-SEQUENCE:3\n#EXT-X-DISCONTINUITY-SEQUENCE:1\n"));
        assert!(!rendered.contains("#EXT-X-DISCONTINUITY\n"), "{rendered}");
    }

    #[test]
    fn an_event_playlist_keeps_every_segment() {
        let mut playlist = LivePlaylist::event(2, "init.mp4".into());
        for index in 0..500 {
            let evicted = playlist.push_segment(format!("{index}.m4s"), 2.0, at(index * 2));
            assert!(evicted.is_empty());
        }
        assert_eq!(playlist.media_sequence(), 0);
        let rendered = text(playlist.render());
        assert!(
            rendered.contains("#EXT-X-PLAYLIST-TYPE:EVENT\n"),
            "{rendered}"
        );
        assert_eq!(rendered.matches("#EXTINF:").count(), 500);
        assert!(rendered.contains("\n0.m4s\n") && rendered.contains("\n499.m4s\n"));
        assert!(!rendered.contains("ENDLIST"));
        playlist.end();
        assert!(text(playlist.render()).ends_with("499.m4s\n#EXT-X-ENDLIST\n"));
    }

    #[test]
    fn vod_playlist_keeps_discontinuities_and_maps_each_new_init() {
        let mut playlist = VodPlaylist::new("a-init.mp4".into());
        playlist.push_segment("0.m4s".into(), 2.0);
        playlist.mark_discontinuity();
        playlist.push_segment("1.m4s".into(), 2.0);
        playlist.mark_discontinuity();
        playlist.set_init("b-init.mp4".into());
        playlist.push_segment("2.m4s".into(), 2.0);
        playlist.push_segment("3.m4s".into(), 2.0);
        let rendered = text(playlist.render());
        assert_eq!(
            rendered.matches("#EXT-X-DISCONTINUITY\n").count(),
            2,
            "{rendered}"
        );
        assert_eq!(rendered.matches("#EXT-X-MAP:").count(), 2, "{rendered}");
        let new_map = rendered.find("b-init.mp4").unwrap();
        assert!(rendered.find("1.m4s").unwrap() < new_map);
        assert!(new_map < rendered.find("2.m4s").unwrap());
        assert!(rendered.ends_with("3.m4s\n#EXT-X-ENDLIST\n"));
    }

    #[test]
    fn long_segment_raises_target_duration() {
        let mut playlist = LivePlaylist::new(2, DEFAULT_WINDOW, "init.mp4".into());
        playlist.push_segment("0.m4s".into(), 2.4, at(0));
        assert!(text(playlist.render()).contains("#EXT-X-TARGETDURATION:2\n"));
        playlist.push_segment("1.m4s".into(), 3.5, at(2));
        assert!(text(playlist.render()).contains("#EXT-X-TARGETDURATION:4\n"));
    }

    #[test]
    fn bitrate_meter_reports_peak_and_average() {
        let mut meter = BitrateMeter::new();
        meter.add_segment(250_000, MediaTime::new(180_000, Timebase::MPEG)); // 1 Mb/s
        meter.add_segment(750_000, MediaTime::new(180_000, Timebase::MPEG)); // 3 Mb/s
        meter.add_segment(1_000, MediaTime::new(0, Timebase::MPEG));
        assert_eq!(meter.peak_bps(), 3_000_000);
        assert_eq!(meter.average_bps(), 2_000_000);
        assert_eq!(BitrateMeter::new().average_bps(), 0);
    }

    #[test]
    fn average_bandwidth_never_rounds_above_the_peak() {
        // One frame-long segment: 1/30 s is not a whole number of nanoseconds, so the average
        // computed from nanoseconds alone comes out 1 b/s above the peak.
        let mut meter = BitrateMeter::new();
        meter.add_segment(1_000, MediaTime::new(3_000, Timebase::MPEG));
        assert_eq!(meter.peak_bps(), 240_000);
        assert_eq!(meter.average_bps(), 240_000);
    }

    fn variant(
        uri: &str,
        width: u32,
        height: u32,
        peak_bps: u64,
        average_bps: u64,
    ) -> VideoVariant {
        VideoVariant {
            uri: uri.into(),
            codec: "avc1.64001f".into(),
            width,
            height,
            frame_rate: 30_000.0 / 1_001.0,
            peak_bps,
            average_bps,
        }
    }

    #[test]
    fn master_playlist_adds_audio_rendition_bitrate_to_each_variant() {
        let mut master = MasterPlaylist::new();
        master
            .add_variant(variant("720p/index.m3u8", 1280, 720, 3_300_000, 3_000_000))
            .add_variant(variant("360p/index.m3u8", 640, 360, 400_000, 365_000))
            .set_audio(AudioRendition {
                uri: "audio/index.m3u8".into(),
                name: "Main".into(),
                language: Some("en".into()),
                channels: 2,
                codec: "mp4a.40.2".into(),
                peak_bps: 130_000,
                average_bps: 128_000,
            });
        assert_eq!(
            text(master.render()),
            "#EXTM3U
#EXT-X-VERSION:7
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-MEDIA:TYPE=AUDIO,URI=\"audio/index.m3u8\",GROUP-ID=\"audio\",LANGUAGE=\"en\",NAME=\"Main\",DEFAULT=YES,AUTOSELECT=YES,CHANNELS=\"2\"
#EXT-X-STREAM-INF:BANDWIDTH=3430000,AVERAGE-BANDWIDTH=3128000,CODECS=\"avc1.64001f,mp4a.40.2\",RESOLUTION=1280x720,FRAME-RATE=29.97,AUDIO=\"audio\"
720p/index.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=530000,AVERAGE-BANDWIDTH=493000,CODECS=\"avc1.64001f,mp4a.40.2\",RESOLUTION=640x360,FRAME-RATE=29.97,AUDIO=\"audio\"
360p/index.m3u8
"
        );
    }

    #[test]
    fn master_playlist_without_audio_names_only_the_video_codec() {
        let mut master = MasterPlaylist::new();
        master.add_variant(VideoVariant {
            frame_rate: 25.0,
            ..variant("v.m3u8", 416, 234, 160_000, 145_000)
        });
        assert_eq!(
            text(master.render()),
            "#EXTM3U
#EXT-X-VERSION:7
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-STREAM-INF:BANDWIDTH=160000,AVERAGE-BANDWIDTH=145000,CODECS=\"avc1.64001f\",RESOLUTION=416x234,FRAME-RATE=25
v.m3u8
"
        );
    }

    #[test]
    fn vod_playlist_is_typed_ended_and_maps_its_init_once() {
        let mut playlist = VodPlaylist::new("init.mp4".into());
        assert!(playlist.is_empty());
        playlist.push_segment("0.m4s".into(), 6.006);
        playlist.push_segment("1.m4s".into(), 2.5);
        assert_eq!(playlist.len(), 2);
        assert_eq!(
            text(playlist.render()),
            "#EXTM3U
#EXT-X-VERSION:7
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-TARGETDURATION:6
#EXT-X-PLAYLIST-TYPE:VOD
#EXT-X-MAP:URI=\"init.mp4\"
#EXTINF:6.006,
0.m4s
#EXTINF:2.5,
1.m4s
#EXT-X-ENDLIST
"
        );
    }

    #[test]
    fn a_growing_playlist_is_an_event_playlist_without_endlist() {
        let mut playlist = VodPlaylist::new("init.mp4".into());
        playlist.push_segment("0.m4s".into(), 2.0);
        let growing = text(playlist.render_growing());
        assert!(
            growing.contains("#EXT-X-PLAYLIST-TYPE:EVENT\n"),
            "{growing}"
        );
        assert!(!growing.contains("ENDLIST"), "{growing}");
        let done = text(playlist.render());
        assert!(done.contains("#EXT-X-PLAYLIST-TYPE:VOD\n"), "{done}");
        assert!(done.ends_with("#EXT-X-ENDLIST\n"), "{done}");
    }

    #[test]
    fn i_frame_playlist_lists_byte_ranges_and_the_master_points_at_it() {
        let mut playlist = VodPlaylist::i_frames("init.mp4".into());
        playlist.push_byte_range("segment-0.m4s".into(), 2.0, 4_321);
        playlist.push_byte_range("segment-1.m4s".into(), 6.0, 5_000);
        assert_eq!(
            text(playlist.render()),
            "#EXTM3U
#EXT-X-VERSION:7
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-TARGETDURATION:6
#EXT-X-PLAYLIST-TYPE:VOD
#EXT-X-I-FRAMES-ONLY
#EXT-X-MAP:URI=\"init.mp4\"
#EXT-X-BYTERANGE:4321@0
#EXTINF:2,
segment-0.m4s
#EXT-X-BYTERANGE:5000@0
#EXTINF:6,
segment-1.m4s
#EXT-X-ENDLIST
"
        );

        let mut master = MasterPlaylist::new();
        master
            .add_variant(variant("v0/index.m3u8", 640, 360, 900_000, 800_000))
            .add_i_frame_variant(IFrameVariant {
                uri: "v0/iframes.m3u8".into(),
                codec: "avc1.64001f".into(),
                width: 640,
                height: 360,
                peak_bps: 90_000,
                average_bps: 80_000,
            });
        let rendered = text(master.render());
        assert!(
            rendered.ends_with(
                "v0/index.m3u8\n#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=90000,AVERAGE-BANDWIDTH=80000,CODECS=\"avc1.64001f\",RESOLUTION=640x360,URI=\"v0/iframes.m3u8\"\n"
            ),
            "{rendered}"
        );
    }

    #[test]
    fn audio_alone_is_the_only_variant_of_the_master_playlist() {
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
        let rendered = text(master.render());
        assert!(
            rendered.contains(
                "#EXT-X-STREAM-INF:BANDWIDTH=130000,AVERAGE-BANDWIDTH=128000,CODECS=\"mp4a.40.2\"\na0/index.m3u8"
            ),
            "{rendered}"
        );
        assert!(!rendered.contains("EXT-X-MEDIA:"), "{rendered}");
    }

    /// A 1 s low-latency playlist of `segments` complete segments of three 1/3 s parts each,
    /// then `open` parts of the next segment.
    fn low_latency_playlist(segments: u64, open: u64) -> LivePlaylist {
        let mut playlist = LivePlaylist::new(1, 20, "s-init.mp4".into()).with_parts(0.334);
        let part = |msn: u64, index: u64| PartEntry {
            uri: format!("s-{msn}.{index}.m4s"),
            duration_secs: 1.0 / 3.0,
            independent: index == 0,
        };
        for msn in 0..segments {
            for index in 0..3 {
                let next = if index == 2 {
                    format!("s-{}.0.m4s", msn + 1)
                } else {
                    format!("s-{msn}.{}.m4s", index + 1)
                };
                let date = at(msn as i64) + chrono::Duration::milliseconds(333 * index as i64);
                playlist.push_part(part(msn, index), date, next);
            }
            playlist.push_segment(format!("s-{msn}.m4s"), 1.0, at(msn as i64));
        }
        for index in 0..open {
            let date = at(segments as i64) + chrono::Duration::milliseconds(333 * index as i64);
            let next = format!("s-{segments}.{}.m4s", index + 1);
            playlist.push_part(part(segments, index), date, next);
        }
        playlist
    }

    fn plain(uri: &str) -> String {
        uri.to_owned()
    }

    #[test]
    fn blocking_requests_past_three_seconds_of_parts_are_too_far_ahead() {
        // Part target 0.334 s: the Advance Part Limit is 9 parts; the last part is (4, 1).
        let playlist = low_latency_playlist(4, 2);
        assert!(!playlist.part_too_far_ahead(4, 9));
        assert!(playlist.part_too_far_ahead(4, 10));
        assert!(!playlist.part_too_far_ahead(5, 8));
        assert!(playlist.part_too_far_ahead(5, 9));
        assert!(
            !playlist.part_too_far_ahead(3, 1000),
            "behind the last part"
        );
        // Segment 4 complete with its last part listed: a part past it is segment 5's first.
        let complete = low_latency_playlist(5, 0);
        assert_eq!(complete.last_part(), Some((4, 2)));
        assert!(!complete.part_too_far_ahead(4, 1000));
        let slow = LivePlaylist::new(2, 6, "init.mp4".into()).with_parts(1.0);
        assert!(!slow.part_too_far_ahead(0, 50), "no part listed yet");
    }

    #[test]
    fn a_low_latency_playlist_lists_recent_parts_the_preload_hint_and_rendition_reports() {
        let playlist = low_latency_playlist(4, 2);
        let reports = [RenditionReport {
            uri: "../a0/index.m3u8".into(),
            last_msn: 4,
            last_part: 1,
        }];
        let view = LowLatencyView {
            skip: false,
            reports: &reports,
            uri: &plain,
        };
        assert_eq!(playlist.last_part(), Some((4, 1)));
        assert!(playlist.has_part(3, 2) && playlist.has_part(4, 1));
        // Past segment 3's last part: part 0 of segment 4, listed.
        assert!(playlist.has_part(3, 7));
        assert!(!playlist.has_part(4, 2) && !playlist.has_part(5, 0));
        assert_eq!(
            text(playlist.render_low_latency(&view)),
            "#EXTM3U
#EXT-X-VERSION:9
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-TARGETDURATION:1
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=6,PART-HOLD-BACK=1.002,HOLD-BACK=3
#EXT-X-PART-INF:PART-TARGET=0.334
#EXT-X-MAP:URI=\"s-init.mp4\"
#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:20.000Z
#EXTINF:1,
s-0.m4s
#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:21.000Z
#EXT-X-PART:DURATION=0.33333,URI=\"s-1.0.m4s\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.33333,URI=\"s-1.1.m4s\"
#EXT-X-PART:DURATION=0.33333,URI=\"s-1.2.m4s\"
#EXTINF:1,
s-1.m4s
#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:22.000Z
#EXT-X-PART:DURATION=0.33333,URI=\"s-2.0.m4s\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.33333,URI=\"s-2.1.m4s\"
#EXT-X-PART:DURATION=0.33333,URI=\"s-2.2.m4s\"
#EXTINF:1,
s-2.m4s
#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:23.000Z
#EXT-X-PART:DURATION=0.33333,URI=\"s-3.0.m4s\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.33333,URI=\"s-3.1.m4s\"
#EXT-X-PART:DURATION=0.33333,URI=\"s-3.2.m4s\"
#EXTINF:1,
s-3.m4s
#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:24.000Z
#EXT-X-PART:DURATION=0.33333,URI=\"s-4.0.m4s\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.33333,URI=\"s-4.1.m4s\"
#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"s-4.2.m4s\"
#EXT-X-RENDITION-REPORT:URI=\"../a0/index.m3u8\",LAST-MSN=4,LAST-PART=1
"
        );
        // The regular form, stored for players without LL-HLS, has none of it.
        assert!(!text(playlist.render()).contains("PART"));
        let rendered = text(playlist.render_low_latency(&view));
        crate::ll_hls_conformance::check(&rendered).unwrap_or_else(|e| panic!("{e:#?}"));
    }

    #[test]
    fn a_delta_update_skips_only_segments_before_the_skip_boundary() {
        let playlist = low_latency_playlist(10, 1);
        let with_token = |uri: &str| format!("{uri}?token=t");
        let view = LowLatencyView {
            skip: true,
            reports: &[],
            uri: &with_token,
        };
        let delta = text(playlist.render_low_latency(&view));
        // Ten 1 s segments: segments 0 to 3 end 6 s or more before the end of the last one
        // (CAN-SKIP-UNTIL is 6 s); the open segment's parts do not count.
        assert!(
            delta.contains("#EXT-X-SKIP:SKIPPED-SEGMENTS=4\n"),
            "{delta}"
        );
        assert!(!delta.contains("s-3.m4s"));
        assert!(delta.contains(
            "#EXT-X-MAP:URI=\"s-init.mp4?token=t\"\n#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:24.000Z\n#EXTINF:1,\ns-4.m4s?token=t\n"
        ), "{delta}");
        assert!(delta.contains("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"s-10.1.m4s?token=t\"\n"));
        let view = LowLatencyView {
            skip: false,
            reports: &[],
            uri: &with_token,
        };
        let full = text(playlist.render_low_latency(&view));
        assert!(!full.contains("EXT-X-SKIP") && full.contains("s-0.m4s?token=t"));
    }

    #[test]
    fn an_ended_low_latency_playlist_has_no_preload_hint() {
        let mut playlist = low_latency_playlist(2, 0);
        playlist.end();
        let view = LowLatencyView {
            skip: false,
            reports: &[],
            uri: &plain,
        };
        let ended = text(playlist.render_low_latency(&view));
        assert!(ended.ends_with("s-1.m4s\n#EXT-X-ENDLIST\n"), "{ended}");
        assert!(playlist.is_ended());
    }
}
