//! The `[gateway]` section of Docket's configuration: which model providers
//! exist, which models go to which provider, price overrides, and how long
//! an agent's call may wait for a human approval.

use std::collections::BTreeMap;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::pattern::{check_pattern, pattern_matches};
use super::price::{ModelPrice, PriceEntry, PriceTable};
use super::wire::Api;
pub use super::wire::ProviderKind;

/// Longest `approval_wait_secs` accepted: an HTTP call held open longer
/// than this is cut by proxies and SDK timeouts anyway (the OpenAI and
/// Anthropic SDKs default to 600 s for the whole call, less on some hosts).
pub const MAX_APPROVAL_WAIT_SECS: u64 = 300;

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    /// Upstream providers by name. Entries given in the config file are
    /// merged over the defaults (`openai`, `anthropic`) key by key.
    pub providers: BTreeMap<String, ProviderConfig>,
    /// Model name → provider, first match wins. A `models` list in the
    /// config file replaces the default list as a whole, so it must repeat
    /// the default routes it still wants.
    pub models: Vec<ModelRoute>,
    /// Prices that override or extend the built-in table; see
    /// [`PriceTable`] for how a model finds its price.
    pub prices: Vec<PriceEntry>,
    /// Price for models neither `prices` nor the built-in table knows;
    /// unset means the most expensive built-in price (see [`PriceTable`]).
    pub unknown_model_price: Option<ModelPrice>,
    /// Longest an agent's call blocks waiting for a human decision before
    /// it is answered "approval pending" (at most 300).
    pub approval_wait_secs: u64,
    /// How long an approval request stays decidable, and a granted
    /// approval usable by the agent's retry.
    pub approval_ttl_secs: u64,
    /// Calls in progress at once, provider time included (long streams
    /// count); past it a call is refused at once with 503 and
    /// `Retry-After`. Bounds the memory calls hold.
    pub max_in_flight: usize,
    /// Calls at once between their body read and their decision being
    /// durable: policy and the decision's append (a client still sending
    /// its body holds no place). A call waits at most `admission_wait_ms`
    /// for a place, then is refused with 503 and `Retry-After`, so an
    /// overloaded Docket answers fast instead of queueing without bound.
    pub max_deciding: usize,
    pub admission_wait_ms: u64,
    /// How late, in milliseconds, Docket's scheduler may run work that
    /// is ready (measured every 10 ms; the least of the last 8 readings,
    /// so a standing queue and not a moment's pause) before new calls are
    /// refused: past it a share of calls grows from none to all at twice
    /// the figure, so a CPU-bound Docket sheds load and the calls it
    /// admits keep their latency. 0 turns this off.
    pub shed_lag_ms: u64,
    /// How long, in milliseconds, deciding a call (policy and the
    /// decision made durable; a moving average of recent calls, none
    /// after 250 ms without a decision) may take before new calls are
    /// refused the same way, while an eighth of `max_deciding` or more
    /// places are taken: a disk or a database that falls behind sheds
    /// load instead of queueing it (a slow disk at light load is not a
    /// queue). 0 turns this off.
    pub shed_decide_ms: u64,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// Which wire format and credential scheme the provider speaks.
    pub kind: ProviderKind,
    /// Scheme, host and optional path prefix, e.g. `https://api.openai.com`
    /// or `https://openrouter.ai/api`; the gateway appends the route's own
    /// path (`/v1/chat/completions`, …).
    pub base_url: String,
    /// The provider key itself. Prefer `api_key_env`, which keeps the key
    /// out of files. Never serialized back out.
    #[serde(default, serialize_with = "never_serialize")]
    pub api_key: Option<SecretString>,
    /// Name of the environment variable holding the key, read at startup.
    /// With neither `api_key` nor `api_key_env` the provider is called
    /// without a credential (a local model server, say).
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Whole-call limit for a non-streaming call, and the longest silence
    /// between two chunks of a streaming one.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
}

fn default_timeout_secs() -> u64 {
    600
}

fn default_connect_timeout_ms() -> u64 {
    10_000
}

