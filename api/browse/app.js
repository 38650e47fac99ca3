// The browse page of arcolake: collections, item search, items, on a map.
//
// Plain JavaScript, no build step: this file is served as it is written,
// beside OpenLayers' full build (window.ol) and a Natural Earth world map,
// all embedded in the server. It talks to the STAC API of the server it came
// from and to nothing else. Every view is a URL (`?view=…`), pushed to the
// history, so views are permalinks and back/forward work.

const ol = window.ol;
const config = JSON.parse(document.getElementById("arcolake-config").textContent);
// Root-relative from the server, so the page works on whichever address
// it was opened (the policy allows only this origin).
const API = new URL(config.api, location.href);
const KEY_STORE = "arcolake.apiKey";
const PAGE_SIZES = [10, 25, 50, 100];
const DEFAULT_LIMIT = 25;

// ---------------------------------------------------------------------------
// The API: every request carries the key (when one is set) as a header, and
// is counted, so tests and the first-render mark can wait for quiet.

class ApiError extends Error {
  constructor(status, description, body) {
    super(description);
    this.status = status;
    this.body = body;
  }
}

let pending = 0;
let idleWaiters = [];

function settle() {
  if (pending === 0) {
    const waiters = idleWaiters;
    idleWaiters = [];
    for (const resolve of waiters) resolve();
  }
}

function apiKey() {
  return sessionStorage.getItem(KEY_STORE) || "";
}

/** An absolute URL of the API from a path ("collections") or a full href. */
function apiUrl(pathOrHref, params) {
  const url = new URL(pathOrHref, API);
  if (params) {
    for (const [k, v] of params instanceof URLSearchParams ? params : Object.entries(params)) {
      if (v !== undefined && v !== null && v !== "") url.searchParams.set(k, v);
    }
  }
  return url;
}

async function apiFetch(url, options = {}) {
  const headers = new Headers(options.headers || {});
  const key = apiKey();
  if (key && new URL(url, API).origin === API.origin) headers.set("Authorization", `Bearer ${key}`);
  pending += 1;
  try {
    return await fetch(url, { ...options, headers });
  } finally {
    pending -= 1;
    queueMicrotask(settle);
  }
}

/** GET or POST JSON; a non-2xx answer throws an ApiError with the server's description. */
async function getJson(url, options = {}) {
  const init = { ...options, headers: { Accept: "application/json", ...(options.headers || {}) } };
  if (options.json !== undefined) {
    init.method = init.method || "POST";
    init.body = JSON.stringify(options.json);
    init.headers["Content-Type"] = "application/json";
  }
  const response = await apiFetch(url, init);
  const text = await response.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  if (!response.ok) {
    const description = body?.description || body?.detail || `${response.status} ${response.statusText}`;
    throw new ApiError(response.status, description, body);
  }
  return body;
}

// ---------------------------------------------------------------------------
// Small DOM helpers.

/** An element: h("li.result", {dataset: {id}}, child, ...). */
function h(spec, attrs = {}, ...children) {
  const [tag, ...classes] = spec.split(".");
  const el = document.createElement(tag);
  if (classes.length) el.className = classes.join(" ");
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "dataset") Object.assign(el.dataset, v);
    else if (k === "on") for (const [event, fn] of Object.entries(v)) el.addEventListener(event, fn);
    else if (k === "text") el.textContent = v;
    else if (k in el && typeof v !== "string") el[k] = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
const viewRoot = () => document.getElementById("view");

function say(message) {
  document.getElementById("status").textContent = message;
}

function formatDate(value) {
  if (!value) return "";
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) return String(value);
  return d.toISOString().replace("T", " ").replace(/:00\.000Z$|\.000Z$/, "Z").replace(/Z$/, " UTC");
}

function formatBytes(n) {
  if (typeof n !== "number") return "";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i += 1;
  }
  return `${i ? n.toFixed(1) : n} ${units[i]}`;
}

function formatValue(value) {
  if (value === null || value === undefined) return "—";
  if (Array.isArray(value)) {
    return value.every((v) => typeof v !== "object" || v === null) ? value.join(", ") : JSON.stringify(value);
  }
  if (typeof value === "object") return JSON.stringify(value);
  if (typeof value === "number") return Number.isInteger(value) ? String(value) : String(Math.round(value * 1e6) / 1e6);
  return String(value);
}

/** A `code` block with a copy button. */
function snippet(tool, title, code) {
  const pre = h("pre.snippet", { dataset: { tool }, tabindex: "0", "aria-label": `${title} code` }, code);
  const copy = h("button.secondary", {
    type: "button",
    on: {
      click: async () => {
        try {
          await navigator.clipboard.writeText(code);
          say(`${title} code copied`);
        } catch {
          say("Copying needs a secure context; select the text instead");
        }
      },
    },
  }, "Copy");
  return h("div.snippet-block", {}, h("h4", {}, title, copy), pre);
}

function pyString(s) {
  return JSON.stringify(s);
}

/** A JSON value as a Python literal (True, False, None; strings as JSON's,
 * which Python reads the same). */
function pyLiteral(value) {
  if (value === null || value === undefined) return "None";
  if (value === true) return "True";
  if (value === false) return "False";
  if (typeof value === "number") return Number.isFinite(value) ? String(value) : "None";
  if (typeof value === "string") return pyString(value);
  if (Array.isArray(value)) return `[${value.map(pyLiteral).join(", ")}]`;
  return `{${Object.entries(value).map(([k, v]) => `${pyString(k)}: ${pyLiteral(v)}`).join(", ")}}`;
}

/** Text quoted for a POSIX shell. */
function shellQuote(text) {
  return `'${String(text).replaceAll("'", "'\\''")}'`;
}

// ---------------------------------------------------------------------------
// State: the query string is the state. `go` pushes a new one and renders.

function readState() {
  const p = new URLSearchParams(location.search);
  const list = (name) => (p.get(name) || "").split(",").map((s) => s.trim()).filter(Boolean);
  return {
    view: p.get("view") || "collections",
    q: p.get("q") || "",
    start: p.get("start") || "",
    end: p.get("end") || "",
    inView: p.get("in_view") === "1",
    collections: list("collections"),
    bbox: p.get("bbox") || "",
    intersects: p.get("intersects") || "",
    filter: p.get("filter") || "",
    sortby: p.get("sortby") || "",
    limit: Number(p.get("limit")) || DEFAULT_LIMIT,
    collection: p.get("collection") || "",
    item: p.get("item") || "",
    page: p.get("page") || "",
  };
}

function stateUrl(next) {
  const p = new URLSearchParams();
  const set = (k, v) => {
    if (v !== undefined && v !== null && v !== "" && !(Array.isArray(v) && !v.length)) p.set(k, Array.isArray(v) ? v.join(",") : v);
  };
  set("view", next.view);
  if (next.view === "collections") {
    set("q", next.q);
    set("start", next.start);
    set("end", next.end);
    if (next.inView) p.set("in_view", "1");
    set("bbox", next.inView ? next.bbox : "");
  } else if (next.view === "search") {
    set("collections", next.collections);
    set("bbox", next.bbox);
    set("intersects", next.intersects);
    set("start", next.start);
    set("end", next.end);
    set("filter", next.filter);
    set("sortby", next.sortby);
    if (next.limit && next.limit !== DEFAULT_LIMIT) p.set("limit", String(next.limit));
    set("page", next.page);
  } else if (next.view === "collection") {
    set("collection", next.collection);
  } else if (next.view === "item") {
    set("collection", next.collection);
    set("item", next.item);
  }
  return `${location.pathname}?${p.toString()}`;
}

function go(next, { replace = false, focus = null } = {}) {
  const url = stateUrl({ ...readState(), ...next });
  if (replace) history.replaceState(null, "", url);
  else history.pushState(null, "", url);
  render({ focus });
}

/** Links inside the page navigate without reloading it. */
document.addEventListener("click", (event) => {
  const a = event.target.closest?.("a[href]");
  if (!a || a.target || event.defaultPrevented || event.button !== 0) return;
  if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || url.pathname !== location.pathname || a.hasAttribute("download")) return;
  event.preventDefault();
  history.pushState(null, "", url.pathname + url.search);
  render();
});
window.addEventListener("popstate", () => render());

/** After a view changes, focus goes to its heading (or the element asked
 * for), so keyboard and screen-reader users start from the new content. */
