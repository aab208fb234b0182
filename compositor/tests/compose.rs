//! The compositor end to end with real codecs: participants' solid-colour pictures encoded
//! with libvpx (VP8) and libx264 (H.264, Annex B) through libavcodec, pushed at 30 fps on a
//! synthetic clock, and the canvas read back pixel by pixel; microphones encoded with libopus
//! and the AAC mix decoded back, to check that pictures and sound stay together.

use std::f64::consts::PI;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ffmpeg_next::codec::{self, decoder, encoder};
use ffmpeg_next::format::{sample::Type as SampleType, Pixel, Sample};
use ffmpeg_next::{frame, ChannelLayout, Dictionary, Rational};
use sluice_compositor::layout::{self, Rect};
use sluice_compositor::{
    Compositor, CompositorSettings, Layout, Member, Output, VideoCodec, PLAYOUT_DELAY,
};
use sluice_media::{AudioSpecificConfig, Packet, Timebase, TrackKind};

const WIDTH: u32 = 1280;
const HEIGHT: u32 = 720;
const FRAME: Duration = Duration::from_nanos(1_000_000_000 / 30);

/// A colour as limited-range BT.601 Y, U and V.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Yuv(u8, u8, u8);

const RED: Yuv = Yuv(81, 90, 240);
const GREEN: Yuv = Yuv(145, 54, 34);
const BLUE: Yuv = Yuv(41, 240, 110);
const YELLOW: Yuv = Yuv(210, 16, 146);
const BLACK: Yuv = Yuv(16, 128, 128);
const WHITE: Yuv = Yuv(235, 128, 128);
/// The placeholder tile's colour.
const PLACEHOLDER: Yuv = Yuv(48, 128, 128);

/// One participant's camera: a solid colour, encoded one frame at a time.
struct Camera {
    codec: VideoCodec,
    encoder: encoder::Video,
    picture: frame::Video,
    frames: i64,
}

impl Camera {
    fn vp8(colour: Yuv) -> Self {
        let mut options = Dictionary::new();
        options.set("deadline", "realtime");
        options.set("cpu-used", "8");
        options.set("lag-in-frames", "0");
        Camera::open("libvpx", VideoCodec::Vp8, colour, options)
    }

    fn h264(colour: Yuv) -> Self {
        let mut options = Dictionary::new();
        options.set("preset", "ultrafast");
        options.set("tune", "zerolatency");
        options.set("profile", "baseline");
        Camera::open("libx264", VideoCodec::H264, colour, options)
    }

    /// A 320×240 camera: 4:3, so a 16:9 tile crops its top and bottom.
    fn open(name: &str, codec: VideoCodec, colour: Yuv, options: Dictionary) -> Self {
        ffmpeg_next::init().unwrap();
        let found = encoder::find_by_name(name).unwrap_or_else(|| panic!("{name} is missing"));
        let mut context = codec::Context::new_with_codec(found)
            .encoder()
            .video()
            .unwrap();
        context.set_width(320);
        context.set_height(240);
        context.set_format(Pixel::YUV420P);
        context.set_time_base(Rational::new(1, 30));
        context.set_frame_rate(Some(Rational::new(30, 1)));
        context.set_gop(600);
        let encoder = context.open_as_with(found, options).unwrap();
        let mut camera = Camera {
            codec,
            encoder,
            picture: frame::Video::new(Pixel::YUV420P, 320, 240),
            frames: 0,
        };
        camera.paint(colour);
        camera
    }

    /// Makes the next frames `colour`.
    fn paint(&mut self, colour: Yuv) {
        for (plane, value) in [(0, colour.0), (1, colour.1), (2, colour.2)] {
            self.picture.data_mut(plane).fill(value);
        }
    }

    /// The next frame and whether it is a key frame.
    fn next_frame(&mut self) -> (Bytes, bool) {
        self.picture.set_pts(Some(self.frames));
        self.frames += 1;
        self.encoder.send_frame(&self.picture).unwrap();
        let mut packet = ffmpeg_next::Packet::empty();
        self.encoder.receive_packet(&mut packet).unwrap();
        (
            Bytes::copy_from_slice(packet.data().unwrap()),
            packet.is_key(),
        )
    }
}

fn member(id: &str, camera: bool) -> Member {
    Member {
        id: id.to_owned(),
        name: id.to_uppercase(),
        camera: camera.then(|| format!("{id}-camera")),
        screen_share: None,
        microphone: None,
    }
}

