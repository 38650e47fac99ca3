//! Keyset pagination: exact, in both directions, and stable under inserts.

#![allow(
    clippy::unwrap_used,
    clippy::cast_possible_wrap,
    clippy::cast_precision_loss,
    reason = "test code with small numbers"
)]

mod support;

use std::collections::HashSet;

use axum::http::StatusCode;
use serde_json::{Value, json};
use support::{TestApp, ids, item, link, local};

/// `n` items; every 7 share a datetime, so the tie-break matters.
fn many(collection: &str, n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            let day = i / 7;
            let dt = "2020-01-01T00:00:00Z";
            let dt = chrono::DateTime::parse_from_rfc3339(dt).unwrap()
                + chrono::Duration::hours(day as i64);
            item(
                collection,
                &format!("item-{i:05}"),
                (i % 360) as f64 - 179.5,
                ((i * 7) % 160) as f64 - 80.0,
                &dt.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            )
        })
        .collect()
}

/// The pages from `first` on, following `rel`; every page must repeat the
/// first page's `numberMatched`.
async fn walk(app: &TestApp, first: &str, rel: &str) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut uri = Some(first.to_owned());
    let mut matched = None;
    while let Some(u) = uri {
        let r = app.get(&u).await;
        assert_eq!(r.status, StatusCode::OK, "{u}: {}", r.text);
        assert!(r.body["numberMatched"].is_u64(), "{u}: no numberMatched");
        let m = matched.get_or_insert_with(|| r.body["numberMatched"].clone());
        assert_eq!(&r.body["numberMatched"], m, "{u}: numberMatched changed");
        pages.push(ids(&r.body));
        uri = link(&r.body, rel).map(|l| local(l["href"].as_str().unwrap()));
        assert!(pages.len() < 1000, "paging does not end");
    }
    pages
}

