//! The CRS a GeoTIFF's `GeoKeys` name (OGC GeoTIFF 1.1, §7).
//!
//! An EPSG code when the keys give one; else, for a user-defined projected
//! CRS (`ProjectedCSTypeGeoKey` 32767), a PROJ string built from
//! `ProjectionGeoKey` (UTM zones) or the `ProjCoordTrans` parameter keys and
//! the geographic CRS or ellipsoid keys, so that `proj4rs` can reproject
//! the footprint. A projected model is never labelled with its geographic
//! CRS: when the keys cannot be turned into a CRS, there is none.
//!
//! `async-tiff` decodes the keys but does not interpret them, and the
//! GeoTIFF-to-PROJ mapping lives in C (libgeotiff), so it is written here.

use async_tiff::geo::GeoKeyDirectory;

/// "User-defined" in every `GeoKey` that takes a code.
const USER_DEFINED: u16 = 32767;

/// What the `GeoKeys` say about the CRS.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Crs {
    /// A CRS with an EPSG code.
    Epsg(u32),
    /// A user-defined CRS without a code, as a PROJ string.
    Custom(String),
    /// No CRS: the reason.
    Unknown(String),
}

fn code(v: Option<u16>) -> Option<u16> {
    v.filter(|c| *c != 0 && *c != USER_DEFINED)
}

/// The CRS of a `GeoKeyDirectory`.
pub(crate) fn crs(g: &GeoKeyDirectory) -> Crs {
    // GTModelTypeGeoKey: 1 projected, 2 geographic, 3 geocentric.
    let projected = match g.model_type {
        Some(1) => true,
        Some(2) => false,
        Some(3) => return Crs::Unknown("geocentric GeoTIFF model".into()),
        _ => g.projected_type.is_some() || g.projection.is_some(),
    };
    if !projected {
        return match (code(g.geographic_type), g.geographic_type) {
            (Some(c), _) => Crs::Epsg(u32::from(c)),
            (None, Some(USER_DEFINED)) => match datum(g) {
                Ok(d) => Crs::Custom(format!("+proj=longlat {d} +no_defs")),
                Err(e) => Crs::Unknown(e),
            },
            _ => Crs::Unknown("no CRS in the GeoKeys".into()),
        };
    }
    if let Some(c) = code(g.projected_type) {
        return Crs::Epsg(u32::from(c));
    }
    match user_projected(g) {
        Ok(c) => c,
        Err(why) => Crs::Unknown(format!("user-defined projected CRS: {why}")),
    }
}

/// UTM zone and hemisphere of a `ProjectionGeoKey` (EPSG "UTM zone n" conversions).
fn utm_zone(projection: u16) -> Option<(u16, bool)> {
    match projection {
        16_001..=16_060 => Some((projection - 16_000, false)),
        16_101..=16_160 => Some((projection - 16_100, true)),
        _ => None,
    }
}

