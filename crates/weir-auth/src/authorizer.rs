//! The authorizer: whether a principal may do an operation on a resource,
//! by Kafka's rules (super users may do anything; a matching deny wins
//! over any allow; reading, writing, deleting or altering a resource
//! implies describing it; a resource with no ACLs at all is refused unless
//! `allow_if_no_acl`), over ACLs kept durable in the data directory and
//! changed while the server runs. Every check reads an immutable index
//! behind an `Arc`, so a change is seen by the next request of every
//! connection and checks never wait for a writer.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use crate::Principal;
use crate::acl::{
    AccessEntry, AclBinding, AclError, AclFilter, Operation, PatternType, Permission,
    ResourcePattern, ResourceType, WILDCARD,
};
use crate::file;

/// The file the ACLs are kept in, in the data directory.
pub const ACLS_FILE: &str = ".acls.json";

/// Largest ACL file read at start.
const ACLS_FILE_BYTES_MAX: u64 = 64 * 1024 * 1024;

/// The log target of the audit lines (denials and ACL changes), so an
/// operator can route them apart from the rest.
pub const AUDIT_TARGET: &str = "weir::audit";

/// How the authorizer decides where the ACLs do not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizerConfig {
    /// Principals allowed everything (Kafka's `super.users`).
    pub super_users: Vec<Principal>,
    /// Allow an operation on a resource no ACL names at all (Kafka's
    /// `allow.everyone.if.no.acl.found`; off by default, as there).
    pub allow_if_no_acl: bool,
    /// Most ACLs kept; creating more is refused.
    pub acls_max: usize,
}

impl Default for AuthorizerConfig {
    fn default() -> Self {
        Self {
            super_users: Vec::new(),
            allow_if_no_acl: false,
            acls_max: 100_000,
        }
    }
}

/// Why the ACLs could not be read or changed.
#[derive(Debug, thiserror::Error)]
pub enum AuthorizerError {
    #[error("authorization is not enabled on this server")]
    Disabled,
    #[error("reading or writing {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a valid ACL file: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("{count} ACLs would pass the limit of {max}")]
    TooMany { count: usize, max: usize },
    #[error(transparent)]
    Invalid(#[from] AclError),
}

/// The authorizer of a server. [`Authorizer::disabled`] allows everything
/// (a server with no authorization configured, as Kafka without
/// `authorizer.class.name`).
#[derive(Debug)]
pub struct Authorizer {
    /// `None` when authorization is off.
    enabled: Option<Enabled>,
}

#[derive(Debug)]
struct Enabled {
    config: AuthorizerConfig,
    index: RwLock<Arc<AclIndex>>,
    /// Where the ACLs are kept (`None`: in memory only, for tests).
    path: Option<PathBuf>,
    /// Serializes changes: each one writes the whole file.
    changing: Mutex<()>,
}

impl Authorizer {
    /// Allows everything; ACL calls answer [`AuthorizerError::Disabled`].
    pub fn disabled() -> Self {
        Self { enabled: None }
    }

    /// Enabled, with the ACLs kept in `dir` (read now if present).
    pub fn open(dir: &Path, config: AuthorizerConfig) -> Result<Self, AuthorizerError> {
        let path = dir.join(ACLS_FILE);
        let bindings = match file::read(&path, ACLS_FILE_BYTES_MAX) {
            Ok(None) => BTreeSet::new(),
            Ok(Some(bytes)) => decode(&bytes).map_err(|reason| AuthorizerError::Corrupt {
                path: path.clone(),
                reason,
            })?,
            Err(source) => return Err(AuthorizerError::Io { path, source }),
        };
        Ok(Self::with(config, bindings, Some(path)))
    }

    /// Enabled, with ACLs kept in memory only.
    pub fn in_memory(config: AuthorizerConfig) -> Self {
        Self::with(config, BTreeSet::new(), None)
    }

    fn with(
        config: AuthorizerConfig,
        bindings: BTreeSet<AclBinding>,
        path: Option<PathBuf>,
    ) -> Self {
        Self {
            enabled: Some(Enabled {
                config,
                index: RwLock::new(Arc::new(AclIndex::new(bindings))),
                path,
                changing: Mutex::new(()),
            }),
        }
    }

    pub fn is_enabled(&self) -> bool {
        self.enabled.is_some()
    }

    /// Whether `who`, connected from `host`, may do `operation` on the
    /// resource of `resource_type` named `name`. A refusal is logged on
    /// [`AUDIT_TARGET`].
    pub fn authorize(
        &self,
        who: &Principal,
        host: IpAddr,
        operation: Operation,
        resource_type: ResourceType,
        name: &str,
    ) -> bool {
        let allowed = self.allows(who, host, operation, resource_type, name);
        if !allowed {
            tracing::info!(
                target: AUDIT_TARGET,
                principal = %who,
                %host,
                %operation,
                %resource_type,
                resource = name,
                "denied"
            );
        }
        allowed
    }

