//! The one rewrite Docket makes to a request: asking a stream for its
//! usage (`stream_options.include_usage`), spliced into the decided bytes.

use bytes::{Bytes, BytesMut};
use serde_json::json;

use super::api::Api;
use super::inspect::CallShape;

/// A request body ready to forward.
#[derive(Clone, Debug)]
pub struct Prepared {
    pub body: Bytes,
    /// Docket added `include_usage` to a streaming chat completion, so the
    /// stream will carry a usage-only chunk the client did not ask for;
    /// [`SseTap`] removes it.
    pub strip_usage_chunk: bool,
}

const INCLUDE_USAGE: &[u8] = br#""stream_options":{"include_usage":true}"#;

/// The one change Docket makes to a request: a streaming chat completion
/// must report its token usage, which OpenAI does only when asked
/// (`stream_options.include_usage`). Every other body passes through
/// byte for byte.
pub fn prepare(api: Api, body: Bytes, shape: &CallShape) -> Prepared {
    let unchanged = |body| Prepared {
        body,
        strip_usage_chunk: false,
    };
    if api != Api::ChatCompletions || !shape.stream || shape.include_usage {
        return unchanged(body);
    }
    let injected = if shape.has_stream_options {
        merge_include_usage(&body)
    } else {
        splice_include_usage(&body)
    };
    match injected {
        Some(body) => Prepared {
            body,
            strip_usage_chunk: true,
        },
        None => {
            // Only reachable with a body `inspect` did not accept; the call
            // then goes out as sent and its usage is estimated.
            tracing::debug!("could not add stream_options.include_usage; forwarding unchanged");
            unchanged(body)
        }
    }
}

/// Inserts the key right after the opening brace: no parse, and the
/// agent's bytes stay as they were after it.
fn splice_include_usage(body: &[u8]) -> Option<Bytes> {
    let open = body.iter().position(|b| !b.is_ascii_whitespace())?;
    if body.get(open) != Some(&b'{') {
        return None;
    }
    let rest = body.get(open + 1..)?;
    let empty = rest
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_none_or(|&b| b == b'}');
    let mut out = BytesMut::with_capacity(body.len() + INCLUDE_USAGE.len() + 1);
    out.extend_from_slice(&body[..=open]);
    out.extend_from_slice(INCLUDE_USAGE);
    if !empty {
        out.extend_from_slice(b",");
    }
    out.extend_from_slice(rest);
    Some(out.freeze())
}

/// The agent sent `stream_options` without `include_usage: true`: a second
/// key would be a duplicate, so this rare case re-serializes the body.
fn merge_include_usage(body: &[u8]) -> Option<Bytes> {
    let mut v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let options = v
        .as_object_mut()?
        .entry("stream_options")
        .or_insert(serde_json::Value::Null);
    match options {
        serde_json::Value::Object(m) => {
            m.insert("include_usage".to_owned(), serde_json::Value::Bool(true));
        }
        serde_json::Value::Null => *options = json!({"include_usage": true}),
        _ => return None,
    }
    serde_json::to_vec(&v).ok().map(Bytes::from)
}
