//! Collection access control end to end: a restricted collection and its
//! items do not exist for a caller without a grant (404, never 403; not
//! listed, searched, counted or aggregated, and its properties are not
//! queryable), while API keys, JWTs and the admin token show what they
//! grant. Also the `keys` command against the same database, CORS for
//! browsers that send credentials, and the `arcolake:access` member.

#![allow(clippy::unwrap_used, reason = "test code")]

mod support;

use std::collections::BTreeMap;
use std::process::{Command, Output};

use api::auth::jwt::{HttpClient, JwtConfig, JwtVerifier};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::{Duration, Utc};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use support::{Reply, TOKEN, TestApp, TestDb, ids, link, local};

const BIN: &str = env!("CARGO_BIN_EXE_arcolake");

const OPEN: &str = "open";
const SECRET: &str = "secret";
const OTHER: &str = "other-secret";
/// Every collection, by id.
const COLLECTIONS: [&str; 3] = [OPEN, OTHER, SECRET];

/// The catalog every test starts from: collection, item, lon, lat, datetime.
/// Items of all three collections share the box [`BBOX`] and the months.
const ITEMS: [(&str, &str, f64, f64, &str); 7] = [
    (OPEN, "o1", 10.0, 50.0, "2024-01-10T00:00:00Z"),
    (OPEN, "o2", 10.05, 50.0, "2024-02-10T00:00:00Z"),
    (OPEN, "o3", 11.0, 50.0, "2024-03-10T00:00:00Z"),
    (SECRET, "s1", 10.0, 50.0, "2024-01-20T00:00:00Z"),
    (SECRET, "s2", 10.02, 50.0, "2024-02-20T00:00:00Z"),
    (SECRET, "s3", 30.0, -10.0, "2024-05-20T00:00:00Z"),
    (OTHER, "x1", 10.0, 50.0, "2024-01-05T00:00:00Z"),
];
const BBOX: [f64; 4] = [9.0, 49.0, 12.0, 51.0];
const BBOX_PARAM: &str = "bbox=9,49,12,51";
/// A property only the items of [`SECRET`] carry.
const SECRET_PROPERTY: &str = "secret:depth";

const JWT_SECRET: &str = "a-shared-secret-for-the-access-tests";

fn settings() -> api::ServeConfig {
    api::ServeConfig {
        admin_token: Some(TOKEN.into()),
        public_url: Some("http://stac.test/api/".parse().unwrap()),
        ..api::ServeConfig::default()
    }
}

fn restricted(id: &str) -> Value {
    let mut c = support::collection(id);
    c["arcolake:access"] = json!("restricted");
    c
}

/// [`OPEN`] public, [`SECRET`] and [`OTHER`] restricted, with [`ITEMS`].
async fn catalog(settings: api::ServeConfig) -> TestApp {
    let app = TestApp::with_settings(settings).await;
    app.collection(OPEN).await;
    for id in [SECRET, OTHER] {
        let r = app
            .write("POST", "/collections", Some(&restricted(id)))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    }
    app.items(
        ITEMS
            .iter()
            .map(|&(c, id, lon, lat, datetime)| {
                let mut item = support::item(c, id, lon, lat, datetime);
                if c == SECRET {
                    item["properties"][SECRET_PROPERTY] = json!(7);
                }
                item
            })
            .collect(),
    )
    .await;
    app
}

/// How a request presents its credential.
#[derive(Debug, Clone, Copy)]
enum As<'a> {
    Anonymous,
    Bearer(&'a str),
    Query(&'a str),
}

fn request(method: &str, uri: &str, who: As<'_>, body: Option<&Value>) -> Request<Body> {
    let uri = match who {
        As::Query(key) => {
            let sep = if uri.contains('?') { '&' } else { '?' };
            let key: String = url::form_urlencoded::byte_serialize(key.as_bytes()).collect();
            format!("{uri}{sep}api_key={key}")
        }
        _ => uri.to_owned(),
    };
    let mut builder = Request::builder().method(method).uri(uri);
    if let As::Bearer(key) = who {
        builder = builder.header("authorization", format!("Bearer {key}"));
    }
    match body {
        Some(v) => builder
            .header("content-type", "application/json")
            .body(Body::from(v.to_string()))
            .unwrap(),
        None => builder.body(Body::empty()).unwrap(),
    }
}

async fn get(app: &TestApp, uri: &str, who: As<'_>) -> Reply {
    app.send(request("GET", uri, who, None)).await
}

async fn post(app: &TestApp, uri: &str, body: &Value, who: As<'_>) -> Reply {
    app.send(request("POST", uri, who, Some(body))).await
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn collection_ids(body: &Value) -> Vec<String> {
    sorted(
        body["collections"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap().to_owned())
            .collect(),
    )
}

/// The named aggregation of an `AggregationCollection`.
fn aggregation<'a>(body: &'a Value, name: &str) -> &'a Value {
    body["aggregations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {body}"))
}

