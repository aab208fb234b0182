// Live streams: the list, the creation form, and a stream's page (encoder settings, preview,
// health, settings, simulcast targets, sessions, playback ids, actions).

import { get, page, post, patch, del, request, seg, ApiError } from "../api.js";
import {
  h,
  replace,
  announce,
  errorBox,
  showError,
  copyButton,
  badge,
  time,
  fmtBytes,
  fmtKbps,
  setTitle,
  pageHeading,
  field,
  checkbox,
  busy,
  onAction,
  every,
  section,
  dl,
  keyedTable,
  parseLadder,
  ladderText,
  uid,
} from "../ui.js";
import { lineGraph } from "../graph.js";

const LATENCY_MODES = [
  ["standard", "Standard", "2 s segments; viewers about 6 s behind. Survives a dropped uplink (60 s reconnect window)."],
  ["reduced", "Reduced", "1 s segments; viewers about 3 s behind."],
  ["low", "Low", "Low-latency HLS: parts of about a third of a second; viewers 1 to 2 s behind."],
];

const viewersOf = (stream) => (typeof stream.viewers === "number" ? stream.viewers : null);

// ---------------------------------------------------------------------------------------------
// List

export function list(main, _params, { signal }) {
  setTitle("Live streams");
  const filter = h(
    "select",
    { name: "status" },
    h("option", { value: "", text: "All" }),
    h("option", { value: "active", text: "Active" }),
    h("option", { value: "idle", text: "Idle" }),
    h("option", { value: "disabled", text: "Disabled" }),
  );
  const error = errorBox(null);
  const more = h("button", { type: "button", class: "secondary", hidden: true, text: "Load more" });
  let cursor = null;
  let items = [];

  const table = keyedTable(
    "Live streams",
    [
      { label: "Name", header: true, cell: (s) => h("a", { href: `#/live-streams/${s.id}`, text: s.name }) },
      { label: "Status", cell: (s) => badge(s.status) },
      { label: "Viewers", class: "num", cell: (s) => (viewersOf(s) === null ? "—" : String(viewersOf(s))) },
      { label: "Latency", cell: (s) => s.latency_mode ?? "standard" },
      { label: "Record", cell: (s) => (s.record ? "yes" : "no") },
      { label: "Created", cell: (s) => time(s.created_at) },
    ],
    { empty: "No live streams yet. Create one to get a stream key for OBS or ffmpeg." },
  );

  async function load(reset) {
    const query = filter.value ? { status: filter.value } : {};
    try {
      if (reset) {
        // Refresh what is shown (all pages loaded so far), keeping the order.
        const want = Math.max(items.length, 25);
        const result = await page("/v1/live-streams", { limit: Math.min(want, 100), query }, { signal });
        items = result.data;
        cursor = result.next_cursor;
      } else {
        const result = await page("/v1/live-streams", { cursor, query }, { signal });
        items = items.concat(result.data);
        cursor = result.next_cursor;
      }
      showError(error, null);
      table.update(items);
      more.hidden = !cursor;
    } catch (e) {
      if (e.name !== "AbortError") showError(error, e);
    }
  }
  filter.addEventListener("change", () => {
    items = [];
    load(true);
  });
  more.addEventListener("click", () => busy(more, () => load(false)));

  main.append(
    pageHeading("Live streams", h("a", { class: "button primary", href: "#/live-streams/new", text: "New live stream" })),
    h("div", { class: "toolbar" }, field("Show", filter)),
    error,
    table.el,
    more,
  );
  load(true);
  return every(5000, () => load(true));
}

// ---------------------------------------------------------------------------------------------
// Create