function moveFocus(selector) {
  const target = (selector && document.querySelector(selector)) || viewRoot().querySelector("h2");
  if (!target) return;
  if (!target.hasAttribute("tabindex")) target.setAttribute("tabindex", "-1");
  target.focus({ preventScroll: false });
}

/** The datetime parameter of two `datetime-local` or `date` values (UTC). */
/** An RFC 3339 instant of a `date` or `datetime-local` value, read as UTC
 * (a date is its first instant, or its last for `endOfDay`); "" for none. */
function utcInstant(v, endOfDay = false) {
  if (!v) return "";
  if (/^\d{4}-\d{2}-\d{2}$/.test(v)) return `${v}T${endOfDay ? "23:59:59.999" : "00:00:00"}Z`;
  return /Z$|[+-]\d\d:\d\d$/.test(v) ? v : `${v.length === 16 ? `${v}:00` : v}Z`;
}

function datetimeRange(start, end) {
  if (!start && !end) return "";
  return `${utcInstant(start) || ".."}/${utcInstant(end, true) || ".."}`;
}

function searchParams(s) {
  const p = new URLSearchParams();
  if (s.collections.length) p.set("collections", s.collections.join(","));
  if (s.intersects) p.set("intersects", s.intersects);
  else if (s.bbox) p.set("bbox", s.bbox);
  const datetime = datetimeRange(s.start, s.end);
  if (datetime) p.set("datetime", datetime);
  if (s.filter.trim()) {
    p.set("filter", s.filter.trim());
    p.set("filter-lang", "cql2-text");
  }
  if (s.sortby) p.set("sortby", s.sortby);
  p.set("limit", String(s.limit));
  return p;
}

// ---------------------------------------------------------------------------
// The map: a world map embedded in the server (Natural Earth 1:110m), or the
// operator's basemap; vector tiles of footprints; overlays for highlights,
// extents and drawn areas.

const countries = new ol.layer.Vector({
  source: new ol.source.Vector({
    url: `${config.static}countries-110m.json`,
    format: new ol.format.TopoJSON({ layers: ["countries"] }),
    attributions: "Natural Earth",
  }),
  style: new ol.style.Style({
    fill: new ol.style.Fill({ color: "#f3f0e6" }),
    stroke: new ol.style.Stroke({ color: "#a59f8c", width: 0.6 }),
  }),
});

// Natural Earth's polygons that cross the antimeridian (Russia, Fiji,
// Antarctica's edge) go round the far side of a flat map: their western
// parts are moved one world east, where OpenLayers' wrapping shows them.
countries.getSource().on("featuresloadend", (event) => {
  const world = 2 * 20037508.342789244;
  for (const feature of event.features || []) {
    const geometry = feature.getGeometry();
    const polygons = geometry.getType() === "MultiPolygon" ? geometry.getPolygons() : [geometry];
    const fixed = polygons.map((polygon) => {
      const rings = polygon.getCoordinates();
      // A ring that crosses the antimeridian and comes back jumps an even
      // number of times; Antarctica's ring, round the pole, jumps once and
      // is right as it is.
      const jumps = (ring) => ring.filter(([x], i) => i > 0 && Math.abs(x - ring[i - 1][0]) > world / 2).length;
      if (!rings.some((ring) => jumps(ring) > 0 && jumps(ring) % 2 === 0)) return rings;
      return rings.map((ring) => ring.map(([x, y]) => [x < 0 ? x + world : x, y]));
    });
    feature.setGeometry(new ol.geom.MultiPolygon(fixed));
  }
});

const baseLayers = [countries];
if (config.basemap) {
  baseLayers.push(new ol.layer.Tile({
    // The attribution is the operator's text, shown as text (OpenLayers
    // would read it as HTML).
    source: new ol.source.XYZ({ url: config.basemap.url, attributions: config.basemap.attribution ? escapeHtml(config.basemap.attribution) : undefined }),
  }));
}

const footprintStyle = new ol.style.Style({
  fill: new ol.style.Fill({ color: "rgba(10, 88, 202, 0.10)" }),
  stroke: new ol.style.Stroke({ color: "#0a58ca", width: 1.2 }),
  image: new ol.style.Circle({ radius: 4, fill: new ol.style.Fill({ color: "#0a58ca" }) }),
});

const footprints = new ol.layer.VectorTile({ style: footprintStyle, declutter: false, properties: { name: "footprints" } });
const previews = new ol.layer.Group({ layers: [] });
const extentSource = new ol.source.Vector();
const extents = new ol.layer.Vector({
  source: extentSource,
  style: (f) => new ol.style.Style({
    fill: new ol.style.Fill({ color: f.get("hover") ? "rgba(217, 72, 15, 0.12)" : "rgba(10, 88, 202, 0.05)" }),
    stroke: new ol.style.Stroke({ color: f.get("hover") ? "#d9480f" : "#0a58ca", width: f.get("hover") ? 2.5 : 1, lineDash: [4, 3] }),
  }),
});
const highlightSource = new ol.source.Vector();
const highlight = new ol.layer.Vector({
  source: highlightSource,
  style: (f) => new ol.style.Style({
    fill: new ol.style.Fill({ color: f.get("selected") ? "rgba(10, 88, 202, 0.25)" : "rgba(217, 72, 15, 0.2)" }),
    stroke: new ol.style.Stroke({ color: f.get("selected") ? "#0a58ca" : "#d9480f", width: 3 }),
  }),
});
const drawSource = new ol.source.Vector();
const drawn = new ol.layer.Vector({
  source: drawSource,
  style: new ol.style.Style({
    fill: new ol.style.Fill({ color: "rgba(255, 191, 71, 0.12)" }),
    stroke: new ol.style.Stroke({ color: "#b35c00", width: 2, lineDash: [6, 4] }),
  }),
});

const map = new ol.Map({
  target: "map",
  layers: [...baseLayers, extents, previews, footprints, highlight, drawn],
  view: new ol.View({ center: [0, 20e5], zoom: 1.6, constrainResolution: false }),
  controls: ol.control.defaults.defaults({ attributionOptions: { collapsible: true } }).extend([new ol.control.ScaleLine()]),
});
// The map takes the keyboard (arrows pan, + and - zoom) when focused.

const geojson = new ol.format.GeoJSON({ dataProjection: "EPSG:4326", featureProjection: "EPSG:3857" });
const toMap = (bbox) => ol.proj.transformExtent(bbox, "EPSG:4326", "EPSG:3857");
const fromMap = (extent) => ol.proj.transformExtent(extent, "EPSG:3857", "EPSG:4326");

/** A lon/lat box of an extent that may lie on a copy of the world: west
 * and east wrapped into -180..180 (west > east when it crosses 180°). */
function lonLatBox([w, s, e, n]) {
  const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));
  const round = (v) => Math.round(v * 1e4) / 1e4;
  if (e - w >= 360) return [-180, clamp(round(s), -90, 90), 180, clamp(round(n), -90, 90)];
  const wrap = (x) => {
    const v = ((((x + 180) % 360) + 360) % 360) - 180;
    return v === -180 && x > 0 ? 180 : v;
  };
  return [round(wrap(w)), clamp(round(s), -90, 90), round(wrap(e)), clamp(round(n), -90, 90)];
}

function viewBbox() {
  return lonLatBox(fromMap(map.getView().calculateExtent(map.getSize())));
}

/** The map extent of a STAC bbox (2D or 3D): one across the antimeridian
 * (west > east) runs on past 180°, and the poles are cut at ±85°. */
function mapExtent(bbox) {
  let [w, s, e, n] = bbox.length === 6 ? [bbox[0], bbox[1], bbox[3], bbox[4]] : bbox;
  if (e < w) e += 360;
  return toMap([w, Math.max(s, -85), e, Math.min(n, 85)]);
}

function fitBbox(bbox, { padding = 40, maxZoom = 12 } = {}) {
  if (!bbox || bbox.length < 4) return;
  map.getView().fit(mapExtent(bbox), { padding: [padding, padding, padding, padding], maxZoom, duration: 0 });
}

/** A vector tile source whose tiles are read with the API key as a header. */
function mvtSource(template, { maxZoom = 14 } = {}) {
  return new ol.source.VectorTile({
    format: new ol.format.MVT(),
    url: template,
    maxZoom,
    transition: 0,
    tileLoadFunction: (tile, url) => {
      tile.setLoader(async (extent, _resolution, projection) => {
        try {
          const response = await apiFetch(url);
          if (response.status === 204 || !response.ok) {
            tile.setFeatures([]);
            return;
          }
          const features = tile.getFormat().readFeatures(await response.arrayBuffer(), { extent, featureProjection: projection });
          tile.setFeatures(features);
        } catch {
          tile.setState(3); // ERROR
        }
      });
    },
  });
}

