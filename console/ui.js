// Small DOM helpers shared by every page: an element builder that never parses HTML (every
// value from the API goes in as text), live-region announcements, copy buttons, a confirm
// dialog, action buttons, status badges and formatters.

/**
 * Builds an element. `props` keys: `class`, `text`, `dataset` (object), `on*` (listeners),
 * `style` (object, set through the CSSOM), booleans (set when true, left out when false),
 * anything else as an attribute. Children: nodes, strings, numbers, arrays; null/false skipped.
 */
export function h(tag, props = {}, ...children) {
  const el = tag.startsWith("svg:")
    ? document.createElementNS("http://www.w3.org/2000/svg", tag.slice(4))
    : document.createElement(tag);
  for (const [key, value] of Object.entries(props ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.setAttribute("class", Array.isArray(value) ? value.filter(Boolean).join(" ") : value);
    else if (key === "text") el.textContent = String(value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key === "style") Object.assign(el.style, value);
    else if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2).toLowerCase(), value);
    else if (value === true) el.setAttribute(key, "");
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replaces the children of `el`. */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

let idCounter = 0;
/** A unique id for label/aria wiring. */
export function uid(prefix = "id") {
  idCounter += 1;
  return `${prefix}-${idCounter}`;
}

/** Polite announcement in the shell's status region (async results, "Copied", saves). */
export function announce(message) {
  const region = document.getElementById("announcer");
  if (!region) return;
  // Clearing first makes screen readers repeat an identical message.
  region.textContent = "";
  setTimeout(() => {
    region.textContent = message;
  }, 30);
  const toast = document.getElementById("toast");
  if (toast) {
    toast.textContent = message;
    toast.hidden = false;
    clearTimeout(announce.timer);
    announce.timer = setTimeout(() => {
      toast.hidden = true;
    }, 4000);
  }
}

/** An inline error box (role=alert) for a form or a section; empty when `error` is null. */
export function errorBox(error) {
  const box = h("div", { class: "error", role: "alert" });
  showError(box, error);
  return box;
}

export function showError(box, error) {
  if (!error) {
    box.replaceChildren();
    box.hidden = true;
    return;
  }
  box.hidden = false;
  const code = error.code ? h("span", { class: "error-code", text: ` (${error.code})` }) : null;
  replace(box, h("strong", { text: "Error: " }), error.message ?? String(error), code);
}

/** Writes text to the clipboard (with a fallback for non-secure origins). */
export async function copyText(text) {
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      return true;
    }
  } catch {
    // fall through to the textarea fallback
  }
  const area = h("textarea", { class: "visually-hidden", "aria-hidden": "true", tabindex: "-1" });
  area.value = text;
  document.body.append(area);
  area.select();
  let ok = false;
  try {
    ok = document.execCommand("copy");
  } catch {
    ok = false;
  }
  area.remove();
  return ok;
}

/** A button copying `getText()`; `label` names what is copied ("Copy stream key"). */
export function copyButton(label, getText, props = {}) {
  return h("button", {
    type: "button",
    class: "secondary small",
    ...props,
    async onclick() {
      const ok = await copyText(typeof getText === "function" ? getText() : getText);
      announce(ok ? `Copied ${label.replace(/^Copy /, "")} to the clipboard` : "Copying failed: select the text and copy it yourself");
    },
    text: label,
  });
}

/** A modal confirmation; resolves true when the person confirms. */
export function confirmDialog(message, { confirmLabel = "Confirm", danger = true } = {}) {
  return new Promise((resolve) => {
    const titleId = uid("dialog-title");
    const cancel = h("button", { type: "button", class: "secondary", text: "Cancel" });
    const ok = h("button", { type: "button", class: danger ? "danger" : "primary", text: confirmLabel });
    const dialog = h(
      "dialog",
      { "aria-labelledby": titleId, class: "confirm" },
      h("p", { id: titleId, text: message }),
      h("div", { class: "actions" }, cancel, ok),
    );
    const previous = document.activeElement;
    const close = (value) => {
      dialog.close();
      dialog.remove();
      if (previous && previous.isConnected) previous.focus();
      resolve(value);
    };
    cancel.addEventListener("click", () => close(false));
    ok.addEventListener("click", () => close(true));
    dialog.addEventListener("cancel", (e) => {
      e.preventDefault();
      close(false);
    });
    document.body.append(dialog);
    dialog.showModal();
    cancel.focus();
  });
}

