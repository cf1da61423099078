//! Training examples: (tokens, targets, loss mask), one sequence each.

/// One training sequence: tokens: [n], targets: [n] (the next token), mask: [n].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Example {
    pub tokens: Vec<u32>,
    pub targets: Vec<u32>,
    pub mask: Vec<bool>,
}