/** A raster tile source read through fetch (so the key goes as a header). */
function rasterSource(template, { maxZoom = 14 } = {}) {
  return new ol.source.XYZ({
    url: template,
    maxZoom,
    transition: 0,
    tileLoadFunction: async (tile, url) => {
      try {
        const response = await apiFetch(url);
        if (!response.ok || response.status === 204) {
          tile.getImage().src = "data:image/gif;base64,R0lGODlhAQABAAAAACwAAAAAAQABAAA=";
          return;
        }
        const objectUrl = URL.createObjectURL(await response.blob());
        const image = tile.getImage();
        image.addEventListener("load", () => URL.revokeObjectURL(objectUrl), { once: true });
        image.src = objectUrl;
      } catch {
        tile.setState(3);
      }
    },
  });
}

let footprintTemplate = null;

/** Show the footprints of a tileset (its TileJSON), or none. */
async function showFootprints(tilejsonUrl) {
  if (!tilejsonUrl) {
    footprintTemplate = null;
    footprints.setSource(null);
    return;
  }
  // Only the answer for the tileset still wanted is shown.
  const wanted = () => String(footprintTileJson) === String(tilejsonUrl);
  try {
    const tilejson = await getJson(tilejsonUrl);
    if (!wanted()) return;
    const template = tilejson.tiles?.[0];
    if (template && template !== footprintTemplate) {
      footprintTemplate = template;
      footprints.setSource(mvtSource(template, { maxZoom: Math.min(tilejson.maxzoom ?? 14, 16) }));
    }
  } catch (e) {
    if (!wanted()) return;
    footprintTemplate = null;
    footprints.setSource(null);
    document.getElementById("map-note").textContent = `Footprints unavailable: ${e.message}`;
  }
}

// New items appear: the tile template carries the catalog's change stamp,
// so asking for the TileJSON again picks up a new stamp (and new tiles).
let footprintTileJson = null;
setInterval(() => {
  if (footprintTileJson && document.visibilityState === "visible" && pending === 0) showFootprints(footprintTileJson);
}, 30000);

function setFootprints(url) {
  footprintTileJson = url;
  return showFootprints(url);
}

function clearPreviews() {
  previews.getLayers().clear();
}

// Results are known by collection and id together: two collections may
// hold items of the same id.
const itemKey = (collection, id) => JSON.stringify([String(collection ?? ""), String(id)]);
const hoverIds = new Set();
let selectedId = null;
const resultGeometries = new Map();

function resultLi(key) {
  const [collection, id] = JSON.parse(key);
  return document.querySelector(`li.result[data-id="${CSS.escape(id)}"][data-collection="${CSS.escape(collection)}"]`);
}

function refreshHighlight() {
  highlightSource.clear();
  for (const [id, feature] of resultGeometries) {
    if (hoverIds.has(id) || id === selectedId) {
      const f = feature.clone();
      f.set("selected", id === selectedId);
      highlightSource.addFeature(f);
    }
  }
}

// Drawing a box or a polygon for the search's area.
let drawInteraction = null;

function stopDrawing() {
  if (drawInteraction) map.removeInteraction(drawInteraction);
  drawInteraction = null;
  for (const id of ["draw-bbox", "draw-polygon"]) document.getElementById(id).setAttribute("aria-pressed", "false");
}

function startDrawing(kind) {
  stopDrawing();
  drawInteraction = kind === "box"
    ? new ol.interaction.Draw({ source: drawSource, type: "Circle", geometryFunction: ol.interaction.Draw.createBox() })
    : new ol.interaction.Draw({ source: drawSource, type: "Polygon" });
  document.getElementById(kind === "box" ? "draw-bbox" : "draw-polygon").setAttribute("aria-pressed", "true");
  drawSource.clear();
  drawInteraction.on("drawend", (event) => {
    const geometry = event.feature.getGeometry().clone().transform("EPSG:3857", "EPSG:4326");
    setTimeout(stopDrawing);
    if (kind === "box") {
      setArea({ bbox: lonLatBox(geometry.getExtent()).join(","), intersects: "" });
    } else {
      // Drawn on a copy of the world: moved back by whole turns, so the
      // first vertex lies in -180..180.
      const ring0 = geometry.getCoordinates()[0];
      const turns = Math.floor((ring0[0][0] + 180) / 360) * 360;
      const coordinates = geometry.getCoordinates().map((ring) => ring.map(([x, y]) => [Math.round((x - turns) * 1e5) / 1e5, Math.round(y * 1e5) / 1e5]));
      setArea({ bbox: "", intersects: JSON.stringify({ type: "Polygon", coordinates }) });
    }
  });
  map.addInteraction(drawInteraction);
}

/** The search form's area, from a drawing or the map view. */
function setArea({ bbox, intersects }) {
  const form = document.getElementById("search-form");
  if (!form) return;
  form.elements["bbox"].value = bbox;
  form.dataset.intersects = intersects;
  document.getElementById("area-note").textContent = intersects ? "Area: the drawn polygon" : "";
  drawArea(bbox, intersects);
}

function drawArea(bbox, intersects) {
  drawSource.clear();
  if (intersects) {
    try {
      drawSource.addFeature(geojson.readFeature({ type: "Feature", geometry: JSON.parse(intersects), properties: {} }));
    } catch {
      // not a geometry: the server will say so
    }
  } else if (bbox) {
    const b = bbox.split(",").map(Number);
    if (b.length === 4 && b.every(Number.isFinite)) {
      drawSource.addFeature(new ol.Feature(ol.geom.Polygon.fromExtent(mapExtent(b))));
    }
  }
}

document.getElementById("draw-bbox").addEventListener("click", () => (drawInteraction ? stopDrawing() : startDrawing("box")));
document.getElementById("draw-polygon").addEventListener("click", () => (drawInteraction ? stopDrawing() : startDrawing("polygon")));
document.getElementById("bbox-from-view").addEventListener("click", () => setArea({ bbox: viewBbox().join(","), intersects: "" }));
document.getElementById("clear-geometry").addEventListener("click", () => {
  stopDrawing();
  setArea({ bbox: "", intersects: "" });
});
document.addEventListener("keydown", (e) => {
  if (e.key === "Escape" && drawInteraction) stopDrawing();
});

// Hover and click on the map.
/** The items whose footprints are under a pixel, as keys (collection, id). */
function footprintKeysAt(pixel) {
  const keys = [];
  map.forEachFeatureAtPixel(pixel, (feature) => {
    const id = feature.get("id");
    const key = itemKey(feature.get("collection"), id);
    if (id !== undefined && !keys.includes(key)) keys.push(key);
  }, { layerFilter: (l) => l === footprints, hitTolerance: 3 });
  return keys;
}

map.on("pointermove", (event) => {
  if (event.dragging || drawInteraction) return;
  const keys = footprintKeysAt(event.pixel);
  map.getTargetElement().style.cursor = keys.length ? "pointer" : "";
  const view = readState().view;
  if (view === "search") {
    document.querySelectorAll("li.result.highlighted").forEach((li) => li.classList.remove("highlighted"));
    for (const key of keys) resultLi(key)?.classList.add("highlighted");
  }
  if (view === "collections") {
    const hovered = new Set();
    map.forEachFeatureAtPixel(event.pixel, (f) => {
      if (f.get("collection")) hovered.add(f.get("collection"));
    }, { layerFilter: (l) => l === extents });
    extentSource.getFeatures().forEach((f) => f.set("hover", hovered.has(f.get("collection"))));
    document.querySelectorAll("li.collection-card").forEach((li) => li.classList.toggle("highlighted", hovered.has(li.dataset.id)));
  }
});

/** What a click on the map does: select the result under it (search), or open the item. */
function clickAt(pixel) {
  if (drawInteraction) return null;
  const keys = footprintKeysAt(pixel);
  const state = readState();
  if (!keys.length) return null;
  if (state.view === "search") {
    const listed = keys.find((key) => resultLi(key));
    if (listed) {
      selectResult(listed, { scroll: true });
      return JSON.parse(listed)[1];
    }
  }
  const [collection, id] = JSON.parse(keys[0]);
  if (collection && state.view !== "item") go({ view: "item", collection, item: id });
  return id;
}
map.on("singleclick", (event) => clickAt(event.pixel));

// ---------------------------------------------------------------------------
// Views. Each render is numbered; a render that a newer one overtook stops
// touching the page.

