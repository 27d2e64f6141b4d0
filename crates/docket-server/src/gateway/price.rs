//! What a model call costs: a price per model in micro-USD per million
//! tokens, built-in list prices overridable from the config, and integer
//! arithmetic that rounds up so a budget is never under-charged.

use serde::{Deserialize, Serialize};

use super::pattern::{check_pattern, pattern_matches};

/// An amount of money in millionths of a US dollar.
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct MicroUsd(pub i64);

impl MicroUsd {
    pub const ZERO: Self = Self(0);

    pub fn saturating_add(self, other: Self) -> Self {
        Self(self.0.saturating_add(other.0))
    }
}

impl std::fmt::Display for MicroUsd {
    /// As dollars with six decimals, e.g. `$0.000125`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        write!(f, "{sign}${}.{:06}", abs / 1_000_000, abs % 1_000_000)
    }
}

/// Input and output prices of one model, per million tokens.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelPrice {
    /// Micro-USD per million input (prompt) tokens: $2.50 is `2500000`.
    pub input_per_mtok: MicroUsd,
    /// Micro-USD per million output (completion) tokens.
    pub output_per_mtok: MicroUsd,
}

impl ModelPrice {
    const fn usd(input: f64, output: f64) -> Self {
        // Only for the literals of the built-in table, which are whole
        // micro-dollars; the +0.5 rounds away binary fractions (0.15 is
        // 0.1499… in f64, which `as` would truncate).
        Self {
            input_per_mtok: MicroUsd((input * 1_000_000.0 + 0.5) as i64),
            output_per_mtok: MicroUsd((output * 1_000_000.0 + 0.5) as i64),
        }
    }

    pub(crate) fn check(&self) -> Result<(), String> {
        if self.input_per_mtok.0 < 0 || self.output_per_mtok.0 < 0 {
            return Err("prices must not be negative".to_owned());
        }
        Ok(())
    }
}

/// One row of `[[gateway.prices]]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceEntry {
    /// An exact model name, or a prefix ending in `*`.
    pub pattern: String,
    /// Micro-USD per million input tokens.
    pub input_per_mtok: MicroUsd,
    /// Micro-USD per million output tokens.
    pub output_per_mtok: MicroUsd,
}

impl PriceEntry {
    pub fn price(&self) -> ModelPrice {
        ModelPrice {
            input_per_mtok: self.input_per_mtok,
            output_per_mtok: self.output_per_mtok,
        }
    }
}

/// List prices (USD per million tokens) at the time of writing, from the
/// providers' public pricing pages. They go stale: operators override or
/// extend them with `[[gateway.prices]]`. Cached-input and batch discounts
/// are not modelled, so cached tokens are charged at the input price —
/// budgets err on the side of spending less.
const BUILT_IN: &[(&str, ModelPrice)] = &[
    // OpenAI
    ("gpt-4o*", ModelPrice::usd(2.50, 10.00)),
    ("gpt-4o-2024-05-13", ModelPrice::usd(5.00, 15.00)),
    ("chatgpt-4o*", ModelPrice::usd(5.00, 15.00)),
    ("gpt-4o-mini*", ModelPrice::usd(0.15, 0.60)),
    ("gpt-4.1*", ModelPrice::usd(2.00, 8.00)),
    ("gpt-4.1-mini*", ModelPrice::usd(0.40, 1.60)),
    ("gpt-4.1-nano*", ModelPrice::usd(0.10, 0.40)),
    ("gpt-5*", ModelPrice::usd(1.25, 10.00)),
    ("gpt-5-mini*", ModelPrice::usd(0.25, 2.00)),
    ("gpt-5-nano*", ModelPrice::usd(0.05, 0.40)),
    ("o1*", ModelPrice::usd(15.00, 60.00)),
    ("o1-mini*", ModelPrice::usd(1.10, 4.40)),
    ("o3*", ModelPrice::usd(2.00, 8.00)),
    ("o3-mini*", ModelPrice::usd(1.10, 4.40)),
    ("o3-pro*", ModelPrice::usd(20.00, 80.00)),
    ("o4-mini*", ModelPrice::usd(1.10, 4.40)),
    ("text-embedding-3-small", ModelPrice::usd(0.02, 0.0)),
    ("text-embedding-3-large", ModelPrice::usd(0.13, 0.0)),
    ("text-embedding-ada-002", ModelPrice::usd(0.10, 0.0)),
    // Anthropic
    ("claude-opus-4-5*", ModelPrice::usd(5.00, 25.00)),
    ("claude-opus-4*", ModelPrice::usd(15.00, 75.00)),
    ("claude-3-opus*", ModelPrice::usd(15.00, 75.00)),
    ("claude-sonnet-4*", ModelPrice::usd(3.00, 15.00)),
    ("claude-3-7-sonnet*", ModelPrice::usd(3.00, 15.00)),
    ("claude-3-5-sonnet*", ModelPrice::usd(3.00, 15.00)),
    ("claude-haiku-4*", ModelPrice::usd(1.00, 5.00)),
    ("claude-3-5-haiku*", ModelPrice::usd(0.80, 4.00)),
    ("claude-3-haiku*", ModelPrice::usd(0.25, 1.25)),
];