export function create(main, _params, { navigate }) {
  setTitle("New live stream");
  const name = h("input", { name: "name", required: true, maxlength: "200", autocomplete: "off" });
  const modeName = uid("latency");
  const modes = h(
    "fieldset",
    { class: "field" },
    h("legend", { text: "Latency mode" }),
    LATENCY_MODES.map(([value, label, hint], i) => {
      const id = `${modeName}-${value}`;
      return h(
        "div",
        { class: "radio" },
        h("input", { type: "radio", name: modeName, id, value, checked: i === 0, "aria-describedby": `${id}-hint` }),
        h("label", { for: id, text: label }),
        h("p", { class: "hint", id: `${id}-hint`, text: hint }),
      );
    }),
  );
  const record = checkbox("Record every session as an asset", { name: "record" });
  const dvrMode = h(
    "select",
    { name: "dvr" },
    h("option", { value: "default", text: "Sliding window (server default)" }),
    h("option", { value: "window", text: "Sliding window of a chosen length" }),
    h("option", { value: "event", text: "The whole session (DVR)" }),
  );
  const windowS = h("input", { type: "number", name: "window_s", min: "10", max: "43200", step: "1", inputmode: "numeric" });
  const windowField = field("Window length in seconds", windowS, "10 to 43200.");
  windowField.hidden = true;
  dvrMode.addEventListener("change", () => {
    windowField.hidden = dvrMode.value !== "window";
  });
  const reconnect = h("input", { type: "number", name: "reconnect_window_s", min: "0", max: "1800", step: "1", inputmode: "numeric", placeholder: "default" });
  const ladder = h("input", { name: "ladder", autocomplete: "off", spellcheck: "false", placeholder: "1080p, 720p, 480p, 360p" });
  const error = errorBox(null);
  const submit = h("button", { type: "submit", class: "primary", text: "Create live stream" });

  const form = h(
    "form",
    { class: "card", novalidate: true },
    field("Name", name, "1 to 200 characters, for you to recognise the stream."),
    modes,
    record,
    field("What the live playlist keeps", dvrMode),
    windowField,
    field("Reconnect window in seconds", reconnect, "How long an encoder that dropped may take to come back into the same session (0 to 1800). Empty: 60 for standard latency, 0 otherwise."),
    field(
      "Ladder",
      ladder,
      'Renditions, top first: "source" (the encoder\'s own video, not re-encoded), 1080p, 720p, 480p, 360p, or a JSON array with custom rungs ({"name", "height", "bitrate_kbps", "max_fps"}). Empty: 1080p, 720p, 480p, 360p.',
    ),
    error,
    h("div", { class: "actions" }, submit, h("a", { class: "button secondary", href: "#/live-streams", text: "Cancel" })),
  );

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { name: name.value.trim() };
    if (!body.name) {
      showError(error, { message: "Give the live stream a name." });
      name.focus();
      return;
    }
    body.latency_mode = form.querySelector(`input[name="${modeName}"]:checked`)?.value ?? "standard";
    body.record = record.querySelector("input").checked;
    if (dvrMode.value === "event") body.dvr = { mode: "event" };
    else if (dvrMode.value === "window") body.dvr = { mode: "window", window_s: windowS.value ? Number(windowS.value) : null };
    if (reconnect.value !== "") body.reconnect_window_s = Number(reconnect.value);
    try {
      const rungs = parseLadder(ladder.value);
      if (rungs) body.ladder = rungs;
    } catch (e) {
      showError(error, { message: `ladder: not valid JSON (${e.message})` });
      ladder.focus();
      return;
    }
    await busy(submit, async () => {
      try {
        const stream = await post("/v1/live-streams", body);
        announce(`Live stream "${stream.name}" created`);
        navigate(`/live-streams/${stream.id}`);
      } catch (e) {
        showError(error, e);
        error.scrollIntoView({ block: "nearest" });
      }
    });
  });
  main.append(pageHeading("New live stream"), form);
}

// ---------------------------------------------------------------------------------------------
// Detail