let renderCount = 0;
let firstRender = true;

function setReady(view, ready) {
  const root = document.documentElement;
  root.dataset.view = view;
  root.dataset.ready = ready ? "true" : "false";
  viewRoot().setAttribute("aria-busy", ready ? "false" : "true");
  if (ready && firstRender) {
    firstRender = false;
    performance.mark("arcolake:first-render");
  }
}

async function render({ focus = null } = {}) {
  const initial = firstRender;
  const state = readState();
  const token = ++renderCount;
  const current = () => token === renderCount;
  setReady(state.view, false);
  stopDrawing();
  for (const a of document.querySelectorAll(".top nav a")) a.removeAttribute("aria-current");
  const nav = { collections: "nav-collections", collection: "nav-collections", search: "nav-search", item: "nav-search" }[state.view];
  if (nav) document.getElementById(nav).setAttribute("aria-current", "page");
  document.getElementById("map-tools").hidden = state.view !== "search";
  document.getElementById("map-note").textContent = "";
  say("");
  try {
    const views = { collections: renderCollections, collection: renderCollection, search: renderSearch, item: renderItem };
    const view = views[state.view];
    if (!view) throw new ApiError(404, `no view called ${JSON.stringify(state.view)}`);
    await view(state, current);
    if (!current()) return;
  } catch (e) {
    if (!current()) return;
    const root = viewRoot();
    root.replaceChildren(
      h("h2", {}, e.status === 404 ? "Not found" : "Something went wrong"),
      h("p.error", { role: "alert" }, e.message),
      e.status === 404 && !apiKey() ? h("p", {}, "Restricted data appears after you enter an API key.") : null,
    );
  }
  if (current() && !initial) moveFocus(focus);
  if (current()) {
    await waitIdle();
    if (current()) setReady(state.view, true);
  }
}

function waitIdle() {
  if (pending === 0) return Promise.resolve();
  return new Promise((resolve) => idleWaiters.push(resolve));
}

// --- Collections -------------------------------------------------------------

async function itemCounts() {
  try {
    const answer = await getJson(apiUrl("aggregate", { aggregations: "collection_frequency" }));
    const buckets = answer.aggregations?.find((a) => a.name === "collection_frequency")?.buckets || [];
    return new Map(buckets.map((b) => [b.key, b.frequency]));
  } catch {
    return new Map();
  }
}

function temporalText(collection) {
  const interval = collection.extent?.temporal?.interval?.[0];
  if (!interval) return "";
  const [a, b] = interval;
  const day = (v) => (v ? String(v).slice(0, 10) : "open");
  return `${day(a)} – ${day(b)}`;
}

function restrictedBadge(collection) {
  return collection.access === "restricted" || collection["arcolake:access"] === "restricted"
    ? h("span.badge", {}, "restricted")
    : null;
}

async function renderCollections(state, current) {
  setFootprints(null);
  clearPreviews();
  highlightSource.clear();
  drawSource.clear();
  const params = { q: state.q, datetime: datetimeRange(state.start, state.end), limit: 100 };
  if (state.inView) params.bbox = state.bbox || viewBbox().join(",");
  const form = h("form.query", { id: "collection-form", role: "search", "aria-label": "Collection search" },
    h("div", {}, h("label", { for: "collection-q" }, "Search collections"),
      h("input", { id: "collection-q", name: "q", type: "search", value: state.q, placeholder: "words in title, description, keywords" })),
    h("div.row", {},
      h("div", {}, h("label", { for: "collection-start" }, "From"), h("input", { id: "collection-start", name: "start", type: "date", value: state.start })),
      h("div", {}, h("label", { for: "collection-end" }, "To"), h("input", { id: "collection-end", name: "end", type: "date", value: state.end })),
      h("label.check", {}, h("input", { id: "collection-in-view", name: "in_view", type: "checkbox", checked: state.inView }), "Only in the map view"),
      h("button", { id: "collection-submit", type: "submit" }, "Search")),
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const inView = form.elements["in_view"].checked;
    go({ view: "collections", q: form.elements["q"].value.trim(), start: form.elements["start"].value, end: form.elements["end"].value, inView, bbox: inView ? viewBbox().join(",") : "" });
  });
  // Item counts come after the cards: an aggregation over a large catalog
  // must not hold the list back.
  const counts = itemCounts();
  const answer = await getJson(apiUrl("collections", params));
  if (!current()) return;
  const collections = answer.collections || [];
  const matched = answer.numberMatched ?? collections.length;
  const cards = collections.map((c) => collectionCard(c));
  const list = h("ul.cards", { id: "collection-list", "aria-label": "Collections" }, cards);
  const next = answer.links?.find((l) => l.rel === "next");
  viewRoot().replaceChildren(
    h("h2", {}, "Collections"),
    form,
    h("p", { id: "collection-count", dataset: { matched: String(matched) } },
      `${matched} collection${matched === 1 ? "" : "s"}${apiKey() ? "" : " (public; enter an API key for restricted ones)"}`),
    list,
    next ? h("p.muted", {}, `Showing the first ${collections.length}; refine the search to see others.`) : null,
  );
  extentSource.clear();
  for (const c of collections) {
    for (const bbox of (c.extent?.spatial?.bbox || []).slice(0, 1)) {
      const f = new ol.Feature(ol.geom.Polygon.fromExtent(mapExtent(bbox)));
      f.set("collection", c.id);
      extentSource.addFeature(f);
    }
  }
  document.title = `Collections · ${config.title}`;
  const known = await counts;
  if (!current()) return;
  for (const card of list.querySelectorAll("li.collection-card")) {
    const n = known.get(card.dataset.id);
    card.querySelector(".item-count").textContent = n === undefined ? "—" : n.toLocaleString("en");
  }
}

function collectionCard(c) {
  const hover = (on) => {
    extentSource.getFeatures().forEach((f) => f.set("hover", on && f.get("collection") === c.id));
  };
  const providers = (c.providers || []).map((p) => p.name).filter(Boolean);
  const card = h("li.collection-card", { dataset: { id: c.id }, on: { mouseenter: () => hover(true), mouseleave: () => hover(false), focusin: () => hover(true), focusout: () => hover(false) } },
    h("h3", {}, c.title || c.id, restrictedBadge(c)),
    c.title && c.title !== c.id ? h("p.muted", {}, c.id) : null,
    c.description ? h("p.description.clamp", {}, c.description) : null,
    h("dl.facts", {},
      h("dt", {}, "Items"), h("dd.item-count", {}, "…"),
      h("dt", {}, "Time"), h("dd", {}, temporalText(c) || "—"),
      h("dt", {}, "License"), h("dd", {}, c.license || "—"),
      providers.length ? [h("dt", {}, "Providers"), h("dd", {}, providers.join(", "))] : null),
    c.keywords?.length ? h("ul.chips", { "aria-label": "Keywords" }, c.keywords.slice(0, 12).map((k) => h("li", {}, k))) : null,
    h("p.links", {},
      h("a.collection-open", { href: `?view=collection&collection=${encodeURIComponent(c.id)}` }, "Details"),
      h("a.collection-items", { href: `?view=search&collections=${encodeURIComponent(c.id)}` }, "Search its items")),
  );
  card.querySelector("a.collection-open").setAttribute("aria-label", `Details: ${c.title || c.id}`);
  card.querySelector("a.collection-items").setAttribute("aria-label", `Search its items: ${c.title || c.id}`);
  return card;
}

// --- One collection ----------------------------------------------------------

