// Webhooks: endpoints (list, create, enable/disable, rotate the secret, delete) and each
// endpoint's deliveries with their attempts, replayable one by one.

import { get, page, post, patch, del, seg } from "../api.js";
import {
  h,
  replace,
  announce,
  errorBox,
  showError,
  copyButton,
  badge,
  time,
  setTitle,
  pageHeading,
  field,
  busy,
  onAction,
  every,
  section,
  dl,
  keyedTable,
  uid,
} from "../ui.js";

export const EVENT_TYPES = [
  "live_stream.created",
  "live_stream.updated",
  "live_stream.deleted",
  "live_stream.connected",
  "live_stream.active",
  "live_stream.disconnected",
  "live_stream.idle",
  "live_stream.stream_key_reset",
  "live_stream.disabled",
  "live_stream.enabled",
  "live_stream.completed",
  "live_stream.warning",
  "session.started",
  "session.ended",
  "asset.created",
  "asset.ready",
  "asset.errored",
  "asset.deleted",
  "asset.track.ready",
  "asset.track.errored",
  "upload.created",
  "upload.asset_created",
  "upload.errored",
  "upload.cancelled",
  "simulcast_target.created",
  "simulcast_target.deleted",
  "simulcast_target.connected",
  "simulcast_target.disconnected",
  "simulcast_target.errored",
];

const eventsText = (events) => (events?.length ? events.join(", ") : "every event");

export function list(main, _params, { signal, navigate }) {
  setTitle("Webhooks");
  const error = errorBox(null);
  const endpoints = keyedTable(
    "Webhook endpoints",
    [
      { label: "URL", header: true, cell: (w) => h("a", { href: `#/webhooks/${w.id}`, text: w.url }) },
      { label: "Description", cell: (w) => w.description ?? "—" },
      { label: "Events", cell: (w) => eventsText(w.events) },
      { label: "State", cell: (w) => badge(w.enabled ? "active" : "disabled", w.enabled ? "enabled" : "disabled") },
      { label: "Created", cell: (w) => time(w.created_at) },
    ],
    { empty: "No webhook endpoints. Add one to receive events as HTTP POSTs." },
  );
  let items = [];
  let cursor = null;
  const more = h("button", { type: "button", class: "secondary", hidden: true, text: "Load more" });
  async function load(reset) {
    try {
      const result = await page("/v1/webhooks", reset ? { limit: 100 } : { cursor }, { signal });
      items = reset ? result.data : items.concat(result.data);
      cursor = result.next_cursor;
      endpoints.update(items);
      more.hidden = !cursor;
      showError(error, null);
    } catch (e) {
      if (e.name !== "AbortError") showError(error, e);
    }
  }
  more.addEventListener("click", () => busy(more, () => load(false)));

  const url = h("input", { type: "url", name: "url", required: true, placeholder: "https://example.com/sluice/webhooks", autocomplete: "off", spellcheck: "false" });
  const description = h("input", { name: "description", autocomplete: "off", maxlength: "200" });
  const groupId = uid("events");
  const eventBoxes = EVENT_TYPES.map((type) => {
    const id = `${groupId}-${type.replace(/\W/g, "-")}`;
    return h("div", { class: "check" }, h("input", { type: "checkbox", id, value: type, name: "events" }), h("label", { for: id }, h("code", { text: type })));
  });
  const formError = errorBox(null);
  const submit = h("button", { type: "submit", class: "primary", text: "Add endpoint" });
  const form = h(
    "form",
    { novalidate: true },
    field("Receiver URL", url, "http or https; Sluice POSTs each event's JSON there, signed with the endpoint's secret."),
    field("Description", description),
    h(
      "details",
      { class: "events-picker" },
      h("summary", { text: "Choose event types (none chosen: every event)" }),
      h("fieldset", {}, h("legend", { class: "visually-hidden", text: "Event types" }), h("div", { class: "checks" }, eventBoxes)),
    ),
    formError,
    h("div", { class: "actions" }, submit),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!url.value.trim()) {
      showError(formError, { message: "Enter the receiver's URL." });
      url.focus();
      return;
    }
    const body = { url: url.value.trim(), events: [...form.querySelectorAll('input[name="events"]:checked')].map((i) => i.value) };
    if (description.value.trim()) body.description = description.value.trim();
    await busy(submit, async () => {
      try {
        const hook = await post("/v1/webhooks", body);
        announce(`Webhook endpoint ${hook.url} added`);
        navigate(`/webhooks/${hook.id}`);
      } catch (e) {
        showError(formError, e);
      }
    });
  });

  main.append(pageHeading("Webhooks"), section("Endpoints", error, endpoints.el, more), section("Add an endpoint", form));
  load(true);
  return every(10000, () => load(true));
}

