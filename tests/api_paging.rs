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

async fn walk(app: &TestApp, first: &str, rel: &str) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut uri = Some(first.to_owned());
    while let Some(u) = uri {
        let r = app.get(&u).await;
        assert_eq!(r.status, StatusCode::OK, "{u}: {}", r.text);
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
        back.push(ids(&r.body));
    }
    back.reverse();
    assert_eq!(back, pages);
}

#[tokio::test]
async fn paging_while_items_are_inserted_never_skips_or_repeats() {
    let app = TestApp::new().await;
    app.collection("c").await;
    let initial = many("c", 3000);
    for chunk in initial.chunks(1000) {
        app.items(chunk.to_vec()).await;
    }
    let writer = {
        let pool = app.db.pool.clone();
        tokio::spawn(async move {
            for round in 0..30 {
                let batch: Vec<catalog::ItemRecord> = (0..20)
                    .map(|k| {
                        let n = round * 20 + k;
                        let dt = format!("2020-0{}-{:02}T12:00:00Z", 1 + n % 5, 1 + n % 28);
                        catalog::ItemRecord::from_value(
                            item("c", &format!("new-{n:04}"), 0.0, 0.0, &dt),
                            None,
                        )
                        .unwrap()
                    })
                    .collect();
                let mut tx = pool.begin().await.unwrap();
                catalog::Store::write_items(
                    &mut tx,
                    &batch,
                    catalog::store::items::OnConflict::Replace,
                )
                .await
                .unwrap();
                tx.commit().await.unwrap();
                tokio::task::yield_now().await;
            }
        })
    };
    let mut seen: Vec<String> = Vec::new();
    let mut uri = Some("/search?limit=50&collections=c".to_owned());
    while let Some(u) = uri {
        let r = app.get(&u).await;
        seen.extend(ids(&r.body));
        uri = link(&r.body, "next").map(|l| local(l["href"].as_str().unwrap()));
    }
    writer.await.unwrap();
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "an item was repeated");
    for i in &initial {
        let id = i["id"].as_str().unwrap().to_owned();
        assert!(unique.contains(&id), "{id} was skipped");
    }
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
        assert!(
            r.body.get("numberMatched").is_none(),
            "counted on the first page only"
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
    let token = catalog::search::PageToken {
        direction: catalog::search::Direction::Next,
        key: vec![json!(12), json!("x")],
        collection: "c".into(),
        id: "i".into(),
    };
    let r = app.get(&format!("/search?token={}", token.encode())).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body["description"].as_str().unwrap().contains("token"));
}
