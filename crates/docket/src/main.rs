//! The `docket` command: argument parsing and wiring over the library crates.

mod client;
mod evidence;
mod governance;
mod identity;
mod query;
mod receipt;
mod serve;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

// The server allocates per request (JSON parse, canonical body, response);
// mimalloc halves the allocator's share of CPU against glibc's malloc.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "docket",
    version,
    about = "Governance layer and tamper-evident audit ledger for AI agents"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where a running server is, for the commands that talk to one.
#[derive(clap::Args, Clone, Debug)]
pub struct ServerArgs {
    /// Base URL of the Docket server.
    #[arg(long, env = "DOCKET_SERVER", default_value = "http://127.0.0.1:7373")]
    pub server: String,
    /// Bearer token: a personal or agent token (or, for `docket bootstrap`
    /// only, the token printed on first start).
    #[arg(long, env = "DOCKET_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (creates the data directory, key and bootstrap token on first start).
    Serve(serve::Args),
    /// Re-check a whole log — a data directory or a running server — against its public key.
    Verify(verify::Args),
    /// Evidence packs: export a window for the auditor, sample it.
    #[command(subcommand)]
    Evidence(evidence::Command),
    /// Get or verify self-standing receipts.
    #[command(subcommand)]
    Receipt(receipt::Command),
    /// Create the first admin with the token printed on first start.
    Bootstrap(identity::BootstrapArgs),
    /// Exchange a user's password for a personal token.
    Login(identity::LoginArgs),
    /// Humans: roles, KYC, personal tokens.
    #[command(subcommand)]
    Users(identity::Users),
    /// Projects: members and access rules.
    #[command(subcommand)]
    Projects(identity::Projects),
    /// Agents: registration requests and approvals, suspension, retirement.
    #[command(subcommand)]
    Agents(identity::Agents),
    /// Agent API keys and session keys: issue, rotate, revoke.
    #[command(subcommand)]
    Credentials(identity::Credentials),
    /// Access reviews: list every agent's access, keep or revoke each.
    #[command(subcommand)]
    AccessReview(identity::AccessReview),
    /// Change requests of every kind (agents, project rules, policy): list, decide, request.
    #[command(subcommand)]
    Changes(governance::Changes),
    /// Cedar policy versions: show, submit for approval, roll back.
    #[command(subcommand)]
    Policy(governance::Policy),
    /// Kill switches: stop every agent, a project's or one agent at once.
    #[command(subcommand)]
    Kill(governance::Kill),
    /// Budgets (USD) and rate limits of projects, agents and credentials.
    #[command(subcommand)]
    Limits(governance::Limits),
    /// Actions policy held for a human: list, show, approve, deny.
    #[command(subcommand)]
    Approvals(governance::Approvals),
    /// Query entries on a running server (the API's filters).
    Query(Box<query::Args>),
}

pub fn read_key_arg(key: &str) -> anyhow::Result<String> {
    let path = PathBuf::from(key);
    if path.is_file() {
        Ok(std::fs::read_to_string(&path)?.trim().to_owned())
    } else {
        Ok(key.trim().to_owned())
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(a) => serve::run(a),
        Command::Verify(a) => verify::run(a),
        Command::Receipt(c) => receipt::run(c),
        Command::Evidence(c) => evidence::run(c),
        Command::Query(a) => query::run(*a),
        Command::Bootstrap(a) => identity::bootstrap(a),
        Command::Login(a) => identity::login(a),
        Command::Users(c) => identity::users(c),
        Command::Projects(c) => identity::projects(c),
        Command::Agents(c) => identity::agents(c),
        Command::Credentials(c) => identity::credentials(c),
        Command::AccessReview(c) => identity::access_review(c),
        Command::Changes(c) => governance::changes(c),
        Command::Policy(c) => governance::policy(c),
        Command::Kill(c) => governance::kill(c),
        Command::Limits(c) => governance::limits(c),
        Command::Approvals(c) => governance::approvals(c),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
