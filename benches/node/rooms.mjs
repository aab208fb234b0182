// The browser side of `cargo bench --bench rooms` (benches/rooms.rs): participants of a Sluice
// room in one headless Chromium, one browser context each, joining through the server's join
// page (`/rooms/{id}/join?token=…`, LiveKit's client SDK) with Chromium's fake camera and
// microphone. Prints one JSON line per event; the bench reads them as they come.
//
//   node rooms.mjs <scenario.json>
//
// Scenario: {"mode": "forward" | "join", "joinUrl": "…/rooms/{id}/join",
//            "publishers": [token…], "subscribers": [token…], "joins": [token…],
//            "resolution": null | {"width": 640, "height": 360}, "large": false,
//            "settleMs": 8000, "windowMs": 30000}
//
// forward: the publishers join (each publishes camera and microphone, 1280x720 by the SDK's
//   default unless `resolution` asks the camera for another size), then the subscribers
//   (subscribe-only tokens). Once every participant receives every other publisher's video
//   (frames decoded) and audio, and `settleMs` more, it prints {"step":"window-start"}, waits
//   `windowMs`, prints {"step":"window-end"} and then {"step":"result", …}: per participant the
//   inbound-rtp counters of each remote track at both ends of the window (from
//   `track.receiver.getStats()`) and the selected candidate pair's round-trip time; and what
//   each publisher sends (its outbound-rtp per simulcast layer).
// join: the publisher joins; then for each token of `joins`, one after the other, a fresh
//   context opens the join URL (t0) and the page notes when the SDK's signal connection is up
//   (RoomEvent.SignalConnected), when the room is connected (RoomEvent.Connected), when the
//   publisher's video track is subscribed, and when its video element first reports a decoded
//   frame (`getVideoPlaybackQuality().totalVideoFrames > 0`, polled every 20 ms in the page).
//   Each join prints {"step":"join", …} and the context closes before the next.
import { readFileSync } from "node:fs";
import { launchChromium } from "../../tests/node/chromium.mjs";

const scenario = JSON.parse(readFileSync(process.argv[2], "utf8"));
const report = (line) => console.log(JSON.stringify(line));
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(what, check, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    last = await check();
    if (last?.ok) return last;
    await sleep(250);
  }
  throw new Error(`${what}: not reached in ${timeoutMs} ms; last ${JSON.stringify(last)}`);
}

// Installed in every page before its scripts run: timestamps of the join, a 20 ms poll for the
// first decoded remote frame, and optionally a camera size.
function instrument(options) {
  const marks = {};
  window.__bench = marks;
  if (options.resolution) {
    // The SDK asks for 1280x720; ask the fake camera for this size instead. The SDK picks its
    // simulcast layers from the size the track has.
    const devices = navigator.mediaDevices;
    const getUserMedia = devices.getUserMedia.bind(devices);
    devices.getUserMedia = (constraints) => {
      if (constraints?.video) {
        const video = typeof constraints.video === "object" ? constraints.video : {};
        constraints = {
          ...constraints,
          video: { ...video, width: { ideal: options.resolution.width }, height: { ideal: options.resolution.height } },
        };
      }
      return getUserMedia(constraints);
    };
  }
  let room;
  Object.defineProperty(window, "sluiceRoom", {
    configurable: true,
    get: () => room,
    set(value) {
      room = value;
      marks.roomAt = Date.now();
      value.on("signalConnected", () => { marks.signalConnectedAt ??= Date.now(); });
      value.on("connected", () => { marks.connectedAt ??= Date.now(); });
      value.on("trackSubscribed", (track) => {
        if (track.kind === "video") marks.videoSubscribedAt ??= Date.now();
      });
    },
  });
  const remoteVideoElements = () => {
    const elements = [];
    if (!room) return elements;
    for (const participant of room.remoteParticipants.values()) {
      for (const publication of participant.videoTrackPublications.values()) {
        for (const element of publication.track?.attachedElements ?? []) elements.push(element);
      }
    }
    return elements;
  };
  const firstFramePoll = setInterval(() => {
    for (const element of remoteVideoElements()) {
      if (element.getVideoPlaybackQuality().totalVideoFrames > 0) {
        marks.firstFrameAt = Date.now();
        clearInterval(firstFramePoll);
        return;
      }
    }
  }, 20);
}

