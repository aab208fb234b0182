// Plays one HLS URL with many hls.js players at once in one headless Chromium page, for the
// viewer counts, and prints one JSON report line.
//
//   node audience.mjs <master.m3u8 URL> <players> <seconds>
//
// Each player is its own hls.js instance with its own <video>, so each fetches the master
// playlist and starts its own playback session, as viewers on separate machines would. After
// `seconds` every player is destroyed and the browser closed. The report holds each player's
// furthest playback position and every fatal error; the Rust test decides what counts as a pass.
import { launchPlayerPage } from "./chromium.mjs";
import { createRequire } from "node:module";

const [url, playersArg, secondsArg] = process.argv.slice(2);
const players = Number(playersArg);
const seconds = Number(secondsArg);
if (!url || !(players > 0) || !(seconds > 0)) {
  console.error("usage: node audience.mjs <url> <players> <seconds>");
  process.exit(2);
}
const hlsScript = createRequire(import.meta.url).resolve("hls.js/dist/hls.min.js");

const { browser, page } = await launchPlayerPage("<main id=players></main>", [hlsScript]);
try {
  const report = await page.evaluate(
    ({ url, players, seconds }) =>
      new Promise((resolve) => {
        const report = { supported: Hls.isSupported(), maxTimes: [], errors: [] };
        const running = [];
        for (let i = 0; i < players; i++) {
          const video = document.createElement("video");
          video.muted = true;
          video.playsInline = true;
          video.width = 64;
          document.getElementById("players").append(video);
          // Small buffers: the players only need to keep fetching, not to buffer ahead.
          const hls = new Hls({ maxBufferLength: 4, backBufferLength: 0 });
          report.maxTimes.push(0);
          hls.on(Hls.Events.MANIFEST_PARSED, () => video.play().catch(() => {}));
          hls.on(Hls.Events.ERROR, (_e, data) => {
            if (data.fatal) report.errors.push({ fatal: true, player: i, type: data.type, details: data.details });
          });
          video.addEventListener("timeupdate", () => {
            report.maxTimes[i] = Math.max(report.maxTimes[i], video.currentTime);
          });
          hls.loadSource(url);
          hls.attachMedia(video);
          running.push(hls);
        }
        setTimeout(() => {
          running.forEach((hls) => hls.destroy());
          resolve(report);
        }, seconds * 1000);
      }),
    { url, players, seconds },
  );
  console.log(JSON.stringify(report));
} finally {
  await browser.close();
}
