// The room join page (/rooms/{id}/join?token=…): joins with LiveKit's client SDK (vendored,
// window.LivekitClient), publishes camera and microphone, and shows everyone in a grid.
// `window.sluiceRoom` is the SDK's Room, for scripts that drive the page.

const status = document.getElementById("status");
const grid = document.getElementById("grid");

function setStatus(state, text) {
  status.dataset.state = state;
  status.textContent = text;
}

function tileFor(participant) {
  const id = `tile-${participant.sid}`;
  let tile = document.getElementById(id);
  if (!tile) {
    tile = document.createElement("li");
    tile.id = id;
    tile.className = "room-tile";
    tile.dataset.identity = participant.identity;
    const label = document.createElement("span");
    label.className = "room-name";
    label.textContent = participant.name || participant.identity;
    tile.append(label);
    grid.append(tile);
  }
  return tile;
}

function attach(track, participant) {
  const element = track.attach();
  element.dataset.trackSid = track.sid ?? "";
  if (track.kind === "video") {
    element.muted = true;
    element.playsInline = true;
  }
  tileFor(participant).prepend(element);
}

function loadSdk() {
  if (window.LivekitClient) return Promise.resolve(window.LivekitClient);
  return new Promise((resolve) => {
    window.addEventListener("load", () => resolve(window.LivekitClient), { once: true });
  });
}

async function join(token) {
  const { Room, RoomEvent, Track } = await loadSdk();
  // This server speaks the two-connection protocol: asking for it skips a refused attempt.
  const room = new Room({ adaptiveStream: true, singlePeerConnection: false });
  window.sluiceRoom = room;
  room
    .on(RoomEvent.TrackSubscribed, (track, _publication, participant) => attach(track, participant))
    .on(RoomEvent.TrackUnsubscribed, (track) => track.detach().forEach((element) => element.remove()))
    .on(RoomEvent.ParticipantConnected, (participant) => tileFor(participant))
    .on(RoomEvent.ParticipantDisconnected, (participant) => document.getElementById(`tile-${participant.sid}`)?.remove())
    .on(RoomEvent.ActiveSpeakersChanged, (speakers) => {
      for (const tile of grid.children) tile.classList.remove("speaking");
      for (const speaker of speakers) document.getElementById(`tile-${speaker.sid}`)?.classList.add("speaking");
    })
    .on(RoomEvent.LocalTrackPublished, (publication) => {
      if (publication.track?.kind === Track.Kind.Video) attach(publication.track, room.localParticipant);
    })
    .on(RoomEvent.Disconnected, (reason) => setStatus("disconnected", `Disconnected (${reason ?? "left"}).`));
  setStatus("connecting", "Connecting…");
  const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}`;
  try {
    await room.connect(url, token);
  } catch (error) {
    setStatus("failed", `Could not join: ${error.message ?? error}`);
    return;
  }
  document.getElementById("room-title").textContent = `Room ${room.name}`;
  tileFor(room.localParticipant);
  for (const participant of room.remoteParticipants.values()) tileFor(participant);
  setStatus("connected", `Connected as ${room.localParticipant.identity}.`);
  if (room.localParticipant.permissions?.canPublish !== false) {
    try {
      await room.localParticipant.enableCameraAndMicrophone();
      setStatus("publishing", `Connected as ${room.localParticipant.identity}, publishing.`);
    } catch (error) {
      setStatus("publish-failed", `Connected; camera or microphone unavailable: ${error.message ?? error}`);
    }
  }
  const toggle = (button, isOn, set) => {
    button.addEventListener("click", async () => {
      const on = !isOn();
      await set(on);
      button.setAttribute("aria-pressed", String(on));
    });
  };
  const local = room.localParticipant;
  toggle(document.getElementById("camera"), () => local.isCameraEnabled, (on) => local.setCameraEnabled(on));
  toggle(document.getElementById("microphone"), () => local.isMicrophoneEnabled, (on) => local.setMicrophoneEnabled(on));
  toggle(document.getElementById("screen"), () => local.isScreenShareEnabled, (on) => local.setScreenShareEnabled(on));
  document.getElementById("leave").addEventListener("click", () => room.disconnect());
}

const token = new URLSearchParams(location.search).get("token");
if (token) {
  join(token);
} else {
  const form = document.getElementById("join-form");
  form.hidden = false;
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    form.hidden = true;
    join(document.getElementById("token").value.trim());
  });
}
