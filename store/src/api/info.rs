//! `version` and `id`.

use axum::extract::State;
use axum::response::Response;
use serde_json::json;

use super::{blocking, json};
use crate::AppState;
use crate::error::Result;

pub(crate) async fn version() -> Response {
    json(&json!({
        "Version": env!("CARGO_PKG_VERSION"),
        "Commit": "",
        "Repo": "1",
        "System": format!("{}/{}", std::env::consts::ARCH, std::env::consts::OS),
        "Golang": "",
    }))
}

pub(crate) async fn id(State(state): State<AppState>) -> Result<Response> {
    let key = blocking(move || state.repo().keys.identity()).await?;
    let public = key.public();
    let encoded = multibase::encode(multibase::Base::Base64Pad, public.encode_protobuf());
    Ok(json(&json!({
        "ID": public.to_peer_id().to_base58(),
        // multibase prefixes 'M' for padded base64; Kubo sends the bare base64.
        "PublicKey": &encoded[1..],
        "Addresses": [],
        "AgentVersion": concat!("px-store/", env!("CARGO_PKG_VERSION")),
        "Protocols": [],
    })))
}
