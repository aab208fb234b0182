// TEMPORARY measurement harness; deleted before hand-off.
use std::process::Command;
use bytes::Bytes;
use ffmpeg_next::media;
use sluice_media::{AvcConfig, Packet, Timebase, TrackKind};
use sluice_transcoder::*;

#[test]
#[ignore]
fn measure() {
    let path = "/tmp/sluice_measure_1080p.mp4";
    if !std::path::Path::new(path).exists() {
        assert!(Command::new("ffmpeg").args(["-hide_banner","-loglevel","error","-y","-f","lavfi","-i","testsrc2=size=1920x1080:rate=30","-t","10","-c:v","libx264","-preset","veryfast","-b:v","6M","-g","60","-pix_fmt","yuv420p",path]).status().unwrap().success());
    }
    ffmpeg_next::init().unwrap();
    let mut input = ffmpeg_next::format::input(&path).unwrap();
    let stream = input.streams().best(media::Type::Video).unwrap();
    let index = stream.index();
    let tb = Timebase(stream.time_base().denominator() as u32);
    let record = unsafe { let p = stream.parameters(); let r = p.as_ptr(); std::slice::from_raw_parts((*r).extradata, (*r).extradata_size as usize).to_vec() };
    let config = AvcConfig::parse(&record).unwrap();
    let packets: Vec<Packet> = input.packets().filter(|(s, _)| s.index() == index).map(|(_, p)| Packet { kind: TrackKind::Video, timebase: tb, dts: p.dts().unwrap(), pts: p.pts().unwrap(), keyframe: p.is_key(), data: Bytes::copy_from_slice(p.data().unwrap()) }).collect();
    let preset = match std::env::var("PRESET").as_deref() { Ok("ultrafast") => Preset::Ultrafast, Ok("superfast") => Preset::Superfast, _ => Preset::Veryfast };
    let threads: u32 = std::env::var("THREADS").ok().and_then(|t| t.parse().ok()).unwrap_or(1);
    let rungs = plan(&Ladder::DEFAULT, 1920, 1080, Some(30.0)).unwrap();
    let settings = EncoderSettings { preset, threads_per_rung: threads, packet_queue: 1000, frame_queue: 1000, output_queue: 100000, ..Default::default() };
    let start = std::time::Instant::now();
    let (t, rx) = LiveTranscoder::start(&config, rungs, settings).unwrap();
    let consumer = std::thread::spawn(move || rx.into_iter().count());
    for p in packets { t.push(p).unwrap(); }
    let stats = t.finish();
    consumer.join().unwrap();
    eprintln!("preset {preset:?} threads {threads}: wall {:?} {stats:?}", start.elapsed());
}