async function renderCollection(state, current) {
  clearPreviews();
  highlightSource.clear();
  drawSource.clear();
  extentSource.clear();
  const id = state.collection;
  const [c, queryables, counts] = await Promise.all([
    getJson(apiUrl(`collections/${encodeURIComponent(id)}`)),
    getJson(apiUrl(`collections/${encodeURIComponent(id)}/queryables`)).catch(() => ({ properties: {} })),
    itemCounts(),
  ]);
  if (!current()) return;
  const summaries = Object.entries(c.summaries || {});
  const props = Object.entries(queryables.properties || {});
  const providers = c.providers || [];
  viewRoot().replaceChildren(
    h("p", {}, h("a", { href: "?view=collections" }, "← All collections")),
    h("h2", { id: "collection-title" }, c.title || c.id, restrictedBadge(c)),
    c.description ? h("p.description", {}, c.description) : null,
    h("p", {}, h("a.button", { id: "collection-search-items", href: `?view=search&collections=${encodeURIComponent(c.id)}` }, "Search its items")),
    h("dl.facts", {},
      h("dt", {}, "Id"), h("dd", {}, c.id),
      h("dt", {}, "Items"), h("dd", {}, counts.get(c.id)?.toLocaleString("en") ?? "—"),
      h("dt", {}, "Time"), h("dd", {}, temporalText(c) || "—"),
      h("dt", {}, "Area"), h("dd", {}, (c.extent?.spatial?.bbox?.[0] || []).map((v) => Math.round(v * 1e4) / 1e4).join(", ") || "—"),
      h("dt", {}, "License"), h("dd", {}, c.license || "—"),
      providers.length ? [h("dt", {}, "Providers"), h("dd", {}, providers.map((p) => `${p.name}${p.roles?.length ? ` (${p.roles.join(", ")})` : ""}`).join("; "))] : null),
    c.keywords?.length ? h("ul.chips", { "aria-label": "Keywords" }, c.keywords.map((k) => h("li", {}, k))) : null,
    h("table.props", { id: "collection-summaries" },
      h("caption", {}, "Summaries"),
      h("tbody", {}, summaries.length
        ? summaries.map(([k, v]) => h("tr", { dataset: { name: k } }, h("th", { scope: "row" }, k), h("td", {}, summaryText(v))))
        : h("tr", {}, h("td", { colspan: "2" }, "This collection has no summaries.")))),
    h("h3", {}, "Queryables"),
    h("p.muted", {}, "Properties a CQL2 filter can use on this collection."),
    h("ul.chips", { id: "collection-queryables", "aria-label": "Queryables" },
      props.map(([name, schema]) => h("li", { dataset: { name }, title: schema.title || "" }, name))),
    h("h3", {}, "Links"),
    h("ul", {}, (c.links || []).filter((l) => !["self", "root", "parent"].includes(l.rel)).map((l) => {
      // The catalog's hrefs, resolved against the API; only http(s) is a link.
      let href = null;
      try {
        const url = new URL(l.href, API);
        if (url.protocol === "http:" || url.protocol === "https:") href = url.href;
      } catch {
        href = null;
      }
      return h("li", {}, href ? h("a", { href, target: "_blank", rel: "noopener" }, l.title || l.rel) : (l.title || l.href), ` (${l.rel})`);
    })),
  );
  fitBbox(c.extent?.spatial?.bbox?.[0]);
  await setFootprints(apiUrl(`collections/${encodeURIComponent(id)}/tiles/WebMercatorQuad/tilejson.json`));
  document.title = `${c.title || c.id} · ${config.title}`;
}

function summaryText(v) {
  if (v && typeof v === "object" && !Array.isArray(v) && ("minimum" in v || "maximum" in v)) return `${formatValue(v.minimum)} – ${formatValue(v.maximum)}`;
  return formatValue(v);
}

// --- Search ------------------------------------------------------------------

let collectionIndex = null;

async function allCollections() {
  if (!collectionIndex || collectionIndex.key !== apiKey()) {
    const answer = await getJson(apiUrl("collections", { limit: 1000 }));
    collectionIndex = { key: apiKey(), list: answer.collections || [] };
  }
  return collectionIndex.list;
}

/** The properties of the queryables or sortables (`kind`) of the chosen
 * collections: one collection's own, else the catalog's. */
async function schemaProperties(kind, collections) {
  const url = collections.length === 1
    ? apiUrl(`collections/${encodeURIComponent(collections[0])}/${kind}`)
    : apiUrl(kind);
  try {
    return Object.entries((await getJson(url)).properties || {});
  } catch {
    return [];
  }
}

const queryablesOf = (collections) => schemaProperties("queryables", collections);
const sortablesOf = (collections) => schemaProperties("sortables", collections);

function queryableChips(queryables, insert) {
  return queryables.map(([name, schema]) =>
    h("button.chip", { type: "button", title: `${schema.title || name}${schema.type ? ` (${schema.type})` : ""}`, on: { click: () => insert(name) } }, name));
}

function searchForm(state, collections, queryables, sortables) {
  // The form shows UTC; an instant given with an offset is converted.
  const datetimeLocal = (v) => {
    if (!v) return "";
    const d = new Date(/Z$|[+-]\d\d:\d\d$/.test(v) ? v : `${v}Z`);
    return Number.isNaN(d.getTime()) ? "" : d.toISOString().slice(0, 16);
  };
  const sortOptions = [["", "Default (newest first)"], ["-properties.datetime", "Newest first"], ["properties.datetime", "Oldest first"]];
  for (const [name, schema] of sortables) {
    if (["datetime", "id", "collection", "geometry"].includes(name)) continue;
    const field = `properties.${name}`;
    const label = schema.title || name;
    sortOptions.push([field, `${label} ↑`], [`-${field}`, `${label} ↓`]);
  }
  if (state.sortby && !sortOptions.some(([v]) => v === state.sortby)) sortOptions.push([state.sortby, state.sortby]);
  const filter = h("textarea", { id: "search-filter", name: "filter", rows: "3", spellcheck: "false", "aria-describedby": "filter-help search-error", placeholder: "eo:cloud_cover < 20 AND platform = 'sentinel-2a'" });
  filter.value = state.filter;
  const insert = (text) => {
    const { selectionStart: a, selectionEnd: b, value } = filter;
    filter.value = value.slice(0, a) + text + value.slice(b);
    filter.focus();
    filter.selectionStart = filter.selectionEnd = a + text.length;
  };
  const form = h("form.query", { id: "search-form", role: "search", "aria-label": "Item search", dataset: { intersects: state.intersects } },
    h("fieldset", { id: "search-collections" }, h("legend", {}, "Collections"),
      h("div.choices", {}, collections.map((c) => h("label.check", {},
        h("input", { type: "checkbox", name: "collections", value: c.id, checked: state.collections.includes(c.id) }), c.title || c.id)))),
    h("div.row", {},
      h("div.grow", {}, h("label", { for: "search-bbox" }, "Area (west, south, east, north)"),
        h("input", { id: "search-bbox", name: "bbox", type: "text", value: state.bbox, placeholder: "draw on the map, or e.g. 5,45,15,55", "aria-describedby": "area-note" }))),
    h("p.muted", { id: "area-note" }, state.intersects ? "Area: the drawn polygon" : ""),
    h("div.row", {},
      h("div", {}, h("label", { for: "search-start" }, "From (UTC)"), h("input", { id: "search-start", name: "start", type: "datetime-local", value: datetimeLocal(state.start) })),
      h("div", {}, h("label", { for: "search-end" }, "To (UTC)"), h("input", { id: "search-end", name: "end", type: "datetime-local", value: datetimeLocal(state.end) }))),
    h("div", {}, h("label", { for: "search-filter" }, "Filter (CQL2 text)"), filter,
      h("p.muted", { id: "filter-help" }, queryables.length ? "Queryables (click to insert):" : ""),
      h("div.chips", { id: "search-queryables" }, queryableChips(queryables, insert))),
    h("p.error", { id: "search-error", role: "alert", hidden: true }),
    h("div.row", {},
      h("div", {}, h("label", { for: "search-sortby" }, "Sort"),
        h("select", { id: "search-sortby", name: "sortby" }, sortOptions.map(([v, label]) => h("option", { value: v, selected: v === state.sortby }, label)))),
      h("div", {}, h("label", { for: "search-limit" }, "Per page"),
        h("input", { id: "search-limit", name: "limit", type: "number", min: "1", max: "1000", value: String(state.limit) })),
      h("button", { id: "search-submit", type: "submit" }, "Search")),
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const el = form.elements;
    go({
      view: "search",
      collections: [...form.querySelectorAll("input[name=collections]:checked")].map((i) => i.value),
      bbox: form.dataset.intersects ? "" : el["bbox"].value.replace(/\s+/g, ""),
      intersects: form.dataset.intersects || "",
      start: utcInstant(el["start"].value),
      end: utcInstant(el["end"].value),
      filter: el["filter"].value.trim(),
      sortby: el["sortby"].value,
      limit: Math.max(1, Math.min(1000, Number(el["limit"].value) || DEFAULT_LIMIT)),
      page: "",
    }, { focus: "#search-matched" });
  });
  // The queryables offered follow the collections ticked.
  form.querySelector("#search-collections").addEventListener("change", async () => {
    const ticked = [...form.querySelectorAll("input[name=collections]:checked")].map((i) => i.value);
    const fresh = await queryablesOf(ticked);
    document.getElementById("filter-help").textContent = fresh.length ? "Queryables (click to insert):" : "";
    document.getElementById("search-queryables")?.replaceChildren(...queryableChips(fresh, insert));
  });
  form.elements["bbox"].addEventListener("change", () => {
    form.dataset.intersects = "";
    document.getElementById("area-note").textContent = "";
    drawArea(form.elements["bbox"].value, "");
  });
  return form;
}