/// Prices by model. A model's price is, in order: the most specific
/// configured entry that matches it, else the most specific built-in one,
/// else the fallback. "Most specific" is an exact name, then the longest
/// prefix, so the order of entries never matters (`gpt-4o-mini*` beats
/// `gpt-4o*` for `gpt-4o-mini-2024-07-18`).
///
/// The fallback defaults to the highest built-in input price and the
/// highest built-in output price: a model nobody priced is a model whose
/// cost is unknown, and budgets must fail safe — overestimating stops an
/// agent early, underestimating lets it spend past its limit.
#[derive(Clone, Debug)]
pub struct PriceTable {
    configured: Vec<(String, ModelPrice)>,
    fallback: ModelPrice,
}

impl PriceTable {
    pub fn new(overrides: &[PriceEntry], fallback: Option<ModelPrice>) -> Self {
        Self {
            configured: overrides
                .iter()
                .map(|e| (e.pattern.clone(), e.price()))
                .collect(),
            fallback: fallback.unwrap_or_else(Self::most_expensive_built_in),
        }
    }

    /// Validation of `[[gateway.prices]]`, with messages naming the row.
    pub(crate) fn check_entries(entries: &[PriceEntry]) -> Result<(), String> {
        for (i, e) in entries.iter().enumerate() {
            check_pattern(&e.pattern)
                .and_then(|()| e.price().check())
                .map_err(|m| format!("gateway.prices[{i}] `{}`: {m}", e.pattern))?;
        }
        Ok(())
    }

    fn most_expensive_built_in() -> ModelPrice {
        let mut max = ModelPrice {
            input_per_mtok: MicroUsd::ZERO,
            output_per_mtok: MicroUsd::ZERO,
        };
        for (_, p) in BUILT_IN {
            max.input_per_mtok = max.input_per_mtok.max(p.input_per_mtok);
            max.output_per_mtok = max.output_per_mtok.max(p.output_per_mtok);
        }
        max
    }

    pub fn fallback(&self) -> ModelPrice {
        self.fallback
    }

    /// The price used for `model`, and whether it was known (not the fallback).
    pub fn price(&self, model: &str) -> (ModelPrice, bool) {
        let configured = self.configured.iter().map(|(p, m)| (p.as_str(), m));
        if let Some(p) = most_specific(configured, model) {
            return (p, true);
        }
        let built_in = BUILT_IN.iter().map(|(p, m)| (*p, m));
        match most_specific(built_in, model) {
            Some(p) => (p, true),
            None => (self.fallback, false),
        }
    }

