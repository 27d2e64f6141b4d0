//! The server's integration tests: a real server on a real socket (port 0)
//! over a real SQLite file in a temporary data directory.

mod api;
mod errors;
mod postgres;
mod support;
