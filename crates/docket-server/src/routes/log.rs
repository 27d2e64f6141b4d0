//! The log as a transparency log: its identity, signed checkpoints,
//! inclusion, consistency and range proofs, and self-standing receipts.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use docket_core::merkle::Hash;
use docket_store::StoredCheckpoint;
use serde::{Deserialize, Serialize};

use super::{blocking, parse_u64};
use crate::AppState;
use crate::error::{ApiError, ApiPath, ApiQuery};
use crate::routes::entries::{ReadScope, hex_hash, visible_entry};

fn b64(hashes: &[Hash]) -> Vec<String> {
    hashes.iter().map(|h| h.to_string()).collect()
}

/// `GET /api/v1/log`: what a verifier needs to pin.
pub async fn info(State(state): State<AppState>) -> impl IntoResponse {
    Json(serde_json::json!({
        "origin": state.log.origin,
        "public_key": state.log.public_key,
        "size": state.ledger.size(),
        "backend": state.ledger.backend().kind(),
    }))
}

#[derive(Serialize)]
pub struct CheckpointJson {
    pub size: u64,
    pub root: String,
    pub signed_at: String,
    pub note: String,
}

impl From<StoredCheckpoint> for CheckpointJson {
    fn from(c: StoredCheckpoint) -> Self {
        Self {
            size: c.size,
            root: c.root.to_string(),
            signed_at: c.signed_at.to_string(),
            note: c.note,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointParams {
    format: Option<String>,
}

/// `GET /api/v1/checkpoint`: the latest signed checkpoint, as JSON or, with
/// `format=note`, as the bare C2SP signed note for transparency-log tools.
pub async fn latest(
    State(state): State<AppState>,
    ApiQuery(p): ApiQuery<CheckpointParams>,
) -> Result<Response, ApiError> {
    let ledger = state.ledger.clone();
    let cp = blocking(move || Ok(ledger.latest_checkpoint()?))
        .await?
        .ok_or_else(|| {
            ApiError::not_found("no checkpoint has been signed yet: the log is empty")
        })?;
    match p.format.as_deref() {
        None | Some("json") => Ok(Json(CheckpointJson::from(cp)).into_response()),
        Some("note") => Ok((
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            cp.note,
        )
            .into_response()),
        Some(f) => Err(ApiError::bad_request(
            "invalid_query",
            format!("format must be json or note, got {f:?}"),
        )),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    after_size: Option<u64>,
    limit: Option<u32>,
}

/// `GET /api/v1/checkpoints?after_size=&limit=`: every stored checkpoint, smallest first.
pub async fn list(
    State(state): State<AppState>,
    ApiQuery(p): ApiQuery<ListParams>,
) -> Result<impl IntoResponse, ApiError> {
    let limit = p.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_query",
            "limit must be 1 to 1000",
        ));
    }
    let after = p.after_size.unwrap_or(0);
    let ledger = state.ledger.clone();
    let cps = blocking(move || Ok(ledger.backend().checkpoints(after, limit)?)).await?;
    let cps: Vec<CheckpointJson> = cps.into_iter().map(Into::into).collect();
    Ok(Json(serde_json::json!({ "checkpoints": cps })))
}

/// The tree size a proof is for: the one asked for, or the latest checkpoint's.
fn proof_size(state: &AppState, size: Option<u64>) -> Result<u64, ApiError> {
    match size {
        Some(s) => Ok(s),
        None => Ok(state
            .ledger
            .latest_checkpoint()?
            .ok_or_else(|| ApiError::not_found("no checkpoint has been signed yet"))?
            .size),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InclusionParams {
    seq: String,
    size: Option<u64>,
}

/// `GET /api/v1/proofs/inclusion?seq=&size=`.
pub async fn inclusion(
    State(state): State<AppState>,
    ApiQuery(p): ApiQuery<InclusionParams>,
) -> Result<impl IntoResponse, ApiError> {
    let seq = parse_u64("seq", &p.seq)?;
    blocking(move || {
        let size = proof_size(&state, p.size)?;
        let hashes = state.ledger.inclusion_proof(seq, size)?;
        let leaf = state.ledger.entry(seq)?.leaf_hash();
        Ok(Json(serde_json::json!({
            "seq": seq, "tree_size": size, "leaf_hash": hex_hash(&leaf), "hashes": b64(&hashes),
        })))
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsistencyParams {
    old: u64,
    new: Option<u64>,
}

/// `GET /api/v1/proofs/consistency?old=&new=`.
pub async fn consistency(
    State(state): State<AppState>,
    ApiQuery(p): ApiQuery<ConsistencyParams>,
) -> Result<impl IntoResponse, ApiError> {
    blocking(move || {
        let new = proof_size(&state, p.new)?;
        let hashes = state.ledger.consistency_proof(p.old, new)?;
        Ok(Json(
            serde_json::json!({ "old_size": p.old, "new_size": new, "hashes": b64(&hashes) }),
        ))
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RangeParams {
    from: u64,
    to: u64,
    size: Option<u64>,
}

/// `GET /api/v1/proofs/range?from=&to=&size=`: proof that entries
/// `[from, to)` are exactly what the tree of `size` holds there.
pub async fn range(
    State(state): State<AppState>,
    ApiQuery(p): ApiQuery<RangeParams>,
) -> Result<impl IntoResponse, ApiError> {
    blocking(move || {
        let size = proof_size(&state, p.size)?;
        let hashes = state.ledger.range_proof(p.from, p.to, size)?;
        Ok(Json(serde_json::json!({ "from": p.from, "to": p.to, "tree_size": size, "hashes": b64(&hashes) })))
    })
    .await
}

/// `GET /api/v1/receipts/{seq}`: entry, inclusion proof and signed
/// checkpoint in one document, verifiable offline with the log's key.
pub async fn receipt(
    State(state): State<AppState>,
    axum::Extension(caller): axum::Extension<crate::identity::Caller>,
    ApiPath(seq): ApiPath<String>,
) -> Result<impl IntoResponse, ApiError> {
    let seq = parse_u64("seq", &seq)?;
    let scope = ReadScope::of(&state, &caller);
    let r = blocking(move || {
        visible_entry(&state, &scope, seq)?;
        Ok(state.ledger.receipt(seq)?)
    })
    .await?;
    Ok(Json(r))
}