#[tokio::test]
async fn walking_next_then_prev_visits_every_item_once_in_order() {
    let app = TestApp::new().await;
    app.collection("c").await;
    let items = many("c", 2500);
    for chunk in items.chunks(500) {
        app.items(chunk.to_vec()).await;
    }
    let pages = walk(&app, "/collections/c/items?limit=100", "next").await;
    assert_eq!(pages.len(), 25);
    let flat: Vec<String> = pages.concat();
    assert_eq!(flat.len(), 2500);
    assert_eq!(
        flat.iter().collect::<HashSet<_>>().len(),
        2500,
        "no item repeated"
    );
    // Newest first; ties broken by id, descending.
    let mut expected: Vec<(String, String)> = items
        .iter()
        .map(|i| {
            (
                i["properties"]["datetime"].as_str().unwrap().to_owned(),
                i["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    expected.sort_by(|a, b| b.cmp(a));
    assert_eq!(
        flat,
        expected.into_iter().map(|(_, id)| id).collect::<Vec<_>>()
    );

    // From the last page, prev links lead back through the same pages.
    let last = app.get("/collections/c/items?limit=100").await;
    let mut r = last;
    for _ in 0..24 {
        r = app
            .get(&local(
                link(&r.body, "next").unwrap()["href"].as_str().unwrap(),
            ))
            .await;
    }
    assert!(link(&r.body, "next").is_none(), "the last page has no next");
    let mut back = vec![ids(&r.body)];
    while let Some(prev) = link(&r.body, "prev") {
        r = app.get(&local(prev["href"].as_str().unwrap())).await;
        assert_eq!(
            r.body["numberMatched"], 2500,
            "prev pages carry the count too"
        );
        back.push(ids(&r.body));
    }
    back.reverse();
    assert_eq!(back, pages);
}

/// Unpadded base64url, to look inside tokens as a client could.
mod base64url {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

    pub fn decode(text: &str) -> Vec<u8> {
        let mut out = Vec::new();
        let (mut acc, mut bits) = (0u32, 0);
        for c in text.bytes() {
            let v = ALPHABET.iter().position(|a| *a == c).unwrap();
            acc = (acc << 6) | u32::try_from(v).unwrap();
            bits += 6;
            if bits >= 8 {
                bits -= 8;
                out.push(u8::try_from((acc >> bits) & 0xff).unwrap());
            }
        }
        out
    }

    pub fn encode(bytes: &[u8]) -> String {
        let mut out = String::new();
        let (mut acc, mut bits) = (0u32, 0);
        for b in bytes {
            acc = (acc << 8) | u32::from(*b);
            bits += 8;
            while bits >= 6 {
                bits -= 6;
                out.push(char::from(ALPHABET[((acc >> bits) & 63) as usize]));
            }
        }
        if bits > 0 {
            out.push(char::from(ALPHABET[((acc << (6 - bits)) & 63) as usize]));
        }
        out
    }
}

/// An item's place in the default order (newest first, then id): a
/// larger key comes first.
fn sort_key(feature: &Value) -> (chrono::DateTime<chrono::FixedOffset>, String) {
    let dt = feature["properties"]["datetime"].as_str().unwrap();
    (
        chrono::DateTime::parse_from_rfc3339(dt).unwrap(),
        feature["id"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn paging_while_items_are_inserted_never_skips_or_repeats() {
    let app = TestApp::new().await;
    app.collection("c").await;
    let initial = many("c", 3000);
    for chunk in initial.chunks(1000) {
        app.items(chunk.to_vec()).await;
    }
    let start = chrono::DateTime::parse_from_rfc3339("2020-01-01T00:00:00Z").unwrap();
    // Between pages, a writer commits 20 items whose datetimes spread over
    // the whole range walked (and past its newest end), so that some land
    // after the walk's cursor and some behind it.
    let mut landed_ahead: Vec<String> = Vec::new();
    let mut landed_behind: Vec<String> = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    let mut counts = HashSet::new();
    let mut uri = Some("/search?limit=50&collections=c".to_owned());
    let mut round = 0;
    while let Some(u) = uri {
        let r = app.get(&u).await;
        assert_eq!(r.status, StatusCode::OK, "{u}: {}", r.text);
        counts.insert(r.body["numberMatched"].clone());
        seen.extend(ids(&r.body));
        let cursor = sort_key(r.body["features"].as_array().unwrap().last().unwrap());
        uri = link(&r.body, "next").map(|l| local(l["href"].as_str().unwrap()));
        if uri.is_some() && round < 30 {
            let batch: Vec<Value> = (0..20)
                .map(|k| {
                    let n = round * 20 + k;
                    let dt = start + chrono::Duration::minutes(30 + 60 * i64::from((n * 37) % 440));
                    let new = item(
                        "c",
                        &format!("new-{n:04}"),
                        0.0,
                        0.0,
                        &dt.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    );
                    if sort_key(&new) < cursor {
                        landed_ahead.push(format!("new-{n:04}"));
                    } else {
                        landed_behind.push(format!("new-{n:04}"));
                    }
                    new
                })
                .collect();
            let writer = {
                let pool = app.db.pool.clone();
                tokio::spawn(async move {
                    let records: Vec<catalog::ItemRecord> = batch
                        .into_iter()
                        .map(|v| catalog::ItemRecord::from_value(v, None).unwrap())
                        .collect();
                    let mut tx = pool.begin().await.unwrap();
                    catalog::Store::write_items(
                        &mut tx,
                        &records,
                        catalog::store::items::OnConflict::Replace,
                    )
                    .await
                    .unwrap();
                    tx.commit().await.unwrap();
                })
            };
            writer.await.unwrap();
            round += 1;
        }
    }
    assert_eq!(
        round, 30,
        "every insert landed while the walk was under way"
    );
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "an item was repeated");
    for i in &initial {
        let id = i["id"].as_str().unwrap().to_owned();
        assert!(unique.contains(&id), "{id} was skipped");
    }
    // The inserts landed on both sides of the cursor, and the walk met
    // exactly those committed ahead of it.
    assert!(
        landed_ahead.len() >= 100,
        "{} landed ahead",
        landed_ahead.len()
    );
    assert!(
        landed_behind.len() >= 100,
        "{} landed behind",
        landed_behind.len()
    );
    for id in &landed_ahead {
        assert!(
            unique.contains(id),
            "{id} was inserted ahead of the cursor but skipped"
        );
    }
    for id in &landed_behind {
        assert!(
            !unique.contains(id),
            "{id} was inserted behind the cursor but served"
        );
    }
    assert_eq!(seen.len(), 3000 + landed_ahead.len());
    // The total changed mid-walk; every page of the walk kept the count its
    // first page made, and a new search counts the inserts.
    assert_eq!(counts, HashSet::from([json!(3000)]));
    let r = app.get("/search?limit=50&collections=c").await;
    assert_eq!(r.body["numberMatched"], 3600);
}

#[tokio::test]
async fn post_search_pages_with_post_links_carrying_the_body() {
    let app = TestApp::new().await;
    app.collection("c").await;
    app.items(many("c", 120)).await;
    let body = json!({"collections": ["c"], "limit": 50, "bbox": [-180, -90, 180, 90]});
    let r = app.post("/search", &body).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["numberMatched"], 120);
    let mut all = ids(&r.body);
    let mut next = link(&r.body, "next").unwrap();
    loop {
        assert_eq!(next["method"], "POST");
        assert_eq!(
            next["body"]["collections"],
            json!(["c"]),
            "the filters travel with the token"
        );
        assert!(next["body"]["token"].is_string());
        let r = app
            .post(&local(next["href"].as_str().unwrap()), &next["body"])
            .await;
        assert_eq!(r.status, StatusCode::OK);
        all.extend(ids(&r.body));
        assert_eq!(
            r.body["numberMatched"], 120,
            "every page repeats the first page's count"
        );
        match link(&r.body, "next") {
            Some(n) => next = n,
            None => break,
        }
    }
    assert_eq!(all.len(), 120);
    assert_eq!(all.iter().collect::<HashSet<_>>().len(), 120);
}

#[tokio::test]
async fn tokens_from_another_sort_are_rejected() {
    let app = TestApp::new().await;
    let token = catalog::search::PageToken::new(
        catalog::search::Direction::Next,
        vec![json!(12), json!("x")],
        "c".into(),
        "i".into(),
    );
    let r = app.get(&format!("/search?token={}", token.encode())).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body["description"].as_str().unwrap().contains("token"));
}

#[tokio::test]
async fn tampered_tokens_and_tokens_of_other_searches_are_400s() {
    let app = TestApp::new().await;
    app.collection("c").await;
    app.items(many("c", 30)).await;
    let r = app.get("/search?collections=c&limit=10").await;
    let next = local(link(&r.body, "next").unwrap()["href"].as_str().unwrap());
    let token = next.split("token=").nth(1).unwrap().to_owned();
    assert_eq!(app.get(&next).await.status, StatusCode::OK);
    let expect_400 = |r: support::Reply, what: &str| {
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{what}: {}", r.text);
        assert_eq!(r.body["code"], "BadRequest", "{what}");
        assert!(
            r.body["description"].as_str().unwrap().contains("token"),
            "{what}: {}",
            r.text
        );
    };
    // Any character changed.
    for at in [0, token.len() / 2, token.len() - 1] {
        let mut edited = token.clone().into_bytes();
        edited[at] = if edited[at] == b'A' { b'B' } else { b'A' };
        let edited = String::from_utf8(edited).unwrap();
        let r = app
            .get(&format!("/search?collections=c&limit=10&token={edited}"))
            .await;
        expect_400(r, &format!("character {at} changed"));
    }
    // The carried count edited in the JSON inside.
    let mut bytes = base64url::decode(&token);
    let at = bytes.windows(6).position(|w| w == b"\"m\":30").unwrap();
    bytes[at + 4] = b'9';
    let edited = base64url::encode(&bytes);
    let r = app
        .get(&format!("/search?collections=c&limit=10&token={edited}"))
        .await;
    expect_400(r, "count edited");
    // Truncated, empty of JSON, or not base64 at all.
    for bad in [&token[..token.len() / 2], "e30", "%00%00", "!!!!"] {
        let r = app
            .get(&format!("/search?collections=c&limit=10&token={bad}"))
            .await;
        expect_400(r, bad);
    }
    // A well-formed token with what a query could not take.
    let nul = catalog::search::PageToken::new(
        catalog::search::Direction::Next,
        vec![json!("2020-01-01T00:00:00Z")],
        "c\0".into(),
        "i".into(),
    );
    let r = app.get(&format!("/search?token={}", nul.encode())).await;
    expect_400(r, "NUL in the token");
    // A token used with another search: its count would be wrong there.
    for other in [
        "/search?collections=c&limit=10&ids=item-00001",
        "/search?limit=10",
        "/search?collections=c&limit=10&sortby=id",
        "/search?collections=c&limit=10&filter=eo:cloud_cover%3E1",
    ] {
        let r = app.get(&format!("{other}&token={token}")).await;
        expect_400(r, other);
    }
    // POST too; the page size may change between pages.
    let r = app
        .post("/search", &json!({"collections": ["c"], "limit": 10}))
        .await;
    let next = link(&r.body, "next").unwrap();
    let mut body = next["body"].clone();
    body["limit"] = json!(5);
    let r = app.post("/search", &body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["numberMatched"], 30);
    body["collections"] = json!(["c", "d"]);
    expect_400(
        app.post("/search", &body).await,
        "POST with other collections",
    );
}

#[tokio::test]
async fn search_and_item_pages_link_their_first_page() {
    let app = TestApp::new().await;
    app.collection("c").await;
    app.items(many("c", 120)).await;
    for first in [
        "/search?collections=c&limit=50&bbox=-180,-90,180,90",
        "/collections/c/items?limit=50&sortby=id",
    ] {
        let page1 = app.get(first).await;
        assert!(
            link(&page1.body, "first").is_none(),
            "the first page is its own self"
        );
        let next = local(link(&page1.body, "next").unwrap()["href"].as_str().unwrap());
        let page2 = app.get(&next).await;
        let page3 = app
            .get(&local(
                link(&page2.body, "next").unwrap()["href"].as_str().unwrap(),
            ))
            .await;
        // Reached by `next`, and by `prev` from further on.
        let back = app
            .get(&local(
                link(&page3.body, "prev").unwrap()["href"].as_str().unwrap(),
            ))
            .await;
        assert_eq!(ids(&back.body), ids(&page2.body));
        for page in [&page2, &page3, &back] {
            let l = link(&page.body, "first").unwrap();
            assert_eq!(l["type"], "application/geo+json");
            let href = l["href"].as_str().unwrap().to_owned();
            assert!(href.starts_with("http://stac.test/api/"), "{href}");
            assert!(!href.contains("token"), "{href}");
            let r = app.get(&local(&href)).await;
            assert_eq!(ids(&r.body), ids(&page1.body), "{first}: {href}");
        }
    }
    let body = json!({"collections": ["c"], "limit": 50, "sortby": [{"field": "id", "direction": "desc"}]});
    let page1 = app.post("/search", &body).await;
    let next = link(&page1.body, "next").unwrap();
    let page2 = app.post("/search", &next["body"]).await;
    let first = link(&page2.body, "first").unwrap();
    assert_eq!(first["method"], "POST");
    assert_eq!(local(first["href"].as_str().unwrap()), "/search");
    assert_eq!(
        first["body"], body,
        "the first page's body, without a token"
    );
    let r = app.post("/search", &first["body"]).await;
    assert_eq!(ids(&r.body), ids(&page1.body));
}