/// A room on a synthetic clock: every step pushes one frame of each camera and polls.
struct Room {
    compositor: Compositor,
    members: Vec<Member>,
    cameras: Vec<(String, Camera)>,
    now: Instant,
    pictures: Vec<Packet>,
}

impl Room {
    fn new(layout: Layout) -> Self {
        let start = Instant::now();
        let settings = CompositorSettings {
            width: WIDTH,
            height: HEIGHT,
            frame_rate: 30,
            layout,
        };
        Room {
            compositor: Compositor::new(settings, start).unwrap(),
            members: Vec::new(),
            cameras: Vec::new(),
            now: start,
            pictures: Vec::new(),
        }
    }

    fn join(&mut self, id: &str, camera: Camera) {
        self.members.push(member(id, true));
        self.cameras.push((format!("{id}-camera"), camera));
        self.compositor.set_members(self.members.clone());
    }

    fn leave(&mut self, id: &str) {
        self.members.retain(|member| member.id != id);
        self.cameras
            .retain(|(track, _)| track != &format!("{id}-camera"));
        self.compositor.set_members(self.members.clone());
    }

    /// Runs `duration` of 30 fps video from every camera.
    fn run(&mut self, duration: Duration) {
        let steps = duration.as_nanos() / FRAME.as_nanos();
        for _ in 0..steps {
            self.now += FRAME;
            for (track, camera) in &mut self.cameras {
                let (frame, keyframe) = camera.next_frame();
                let rtp_time = (camera.frames * 3000) as u32;
                self.compositor.push_video(
                    track,
                    camera.codec,
                    frame,
                    keyframe,
                    rtp_time,
                    self.now,
                );
            }
            self.poll();
        }
    }

    /// Lets `duration` pass with no frames.
    fn idle(&mut self, duration: Duration) {
        self.now += duration;
        self.poll();
    }

    fn poll(&mut self) {
        for output in self.compositor.poll(self.now) {
            if let Output::Picture(picture) = output {
                self.pictures.push(picture);
            }
        }
    }

    fn tiles(&self, layout: Layout, speaker: Option<&str>) -> Vec<(String, Rect)> {
        layout::place(layout, WIDTH, HEIGHT, &self.members, speaker)
            .into_iter()
            .map(|tile| (self.members[tile.member].id.clone(), tile.rect))
            .collect()
    }

    fn last_picture(&self) -> &Packet {
        self.pictures.last().expect("a picture")
    }
}

fn pixel(picture: &Packet, x: u32, y: u32) -> Yuv {
    let luma = (WIDTH * HEIGHT) as usize;
    let chroma = ((y / 2) * (WIDTH / 2) + x / 2) as usize;
    let data = &picture.data;
    Yuv(
        data[(y * WIDTH + x) as usize],
        data[luma + chroma],
        data[luma + luma / 4 + chroma],
    )
}

fn near(actual: Yuv, expected: Yuv) -> bool {
    actual.0.abs_diff(expected.0) <= 10
        && actual.1.abs_diff(expected.1) <= 10
        && actual.2.abs_diff(expected.2) <= 10
}

#[track_caller]
fn assert_tile_shows(picture: &Packet, rect: Rect, colour: Yuv) {
    let (x, y) = rect.centre();
    let actual = pixel(picture, x, y);
    assert!(
        near(actual, colour),
        "tile {rect:?} shows {actual:?}, not {colour:?}"
    );
}

/// A point of the tile away from its centre and its label.
fn upper_quarter(rect: Rect) -> (u32, u32) {
    (rect.x + rect.width / 4, rect.y + rect.height / 4)
}

#[test]
fn participants_appear_in_their_grid_tiles_with_their_names() {
    let mut room = Room::new(Layout::Grid);
    room.join("ann", Camera::vp8(RED));
    room.join("bob", Camera::vp8(GREEN));
    room.join("cat", Camera::vp8(BLUE));
    room.run(Duration::from_millis(500));

    let picture = room.last_picture();
    assert_eq!(picture.kind, TrackKind::Video);
    assert_eq!(picture.timebase, Timebase::MPEG);
    assert_eq!(picture.pts, picture.dts);
    assert!(picture.keyframe);
    assert_eq!(picture.data.len(), (WIDTH * HEIGHT * 3 / 2) as usize);
    let tiles = room.tiles(Layout::Grid, None);
    for ((_, rect), colour) in tiles.iter().zip([RED, GREEN, BLUE]) {
        assert_tile_shows(picture, *rect, colour);
        // The name's box is bottom-left: its text is lighter than the picture, its chroma
        // neutral.
        let (left, bottom) = (rect.x + 8, rect.y + rect.height - 8);
        let label = (left..left + 40).flat_map(|x| (bottom - 28..bottom).map(move |y| (x, y)));
        let lightest = label.map(|(x, y)| pixel(picture, x, y).0).max().unwrap();
        assert!(lightest > colour.0 + 50, "label of {rect:?}: {lightest}");
        assert_eq!(pixel(picture, left + 2, bottom - 2).1, 128);
    }
}

