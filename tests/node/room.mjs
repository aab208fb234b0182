// Joins a Sluice room with LiveKit's client SDK from headless Chromium (the server's join page,
// fake camera and microphone), one browser context per participant, runs a scenario and
// prints one JSON report line per step, then {"step":"done"}.
//
//   node room.mjs <scenario.json>
//
// The scenario: {"joinUrl": "<…/rooms/{id}/join>", "participants": [{"token": "…"}, …],
//                "steps": ["media", "data", "mute", "quality", "reconnect", "leave", …],
//                "sdkDefaultsToken": "…" (for "sdk-defaults")}
// Steps:
// - "media": every participant sees every other's camera frames advance and hears their audio;
// - "data": the first sends a reliable data message, the others receive it;
// - "mute": the second mutes its microphone, the others see the track muted;
// - "quality": small tiles get the low simulcast layer, a large tile the high one;
// - "reconnect": the first loses its signal connection; the SDK rejoins and media flows again;
// - "leave": the last leaves, the others see it go;
// - "sdk-defaults": one more participant joins from a page of its own with the SDK's default
//   options, publishing H.264 without simulcast; the first receives its camera;
// - "wait-removed": waits until the last page says it was disconnected (the test removes it).
import { readFileSync } from "node:fs";
import { launchChromium } from "./chromium.mjs";

const scenario = JSON.parse(readFileSync(process.argv[2], "utf8"));
const report = (line) => console.log(JSON.stringify(line));
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(what, check, timeoutMs = 30000) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    last = await check();
    if (last?.ok) return last;
    await sleep(250);
  }
  throw new Error(`${what}: not reached in ${timeoutMs} ms; last ${JSON.stringify(last)}`);
}

// What a page knows of the others: their tracks, and for each remote video its decoded frames
// and size, for each remote audio its received energy.
const remoteState = () =>
  (async () => {
    const room = window.sluiceRoom;
    if (!room) return [];
    const out = [];
    for (const participant of room.remoteParticipants.values()) {
      const tracks = [];
      for (const publication of participant.trackPublications.values()) {
        const track = publication.track;
        const entry = {
          kind: publication.kind,
          source: publication.source,
          subscribed: publication.isSubscribed,
          muted: publication.isMuted,
        };
        if (track?.kind === "video") {
          const element = track.attachedElements[0];
          entry.frames = element?.getVideoPlaybackQuality?.().totalVideoFrames ?? 0;
          entry.width = element?.videoWidth ?? 0;
        }
        if (track?.kind === "audio" && track.receiver) {
          const stats = await track.receiver.getStats();
          stats.forEach((s) => {
            if (s.type === "inbound-rtp") entry.energy = s.totalAudioEnergy ?? 0;
          });
        }
        tracks.push(entry);
      }
      out.push({ identity: participant.identity, tracks });
    }
    return out;
  })();

