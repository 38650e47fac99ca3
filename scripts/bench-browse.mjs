// First render of the browse page, measured in headless Chromium.
//
//   node scripts/bench-browse.mjs BASE_URL [RUNS]
//
// (scripts/bench --browse starts the demo and runs this.) For each view, the
// page is loaded RUNS times in a fresh browser context (empty cache: the
// first visit) and RUNS times again in one context (the browser's cache
// warm), and the time from navigation start to the page's
// `arcolake:first-render` mark is taken: the view drawn with its data.
// Also printed: the JavaScript and total bytes sent (compressed) on a first
// visit. Chromium is launched as the browse check launches it
// (tests/clients/browse/chromium.mjs; npm ci there first).
import { launchChromium } from "../tests/clients/browse/chromium.mjs";

const base = (process.argv[2] || "").replace(/\/$/, "");
const runs = Number(process.argv[3] || 10);
if (!base) {
  console.error("usage: node scripts/bench-browse.mjs BASE_URL [RUNS]");
  process.exit(2);
}
const browser = await launchChromium();

const views = [
  ["collections", "/browse"],
  ["search", "/browse?view=search&collections=sentinel-2-l2a"],
  ["item", null], // filled below with the first item of the catalog
];
const first = await (await fetch(`${base}/search?limit=1`)).json();
const item = first.features?.[0];
views[2][1] = item ? `/browse?view=item&collection=${encodeURIComponent(item.collection)}&item=${encodeURIComponent(item.id)}` : null;

async function firstRender(page, path) {
  await page.goto(base + path);
  await page.waitForFunction(() => document.documentElement.dataset.ready === "true", null, { timeout: 30000 });
  return page.evaluate(() => performance.getEntriesByName("arcolake:first-render")[0]?.startTime);
}

const stats = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p) => s[Math.min(s.length - 1, Math.floor(p * s.length))];
  return `median ${q(0.5).toFixed(0)} ms, p90 ${q(0.9).toFixed(0)} ms, max ${s[s.length - 1].toFixed(0)} ms`;
};

try {
  console.log(`browse page first render, ${runs} loads each (${base})`);
  for (const [name, path] of views) {
    if (!path) continue;
    const cold = [];
    let bytes = null;
    for (let i = 0; i < runs; i += 1) {
      const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
      const page = await context.newPage();
      cold.push(await firstRender(page, path));
      if (!bytes) {
        bytes = await page.evaluate(() => {
          const entries = performance.getEntriesByType("resource").concat(performance.getEntriesByType("navigation"));
          const sum = (list) => list.reduce((n, e) => n + (e.transferSize || e.encodedBodySize || 0), 0);
          return { scripts: sum(entries.filter((e) => /\.js(\?|$)/.test(e.name))), all: sum(entries) };
        });
      }
      await context.close();
    }
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await context.newPage();
    await firstRender(page, path);
    const warm = [];
    for (let i = 0; i < runs; i += 1) warm.push(await firstRender(page, path));
    await context.close();
    console.log(`${name.padEnd(12)} first visit: ${stats(cold)}; cached: ${stats(warm)}; sent on a first visit: ` +
      `${(bytes.all / 1024).toFixed(0)} KiB (JavaScript ${(bytes.scripts / 1024).toFixed(0)} KiB, compressed)`);
  }
} finally {
  await browser.close();
}
