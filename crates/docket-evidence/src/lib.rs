//! Evidence packs: what an auditor takes away and checks without us.
//!
//! A pack is a zip of the entries of one audit window, the signed
//! checkpoint and range proof that show they are exactly what the log
//! holds there, and files derived from those entries alone (the registry,
//! the control mapping, the vendor rollup, the report, OSCAL). The
//! verifier re-derives every derived file from the entries and compares
//! bytes, so a pack cannot claim what its entries do not show.
//!
//! Built on `docket-core` and a zip reader only, so the verifier can be
//! handed to an auditor as a small standalone binary (`docket-verify`).

pub mod cli;
pub mod controls;
pub mod fold;
pub mod oscal;
pub mod pack;
pub mod report;
pub mod sample;
pub mod verify;

pub use controls::{ControlsReport, CriterionResult, Status, TestResult, VendorRollup, WindowInfo};
