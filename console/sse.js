// Server-Sent Events over fetch(): EventSource cannot send an Authorization header, so the
// stream is read with a ReadableStream reader and parsed here (the text/event-stream format of
// the HTML standard: fields id, event, data, retry; comments; events end at a blank line).
// Reconnects by itself with Last-Event-ID so no event is lost or repeated.

import { authorization, errorFrom } from "./api.js";

/** Incremental parser: feed() text chunks, get complete events through onEvent. */
export function createParser(onEvent, onRetry) {
  let buffer = "";
  let data = [];
  let type = "";
  let id = null;
  let sawCR = false;
  const dispatch = () => {
    if (data.length) onEvent({ id, type: type || "message", data: data.join("\n") });
    data = [];
    type = "";
  };
  const line = (text) => {
    if (text === "") return dispatch();
    if (text.startsWith(":")) return undefined; // comment (": open", keep-alives)
    const colon = text.indexOf(":");
    const name = colon < 0 ? text : text.slice(0, colon);
    let value = colon < 0 ? "" : text.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (name === "data") data.push(value);
    else if (name === "event") type = value;
    else if (name === "id" && !value.includes("\u0000")) id = value;
    else if (name === "retry" && /^\d+$/.test(value)) onRetry?.(Number(value));
    return undefined;
  };
  return {
    feed(chunk) {
      buffer += chunk;
      let start = 0;
      for (let i = 0; i < buffer.length; i += 1) {
        const c = buffer[i];
        if (c === "\n" && sawCR) {
          // the \n of a \r\n pair
          sawCR = false;
          start = i + 1;
          continue;
        }
        sawCR = false;
        if (c === "\r" || c === "\n") {
          line(buffer.slice(start, i));
          sawCR = c === "\r";
          start = i + 1;
        }
      }
      buffer = buffer.slice(start);
    },
    get lastId() {
      return id;
    },
  };
}

/**
 * Follows `/v1/events/stream`. Callbacks: onEvent(event JSON, raw), onState(state, detail) with
 * state "connecting" | "open" | "waiting" (reconnecting after `detail` ms) | "stopped" (an
 * error that retrying cannot fix, e.g. 401/403: `detail` is the ApiError).
 * Returns {close(), lastEventId}.
 */
export function follow({ path = "/v1/events/stream", lastEventId = null, onEvent, onState }) {
  let controller = null;
  let closed = false;
  let lastId = lastEventId;
  let retryMs = 1000;
  let failures = 0;
  let timer = null;

  async function connect() {
    if (closed) return;
    controller = new AbortController();
    onState?.("connecting");
    const headers = { Accept: "text/event-stream", Authorization: authorization() ?? "" };
    if (lastId) headers["Last-Event-ID"] = lastId;
    let response;
    try {
      response = await fetch(path, { headers, signal: controller.signal, cache: "no-store", credentials: "omit" });
    } catch (error) {
      if (closed) return;
      return retry(error);
    }
    if (!response.ok) {
      const error = await errorFrom(response);
      if (response.status === 401 || response.status === 403 || (response.status === 400 && lastId)) {
        if (response.status === 400 && lastId) {
          // The event we resume from is gone from the history: start from now.
          lastId = null;
          return retry(error);
        }
        if (response.status === 401) window.dispatchEvent(new CustomEvent("sluice:unauthorized", { detail: error }));
        onState?.("stopped", error);
        return undefined;
      }
      return retry(error);
    }
    onState?.("open");
    failures = 0;
    const parser = createParser(
      (event) => {
        if (event.id) lastId = event.id;
        let parsed = null;
        try {
          parsed = JSON.parse(event.data);
        } catch {
          parsed = null;
        }
        onEvent?.(parsed, event);
      },
      (ms) => {
        retryMs = ms;
      },
    );
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        parser.feed(value);
      }
    } catch (error) {
      if (closed) return undefined;
      return retry(error);
    }
    return retry(new Error("the server closed the stream"));
  }

  function retry(error) {
    if (closed) return;
    failures += 1;
    const wait = Math.min(retryMs * 2 ** Math.min(failures - 1, 5), 30000);
    onState?.("waiting", { wait, error });
    timer = setTimeout(connect, wait);
  }

  connect();
  return {
    close() {
      closed = true;
      clearTimeout(timer);
      controller?.abort();
    },
    get lastEventId() {
      return lastId;
    },
  };
}
