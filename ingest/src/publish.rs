//! Publishing a vector dataset of the lake as a tile layer: the asset's
//! file is read through the storage crate, its features are decoded
//! ([`crate::layer`]) and written into a new table of the catalog, which
//! replaces the previous publication in one transaction.

use catalog::Store;
use catalog::access::Visibility;
use catalog::store::layers::LayerSource;
use catalog::{CollectionId, ItemId};
use serde_json::Value;
use storage::Registry;

use crate::layer::{Feature, LayerError, LayerFormat, read_layer};

/// Largest file published: the file and its decoded features are held in
/// memory while they are imported.
pub const MAX_PUBLISH_BYTES: u64 = 2 << 30;
/// Features written per statement.
const BATCH: usize = 5_000;

/// What a publication did.
#[derive(Debug, Clone)]
pub struct Publication {
    /// Features imported (0 when unchanged).
    pub features: i64,
    /// Features without a geometry, left out.
    pub skipped: u64,
    /// The layer's change stamp.
    pub stamp: i64,
    /// The file had not changed since the last publication: nothing was
    /// done.
    pub unchanged: bool,
}

/// Why an asset could not be published.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// The item, the asset or its file is not what publishing needs.
    #[error("{0}")]
    Refused(String),
    /// The file's features could not be read.
    #[error("{href}: {source}")]
    Read {
        href: String,
        #[source]
        source: LayerError,
    },
    /// The storage failed.
    #[error(transparent)]
    Storage(#[from] storage::Error),
    /// The catalog failed or refused the rows.
    #[error(transparent)]
    Catalog(#[from] catalog::Error),
}

/// Publish asset `asset` of item `item` in `collection`: read its file
/// (GeoParquet or FlatGeobuf) from the source of `registry` that covers
/// its href and import it as the item's tile layer. Unless `force`, a file
/// whose change token equals the last publication's is left alone.
pub async fn publish(
    store: &Store,
    registry: &Registry,
    (collection, item, asset): (&str, &str, &str),
    force: bool,
) -> Result<Publication, PublishError> {
    let refused = |m: String| PublishError::Refused(m);
    let cid = CollectionId::new(collection.to_owned()).map_err(refused)?;
    let iid = ItemId::new(item.to_owned()).map_err(refused)?;
    let stored = store.get_item(&cid, &iid, &Visibility::all()).await?;
    let doc: Value = serde_json::from_str(&stored.content).unwrap_or(Value::Null);
    let Some(found) = doc["assets"].get(asset) else {
        return Err(refused(format!("item {item:?} has no asset {asset:?}")));
    };
    let href = found["href"].as_str().unwrap_or_default().to_owned();
    let media_type = found["type"].as_str().unwrap_or_default();
    let format = LayerFormat::from_media_type(media_type, &href).ok_or_else(|| {
        refused(format!(
            "asset {asset:?} ({}) is neither GeoParquet nor FlatGeobuf",
            if media_type.is_empty() {
                &href
            } else {
                media_type
            }
        ))
    })?;
    let (registered, path) = registry.resolve(&href)?.ok_or_else(|| {
        refused(format!(
            "no source of the sources file covers {href}: name it with --config"
        ))
    })?;
    publish_file(
        store,
        registered.source.as_ref(),
        &path,
        (collection, item, asset),
        (&href, format),
        force,
    )
    .await
}

/// Publish the file at `path` of `source` (the asset `href`, of `format`)
/// as the tile layer of `asset` of `item` in `collection`.
pub async fn publish_file(
    store: &Store,
    source: &dyn storage::Source,
    path: &str,
    (collection, item, asset): (&str, &str, &str),
    (href, format): (&str, LayerFormat),
    force: bool,
) -> Result<Publication, PublishError> {
    let refused = |m: String| PublishError::Refused(m);
    let href = href.to_owned();
    let entry = source
        .head(path)
        .await?
        .ok_or_else(|| refused(format!("{href} is not in its source")))?;
    let token = entry.token();
    if !force
        && let Some(old) = store.published_layer(collection, item, asset).await?
        && old.source_token == token
    {
        return Ok(Publication {
            features: 0,
            skipped: 0,
            stamp: old.stamp,
            unchanged: true,
        });
    }
    if entry.size > MAX_PUBLISH_BYTES {
        return Err(refused(format!(
            "{href} holds {} bytes; files above {MAX_PUBLISH_BYTES} bytes are not published",
            entry.size
        )));
    }
    let bytes = source.read_range(path, 0..entry.size).await?;
    let read_href = href.clone();
    let (info, batches) = tokio::task::spawn_blocking(move || {
        let mut batches: Vec<Vec<Feature>> = Vec::new();
        let info = read_layer(
            format,
            bytes,
            |batch| {
                batches.push(batch);
                Ok(())
            },
            BATCH,
        );
        info.map(|info| (info, batches))
    })
    .await
    .map_err(|e| refused(format!("reading {href} stopped: {e}")))?
    .map_err(|source| PublishError::Read {
        href: read_href,
        source,
    })?;
    let srid = match info.srid {
        Some(srid) => srid,
        None => {
            tracing::warn!(%href, "the dataset names no known CRS: read as longitude/latitude (EPSG:4326)");
            4326
        }
    };
    let mut writer = store
        .begin_layer(LayerSource {
            collection: collection.to_owned(),
            item: item.to_owned(),
            asset: asset.to_owned(),
            href: href.clone(),
            token,
            srid,
        })
        .await?;
    for batch in batches {
        let (geometries, properties): (Vec<Vec<u8>>, Vec<Value>) = batch
            .into_iter()
            .map(|f| (f.wkb, Value::Object(f.properties)))
            .unzip();
        writer.write(geometries, properties).await?;
    }
    let columns: Vec<(String, String)> = info
        .columns
        .iter()
        .map(|(n, k)| (n.clone(), (*k).to_owned()))
        .collect();
    let published = writer.finish(&columns).await?;
    Ok(Publication {
        features: published.features,
        skipped: info.skipped,
        stamp: published.stamp,
        unchanged: false,
    })
}

/// Publish every GeoParquet and FlatGeobuf asset of `collection` whose
/// file `source` holds (after a crawl of a source configured with
/// `publish = true`). A file that fails is logged and counted; the others
/// go on. Returns (published, unchanged, failed).
pub async fn publish_collection(
    store: &Store,
    source: &dyn storage::Source,
    collection: &str,
) -> Result<(u64, u64, u64), PublishError> {
    let mut counts = (0, 0, 0);
    for (item, key, href, media_type) in store.vector_assets(collection).await? {
        let Some(format) = LayerFormat::from_media_type(&media_type, &href) else {
            continue;
        };
        let Some(path) = source
            .relative(&href)
            .filter(|p| storage::source::check_relative(p).is_ok())
        else {
            continue;
        };
        match publish_file(
            store,
            source,
            &path,
            (collection, &item, &key),
            (&href, format),
            false,
        )
        .await
        {
            Ok(p) if p.unchanged => counts.1 += 1,
            Ok(p) => {
                tracing::info!(%href, features = p.features, "published as a tile layer");
                counts.0 += 1;
            }
            Err(e) => {
                tracing::warn!(%href, error = %e, "not published");
                counts.2 += 1;
            }
        }
    }
    Ok(counts)
}
