//! Footprints in WGS 84: reprojection of a file's extent with densified edges.
//!
//! Projections come from `proj4rs` with the EPSG definitions of
//! `crs-definitions`: no network and no system PROJ.
//!
//! Longitudes are normalised to −180…180. A footprint that crosses the
//! antimeridian is split there into two polygons (a GeoJSON `MultiPolygon`),
//! and its bbox then has west > east, as STAC and GeoJSON (RFC 7946 §5.2)
//! ask.

use proj4rs::Proj;
use serde_json::{Value, json};

/// Points per edge when a projected rectangle is reprojected.
const EDGE_POINTS: usize = 21;
/// Longitude spans this close to 360° are taken as the whole globe.
const FULL_CIRCLE: f64 = 360.0 - 1e-9;

/// A footprint: polygons and their bounding box, in WGS 84 longitude/latitude.
#[derive(Debug, Clone, PartialEq)]
pub struct Footprint {
    /// `[west, south, east, north]`; west > east when the footprint crosses
    /// the antimeridian.
    pub bbox: [f64; 4],
    /// The outer ring of each polygon, closed: one, or two when the
    /// footprint is split at the antimeridian.
    pub rings: Vec<Vec<[f64; 2]>>,
}

impl Footprint {
    /// A rectangle in longitude/latitude. Longitudes may be given as 0…360
    /// or −180…180; `west > east` means the rectangle crosses the
    /// antimeridian (the GeoParquet and STAC convention). A span of 360° or
    /// more is the whole globe.
    pub fn from_lonlat_bbox(b: [f64; 4]) -> Result<Self, String> {
        let [w, s, e, n] = b;
        if ![w, s, e, n].iter().all(|v| v.is_finite()) {
            return Err("the extent has non-finite coordinates".into());
        }
        let (s, n) = (s.max(-90.0), n.min(90.0));
        if s > n {
            return Err(format!("the extent {b:?} is empty or outside WGS 84"));
        }
        // Unwrap: east is at or after west, going east.
        let e = if w > e { e + 360.0 } else { e };
        if e - w >= FULL_CIRCLE {
            return Ok(Self::rectangle(-180.0, s, 180.0, n));
        }
        // Shift so that west lies in −180…180.
        let turns = ((w + 180.0) / 360.0).floor();
        let (w, e) = (w - 360.0 * turns, e - 360.0 * turns);
        if e <= 180.0 {
            return Ok(Self::rectangle(w, s, e, n));
        }
        let east = e - 360.0;
        Ok(Self {
            bbox: [w, s, east, n],
            rings: vec![
                vec![[w, s], [180.0, s], [180.0, n], [w, n], [w, s]],
                vec![[-180.0, s], [east, s], [east, n], [-180.0, n], [-180.0, s]],
            ],
        })
    }

    fn rectangle(w: f64, s: f64, e: f64, n: f64) -> Self {
        Self {
            bbox: [w, s, e, n],
            rings: vec![vec![[w, s], [e, s], [e, n], [w, n], [w, s]]],
        }
    }

    /// A rectangle in the CRS `epsg`, reprojected with densified edges.
    pub fn from_projected_bbox(epsg: u32, b: [f64; 4]) -> Result<Self, String> {
        if is_lonlat(epsg) {
            return Self::from_lonlat_bbox(b);
        }
        Self::from_projected_bbox_with(&projection(epsg)?, &format!("EPSG:{epsg}"), b)
    }

    /// A rectangle in the CRS of `src`, reprojected with densified edges;
    /// `name` names the CRS in messages.
    pub fn from_projected_bbox_with(src: &Proj, name: &str, b: [f64; 4]) -> Result<Self, String> {
        let [x0, y0, x1, y1] = b;
        if ![x0, y0, x1, y1].iter().all(|v| v.is_finite()) {
            return Err("the extent has non-finite coordinates".into());
        }
        let mut ring = Vec::with_capacity(EDGE_POINTS * 4 + 1);
        let steps = (EDGE_POINTS - 1) as f64;
        for i in 0..EDGE_POINTS - 1 {
            let t = i as f64 / steps;
            ring.push([x0 + (x1 - x0) * t, y0]);
        }
        for i in 0..EDGE_POINTS - 1 {
            let t = i as f64 / steps;
            ring.push([x1, y0 + (y1 - y0) * t]);
        }
        for i in 0..EDGE_POINTS - 1 {
            let t = i as f64 / steps;
            ring.push([x1 - (x1 - x0) * t, y1]);
        }
        for i in 0..EDGE_POINTS - 1 {
            let t = i as f64 / steps;
            ring.push([x0, y1 - (y1 - y0) * t]);
        }
        let mut ring = transform_to_lonlat(src, name, &ring)?;
        ring.push(ring[0]);
        Self::from_ring(ring)
    }

