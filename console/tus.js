// A small tus 1.0.0 client for direct uploads (docs/API.md, Uploads): creation on the upload
// URL, PATCH in chunks with progress, HEAD to learn where to resume. What is needed to resume
// after a reload (the upload URL and the file's name, size and modification time) is kept in
// localStorage; selecting the same file again resumes from the server's Upload-Offset.

const STORE_KEY = "sluice.uploads";
const TUS = { "Tus-Resumable": "1.0.0" };
export const CHUNK_SIZE = 16 * 1024 * 1024;

/**
 * The upload URL on this page's origin. The server builds it from its public URL, which may
 * name another host than the one the console was opened with; the console's pages may only
 * connect to their own origin (Content-Security-Policy connect-src 'self'), and every api node
 * serves uploads.
 */
export function sameOrigin(url) {
  const parsed = new URL(url, location.href);
  return new URL(parsed.pathname + parsed.search, location.origin).href;
}

/** What identifies a file across reloads: name, size and modification time. */
export function fingerprint(file) {
  return `${file.name}\u0000${file.size}\u0000${file.lastModified}`;
}

/** The resumable uploads remembered in this browser: {fingerprint: record}. */
export function remembered() {
  try {
    const value = JSON.parse(localStorage.getItem(STORE_KEY) ?? "{}");
    return value && typeof value === "object" ? value : {};
  } catch {
    return {};
  }
}

export function remember(fp, record) {
  const all = remembered();
  all[fp] = { ...all[fp], ...record, savedAt: new Date().toISOString() };
  localStorage.setItem(STORE_KEY, JSON.stringify(all));
}

export function forget(fp) {
  const all = remembered();
  delete all[fp];
  localStorage.setItem(STORE_KEY, JSON.stringify(all));
}

/** An error from the upload URL, with its HTTP status (0: the network). */
export class TusError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function tusError(response, what) {
  let message = `${what}: ${response.status} ${response.statusText}`;
  try {
    const body = await response.json();
    if (body?.error?.message) message = `${what}: ${body.error.message}`;
  } catch {
    // HEAD and some errors have no body
  }
  return new TusError(response.status, message);
}

/** HEAD: {offset, length} of the upload on the server. */
export async function status(url) {
  let response;
  try {
    response = await fetch(url, { method: "HEAD", headers: TUS, cache: "no-store" });
  } catch {
    throw new TusError(0, "The upload server cannot be reached.");
  }
  if (!response.ok) throw await tusError(response, "Checking the upload");
  return {
    offset: Number(response.headers.get("Upload-Offset") ?? 0),
    length: response.headers.has("Upload-Length") ? Number(response.headers.get("Upload-Length")) : null,
  };
}

function b64(text) {
  const bytes = new TextEncoder().encode(text);
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary);
}

/** tus creation: declares the file's length (and its name and type as metadata). */
export async function declare(url, file) {
  const metadata = [`filename ${b64(file.name)}`];
  if (file.type) metadata.push(`filetype ${b64(file.type)}`);
  let response;
  try {
    response = await fetch(url, {
      method: "POST",
      headers: { ...TUS, "Upload-Length": String(file.size), "Upload-Metadata": metadata.join(",") },
    });
  } catch {
    throw new TusError(0, "The upload server cannot be reached.");
  }
  if (!response.ok) throw await tusError(response, "Starting the upload");
}

/** One PATCH with XMLHttpRequest (fetch has no upload progress). Resolves to the new offset. */
function patch(url, offset, blob, onProgress, setXhr) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    setXhr(xhr);
    xhr.open("PATCH", url);
    xhr.setRequestHeader("Tus-Resumable", "1.0.0");
    xhr.setRequestHeader("Upload-Offset", String(offset));
    xhr.setRequestHeader("Content-Type", "application/offset+octet-stream");
    xhr.upload.onprogress = (e) => onProgress(offset + e.loaded);
    xhr.onload = () => {
      if (xhr.status === 204 || xhr.status === 200) {
        resolve(Number(xhr.getResponseHeader("Upload-Offset") ?? offset + blob.size));
      } else {
        let message = `Sending the file: ${xhr.status} ${xhr.statusText}`;
        try {
          message = `Sending the file: ${JSON.parse(xhr.responseText).error.message}`;
        } catch {
          // keep the status line
        }
        reject(new TusError(xhr.status, message));
      }
    };
    xhr.onerror = () => reject(new TusError(0, "The connection broke while sending the file."));
    xhr.onabort = () => reject(new TusError(-1, "Paused."));
    xhr.send(blob);
  });
}

/**
 * Sends `file` to the tus upload at `url`, from `offset`. Calls onProgress(bytesOnServer).
 * Retries broken connections (asking HEAD where to resume) a few times with a growing pause.
 * Returns {promise, abort()}; an aborted upload rejects with status -1 and can be resumed.
 */
export function send(url, file, offset, { onProgress, onRetry, chunkSize = CHUNK_SIZE } = {}) {
  let xhr = null;
  let aborted = false;
  const run = async () => {
    let position = offset;
    let failures = 0;
    while (position < file.size) {
      if (aborted) throw new TusError(-1, "Paused.");
      const end = Math.min(position + chunkSize, file.size);
      try {
        position = await patch(url, position, file.slice(position, end), onProgress, (x) => {
          xhr = x;
        });
        failures = 0;
        onProgress(position);
      } catch (error) {
        if (aborted || error.status === -1) throw new TusError(-1, "Paused.");
        const retryable = error.status === 0 || error.status === 409 || error.status === 423 || error.status >= 500;
        failures += 1;
        if (!retryable || failures > 6) throw error;
        const wait = Math.min(1000 * 2 ** (failures - 1), 15000);
        onRetry?.(error, wait);
        await new Promise((r) => setTimeout(r, wait));
        try {
          position = (await status(url)).offset;
          onProgress(position);
        } catch (headError) {
          if (headError.status !== 0 && headError.status < 500) throw headError;
        }
      }
    }
    return position;
  };
  return {
    promise: run(),
    abort() {
      aborted = true;
      xhr?.abort();
    },
  };
}
