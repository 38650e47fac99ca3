//! Footprints in WGS 84: reprojection of a file's extent with densified edges.
//!
//! Projections come from `proj4rs` with the EPSG definitions of
//! `crs-definitions`: no network and no system PROJ.

use proj4rs::Proj;
use serde_json::{Value, json};

/// Points per edge when a projected rectangle is reprojected.
const EDGE_POINTS: usize = 21;

/// A footprint: a polygon and its bounding box, in WGS 84 longitude/latitude.
#[derive(Debug, Clone, PartialEq)]
pub struct Footprint {
    /// `[west, south, east, north]`.
    pub bbox: [f64; 4],
    /// The outer ring, closed.
    pub ring: Vec<[f64; 2]>,
}

impl Footprint {
    /// A rectangle in longitude/latitude.
    pub fn from_lonlat_bbox(b: [f64; 4]) -> Result<Self, String> {
        let [w, s, e, n] = b;
        if ![w, s, e, n].iter().all(|v| v.is_finite()) {
            return Err("the extent has non-finite coordinates".into());
        }
        let (w, e) = (w.max(-180.0), e.min(180.0));
        let (s, n) = (s.max(-90.0), n.min(90.0));
        if w > e || s > n {
            return Err(format!("the extent {b:?} is empty or outside WGS 84"));
        }
        Ok(Self {
            bbox: [w, s, e, n],
            ring: vec![[w, s], [e, s], [e, n], [w, n], [w, s]],
        })
    }

    /// A rectangle in the CRS `epsg`, reprojected with densified edges.
    pub fn from_projected_bbox(epsg: u32, b: [f64; 4]) -> Result<Self, String> {
        if is_lonlat(epsg) {
            return Self::from_lonlat_bbox(b);
        }
        let [x0, y0, x1, y1] = b;
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
        let ring = to_lonlat(epsg, &ring)?;
        let mut closed = ring;
        closed.push(closed[0]);
        Self::from_ring(closed)
    }

    fn from_ring(ring: Vec<[f64; 2]>) -> Result<Self, String> {
        let mut bbox = [
            f64::INFINITY,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NEG_INFINITY,
        ];
        for [x, y] in &ring {
            if !x.is_finite() || !y.is_finite() {
                return Err("the footprint does not reproject to WGS 84".into());
            }
            bbox = [
                bbox[0].min(*x),
                bbox[1].min(*y),
                bbox[2].max(*x),
                bbox[3].max(*y),
            ];
        }
        Ok(Self { bbox, ring })
    }

    /// The smallest rectangle covering both.
    #[must_use]
    pub fn union(&self, other: &Self) -> Self {
        let b = [
            self.bbox[0].min(other.bbox[0]),
            self.bbox[1].min(other.bbox[1]),
            self.bbox[2].max(other.bbox[2]),
            self.bbox[3].max(other.bbox[3]),
        ];
        if b == self.bbox {
            return self.clone();
        }
        if b == other.bbox {
            return other.clone();
        }
        Self::from_lonlat_bbox(b).unwrap_or_else(|_| self.clone())
    }

    /// GeoJSON Polygon.
    pub fn geometry(&self) -> Value {
        let ring: Vec<Value> = self
            .ring
            .iter()
            .map(|[x, y]| json!([round(*x), round(*y)]))
            .collect();
        json!({"type": "Polygon", "coordinates": [ring]})
    }

    /// The bbox as JSON, rounded.
    pub fn bbox_value(&self) -> Value {
        json!(self.bbox.map(round))
    }
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

/// Reproject points from `epsg` to WGS 84 longitude/latitude degrees.
pub fn to_lonlat(epsg: u32, points: &[[f64; 2]]) -> Result<Vec<[f64; 2]>, String> {
    let src = projection(epsg)?;
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
        proj4rs::transform::transform(&src, &dst, &mut p)
            .map_err(|e| format!("EPSG:{epsg} to WGS 84: {e}"))?;
        out.push([p.0.to_degrees(), p.1.to_degrees()]);
    }
    Ok(out)
}

/// The EPSG code of a PROJJSON document (`id` or `base_crs.id`).
pub fn projjson_epsg(crs: &Value) -> Option<u32> {
    let id = crs.get("id").or_else(|| crs.pointer("/base_crs/id"))?;
    let authority = id.get("authority")?.as_str()?;
    let code = id.get("code")?;
    let code = code.as_u64().or_else(|| code.as_str()?.parse().ok())?;
    match authority.to_ascii_uppercase().as_str() {
        "EPSG" => u32::try_from(code).ok(),
        "OGC" if code == 84 => Some(4326),
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
        assert_eq!(f.ring.first(), f.ring.last());
        assert_eq!(f.ring.len(), 81);
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
    }
}
