//! The web dApp's assets, served from a configured directory (`web_dir`, the output of
//! `npm run build` in `web/`), beside the API on the same origin: the dApp signs in to this node
//! with the node's own URL, so no CORS is needed for it.
//!
//! - `GET /` answers `index.html`; `GET /<path>` a file under the directory (no `..`, no
//!   hidden files); anything else 404. Vite names assets by content hash, so files under
//!   `assets/` are cached for a year and `index.html` is revalidated every time.
//! - `GET /dapp-config.json` tells the dApp the deployment (the node's deployment file) and,
//!   when configured (`web_rpc_url`), a chain RPC URL for wallets that do not know the chain
//!   yet (`wallet_addEthereumChain`).
//!
//! Pages carry a Content-Security-Policy that allows scripts, styles and connections to this
//! origin only (plus the configured RPC URL), so an injected script cannot send the wallet's
//! derived key elsewhere; WebAssembly may be compiled (the dApp hashes with it), `eval` may not.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::error::{Error, Result};

/// What the dApp routes serve.
#[derive(Debug)]
struct Site {
    dir: PathBuf,
    config: Vec<u8>,
    csp: HeaderValue,
}

/// The routes serving the dApp from `dir`, with `deployment` and `rpc_url` in
/// `/dapp-config.json`.
///
/// # Errors
/// [`Error::Config`] when `dir` has no `index.html` (the dApp was not built) or `rpc_url` is not
/// a plain URL.
pub fn routes(
    dir: &Path,
    deployment: &px_core::Deployment,
    rpc_url: Option<&str>,
) -> Result<Router> {
    if !dir.join("index.html").is_file() {
        return Err(Error::Config(format!(
            "web_dir {} has no index.html; build the dApp first (`make web`, or `npm ci && npm \
             run build` in web/)",
            dir.display()
        )));
    }
    if let Some(url) = rpc_url
        && (!(url.starts_with("http://") || url.starts_with("https://"))
            || url.contains([' ', ';', '\'', '"', ',']))
    {
        return Err(Error::Config(format!(
            "web_rpc_url {url:?} is not an http(s) URL"
        )));
    }
    let config = serde_json::to_vec(&serde_json::json!({
        "deployment": deployment,
        "rpcUrl": rpc_url,
    }))
    .map_err(|e| Error::Internal(e.to_string()))?;
    let connect = rpc_url.map(|u| format!(" {u}")).unwrap_or_default();
    let csp = format!(
        "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; connect-src 'self'{connect}; \
         img-src 'self' data: blob:; \
         style-src 'self' 'unsafe-inline'; object-src 'none'; base-uri 'none'; \
         frame-ancestors 'none'"
    );
    let site = Arc::new(Site {
        dir: dir.to_path_buf(),
        config,
        csp: HeaderValue::from_str(&csp).map_err(|e| Error::Config(e.to_string()))?,
    });
    Ok(Router::new()
        .route("/dapp-config.json", get(dapp_config))
        .fallback(get(asset))
        .with_state(site))
}

async fn dapp_config(State(site): State<Arc<Site>>) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        site.config.clone(),
    )
        .into_response()
}

/// The file a request path names under the directory, if it is a plain relative path.
fn resolve(dir: &Path, path: &str) -> Option<PathBuf> {
    let rel = path.trim_start_matches('/');
    let rel = if rel.is_empty() { "index.html" } else { rel };
    let mut out = dir.to_path_buf();
    for c in Path::new(rel).components() {
        match c {
            Component::Normal(s) if !s.to_string_lossy().starts_with('.') => out.push(s),
            _ => return None,
        }
    }
    Some(out)
}

