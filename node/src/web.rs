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
    use super::*;

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
}
