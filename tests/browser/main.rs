//! Browser tests: real headless Chromium driven through chromedriver, with axe-core checking
//! every page against WCAG 2.2 A/AA. Without Chromium or axe-core installed these tests are
//! skipped with a message, except under CI=true, where a missing browser is a failure.

#[path = "../common/mod.rs"]
mod common;

mod agreements;
mod bulk;
mod harness;
mod pages;
mod personal_data;
