// Plays an HLS URL with hls.js inside headless Chromium and prints one JSON report line.
//
//   node play.mjs <master.m3u8 URL> <target position in seconds> [deadline in seconds]
//
// Playback stops as soon as the video's position reaches the target, at the first fatal
// error, or at the deadline (60 s unless given), whichever comes first. The report holds the
// number of levels hls.js parsed from the master playlist, the furthest playback position
// reached, the levels it switched to and every error it raised. The Rust test that calls this
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
        const report = { supported: Hls.isSupported(), levels: 0, maxTime: 0, switchedTo: [], errors: [] };
        const hls = new Hls({ debug: false });
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
