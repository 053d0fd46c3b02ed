//! The router without a socket (`app(state)` driven by `oneshot`).

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use px_store::{AppState, app};
use tower::ServiceExt;

async fn call(router: axum::Router, method: &str, uri: &str) -> (StatusCode, serde_json::Value) {
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
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap())
}

#[tokio::test]
async fn router_answers_in_process() {
    let dir = tempfile::tempdir().unwrap();
    let state = AppState::open(crate::common::config(dir.path())).unwrap();
    let router = app(state);

    let (status, body) = call(router.clone(), "POST", "/api/v0/version").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["Version"], env!("CARGO_PKG_VERSION"));

    let (status, body) = call(router.clone(), "POST", "/api/v0/key/list").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["Keys"][0]["Name"], "self");

    let (status, body) = call(router.clone(), "POST", "/api/v0/bogus").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        (body["Code"].as_u64(), body["Type"].as_str()),
        (Some(1), Some("error"))
    );

    let (status, body) = call(router, "GET", "/api/v0/id").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(body["Type"], "error");
}
