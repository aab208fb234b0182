// Assets: resumable uploads (tus, drag and drop or a file input), imports from a URL, the list
// with posters, and an asset's page (player with storyboard previews, renditions, tracks).

import { get, page, post, del, seg, ApiError } from "../api.js";
import {
  h,
  replace,
  announce,
  errorBox,
  showError,
  copyButton,
  confirmDialog,
  badge,
  time,
  fmtBytes,
  fmtDuration,
  setTitle,
  pageHeading,
  field,
  busy,
  onAction,
  every,
  section,
  dl,
  keyedTable,
  table,
  checkbox,
} from "../ui.js";
import * as tus from "../tus.js";

const publicId = (asset) => asset.playback_ids?.find((p) => p.policy === "public")?.id ?? null;
const labelOf = (asset) => asset.new_asset_settings?.passthrough || asset.id;

// The asset's generated text tracks.
const textTracks = (asset) => (asset.tracks ?? []).filter((t) => t.type === "text");

// `generated_subtitles` for a checked "Generate English subtitles" box, nothing otherwise.
const subtitlesSetting = (box) => (box.querySelector("input").checked ? { generated_subtitles: [{ language_code: "en" }] } : {});

// One line about a track: a picture's size and rate, a sound's channels, a text track's name,
// language and status (with the reason when it errored).
function trackDetails(t) {
  if (t.type === "video") {
    return `${t.width}×${t.height}${t.frame_rate ? `, ${Math.round(t.frame_rate * 100) / 100} fps` : ""}${t.rotation ? `, rotated ${t.rotation}°` : ""}`;
  }
  if (t.type === "text") {
    const status = t.status === "errored" ? `errored: ${t.error?.message ?? "no reason given"}` : t.status;
    return `${t.name} (${t.language_code}, generated), ${status}`;
  }
  return `${t.channels === 1 ? "mono" : t.channels === 2 ? "stereo" : `${t.channels ?? "?"} channels`}, ${t.sample_rate ?? "?"} Hz`;
}

function inputText(input) {
  if (!input) return "—";
  if (input.type === "url") return `imported from ${input.url}`;
  if (input.type === "upload") return `uploaded (${input.upload_id})`;
  if (input.type === "live_stream") return h("span", {}, "recorded from ", h("a", { href: `#/live-streams/${input.live_stream_id}`, text: input.live_stream_id }));
  return input.type;
}

// ---------------------------------------------------------------------------------------------
// Upload panel

// An upload paused because the person left the page: its File stays in memory, so coming back
// offers Resume without choosing the file again (after a reload, choosing it again resumes).
let parked = null;

function warnBeforeUnload(event) {
  event.preventDefault();
  event.returnValue = "";
}

