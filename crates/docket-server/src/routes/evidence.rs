//! `GET /api/v1/evidence/export`: an evidence pack as a streamed download.

use axum::Extension;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use docket_core::Timestamp;
use docket_core::identity::ProjectId;
use serde::Deserialize;
use std::io::{Read, Seek};

use super::{blocking, parse_id};
use crate::AppState;
use crate::error::{ApiError, ApiQuery};
use crate::evidence::{ExportRequest, check_window, export, export_entry};
use crate::identity::Caller;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportParams {
    from: String,
    to: String,
    project: Option<String>,
}

fn time(name: &str, value: &str) -> Result<Timestamp, ApiError> {
    Timestamp::parse_rfc3339(value).map_err(|e| {
        ApiError::bad_request(
            "invalid_time",
            format!("{name} {value:?} is not an RFC 3339 time (e.g. 2026-10-01T00:00:00Z): {e}"),
        )
    })
}

/// Builds the pack into an anonymous temporary file (a zip is written
/// with seeks), records the export, then streams the file.
pub async fn export_pack(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(p): ApiQuery<ExportParams>,
) -> Result<Response, ApiError> {
    let req = ExportRequest {
        from: time("from", &p.from)?,
        to: time("to", &p.to)?,
        project: p.project.clone(),
    };
    check_window(&req, Timestamp::now())?;
    if let Some(project) = &p.project {
        let id: ProjectId = parse_id("project", project)?;
        state.identity.read().project(&id)?;
    }
    let actor = caller.actor();
    let st = state.clone();
    let (file, manifest, sha) = blocking(move || {
        let tmp = tempfile::tempfile().map_err(ApiError::internal)?;
        let (mut file, manifest) = export(&st.ledger, &st.signer, &req, tmp)?;
        file.sync_all().map_err(ApiError::internal)?;
        file.rewind().map_err(ApiError::internal)?;
        let sha = docket_evidence::pack::manifest_sha256(&manifest);
        st.ledger
            .append_blocking(vec![export_entry(&manifest, &sha, None, actor)?])?;
        Ok((file, manifest, sha))
    })
    .await?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::task::spawn_blocking(move || {
        let mut file = file;
        loop {
            let mut buf = vec![0u8; 256 * 1024];
            match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    buf.truncate(n);
                    if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
                        break;
                    }
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    break;
                }
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let w = &manifest.window;
    let name = format!(
        "docket-evidence-{}_{}{}.zip",
        &w.from[..10.min(w.from.len())],
        &w.to[..10.min(w.to.len())],
        w.project
            .as_deref()
            .map(|p| format!("-{p}"))
            .unwrap_or_default()
    );
    let mut resp = Body::from_stream(stream).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/zip"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&sha) {
        h.insert("docket-manifest-sha256", v);
    }
    Ok(resp)
}