fn never_serialize<S: serde::Serializer>(
    _: &Option<SecretString>,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.serialize_none()
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ModelRoute {
    /// An exact model name, or a prefix ending in `*` (`gpt-*`; `*` alone
    /// matches every model).
    pub pattern: String,
    /// A key of `providers`.
    pub provider: String,
}

impl ModelRoute {
    fn new(pattern: &str, provider: &str) -> Self {
        Self {
            pattern: pattern.to_owned(),
            provider: provider.to_owned(),
        }
    }
}

/// Why a model has no usable route for an API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error(
        "model `{model}` is not served by this gateway (no route in [gateway.models] matches it)"
    )]
    UnknownModel { model: String },
    #[error(
        "model `{model}` is served by provider `{provider}`, which speaks the {kind} API; call it at {path}"
    )]
    WrongApi {
        model: String,
        provider: String,
        kind: ProviderKind,
        path: &'static str,
    },
}

impl RouteError {
    /// A stable code for the provider-shaped error body.
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownModel { .. } => "model_not_found",
            Self::WrongApi { .. } => "wrong_api_for_model",
        }
    }
}

impl Default for GatewayConfig {
    fn default() -> Self {
        let providers = BTreeMap::from([
            (
                "openai".to_owned(),
                ProviderConfig {
                    kind: ProviderKind::OpenAi,
                    base_url: "https://api.openai.com".to_owned(),
                    api_key: None,
                    api_key_env: Some("OPENAI_API_KEY".to_owned()),
                    timeout_secs: default_timeout_secs(),
                    connect_timeout_ms: default_connect_timeout_ms(),
                },
            ),
            (
                "anthropic".to_owned(),
                ProviderConfig {
                    kind: ProviderKind::Anthropic,
                    base_url: "https://api.anthropic.com".to_owned(),
                    api_key: None,
                    api_key_env: Some("ANTHROPIC_API_KEY".to_owned()),
                    timeout_secs: default_timeout_secs(),
                    connect_timeout_ms: default_connect_timeout_ms(),
                },
            ),
        ]);
        let models = [
            ("gpt-*", "openai"),
            ("o1*", "openai"),
            ("o3*", "openai"),
            ("o4*", "openai"),
            ("text-embedding-*", "openai"),
            ("chatgpt-*", "openai"),
            ("claude-*", "anthropic"),
        ]
        .iter()
        .map(|(p, to)| ModelRoute::new(p, to))
        .collect();
        Self {
            providers,
            models,
            prices: Vec::new(),
            unknown_model_price: None,
            approval_wait_secs: 30,
            approval_ttl_secs: 900,
            max_in_flight: 4096,
            max_deciding: 256,
            admission_wait_ms: 50,
            shed_lag_ms: 5,
            shed_decide_ms: 10,
        }
    }
}