async function renderSearch(state, current) {
  clearPreviews();
  extentSource.clear();
  const [collections, queryables, sortables] = await Promise.all([
    allCollections(), queryablesOf(state.collections), sortablesOf(state.collections),
  ]);
  if (!current()) return;
  const form = searchForm(state, collections, queryables, sortables);
  const results = h("section", { id: "search-results", "aria-label": "Results" });
  viewRoot().replaceChildren(h("h2", {}, "Search items"), form, results);
  drawArea(state.bbox, state.intersects);
  // A new search over an area shows the area; pages keep the map as it is.
  if (!state.page && drawSource.getFeatures().length) {
    map.getView().fit(drawSource.getExtent(), { padding: [40, 40, 40, 40], maxZoom: 12, duration: 0 });
  }
  const params = searchParams(state);
  const page = new URLSearchParams(params);
  if (state.page) page.set("token", state.page);
  document.title = `Search · ${config.title}`;
  try {
    await Promise.all([
      showResults(apiUrl("search", page), state, current),
      setFootprints(apiUrl("search/tiles/WebMercatorQuad/tilejson.json", withoutPaging(params))),
    ]);
  } catch (e) {
    if (!current()) return;
    const error = document.getElementById("search-error");
    error.textContent = e.message;
    error.hidden = false;
    results.replaceChildren(h("p.muted", {}, "No results: the search was refused."));
    setFootprints(null);
  }
}

function withoutPaging(params) {
  const p = new URLSearchParams(params);
  p.delete("limit");
  p.delete("sortby");
  p.delete("token");
  return p;
}

function thumbnailHref(item) {
  const assets = Object.values(item.assets || {});
  const thumb = item.assets?.thumbnail || assets.find((a) => a.roles?.includes("thumbnail"));
  return thumb?.href || null;
}

/** Signed hrefs for thumbnails that this server can hand out (others are not shown: the page reads only this server). */
async function signedThumbnails(items) {
  const hrefs = [...new Set(items.map(thumbnailHref).filter(Boolean))];
  const out = new Map();
  if (!hrefs.length) return out;
  const sameOrigin = (href) => {
    try {
      return new URL(href, location.href).origin === location.origin;
    } catch {
      return false;
    }
  };
  try {
    const answer = await getJson(apiUrl("sign"), { json: { hrefs } });
    answer.signed.forEach((s, i) => sameOrigin(s.href) && out.set(hrefs[i], s.href));
  } catch {
    // One of them may not be readable: sign them one by one.
    await Promise.all(hrefs.map(async (href) => {
      try {
        const s = await getJson(apiUrl("sign", { href }));
        if (sameOrigin(s.href)) out.set(href, s.href);
      } catch {
        // not ours, or not for this caller
      }
    }));
  }
  return out;
}

async function showResults(url, state, current) {
  const page = await getJson(url);
  if (!current()) return;
  const items = page.features || [];
  resultGeometries.clear();
  hoverIds.clear();
  selectedId = null;
  for (const item of items) {
    if (item.geometry) resultGeometries.set(itemKey(item.collection, item.id), geojson.readFeature(item));
  }
  refreshHighlight();
  const matched = page.numberMatched ?? page.context?.matched;
  const next = page.links?.find((l) => l.rel === "next" && (!l.method || l.method === "GET"));
  // The page is in the address as the API's paging token, so a page is a
  // permalink and Back returns to the page before.
  const nextToken = next ? new URL(next.href, API).searchParams.get("token") : null;
  const thumbs = signedThumbnails(items);
  const list = h("ul.results", { id: "result-list", "aria-label": "Items found" }, items.map((item) => resultRow(item)));
  const results = document.getElementById("search-results");
  const count = matched === undefined ? `${items.length} items on this page` : `${Number(matched).toLocaleString("en")} item${matched === 1 ? "" : "s"} match`;
  results.replaceChildren(
    h("p", { id: "search-matched", dataset: { matched: matched === undefined ? "" : String(matched) } },
      count, state.page ? " (a later page)" : ""),
    list,
    h("div.pager", {},
      h("button.secondary", { id: "first-page", type: "button", disabled: !state.page, on: { click: () => go({ page: "" }, { focus: "#search-matched" }) } }, "First page"),
      h("button", { id: "next-page", type: "button", disabled: !nextToken, on: { click: () => go({ page: nextToken }, { focus: "#search-matched" }) } }, "Next page")),
    h("details", {}, h("summary", {}, "Open this search in code"), searchSnippets(state)),
  );
  const signed = await thumbs;
  if (!current()) return;
  for (const item of items) {
    const href = signed.get(thumbnailHref(item));
    const slot = resultLi(itemKey(item.collection, item.id))?.querySelector(".thumb");
    if (href && slot) slot.replaceWith(h("img.thumb", { src: href, alt: "", loading: "lazy", decoding: "async" }));
  }
}

function resultRow(item) {
  const p = item.properties || {};
  const when = p.datetime || p.start_datetime;
  const cloud = p["eo:cloud_cover"];
  const href = `?view=item&collection=${encodeURIComponent(item.collection)}&item=${encodeURIComponent(item.id)}`;
  const li = h("li.result", { dataset: { id: item.id, collection: item.collection || "" } },
    h("div.thumb", { "aria-hidden": "true" }, "no preview"),
    h("div", {},
      h("a", { href }, p.title || item.id),
      h("div.meta.muted", {}, [item.collection, when ? formatDate(when) : null, typeof cloud === "number" ? `${Math.round(cloud * 10) / 10}% cloud` : null, p.platform].filter(Boolean).join(" · "))),
  );
  const key = itemKey(item.collection, item.id);
  const hover = (on) => {
    if (on) hoverIds.add(key);
    else hoverIds.delete(key);
    li.classList.toggle("highlighted", on);
    refreshHighlight();
  };
  li.addEventListener("mouseenter", () => hover(true));
  li.addEventListener("mouseleave", () => hover(false));
  li.addEventListener("focusin", () => {
    hover(true);
    selectResult(key);
  });
  li.addEventListener("focusout", () => hover(false));
  li.addEventListener("click", (e) => {
    if (e.target.closest("a")) return;
    selectResult(key);
  });
  return li;
}

function selectResult(key, { scroll = false } = {}) {
  selectedId = key;
  for (const li of document.querySelectorAll("li.result")) {
    const on = itemKey(li.dataset.collection, li.dataset.id) === key;
    li.classList.toggle("selected", on);
    if (on) li.setAttribute("aria-current", "true");
    else li.removeAttribute("aria-current");
    if (on && scroll) li.scrollIntoView({ block: "nearest" });
  }
  refreshHighlight();
}

function clientHeaders() {
  return apiKey() ? `, headers={"Authorization": "Bearer " + os.environ["ARCOLAKE_API_KEY"]}` : "";
}

function searchSnippets(state) {
  const args = [];
  if (state.collections.length) args.push(`collections=${pyLiteral(state.collections)}`);
  let geometry = null;
  try {
    geometry = state.intersects ? JSON.parse(state.intersects) : null;
  } catch {
    geometry = null;
  }
  const bbox = state.bbox.split(",").map(Number);
  if (geometry) args.push(`intersects=${pyLiteral(geometry)}`);
  else if (bbox.length === 4 && bbox.every(Number.isFinite)) args.push(`bbox=${pyLiteral(bbox)}`);
  const datetime = datetimeRange(state.start, state.end);
  if (datetime) args.push(`datetime=${pyString(datetime)}`);
  if (state.filter) args.push(`filter=${pyString(state.filter)}`, `filter_lang="cql2-text"`);
  if (state.sortby) args.push(`sortby=${pyString(state.sortby)}`);
  args.push("max_items=1000");
  const py = [
    apiKey() ? "import os\n" : "",
    "from pystac_client import Client\n\n",
    `catalog = Client.open(${pyString(API.href)}${clientHeaders()})\n`,
    `search = catalog.search(\n    ${args.join(",\n    ")},\n)\n`,
    "items = search.item_collection()\nprint(len(items), \"items\")\n",
  ].join("");
  const gpd = [
    "import geopandas\n\n",
    "# the items found, as a GeoDataFrame (one row per item)\n",
    "frame = geopandas.GeoDataFrame.from_features(items.to_dict(), crs=\"EPSG:4326\")\n",
  ].join("");
  return h("div", { id: "search-snippets" }, snippet("pystac-client", "pystac-client", py), snippet("geopandas", "geopandas (from the search above)", gpd));
}