fn user_projected(g: &GeoKeyDirectory) -> Result<Crs, String> {
    if let Some((zone, south)) = g.projection.and_then(utm_zone) {
        // Well-known datums have EPSG codes for their UTM zones.
        match (code(g.geographic_type), south) {
            (Some(4326), false) => return Ok(Crs::Epsg(32_600 + u32::from(zone))),
            (Some(4326), true) => return Ok(Crs::Epsg(32_700 + u32::from(zone))),
            (Some(4258), false) if (28..=38).contains(&zone) => {
                return Ok(Crs::Epsg(25_800 + u32::from(zone)));
            }
            (Some(4269), false) if (1..=23).contains(&zone) => {
                return Ok(Crs::Epsg(26_900 + u32::from(zone)));
            }
            _ => {}
        }
        let south = if south { " +south" } else { "" };
        return Ok(Crs::Custom(format!(
            "+proj=utm +zone={zone}{south} {} +units=m +no_defs",
            datum(g)?
        )));
    }
    if let Some(p) = code(g.projection) {
        return Err(format!(
            "ProjectionGeoKey {p} is not a UTM zone, and only those are read"
        ));
    }
    let unit = linear_unit(g)?;
    let angular_ok = g.geog_angular_units.is_none_or(|u| u == 9102 || u == 9122);
    if !angular_ok {
        return Err("angles not in degrees".into());
    }
    let deg = |v: Option<f64>, name: &str| v.ok_or_else(|| format!("no {name}"));
    // Lengths in GeoKeys are in the linear unit; PROJ's x_0/y_0 are metres.
    let m = |v: Option<f64>| v.unwrap_or(0.0) * unit;
    let trans = g
        .proj_coord_trans
        .ok_or_else(|| "no ProjCoordTransGeoKey".to_owned())?;
    let params = match trans {
        // CT_TransverseMercator
        1 => format!(
            "+proj=tmerc +lat_0={} +lon_0={} +k={} +x_0={} +y_0={}",
            g.proj_nat_origin_lat.unwrap_or(0.0),
            deg(g.proj_nat_origin_long, "natural origin longitude")?,
            g.proj_scale_at_nat_origin.unwrap_or(1.0),
            m(g.proj_false_easting),
            m(g.proj_false_northing),
        ),
        // CT_Mercator
        7 => match g.proj_std_parallel1 {
            Some(lat_ts) => format!(
                "+proj=merc +lat_ts={lat_ts} +lon_0={} +x_0={} +y_0={}",
                g.proj_nat_origin_long.unwrap_or(0.0),
                m(g.proj_false_easting),
                m(g.proj_false_northing),
            ),
            None => format!(
                "+proj=merc +lon_0={} +k={} +x_0={} +y_0={}",
                g.proj_nat_origin_long.unwrap_or(0.0),
                g.proj_scale_at_nat_origin.unwrap_or(1.0),
                m(g.proj_false_easting),
                m(g.proj_false_northing),
            ),
        },
        // CT_LambertConfConic_2SP
        8 => format!(
            "+proj=lcc +lat_1={} +lat_2={} +lat_0={} +lon_0={} +x_0={} +y_0={}",
            deg(g.proj_std_parallel1, "first standard parallel")?,
            deg(g.proj_std_parallel2, "second standard parallel")?,
            g.proj_false_origin_lat
                .or(g.proj_nat_origin_lat)
                .unwrap_or(0.0),
            deg(
                g.proj_false_origin_long.or(g.proj_nat_origin_long),
                "origin longitude"
            )?,
            m(g.proj_false_origin_easting.or(g.proj_false_easting)),
            m(g.proj_false_origin_northing.or(g.proj_false_northing)),
        ),
        // CT_LambertConfConic_1SP
        9 => {
            let lat = deg(g.proj_nat_origin_lat, "natural origin latitude")?;
            format!(
                "+proj=lcc +lat_1={lat} +lat_0={lat} +lon_0={} +k_0={} +x_0={} +y_0={}",
                deg(g.proj_nat_origin_long, "natural origin longitude")?,
                g.proj_scale_at_nat_origin.unwrap_or(1.0),
                m(g.proj_false_easting),
                m(g.proj_false_northing),
            )
        }
        // CT_LambertAzimEqualArea
        10 => format!(
            "+proj=laea +lat_0={} +lon_0={} +x_0={} +y_0={}",
            deg(
                g.proj_center_lat.or(g.proj_nat_origin_lat),
                "centre latitude"
            )?,
            deg(
                g.proj_center_long.or(g.proj_nat_origin_long),
                "centre longitude"
            )?,
            m(g.proj_false_easting),
            m(g.proj_false_northing),
        ),
        // CT_AlbersEqualArea
        11 => format!(
            "+proj=aea +lat_1={} +lat_2={} +lat_0={} +lon_0={} +x_0={} +y_0={}",
            deg(g.proj_std_parallel1, "first standard parallel")?,
            deg(g.proj_std_parallel2, "second standard parallel")?,
            g.proj_nat_origin_lat
                .or(g.proj_false_origin_lat)
                .unwrap_or(0.0),
            deg(
                g.proj_nat_origin_long.or(g.proj_false_origin_long),
                "origin longitude"
            )?,
            m(g.proj_false_easting.or(g.proj_false_origin_easting)),
            m(g.proj_false_northing.or(g.proj_false_origin_northing)),
        ),
        // CT_PolarStereographic
        15 => {
            let lat_ts = deg(g.proj_nat_origin_lat, "latitude of true scale")?;
            format!(
                "+proj=stere +lat_0={} +lat_ts={lat_ts} +lon_0={} +k_0={} +x_0={} +y_0={}",
                if lat_ts < 0.0 { -90 } else { 90 },
                deg(
                    g.proj_straight_vert_pole_long.or(g.proj_nat_origin_long),
                    "pole longitude"
                )?,
                g.proj_scale_at_nat_origin.unwrap_or(1.0),
                m(g.proj_false_easting),
                m(g.proj_false_northing),
            )
        }
        // CT_Equirectangular
        17 => format!(
            "+proj=eqc +lat_ts={} +lon_0={} +x_0={} +y_0={}",
            g.proj_std_parallel1.unwrap_or(0.0),
            g.proj_center_long.or(g.proj_nat_origin_long).unwrap_or(0.0),
            m(g.proj_false_easting),
            m(g.proj_false_northing),
        ),
        other => return Err(format!("coordinate transformation {other} is not read")),
    };
    Ok(Crs::Custom(format!(
        "{params} {} +to_meter={unit} +no_defs",
        datum(g)?
    )))
}

