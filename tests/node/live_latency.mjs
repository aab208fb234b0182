// Watches a live HLS stream in headless Chromium with hls.js (low-latency mode) or Shaka
// Player (low-latency mode) and prints one JSON report line.
//
//   node live_latency.mjs <hlsjs|shaka> <master.m3u8 URL> <seconds to watch> [timecode] [catchup]
//
// Every 500 ms once playback runs it samples the latency: the wall clock minus the program
// date time of the frame on screen (Sluice stamps EXT-X-PROGRAM-DATE-TIME with the arrival
// time of the media, so on one machine this is ingest-to-display latency). The report holds
// those samples, the stalls (`waiting` events after playback started, other than during a
// seek), the errors, how many LL-HLS parts were loaded, the furthest position reached and, for
// hls.js, its own target latency and distance to the live edge at each sample. The Rust test or benchmark that calls
// this script decides what counts as a pass.
//
// With `timecode`, each sample also reads the frame on screen's media time from the strip the
// latency benchmark's publisher draws along its top (20 black or white blocks, 1/40 of the
// picture's width each, the bits of the time in hundredths of a second, lowest first) and
// reports every sample as `{at, pdt, code}` (wall clock and program date time in ms, media
// time in s): that measures players of streams without program date times (nginx-rtmp).
// With `catchup`, hls.js may play up to 1.5 times as fast to reach its target latency
// (`maxLiveSyncPlaybackRate`, off by default), as low-latency pages usually set it.
import { launchPlayerPage } from "./chromium.mjs";
import { createRequire } from "node:module";

const [player, url, secondsArg, ...flags] = process.argv.slice(2);
const timecode = flags.includes("timecode");
const catchup = flags.includes("catchup");
const seconds = Number(secondsArg);
if (!["hlsjs", "shaka"].includes(player) || !url || !(seconds > 0)) {
  console.error("usage: node live_latency.mjs <hlsjs|shaka> <url> <seconds>");
  process.exit(2);
}
const require = createRequire(import.meta.url);
const script = {
  hlsjs: require.resolve("hls.js/dist/hls.min.js"),
  shaka: require.resolve("shaka-player/dist/shaka-player.compiled.js"),
}[player];

const { browser, page } = await launchPlayerPage("<video id=v muted playsinline></video>", [script]);
try {
  const report = await page.evaluate(
    ({ player, url, seconds, timecode, catchup }) =>
      new Promise((resolve) => {
        const video = document.getElementById("v");
        const canvas = document.createElement("canvas");
        // The media time drawn in the frame's top strip, in seconds.
        const readTimecode = () => {
          const width = video.videoWidth;
          const height = video.videoHeight;
          if (!width || !height) return null;
          canvas.width = width;
          canvas.height = height;
          const context = canvas.getContext("2d", { willReadFrequently: true });
          context.drawImage(video, 0, 0, width, height);
          let hundredths = 0;
          for (let bit = 0; bit < 20; bit += 1) {
            const x = Math.floor(((bit + 0.5) * width) / 40);
            const y = Math.floor(height / 24);
            const [luma] = context.getImageData(x, y, 1, 1).data;
            if (luma > 128) hundredths += 2 ** bit;
          }
          return hundredths / 100;
        };
        const report = {
          player,
          supported: true,
          latencies: [],
          stalls: 0,
          errors: [],
          parts: 0,
          maxTime: 0,
        };
        let started = false;
        let playingDate = () => null;
        let stop = () => {};
        video.addEventListener("playing", () => {
          started = true;
        });
        // A wait while the player seeks (Shaka jumps to its target latency once playing) is
        // not a stall.
        video.addEventListener("waiting", () => {
          if (started && !video.seeking) report.stalls += 1;
        });

        if (player === "hlsjs") {
          report.supported = Hls.isSupported();
          const hls = new Hls({
            lowLatencyMode: true,
            debug: false,
            ...(catchup ? { maxLiveSyncPlaybackRate: 1.5 } : {}),
          });
          hls.on(Hls.Events.MANIFEST_PARSED, () => video.play().catch(() => {}));
          hls.on(Hls.Events.FRAG_LOADED, (_e, data) => {
            if (data.part) report.parts += 1;
          });
          hls.on(Hls.Events.ERROR, (_e, data) => {
            report.errors.push({ fatal: data.fatal, type: data.type, details: data.details });
            if (data.fatal) finish();
          });
          playingDate = () => hls.playingDate;
          // hls.js's own view: its target and the distance to the live edge it measures.
          report.targetLatency = () => hls.targetLatency;
          report.edgeLatency = () => hls.latency;
          stop = () => hls.destroy();
          hls.loadSource(url);
          hls.attachMedia(video);
        } else {
          shaka.polyfill.installAll();
          report.supported = shaka.Player.isBrowserSupported();
          const shakaPlayer = new shaka.Player();
          // Shaka counts the preload-hinted part as media and starts PART-HOLD-BACK behind
          // its end, two published parts from the edge: start 1.5 s back and resume only with
          // half a second buffered, so one slow part does not drain the buffer. Sequence mode:
          // Shaka 5.2 otherwise recomputes the timestamp offset per append and aborts the
          // SourceBuffer when it moves by its own 1 ms rounding, and Chromium then drops the
          // rest of the segment up to the next key frame.
          shakaPlayer.configure({
            manifest: { defaultPresentationDelay: 1.5, hls: { sequenceMode: true } },
            streaming: { lowLatencyMode: true, rebufferingGoal: 0.5 },
          });
          shakaPlayer.addEventListener("error", (event) => {
            const error = event.detail;
            report.errors.push({ fatal: error.severity === 2, type: String(error.category), details: String(error.code) });
            if (error.severity === 2) finish();
          });
          const countParts = (type, response) => {
            if (type === shaka.net.NetworkingEngine.RequestType.SEGMENT && /\.\d+\.m4[sa]/.test(response.uri)) {
              report.parts += 1;
            }
          };
          shakaPlayer.getNetworkingEngine().registerResponseFilter(countParts);
          playingDate = () => shakaPlayer.getPlayheadTimeAsDate();
          stop = () => shakaPlayer.destroy();
          shakaPlayer
            .attach(video)
            .then(() => shakaPlayer.load(url))
            .then(() => video.play().catch(() => {}))
            .catch((error) => {
              report.errors.push({ fatal: true, type: "load", details: String(error.code ?? error) });
              finish();
            });
        }

        const hlsjsView = { target: [], edge: [] };
        const sampler = setInterval(() => {
          if (report.targetLatency && started) {
            hlsjsView.target.push(report.targetLatency());
            hlsjsView.edge.push(report.edgeLatency());
          }
          report.maxTime = Math.max(report.maxTime, video.currentTime);
          const date = playingDate();
          const now = Date.now();
          if (started && !video.paused && date) {
            report.latencies.push((now - date.getTime()) / 1000);
          }
          if (timecode && started && !video.paused) {
            report.samples ??= [];
            report.samples.push({ at: now, pdt: date ? date.getTime() : null, code: readTimecode() });
          }
        }, 500);
        let done = false;
        function finish() {
          if (done) return;
          done = true;
          clearInterval(sampler);
          delete report.targetLatency;
          delete report.edgeLatency;
          if (hlsjsView.target.length) report.hlsjs = hlsjsView;
          report.maxTime = Math.max(report.maxTime, video.currentTime);
          try {
            stop();
          } catch (_) {}
          resolve(report);
        }
        setTimeout(finish, seconds * 1000);
      }),
    { player, url, seconds, timecode, catchup },
  );
  console.log(JSON.stringify(report));
} finally {
  await browser.close();
}
