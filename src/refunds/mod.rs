//! Refunds that happen once or not at all: the rules (`rules`), and later the requests,
//! approvals, submission and follow-up built on them.

pub mod rules;
