//! Black-box: a short H.264 clip made by the ffmpeg CLI through `FileTranscode` with AV1
//! asked for, and its H.264 and AV1 rungs compared.

use std::time::Duration;

use sluice_media::av1::{Obus, OBU_TEMPORAL_DELIMITER};
use sluice_media::fixtures::ffmpeg_clip;
use sluice_media::{Packet, VideoCodec, VideoConfig};
use sluice_transcoder::{
    EncoderSettings, FileTranscode, Ladder, ProbeLimits, TranscoderOutput, VodEvent,
};

#[test]
fn av1_rung_cuts_on_the_same_pictures_as_its_h264_twin() {
    let work = tempfile::tempdir().unwrap();
    let clip = ffmpeg_clip(
        work.path(),
        "clip.mp4",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x180:rate=30",
            "-t",
            "2",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-pix_fmt",
            "yuv420p",
        ],
    );
    let ladder: Ladder =
        serde_json::from_str(r#"[{"name": "180p", "height": 180, "bitrate_kbps": 300}]"#).unwrap();
    let settings = EncoderSettings {
        codecs: vec![VideoCodec::H264, VideoCodec::Av1],
        keyframe_interval: Duration::from_millis(500),
        threads_per_rung: 1,
        ..EncoderSettings::default()
    };
    let (transcode, events) =
        FileTranscode::start(&clip, &ladder, settings, &ProbeLimits::default()).unwrap();
    let names: Vec<_> = transcode.rungs().iter().map(|rung| rung.name()).collect();
    assert_eq!(names, ["180p", "180p-av1"]);

    let mut configs: [Option<VideoConfig>; 2] = [None, None];
    let mut packets: [Vec<Packet>; 2] = [Vec::new(), Vec::new()];
    for event in events {
        match event {
            VodEvent::Video(TranscoderOutput::Config { rung, config }) => {
                assert!(packets[rung].is_empty(), "the config comes first");
                configs[rung] = Some(config);
            }
            VodEvent::Video(TranscoderOutput::Packet { rung, packet }) => {
                assert!(
                    configs[rung].is_some(),
                    "rung {rung} configured before packets"
                );
                packets[rung].push(packet);
            }
            _ => {}
        }
    }
    let stats = transcode.wait().unwrap().unwrap();
    assert_eq!(stats.frames_emitted_per_rung, [60, 60]);

    let Some(VideoConfig::Av1(av1)) = &configs[1] else {
        panic!("the second rung is AV1: {:?}", configs[1]);
    };
    assert_eq!((av1.width, av1.height), (320, 180));
    assert_eq!(av1.codec_string(), "av01.0.00M.08");
    assert!(matches!(configs[0], Some(VideoConfig::Avc(_))));

    let keyframes = |packets: &[Packet]| -> Vec<i64> {
        packets
            .iter()
            .filter(|p| p.keyframe)
            .map(|p| p.pts)
            .collect()
    };
    let h264_keys = keyframes(&packets[0]);
    assert_eq!(
        h264_keys.len(),
        4,
        "a cut every 0.5 s of 2 s: {h264_keys:?}"
    );
    assert_eq!(
        keyframes(&packets[1]),
        h264_keys,
        "AV1 key frames on the same pictures"
    );
    let times = |packets: &[Packet]| -> Vec<i64> {
        let mut pts: Vec<i64> = packets.iter().map(|p| p.pts).collect();
        pts.sort_unstable();
        pts
    };
    assert_eq!(times(&packets[1]), times(&packets[0]), "the same pictures");
    for unit in &packets[1] {
        assert_eq!(unit.dts, unit.pts);
        let types: Vec<u8> = Obus::new(&unit.data)
            .map(|obu| obu.unwrap().obu_type)
            .collect();
        assert!(!types.is_empty() && !types.contains(&OBU_TEMPORAL_DELIMITER));
    }
}
