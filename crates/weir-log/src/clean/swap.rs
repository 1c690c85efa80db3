//! Swapping a cleaned segment in, crash-safely, and finishing or undoing a
//! swap a crash interrupted.
//!
//! The cleaned copy of segment `B` is written as `B.log.cleaned`,
//! `B.index.cleaned` and `B.timeindex.cleaned`, all synced, and the
//! directory synced. Then, under the log's lock:
//!
//! 1. `B.log.cleaned` is renamed over `B.log`: the commit point (a rename
//!    is atomic: a crash leaves the old data or the new, never neither);
//! 2. `B.index.cleaned` and `B.timeindex.cleaned` are renamed over the
//!    indexes.
//!
//! On open, before any segment is read ([`recover`]): a `B.log.cleaned`
//! still there means the swap never committed, and every `B.*.cleaned` is
//! removed (the old segment is whole); index `.cleaned` files without a
//! `B.log.cleaned` mean step 1 happened, and they are renamed into place.
//! Either way the segment's data and indexes match, and since the cleaned
//! copy keeps every surviving record at its offset, both states hold every
//! record a reader may still be given.

use std::path::Path;

use super::rewrite::CLEANED_SUFFIX;
use crate::error::{LogError, Result};
use crate::segment::DATA_SUFFIX;
use crate::storage::Storage;

/// Renames the cleaned files of the segment whose files are `paths` (data,
/// offset index, time index) into place, data first.
pub(crate) fn swap_in(storage: &dyn Storage, paths: [&Path; 3]) -> Result<()> {
    for path in paths {
        let cleaned = cleaned_path(path);
        storage
            .rename(&cleaned, path)
            .map_err(LogError::io("rename", &cleaned))?;
    }
    Ok(())
}

/// Removes a cleaned copy that will not be swapped in (best effort: one
/// left behind is removed at the next open).
pub(crate) fn discard(storage: &dyn Storage, paths: [&Path; 3]) {
    for path in paths {
        let cleaned = cleaned_path(path);
        if storage.exists(&cleaned)
            && let Err(e) = storage.remove_file(&cleaned)
        {
            tracing::warn!(path = %cleaned.display(), %e, "could not remove a cleaned segment file");
        }
    }
}

fn cleaned_path(path: &Path) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(CLEANED_SUFFIX);
    name.into()
}

/// Finishes or undoes swaps a crash interrupted in the log directory `dir`
/// (see the module doc). Returns whether anything changed (the caller
/// syncs the directory).
pub(crate) fn recover(storage: &dyn Storage, dir: &Path, log_name: &str) -> Result<bool> {
    let names = storage.list_dir(dir).map_err(LogError::io("list", dir))?;
    let leftovers: Vec<&String> = names
        .iter()
        .filter(|n| n.ends_with(CLEANED_SUFFIX))
        .collect();
    for name in &leftovers {
        let stem = name.split('.').next().unwrap_or_default();
        let uncommitted = names.contains(&format!("{stem}{DATA_SUFFIX}{CLEANED_SUFFIX}"));
        let path = dir.join(name);
        if uncommitted {
            tracing::info!(log = log_name, file = %name, "removing a cleaned segment a crash left unswapped");
            storage
                .remove_file(&path)
                .map_err(LogError::io("remove", &path))?;
        } else {
            let target = dir.join(name.strip_suffix(CLEANED_SUFFIX).expect("filtered"));
            tracing::info!(log = log_name, file = %name, "finishing the swap of a cleaned segment");
            storage
                .rename(&path, &target)
                .map_err(LogError::io("rename", &path))?;
        }
    }
    Ok(!leftovers.is_empty())
}
