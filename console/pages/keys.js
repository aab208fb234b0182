// API keys (list, create with the secret shown once, revoke) and signing keys (list, create
// with the private key shown once, delete).

import { page, post, del, seg, credentials } from "../api.js";
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
  section,
  keyedTable,
  uid,
} from "../ui.js";

const PERMISSIONS = [
  ["admin", "everything, including keys, signing keys and webhooks"],
  ["live:read", "read live streams and sessions"],
  ["live:write", "change live streams and sessions"],
  ["assets:read", "read assets and uploads"],
  ["assets:write", "change assets and uploads"],
  ["rooms:read", "read rooms, their participants and sessions"],
  ["rooms:write", "change rooms, mint their access tokens, let participants in"],
  ["events:read", "read events and follow the event stream"],
];

async function readAll(path, signal) {
  let all = [];
  let cursor = null;
  for (let i = 0; i < 10; i += 1) {
    const result = await page(path, { limit: 100, cursor }, { signal });
    all = all.concat(result.data);
    cursor = result.next_cursor;
    if (!cursor) break;
  }
  return all;
}

/** A panel showing a secret once, with copy, that the person dismisses. */
function onceBox(titleText, rows, note) {
  const id = uid("once");
  const box = h(
    "section",
    { class: "card once", "aria-labelledby": id, tabindex: "-1" },
    h("h2", { id, text: titleText }),
    h("p", { class: "notice", text: note }),
    rows,
  );
  const dismiss = h("button", { type: "button", class: "secondary", text: "I have saved it" });
  dismiss.addEventListener("click", () => box.remove());
  box.append(h("div", { class: "actions" }, dismiss));
  return box;
}

export function apiKeys(main, _params, { signal }) {
  setTitle("API keys");
  const error = errorBox(null);
  const onceSlot = h("div");
  const me = credentials()?.id;
  const keys = keyedTable(
    "API keys",
    [
      { label: "Name", header: true, cell: (k) => h("span", {}, k.name, k.id === me ? h("span", { class: "muted", text: " (this console)" }) : null) },
      { label: "Id", cell: (k) => h("code", { text: k.id }) },
      { label: "Permissions", cell: (k) => (k.permissions ?? []).join(", ") },
      { label: "Created", cell: (k) => time(k.created_at) },
      { label: "State", cell: (k) => (k.revoked_at ? h("span", {}, badge("revoked"), " ", time(k.revoked_at)) : badge("active")) },
      {
        label: "Actions",
        cell: (k) => {
          if (k.revoked_at) return "—";
          const button = h("button", { type: "button", class: "danger small", text: "Revoke", "aria-label": `Revoke the key ${k.name} (${k.id})`, dataset: { keyId: k.id } });
          return onAction(button, {
            confirm:
              k.id === me
                ? `Revoke ${k.id}, the key this console is signed in with? You will be signed out at once.`
                : `Revoke the key "${k.name}" (${k.id})? Requests and tokens made with it fail at once; this cannot be undone.`,
            confirmLabel: "Revoke key",
            errorBox: error,
            async run() {
              await del(`/v1/api-keys/${seg(k.id)}`);
              announce(`Key ${k.name} revoked`);
              await load();
            },
          });
        },
      },
    ],
    { empty: "No API keys." },
  );
  async function load() {
    try {
      keys.update(await readAll("/v1/api-keys", signal));
      showError(error, null);
    } catch (e) {
      if (e.name !== "AbortError") showError(error, e);
    }
  }

  const name = h("input", { name: "name", required: true, maxlength: "200", autocomplete: "off" });
  const groupId = uid("perm");
  const perms = h(
    "fieldset",
    { class: "field" },
    h("legend", { text: "Permissions" }),
    PERMISSIONS.map(([p, what], i) => {
      const id = `${groupId}-${i}`;
      return h("div", { class: "check" }, h("input", { type: "checkbox", id, name: "permissions", value: p, checked: p === "admin" }), h("label", { for: id }, h("code", { text: p }), ` — ${what}`));
    }),
  );
  const formError = errorBox(null);
  const submit = h("button", { type: "submit", class: "primary", text: "Create key" });
  const form = h("form", { novalidate: true }, field("Name", name, "What the key is for, e.g. \"dashboard\"."), perms, formError, h("div", { class: "actions" }, submit));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const permissions = [...form.querySelectorAll('input[name="permissions"]:checked')].map((i) => i.value);
    if (!name.value.trim()) {
      showError(formError, { message: "Give the key a name." });
      name.focus();
      return;
    }
    if (!permissions.length) {
      showError(formError, { message: "Choose at least one permission." });
      return;
    }
    await busy(submit, async () => {
      try {
        const key = await post("/v1/api-keys", { name: name.value.trim(), permissions });
        showError(formError, null);
        form.reset();
        const secretCode = h("code", { class: "value", id: "new-key-secret", text: key.secret });
        const box = onceBox(
          `New key "${key.name}"`,
          h(
            "dl",
            { class: "facts" },
            h("div", {}, h("dt", { text: "Key id" }), h("dd", {}, h("span", { class: "value-row" }, h("code", { class: "value", id: "new-key-id", text: key.id }), copyButton("Copy key id", key.id)))),
            h("div", {}, h("dt", { text: "Secret" }), h("dd", {}, h("span", { class: "value-row" }, secretCode, copyButton("Copy secret", key.secret)))),
            h("div", {}, h("dt", { text: "Permissions" }), h("dd", { text: key.permissions.join(", ") })),
          ),
          "The secret is shown only now: copy it to a safe place. The server keeps only its hash.",
        );
        replace(onceSlot, box);
        box.focus();
        announce(`Key ${key.name} created; its secret is shown once`);
        await load();
      } catch (e) {
        showError(formError, e);
      }
    });
  });

  main.append(pageHeading("API keys"), onceSlot, section("Keys", error, keys.el), section("Create a key", form));
  load();
}

