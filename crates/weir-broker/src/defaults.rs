//! Broker-level defaults of topic configs set live (Kafka's dynamic broker
//! configs such as `log.retention.ms`, for this node or cluster-wide),
//! persisted in the data directory's `.broker-configs` file so they
//! survive restarts as Kafka's do in its metadata log.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use weir_log::DataDir;

use crate::config::{TopicDefaults, validate_default};
use crate::error::BrokerError;

/// Which level a live default is set at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultsScope {
    /// This node (Kafka's broker resource named by the node id).
    Node,
    /// Every broker of the cluster (the broker resource with the empty
    /// name).
    Cluster,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Saved {
    version: u32,
    /// By topic config name.
    node: BTreeMap<String, String>,
    cluster: BTreeMap<String, String>,
}

/// Reads the saved defaults, checking each (an empty set if there is no
/// file).
pub(crate) fn load(dir: &DataDir, file: &str) -> Result<TopicDefaults, BrokerError> {
    let Some(bytes) = dir.read_meta(file)? else {
        return Ok(TopicDefaults::default());
    };
    let saved: Saved = serde_json::from_slice(&bytes).map_err(|e| BrokerError::Registry {
        reason: format!("{file}: {e}"),
    })?;
    let check = |map: BTreeMap<String, String>| -> Result<BTreeMap<String, String>, BrokerError> {
        map.into_iter()
            .map(|(k, v)| validate_default(&k, &v).map(|v| (k, v)))
            .collect()
    };
    Ok(TopicDefaults {
        node: check(saved.node)?,
        cluster: check(saved.cluster)?,
    })
}

pub(crate) fn save(dir: &DataDir, file: &str, defaults: &TopicDefaults) -> Result<(), BrokerError> {
    let saved = Saved {
        version: 1,
        node: defaults.node.clone(),
        cluster: defaults.cluster.clone(),
    };
    let bytes = serde_json::to_vec_pretty(&saved).map_err(|e| BrokerError::Registry {
        reason: e.to_string(),
    })?;
    dir.write_meta(file, &bytes)?;
    Ok(())
}

/// Applies changes (by topic config name; `None` removes) to one scope of
/// `defaults`, checking each value.
pub(crate) fn apply(
    defaults: &TopicDefaults,
    scope: DefaultsScope,
    changes: &[(&str, Option<&str>)],
) -> Result<TopicDefaults, BrokerError> {
    let mut next = defaults.clone();
    let map = match scope {
        DefaultsScope::Node => &mut next.node,
        DefaultsScope::Cluster => &mut next.cluster,
    };
    for (key, value) in changes {
        match value {
            Some(v) => {
                map.insert((*key).to_owned(), validate_default(key, v)?);
            }
            None => {
                validate_default(
                    key,
                    crate::config_defs::topic_config_def(key).map_or("", |d| d.default),
                )?;
                map.remove(*key);
            }
        }
    }
    Ok(next)
}