function uploadPanel({ onAsset }) {
  const fileInput = h("input", { type: "file", id: "upload-file", accept: "video/*,audio/*,.mkv,.mov,.mp4,.ts,.flv,.avi,.mxf,.webm" });
  const zone = h(
    "div",
    { class: "dropzone", id: "dropzone" },
    h("p", { class: "dz-title", text: "Drop a video file here" }),
    h("p", {}, "or ", h("label", { for: "upload-file", class: "inline-label", text: "choose a file" }), ":"),
    fileInput,
  );
  const progress = h("progress", { id: "upload-progress", max: "100", value: "0" });
  const progressLabel = h("label", { for: "upload-progress", id: "upload-progress-label", text: "Upload progress" });
  const progressText = h("span", { class: "progress-text", id: "upload-progress-text" });
  const state = h("p", { class: "upload-state", role: "status", "aria-live": "polite" });
  const pauseBtn = h("button", { type: "button", class: "secondary", text: "Pause", hidden: true });
  const resumeBtn = h("button", { type: "button", class: "primary", text: "Resume", hidden: true });
  const cancelBtn = h("button", { type: "button", class: "danger", text: "Cancel upload", hidden: true });
  const progressBox = h("div", { class: "progress-box", hidden: true }, progressLabel, progress, progressText);
  const error = errorBox(null);
  const resumables = h("div", { class: "resumables" });
  const subtitles = checkbox("Generate English subtitles", { name: "generated_subtitles" }, "Recognised from the speech on this server once the video is ready.");

  let current = null; // {file, fp, url, uploadId, transfer}

  const setProgress = (sent, total) => {
    const pct = total ? Math.floor((sent / total) * 100) : 0;
    progress.value = pct;
    progress.setAttribute("aria-valuetext", `${pct} percent`);
    progressText.textContent = `${pct} % · ${fmtBytes(sent)} of ${fmtBytes(total)}`;
  };

  function listResumables() {
    const all = Object.entries(tus.remembered());
    if (!all.length) {
      replace(resumables);
      return;
    }
    replace(
      resumables,
      h("h3", { text: "Resumable uploads" }),
      h("p", { class: "hint", text: "These uploads stopped before their file was whole. Select the same file again (drop it or choose it) to resume where the server stopped." }),
      h(
        "ul",
        { class: "plain-list" },
        all.map(([fp, rec]) => {
          const info = h("span", { class: "muted", text: rec.offset !== undefined ? ` ${Math.floor((rec.offset / rec.size) * 100)} % sent` : "" });
          const forgetBtn = h("button", { type: "button", class: "secondary small", text: "Forget", "aria-label": `Forget the upload of ${rec.name}` });
          forgetBtn.addEventListener("click", () => {
            tus.forget(fp);
            // Terminate on the server too; a failure only means it is already gone.
            fetch(rec.url, { method: "DELETE", headers: { "Tus-Resumable": "1.0.0" } }).catch(() => {});
            listResumables();
            announce(`Forgot the upload of ${rec.name}`);
          });
          // Ask the server how far it got (and drop records it no longer knows).
          tus
            .status(rec.url)
            .then(({ offset }) => {
              info.textContent = ` resumable: ${Math.floor((offset / rec.size) * 100)} % on the server (${fmtBytes(offset)} of ${fmtBytes(rec.size)})`;
              info.dataset.offset = String(offset);
            })
            .catch((e) => {
              if (e.status === 404 || e.status === 410) {
                tus.forget(fp);
                info.textContent = " expired on the server; it will start over";
              } else if (e.status === 409) {
                tus.forget(fp);
                info.textContent = " already complete";
              }
            });
          return h("li", { class: "resumable", dataset: { name: rec.name } }, h("strong", { text: rec.name }), ` (${fmtBytes(rec.size)})`, info, " ", forgetBtn);
        }),
      ),
    );
  }

  async function waitForAsset(uploadId, name) {
    for (let i = 0; i < 120; i += 1) {
      try {
        const upload = await get(`/v1/uploads/${seg(uploadId)}`);
        if (upload.asset_id) return upload.asset_id;
        if (upload.status !== "waiting" && upload.status !== "asset_created") throw new Error(upload.error?.message ?? `upload ${upload.status}`);
      } catch (e) {
        if (e instanceof ApiError && e.status !== 404) throw e;
      }
      await new Promise((r) => setTimeout(r, 1000));
    }
    throw new Error(`the upload of ${name} did not become an asset`);
  }

  async function transfer(offset) {
    const { file, fp, url } = current;
    pauseBtn.hidden = false;
    resumeBtn.hidden = true;
    cancelBtn.hidden = false;
    progressBox.hidden = false;
    setProgress(offset, file.size);
    state.textContent = offset > 0 ? `Resuming ${file.name} from ${Math.floor((offset / file.size) * 100)} %…` : `Uploading ${file.name}…`;
    let lastSaved = 0;
    current.transfer = tus.send(url, file, offset, {
      onProgress(sent) {
        setProgress(sent, file.size);
        if (sent - lastSaved >= tus.CHUNK_SIZE || sent === file.size) {
          lastSaved = sent;
          tus.remember(fp, { offset: sent });
        }
      },
      onRetry(e, wait) {
        state.textContent = `${e.message} Retrying in ${Math.round(wait / 1000)} s…`;
      },
    });
    window.addEventListener("beforeunload", warnBeforeUnload);
    try {
      await current.transfer.promise;
    } catch (e) {
      window.removeEventListener("beforeunload", warnBeforeUnload);
      pauseBtn.hidden = true;
      if (e.status === -1) {
        resumeBtn.hidden = false;
        state.textContent = `Paused at ${progress.value} %. Resumable: press Resume, or select the same file after a reload.`;
        listResumables();
        return;
      }
      if (e.status === 404 || e.status === 410) tus.forget(fp);
      showError(error, e);
      state.textContent = `The upload of ${file.name} stopped. ${e.status === 0 || e.status >= 500 ? "Select the same file again to resume." : ""}`;
      cancelBtn.hidden = true;
      listResumables();
      return;
    }
    window.removeEventListener("beforeunload", warnBeforeUnload);
    setProgress(file.size, file.size);
    pauseBtn.hidden = true;
    cancelBtn.hidden = true;
    tus.forget(fp);
    listResumables();
    state.textContent = `Upload of ${file.name} complete (100 %). Making it an asset…`;
    try {
      const assetId = await waitForAsset(current.uploadId, file.name);
      state.replaceChildren(`${file.name} is uploaded and being prepared: `, h("a", { href: `#/assets/${assetId}`, id: "uploaded-asset-link", text: `open asset ${assetId}` }), ".");
      announce(`Upload complete: asset ${assetId} is being prepared`);
      onAsset(assetId);
    } catch (e) {
      showError(error, e);
    }
    current = null;
  }

  async function start(file) {
    if (current && !pauseBtn.hidden) {
      showError(error, { message: "An upload is running: pause or cancel it first." });
      return;
    }
    showError(error, null);
    const fp = tus.fingerprint(file);
    const record = tus.remembered()[fp];
    current = { file, fp };
    progressBox.hidden = false;
    setProgress(0, file.size);
    if (record) {
      state.textContent = `Checking how much of ${file.name} the server already has…`;
      try {
        const { offset } = await tus.status(record.url);
        Object.assign(current, { url: record.url, uploadId: record.uploadId });
        announce(`Resuming ${file.name} from ${Math.floor((offset / file.size) * 100)} percent`);
        await transfer(offset);
        return;
      } catch (e) {
        // Gone, expired or complete: start over with a new upload.
        tus.forget(fp);
      }
    }
    state.textContent = `Creating an upload for ${file.name}…`;
    try {
      const upload = await post("/v1/uploads", {
        new_asset_settings: {
          playback_policy: ["public"],
          passthrough: file.name.slice(0, 255),
          ...subtitlesSetting(subtitles),
        },
      });
      const url = tus.sameOrigin(upload.url);
      Object.assign(current, { url, uploadId: upload.id });
      tus.remember(fp, { url, uploadId: upload.id, name: file.name, size: file.size, lastModified: file.lastModified, expiresAt: upload.expires_at, offset: 0 });
      await tus.declare(url, file);
    } catch (e) {
      tus.forget(fp);
      showError(error, e);
      state.textContent = "The upload could not start.";
      current = null;
      return;
    }
    await transfer(0);
  }

  fileInput.addEventListener("change", () => {
    const file = fileInput.files?.[0];
    if (file) start(file);
    fileInput.value = "";
  });
  const over = (e) => {
    e.preventDefault();
    zone.classList.add("dragging");
  };
  zone.addEventListener("dragenter", over);
  zone.addEventListener("dragover", over);
  zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("dragging");
    const file = e.dataTransfer?.files?.[0];
    if (file) start(file);
  });
  pauseBtn.addEventListener("click", () => current?.transfer?.abort());
  resumeBtn.addEventListener("click", async () => {
    if (!current) return;
    resumeBtn.hidden = true;
    try {
      const { offset } = await tus.status(current.url);
      await transfer(offset);
    } catch (e) {
      showError(error, e);
      resumeBtn.hidden = false;
    }
  });
  cancelBtn.addEventListener("click", async () => {
    if (!current) return;
    if (!(await confirmDialog(`Cancel the upload of ${current.file.name}? The bytes sent so far are dropped.`, { confirmLabel: "Cancel upload" }))) return;
    current.transfer?.abort();
    fetch(current.url, { method: "DELETE", headers: { "Tus-Resumable": "1.0.0" } }).catch(() => {});
    tus.forget(current.fp);
    current = null;
    progressBox.hidden = true;
    pauseBtn.hidden = resumeBtn.hidden = cancelBtn.hidden = true;
    state.textContent = "Upload cancelled.";
    listResumables();
  });

  listResumables();
  if (parked) {
    current = parked;
    parked = null;
    const { file } = current;
    progressBox.hidden = false;
    resumeBtn.hidden = false;
    cancelBtn.hidden = false;
    state.textContent = `The upload of ${file.name} paused when you left this page. Press Resume to go on.`;
    tus
      .status(current.url)
      .then(({ offset }) => setProgress(offset, file.size))
      .catch(() => {});
  }
  return {
    el: h("div", {}, zone, subtitles, progressBox, state, h("div", { class: "actions" }, pauseBtn, resumeBtn, cancelBtn), error, resumables),
    stop() {
      if (current && current.url && (!pauseBtn.hidden || !resumeBtn.hidden)) {
        current.transfer?.abort();
        const { file, fp, url, uploadId } = current;
        parked = { file, fp, url, uploadId };
      }
    },
  };
}

