// Usage: node check-page.mjs URL-OR-FILE SCREENSHOT.png [options]
//   --wait-epoch N      wait (up to --timeout seconds) until #epoch-count shows N, recording each value seen
//   --timeout S         seconds for --wait-epoch (default 60)
//   --ready FILE        write FILE once the first draw is done (a test then changes the run the page shows)
//   --window FROM:TO    set the window selector and apply it; records the window chart's data before and after
//   --toggle NAME       uncheck the run NAME's toggle; records the T(e) chart's series names before and after
// Drives Thermo's interactive page (report/index.html or thermo watch's /) in headless Debian Chromium
// and prints one JSON document: console errors, page errors, failed requests, #epoch-count, the tooltip
// read after hovering the T(e) chart, that chart's time axis name and series names, and what the options
// asked for.
import { chromium } from 'playwright-core';
import { pathToFileURL } from 'node:url';
import { writeFileSync } from 'node:fs';

const args = process.argv.slice(2);
const [target, screenshot] = args;
const option = name => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : undefined; };
const url = /^[a-z]+:\/\//.test(target) ? target : pathToFileURL(target).href;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run'],
});
const result = { consoleErrors: [], pageErrors: [], failedRequests: [], loads: 0, epochsSeen: [] };
const sleep = ms => new Promise(r => setTimeout(r, ms));
try {
  const context = await browser.newContext({ viewport: { width: 1300, height: 1000 } });
  const tab = await context.newPage();
  tab.on('console', m => { if (m.type() === 'error') result.consoleErrors.push(m.text()); });
  tab.on('pageerror', e => result.pageErrors.push(String(e)));
  tab.on('requestfailed', r => { if (!r.url().includes('/api/events')) result.failedRequests.push(r.url().slice(0, 200)); });
  tab.on('load', () => { result.loads++; });
  await tab.goto(url, { waitUntil: 'load' });
  const epochCount = () => tab.$eval('#epoch-count', e => e.textContent.trim());
  // the first draw: the charts exist and #epoch-count has a number
  await tab.waitForFunction(() => window.thermoPage && Number(document.getElementById('epoch-count').textContent) > 0
    && window.echarts && echarts.getInstanceByDom(document.getElementById('chart-temperature')), null, { timeout: 30000 });

  const ready = option('--ready');
  if (ready) writeFileSync(ready, await epochCount());
  const wait = option('--wait-epoch');
  if (wait !== undefined) {
    const deadline = Date.now() + 1000 * Number(option('--timeout') ?? 60);
    for (;;) {
      const seen = await epochCount();
      if (result.epochsSeen[result.epochsSeen.length - 1] !== seen) result.epochsSeen.push(seen);
      if (Number(seen) >= Number(wait) || Date.now() > deadline) break;
      await sleep(250);
    }
  }
  await sleep(700);   // one throttled redraw after the last data
  result.epochCount = await epochCount();
  result.runErrors = await tab.$$eval('#run-errors li', items => items.map(i => i.textContent));
  result.runs = await tab.$$eval('#runs label', labels => labels.map(l => l.querySelector('.name').textContent));

  // hover: the middle of the T(e) chart's plot area; the axis tooltip lists each series' value there
  const box = await tab.$eval('#chart-temperature', e => { const r = e.getBoundingClientRect(); return { x: r.x, y: r.y, w: r.width, h: r.height }; });
  await tab.mouse.move(box.x + 64 + (box.w - 82) * 0.5, box.y + 52 + (box.h - 114) * 0.5, { steps: 4 });
  await tab.waitForFunction(() => [...document.querySelectorAll('#chart-temperature .thermo-tooltip')].some(t => t.offsetParent !== null && /\d/.test(t.textContent)), null, { timeout: 5000 }).catch(() => { });
  result.tooltip = await tab.$$eval('#chart-temperature .thermo-tooltip', ts => ts.filter(t => t.offsetParent !== null).map(t => t.textContent).join('\n'));
  await tab.mouse.move(2, 2);

  result.temperatureAxis = await tab.evaluate(() => echarts.getInstanceByDom(document.getElementById('chart-temperature')).getOption().xAxis[0].name);
  result.temperatureSeries = await tab.evaluate(() => (echarts.getInstanceByDom(document.getElementById('chart-temperature')).getOption().series || []).map(s => s.name));

  const seriesOf = id => tab.evaluate(id => (echarts.getInstanceByDom(document.getElementById(id)).getOption().series || []).map(s => ({ name: s.name, data: s.data })), id);
  const window = option('--window');
  if (window) {
    const [from, to] = window.split(':');
    result.windowBefore = await seriesOf('chart-window');
    await tab.fill('#window-from', from);
    await tab.fill('#window-to', to);
    await tab.click('#window-apply');
    await tab.waitForFunction(() => window.thermoPage.pendingWindows() === 0, null, { timeout: 30000 });
    await sleep(1200);
    result.windowAfter = await seriesOf('chart-window');
    result.windowNote = await tab.$eval('#window-note', e => e.textContent);
  }
  const toggle = option('--toggle');
  if (toggle) {
    result.seriesBefore = (await seriesOf('chart-temperature')).map(s => s.name);
    await tab.click(`#runs label:has(.name:text-is("${toggle}")) input`);
    await sleep(1200);
    result.seriesAfter = (await seriesOf('chart-temperature')).map(s => s.name);
    result.lossSeriesAfter = (await seriesOf('chart-loss')).map(s => s.name);
  }
  await tab.screenshot({ path: screenshot, fullPage: true });
} catch (e) {
  result.failure = String(e);
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
