//! The SSE tap: usage, ids and errors read from a provider's stream as it
//! passes through, whatever the chunking.

use std::fmt;

use bytes::{Bytes, BytesMut};
use serde::Deserialize;
use serde::de::IgnoredAny;

use super::api::Api;
use super::usage::{Usage, UsageFields};

/// Which streamed format an [`SseTap`] reads.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum StreamFormat {
    Chat,
    Responses,
    Messages,
}

impl StreamFormat {
    fn of(api: Api) -> Self {
        match api {
            Api::Responses => Self::Responses,
            Api::Messages => Self::Messages,
            Api::ChatCompletions | Api::Embeddings | Api::Models => Self::Chat,
        }
    }

    /// Events whose data the tap reads; the rest (the bulk: text deltas)
    /// are framed but not buffered. Chat streams name no events.
    fn wants(self, event: &[u8]) -> bool {
        match self {
            Self::Chat => true,
            Self::Responses => matches!(
                event,
                b"response.created"
                    | b"response.completed"
                    | b"response.incomplete"
                    | b"response.failed"
                    | b"error"
            ),
            Self::Messages => matches!(
                event,
                b"message_start" | b"message_delta" | b"message_stop" | b"error"
            ),
        }
    }
}

/// What a stream turned out to be, once it ended.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TapSummary {
    pub usage: Option<Usage>,
    /// The stream reached its format's last event (`[DONE]`,
    /// `response.completed`/`incomplete`/`failed`, `message_stop`); false
    /// when it was cut off.
    pub complete: bool,
    pub response_id: Option<String>,
    /// An error the provider reported inside the stream after its 200
    /// (`type: message`, shortened).
    pub stream_error: Option<String>,
}

/// Default bound on one event's buffered bytes.
pub const MAX_EVENT_BYTES: usize = 1 << 20;

/// Watches a streamed (server-sent events) response on its way to the
/// client: the bytes go through unchanged, except the usage-only chat
/// chunk Docket asked for, and the usage is read on the way.
///
/// Chunks may split anywhere (inside a line, a UTF-8 character or a
/// `\r\n`). Memory is bounded: an event larger than the limit is passed
/// through without being read.
pub struct SseTap {
    pub(super) parser: Parser,
    strip: bool,
    /// Strip mode only: the bytes of the current, unfinished event, held
    /// back until it is known whether it is the chunk to strip.
    pub(super) held: BytesMut,
    /// The current event outgrew the limit and was already sent on; it is
    /// not stripped whatever it turns out to be.
    released: bool,
    closed: bool,
}

impl fmt::Debug for SseTap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SseTap")
            .field("format", &self.parser.format)
            .field("strip", &self.strip)
            .field("held", &self.held.len())
            .finish_non_exhaustive()
    }
}

impl SseTap {
    /// `strip_usage_chunk` as [`prepare`] said.
    pub fn new(api: Api, strip_usage_chunk: bool) -> Self {
        Self::with_limit(api, strip_usage_chunk, MAX_EVENT_BYTES)
    }

    pub fn with_limit(api: Api, strip_usage_chunk: bool, max_event_bytes: usize) -> Self {
        let format = StreamFormat::of(api);
        Self {
            parser: Parser::new(format, max_event_bytes.max(64)),
            strip: strip_usage_chunk && format == StreamFormat::Chat,
            held: BytesMut::new(),
            released: false,
            closed: false,
        }
    }