    /// A closed ring in longitude/latitude whose longitudes may jump at the
    /// antimeridian (as reprojected points do): made continuous, then split
    /// at 180° when it crosses it.
    fn from_ring(mut ring: Vec<[f64; 2]>) -> Result<Self, String> {
        if ring.iter().any(|[x, y]| !x.is_finite() || !y.is_finite()) {
            return Err("the footprint does not reproject to WGS 84".into());
        }
        // Continuous longitudes: no step between neighbours longer than half a turn.
        for i in 1..ring.len() {
            let prev = ring[i - 1][0];
            let mut x = ring[i][0];
            while x - prev > 180.0 {
                x -= 360.0;
            }
            while prev - x > 180.0 {
                x += 360.0;
            }
            ring[i][0] = x;
        }
        let (mut lo, mut hi, mut s, mut n) = (
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::INFINITY,
            f64::NEG_INFINITY,
        );
        for [x, y] in &ring {
            (lo, hi, s, n) = (lo.min(*x), hi.max(*x), s.min(*y), n.max(*y));
        }
        if hi - lo >= FULL_CIRCLE {
            // Goes round a pole: all longitudes, up to that pole.
            let (s, n) = if s + n > 0.0 { (s, 90.0) } else { (-90.0, n) };
            return Ok(Self::rectangle(-180.0, s, 180.0, n));
        }
        let turns = ((lo + 180.0) / 360.0).floor();
        if turns != 0.0 {
            for p in &mut ring {
                p[0] -= 360.0 * turns;
            }
            (lo, hi) = (lo - 360.0 * turns, hi - 360.0 * turns);
        }
        if hi <= 180.0 {
            return Ok(Self {
                bbox: [lo, s, hi, n],
                rings: vec![ring],
            });
        }
        let west = clip_half_plane(&ring, 180.0, false);
        let east: Vec<[f64; 2]> = clip_half_plane(&ring, 180.0, true)
            .into_iter()
            .map(|[x, y]| [x - 360.0, y])
            .collect();
        let rings: Vec<Vec<[f64; 2]>> = [west, east].into_iter().filter(|r| r.len() >= 4).collect();
        Ok(Self {
            bbox: [lo, s, hi - 360.0, n],
            rings,
        })
    }

    /// Whether the footprint crosses the antimeridian.
    pub fn crosses_antimeridian(&self) -> bool {
        self.bbox[0] > self.bbox[2]
    }

    /// The smallest rectangle covering both (the shorter way round the
    /// globe when they are far apart in longitude).
    #[must_use]
    pub fn union(&self, other: &Self) -> Self {
        let unwrap = |b: &[f64; 4]| {
            if b[0] > b[2] {
                (b[0], b[2] + 360.0)
            } else {
                (b[0], b[2])
            }
        };
        let (a0, a1) = unwrap(&self.bbox);
        let (b0, b1) = unwrap(&other.bbox);
        // Try the other interval as is and shifted a turn either way; keep
        // the narrowest cover.
        let (w, e) = [-360.0, 0.0, 360.0]
            .iter()
            .map(|shift| (a0.min(b0 + shift), a1.max(b1 + shift)))
            .min_by(|x, y| (x.1 - x.0).total_cmp(&(y.1 - y.0)))
            .unwrap_or((a0, a1));
        let s = self.bbox[1].min(other.bbox[1]);
        let n = self.bbox[3].max(other.bbox[3]);
        let covers = |b: &[f64; 4], lo: f64, hi: f64| {
            b[1] == s && b[3] == n && (lo - w).abs() < 1e-9 && (hi - e).abs() < 1e-9
        };
        if covers(&self.bbox, a0, a1) {
            return self.clone();
        }
        if [-360.0, 0.0, 360.0]
            .iter()
            .any(|shift| covers(&other.bbox, b0 + shift, b1 + shift))
        {
            return other.clone();
        }
        Self::from_lonlat_bbox([w, s, e, n]).unwrap_or_else(|_| self.clone())
    }