/// Metres per linear unit (`ProjLinearUnitsGeoKey`).
fn linear_unit(g: &GeoKeyDirectory) -> Result<f64, String> {
    match g.proj_linear_units {
        None | Some(9001) => Ok(1.0),
        Some(9002) => Ok(0.3048),
        Some(9003) => Ok(1200.0 / 3937.0),
        Some(USER_DEFINED) => g
            .proj_linear_unit_size
            .filter(|s| s.is_finite() && *s > 0.0)
            .ok_or_else(|| "user-defined linear unit without a size".into()),
        Some(other) => Err(format!("linear unit {other} is not read")),
    }
}

/// The datum or ellipsoid part of a PROJ string, from the geographic CRS
/// code, else the ellipsoid code, else the ellipsoid's axes.
fn datum(g: &GeoKeyDirectory) -> Result<String, String> {
    if let Some(c) = code(g.geographic_type)
        && let Some(def) = crs_definitions::from_code(c)
    {
        let params: Vec<&str> = def
            .proj4
            .split_whitespace()
            .filter(|p| {
                [
                    "+datum=",
                    "+ellps=",
                    "+towgs84=",
                    "+a=",
                    "+b=",
                    "+rf=",
                    "+pm=",
                ]
                .iter()
                .any(|k| p.starts_with(k))
            })
            .collect();
        if !params.is_empty() {
            return Ok(params.join(" "));
        }
    }
    let ellps = match code(g.geog_ellipsoid) {
        Some(7030) => Some("+ellps=WGS84"),
        Some(7019) => Some("+ellps=GRS80"),
        Some(7022) => Some("+ellps=intl"),
        Some(7004) => Some("+ellps=bessel"),
        Some(7008) => Some("+ellps=clrk66"),
        Some(7012) => Some("+ellps=clrk80"),
        Some(7043) => Some("+ellps=WGS72"),
        _ => None,
    };
    if let Some(e) = ellps {
        return Ok(e.into());
    }
    match (
        g.geog_semi_major_axis,
        g.geog_inv_flattening,
        g.geog_semi_minor_axis,
    ) {
        (Some(a), Some(rf), _) if a > 0.0 && rf > 0.0 => Ok(format!("+a={a} +rf={rf}")),
        (Some(a), _, Some(b)) if a > 0.0 && b > 0.0 => Ok(format!("+a={a} +b={b}")),
        _ => Err("no geographic CRS or ellipsoid".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every key absent (the type has no `Default`).
    fn keys() -> GeoKeyDirectory {
        GeoKeyDirectory {
            model_type: None,
            raster_type: None,
            citation: None,
            geographic_type: None,
            geog_citation: None,
            geog_geodetic_datum: None,
            geog_prime_meridian: None,
            geog_linear_units: None,
            geog_linear_unit_size: None,
            geog_angular_units: None,
            geog_angular_unit_size: None,
            geog_ellipsoid: None,
            geog_semi_major_axis: None,
            geog_semi_minor_axis: None,
            geog_inv_flattening: None,
            geog_azimuth_units: None,
            geog_prime_meridian_long: None,
            projected_type: None,
            proj_citation: None,
            projection: None,
            proj_coord_trans: None,
            proj_linear_units: None,
            proj_linear_unit_size: None,
            proj_std_parallel1: None,
            proj_std_parallel2: None,
            proj_nat_origin_long: None,
            proj_nat_origin_lat: None,
            proj_false_easting: None,
            proj_false_northing: None,
            proj_false_origin_long: None,
            proj_false_origin_lat: None,
            proj_false_origin_easting: None,
            proj_false_origin_northing: None,
            proj_center_long: None,
            proj_center_lat: None,
            proj_center_easting: None,
            proj_center_northing: None,
            proj_scale_at_nat_origin: None,
            proj_scale_at_center: None,
            proj_azimuth_angle: None,
            proj_straight_vert_pole_long: None,
            vertical: None,
            vertical_citation: None,
            vertical_datum: None,
            vertical_units: None,
        }
    }

    #[test]
    fn epsg_codes_pass_through() {
        let mut g = keys();
        g.model_type = Some(1);
        g.projected_type = Some(32631);
        g.geographic_type = Some(4326);
        assert_eq!(crs(&g), Crs::Epsg(32631));
        let mut g = keys();
        g.model_type = Some(2);
        g.geographic_type = Some(4326);
        assert_eq!(crs(&g), Crs::Epsg(4326));
    }

    #[test]
    fn a_user_defined_projection_never_becomes_its_geographic_crs() {
        let mut g = keys();
        g.model_type = Some(1);
        g.projected_type = Some(USER_DEFINED);
        g.projection = Some(USER_DEFINED);
        g.geographic_type = Some(4326);
        // No transformation keys: no CRS at all.
        assert!(matches!(crs(&g), Crs::Unknown(_)), "{:?}", crs(&g));
        g.proj_coord_trans = Some(1);
        g.proj_nat_origin_lat = Some(0.0);
        g.proj_nat_origin_long = Some(15.0);
        g.proj_scale_at_nat_origin = Some(0.9999);
        g.proj_false_easting = Some(500_000.0);
        g.proj_false_northing = Some(0.0);
        g.proj_linear_units = Some(9001);
        let Crs::Custom(p) = crs(&g) else {
            panic!("{:?}", crs(&g))
        };
        assert!(
            p.starts_with("+proj=tmerc +lat_0=0 +lon_0=15 +k=0.9999 +x_0=500000"),
            "{p}"
        );
        assert!(p.contains("+datum=WGS84"), "{p}");
        proj4rs::Proj::from_proj_string(&p).unwrap();
    }

    #[test]
    fn utm_projection_keys() {
        let mut g = keys();
        g.model_type = Some(1);
        g.projected_type = Some(USER_DEFINED);
        g.projection = Some(16_033);
        g.geographic_type = Some(4326);
        assert_eq!(crs(&g), Crs::Epsg(32633));
        g.projection = Some(16_133);
        assert_eq!(crs(&g), Crs::Epsg(32733));
        g.geographic_type = Some(USER_DEFINED);
        g.geog_semi_major_axis = Some(6_378_388.0);
        g.geog_inv_flattening = Some(297.0);
        let Crs::Custom(p) = crs(&g) else {
            panic!("{:?}", crs(&g))
        };
        assert_eq!(
            p,
            "+proj=utm +zone=33 +south +a=6378388 +rf=297 +units=m +no_defs"
        );
        proj4rs::Proj::from_proj_string(&p).unwrap();
    }

    #[test]
    fn laea_in_feet() {
        let mut g = keys();
        g.model_type = Some(1);
        g.projected_type = Some(USER_DEFINED);
        g.proj_coord_trans = Some(10);
        g.proj_center_lat = Some(52.0);
        g.proj_center_long = Some(10.0);
        g.proj_false_easting = Some(1000.0);
        g.proj_linear_units = Some(9002);
        g.geog_ellipsoid = Some(7019);
        let Crs::Custom(p) = crs(&g) else {
            panic!("{:?}", crs(&g))
        };
        assert_eq!(
            p,
            "+proj=laea +lat_0=52 +lon_0=10 +x_0=304.8 +y_0=0 +ellps=GRS80 +to_meter=0.3048 +no_defs"
        );
        proj4rs::Proj::from_proj_string(&p).unwrap();
    }
}
