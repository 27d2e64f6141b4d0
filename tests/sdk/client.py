"""One model call through an official provider SDK, reported as one JSON line.

Docket's tests run this to prove that real client code works through the gateway (or against
the stand-in provider) unchanged. The SDK versions are pinned in requirements.txt beside it.

    python3 tests/sdk/client.py SCENARIO --base-url URL --key KEY [--model M] [--stream]
        [--header NAME=VALUE ...] [--max-retries N] [--prompt TEXT] [--max-tokens N]

SCENARIO is one of openai-chat, openai-responses, openai-embeddings, openai-models,
anthropic-messages. It prints one JSON object on stdout:

    {"ok": true, "status": 200, "text": ..., "usage": {...}, "id": ..., "headers": {...}}
    {"ok": false, "status": 429 | null, "error_type": "RateLimitError", "message": ...,
     "body": ..., "headers": {...}}

and exits 0 either way; a non-zero exit means the harness itself is broken (bad arguments,
SDK not installed, an unexpected exception outside the SDK's own error classes).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Callable

SCENARIOS = (
    "openai-chat",
    "openai-responses",
    "openai-embeddings",
    "openai-models",
    "anthropic-messages",
)

# Modules whose exceptions are transport failures the caller of an SDK can see.
HTTP_LIBRARIES = ("httpx", "httpx2", "httpcore", "httpcore2", "h11")

DEFAULT_MODELS = {
    "openai-chat": "gpt-4o-mini",
    "openai-responses": "gpt-4o-mini",
    "openai-embeddings": "text-embedding-3-small",
    "openai-models": None,
    "anthropic-messages": "claude-haiku-4-5",
}


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    headers = dict(split_header(h) for h in args.header)
    # Headers seen so far, so an error mid-stream still reports the ones that came with the 200.
    seen: dict[str, dict[str, str]] = {"headers": {}}
    if args.scenario.startswith("openai"):
        import openai

        client = openai.OpenAI(
            base_url=args.base_url.rstrip("/") + "/v1",
            api_key=args.key,
            max_retries=args.max_retries,
            default_headers=headers or None,
            timeout=args.timeout,
        )
        errors: tuple[type[BaseException], ...] = (openai.APIError,)
    else:
        import anthropic

        client = anthropic.Anthropic(
            base_url=args.base_url.rstrip("/"),
            api_key=args.key,
            max_retries=args.max_retries,
            default_headers=headers or None,
            timeout=args.timeout,
        )
        errors = (anthropic.APIError,)

    run: Callable[..., dict[str, Any]] = RUNNERS[args.scenario]
    try:
        result = {"ok": True, "status": 200, **run(client, args, seen)}
    except errors as e:  # the SDK's own errors: what a test asserts on
        result = failure(e, seen["headers"])
    except Exception as e:
        # A connection dropped mid-stream reaches anthropic's callers as the HTTP library's own
        # error (openai wraps it in APIConnectionError): report it as the failure it is.
        if type(e).__module__.split(".")[0] not in HTTP_LIBRARIES:
            raise
        result = failure(e, seen["headers"])
    print(json.dumps(result, default=str))
    return 0


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenario", choices=SCENARIOS)
    parser.add_argument("--base-url", required=True, help="server root, without /v1")
    parser.add_argument("--key", required=True, help="API key the SDK presents")
    parser.add_argument("--model", help="model name (default depends on the scenario)")
    parser.add_argument("--stream", action="store_true", help="stream the reply")
    parser.add_argument(
        "--header", action="append", default=[], metavar="NAME=VALUE", help="extra request header"
    )
    parser.add_argument("--max-retries", type=int, default=0)
    parser.add_argument("--prompt", default="Say hello to the Docket test suite")
    parser.add_argument("--max-tokens", type=int, default=None)
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds")
    args = parser.parse_args(argv)
    if args.model is None:
        args.model = DEFAULT_MODELS[args.scenario]
    return args


def split_header(spec: str) -> tuple[str, str]:
    name, sep, value = spec.partition("=")
    if not sep or not name:
        raise SystemExit(f"--header wants NAME=VALUE, got {spec!r}")
    return name, value


def lower_headers(headers: Any) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def dump(obj: Any) -> Any:
    """A pydantic model (as the SDK parsed it) as plain JSON, or None."""
    if obj is None:
        return None
    return obj.model_dump(mode="json", exclude_none=False)


def failure(e: BaseException, headers: dict[str, str]) -> dict[str, Any]:
    response = getattr(e, "response", None)
    if response is not None:
        headers = lower_headers(response.headers)
    return {
        "ok": False,
        "status": getattr(e, "status_code", None),
        "error_type": type(e).__name__,
        "message": str(e),
        "body": getattr(e, "body", None),
        "headers": headers,
    }


def openai_chat(client: Any, args: argparse.Namespace, seen: dict) -> dict[str, Any]:
    params: dict[str, Any] = {
        "model": args.model,
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": args.prompt},
        ],
    }
    if args.max_tokens is not None:
        params["max_completion_tokens"] = args.max_tokens
    if not args.stream:
        raw = client.chat.completions.with_raw_response.create(**params)
        seen["headers"] = lower_headers(raw.headers)
        completion = raw.parse()
        choice = completion.choices[0]
        return {
            "text": choice.message.content,
            "finish_reason": choice.finish_reason,
            "usage": dump(completion.usage),
            "id": completion.id,
            "model": completion.model,
            "headers": seen["headers"],
        }
    raw = client.chat.completions.with_raw_response.create(
        **params, stream=True, stream_options={"include_usage": True}
    )
    seen["headers"] = lower_headers(raw.headers)
    text, usage, chunk_id, finish_reason, chunks = [], None, None, None, 0
    for chunk in raw.parse():
        chunks += 1
        chunk_id = chunk.id
        if chunk.usage is not None:
            usage = dump(chunk.usage)
        for choice in chunk.choices:
            if choice.delta.content:
                text.append(choice.delta.content)
            if choice.finish_reason:
                finish_reason = choice.finish_reason
    return {
        "text": "".join(text),
        "finish_reason": finish_reason,
        "usage": usage,
        "id": chunk_id,
        "chunks": chunks,
        "headers": seen["headers"],
    }


def openai_responses(client: Any, args: argparse.Namespace, seen: dict) -> dict[str, Any]:
    params: dict[str, Any] = {
        "model": args.model,
        "instructions": "You are terse.",
        "input": args.prompt,
    }
    if args.max_tokens is not None:
        params["max_output_tokens"] = args.max_tokens
    if not args.stream:
        raw = client.responses.with_raw_response.create(**params)
        seen["headers"] = lower_headers(raw.headers)
        response = raw.parse()
        return {
            "text": response.output_text,
            "response_status": response.status,
            "usage": dump(response.usage),
            "id": response.id,
            "model": response.model,
            "headers": seen["headers"],
        }
    raw = client.responses.with_raw_response.create(**params, stream=True)
    seen["headers"] = lower_headers(raw.headers)
    text, final, events = [], None, []
    for event in raw.parse():
        events.append(event.type)
        if event.type == "response.output_text.delta":
            text.append(event.delta)
        elif event.type in ("response.completed", "response.incomplete", "response.failed"):
            final = event.response
    return {
        "text": "".join(text),
        "response_status": final.status if final else None,
        "usage": dump(final.usage) if final else None,
        "id": final.id if final else None,
        "events": events,
        "headers": seen["headers"],
    }


def openai_embeddings(client: Any, args: argparse.Namespace, seen: dict) -> dict[str, Any]:
    # No encoding_format: the SDK then asks for base64 and decodes it itself, as users get it.
    raw = client.embeddings.with_raw_response.create(model=args.model, input=args.prompt)
    seen["headers"] = lower_headers(raw.headers)
    result = raw.parse()
    return {
        "text": None,
        "embedding": result.data[0].embedding,
        "usage": dump(result.usage),
        "id": None,
        "model": result.model,
        "headers": seen["headers"],
    }


def openai_models(client: Any, args: argparse.Namespace, seen: dict) -> dict[str, Any]:
    raw = client.models.with_raw_response.list()
    seen["headers"] = lower_headers(raw.headers)
    page = raw.parse()
    return {
        "text": None,
        "models": [m.id for m in page.data],
        "usage": None,
        "id": None,
        "headers": seen["headers"],
    }


def anthropic_messages(client: Any, args: argparse.Namespace, seen: dict) -> dict[str, Any]:
    params: dict[str, Any] = {
        "model": args.model,
        "max_tokens": args.max_tokens if args.max_tokens is not None else 1024,
        "system": "You are terse.",
        "messages": [{"role": "user", "content": args.prompt}],
    }
    if not args.stream:
        raw = client.messages.with_raw_response.create(**params)
        seen["headers"] = lower_headers(raw.headers)
        message = raw.parse()
        return {
            "text": "".join(b.text for b in message.content if b.type == "text"),
            "stop_reason": message.stop_reason,
            "usage": dump(message.usage),
            "id": message.id,
            "model": message.model,
            "headers": seen["headers"],
        }
    raw = client.messages.with_raw_response.create(**params, stream=True)
    seen["headers"] = lower_headers(raw.headers)
    text, usage, message_id, stop_reason, events = [], {}, None, None, []
    for event in raw.parse():
        events.append(event.type)
        if event.type == "message_start":
            message_id = event.message.id
            usage = dump(event.message.usage)
        elif event.type == "content_block_delta" and event.delta.type == "text_delta":
            text.append(event.delta.text)
        elif event.type == "message_delta":
            stop_reason = event.delta.stop_reason
            # The final output count arrives here; the start only had a placeholder.
            usage.update({k: v for k, v in dump(event.usage).items() if v is not None})
    return {
        "text": "".join(text),
        "stop_reason": stop_reason,
        "usage": usage,
        "id": message_id,
        "events": events,
        "headers": seen["headers"],
    }


RUNNERS: dict[str, Callable[..., dict[str, Any]]] = {
    "openai-chat": openai_chat,
    "openai-responses": openai_responses,
    "openai-embeddings": openai_embeddings,
    "openai-models": openai_models,
    "anthropic-messages": anthropic_messages,
}


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