    /// Takes the next upstream chunk; returns what to send the client now
    /// (possibly empty: skip sending empty chunks).
    pub fn feed(&mut self, chunk: Bytes) -> Bytes {
        if !self.strip {
            self.parser.scan(&chunk, |_, _| {});
            return chunk;
        }
        let held_before = self.held.len();
        // How the event that was in progress when this chunk began ended
        // (`Some(dropped)`), if it did.
        let mut first: Option<bool> = None;
        let mut drops: Vec<(usize, usize)> = Vec::new();
        let mut seg = 0;
        let max = self.parser.max;
        let released = &mut self.released;
        self.parser.scan(&chunk, |end, drop| {
            // An event larger than the limit is never dropped, however the
            // chunks fell: a split stream may have had to release it early.
            let len = if first.is_none() {
                held_before + end
            } else {
                end - seg
            };
            let drop = drop && !*released && len <= max;
            *released = false;
            if first.is_none() {
                first = Some(drop);
            }
            if drop {
                drops.push((seg, end));
            }
            seg = end;
        });
        let held_stays = first.is_none();
        let mut send_held = held_before > 0 && first == Some(false);
        let send_tail = if self.released {
            true
        } else {
            let pending = if held_stays { held_before } else { 0 } + (chunk.len() - seg);
            if pending > self.parser.max {
                // Too big to be the usage chunk: stop holding it back.
                self.released = true;
                send_held |= held_stays && held_before > 0;
                true
            } else {
                false
            }
        };
        let end = if send_tail { chunk.len() } else { seg };

        let out = if !send_held && drops.is_empty() {
            chunk.slice(..end)
        } else {
            let mut out = BytesMut::with_capacity(held_before + end);
            if send_held {
                out.extend_from_slice(&self.held);
            }
            let mut at = 0;
            for (from, to) in &drops {
                out.extend_from_slice(&chunk[at..*from]);
                at = *to;
            }
            out.extend_from_slice(&chunk[at..end]);
            out.freeze()
        };
        if !held_stays || send_held {
            self.held.clear();
        }
        if !send_tail {
            self.held.extend_from_slice(&chunk[seg..]);
        }
        out
    }

    /// At the end of the upstream body: the bytes still held back (an
    /// event the stream did not finish, say). Call once, after the last
    /// [`Self::feed`].
    pub fn flush(&mut self) -> Bytes {
        if self.closed {
            return Bytes::new();
        }
        self.closed = true;
        // An event ended by a final `\r` is complete; anything after it
        // is an unfinished event, read leniently for its usage.
        let (pending, _) = self.parser.close();
        if pending == Some(true)
            && !self.released
            && self.strip
            && self.held.len() <= self.parser.max
        {
            self.held.clear();
        }
        self.released = false;
        self.held.split().freeze()
    }

    /// What the stream said about itself. Flushes first if needed (the
    /// bytes [`Self::flush`] would have returned are then lost).
    pub fn finish(mut self) -> TapSummary {
        let _ = self.flush();
        self.parser.seen.summary()
    }
}

/// What the parser learned so far.
#[derive(Default)]
struct Seen {
    input: Option<u64>,
    cache_creation: Option<u64>,
    cache_read: Option<u64>,
    output: Option<u64>,
    complete: bool,
    response_id: Option<String>,
    stream_error: Option<String>,
    /// Chat: the id is read from the first chunk only.
    id_tried: bool,
}

impl Seen {
    fn summary(&self) -> TapSummary {
        let usage = (self.input.is_some() || self.output.is_some()).then(|| Usage {
            input_tokens: self
                .input
                .unwrap_or(0)
                .saturating_add(self.cache_creation.unwrap_or(0))
                .saturating_add(self.cache_read.unwrap_or(0)),
            output_tokens: self.output.unwrap_or(0),
        });
        TapSummary {
            usage,
            complete: self.complete,
            response_id: self.response_id.clone(),
            stream_error: self.stream_error.clone(),
        }
    }

    fn set_error(&mut self, kind: Option<&str>, message: Option<&str>) {
        let mut s = match (kind, message) {
            (Some(k), Some(m)) => format!("{k}: {m}"),
            (Some(x), None) | (None, Some(x)) => x.to_owned(),
            (None, None) => "error".to_owned(),
        };
        if s.len() > 200 {
            let mut cut = 200;
            while !s.is_char_boundary(cut) {
                cut -= 1;
            }
            s.truncate(cut);
        }
        self.stream_error = Some(s);
    }
}

