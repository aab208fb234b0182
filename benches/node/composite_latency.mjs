// The browser side of `cargo bench --bench room_composite_latency`
// (benches/room_composite_latency.rs): one headless Chromium holding a participant of a room and
// a viewer of the room's composite, so both read the same clock.
//
//   node composite_latency.mjs <join page URL>
//
// The participant joins from a page of its own with LiveKit's client SDK (loaded from the
// server's join page, no token in the URL) and publishes a 1280x720 canvas as its camera. The
// canvas, mid grey, is repainted 30 times a second with a time code: a row of 23 cells of
// 48x96 px across its middle, each black or white — a white and a black marker, the 20 low bits
// of `Date.now()` (lowest first; the clock modulo 2^20 ms) and an even-parity bit.
//
// The viewer plays the composite's HLS with the vendored hls.js (`lowLatencyMode: true`, its
// other settings left at their defaults). Every 250 ms after playback starts it draws the video
// into a canvas and reads the cells at the points where the composite puts them: the
// participant's picture covers its tile (scaled to cover it, centred, the overflow cropped).
// A sample whose markers, cells (each clearly dark or light) or parity do not check out is
// counted as unreadable and dropped; a readable one records `Date.now()` minus the code (modulo
// the wrap), and, for comparison, `Date.now()` minus the program date time hls.js gives the
// frame on screen (when the composite stamped the picture) and hls.js's own distance to the
// live edge.
//
// Commands arrive on stdin, one JSON object per line; each is answered with one JSON line:
//   {"cmd": "join", "token": "…"}
//       → {"cmd": "join", "identity": "…"} once the camera publishes
//   {"cmd": "watch", "url": "…/master.m3u8", "seconds": 60,
//    "canvas": {"width": 1280, "height": 720}, "tile": {"x": …, "y": …, "width": …, "height": …}}
//       → {"cmd": "watch", "samples": [{"at", "latencyMs", "stampedMs", "edgeS"}…], "unreadable",
//          "waiting", "bufferStalls", "errors", "parts", "heights", "camera"} after `seconds` of
//          playback
//   {"cmd": "quit"}
// A failed command answers {"cmd": "failed", "error": "…"} and the script exits.
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { launchChromium } from "../../tests/node/chromium.mjs";

const HLS_JS = fileURLToPath(new URL("../../console/vendor/hls.min.js", import.meta.url));
// The participant's canvas and where its time code lies on it.
const CODE = {
  width: 1280,
  height: 720,
  cellWidth: 48,
  cellHeight: 96,
  bits: 20,
  // markers (white, black), the bits, the parity bit
  cells: 23,
};
CODE.left = (CODE.width - CODE.cells * CODE.cellWidth) / 2;
CODE.top = (CODE.height - CODE.cellHeight) / 2;
// How long hls.js may take to start playing before the watch fails.
const START_TIMEOUT_MS = 60000;

const joinUrl = process.argv[2];
const report = (line) => console.log(JSON.stringify(line));

const browser = await launchChromium([
  "--autoplay-policy=no-user-gesture-required",
  // Two pages at once: neither is to be throttled as a background page.
  "--disable-background-timer-throttling",
  "--disable-renderer-backgrounding",
  "--disable-backgrounding-occluded-windows",
]);
let participant;

async function join({ token }) {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.consoleLines = [];
  page.on("console", (message) => page.consoleLines.push(message.text()));
  await page.goto(joinUrl);
  const identity = await page.evaluate(
    async ({ token, code }) => {
      const { Room, LocalVideoTrack, Track } = window.LivekitClient;
      const canvas = document.createElement("canvas");
      canvas.width = code.width;
      canvas.height = code.height;
      const context = canvas.getContext("2d");
      const paint = () => {
        const now = Date.now() % 2 ** code.bits;
        const bits = Array.from({ length: code.bits }, (_, bit) => Math.floor(now / 2 ** bit) % 2);
        const parity = bits.reduce((sum, bit) => sum + bit, 0) % 2;
        const cells = [1, 0, ...bits, parity];
        context.fillStyle = "#808080";
        context.fillRect(0, 0, code.width, code.height);
        cells.forEach((cell, index) => {
          context.fillStyle = cell ? "#ffffff" : "#000000";
          context.fillRect(code.left + index * code.cellWidth, code.top, code.cellWidth, code.cellHeight);
        });
      };
      paint();
      setInterval(paint, 1000 / 30);
      const camera = new LocalVideoTrack(canvas.captureStream(30).getVideoTracks()[0]);
      const room = new Room({ singlePeerConnection: false });
      window.sluiceRoom = room;
      window.sluiceCamera = camera;
      await room.connect(`ws://${location.host}`, token);
      await room.localParticipant.publishTrack(camera, { source: Track.Source.Camera });
      return room.localParticipant.identity;
    },
    { token, code: CODE },
  );
  participant = { context, page };
  return { identity };
}

// What the participant's camera sends now: per simulcast layer its size, frame rate and what
// limits its quality.
async function cameraStats() {
  if (!participant) return [];
  return participant.page.evaluate(async () => {
    const layers = [];
    (await window.sluiceCamera.sender.getStats()).forEach((s) => {
      if (s.type === "outbound-rtp") {
        layers.push({ rid: s.rid ?? null, width: s.frameWidth, height: s.frameHeight, fps: s.framesPerSecond, limitation: s.qualityLimitationReason });
      }
    });
    return layers;
  });
}

