//! End-to-end tests of the `docket` binary: a real server process, a real
//! SQLite file, tampering, crashes, receipts and queries from the CLI.

mod cli;
mod crash;
mod evidence;
mod gateway;
mod hostile;
mod identity;
mod support;
mod tamper;
mod write_boundary;