    /// GeoJSON `Polygon`, or `MultiPolygon` when split at the antimeridian.
    pub fn geometry(&self) -> Value {
        let ring = |r: &Vec<[f64; 2]>| -> Value {
            r.iter()
                .map(|[x, y]| json!([round(*x), round(*y)]))
                .collect()
        };
        match self.rings.as_slice() {
            [one] => json!({"type": "Polygon", "coordinates": [ring(one)]}),
            many => json!({
                "type": "MultiPolygon",
                "coordinates": many.iter().map(|r| json!([ring(r)])).collect::<Vec<_>>(),
            }),
        }
    }

    /// The bbox as JSON, rounded.
    pub fn bbox_value(&self) -> Value {
        json!(self.bbox.map(round))
    }
}

/// The part of a closed ring on one side of the meridian `x` (east of it
/// when `east`), closed. Sutherland–Hodgman against a half-plane, written
/// here because a footprint ring is all that is ever clipped and pulling in
/// a polygon-boolean crate for one meridian is not worth it.
fn clip_half_plane(ring: &[[f64; 2]], x: f64, east: bool) -> Vec<[f64; 2]> {
    let inside = |p: &[f64; 2]| if east { p[0] >= x } else { p[0] <= x };
    let mut out: Vec<[f64; 2]> = Vec::with_capacity(ring.len() + 4);
    let open = &ring[..ring.len().saturating_sub(1)];
    for (i, cur) in open.iter().enumerate() {
        let prev = open[(i + open.len() - 1) % open.len()];
        let crossing = |a: [f64; 2], b: [f64; 2]| {
            let t = (x - a[0]) / (b[0] - a[0]);
            [x, a[1] + (b[1] - a[1]) * t]
        };
        match (inside(&prev), inside(cur)) {
            (true, true) => out.push(*cur),
            (true, false) => out.push(crossing(prev, *cur)),
            (false, true) => {
                out.push(crossing(prev, *cur));
                out.push(*cur);
            }
            (false, false) => {}
        }
    }
    out.dedup();
    if let Some(first) = out.first().copied()
        && out.last() != Some(&first)
    {
        out.push(first);
    }
    out
}

/// Nine decimals (sub-millimetre) are plenty for a footprint.
fn round(v: f64) -> f64 {
    (v * 1e9).round() / 1e9
}

/// EPSG codes whose axes arcolake treats as longitude/latitude degrees.
pub fn is_lonlat(epsg: u32) -> bool {
    matches!(epsg, 4326 | 4258 | 4269 | 4979 | 4937 | 4283 | 4617 | 4674)
}

/// A projection by EPSG code.
pub fn projection(epsg: u32) -> Result<Proj, String> {
    let code = u16::try_from(epsg).map_err(|_| format!("EPSG:{epsg} is not a known CRS"))?;
    Proj::from_epsg_code(code).map_err(|e| format!("EPSG:{epsg}: {e}"))
}

/// Reproject points from the CRS of `src` (named `name` in messages) to
/// WGS 84 longitude/latitude degrees.
pub fn transform_to_lonlat(
    src: &Proj,
    name: &str,
    points: &[[f64; 2]],
) -> Result<Vec<[f64; 2]>, String> {
    let dst =
        Proj::from_proj_string("+proj=longlat +datum=WGS84 +no_defs").map_err(|e| e.to_string())?;
    let src_geographic = src.is_latlong();
    let mut out = Vec::with_capacity(points.len());
    for [x, y] in points {
        let mut p = if src_geographic {
            (x.to_radians(), y.to_radians(), 0.0)
        } else {
            (*x, *y, 0.0)
        };
        proj4rs::transform::transform(src, &dst, &mut p)
            .map_err(|e| format!("{name} to WGS 84: {e}"))?;
        out.push([p.0.to_degrees(), p.1.to_degrees()]);
    }
    Ok(out)
}