impl GatewayConfig {
    /// Checks what serde cannot; the message names the offending key.
    pub fn validate(&self) -> Result<(), String> {
        for (name, p) in &self.providers {
            let at = format!("gateway.providers.{name}");
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(format!(
                    "{at}: a provider name may use only ASCII letters, digits, `-` and `_`"
                ));
            }
            check_base_url(&p.base_url).map_err(|e| format!("{at}.base_url: {e}"))?;
            // `api_key` wins over `api_key_env` (see `api_key`): the
            // built-in providers name a variable by default, and TOML
            // cannot unset it when a file gives the key itself.
            if let Some(var) = &p.api_key_env
                && (var.is_empty() || var.contains('=') || var.contains('\0'))
            {
                return Err(format!(
                    "{at}.api_key_env: `{var}` is not an environment variable name"
                ));
            }
            if p.api_key
                .as_ref()
                .is_some_and(|k| k.expose_secret().trim().is_empty())
            {
                return Err(format!("{at}.api_key: is empty"));
            }
            if p.timeout_secs == 0 {
                return Err(format!("{at}.timeout_secs: must be at least 1"));
            }
            if p.connect_timeout_ms == 0 {
                return Err(format!("{at}.connect_timeout_ms: must be at least 1"));
            }
        }
        for (i, r) in self.models.iter().enumerate() {
            let at = format!("gateway.models[{i}]");
            check_pattern(&r.pattern).map_err(|e| format!("{at}.pattern `{}`: {e}", r.pattern))?;
            if !self.providers.contains_key(&r.provider) {
                let known: Vec<&str> = self.providers.keys().map(String::as_str).collect();
                return Err(format!(
                    "{at}: routes `{}` to provider `{}`, which is not configured (configured: {})",
                    r.pattern,
                    r.provider,
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                ));
            }
        }
        PriceTable::check_entries(&self.prices)?;
        if let Some(p) = &self.unknown_model_price {
            p.check()
                .map_err(|e| format!("gateway.unknown_model_price: {e}"))?;
        }
        if self.approval_wait_secs > MAX_APPROVAL_WAIT_SECS {
            return Err(format!(
                "gateway.approval_wait_secs: {} is more than the maximum of {MAX_APPROVAL_WAIT_SECS}",
                self.approval_wait_secs
            ));
        }
        if self.approval_ttl_secs == 0 {
            return Err("gateway.approval_ttl_secs: must be at least 1".to_owned());
        }
        if self.approval_ttl_secs < self.approval_wait_secs {
            return Err(format!(
                "gateway.approval_ttl_secs ({}) must be at least approval_wait_secs ({}): a request must stay decidable while the call waits for it",
                self.approval_ttl_secs, self.approval_wait_secs
            ));
        }
        Ok(())
    }

    /// The provider for `model`: the first route whose pattern matches.
    pub fn route(&self, model: &str) -> Option<(&str, &ProviderConfig)> {
        let r = self
            .models
            .iter()
            .find(|r| pattern_matches(&r.pattern, model))?;
        self.providers
            .get_key_value(&r.provider)
            .map(|(k, v)| (k.as_str(), v))
    }

    /// [`Self::route`], plus the check that the provider speaks the wire
    /// format of the API the agent called.
    pub fn route_for(&self, api: Api, model: &str) -> Result<(&str, &ProviderConfig), RouteError> {
        let (name, p) = self.route(model).ok_or_else(|| RouteError::UnknownModel {
            model: model.to_owned(),
        })?;
        if p.kind != api.provider_kind() {
            let path = match p.kind {
                ProviderKind::OpenAi => Api::ChatCompletions.path(),
                ProviderKind::Anthropic => Api::Messages.path(),
            };
            return Err(RouteError::WrongApi {
                model: model.to_owned(),
                provider: name.to_owned(),
                kind: p.kind,
                path,
            });
        }
        Ok((name, p))
    }

    /// A provider of `kind` for calls that name no model (`GET /v1/models`):
    /// the one named like the kind if configured, else the first by name.
    pub fn default_provider(&self, kind: ProviderKind) -> Option<(&str, &ProviderConfig)> {
        if let Some((k, v)) = self.providers.get_key_value(kind.as_str())
            && v.kind == kind
        {
            return Some((k.as_str(), v));
        }
        self.providers
            .iter()
            .find(|(_, v)| v.kind == kind)
            .map(|(k, v)| (k.as_str(), v))
    }

    /// The provider's key: `api_key`, else the variable `api_key_env` names
    /// (empty counts as unset). `None` also for an unknown provider.
    pub fn api_key(&self, provider: &str) -> Option<SecretString> {
        let p = self.providers.get(provider)?;
        if let Some(k) = &p.api_key {
            return Some(k.clone());
        }
        let var = p.api_key_env.as_deref()?;
        let value = std::env::var(var).ok()?;
        if value.trim().is_empty() {
            return None;
        }
        Some(SecretString::from(value))
    }

    /// The price table: built-in prices with `prices` and
    /// `unknown_model_price` applied.
    pub fn price_table(&self) -> PriceTable {
        PriceTable::new(&self.prices, self.unknown_model_price)
    }
}

fn check_base_url(raw: &str) -> Result<(), String> {
    let url = reqwest::Url::parse(raw).map_err(|e| format!("`{raw}` is not a URL: {e}"))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(format!("`{raw}` must start with http:// or https://"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("`{raw}` names no host"));
    }
    // Credentials in the URL would end up in reqwest's error messages, and
    // a query or fragment cannot be combined with the appended route path.
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!(
            "`{raw}` must not contain credentials; use api_key_env"
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("`{raw}` must not have a query or fragment"));
    }
    if url.path().trim_end_matches('/').ends_with("/v1") {
        return Err(format!(
            "`{raw}` ends in /v1, but the gateway appends the full route path (/v1/chat/completions, …) itself; drop the /v1"
        ));
    }
    Ok(())
}

