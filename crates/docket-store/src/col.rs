//! The indexed attributes as the store's posting columns: what the
//! backends write for each entry (`IndexRow::postings`) and what the query
//! builder looks up. Its own file so that both import it and neither
//! imports the other for it.

/// Which attribute a posting is for; stored as a small integer.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(i16)]
pub enum Col {
    Type = 0,
    Agent = 1,
    Human = 2,
    Project = 3,
    Tool = 4,
    Provider = 5,
    Model = 6,
    Outcome = 7,
    DataClass = 8,
}

impl Col {
    /// The columns of [`docket_core::index::ATTRIBUTES`], in that order.
    pub const ATTRIBUTES: [Col; 7] = [
        Col::Agent,
        Col::Human,
        Col::Project,
        Col::Tool,
        Col::Provider,
        Col::Model,
        Col::Outcome,
    ];
}