/// An incremental SSE parser (the WHATWG event-stream grammar) over bytes.
pub(super) struct Parser {
    format: StreamFormat,
    max: usize,
    pub(super) line: Vec<u8>,
    /// The rest of the current line is not buffered (an unwanted event's
    /// data, or too long).
    line_discard: bool,
    line_too_long: bool,
    /// The last line ended in `\r`; a `\n` next belongs to it.
    after_cr: bool,
    /// An event ended at a `\r`; it is reported after the next byte, so
    /// that a following `\n` counts as part of it.
    pending_end: Option<bool>,
    event: Vec<u8>,
    data: Vec<u8>,
    has_data: bool,
    /// The current event's data is not read (unwanted or too big).
    skip_data: bool,
    seen: Seen,
}

impl Parser {
    fn new(format: StreamFormat, max: usize) -> Self {
        Self {
            format,
            max,
            line: Vec::new(),
            line_discard: false,
            line_too_long: false,
            after_cr: false,
            pending_end: None,
            event: Vec::new(),
            data: Vec::new(),
            has_data: false,
            skip_data: false,
            seen: Seen::default(),
        }
    }

    /// Feeds bytes; `on_end(offset, drop)` is called as each event ends,
    /// with the offset in `buf` just past its last byte.
    fn scan(&mut self, buf: &[u8], mut on_end: impl FnMut(usize, bool)) {
        let mut i = 0;
        while i < buf.len() {
            if self.after_cr {
                self.after_cr = false;
                if buf[i] == b'\n' {
                    i += 1;
                }
                if let Some(drop) = self.pending_end.take() {
                    on_end(i, drop);
                }
                continue;
            }
            let rest = &buf[i..];
            match rest.iter().position(|&b| b == b'\n' || b == b'\r') {
                None => {
                    self.push(rest);
                    return;
                }
                Some(j) => {
                    self.push(&rest[..j]);
                    let cr = rest[j] == b'\r';
                    i += j + 1;
                    self.after_cr = cr;
                    if let Some(drop) = self.end_line() {
                        if cr {
                            self.pending_end = Some(drop);
                        } else {
                            on_end(i, drop);
                        }
                    }
                }
            }
        }
    }

    fn push(&mut self, bytes: &[u8]) {
        if self.line_discard || bytes.is_empty() {
            return;
        }
        if self.line.len() + bytes.len() > self.max {
            self.line_too_long = true;
            self.line_discard = true;
            self.line.clear();
            return;
        }
        self.line.extend_from_slice(bytes);
        if self.skip_data && self.line.starts_with(b"data") {
            self.line_discard = true;
            self.line.clear();
        }
    }

    /// A line ended; `Some(drop)` if it was the blank line ending an event.
    fn end_line(&mut self) -> Option<bool> {
        if self.line_discard {
            self.line_discard = false;
            if std::mem::take(&mut self.line_too_long) {
                self.skip_data = true;
                self.data.clear();
            }
            return None;
        }
        if self.line.is_empty() {
            return Some(self.dispatch());
        }
        let line = &self.line[..];
        if line.first() != Some(&b':') {
            let (name, value) = match line.iter().position(|&b| b == b':') {
                Some(c) => {
                    let v = &line[c + 1..];
                    (&line[..c], v.strip_prefix(b" ").unwrap_or(v))
                }
                None => (line, &line[line.len()..]),
            };
            match name {
                b"event" => {
                    self.event.clear();
                    self.event.extend_from_slice(value);
                    if !self.format.wants(value) {
                        self.skip_data = true;
                        self.data.clear();
                    }
                }
                b"data" if !self.skip_data => {
                    self.has_data = true;
                    if self.data.len() + value.len() + 1 > self.max {
                        self.skip_data = true;
                        self.data.clear();
                    } else {
                        self.data.extend_from_slice(value);
                        self.data.push(b'\n');
                    }
                }
                _ => {}
            }
        }
        self.line.clear();
        None
    }