// What a participant receives: per remote track the inbound-rtp counters, plus the selected
// candidate pair's round-trip time.
const receiverStats = () =>
  (async () => {
    const room = window.sluiceRoom;
    const out = { at: Date.now(), tracks: [] };
    for (const participant of room.remoteParticipants.values()) {
      for (const publication of participant.trackPublications.values()) {
        const track = publication.track;
        if (!track?.receiver) continue;
        const entry = { from: participant.identity, kind: track.kind };
        const stats = await track.receiver.getStats();
        stats.forEach((s) => {
          if (s.type === "inbound-rtp") {
            for (const key of ["timestamp", "packetsReceived", "packetsLost", "bytesReceived", "jitter",
              "jitterBufferDelay", "jitterBufferTargetDelay", "jitterBufferEmittedCount", "framesDecoded",
              "framesReceived", "framesDropped", "frameWidth", "frameHeight", "framesPerSecond", "freezeCount",
              "totalFreezesDuration", "nackCount", "pliCount", "firCount", "keyFramesDecoded",
              "totalSamplesReceived", "concealedSamples", "retransmittedPacketsReceived", "decoderImplementation"]) {
              if (s[key] !== undefined) entry[key] = s[key];
            }
          }
          if (s.type === "candidate-pair" && s.nominated && s.currentRoundTripTime !== undefined) {
            entry.rtt = s.currentRoundTripTime;
          }
        });
        out.tracks.push(entry);
      }
    }
    return out;
  })();

// What a publisher sends: its camera's size and, per simulcast layer, outbound-rtp; its
// bandwidth estimate (the candidate pair's availableOutgoingBitrate).
const publisherStats = () =>
  (async () => {
    const local = window.sluiceRoom.localParticipant;
    const out = { identity: local.identity, layers: [] };
    for (const publication of local.videoTrackPublications.values()) {
      const track = publication.track;
      if (!track?.sender) continue;
      out.camera = track.mediaStreamTrack.getSettings();
      const stats = await track.sender.getStats();
      stats.forEach((s) => {
        if (s.type === "outbound-rtp") {
          out.layers.push({
            rid: s.rid ?? null, active: s.active, width: s.frameWidth, height: s.frameHeight,
            fps: s.framesPerSecond, bytesSent: s.bytesSent, packetsSent: s.packetsSent,
            limitation: s.qualityLimitationReason, encoder: s.encoderImplementation,
            targetBitrate: s.targetBitrate, timestamp: s.timestamp,
          });
        }
        if (s.type === "candidate-pair" && s.nominated && s.currentRoundTripTime !== undefined) {
          out.rtt = s.currentRoundTripTime;
          out.availableOutgoingBitrate = s.availableOutgoingBitrate;
        }
      });
    }
    return out;
  })();

const browser = await launchChromium([
  // The fake camera runs at 30 fps (a webcam's rate; its own default is 20).
  "--use-fake-device-for-media-stream=fps=30",
  "--use-fake-ui-for-media-stream",
  "--autoplay-policy=no-user-gesture-required",
  // Many pages at once: none of them is to be throttled as a background page.
  "--disable-background-timer-throttling",
  "--disable-renderer-backgrounding",
  "--disable-backgrounding-occluded-windows",
]);
let exitCode = 0;
const pages = [];

async function open(token, publishes) {
  const context = await browser.newContext({ permissions: ["camera", "microphone"] });
  await context.addInitScript(instrument, { resolution: publishes ? scenario.resolution : null });
  const page = await context.newPage();
  page.consoleLines = [];
  page.on("console", (message) => page.consoleLines.push(message.text()));
  const startedAt = Date.now();
  await page.goto(`${scenario.joinUrl}?token=${encodeURIComponent(token)}`);
  return { context, page, startedAt, publishes };
}

async function waitJoined(participant, timeoutMs = 60000) {
  const ready = participant.publishes ? ["publishing", "publish-failed", "failed"] : ["connected", "failed"];
  await participant.page.waitForFunction(
    (states) => states.includes(document.getElementById("status").dataset.state),
    ready,
    { timeout: timeoutMs, polling: 100 },
  );
  const state = await participant.page.evaluate(() => document.getElementById("status").dataset.state);
  if (state.endsWith("failed")) {
    const status = await participant.page.evaluate(() => document.getElementById("status").textContent);
    throw new Error(`join failed: ${status}`);
  }
  participant.identity = await participant.page.evaluate(() => window.sluiceRoom.localParticipant.identity);
}