#[cfg(test)]
// figment's test jail returns its own (large) error type; that is its API.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    fn openai(base_url: &str) -> ProviderConfig {
        ProviderConfig {
            kind: ProviderKind::OpenAi,
            base_url: base_url.to_owned(),
            api_key: None,
            api_key_env: None,
            timeout_secs: 600,
            connect_timeout_ms: 1000,
        }
    }

    #[test]
    fn defaults_are_valid_and_route_the_usual_models() {
        let c = GatewayConfig::default();
        c.validate().unwrap();
        for (model, provider) in [
            ("gpt-4o-mini", "openai"),
            ("o3-mini", "openai"),
            ("o1", "openai"),
            ("o4-mini-2025-04-16", "openai"),
            ("text-embedding-3-small", "openai"),
            ("chatgpt-4o-latest", "openai"),
            ("claude-sonnet-4-5", "anthropic"),
        ] {
            assert_eq!(c.route(model).map(|r| r.0), Some(provider), "{model}");
        }
        assert!(c.route("llama-3").is_none());
        assert!(
            c.route("GPT-4o").is_none(),
            "model names are case-sensitive"
        );
    }

    #[test]
    fn first_matching_route_wins() {
        let mut c = GatewayConfig::default();
        c.providers
            .insert("local".into(), openai("http://127.0.0.1:8000"));
        c.models.insert(0, ModelRoute::new("gpt-4o-mini", "local"));
        assert_eq!(c.route("gpt-4o-mini").map(|r| r.0), Some("local"));
        assert_eq!(c.route("gpt-4o").map(|r| r.0), Some("openai"));
        c.models.push(ModelRoute::new("*", "local"));
        assert_eq!(c.route("mistral-large").map(|r| r.0), Some("local"));
    }

    #[test]
    fn route_for_checks_the_wire_format() {
        let c = GatewayConfig::default();
        assert_eq!(
            c.route_for(Api::Messages, "claude-3-5-haiku").map(|r| r.0),
            Ok("anthropic")
        );
        let e = c
            .route_for(Api::ChatCompletions, "claude-3-5-haiku")
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "model `claude-3-5-haiku` is served by provider `anthropic`, which speaks the anthropic API; call it at /v1/messages"
        );
        let e = c.route_for(Api::ChatCompletions, "llama").unwrap_err();
        assert_eq!(e.code(), "model_not_found");
        assert!(e.to_string().contains("`llama`"), "{e}");
    }

    #[test]
    fn default_provider_prefers_the_kinds_own_name() {
        let mut c = GatewayConfig::default();
        assert_eq!(
            c.default_provider(ProviderKind::OpenAi).map(|r| r.0),
            Some("openai")
        );
        c.providers.remove("openai");
        c.providers
            .insert("azure".into(), openai("https://example.com"));
        assert_eq!(
            c.default_provider(ProviderKind::OpenAi).map(|r| r.0),
            Some("azure")
        );
    }

    fn invalid(c: &GatewayConfig) -> String {
        c.validate().unwrap_err()
    }

    #[test]
    fn validation_names_the_offending_key() {
        let mut c = GatewayConfig::default();
        c.models.push(ModelRoute::new("llama-*", "ollama"));
        assert_eq!(
            invalid(&c),
            "gateway.models[7]: routes `llama-*` to provider `ollama`, which is not configured (configured: anthropic, openai)"
        );

        let mut c = GatewayConfig::default();
        c.models[0].pattern = "gpt-*-mini".into();
        assert_eq!(
            invalid(&c),
            "gateway.models[0].pattern `gpt-*-mini`: may contain `*` only as its last character (a prefix match)"
        );

        let cases = [
            ("ftp://x", "must start with http:// or https://"),
            ("api.openai.com", "is not a URL"),
            ("https://api.openai.com/v1", "ends in /v1"),
            ("https://api.openai.com/v1/", "ends in /v1"),
            ("https://u:p@api.openai.com", "must not contain credentials"),
            ("https://api.openai.com?x=1", "query or fragment"),
        ];
        for (url, want) in cases {
            let mut c = GatewayConfig::default();
            c.providers.insert("openai".into(), openai(url));
            let e = invalid(&c);
            assert!(e.starts_with("gateway.providers.openai.base_url: "), "{e}");
            assert!(e.contains(want), "{url}: {e}");
        }
        let mut c = GatewayConfig::default();
        c.providers
            .insert("openai".into(), openai("https://openrouter.ai/api/"));
        c.validate().unwrap();

        // A key in the file beats the default variable's name.
        let mut c = GatewayConfig::default();
        if let Some(p) = c.providers.get_mut("openai") {
            p.api_key = Some("sk-x".into());
        }
        c.validate().unwrap();
        assert_eq!(
            c.api_key("openai")
                .map(|k| secrecy::ExposeSecret::expose_secret(&k).to_owned()),
            Some("sk-x".to_owned())
        );

        let mut c = GatewayConfig::default();
        c.providers
            .insert("open ai".into(), openai("https://x.example"));
        assert!(invalid(&c).contains("provider name"));

        let mut c = GatewayConfig {
            approval_wait_secs: 301,
            ..GatewayConfig::default()
        };
        assert_eq!(
            invalid(&c),
            "gateway.approval_wait_secs: 301 is more than the maximum of 300"
        );
        c.approval_wait_secs = 60;
        c.approval_ttl_secs = 30;
        assert!(invalid(&c).starts_with(
            "gateway.approval_ttl_secs (30) must be at least approval_wait_secs (60)"
        ));
    }

    #[test]
    fn api_key_comes_from_the_file_or_the_environment() {
        let mut c = GatewayConfig::default();
        let var = "DOCKET_GATEWAY_TEST_KEY_7f3a";
        if let Some(p) = c.providers.get_mut("anthropic") {
            p.api_key_env = Some(var.into());
        }
        figment::Jail::expect_with(|jail| {
            assert!(c.api_key("anthropic").is_none());
            jail.set_env(var, "");
            assert!(c.api_key("anthropic").is_none(), "empty counts as unset");
            jail.set_env(var, "sk-ant-secret");
            assert_eq!(
                c.api_key("anthropic").map(|k| k.expose_secret().to_owned()),
                Some("sk-ant-secret".to_owned())
            );
            Ok(())
        });
        if let Some(p) = c.providers.get_mut("openai") {
            p.api_key_env = None;
            p.api_key = Some("sk-file".into());
        }
        assert_eq!(
            c.api_key("openai").map(|k| k.expose_secret().to_owned()),
            Some("sk-file".to_owned())
        );
        assert!(c.api_key("nope").is_none());
    }

    #[test]
    fn toml_section_merges_over_defaults_and_never_shows_the_key() {
        use figment::Figment;
        use figment::providers::{Format, Serialized, Toml};
        let toml = r#"
            approval_wait_secs = 45
            [providers.openai]
            base_url = "http://127.0.0.1:9999"
            api_key_env = "MY_KEY"
            [providers.local]
            kind = "openai"
            base_url = "http://127.0.0.1:8000"
            api_key = "sk-hunter2"
        "#;
        let c: GatewayConfig = Figment::from(Serialized::defaults(GatewayConfig::default()))
            .merge(Toml::string(toml))
            .extract()
            .unwrap();
        c.validate().unwrap();
        assert_eq!(c.approval_wait_secs, 45);
        assert_eq!(c.providers.len(), 3, "defaults kept, local added");
        let openai = &c.providers["openai"];
        assert_eq!(openai.base_url, "http://127.0.0.1:9999");
        assert_eq!(
            openai.kind,
            ProviderKind::OpenAi,
            "kind kept from the default"
        );
        assert_eq!(c.providers["local"].timeout_secs, 600);
        assert_eq!(c.providers["local"].connect_timeout_ms, 10_000);
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        let serialized = serde_json::to_string(&c).unwrap();
        assert!(!serialized.contains("hunter2"), "{serialized}");

        let e = Figment::from(Serialized::defaults(GatewayConfig::default()))
            .merge(Toml::string("[providers.openai]\nbase_ur = \"x\"\n"))
            .extract::<GatewayConfig>()
            .unwrap_err()
            .to_string();
        assert!(e.contains("base_ur"), "{e}");
        let e = Figment::from(Serialized::defaults(GatewayConfig::default()))
            .merge(Toml::string(
                "[providers.x]\nkind = \"gemini\"\nbase_url = \"https://x\"\n",
            ))
            .extract::<GatewayConfig>()
            .unwrap_err()
            .to_string();
        assert!(e.contains("gemini"), "{e}");
    }
}
