//! GeoTIFF and Cloud-Optimized GeoTIFF headers, through `async-tiff`.

use std::ops::Range;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{NaiveDateTime, TimeZone, Utc};
use serde_json::{Map, Value, json};

use super::geokeys::{self, Crs};
use super::{AssetInfo, RangeReader, ReadError, ext};
use crate::geo::Footprint;

/// Most IFDs read (full resolution, overviews, masks).
const MAX_IFDS: usize = 64;

pub const COG: &str = "image/tiff; application=geotiff; profile=cloud-optimized";
pub const GEOTIFF: &str = "image/tiff; application=geotiff";

/// `async-tiff`'s fetch trait over our cached range reader.
#[derive(Debug)]
struct Fetch(tokio::sync::Mutex<RangeReader>);

#[async_trait]
impl async_tiff::metadata::MetadataFetch for Fetch {
    async fn fetch(&self, range: Range<u64>) -> async_tiff::error::AsyncTiffResult<Bytes> {
        let mut r = self.0.lock().await;
        r.read(range)
            .await
            .map_err(|e| async_tiff::error::AsyncTiffError::General(e.to_string()))
    }
}

fn tiff_error(e: &async_tiff::error::AsyncTiffError) -> ReadError {
    ReadError::invalid(format!("not a readable TIFF: {e}"))
}

/// Read a (Geo)TIFF header.
pub async fn read(reader: RangeReader) -> Result<AssetInfo, ReadError> {
    let size = reader.size();
    if size < 8 {
        return Err(ReadError::invalid("truncated: shorter than a TIFF header"));
    }
    let fetch = Fetch(tokio::sync::Mutex::new(reader));
    let mut meta = async_tiff::metadata::TiffMetadataReader::try_open(&fetch)
        .await
        .map_err(|e| tiff_error(&e))?;
    let mut ifds = Vec::new();
    let mut ifd_offsets = Vec::new();
    while let Some(offset) = meta.next_ifd_offset() {
        if ifds.len() >= MAX_IFDS {
            break;
        }
        if offset >= size || ifd_offsets.contains(&offset) {
            return Err(ReadError::invalid(format!(
                "IFD offset {offset} is outside the file or loops"
            )));
        }
        ifd_offsets.push(offset);
        match meta.read_next_ifd(&fetch).await {
            Ok(Some(ifd)) => ifds.push(ifd),
            Ok(None) => break,
            Err(e) => return Err(tiff_error(&e)),
        }
    }
    let Some(first) = ifds.first() else {
        return Err(ReadError::invalid("TIFF without an image"));
    };
    describe(first, &ifds, &ifd_offsets)
}

