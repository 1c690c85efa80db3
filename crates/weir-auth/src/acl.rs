//! The ACL model, as Kafka has it so that its tools manage Weir's ACLs
//! unchanged: a binding is a resource pattern (type, name, literal or
//! prefixed) and an access entry (principal, host, operation, allow or
//! deny). Weir adds its own resource types (streams, categories,
//! dead-letter topics, sagas) beside Kafka's. Filters select bindings for
//! DescribeAcls and DeleteAcls with Kafka's matching rules.

use std::fmt;
use std::str::FromStr;

use crate::Principal;

/// The literal name that stands for every resource of its type.
pub const WILDCARD: &str = "*";

/// The one cluster resource's name, as Kafka spells it.
pub const CLUSTER_NAME: &str = "kafka-cluster";

/// Longest resource name, principal or host in a binding.
pub const FIELD_BYTES_MAX: usize = 1024;

/// Defines an enum with its Kafka wire code and name, parsed
/// case-insensitively and printed as Kafka prints it.
macro_rules! coded {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $code:literal, $text:literal;)+ }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vdoc])* $variant,)+
        }

        impl $name {
            /// Every value, in code order.
            pub const ALL: &'static [Self] = &[$(Self::$variant,)+];

            /// The value's code on the Kafka wire.
            pub fn code(self) -> i8 {
                match self {
                    $(Self::$variant => $code,)+
                }
            }

            /// The value of a wire code, if it is one.
            pub fn from_code(code: i8) -> Option<Self> {
                match code {
                    $($code => Some(Self::$variant),)+
                    _ => None,
                }
            }

            /// The name Kafka prints (`TOPIC`, `PREFIXED`, `READ`).
            pub fn name(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }

        impl FromStr for $name {
            type Err = AclError;

            fn from_str(text: &str) -> Result<Self, AclError> {
                let wanted = text.replace('-', "_");
                Self::ALL
                    .iter()
                    .copied()
                    .find(|v| v.name().eq_ignore_ascii_case(&wanted))
                    .ok_or_else(|| AclError::UnknownName {
                        what: stringify!($name),
                        name: text.to_owned(),
                    })
            }
        }
    };
}

coded! {
    /// What a binding or filter names. `Any` is for filters only.
    ResourceType {
        Any = 1, "ANY";
        Topic = 2, "TOPIC";
        Group = 3, "GROUP";
        Cluster = 4, "CLUSTER";
        TransactionalId = 5, "TRANSACTIONAL_ID";
        /// Weir's: an event-store stream (`order-42`).
        Stream = 100, "STREAM";
        /// Weir's: every stream of a category (`order`), as one resource.
        Category = 101, "CATEGORY";
        /// Weir's: a topic's dead letters, named by the origin topic.
        DeadLetterTopic = 102, "DEAD_LETTER_TOPIC";
        /// Weir's: a saga, by id.
        Saga = 103, "SAGA";
        /// Weir's: a schema registry subject (`orders-value`).
        SchemaSubject = 104, "SCHEMA_SUBJECT";
    }
}

coded! {
    /// How a binding's resource name matches. `Any` and `Match` are for
    /// filters only: `Any` selects bindings of every pattern type with the
    /// filter's name, `Match` the bindings that would apply to a resource
    /// of that name (literal, wildcard or prefixed).
    PatternType {
        Any = 1, "ANY";
        Match = 2, "MATCH";
        Literal = 3, "LITERAL";
        Prefixed = 4, "PREFIXED";
    }
}

coded! {
    /// What a principal does to a resource. `Any` is for filters only;
    /// `All` in a binding stands for every operation.
    Operation {
        Any = 1, "ANY";
        All = 2, "ALL";
        Read = 3, "READ";
        Write = 4, "WRITE";
        Create = 5, "CREATE";
        Delete = 6, "DELETE";
        Alter = 7, "ALTER";
        Describe = 8, "DESCRIBE";
        ClusterAction = 9, "CLUSTER_ACTION";
        DescribeConfigs = 10, "DESCRIBE_CONFIGS";
        AlterConfigs = 11, "ALTER_CONFIGS";
        IdempotentWrite = 12, "IDEMPOTENT_WRITE";
    }
}

coded! {
    /// Whether a binding grants or refuses. `Any` is for filters only.
    Permission {
        Any = 1, "ANY";
        Deny = 2, "DENY";
        Allow = 3, "ALLOW";
    }
}

impl Operation {
    /// The operations whose grant also grants `self`: Kafka lets whoever
    /// may read, write, delete or alter a resource describe it, and
    /// whoever may alter configs describe them.
    pub fn implied_by(self) -> &'static [Operation] {
        match self {
            Self::Describe => &[
                Self::Describe,
                Self::Read,
                Self::Write,
                Self::Delete,
                Self::Alter,
            ],
            Self::DescribeConfigs => &[Self::DescribeConfigs, Self::AlterConfigs],
            Self::Read => &[Self::Read],
            Self::Write => &[Self::Write],
            Self::Create => &[Self::Create],
            Self::Delete => &[Self::Delete],
            Self::Alter => &[Self::Alter],
            Self::ClusterAction => &[Self::ClusterAction],
            Self::AlterConfigs => &[Self::AlterConfigs],
            Self::IdempotentWrite => &[Self::IdempotentWrite],
            Self::Any | Self::All => &[],
        }
    }
}

