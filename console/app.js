// The console's shell: hash routes (#/live-streams/ID) so the server serves one page, each
// route's module loaded when first visited, the signed-in state, page titles and focus moved
// to each new page's heading.

import { credentials, forgetCredentials } from "./api.js";
import { announce, h, setTitle } from "./ui.js";

const pages = {
  signin: () => import("./pages/signin.js"),
  live: () => import("./pages/live.js"),
  assets: () => import("./pages/assets.js"),
  webhooks: () => import("./pages/webhooks.js"),
  events: () => import("./pages/events.js"),
  keys: () => import("./pages/keys.js"),
};

// [pattern, module, export, nav section]
const routes = [
  [/^\/sign-in$/, "signin", "signIn", null],
  [/^\/live-streams$/, "live", "list", "live-streams"],
  [/^\/live-streams\/new$/, "live", "create", "live-streams"],
  [/^\/live-streams\/([A-Za-z0-9_]+)$/, "live", "detail", "live-streams"],
  [/^\/assets$/, "assets", "list", "assets"],
  [/^\/assets\/([A-Za-z0-9_]+)$/, "assets", "detail", "assets"],
  [/^\/webhooks$/, "webhooks", "list", "webhooks"],
  [/^\/webhooks\/([A-Za-z0-9_]+)$/, "webhooks", "detail", "webhooks"],
  [/^\/events$/, "events", "feed", "events"],
  [/^\/api-keys$/, "keys", "apiKeys", "api-keys"],
  [/^\/signing-keys$/, "keys", "signingKeys", "signing-keys"],
];

const DEFAULT_ROUTE = "/live-streams";
const main = document.getElementById("main");
const nav = document.getElementById("nav");
const session = document.getElementById("session");
let cleanup = null;
let controller = null;
let generation = 0;
let firstRender = true;

export function navigate(path, { replace = false } = {}) {
  const hash = `#${path}`;
  if (location.hash === hash) route();
  else if (replace) location.replace(hash);
  else location.hash = hash;
}

function showShell(signedIn) {
  nav.hidden = !signedIn;
  session.hidden = !signedIn;
  const creds = credentials();
  document.getElementById("whoami").textContent = creds ? `Key ${creds.id}` : "";
}

function markNav(section) {
  for (const link of nav.querySelectorAll("a")) {
    if (link.dataset.section === section) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

async function route() {
  const hash = location.hash;
  // Plain in-page anchors (the skip link) are not routes.
  if (hash && !hash.startsWith("#/")) return;
  const path = hash ? hash.slice(1) : DEFAULT_ROUTE;
  const signedIn = Boolean(credentials());
  if (!signedIn && path !== "/sign-in") {
    sessionStorage.setItem("sluice.after-sign-in", path);
    navigate("/sign-in", { replace: true });
    return;
  }
  if (signedIn && path === "/sign-in") {
    navigate(DEFAULT_ROUTE, { replace: true });
    return;
  }
  showShell(signedIn);

  if (cleanup) {
    try {
      cleanup();
    } catch (error) {
      console.warn(error);
    }
    cleanup = null;
  }
  controller?.abort();
  controller = new AbortController();
  const mine = ++generation;

  const found = routes.map(([re, mod, fn, section]) => ({ m: re.exec(path), mod, fn, section })).find((r) => r.m);
  markNav(found?.section ?? null);
  if (!found) {
    setTitle("Not found");
    main.replaceChildren(
      h("h1", { tabindex: "-1", id: "page-title", text: "Page not found" }),
      h("p", {}, "Nothing lives at this address. ", h("a", { href: `#${DEFAULT_ROUTE}`, text: "Go to live streams" }), "."),
    );
    focusHeading();
    return;
  }
  let module;
  try {
    module = await pages[found.mod]();
  } catch (error) {
    main.replaceChildren(h("h1", { tabindex: "-1", text: "The console could not load this page" }), h("p", { text: String(error) }));
    return;
  }
  if (mine !== generation) return;
  main.replaceChildren();
  main.dataset.route = `${found.mod}.${found.fn}`;
  const result = module[found.fn](main, found.m.slice(1), { signal: controller.signal, navigate });
  cleanup = typeof result === "function" ? result : null;
  focusHeading();
}

function focusHeading() {
  if (firstRender) {
    firstRender = false;
    return;
  }
  const heading = main.querySelector("h1");
  if (heading) {
    if (!heading.hasAttribute("tabindex")) heading.setAttribute("tabindex", "-1");
    heading.focus({ preventScroll: false });
  }
}

document.getElementById("sign-out").addEventListener("click", () => {
  forgetCredentials();
  navigate("/sign-in");
  announce("Signed out. The key was removed from this tab.");
});

document.querySelector(".skip-link").addEventListener("click", (event) => {
  event.preventDefault();
  main.focus();
});

window.addEventListener("sluice:unauthorized", (event) => {
  forgetCredentials();
  sessionStorage.setItem("sluice.sign-in-message", event.detail?.message ?? "Your credentials were refused.");
  if (!location.hash.startsWith("#/sign-in")) {
    sessionStorage.setItem("sluice.after-sign-in", location.hash.slice(1) || DEFAULT_ROUTE);
    navigate("/sign-in");
  }
});

window.addEventListener("hashchange", route);
route();
