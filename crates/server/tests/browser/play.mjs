// Plays an HLS URL with hls.js (lowLatencyMode) in headless Chromium and prints what happened
// as one JSON line on stdout. Driven by crates/server/tests/api/llhls.rs; the dependencies are
// installed by scripts/install-test-deps.sh (`npm ci` here, Chromium from apt).
//
//   node play.mjs <master playlist URL> <seconds to play>
//
// The player page is served on the server's own origin by request interception (the playback
// GETs need no CORS then), and hls.js is injected from node_modules.
import { createRequire } from 'node:module';
import { chromium } from 'playwright-core';

const require = createRequire(import.meta.url);
const [url, seconds] = process.argv.slice(2);
if (!url || !seconds) {
  console.error('usage: node play.mjs <url> <seconds>');
  process.exit(2);
}
const executablePath = process.env.VIGIL_CHROMIUM || '/usr/bin/chromium';
const origin = new URL(url).origin;

const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: ['--no-sandbox', '--autoplay-policy=no-user-gesture-required', '--mute-audio'],
});
try {
  const page = await browser.newPage();
  const console_lines = [];
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') console_lines.push(`${m.type()}: ${m.text()}`);
  });
  const failed = [];
  page.on('response', (r) => {
    if (r.status() >= 400) {
      const u = new URL(r.url());
      u.searchParams.delete('SessionToken');
      failed.push(`${r.status()} ${u.pathname.split('/').pop()}${u.search}`);
    }
  });
  await page.route(`${origin}/__vigil_test__/player.html`, (route) =>
    route.fulfill({
      contentType: 'text/html',
      body: '<!doctype html><html><head><link rel="icon" href="data:,"></head><body><video id="v" muted playsinline></video></body></html>',
    }),
  );
  await page.goto(`${origin}/__vigil_test__/player.html`);
  await page.addScriptTag({ path: require.resolve('hls.js/dist/hls.min.js') });
  const result = await page.evaluate(
    async ({ url, seconds }) => {
      performance.setResourceTimingBufferSize(100000);
      const video = document.getElementById('v');
      const s = {
        hlsVersion: Hls.version,
        mseH264: MediaSource.isTypeSupported('video/mp4; codecs="avc1.42c01e"'),
        partsLoaded: 0,
        fragmentsLoaded: 0,
        levelsLoaded: 0,
        canBlockReload: false,
        partTarget: null,
        maxPartsListed: 0,
        errors: [],
        fatal: null,
        timeline: [],
      };
      if (!Hls.isSupported()) {
        s.fatal = 'Hls.isSupported() is false';
        return s;
      }
      const hls = new Hls({ lowLatencyMode: true });
      hls.on(Hls.Events.ERROR, (_, d) => {
        s.errors.push(`${d.details}${d.fatal ? ' (fatal)' : ''}`);
        if (d.fatal) s.fatal = d.details;
      });
      hls.on(Hls.Events.FRAG_LOADED, (_, d) => {
        if (d.part) s.partsLoaded++;
        else s.fragmentsLoaded++;
      });
      hls.on(Hls.Events.LEVEL_LOADED, (_, d) => {
        s.levelsLoaded++;
        s.canBlockReload = s.canBlockReload || d.details.canBlockReload;
        s.partTarget = d.details.partTarget;
        s.maxPartsListed = Math.max(s.maxPartsListed, (d.details.partList || []).length);
      });
      hls.loadSource(url);
      hls.attachMedia(video);
      video.play().catch((e) => s.errors.push(`play(): ${e}`));
      const start = performance.now();
      while (performance.now() - start < seconds * 1000 && !s.fatal) {
        await new Promise((r) => setTimeout(r, 250));
        s.timeline.push([Math.round(performance.now() - start), video.currentTime]);
      }
      s.currentTime = video.currentTime;
      s.videoWidth = video.videoWidth;
      s.videoHeight = video.videoHeight;
      s.latency = hls.latency;
      s.targetLatency = hls.targetLatency;
      const resources = performance.getEntriesByType('resource').map((e) => e.name);
      s.blockingReloads = resources.filter((n) => n.includes('_HLS_msn=')).length;
      s.partRequests = resources.filter((n) => n.includes('getMP4MediaPart.mp4')).length;
      s.segmentRequests = resources.filter((n) => n.includes('getMP4MediaFragment.mp4')).length;
      hls.destroy();
      return s;
    },
    { url, seconds: Number(seconds) },
  );
  result.console = console_lines.slice(0, 20);
  result.failedRequests = failed.slice(0, 20);
  console.log(JSON.stringify(result));
} finally {
  await browser.close();
}