/// Why a binding, filter or name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AclError {
    #[error("unknown {what} {name:?}")]
    UnknownName { what: &'static str, name: String },
    #[error("{what} {value} is for filters only, not for a binding")]
    FilterOnly { what: &'static str, value: String },
    #[error("invalid principal: {0}")]
    Principal(#[from] crate::PrincipalError),
    #[error("{field} is empty")]
    Empty { field: &'static str },
    #[error("{field} of {bytes} bytes is over the limit of {FIELD_BYTES_MAX}")]
    TooLong { field: &'static str, bytes: usize },
    #[error("the cluster resource is named {CLUSTER_NAME:?}, not {0:?}")]
    ClusterName(String),
    #[error("host {0:?} is neither * nor an IP address")]
    Host(String),
}

/// The resource half of a binding: which resources it applies to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourcePattern {
    pub resource_type: ResourceType,
    pub name: String,
    pub pattern_type: PatternType,
}

/// The access half of a binding: who, from where, doing what, allowed or
/// not. `principal` is `Type:name` or `User:*` (everyone).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AccessEntry {
    pub principal: String,
    pub host: String,
    pub operation: Operation,
    pub permission: Permission,
}

/// One ACL.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AclBinding {
    pub pattern: ResourcePattern,
    pub entry: AccessEntry,
}

impl AclBinding {
    /// Checks a binding before it is stored: no filter-only values, a
    /// principal of the form `Type:name`, a host that is `*` or an IP
    /// address, the cluster named as Kafka names it, bounded lengths.
    pub fn validate(&self) -> Result<(), AclError> {
        let p = &self.pattern;
        let e = &self.entry;
        if p.resource_type == ResourceType::Any {
            return Err(filter_only("resource type", p.resource_type));
        }
        if matches!(p.pattern_type, PatternType::Any | PatternType::Match) {
            return Err(filter_only("pattern type", p.pattern_type));
        }
        if e.operation == Operation::Any {
            return Err(filter_only("operation", e.operation));
        }
        if e.permission == Permission::Any {
            return Err(filter_only("permission", e.permission));
        }
        bounded("resource name", &p.name)?;
        bounded("principal", &e.principal)?;
        bounded("host", &e.host)?;
        if p.resource_type == ResourceType::Cluster && p.name != CLUSTER_NAME {
            return Err(AclError::ClusterName(p.name.clone()));
        }
        Principal::parse(&e.principal)?;
        if e.host != WILDCARD && e.host.parse::<std::net::IpAddr>().is_err() {
            return Err(AclError::Host(e.host.clone()));
        }
        Ok(())
    }
}

fn filter_only(what: &'static str, value: impl fmt::Display) -> AclError {
    AclError::FilterOnly {
        what,
        value: value.to_string(),
    }
}

fn bounded(field: &'static str, value: &str) -> Result<(), AclError> {
    if value.is_empty() {
        return Err(AclError::Empty { field });
    }
    if value.len() > FIELD_BYTES_MAX {
        return Err(AclError::TooLong {
            field,
            bytes: value.len(),
        });
    }
    Ok(())
}

impl fmt::Display for AclBinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (p, e) = (&self.pattern, &self.entry);
        write!(
            f,
            "{} {} {} from {} on {} {:?} ({})",
            e.principal, e.permission, e.operation, e.host, p.resource_type, p.name, p.pattern_type
        )
    }
}

/// Selects bindings, for DescribeAcls and DeleteAcls. `None` fields and
/// `Any` values match everything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclFilter {
    pub resource_type: ResourceType,
    pub name: Option<String>,
    pub pattern_type: PatternType,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: Operation,
    pub permission: Permission,
}

impl AclFilter {
    /// The filter that matches every binding.
    pub fn any() -> Self {
        Self {
            resource_type: ResourceType::Any,
            name: None,
            pattern_type: PatternType::Any,
            principal: None,
            host: None,
            operation: Operation::Any,
            permission: Permission::Any,
        }
    }

    /// Whether `binding` is selected, by Kafka's rules.
    pub fn matches(&self, binding: &AclBinding) -> bool {
        self.matches_pattern(&binding.pattern) && self.matches_entry(&binding.entry)
    }

