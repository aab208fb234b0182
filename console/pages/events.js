// Events: a live feed of /v1/events/stream, newest first, with pause and resume. Coming back to
// the page resumes after the last event seen (Last-Event-ID), so nothing is missed.

import { follow } from "../sse.js";
import { h, replace, announce, time, setTitle, pageHeading, field } from "../ui.js";
import { EVENT_TYPES } from "./webhooks.js";

const MAX_SHOWN = 500;
let lastSeenId = null; // survives navigation within this tab

function objectLink(event) {
  const id = event.object?.id ?? event.data?.id;
  if (!id) return null;
  const type = event.object?.type ?? event.type.split(".")[0];
  const href =
    type === "live_stream" ? `#/live-streams/${id}` : type === "asset" ? `#/assets/${id}` : type === "session" && event.data?.live_stream_id ? `#/live-streams/${event.data.live_stream_id}` : null;
  return href ? h("a", { href, text: id }) : h("code", { text: id });
}

export function feed(main) {
  setTitle("Events");
  const state = h("p", { class: "feed-state", role: "status", id: "feed-state" });
  const pauseBtn = h("button", { type: "button", class: "secondary", id: "pause-feed", text: "Pause" });
  const clearBtn = h("button", { type: "button", class: "secondary", text: "Clear" });
  const filter = h("select", { name: "type" }, h("option", { value: "", text: "All types" }), EVENT_TYPES.map((t) => h("option", { value: t, text: t })));
  const waiting = h("p", { class: "notice", hidden: true, "aria-live": "polite" });
  const listEl = h("ol", { class: "event-feed", reversed: true, "aria-label": "Events, newest first" });
  const empty = h("p", { class: "empty", text: "Waiting for events… they appear here as they happen (create a live stream, publish, upload)." });
  let paused = false;
  let buffered = [];
  let count = 0;

  function item(event) {
    return h(
      "li",
      { class: "event", dataset: { type: event.type, id: event.id }, hidden: Boolean(filter.value) && filter.value !== event.type },
      h(
        "div",
        { class: "event-head" },
        h("code", { class: "event-type", text: event.type }),
        " ",
        objectLink(event),
        typeof event.data?.name === "string" ? h("span", { text: event.data.name }) : null,
        typeof event.data?.message === "string" ? h("span", { text: event.data.message }) : null,
        " ",
        h("span", { class: "muted" }, time(event.created_at)),
      ),
      h("details", {}, h("summary", { text: "Event JSON", "aria-label": `Event JSON of ${event.id}` }), h("pre", { class: "code", text: JSON.stringify(event, null, 2) })),
    );
  }

  function show(events) {
    if (!events.length) return;
    empty.hidden = true;
    const fragment = document.createDocumentFragment();
    for (const event of events) fragment.prepend(item(event));
    listEl.prepend(fragment);
    count += events.length;
    while (listEl.children.length > MAX_SHOWN) listEl.lastElementChild.remove();
  }

  const updateWaiting = () => {
    waiting.hidden = !paused || buffered.length === 0;
    waiting.textContent = `${buffered.length} new event${buffered.length === 1 ? "" : "s"} waiting: press Resume to show them.`;
  };

  pauseBtn.addEventListener("click", () => {
    paused = !paused;
    pauseBtn.textContent = paused ? "Resume" : "Pause";
    if (!paused) {
      show(buffered);
      buffered = [];
    }
    updateWaiting();
    announce(paused ? "Feed paused: new events are kept until you resume" : "Feed resumed");
  });
  clearBtn.addEventListener("click", () => {
    listEl.replaceChildren();
    empty.hidden = false;
    announce("Feed cleared");
  });
  filter.addEventListener("change", () => {
    for (const li of listEl.children) li.hidden = Boolean(filter.value) && li.dataset.type !== filter.value;
  });

  const resumed = lastSeenId;
  const stream = follow({
    lastEventId: lastSeenId,
    onEvent(event) {
      if (!event) return;
      lastSeenId = event.id;
      if (paused) {
        buffered.push(event);
        updateWaiting();
      } else show([event]);
    },
    onState(s, detail) {
      if (s === "connecting") state.textContent = "Connecting to the event stream…";
      else if (s === "open") state.textContent = resumed ? "Live: following events (resumed after the last one seen)." : "Live: following events as they happen.";
      else if (s === "waiting") state.textContent = `Disconnected (${detail.error?.message ?? "stream ended"}). Reconnecting in ${Math.round(detail.wait / 1000)} s…`;
      else if (s === "stopped") replace(state, h("strong", { text: "Stopped: " }), detail?.message ?? "the stream was refused.");
      state.dataset.state = s;
    },
  });

  main.append(
    pageHeading("Events"),
    h("p", { class: "hint", text: "Every change and every publish, as the API's Server-Sent Events stream delivers them. The console resumes with Last-Event-ID after a disconnection, so none is missed." }),
    h("div", { class: "toolbar" }, pauseBtn, clearBtn, field("Show", filter)),
    state,
    waiting,
    empty,
    listEl,
  );
  return () => stream.close();
}
