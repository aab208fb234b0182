// Participants of a room for the room tests: each joins from a page of its own with LiveKit's
// client SDK (loaded from the server's join page) and publishes a canvas of one solid colour as
// its camera and, as its microphone, a sine tone or a recording of speech, so what the room's
// composite shows and mixes can be checked by colour and frequency, and what its transcription
// hears by word. Every page keeps the transcription segments its room sends it.
//
//   node room_participants.mjs <join page URL>
//
// Commands arrive on stdin, one JSON object per line; each is answered with one JSON line:
//   {"cmd": "join", "token": "…", "color": "#ff0000", "tone": 440, "gain": 0.1}
//       → {"cmd": "join", "index": n, "identity": "…", "microphone": "TR_…"} once its camera
//         and microphone publish; with "speech": "/path/to/file.wav" the microphone plays
//         that file over and over (a pause of "pause" seconds, default 3, between plays)
//         instead of the tone, and the reply adds "speechStartedAt" (when the first play
//         began, Date.now()) and "speechSeconds" (the file's length)
//   {"cmd": "gain", "index": n, "gain": 0.3}   the microphone's loudness (0 silences it)
//   {"cmd": "segments", "index": n}             → {"cmd": "segments", "segments": [{"id",
//         "text", "final", "startTime", "endTime", "language", "receivedAt", "participant",
//         "track"}…]}:
//         every transcription segment the page received (RoomEvent.TranscriptionReceived)
//   {"cmd": "leave", "index": n}                 leaves the room
//   {"cmd": "kill", "index": n}                  closes its page without leaving: packets stop
//   {"cmd": "quit"}
// A failed command answers {"cmd": "failed", "error": "…"} and the script exits.
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { launchChromium } from "./chromium.mjs";

const joinUrl = process.argv[2];
const report = (line) => console.log(JSON.stringify(line));

const browser = await launchChromium(["--autoplay-policy=no-user-gesture-required"]);
const participants = [];

async function join({ token, color, tone, gain, speech, pause }) {
  const speechBase64 = speech ? readFileSync(speech).toString("base64") : null;
  const context = await browser.newContext();
  const page = await context.newPage();
  page.consoleLines = [];
  page.on("console", (message) => page.consoleLines.push(message.text()));
  await page.goto(joinUrl); // no token: the page only loads the SDK
  const joined = await page.evaluate(
    async ({ token, color, tone, gain, speechBase64, pause }) => {
      const { Room, RoomEvent, LocalVideoTrack, LocalAudioTrack, Track } = window.LivekitClient;
      // The camera: a canvas painted in one colour, repainted every frame so frames flow.
      const canvas = document.createElement("canvas");
      canvas.width = 640;
      canvas.height = 360;
      const context = canvas.getContext("2d");
      let tick = 0;
      setInterval(() => {
        context.fillStyle = color;
        context.fillRect(0, 0, canvas.width, canvas.height);
        // A speck in a corner changes every frame; the colour fills everything else.
        context.fillStyle = tick++ % 2 ? "#000000" : color;
        context.fillRect(0, 0, 2, 2);
      }, 33);
      const video = new LocalVideoTrack(canvas.captureStream(30).getVideoTracks()[0]);
      // The microphone: a sine tone, or speech played in a loop, through a gain the test can
      // change.
      const audio = new AudioContext({ sampleRate: 48000 });
      const loudness = audio.createGain();
      loudness.gain.value = gain;
      const destination = audio.createMediaStreamDestination();
      loudness.connect(destination);
      if (speechBase64) {
        const bytes = Uint8Array.from(atob(speechBase64), (c) => c.charCodeAt(0));
        const spoken = await audio.decodeAudioData(bytes.buffer);
        // The recording, then `pause` seconds of silence, over and over.
        const rate = spoken.sampleRate;
        const looped = audio.createBuffer(1, spoken.length + Math.round((pause ?? 3) * rate), rate);
        window.speechSeconds = spoken.duration;
        looped.copyToChannel(spoken.getChannelData(0), 0);
        const source = audio.createBufferSource();
        source.buffer = looped;
        source.loop = true;
        source.connect(loudness);
        source.start();
        // When the first play began, by the wall clock (phrase ends follow from it).
        window.speechStartedAt = Date.now();
      } else {
        const oscillator = audio.createOscillator();
        oscillator.frequency.value = tone;
        oscillator.connect(loudness);
        oscillator.start();
      }
      window.toneGain = loudness;
      const microphone = new LocalAudioTrack(destination.stream.getAudioTracks()[0]);

      const room = new Room({ singlePeerConnection: false });
      window.sluiceRoom = room;
      window.segments = [];
      room.on(RoomEvent.TranscriptionReceived, (segments, participant, publication) => {
        for (const segment of segments) {
          window.segments.push({
            id: segment.id,
            text: segment.text,
            final: segment.final,
            startTime: segment.startTime,
            endTime: segment.endTime,
            language: segment.language,
            receivedAt: segment.lastReceivedTime,
            participant: participant?.identity ?? null,
            track: publication?.trackSid ?? null,
          });
        }
      });
      await room.connect(`ws://${location.host}`, token);
      await room.localParticipant.publishTrack(video, { source: Track.Source.Camera });
      const published = await room.localParticipant.publishTrack(microphone, { source: Track.Source.Microphone, dtx: false });
      return {
        identity: room.localParticipant.identity,
        microphone: published.trackSid,
        speechStartedAt: window.speechStartedAt ?? null,
        speechSeconds: window.speechSeconds ?? null,
      };
    },
    { token, color, tone, gain, speechBase64, pause },
  );
  participants.push({ context, page });
  return { index: participants.length - 1, ...joined };
}

function participant(index) {
  const found = participants[index];
  if (!found) throw new Error(`no participant ${index}`);
  return found;
}

const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  if (!line.trim()) continue;
  const command = JSON.parse(line);
  try {
    if (command.cmd === "join") {
      report({ cmd: "join", ...(await join(command)) });
    } else if (command.cmd === "gain") {
      await participant(command.index).page.evaluate((gain) => { window.toneGain.gain.value = gain; }, command.gain);
      report({ cmd: "gain", index: command.index });
    } else if (command.cmd === "segments") {
      const segments = await participant(command.index).page.evaluate(() => window.segments);
      report({ cmd: "segments", index: command.index, segments });
    } else if (command.cmd === "leave") {
      await participant(command.index).page.evaluate(() => window.sluiceRoom.disconnect());
      report({ cmd: "leave", index: command.index });
    } else if (command.cmd === "kill") {
      await participant(command.index).context.close();
      report({ cmd: "kill", index: command.index });
    } else if (command.cmd === "quit") {
      break;
    } else {
      throw new Error(`unknown command ${command.cmd}`);
    }
  } catch (error) {
    report({ cmd: "failed", error: String(error.stack ?? error), console: participants.flatMap((p) => p.page.consoleLines.slice(-20)) });
    await browser.close();
    process.exit(1);
  }
}
await browser.close();
process.exit(0);