    /// [`Authorizer::authorize`] without the audit line, for checks that
    /// only filter what a caller is shown (Kafka's `logIfDenied = false`:
    /// the topics a Metadata listing leaves out, authorized-operation
    /// bits), which would otherwise log a line per hidden resource per
    /// request.
    pub fn allows(
        &self,
        who: &Principal,
        host: IpAddr,
        operation: Operation,
        resource_type: ResourceType,
        name: &str,
    ) -> bool {
        let Some(on) = &self.enabled else {
            return true;
        };
        if on.config.super_users.contains(who) {
            return true;
        }
        on.snapshot().decide(
            who,
            host,
            operation,
            resource_type,
            name,
            on.config.allow_if_no_acl,
        )
    }

    /// Whether `who` may do `operation` on some resource of
    /// `resource_type`: an allowing ACL names one (literally or by
    /// prefix) and no deny covers that name. Kafka asks this where a
    /// request names no resource, such as an idempotent producer's
    /// InitProducerId (allowed to whoever may write to some topic).
    pub fn authorize_any(
        &self,
        who: &Principal,
        host: IpAddr,
        operation: Operation,
        resource_type: ResourceType,
    ) -> bool {
        let Some(on) = &self.enabled else {
            return true;
        };
        if on.config.super_users.contains(who) {
            return true;
        }
        let index = on.snapshot();
        index.bindings.iter().any(|b| {
            b.pattern.resource_type == resource_type
                && b.entry.permission == Permission::Allow
                && applies(&b.entry, who, host)
                && grants(b.entry.operation, operation)
                && index.decide(who, host, operation, resource_type, &b.pattern.name, false)
        })
    }

    /// Stores `bindings` (durably, all or none): each is validated, and
    /// bindings already present are kept once.
    pub fn create(&self, bindings: &[AclBinding]) -> Result<(), AuthorizerError> {
        let on = self.enabled.as_ref().ok_or(AuthorizerError::Disabled)?;
        for b in bindings {
            b.validate()?;
        }
        let _changing = on.changing.lock().unwrap_or_else(|e| e.into_inner());
        let mut all = on.snapshot().bindings.clone();
        all.extend(bindings.iter().cloned());
        if all.len() > on.config.acls_max {
            return Err(AuthorizerError::TooMany {
                count: all.len(),
                max: on.config.acls_max,
            });
        }
        on.store(all)?;
        for b in bindings {
            tracing::info!(target: AUDIT_TARGET, acl = %b, "acl created");
        }
        Ok(())
    }

    /// The stored bindings `filter` selects, in a stable order.
    pub fn describe(&self, filter: &AclFilter) -> Result<Vec<AclBinding>, AuthorizerError> {
        let on = self.enabled.as_ref().ok_or(AuthorizerError::Disabled)?;
        Ok(on
            .snapshot()
            .bindings
            .iter()
            .filter(|b| filter.matches(b))
            .cloned()
            .collect())
    }

    /// Removes the bindings each filter selects (durably, in one write);
    /// returns what each filter removed. A binding two filters select is
    /// listed under both, as Kafka does.
    pub fn delete(&self, filters: &[AclFilter]) -> Result<Vec<Vec<AclBinding>>, AuthorizerError> {
        let on = self.enabled.as_ref().ok_or(AuthorizerError::Disabled)?;
        let _changing = on.changing.lock().unwrap_or_else(|e| e.into_inner());
        let current = on.snapshot();
        let removed: Vec<Vec<AclBinding>> = filters
            .iter()
            .map(|f| {
                current
                    .bindings
                    .iter()
                    .filter(|b| f.matches(b))
                    .cloned()
                    .collect()
            })
            .collect();
        if removed.iter().all(Vec::is_empty) {
            return Ok(removed);
        }
        let left = current
            .bindings
            .iter()
            .filter(|b| !filters.iter().any(|f| f.matches(b)))
            .cloned()
            .collect();
        on.store(left)?;
        for b in removed.iter().flatten() {
            tracing::info!(target: AUDIT_TARGET, acl = %b, "acl deleted");
        }
        Ok(removed)
    }
}

impl Enabled {
    fn snapshot(&self) -> Arc<AclIndex> {
        self.index.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Writes `bindings` to the file (if any), then makes them the ones
    /// checks see: a failed write changes nothing.
    fn store(&self, bindings: BTreeSet<AclBinding>) -> Result<(), AuthorizerError> {
        if let Some(path) = &self.path {
            file::replace(path, &encode(&bindings)).map_err(|source| AuthorizerError::Io {
                path: path.clone(),
                source,
            })?;
        }
        *self.index.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(AclIndex::new(bindings));
        Ok(())
    }
}

/// The ACLs, and the same indexed by resource type and name for checks.
#[derive(Debug, Default)]
struct AclIndex {
    bindings: BTreeSet<AclBinding>,
    by_type: HashMap<ResourceType, TypeAcls>,
}

/// One resource type's ACLs: literal names (with the wildcard `*` among
/// them) and prefixes, each with their entries.
#[derive(Debug, Default)]
struct TypeAcls {
    literal: HashMap<String, Vec<AccessEntry>>,
    prefixed: HashMap<String, Vec<AccessEntry>>,
    /// The lengths of the prefixes present, so a check looks up each
    /// length once instead of scanning every prefix.
    prefix_lens: BTreeSet<usize>,
}

impl AclIndex {
    fn new(bindings: BTreeSet<AclBinding>) -> Self {
        let mut by_type: HashMap<ResourceType, TypeAcls> = HashMap::new();
        for b in &bindings {
            let t = by_type.entry(b.pattern.resource_type).or_default();
            let name = b.pattern.name.clone();
            match b.pattern.pattern_type {
                PatternType::Prefixed => {
                    t.prefix_lens.insert(name.len());
                    t.prefixed.entry(name).or_default().push(b.entry.clone());
                }
                _ => t.literal.entry(name).or_default().push(b.entry.clone()),
            }
        }
        Self { bindings, by_type }
    }