#[test]
fn a_fourth_member_reflows_the_grid_and_a_leaving_member_frees_its_tile() {
    let mut room = Room::new(Layout::Grid);
    room.join("ann", Camera::vp8(RED));
    room.join("bob", Camera::vp8(GREEN));
    room.join("cat", Camera::vp8(BLUE));
    room.run(Duration::from_millis(300));
    room.join("dan", Camera::vp8(YELLOW));
    room.run(Duration::from_millis(500));
    let tiles = room.tiles(Layout::Grid, None);
    assert_eq!(tiles.len(), 4);
    for ((_, rect), colour) in tiles.iter().zip([RED, GREEN, BLUE, YELLOW]) {
        assert_tile_shows(room.last_picture(), *rect, colour);
    }

    let bobs_tile = tiles[1].1;
    room.leave("bob");
    room.run(Duration::from_millis(100));
    let tiles = room.tiles(Layout::Grid, None);
    for ((_, rect), colour) in tiles.iter().zip([RED, BLUE, YELLOW]) {
        assert_tile_shows(room.last_picture(), *rect, colour);
    }
    let (x, y) = bobs_tile.centre();
    assert!(!near(pixel(room.last_picture(), x, y), GREEN));
}

#[test]
fn speaker_layout_puts_the_active_speaker_in_the_big_tile() {
    let mut room = Room::new(Layout::Grid);
    room.join("ann", Camera::vp8(RED));
    room.join("bob", Camera::vp8(GREEN));
    room.join("cat", Camera::vp8(BLUE));
    room.compositor.set_layout(Layout::Speaker);
    room.compositor.set_active_speaker(Some("cat".to_owned()));
    room.run(Duration::from_millis(400));
    let tiles = room.tiles(Layout::Speaker, Some("cat"));
    assert_eq!(tiles[0].0, "cat");
    assert!(tiles[0].1.width > 2 * tiles[1].1.width);
    assert_tile_shows(room.last_picture(), tiles[0].1, BLUE);
    assert_tile_shows(room.last_picture(), tiles[1].1, RED);
    assert_tile_shows(room.last_picture(), tiles[2].1, GREEN);

    room.compositor.set_active_speaker(Some("bob".to_owned()));
    room.run(Duration::from_millis(100));
    let tiles = room.tiles(Layout::Speaker, Some("bob"));
    assert_tile_shows(room.last_picture(), tiles[0].1, GREEN);
}

#[test]
fn a_frozen_camera_holds_its_last_picture_then_shows_the_placeholder() {
    let mut room = Room::new(Layout::Grid);
    room.join("ann", Camera::vp8(RED));
    room.run(Duration::from_millis(400));
    let (_, rect) = room.tiles(Layout::Grid, None)[0];
    let (x, y) = upper_quarter(rect);

    room.idle(Duration::from_millis(1500));
    assert!(near(pixel(room.last_picture(), x, y), RED));

    room.idle(Duration::from_millis(1000));
    assert_eq!(pixel(room.last_picture(), x, y), PLACEHOLDER);
}

#[test]
fn a_member_without_a_camera_shows_the_placeholder_with_the_name_in_the_middle() {
    let mut room = Room::new(Layout::Grid);
    room.members.push(member("eve", false));
    room.compositor.set_members(room.members.clone());
    room.idle(Duration::from_millis(500));
    let (_, rect) = room.tiles(Layout::Grid, None)[0];
    let (x, y) = upper_quarter(rect);
    assert_eq!(pixel(room.last_picture(), x, y), PLACEHOLDER);
    let (centre_x, centre_y) = rect.centre();
    let lightest = (centre_x - 40..centre_x + 40)
        .map(|x| pixel(room.last_picture(), x, centre_y - 4).0)
        .max()
        .unwrap();
    assert!(
        lightest > 200,
        "the name is drawn in the middle: {lightest}"
    );
}