    /// What a call cost, from the provider's reported usage.
    pub fn cost(&self, model: &str, input_tokens: u64, output_tokens: u64) -> MicroUsd {
        charge(self.price(model).0, input_tokens, output_tokens)
    }

    /// The most a call can cost before it is made, for budget checks:
    /// the estimated input plus the output limit the request sets. A
    /// request without a limit is charged only its input here; the
    /// caller decides what output to assume for it.
    pub fn estimate(
        &self,
        model: &str,
        estimated_input_tokens: u64,
        max_output_tokens: Option<u64>,
    ) -> MicroUsd {
        self.cost(
            model,
            estimated_input_tokens,
            max_output_tokens.unwrap_or(0),
        )
    }
}

/// The exact match if any, else the matching prefix pattern with the
/// longest prefix.
fn most_specific<'a>(
    entries: impl Iterator<Item = (&'a str, &'a ModelPrice)>,
    model: &str,
) -> Option<ModelPrice> {
    let mut best: Option<(usize, ModelPrice)> = None;
    for (pattern, price) in entries {
        if !pattern_matches(pattern, model) {
            continue;
        }
        if !pattern.ends_with('*') {
            return Some(*price);
        }
        let len = pattern.len() - 1;
        if best.is_none_or(|(l, _)| len > l) {
            best = Some((len, *price));
        }
    }
    best.map(|(_, p)| p)
}