fn describe(
    first: &async_tiff::ImageFileDirectory,
    ifds: &[async_tiff::ImageFileDirectory],
    ifd_offsets: &[u64],
) -> Result<AssetInfo, ReadError> {
    let width = first.image_width();
    let height = first.image_height();
    if width == 0 || height == 0 {
        return Err(ReadError::invalid("image of zero width or height"));
    }
    let mut info = AssetInfo {
        roles: vec!["data".into()],
        ..AssetInfo::default()
    };
    let overviews = ifds[1..]
        .iter()
        .filter(|i| {
            i.new_subfile_type().unwrap_or(0) & 1 == 1 && i.new_subfile_type().unwrap_or(0) & 4 == 0
        })
        .count();
    let tiled = first.tile_width().is_some();
    let data_start = ifds
        .iter()
        .filter_map(|i| i.tile_offsets().or_else(|| i.strip_offsets()))
        .flat_map(|o| o.iter().copied().filter(|v| *v > 0))
        .min();
    let header_first = match data_start {
        Some(d) => ifd_offsets.iter().all(|o| *o < d),
        None => true,
    };
    let small = width <= 512 && height <= 512;
    let cog = tiled && (overviews > 0 || small) && header_first;
    info.media_type = if cog { COG } else { GEOTIFF }.into();

    // Geo-referencing.
    let crs = first
        .geo_key_directory()
        .map_or_else(|| Crs::Unknown("no GeoKeys".into()), geokeys::crs);
    let pixel_is_point = first.geo_key_directory().and_then(|g| g.raster_type) == Some(2);
    let transform = geotransform(first, pixel_is_point);
    let bbox = transform.map(|[a, b, c, d, e, f]| {
        let (w, h) = (f64::from(width), f64::from(height));
        let xs = [c, a * w + c, b * h + c, a * w + b * h + c];
        let ys = [f, d * w + f, e * h + f, d * w + e * h + f];
        info.fields
            .insert("proj:transform".into(), json!([a, b, c, d, e, f]));
        let bbox = [
            xs.iter().copied().fold(f64::INFINITY, f64::min),
            ys.iter().copied().fold(f64::INFINITY, f64::min),
            xs.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            ys.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        ];
        info.fields.insert("proj:bbox".into(), json!(bbox));
        bbox
    });
    if bbox.is_none() {
        info.warnings
            .push("no geotransform: not georeferenced".into());
    }
    match &crs {
        Crs::Epsg(code) => info.locate(Some(*code), bbox, ""),
        Crs::Custom(proj) => {
            // A CRS without a code: `proj:code` null, the footprint from PROJ parameters.
            info.fields.insert("proj:code".into(), Value::Null);
            if let Some(b) = bbox {
                let located = proj4rs::Proj::from_proj_string(proj)
                    .map_err(|e| e.to_string())
                    .and_then(|p| {
                        if p.is_latlong() {
                            Footprint::from_lonlat_bbox(b)
                        } else {
                            Footprint::from_projected_bbox_with(&p, "the user-defined CRS", b)
                        }
                    });
                match located {
                    Ok(fp) => info.footprint = Some(fp),
                    Err(e) => info.warnings.push(format!("no footprint: {e}")),
                }
            }
        }
        Crs::Unknown(why) => {
            info.fields.insert("proj:code".into(), Value::Null);
            if bbox.is_some() {
                info.warnings.push(format!("{why}: no footprint"));
            }
        }
    }
    info.fields
        .insert("proj:shape".into(), json!([height, width]));
    info.extensions.insert(ext::PROJECTION.into());

    // Bands.
    let samples = usize::from(first.samples_per_pixel()).max(1);
    if samples > 10_000 {
        return Err(ReadError::invalid(format!("absurd band count {samples}")));
    }
    let bits = first.bits_per_sample().first().copied().unwrap_or(8);
    let format = first.sample_format().first().copied();
    let data_type = data_type(format, bits);
    let nodata = first.gdal_nodata().and_then(nodata_value);
    let gdal = first
        .gdal_metadata()
        .map(parse_gdal_metadata)
        .unwrap_or_default();
    let resolution = transform.map(|t| t[0].abs());
    let bands: Vec<Value> = (0..samples)
        .map(|i| {
            let mut band = Map::new();
            band.insert("data_type".into(), data_type.into());
            if let Some(n) = &nodata {
                band.insert("nodata".into(), n.clone());
            }
            if let Some(r) = resolution {
                band.insert("spatial_resolution".into(), json!(r));
            }
            if let Some(s) = gdal.number(i, "scale") {
                band.insert("scale".into(), json!(s));
            }
            if let Some(o) = gdal.number(i, "offset") {
                band.insert("offset".into(), json!(o));
            }
            if let Some(d) = gdal.text(i, "description") {
                band.insert("description".into(), d.into());
            }
            let mut stats = Map::new();
            for (item, key) in [
                ("statistics_minimum", "minimum"),
                ("statistics_maximum", "maximum"),
                ("statistics_mean", "mean"),
                ("statistics_stddev", "stddev"),
                ("statistics_valid_percent", "valid_percent"),
            ] {
                if let Some(v) = gdal.number(i, item) {
                    stats.insert(key.into(), json!(v));
                }
            }
            if !stats.is_empty() {
                band.insert("statistics".into(), Value::Object(stats));
            }
            if bits != 8 && bits != 16 && bits != 32 && bits != 64 {
                band.insert("bits_per_sample".into(), bits.into());
            }
            Value::Object(band)
        })
        .collect();
    info.fields
        .insert("raster:bands".into(), Value::Array(bands));
    info.extensions.insert(ext::RASTER.into());

    // Layout, for users deciding how to read it.
    let mut layout = Map::new();
    layout.insert(
        "compression".into(),
        compression_name(first.compression()).into(),
    );
    layout.insert("tiled".into(), tiled.into());
    if let (Some(tw), Some(th)) = (first.tile_width(), first.tile_height()) {
        layout.insert("tile_shape".into(), json!([th, tw]));
    }
    layout.insert("overviews".into(), overviews.into());
    info.fields
        .insert("arcolake:tiff".into(), Value::Object(layout));

    if let Some(dt) = first.date_time().and_then(parse_tiff_datetime) {
        info.start = Some(dt);
    }
    if let Some(desc) = first
        .image_description()
        .filter(|d| !d.trim().is_empty() && d.len() < 200)
    {
        info.title = Some(desc.trim().to_owned());
    }
    Ok(info)
}

