//! The server's integration tests: a real server on a real socket (port 0)
//! over a real SQLite file in a temporary data directory.

mod api;
mod authz;
mod errors;
mod evidence;
mod identity;
mod postgres;
mod support;
mod writers;
