//! Demonstrations written only against the SDK's public API, shipped in
//! the library so that `weir demo …`, the examples and the tests run the
//! same code.

pub mod bank;
pub mod docs;
pub mod orders;
