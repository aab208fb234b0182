// Publishes to a Sluice live stream from headless Chromium through its "Go live from this
// browser" page, with Chromium's fake camera and microphone, and prints JSON report lines.
//
//   node publish.mjs <publish page URL> <stream key> <seconds live> [close|stop]
//
// FAKE_VIDEO (a .y4m file) and FAKE_AUDIO (a .wav file) replace Chromium's built-in fake
// camera pattern and beep with those files (looped), so a benchmark can send known content.
// Prints {"state":"live","clickedAt":<ms since the epoch of the "Go live" click>} once the page
// says it is live (or {"state":"failed",...} and exits
// 1), stays live for the given seconds, then closes the tab without the page's Stop button
// (`close`, the default: no DELETE, the server must notice the publisher is gone) or presses
// Stop first (`stop`: the page sends DELETE), and prints {"state":"closed"}.
import { launchChromium } from "./chromium.mjs";

const [url, key, secondsArg, ending = "close"] = process.argv.slice(2);
if (!url || !key) {
  console.error("usage: node publish.mjs <publish page URL> <stream key> [seconds]");
  process.exit(2);
}
const liveSeconds = Number(secondsArg ?? 20);

const browser = await launchChromium([
  "--use-fake-device-for-media-stream",
  "--use-fake-ui-for-media-stream",
  ...(process.env.FAKE_VIDEO ? [`--use-file-for-fake-video-capture=${process.env.FAKE_VIDEO}`] : []),
  ...(process.env.FAKE_AUDIO ? [`--use-file-for-fake-audio-capture=${process.env.FAKE_AUDIO}`] : []),
]);
let exitCode = 0;
try {
  const context = await browser.newContext({ permissions: ["camera", "microphone"] });
  const page = await context.newPage();
  const consoleLines = [];
  page.on("console", (message) => consoleLines.push(message.text()));
  await page.goto(url);
  await page.fill("#key", key);
  const clickedAt = Date.now();
  await page.click("#start");
  await page.waitForFunction(
    () => ["live", "failed"].includes(document.getElementById("status").dataset.state),
    null,
    { timeout: 30000, polling: 100 },
  );
  const status = await page.evaluate(() => document.getElementById("status").textContent);
  const state = await page.evaluate(() => document.getElementById("status").dataset.state);
  console.log(JSON.stringify({ state, status, clickedAt, console: consoleLines }));
  if (state !== "live") {
    exitCode = 1;
  } else {
    await new Promise((resolve) => setTimeout(resolve, liveSeconds * 1000));
    if (ending === "stop") {
      await page.click("#stop");
      await page.waitForFunction(() => document.getElementById("status").dataset.state === "stopped");
    }
    await page.close();
    console.log(JSON.stringify({ state: "closed" }));
  }
} catch (error) {
  console.log(JSON.stringify({ state: "failed", status: String(error) }));
  exitCode = 1;
} finally {
  await browser.close();
}
process.exit(exitCode);
