// Sign-in: an API key id and its secret, checked against the API, then kept in this tab's
// sessionStorage only.

import { request, saveCredentials, ApiError } from "../api.js";
import { h, errorBox, showError, field, setTitle, pageHeading, busy, announce } from "../ui.js";

export function signIn(main, _params, { navigate }) {
  setTitle("Sign in");
  const id = h("input", { name: "key-id", autocomplete: "username", required: true, spellcheck: "false", autocapitalize: "off" });
  const secret = h("input", { name: "key-secret", type: "password", autocomplete: "current-password", required: true });
  const reveal = h("input", { type: "checkbox", id: "show-secret" });
  reveal.addEventListener("change", () => {
    secret.type = reveal.checked ? "text" : "password";
  });
  const error = errorBox(null);
  const submit = h("button", { type: "submit", class: "primary", text: "Sign in" });
  const message = sessionStorage.getItem("sluice.sign-in-message");
  sessionStorage.removeItem("sluice.sign-in-message");

  const form = h(
    "form",
    { class: "card narrow", novalidate: true },
    message ? h("p", { class: "notice", role: "status", text: `You were signed out: ${message}` }) : null,
    field("API key id", id, "Starts with ak_ for generated keys; the first key is in data/api-key.txt on the server."),
    field("Secret", secret),
    h("div", { class: "field check" }, reveal, h("label", { for: "show-secret", text: "Show the secret" })),
    error,
    h("div", { class: "actions" }, submit),
    h("p", { class: "hint", text: "The key stays in this browser tab only (sessionStorage) and is sent to this server's /v1 API as HTTP Basic credentials. Closing the tab forgets it." }),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const creds = { id: id.value.trim(), secret: secret.value };
    if (!creds.id || !creds.secret) {
      showError(error, { message: !creds.id ? "Enter the API key id." : "Enter the secret." });
      (!creds.id ? id : secret).focus();
      return;
    }
    await busy(submit, async () => {
      try {
        await request("GET", "/v1/live-streams?limit=1", undefined, { creds });
      } catch (e) {
        // A key without live:read is still a valid key: the pages it cannot use say so.
        if (!(e instanceof ApiError && e.status === 403)) {
          showError(error, e.status === 401 ? { code: e.code, message: `The server refused this key: ${e.message}` } : e);
          id.focus();
          return;
        }
      }
      saveCredentials(creds.id, creds.secret);
      announce(`Signed in as ${creds.id}`);
      const next = sessionStorage.getItem("sluice.after-sign-in");
      sessionStorage.removeItem("sluice.after-sign-in");
      navigate(next && next !== "/sign-in" ? next : "/live-streams");
    });
  });
  main.append(pageHeading("Sign in to Sluice"), form);
}
