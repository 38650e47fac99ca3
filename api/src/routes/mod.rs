//! The routes, registered with their OpenAPI operations.

pub mod aggregate;
pub mod asset_tiles;
pub mod assets;
pub mod browse;
pub mod collections;
pub mod docs;
pub mod health;
pub mod items;
pub mod landing;
pub mod queryables;
pub mod search;
pub mod tiles;

use axum::Router;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::openapi::ApiDoc;
use crate::state::AppState;

/// Every route, and the OpenAPI document describing them.
pub fn router() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, api) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(landing::get_landing))
        .routes(routes!(landing::get_conformance))
        .routes(routes!(docs::get_openapi))
        .routes(routes!(docs::get_api_docs))
        .routes(routes!(
            collections::list_collections,
            collections::create_collection
        ))
        .routes(routes!(
            collections::get_collection,
            collections::replace_collection,
            collections::patch_collection,
            collections::delete_collection
        ))
        .routes(routes!(items::list_items, items::create_item))
        .routes(routes!(
            items::get_item,
            items::replace_item,
            items::patch_item,
            items::delete_item
        ))
        .routes(routes!(search::search_get, search::search_post))
        .routes(routes!(collections::search_collections))
        .routes(routes!(aggregate::list_aggregations))
        .routes(routes!(aggregate::aggregate_get, aggregate::aggregate_post))
        .routes(routes!(aggregate::aggregate_collection))
        .routes(routes!(queryables::get_queryables))
        .routes(routes!(queryables::get_collection_queryables))
        .routes(routes!(queryables::get_sortables))
        .routes(routes!(queryables::get_collection_sortables))
        .routes(routes!(assets::sign_get, assets::sign_post))
        .routes(routes!(assets::token))
        .routes(routes!(tiles::tile_matrix_sets))
        .routes(routes!(tiles::get_tile_matrix_set))
        .routes(routes!(tiles::collection_tilesets))
        .routes(routes!(tiles::collection_tileset))
        .routes(routes!(tiles::collection_tilejson))
        .routes(routes!(tiles::collection_style))
        .routes(routes!(tiles::collection_tile))
        .routes(routes!(tiles::search_tile))
        .routes(routes!(tiles::search_tilejson))
        .routes(routes!(tiles::search_style))
        .routes(routes!(tiles::register_search))
        .routes(routes!(tiles::registered_search_tile))
        .routes(routes!(tiles::registered_search_tilejson))
        .routes(routes!(tiles::registered_search_style))
        .routes(routes!(asset_tiles::asset_tilesets))
        .routes(routes!(asset_tiles::asset_tileset))
        .routes(routes!(asset_tiles::asset_tilejson))
        .routes(routes!(asset_tiles::asset_style))
        .routes(routes!(asset_tiles::asset_tile))
        .routes(routes!(asset_tiles::asset_features))
        .routes(routes!(health::get_health))
        .routes(routes!(health::get_readiness))
        .split_for_parts();
    (
        browse::routes(
            router
                .route(
                    "/assets/{source}/{*path}",
                    axum::routing::get(assets::stream),
                )
                .route("/metrics", axum::routing::get(crate::metrics::get_metrics)),
        ),
        api,
    )
}
