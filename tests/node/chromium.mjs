// Launches the headless Chromium the test scripts drive (Debian's, or $CHROMIUM), quiet and
// without background traffic, with `extraArgs` added to its command line.
import { chromium } from "playwright-core";

export function launchChromium(extraArgs = []) {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      ...extraArgs,
    ],
  });
}

// Launches Chromium for players (autoplay allowed, QUIC off) with one page holding `html`
// and the script files `scripts`; returns both (close the browser when done).
export async function launchPlayerPage(html, scripts) {
  const browser = await launchChromium([
    "--disable-quic",
    "--autoplay-policy=no-user-gesture-required",
  ]);
  const page = await browser.newPage();
  await page.setContent(html);
  for (const path of scripts) await page.addScriptTag({ path });
  return { browser, page };
}