// --- Item --------------------------------------------------------------------

const EXTENSIONS = {
  eo: "Electro-optical", proj: "Projection", sat: "Satellite", view: "View geometry", sar: "SAR",
  raster: "Raster", file: "File", processing: "Processing", s2: "Sentinel-2", landsat: "Landsat",
  grid: "Grid", mgrs: "MGRS", storage: "Storage", table: "Table", cube: "Datacube", sci: "Scientific",
  label: "Label", pc: "Point cloud", version: "Version", ml: "Machine learning", order: "Order",
  arcolake: "arcolake", xarray: "xarray", zarr: "Zarr", pmtiles: "PMTiles", vector: "Vector",
};

function propertyGroups(properties) {
  const groups = new Map([["", []]]);
  for (const [name, value] of Object.entries(properties)) {
    // How to sign assets is for clients, and shown with each asset.
    if (name === "auth:schemes") continue;
    const prefix = name.includes(":") ? name.split(":")[0] : "";
    if (!groups.has(prefix)) groups.set(prefix, []);
    groups.get(prefix).push([name, value]);
  }
  return [...groups].filter(([, rows]) => rows.length);
}

function propertyValue(name, value) {
  if (/datetime$|^created$|^updated$|expires/.test(name) && typeof value === "string") return formatDate(value);
  if (name === "eo:cloud_cover" && typeof value === "number") return `${value}%`;
  if (name === "gsd" && typeof value === "number") return `${value} m`;
  return formatValue(value);
}

function assetKind(asset) {
  const type = (asset.type || "").toLowerCase();
  const href = (asset.href || "").split("?")[0].toLowerCase();
  if (type.includes("zarr") || href.endsWith(".zarr") || href.endsWith(".zarr/")) return "zarr";
  if (type.startsWith("image/tiff") || /\.tiff?$/.test(href)) return "cog";
  if (type.includes("parquet") || href.endsWith(".parquet")) return "geoparquet";
  if (type.includes("flatgeobuf") || href.endsWith(".fgb")) return "flatgeobuf";
  if (type.includes("pmtiles") || href.endsWith(".pmtiles")) return "pmtiles";
  if (type.includes("netcdf") || /\.nc$/.test(href)) return "netcdf";
  if (type.startsWith("image/")) return "image";
  return "other";
}

function itemSnippets(item, signedAssets) {
  const blocks = [];
  const key = apiKey();
  const py = [
    key ? "import os\n" : "",
    "from pystac_client import Client\n\n",
    `catalog = Client.open(${pyString(API.href)}${clientHeaders()})\n`,
    `item = catalog.get_collection(${pyString(item.collection)}).get_item(${pyString(item.id)})\n`,
    "print(item.properties)\n",
  ].join("");
  blocks.push(snippet("pystac-client", "pystac-client", py));
  const entries = Object.entries(signedAssets);
  const first = (kind) => entries.find(([, a]) => assetKind(a) === kind);
  const zarr = first("zarr");
  if (zarr) {
    const [k, a] = zarr;
    const options = a["xarray:storage_options"];
    blocks.push(snippet("xarray", `xarray (asset “${k}”)`, [
      "import xarray as xr\n\n",
      "# a signed item: the href and storage options carry the signature (valid until the expiry)\n",
      `ds = xr.open_zarr(\n    ${pyString(a.href)},\n${options ? `    storage_options=${pyLiteral(options)},\n` : ""}    consolidated=None,\n)\n`,
      "print(ds)\n",
    ].join("")));
  }
  const cog = first("cog");
  if (cog) {
    const [k, a] = cog;
    blocks.push(snippet("rasterio", `rasterio / GDAL (asset “${k}”)`, [
      "import rasterio\n\n",
      `with rasterio.open(${pyString(`/vsicurl/${a.href}`)}) as src:\n`,
      "    print(src.profile)\n",
      "    window = src.read(1, window=((0, 256), (0, 256)))\n",
      `\n# shell: gdalinfo ${shellQuote(`/vsicurl/${a.href}`)}\n`,
    ].join("")));
  }
  const parquet = first("geoparquet");
  if (parquet) {
    const [k, a] = parquet;
    // A partitioned dataset (a directory) is read through the proxy with
    // the collection's token as a header: the signed item's storage options.
    const options = a["table:storage_options"];
    const sql = (text) => `'${String(text).replaceAll("'", "''")}'`;
    blocks.push(snippet("geopandas", `geopandas (asset “${k}”)`, options
      ? `import geopandas\n\nframe = geopandas.read_parquet(${pyString(a.href)}, storage_options=${pyLiteral(options)})\nprint(frame.head())\n`
      : `import fsspec\nimport geopandas\n\nwith fsspec.open(${pyString(a.href)}) as f:\n    frame = geopandas.read_parquet(f)\nprint(frame.head())\n`));
    // DuckDB cannot list a directory over HTTP: one file only.
    if (!options) {
      blocks.push(snippet("duckdb", `DuckDB (asset “${k}”)`,
        `INSTALL httpfs; LOAD httpfs;\nINSTALL spatial; LOAD spatial;\nSELECT * FROM read_parquet(${sql(a.href)}) LIMIT 10;\n`));
    }
  }
  const fgb = first("flatgeobuf");
  if (fgb && !parquet) {
    const [k, a] = fgb;
    blocks.push(snippet("geopandas", `geopandas (asset “${k}”)`, `import geopandas\n\nframe = geopandas.read_file(${pyString(`/vsicurl/${a.href}`)})\nprint(frame.head())\n`));
  }
  const qgis = [];
  if (cog) qgis.push(`iface.addRasterLayer(${pyString(`/vsicurl/${cog[1].href}`)}, ${pyString(item.id)})`);
  for (const kind of ["geoparquet", "flatgeobuf"]) {
    const e = first(kind);
    if (e) qgis.push(`iface.addVectorLayer(${pyString(`/vsicurl/${e[1].href}`)}, ${pyString(`${item.id} ${e[0]}`)}, "ogr")`);
  }
  const tiles = new URL(`collections/${encodeURIComponent(item.collection)}/tiles/WebMercatorQuad/{z}/{y}/{x}`, API).href.replace(/%7B/g, "{").replace(/%7D/g, "}");
  qgis.push(`iface.addVectorTileLayer("type=xyz&url=" + ${pyString(encodeURIComponent(tiles))} + "&zmin=0&zmax=14", ${pyString(`${item.collection} footprints`)})`);
  blocks.push(snippet("qgis", "QGIS (Python console)", `${qgis.join("\n")}\n`));
  return blocks;
}

async function previewLayer(item, key) {
  const base = `collections/${encodeURIComponent(item.collection)}/items/${encodeURIComponent(item.id)}/assets/${encodeURIComponent(key)}/tiles/WebMercatorQuad/tilejson.json`;
  const tilejson = await getJson(apiUrl(base));
  const template = tilejson.tiles?.[0];
  if (!template) return null;
  const maxZoom = tilejson.maxzoom ?? 14;
  if (tilejson.vector_layers) {
    return new ol.layer.VectorTile({
      source: mvtSource(template, { maxZoom }),
      style: new ol.style.Style({
        fill: new ol.style.Fill({ color: "rgba(130, 40, 160, 0.15)" }),
        stroke: new ol.style.Stroke({ color: "#7b2a9c", width: 1.2 }),
        image: new ol.style.Circle({ radius: 3.5, fill: new ol.style.Fill({ color: "#7b2a9c" }) }),
      }),
      properties: { asset: key },
    });
  }
  return new ol.layer.Tile({ source: rasterSource(template, { maxZoom }), opacity: 0.85, properties: { asset: key } });
}