/// The affine transform `[a, b, c, d, e, f]` (x = a·col + b·row + c, y = d·col + e·row + f).
fn geotransform(ifd: &async_tiff::ImageFileDirectory, pixel_is_point: bool) -> Option<[f64; 6]> {
    let t = if let Some(m) = ifd.model_transformation().filter(|m| m.len() >= 8) {
        [m[0], m[1], m[3], m[4], m[5], m[7]]
    } else {
        let scale = ifd.model_pixel_scale().filter(|s| s.len() >= 2)?;
        let tie = ifd.model_tiepoint().filter(|t| t.len() >= 6)?;
        let (sx, sy) = (scale[0], scale[1]);
        [
            sx,
            0.0,
            tie[3] - tie[0] * sx,
            0.0,
            -sy,
            tie[4] + tie[1] * sy,
        ]
    };
    if !t.iter().all(|v| v.is_finite()) || (t[0] == 0.0 && t[1] == 0.0) {
        return None;
    }
    if pixel_is_point {
        // The tie point names a pixel centre: move to its corner.
        return Some([
            t[0],
            t[1],
            t[2] - 0.5 * t[0] - 0.5 * t[1],
            t[3],
            t[4],
            t[5] - 0.5 * t[3] - 0.5 * t[4],
        ]);
    }
    Some(t)
}

fn data_type(format: Option<async_tiff::tags::SampleFormat>, bits: u16) -> &'static str {
    use async_tiff::tags::SampleFormat as F;
    match (format.unwrap_or(F::Uint), bits) {
        (F::Int, 8) => "int8",
        (F::Int, 16) => "int16",
        (F::Int, 32) => "int32",
        (F::Int, 64) => "int64",
        (F::Float, 16) => "float16",
        (F::Float, 32) => "float32",
        (F::Float, 64) => "float64",
        (_, 8) => "uint8",
        (_, 16) => "uint16",
        (_, 32) => "uint32",
        (_, 64) => "uint64",
        _ => "other",
    }
}

fn compression_name(c: async_tiff::tags::Compression) -> String {
    use async_tiff::tags::Compression as C;
    match c {
        C::None => "none".into(),
        C::LZW => "lzw".into(),
        C::JPEG | C::ModernJPEG => "jpeg".into(),
        C::Deflate | C::OldDeflate => "deflate".into(),
        C::PackBits => "packbits".into(),
        C::LERC => "lerc".into(),
        C::LZMA => "lzma".into(),
        C::WebP => "webp".into(),
        C::JPEG2k => "jpeg2000".into(),
        C::ZSTD => "zstd".into(),
        other => format!("{other:?}").to_ascii_lowercase(),
    }
}

/// `GDAL_NODATA`: a number, `nan`, `inf`, `-inf`.
fn nodata_value(s: &str) -> Option<Value> {
    let t = s.trim().trim_end_matches('\0').trim();
    match t.to_ascii_lowercase().as_str() {
        "nan" | "-nan" => Some("nan".into()),
        "inf" | "+inf" => Some("inf".into()),
        "-inf" => Some("-inf".into()),
        _ => {
            let v: f64 = t.parse().ok()?;
            if v.fract() == 0.0 && v.abs() < 9.0e15 {
                #[expect(clippy::cast_possible_truncation, reason = "integral and in range")]
                Some(json!(v as i64))
            } else {
                Some(json!(v))
            }
        }
    }
}

/// TIFF `DateTime`: `YYYY:MM:DD HH:MM:SS`.
fn parse_tiff_datetime(s: &str) -> Option<chrono::DateTime<Utc>> {
    let s = s.trim().trim_end_matches('\0');
    NaiveDateTime::parse_from_str(s, "%Y:%m:%d %H:%M:%S")
        .ok()
        .map(|n| Utc.from_utc_datetime(&n))
}

