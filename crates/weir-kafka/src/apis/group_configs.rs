//! Group configs (config resource type GROUP, 32, as KIP-848 and KIP-932
//! added them): `share.auto.offset.reset`, where a share group starts on
//! a partition it has no state for yet (`latest`, Kafka's default, or
//! `earliest`), set with IncrementalAlterConfigs and read with
//! DescribeConfigs. Kept in memory: once a share group has fetched from a
//! partition its start is in the queue journal, so after a restart the
//! setting only matters for partitions the group never fetched from (they
//! then start as the server's default says).

use std::collections::HashMap;
use std::sync::Mutex;

use kafka_protocol::messages::describe_configs_response::DescribeConfigsResourceResult;

use super::broker_configs as bc;
use super::str_bytes;
use crate::codes::Code;

pub(crate) const RESOURCE_GROUP: i8 = 32;
pub(crate) const SHARE_AUTO_OFFSET_RESET: &str = "share.auto.offset.reset";
/// Kafka's ConfigSource DYNAMIC_GROUP_CONFIG.
const SOURCE_DYNAMIC_GROUP: i8 = 8;
/// Groups with a config set, at most.
const GROUPS_MAX: usize = 10_000;
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;

/// Every group's configs that were set.
#[derive(Debug, Default)]
pub(crate) struct GroupConfigs {
    /// Group to whether it starts at the log start.
    earliest: Mutex<HashMap<String, bool>>,
}

impl GroupConfigs {
    /// Whether `group` starts at the log start, if it was set.
    pub fn start_earliest(&self, group: &str) -> Option<bool> {
        self.earliest
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(group)
            .copied()
    }

    /// Applies `(name, op, value)` changes to `group` (all or none).
    pub fn alter(
        &self,
        group: &str,
        changes: &[(String, i8, Option<String>)],
        validate_only: bool,
    ) -> Result<(), (Code, String)> {
        if group.is_empty() {
            return Err((Code::InvalidGroupId, "group id must not be empty".into()));
        }
        let mut next = self.start_earliest(group);
        for (name, op, value) in changes {
            if name != SHARE_AUTO_OFFSET_RESET {
                return Err((
                    Code::InvalidConfig,
                    format!("unknown group config {name:?} (Weir has {SHARE_AUTO_OFFSET_RESET})"),
                ));
            }
            next = match (*op, value.as_deref()) {
                (OP_SET, Some("earliest")) => Some(true),
                (OP_SET, Some("latest")) => Some(false),
                (OP_SET, v) => {
                    return Err((
                        Code::InvalidConfig,
                        format!("{name} must be earliest or latest, not {v:?}"),
                    ));
                }
                (OP_DELETE, _) => None,
                (op, _) => {
                    return Err((
                        Code::InvalidConfig,
                        format!("operation {op} does not apply to {name}"),
                    ));
                }
            };
        }
        if validate_only {
            return Ok(());
        }
        let mut map = self.earliest.lock().unwrap_or_else(|e| e.into_inner());
        match next {
            Some(v) => {
                if !map.contains_key(group) && map.len() >= GROUPS_MAX {
                    return Err((
                        Code::PolicyViolation,
                        format!("configs of at most {GROUPS_MAX} groups are kept"),
                    ));
                }
                map.insert(group.to_owned(), v);
            }
            None => {
                map.remove(group);
            }
        }
        Ok(())
    }

    /// The group's configs as DescribeConfigs gives them; `default_earliest`
    /// is the server's default.
    pub fn describe(
        &self,
        group: &str,
        default_earliest: bool,
        wanted: impl Fn(&str) -> bool,
    ) -> Vec<DescribeConfigsResourceResult> {
        if !wanted(SHARE_AUTO_OFFSET_RESET) {
            return Vec::new();
        }
        let set = self.start_earliest(group);
        let earliest = set.unwrap_or(default_earliest);
        vec![
            DescribeConfigsResourceResult::default()
                .with_name(str_bytes(SHARE_AUTO_OFFSET_RESET))
                .with_value(Some(str_bytes(if earliest {
                    "earliest"
                } else {
                    "latest"
                })))
                .with_config_source(if set.is_some() {
                    SOURCE_DYNAMIC_GROUP
                } else {
                    bc::SOURCE_DEFAULT
                })
                .with_config_type(bc::TYPE_STRING)
                .with_read_only(false)
                .with_is_sensitive(false),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(v: &str) -> Vec<(String, i8, Option<String>)> {
        vec![(
            SHARE_AUTO_OFFSET_RESET.to_owned(),
            OP_SET,
            Some(v.to_owned()),
        )]
    }

    #[test]
    fn share_auto_offset_reset_is_set_checked_and_deleted() {
        let c = GroupConfigs::default();
        assert_eq!(c.start_earliest("g"), None);
        c.alter("g", &set("earliest"), true).unwrap();
        assert_eq!(c.start_earliest("g"), None, "validate only");
        c.alter("g", &set("earliest"), false).unwrap();
        assert_eq!(c.start_earliest("g"), Some(true));
        let err = c.alter("g", &set("by_duration:PT1H"), false).unwrap_err();
        assert_eq!(err.0, Code::InvalidConfig);
        let other = vec![("share.isolation.level".to_owned(), OP_SET, None)];
        assert_eq!(
            c.alter("g", &other, false).unwrap_err().0,
            Code::InvalidConfig
        );
        assert_eq!(c.start_earliest("g"), Some(true));
        let delete = vec![(SHARE_AUTO_OFFSET_RESET.to_owned(), OP_DELETE, None)];
        c.alter("g", &delete, false).unwrap();
        assert_eq!(c.start_earliest("g"), None);
        let d = c.describe("g", false, |_| true);
        assert_eq!(d[0].value.as_deref(), Some("latest"));
        assert_eq!(d[0].config_source, bc::SOURCE_DEFAULT);
    }
}
