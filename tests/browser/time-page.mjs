// Usage: node time-page.mjs URL-OR-FILE [options]
//   --epoch N      the last epoch the page must show in #epoch-count (required)
//   --loads K      loads to time (default 3)
//   --timeout S    seconds each load may take (default 120)
// Times Thermo's interactive page (report/index.html or thermo watch's /) in headless Debian Chromium:
// for each load, the milliseconds from navigation (the page's performance time origin) to the first
// animation frame at which #epoch-count shows N and every chart is drawn: the six charts have a canvas,
// every shown run's window has arrived and the window chart holds its three bars per run (drawn in the
// same redraw as the others), the training charts two lines per run and the heat map its cells.
// One browser for all loads (so the first load also pays for a just-started browser); each load in a
// fresh context, so nothing is cached between loads. Prints one JSON document: each load's figures
// (drawn, DOMContentLoaded and load event ends, in ms), their median, and any page errors.
import { chromium } from 'playwright-core';
import { pathToFileURL } from 'node:url';

const args = process.argv.slice(2);
const target = args[0];
const option = name => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : undefined; };
const url = /^[a-z]+:\/\//.test(target) ? target : pathToFileURL(target).href;
const epoch = Number(option('--epoch'));
const loads = Number(option('--loads') ?? 3);
const timeout = 1000 * Number(option('--timeout') ?? 120);
if (!target || !Number.isInteger(epoch)) { console.error('usage: node time-page.mjs URL-OR-FILE --epoch N [--loads K] [--timeout S]'); process.exit(2); }

// Installed before the page's own scripts: checks once per animation frame and records the time the page
// was first complete in window.__thermoDrawnAt.
function watchForDrawn(epoch) {
  const ids = ['chart-loss', 'chart-accuracy', 'chart-temperature', 'chart-window', 'chart-msd', 'chart-heat'];
  const seriesOf = id => window.echarts.getInstanceByDom(document.getElementById(id)).getOption().series || [];
  const drawn = () => {
    const page = window.thermoPage;
    if (!page || !window.echarts) return false;
    if (Number(document.getElementById('epoch-count')?.textContent) !== epoch) return false;
    if (page.pendingWindows() !== 0) return false;
    const runs = page.state.runs.filter(r => r.status === 'ok' && r.payload && r.visible);
    if (!runs.length || runs.some(r => !page.state.windows.get(r.id)?.payload)) return false;
    for (const id of ids) {
      const element = document.getElementById(id);
      if (!window.echarts.getInstanceByDom(element) || !element.querySelector('canvas')) return false;
    }
    // the window chart first: it is small, and it is drawn in the same redraw as the others
    if (seriesOf('chart-window').length !== 3 * runs.length) return false;
    if (seriesOf('chart-loss').length !== 2 * runs.length || seriesOf('chart-accuracy').length !== 2 * runs.length) return false;
    if (seriesOf('chart-temperature').length < runs.length) return false;
    if (!(seriesOf('chart-heat')[0]?.data?.length > 0)) return false;
    const msd = runs.filter(r => page.state.windows.get(r.id).payload.msd?.lag).length;
    return seriesOf('chart-msd').length >= msd;
  };
  const check = () => {
    if (window.__thermoDrawnAt !== undefined) return;
    let done = false;
    try { done = drawn(); } catch (_) { /* not yet */ }
    if (done) window.__thermoDrawnAt = performance.now();
    else requestAnimationFrame(check);
  };
  requestAnimationFrame(check);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run'],
});
const result = { url: url.replace(/token=[^&]*/, 'token=…'), epoch, loads: [], pageErrors: [], consoleErrors: [] };
try {
  for (let i = 0; i < loads; i++) {
    const context = await browser.newContext({ viewport: { width: 1300, height: 1000 } });
    try {
      await context.addInitScript(watchForDrawn, epoch);
      const tab = await context.newPage();
      tab.on('console', m => { if (m.type() === 'error') result.consoleErrors.push(m.text()); });
      tab.on('pageerror', e => result.pageErrors.push(String(e)));
      await tab.goto(url, { waitUntil: 'load', timeout });
      await tab.waitForFunction(() => window.__thermoDrawnAt !== undefined, null, { timeout, polling: 100 });
      result.loads.push(await tab.evaluate(() => {
        const nav = performance.getEntriesByType('navigation')[0];
        return {
          drawnMs: Math.round(window.__thermoDrawnAt),
          domContentLoadedMs: Math.round(nav.domContentLoadedEventEnd),
          loadMs: Math.round(nav.loadEventEnd),
          runs: window.thermoPage.state.runs.length,
          epochCount: document.getElementById('epoch-count').textContent,
        };
      }));
    } finally {
      await context.close();
    }
  }
  const sorted = result.loads.map(l => l.drawnMs).sort((a, b) => a - b);
  const n = sorted.length;
  result.medianMs = n % 2 ? sorted[(n - 1) / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
} catch (e) {
  result.failure = String(e);
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