async function renderItem(state, current) {
  extentSource.clear();
  clearPreviews();
  drawSource.clear();
  const path = `collections/${encodeURIComponent(state.collection)}/items/${encodeURIComponent(state.item)}`;
  const [item, signed] = await Promise.all([getJson(apiUrl(path)), getJson(apiUrl(path, { sign: "true" })).catch(() => null)]);
  if (!current()) return;
  const signedAssets = signed?.assets || {};
  const p = item.properties || {};
  const groups = propertyGroups(p);
  const overview = h("div", { id: "item-overview", role: "tabpanel", "aria-labelledby": "tab-overview" },
    h("h3", {}, "Assets"),
    h("ul.assets", { id: "item-assets" }, Object.entries(item.assets || {}).map(([key, asset]) => assetRow(item, key, asset, signedAssets[key]))),
    h("h3", {}, "Properties"),
    h("div", { id: "item-properties" }, groups.map(([prefix, rows]) => h("table.props", {},
      h("caption", {}, prefix ? `${EXTENSIONS[prefix] || prefix} (${prefix}:)` : "General"),
      h("tbody", {}, rows.map(([name, value]) => h("tr", { dataset: { name } },
        h("th", { scope: "row" }, name.includes(":") ? [name.split(":").slice(1).join(":"), h("small", {}, name)] : name),
        h("td", {}, propertyValue(name, value)))))))),
    h("h3", {}, "Open it in code"),
    h("div", { id: "item-snippets" }, itemSnippets(item, Object.fromEntries(Object.entries(item.assets || {}).map(([k, a]) => [k, signedAssets[k] || a])))),
  );
  const json = h("div", { id: "item-json-panel", role: "tabpanel", "aria-labelledby": "tab-json", hidden: true },
    h("pre", { id: "item-json", tabindex: "0", "aria-label": "The item as JSON" }, JSON.stringify(item, null, 2)));
  // Tabs as the ARIA pattern has them: one tab stop, arrows move between.
  const choose = (id) => {
    for (const b of document.querySelectorAll(".tabs button")) {
      b.setAttribute("aria-selected", b.id === id ? "true" : "false");
      b.tabIndex = b.id === id ? 0 : -1;
    }
    overview.hidden = id !== "tab-overview";
    json.hidden = id !== "tab-json";
  };
  const tab = (id, label, panel) => h("button", { id, type: "button", role: "tab", "aria-selected": id === "tab-overview" ? "true" : "false", tabindex: id === "tab-overview" ? "0" : "-1", "aria-controls": panel, on: {
    click: () => choose(id),
    keydown: (e) => {
      if (!["ArrowLeft", "ArrowRight", "Home", "End"].includes(e.key)) return;
      e.preventDefault();
      const other = id === "tab-overview" ? "tab-json" : "tab-overview";
      const to = e.key === "Home" ? "tab-overview" : e.key === "End" ? "tab-json" : other;
      choose(to);
      document.getElementById(to).focus();
    },
  } }, label);
  viewRoot().replaceChildren(
    h("p", {}, h("a", { href: `?view=search&collections=${encodeURIComponent(item.collection)}` }, `← Items of ${item.collection}`)),
    h("h2", { id: "item-title" }, p.title || item.id),
    h("dl.facts", {},
      h("dt", {}, "Collection"), h("dd", {}, h("a", { href: `?view=collection&collection=${encodeURIComponent(item.collection)}` }, item.collection)),
      h("dt", {}, "Time"), h("dd", {}, formatDate(p.datetime) || `${formatDate(p.start_datetime)} – ${formatDate(p.end_datetime)}`),
      item.bbox ? [h("dt", {}, "Bounding box"), h("dd", {}, item.bbox.map((v) => Math.round(v * 1e4) / 1e4).join(", "))] : null),
    h("div.tabs", { role: "tablist", "aria-label": "Item" }, tab("tab-overview", "Overview", "item-overview"), tab("tab-json", "JSON", "item-json-panel")),
    overview,
    json,
  );
  document.title = `${item.id} · ${config.title}`;
  resultGeometries.clear();
  hoverIds.clear();
  if (item.geometry) {
    selectedId = itemKey(item.collection, item.id);
    resultGeometries.set(selectedId, geojson.readFeature(item));
  }
  refreshHighlight();
  fitBbox(item.bbox);
  // The footprint from the tile endpoint, and previews of tiled assets.
  await Promise.all([
    setFootprints(apiUrl("search/tiles/WebMercatorQuad/tilejson.json", { collections: item.collection, ids: item.id })),
    ...Object.entries(item.assets || {}).filter(([, a]) => ["pmtiles", "geoparquet", "flatgeobuf"].includes(assetKind(a))).map(async ([key]) => {
      try {
        const layer = await previewLayer(item, key);
        if (layer && current()) {
          previews.getLayers().push(layer);
          const toggle = document.querySelector(`li.asset[data-key="${CSS.escape(key)}"] .preview-toggle`);
          if (toggle) {
            toggle.hidden = false;
            toggle.querySelector("input").addEventListener("change", (e) => layer.setVisible(e.target.checked));
          }
        }
      } catch {
        // not published as tiles: no preview
      }
    }),
  ]);
}

function assetRow(item, key, asset, signedAsset) {
  const size = asset["file:size"];
  const href = signedAsset?.href || asset.href;
  // A directory (Zarr store, partitioned table) has no bytes of its own to
  // download: its signature is a header, for the code below.
  const directory = Boolean(signedAsset?.["xarray:storage_options"] || signedAsset?.["table:storage_options"]);
  const readable = /^https?:/.test(href) && !directory;
  const expiry = signedAsset?.["arcolake:expiry"];
  return h("li.asset", { dataset: { key } },
    h("h4", {}, asset.title || key, asset.title ? h("span.muted", {}, ` (${key})`) : null),
    h("div.meta.muted", {}, [asset.type || "unknown type", size ? formatBytes(size) : null, asset.roles?.length ? `roles: ${asset.roles.join(", ")}` : null].filter(Boolean).join(" · ")),
    readable
      ? h("p", {}, h("a.asset-link", { href, dataset: { size: size ? String(size) : "" }, rel: "noopener", download: "" }, "Download or stream (signed link)"),
        expiry ? h("span.muted", {}, ` valid until ${formatDate(expiry)}`) : null)
      : h("p.muted", {}, directory ? "A store of many files: open it with the code below (the signature goes in its storage options)." : `Not readable through this server: ${asset.href}`),
    h("label.check.preview-toggle", { hidden: true }, h("input", { type: "checkbox", checked: true }), "Show on the map"),
  );
}

// ---------------------------------------------------------------------------
// The API key dialog.

function showKeyStatus() {
  const key = apiKey();
  document.getElementById("api-key-status").textContent = key ? `Key …${key.slice(-4)} in use` : "Public data";
}

const dialog = document.getElementById("api-key-dialog");
document.getElementById("api-key-button").addEventListener("click", () => {
  document.getElementById("api-key-input").value = apiKey();
  document.getElementById("api-key-error").textContent = "";
  // Escape closes the dialog without a button: nothing is saved.
  dialog.returnValue = "";
  dialog.showModal();
});
document.getElementById("api-key-save").addEventListener("click", (event) => {
  const value = document.getElementById("api-key-input").value.trim();
  // A key goes into an HTTP header: printable ASCII without spaces.
  if (value && !/^[\x21-\x7e]+$/.test(value)) {
    event.preventDefault();
    document.getElementById("api-key-error").textContent = "A key is letters, digits and punctuation, without spaces.";
  }
});
dialog.addEventListener("close", () => {
  const input = document.getElementById("api-key-input");
  if (dialog.returnValue === "save" && input.value.trim()) sessionStorage.setItem(KEY_STORE, input.value.trim());
  else if (dialog.returnValue === "clear") sessionStorage.removeItem(KEY_STORE);
  else return;
  input.value = "";
  collectionIndex = null;
  footprintTemplate = null;
  showKeyStatus();
  render();
});

// ---------------------------------------------------------------------------
// For people and tests driving the page from the console.

window.arcolake = {
  map,
  idle: waitIdle,
  /** Fit the map to a lon/lat box; resolves once everything is drawn. */
  fitTo(bbox) {
    return new Promise((resolve) => {
      map.once("rendercomplete", () => resolve());
      fitBbox(bbox, { padding: 10, maxZoom: 14 });
      map.render();
    });
  },
  /** Ids of the footprints the map has drawn in its current view. */
  async renderedFootprintIds() {
    await waitIdle();
    const extent = map.getView().calculateExtent(map.getSize());
    return [...new Set(footprints.getFeaturesInExtent(extent).map((f) => String(f.get("id"))))];
  },
  /** Do what a click on the map at lon/lat does; the id picked, or null. */
  selectAtLonLat(lon, lat) {
    map.renderSync();
    return clickAt(map.getPixelFromCoordinate(ol.proj.fromLonLat([lon, lat])));
  },
};

showKeyStatus();
render();
