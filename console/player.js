// The video player of the console's previews and of play.html: hls.js (loaded lazily from
// vendor/, only when a page plays video) or the browser's own HLS when hls.js cannot run,
// with keyboard-usable controls: play/pause, a seek bar with storyboard previews, the LIVE
// badge and the distance behind live, quality, captions, mute and full screen.

import { h, fmtDuration } from "./ui.js";

let hlsLoading = null;

/** Loads vendor/hls.min.js once; resolves to the Hls class (null when it cannot load). */
export function loadHls() {
  if (window.Hls) return Promise.resolve(window.Hls);
  if (!hlsLoading) {
    hlsLoading = new Promise((resolve) => {
      const script = document.createElement("script");
      script.src = new URL("./vendor/hls.min.js", import.meta.url).href;
      script.async = true;
      script.onload = () => resolve(window.Hls ?? null);
      script.onerror = () => {
        hlsLoading = null;
        resolve(null);
      };
      document.head.append(script);
    });
  }
  return hlsLoading;
}

/** Parses a storyboard WebVTT: [{start, end, url, x, y, w, h}]. */
export function parseStoryboard(text, baseUrl) {
  const cues = [];
  const blocks = text.replace(/\r\n?/g, "\n").split(/\n\n+/);
  const ts = (s) => {
    const parts = s.trim().split(":").map(Number);
    return parts.reduce((acc, p) => acc * 60 + p, 0);
  };
  for (const block of blocks) {
    const lines = block.split("\n").filter(Boolean);
    const timing = lines.findIndex((l) => l.includes("-->"));
    if (timing < 0 || !lines[timing + 1]) continue;
    const [a, b] = lines[timing].split("-->");
    const ref = lines[timing + 1].trim();
    let url = new URL(ref, baseUrl);
    // The server names the sprite under its public URL; load it from where the VTT came from
    // (pages may only load images from their own origin).
    const base = new URL(baseUrl, location.href);
    if (url.origin !== base.origin && url.pathname.startsWith("/storyboards/")) url = new URL(url.pathname + url.search + url.hash, base.origin);
    const match = /xywh=(\d+),(\d+),(\d+),(\d+)/.exec(url.hash);
    if (!match) continue;
    url.hash = "";
    cues.push({
      start: ts(a),
      end: ts(b.trim().split(/\s+/)[0]),
      url: url.href,
      x: Number(match[1]),
      y: Number(match[2]),
      w: Number(match[3]),
      h: Number(match[4]),
    });
  }
  return cues;
}

/** Fetches and parses a storyboard; [] when there is none (a live stream, an asset not ready). */
export async function fetchStoryboard(url) {
  try {
    const response = await fetch(url);
    if (!response.ok) return { cues: [], status: response.status };
    return { cues: parseStoryboard(await response.text(), response.url || url), status: response.status };
  } catch {
    return { cues: [], status: 0 };
  }
}

/** A storyboard tile as an element: the sprite seen through a box of the tile's size. */
export function storyboardTile(cue) {
  return h("span", {
    class: "sb-tile",
    "aria-hidden": "true",
    style: {
      width: `${cue.w}px`,
      height: `${cue.h}px`,
      backgroundImage: `url("${cue.url}")`,
      backgroundPosition: `-${cue.x}px -${cue.y}px`,
    },
  });
}

function cueAt(cues, t) {
  let found = null;
  for (const cue of cues) {
    if (cue.start <= t) found = cue;
    else break;
  }
  return found;
}

/**
 * Creates a player. Options: `src` (master playlist URL), `title`, `lowLatency` (hls.js
 * low-latency settings), `waitForStream` (keep retrying while the playlist answers 404, for a
 * stream about to go live), `autoplay` (muted), `muted`, `poster`, `storyboard` (cues from
 * parseStoryboard), `asset` (an asset: never shown as live, even while its playlist grows),
 * `lazy` (load hls.js and the playlist only when the viewer presses Play or
 * points at the player, so an embed that is never played costs no more than its page).
 * Returns {root, video, destroy(), setStoryboard(cues)}.
 */