export function signingKeys(main, _params, { signal }) {
  setTitle("Signing keys");
  const error = errorBox(null);
  const onceSlot = h("div");
  const keys = keyedTable(
    "Signing keys",
    [
      { label: "Id (kid)", header: true, cell: (k) => h("code", { text: k.id }) },
      { label: "Algorithm", cell: (k) => k.algorithm },
      { label: "Created", cell: (k) => time(k.created_at) },
      { label: "Public key", cell: (k) => h("details", {}, h("summary", { text: "Show", "aria-label": `Public key of ${k.id}` }), h("pre", { class: "code", text: k.public_key })) },
      {
        label: "Actions",
        fixed: true,
        cell: (k, tr) => {
          const button = h("button", { type: "button", class: "danger small", text: "Delete", "aria-label": `Delete the signing key ${k.id}` });
          return onAction(button, {
            confirm: () => `Delete ${tr.row.id}? Every playback token it signed is refused from then on.`,
            confirmLabel: "Delete key",
            errorBox: error,
            async run() {
              await del(`/v1/signing-keys/${seg(tr.row.id)}`);
              announce("Signing key deleted");
              await load();
            },
          });
        },
      },
    ],
    { empty: "No signing keys. Create one to sign playback tokens for signed playback ids." },
  );
  async function load() {
    try {
      keys.update(await readAll("/v1/signing-keys", signal));
      showError(error, null);
    } catch (e) {
      if (e.name !== "AbortError") showError(error, e);
    }
  }
  const algorithm = h("select", { name: "algorithm" }, h("option", { value: "ES256", text: "ES256 (ECDSA P-256, recommended)" }), h("option", { value: "RS256", text: "RS256 (RSA 2048)" }));
  const formError = errorBox(null);
  const submit = h("button", { type: "submit", class: "primary", text: "Create signing key" });
  const form = h("form", { novalidate: true }, field("Algorithm", algorithm), formError, h("div", { class: "actions" }, submit));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    await busy(submit, async () => {
      try {
        const key = await post("/v1/signing-keys", { algorithm: algorithm.value });
        showError(formError, null);
        const pemId = uid("pem");
        const pem = h("textarea", { id: pemId, class: "code", readonly: true, rows: "8", spellcheck: "false" });
        pem.value = key.private_key;
        const box = onceBox(
          `New signing key ${key.id}`,
          h(
            "div",
            {},
            h("p", {}, "Key id (the tokens' ", h("code", { text: "kid" }), "): ", h("code", { text: key.id }), " ", copyButton("Copy key id", key.id)),
            h("label", { for: pemId, text: "Private key (PKCS#8 PEM)" }),
            pem,
            h("div", { class: "actions" }, copyButton("Copy private key", key.private_key)),
          ),
          "The private key is shown only now: the server keeps the public key only. Store it with your backend, which signs playback tokens.",
        );
        replace(onceSlot, box);
        box.focus();
        announce(`Signing key ${key.id} created; its private key is shown once`);
        await load();
      } catch (e) {
        showError(formError, e);
      }
    });
  });
  main.append(pageHeading("Signing keys"), onceSlot, section("Keys", error, keys.el), section("Create a signing key", form));
  load();
}