fn buckets(body: &Value, name: &str) -> BTreeMap<String, u64> {
    aggregation(body, name)["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["key"].as_str().unwrap().to_owned(),
                b["frequency"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn properties(schema: &Value) -> Vec<String> {
    schema["properties"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect()
}

/// What a caller who sees the restricted collections `granted` is shown.
struct View {
    visible: Vec<&'static str>,
}

impl View {
    fn of(granted: &[&'static str]) -> Self {
        let mut visible = vec![OPEN];
        visible.extend_from_slice(granted);
        visible.sort_unstable();
        visible.dedup();
        Self { visible }
    }

    fn sees(&self, collection: &str) -> bool {
        self.visible.contains(&collection)
    }

    fn collections(&self) -> Vec<String> {
        self.visible.iter().map(|c| (*c).to_owned()).collect()
    }

    fn items(&self, keep: impl Fn(&str, f64, f64) -> bool) -> Vec<String> {
        sorted(
            ITEMS
                .iter()
                .filter(|(c, _, lon, lat, _)| self.sees(c) && keep(c, *lon, *lat))
                .map(|(_, id, ..)| (*id).to_owned())
                .collect(),
        )
    }

    fn all_items(&self) -> Vec<String> {
        self.items(|_, _, _| true)
    }

    fn items_of(&self, collection: &str) -> Vec<String> {
        self.items(|c, _, _| c == collection)
    }

    fn in_bbox(&self) -> Vec<String> {
        let [w, s, e, n] = BBOX;
        self.items(|_, lon, lat| (w..=e).contains(&lon) && (s..=n).contains(&lat))
    }

    /// Items per month, keyed as `datetime_frequency` keys them.
    fn months(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for (c, _, _, _, datetime) in ITEMS {
            if self.sees(c) {
                *out.entry(format!("{}-01T00:00:00Z", &datetime[..7]))
                    .or_default() += 1;
            }
        }
        out
    }

    /// Items per collection, as `collection_frequency` counts them.
    fn per_collection(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for (c, ..) in ITEMS {
            if self.sees(c) {
                *out.entry(c.to_owned()).or_default() += 1;
            }
        }
        out
    }
}

fn ok<'a>(r: &'a Reply, what: &str) -> &'a Value {
    assert_eq!(r.status, StatusCode::OK, "{what}: {}", r.text);
    &r.body
}

/// A 404 exactly like the one for a collection that does not exist.
fn assert_hidden(r: &Reply, missing: &Reply, collection: &str, what: &str) {
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{what}: {}", r.text);
    assert_eq!(r.body["code"], "NotFound", "{what}");
    let expected = missing.body["description"]
        .as_str()
        .unwrap()
        .replace("no-such-collection", collection);
    assert_eq!(r.body["description"], expected, "{what}");
}

/// Every read endpoint shows `who` exactly what `view` allows, and counts
/// nothing else.
async fn assert_sees(app: &TestApp, who: As<'_>, view: &View) {
    let ctx = format!("{who:?}");

    // Collections: listed, searched, and linked from the landing page.
    for (what, r) in [
        ("/collections", get(app, "/collections", who).await),
        ("/collections?q", get(app, "/collections?q=test", who).await),
        (
            "POST /collections-search",
            post(app, "/collections-search", &json!({"q": "test"}), who).await,
        ),
    ] {
        let body = ok(&r, &format!("{ctx} {what}"));
        assert_eq!(collection_ids(body), view.collections(), "{ctx} {what}");
        assert_eq!(body["numberMatched"], view.visible.len(), "{ctx} {what}");
    }
    let landing = get(app, "/", who).await;
    let children: Vec<String> = ok(&landing, &format!("{ctx} /"))["links"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["rel"] == "child")
        .map(|l| {
            l["href"]
                .as_str()
                .unwrap()
                .rsplit('/')
                .next()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(sorted(children), view.collections(), "{ctx} landing page");

    // Each collection and what hangs off it.
    let missing = get(app, "/collections/no-such-collection", who).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND, "{}", missing.text);
    for c in COLLECTIONS {
        let items = view.items_of(c);
        let first = ITEMS.iter().find(|i| i.0 == c).unwrap().1;
        let paths = [
            format!("/collections/{c}"),
            format!("/collections/{c}/items?limit=100"),
            format!("/collections/{c}/items/{first}"),
            format!("/collections/{c}/queryables"),
            format!("/collections/{c}/sortables"),
            format!("/collections/{c}/aggregate?aggregations=total_count,datetime_frequency"),
        ];
        let replies = futures::future::join_all(paths.iter().map(|p| get(app, p, who))).await;
        if !view.sees(c) {
            for (path, r) in paths.iter().zip(&replies) {
                let missing_path = path.replace(c, "no-such-collection");
                let missing = get(app, &missing_path, who).await;
                assert_hidden(r, &missing, c, &format!("{ctx} {path}"));
            }
            continue;
        }
        for (path, r) in paths.iter().zip(&replies) {
            ok(r, &format!("{ctx} {path}"));
        }
        assert_eq!(replies[0].body["id"], c, "{ctx}");
        assert_eq!(sorted(ids(&replies[1].body)), items, "{ctx} items of {c}");
        assert_eq!(replies[1].body["numberMatched"], items.len(), "{ctx} {c}");
        assert_eq!(replies[2].body["id"], first, "{ctx}");
        let has_property = properties(&replies[3].body).contains(&SECRET_PROPERTY.to_owned());
        assert_eq!(has_property, c == SECRET, "{ctx} queryables of {c}");
        assert_eq!(
            aggregation(&replies[5].body, "total_count")["value"],
            items.len(),
            "{ctx} aggregate of {c}"
        );
    }

    // Item search, GET and POST: matches and every way of counting them.
    let in_bbox = view.in_bbox();
    let all = view.all_items();
    let r = get(app, &format!("/search?{BBOX_PARAM}&limit=100"), who).await;
    assert_eq!(sorted(ids(ok(&r, &ctx))), in_bbox, "{ctx} GET /search bbox");
    assert_eq!(r.body["numberMatched"], in_bbox.len(), "{ctx}");
    for uri in [
        format!("/search?{BBOX_PARAM}&limit=1"),
        format!("/search?{BBOX_PARAM}&limit=1&context=on"),
    ] {
        let r = get(app, &uri, who).await;
        let page = ids(ok(&r, &format!("{ctx} {uri}")));
        assert!(in_bbox.contains(&page[0]), "{ctx} {uri}: {page:?}");
        assert_eq!(r.body["numberMatched"], in_bbox.len(), "{ctx} {uri}");
    }
    for uri in ["/search?limit=1", "/search?limit=1&context=on"] {
        let r = get(app, uri, who).await;
        assert_eq!(ok(&r, uri)["numberMatched"], all.len(), "{ctx} {uri}");
    }
    let r = get(app, "/search?ids=o1,s1,x1&limit=100", who).await;
    let expected: Vec<String> = all
        .iter()
        .filter(|i| ["o1", "s1", "x1"].contains(&i.as_str()))
        .cloned()
        .collect();
    assert_eq!(sorted(ids(ok(&r, &ctx))), expected, "{ctx} GET /search ids");
    for (body, expected) in [
        (json!({"bbox": BBOX, "limit": 100}), &in_bbox),
        (json!({"bbox": BBOX, "limit": 1}), &in_bbox),
        (json!({"bbox": BBOX, "limit": 1, "context": "on"}), &in_bbox),
        (json!({"collections": COLLECTIONS, "limit": 1}), &all),
        (json!({"collections": COLLECTIONS, "limit": 100}), &all),
    ] {
        let r = post(app, "/search", &body, who).await;
        let page = ids(ok(&r, &format!("{ctx} POST /search {body}")));
        assert!(
            page.iter().all(|i| expected.contains(i)),
            "{ctx} POST /search {body}: {page:?}"
        );
        assert_eq!(r.body["numberMatched"], expected.len(), "{ctx} {body}");
    }

    // Aggregation.
    let names = "total_count,datetime_frequency,collection_frequency";
    let r = get(app, &format!("/aggregate?aggregations={names}"), who).await;
    let body = ok(&r, &format!("{ctx} GET /aggregate"));
    assert_eq!(
        aggregation(body, "total_count")["value"],
        all.len(),
        "{ctx}"
    );
    assert_eq!(buckets(body, "datetime_frequency"), view.months(), "{ctx}");
    assert_eq!(
        buckets(body, "collection_frequency"),
        view.per_collection(),
        "{ctx}"
    );
    let r = post(
        app,
        "/aggregate",
        &json!({"bbox": BBOX, "aggregations": ["total_count"]}),
        who,
    )
    .await;
    let body = ok(&r, &format!("{ctx} POST /aggregate"));
    assert_eq!(
        aggregation(body, "total_count")["value"],
        in_bbox.len(),
        "{ctx}"
    );

    // Queryables of the whole catalog: the restricted collection's property
    // and sortables only for those who see it.
    let r = get(app, "/queryables", who).await;
    let listed = properties(ok(&r, &format!("{ctx} /queryables")));
    assert_eq!(
        listed.contains(&SECRET_PROPERTY.to_owned()),
        view.sees(SECRET),
        "{ctx} /queryables: {listed:?}"
    );
    let r = get(app, "/sortables", who).await;
    let listed = properties(ok(&r, &format!("{ctx} /sortables")));
    assert_eq!(
        listed.contains(&SECRET_PROPERTY.to_owned()),
        view.sees(SECRET),
        "{ctx} /sortables: {listed:?}"
    );
}

/// A 401 exception, as JSON, that does not echo the credential.
fn assert_unauthorized(r: &Reply, credential: &str, what: &str) {
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{what}: {}", r.text);
    assert_eq!(
        r.headers["content-type"], "application/json",
        "{what}: {}",
        r.text
    );
    assert_eq!(r.body["code"], "Unauthorized", "{what}: {}", r.text);
    assert!(
        r.body["description"]
            .as_str()
            .is_some_and(|d| !d.is_empty()),
        "{what}: {}",
        r.text
    );
    assert!(
        r.headers
            .get("www-authenticate")
            .is_some_and(|v| v.to_str().unwrap().starts_with("Bearer")),
        "{what}: {:?}",
        r.headers
    );
    if credential.len() > 8 {
        assert!(!r.text.contains(credential), "{what} echoes the credential");
    }
}

/// No collection, item or property of a restricted collection in a reply
/// (both restricted ids contain `secret`).
fn assert_reveals_nothing(r: &Reply, what: &str) {
    assert!(!r.text.contains(SECRET), "{what} reveals: {}", r.text);
    for (c, id, ..) in ITEMS {
        if c != OPEN {
            assert!(
                !r.text.contains(&format!("\"{id}\"")),
                "{what} reveals {id}: {}",
                r.text
            );
        }
    }
}

#[tokio::test]
async fn restricted_collections_are_invisible_to_anonymous_callers() {
    let app = catalog(settings()).await;
    assert_sees(&app, As::Anonymous, &View::of(&[])).await;

    for uri in [
        "/",
        "/collections",
        "/collections?q=test",
        "/search?bbox=9,49,12,51&limit=1",
        "/search?limit=100",
        "/aggregate?aggregations=total_count,datetime_frequency,collection_frequency",
        "/queryables",
        "/sortables",
    ] {
        let r = get(&app, uri, As::Anonymous).await;
        ok(&r, uri);
        assert_reveals_nothing(&r, uri);
    }

    // A search naming only restricted collections or items matches nothing.
    for body in [
        json!({"collections": [SECRET]}),
        json!({"collections": [SECRET], "limit": 1, "context": "on"}),
        json!({"collections": [SECRET, OTHER], "bbox": BBOX}),
        json!({"ids": ["s1", "s2", "x1"]}),
    ] {
        let r = post(&app, "/search", &body, As::Anonymous).await;
        let what = format!("POST /search {body}");
        assert!(ids(ok(&r, &what)).is_empty(), "{what}: {}", r.text);
        assert_eq!(r.body["numberMatched"], 0, "{what}");
    }
    let r = get(&app, "/search?collections=secret", As::Anonymous).await;
    assert!(ids(ok(&r, "GET /search?collections=secret")).is_empty());
    assert_eq!(r.body["numberMatched"], 0);
    let r = get(
        &app,
        "/aggregate?collections=secret&aggregations=total_count,datetime_frequency",
        As::Anonymous,
    )
    .await;
    let body = ok(&r, "GET /aggregate?collections=secret");
    assert_eq!(aggregation(body, "total_count")["value"], 0);
    assert!(buckets(body, "datetime_frequency").is_empty(), "{}", r.text);
}

#[tokio::test]
async fn page_tokens_of_a_privileged_caller_reveal_nothing_when_replayed_anonymously() {
    let app = catalog(settings()).await;
    let admin = As::Bearer(TOKEN);
    let public_matches = View::of(&[]).in_bbox().len();
    let check = |r: &Reply, what: &str| match r.status {
        StatusCode::BAD_REQUEST => assert!(
            r.body["description"]
                .as_str()
                .is_some_and(|d| d.contains("token")),
            "{what}: {}",
            r.text
        ),
        StatusCode::OK => {
            assert_reveals_nothing(r, what);
            assert!(
                r.body["numberMatched"]
                    .as_u64()
                    .is_none_or(|n| n <= public_matches as u64),
                "{what}: {}",
                r.text
            );
        }
        other => panic!("{what}: {other} {}", r.text),
    };

    // GET: the admin's second page holds s1 (datetime order: o3 s2 | o2 s1 ...).
    let r = get(&app, &format!("/search?{BBOX_PARAM}&limit=2"), admin).await;
    let next = link(ok(&r, "admin GET /search"), "next").unwrap();
    let uri = local(next["href"].as_str().unwrap());
    let page2 = get(&app, &uri, admin).await;
    assert!(ids(ok(&page2, "admin page 2")).contains(&"s1".to_owned()));
    check(&get(&app, &uri, As::Anonymous).await, "GET /search token");

    // POST: the next link carries the body to send.
    let r = post(&app, "/search", &json!({"bbox": BBOX, "limit": 2}), admin).await;
    let next = link(ok(&r, "admin POST /search"), "next").unwrap();
    assert!(next["body"]["token"].is_string(), "{next}");
    let replay = post(&app, "/search", &next["body"], As::Anonymous).await;
    check(&replay, "POST /search token");

    // A key holder's page of the restricted collection's items.
    let (_, key) = app
        .db
        .store()
        .create_api_key(Some("t"), &[SECRET.into()], None)
        .await
        .unwrap();
    let r = get(&app, "/collections/secret/items?limit=1", As::Bearer(&key)).await;
    let next = link(ok(&r, "key holder's items"), "next").unwrap();
    let replay = get(&app, &local(next["href"].as_str().unwrap()), As::Anonymous).await;
    assert!(
        matches!(
            replay.status,
            StatusCode::NOT_FOUND | StatusCode::BAD_REQUEST
        ),
        "{}",
        replay.text
    );
    assert_reveals_nothing(&replay, "items token");

    // Collection search.
    let r = get(&app, "/collections?limit=1", admin).await;
    let next = link(ok(&r, "admin /collections"), "next").unwrap();
    let replay = get(&app, &local(next["href"].as_str().unwrap()), As::Anonymous).await;
    match replay.status {
        StatusCode::BAD_REQUEST => {}
        StatusCode::OK => {
            assert_reveals_nothing(&replay, "collections token");
            assert_eq!(replay.body["numberMatched"], 1, "{}", replay.text);
        }
        other => panic!("collections token: {other} {}", replay.text),
    }
}

#[tokio::test]
async fn an_api_key_shows_the_collections_it_grants_as_bearer_or_query_parameter() {
    let app = catalog(settings()).await;
    let store = app.db.store();
    let (_, key) = store
        .create_api_key(Some("t"), &[SECRET.into()], None)
        .await
        .unwrap();
    let view = View::of(&[SECRET]);
    assert_sees(&app, As::Bearer(&key), &view).await;
    assert_sees(&app, As::Query(&key), &view).await;

    // A key for another restricted collection shows that one, not this one.
    let (_, other) = store
        .create_api_key(Some("o"), &[OTHER.into()], None)
        .await
        .unwrap();
    assert_sees(&app, As::Bearer(&other), &View::of(&[OTHER])).await;

    // A key for both, and the admin token, see everything.
    let (_, both) = store
        .create_api_key(None, &[SECRET.into(), OTHER.into()], None)
        .await
        .unwrap();
    assert_sees(&app, As::Bearer(&both), &View::of(&[SECRET, OTHER])).await;
    assert_sees(&app, As::Bearer(TOKEN), &View::of(&[SECRET, OTHER])).await;
}

#[tokio::test]
async fn expired_revoked_and_malformed_keys_are_refused_with_401() {
    let app = catalog(settings()).await;
    let store = app.db.store();

    let (_, expired) = store
        .create_api_key(
            Some("old"),
            &[SECRET.into()],
            Some(Utc::now() - Duration::seconds(1)),
        )
        .await
        .unwrap();
    for who in [As::Bearer(&expired), As::Query(&expired)] {
        let r = get(&app, "/collections/secret", who).await;
        assert_unauthorized(&r, &expired, &format!("expired {who:?}"));
    }

    // A revoked key fails on the very next request, on public paths too.
    let (live, key) = store
        .create_api_key(Some("t"), &[SECRET.into()], None)
        .await
        .unwrap();
    ok(
        &get(&app, "/collections/secret", As::Bearer(&key)).await,
        "before revoking",
    );
    assert!(store.revoke_api_key(&live.id).await.unwrap());
    for uri in ["/collections/secret", "/collections/open", "/search", "/"] {
        for who in [As::Bearer(&key), As::Query(&key)] {
            let r = get(&app, uri, who).await;
            assert_unauthorized(&r, &key, &format!("revoked {uri} {who:?}"));
        }
    }
    let r = post(&app, "/search", &json!({}), As::Bearer(&key)).await;
    assert_unauthorized(&r, &key, "revoked POST /search");
    assert!(!store.revoke_api_key(&live.id).await.unwrap());

    // A key of the right id with another secret, and things that are no key.
    let (live, key) = store
        .create_api_key(Some("t2"), &[SECRET.into()], None)
        .await
        .unwrap();
    let forged = format!("alk_{}_{}", live.id, "0".repeat(64));
    let truncated = key[..key.len() - 1].to_owned();
    for bad in [
        forged.as_str(),
        truncated.as_str(),
        "alk_0123456789ab_nosuchsecret",
        "alk_short_secret",
        "alk_",
        "not-a-key",
        "a.b.c",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln",
    ] {
        for who in [As::Bearer(bad), As::Query(bad)] {
            let r = get(&app, "/collections/open", who).await;
            assert_unauthorized(&r, bad, &format!("{who:?}"));
        }
    }
    // The real key still works.
    ok(
        &get(&app, "/collections/secret", As::Bearer(&key)).await,
        "valid key",
    );
}

fn claims(collections: &[&str], expires_in: i64) -> Value {
    json!({
        "sub": "alice",
        "exp": Utc::now().timestamp() + expires_in,
        "collections": collections,
    })
}

fn sign(key: &EncodingKey, alg: Algorithm, kid: Option<&str>, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

async fn with_jwt(config: JwtConfig) -> api::ServeConfig {
    storage::init_tls();
    let verifier = JwtVerifier::new(config, HttpClient::new()).await.unwrap();
    api::ServeConfig {
        jwt: Some(verifier),
        ..settings()
    }
}

#[tokio::test]
async fn hs256_jwts_show_the_collections_their_claim_lists() {
    let app = catalog(
        with_jwt(JwtConfig {
            hs256_secret: Some(JWT_SECRET.into()),
            ..JwtConfig::default()
        })
        .await,
    )
    .await;
    let key = EncodingKey::from_secret(JWT_SECRET.as_bytes());
    let token = |collections: &[&str], expires_in| {
        sign(
            &key,
            Algorithm::HS256,
            None,
            &claims(collections, expires_in),
        )
    };

    let secret = token(&[SECRET], 300);
    assert_sees(&app, As::Bearer(&secret), &View::of(&[SECRET])).await;
    ok(
        &get(&app, "/collections/secret", As::Query(&secret)).await,
        "JWT as api_key",
    );
    assert_sees(&app, As::Bearer(&token(&[OTHER], 300)), &View::of(&[OTHER])).await;
    assert_sees(&app, As::Bearer(&token(&[], 300)), &View::of(&[])).await;

    let expired = token(&[SECRET], -120);
    let r = get(&app, "/collections/secret", As::Bearer(&expired)).await;
    assert_unauthorized(&r, &expired, "expired JWT");
    assert!(
        r.body["description"].as_str().unwrap().contains("expired"),
        "{}",
        r.text
    );
    let forged = sign(
        &EncodingKey::from_secret(b"another secret"),
        Algorithm::HS256,
        None,
        &claims(&[SECRET], 300),
    );
    let r = get(&app, "/collections/open", As::Bearer(&forged)).await;
    assert_unauthorized(&r, &forged, "JWT with another secret");
}

#[tokio::test]
async fn rs256_jwts_verified_with_the_jwks_file_show_their_collections() {
    let app = catalog(
        with_jwt(JwtConfig {
            jwks_file: Some(support::fixture("auth/jwks.json")),
            ..JwtConfig::default()
        })
        .await,
    )
    .await;
    let pem = std::fs::read(support::fixture("auth/rsa-private.pem")).unwrap();
    let key = EncodingKey::from_rsa_pem(&pem).unwrap();
    let token = |collections: &[&str], expires_in| {
        sign(
            &key,
            Algorithm::RS256,
            Some("test-rsa-1"),
            &claims(collections, expires_in),
        )
    };
    assert_sees(
        &app,
        As::Bearer(&token(&[SECRET], 300)),
        &View::of(&[SECRET]),
    )
    .await;
    assert_sees(&app, As::Bearer(&token(&[OTHER], 300)), &View::of(&[OTHER])).await;
    let expired = token(&[SECRET], -120);
    let r = get(&app, "/collections/secret", As::Bearer(&expired)).await;
    assert_unauthorized(&r, &expired, "expired RS256 JWT");
    // An HS256 token is refused where only a key set is configured.
    let hs = sign(
        &EncodingKey::from_secret(JWT_SECRET.as_bytes()),
        Algorithm::HS256,
        None,
        &claims(&[SECRET], 300),
    );
    let r = get(&app, "/collections/secret", As::Bearer(&hs)).await;
    assert_unauthorized(&r, &hs, "HS256 JWT without a secret");
}

#[tokio::test]
async fn jwts_are_refused_with_401_when_the_server_verifies_none() {
    let app = catalog(settings()).await;
    let token = sign(
        &EncodingKey::from_secret(JWT_SECRET.as_bytes()),
        Algorithm::HS256,
        None,
        &claims(&[SECRET], 300),
    );
    let r = get(&app, "/collections/secret", As::Bearer(&token)).await;
    assert_unauthorized(&r, &token, "JWT without a verifier");
}

/// Run the built binary on `db`.
fn arcolake(db: &TestDb, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .args(["--database-url", &db.url()])
        .env_remove("DATABASE_URL")
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn keys_command_makes_lists_and_revokes_keys_the_api_honours() {
    let app = catalog(settings()).await;
    let out = arcolake(
        &app.db,
        &[
            "keys",
            "create",
            "--collection",
            SECRET,
            "--name",
            "nb",
            "--expires-in",
            "1h",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let printed = stdout(&out);
    let key = printed.lines().last().unwrap().trim().to_owned();
    assert!(key.starts_with("alk_"), "last line is not a key: {printed}");
    let (id, secret) = key["alk_".len()..].split_once('_').unwrap();
    assert_sees(&app, As::Bearer(&key), &View::of(&[SECRET])).await;

    let keys = app.db.store().list_api_keys().await.unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].id, id);
    assert_eq!(keys[0].name.as_deref(), Some("nb"));
    assert_eq!(keys[0].collections, [SECRET]);
    let expires_in = keys[0].expires.unwrap() - Utc::now();
    assert!(
        expires_in > Duration::minutes(55) && expires_in <= Duration::hours(1),
        "{expires_in}"
    );

    let out = arcolake(&app.db, &["keys", "list"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let listed = stdout(&out);
    let row = listed
        .lines()
        .find(|l| l.starts_with(id))
        .unwrap_or_else(|| panic!("{id} not listed: {listed}"));
    let columns: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(columns[..3], [id, "active", "nb"], "{row}");
    assert!(!listed.contains(secret), "keys list shows the secret");

    let out = arcolake(&app.db, &["keys", "revoke", id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let r = get(&app, "/collections/secret", As::Bearer(&key)).await;
    assert_unauthorized(&r, &key, "key revoked by the command");
    let listed = stdout(&arcolake(&app.db, &["keys", "list"]));
    let row = listed.lines().find(|l| l.starts_with(id)).unwrap();
    assert_eq!(row.split_whitespace().nth(1), Some("revoked"), "{row}");

    let out = arcolake(&app.db, &["keys", "revoke", id]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stderr(&out).contains(id), "{}", stderr(&out));
}

#[tokio::test]
async fn keys_command_refuses_a_collection_that_does_not_exist() {
    let app = catalog(settings()).await;
    let out = arcolake(
        &app.db,
        &["keys", "create", "--collection", "does-not-exist"],
    );
    assert!(!out.status.success(), "{}", stdout(&out));
    assert!(stderr(&out).contains("does-not-exist"), "{}", stderr(&out));
    assert!(!stdout(&out).contains("alk_"), "{}", stdout(&out));
    assert!(app.db.store().list_api_keys().await.unwrap().is_empty());
}

fn preflight(uri: &str, method: &str, headers: &str) -> Request<Body> {
    Request::builder()
        .method("OPTIONS")
        .uri(uri)
        .header("origin", "https://browser.example")
        .header("access-control-request-method", method)
        .header("access-control-request-headers", headers)
        .body(Body::empty())
        .unwrap()
}

/// The lower-case items of a comma-separated response header.
fn header_list(r: &Reply, name: &str) -> Vec<String> {
    r.headers
        .get(name)
        .map(|v| {
            v.to_str()
                .unwrap()
                .split(',')
                .map(|s| s.trim().to_ascii_lowercase())
                .collect()
        })
        .unwrap_or_default()
}

fn assert_allows_origin(r: &Reply, what: &str) {
    let allowed = r
        .headers
        .get("access-control-allow-origin")
        .map(|v| v.to_str().unwrap().to_owned());
    assert!(
        matches!(allowed.as_deref(), Some("*" | "https://browser.example")),
        "{what}: {:?}",
        r.headers
    );
}

#[tokio::test]
async fn browsers_may_send_credentials_across_origins_but_writes_still_need_the_admin_token() {
    let app = catalog(settings()).await;
    let (_, key) = app
        .db
        .store()
        .create_api_key(Some("browser"), &[SECRET.into()], None)
        .await
        .unwrap();

    let r = app
        .send(preflight(
            "/search",
            "GET",
            "authorization, accept-language",
        ))
        .await;
    assert!(r.status.is_success(), "{} {:?}", r.status, r.headers);
    assert_allows_origin(&r, "preflight GET /search");
    let headers = header_list(&r, "access-control-allow-headers");
    for h in ["authorization", "accept-language"] {
        assert!(headers.contains(&h.to_owned()), "{h} not in {headers:?}");
    }
    assert!(header_list(&r, "access-control-allow-methods").contains(&"get".to_owned()));

    // The actual cross-origin read with a key.
    let r = app
        .send(
            Request::get("/search?collections=secret")
                .header("origin", "https://browser.example")
                .header("authorization", format!("Bearer {key}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(
        sorted(ids(ok(&r, "cross-origin search"))),
        ["s1", "s2", "s3"]
    );
    assert_allows_origin(&r, "cross-origin search");

    // A write passes the preflight ...
    let r = app
        .send(preflight(
            "/collections",
            "POST",
            "authorization, content-type",
        ))
        .await;
    assert!(r.status.is_success(), "{} {:?}", r.status, r.headers);
    assert_allows_origin(&r, "preflight POST /collections");
    assert!(header_list(&r, "access-control-allow-methods").contains(&"post".to_owned()));
    let headers = header_list(&r, "access-control-allow-headers");
    for h in ["authorization", "content-type"] {
        assert!(headers.contains(&h.to_owned()), "{h} not in {headers:?}");
    }

    // ... but is refused without the admin token, readably for the page.
    let write = |authorization: Option<String>| {
        let mut b = Request::post("/collections")
            .header("origin", "https://browser.example")
            .header("content-type", "application/json");
        if let Some(a) = authorization {
            b = b.header("authorization", a);
        }
        b.body(Body::from(support::collection("from-browser").to_string()))
            .unwrap()
    };
    let r = app.send(write(None)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    assert_allows_origin(&r, "refused write");
    let r = app.send(write(Some(format!("Bearer {key}")))).await;
    assert!(
        matches!(r.status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN),
        "an API key wrote: {} {}",
        r.status,
        r.text
    );
    assert_hidden(
        &get(&app, "/collections/from-browser", As::Bearer(TOKEN)).await,
        &get(&app, "/collections/no-such-collection", As::Bearer(TOKEN)).await,
        "from-browser",
        "collection written without the admin token",
    );
    let r = app.send(write(Some(format!("Bearer {TOKEN}")))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
}

#[tokio::test]
async fn access_member_other_than_public_or_restricted_is_refused_naming_it() {
    let app = catalog(settings()).await;
    for value in [json!("secret"), json!("Restricted"), json!(true)] {
        let mut doc = support::collection("odd");
        doc["arcolake:access"] = value.clone();
        let r = app.write("POST", "/collections", Some(&doc)).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{value}: {}", r.text);
        assert_eq!(r.body["code"], "BadRequest");
        assert!(
            r.body["description"]
                .as_str()
                .unwrap()
                .contains("arcolake:access"),
            "{}",
            r.text
        );
        let mut doc = support::collection(OPEN);
        doc["arcolake:access"] = value.clone();
        let r = app.write("PUT", "/collections/open", Some(&doc)).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "PUT {value}: {}", r.text);
        let r = app
            .write(
                "PATCH",
                "/collections/open",
                Some(&json!({"arcolake:access": value})),
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::BAD_REQUEST,
            "PATCH {value}: {}",
            r.text
        );
    }
    assert_eq!(
        get(&app, "/collections/odd", As::Bearer(TOKEN))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    // Nothing changed: open is still public.
    ok(
        &get(&app, "/collections/open", As::Anonymous).await,
        "open after refused writes",
    );

    let mut doc = support::collection("said-public");
    doc["arcolake:access"] = json!("public");
    let r = app.write("POST", "/collections", Some(&doc)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    ok(
        &get(&app, "/collections/said-public", As::Anonymous).await,
        "explicitly public",
    );
}

/// [`OPEN`] does not exist for anonymous callers, and none of its items.
async fn assert_open_hidden(app: &TestApp) {
    for path in [
        "/collections/open",
        "/collections/open/items",
        "/collections/open/items/o1",
    ] {
        let r = get(app, path, As::Anonymous).await;
        let missing_path = path.replace(OPEN, "no-such-collection");
        let missing = get(app, &missing_path, As::Anonymous).await;
        assert_hidden(&r, &missing, OPEN, path);
    }
    let r = get(app, "/collections", As::Anonymous).await;
    assert!(
        collection_ids(ok(&r, "/collections")).is_empty(),
        "{}",
        r.text
    );
    let r = get(app, &format!("/search?{BBOX_PARAM}&limit=1"), As::Anonymous).await;
    assert!(ids(ok(&r, "/search")).is_empty(), "{}", r.text);
    assert_eq!(r.body["numberMatched"], 0);
    let r = get(app, "/aggregate?aggregations=total_count", As::Anonymous).await;
    assert_eq!(aggregation(ok(&r, "/aggregate"), "total_count")["value"], 0);
}

#[tokio::test]
async fn restricting_a_public_collection_by_put_or_patch_hides_it_at_once() {
    let app = catalog(settings()).await;
    // PUT: the whole document, now restricted.
    let r = app
        .write("PUT", "/collections/open", Some(&restricted(OPEN)))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_open_hidden(&app).await;
    ok(
        &get(&app, "/collections/open", As::Bearer(TOKEN)).await,
        "admin sees it",
    );

    // PATCH: removing the member makes it public again, setting it hides it.
    let r = app
        .write(
            "PATCH",
            "/collections/open",
            Some(&json!({"arcolake:access": null})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_sees(&app, As::Anonymous, &View::of(&[])).await;
    let r = app
        .write(
            "PATCH",
            "/collections/open",
            Some(&json!({"arcolake:access": "restricted"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_open_hidden(&app).await;
}

#[tokio::test]
async fn restricting_a_collection_hides_its_properties_from_the_queryables_at_once() {
    let app = catalog(settings()).await;
    app.collection("was-public").await;
    let mut item = support::item("was-public", "w1", 10.0, 50.0, "2024-01-01T00:00:00Z");
    item["properties"]["leaky:property"] = json!(1);
    app.items(vec![item]).await;
    let has = |r: &Reply| properties(&r.body).contains(&"leaky:property".to_owned());

    let r = get(&app, "/queryables", As::Anonymous).await;
    ok(&r, "before");
    assert!(has(&r), "not listed while public: {}", r.text);
    let r = app
        .write(
            "PUT",
            "/collections/was-public",
            Some(&restricted("was-public")),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = get(&app, "/queryables", As::Anonymous).await;
    ok(&r, "after");
    assert!(!has(&r), "still listed after restricting: {}", r.text);
}

#[tokio::test]
async fn filtering_on_a_restricted_property_reveals_neither_the_property_nor_the_collection() {
    let app = catalog(settings()).await;
    let filter = json!({"op": "=", "args": [{"property": SECRET_PROPERTY}, 7]});
    let search = |collection: &str| json!({"collections": [collection], "filter": filter, "filter-lang": "cql2-json"});

    // The key holder's filter works.
    let (_, key) = app
        .db
        .store()
        .create_api_key(None, &[SECRET.into()], None)
        .await
        .unwrap();
    let r = post(&app, "/search", &search(SECRET), As::Bearer(&key)).await;
    assert_eq!(sorted(ids(ok(&r, "key holder"))), ["s1", "s2", "s3"]);

    // Anonymous: each answer is the one for a collection that does not exist.
    let sortby = |collection: &str| json!({"collections": [collection], "sortby": [{"field": SECRET_PROPERTY, "direction": "asc"}]});
    let filter_text = format!("filter=%22{SECRET_PROPERTY}%22%3D7");
    let mut answers = Vec::new();
    for collection in [SECRET, "no-such-collection"] {
        let filtered = post(&app, "/search", &search(collection), As::Anonymous).await;
        let sorted_by = post(&app, "/search", &sortby(collection), As::Anonymous).await;
        let items = get(
            &app,
            &format!("/collections/{collection}/items?{filter_text}"),
            As::Anonymous,
        )
        .await;
        answers.push(
            [
                ("POST /search filter", filtered),
                ("POST /search sortby", sorted_by),
                ("GET items filter", items),
            ]
            .map(|(what, r)| format!("{what}: {} {}", r.status, r.body["code"])),
        );
    }
    assert_eq!(
        answers[0], answers[1],
        "restricted (left) vs missing (right)"
    );
}