const BADGE_KIND = {
  active: "good",
  live: "good",
  healthy: "good",
  ready: "good",
  delivered: "good",
  asset_created: "good",
  idle: "neutral",
  waiting: "neutral",
  disabled: "muted",
  revoked: "muted",
  cancelled: "muted",
  preparing: "info",
  connecting: "info",
  pending: "info",
  warning: "warn",
  errored: "bad",
  failed: "bad",
  timed_out: "bad",
  public: "good",
  signed: "info",
};

/** A status badge; the text says the status, the colour only repeats it. */
export function badge(status, label) {
  const kind = BADGE_KIND[status] ?? "neutral";
  return h("span", { class: `badge badge-${kind}`, dataset: { status }, text: label ?? status.replace(/_/g, " ") });
}

export function fmtDate(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "medium" });
}

/** A <time> element with the local rendering and the machine value. */
export function time(iso) {
  if (!iso) return h("span", { text: "—" });
  return h("time", { datetime: iso, title: iso, text: fmtDate(iso) });
}

export function fmtBytes(n) {
  if (n === null || n === undefined) return "—";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let v = Number(n);
  let i = 0;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i += 1;
  }
  return `${v.toFixed(i === 0 ? 0 : v < 10 ? 1 : 0)} ${units[i]}`;
}

export function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(Number(seconds))) return "—";
  const s = Math.max(0, Math.floor(Number(seconds)));
  const hh = Math.floor(s / 3600);
  const mm = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, "0");
  return hh > 0 ? `${hh}:${String(mm).padStart(2, "0")}:${ss}` : `${mm}:${ss}`;
}

export function fmtKbps(kbps) {
  if (kbps === null || kbps === undefined) return "—";
  return kbps >= 1000 ? `${(kbps / 1000).toFixed(1)} Mb/s` : `${Math.round(kbps)} kb/s`;
}

/** Sets the document title for a route: "Live streams — Sluice". */
export function setTitle(name) {
  document.title = name ? `${name} — Sluice console` : "Sluice console";
}

/**
 * A page heading; the router focuses it after navigation (tabindex -1 keeps it out of the
 * tab order).
 */
export function pageHeading(text, ...extra) {
  return h("div", { class: "page-head" }, h("h1", { tabindex: "-1", id: "page-title", text }), ...extra);
}

/**
 * A table: `columns` = [{label, cell(row) → node|string, class?}], rows = objects.
 * `caption` is required for accessibility (it can be visually hidden).
 */
export function table(caption, columns, rows, { empty = "Nothing here yet.", captionHidden = true } = {}) {
  if (!rows.length) return h("p", { class: "empty", text: empty });
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      {},
      h("caption", { class: captionHidden ? "visually-hidden" : null, text: caption }),
      h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col", class: c.class, text: c.label })))),
      h(
        "tbody",
        {},
        rows.map((row) => h("tr", {}, columns.map((c) => h("td", { class: c.class }, c.cell(row))))),
      ),
    ),
  );
}

/** A labelled form field. `control` is an input/select/textarea element (its id is set). */
export function field(label, control, hint) {
  const id = control.id || uid("field");
  control.id = id;
  let hintEl = null;
  if (hint) {
    const hintId = `${id}-hint`;
    hintEl = h("p", { class: "hint", id: hintId, text: hint });
    const described = control.getAttribute("aria-describedby");
    control.setAttribute("aria-describedby", described ? `${described} ${hintId}` : hintId);
  }
  return h("div", { class: "field" }, h("label", { for: id, text: label }), control, hintEl);
}

/** A checkbox with its label after it. */
export function checkbox(label, props = {}, hint) {
  const input = h("input", { type: "checkbox", id: props.id ?? uid("check"), ...props });
  let hintEl = null;
  if (hint) {
    hintEl = h("p", { class: "hint", id: `${input.id}-hint`, text: hint });
    input.setAttribute("aria-describedby", `${input.id}-hint`);
  }
  return h("div", { class: "field check" }, input, h("label", { for: input.id, text: label }), hintEl);
}

/** Disables a button while `fn` runs; returns fn's result. */
export async function busy(button, fn) {
  const was = button.disabled;
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  try {
    return await fn();
  } finally {
    button.disabled = was;
    button.removeAttribute("aria-busy");
  }
}

/**
 * Wires a button's click to an action: asks `confirm` first when given (the message, or a
 * function returning it at click time; null skips the question), then runs `run` with the
 * button busy; an error from `run` goes into `errorBox`. Returns the button.
 */
