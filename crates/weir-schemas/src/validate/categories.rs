//! Which stream categories have validation on write: Weir's own setting,
//! kept on the registry's log beside its subjects (so it is as durable as
//! the schemas it points at, and a restart keeps it), turned on and off
//! through the HTTP API and the CLI.

use crate::error::SchemaError;
use crate::registry::Registry;
use crate::store::Record;

/// Most categories with validation on.
pub const CATEGORIES_MAX: usize = 10_000;

impl Registry {
    /// Turns validation of appends to stream category `category` on or
    /// off. A category is a stream id's part before its first `-`, so it
    /// has no `-` itself. Setting what is already set writes nothing.
    pub fn set_category_validation(
        &self,
        category: &str,
        enabled: bool,
    ) -> Result<(), SchemaError> {
        if category.is_empty()
            || category.contains('-')
            || category.starts_with('$')
            || category.len() > self.limits.subject_bytes_max
            || category.chars().any(char::is_control)
        {
            return Err(SchemaError::InvalidSubject(format!(
                "'{category}' is not a stream category (a stream id's part before its first '-')"
            )));
        }
        // The state's lock serializes the registry's writes.
        let mut state = self.lock();
        let count = {
            let set = self.categories.read().unwrap_or_else(|e| e.into_inner());
            if set.contains(category) == enabled {
                return Ok(());
            }
            set.len()
        };
        if enabled && count >= CATEGORIES_MAX {
            return Err(SchemaError::OperationNotPermitted(format!(
                "validation is on for {CATEGORIES_MAX} categories already"
            )));
        }
        let record = Record::CategoryValidation {
            category: category.to_owned(),
            enabled,
        };
        self.write(&mut state, record)
    }

    /// The categories with validation on, sorted.
    pub fn validated_categories(&self) -> Vec<String> {
        let set = self.categories.read().unwrap_or_else(|e| e.into_inner());
        set.iter().cloned().collect()
    }

    /// Whether appends to `category` are validated (read on every append).
    pub fn is_category_validated(&self, category: &str) -> bool {
        let set = self.categories.read().unwrap_or_else(|e| e.into_inner());
        set.contains(category)
    }
}
