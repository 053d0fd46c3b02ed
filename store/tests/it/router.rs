//! The router without a socket (`app(state)` driven by `oneshot`).

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use px_store::{AppState, app};
use tower::ServiceExt;

async fn call(router: axum::Router, method: &str, uri: &str) -> (StatusCode, bytes::Bytes) {
    let res = router
        .oneshot(
            Request::builder()
                .method(method)
                .uri(uri)
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let status = res.status();
    (status, res.into_body().collect().await.unwrap().to_bytes())
}

fn json(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body).unwrap()
}

#[tokio::test]
async fn router_answers_in_process() {
    let dir = tempfile::tempdir().unwrap();
    let state = AppState::open(crate::common::config(dir.path())).unwrap();
    let router = app(state);

    let (status, body) = call(router.clone(), "POST", "/api/v0/version").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json(&body)["Version"], env!("CARGO_PKG_VERSION"));

    let (status, body) = call(router.clone(), "POST", "/api/v0/key/list").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json(&body)["Keys"][0]["Name"], "self");

    let (status, body) = call(router.clone(), "POST", "/api/v0/pin/add").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(&body[..], b"argument \"ipfs-path\" is required\n");

    let (status, body) = call(router.clone(), "POST", "/api/v0/bogus").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(&body[..], b"404 page not found\n");

    let (status, body) = call(router, "GET", "/api/v0/id").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(&body[..], b"405 - Method Not Allowed\n");
}
