//! Integrity findings met while the server reads its own log: an entry
//! that does not read as its type, or breaks the write table. The server
//! reports them (an error log line and `docket_integrity_findings_total`)
//! and carries on without counting the entry: what was logged can never
//! keep Docket from starting. `docket verify` names the same entries.

/// Reports one finding of `fold` (the reader that met it) at `seq`.
pub fn finding(fold: &'static str, seq: u64, problem: &str) {
    tracing::error!(
        fold,
        seq,
        problem,
        "integrity finding: a logged entry is passed over (run `docket verify` for the whole list)"
    );
    metrics::counter!("docket_integrity_findings_total", "fold" => fold).increment(1);
}
