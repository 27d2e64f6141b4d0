//! Targets over the gateway's wire formats (`docket_server::gateway::wire`):
//! model requests from agents, and responses and SSE streams from
//! providers.

use bytes::Bytes;
use docket_server::gateway::wire::{self, Api, SseTap, TapSummary};

use crate::input::{Input, SplitMix};

/// A model request as an agent sends it, read for each API; and a whole
/// response body as a provider sends it.
pub fn gateway_request(data: &[u8]) {
    for api in Api::ALL {
        let _ = wire::response_facts(api, data);
        let Ok(shape) = wire::inspect(api, data) else {
            continue;
        };
        let prepared = wire::prepare(api, Bytes::copy_from_slice(data), &shape);
        if !prepared.strip_usage_chunk {
            assert!(prepared.body == data, "{api}: a body was changed unasked");
            continue;
        }
        // Docket asked for usage: what it forwards is a request it would
        // itself accept, asking the same, with usage on.
        let again = wire::inspect(api, &prepared.body).unwrap_or_else(|e| {
            panic!(
                "{api}: the body Docket forwards is refused ({e}): {}",
                String::from_utf8_lossy(&prepared.body)
            )
        });
        assert!(again.include_usage, "{api}: include_usage was not added");
        assert_eq!(
            (&again.model, again.stream, again.max_output_tokens),
            (&shape.model, shape.stream, shape.max_output_tokens),
            "{api}: adding include_usage changed what the request asks"
        );
    }
}

/// A provider's SSE stream through the tap, for each API, with and
/// without the usage chunk to strip and with small event limits: however
/// the stream is split into chunks, the client gets the same bytes and
/// the tap reports the same summary; a stream that is not stripped
/// passes unchanged.
///
/// The first byte picks the API, strip mode and limit; the second, how
/// the rest is split.
pub fn sse(data: &[u8]) {
    let mut input = Input::new(data);
    let setup = input.u8();
    let split = input.u8();
    let stream = input.rest();
    let api = [Api::ChatCompletions, Api::Responses, Api::Messages][usize::from(setup % 3)];
    let strip = (setup / 3) % 2 == 1;
    let limit = [64, 300, wire::MAX_EVENT_BYTES][usize::from(setup / 6 % 3)];

    let (want, want_summary) = tap(api, strip, limit, stream, &[]);
    if !strip || api != Api::ChatCompletions {
        assert!(want == stream, "{api}: a stream not stripped was changed");
    } else {
        assert!(want.len() <= stream.len(), "{api}: stripping added bytes");
    }

    let cuts: Vec<usize> = if split == 0xff {
        (1..stream.len()).collect()
    } else {
        let mut rng = SplitMix(u64::from(split));
        let mut cuts: Vec<usize> = (0..split % 9)
            .map(|_| rng.below(stream.len() as u64 + 1) as usize)
            .collect();
        cuts.sort_unstable();
        cuts
    };
    let (got, got_summary) = tap(api, strip, limit, stream, &cuts);
    assert!(
        got == want,
        "{api} strip={strip} limit={limit}: cut at {cuts:?}, the client gets other bytes"
    );
    assert_eq!(
        got_summary, want_summary,
        "{api} strip={strip} limit={limit}: cut at {cuts:?}, the summary differs"
    );
}

/// Feeds `stream` in pieces cut at `cuts`; returns what the client got
/// and the tap's summary.
fn tap(
    api: Api,
    strip: bool,
    limit: usize,
    stream: &[u8],
    cuts: &[usize],
) -> (Vec<u8>, TapSummary) {
    let mut tap = SseTap::with_limit(api, strip, limit);
    let mut out = Vec::with_capacity(stream.len());
    let mut at = 0;
    for &cut in cuts.iter().chain(std::iter::once(&stream.len())) {
        out.extend_from_slice(&tap.feed(Bytes::copy_from_slice(&stream[at..cut])));
        at = cut;
    }
    out.extend_from_slice(&tap.flush());
    (out, tap.finish())
}