function obsSettings(stream) {
  const fast = stream.latency_mode === "reduced" || stream.latency_mode === "low";
  const ladder = Array.isArray(stream.ladder) ? stream.ladder : [];
  const encoded = ladder.filter((r) => typeof r === "object");
  const top = encoded.reduce((m, r) => Math.max(m, r.bitrate_kbps), 0);
  const hasSource = ladder.includes("source");
  const bitrate = hasSource
    ? "what viewers of the top quality should get (the source rung passes it on as sent)"
    : `${top || 6000} Kbps (the ladder's top rung; sending more gains nothing)`;
  return [
    ["Service", "Custom…"],
    ["Server", stream.rtmp_url],
    ["Stream Key", null],
    ["Output Mode", "Advanced"],
    ["Encoder", "x264 (or a hardware H.264 encoder)"],
    ["Rate Control", "CBR"],
    ["Bitrate", bitrate],
    ["Keyframe Interval", fast ? "1 s" : "2 s"],
    ["Profile", "high"],
    ["Tune", stream.latency_mode === "low" ? "zerolatency" : "(none)"],
    ["B-frames", hasSource || stream.latency_mode === "low" ? "0 (x264 options: bframes=0)" : "any"],
    ["Audio", "AAC, 48 kHz, 160 Kbps"],
  ];
}