export function createPlayer(options) {
  const { src, title = "Video", lowLatency = false, waitForStream = false } = options;
  let storyboard = options.storyboard ?? [];
  const video = h("video", { class: "player-video", playsinline: true, preload: "metadata" });
  video.setAttribute("aria-label", title);
  if (options.muted || options.autoplay) video.muted = true;
  if (options.poster) video.poster = options.poster;

  const status = h("p", { class: "player-status", role: "status" });
  const playBtn = h("button", { type: "button", class: "pbtn", text: "Play" });
  const seek = h("input", {
    type: "range",
    class: "seek",
    min: "0",
    max: "0",
    step: "0.1",
    value: "0",
    "aria-label": "Seek",
    "aria-valuetext": "0:00",
  });
  const tile = h("span", { class: "sb-tile" });
  const tileTime = h("span", { class: "sb-time" });
  const preview = h("div", { class: "sb-preview", hidden: true, "aria-hidden": "true" }, tile, tileTime);
  const timeEl = h("span", { class: "ptime", text: "0:00" });
  const liveBadge = h("span", { class: "live-badge", hidden: true, text: "LIVE" });
  const latencyEl = h("span", { class: "latency", hidden: true, "aria-live": "off" });
  const goLive = h("button", { type: "button", class: "pbtn", hidden: true, text: "Go to live" });
  const muteBtn = h("button", { type: "button", class: "pbtn", text: video.muted ? "Unmute" : "Mute" });
  const quality = h("select", { class: "pselect", "aria-label": "Quality" }, h("option", { value: "-1", text: "Auto" }));
  const qualityWrap = h("label", { class: "pfield", hidden: true }, h("span", { text: "Quality" }), quality);
  quality.removeAttribute("aria-label");
  const captions = h("select", { class: "pselect" }, h("option", { value: "-1", text: "Off" }));
  const captionsWrap = h("label", { class: "pfield", hidden: true }, h("span", { text: "Captions" }), captions);
  const fsBtn = h("button", { type: "button", class: "pbtn", text: "Full screen" });

  const root = h(
    "div",
    { class: "player" },
    h("div", { class: "player-stage" }, video),
    h(
      "div",
      { class: "player-controls" },
      playBtn,
      h("div", { class: "seek-wrap" }, preview, seek),
      timeEl,
      liveBadge,
      latencyEl,
      goLive,
      muteBtn,
      qualityWrap,
      captionsWrap,
      fsBtn,
    ),
    status,
  );

  let hls = null;
  let Hls = null;
  let destroyed = false;
  let isLive = false;
  let scrubbing = false;
  let retryTimer = null;
  let started = false;
  let playRequested = false;
  const timers = [];

  const setStatus = (text) => {
    if (status.textContent !== text) status.textContent = text;
  };

  function range() {
    if (!isLive && Number.isFinite(video.duration)) return [0, video.duration];
    const s = video.seekable;
    if (s && s.length) return [s.start(0), s.end(s.length - 1)];
    if (Number.isFinite(video.duration)) return [0, video.duration];
    // Not loaded yet: the storyboard knows how long an asset is.
    return [0, storyboard.length ? storyboard[storyboard.length - 1].end : 0];
  }

  function updateTime() {
    const [min, max] = range();
    seek.min = String(min);
    seek.max = String(max);
    if (!scrubbing) seek.value = String(video.currentTime);
    const text = isLive
      ? fmtDuration(video.currentTime - min)
      : `${fmtDuration(video.currentTime)} / ${fmtDuration(max)}`;
    if (timeEl.textContent !== text) timeEl.textContent = text;
    seek.setAttribute("aria-valuetext", isLive ? `${fmtDuration(video.currentTime - min)} into the live window` : `${fmtDuration(video.currentTime)} of ${fmtDuration(max)}`);
  }

  function updateLatency() {
    if (!isLive) return;
    let latency = null;
    if (hls && Number.isFinite(hls.latency)) latency = hls.latency;
    else {
      const [, max] = range();
      latency = max - video.currentTime;
    }
    if (latency !== null && Number.isFinite(latency) && video.readyState > 0) {
      latencyEl.hidden = false;
      latencyEl.textContent = `${latency.toFixed(1)} s behind live`;
      latencyEl.dataset.latency = latency.toFixed(2);
      const target = hls && Number.isFinite(hls.targetLatency) ? hls.targetLatency : 6;
      goLive.hidden = latency < target + 3;
    }
  }

  function showPreview(t, clientX) {
    if (!storyboard.length) return;
    const cue = cueAt(storyboard, t);
    if (!cue) return;
    tile.style.width = `${cue.w}px`;
    tile.style.height = `${cue.h}px`;
    tile.style.backgroundImage = `url("${cue.url}")`;
    tile.style.backgroundPosition = `-${cue.x}px -${cue.y}px`;
    tileTime.textContent = fmtDuration(t);
    preview.hidden = false;
    const box = seek.getBoundingClientRect();
    const [min, max] = range();
    const x = clientX ?? box.left + ((t - min) / (max - min || 1)) * box.width;
    const left = Math.min(Math.max(x - box.left - cue.w / 2, 0), Math.max(box.width - cue.w, 0));
    preview.style.left = `${left}px`;
  }
  const hidePreview = () => {
    preview.hidden = true;
  };

  seek.addEventListener("pointermove", (e) => {
    const box = seek.getBoundingClientRect();
    const [min, max] = range();
    const t = min + Math.min(Math.max((e.clientX - box.left) / box.width, 0), 1) * (max - min);
    showPreview(t, e.clientX);
  });
  seek.addEventListener("pointerleave", hidePreview);
  seek.addEventListener("pointerdown", () => {
    scrubbing = true;
  });
  seek.addEventListener("input", () => {
    scrubbing = true;
    showPreview(Number(seek.value));
  });
  seek.addEventListener("change", () => {
    scrubbing = false;
    video.currentTime = Number(seek.value);
    setTimeout(hidePreview, 800);
  });
  seek.addEventListener("blur", hidePreview);

  playBtn.addEventListener("click", () => {
    if (!started) {
      playRequested = true;
      start();
      return;
    }
    if (video.paused) video.play().catch((e) => setStatus(`Cannot play: ${e.message}`));
    else video.pause();
  });
  video.addEventListener("click", () => playBtn.click());
  const syncPlay = () => {
    playBtn.textContent = video.paused ? "Play" : "Pause";
  };
  video.addEventListener("play", syncPlay);
  video.addEventListener("pause", syncPlay);
  video.addEventListener("playing", () => setStatus(""));
  video.addEventListener("waiting", () => setStatus("Buffering…"));
  for (const type of ["timeupdate", "durationchange", "loadedmetadata", "progress", "seeked"]) {
    video.addEventListener(type, updateTime);
  }
  muteBtn.addEventListener("click", () => {
    video.muted = !video.muted;
  });
  video.addEventListener("volumechange", () => {
    muteBtn.textContent = video.muted ? "Unmute" : "Mute";
  });
  fsBtn.addEventListener("click", () => {
    if (document.fullscreenElement) document.exitFullscreen();
    else root.requestFullscreen?.().catch(() => {});
  });
  const onFullscreen = () => {
    fsBtn.textContent = document.fullscreenElement === root ? "Exit full screen" : "Full screen";
  };
  document.addEventListener("fullscreenchange", onFullscreen);
  goLive.addEventListener("click", () => {
    const edge = hls && Number.isFinite(hls.liveSyncPosition) ? hls.liveSyncPosition : range()[1];
    video.currentTime = edge;
    video.play().catch(() => {});
  });
  quality.addEventListener("change", () => {
    if (hls) hls.currentLevel = Number(quality.value);
  });
  captions.addEventListener("change", () => {
    const index = Number(captions.value);
    if (hls) {
      hls.subtitleTrack = index;
      hls.subtitleDisplay = index >= 0;
    } else {
      [...video.textTracks].forEach((track, i) => {
        track.mode = i === index ? "showing" : "disabled";
      });
    }
  });

  function setLive(live) {
    // An asset's playlist grows while it is prepared (an EVENT playlist) but is never live.
    if (options.asset) live = false;
    isLive = live;
    root.classList.toggle("is-live", live);
    liveBadge.hidden = !live;
    if (!live) latencyEl.hidden = true;
  }

  const levelName = (level) =>
    level.height ? `${level.height}p` : level.bitrate ? `${Math.round(level.bitrate / 1000)} kb/s` : "audio";

  function fillQuality() {
    const levels = hls.levels ?? [];
    quality.replaceChildren(h("option", { value: "-1", text: "Auto" }));
    levels
      .map((level, index) => ({ level, index }))
      .sort((a, b) => (b.level.height || 0) - (a.level.height || 0) || b.level.bitrate - a.level.bitrate)
      .forEach(({ level, index }) =>
        quality.append(
          h("option", { value: String(index), text: `${levelName(level)} (${Math.round(level.bitrate / 1000)} kb/s)` }),
        ),
      );
    qualityWrap.hidden = levels.length < 2;
  }

  function fillCaptions(tracks) {
    captions.replaceChildren(h("option", { value: "-1", text: "Off" }));
    tracks.forEach((track, index) =>
      captions.append(h("option", { value: String(index), text: track.name || track.label || track.lang || track.language || `Track ${index + 1}` })),
    );
    captionsWrap.hidden = tracks.length === 0;
  }

  function startHls() {
    hls = new Hls({
      lowLatencyMode: true,
      // As the low-latency pages do (docs/API.md, Players): catch up to the target latency.
      maxLiveSyncPlaybackRate: lowLatency ? 1.5 : 1,
      backBufferLength: 30,
      enableWorker: true,
    });
    hls.on(Hls.Events.MANIFEST_PARSED, () => {
      fillQuality();
      setStatus("");
      if (options.autoplay || playRequested) video.play().catch(() => setStatus("Press Play to start."));
    });
    hls.on(Hls.Events.LEVEL_LOADED, (_e, data) => setLive(Boolean(data.details?.live)));
    hls.on(Hls.Events.LEVEL_SWITCHED, (_e, data) => {
      const level = hls.levels[data.level];
      const auto = quality.querySelector('option[value="-1"]');
      if (auto && level) auto.textContent = hls.autoLevelEnabled ? `Auto (${levelName(level)})` : "Auto";
      root.dataset.level = level ? levelName(level) : "";
    });
    hls.on(Hls.Events.SUBTITLE_TRACKS_UPDATED, (_e, data) => fillCaptions(data.subtitleTracks ?? []));
    hls.on(Hls.Events.ERROR, (_e, data) => {
      if (!data.fatal) return;
      const manifest = data.details === Hls.ErrorDetails.MANIFEST_LOAD_ERROR || data.details === Hls.ErrorDetails.MANIFEST_LOAD_TIMEOUT;
      if (manifest) {
        const code = data.response?.code;
        if (waitForStream && !destroyed) {
          setStatus("Waiting for the stream to start…");
          hls.destroy();
          retryTimer = setTimeout(startHls, 2000);
          return;
        }
        setStatus(code === 404 ? "Nothing to play here (yet)." : code === 401 || code === 403 ? "This video needs a valid playback token." : "The playlist could not be loaded.");
        return;
      }
      if (data.type === Hls.ErrorTypes.NETWORK_ERROR) {
        setStatus("Network trouble: retrying…");
        retryTimer = setTimeout(() => hls && hls.startLoad(), 2000);
      } else if (data.type === Hls.ErrorTypes.MEDIA_ERROR) {
        hls.recoverMediaError();
      } else {
        setStatus(`Playback failed (${data.details}).`);
        hls.destroy();
        hls = null;
      }
    });
    hls.loadSource(src);
    hls.attachMedia(video);
  }

  function startNative() {
    video.src = src;
    video.addEventListener("loadedmetadata", () => {
      setLive(!Number.isFinite(video.duration));
      if (options.autoplay || playRequested) video.play().catch(() => setStatus("Press Play to start."));
    });
    video.textTracks?.addEventListener?.("addtrack", () => fillCaptions([...video.textTracks]));
    video.addEventListener("error", () => {
      if (waitForStream && !destroyed) {
        setStatus("Waiting for the stream to start…");
        retryTimer = setTimeout(() => {
          video.src = src;
        }, 2000);
      } else setStatus("The video could not be loaded.");
    });
  }

  let ready = null;
  function start() {
    if (started) return ready;
    started = true;
    setStatus("Loading player…");
    ready = loadHls().then((HlsClass) => {
      if (destroyed) return;
      Hls = HlsClass;
      if (Hls && Hls.isSupported()) startHls();
      else if (video.canPlayType("application/vnd.apple.mpegurl")) startNative();
      else setStatus("This browser cannot play HLS video.");
    });
    return ready;
  }
  if (options.lazy && !options.autoplay) {
    // Warm up (download hls.js) when the viewer points at or tabs into the player.
    const warm = () => loadHls();
    root.addEventListener("pointerenter", warm, { once: true });
    root.addEventListener("focusin", warm, { once: true });
  } else start();
  timers.push(setInterval(updateLatency, 1000));

  return {
    root,
    video,
    start,
    get ready() {
      return ready;
    },
    get hls() {
      return hls;
    },
    setStoryboard(cues) {
      storyboard = cues;
    },
    seekTo(t) {
      video.currentTime = t;
    },
    destroy() {
      destroyed = true;
      document.removeEventListener("fullscreenchange", onFullscreen);
      clearTimeout(retryTimer);
      timers.forEach(clearInterval);
      if (hls) hls.destroy();
      hls = null;
      video.removeAttribute("src");
      video.load();
    },
  };
}
