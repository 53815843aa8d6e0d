// Usage: node check-report.mjs PAGE.html SCREENSHOT.png
// Prints one JSON document: console errors, page errors, failed requests, images and broken images.
import { chromium } from 'playwright-core';
import { pathToFileURL } from 'node:url';

const [page, screenshot] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run'],
});
const result = { consoleErrors: [], pageErrors: [], failedRequests: [], images: 0, brokenImages: [] };
try {
  const context = await browser.newContext({ viewport: { width: 1100, height: 900 } });
  const tab = await context.newPage();
  tab.on('console', m => { if (m.type() === 'error') result.consoleErrors.push(m.text()); });
  tab.on('pageerror', e => result.pageErrors.push(String(e)));
  tab.on('requestfailed', r => result.failedRequests.push(r.url().slice(0, 200)));
  await tab.goto(pathToFileURL(page).href, { waitUntil: 'load' });
  const images = await tab.$$eval('img', imgs => imgs.map(i => ({ file: i.dataset.file ?? i.src.slice(0, 40), ok: i.complete && i.naturalWidth > 0 })));
  result.images = images.length;
  result.brokenImages = images.filter(i => !i.ok).map(i => i.file);
  result.title = await tab.title();
  await tab.screenshot({ path: screenshot, fullPage: false });
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