export function detail(main, [id], { signal, navigate }) {
  setTitle("Live stream");
  const stops = [];
  let stream = null;
  let player = null;
  let keyShown = false;

  const title = h("h1", { tabindex: "-1", id: "page-title", text: "Live stream" });
  const statusSlot = h("span", { class: "status-slot" });
  const viewersSlot = h("span", { class: "viewers", "aria-live": "off" });
  const topError = errorBox(null);

  // Actions
  const toggleBtn = h("button", { type: "button", class: "secondary", text: "Disable" });
  const completeBtn = h("button", { type: "button", class: "secondary", text: "End the session", hidden: true });
  const deleteBtn = h("button", { type: "button", class: "danger", text: "Delete" });

  // Connect
  const rtmpUrl = h("code", { class: "value", id: "rtmp-url" });
  const keyValue = h("code", { class: "value secret", id: "stream-key", "aria-live": "polite" });
  const showKey = h("button", { type: "button", class: "secondary small", "aria-controls": "stream-key", text: "Show" });
  const resetKey = h("button", { type: "button", class: "secondary small", text: "Reset key" });
  const whipUrl = h("code", { class: "value" });
  const obs = h("div");
  const ffmpegLine = h("pre", { class: "code" });

  // Preview, health, settings, targets, sessions, playback ids
  const previewSlot = h("div", { class: "preview" });
  const previewLinks = h("div", { class: "links" });
  const healthStatus = h("div", { class: "health-head" });
  const warnings = h("div", { class: "warnings", role: "status", "aria-live": "polite" });
  const graphs = h("div", { class: "graphs" });
  const settingsBox = h("div");
  const settingsError = errorBox(null);
  const targetsError = errorBox(null);
  const sessionsBox = h("div");
  const playbackBox = h("div");

  const keyText = () => (stream ? stream.stream_key : "");
  const renderKey = () => {
    keyValue.textContent = keyShown ? keyText() : "•".repeat(20);
    keyValue.classList.toggle("masked", !keyShown);
    showKey.textContent = keyShown ? "Hide" : "Show";
    showKey.setAttribute("aria-label", keyShown ? "Hide the stream key" : "Show the stream key");
  };
  showKey.addEventListener("click", () => {
    keyShown = !keyShown;
    renderKey();
  });
  onAction(resetKey, {
    confirm: "Reset the stream key? The old key stops working at once and an encoder using it is disconnected.",
    confirmLabel: "Reset key",
    errorBox: topError,
    async run() {
      stream = await post(`/v1/live-streams/${seg(id)}/reset-stream-key`);
      render();
      announce("Stream key reset. Paste the new key into your encoder.");
    },
  });
  // Disable or enable, as decided at the click: a refresh may replace `stream` while the dialog is open.
  let disabling = false;
  onAction(toggleBtn, {
    confirm: () => {
      disabling = stream.status !== "disabled";
      return disabling ? "Disable this live stream? A connected encoder is disconnected and new publishes are refused until you enable it again." : null;
    },
    confirmLabel: "Disable",
    errorBox: topError,
    async run() {
      stream = await post(`/v1/live-streams/${seg(id)}/${disabling ? "disable" : "enable"}`);
      render();
      announce(disabling ? "Live stream disabled" : "Live stream enabled");
    },
  });
  onAction(completeBtn, {
    confirm: "End the current session now? The encoder is disconnected; it may publish again as a new session.",
    confirmLabel: "End session",
    errorBox: topError,
    async run() {
      await request("POST", `/v1/live-streams/${seg(id)}/complete`);
      announce("Session ended");
      refresh();
    },
  });
  onAction(deleteBtn, {
    confirm: () => `Delete "${stream?.name ?? id}"? Its sessions, playlists and segments are removed and its playback URLs stop working.`,
    confirmLabel: "Delete live stream",
    errorBox: topError,
    async run() {
      await del(`/v1/live-streams/${seg(id)}`);
      announce("Live stream deleted");
      navigate("/live-streams");
    },
  });

  // ---- settings (switches PATCH at once)
  const latencySelect = h("select", { name: "latency_mode" }, LATENCY_MODES.map(([v, l]) => h("option", { value: v, text: l })));
  const recordSwitch = h("input", { type: "checkbox", role: "switch", id: uid("record") });
  const captionsSwitch = h("input", { type: "checkbox", role: "switch", id: uid("captions") });
  const recordingSubtitlesSwitch = h("input", { type: "checkbox", role: "switch", id: uid("recording-subtitles") });
  const dvrSwitch = h("input", { type: "checkbox", role: "switch", id: uid("dvr") });
  const windowInput = h("input", { type: "number", min: "10", max: "43200", step: "1", inputmode: "numeric", placeholder: "server default" });
  const windowSave = h("button", { type: "button", class: "secondary small", text: "Save window" });
  const reconnectInput = h("input", { type: "number", min: "0", max: "1800", step: "1", inputmode: "numeric" });
  const reconnectSave = h("button", { type: "button", class: "secondary small", text: "Save reconnect window" });

  async function save(body, control, what) {
    control.disabled = true;
    try {
      stream = await patch(`/v1/live-streams/${seg(id)}`, body);
      showError(settingsError, null);
      render();
      announce(`Saved: ${what}. It applies from the next session.`);
    } catch (e) {
      showError(settingsError, e);
      render();
    } finally {
      control.disabled = false;
    }
  }
  latencySelect.addEventListener("change", () => save({ latency_mode: latencySelect.value }, latencySelect, `latency mode ${latencySelect.value}`));
  recordSwitch.addEventListener("change", () => save({ record: recordSwitch.checked }, recordSwitch, recordSwitch.checked ? "recording on" : "recording off"));
  captionsSwitch.addEventListener("change", () =>
    save({ captions: captionsSwitch.checked ? { language: "en" } : null }, captionsSwitch, captionsSwitch.checked ? "live captions on" : "live captions off"),
  );
  recordingSubtitlesSwitch.addEventListener("change", () =>
    save(
      { generated_subtitles: recordingSubtitlesSwitch.checked ? [{ language_code: "en" }] : [] },
      recordingSubtitlesSwitch,
      recordingSubtitlesSwitch.checked ? "subtitles for recordings on" : "subtitles for recordings off",
    ),
  );
  dvrSwitch.addEventListener("change", () =>
    save({ dvr: dvrSwitch.checked ? { mode: "event" } : { mode: "window", window_s: null } }, dvrSwitch, dvrSwitch.checked ? "DVR keeps the whole session" : "DVR off (sliding window)"),
  );
  windowSave.addEventListener("click", () =>
    save({ dvr: { mode: "window", window_s: windowInput.value ? Number(windowInput.value) : null } }, windowSave, "live window length"),
  );
  reconnectSave.addEventListener("click", () => {
    if (reconnectInput.value === "") return showError(settingsError, { message: "Enter a reconnect window from 0 to 1800 seconds." });
    return save({ reconnect_window_s: Number(reconnectInput.value) }, reconnectSave, "reconnect window");
  });
  const windowRow = h("div", { class: "inline-field" }, field("Live window in seconds", windowInput, "10 to 43200; empty: the server's default."), windowSave);
  const ladderLine = h("p", { class: "ladder-line" });
  settingsBox.append(
    ladderLine,
    field("Latency mode", latencySelect),
    h("div", { class: "field check" }, recordSwitch, h("label", { for: recordSwitch.id, text: "Record each session as an asset" })),
    h("div", { class: "field check" }, recordingSubtitlesSwitch, h("label", { for: recordingSubtitlesSwitch.id, text: "Generate English subtitles for each recording" })),
    h("div", { class: "field check" }, captionsSwitch, h("label", { for: captionsSwitch.id, text: "Live captions (English, recognised on this server)" })),
    h("div", { class: "field check" }, dvrSwitch, h("label", { for: dvrSwitch.id, text: "DVR: keep the whole session in the live playlist" })),
    windowRow,
    h("div", { class: "inline-field" }, field("Reconnect window in seconds", reconnectInput, "0 to 1800."), reconnectSave),
    settingsError,
  );

  // ---- simulcast targets
  const targetUrl = h("input", { name: "url", required: true, inputmode: "url", spellcheck: "false", autocomplete: "off", placeholder: "rtmp://a.rtmp.youtube.com/live2" });
  const targetKey = h("input", { name: "stream_key", type: "password", required: true, autocomplete: "off" });
  const targetRendition = h("select", { name: "rendition" });
  const addTarget = h("button", { type: "submit", class: "primary", text: "Add target" });
  const targets = keyedTable(
    "Simulcast targets",
    [
      { label: "URL", header: true, cell: (t) => h("code", { text: t.url }) },
      { label: "Key", cell: (t) => h("code", { text: t.stream_key || "—" }) },
      { label: "Rendition", cell: (t) => t.rendition },
      { label: "Status", cell: (t) => badge(t.status) },
      { label: "Last error", cell: (t) => t.last_error ?? "—" },
      { label: "Sent", class: "num", cell: (t) => fmtBytes(t.bytes_sent) },
      {
        label: "Actions",
        fixed: true,
        cell: (t, tr) => {
          const button = h("button", { type: "button", class: "danger small", text: "Remove", "aria-label": `Remove target ${t.url}` });
          return onAction(button, {
            confirm: () => `Remove the target ${tr.row.url}? It is disconnected if live.`,
            confirmLabel: "Remove",
            errorBox: targetsError,
            async run() {
              await del(`/v1/live-streams/${seg(id)}/simulcast-targets/${seg(tr.row.id)}`);
              announce("Simulcast target removed");
              await loadTargets();
            },
          });
        },
      },
    ],
    { key: (t) => t.id, empty: "No simulcast targets. Add one to restream to YouTube, Twitch, Facebook or another RTMP server." },
  );
  const targetForm = h(
    "form",
    { class: "subform", novalidate: true },
    h("h3", { text: "Add a target" }),
    h(
      "div",
      { class: "grid3" },
      field("Server URL", targetUrl, "rtmp:// or rtmps://, without the stream key."),
      field("Stream key", targetKey, "The key the other service gave you; never shown back."),
      field("Rendition", targetRendition),
    ),
    targetsError,
    h("div", { class: "actions" }, addTarget),
  );
  targetForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!targetUrl.value.trim() || !targetKey.value) {
      showError(targetsError, { message: "Enter the server URL and the stream key." });
      (targetUrl.value.trim() ? targetKey : targetUrl).focus();
      return;
    }
    await busy(addTarget, async () => {
      try {
        const target = await post(`/v1/live-streams/${seg(id)}/simulcast-targets`, {
          url: targetUrl.value.trim(),
          stream_key: targetKey.value,
          rendition: targetRendition.value,
        });
        showError(targetsError, null);
        targetForm.reset();
        announce(`Simulcast target ${target.url} added (${target.status})`);
        await loadTargets();
      } catch (e) {
        showError(targetsError, e);
      }
    });
  });

  async function loadTargets() {
    const result = await request("GET", `/v1/live-streams/${seg(id)}/simulcast-targets`, undefined, { signal });
    targets.update(result.data);
  }

  // ---- sessions
  const sessions = keyedTable(
    "Sessions, newest first",
    [
      { label: "Started", header: true, cell: (s) => time(s.started_at) },
      { label: "Ended", cell: (s) => (s.ended_at ? time(s.ended_at) : badge("live", "live now")) },
      { label: "Protocol", cell: (s) => s.protocol ?? "rtmp" },
      { label: "Client", cell: (s) => h("span", {}, s.client_addr, s.encoder ? h("span", { class: "muted block", text: s.encoder }) : null) },
      {
        label: "Input",
        cell: (s) =>
          s.input
            ? `${s.input.width}×${s.input.height}${s.input.frame_rate ? ` ${Math.round(s.input.frame_rate * 100) / 100} fps` : ""} ${s.input.video_codec}${s.input.audio_codec ? `/${s.input.audio_codec}` : ""}${s.input.bitrate_kbps ? `, ${fmtKbps(s.input.bitrate_kbps)}` : ""}`
            : "—",
      },
      { label: "Received", class: "num", cell: (s) => fmtBytes(s.bytes_received) },
      { label: "Dropped frames", class: "num", cell: (s) => String(s.frames_dropped ?? 0) },
      { label: "Recording", cell: (s) => (s.asset_id ? h("a", { href: `#/assets/${s.asset_id}`, text: "asset", "aria-label": `Recording of the session of ${s.started_at}` }) : "—") },
    ],
    { empty: "No sessions yet: the stream has never been published to." },
  );
  sessionsBox.append(sessions.el);
  async function loadSessions() {
    const result = await page(`/v1/live-streams/${seg(id)}/sessions`, { limit: 10 }, { signal });
    sessions.update(result.data);
  }

  // ---- health
  let lastWarnings = "";
  async function loadHealth() {
    let health;
    try {
      health = await get(`/v1/live-streams/${seg(id)}/health`, { signal });
    } catch (e) {
      if (e.name === "AbortError") return;
      if (e instanceof ApiError && (e.status === 404 || e.status === 405)) {
        replace(healthStatus, h("p", { class: "empty", text: "No health data: this server does not report stream health (or the stream is gone)." }));
        replace(graphs);
        if (lastWarnings !== "none") replace(warnings);
        lastWarnings = "none";
        return;
      }
      replace(healthStatus, errorBox(e));
      return;
    }
    const samples = Array.isArray(health.samples) ? health.samples : [];
    replace(
      healthStatus,
      h(
        "p",
        { class: "health-line" },
        badge(health.status ?? "idle"),
        " ",
        typeof health.viewers === "number" ? `${health.viewers} viewer${health.viewers === 1 ? "" : "s"}` : "",
        samples.length ? ` · ${samples.length} sample${samples.length === 1 ? "" : "s"} in the last 5 minutes` : "",
      ),
    );
    if (typeof health.viewers === "number") viewersSlot.textContent = `${health.viewers} watching`;
    const ws = Array.isArray(health.warnings) ? health.warnings : [];
    const sig = JSON.stringify([health.status, ws.map((w) => [w.code, w.message])]);
    if (sig !== lastWarnings) {
      lastWarnings = sig;
      replace(
        warnings,
        ws.length
          ? h(
              "ul",
              { class: "warning-list" },
              ws.map((w) => h("li", { dataset: { code: w.code } }, h("strong", { text: w.code.replace(/_/g, " ") }), ": ", w.message, " ", h("span", { class: "muted" }, "(since ", time(w.since), ")"))),
            )
          : h("p", { class: "ok-line", text: health.status === "idle" ? "No encoder connected." : "No warnings: the encoder's output looks right." }),
      );
    }
    if (!samples.length) {
      replace(graphs, h("p", { class: "empty", text: "No samples yet: graphs appear while an encoder publishes (a sample every 5 s)." }));
      return;
    }
    replace(
      graphs,
      lineGraph({
        title: "Bitrate",
        unit: "kb/s",
        samples,
        series: [
          { key: "video_kbps", label: "video", class: "s1" },
          { key: "audio_kbps", label: "audio", class: "s2" },
        ],
        floorMax: 100,
      }),
      lineGraph({ title: "Frame rate", unit: "fps", samples, series: [{ key: "frame_rate", label: "video", class: "s1" }], floorMax: 30 }),
      lineGraph({
        title: "Key frame interval",
        unit: "s",
        samples,
        series: [{ key: "keyframe_interval_s", label: "longest", class: "s3" }],
        floorMax: 4,
      }),
    );
  }

  // ---- preview
  async function updatePreview() {
    const pid = stream.playback_ids?.find((p) => p.policy === "public")?.id;
    const live = stream.status === "active";
    if (!live || !pid) {
      if (player) {
        player.destroy();
        player = null;
      }
      replace(
        previewSlot,
        h("p", { class: "empty", text: !pid ? "The preview needs a public playback id; this stream has only signed ones." : stream.status === "disabled" ? "The stream is disabled." : "The preview starts when an encoder publishes to this stream." }),
      );
      return;
    }
    if (player) return;
    const { createPlayer } = await import("../player.js");
    if (player || signal.aborted) return;
    player = createPlayer({
      src: `/hls/${pid}/master.m3u8`,
      title: `Live preview of ${stream.name}`,
      lowLatency: stream.latency_mode === "low",
      waitForStream: true,
      autoplay: true,
    });
    replace(previewSlot, player.root);
  }

  function renderPlaybackIds() {
    const ids = stream.playback_ids ?? [];
    replace(
      playbackBox,
      ids.length
        ? h(
            "ul",
            { class: "plain-list" },
            ids.map((p) =>
              h(
                "li",
                {},
                h("code", { text: p.id }),
                " ",
                badge(p.policy),
                " ",
                h("a", { href: `/play/${p.id}`, target: "_blank", rel: "noopener", text: "Open the player page", "aria-label": `Open the player page of ${p.id} (new tab)` }),
                " ",
                copyButton("Copy HLS URL", () => `${location.origin}/hls/${p.id}/master.m3u8`, { "aria-label": `Copy the HLS URL of ${p.id}` }),
                p.policy === "signed" ? h("p", { class: "hint", text: "Signed: players need ?token= with a playback token signed by one of your signing keys." }) : null,
              ),
            ),
          )
        : h("p", { class: "empty", text: "No playback ids: the stream cannot be watched." }),
    );
    const pid = ids.find((p) => p.policy === "public")?.id;
    replace(
      previewLinks,
      pid
        ? [
            h("a", { href: `/play/${pid}`, target: "_blank", rel: "noopener", text: "Open the player page (new tab)" }),
            " ",
            copyButton("Copy embed code", () => `<iframe src="${location.origin}/play/${pid}" width="960" height="540" allow="autoplay; fullscreen" allowfullscreen style="border:0"></iframe>`),
          ]
        : [],
    );
  }

  let renderedSig = "";
  function render() {
    setTitle(stream.name);
    title.textContent = stream.name;
    replace(statusSlot, badge(stream.status));
    const viewers = viewersOf(stream);
    if (viewers !== null) viewersSlot.textContent = `${viewers} watching`;
    toggleBtn.textContent = stream.status === "disabled" ? "Enable" : "Disable";
    completeBtn.hidden = stream.status !== "active";
    rtmpUrl.textContent = stream.rtmp_url;
    whipUrl.textContent = stream.whip_url ?? "—";
    renderKey();
    const sig = JSON.stringify([stream.rtmp_url, stream.latency_mode, stream.ladder, stream.record, stream.dvr, stream.reconnect_window_s, stream.playback_ids, stream.captions, stream.generated_subtitles]);
    if (sig !== renderedSig) {
      renderedSig = sig;
      replace(
        obs,
        dl(
          obsSettings(stream).map(([k, v]) =>
            k === "Stream Key"
              ? [k, h("span", {}, "the stream key above ", copyButton("Copy stream key", keyText, { "aria-label": "Copy stream key (for OBS)" }))]
              : [k, k === "Server" ? h("span", {}, h("code", { text: v }), " ", copyButton("Copy server", () => stream.rtmp_url, { "aria-label": "Copy server (for OBS)" })) : v],
          ),
        ),
      );
      const gop = stream.latency_mode === "standard" || !stream.latency_mode ? 60 : 30;
      ffmpegLine.textContent = `ffmpeg -re -i input.mp4 -c:v libx264 -preset veryfast -g ${gop} -bf 0 -c:a aac -f flv ${stream.rtmp_url}/STREAM_KEY`;
      if (document.activeElement !== latencySelect) latencySelect.value = stream.latency_mode ?? "standard";
      replace(ladderLine, h("strong", { text: "Ladder: " }), ladderText(stream.ladder));
      recordSwitch.checked = Boolean(stream.record);
      captionsSwitch.checked = Boolean(stream.captions);
      recordingSubtitlesSwitch.checked = (stream.generated_subtitles ?? []).length > 0;
      dvrSwitch.checked = stream.dvr?.mode === "event";
      windowRow.hidden = stream.dvr?.mode === "event";
      if (document.activeElement !== windowInput) windowInput.value = stream.dvr?.mode === "window" && stream.dvr.window_s ? String(stream.dvr.window_s) : "";
      if (document.activeElement !== reconnectInput) reconnectInput.value = String(stream.reconnect_window_s ?? "");
      const rungs = (stream.ladder ?? []).map((r) => (typeof r === "string" ? r : r.name));
      const current = targetRendition.value;
      replace(targetRendition, [...new Set(["source", ...rungs])].map((r) => h("option", { value: r, text: r === "source" ? "source (as the encoder sends it)" : r })));
      if (current) targetRendition.value = current;
      renderPlaybackIds();
    }
    updatePreview();
  }

  async function refresh() {
    try {
      stream = await get(`/v1/live-streams/${seg(id)}`, { signal });
      showError(topError, null);
    } catch (e) {
      if (e.name === "AbortError") return;
      showError(topError, e);
      return;
    }
    render();
    await Promise.allSettled([loadHealth(), loadTargets().catch((e) => e.name !== "AbortError" && showError(targetsError, e)), loadSessions()]);
  }

  const connect = section(
    "Connect your encoder",
    dl([
      ["RTMP URL", h("span", { class: "value-row" }, rtmpUrl, copyButton("Copy RTMP URL", () => stream.rtmp_url))],
      ["Stream key", h("span", { class: "value-row" }, keyValue, showKey, copyButton("Copy stream key", keyText), resetKey)],
      ["WHIP URL", h("span", { class: "value-row" }, whipUrl, copyButton("Copy WHIP URL", () => stream.whip_url ?? ""), h("a", { href: `/live/${id}/publish`, target: "_blank", rel: "noopener", text: "Go live from this browser (new tab)" }))],
    ]),
    h("h3", { text: "OBS settings" }),
    h("p", { class: "hint", text: "Settings → Stream and Settings → Output (Advanced) in OBS Studio." }),
    obs,
    h("details", {}, h("summary", { text: "Publish with ffmpeg" }), ffmpegLine, copyButton("Copy ffmpeg command", () => ffmpegLine.textContent.replace("STREAM_KEY", keyText()))),
  );
  connect.id = "connect";

  main.append(
    h("div", { class: "page-head" }, title, statusSlot, viewersSlot),
    h("p", { class: "breadcrumb" }, h("a", { href: "#/live-streams", text: "All live streams" }), " · ", h("code", { text: id })),
    topError,
    h("div", { class: "toolbar" }, toggleBtn, completeBtn, deleteBtn),
    connect,
    section("Preview", previewSlot, previewLinks),
    section("Health", healthStatus, warnings, graphs),
    section("Settings", h("p", { class: "hint", text: "Changes apply from the next session; the current publisher is not disturbed." }), settingsBox),
    section("Simulcast targets", targets.el, targetForm),
    section("Sessions", sessionsBox),
    section("Playback ids", playbackBox),
  );

  refresh().then(() => {
    if (!stream) title.textContent = "Live stream not found";
  });
  stops.push(every(5000, refresh));
  return () => {
    stops.forEach((stop) => stop());
    if (player) player.destroy();
  };
}
