//! The aggregation extension: `/aggregations` lists what can be computed,
//! `/aggregate` computes it over the items a search matches.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use catalog::links::link;
use catalog::search::{Search, SearchBody, SearchParams};
use catalog::store::{AGGREGATIONS, AggregateOptions};
use serde_json::{Map, Value, json};

use super::collections::collection_id;
use crate::auth::Caller;
use crate::error::{ApiError, Exception};
use crate::extract::{Base, Path, Query, SearchJson};
use crate::response::{JSON, json_text};
use crate::state::AppState;

/// The most aggregations one request may ask for.
const MAX_NAMES: usize = 32;

fn names_from_text(text: Option<&str>) -> Vec<String> {
    text.unwrap_or("total_count")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn options(get: impl Fn(&str) -> Option<String>) -> Result<AggregateOptions, ApiError> {
    let mut o = AggregateOptions::default();
    if let Some(i) = get("datetime_frequency_interval") {
        o.datetime_interval = i.parse()?;
    }
    let int = |name: &str| -> Result<Option<i32>, ApiError> {
        get(name)
            .map(|v| {
                v.trim()
                    .parse::<i32>()
                    .map_err(|_| ApiError::bad_request(format!("{name} must be an integer")))
            })
            .transpose()
    };
    if let Some(p) = int("grid_geohash_frequency_precision")? {
        o.geohash_precision = p;
    }
    if let Some(p) = int("grid_geotile_frequency_precision")? {
        o.geotile_precision = p;
    }
    Ok(o.check()?)
}

async fn answer(
    state: &AppState,
    links: &catalog::links::Links,
    caller: &Caller,
    mut search: Search,
    names: Vec<String>,
    options: &AggregateOptions,
) -> Result<Response, ApiError> {
    search.visibility = caller.visibility.clone();
    let search = &search;
    if names.len() > MAX_NAMES {
        return Err(ApiError::bad_request(format!(
            "at most {MAX_NAMES} aggregations per request"
        )));
    }
    let aggregations = state.store.aggregate(search, &names, options).await?;
    let body = json!({
        "type": "AggregationCollection",
        "aggregations": aggregations,
        "links": [link("root", &links.root(), JSON)],
    });
    Ok(json_text(StatusCode::OK, JSON, body.to_string()))
}

/// The aggregations this server computes.
#[utoipa::path(
    get, path = "/aggregations", operation_id = "getAggregations", tag = "Aggregation",
    responses((status = 200, description = "Available aggregations", content_type = "application/json", body = Object))
)]
pub async fn list_aggregations(Base(links): Base) -> Response {
    let list: Vec<Value> = AGGREGATIONS
        .iter()
        .map(|(name, data_type, title)| json!({"name": name, "data_type": data_type, "title": title}))
        .collect();
    let body = json!({
        "type": "AggregationCollection",
        "aggregations": list,
        "links": [
            link("root", &links.root(), JSON),
            link("self", &links.url("/aggregations"), JSON),
        ],
    });
    json_text(StatusCode::OK, JSON, body.to_string())
}

/// Aggregate the items a search matches (GET): the item-search parameters
/// plus `aggregations=total_count,datetime_frequency,…`.
#[utoipa::path(
    get, path = "/aggregate", operation_id = "getAggregate", tag = "Aggregation",
    params(
        ("aggregations" = Option<String>, Query, description = "Comma-separated names from `/aggregations` (default total_count)"),
        ("datetime_frequency_interval" = Option<String>, Query, description = "day, week, month (default) or year"),
        ("grid_geohash_frequency_precision" = Option<u32>, Query, description = "1-12 (default 2)"),
        ("grid_geotile_frequency_precision" = Option<u32>, Query, description = "0-20 (default 4)"),
    ),
    responses(
        (status = 200, description = "The aggregations", content_type = "application/json", body = Object),
        (status = 400, description = "Invalid search or aggregation", body = Exception),
    )
)]
pub async fn aggregate_get(
    State(state): State<AppState>,
    Base(links): Base,
    caller: Caller,
    Query(params): Query<SearchParams>,
) -> Result<Response, ApiError> {
    let search = Search::from_params(&params)?;
    let names = names_from_text(params.other.get("aggregations").map(String::as_str));
    let options = options(|k| params.other.get(k).cloned())?;
    answer(&state, &links, &caller, search, names, &options).await
}

/// Aggregate the items a search matches (POST): a search body plus
/// `"aggregations": ["total_count", …]`.
#[utoipa::path(
    post, path = "/aggregate", operation_id = "postAggregate", tag = "Aggregation",
    request_body(content = Object, description = "A search body with `aggregations`", content_type = "application/json"),
    responses(
        (status = 200, description = "The aggregations", content_type = "application/json", body = Object),
        (status = 400, description = "Invalid search or aggregation", body = Exception),
    )
)]
pub async fn aggregate_post(
    State(state): State<AppState>,
    Base(links): Base,
    caller: Caller,
    SearchJson(body): SearchJson,
) -> Result<Response, ApiError> {
    if !body.is_object() {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    }
    let parsed: SearchBody = serde_json::from_value(body)
        .map_err(|e| ApiError::bad_request(format!("invalid search: {e}")))?;
    let search = Search::from_body(&parsed)?;
    let other: &Map<String, Value> = &parsed.other;
    let names = match other.get("aggregations") {
        None | Some(Value::Null) => names_from_text(None),
        Some(Value::String(s)) => names_from_text(Some(s)),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| ApiError::bad_request("aggregations must list names"))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(ApiError::bad_request(
                "aggregations must be an array of names",
            ));
        }
    };
    let options = options(|k| match other.get(k) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    })?;
    answer(&state, &links, &caller, search, names, &options).await
}

/// Aggregate the items of one collection.
#[utoipa::path(
    get, path = "/collections/{collectionId}/aggregate", operation_id = "getCollectionAggregate", tag = "Aggregation",
    params(
        ("collectionId" = String, Path, description = "Collection id"),
        ("aggregations" = Option<String>, Query, description = "Comma-separated names from `/aggregations`"),
    ),
    responses(
        (status = 200, description = "The aggregations", content_type = "application/json", body = Object),
        (status = 400, description = "Invalid search or aggregation", body = Exception),
        (status = 404, description = "No such collection", body = Exception),
    )
)]
pub async fn aggregate_collection(
    State(state): State<AppState>,
    Base(links): Base,
    caller: Caller,
    Path(collection): Path<String>,
    Query(params): Query<SearchParams>,
) -> Result<Response, ApiError> {
    let id = collection_id(collection)?;
    state
        .store
        .require_collection(&id, &caller.visibility)
        .await?;
    let mut search = Search::from_params(&SearchParams {
        collections: None,
        ids: None,
        ..params.clone()
    })?;
    search.collections = vec![id.as_str().to_owned()];
    let names = names_from_text(params.other.get("aggregations").map(String::as_str));
    let options = options(|k| params.other.get(k).cloned())?;
    answer(&state, &links, &caller, search, names, &options).await
}
