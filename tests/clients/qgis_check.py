#!/usr/bin/env python3
"""Check arcolake's vector tiles with QGIS (headless), the way a desktop GIS user would.

  QT_QPA_PLATFORM=offscreen /usr/bin/python3 tests/clients/qgis_check.py \
      'http://127.0.0.1:18080/collections/demo/tiles/WebMercatorQuad/{z}/{y}/{x}?v=7' \
      3 item-a,item-b [--bbox W,S,E,N] [--layer footprints]

Needs Debian's python3-qgis (QGIS 3.22 on Debian 12), which is installed for
/usr/bin/python3 only: run it with that interpreter, not a venv's or pyenv's.

It opens the template as a QGIS vector tile layer (URI
`type=xyz&url=<percent-encoded template>&zmin=0&zmax=14`), checks that the
layer is valid, then has QGIS fetch and decode every tile of ZOOM that covers
--bbox (longitude/latitude; default: the whole world, allowed up to zoom 3).
QGIS 3.22 does not expose its MVT decoder or tile loader to Python, so the
decoded features are taken where QGIS hands them over: a vector tile renderer
of our own, whose renderTile() records the features of each decoded tile
while the layer is rendered offscreen. The attribute values of `id` in layer
`footprints` must include every EXPECTED id.

Exits 0 when they do; 1 with a message saying what was missing otherwise.
"""
import argparse
import math
import os
import sys
import time
from urllib.parse import quote

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

try:
    from qgis.core import (
        QgsApplication,
        QgsCoordinateReferenceSystem,
        QgsFillSymbol,
        QgsMapRendererCustomPainterJob,
        QgsMapSettings,
        QgsNetworkAccessManager,
        QgsNetworkReplyContent,
        QgsRectangle,
        QgsTileMatrix,
        QgsVectorTileBasicRenderer,
        QgsVectorTileBasicRendererStyle,
        QgsVectorTileLayer,
        QgsWkbTypes,
    )
    from qgis.PyQt.QtCore import QSize
    from qgis.PyQt.QtGui import QColor, QImage, QPainter
    from qgis.PyQt.QtNetwork import QNetworkReply, QNetworkRequest
except ImportError as e:  # pragma: no cover - environment problem
    print(
        f"FAIL: cannot import QGIS's Python API ({e}); install Debian's python3-qgis "
        "and run this with /usr/bin/python3",
        file=sys.stderr,
    )
    sys.exit(2)

WEB_MERCATOR_HALF = 20037508.342789244
MAX_LAT = 85.0511287798066
TILE_PX = 256
MAX_TILES = 256

# Features seen by every clone of the recording renderer: QGIS renders with a
# clone of the layer's renderer, so they go to one module-level place.
DECODED = []  # ((z, x, y), layer name, {attribute: value}, geometry type)
RENDERS = []  # (tile zoom QGIS chose, first column, last column, first row, last row)
REPLIES = []  # (url, HTTP status, network error or None) of QGIS's tile requests
_KEEP = []  # keep Python renderers alive while C++ owns them


class RecordingRenderer(QgsVectorTileBasicRenderer):
    """A basic renderer (so QGIS asks it which layers and attributes to decode)
    whose renderTile records the decoded features instead of only drawing them."""

    def __init__(self, layer_name, attributes):
        super().__init__()
        self.layer_name = layer_name
        self.attributes = list(attributes)
        # Attributes are decoded only when a style's filter names them.
        style = QgsVectorTileBasicRendererStyle(f"record {layer_name}", layer_name, QgsWkbTypes.PolygonGeometry)
        style.setFilterExpression(" OR ".join(f'"{a}" IS NOT NULL OR "{a}" IS NULL' for a in self.attributes))
        style.setSymbol(QgsFillSymbol.createSimple({"color": "255,0,0,128"}))
        self.setStyles([style])

    def clone(self):
        copy = RecordingRenderer(self.layer_name, self.attributes)
        _KEEP.append(copy)
        return copy

    def startRender(self, context, tile_zoom, tile_range):
        RENDERS.append((tile_zoom, tile_range.startColumn(), tile_range.endColumn(),
                        tile_range.startRow(), tile_range.endRow()))
        super().startRender(context, tile_zoom, tile_range)

    def renderTile(self, tile, context):
        tid = tile.id()
        for name in tile.layers():
            for feature in tile.layerFeatures(name):
                attrs = {f.name(): feature.attribute(f.name()) for f in feature.fields()}
                gtype = QgsWkbTypes.displayString(feature.geometry().wkbType())
                DECODED.append(((tid.zoomLevel(), tid.column(), tid.row()), name, attrs, gtype))
        super().renderTile(tile, context)


