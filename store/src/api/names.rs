//! `key/gen`, `key/list`, `name/publish`, `name/resolve`, `routing/get`, `routing/put`.
//!
//! Records live in the repo keyed by name. `name/publish` signs a new record as Kubo does: the
//! first one with sequence 0, then the stored sequence again for the same value (a new end of
//! life) and one above it for a new value. `routing/put` accepts any valid record for a name
//! that is newer than the stored one (higher sequence, or equal sequence and later end of
//! life; re-putting the identical record is a no-op).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::extract::{RawQuery, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::json;

use super::{Params, blocking, chunked_output, json, parse_cid_arg};
use crate::AppState;
use crate::error::{Error, Result};
use crate::ipns::time::parse_go_duration;
use crate::ipns::{
    IpnsError, IpnsName, MAX_RECORD_SIZE, VerifiedRecord, VerifyOptions, create_record,
    verify_record,
};
use crate::keystore::SELF_KEY;

/// Kubo's default record lifetime.
pub(crate) const DEFAULT_LIFETIME: Duration = Duration::from_secs(48 * 3600);
/// Kubo's default record TTL (5 minutes since Kubo 0.34).
pub(crate) const DEFAULT_TTL: Duration = Duration::from_secs(300);

pub(crate) async fn key_gen(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Response> {
    let p = Params::parse(query.as_deref())?;
    let name = p.arg("name")?.to_string();
    match p.get("type").unwrap_or("ed25519") {
        "ed25519" => {}
        other @ ("rsa" | "secp256k1" | "ecdsa") => {
            return Err(Error::Unsupported(format!(
                "key type {other:?} (only ed25519)"
            )));
        }
        other => return Err(Error::Failed(format!("unrecognized key type: {other}"))),
    }
    if let Some(size) = p.get("size")
        && size != "256"
    {
        return Err(Error::Failed(format!(
            "invalid key size {size}: ed25519 keys are always 256 bits"
        )));
    }
    if name == SELF_KEY {
        return Err(Error::BadRequest(
            "cannot create key with name 'self'".into(),
        ));
    }
    let n = name.clone();
    let key = blocking(move || state.repo().keys.generate(&n)).await?;
    Ok(json(&json!({
        "Name": name,
        "Id": IpnsName::from_public_key(&key.public()).to_string(),
    })))
}

pub(crate) async fn key_list(State(state): State<AppState>) -> Result<Response> {
    let keys = blocking(move || state.repo().keys.list()).await?;
    let keys: Vec<_> = keys
        .into_iter()
        .map(|(name, id)| json!({"Name": name, "Id": id.to_string()}))
        .collect();
    Ok(json(&json!({ "Keys": keys })))
}

fn stored_record(state: &AppState, name: &IpnsName) -> Result<Option<(Vec<u8>, VerifiedRecord)>> {
    let Some(bytes) = state.repo().record(name)? else {
        return Ok(None);
    };
    // Stored records were verified on the way in; ignore expiry to compare sequences.
    let opts = VerifyOptions {
        allow_v1_only: state.config().allow_v1_only_records,
        now: Some(UNIX_EPOCH),
    };
    let verified = verify_record(name, &bytes, &opts)?;
    Ok(Some((bytes, verified)))
}

fn normalize_value(arg: &str) -> Result<String> {
    if let Some(rest) = arg.strip_prefix("/ipns/") {
        rest.parse::<IpnsName>()?;
        return Ok(arg.to_string());
    }
    let cid = parse_cid_arg(arg)?;
    Ok(format!("/ipfs/{cid}"))
}

pub(crate) async fn publish(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Response> {
    let p = Params::parse(query.as_deref())?;
    let value = normalize_value(p.arg("ipfs-path")?)?;
    let key_name = p.get("key").unwrap_or(SELF_KEY).to_string();
    let duration = |k: &str, default: Duration| -> Result<Duration> {
        match p.get(k) {
            None => Ok(default),
            Some(v) => parse_go_duration(v)
                .ok_or_else(|| Error::BadRequest(format!("option {k:?}: invalid duration {v:?}"))),
        }
    };
    let lifetime = duration("lifetime", DEFAULT_LIFETIME)?;
    let ttl = duration("ttl", DEFAULT_TTL)?;
    let check_present = p.flag("resolve", true)?;
    let eol = SystemTime::now()
        .checked_add(lifetime)
        .ok_or_else(|| Error::BadRequest("lifetime too large".into()))?;
    let (name, value) = blocking(move || {
        if check_present && let Some(cid) = value.strip_prefix("/ipfs/") {
            let cid = parse_cid_arg(cid)?;
            if !state.repo().blocks.has(&cid)? {
                return Err(Error::BlockNotFound(cid.to_string()));
            }
        }
        let (_, key) = state.repo().keys.find(&key_name)?;
        let name = IpnsName::from_public_key(&key.public());
        let repo = state.repo();
        let _serial = repo
            .publish_lock
            .lock()
            .map_err(|_| Error::Internal("lock poisoned".into()))?;
        let sequence = match stored_record(&state, &name)? {
            Some((_, old)) if old.value == value => old.sequence,
            Some((_, old)) => old
                .sequence
                .checked_add(1)
                .ok_or_else(|| Error::Internal("sequence number exhausted".into()))?,
            None => 0,
        };
        let record = create_record(&key, &value, sequence, eol, ttl)?;
        repo.put_record(&name, &record)?;
        tracing::info!(target: "store::ipns", %name, sequence, %value, "published");
        Ok((name, value))
    })
    .await?;
    Ok(json(&json!({ "Name": name.to_string(), "Value": value })))
}

pub(crate) async fn resolve(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Response> {
    let p = Params::parse(query.as_deref())?;
    let arg = p.get("arg").map(str::to_string);
    let recursive = p.flag("recursive", true)?;
    let path = blocking(move || {
        let mut name = match arg {
            Some(a) => a.parse::<IpnsName>()?,
            None => IpnsName::from_public_key(&state.repo().keys.identity()?.public()),
        };
        let opts = VerifyOptions {
            allow_v1_only: state.config().allow_v1_only_records,
            now: None,
        };
        for _ in 0..32 {
            let bytes = state
                .repo()
                .record(&name)?
                .ok_or_else(|| Error::NameNotFound(name.to_string()))?;
            let rec = verify_record(&name, &bytes, &opts)
                .map_err(|e| Error::NameNotFound(format!("{name}: {e}")))?;
            match rec.value.strip_prefix("/ipns/") {
                Some(next) if recursive => name = next.parse::<IpnsName>()?,
                _ => return Ok(rec.value),
            }
        }
        Err(Error::NameNotFound("recursion limit exceeded".into()))
    })
    .await?;
    Ok(json(&json!({ "Path": path })))
}

fn ipns_key_arg(p: &Params) -> Result<IpnsName> {
    let arg = p.arg("key")?;
    let Some(rest) = arg.strip_prefix("/ipns/") else {
        return Err(Error::Unsupported(format!(
            "routing key {arg:?}: only /ipns/<name> keys are supported"
        )));
    };
    rest.parse::<IpnsName>()
        .map_err(|e| Error::Failed(format!("failed to parse peer ID: {e}")))
}

/// `routing/get?arg=/ipns/<name>`: as Kubo answers over HTTP, a `routing.QueryEvent` of type
/// 5 (value) with the signed record base64-encoded in `Extra`; with `encoding=text`, the raw
/// record bytes (Kubo's text encoder).
pub(crate) async fn routing_get(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Response> {
    let p = Params::parse(query.as_deref())?;
    let name = ipns_key_arg(&p)?;
    let text = match p.get("encoding") {
        None | Some("json") => false,
        Some("text") => true,
        Some(other) => {
            return Err(Error::BadRequest(format!("invalid encoding: {other}")));
        }
    };
    let record =
        blocking(move || state.repo().record(&name)?.ok_or(Error::RoutingNotFound)).await?;
    if text {
        return Ok(chunked_output(
            ([(header::CONTENT_TYPE, "text/plain")], Body::from(record)).into_response(),
        ));
    }
    let event = json!({
        "ID": "",
        "Type": 5,
        "Responses": null,
        "Extra": base64::engine::general_purpose::STANDARD.encode(&record),
    });
    super::ndjson(&[event]).map(chunked_output)
}

pub(crate) async fn routing_put(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    mp: Result<Multipart, MultipartRejection>,
) -> Result<Response> {
    let p = Params::parse(query.as_deref())?;
    let name = ipns_key_arg(&p)?;
    let mut mp = mp.map_err(|e| Error::Multipart(e.body_text()))?;
    let mut field = mp
        .next_field()
        .await
        .map_err(|e| Error::Multipart(e.body_text()))?
        .ok_or_else(|| Error::Multipart("no record part in the request".into()))?;
    let mut record = Vec::new();
    while let Some(chunk) = field
        .chunk()
        .await
        .map_err(|e| Error::Multipart(e.body_text()))?
    {
        record.extend_from_slice(&chunk);
        if record.len() > MAX_RECORD_SIZE {
            return Err(IpnsError::TooLarge(record.len()).into());
        }
    }
    let id = blocking(move || {
        let opts = VerifyOptions {
            allow_v1_only: state.config().allow_v1_only_records,
            now: None,
        };
        let new = verify_record(&name, &record, &opts)?;
        let repo = state.repo();
        let _serial = repo
            .publish_lock
            .lock()
            .map_err(|_| Error::Internal("lock poisoned".into()))?;
        if let Some((old_bytes, old)) = stored_record(&state, &name)?
            && old_bytes != record
        {
            let newer = new.sequence > old.sequence
                || (new.sequence == old.sequence && new.validity > old.validity);
            if !newer {
                return Err(Error::StaleRecord(name.to_string()));
            }
        }
        repo.put_record(&name, &record)?;
        Ok(repo.keys.identity()?.public().to_peer_id().to_base58())
    })
    .await?;
    Ok(chunked_output(json(&json!({
        "Extra": "",
        "ID": id,
        "Responses": null,
        "Type": 5,
    }))))
}