    fn matches_pattern(&self, p: &ResourcePattern) -> bool {
        if self.resource_type != ResourceType::Any && self.resource_type != p.resource_type {
            return false;
        }
        match self.pattern_type {
            PatternType::Any => self.name.as_ref().is_none_or(|n| *n == p.name),
            PatternType::Literal | PatternType::Prefixed => {
                self.pattern_type == p.pattern_type
                    && self.name.as_ref().is_none_or(|n| *n == p.name)
            }
            // The bindings that apply to a resource with this name.
            PatternType::Match => match &self.name {
                None => true,
                Some(n) => match p.pattern_type {
                    PatternType::Literal => p.name == *n || p.name == WILDCARD,
                    PatternType::Prefixed => n.starts_with(&p.name),
                    PatternType::Any | PatternType::Match => false,
                },
            },
        }
    }

    fn matches_entry(&self, e: &AccessEntry) -> bool {
        self.principal.as_ref().is_none_or(|p| *p == e.principal)
            && self.host.as_ref().is_none_or(|h| *h == e.host)
            && (self.operation == Operation::Any || self.operation == e.operation)
            && (self.permission == Permission::Any || self.permission == e.permission)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn binding(
        resource_type: ResourceType,
        name: &str,
        pattern_type: PatternType,
        principal: &str,
        operation: Operation,
        permission: Permission,
    ) -> AclBinding {
        AclBinding {
            pattern: ResourcePattern {
                resource_type,
                name: name.to_owned(),
                pattern_type,
            },
            entry: AccessEntry {
                principal: principal.to_owned(),
                host: WILDCARD.to_owned(),
                operation,
                permission,
            },
        }
    }

    #[test]
    fn names_and_codes_round_trip() {
        for t in ResourceType::ALL {
            assert_eq!(ResourceType::from_code(t.code()), Some(*t));
            assert_eq!(t.name().parse::<ResourceType>().unwrap(), *t);
        }
        for o in Operation::ALL {
            assert_eq!(Operation::from_code(o.code()), Some(*o));
        }
        assert_eq!(
            "dead-letter-topic".parse::<ResourceType>().unwrap(),
            ResourceType::DeadLetterTopic
        );
        assert_eq!(
            "describe_configs".parse::<Operation>().unwrap(),
            Operation::DescribeConfigs
        );
        assert!("table".parse::<ResourceType>().is_err());
        assert_eq!(ResourceType::from_code(0), None);
    }

    #[test]
    fn validate_refuses_filter_values_and_bad_fields() {
        use Operation::{Alter, Read};
        use PatternType::*;
        use Permission::*;
        use ResourceType::*;
        let ok = binding(Topic, "orders", Literal, "User:alice", Read, Allow);
        assert_eq!(ok.validate(), Ok(()));
        let bad = [
            binding(
                ResourceType::Any,
                "orders",
                Literal,
                "User:alice",
                Read,
                Allow,
            ),
            binding(Topic, "orders", Match, "User:alice", Read, Allow),
            binding(
                Topic,
                "orders",
                Literal,
                "User:alice",
                Operation::Any,
                Allow,
            ),
            binding(
                Topic,
                "orders",
                Literal,
                "User:alice",
                Read,
                Permission::Any,
            ),
            binding(Topic, "", Literal, "User:alice", Read, Allow),
            binding(Topic, "orders", Literal, "alice", Read, Allow),
            binding(Cluster, "c1", Literal, "User:alice", Alter, Allow),
        ];
        for b in bad {
            assert!(b.validate().is_err(), "{b}");
        }
        let mut host = ok.clone();
        host.entry.host = "example.com".into();
        assert_eq!(host.validate(), Err(AclError::Host("example.com".into())));
        host.entry.host = "10.0.0.1".into();
        assert_eq!(host.validate(), Ok(()));
    }

    #[test]
    fn filters_match_as_kafka_does() {
        use Operation::*;
        use PatternType::*;
        use Permission::*;
        use ResourceType::*;
        let literal = binding(Topic, "orders", Literal, "User:alice", Read, Allow);
        let wildcard = binding(Topic, WILDCARD, Literal, "User:bob", Write, Deny);
        let prefixed = binding(Topic, "ord", Prefixed, "User:alice", Read, Allow);
        let group = binding(Group, "orders", Literal, "User:alice", Read, Allow);
        let all = [&literal, &wildcard, &prefixed, &group];
        let select = |f: &AclFilter| all.iter().filter(|b| f.matches(b)).count();

        assert_eq!(select(&AclFilter::any()), 4);
        let mut f = AclFilter::any();
        f.resource_type = Topic;
        assert_eq!(select(&f), 3);
        f.name = Some("orders".into());
        assert_eq!(select(&f), 1, "Any pattern type with a name is exact");
        f.pattern_type = Match;
        assert_eq!(select(&f), 3, "Match takes literal, wildcard and prefixed");
        f.name = Some("payments".into());
        assert_eq!(select(&f), 1, "only the wildcard applies");
        f.pattern_type = Prefixed;
        f.name = None;
        assert_eq!(select(&f), 1);
        let mut f = AclFilter::any();
        f.principal = Some("User:alice".into());
        f.operation = Read;
        f.permission = Allow;
        assert_eq!(select(&f), 3);
        f.permission = Deny;
        assert_eq!(select(&f), 0);
    }
}