def record_reply(reply):
    status = reply.attribute(QNetworkRequest.HttpStatusCodeAttribute)
    error = None if reply.error() == QNetworkReply.NoError else reply.errorString()
    REPLIES.append((reply.request().url().toString(), status, error))


def fetch_summary():
    if not REPLIES:
        return "QGIS made no tile request"
    statuses = {}
    for _, status, error in REPLIES:
        key = f"HTTP {status}" if status else error
        statuses[key] = statuses.get(key, 0) + 1
    return f"{len(REPLIES)} tile requests: " + ", ".join(f"{n}x {k}" for k, n in sorted(statuses.items()))


def fail(message, log=()):
    print(f"FAIL: {message}", file=sys.stderr)
    for line in log:
        print(f"  qgis log: {line}", file=sys.stderr)
    sys.exit(1)


def mercator(lon, lat):
    lat = max(-MAX_LAT, min(MAX_LAT, lat))
    x = lon * WEB_MERCATOR_HALF / 180.0
    y = math.log(math.tan((90.0 + lat) * math.pi / 360.0)) * WEB_MERCATOR_HALF / math.pi
    return x, y


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("template", metavar="URL_TEMPLATE", help="XYZ template with {z}, {x} and {y}")
    ap.add_argument("zoom", metavar="ZOOM", type=int)
    ap.add_argument("expected", metavar="EXPECTED_IDS", help="comma-separated ids that must be decoded")
    ap.add_argument("--bbox", help="W,S,E,N in degrees: read only the tiles of ZOOM covering it")
    ap.add_argument("--layer", default="footprints", help="MVT layer name (default: footprints)")
    ap.add_argument("--attribute", default="id", help="attribute holding the ids (default: id)")
    args = ap.parse_args()
    expected = [e for e in args.expected.split(",") if e]
    if not expected:
        ap.error("EXPECTED_IDS is empty")
    if not 0 <= args.zoom <= 14:
        ap.error("ZOOM must be within the layer's 0..14")
    for part in ("{z}", "{x}", "{y}"):
        if part not in args.template:
            ap.error(f"URL_TEMPLATE has no {part}")

    started = time.monotonic()
    QgsApplication.setPrefixPath("/usr", True)
    app = QgsApplication([], False)
    app.initQgis()
    log = []
    QgsApplication.messageLog().messageReceived.connect(
        lambda message, tag, level: log.append(f"[{tag}] {message}")
    )
    QgsNetworkAccessManager.instance().finished[QgsNetworkReplyContent].connect(record_reply)
    try:
        return check(args, expected, log, started)
    finally:
        app.exitQgis()


