// Drives the web console (console/, served by `sluice serve` at /) in headless Chromium as a
// person would, against a running Sluice server, and prints one JSON summary line last.
//
//   SLUICE_URL=http://127.0.0.1:8080 SLUICE_KEY_ID=ak_… SLUICE_KEY_SECRET=… \
//   CLIP=/path/to/short.mp4 ARTIFACTS=/tmp/console-artifacts node console.mjs
//
// It signs in (a wrong secret first, to see the API's message); creates a live stream
// (LATENCY_MODE, default low); shows and copies its key; publishes to it with ffmpeg; waits for
// the stream to turn active with a preview that plays and a health graph with a sample; adds a
// simulcast target ($SIMULCAST_URL, default rtmp://127.0.0.1:1/app: the server must then allow
// 127.0.0.1 in `[restream] allow_hosts`; nothing listens there, so the target shows an error
// status, which is expected); flips the DVR, live captions and recording subtitles switches;
// resets the key, disables and enables the stream; uploads CLIP with tus (slowed down, paused, the page reloaded, resumed by dropping
// the same file on the drop zone), waits for the asset to be ready and play with its
// storyboard; imports CLIP from a URL this script serves; plays the asset on the player page
// (storyboard preview on the seek bar); creates a webhook endpoint pointing at a receiver this
// script runs, reads a delivery and replays it; follows the event feed (pause, resume, and
// Last-Event-ID resumption after leaving the page); creates an API key, copies its secret and
// revokes it; creates and deletes a signing key; deletes what it made and signs out.
//
// On every page it writes a full-page screenshot to $ARTIFACTS/NAME.png, runs axe-core (any
// violation of impact serious or critical fails) and tabs through the page (every visible
// link, button and form control must receive keyboard focus, with a visible focus indicator).
// Exit status 0 when everything passed; the last stdout line is the JSON summary either way.
// Optional: LATENCY_MODE (standard | reduced | low, default low), LIVE_TIMEOUT_S (120),
// READY_TIMEOUT_S (180), PUBLISH_SECONDS (ffmpeg's -t, 300; it is killed once the live
// checks are done), CHROMIUM (the browser, as for the other scripts here).
import { launchChromium } from "./chromium.mjs";
import { AxeBuilder } from "@axe-core/playwright";
import http from "node:http";
import fs from "node:fs";
import path from "node:path";
import { spawn } from "node:child_process";

function required(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`console.mjs: the environment variable ${name} is required`);
    process.exit(2);
  }
  return value;
}

const BASE = required("SLUICE_URL").replace(/\/+$/, "");
const KEY_ID = required("SLUICE_KEY_ID");
const KEY_SECRET = required("SLUICE_KEY_SECRET");
const CLIP = path.resolve(required("CLIP"));
const ARTIFACTS = path.resolve(required("ARTIFACTS"));
const LIVE_TIMEOUT = Number(process.env.LIVE_TIMEOUT_S ?? 120) * 1000;
const READY_TIMEOUT = Number(process.env.READY_TIMEOUT_S ?? 180) * 1000;
// The live stream's latency mode as chosen in the form: standard, reduced or low (the preview
// then plays LL-HLS with hls.js's low-latency settings).
const LATENCY_MODE = process.env.LATENCY_MODE ?? "low";
fs.mkdirSync(ARTIFACTS, { recursive: true });
if (!fs.existsSync(CLIP)) {
  console.error(`console.mjs: CLIP ${CLIP} does not exist`);
  process.exit(2);
}

const summary = {
  ok: false,
  url: BASE,
  pages: [],
  axe: {},
  keyboard: {},
  checks: {},
  page_errors: [],
  failures: [],
};
const started = Date.now();
const log = (...args) => console.log(`[console ${((Date.now() - started) / 1000).toFixed(1)}s]`, ...args);
const softFail = (message) => {
  summary.failures.push(message);
  console.log(`FAIL: ${message}`);
};
const check = (name, value) => {
  summary.checks[name] = value;
  log(`check ${name}:`, JSON.stringify(value));
};