    /// An event is complete: read it if wanted; say whether to drop it.
    fn dispatch(&mut self) -> bool {
        let mut drop = false;
        if self.has_data && !self.skip_data {
            if self.data.last() == Some(&b'\n') {
                self.data.pop();
            }
            let data = self.data.trim_ascii();
            drop = match self.format {
                StreamFormat::Chat => on_chat(data, &mut self.seen),
                StreamFormat::Responses => {
                    on_responses(&self.event, data, &mut self.seen);
                    false
                }
                StreamFormat::Messages => {
                    on_messages(&self.event, data, &mut self.seen);
                    false
                }
            };
        }
        self.event.clear();
        self.data.clear();
        self.has_data = false;
        self.skip_data = false;
        drop
    }

    /// The stream ended: `(verdict of an event ended by a final \r,
    /// whether an unfinished event was read)`.
    fn close(&mut self) -> (Option<bool>, bool) {
        let pending = self.pending_end.take();
        self.after_cr = false;
        let mut partial = false;
        if !self.line.is_empty() || self.line_discard {
            let _ = self.end_line();
        }
        if self.has_data {
            // Not dispatched by the grammar (no blank line), but its usage
            // is still the best account of the call there is.
            let _ = self.dispatch();
            partial = true;
        }
        (pending, partial)
    }
}

