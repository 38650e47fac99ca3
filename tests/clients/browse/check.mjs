// End-to-end check of arcolake's browse page (/browse) in headless Chromium.
//
//   node check.mjs BASE_URL API_KEY SCREENSHOT_DIR [ADMIN_TOKEN]
//
// BASE_URL        the server, e.g. http://127.0.0.1:PORT (a trailing slash is dropped)
// API_KEY         an arcolake API key (alk_...) granting the restricted collection
//                 `lake-secret`
// SCREENSHOT_DIR  where a PNG of each view is written (created when missing)
// ADMIN_TOKEN     optional: the server's admin token, to add (and remove) an
//                 item with a thumbnail for check 8b
//
// The server serves the demo catalog (fixtures/stac: sentinel-2-l2a, landsat-c2-l2)
// and the crawled fixtures/ingest as lake-local (public, streamed through the
// server), lake-s3 and lake-secret (restricted), as scripts/test sets it up.
//
// The page is driven only through its DOM contract: element ids and classes,
// `document.documentElement.dataset.ready` / `.view` (set once a view has rendered)
// and the test hooks of `window.arcolake` (idle, fitTo, renderedFootprintIds,
// selectAtLonLat). Every value shown is compared with what the API answers to the
// same request, fetched here with Node's fetch.
//
// Checks, in order:
//    1. /browse loads (view collections); GET / redirects browsers (303) to
//       /browse and answers JSON clients with the landing page
//    2. collection search by text lists what GET /collections?q= lists;
//       the collection view of one of them (title, summaries, queryables)
//    3. item search (collection, bbox, datetime, CQL2 filter, limit) shows
//       numberMatched and the first page of GET /search
//    4. the map renders the footprints of the results; hovering a result
//       highlights it; a click on the map selects an item under the point
//    5. paging follows the API's `next` link; the page is in the address
//       (a fresh load of it, Back and Forward); back to the first page
//    6. the URL is a permalink (fresh load: same form, same results);
//       browser back and forward restore the views
//    7. an invalid CQL2 filter shows the server's error description
//    8. the item view: properties, assets, snippets, raw JSON; the asset's
//       signed link streams the fixture's bytes, and ranges of them
//   8b. (with ADMIN_TOKEN) a result's thumbnail is a signed URL of this
//       server that gives the file
//    9. the API key dialog shows the restricted collection; the key is sent
//       as a header and never appears in a URL
//   10. axe-core finds no serious or critical violation in the main views
//   11. the pages requested nothing from any other origin
// and no page threw or logged a JavaScript error.
//
// Prints one line per check passed and the path of each screenshot.
// Exit status: 0 all passed, 1 a check failed (the first one is reported),
// 2 usage error.

import {mkdir, readFile} from 'node:fs/promises';
import {createRequire} from 'node:module';
import path from 'node:path';
import {fileURLToPath} from 'node:url';

import {launchChromium} from './chromium.mjs';

const TIMEOUT_MS = 15_000;
const VIEWPORT = {width: 1280, height: 800};
const BROWSER_ACCEPT = 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8';
const FIXTURES = fileURLToPath(new URL('../../../fixtures/ingest/', import.meta.url));

// The item search of checks 3 to 7, on the demo catalog (fixtures/stac): the
// sentinel-2-l2a tiles 06GCM and 09DHD (8 items in the box), in 2017-2021
// (6 of them), with less than 60 % clouds: 5 items, two pages of 3.
const SEARCH = {
  collection: 'sentinel-2-l2a',
  bbox: [-150, -55, -125, -20],
  start: '2017-01-01T00:00', // <input type=datetime-local> values, UTC (the
  end: '2021-12-31T23:59', // browser runs with timezoneId UTC)
  filter: 'eo:cloud_cover < 60',
  limit: 3,
};
const BAD_FILTER = 'eo:cloud_cover <<< 3';
const COLLECTION_QUERY = 'sentinel';
// The COG of lake-local whose item the item view shows (any COG of
// fixtures/ingest/manifest.json when it is missing).
const PREFERRED_COG = 'utm_uint16_cog.tif';
const SNIPPET_TOOLS = ['pystac-client', 'xarray', 'rasterio', 'geopandas', 'duckdb', 'qgis'];

// --- reporting ---------------------------------------------------------------

class CheckFailed extends Error {}

function fail(message) {
  throw new CheckFailed(message);
}

function ok(message) {
  console.log(`ok  ${message}`);
}

/** A value for messages: JSON, cut short. */
function fmt(value, max = 400) {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

function expect(condition, message) {
  if (!condition) {
    fail(message);
  }
}

/** Deep equality (as JSON) of `got` and `want`; prints the check when it holds. */
function expectEqual(label, got, want) {
  if (JSON.stringify(got) !== JSON.stringify(want)) {
    fail(`${label}: expected ${fmt(want)}, found ${fmt(got)}`);
  }
  ok(`${label}: ${fmt(got, 160)}`);
}

function usage(message) {
  console.error(`error: ${message}`);
  console.error('usage: node check.mjs BASE_URL API_KEY SCREENSHOT_DIR [ADMIN_TOKEN]');
  process.exit(2);
}

// --- arguments ----------------------------------------------------------------

const args = process.argv.slice(2);
if (args.length !== 3 && args.length !== 4) {
  usage(`expected 3 or 4 arguments, got ${args.length}`);
}
const BASE = args[0].replace(/\/$/, '');
const API_KEY = args[1];
const SCREENSHOT_DIR = path.resolve(args[2]);
// With the admin token, an item with a thumbnail is added to lake-local for
// check 8b (and removed after it).
const ADMIN_TOKEN = args[3] ?? '';
let ORIGIN;
try {
  ORIGIN = new URL(BASE).origin;
} catch {
  usage(`not an absolute URL: ${args[0]}`);
}
if (!API_KEY) {
  usage('API_KEY is empty');
}

// --- the API, from Node -------------------------------------------------------

/** BASE + path with query parameters (skipping empty ones). */
function apiUrl(pathname, params = {}) {
  const url = new URL(BASE + pathname);
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== '') {
      url.searchParams.set(name, String(value));
    }
  }
  return url.href;
}

