// The embeddable player page, served at /play/{playback_id}: no API key, only the public HLS
// and image routes. Query parameters: `token` (a playback token, passed on to every HLS and
// image URL), `thumbnail_token` and `storyboard_token` (tokens for the image routes when they
// differ from `token`, as signed image URLs need their own `aud`), `autoplay=1` (starts
// muted), `muted=1`, `title` (the video's accessible name). hls.js (vendor/hls.min.js) is
// loaded when the viewer presses Play, points at the player or tabs into it, or at once with
// `autoplay=1`.

import { createPlayer, fetchStoryboard } from "./player.js";
import { h } from "./ui.js";

const root = document.getElementById("player-root");
const params = new URLSearchParams(location.search);
const match = /\/play\/([A-Za-z0-9]+)\/?$/.exec(location.pathname);
const playbackId = match ? match[1] : params.get("playback_id");

function withToken(path, token) {
  return token ? `${path}?token=${encodeURIComponent(token)}` : path;
}

if (!playbackId) {
  root.replaceChildren(h("p", { class: "player-status", role: "alert", text: "No playback id in this address: use /play/PLAYBACK_ID." }));
} else {
  const token = params.get("token");
  const title = params.get("title") || `Video ${playbackId}`;
  document.title = `${title} — Sluice`;
  document.getElementById("play-title").textContent = title;
  const flag = (name) => ["1", "true", "yes"].includes((params.get(name) ?? "").toLowerCase());
  const player = createPlayer({
    src: withToken(`/hls/${playbackId}/master.m3u8`, token),
    title,
    autoplay: flag("autoplay"),
    muted: flag("muted"),
    lazy: true,
  });
  root.replaceChildren(player.root);
  window.sluicePlayer = player; // for embedders' scripts and tests

  // Only assets have storyboards and thumbnails; a live stream's id answers 404 here.
  const storyboardToken = params.get("storyboard_token") ?? token;
  const thumbnailToken = params.get("thumbnail_token") ?? token;
  fetchStoryboard(withToken(`/storyboards/${playbackId}.vtt`, storyboardToken)).then(({ cues }) => {
    if (!cues.length) return;
    if (player.video.paused && player.video.currentTime === 0) {
      player.video.poster = withToken(`/thumbnails/${playbackId}.jpg`, thumbnailToken);
    }
    player.setStoryboard(cues);
    player.root.dataset.storyboard = String(cues.length);
  });
}