/// Finds `"key"` followed by `:` and `{`, i.e. a non-null object value;
/// a cheap filter before parsing a chunk.
fn has_object_field(data: &[u8], key: &[u8]) -> bool {
    let mut from = 0;
    while let Some(at) = find(&data[from..], key) {
        let after = &data[from + at + key.len()..];
        let mut it = after.iter().copied().skip_while(u8::is_ascii_whitespace);
        if it.next() == Some(b':') && it.find(|b| !b.is_ascii_whitespace()) == Some(b'{') {
            return true;
        }
        from += at + 1;
    }
    false
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || haystack.len() < needle.len() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[derive(Deserialize)]
struct ChatChunk {
    #[serde(default)]
    id: Option<serde_json::Value>,
    #[serde(default)]
    choices: Option<Vec<IgnoredAny>>,
    #[serde(default)]
    usage: Option<UsageFields>,
    #[serde(default)]
    error: Option<ErrorFields>,
}

#[derive(Deserialize)]
struct ErrorFields {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    code: Option<serde_json::Value>,
    #[serde(default)]
    message: Option<String>,
}

impl ErrorFields {
    fn kind(&self) -> Option<&str> {
        self.kind
            .as_deref()
            .or_else(|| self.code.as_ref().and_then(|c| c.as_str()))
    }
}

fn take_id(seen: &mut Seen, id: Option<serde_json::Value>) {
    if seen.response_id.is_none()
        && let Some(serde_json::Value::String(s)) = id
    {
        seen.response_id = Some(s);
    }
}

/// One chat-completion chunk; returns whether it is the usage-only chunk.
fn on_chat(data: &[u8], seen: &mut Seen) -> bool {
    if data == b"[DONE]" {
        seen.complete = true;
        return false;
    }
    let want_id = !seen.id_tried;
    let has_usage = has_object_field(data, b"\"usage\"");
    let has_error = data.starts_with(b"{\"error\"");
    if !(want_id || has_usage || has_error) {
        return false;
    }
    seen.id_tried = true;
    let Ok(chunk) = serde_json::from_slice::<ChatChunk>(data) else {
        return false;
    };
    take_id(seen, chunk.id);
    if let Some(e) = &chunk.error {
        seen.set_error(e.kind(), e.message.as_deref());
    }
    let Some(usage) = chunk.usage.and_then(|u| u.usage(Api::ChatCompletions)) else {
        return false;
    };
    seen.input = Some(usage.input_tokens);
    seen.output = Some(usage.output_tokens);
    chunk.choices.is_some_and(|c| c.is_empty())
}

#[derive(Deserialize)]
struct ResponsesEvent {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    response: Option<ResponseObject>,
    #[serde(default)]
    code: Option<serde_json::Value>,
    #[serde(default)]
    message: Option<String>,
}

#[derive(Deserialize)]
struct ResponseObject {
    #[serde(default)]
    id: Option<serde_json::Value>,
    #[serde(default)]
    usage: Option<UsageFields>,
    #[serde(default)]
    error: Option<ErrorFields>,
}

/// Whether an event without an `event:` line may be one the tap reads;
/// a substring test, confirmed by the `type` in the parsed data.
fn might_be(data: &[u8], names: &[&[u8]]) -> bool {
    names.iter().any(|n| find(data, n).is_some())
}

fn on_responses(event: &[u8], data: &[u8], seen: &mut Seen) {
    if event.is_empty()
        && !might_be(
            data,
            &[
                b"response.created",
                b"response.completed",
                b"response.incomplete",
                b"response.failed",
                b"\"error\"",
            ],
        )
    {
        return;
    }
    let Ok(ev) = serde_json::from_slice::<ResponsesEvent>(data) else {
        return;
    };
    let kind = ev.kind.as_deref().unwrap_or("");
    let terminal = matches!(
        kind,
        "response.completed" | "response.incomplete" | "response.failed"
    );
    if let Some(r) = ev.response
        && (terminal || kind == "response.created")
    {
        take_id(seen, r.id);
        if let Some(u) = r.usage.and_then(|u| u.usage(Api::Responses)) {
            seen.input = Some(u.input_tokens);
            seen.output = Some(u.output_tokens);
        }
        if let Some(e) = &r.error {
            seen.set_error(e.kind(), e.message.as_deref());
        }
    }
    if terminal {
        seen.complete = true;
    }
    if kind == "error" {
        let code = ev.code.as_ref().and_then(|c| c.as_str());
        seen.set_error(code, ev.message.as_deref());
    }
}

#[derive(Deserialize)]
struct MessagesEvent {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    message: Option<MessageObject>,
    #[serde(default)]
    usage: Option<UsageFields>,
    #[serde(default)]
    error: Option<ErrorFields>,
}

#[derive(Deserialize)]
struct MessageObject {
    #[serde(default)]
    id: Option<serde_json::Value>,
    #[serde(default)]
    usage: Option<UsageFields>,
}

fn on_messages(event: &[u8], data: &[u8], seen: &mut Seen) {
    if event.is_empty()
        && !might_be(
            data,
            &[
                b"message_start",
                b"message_delta",
                b"message_stop",
                b"\"error\"",
            ],
        )
    {
        return;
    }
    let Ok(ev) = serde_json::from_slice::<MessagesEvent>(data) else {
        return;
    };
    // Anthropic's counts are cumulative: `message_start` has the prompt's,
    // each `message_delta` the output so far (and, on newer versions, the
    // prompt's again); the latest value of each field is the total.
    let mut absorb = |u: UsageFields| {
        if u.input_tokens.is_some() {
            seen.input = u.input_tokens;
        }
        if u.cache_creation_input_tokens.is_some() {
            seen.cache_creation = u.cache_creation_input_tokens;
        }
        if u.cache_read_input_tokens.is_some() {
            seen.cache_read = u.cache_read_input_tokens;
        }
        if u.output_tokens.is_some() {
            seen.output = u.output_tokens;
        }
    };
    match ev.kind.as_deref() {
        Some("message_start") => {
            if let Some(m) = ev.message {
                if let Some(u) = m.usage {
                    absorb(u);
                }
                take_id(seen, m.id);
            }
        }
        Some("message_delta") => {
            if let Some(u) = ev.usage {
                absorb(u);
            }
        }
        Some("message_stop") => seen.complete = true,
        Some("error") => {
            if let Some(e) = &ev.error {
                seen.set_error(e.kind(), e.message.as_deref());
            } else {
                seen.set_error(None, None);
            }
        }
        _ => {}
    }
}