// ---------------------------------------------------------------------------------------------
// List

export function list(main, _params, { signal }) {
  setTitle("Assets");
  const error = errorBox(null);
  const more = h("button", { type: "button", class: "secondary", hidden: true, text: "Load more" });
  let items = [];
  let cursor = null;

  const assets = keyedTable(
    "Assets, newest first",
    [
      {
        label: "Poster",
        cell: (a) => {
          const pid = publicId(a);
          return a.status === "ready" && pid
            ? h("img", { src: `/thumbnails/${pid}.jpg?width=160&height=90&fit_mode=pad`, alt: "", width: "160", height: "90", loading: "lazy", decoding: "async", class: "poster" })
            : h("span", { class: "poster placeholder", "aria-hidden": "true" });
        },
      },
      { label: "Asset", header: true, cell: (a) => h("a", { href: `#/assets/${a.id}`, text: labelOf(a) }) },
      { label: "Status", cell: (a) => h("span", {}, badge(a.status), a.status === "preparing" ? ` ${Math.round(a.progress ?? 0)} %` : "") },
      { label: "Duration", class: "num", cell: (a) => fmtDuration(a.duration) },
      { label: "Viewers", class: "num", cell: (a) => (typeof a.viewers === "number" ? String(a.viewers) : "—") },
      { label: "Source", cell: (a) => inputText(a.input) },
      { label: "Created", cell: (a) => time(a.created_at) },
    ],
    { empty: "No assets yet. Upload a file or import one from a URL." },
  );

  async function load(reset) {
    try {
      if (reset) {
        const result = await page("/v1/assets", { limit: Math.min(Math.max(items.length, 25), 100) }, { signal });
        items = result.data;
        cursor = result.next_cursor;
      } else {
        const result = await page("/v1/assets", { cursor }, { signal });
        items = items.concat(result.data);
        cursor = result.next_cursor;
      }
      showError(error, null);
      assets.update(items);
      more.hidden = !cursor;
    } catch (e) {
      if (e.name !== "AbortError") showError(error, e);
    }
  }
  more.addEventListener("click", () => busy(more, () => load(false)));

  const uploader = uploadPanel({ onAsset: () => load(true) });

  // Import from a URL
  const importUrl = h("input", { type: "url", name: "input", required: true, placeholder: "https://example.com/talk.mp4", autocomplete: "off", spellcheck: "false" });
  const importError = errorBox(null);
  const importBtn = h("button", { type: "submit", class: "primary", text: "Import" });
  const importSubtitles = checkbox("Generate English subtitles", { name: "generated_subtitles" });
  const importForm = h(
    "form",
    { novalidate: true },
    field("Video URL", importUrl, "An http or https address the server can fetch."),
    importSubtitles,
    importError,
    h("div", { class: "actions" }, importBtn),
  );
  importForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const url = importUrl.value.trim();
    if (!url) {
      showError(importError, { message: "Enter the address of a video file." });
      importUrl.focus();
      return;
    }
    await busy(importBtn, async () => {
      try {
        // The file's name becomes the asset's label (passthrough), as for uploads.
        let label = url;
        try {
          label = decodeURIComponent(new URL(url).pathname.split("/").filter(Boolean).pop() ?? url);
        } catch {
          label = url;
        }
        const asset = await post("/v1/assets", {
          input: url,
          playback_policy: ["public"],
          passthrough: label.slice(0, 255),
          ...subtitlesSetting(importSubtitles),
        });
        showError(importError, null);
        importForm.reset();
        announce(`Import started: asset ${asset.id}`);
        load(true);
      } catch (e) {
        showError(importError, e);
      }
    });
  });

  // Keep a file dropped next to the zone from replacing the page.
  const swallow = (e) => {
    if (e.dataTransfer?.types?.includes("Files")) e.preventDefault();
  };
  window.addEventListener("dragover", swallow);
  window.addEventListener("drop", swallow);

  main.append(
    pageHeading("Assets"),
    h("div", { class: "two-col" }, section("Upload a video", uploader.el), section("Import from a URL", importForm)),
    section("All assets", error, assets.el, more),
  );
  load(true);
  const stop = every(5000, () => load(true));
  return () => {
    stop();
    uploader.stop();
    window.removeEventListener("dragover", swallow);
    window.removeEventListener("drop", swallow);
  };
}