/// The EPSG code of a PROJJSON document (`id` or `base_crs.id`).
/// `OGC:CRS84` and `OGC:CRS84h` (the GeoParquet spec's own examples, with
/// a string code) are WGS 84 longitude/latitude, as EPSG:4326 is taken here.
pub fn projjson_epsg(crs: &Value) -> Option<u32> {
    let id = crs
        .get("id")
        .or_else(|| crs.pointer("/ids/0"))
        .or_else(|| crs.pointer("/base_crs/id"))?;
    let authority = id.get("authority")?.as_str()?.to_ascii_uppercase();
    let code = id.get("code")?;
    let text = match code {
        Value::String(s) => s.trim().to_ascii_uppercase(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    match (authority.as_str(), text.as_str()) {
        ("OGC", "CRS84" | "CRS84H" | "84") => Some(4326),
        ("EPSG", digits) => digits.parse().ok(),
        _ => None,
    }
}

/// The EPSG code of a CRS string: `EPSG:32631`, `OGC:CRS84`, a URN or URL.
pub fn crs_string_epsg(s: &str) -> Option<u32> {
    let upper = s.trim().to_ascii_uppercase();
    if upper.contains("CRS84") {
        return Some(4326);
    }
    let digits: String = upper
        .rsplit(|c: char| !c.is_ascii_digit())
        .find(|p| !p.is_empty())?
        .to_owned();
    upper
        .contains("EPSG")
        .then(|| digits.parse().ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utm_footprint_lands_where_expected() {
        // EPSG:32631, around 3°E on the equator's north side.
        let f =
            Footprint::from_projected_bbox(32631, [500_000.0, 5_000_000.0, 510_000.0, 5_010_000.0])
                .unwrap();
        assert!((f.bbox[0] - 3.0).abs() < 0.01, "{:?}", f.bbox);
        assert!((f.bbox[1] - 45.1).abs() < 0.1, "{:?}", f.bbox);
        assert_eq!(f.rings.len(), 1);
        assert_eq!(f.rings[0].first(), f.rings[0].last());
        assert_eq!(f.rings[0].len(), 81);
    }

    #[test]
    fn longitudes_0_to_360_are_normalised() {
        // A global 0..360 grid (cell edges) is the whole world.
        let f = Footprint::from_lonlat_bbox([-0.125, -90.0, 359.875, 90.0]).unwrap();
        assert_eq!(f.bbox, [-180.0, -90.0, 180.0, 90.0]);
        assert_eq!(f.geometry()["type"], "Polygon");
        // The western hemisphere given as 190..350 lands at -170..-10.
        let f = Footprint::from_lonlat_bbox([190.0, 10.0, 350.0, 20.0]).unwrap();
        assert_eq!(f.bbox, [-170.0, 10.0, -10.0, 20.0]);
        // 170..200 crosses the antimeridian: two polygons, west > east.
        let f = Footprint::from_lonlat_bbox([170.0, -20.0, 200.0, -10.0]).unwrap();
        assert_eq!(f.bbox, [170.0, -20.0, -160.0, -10.0]);
        assert!(f.crosses_antimeridian());
        let g = f.geometry();
        assert_eq!(g["type"], "MultiPolygon");
        assert_eq!(g["coordinates"][0][0][1], json!([180.0, -20.0]));
        assert_eq!(g["coordinates"][1][0][0], json!([-180.0, -20.0]));
        assert_eq!(g["coordinates"][1][0][1], json!([-160.0, -20.0]));
        // GeoParquet / STAC convention: west > east already means crossing.
        let same = Footprint::from_lonlat_bbox([170.0, -20.0, -160.0, -10.0]).unwrap();
        assert_eq!(same, f);
    }

    #[test]
    fn utm_tiles_on_the_antimeridian_are_split() {
        // Zone 60 north, east edge beyond 180°E at 60°N.
        let f =
            Footprint::from_projected_bbox(32660, [600_000.0, 6_600_000.0, 700_000.0, 6_700_000.0])
                .unwrap();
        assert!(f.crosses_antimeridian(), "{:?}", f.bbox);
        assert!(f.bbox[0] > 178.0 && f.bbox[2] < -178.0, "{:?}", f.bbox);
        assert_eq!(f.rings.len(), 2);
        for ring in &f.rings {
            assert_eq!(ring.first(), ring.last());
            assert!(ring.iter().all(|[x, _]| (-180.0..=180.0).contains(x)));
        }
        assert!(f.rings[0].iter().all(|[x, _]| *x >= 178.0));
        assert!(f.rings[1].iter().all(|[x, _]| *x <= -178.0));
        // Zone 1 north, west edge beyond 180°W.
        let f =
            Footprint::from_projected_bbox(32601, [300_000.0, 6_600_000.0, 400_000.0, 6_700_000.0])
                .unwrap();
        assert!(f.crosses_antimeridian(), "{:?}", f.bbox);
        assert_eq!(f.geometry()["type"], "MultiPolygon");
        // A tile well inside zone 60 stays one polygon.
        let f =
            Footprint::from_projected_bbox(32660, [400_000.0, 6_600_000.0, 500_000.0, 6_700_000.0])
                .unwrap();
        assert!(!f.crosses_antimeridian());
        assert_eq!(f.rings.len(), 1);
    }

    #[test]
    fn a_polar_footprint_reaches_its_pole() {
        // North polar stereographic, a square around the pole.
        let f =
            Footprint::from_projected_bbox(3413, [-500_000.0, -500_000.0, 500_000.0, 500_000.0])
                .unwrap();
        assert_eq!(f.bbox[0], -180.0);
        assert_eq!(f.bbox[2], 180.0);
        assert_eq!(f.bbox[3], 90.0);
        assert!(f.bbox[1] > 83.0 && f.bbox[1] < 84.0, "{:?}", f.bbox);
    }

    #[test]
    fn unions_go_the_short_way_round() {
        let a = Footprint::from_lonlat_bbox([170.0, 0.0, 179.0, 1.0]).unwrap();
        let b = Footprint::from_lonlat_bbox([-179.0, 0.0, -170.0, 1.0]).unwrap();
        let u = a.union(&b);
        assert_eq!(u.bbox, [170.0, 0.0, -170.0, 1.0]);
        let c = Footprint::from_lonlat_bbox([10.0, 0.0, 11.0, 1.0]).unwrap();
        let d = Footprint::from_lonlat_bbox([12.0, 0.0, 13.0, 2.0]).unwrap();
        assert_eq!(c.union(&d).bbox, [10.0, 0.0, 13.0, 2.0]);
        assert_eq!(u.union(&a), u);
    }

    #[test]
    fn laea_europe_reprojects() {
        // EPSG:3035 false origin is 10°E 52°N at (4321000, 3210000).
        let f = Footprint::from_projected_bbox(
            3035,
            [4_321_000.0, 3_210_000.0, 4_322_000.0, 3_211_000.0],
        )
        .unwrap();
        assert!((f.bbox[0] - 10.0).abs() < 0.001, "{:?}", f.bbox);
        assert!((f.bbox[1] - 52.0).abs() < 0.001, "{:?}", f.bbox);
    }

    #[test]
    fn crs_strings() {
        assert_eq!(crs_string_epsg("EPSG:32631"), Some(32631));
        assert_eq!(crs_string_epsg("urn:ogc:def:crs:EPSG::3035"), Some(3035));
        assert_eq!(crs_string_epsg("OGC:CRS84"), Some(4326));
        assert_eq!(crs_string_epsg("something"), None);
        assert_eq!(
            projjson_epsg(&json!({"id": {"authority": "EPSG", "code": 3035}})),
            Some(3035)
        );
        assert_eq!(
            projjson_epsg(&json!({"id": {"authority": "EPSG", "code": "4326"}})),
            Some(4326)
        );
    }

    #[test]
    fn projjson_crs84_is_wgs84_lonlat() {
        for code in ["CRS84", "CRS84h", "crs84"] {
            let crs = json!({"type": "GeographicCRS", "name": "WGS 84 (CRS84)",
                             "id": {"authority": "OGC", "code": code}});
            assert_eq!(projjson_epsg(&crs), Some(4326), "{code}");
        }
        assert_eq!(
            projjson_epsg(&json!({"id": {"authority": "OGC", "code": "CRS27"}})),
            None
        );
    }
}