// The centres of the code's cells on the composite's canvas, as fractions of its size: the
// participant's picture scaled to cover `tile`, centred.
function cellCentres(canvas, tile) {
  const scale = Math.max(tile.width / CODE.width, tile.height / CODE.height);
  const left = tile.x + (tile.width - CODE.width * scale) / 2;
  const top = tile.y + (tile.height - CODE.height * scale) / 2;
  const y = top + (CODE.top + CODE.cellHeight / 2) * scale;
  return Array.from({ length: CODE.cells }, (_, index) => {
    const x = left + (CODE.left + (index + 0.5) * CODE.cellWidth) * scale;
    return [x / canvas.width, y / canvas.height];
  });
}

async function watch({ url, seconds, canvas, tile }) {
  const context = await browser.newContext();
  const page = await context.newPage();
  try {
    await page.setContent("<video id=v muted playsinline></video>");
    await page.addScriptTag({ path: HLS_JS });
    const result = await page.evaluate(
      ({ url, seconds, centres, bits, startTimeoutMs }) =>
        new Promise((resolve) => {
          const wrap = 2 ** bits;
          const video = document.getElementById("v");
          const frame = document.createElement("canvas");
          const context = frame.getContext("2d", { willReadFrequently: true });
          const result = { samples: [], unreadable: 0, waiting: 0, bufferStalls: 0, errors: [], parts: 0, heights: {} };
          // The code's cells as 0 or 1 (null: neither clearly dark nor clearly light), each the
          // mean luma of a 5x5 square at its centre.
          const readCells = () => {
            const width = video.videoWidth;
            const height = video.videoHeight;
            if (frame.width !== width || frame.height !== height) {
              frame.width = width;
              frame.height = height;
            }
            context.drawImage(video, 0, 0, width, height);
            return centres.map(([fx, fy]) => {
              const x = Math.round(fx * width) - 2;
              const y = Math.round(fy * height) - 2;
              const { data } = context.getImageData(x, y, 5, 5);
              let luma = 0;
              for (let at = 0; at < data.length; at += 4) luma += (data[at] + data[at + 1] + data[at + 2]) / 3;
              luma /= 25;
              return luma < 80 ? 0 : luma > 176 ? 1 : null;
            });
          };
          // The code on screen (ms, modulo the wrap), or null when it does not check out.
          const readCode = () => {
            const [white, black, ...rest] = readCells();
            const parity = rest.pop();
            if (white !== 1 || black !== 0 || rest.includes(null)) return null;
            if (rest.reduce((sum, bit) => sum + bit, 0) % 2 !== parity) return null;
            return rest.reduce((code, bit, index) => code + bit * 2 ** index, 0);
          };

          let started = false;
          let finished = false;
          let sampler;
          const hls = new Hls({ lowLatencyMode: true });
          const finish = () => {
            if (finished) return;
            finished = true;
            clearInterval(sampler);
            hls.destroy();
            resolve(result);
          };
          video.addEventListener("waiting", () => {
            if (started && !video.seeking) result.waiting += 1;
          });
          video.addEventListener("playing", () => {
            if (started) return;
            started = true;
            sampler = setInterval(() => {
              if (video.paused) return;
              const at = Date.now();
              const code = readCode();
              if (code === null) {
                result.unreadable += 1;
                return;
              }
              const height = String(video.videoHeight);
              result.heights[height] = (result.heights[height] ?? 0) + 1;
              result.samples.push({
                at,
                latencyMs: (((at % wrap) - code) % wrap + wrap) % wrap,
                stampedMs: hls.playingDate ? at - hls.playingDate.getTime() : null,
                edgeS: hls.latency,
              });
            }, 250);
            setTimeout(finish, seconds * 1000);
          });
          setTimeout(() => {
            if (!started) {
              result.errors.push({ fatal: true, details: `no playback in ${startTimeoutMs} ms` });
              finish();
            }
          }, startTimeoutMs);
          hls.on(Hls.Events.MANIFEST_PARSED, () => video.play().catch(() => {}));
          hls.on(Hls.Events.FRAG_LOADED, (_event, data) => {
            if (data.part) result.parts += 1;
          });
          hls.on(Hls.Events.ERROR, (_event, data) => {
            if (data.details === Hls.ErrorDetails.BUFFER_STALLED_ERROR) result.bufferStalls += 1;
            else result.errors.push({ fatal: data.fatal, details: data.details });
            if (data.fatal) finish();
          });
          hls.loadSource(url);
          hls.attachMedia(video);
        }),
      { url, seconds, centres: cellCentres(canvas, tile), bits: CODE.bits, startTimeoutMs: START_TIMEOUT_MS },
    );
    return { ...result, camera: await cameraStats() };
  } finally {
    await context.close();
  }
}

const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  if (!line.trim()) continue;
  const command = JSON.parse(line);
  try {
    if (command.cmd === "join") {
      report({ cmd: "join", ...(await join(command)) });
    } else if (command.cmd === "watch") {
      report({ cmd: "watch", ...(await watch(command)) });
    } else if (command.cmd === "quit") {
      break;
    } else {
      throw new Error(`unknown command ${command.cmd}`);
    }
  } catch (error) {
    report({ cmd: "failed", error: String(error.stack ?? error), console: participant?.page.consoleLines.slice(-20) ?? [] });
    await browser.close();
    process.exit(1);
  }
}
await browser.close();
process.exit(0);