#[test]
fn pictures_come_at_a_constant_rate_without_any_input() {
    let mut room = Room::new(Layout::Grid);
    let start = room.now;
    assert_eq!(room.compositor.next_deadline(), start + PLAYOUT_DELAY);
    for _ in 0..100 {
        room.idle(Duration::from_millis(10));
    }
    let pts: Vec<i64> = room.pictures.iter().map(|picture| picture.pts).collect();
    // Picture n is due at n / 30 s + PLAYOUT_DELAY.
    let due = ((Duration::from_secs(1) - PLAYOUT_DELAY).as_millis() * 30 / 1000 + 1) as usize;
    assert_eq!(pts.len(), due, "{pts:?}");
    assert!(pts
        .iter()
        .enumerate()
        .all(|(n, &pts)| pts == n as i64 * 3000));
    assert!(room.compositor.next_deadline() > room.now);
}

#[test]
fn a_poll_five_seconds_late_skips_ahead_instead_of_bursting() {
    let mut room = Room::new(Layout::Grid);
    room.idle(Duration::from_millis(500));
    let before = room.pictures.len();
    room.idle(Duration::from_secs(5));
    assert_eq!(room.pictures.len(), before + 1);
    let skipped = room.compositor.skipped_pictures();
    assert!((145..=150).contains(&skipped), "{skipped}");
    // The clock keeps counting over the skipped pictures.
    let last = room.pictures.last().unwrap().pts;
    assert_eq!(last, (before as i64 + skipped as i64) * 3000);
    room.idle(FRAME);
    assert_eq!(room.pictures.last().unwrap().pts, last + 3000);
}

#[test]
fn an_h264_annex_b_camera_decodes() {
    let mut room = Room::new(Layout::Grid);
    room.join("ann", Camera::h264(GREEN));
    room.join("bob", Camera::vp8(RED));
    room.run(Duration::from_millis(400));
    let tiles = room.tiles(Layout::Grid, None);
    assert_tile_shows(room.last_picture(), tiles[0].1, GREEN);
    assert_tile_shows(room.last_picture(), tiles[1].1, RED);
}

#[test]
fn key_frames_are_asked_for_until_one_decodes_at_most_every_500_ms() {
    let mut room = Room::new(Layout::Grid);
    let mut camera = Camera::vp8(RED);
    room.members.push(member("ann", true));
    room.compositor.set_members(room.members.clone());
    assert_eq!(room.compositor.take_keyframe_requests(), ["ann-camera"]);
    assert!(room.compositor.take_keyframe_requests().is_empty());

    // A frame that is not a key frame is dropped; the request is repeated 500 ms later.
    let (key, keyframe) = camera.next_frame();
    assert!(keyframe);
    let (delta, keyframe) = camera.next_frame();
    assert!(!keyframe);
    room.now += Duration::from_millis(300);
    let now = room.now;
    room.compositor
        .push_video("ann-camera", VideoCodec::Vp8, delta, false, 3000, now);
    assert!(room.compositor.take_keyframe_requests().is_empty());
    room.idle(Duration::from_millis(300));
    assert_eq!(room.compositor.take_keyframe_requests(), ["ann-camera"]);

    // Once a key frame decodes, no more requests.
    room.idle(Duration::from_millis(600));
    let now = room.now;
    room.compositor
        .push_video("ann-camera", VideoCodec::Vp8, key, true, 6000, now);
    assert!(room.compositor.take_keyframe_requests().is_empty());

    // A frame that does not decode asks again.
    let garbage = Bytes::from_static(&[0xff; 64]);
    room.compositor
        .push_video("ann-camera", VideoCodec::Vp8, garbage, false, 9000, now);
    assert_eq!(room.compositor.take_keyframe_requests(), ["ann-camera"]);
}

#[test]
fn settings_out_of_bounds_are_refused() {
    let settings = |width, height, frame_rate| CompositorSettings {
        width,
        height,
        frame_rate,
        layout: Layout::Grid,
    };
    let start = Instant::now();
    for refused in [
        settings(1281, 720, 30),
        settings(32, 720, 30),
        settings(8192, 720, 30),
        settings(1280, 720, 0),
        settings(1280, 720, 120),
    ] {
        let error = Compositor::new(refused.clone(), start).err();
        assert!(error.is_some(), "{refused:?} accepted");
    }
    assert!(Compositor::new(settings(1920, 1080, 30), start).is_ok());
}

