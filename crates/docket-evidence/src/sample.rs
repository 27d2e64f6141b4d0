//! A reproducible random sample of the entries that evidence one
//! criterion, each walked back to its receipt, agent and human, decision,
//! policy version and approval. The same pack, criterion, size and seed
//! always give the same sample.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Seek};

use docket_core::EntryType;

use crate::fold::Line;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use zip::ZipArchive;

use crate::pack::{ENTRIES, REGISTRY};

/// One sampled entry and what it leads back to.
#[derive(Clone, Debug, Serialize)]
pub struct SampleItem {
    pub seq: u64,
    #[serde(rename = "type")]
    pub kind: String,
    pub ts: String,
    pub entry: Value,
    /// The receipt of the action (the entry itself, or the one naming this decision).
    pub receipt: Option<Value>,
    pub decision: Option<Value>,
    /// The policy version the decision was made under.
    pub policy: Option<Value>,
    pub approvals: Vec<Value>,
    pub agent: Option<Value>,
    pub human: Option<Value>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Sample {
    pub criterion: String,
    pub seed: String,
    /// Entries of the criterion's source types in the window.
    pub population: u64,
    pub items: Vec<SampleItem>,
}

fn each_entry<R: Read + Seek>(
    zip: &mut ZipArchive<R>,
    mut f: impl FnMut(Line<'_>),
) -> Result<(), String> {
    let file = zip
        .by_name(ENTRIES)
        .map_err(|e| format!("{ENTRIES}: {e}"))?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader
            .read_until(b'\n', &mut line)
            .map_err(|e| e.to_string())?
            == 0
        {
            return Ok(());
        }
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        if text.starts_with(b"{\"leaf\":") {
            continue;
        }
        f(Line::parse(text)?);
    }
}

/// An entry of the sample, owned.
struct Sampled {
    seq: u64,
    ts: docket_core::Timestamp,
    kind: EntryType,
    body: Value,
}

fn summary(e: &Sampled) -> Value {
    json!({"seq": e.seq, "ts": e.ts, "type": e.kind.as_str(), "body": e.body})
}

fn owned(e: &Line<'_>, body: Value) -> Sampled {
    Sampled {
        seq: e.seq,
        ts: e.ts,
        kind: e.kind,
        body,
    }
}

/// Draws `n` entries evidencing `criterion` from a pack (which the caller
/// has verified), seeded by `seed`.
pub fn sample<R: Read + Seek>(
    input: R,
    criterion: &str,
    n: usize,
    seed: &str,
) -> Result<Sample, String> {
    let def = crate::controls::criterion(criterion).ok_or_else(|| {
        let known: Vec<&str> = crate::controls::CRITERIA.iter().map(|c| c.id).collect();
        format!(
            "unknown criterion {criterion:?}; known: {}",
            known.join(", ")
        )
    })?;
    if def.sources.is_empty() {
        return Err(format!(
            "{} has no entries to sample: no source yet",
            def.id
        ));
    }
    let mut zip = ZipArchive::new(input).map_err(|e| format!("not a zip archive: {e}"))?;
    // Pass 1: the population.
    let mut population = Vec::new();
    each_entry(&mut zip, |e| {
        if def.sources.contains(&e.kind) {
            population.push(e.seq);
        }
    })?;
    let mut rng = ChaCha20Rng::from_seed(Sha256::digest(seed.as_bytes()).into());
    let mut picked: Vec<u64> =
        rand::seq::index::sample(&mut rng, population.len(), n.min(population.len()))
            .into_iter()
            .map(|i| population[i])
            .collect();
    picked.sort_unstable();
    let wanted: BTreeSet<u64> = picked.iter().copied().collect();
    // Pass 2: the sampled entries, and receipts naming sampled decisions.
    let mut sampled: BTreeMap<u64, Sampled> = BTreeMap::new();
    let mut receipt_of: BTreeMap<u64, Value> = BTreeMap::new();
    each_entry(&mut zip, |e| {
        let e = owned(&e, e.value());
        if e.kind == EntryType::Receipt
            && let Some(d) = e.body.get("decision").and_then(Value::as_u64)
            && wanted.contains(&d)
        {
            receipt_of.insert(d, summary(&e));
        }
        if wanted.contains(&e.seq) {
            sampled.insert(e.seq, e);
        }
    })?;
    // Pass 3: the decisions, approvals and policy activations they name.
    let mut decision_seqs = BTreeSet::new();
    let mut approval_ids = BTreeSet::new();
    for e in sampled.values() {
        if e.kind == EntryType::Receipt
            && let Some(d) = e.body.get("decision").and_then(Value::as_u64)
        {
            decision_seqs.insert(d);
        }
        if let Some(a) = e.body.get("approval").and_then(Value::as_u64) {
            approval_ids.insert(a);
        }
    }
    let mut decisions: BTreeMap<u64, (Value, Value)> = BTreeMap::new();
    let mut approvals: BTreeMap<u64, Vec<Value>> = BTreeMap::new();
    let mut policies: BTreeMap<u64, Value> = BTreeMap::new();
    each_entry(&mut zip, |e| {
        let e = owned(&e, e.value());
        let body = &e.body;
        if decision_seqs.contains(&e.seq) {
            if let Some(a) = body.get("approval").and_then(Value::as_u64) {
                approval_ids.insert(a);
            }
            decisions.insert(e.seq, (summary(&e), body.clone()));
        }
        // An approval's id is the `seq` of its `approval.requested` entry;
        // the decision and the use name it.
        if e.kind == EntryType::ApprovalRequested && approval_ids.contains(&e.seq) {
            approvals.entry(e.seq).or_default().push(summary(&e));
        }
        if matches!(e.kind, EntryType::ApprovalDecided | EntryType::ApprovalUsed)
            && let Some(a) = body.get("approval").and_then(Value::as_u64)
        {
            approvals.entry(a).or_default().push(summary(&e));
        }
        if e.kind == EntryType::PolicyActivated
            && let Some(v) = body.get("version").and_then(Value::as_u64)
        {
            policies.insert(v, summary(&e));
        }
    })?;
    let registry: Value = {
        let mut f = zip
            .by_name(REGISTRY)
            .map_err(|e| format!("{REGISTRY}: {e}"))?;
        let mut s = Vec::new();
        f.read_to_end(&mut s).map_err(|e| e.to_string())?;
        serde_json::from_slice(&s).map_err(|e| format!("{REGISTRY}: {e}"))?
    };
    let find = |list: &str, id: &str| -> Option<Value> {
        registry
            .get(list)?
            .as_array()?
            .iter()
            .find(|x| x.get("id").and_then(Value::as_str) == Some(id))
            .cloned()
    };
    let mut items = Vec::new();
    for seq in picked {
        let Some(e) = sampled.get(&seq) else {
            continue;
        };
        let body = &e.body;
        let (receipt, decision_body, decision) = match e.kind {
            EntryType::Receipt => {
                let d = body
                    .get("decision")
                    .and_then(Value::as_u64)
                    .and_then(|d| decisions.get(&d));
                (
                    Some(summary(e)),
                    d.map(|(_, b)| b.clone()),
                    d.map(|(s, _)| s.clone()),
                )
            }
            EntryType::Decision => (
                receipt_of.get(&seq).cloned(),
                Some(body.clone()),
                Some(summary(e)),
            ),
            _ => (None, None, None),
        };
        let approval = body
            .get("approval")
            .or(decision_body.as_ref().and_then(|d| d.get("approval")))
            .and_then(Value::as_u64);
        let policy = decision_body
            .as_ref()
            .and_then(|d| d.get("policy"))
            .map(|p| {
                let activated = p
                    .get("version")
                    .and_then(Value::as_u64)
                    .and_then(|v| policies.get(&v).cloned());
                json!({"version": p.get("version"), "sha256": p.get("sha256"),
                       "determining": p.get("determining"), "activated_in_window": activated})
            });
        let agent = body
            .get("agent")
            .and_then(Value::as_str)
            .and_then(|a| find("agents", a));
        let human_id = body.get("human").and_then(Value::as_str).or(body
            .get("actor")
            .and_then(|a| a.get("user"))
            .and_then(Value::as_str));
        let human = human_id.map(|h| {
            find("users", h).unwrap_or_else(|| json!({"id": h, "note": "not in the registry"}))
        });
        items.push(SampleItem {
            seq,
            kind: e.kind.as_str().to_owned(),
            ts: e.ts.to_string(),
            entry: body.clone(),
            receipt,
            decision,
            policy,
            approvals: approval
                .and_then(|a| approvals.get(&a).cloned())
                .unwrap_or_default(),
            agent,
            human,
        });
    }
    Ok(Sample {
        criterion: def.id.to_owned(),
        seed: seed.to_owned(),
        population: population.len() as u64,
        items,
    })
}