export function onAction(button, { confirm, confirmLabel, errorBox: box, run }) {
  button.addEventListener("click", async () => {
    const message = typeof confirm === "function" ? confirm() : confirm;
    if (message && !(await confirmDialog(message, { confirmLabel }))) return;
    await busy(button, async () => {
      try {
        await run();
      } catch (e) {
        showError(box, e);
      }
    });
  });
  return button;
}

/**
 * Repeats `fn` every `ms` until the returned stop function is called (no overlap; skipped
 * while the tab is hidden).
 */
export function every(ms, fn) {
  let stopped = false;
  let timer = null;
  const tick = async () => {
    if (stopped) return;
    try {
      if (!document.hidden) await fn();
    } catch (error) {
      console.warn(error);
    }
    if (!stopped) timer = setTimeout(tick, ms);
  };
  timer = setTimeout(tick, ms);
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

/** A <section> with a heading (h2) and its content, labelled by that heading. */
export function section(title, ...children) {
  const id = uid("section");
  return h("section", { class: "card", "aria-labelledby": id }, h("h2", { id, text: title }), ...children);
}

/** A read-only value with a label, as a definition list row. */
export function dl(pairs) {
  return h(
    "dl",
    { class: "facts" },
    pairs.filter(Boolean).map(([k, v]) => h("div", {}, h("dt", { text: k }), h("dd", {}, v ?? "—"))),
  );
}

/**
 * A table updated in place by key, so polling never replaces a row (or the focused button in
 * it) that did not change. Columns: {label, cell(row), fixed?: true (made once per row, e.g.
 * action buttons), class?}. Returns {el, update(rows)}.
 */
export function keyedTable(caption, columns, { key = (row) => row.id, empty = "Nothing here yet." } = {}) {
  const tbody = h("tbody");
  const tableEl = h(
    "table",
    {},
    h("caption", { class: "visually-hidden", text: caption }),
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col", class: c.class, text: c.label })))),
    tbody,
  );
  const emptyEl = h("p", { class: "empty", text: empty });
  const wrap = h("div", { class: "table-wrap" }, tableEl);
  const el = h("div", {}, emptyEl, wrap);
  const rowsByKey = new Map();

  function fill(td, content) {
    const holder = h("div", {}, content);
    const signature = holder.innerHTML;
    if (td.dataset.sig === signature) return;
    td.dataset.sig = signature;
    td.replaceChildren(...holder.childNodes);
  }

  function update(rows) {
    emptyEl.hidden = rows.length > 0;
    wrap.hidden = rows.length === 0;
    const seen = new Set();
    let previous = null;
    for (const row of rows) {
      const k = key(row);
      seen.add(k);
      let tr = rowsByKey.get(k);
      if (!tr) {
        tr = h("tr", { dataset: { key: k } });
        columns.forEach((c) => {
          const td = h(c.header ? "th" : "td", { class: c.class, scope: c.header ? "row" : null });
          if (c.fixed) td.append(c.cell(row, tr));
          tr.append(td);
        });
        rowsByKey.set(k, tr);
      }
      tr.row = row;
      columns.forEach((c, i) => {
        if (!c.fixed) fill(tr.children[i], c.cell(row, tr));
      });
      const expected = previous ? previous.nextSibling : tbody.firstChild;
      if (expected !== tr) tbody.insertBefore(tr, expected);
      previous = tr;
    }
    for (const [k, tr] of rowsByKey) {
      if (!seen.has(k)) {
        tr.remove();
        rowsByKey.delete(k);
      }
    }
  }
  update([]);
  return { el, update };
}

/** Parses a ladder typed as "source, 720p, 360p" or as JSON; null for empty (the default). */
export function parseLadder(text) {
  const value = text.trim();
  if (!value) return null;
  if (value.startsWith("[")) return JSON.parse(value);
  return value
    .split(/[\s,]+/)
    .map((r) => r.trim())
    .filter(Boolean);
}

/** A ladder as text: "source (as sent), 720p at 3000 kb/s, 360p at 800 kb/s". */
export function ladderText(ladder) {
  if (!Array.isArray(ladder)) return "default";
  return ladder
    .map((rung) =>
      typeof rung === "string"
        ? `${rung} (as sent)`
        : `${rung.name}${rung.name === `${rung.height}p` ? "" : ` (${rung.height}p)`} at ${rung.bitrate_kbps} kb/s`,
    )
    .join(", ");
}