// ---------------------------------------------------------------------------------------------
// Detail

export function detail(main, [id], { signal, navigate }) {
  setTitle("Asset");
  const title = h("h1", { tabindex: "-1", id: "page-title", text: "Asset" });
  const statusSlot = h("span", { class: "status-slot", role: "status" });
  const topError = errorBox(null);
  const deleteBtn = h("button", { type: "button", class: "danger", text: "Delete asset" });
  const playerSlot = h("div", { class: "preview" }, h("p", { class: "empty", text: "Loading…" }));
  const storyboardSlot = h("div", { class: "storyboard" });
  const factsSlot = h("div");
  const renditionsSlot = h("div");
  const tracksSlot = h("div");
  const transcriptSlot = h("div", { class: "transcript" });
  let transcriptLoaded = false;
  let asset = null;
  let player = null;
  let storyboardLoaded = false;
  let stop = null;
  let renderedSig = "";

  onAction(deleteBtn, {
    confirm: () => `Delete ${asset ? labelOf(asset) : id}? Its renditions, images and source are removed and its playback URLs stop working.`,
    confirmLabel: "Delete asset",
    errorBox: topError,
    async run() {
      await del(`/v1/assets/${seg(id)}`);
      announce("Asset deleted");
      navigate("/assets");
    },
  });

  async function loadStoryboard(pid) {
    storyboardLoaded = true;
    const { fetchStoryboard, storyboardTile } = await import("../player.js");
    const { cues } = await fetchStoryboard(`/storyboards/${pid}.vtt`);
    if (!cues.length) {
      storyboardLoaded = false;
      return;
    }
    player?.setStoryboard(cues);
    // At most 24 tiles, evenly picked, as buttons that seek.
    const step = Math.max(1, Math.ceil(cues.length / 24));
    const picked = cues.filter((_c, i) => i % step === 0);
    replace(
      storyboardSlot,
      h("p", { class: "hint", text: "Hover the player's seek bar (or move it with the arrow keys) for a preview; choose a picture to jump there." }),
      h(
        "ul",
        { class: "tiles" },
        picked.map((cue) =>
          h(
            "li",
            {},
            h(
              "button",
              {
                type: "button",
                class: "tile-button",
                "aria-label": `Play from ${fmtDuration(cue.start)}`,
                onclick: () => {
                  if (player) {
                    player.seekTo(cue.start);
                    player.video.play().catch(() => {});
                  }
                },
              },
              storyboardTile(cue),
              h("span", { class: "tile-time", "aria-hidden": "true", text: fmtDuration(cue.start) }),
            ),
          ),
        ),
      ),
    );
  }

  // The recognised lines of a ready text track, as buttons that play from their time.
  async function loadTranscript() {
    transcriptLoaded = true;
    try {
      const { lines } = await get(`/v1/assets/${seg(id)}/transcript.json`, { signal });
      replace(
        transcriptSlot,
        lines.length
          ? h(
              "ol",
              { class: "transcript-lines" },
              lines.map((line) =>
                h(
                  "li",
                  {},
                  h(
                    "button",
                    {
                      type: "button",
                      "aria-label": `Play from ${fmtDuration(line.start)}: ${line.text}`,
                      onclick: () => {
                        if (player) {
                          player.seekTo(line.start);
                          player.video.play().catch(() => {});
                        }
                      },
                    },
                    h("span", { class: "tile-time", text: fmtDuration(line.start) }),
                    " ",
                    line.text,
                  ),
                ),
              ),
            )
          : h("p", { class: "empty", text: "No speech was recognised." }),
      );
    } catch (e) {
      if (e.name === "AbortError") return;
      transcriptLoaded = false;
      replace(transcriptSlot, errorBox(e));
    }
  }

  async function render() {
    setTitle(labelOf(asset));
    title.textContent = labelOf(asset);
    replace(statusSlot, badge(asset.status), asset.status === "preparing" ? ` ${Math.round(asset.progress ?? 0)} % prepared` : "");
    const pid = publicId(asset);
    const sig = JSON.stringify([asset.status, asset.playable, asset.duration, asset.renditions, asset.tracks, asset.error, asset.playback_ids]);
    if (sig === renderedSig) return;
    renderedSig = sig;

    if (asset.status === "errored") {
      replace(playerSlot, h("p", { class: "error", role: "alert", text: `Processing failed: ${asset.error?.message ?? "unknown error"}` }));
    } else if (!pid) {
      replace(playerSlot, h("p", { class: "empty", text: "This asset has no public playback id, so the console cannot play it (signed ids need a playback token)." }));
    } else if (!asset.playable) {
      replace(playerSlot, h("p", { class: "empty", text: "Not playable yet: the player appears once the first segments are made." }));
    } else if (!player) {
      const { createPlayer } = await import("../player.js");
      if (signal.aborted || player) return;
      player = createPlayer({
        src: `/hls/${pid}/master.m3u8`,
        title: `Video: ${labelOf(asset)}`,
        asset: true,
        poster: asset.status === "ready" ? `/thumbnails/${pid}.jpg` : undefined,
      });
      replace(playerSlot, player.root);
    }
    if (pid && asset.status === "ready" && !storyboardLoaded) loadStoryboard(pid);
    const text = textTracks(asset);
    if (text.some((t) => t.status === "ready")) {
      if (!transcriptLoaded) loadTranscript();
    } else if (text.length) {
      const t = text[0];
      replace(
        transcriptSlot,
        h("p", { class: t.status === "errored" ? "error" : "empty", text: t.status === "errored" ? `No transcript: ${t.error?.message ?? "it failed"}` : `Recognising speech: ${t.progress ?? 0} %` }),
      );
    } else {
      replace(transcriptSlot, h("p", { class: "empty", text: "No subtitles were asked for this asset." }));
    }

    const origin = location.origin;
    replace(
      factsSlot,
      dl([
        ["Id", h("code", { text: asset.id })],
        ["Status", asset.status],
        ["Duration", fmtDuration(asset.duration)],
        typeof asset.viewers === "number" ? ["Viewers now", String(asset.viewers)] : null,
        ["Source", inputText(asset.input)],
        asset.source_metadata?.container ? ["Container", `${asset.source_metadata.container}, ${fmtBytes(asset.source_metadata.size)}`] : null,
        ["Created", time(asset.created_at)],
        ["Codecs", (asset.new_asset_settings?.codecs ?? ["h264"]).join(", ")],
        pid ? ["HLS URL", h("span", { class: "value-row" }, h("code", { text: `${origin}/hls/${pid}/master.m3u8` }), copyButton("Copy HLS URL", `${origin}/hls/${pid}/master.m3u8`))] : null,
        pid
          ? [
              "Player page",
              h(
                "span",
                { class: "value-row" },
                h("a", { href: `/play/${pid}`, target: "_blank", rel: "noopener", text: "Open (new tab)" }),
                copyButton("Copy embed code", `<iframe src="${origin}/play/${pid}" width="960" height="540" allow="autoplay; fullscreen" allowfullscreen style="border:0"></iframe>`),
              ),
            ]
          : null,
        ["Playback ids", (asset.playback_ids ?? []).map((p) => h("span", { class: "pid" }, h("code", { text: p.id }), " ", badge(p.policy), " "))],
      ]),
    );
    replace(
      renditionsSlot,
      table(
        "Renditions",
        [
          { label: "Name", cell: (r) => r.name },
          { label: "Codec", cell: (r) => r.codec },
          { label: "Size", cell: (r) => (r.width ? `${r.width}×${r.height}` : "—") },
          { label: "Frame rate", class: "num", cell: (r) => (r.frame_rate ? String(Math.round(r.frame_rate * 100) / 100) : "—") },
          { label: "Bandwidth", class: "num", cell: (r) => (r.bandwidth ? `${Math.round(r.bandwidth / 1000)} kb/s` : "—") },
          { label: "Average", class: "num", cell: (r) => (r.average_bandwidth ? `${Math.round(r.average_bandwidth / 1000)} kb/s` : "—") },
          { label: "Playlist", cell: (r) => h("code", { text: r.uri }) },
        ],
        asset.renditions ?? [],
        { empty: asset.status === "ready" ? "No renditions." : "Renditions are listed once the asset is ready." },
      ),
    );
    replace(
      tracksSlot,
      table(
        "Tracks",
        [
          { label: "Type", cell: (t) => t.type },
          { label: "Codec", cell: (t) => (t.type === "text" ? "WebVTT" : t.codec ?? "—") },
          { label: "Details", cell: trackDetails },
        ],
        asset.tracks ?? [],
        { empty: "Tracks appear once the source is probed." },
      ),
    );
  }

  async function refresh() {
    try {
      asset = await get(`/v1/assets/${seg(id)}`, { signal });
      showError(topError, null);
      await render();
      const settled = asset.status !== "preparing" && !textTracks(asset).some((t) => t.status === "preparing");
      if (settled && stop && storyboardLoaded) {
        stop();
        stop = null;
      }
    } catch (e) {
      if (e.name === "AbortError") return;
      showError(topError, e);
      if (e instanceof ApiError && e.status === 404) title.textContent = "Asset not found";
    }
  }

  main.append(
    h("div", { class: "page-head" }, title, statusSlot),
    h("p", { class: "breadcrumb" }, h("a", { href: "#/assets", text: "All assets" }), " · ", h("code", { text: id })),
    topError,
    h("div", { class: "toolbar" }, deleteBtn),
    section("Player", playerSlot),
    section("Storyboard", storyboardSlot),
    section("Details", factsSlot),
    section("Renditions", renditionsSlot),
    section("Tracks", tracksSlot),
    section("Transcript", transcriptSlot),
  );
  replace(storyboardSlot, h("p", { class: "empty", text: "The storyboard appears once the asset is ready." }));
  refresh();
  stop = every(3000, refresh);
  return () => {
    stop?.();
    player?.destroy();
  };
}
