//! Arbitrary bytes as a room participant's media reaching its composite: the first byte picks
//! the track (a VP8 camera, an H.264 camera or an Opus microphone) and whether the frame is
//! marked a key frame, the next four its RTP time, the rest its payload. The compositor decodes
//! whatever comes and keeps producing pictures and audio at its clock; it never panics.
#![no_main]

use std::cell::RefCell;
use std::time::{Duration, Instant};

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sluice_compositor::{Compositor, CompositorSettings, Layout, Member, VideoCodec};

struct Composite {
    compositor: Compositor,
    now: Instant,
}

fn new_composite() -> Composite {
    let start = Instant::now();
    let mut compositor = Compositor::new(
        CompositorSettings {
            width: 320,
            height: 180,
            frame_rate: 30,
            layout: Layout::Grid,
        },
        start,
    )
    .unwrap();
    compositor.set_members(vec![
        Member {
            id: "PA_vp8".into(),
            name: "vp8".into(),
            camera: Some("TR_vp8".into()),
            screen_share: None,
            microphone: Some("TR_opus".into()),
        },
        Member {
            id: "PA_h264".into(),
            name: "h264".into(),
            camera: Some("TR_h264".into()),
            screen_share: None,
            microphone: None,
        },
    ]);
    Composite {
        compositor,
        now: start,
    }
}

thread_local! {
    // The compositor holds libav contexts, which stay on the thread that made them.
    static COMPOSITE: RefCell<Composite> = RefCell::new(new_composite());
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Some((time, payload)) = rest.split_first_chunk::<4>() else {
        return;
    };
    let rtp_time = u32::from_be_bytes(*time);
    let payload = Bytes::copy_from_slice(payload);
    COMPOSITE.with_borrow_mut(|composite| feed(composite, selector, rtp_time, payload));
});

fn feed(composite: &mut Composite, selector: u8, rtp_time: u32, payload: Bytes) {
    composite.now += Duration::from_millis(20);
    let now = composite.now;
    let keyframe = selector & 0x80 != 0;
    let compositor = &mut composite.compositor;
    match selector % 3 {
        0 => compositor.push_video("TR_vp8", VideoCodec::Vp8, payload, keyframe, rtp_time, now),
        1 => compositor.push_video("TR_h264", VideoCodec::H264, payload, keyframe, rtp_time, now),
        _ => compositor.push_audio("TR_opus", rtp_time, payload, now),
    }
    compositor.take_keyframe_requests();
    compositor.poll(now);
}