export function detail(main, [id], { signal, navigate }) {
  setTitle("Webhook endpoint");
  const title = h("h1", { tabindex: "-1", id: "page-title", text: "Webhook endpoint" });
  const topError = errorBox(null);
  const facts = h("div");
  const secretValue = h("code", { class: "value secret", id: "webhook-secret" });
  const showSecret = h("button", { type: "button", class: "secondary small", "aria-controls": "webhook-secret", text: "Show" });
  const rotate = h("button", { type: "button", class: "secondary small", text: "Rotate secret" });
  const toggle = h("button", { type: "button", class: "secondary", text: "Disable" });
  const remove = h("button", { type: "button", class: "danger", text: "Delete endpoint" });
  const refreshBtn = h("button", { type: "button", class: "secondary small", text: "Refresh deliveries" });
  const deliveriesError = errorBox(null);
  let hook = null;
  let shown = false;

  const renderSecret = () => {
    secretValue.textContent = shown ? hook?.secret ?? "" : "•".repeat(20);
    showSecret.textContent = shown ? "Hide" : "Show";
    showSecret.setAttribute("aria-label", shown ? "Hide the signing secret" : "Show the signing secret");
  };
  showSecret.addEventListener("click", () => {
    shown = !shown;
    renderSecret();
  });
  onAction(rotate, {
    confirm: "Rotate the secret? Later deliveries are signed with the new one; update your receiver.",
    confirmLabel: "Rotate secret",
    errorBox: topError,
    async run() {
      hook = await post(`/v1/webhooks/${seg(id)}/rotate-secret`);
      render();
      announce("Secret rotated");
    },
  });
  onAction(toggle, {
    errorBox: topError,
    async run() {
      hook = await patch(`/v1/webhooks/${seg(id)}`, { enabled: !hook.enabled });
      render();
      announce(hook.enabled ? "Endpoint enabled" : "Endpoint disabled: new deliveries wait until it is enabled again");
    },
  });
  onAction(remove, {
    confirm: "Delete this endpoint with its deliveries? Nothing pending is sent any more.",
    confirmLabel: "Delete endpoint",
    errorBox: topError,
    async run() {
      await del(`/v1/webhooks/${seg(id)}`);
      announce("Webhook endpoint deleted");
      navigate("/webhooks");
    },
  });

  const deliveries = keyedTable(
    "Deliveries, oldest first",
    [
      { label: "Event", header: true, cell: (d) => h("span", {}, h("code", { text: d.event_type }), h("span", { class: "muted block", text: d.event_id })) },
      { label: "Status", cell: (d) => badge(d.status) },
      { label: "Attempts", class: "num", cell: (d) => String(d.attempt_count) },
      { label: "Last answer", cell: (d) => (d.last_status_code ? `HTTP ${d.last_status_code}` : d.last_error ?? "—") },
      { label: "Queued", cell: (d) => time(d.created_at) },
      { label: "Delivered", cell: (d) => (d.delivered_at ? time(d.delivered_at) : d.next_attempt_at ? h("span", {}, "next ", time(d.next_attempt_at)) : "—") },
      {
        label: "History",
        cell: (d) =>
          h(
            "details",
            { class: "attempts" },
            h("summary", { text: `${d.attempts?.length ?? 0} attempt${d.attempts?.length === 1 ? "" : "s"}` }),
            h(
              "ol",
              {},
              (d.attempts ?? []).map((a) =>
                h("li", {}, time(a.started_at), ` · ${a.duration_ms} ms · `, a.status_code ? `HTTP ${a.status_code}` : a.error ?? "no answer"),
              ),
            ),
          ),
      },
      {
        label: "Actions",
        fixed: true,
        cell: (d, tr) => {
          const button = h("button", { type: "button", class: "secondary small", text: "Replay", "aria-label": `Replay delivery ${d.id} (${d.event_type})` });
          return onAction(button, {
            errorBox: deliveriesError,
            async run() {
              await post(`/v1/webhooks/${seg(id)}/deliveries/${seg(tr.row.id)}/replay`);
              announce(`Delivery of ${tr.row.event_type} queued again`);
              await loadDeliveries();
            },
          });
        },
      },
    ],
    { key: (d) => d.id, empty: "No deliveries yet: they appear as events happen." },
  );

  // The newest deliveries matter most: read every page (up to 500 deliveries).
  async function loadDeliveries() {
    let all = [];
    let cursor = null;
    for (let i = 0; i < 5; i += 1) {
      const result = await page(`/v1/webhooks/${seg(id)}/deliveries`, { limit: 100, cursor }, { signal });
      all = all.concat(result.data);
      cursor = result.next_cursor;
      if (!cursor) break;
    }
    deliveries.update(all.reverse());
    showError(deliveriesError, null);
  }
  onAction(refreshBtn, {
    errorBox: deliveriesError,
    async run() {
      await loadDeliveries();
      announce("Deliveries refreshed");
    },
  });

  let renderedSig = "";
  function render() {
    setTitle(`Webhook ${hook.url}`);
    title.textContent = hook.description || hook.url;
    toggle.textContent = hook.enabled ? "Disable" : "Enable";
    renderSecret();
    const sig = JSON.stringify(hook);
    if (sig === renderedSig) return;
    renderedSig = sig;
    replace(
      facts,
      dl([
        ["URL", h("code", { text: hook.url })],
        ["Id", h("code", { text: hook.id })],
        ["State", badge(hook.enabled ? "active" : "disabled", hook.enabled ? "enabled" : "disabled")],
        ["Events", eventsText(hook.events)],
        ["Description", hook.description ?? "—"],
        ["Created", time(hook.created_at)],
        ["Updated", time(hook.updated_at)],
      ]),
    );
  }

  async function refresh() {
    try {
      hook = await get(`/v1/webhooks/${seg(id)}`, { signal });
      render();
      showError(topError, null);
    } catch (e) {
      if (e.name !== "AbortError") showError(topError, e);
      return;
    }
    try {
      await loadDeliveries();
    } catch (e) {
      if (e.name !== "AbortError") showError(deliveriesError, e);
    }
  }

  main.append(
    h("div", { class: "page-head" }, title),
    h("p", { class: "breadcrumb" }, h("a", { href: "#/webhooks", text: "All webhook endpoints" }), " · ", h("code", { text: id })),
    topError,
    h("div", { class: "toolbar" }, toggle, remove),
    section(
      "Endpoint",
      facts,
      h(
        "dl",
        { class: "facts" },
        h(
          "div",
          {},
          h("dt", { text: "Signing secret" }),
          h("dd", {}, h("span", { class: "value-row" }, secretValue, showSecret, copyButton("Copy secret", () => hook?.secret ?? ""), rotate)),
        ),
      ),
      h("p", { class: "hint", text: "Receivers check the Sluice-Signature header: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, t + '.' + body)>." }),
    ),
    section("Deliveries", h("div", { class: "toolbar" }, refreshBtn), deliveriesError, deliveries.el),
  );
  refresh();
  return every(5000, refresh);
}