fn content_type(path: &Path) -> &'static str {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default()
    {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "webmanifest" => "application/manifest+json",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

async fn asset(State(site): State<Arc<Site>>, req: Request) -> Response {
    let not_found = || (StatusCode::NOT_FOUND, "not found\n").into_response();
    let Some(path) = resolve(&site.dir, req.uri().path()) else {
        return not_found();
    };
    let Ok(bytes) = tokio::fs::read(&path).await else {
        return not_found();
    };
    let immutable = req.uri().path().starts_with("/assets/");
    let cache = if immutable {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let mut resp = (
        [
            (header::CONTENT_TYPE, content_type(&path)),
            (header::CACHE_CONTROL, cache),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        bytes,
    )
        .into_response();
    resp.headers_mut()
        .insert(header::CONTENT_SECURITY_POLICY, site.csp.clone());
    resp
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;

    fn deployment() -> px_core::Deployment {
        serde_json::from_value(serde_json::json!({
            "admin": "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
            "chainId": 31337,
            "fee": 1,
            "jobId": "0x3866336532623163346435613465366639613062316332643365346635613662",
            "link": "0x5FbDB2315678afecb367f032d93F642f64180aa3",
            "operator": "0xCf7Ed3AccA5a467e9e704C703E8D87F634fB0Fc9",
            "oracleSender": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
            "pxToken": "0x5FC8d32690cc91D4c39d9d3abcBD16989F875707",
            "registrar": "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
            "startBlock": 0,
            "storageNFT": "0x0165878A594ca255338adfa4d48449f69242Eb8F"
        }))
        .unwrap()
    }

    async fn get(app: &Router, path: &str) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
        let resp = app
            .clone()
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let (parts, body) = resp.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes().to_vec();
        (parts.status, parts.headers, bytes)
    }

    #[test]
    fn resolves_only_plain_relative_paths() {
        let dir = Path::new("/srv/web");
        assert_eq!(
            resolve(dir, "/"),
            Some(PathBuf::from("/srv/web/index.html"))
        );
        assert_eq!(
            resolve(dir, "/assets/index-abc.js"),
            Some(PathBuf::from("/srv/web/assets/index-abc.js"))
        );
        assert_eq!(resolve(dir, "/../etc/passwd"), None);
        assert_eq!(resolve(dir, "/assets/../../x"), None);
        assert_eq!(resolve(dir, "/.env"), None);
    }

    #[tokio::test]
    async fn serves_the_app_its_config_and_nothing_outside() {
        let dir = tempfile::tempdir().unwrap();
        let d = deployment();
        assert!(
            matches!(routes(dir.path(), &d, None), Err(Error::Config(m)) if m.contains("make web")),
            "a directory without index.html is refused with the next step"
        );
        std::fs::write(dir.path().join("index.html"), "<p>dApp</p>").unwrap();
        std::fs::create_dir(dir.path().join("assets")).unwrap();
        std::fs::write(dir.path().join("assets/app-1.js"), "x()").unwrap();
        std::fs::write(dir.path().join(".secret"), "no").unwrap();
        assert!(routes(dir.path(), &d, Some("javascript:alert(1)")).is_err());
        let app = routes(dir.path(), &d, Some("http://127.0.0.1:8545")).unwrap();

        let (status, headers, body) = get(&app, "/").await;
        assert_eq!(
            (status, body.as_slice()),
            (StatusCode::OK, &b"<p>dApp</p>"[..])
        );
        assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
        assert_eq!(headers[header::CACHE_CONTROL], "no-cache");
        let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(
            csp.contains("connect-src 'self' http://127.0.0.1:8545;"),
            "{csp}"
        );

        let (status, headers, _) = get(&app, "/assets/app-1.js").await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            headers[header::CACHE_CONTROL]
                .to_str()
                .unwrap()
                .contains("immutable")
        );

        let (status, _, body) = get(&app, "/dapp-config.json").await;
        assert_eq!(status, StatusCode::OK);
        let config: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(config["deployment"]["chainId"], 31337);
        assert_eq!(config["rpcUrl"], "http://127.0.0.1:8545");

        for path in ["/.secret", "/missing.js", "/assets/../../etc/passwd"] {
            assert_eq!(get(&app, path).await.0, StatusCode::NOT_FOUND, "{path}");
        }
    }
}