/// The mix's sample rate and the RTP clock of Opus.
const SAMPLE_RATE: u32 = 48_000;
/// Samples in one 20 ms Opus packet.
const PACKET_SAMPLES: usize = 960;
/// When the camera captures its first frame, after the compositor's start.
const CAMERA_FROM: Duration = Duration::from_millis(13);
/// When the microphone captures its first sample, after the compositor's start.
const MICROPHONE_FROM: Duration = Duration::from_millis(4);
/// The instant the camera's frame captured 1 s after its first turns white and the
/// microphone's tone starts.
const FLASH_AT: Duration = Duration::from_millis(1_013);
/// How long the flash and the tone last.
const FLASH_FOR: Duration = Duration::from_millis(200);
/// The tone's frequency.
const TONE_HZ: f64 = 1_000.0;
/// How long the participant sends.
const SENDING_FOR: Duration = Duration::from_secs(2);
/// Largest lip-sync error viewers do not notice, and the bound the composite keeps.
const LIP_SYNC: Duration = Duration::from_millis(80);

/// Deterministic pseudo-random numbers (xorshift64).
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A network delay from `from` to `to` milliseconds, to the microsecond.
    fn delay(&mut self, from: u64, to: u64) -> Duration {
        Duration::from_micros(1_000 * from + self.next() % (1_000 * (to - from) + 1))
    }
}

/// What the network hands the compositor.
enum Sent {
    Video {
        frame: Bytes,
        keyframe: bool,
        rtp_time: u32,
    },
    Audio {
        opus: Bytes,
        rtp_time: u32,
    },
}

/// One frame or packet and when it arrives, after the compositor's start.
struct Arrival {
    at: Duration,
    sent: Sent,
}

/// Where the flash and the tone come out, in seconds on the composite's timelines.
struct Onsets {
    picture: f64,
    sound: f64,
}

impl Onsets {
    /// How much later the flash is seen than the tone is heard, in seconds.
    fn skew(&self) -> f64 {
        self.picture - self.sound
    }
}

