//! `docket query`: the API's entry filters from the command line, as a
//! table or `--json`.

use std::process::ExitCode;

use comfy_table::{Table, presets::UTF8_BORDERS_ONLY};
use serde_json::Value;

use crate::ServerArgs;
use crate::client::{Client, enc};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    server: ServerArgs,
    /// Earliest time, inclusive (RFC 3339).
    #[arg(long)]
    from: Option<String>,
    /// Latest time, exclusive (RFC 3339).
    #[arg(long)]
    to: Option<String>,
    /// Entry types, comma-separated (e.g. receipt,decision).
    #[arg(long = "type")]
    kind: Option<String>,
    #[arg(long)]
    agent: Option<String>,
    #[arg(long)]
    human: Option<String>,
    #[arg(long)]
    project: Option<String>,
    #[arg(long)]
    tool: Option<String>,
    #[arg(long)]
    provider: Option<String>,
    #[arg(long)]
    model: Option<String>,
    #[arg(long)]
    outcome: Option<String>,
    #[arg(long)]
    data_class: Option<String>,
    /// Weekdays of the window, e.g. mon-fri.
    #[arg(long)]
    days: Option<String>,
    /// Hours of the window, e.g. 08:00-18:00.
    #[arg(long)]
    hours: Option<String>,
    /// Select times outside the window instead of inside.
    #[arg(long)]
    outside: bool,
    /// UTC offset the window is in, e.g. +02:00.
    #[arg(long)]
    tz: Option<String>,
    /// asc or desc (newest first, the default).
    #[arg(long)]
    order: Option<String>,
    #[arg(long)]
    limit: Option<u32>,
    /// Continue from a previous page's cursor.
    #[arg(long)]
    cursor: Option<String>,
    /// Also count every match.
    #[arg(long)]
    count: bool,
    /// Print the API's JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut params: Vec<(&str, String)> = Vec::new();
    for (name, value) in [
        ("from", &args.from),
        ("to", &args.to),
        ("type", &args.kind),
        ("agent", &args.agent),
        ("human", &args.human),
        ("project", &args.project),
        ("tool", &args.tool),
        ("provider", &args.provider),
        ("model", &args.model),
        ("outcome", &args.outcome),
        ("data_class", &args.data_class),
        ("days", &args.days),
        ("hours", &args.hours),
        ("tz", &args.tz),
        ("order", &args.order),
        ("cursor", &args.cursor),
    ] {
        if let Some(v) = value {
            params.push((name, v.clone()));
        }
    }
    if args.outside {
        params.push(("outside", "true".into()));
    }
    if args.count {
        params.push(("count", "true".into()));
    }
    if let Some(l) = args.limit {
        params.push(("limit", l.to_string()));
    }
    let qs: Vec<String> = params
        .iter()
        .map(|(k, v)| format!("{k}={}", enc(v)))
        .collect();
    let client = Client::new(&args.server)?;
    let page: Value = client.get(&format!("/api/v1/entries?{}", qs.join("&")))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&page)?);
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = Table::new();
    table.load_preset(UTF8_BORDERS_ONLY);
    table.set_header([
        "seq",
        "ts",
        "type",
        "agent",
        "human",
        "project",
        "outcome",
        "data classes",
    ]);
    let empty = Vec::new();
    for item in page["entries"].as_array().unwrap_or(&empty) {
        let e = &item["entry"];
        let b = &e["body"];
        let s = |v: &Value| v.as_str().unwrap_or("").to_owned();
        let classes = b["data_classes"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default();
        table.add_row([
            item["seq"].to_string(),
            s(&e["ts"]),
            s(&e["type"]),
            s(&b["agent"]),
            s(&b["human"]),
            s(&b["project"]),
            s(&b["outcome"]),
            classes,
        ]);
    }
    println!("{table}");
    if let Some(n) = page["count"].as_u64() {
        println!("{n} matching entries");
    }
    if let Some(c) = page["next_cursor"].as_str() {
        println!("more: --cursor {c}");
    }
    Ok(ExitCode::SUCCESS)
}