/// `ceil((in × in_price + out × out_price) / 10⁶)`, in 128 bits so no
/// token count can overflow it, saturating at `i64::MAX`.
fn charge(price: ModelPrice, input_tokens: u64, output_tokens: u64) -> MicroUsd {
    let per_mtok = |p: MicroUsd| u128::try_from(p.0.max(0)).unwrap_or(0);
    let total = u128::from(input_tokens) * per_mtok(price.input_per_mtok)
        + u128::from(output_tokens) * per_mtok(price.output_per_mtok);
    let rounded_up = total.div_ceil(1_000_000);
    MicroUsd(i64::try_from(rounded_up).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usd(input: f64, output: f64) -> ModelPrice {
        ModelPrice::usd(input, output)
    }

    fn entry(pattern: &str, p: ModelPrice) -> PriceEntry {
        PriceEntry {
            pattern: pattern.into(),
            input_per_mtok: p.input_per_mtok,
            output_per_mtok: p.output_per_mtok,
        }
    }

    #[test]
    fn built_in_prices_pick_the_most_specific_pattern() {
        let t = PriceTable::new(&[], None);
        assert_eq!(
            usd(0.15, 0.6).input_per_mtok,
            MicroUsd(150_000),
            "no float truncation"
        );
        assert_eq!(usd(0.15, 0.6).output_per_mtok, MicroUsd(600_000));
        assert_eq!(usd(1.1, 4.4).output_per_mtok, MicroUsd(4_400_000));
        assert_eq!(t.price("gpt-4o"), (usd(2.5, 10.0), true));
        assert_eq!(t.price("gpt-4o-2024-08-06"), (usd(2.5, 10.0), true));
        assert_eq!(t.price("gpt-4o-2024-05-13"), (usd(5.0, 15.0), true));
        assert_eq!(t.price("gpt-4o-mini-2024-07-18"), (usd(0.15, 0.6), true));
        assert_eq!(t.price("gpt-4.1-nano"), (usd(0.1, 0.4), true));
        assert_eq!(t.price("o3-mini"), (usd(1.1, 4.4), true));
        assert_eq!(t.price("o3"), (usd(2.0, 8.0), true));
        assert_eq!(t.price("o4-mini"), (usd(1.1, 4.4), true));
        assert_eq!(t.price("text-embedding-3-small"), (usd(0.02, 0.0), true));
        assert_eq!(t.price("claude-opus-4-1-20250805"), (usd(15.0, 75.0), true));
        assert_eq!(t.price("claude-opus-4-5-20251101"), (usd(5.0, 25.0), true));
        assert_eq!(t.price("claude-sonnet-4-5"), (usd(3.0, 15.0), true));
        assert_eq!(t.price("claude-3-5-haiku-latest"), (usd(0.8, 4.0), true));
    }

    #[test]
    fn unknown_models_cost_the_most_expensive_built_in_price() {
        let t = PriceTable::new(&[], None);
        let (p, known) = t.price("some-new-model");
        assert!(!known);
        assert_eq!(p, usd(20.0, 80.0));
        for (pattern, built_in) in BUILT_IN {
            assert!(p.input_per_mtok >= built_in.input_per_mtok, "{pattern}");
            assert!(p.output_per_mtok >= built_in.output_per_mtok, "{pattern}");
        }
        let t = PriceTable::new(&[], Some(usd(1.0, 2.0)));
        assert_eq!(t.price("some-new-model"), (usd(1.0, 2.0), false));
    }

    #[test]
    fn configured_prices_win_over_built_in_ones() {
        let overrides = [
            entry("gpt-4o*", usd(1.0, 1.0)),
            entry("llama-3*", usd(0.0, 0.0)),
        ];
        let t = PriceTable::new(&overrides, None);
        // The configured `gpt-4o*` beats the more specific built-in
        // `gpt-4o-mini*`: the operator said so.
        assert_eq!(t.price("gpt-4o-mini"), (usd(1.0, 1.0), true));
        assert_eq!(t.price("llama-3.1-70b"), (usd(0.0, 0.0), true));
        assert_eq!(t.price("claude-3-haiku"), (usd(0.25, 1.25), true));
    }

    #[test]
    fn cost_is_integer_and_rounds_up() {
        let t = PriceTable::new(&[], None);
        // 1000 × $2.50/M + 500 × $10/M = $0.0025 + $0.005.
        assert_eq!(t.cost("gpt-4o", 1000, 500), MicroUsd(7500));
        // 1 token of $0.15/M is 0.15 µ$: charged 1.
        assert_eq!(t.cost("gpt-4o-mini", 1, 0), MicroUsd(1));
        assert_eq!(t.cost("gpt-4o-mini", 0, 0), MicroUsd(0));
        // 3 × 0.15 + 1 × 0.6 = 1.05 µ$ → 2.
        assert_eq!(t.cost("gpt-4o-mini", 3, 1), MicroUsd(2));
        assert_eq!(t.cost("gpt-4o", u64::MAX, u64::MAX), MicroUsd(i64::MAX));
        assert_eq!(
            t.estimate("claude-sonnet-4-5", 1_000_000, Some(1_000_000)),
            MicroUsd(18_000_000)
        );
        assert_eq!(
            t.estimate("claude-sonnet-4-5", 1_000_000, None),
            MicroUsd(3_000_000)
        );
        assert_eq!(MicroUsd(18_000_001).to_string(), "$18.000001");
        assert_eq!(MicroUsd(-5).to_string(), "-$0.000005");
    }

    #[test]
    fn price_entries_deserialize_flat_and_are_checked() {
        let e: PriceEntry = serde_json::from_str(
            r#"{"pattern":"my-model","input_per_mtok":2500000,"output_per_mtok":10000000}"#,
        )
        .unwrap();
        assert_eq!(e.price(), usd(2.5, 10.0));
        let bad = [entry(
            "x",
            ModelPrice {
                input_per_mtok: MicroUsd(-1),
                output_per_mtok: MicroUsd(0),
            },
        )];
        assert_eq!(
            PriceTable::check_entries(&bad).unwrap_err(),
            "gateway.prices[0] `x`: prices must not be negative"
        );
        let bad = [entry("*x*", usd(1.0, 1.0))];
        assert!(
            PriceTable::check_entries(&bad)
                .unwrap_err()
                .contains("only as its last character")
        );
    }
}
