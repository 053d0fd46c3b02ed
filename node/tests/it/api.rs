//! The OpenAPI document, health and metrics.

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};

use crate::fixture::{Net, data};

/// Every route the router serves, as (method, OpenAPI path).
const ROUTES: &[(&str, &str)] = &[
    ("get", "/health"),
    ("get", "/metrics"),
    ("get", "/openapi.json"),
    ("get", "/v1/auth/nonce"),
    ("post", "/v1/auth/login"),
    ("post", "/v1/auth/logout"),
    ("get", "/v1/key-assignment"),
    ("post", "/v1/tokens/{token_id}/key"),
    ("get", "/v1/tokens/{token_id}/usage"),
    ("post", "/v1/tokens/{token_id}/refresh"),
    ("post", "/v1/tokens/{token_id}/rebind"),
    ("post", "/v1/tokens/{token_id}/files"),
    ("get", "/v1/tokens/{token_id}/files"),
    ("delete", "/v1/tokens/{token_id}/files/{file_id}"),
    ("get", "/v1/tokens/{token_id}/content/{cid}"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_documents_exactly_the_served_routes_and_health_and_metrics_answer() {
    let net = Net::start().await;
    let node = net.node("api").await;
    let http = reqwest::Client::new();
    let doc: serde_json::Value = http
        .get(format!("{}/openapi.json", node.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(move |m| (m.clone(), path.clone()))
        })
        .collect();
    let expected: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(documented, expected);

    // Each documented route is served: the router answers with the node's own JSON, never
    // its empty "no route" 404 or a 405.
    for (method, path) in ROUTES {
        let url = format!(
            "{}{}",
            node.url(),
            path.replace("{token_id}", "1")
                .replace("{file_id}", "1")
                .replace("{cid}", "QmX")
        );
        let r = http
            .request(
                Method::from_bytes(method.to_uppercase().as_bytes()).unwrap(),
                url,
            )
            .send()
            .await
            .unwrap();
        let status = r.status();
        let body = r.bytes().await.unwrap();
        assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        assert!(
            !(status == StatusCode::NOT_FOUND && body.is_empty()),
            "{method} {path} is routed"
        );
    }

    let h: px_core::api::Health = http
        .get(format!("{}/health", node.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!((h.status.as_str(), h.chain, h.ipfs), ("ok", true, true));

    let mut alice = net.user(0, &node);
    alice.login().await;
    let token = alice.mint(&net).await;
    alice.upload(token, "a", data(1, 1234)).await.unwrap();
    let m = http
        .get(format!("{}/metrics", node.url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(m.contains("px_node_uploads_total{result=\"ok\"} 1"), "{m}");
    assert!(m.contains("px_node_upload_bytes_total 1234"), "{m}");
    assert!(m.contains("px_node_logins_total{result=\"ok\"} 1"), "{m}");
    assert!(m.contains("px_node_tokens 1"), "{m}");
    node.shutdown().await;
}
