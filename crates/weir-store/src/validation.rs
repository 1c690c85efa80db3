//! The seam through which appends to a stream category are checked
//! against registered schemas (issue 21's validation on write, opted into
//! per category). The store only asks; which categories are checked, what
//! subject an event's type maps to and whether its data matches are the
//! schema registry's business, behind [`EventValidator`], which
//! `weir serve` (and the SDK, embedded) installs with
//! [`crate::EmbeddedStore::set_event_validator`].

use crate::NewEvent;

/// Checks an append's events before anything is written.
pub trait EventValidator: Send + Sync + std::fmt::Debug {
    /// Checks `event`, to be appended to `stream`. `Err` says why it is
    /// refused, for the caller; the whole append is then refused.
    fn check(&self, stream: &str, event: &NewEvent) -> Result<(), String>;
}
