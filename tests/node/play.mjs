// Plays an HLS URL with hls.js inside headless Chromium and prints one JSON report line.
//
//   node play.mjs <master.m3u8 URL> <target position in seconds> [deadline in seconds]
//
// Playback stops as soon as the video's position reaches the target, at the first fatal
// error, or at the deadline (60 s unless given), whichever comes first. The report holds the
// number of levels hls.js parsed from the master playlist, the furthest playback position
// reached, the levels it switched to and every error it raised. When the master playlist lists
// subtitles, the first track is turned on and the report also holds the tracks hls.js listed
// (`subtitleTracks`: name and language) and the text of every cue it showed (`cues`). The Rust test that calls this
// script decides what counts as a pass.
import { launchPlayerPage } from "./chromium.mjs";
import { createRequire } from "node:module";

const [url, targetArg, deadlineArg] = process.argv.slice(2);
const target = Number(targetArg);
const deadlineSeconds = Number(deadlineArg ?? 60);
if (!url || !(target >= 0) || !(deadlineSeconds > 0)) {
  console.error("usage: node play.mjs <url> <target position in seconds> [deadline in seconds]");
  process.exit(2);
}
const hlsScript = createRequire(import.meta.url).resolve("hls.js/dist/hls.min.js");

const { browser, page } = await launchPlayerPage("<video id=v muted playsinline></video>", [hlsScript]);
try {
  const report = await page.evaluate(
    ({ url, target, deadlineSeconds }) =>
      new Promise((resolve) => {
        const video = document.getElementById("v");
        const report = {
          supported: Hls.isSupported(),
          levels: 0,
          maxTime: 0,
          switchedTo: [],
          errors: [],
          subtitleTracks: [],
          cues: [],
        };
        const hls = new Hls({ debug: false });
        hls.on(Hls.Events.SUBTITLE_TRACKS_UPDATED, (_e, data) => {
          report.subtitleTracks = data.subtitleTracks.map((t) => ({ name: t.name, lang: t.lang }));
          // After hls.js's own choice for this event (none: the track is not DEFAULT).
          if (data.subtitleTracks.length > 0) {
            setTimeout(() => {
              hls.subtitleDisplay = true;
              hls.subtitleTrack = 0;
            }, 0);
          }
        });
        video.textTracks.addEventListener("addtrack", (event) => {
          const track = event.track;
          track.addEventListener("cuechange", () => {
            for (const cue of Array.from(track.activeCues ?? [])) {
              if (!report.cues.includes(cue.text)) report.cues.push(cue.text);
            }
          });
        });
        hls.on(Hls.Events.MANIFEST_PARSED, (_e, data) => {
          report.levels = data.levels.length;
          report.codecs = data.levels.map((l) => l.attrs.CODECS);
          video.play().catch((e) => report.errors.push({ fatal: false, details: "play(): " + e }));
        });
        hls.on(Hls.Events.LEVEL_SWITCHED, (_e, data) => report.switchedTo.push(data.level));
        hls.on(Hls.Events.ERROR, (_e, data) => {
          report.errors.push({ fatal: data.fatal, type: data.type, details: data.details });
          if (data.fatal) finish();
        });
        video.addEventListener("timeupdate", () => {
          report.maxTime = Math.max(report.maxTime, video.currentTime);
          if (report.maxTime >= target) finish();
        });
        let done = false;
        function finish() {
          if (done) return;
          done = true;
          report.maxTime = Math.max(report.maxTime, video.currentTime);
          report.textTracks = Array.from(video.textTracks).map((t) => ({
            kind: t.kind,
            label: t.label,
            mode: t.mode,
            cues: t.cues ? t.cues.length : null,
          }));
          hls.destroy();
          resolve(report);
        }
        hls.loadSource(url);
        hls.attachMedia(video);
        setTimeout(finish, deadlineSeconds * 1000);
      }),
    { url, target, deadlineSeconds },
  );
  console.log(JSON.stringify(report));
} finally {
  await browser.close();
}
