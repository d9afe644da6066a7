//! Integration tests: the whole application on a real database (SQLite, or PostgreSQL when
//! TEST_DATABASE_URL is set), through HTTP with Rocket's local client and, where a process
//! boundary matters, through the real `paydesk` binary.

#[path = "../common/mod.rs"]
mod common;

mod access;
mod admin_services;
mod admin_staff;
mod agreements;
mod api;
mod audit;
mod audit_view;
mod bulk;
mod bulk_api;
mod bulk_input;
mod bulk_pages;
mod contract;
mod dashboard;
mod demo;
mod disputes;
mod events;
mod exports;
mod house;
mod identity;
mod jobs;
mod mail;
mod personal_data;
mod personal_data_pages;
mod personal_data_reach;
mod platform;
mod process;
mod refund_list;
mod refund_pages;
mod refunds;
mod search;
mod search_download;
mod sso;
mod trust_access;
mod trust_addresses;
mod trust_audit;
mod trust_misc;
mod web;