/// One participant whose camera flashes white at [`FLASH_AT`] while its microphone plays a
/// tone from the same instant, composed with the camera's frames arriving 10 to 40 ms after
/// capture plus `video_path`, and the microphone's packets 5 to 30 ms after they are sent (a
/// packet is sent once its 20 ms are captured). Each RTP clock starts at a random offset.
fn flash_and_tone(video_path: Duration) -> Onsets {
    let mut random = Random(0x5eed_1a75_cafe_f00d);
    let mut arrivals = Vec::new();

    let video_rtp_start = random.next() as u32;
    let mut camera = Camera::vp8(BLACK);
    let frames = SENDING_FOR.as_nanos() * 30 / 1_000_000_000;
    for index in 0..frames as u64 {
        let captured = CAMERA_FROM + Duration::from_nanos(index * 1_000_000_000 / 30);
        let flashing = (FLASH_AT..FLASH_AT + FLASH_FOR).contains(&captured);
        camera.paint(if flashing { WHITE } else { BLACK });
        let (frame, keyframe) = camera.next_frame();
        arrivals.push(Arrival {
            at: captured + random.delay(10, 40) + video_path,
            sent: Sent::Video {
                frame,
                keyframe,
                rtp_time: video_rtp_start.wrapping_add(index as u32 * 3_000),
            },
        });
    }

    let audio_rtp_start = random.next() as u32;
    let samples: Vec<f32> = (0..SENDING_FOR.as_nanos() * u128::from(SAMPLE_RATE) / 1_000_000_000)
        .map(|sample| {
            let captured = MICROPHONE_FROM
                + Duration::from_nanos((sample * 1_000_000_000 / u128::from(SAMPLE_RATE)) as u64);
            let since_flash = captured.saturating_sub(FLASH_AT).as_secs_f64();
            let sounding = (FLASH_AT..FLASH_AT + FLASH_FOR).contains(&captured);
            if sounding {
                (0.5 * (2.0 * PI * TONE_HZ * since_flash).sin()) as f32
            } else {
                0.0
            }
        })
        .collect();
    for (index, opus) in opus_packets(&samples).into_iter().enumerate() {
        let sent = MICROPHONE_FROM + Duration::from_millis(20 * (index as u64 + 1));
        arrivals.push(Arrival {
            at: sent + random.delay(5, 30),
            sent: Sent::Audio {
                opus,
                rtp_time: audio_rtp_start.wrapping_add((index * PACKET_SAMPLES) as u32),
            },
        });
    }
    arrivals.sort_by_key(|arrival| arrival.at);

    let start = Instant::now();
    let settings = CompositorSettings {
        width: WIDTH,
        height: HEIGHT,
        frame_rate: 30,
        layout: Layout::Grid,
    };
    let mut compositor = Compositor::new(settings, start).unwrap();
    let members = vec![Member {
        microphone: Some("ann-microphone".to_owned()),
        ..member("ann", true)
    }];
    compositor.set_members(members.clone());
    let (mut pictures, mut sound) = (Vec::new(), Vec::new());
    let mut arrivals = arrivals.into_iter().peekable();
    let mut now = Duration::ZERO;
    while now <= SENDING_FOR + video_path + Duration::from_millis(500) {
        while let Some(arrival) = arrivals.next_if(|arrival| arrival.at <= now) {
            let at = start + arrival.at;
            match arrival.sent {
                Sent::Video {
                    frame,
                    keyframe,
                    rtp_time,
                } => compositor.push_video(
                    "ann-camera",
                    VideoCodec::Vp8,
                    frame,
                    keyframe,
                    rtp_time,
                    at,
                ),
                Sent::Audio { opus, rtp_time } => {
                    compositor.push_audio("ann-microphone", rtp_time, opus, at)
                }
            }
        }
        for output in compositor.poll(start + now) {
            match output {
                Output::Picture(picture) => pictures.push(picture),
                Output::Audio(packet) => sound.push(packet),
            }
        }
        now += Duration::from_millis(5);
    }
    assert_eq!(compositor.audio_stats(), Default::default());

    let tile = layout::place(Layout::Grid, WIDTH, HEIGHT, &members, None)[0].rect;
    let (x, y) = upper_quarter(tile);
    let flashed = pictures
        .iter()
        .find(|picture| near(pixel(picture, x, y), WHITE))
        .expect("the flash is shown");
    Onsets {
        picture: flashed.pts as f64 / f64::from(Timebase::MPEG.0),
        sound: tone_onset(compositor.audio_config(), &sound),
    }
}

/// A microphone's samples (mono, 48 kHz) as 20 ms Opus packets, from libopus.
fn opus_packets(samples: &[f32]) -> Vec<Bytes> {
    ffmpeg_next::init().unwrap();
    let found = encoder::find_by_name("libopus").expect("libopus is missing");
    let mut context = codec::Context::new_with_codec(found);
    context.set_flags(codec::Flags::GLOBAL_HEADER);
    let mut settings = context.encoder().audio().unwrap();
    settings.set_rate(SAMPLE_RATE as i32);
    settings.set_channel_layout(ChannelLayout::MONO);
    settings.set_format(Sample::F32(SampleType::Packed));
    settings.set_bit_rate(64_000);
    settings.set_time_base(Rational::new(1, SAMPLE_RATE as i32));
    let mut opus = settings.open_as(found).unwrap();
    let mut packets = Vec::new();
    let mut receive = |opus: &mut encoder::Audio| {
        let mut packet = ffmpeg_next::Packet::empty();
        while opus.receive_packet(&mut packet).is_ok() {
            packets.push(Bytes::copy_from_slice(packet.data().unwrap()));
        }
    };
    for (index, chunk) in samples.chunks_exact(PACKET_SAMPLES).enumerate() {
        let mut frame = frame::Audio::new(
            Sample::F32(SampleType::Packed),
            PACKET_SAMPLES,
            ChannelLayout::MONO,
        );
        frame.set_rate(SAMPLE_RATE);
        frame.set_pts(Some((index * PACKET_SAMPLES) as i64));
        frame.plane_mut::<f32>(0).copy_from_slice(chunk);
        opus.send_frame(&frame).unwrap();
        receive(&mut opus);
    }
    packets
}