try {
  if (scenario.mode === "forward") {
    const joinStarted = Date.now();
    for (const token of scenario.publishers) {
      const participant = await open(token, true);
      pages.push(participant);
      await waitJoined(participant);
    }
    for (const token of scenario.subscribers) {
      const participant = await open(token, false);
      pages.push(participant);
      await waitJoined(participant);
    }
    const publisherIds = pages.filter((p) => p.publishes).map((p) => p.identity);
    report({ step: "joined", participants: pages.length, ms: Date.now() - joinStarted });

    // Publishers' tiles first in every grid; large tiles: one 1280 px column, the others hidden.
    for (const participant of pages) {
      await participant.page.evaluate(({ publisherIds, large }) => {
        const grid = document.getElementById("grid");
        for (const tile of grid.children) {
          const publishes = publisherIds.includes(tile.dataset.identity);
          if (publishes) tile.style.order = "-1";
          if (large && (!publishes || tile.dataset.identity === window.sluiceRoom.localParticipant.identity)) {
            tile.style.display = "none";
          }
        }
        if (large) grid.style.gridTemplateColumns = "1280px";
      }, { publisherIds, large: scenario.large });
    }

    // Everyone receives every other publisher's video frames and audio.
    const mediaStarted = Date.now();
    for (const participant of pages) {
      const expected = publisherIds.length - (participant.publishes ? 1 : 0);
      if (expected === 0) continue;
      await until("every remote track flowing", async () => {
        const stats = await participant.page.evaluate(receiverStats);
        const video = stats.tracks.filter((t) => t.kind === "video" && (t.framesDecoded ?? 0) > 0).length;
        const audio = stats.tracks.filter((t) => t.kind === "audio" && (t.packetsReceived ?? 0) > 0).length;
        return { ok: video >= expected && audio >= expected, video, audio, expected };
      }, 120000);
    }
    report({ step: "media", ms: Date.now() - mediaStarted });
    await sleep(scenario.settleMs);

    const receivers = pages.filter((p) => publisherIds.length - (p.publishes ? 1 : 0) > 0);
    const before = [];
    for (const participant of receivers) before.push(await participant.page.evaluate(receiverStats));
    report({ step: "window-start" });
    await sleep(scenario.windowMs);
    report({ step: "window-end" });
    const result = { step: "result", receivers: [], publishers: [] };
    for (const [index, participant] of receivers.entries()) {
      const after = await participant.page.evaluate(receiverStats);
      result.receivers.push({ identity: participant.identity, before: before[index], after });
    }
    for (const participant of pages.filter((p) => p.publishes)) {
      result.publishers.push(await participant.page.evaluate(publisherStats));
    }
    report(result);
  } else if (scenario.mode === "join") {
    const publisher = await open(scenario.publishers[0], true);
    pages.push(publisher);
    await waitJoined(publisher);
    // Let the encoder and its layers come up before the first join.
    await sleep(scenario.settleMs);
    for (const [index, token] of scenario.joins.entries()) {
      const context = await browser.newContext({ permissions: ["camera", "microphone"] });
      await context.addInitScript(instrument, { resolution: null });
      const page = await context.newPage();
      const t0 = Date.now();
      await page.goto(`${scenario.joinUrl}?token=${encodeURIComponent(token)}`);
      await page.waitForFunction(() => window.__bench?.firstFrameAt !== undefined, null, { timeout: 60000, polling: 20 });
      const marks = await page.evaluate(() => {
        const { roomAt, signalConnectedAt, connectedAt, videoSubscribedAt, firstFrameAt } = window.__bench;
        return { roomAt, signalConnectedAt, connectedAt, videoSubscribedAt, firstFrameAt };
      });
      const since = (at) => (at === undefined ? null : at - t0);
      report({
        step: "join",
        index,
        pageMs: since(marks.roomAt),
        signalMs: since(marks.signalConnectedAt),
        connectedMs: since(marks.connectedAt),
        subscribedMs: since(marks.videoSubscribedAt),
        firstFrameMs: since(marks.firstFrameAt),
      });
      await page.evaluate(() => window.sluiceRoom.disconnect());
      await context.close();
      await sleep(1000);
    }
  } else {
    throw new Error(`unknown mode ${scenario.mode}`);
  }
  report({ step: "done" });
} catch (error) {
  report({ step: "failed", error: String(error.stack ?? error), console: pages.flatMap((p) => p.page.consoleLines.slice(-20)) });
  exitCode = 1;
} finally {
  await browser.close();
}
process.exit(exitCode);
