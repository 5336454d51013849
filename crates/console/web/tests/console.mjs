// Drives Vigil's web console in headless Chromium (playwright-core, Debian's chromium) the way a
// person would, and prints what it saw as one JSON line on stdout; the Rust test
// (crates/vigil/tests/cli/console.rs) starts the server, runs this, and asserts on the facts.
// Screenshots of every page go to $OUT_DIR.
//
// Environment: VIGIL_URL, VIGIL_KEY, VIGIL_SECRET, VIGIL_BIN (the vigil binary, for `vigil put`),
// ARCHIVE_FILE and ARCHIVE_START_MS (a recording pushed with --start-time), LIVE_FILE (a long
// recording pushed with --realtime as the live camera), H265_STREAM (a stream holding H.265),
// OUT_DIR, VIGIL_CHROMIUM (default /usr/bin/chromium).
import { chromium } from "playwright-core";
import { spawn } from "node:child_process";
import { join } from "node:path";

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};
const url = env("VIGIL_URL");
const out = env("OUT_DIR");
const stream = "front-door";
const facts = { steps: [], consoleErrors: [], failedRequests: [] };
const step = (name) => {
  facts.steps.push(name);
  process.stderr.write(`console test: ${name}\n`);
};

// page.waitForFunction evaluates its predicate with eval, which the console's
// Content-Security-Policy forbids (rightly); poll with page.evaluate instead.
async function waitFor(page, fn, arg, timeout = 20000) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const v = await page.evaluate(fn, arg);
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${fn.toString().slice(0, 200)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

function put(args, name) {
  const p = spawn(env("VIGIL_BIN"), ["put", stream, ...args, "--quiet", "--endpoint-url", url], {
    env: { ...process.env, AWS_ACCESS_KEY_ID: env("VIGIL_KEY"), AWS_SECRET_ACCESS_KEY: env("VIGIL_SECRET"), AWS_REGION: "us-east-1" },
    stdio: ["ignore", "ignore", "pipe"],
  });
  let err = "";
  p.stderr.on("data", (d) => (err += d));
  const done = new Promise((resolve) => p.on("exit", (code) => resolve({ code, err })));
  return { p, done, name };
}

const browser = await chromium.launch({
  executablePath: process.env.VIGIL_CHROMIUM || "/usr/bin/chromium",
  headless: true,
  // SwiftShader: video frames are composited into screenshots (without a GPU, headless
  // Chromium otherwise leaves <video> black in them even while it plays).
  args: ["--no-sandbox", "--autoplay-policy=no-user-gesture-required", "--mute-audio", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"],
});
let live;
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, timezoneId: "UTC", acceptDownloads: true });
  const page = await context.newPage();
  page.setDefaultTimeout(20000);
  page.on("console", (m) => {
    // Failed requests are recorded below; the expected ones (a wrong secret, no session yet)
    // also log "Failed to load resource".
    if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) facts.consoleErrors.push(m.text());
  });
  page.on("response", (r) => {
    if (r.status() >= 400) facts.failedRequests.push(`${r.status()} ${new URL(r.url()).pathname}`);
  });

  // ---- sign in ----
  step("sign-in page");
  await page.goto(url + "/");
  await page.waitForSelector("#access-key");
  await page.screenshot({ path: join(out, "01-sign-in.png") });
  await page.fill("#access-key", env("VIGIL_KEY"));
  await page.fill("#secret-key", "not-the-secret");
  await page.click("#sign-in");
  await waitFor(page, () => document.querySelector("#login-error")?.textContent?.length > 0);
  facts.wrongSecretMessage = await page.textContent("#login-error");
  await page.fill("#secret-key", env("VIGIL_SECRET"));
  await page.click("#sign-in");
  await page.waitForSelector("#streams");
  const cookies = await context.cookies();
  facts.cookie = cookies.map((c) => ({ name: c.name, httpOnly: c.httpOnly, sameSite: c.sameSite }));
  facts.secretInStorage = await page.evaluate(
    (secret) => JSON.stringify({ ...localStorage }).includes(secret) || JSON.stringify({ ...sessionStorage }).includes(secret) || document.cookie.includes(secret),
    env("VIGIL_SECRET"),
  );
  facts.documentCookie = await page.evaluate(() => document.cookie);

  // ---- create a stream ----
  step("create stream");
  await page.press("body", "n");
  await page.waitForSelector("dialog[open] #stream-name");
  await page.fill("#stream-name", stream);
  await page.fill("#stream-retention", "48");
  await page.screenshot({ path: join(out, "02-create-stream.png") });
  await page.click("dialog[open] button[type=submit]");
  await page.waitForSelector(`tr[data-stream="${stream}"]`);

  // ---- push video: a recording placed in the past, then a live camera ----
  step("push archive");
  const archive = put([env("ARCHIVE_FILE"), "--start-time", new Date(Number(env("ARCHIVE_START_MS"))).toISOString()], "archive");
  const a = await archive.done;
  if (a.code !== 0) throw new Error(`vigil put (archive) failed: ${a.err}`);
  step("push live");
  live = put([env("LIVE_FILE"), "--realtime"], "live");
  await waitFor(page, (s) => !!document.querySelector(`tr[data-stream="${s}"] .badge.live`), stream, 30000);
  await waitFor(page, (s) => Number(document.querySelector(`tr[data-stream="${s}"] [data-rate]`)?.dataset.rate) > 0, stream, 30000);
  facts.listRow = await page.textContent(`tr[data-stream="${stream}"]`);
  await page.screenshot({ path: join(out, "03-streams.png") });

  // Phone-sized.
  await page.setViewportSize({ width: 390, height: 844 });
  await page.screenshot({ path: join(out, "04-streams-phone.png") });
  facts.phoneOverflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  await page.setViewportSize({ width: 1280, height: 900 });

  // ---- live view ----
  step("live view");
  await page.press("body", "Enter"); // the selected (only) stream
  await page.waitForSelector("#player-box[data-mode=live]");
  await waitFor(page, () => {
    const v = document.querySelector("#player");
    return v && v.currentTime > 0 && v.videoWidth > 0;
  }, null, 30000);
  const t1 = await page.evaluate(() => document.querySelector("#player").currentTime);
  await page.waitForTimeout(3000);
  facts.live = await page.evaluate(() => {
    const v = document.querySelector("#player");
    const box = document.querySelector("#player-box");
    return { currentTime: v.currentTime, videoWidth: v.videoWidth, videoHeight: v.videoHeight, paused: v.paused, playing: Number(box.dataset.playingTime), now: Date.now() };
  });
  facts.live.advanced = facts.live.currentTime - t1;
  // The picture itself: the test pattern's colour bars, not black.
  facts.live.picture = await page.evaluate(() => {
    const v = document.querySelector("#player");
    const c = document.createElement("canvas");
    c.width = v.videoWidth;
    c.height = v.videoHeight;
    const g = c.getContext("2d");
    g.drawImage(v, 0, 0);
    const d = g.getImageData(0, 0, c.width, c.height).data;
    let sum = 0;
    const colours = new Set();
    for (let i = 0; i < d.length; i += 4 * 97) {
      sum += d[i] + d[i + 1] + d[i + 2];
      colours.add(`${d[i] >> 5},${d[i + 1] >> 5},${d[i + 2] >> 5}`);
    }
    return { mean: sum / (3 * Math.ceil(d.length / (4 * 97))), colours: colours.size };
  });
  await page.screenshot({ path: join(out, "05-live.png") });

  // ---- timeline ----
  step("timeline");
  await waitFor(page, () => document.querySelectorAll(".tl-span").length >= 1);
  facts.spans = await page.$$eval(".tl-span", (els) => els.map((e) => ({ start: Number(e.dataset.start), end: Number(e.dataset.end) })));

  // ---- archive: open at a time (a link), zoom, click a time ----
  step("archive from a link");
  const start = Number(env("ARCHIVE_START_MS"));
  const day = new Date(start).toISOString().slice(0, 10);
  const linkTime = start + 10_000;
  await page.goto(`${url}/#/streams/${stream}?day=${day}&t=${linkTime}`);
  await page.waitForSelector("#player-box[data-mode=archive]");
  await waitFor(page, () => Number(document.querySelector("#player-box").dataset.playingTime) > 0 && !document.querySelector("#player").paused, null, 30000);
  facts.link = { asked: linkTime, playing: await page.evaluate(() => Number(document.querySelector("#player-box").dataset.playingTime)) };

  step("zoom and click");
  for (let i = 0; i < 4; i++) await page.press("body", "+");
  const track = await page.$("#timeline-track");
  const viewOf = () => track.evaluate((t) => ({ start: Number(t.dataset.viewStart), end: Number(t.dataset.viewEnd) }));
  let view = await viewOf();
  const box = await track.boundingBox();
  const target = start + 40_000;
  // Zooming keeps the playhead where it was in the view: at the fraction of the day it plays
  // at, so late in the (UTC) day the target, 30 s after the playhead, can lie past the view's
  // end. Drag the view (a drag pans; it does not seek) until the target is in its middle.
  const len = view.end - view.start;
  if (target < view.start + 0.2 * len || target > view.end - 0.2 * len) {
    const dx = ((target - (view.start + view.end) / 2) / len) * box.width;
    const [x0, y] = [box.x + box.width / 2, box.y + box.height / 2];
    await page.mouse.move(x0, y);
    await page.mouse.down();
    for (let i = 1; i <= 10; i++) await page.mouse.move(x0 - (dx * i) / 10, y);
    await page.mouse.up();
    view = await viewOf();
  }
  facts.view = view;
  const x = box.x + ((target - view.start) / (view.end - view.start)) * box.width;
  const clickedAt = view.start + ((Math.round(x) - box.x) / box.width) * (view.end - view.start);
  await page.mouse.click(Math.round(x), box.y + box.height / 2);
  await waitFor(page, 
    (t) => {
      const p = Number(document.querySelector("#player-box").dataset.playingTime);
      return Math.abs(p - t) < 5000 && !document.querySelector("#player").paused;
    },
    clickedAt,
    30000,
  );
  const p1 = await page.evaluate(() => Number(document.querySelector("#player-box").dataset.playingTime));
  await page.waitForTimeout(2000);
  const p2 = await page.evaluate(() => Number(document.querySelector("#player-box").dataset.playingTime));
  facts.click = { clickedAt, firstPlaying: p1, twoSecondsLater: p2, videoWidth: await page.evaluate(() => document.querySelector("#player").videoWidth) };

  // ---- thumbnails ----
  step("thumbnails");
  await waitFor(page, () => document.querySelectorAll("#thumbs img").length >= 3, null, 30000);
  await waitFor(page, () => [...document.querySelectorAll("#thumbs img")].every((i) => i.complete));
  facts.thumbs = await page.$$eval("#thumbs .thumb", (els) => els.map((e) => ({ time: Number(e.dataset.time), width: e.querySelector("img").naturalWidth })));
  await page.screenshot({ path: join(out, "06-archive.png") });

  // ---- clip ----
  step("clip");
  const clock = (ms) => new Date(ms).toISOString().slice(11, 19);
  facts.clip = { from: start + 20_000, to: start + 30_000 };
  await page.fill("#clip-from", clock(facts.clip.from));
  await page.fill("#clip-to", clock(facts.clip.to));
  const [download] = await Promise.all([page.waitForEvent("download"), page.click("#clip-download")]);
  facts.clip.file = join(out, "clip.mp4");
  facts.clip.suggested = download.suggestedFilename();
  await download.saveAs(facts.clip.file);
  await page.screenshot({ path: join(out, "07-clip.png") });

  // ---- keyboard help ----
  await page.press("body", "?");
  await page.waitForSelector("dialog.help[open]");
  await page.screenshot({ path: join(out, "08-shortcuts.png") });
  await page.press("body", "Escape");

  // ---- H.265 ----
  step("h265");
  const h265 = env("H265_STREAM");
  await page.goto(`${url}/#/streams/${h265}`);
  await page.waitForSelector("#player-notice:not([hidden])");
  await waitFor(page, () => /H\.265/.test(document.querySelector("#player-notice").textContent));
  // A picture, or the reason there is none.
  await waitFor(page, 
    () => document.querySelector("#preview").naturalWidth > 0 || /Pictures unavailable/.test(document.querySelector("#player-notice").textContent),
    null,
    30000,
  );
  facts.h265 = await page.evaluate(() => ({
    notice: document.querySelector("#player-notice").textContent,
    playerHidden: document.querySelector("#player-box").hidden,
    previewWidth: document.querySelector("#preview").naturalWidth,
    mseHevc: MediaSource.isTypeSupported('video/mp4; codecs="hvc1.1.6.L93.B0"'),
  }));
  await page.screenshot({ path: join(out, "09-h265.png") });

  // ---- sign out ----
  step("sign out");
  await page.goto(url + "/");
  await page.click("#sign-out");
  await page.waitForSelector("#access-key");
  facts.afterSignOut = await page.evaluate(async () => (await fetch("/console/api/streams")).status);
  step("done");
} catch (e) {
  // What the page showed when it went wrong, for the person reading the failure.
  try {
    const page = browser.contexts()[0]?.pages()[0];
    if (page) {
      await page.screenshot({ path: join(out, "failure.png") });
      facts.failure = await page.evaluate(() => ({
        url: location.href,
        notice: document.querySelector("#player-notice")?.textContent,
        mode: document.querySelector("#player-box")?.dataset.mode,
        playing: document.querySelector("#player-box")?.dataset.playingTime,
        video: document.querySelector("#player") && {
          currentTime: document.querySelector("#player").currentTime,
          paused: document.querySelector("#player").paused,
          readyState: document.querySelector("#player").readyState,
          error: document.querySelector("#player").error?.message,
        },
      }));
    }
  } catch {}
  process.stderr.write(`console test failed at ${facts.steps.at(-1)}: ${JSON.stringify(facts)}\n`);
  throw e;
} finally {
  if (live) live.p.kill("SIGINT");
  await browser.close();
}
console.log(JSON.stringify(facts));