/// The per-band items of GDAL's metadata XML (`GDAL_METADATA`, tag 42112).
#[derive(Debug, Default)]
struct GdalMetadata {
    /// (sample, role or lower-cased name, text)
    band_items: Vec<(usize, String, String)>,
}

impl GdalMetadata {
    /// The text of a band item, by role (`scale`, `description`) or name
    /// (`statistics_mean`); empty texts are absent.
    fn text(&self, sample: usize, key: &str) -> Option<&str> {
        self.band_items
            .iter()
            .find(|(s, k, _)| *s == sample && k == key)
            .map(|(_, _, v)| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// A band item as a finite number.
    fn number(&self, sample: usize, key: &str) -> Option<f64> {
        self.text(sample, key)?
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
    }
}

fn parse_gdal_metadata(xml: &str) -> GdalMetadata {
    use quick_xml::events::Event;
    let mut out = GdalMetadata::default();
    let mut reader = quick_xml::Reader::from_str(xml);
    // (sample, key, text so far): text comes in pieces around entity references.
    let mut current: Option<(usize, String, String)> = None;
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) if e.local_name().as_ref() == "Item" => {
                let mut sample = None;
                let mut role = None;
                let mut name = None;
                for a in e.attributes().flatten() {
                    let v = a.value.clone().into_owned();
                    match a.key.as_ref() {
                        "sample" => sample = v.parse().ok(),
                        "role" => role = Some(v),
                        "name" => name = Some(v.to_ascii_lowercase()),
                        _ => {}
                    }
                }
                current = sample
                    .zip(role.or(name))
                    .map(|(s, k)| (s, k, String::new()));
            }
            Ok(Event::Text(t)) => {
                if let Some((_, _, text)) = current.as_mut() {
                    text.push_str(&t.xml10_content());
                }
            }
            Ok(Event::GeneralRef(r)) => {
                if let Some((_, _, text)) = current.as_mut() {
                    if let Ok(Some(c)) = r.resolve_char_ref() {
                        text.push(c);
                    } else if let Some(v) =
                        quick_xml::escape::resolve_predefined_entity(&r.xml10_content())
                    {
                        text.push_str(v);
                    }
                }
            }
            Ok(Event::End(_)) => {
                if let Some(item) = current.take() {
                    out.band_items.push(item);
                }
            }
            Ok(Event::Eof) | Err(_) => break,
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gdal_metadata_scale_offset() {
        let xml = r#"<GDALMetadata><Item name="OFFSET" sample="0" role="offset">-0.1</Item><Item name="SCALE" sample="0" role="scale">0.0001</Item><Item name="X">y</Item></GDALMetadata>"#;
        let m = parse_gdal_metadata(xml);
        assert_eq!(m.number(0, "scale"), Some(0.0001));
        assert_eq!(m.number(0, "offset"), Some(-0.1));
        assert_eq!(m.number(1, "scale"), None);
    }

    #[test]
    fn gdal_metadata_descriptions_and_statistics() {
        let xml = r#"<GDALMetadata>
  <Item name="STATISTICS_MAXIMUM" sample="0">900</Item>
  <Item name="STATISTICS_MEAN" sample="0">450.5</Item>
  <Item name="DESCRIPTION" sample="0" role="description">red &amp; nir</Item>
  <Item name="DESCRIPTION" sample="1" role="description"></Item>
</GDALMetadata>"#;
        let m = parse_gdal_metadata(xml);
        assert_eq!(m.number(0, "statistics_maximum"), Some(900.0));
        assert_eq!(m.number(0, "statistics_mean"), Some(450.5));
        assert_eq!(m.text(0, "description"), Some("red & nir"));
        assert_eq!(m.text(1, "description"), None);
    }

    #[test]
    fn nodata_values() {
        assert_eq!(nodata_value("nan"), Some(json!("nan")));
        assert_eq!(nodata_value("0"), Some(json!(0)));
        assert_eq!(nodata_value("-9999.5\0"), Some(json!(-9999.5)));
        assert_eq!(nodata_value("x"), None);
    }

    #[test]
    fn tiff_datetimes() {
        let d = parse_tiff_datetime("2023:06:15 10:46:21").unwrap();
        assert_eq!(d.to_rfc3339(), "2023-06-15T10:46:21+00:00");
    }
}