def check(args, expected, log, started):
    uri = f"type=xyz&url={quote(args.template, safe='')}&zmin=0&zmax=14"
    layer = QgsVectorTileLayer(uri, "arcolake")
    if not layer.isValid():
        fail(f"QGIS says the vector tile layer is not valid (uri {uri!r}): {layer.error().summary()}", log)
    if layer.sourcePath() != args.template:
        fail(f"QGIS decoded the URI's url as {layer.sourcePath()!r}, not {args.template!r}")
    layer.setRenderer(RecordingRenderer(args.layer, [args.attribute]))

    matrix = QgsTileMatrix.fromWebMercator(args.zoom)
    if args.bbox:
        try:
            w, s, e, n = (float(v) for v in args.bbox.split(","))
        except ValueError:
            fail(f"--bbox {args.bbox!r} is not W,S,E,N")
        (x0, y0), (x1, y1) = mercator(w, s), mercator(e, n)
        tiles = matrix.tileRangeFromExtent(QgsRectangle(x0, y0, x1, y1))
    else:
        tiles = matrix.tileRangeFromExtent(matrix.extent())
    cols = tiles.endColumn() - tiles.startColumn() + 1
    rows = tiles.endRow() - tiles.startRow() + 1
    if not tiles.isValid() or cols * rows > MAX_TILES:
        fail(f"{cols}x{rows} tiles at zoom {args.zoom}: give a --bbox covering at most {MAX_TILES} tiles")

    # Render exactly those tiles, 256 px each.
    first = matrix.tileExtent(_xyz(args.zoom, tiles.startColumn(), tiles.startRow()))
    last = matrix.tileExtent(_xyz(args.zoom, tiles.endColumn(), tiles.endRow()))
    inset = (first.width()) * 1e-6
    extent = QgsRectangle(
        first.xMinimum() + inset, last.yMinimum() + inset, last.xMaximum() - inset, first.yMaximum() - inset
    )
    # QGIS picks the tile zoom from the map scale; 3.22 picks one zoom below the
    # 0.28 mm-pixel scale of the tiles (seen here), so start at half that DPI and
    # correct it by the zoom QGIS reports to the renderer's startRender.
    dpi = 25.4 / 0.28 / 2
    for _ in range(4):
        DECODED.clear()
        RENDERS.clear()
        REPLIES.clear()
        render(layer, extent, cols, rows, dpi, log)
        if not RENDERS:
            fail("QGIS did not render the layer (extent outside the layer?)", log)
        picked = RENDERS[-1][0]
        if picked == args.zoom:
            break
        dpi *= 2.0 ** (picked - args.zoom)
    else:
        fail(f"could not make QGIS render tiles of zoom {args.zoom} (it chose {picked})", log)
    want = (args.zoom, tiles.startColumn(), tiles.endColumn(), tiles.startRow(), tiles.endRow())
    if RENDERS[-1] != want:
        fail(f"QGIS rendered tile range {RENDERS[-1]}, not (z, cols, rows) {want}", log)

    zooms = sorted({t[0] for t, *_ in DECODED})
    if zooms and zooms != [args.zoom]:
        fail(f"QGIS decoded tiles of zoom {zooms}, not {args.zoom}", log)
    found = {}
    for tile, name, attrs, gtype in DECODED:
        if name == args.layer:
            value = attrs.get(args.attribute)
            found.setdefault(str(value), []).append((tile, gtype))
    missing = [e for e in expected if e not in found]
    tiles_seen = sorted({t for t, *_ in DECODED})
    if missing:
        fail(
            f"ids {missing} not among the '{args.attribute}' values decoded by QGIS from layer "
            f"'{args.layer}' in {cols}x{rows} tiles at zoom {args.zoom} "
            f"(decoded tiles {tiles_seen}, ids {sorted(found)}; {fetch_summary()}; e.g. {REPLIES[:1]})",
            log,
        )
    print(
        f"ok: QGIS {_version()} decoded {len(DECODED)} features in {len(tiles_seen)} of {cols * rows} "
        f"tiles at zoom {args.zoom} (z, x, y: {tiles_seen}; {fetch_summary()}); ids {sorted(found)} include {expected} "
        f"({time.monotonic() - started:.1f}s)"
    )
    return 0


def render(layer, extent, cols, rows, dpi, log):
    settings = QgsMapSettings()
    settings.setDestinationCrs(QgsCoordinateReferenceSystem("EPSG:3857"))
    settings.setOutputDpi(dpi)
    settings.setOutputSize(QSize(cols * TILE_PX, rows * TILE_PX))
    settings.setExtent(extent)
    settings.setLayers([layer])
    settings.setBackgroundColor(QColor(255, 255, 255))
    image = QImage(settings.outputSize(), QImage.Format_ARGB32_Premultiplied)
    image.fill(QColor(255, 255, 255))
    painter = QPainter(image)
    job = QgsMapRendererCustomPainterJob(settings, painter)
    job.renderSynchronously()
    painter.end()
    errors = [f"{e.layerID}: {e.message}" for e in job.errors()]
    if errors:
        fail(f"QGIS rendering reported errors: {errors}", log)
    if os.environ.get("QGIS_CHECK_PNG"):
        image.save(os.environ["QGIS_CHECK_PNG"])


def _xyz(z, x, y):
    from qgis.core import QgsTileXYZ

    return QgsTileXYZ(x, y, z)


def _version():
    from qgis.core import Qgis

    return Qgis.QGIS_VERSION.split("-")[0]


if __name__ == "__main__":
    sys.exit(main())
