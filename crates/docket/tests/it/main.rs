//! End-to-end tests of the `docket` binary: a real server process, a real
//! SQLite file, tampering, crashes, receipts and queries from the CLI.

mod bad_input;
mod cli;
mod connections;
mod crash;
mod evidence;
mod gateway;
mod hostile;
mod identity;
mod outage;
mod support;
mod tamper;
mod write_boundary;