// ---- the API, for what another actor does (and to verify what the console did)
const basic = (id, secret) => `Basic ${Buffer.from(`${id}:${secret}`).toString("base64")}`;
async function api(method, route, body, auth = basic(KEY_ID, KEY_SECRET)) {
  const response = await fetch(`${BASE}${route}`, {
    method,
    headers: { Authorization: auth, ...(body ? { "Content-Type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null };
}

// ---- a webhook receiver answering 200
const received = [];
const receiver = http.createServer((req, res) => {
  if (req.method === "GET" && req.url === "/clip.mp4") {
    res.writeHead(200, { "content-type": "video/mp4", "content-length": fs.statSync(CLIP).size });
    fs.createReadStream(CLIP).pipe(res);
    return;
  }
  let body = "";
  req.on("data", (chunk) => {
    body += chunk;
  });
  req.on("end", () => {
    received.push({ at: Date.now(), eventId: req.headers["sluice-event-id"], deliveryId: req.headers["sluice-delivery-id"], body });
    res.writeHead(200, { "content-type": "text/plain" });
    res.end("ok");
  });
});
await new Promise((resolve) => receiver.listen(0, "127.0.0.1", resolve));
const hookUrl = `http://127.0.0.1:${receiver.address().port}/hook`;

let ffmpeg = null;
const browser = await launchChromium(["--autoplay-policy=no-user-gesture-required", "--disable-quic"]);
const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: "en-GB" });
await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: BASE });
context.setDefaultTimeout(30000);
// Records what the page copies, whichever way (the Clipboard API or the execCommand fallback).
await context.addInitScript(() => {
  window.__copied = [];
  const clip = navigator.clipboard;
  if (clip && clip.writeText) {
    const original = clip.writeText.bind(clip);
    clip.writeText = (text) => {
      window.__copied.push(text);
      return original(text);
    };
  }
  const exec = document.execCommand.bind(document);
  document.execCommand = (cmd, ...rest) => {
    if (cmd === "copy") window.__copied.push(document.activeElement?.value ?? String(window.getSelection()));
    return exec(cmd, ...rest);
  };
});
const page = await context.newPage();
page.on("pageerror", (error) => {
  summary.page_errors.push(String(error));
  console.log(`page error: ${error}`);
});
page.on("console", (message) => {
  if (message.type() !== "error" || /Failed to load resource/.test(message.text())) return;
  console.log(`browser console: ${message.text()}`);
  if (/Content Security Policy/i.test(message.text())) softFail(`a Content-Security-Policy violation: ${message.text().slice(0, 200)}`);
});

// ---- per-page checks: screenshot, axe, keyboard
async function axeCheck(name) {
  const results = await new AxeBuilder({ page }).analyze();
  const bad = results.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  summary.axe[name] = {
    violations: results.violations.length,
    serious_or_critical: bad.length,
    by_impact: results.violations.reduce((acc, v) => ({ ...acc, [v.impact]: (acc[v.impact] ?? 0) + 1 }), {}),
    ids: results.violations.map((v) => `${v.id}(${v.impact})`),
  };
  for (const v of results.violations) {
    const where = v.nodes.slice(0, 3).map((n) => n.target.join(" ")).join(" | ");
    console.log(`axe ${name}: ${v.impact} ${v.id}: ${v.help} [${where}]`);
  }
  if (bad.length) softFail(`${name}: ${bad.length} serious/critical axe violation(s): ${bad.map((v) => v.id).join(", ")}`);
}

async function keyboardCheck(name) {
  const total = await page.evaluate(() => {
    const selector = 'a[href], button, input:not([type="hidden"]), select, textarea, summary, [tabindex]:not([tabindex="-1"])';
    const visible = (el) => {
      if (el.disabled || el.closest("[inert]")) return false;
      // checkVisibility: false inside closed <details> (content-visibility) and display:none.
      if (el.checkVisibility && !el.checkVisibility({ visibilityProperty: true })) return false;
      const box = el.getBoundingClientRect();
      return box.width > 0 && box.height > 0;
    };
    document.querySelectorAll("[data-kbd]").forEach((el) => el.removeAttribute("data-kbd"));
    let n = 0;
    for (const el of document.querySelectorAll(selector)) {
      if (!visible(el) || el.tabIndex < 0) continue;
      el.dataset.kbd = String(n);
      n += 1;
    }
    window.__kbd = { seen: new Set(), noRing: new Set() };
    if (!window.__kbdListening) {
      window.__kbdListening = true;
      document.addEventListener(
        "focusin",
        (event) => {
          const el = event.target;
          const key = el?.dataset?.kbd;
          if (key === undefined) return;
          window.__kbd.seen.add(key);
          const style = getComputedStyle(el);
          const ring = (style.outlineStyle !== "none" && parseFloat(style.outlineWidth) > 0) || style.boxShadow !== "none";
          if (!ring) window.__kbd.noRing.add(key);
        },
        true,
      );
    }
    // Start from the top of the document.
    const start = document.createElement("span");
    start.tabIndex = -1;
    document.body.prepend(start);
    start.focus();
    start.remove();
    return n;
  });
  const presses = Math.min(total * 2 + 10, 700);
  for (let i = 0; i < presses; i += 1) {
    await page.keyboard.press("Tab");
    if (i % 20 === 19) {
      const done = await page.evaluate(() =>
        [...document.querySelectorAll("[data-kbd]")].every((el) => window.__kbd.seen.has(el.dataset.kbd) || !el.isConnected),
      );
      if (done) break;
    }
  }
  const result = await page.evaluate(() => {
    const describe = (el) =>
      `${el.tagName.toLowerCase()}${el.id ? `#${el.id}` : ""}${el.type ? `[type=${el.type}]` : ""} "${(el.getAttribute("aria-label") || el.textContent || el.value || "").trim().slice(0, 40)}"`;
    const all = [...document.querySelectorAll("[data-kbd]")].filter((el) => el.isConnected);
    const reached = (el) => {
      if (window.__kbd.seen.has(el.dataset.kbd)) return true;
      // A radio group is one tab stop: any radio of the group reached counts.
      if (el.type === "radio") return all.some((o) => o.type === "radio" && o.name === el.name && window.__kbd.seen.has(o.dataset.kbd));
      return false;
    };
    const missing = all.filter((el) => !reached(el)).map(describe);
    const noRing = all.filter((el) => window.__kbd.noRing.has(el.dataset.kbd)).map(describe);
    all.forEach((el) => el.removeAttribute("data-kbd"));
    return { focusable: all.length, missing, noRing };
  });
  summary.keyboard[name] = { focusable: result.focusable, missing: result.missing.length, no_focus_ring: result.noRing.length };
  if (result.missing.length) softFail(`${name}: ${result.missing.length} control(s) never reached with Tab: ${result.missing.slice(0, 8).join("; ")}`);
  if (result.noRing.length) softFail(`${name}: ${result.noRing.length} control(s) without a visible focus indicator: ${result.noRing.slice(0, 8).join("; ")}`);
  await page.evaluate(() => document.activeElement?.blur?.());
}

async function visit(name) {
  const title = await page.title();
  const file = path.join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  await axeCheck(name);
  await keyboardCheck(name);
  summary.pages.push({ name, title, url: page.url(), screenshot: file });
  log(`page ${name} ("${title}") checked`);
}

const heading = (text) => page.getByRole("heading", { level: 1, name: text });
const waitHeading = (text, timeout) => heading(text).waitFor({ timeout });
const button = (name, exact = true) => page.getByRole("button", { name, exact });
async function copiedText(action) {
  const before = await page.evaluate(() => window.__copied.length);
  await action();
  await page.waitForFunction((n) => window.__copied.length > n, before);
  let clipboard = null;
  try {
    clipboard = await page.evaluate(() => navigator.clipboard.readText());
  } catch {
    clipboard = null;
  }
  const recorded = await page.evaluate(() => window.__copied[window.__copied.length - 1]);
  return { clipboard, recorded };
}
async function confirm(label) {
  const dialog = page.locator("dialog[open]");
  await dialog.waitFor();
  await dialog.getByRole("button", { name: label, exact: true }).click();
  await dialog.waitFor({ state: "detached" });
}
async function videoAdvances(selector, timeout) {
  await page.waitForFunction((sel) => {
    const v = document.querySelector(sel);
    return v && v.currentTime > 1 && !v.paused;
  }, selector, { timeout });
  const t1 = await page.evaluate((sel) => document.querySelector(sel).currentTime, selector);
  await page.waitForTimeout(2000);
  const t2 = await page.evaluate((sel) => document.querySelector(sel).currentTime, selector);
  return { t1, t2, advancing: t2 > t1 };
}

let streamId = null;
let assetId = null;
let webhookId = null;
let importedId = null;
try {
  // ---- sign in
  await page.goto(`${BASE}/`);
  await waitHeading("Sign in to Sluice");
  check("sign_in_title", await page.title());
  await visit("sign-in");
  // A wrong secret shows the API's message.
  await page.getByLabel("API key id").fill(KEY_ID);
  await page.getByLabel("Secret", { exact: true }).fill("wrong-secret");
  await button("Sign in").click();
  const refusal = await page.getByRole("alert").filter({ hasText: "refused" }).textContent();
  check("wrong_secret_message", refusal.trim());
  await page.getByLabel("Secret", { exact: true }).fill(KEY_SECRET);
  await button("Sign in").click();
  await waitHeading("Live streams");
  const stored = await page.evaluate(() => ({ session: sessionStorage.getItem("sluice.credentials") !== null, local: JSON.stringify(localStorage).includes("SECRET") }));
  check("credentials_in_session_storage", stored.session);
  await visit("live-streams");

  // ---- create a live stream
  await page.getByRole("link", { name: "New live stream" }).click();
  await waitHeading("New live stream");
  await visit("live-stream-new");
  const streamName = `Console test ${new Date().toISOString().slice(11, 19)}`;
  await page.getByLabel("Name", { exact: true }).fill(streamName);
  await page.getByRole("radio", { name: LATENCY_MODE[0].toUpperCase() + LATENCY_MODE.slice(1), exact: true }).check();
  await button("Create live stream").click();
  await waitHeading(streamName);
  streamId = /#\/live-streams\/(ls_[A-Za-z0-9]+)/.exec(page.url())?.[1];
  if (!streamId) throw new Error(`no live stream id in ${page.url()}`);
  check("live_stream_id", streamId);

  // ---- stream key: hidden, shown, copied
  const hidden = await page.locator("#stream-key").textContent();
  if (!/^•+$/.test(hidden)) throw new Error(`the stream key is visible before "Show": ${hidden}`);
  await button("Show the stream key").click();
  const key = (await page.locator("#stream-key").textContent()).trim();
  if (!/^[A-Za-z0-9]{40}$/.test(key)) throw new Error(`the shown stream key is not 40 alphanumerics: ${key}`);
  const copiedKey = await copiedText(() => button("Copy stream key").click());
  if (copiedKey.recorded !== key || (copiedKey.clipboard !== null && copiedKey.clipboard !== key)) {
    throw new Error(`copied stream key differs: ${JSON.stringify(copiedKey)}`);
  }
  const rtmpUrl = (await page.locator("#rtmp-url").textContent()).trim();
  const copiedUrl = await copiedText(() => button("Copy RTMP URL").click());
  if (copiedUrl.recorded !== rtmpUrl) throw new Error(`copied RTMP URL differs: ${JSON.stringify(copiedUrl)}`);
  check("stream_key_copied", { clipboard_api: copiedKey.clipboard === key, rtmp_url: rtmpUrl });
  await button("Hide the stream key").click();

  // ---- publish with ffmpeg
  const publishUrl = `${rtmpUrl}/${key}`;
  ffmpeg = spawn(
    "ffmpeg",
    ["-nostdin", "-loglevel", "error", "-re", "-f", "lavfi", "-i", "testsrc2=size=426x240:rate=30", "-f", "lavfi", "-i", "sine",
      "-c:v", "libx264", "-preset", "ultrafast", "-g", "60", "-bf", "0", "-c:a", "aac", "-t", String(process.env.PUBLISH_SECONDS ?? 300), "-f", "flv", publishUrl],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  let ffmpegErr = "";
  ffmpeg.stderr.on("data", (d) => {
    ffmpegErr += d;
  });
  ffmpeg.on("exit", (code) => {
    if (ffmpeg) log(`ffmpeg exited with ${code} ${ffmpegErr.trim().slice(-300)}`);
  });
  log(`publishing to ${rtmpUrl}/…`);

  await page.locator('.page-head .badge[data-status="active"]').waitFor({ timeout: LIVE_TIMEOUT });
  const preview = await videoAdvances(".preview video", LIVE_TIMEOUT);
  const latency = await page.locator(".preview .latency").getAttribute("data-latency");
  check("live_preview_plays", { ...preview, latency_mode: LATENCY_MODE, behind_live_s: latency === null ? null : Number(latency) });
  if (!preview.advancing) throw new Error("the live preview does not advance");

  // ---- health
  try {
    await page.waitForFunction(() => [...document.querySelectorAll("svg.graph")].some((g) => Number(g.dataset.samples) >= 1), null, { timeout: 60000 });
    const health = await page.evaluate(() => ({
      graphs: document.querySelectorAll("svg.graph").length,
      samples: Number(document.querySelector("svg.graph")?.dataset.samples ?? 0),
      paths: document.querySelectorAll("svg.graph path.line, svg.graph line.dot").length,
      warnings: [...document.querySelectorAll(".warning-list li")].map((li) => li.dataset.code),
      label: document.querySelector("svg.graph")?.getAttribute("aria-label"),
    }));
    check("health_graph", health);
  } catch (e) {
    const shown = await page.locator(".health-head").textContent();
    softFail(`no health graph with a sample within 60 s (the page says: ${shown.trim()})`);
  }

  // ---- simulcast target
  const targetUrl = process.env.SIMULCAST_URL ?? "rtmp://127.0.0.1:1/app";
  await page.getByLabel("Server URL").fill(targetUrl);
  await page.getByLabel("Stream key", { exact: true }).fill("x");
  await button("Add target").click();
  const targetRow = page.locator("tr", { hasText: targetUrl });
  try {
    await targetRow.waitFor({ timeout: 15000 });
    await page.waitForTimeout(6000); // one poll, to see its status move on
    check("simulcast_target", { listed: true, status: await targetRow.locator(".badge").getAttribute("data-status") });
  } catch {
    const alert = await page.locator(".card", { hasText: "Add a target" }).getByRole("alert").textContent().catch(() => "");
    softFail(`the simulcast target was not listed: ${alert.trim()}`);
  }
  await visit("live-stream");

  // ---- switches PATCH the stream (checked through the API)
  await page.getByRole("switch", { name: "DVR: keep the whole session in the live playlist" }).check();
  await page.waitForFunction(() => document.getElementById("announcer").textContent.includes("Saved"));
  const afterSwitch = await api("GET", `/v1/live-streams/${streamId}`);
  check("dvr_switch", afterSwitch.body.data.dvr);
  if (afterSwitch.body.data.dvr?.mode !== "event") softFail("the DVR switch did not PATCH the stream");
  await page.getByRole("switch", { name: "Live captions (English, recognised on this server)" }).check();
  await page.waitForFunction(() => document.getElementById("announcer").textContent.includes("live captions on"));
  await page.getByRole("switch", { name: "Generate English subtitles for each recording" }).check();
  await page.waitForFunction(() => document.getElementById("announcer").textContent.includes("subtitles for recordings on"));
  const afterSpeech = (await api("GET", `/v1/live-streams/${streamId}`)).body.data;
  check("speech_switches", { captions: afterSpeech.captions, generated_subtitles: afterSpeech.generated_subtitles });
  if (afterSpeech.captions?.language !== "en") softFail("the live captions switch did not PATCH the stream");
  if (afterSpeech.generated_subtitles?.[0]?.language_code !== "en") softFail("the recording subtitles switch did not PATCH the stream");

  ffmpeg.kill("SIGTERM");
  ffmpeg = null;

  // ---- reset the key, disable and enable
  await button("Reset key").click();
  await confirm("Reset key");
  await page.waitForFunction(() => document.getElementById("announcer").textContent.includes("Stream key reset"));
  await button("Show the stream key").click();
  const newKey = (await page.locator("#stream-key").textContent()).trim();
  await button("Hide the stream key").click();
  await button("Disable").click();
  await confirm("Disable");
  await page.locator('.page-head .badge[data-status="disabled"]').waitFor();
  await button("Enable").click();
  await page.locator('.page-head .badge:not([data-status="disabled"])').waitFor();
  check("reset_disable_enable", { key_changed: newKey !== key && /^[A-Za-z0-9]{40}$/.test(newKey), status: await page.locator(".page-head .badge").getAttribute("data-status") });
  if (newKey === key) softFail("resetting the stream key did not change it");

  // ---- upload
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Assets" }).click();
  await waitHeading("Assets");
  await visit("assets");
  const clipSize = fs.statSync(CLIP).size;
  // Slow the upload down so it can be paused, then resume it after a reload.
  const cdp = await context.newCDPSession(page);
  await cdp.send("Network.enable");
  const throttle = (bytesPerSecond) =>
    cdp.send("Network.emulateNetworkConditions", { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: bytesPerSecond });
  await throttle(Math.max(Math.floor(clipSize / 10), 16 * 1024));
  await page.getByLabel("Generate English subtitles").first().check();
  await page.setInputFiles("#upload-file", CLIP);
  const resume = { tried: false };
  try {
    await page.waitForFunction(() => {
      const p = document.getElementById("upload-progress");
      return p && p.value >= 30;
    }, null, { timeout: 30000 });
    const value = await page.locator("#upload-progress").evaluate((p) => p.value);
    if (value < 100) {
      await button("Pause").click();
      await page.getByText(/Paused at/).waitFor();
      resume.tried = true;
      resume.paused_at = value;
      await throttle(-1);
      await page.reload();
      await waitHeading("Assets");
      const entry = page.locator(".resumable", { hasText: path.basename(CLIP) });
      await entry.waitFor();
      await page.waitForFunction(() => document.querySelector(".resumable [data-offset]"), null, { timeout: 10000 }).catch(() => {});
      resume.listed = (await entry.textContent()).trim();
      await page.screenshot({ path: path.join(ARTIFACTS, "assets-resumable.png"), fullPage: true });
      // Resume by dropping the same file (same name, size and modification time) on the zone.
      const bytes = fs.readFileSync(CLIP).toString("base64");
      const dataTransfer = await page.evaluateHandle(
        ({ bytes, name, lastModified }) => {
          const binary = atob(bytes);
          const array = new Uint8Array(binary.length);
          for (let i = 0; i < binary.length; i += 1) array[i] = binary.charCodeAt(i);
          const transfer = new DataTransfer();
          transfer.items.add(new File([array], name, { type: "video/mp4", lastModified }));
          return transfer;
        },
        { bytes, name: path.basename(CLIP), lastModified: Math.floor(fs.statSync(CLIP).mtimeMs) },
      );
      // Record every state the panel goes through (the rest of a small file may take only
      // milliseconds, too short to catch "Resuming" by polling).
      await page.evaluate(() => {
        window.__uploadStates = [];
        const state = document.querySelector(".upload-state");
        new MutationObserver(() => window.__uploadStates.push(state.textContent)).observe(state, { childList: true, characterData: true, subtree: true });
      });
      await page.dispatchEvent("#dropzone", "dragenter", { dataTransfer });
      await page.dispatchEvent("#dropzone", "drop", { dataTransfer });
      await page.waitForFunction(() => window.__uploadStates.some((s) => /Resuming|Creating an upload/.test(s)), null, { timeout: 15000 });
      const states = await page.evaluate(() => window.__uploadStates);
      resume.states = states.slice(0, 3);
      resume.resumed = states.some((s) => /^Resuming/.test(s)) && !states.some((s) => /Creating an upload/.test(s));
      resume.by = "drop";
      if (!resume.resumed) resume.error = "the drop started a new upload instead of resuming";
    }
  } catch (e) {
    resume.error = String(e.message ?? e).split("\n")[0];
  }
  await throttle(-1);
  check("upload_resume", resume);
  if (resume.tried && !resume.resumed) softFail(`the paused upload did not resume after a reload: ${resume.error}`);
  await page.waitForFunction(() => document.getElementById("upload-progress")?.value === 100, null, { timeout: 120000 });
  check("upload_progress", await page.locator("#upload-progress-text").textContent());
  await page.locator("#uploaded-asset-link").waitFor({ timeout: 60000 });
  await page.locator("#uploaded-asset-link").click();
  assetId = /#\/assets\/([A-Za-z0-9_]+)/.exec(page.url())?.[1];
  check("asset_id", assetId);
  await page.locator('.status-slot .badge[data-status="ready"]').waitFor({ timeout: READY_TIMEOUT });
  await page.locator(".preview video").waitFor();
  await page.locator(".preview").getByRole("button", { name: "Play", exact: true }).click();
  const assetPlay = await videoAdvances(".preview video", 60000);
  check("asset_plays", assetPlay);
  if (!assetPlay.advancing) softFail("the asset does not play on its page");
  await page.locator(".tiles .tile-button").first().waitFor({ timeout: 30000 }).catch(() => softFail("no storyboard tiles on the asset page"));
  // The clip's tone has no speech: the generated subtitles track turns ready with no lines.
  const transcript = await page
    .locator('.transcript .transcript-lines, .transcript p.empty:text-is("No speech was recognised.")')
    .first()
    .waitFor({ timeout: 120000 })
    .then(() => page.locator(".transcript").textContent())
    .catch(() => null);
  if (transcript === null) softFail("the asset page shows no transcript for its generated subtitles");
  check("asset_page", {
    tiles: await page.locator(".tiles .tile-button").count(),
    renditions: await page.locator(".card", { hasText: "Renditions" }).locator("tbody tr").count(),
    text_tracks: await page.locator(".card", { hasText: "Tracks" }).locator("tbody tr", { hasText: "text" }).count(),
    transcript,
  });
  await visit("asset");

  // ---- import from a URL (served by this script; the server may refuse the loopback address,
  // which the asset then says: either way the console made the call and lists the asset)
  await page.getByRole("link", { name: "All assets" }).click();
  await waitHeading("Assets");
  const importUrl = `http://127.0.0.1:${receiver.address().port}/clip.mp4`;
  await page.getByLabel("Video URL").fill(importUrl);
  await button("Import").click();
  await page.waitForFunction(() => document.getElementById("announcer").textContent.startsWith("Import started"));
  importedId = /asset_[A-Za-z0-9]+/.exec(await page.locator("#announcer").textContent())?.[0];
  await page.locator(`a[href="#/assets/${importedId}"]`).waitFor();
  check("import", { asset: importedId, listed: true });
  await page.goto(`${BASE}/#/assets/${assetId}`);
  await waitHeading(path.basename(CLIP));

  // ---- the player page
  const playerHref = await page.getByRole("link", { name: "Open (new tab)" }).getAttribute("href");
  await page.goto(`${BASE}${playerHref}`);
  await page.locator(".player video").waitFor();
  await page.getByRole("button", { name: "Play", exact: true }).click();
  const pagePlay = await videoAdvances(".player video", 60000);
  await page.waitForFunction(() => document.querySelector(".player")?.dataset.storyboard, null, { timeout: 15000 }).catch(() => {});
  const seek = page.getByRole("slider", { name: "Seek" });
  const box = await seek.boundingBox();
  await page.mouse.move(box.x + box.width * 0.5, box.y + box.height / 2);
  const storyboardShown = await page.locator(".sb-preview").isVisible();
  check("player_page", {
    ...pagePlay,
    title: await page.title(),
    storyboard_cues: Number((await page.locator(".player").getAttribute("data-storyboard")) ?? 0),
    storyboard_preview_on_hover: storyboardShown,
    quality_options: await page.locator(".pfield select").first().locator("option").count(),
  });
  if (!pagePlay.advancing) softFail("the player page does not play the asset");
  if (!storyboardShown) softFail("no storyboard preview when hovering the seek bar");
  await page.mouse.move(0, 0);
  await visit("player");

  // ---- webhooks
  await page.goto(`${BASE}/#/webhooks`);
  await waitHeading("Webhooks");
  await visit("webhooks");
  await page.getByLabel("Receiver URL").fill(hookUrl);
  await page.getByLabel("Description").fill("console test receiver");
  await button("Add endpoint").click();
  await waitHeading("console test receiver");
  webhookId = /#\/webhooks\/([A-Za-z0-9_]+)/.exec(page.url())?.[1];
  // Something happens: the stream is renamed (through the API, as another tool would).
  await api("PATCH", `/v1/live-streams/${streamId}`, { name: `${streamName} (renamed)` });
  const delivered = page.locator('tr:has(.badge[data-status="delivered"])').first();
  await delivered.waitFor({ timeout: 60000 });
  const eventType = (await delivered.locator("code").first().textContent()).trim();
  await delivered.locator("summary").click();
  const attempts = await delivered.locator("details li").count();
  const eventIdText = (await delivered.locator(".muted.block").first().textContent()).trim();
  const before = received.filter((r) => r.eventId === eventIdText).length;
  await delivered.getByRole("button", { name: /^Replay delivery/ }).click();
  const deadline = Date.now() + 30000;
  while (Date.now() < deadline && received.filter((r) => r.eventId === eventIdText).length <= before) await new Promise((r) => setTimeout(r, 250));
  const after = received.filter((r) => r.eventId === eventIdText).length;
  check("webhook_delivery", { event_type: eventType, attempts_listed: attempts, received_before_replay: before, received_after_replay: after });
  if (after <= before) softFail("the replayed delivery did not reach the receiver");
  await page.waitForTimeout(500);
  await visit("webhook");

  // ---- events feed
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Events" }).click();
  await waitHeading("Events");
  await page.locator('#feed-state[data-state="open"]').waitFor({ timeout: 20000 });
  await api("PATCH", `/v1/live-streams/${streamId}`, { name: `${streamName} (event 1)` });
  await page.locator('.event[data-type="live_stream.updated"]').first().waitFor({ timeout: 20000 });
  await button("Pause").click();
  await api("PATCH", `/v1/live-streams/${streamId}`, { name: `${streamName} (event 2)` });
  await page.getByText(/1 new event waiting/).waitFor({ timeout: 20000 });
  const whilePaused = await page.locator(".event").count();
  await button("Resume").click();
  await page.locator(".event").nth(whilePaused).waitFor();
  const afterResume = await page.locator(".event").count();
  const newest = await page.locator(".event").first().locator("pre").textContent();
  check("events_feed", { shown_while_paused: whilePaused, shown_after_resume: afterResume, newest_first: newest.includes("(event 2)") });
  if (afterResume !== whilePaused + 1 || !newest.includes("(event 2)")) softFail("the event feed did not buffer while paused or is not newest first");
  await visit("events");
  // Leave the page, let something happen, come back: the feed resumes after the last event
  // seen (Last-Event-ID) and shows what happened meanwhile.
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Live streams" }).click();
  await waitHeading("Live streams");
  await api("PATCH", `/v1/live-streams/${streamId}`, { name: `${streamName} (while away)` });
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Events" }).click();
  await waitHeading("Events");
  const missed = await page
    .locator(".event", { hasText: "(while away)" })
    .first()
    .waitFor({ timeout: 20000 })
    .then(() => true)
    .catch(() => false);
  check("events_resume_last_event_id", { replayed_event_missed_while_away: missed, shown: await page.locator(".event").count() });
  if (!missed) softFail("the event feed did not resume with Last-Event-ID");

  // ---- API keys
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "API keys" }).click();
  await waitHeading("API keys");
  await page.getByLabel("Name", { exact: true }).fill("console-test-key");
  await page.getByLabel(/^admin/).uncheck();
  await page.getByLabel(/^live:read/).check();
  await button("Create key").click();
  await page.locator("#new-key-secret").waitFor();
  const newKeyId = (await page.locator("#new-key-id").textContent()).trim();
  const newSecret = (await page.locator("#new-key-secret").textContent()).trim();
  const copiedSecret = await copiedText(() => button("Copy secret").click());
  const works = (await api("GET", "/v1/live-streams?limit=1", undefined, basic(newKeyId, newSecret))).status;
  await visit("api-keys");
  await page.getByRole("button", { name: `Revoke the key console-test-key (${newKeyId})` }).click();
  await confirm("Revoke key");
  await page.locator(`tr:has(code:text-is("${newKeyId}")) .badge[data-status="revoked"]`).waitFor();
  const revoked = (await api("GET", "/v1/live-streams?limit=1", undefined, basic(newKeyId, newSecret))).status;
  check("api_key", { id: newKeyId, copied: copiedSecret.recorded === newSecret, status_before_revoke: works, status_after_revoke: revoked });
  if (works !== 200 || revoked !== 401) softFail(`API key create/revoke: ${works} then ${revoked}`);

  // ---- signing keys
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Signing keys" }).click();
  await waitHeading("Signing keys");
  await button("Create signing key").click();
  const pem = page.locator(".once textarea");
  await pem.waitFor();
  const pemText = await pem.inputValue();
  const signingId = /sk_[A-Za-z0-9]+/.exec(await page.locator(".once h2").textContent())?.[0];
  await visit("signing-keys");
  await page.getByRole("button", { name: `Delete the signing key ${signingId}` }).click();
  await confirm("Delete key");
  await page.locator("tr", { hasText: signingId }).waitFor({ state: "detached" });
  check("signing_key", { id: signingId, private_key_shown: pemText.includes("PRIVATE KEY") });

  // ---- clean up through the console: the asset, the webhook, the stream
  await page.goto(`${BASE}/#/assets/${assetId}`);
  await button("Delete asset").click();
  await confirm("Delete asset");
  await waitHeading("Assets");
  await page.goto(`${BASE}/#/webhooks/${webhookId}`);
  await button("Delete endpoint").click();
  await confirm("Delete endpoint");
  await waitHeading("Webhooks");
  await page.goto(`${BASE}/#/live-streams/${streamId}`);
  await button("Delete").click();
  await confirm("Delete live stream");
  await waitHeading("Live streams");
  if (importedId) await api("DELETE", `/v1/assets/${importedId}`);
  check("deleted", {
    stream: (await api("GET", `/v1/live-streams/${streamId}`)).status,
    asset: (await api("GET", `/v1/assets/${assetId}`)).status,
    webhook: (await api("GET", `/v1/webhooks/${webhookId}`)).status,
  });

  // ---- sign out
  await button("Sign out").click();
  await waitHeading("Sign in to Sluice");
  check("signed_out", await page.evaluate(() => sessionStorage.getItem("sluice.credentials") === null));
} catch (error) {
  softFail(`flow stopped: ${String(error.message ?? error).split("\n").slice(0, 3).join(" ")}`);
  await page.screenshot({ path: path.join(ARTIFACTS, "failure.png"), fullPage: true }).catch(() => {});
} finally {
  if (ffmpeg) ffmpeg.kill("SIGKILL");
  await browser.close().catch(() => {});
  receiver.close();
}

if (summary.page_errors.length) softFail(`${summary.page_errors.length} uncaught error(s) in the console's pages`);
summary.ok = summary.failures.length === 0;
summary.seconds = Math.round((Date.now() - started) / 1000);
console.log(JSON.stringify(summary));
process.exit(summary.ok ? 0 : 1);
