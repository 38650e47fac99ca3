//! GeoJSON geometry checks done before a geometry reaches PostGIS, so that
//! bad input is a 400 naming the problem rather than a database error.

use geojson::{Geometry, Value as Shape};
use serde_json::Value;

/// Bounds as `[west, south, east, north]`.
pub type Bounds = [f64; 4];

/// Deepest GeometryCollection nesting accepted.
const MAX_DEPTH: usize = 8;

/// Check a GeoJSON geometry object and return its bounds.
pub fn validate(value: &Value) -> Result<Bounds, String> {
    let geometry = Geometry::from_json_value(value.clone()).map_err(|e| e.to_string())?;
    let mut bounds = [
        f64::INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NEG_INFINITY,
    ];
    walk(&geometry.value, &mut bounds, 0)?;
    if bounds[0] > bounds[2] {
        return Err("has no coordinates".into());
    }
    Ok(bounds)
}

fn position(p: &[f64], bounds: &mut Bounds) -> Result<(), String> {
    if p.len() < 2 || p.len() > 4 {
        return Err(format!(
            "a position has {} numbers; it needs 2 or 3",
            p.len()
        ));
    }
    if p.iter().any(|c| !c.is_finite()) {
        return Err("a coordinate is not a finite number".into());
    }
    check_lon_lat(p[0], p[1])?;
    bounds[0] = bounds[0].min(p[0]);
    bounds[1] = bounds[1].min(p[1]);
    bounds[2] = bounds[2].max(p[0]);
    bounds[3] = bounds[3].max(p[1]);
    Ok(())
}

/// Rounding slack at the edges of the longitude/latitude ranges.
const EDGE: f64 = 1e-9;

/// GeoJSON and STAC coordinates are WGS 84 longitude/latitude: projected
/// coordinates (metres) are refused here rather than stored and failing
/// later inside PostGIS.
fn check_lon_lat(lon: f64, lat: f64) -> Result<(), String> {
    if !(-180.0 - EDGE..=180.0 + EDGE).contains(&lon) {
        return Err(format!(
            "longitude {lon} is outside -180..180 (coordinates must be WGS 84 longitude/latitude; \
             projected coordinates belong in proj:* fields)"
        ));
    }
    if !(-90.0 - EDGE..=90.0 + EDGE).contains(&lat) {
        return Err(format!(
            "latitude {lat} is outside -90..90 (coordinates must be WGS 84 longitude/latitude)"
        ));
    }
    Ok(())
}

fn line(points: &[Vec<f64>], bounds: &mut Bounds) -> Result<(), String> {
    if points.len() < 2 {
        return Err("a LineString needs at least 2 positions".into());
    }
    points.iter().try_for_each(|p| position(p, bounds))
}

fn polygon(rings: &[Vec<Vec<f64>>], bounds: &mut Bounds) -> Result<(), String> {
    if rings.is_empty() {
        return Err("a Polygon needs at least one ring".into());
    }
    for ring in rings {
        if ring.len() < 4 {
            return Err("a Polygon ring needs at least 4 positions".into());
        }
        if ring.first() != ring.last() {
            return Err("a Polygon ring must be closed (first and last positions equal)".into());
        }
        ring.iter().try_for_each(|p| position(p, bounds))?;
    }
    Ok(())
}

fn walk(shape: &Shape, bounds: &mut Bounds, depth: usize) -> Result<(), String> {
    match shape {
        Shape::Point(p) => position(p, bounds),
        Shape::MultiPoint(ps) => ps.iter().try_for_each(|p| position(p, bounds)),
        Shape::LineString(l) => line(l, bounds),
        Shape::MultiLineString(ls) => ls.iter().try_for_each(|l| line(l, bounds)),
        Shape::Polygon(p) => polygon(p, bounds),
        Shape::MultiPolygon(ps) => ps.iter().try_for_each(|p| polygon(p, bounds)),
        Shape::GeometryCollection(gs) => {
            if depth >= MAX_DEPTH {
                return Err(format!(
                    "GeometryCollections nest deeper than {MAX_DEPTH} levels"
                ));
            }
            gs.iter()
                .try_for_each(|g| walk(&g.value, bounds, depth + 1))
        }
    }
}

/// Check an Item `bbox`: 4 or 6 finite numbers.
pub fn validate_bbox(value: &Value) -> Result<(), String> {
    let Value::Array(nums) = value else {
        return Err("must be an array of 4 or 6 numbers".into());
    };
    if nums.len() != 4 && nums.len() != 6 {
        return Err(format!("has {} numbers; it needs 4 or 6", nums.len()));
    }
    let nums: Vec<f64> = nums.iter().filter_map(Value::as_f64).collect();
    if nums.len() != 4 && nums.len() != 6 || nums.iter().any(|n| !n.is_finite()) {
        return Err("must contain only finite numbers".into());
    }
    // [west, south, (min z,) east, north, (max z)]; west > east crosses the
    // antimeridian.
    let half = nums.len() / 2;
    let (west, south, east, north) = (nums[0], nums[1], nums[half], nums[half + 1]);
    check_lon_lat(west, south)?;
    check_lon_lat(east, north)?;
    if south > north {
        return Err(format!("south {south} is greater than north {north}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn bounds_of_a_polygon() {
        let b = validate(
            &json!({"type": "Polygon", "coordinates": [[[0, 1], [2, 1], [2, 3], [0, 1]]]}),
        )
        .unwrap();
        assert!(
            b.iter()
                .zip([0.0, 1.0, 2.0, 3.0])
                .all(|(x, y)| (x - y).abs() < 1e-12),
            "{b:?}"
        );
    }

    #[test]
    fn malformed_geometries_are_errors() {
        assert!(validate(&json!({"type": "Point", "coordinates": [1]})).is_err());
        assert!(validate(&json!({"type": "Nope", "coordinates": [1, 2]})).is_err());
        assert!(validate(&json!({"type": "LineString", "coordinates": [[1, 2]]})).is_err());
        assert!(validate(&json!({"type": "MultiPoint", "coordinates": []})).is_err());
        assert!(validate_bbox(&json!([1, 2, 3])).is_err());
    }

    #[test]
    fn projected_coordinates_are_refused_with_the_axis_named() {
        let e = validate(&json!({"type": "Point", "coordinates": [500_000.0, 5_000_000.0]}))
            .unwrap_err();
        assert!(e.contains("longitude 500000"), "{e}");
        let e = validate(&json!({"type": "Point", "coordinates": [10.0, 95.0]})).unwrap_err();
        assert!(e.contains("latitude 95"), "{e}");
        assert!(validate(&json!({"type": "Point", "coordinates": [180.0, -90.0]})).is_ok());
        assert!(validate_bbox(&json!([300_000.0, 5_000_000.0, 400_000.0, 5_100_000.0])).is_err());
        assert!(
            validate_bbox(&json!([10.0, 50.0, 0.0, 11.0, 40.0, 10.0])).is_err(),
            "south > north"
        );
        assert!(
            validate_bbox(&json!([170.0, -10.0, -170.0, 10.0])).is_ok(),
            "antimeridian"
        );
        assert!(validate_bbox(&json!([170.0, -10.0, 0.0, -170.0, 10.0, 5.0])).is_ok());
    }
}