/** GET a URL; `{status, headers, body}` (body: Buffer). HTTP errors are answers too. */
async function get(url, {headers = {}, redirect = 'follow'} = {}) {
  let response;
  try {
    response = await fetch(url, {headers, redirect, signal: AbortSignal.timeout(TIMEOUT_MS)});
  } catch (err) {
    fail(`GET ${url}: ${err?.cause ?? err}`);
  }
  const body = Buffer.from(await response.arrayBuffer());
  return {status: response.status, headers: response.headers, body};
}

/** GET a JSON document, expecting `status`. */
async function getJson(url, {headers = {}, status = 200} = {}) {
  const answer = await get(url, {headers: {Accept: 'application/json', ...headers}});
  if (answer.status !== status) {
    fail(`GET ${url}: expected status ${status}, got ${answer.status}: ${answer.body.toString('utf8', 0, 300)}`);
  }
  try {
    return JSON.parse(answer.body.toString('utf8'));
  } catch {
    fail(`GET ${url}: not JSON: ${answer.body.toString('utf8', 0, 300)}`);
  }
}

const nextLink = (doc) => (doc.links ?? []).find((l) => l.rel === 'next')?.href ?? null;

/** Every page of a paged document, following `next` links. */
async function allPages(url, options) {
  const pages = [];
  for (let href = url; href && pages.length < 50; ) {
    const doc = await getJson(href, options);
    pages.push(doc);
    href = nextLink(doc);
  }
  return pages;
}

const bearer = (key) => ({Authorization: `Bearer ${key}`});

/** The GET /search parameters of the browse page's search form values. */
function searchParams({filter = SEARCH.filter, sortby = ''} = {}) {
  return {
    collections: SEARCH.collection,
    bbox: SEARCH.bbox.join(','),
    datetime: `${SEARCH.start}:00Z/${SEARCH.end}:00Z`,
    filter,
    'filter-lang': 'cql2-text',
    sortby,
    limit: SEARCH.limit,
  };
}

// --- geometry -------------------------------------------------------------------

/** [w, s, e, n] of a 2D or 3D bbox. */
const bbox2d = (b) => (b.length === 6 ? [b[0], b[1], b[3], b[4]] : b);

/** The centre of a bbox (one crossing the antimeridian too). */
function bboxCentre(bbox) {
  const [w, s, e, n] = bbox2d(bbox);
  let lon = w + (e >= w ? e - w : e - w + 360) / 2;
  if (lon > 180) {
    lon -= 360;
  }
  return [lon, (s + n) / 2];
}

/** Whether `inner` lies in `outer` (neither crossing the antimeridian). */
function bboxWithin(inner, outer) {
  const [w, s, e, n] = bbox2d(inner);
  const [ow, os, oe, on] = bbox2d(outer);
  return w <= e && w >= ow && e <= oe && s >= os && n <= on;
}

function ringContains(ring, [x, y]) {
  let inside = false;
  for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
    const [xi, yi] = ring[i];
    const [xj, yj] = ring[j];
    if (yi > y !== yj > y && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) {
      inside = !inside;
    }
  }
  return inside;
}

/** Whether a GeoJSON (Multi)Polygon contains a lon/lat point. */
function geometryContains(geometry, point) {
  const polygonContains = (rings) =>
    ringContains(rings[0], point) && !rings.slice(1).some((hole) => ringContains(hole, point));
  switch (geometry?.type) {
    case 'Polygon':
      return polygonContains(geometry.coordinates);
    case 'MultiPolygon':
      return geometry.coordinates.some(polygonContains);
    default:
      return false;
  }
}

// --- the browser -------------------------------------------------------------------

// Everything the pages did, over the whole run.
const requests = []; // {url, label, request}
const visited = []; // main-frame URLs, pushState ones included
const jsErrors = [];
// A predicate of console errors expected at the moment (the 400 of check 7).
let expectedConsoleError = null;