/// When the tone starts in the AAC mix `packets`, in seconds on the mix's timeline: the middle
/// of the first 10 ms window with at least half the energy of the loudest one.
fn tone_onset(config: &AudioSpecificConfig, packets: &[Packet]) -> f64 {
    let aac = decoder::find(codec::Id::AAC).unwrap();
    let mut aac = codec::Context::new_with_codec(aac)
        .decoder()
        .audio()
        .unwrap();
    let mut decoded = frame::Audio::empty();
    let mut left = Vec::new();
    for packet in packets {
        aac.send_packet(&ffmpeg_next::Packet::copy(&adts(config, &packet.data)))
            .unwrap();
        while aac.receive_frame(&mut decoded).is_ok() {
            left.extend_from_slice(decoded.plane::<f32>(0));
        }
    }
    // The first packet is the encoder's priming frame, stamped before sample 0 of the mix.
    let first_sample = packets[0].pts;
    let window = SAMPLE_RATE as usize / 100;
    let energies: Vec<f64> = left
        .windows(window)
        .step_by(SAMPLE_RATE as usize / 1_000)
        .map(|samples| samples.iter().map(|s| f64::from(*s).powi(2)).sum())
        .collect();
    let loudest = energies.iter().copied().fold(0.0, f64::max);
    let first_loud = energies
        .iter()
        .position(|energy| *energy >= loudest / 2.0)
        .unwrap();
    let middle = first_sample + (first_loud * SAMPLE_RATE as usize / 1_000 + window / 2) as i64;
    middle as f64 / f64::from(SAMPLE_RATE)
}

/// A raw AAC frame with the ADTS header (ISO/IEC 13818-7 §6.2) that lets the decoder open
/// without the AudioSpecificConfig.
fn adts(config: &AudioSpecificConfig, frame: &[u8]) -> Vec<u8> {
    const FREQUENCY_INDEX_48_KHZ: u8 = 3;
    assert_eq!(config.sample_rate, SAMPLE_RATE);
    let length = frame.len() + 7;
    let profile = config.object_type - 1;
    let mut out = vec![
        0xFF,
        0xF1,
        (profile << 6) | (FREQUENCY_INDEX_48_KHZ << 2) | (config.channels >> 2),
        ((config.channels & 3) << 6) | (length >> 11) as u8,
        (length >> 3) as u8,
        ((length & 7) << 5) as u8 | 0x1F,
        0xFC,
    ];
    out.extend_from_slice(frame);
    out
}

/// A camera's flash and a microphone's tone captured at the same instant come out of the
/// composite within [`LIP_SYNC`] of each other, through network jitter on both paths (video
/// 10 to 40 ms, audio 5 to 30 ms after sending) and unrelated RTP clock offsets: the picture
/// that first shows the flash and the first loud 10 ms of the mix carry times that close on
/// the composite's common timeline (pictures on 90 kHz, audio on 48 kHz, both from the start).
#[test]
fn a_flash_and_a_tone_sent_together_come_out_together() {
    let onsets = flash_and_tone(Duration::ZERO);
    println!(
        "flash seen at {:.4} s, tone heard at {:.4} s, skew {:+.1} ms",
        onsets.picture,
        onsets.sound,
        1e3 * onsets.skew()
    );
    assert!(
        onsets.skew().abs() <= LIP_SYNC.as_secs_f64(),
        "the flash is seen {:+.1} ms after the tone is heard",
        1e3 * onsets.skew()
    );
}

/// The compositor cannot undo a difference between a participant's video and audio paths: it
/// times each track by when its frames arrive (the earliest arrival relative to the RTP clock
/// for audio, each frame's arrival for video), and nothing relates the camera's RTP clock to
/// the microphone's, so a video path 60 ms slower than the audio path shows the flash 60 ms
/// later relative to the tone than equal paths do, to within the one canvas frame (1/30 s) that
/// a frame's arrival may round to. With these delays the skew lands at +54 ms, inside
/// [`LIP_SYNC`]; a slower path, or another draw of the jitter, can carry it past.
#[test]
fn a_video_path_60_ms_slower_than_the_audio_path_shows_the_flash_60_ms_later() {
    let equal = flash_and_tone(Duration::ZERO);
    let slower = flash_and_tone(Duration::from_millis(60));
    let shift = slower.skew() - equal.skew();
    println!(
        "skew {:+.1} ms with equal paths, {:+.1} ms with video 60 ms slower",
        1e3 * equal.skew(),
        1e3 * slower.skew()
    );
    assert!(
        (shift - 0.060).abs() <= 1.0 / 30.0,
        "the slower video path moved the flash {:+.1} ms",
        1e3 * shift
    );
}