    /// Every entry that applies to the resource, whoever it names.
    fn entries<'a>(
        &'a self,
        resource_type: ResourceType,
        name: &'a str,
    ) -> impl Iterator<Item = &'a AccessEntry> {
        let t = self.by_type.get(&resource_type);
        let literal = t.into_iter().flat_map(move |t| {
            let exact = t.literal.get(name).into_iter().flatten();
            let wildcard = (name != WILDCARD)
                .then(|| t.literal.get(WILDCARD))
                .flatten()
                .into_iter()
                .flatten();
            exact.chain(wildcard)
        });
        let prefixed = t.into_iter().flat_map(move |t| {
            t.prefix_lens
                .iter()
                .take_while(move |&&len| len <= name.len())
                .filter_map(move |&len| name.get(..len))
                .filter_map(move |prefix| t.prefixed.get(prefix))
                .flatten()
        });
        literal.chain(prefixed)
    }

    fn decide(
        &self,
        who: &Principal,
        host: IpAddr,
        operation: Operation,
        resource_type: ResourceType,
        name: &str,
        allow_if_no_acl: bool,
    ) -> bool {
        let mut any_acl = false;
        let mut allowed = false;
        for e in self.entries(resource_type, name) {
            any_acl = true;
            if !applies(e, who, host) {
                continue;
            }
            match e.permission {
                Permission::Deny if e.operation == operation || e.operation == Operation::All => {
                    return false;
                }
                Permission::Allow if grants(e.operation, operation) => allowed = true,
                _ => {}
            }
        }
        allowed || (!any_acl && allow_if_no_acl)
    }
}

/// Whether an entry names `who` (or every principal of its type) and
/// `host` (or every host).
fn applies(e: &AccessEntry, who: &Principal, host: IpAddr) -> bool {
    let principal = match e.principal.split_once(':') {
        Some((kind, "*")) => kind == who.kind(),
        Some((kind, name)) => kind == who.kind() && name == who.name(),
        None => false,
    };
    principal && (e.host == WILDCARD || e.host.parse::<IpAddr>().is_ok_and(|h| h == host))
}

/// Whether an allowing entry for `granted` permits `wanted`.
fn grants(granted: Operation, wanted: Operation) -> bool {
    granted == Operation::All || wanted.implied_by().contains(&granted)
}

/// The file's layout: a version and one object per binding, each field
/// by its Kafka name, so an operator can read it.
#[derive(serde::Serialize, serde::Deserialize)]
struct AclFile {
    version: u32,
    acls: Vec<StoredAcl>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct StoredAcl {
    resource_type: String,
    name: String,
    pattern_type: String,
    principal: String,
    host: String,
    operation: String,
    permission: String,
}

const ACL_FILE_VERSION: u32 = 1;

fn encode(bindings: &BTreeSet<AclBinding>) -> Vec<u8> {
    let acls = bindings
        .iter()
        .map(|b| StoredAcl {
            resource_type: b.pattern.resource_type.name().to_owned(),
            name: b.pattern.name.clone(),
            pattern_type: b.pattern.pattern_type.name().to_owned(),
            principal: b.entry.principal.clone(),
            host: b.entry.host.clone(),
            operation: b.entry.operation.name().to_owned(),
            permission: b.entry.permission.name().to_owned(),
        })
        .collect();
    let file = AclFile {
        version: ACL_FILE_VERSION,
        acls,
    };
    serde_json::to_vec_pretty(&file).expect("string fields always serialize")
}

fn decode(bytes: &[u8]) -> Result<BTreeSet<AclBinding>, String> {
    let file: AclFile = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if file.version != ACL_FILE_VERSION {
        return Err(format!(
            "version {} is not {ACL_FILE_VERSION}",
            file.version
        ));
    }
    file.acls
        .into_iter()
        .map(|a| {
            let binding = AclBinding {
                pattern: ResourcePattern {
                    resource_type: a.resource_type.parse()?,
                    name: a.name,
                    pattern_type: a.pattern_type.parse()?,
                },
                entry: AccessEntry {
                    principal: a.principal,
                    host: a.host,
                    operation: a.operation.parse()?,
                    permission: a.permission.parse()?,
                },
            };
            binding.validate()?;
            Ok(binding)
        })
        .collect::<Result<_, AclError>>()
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests;