const browser = await launchChromium([
  "--use-fake-device-for-media-stream",
  "--use-fake-ui-for-media-stream",
  "--autoplay-policy=no-user-gesture-required",
]);
let exitCode = 0;
const pages = [];
try {
  for (const participant of scenario.participants) {
    const context = await browser.newContext({ permissions: ["camera", "microphone"] });
    const page = await context.newPage();
    const consoleLines = [];
    page.on("console", (message) => consoleLines.push(message.text()));
    page.consoleLines = consoleLines;
    const startedAt = Date.now();
    await page.goto(`${scenario.joinUrl}?token=${encodeURIComponent(participant.token)}`);
    // A publisher is ready once it publishes; a subscribe-only participant once connected.
    const ready = participant.publishes === false ? ["connected", "failed"] : ["publishing", "publish-failed", "failed"];
    await page.waitForFunction(
      (states) => states.includes(document.getElementById("status").dataset.state),
      ready,
      { timeout: 30000, polling: 100 },
    );
    const state = await page.evaluate(() => document.getElementById("status").dataset.state);
    const status = await page.evaluate(() => document.getElementById("status").textContent);
    await page.evaluate(() => {
      window.speakersSeen = new Set();
      window.sluiceRoom?.on("activeSpeakersChanged", (speakers) => speakers.forEach((s) => window.speakersSeen.add(s.identity)));
    });
    report({ step: "join", identity: await page.evaluate(() => window.sluiceRoom?.localParticipant.identity), state, status, ms: Date.now() - startedAt });
    if (state.endsWith("failed")) throw new Error(`join failed: ${status}\n${consoleLines.join("\n")}`);
    pages.push(page);
  }
  const publishers = scenario.participants.filter((p) => p.publishes !== false).length;

  for (const step of scenario.steps) {
    if (step === "media") {
      for (const page of pages) {
        // Each publisher's camera and microphone, frames advancing, audio received.
        const first = await until("every remote track subscribed", async () => {
          const remote = await page.evaluate(remoteState);
          const own = await page.evaluate(() => window.sluiceRoom.localParticipant.permissions?.canPublish !== false);
          const expected = publishers - (own ? 1 : 0);
          const withVideo = remote.filter((p) => p.tracks.some((t) => t.kind === "video" && t.subscribed && t.frames > 0));
          const withAudio = remote.filter((p) => p.tracks.some((t) => t.kind === "audio" && t.subscribed && t.energy > 0));
          return { ok: withVideo.length >= expected && withAudio.length >= expected, remote, expected };
        });
        await sleep(2000);
        const second = await page.evaluate(remoteState);
        const advancing = second.every((p) => {
          const before = first.remote.find((q) => q.identity === p.identity);
          const videoBefore = before?.tracks.find((t) => t.kind === "video")?.frames ?? 0;
          const videoNow = p.tracks.find((t) => t.kind === "video")?.frames ?? 0;
          return p.tracks.every((t) => t.kind !== "video") || videoNow > videoBefore;
        });
        const speakersSeen = await page.evaluate(() => [...window.speakersSeen]);
        report({ step, identity: await page.evaluate(() => window.sluiceRoom.localParticipant.identity), remote: second, advancing, speakersSeen });
        if (!advancing) throw new Error("video frames did not advance");
      }
    } else if (step === "data") {
      for (const page of pages.slice(1)) {
        await page.evaluate(() => {
          window.received = [];
          window.sluiceRoom.on("dataReceived", (payload, participant, _kind, topic) =>
            window.received.push({ text: new TextDecoder().decode(payload), from: participant?.identity, topic }));
        });
      }
      await pages[0].evaluate(() =>
        window.sluiceRoom.localParticipant.publishData(new TextEncoder().encode("hello room"), { reliable: true, topic: "chat" }));
      const received = [];
      for (const page of pages.slice(1)) {
        const got = await until("the data message", async () => {
          const messages = await page.evaluate(() => window.received);
          return { ok: messages.length > 0, messages };
        });
        received.push(got.messages[0]);
      }
      report({ step, received });
    } else if (step === "server-data") {
      // Waits for the message the test sends through the API.
      for (const page of pages) {
        await page.evaluate(() => {
          window.serverData = [];
          window.sluiceRoom.on("dataReceived", (payload, participant, _kind, topic) =>
            window.serverData.push({ text: new TextDecoder().decode(payload), from: participant?.identity ?? null, topic }));
        });
      }
      report({ step, listening: true });
      const received = [];
      for (const page of pages) {
        const got = await until("the server's data message", async () => {
          const messages = await page.evaluate(() => window.serverData);
          return { ok: messages.length > 0, messages };
        });
        received.push(got.messages[0]);
      }
      report({ step: "server-data-received", received });
    } else if (step === "mute") {
      const muter = await pages[1].evaluate(async () => {
        await window.sluiceRoom.localParticipant.setMicrophoneEnabled(false);
        return window.sluiceRoom.localParticipant.identity;
      });
      for (const page of [pages[0], ...pages.slice(2)]) {
        await until("the microphone seen muted", async () => {
          const remote = await page.evaluate(remoteState);
          const audio = remote.find((p) => p.identity === muter)?.tracks.find((t) => t.kind === "audio");
          return { ok: audio?.muted === true, audio };
        });
      }
      await pages[1].evaluate(() => window.sluiceRoom.localParticipant.setMicrophoneEnabled(true));
      report({ step, muter, seenBy: pages.length - 1 });
    } else if (step === "quality") {
      const page = pages[1];
      const publisher = await pages[0].evaluate(() => window.sluiceRoom.localParticipant.identity);
      const widthOf = async () => {
        const remote = await page.evaluate(remoteState);
        return remote.find((p) => p.identity === publisher)?.tracks.find((t) => t.kind === "video")?.width ?? 0;
      };
      // Small tiles: the SDK asks for a small size and gets the low layer.
      // (Set through the CSSOM: the page's CSP refuses inline style sheets.)
      await page.evaluate(() => { document.getElementById("grid").style.gridTemplateColumns = "repeat(4, 200px)"; });
      const low = await until("the low layer", async () => {
        const width = await widthOf();
        return { ok: width > 0 && width <= 400, width };
      });
      // One large tile: the high layer, the camera's own size.
      const cameraWidth = await pages[0].evaluate(() => {
        const publication = [...window.sluiceRoom.localParticipant.videoTrackPublications.values()][0];
        return publication.track.mediaStreamTrack.getSettings().width;
      });
      await page.evaluate(() => { document.getElementById("grid").style.gridTemplateColumns = "1280px"; });
      const high = await until("the high layer", async () => {
        const width = await widthOf();
        return { ok: width >= cameraWidth, width, cameraWidth };
      });
      // Back to the page's own grid (a tile pushed off screen is paused by adaptive stream).
      await page.evaluate(() => { document.getElementById("grid").style.gridTemplateColumns = ""; });
      report({ step, low: low.width, high: high.width, cameraWidth });
    } else if (step === "reconnect") {
      const page = pages[0];
      const identity = await page.evaluate(() => window.sluiceRoom.localParticipant.identity);
      const startedAt = Date.now();
      await page.evaluate(() => {
        window.reconnected = false;
        window.sluiceRoom.once("reconnected", () => { window.reconnected = true; });
        window.sluiceRoom.simulateScenario("signal-reconnect");
      });
      await until("the SDK reconnected", async () => ({ ok: await page.evaluate(() => window.reconnected) }), 45000);
      // The others receive its camera again.
      for (const other of pages.slice(1)) {
        await until("media after the rejoin", async () => {
          const remote = await other.evaluate(remoteState);
          const video = remote.find((p) => p.identity === identity)?.tracks.find((t) => t.kind === "video");
          return { ok: (video?.frames ?? 0) > 0, video };
        }, 45000);
      }
      report({ step, identity, ms: Date.now() - startedAt });
    } else if (step === "leave") {
      const leaving = pages.pop();
      const identity = await leaving.evaluate(async () => {
        const identity = window.sluiceRoom.localParticipant.identity;
        await window.sluiceRoom.disconnect();
        return identity;
      });
      for (const page of pages) {
        await until("the participant gone", async () => {
          const remote = await page.evaluate(remoteState);
          return { ok: !remote.some((p) => p.identity === identity) };
        });
      }
      report({ step, identity });
    } else if (step === "wait-removed") {
      const page = pages[pages.length - 1];
      report({ step, waiting: true });
      await page.waitForFunction(() => document.getElementById("status").dataset.state === "disconnected", null, { timeout: 30000, polling: 100 });
      report({ step: "removed", status: await page.evaluate(() => document.getElementById("status").textContent) });
    } else if (step === "sdk-defaults") {
      // An app's own page: the SDK with its default options (it tries the single-connection
      // path first and falls back), publishing H.264; the first participant receives it.
      const context = await browser.newContext({ permissions: ["camera", "microphone"] });
      const page = await context.newPage();
      page.consoleLines = [];
      page.on("console", (message) => page.consoleLines.push(message.text()));
      await page.goto(scenario.joinUrl); // no token: the page only loads the SDK
      const startedAt = Date.now();
      const identity = await page.evaluate(async ({ token }) => {
        const { Room } = window.LivekitClient;
        const room = new Room({ publishDefaults: { videoCodec: "h264", simulcast: false } });
        window.sluiceRoom = room;
        await room.connect(`ws://${location.host}`, token);
        await room.localParticipant.enableCameraAndMicrophone();
        return room.localParticipant.identity;
      }, { token: scenario.sdkDefaultsToken });
      await until("the H.264 camera received", async () => {
        const remote = await pages[0].evaluate(remoteState);
        const video = remote.find((p) => p.identity === identity)?.tracks.find((t) => t.kind === "video");
        return { ok: (video?.frames ?? 0) > 0, video };
      });
      report({ step, identity, ms: Date.now() - startedAt, console: page.consoleLines.filter((l) => /rtc\/v1|fall/i.test(l)).slice(0, 5) });
      pages.splice(1, 0, page);
    } else if (step === "try-publish") {
      // A participant whose token does not allow publishing: the SDK refuses locally.
      const page = pages[pages.length - 1];
      const result = await page.evaluate(async () => {
        try {
          await window.sluiceRoom.localParticipant.setCameraEnabled(true);
          return { published: window.sluiceRoom.localParticipant.videoTrackPublications.size > 0 };
        } catch (error) {
          return { published: false, error: String(error.message ?? error) };
        }
      });
      report({ step, ...result });
    } else {
      throw new Error(`unknown step ${step}`);
    }
  }
  report({ step: "done" });
} catch (error) {
  report({ step: "failed", error: String(error.stack ?? error), console: pages.flatMap((p) => p.consoleLines.slice(-30)) });
  exitCode = 1;
} finally {
  await browser.close();
}
process.exit(exitCode);
