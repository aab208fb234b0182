// Measures the console with Lighthouse in headless Chromium and prints one JSON report line.
//
//   node lighthouse.mjs <server base URL> <API key id> <API key secret>
//
// Two pages, each with Lighthouse's default (mobile) settings: simulated slow 4G and a 4x
// slower CPU.
// - `first_load`: the console's first page (sign-in), storage and cache cleared first, as a
//   person opening it for the first time meets it;
// - `asset_list`: the asset list of a signed-in person (the key set in the tab's session
//   storage as the sign-in page sets it; the browser's cache as that page left it).
// The report holds each page's category scores (0 to 100) and its main timings in ms.
import lighthouse from "lighthouse";
import * as chromeLauncher from "chrome-launcher";
import puppeteer from "puppeteer-core";

const [base, keyId, secret] = process.argv.slice(2);
if (!base || !keyId || !secret) {
  console.error("usage: node lighthouse.mjs <base URL> <key id> <secret>");
  process.exit(2);
}

const chrome = await chromeLauncher.launch({
  chromePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  chromeFlags: ["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const flags = {
  port: chrome.port,
  output: "json",
  logLevel: "error",
  onlyCategories: ["performance", "accessibility", "best-practices"],
};

function summary(result) {
  const { categories, audits } = result.lhr;
  const ms = (id) => Math.round(audits[id]?.numericValue ?? NaN);
  return {
    url: result.lhr.finalDisplayedUrl,
    performance: Math.round(categories.performance.score * 100),
    accessibility: Math.round(categories.accessibility.score * 100),
    best_practices: Math.round(categories["best-practices"].score * 100),
    first_contentful_paint_ms: ms("first-contentful-paint"),
    largest_contentful_paint_ms: ms("largest-contentful-paint"),
    total_blocking_time_ms: ms("total-blocking-time"),
    cumulative_layout_shift: audits["cumulative-layout-shift"]?.numericValue,
    transfer_bytes: Math.round(audits["total-byte-weight"]?.numericValue ?? NaN),
    failed_accessibility_audits: result.lhr.categories.accessibility.auditRefs
      .filter((ref) => ref.weight > 0 && audits[ref.id].score !== null && audits[ref.id].score < 1)
      .map((ref) => ref.id),
  };
}

let browser;
try {
  const firstLoad = summary(await lighthouse(`${base}/`, flags));

  browser = await puppeteer.connect({ browserURL: `http://127.0.0.1:${chrome.port}` });
  const page = await browser.newPage();
  await page.goto(`${base}/`);
  await page.evaluate(
    (id, secret) => sessionStorage.setItem("sluice.credentials", JSON.stringify({ id, secret })),
    keyId,
    secret,
  );
  // Away first, so that the list is a whole page load rather than a change of hash.
  await page.goto("about:blank");
  const assetList = summary(
    await lighthouse(`${base}/#/assets`, { ...flags, disableStorageReset: true }, undefined, page),
  );
  console.log(JSON.stringify({ first_load: firstLoad, asset_list: assetList }));
} finally {
  await browser?.disconnect();
  await chrome.kill();
}