/** A new page of `context`, recorded under `label`. */
async function openPage(context, label) {
  const page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT_MS);
  page.setDefaultNavigationTimeout(TIMEOUT_MS);
  page.on('request', (request) => requests.push({url: request.url(), label, request}));
  page.on('framenavigated', (frame) => {
    if (frame === page.mainFrame()) {
      visited.push(frame.url());
    }
  });
  page.on('pageerror', (err) => jsErrors.push(`${label}: uncaught ${err.stack ?? err}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error' && !expectedConsoleError?.(msg)) {
      const {url, lineNumber} = msg.location();
      jsErrors.push(`${label}: console error: ${msg.text()}${url ? ` (${url}:${lineNumber})` : ''}`);
    }
  });
  return page;
}

function expectNoJsErrors(when) {
  if (jsErrors.length) {
    fail(`JavaScript errors ${when}:\n  ${jsErrors.join('\n  ')}`);
  }
}

/** Resolves when the page has no API request pending (window.arcolake.idle()). */
async function idle(page) {
  try {
    await page.evaluate(
      (ms) =>
        Promise.race([
          window.arcolake.idle(),
          new Promise((_, reject) => setTimeout(() => reject(new Error(`not idle after ${ms} ms`)), ms)),
        ]),
      TIMEOUT_MS,
    );
  } catch (err) {
    fail(`window.arcolake.idle() on ${page.url()}: ${err.message.split('\n')[0]}`);
  }
}

/**
 * Waits until the page is ready with `view` (null: any view). With `fresh`,
 * only a load started after armLoad() counts: `data-ready` must have changed
 * since (or the document been replaced by a navigation).
 */
async function waitReady(page, view, what, {fresh = false} = {}) {
  try {
    await page.waitForFunction(
      ([wanted, fresh]) => {
        const {ready, view} = document.documentElement.dataset;
        const loaded = !fresh || (window.__browseCheckLoadSeen ?? true);
        return loaded && ready === 'true' && (wanted === null || view === wanted);
      },
      [view, fresh],
      {timeout: TIMEOUT_MS},
    );
  } catch (err) {
    const state = await page.evaluate(() => ({...document.documentElement.dataset})).catch(() => ({}));
    fail(
      `${what}: the page was not ready with view ${view ?? '(any)'} within ${TIMEOUT_MS} ms ` +
        `(data-ready=${state.ready}, data-view=${state.view}, url ${page.url()}): ${err.message.split('\n')[0]}`,
    );
  }
  await idle(page);
}

/** Notes, in the page, any change of `data-ready` from now on (see waitReady). */
async function armLoad(page) {
  await page.evaluate(() => {
    window.__browseCheckLoadSeen = false;
    window.__browseCheckObserver?.disconnect();
    window.__browseCheckObserver = new MutationObserver((records) => {
      const ready = document.documentElement.dataset.ready;
      if (records.some((r) => r.oldValue !== 'true' || ready !== 'true')) {
        window.__browseCheckLoadSeen = true;
      }
    });
    window.__browseCheckObserver.observe(document.documentElement, {
      attributes: true,
      attributeFilter: ['data-ready'],
      attributeOldValue: true,
    });
  });
}

/** Runs `action` and waits for the load it starts to finish with `view`. */
async function afterLoad(page, view, what, action) {
  await armLoad(page);
  await action();
  await waitReady(page, view, what, {fresh: true});
}

const currentView = (page) => page.evaluate(() => document.documentElement.dataset.view);

async function screenshot(page, name) {
  const file = path.join(SCREENSHOT_DIR, name);
  await page.screenshot({path: file});
  console.log(`screenshot: ${file}`);
}

/** The results listed: [{id, collection}], in page order. */
const listedResults = (page) =>
  page.$$eval('#result-list li.result', (items) =>
    items.map((li) => ({id: li.dataset.id, collection: li.dataset.collection})),
  );

const resultsOf = (doc) => doc.features.map((f) => ({id: f.id, collection: f.collection}));

const matchedShown = (page) =>
  page.$eval('#search-matched', (el) => Number(el.getAttribute('data-matched')));

const queryParam = (url, name) => new URL(url).searchParams.get(name);

/** Whether a URL carries the API key, plainly or percent-encoded. */
function carriesKey(url) {
  let decoded = url;
  try {
    decoded = decodeURIComponent(url);
  } catch {
    // a malformed escape: the raw URL is checked
  }
  return url.includes(API_KEY) || decoded.includes(API_KEY);
}

// --- the checks ---------------------------------------------------------------------

async function checkLanding(page) {
  console.log('# 1. /browse and the landing page');
  await page.goto(`${BASE}/browse`);
  await waitReady(page, 'collections', 'loading /browse');
  ok('/browse is ready with view collections');

  const html = await get(`${BASE}/`, {headers: {Accept: BROWSER_ACCEPT}, redirect: 'manual'});
  expectEqual('GET / with a browser Accept header: status', html.status, 303);
  const location = html.headers.get('location');
  const target = location && new URL(location, `${BASE}/`);
  expect(
    target && target.origin === ORIGIN && target.pathname === '/browse',
    `GET / with a browser Accept header: expected Location /browse, found ${fmt(location)}`,
  );
  ok(`GET / with a browser Accept header redirects to ${location}`);

  const landing = await getJson(`${BASE}/`, {headers: {Accept: 'application/json'}});
  expect(
    Array.isArray(landing.conformsTo) && landing.conformsTo.length > 0,
    `GET / with Accept: application/json: expected a landing page with conformsTo, found ${fmt(landing)}`,
  );
  ok(`GET / with Accept: application/json is the landing page (${landing.conformsTo.length} conformance classes)`);
}

async function checkCollectionSearch(page) {
  console.log('# 2. collection search and the collection view');
  await page.fill('#collection-q', COLLECTION_QUERY);
  await page.fill('#collection-start', '');
  await page.fill('#collection-end', '');
  await page.setChecked('#collection-in-view', false);
  await afterLoad(page, 'collections', 'submitting the collection search', () => page.click('#collection-submit'));

  const pages = await allPages(apiUrl('/collections', {q: COLLECTION_QUERY}));
  const want = pages.flatMap((p) => p.collections.map((c) => c.id));
  expect(want.includes(SEARCH.collection), `GET /collections?q=${COLLECTION_QUERY} lacks ${SEARCH.collection}: ${fmt(want)}`);
  const listed = await page.$$eval('#collection-list li.collection-card', (cards) => cards.map((c) => c.dataset.id));
  expectEqual(`collections listed for q=${COLLECTION_QUERY} (as GET /collections?q=${COLLECTION_QUERY})`, listed, want);
  expect(!listed.includes('lake-secret'), `lake-secret is listed without a key: ${fmt(listed)}`);
  ok('lake-secret is not listed without a key');
  if (typeof pages[0].numberMatched === 'number') {
    const shown = await page.$eval('#collection-count', (el) => Number(el.getAttribute('data-matched')));
    expectEqual('#collection-count data-matched (as numberMatched)', shown, pages[0].numberMatched);
  }
  expectEqual('the collection search is in the URL (q)', queryParam(page.url(), 'q'), COLLECTION_QUERY);

  const card = page.locator(`#collection-list li.collection-card[data-id="${SEARCH.collection}"]`);
  const parts = await card.evaluate((li) => ({
    h3: li.querySelector('h3')?.textContent.trim() ?? null,
    open: Boolean(li.querySelector('a.collection-open')),
    items: Boolean(li.querySelector('a.collection-items')),
  }));
  expect(
    parts.h3 && parts.open && parts.items,
    `the card of ${SEARCH.collection} lacks an h3, a.collection-open or a.collection-items: ${fmt(parts)}`,
  );
  ok(`the card of ${SEARCH.collection} has its title (${fmt(parts.h3)}) and both links`);
  await screenshot(page, 'collections.png');

  // The collection view, from the card.
  const collection = await getJson(apiUrl(`/collections/${SEARCH.collection}`));
  const queryables = await getJson(apiUrl(`/collections/${SEARCH.collection}/queryables`));
  await afterLoad(page, 'collection', `opening ${SEARCH.collection} from its card`, () =>
    card.locator('a.collection-open').click(),
  );
  expectEqual('the collection view is in the URL (collection)', queryParam(page.url(), 'collection'), SEARCH.collection);
  const title = (await page.textContent('#collection-title')).trim();
  const wantTitle = collection.title ?? collection.id;
  expect(title.includes(wantTitle), `#collection-title: expected it to show ${fmt(wantTitle)}, found ${fmt(title)}`);
  ok(`#collection-title shows ${fmt(wantTitle)}`);
  if (Object.keys(collection.summaries ?? {}).length) {
    const rows = await page.locator('#collection-summaries tr').count();
    expect(rows > 0, `#collection-summaries has no row, the collection has summaries ${fmt(Object.keys(collection.summaries))}`);
    ok(`#collection-summaries has ${rows} rows`);
  }
  const names = await page.$$eval('#collection-queryables li[data-name]', (items) => items.map((li) => li.dataset.name));
  expect('eo:cloud_cover' in (queryables.properties ?? {}), `the API's queryables lack eo:cloud_cover: ${fmt(queryables)}`);
  expect(names.includes('eo:cloud_cover'), `#collection-queryables lacks eo:cloud_cover: ${fmt(names)}`);
  ok(`#collection-queryables lists ${names.length} queryables, eo:cloud_cover among them`);
  const searchLink = await page.$eval('#collection-search-items', (a) => a.href);
  const linked = new URL(searchLink);
  expect(
    linked.pathname === '/browse' &&
      linked.searchParams.get('view') === 'search' &&
      (linked.searchParams.get('collections') ?? '').split(',').includes(SEARCH.collection),
    `#collection-search-items: expected a link to /browse?view=search&collections=${SEARCH.collection}, found ${searchLink}`,
  );
  ok(`#collection-search-items links to the search of ${SEARCH.collection}`);
  await screenshot(page, 'collection.png');
}

/** Fills the search form with SEARCH (and `filter`) and submits it. */
async function submitSearch(page, filter) {
  const boxes = page.locator('#search-collections input[name=collections]');
  const values = await boxes.evaluateAll((inputs) => inputs.map((i) => i.value));
  expect(values.includes(SEARCH.collection), `#search-collections has no checkbox for ${SEARCH.collection}: ${fmt(values)}`);
  for (const value of values) {
    await page.setChecked(`#search-collections input[name=collections][value="${value}"]`, value === SEARCH.collection);
  }
  await page.fill('#search-bbox', SEARCH.bbox.join(','));
  await page.fill('#search-start', SEARCH.start);
  await page.fill('#search-end', SEARCH.end);
  await page.fill('#search-filter', filter);
  // Newest first, when offered: a definite order for the pages compared.
  const sortings = await page.$$eval('#search-sortby option', (options) => options.map((o) => o.value));
  if (sortings.includes('-properties.datetime')) {
    await page.selectOption('#search-sortby', '-properties.datetime');
  }
  await page.fill('#search-limit', String(SEARCH.limit));
  await page.click('#search-submit');
}

async function checkSearch(page) {
  console.log('# 3. item search');
  await afterLoad(page, 'search', 'following #nav-search', () => page.click('#nav-search'));
  await afterLoad(page, 'search', 'submitting the search form', () => submitSearch(page, SEARCH.filter));

  // The same search, asked of the API: the sort order is the form's.
  const sortby = await page.inputValue('#search-sortby');
  const first = await getJson(apiUrl('/search', searchParams({sortby})));
  const unfiltered = await getJson(apiUrl('/search', searchParams({sortby, filter: ''})));
  expect(
    first.numberMatched > SEARCH.limit && first.numberMatched < unfiltered.numberMatched && nextLink(first),
    `the test search should match more than ${SEARCH.limit} items (two pages) and fewer than without its filter: ` +
      `${first.numberMatched} with the filter, ${unfiltered.numberMatched} without`,
  );

  expectEqual('#search-matched data-matched (as GET /search numberMatched)', await matchedShown(page), first.numberMatched);
  expectEqual('results of the first page (as GET /search)', await listedResults(page), resultsOf(first));
  expect(await page.locator('#search-error').isHidden(), `#search-error is shown after a valid search: ${fmt(await page.textContent('#search-error'))}`);
  ok('#search-error is hidden after a valid search');
  expect(
    (await page.locator('#next-page').isVisible()) && (await page.locator('#next-page').isEnabled()),
    '#next-page is hidden or disabled although the API has a next page',
  );
  ok('#next-page is offered');
  const url = page.url();
  expectEqual('the search is in the URL (view, collections, filter)', [
    queryParam(url, 'view'),
    queryParam(url, 'collections'),
    queryParam(url, 'filter'),
  ], ['search', SEARCH.collection, SEARCH.filter]);
  await screenshot(page, 'search.png');
  return {sortby, first};
}

async function checkMap(page, first, matched) {
  console.log('# 4. the map');
  await page.evaluate((bbox) => window.arcolake.fitTo(bbox), SEARCH.bbox);
  const rendered = await page.evaluate(() => window.arcolake.renderedFootprintIds());
  expect(Array.isArray(rendered), `renderedFootprintIds() did not give an array: ${fmt(rendered)}`);
  const inView = first.features.filter((f) => f.bbox && bboxWithin(f.bbox, SEARCH.bbox)).map((f) => f.id);
  expect(inView.length > 0, `no result of the first page lies in ${SEARCH.bbox}: ${fmt(first.features.map((f) => f.bbox))}`);
  const missing = inView.filter((id) => !rendered.map(String).includes(id));
  expect(
    missing.length === 0,
    `footprints missing from the map after fitTo(${SEARCH.bbox}): expected ${fmt(inView)} among the rendered, ` +
      `missing ${fmt(missing)}; rendered ${fmt(rendered)}`,
  );
  ok(`the map renders the footprints of the ${inView.length} results in view (${rendered.length} rendered)`);

  // Hovering the first result highlights it.
  const firstId = first.features[0].id;
  const firstResult = page.locator('#result-list li.result').first();
  await firstResult.hover();
  try {
    await page.waitForFunction(
      () => document.querySelector('#result-list li.result')?.classList.contains('highlighted'),
      null,
      {timeout: TIMEOUT_MS},
    );
  } catch {
    fail(`hovering the first result (${firstId}) did not give it the class highlighted: ${fmt(await firstResult.getAttribute('class'))}`);
  }
  ok(`hovering the first result highlights it (${firstId})`);
  await page.mouse.move(1, 1);

  // A click at the centre of the first result's bbox selects an item under it.
  const centre = bboxCentre(first.features[0].bbox);
  const under = matched.filter((f) => geometryContains(f.geometry, centre)).map((f) => f.id);
  expect(under.includes(firstId), `the centre ${centre} of ${firstId}'s bbox is not in its footprint`);
  const selected = await page.evaluate(([lon, lat]) => window.arcolake.selectAtLonLat(lon, lat), centre);
  expect(
    under.includes(selected),
    `selectAtLonLat(${centre}): expected one of ${fmt(under)} (the matched items there), found ${fmt(selected)}`,
  );
  ok(`selectAtLonLat(${centre.map((v) => v.toFixed(3))}) selects ${selected}, one of the ${under.length} items there`);
  if (first.features.some((f) => f.id === selected)) {
    const li = page.locator(`#result-list li.result[data-id="${selected}"]`);
    try {
      await page.waitForFunction(
        (id) => {
          const el = document.querySelector(`#result-list li.result[data-id="${CSS.escape(id)}"]`);
          return el?.classList.contains('selected') && el.getAttribute('aria-current') === 'true';
        },
        selected,
        {timeout: TIMEOUT_MS},
      );
    } catch {
      fail(
        `the result ${selected} selected on the map is not marked: class ${fmt(await li.getAttribute('class'))}, ` +
          `aria-current ${fmt(await li.getAttribute('aria-current'))}`,
      );
    }
    ok(`the selected result ${selected} has class selected and aria-current=true`);
  }
  await screenshot(page, 'map.png');
}

async function checkPaging(page, first, second) {
  console.log('# 5. paging');
  const url = page.url();
  await afterLoad(page, 'search', 'clicking #next-page', () => page.click('#next-page'));
  const shown = await listedResults(page);
  expectEqual('results of the second page (as the API next link)', shown, resultsOf(second));
  const firstIds = first.features.map((f) => f.id);
  const repeated = shown.filter((r) => firstIds.includes(r.id));
  expect(repeated.length === 0, `the second page repeats results of the first: ${fmt(repeated)}`);
  ok('the second page repeats no result of the first');
  // The page is in the address: a fresh load of it shows the second page,
  // and Back returns to the first.
  const secondUrl = page.url();
  expect(secondUrl !== url, `paging did not change the address: ${secondUrl}`);
  const fresh = await openPage(page.context(), 'second page permalink');
  await fresh.goto(secondUrl);
  await waitReady(fresh, 'search', `loading the second page's address ${secondUrl}`);
  expectEqual('results of a fresh load of the second page\'s address', await listedResults(fresh), resultsOf(second));
  await fresh.close();
  await afterLoad(page, 'search', 'going back from the second page', () => page.goBack());
  expectEqual('results after going back from the second page', await listedResults(page), resultsOf(first));
  expectEqual('the URL after going back from the second page', page.url(), url);
  await afterLoad(page, 'search', 'going forward to the second page', () => page.goForward());
  expectEqual('results after going forward again', await listedResults(page), resultsOf(second));
  if (!nextLink(second)) {
    const next = page.locator('#next-page');
    expect(
      !(await next.isVisible()) || (await next.isDisabled()),
      '#next-page is offered on the last page (the API has no next link)',
    );
    ok('#next-page is not offered on the last page');
  }
  await afterLoad(page, 'search', 'clicking #first-page', () => page.click('#first-page'));
  expectEqual('results after #first-page (as the first page)', await listedResults(page), resultsOf(first));
  expectEqual('the URL after paging back to the first page', page.url(), url);
}

/** The search form's values that the URL must restore. */
const formState = (page) =>
  page.evaluate(() => ({
    collections: [...document.querySelectorAll('#search-collections input[name=collections]:checked')].map((i) => i.value),
    bbox: document.querySelector('#search-bbox').value.split(',').map(Number),
    start: document.querySelector('#search-start').value.slice(0, 16),
    end: document.querySelector('#search-end').value.slice(0, 16),
    filter: document.querySelector('#search-filter').value.trim(),
    limit: Number(document.querySelector('#search-limit').value),
  }));

async function checkPermalink(context, page, first) {
  console.log('# 6. permalink and history');
  const permalink = page.url();
  const fresh = await openPage(context, 'permalink');
  await fresh.goto(permalink);
  await waitReady(fresh, 'search', `loading the permalink ${permalink}`);
  expectEqual('search form of a fresh load of the permalink', await formState(fresh), {
    collections: [SEARCH.collection],
    bbox: SEARCH.bbox,
    start: SEARCH.start,
    end: SEARCH.end,
    filter: SEARCH.filter,
    limit: SEARCH.limit,
  });
  expectEqual('results of a fresh load of the permalink', await listedResults(fresh), resultsOf(first));
  await fresh.close();

  // Back, through the views visited, to the collections; then forward again.
  const trail = [];
  let steps = 0;
  while (steps < 10) {
    steps += 1;
    await afterLoad(page, null, `going back (step ${steps})`, () => page.goBack());
    const view = await currentView(page);
    trail.push(view);
    if (view === 'collections') {
      break;
    }
  }
  expectEqual(`the last view going back (through ${trail.join(' ← ')})`, trail.at(-1), 'collections');
  for (let i = 1; i <= steps; i++) {
    await afterLoad(page, null, `going forward (step ${i})`, () => page.goForward());
  }
  expectEqual(`the view after going forward ${steps} steps`, await currentView(page), 'search');
  expectEqual('the URL after going forward (the permalink)', page.url(), permalink);
  expectEqual('results after going forward (the first page)', await listedResults(page), resultsOf(first));
  return permalink;
}

async function checkBadFilter(page, sortby) {
  console.log('# 7. an invalid CQL2 filter');
  const answer = await getJson(apiUrl('/search', searchParams({sortby, filter: BAD_FILTER})), {status: 400});
  expect(typeof answer.description === 'string' && answer.description, `GET /search with ${BAD_FILTER}: no description: ${fmt(answer)}`);
  // The browser logs the 400 answers to the page's requests with this filter
  // (its search, and map tiles maybe, some after this check): expected from now on.
  expectedConsoleError = (msg) => {
    try {
      return /status of 400/.test(msg.text()) && new URL(msg.location().url).searchParams.get('filter') === BAD_FILTER;
    } catch {
      return false;
    }
  };
  await submitSearch(page, BAD_FILTER);
  const error = page.locator('#search-error');
  try {
    await page.waitForFunction(
      () => {
        const el = document.querySelector('#search-error');
        return el && !el.hidden && el.getClientRects().length > 0 && el.textContent.trim() !== '';
      },
      null,
      {timeout: TIMEOUT_MS},
    );
  } catch {
    fail(`#search-error did not show after submitting the filter ${fmt(BAD_FILTER)} (hidden: ${await error.isHidden()}, text ${fmt(await error.textContent())})`);
  }
  await idle(page);
  const normalise = (text) => text.replace(/\s+/g, ' ').trim();
  const shown = normalise(await error.textContent());
  expect(
    shown.includes(normalise(answer.description)),
    `#search-error: expected the server's description ${fmt(answer.description)}, found ${fmt(shown)}`,
  );
  ok(`#search-error shows the server's description (${fmt(shown, 80)})`);
  expectEqual('#search-error role', await error.getAttribute('role'), 'alert');
  await screenshot(page, 'search-error.png');
}

/** A lake-local item with a GeoTIFF asset, and the fixture file it is. */
async function pickTiffItem() {
  const manifest = JSON.parse(await readFile(path.join(FIXTURES, 'manifest.json'), 'utf8'));
  const cogs = Object.entries(manifest)
    .filter(([, m]) => m.format === 'geotiff' && m.cog)
    .map(([name]) => name)
    .sort((a, b) => (b === PREFERRED_COG) - (a === PREFERRED_COG));
  const items = (await allPages(apiUrl('/collections/lake-local/items', {limit: 100}))).flatMap((p) => p.features);
  for (const name of cogs) {
    for (const item of items) {
      for (const [key, asset] of Object.entries(item.assets ?? {})) {
        const href = decodeURIComponent((asset.href ?? '').split('?')[0]);
        if ((asset.type ?? '').startsWith('image/tiff') && href.endsWith(`/${name}`)) {
          return {item, key, file: path.join(FIXTURES, name)};
        }
      }
    }
  }
  fail(`no lake-local item has an image/tiff asset whose href ends with a COG of fixtures/ingest (${fmt(cogs)})`);
}

async function checkItem(page) {
  console.log('# 8. the item view');
  const {item, key, file} = await pickTiffItem();
  const itemUrl = `${BASE}/browse?${new URLSearchParams({view: 'item', collection: 'lake-local', item: item.id})}`;
  await page.goto(itemUrl);
  await waitReady(page, 'item', `loading ${itemUrl}`);
  ok(`the item view of lake-local/${item.id} is ready`);

  const title = (await page.textContent('#item-title')).trim();
  const titles = [item.id, item.properties?.title].filter(Boolean);
  expect(titles.some((t) => title.includes(t)), `#item-title: expected it to show ${fmt(titles)}, found ${fmt(title)}`);
  ok(`#item-title shows ${fmt(title)}`);
  const rows = await page.locator('#item-properties tr').count();
  expect(rows > 0, '#item-properties has no row');
  ok(`#item-properties has ${rows} rows`);

  const assets = await page.$$eval('#item-assets li.asset', (items) =>
    items.map((li) => {
      const a = li.querySelector('a.asset-link');
      return {key: li.dataset.key, href: a?.href ?? null, size: a?.dataset.size ?? li.dataset.size ?? null};
    }),
  );
  const unknown = assets.filter((a) => !(a.key in item.assets));
  expect(assets.length > 0 && unknown.length === 0, `#item-assets: expected assets of ${fmt(Object.keys(item.assets))}, found ${fmt(assets)}`);
  const asset = assets.find((a) => a.key === key);
  expect(asset?.href, `#item-assets has no li.asset[data-key=${key}] with an a.asset-link (the GeoTIFF): ${fmt(assets)}`);
  ok(`#item-assets lists ${assets.length} assets, the GeoTIFF ${key} among them`);

  const tools = await page.$$eval('#item-snippets pre.snippet[data-tool]', (pres) =>
    pres.map((pre) => ({tool: pre.dataset.tool, empty: pre.textContent.trim() === ''})),
  );
  const names = tools.map((t) => t.tool);
  expect(
    names.includes('pystac-client') && names.includes('rasterio'),
    `#item-snippets: expected pystac-client and rasterio among the tools, found ${fmt(names)}`,
  );
  const strange = names.filter((n) => !SNIPPET_TOOLS.includes(n));
  expect(strange.length === 0, `#item-snippets: unknown tools ${fmt(strange)} (known: ${fmt(SNIPPET_TOOLS)})`);
  expect(!tools.some((t) => t.empty), `#item-snippets: an empty snippet: ${fmt(tools)}`);
  ok(`#item-snippets has snippets for ${names.join(', ')}`);
  await screenshot(page, 'item.png');

  await page.click('#tab-json');
  await page.locator('#item-json').waitFor({state: 'visible'});
  let raw;
  try {
    raw = JSON.parse(await page.textContent('#item-json'));
  } catch (err) {
    fail(`#item-json is not JSON: ${err.message}`);
  }
  expectEqual('#item-json (id, collection)', [raw.id, raw.collection], [item.id, 'lake-local']);
  await screenshot(page, 'item-json.png');

  // The signed link streams the fixture, whole and in ranges.
  const signed = new URL(asset.href);
  expect(
    ['http:', 'https:'].includes(signed.protocol) && signed.search.length > 1,
    `the GeoTIFF's a.asset-link is not a signed http(s) URL with a query: ${asset.href}`,
  );
  const bytes = await readFile(file);
  const whole = await get(asset.href);
  expectEqual(`GET of the signed asset link: status`, whole.status, 200);
  expect(
    whole.body.equals(bytes),
    `GET of the signed asset link: ${whole.body.length} bytes, not those of ${file} (${bytes.length} bytes)`,
  );
  ok(`the signed asset link gives the ${bytes.length} bytes of ${path.relative(FIXTURES, file)}`);
  if (asset.size !== null && asset.size !== '') {
    expectEqual('the asset link data-size (the file size)', Number(asset.size), bytes.length);
  }
  const range = await get(asset.href, {headers: {Range: 'bytes=0-15'}});
  expectEqual('GET bytes=0-15 of the signed asset link: status', range.status, 206);
  expect(
    range.body.equals(bytes.subarray(0, 16)),
    `GET bytes=0-15 of the signed asset link: expected ${bytes.subarray(0, 16).toString('hex')}, found ${range.body.toString('hex')}`,
  );
  ok('GET bytes=0-15 of the signed asset link gives the first 16 bytes of the file');
  return itemUrl;
}

async function checkRestricted(context) {
  console.log('# 9. the API key');
  const anonymous = (await allPages(apiUrl('/collections'))).flatMap((p) => p.collections.map((c) => c.id));
  const granted = (await allPages(apiUrl('/collections'), {headers: bearer(API_KEY)})).flatMap((p) => p.collections.map((c) => c.id));
  expect(
    !anonymous.includes('lake-secret') && granted.includes('lake-secret'),
    `the API should list lake-secret with the key only: anonymous ${fmt(anonymous)}, with the key ${fmt(granted)}`,
  );

  const page = await openPage(context, 'restricted');
  await page.goto(`${BASE}/browse?view=collections`);
  await waitReady(page, 'collections', 'loading the collections view');
  const cards = () => page.$$eval('#collection-list li.collection-card', (items) => items.map((li) => li.dataset.id));
  const before = await cards();
  expect(!before.includes('lake-secret'), `lake-secret is listed without a key: ${fmt(before)}`);
  ok(`without a key, lake-secret is not listed (${before.length} collections)`);

  await page.click('#api-key-button');
  await page.locator('#api-key-dialog').waitFor({state: 'visible'});
  expect(await page.$eval('#api-key-dialog', (d) => d.open), '#api-key-dialog is not open after #api-key-button');
  ok('#api-key-button opens #api-key-dialog');
  await page.fill('#api-key-input', API_KEY);
  const mark = requests.length;
  await afterLoad(page, 'collections', 'saving the API key', () => page.click('#api-key-save'));
  const after = await cards();
  expect(after.includes('lake-secret'), `lake-secret is not listed after saving the key: ${fmt(after)}`);
  ok(`with the key, lake-secret is listed (${after.length} collections)`);
  expectEqual(
    "sessionStorage['arcolake.apiKey'] is the key",
    (await page.evaluate(() => sessionStorage.getItem('arcolake.apiKey'))) === API_KEY,
    true,
  );

  // The key went as a header to the API...
  let withHeader = 0;
  for (const {request} of requests.slice(mark).filter((r) => r.label === 'restricted')) {
    const headers = await Promise.race([
      request.allHeaders(),
      new Promise((resolve) => setTimeout(() => resolve(request.headers()), 2000)),
    ]);
    if (headers.authorization === `Bearer ${API_KEY}`) {
      withHeader += 1;
    }
  }
  expect(withHeader > 0, 'no request after saving the key carried Authorization: Bearer <key>');
  ok(`${withHeader} requests after saving the key carried Authorization: Bearer <key>`);

  // ... and in no URL: requests, addresses shown, links on the page.
  const hrefs = await page.$$eval('a[href]', (links) => links.map((a) => a.href));
  const leaks = [
    ...requests.map((r) => `request ${r.url}`),
    ...visited.map((u) => `address ${u}`),
    ...context.pages().map((p) => `address ${p.url()}`),
    ...hrefs.map((h) => `link ${h}`),
  ].filter(carriesKey);
  expect(leaks.length === 0, `the API key appears in URLs:\n  ${leaks.join('\n  ')}`);
  ok(`the key is in none of ${requests.length} request URLs, ${visited.length} addresses and ${hrefs.length} links`);
  await screenshot(page, 'restricted.png');
  return page;
}

async function checkAccessibility(browser, urls) {
  console.log('# 10. accessibility (axe-core)');
  const axeSource = await readFile(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
  // The page's Content-Security-Policy (script-src 'self') would refuse the
  // inline script of axe: this context bypasses it.
  const context = await browser.newContext({viewport: VIEWPORT, timezoneId: 'UTC', locale: 'en-US', bypassCSP: true});
  const page = await openPage(context, 'axe');
  for (const [view, url] of urls) {
    await page.goto(url);
    await waitReady(page, view, `loading ${url} for axe`);
    if (view === 'search') {
      expect((await page.locator('#result-list li.result').count()) > 0, `no results in the search view of ${url}`);
    }
    await page.addScriptTag({content: axeSource});
    const violations = await page.evaluate(async () => {
      const results = await window.axe.run(document, {resultTypes: ['violations']});
      return results.violations.map((v) => ({
        id: v.id,
        impact: v.impact,
        help: v.help,
        target: v.nodes[0]?.target ?? [],
        nodes: v.nodes.length,
      }));
    });
    const grave = violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
    if (grave.length) {
      fail(
        `axe-core finds serious or critical violations in the ${view} view (${url}):\n  ` +
          grave.map((v) => `${v.impact} ${v.id}: ${v.help} (${v.nodes} nodes; first: ${fmt(v.target)})`).join('\n  '),
      );
    }
    const minor = violations.map((v) => `${v.id} (${v.impact})`).join(', ');
    ok(`axe-core: no serious or critical violation in the ${view} view${minor ? `; lesser: ${minor}` : ''}`);
  }
  await context.close();
}

function checkOrigins() {
  console.log('# 11. requests');
  let local = 0;
  const foreign = [];
  for (const {url, label} of requests) {
    const parsed = new URL(url);
    if (parsed.protocol === 'data:') {
      continue; // inline data, no request on the network
    }
    // A blob: URL's origin is that of the document that made it.
    if (parsed.origin === ORIGIN) {
      local += 1;
    } else {
      foreign.push(`${label}: ${url}`);
    }
  }
  expect(foreign.length === 0, `requests to other origins than ${ORIGIN}:\n  ${foreign.join('\n  ')}`);
  expect(local > 0, 'no request of the pages was recorded');
  ok(`all ${local} requests of the pages went to ${ORIGIN}`);
}

// --- main -------------------------------------------------------------------------------

/** Send a JSON request with the admin token; the answer's status. */
async function adminRequest(method, url, body) {
  const response = await fetch(url, {
    method,
    headers: {Authorization: `Bearer ${ADMIN_TOKEN}`, 'Content-Type': 'application/json'},
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(TIMEOUT_MS),
  });
  return {status: response.status, text: await response.text()};
}

async function checkThumbnails(page) {
  console.log('# 8b. thumbnails through signed URLs');
  // An item of lake-local whose thumbnail is one of the lake's files (a
  // GeoTIFF: the check is of the signed address and its bytes, not of how
  // the browser draws it).
  const lake = await getJson(apiUrl('/collections/lake-local/items', {limit: 100}));
  const tiffOf = (f) => Object.values(f.assets ?? {}).find((a) => (a.type ?? '').startsWith('image/tiff'));
  const donor = lake.features.find(tiffOf);
  expect(donor, 'lake-local has no item with a GeoTIFF asset');
  const file = tiffOf(donor);
  const id = 'browse-thumbnail-check';
  const item = {
    type: 'Feature',
    stac_version: '1.0.0',
    id,
    collection: 'lake-local',
    geometry: donor.geometry,
    bbox: donor.bbox,
    properties: {datetime: '2024-01-01T00:00:00Z', title: 'An item with a thumbnail'},
    links: [],
    assets: {thumbnail: {href: file.href, type: 'image/tiff', roles: ['thumbnail']}},
  };
  const created = await adminRequest('POST', apiUrl('/collections/lake-local/items'), item);
  expect([200, 201].includes(created.status), `POST of the thumbnail item: ${created.status} ${created.text.slice(0, 300)}`);
  try {
    await page.goto(apiUrl('/browse', {view: 'search', collections: 'lake-local', filter: `id = '${id}'`}));
    await waitReady(page, 'search', 'the search for the item with a thumbnail');
    const img = page.locator(`#result-list li.result[data-id="${id}"] img.thumb`);
    await img.waitFor({timeout: TIMEOUT_MS});
    const src = await img.getAttribute('src');
    const url = new URL(src, BASE);
    expectEqual('the thumbnail address is this server\'s', url.origin, ORIGIN);
    expect(url.pathname.startsWith('/assets/') && url.searchParams.has('sig'), `the thumbnail is not a signed URL of the streaming route: ${src}`);
    ok(`the thumbnail is a signed URL of the streaming route (${url.pathname})`);
    const bytes = await get(url.href);
    expectEqual('GET of the signed thumbnail: status', bytes.status, 200);
    if (typeof file['file:size'] === 'number') {
      expectEqual('the signed thumbnail gives the file (its size)', bytes.body.length, file['file:size']);
    }
    const magic = bytes.body.subarray(0, 4).toString('latin1');
    expect(magic === 'II*\u0000' || magic === 'MM\u0000*', `the signed thumbnail is not the TIFF file: ${fmt(magic)}`);
    ok('the signed thumbnail gives the file\'s bytes');
    await screenshot(page, 'thumbnail.png');
  } finally {
    const removed = await adminRequest('DELETE', apiUrl(`/collections/lake-local/items/${id}`));
    expect([200, 204].includes(removed.status), `DELETE of the thumbnail item: ${removed.status} ${removed.text.slice(0, 300)}`);
  }
}

async function main() {
  await mkdir(SCREENSHOT_DIR, {recursive: true});
  let browser;
  try {
    browser = await launchChromium({timeout: TIMEOUT_MS});
  } catch (err) {
    fail(err.message);
  }
  try {
    const context = await browser.newContext({viewport: VIEWPORT, timezoneId: 'UTC', locale: 'en-US'});
    const page = await openPage(context, 'main');

    await checkLanding(page);
    expectNoJsErrors('loading /browse');
    await checkCollectionSearch(page);
    expectNoJsErrors('in the collection search');
    const {sortby, first} = await checkSearch(page);
    expectNoJsErrors('in the item search');
    const second = await getJson(nextLink(first));
    const matched = [...first.features, ...second.features];
    await checkMap(page, first, matched);
    expectNoJsErrors('on the map');
    await checkPaging(page, first, second);
    expectNoJsErrors('while paging');
    const permalink = await checkPermalink(context, page, first);
    expectNoJsErrors('with the permalink and history');
    await checkBadFilter(page, sortby);
    expectNoJsErrors('with an invalid filter');
    const itemUrl = await checkItem(page);
    expectNoJsErrors('in the item view');
    if (ADMIN_TOKEN) {
      await checkThumbnails(page);
      expectNoJsErrors('with thumbnails');
    }
    await checkRestricted(context);
    expectNoJsErrors('with the API key');
    await checkAccessibility(browser, [
      ['collections', `${BASE}/browse?view=collections&q=${COLLECTION_QUERY}`],
      ['search', permalink],
      ['item', itemUrl],
    ]);
    expectNoJsErrors('in the accessibility check');
    checkOrigins();
    console.log('all checks of the browse page passed');
  } finally {
    await browser.close();
  }
}

try {
  await main();
} catch (err) {
  if (err instanceof CheckFailed) {
    console.error(`FAIL: ${err.message}`);
  } else {
    console.error(`FAIL: ${err?.stack ?? err}`);
  }
  if (jsErrors.length) {
    console.error(`JavaScript errors of the pages:\n  ${jsErrors.join('\n  ')}`);
  }
  process.exitCode = 1;
}
