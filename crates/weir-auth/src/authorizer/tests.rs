//! The authorizer's rules, its durability, and its index against a naive
//! model that scans every binding.

use std::net::{IpAddr, Ipv4Addr};

use proptest::prelude::*;

use super::*;

const HOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn acl(
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

fn alice() -> Principal {
    Principal::user("alice")
}

fn may(a: &Authorizer, who: &Principal, op: Operation, t: ResourceType, name: &str) -> bool {
    a.authorize(who, HOST, op, t, name)
}

use Operation::*;
use PatternType::*;
use Permission::*;
use ResourceType::*;

#[test]
fn disabled_allows_everything_and_refuses_acl_calls() {
    let a = Authorizer::disabled();
    assert!(!a.is_enabled());
    assert!(may(
        &a,
        &Principal::anonymous(),
        Delete,
        Cluster,
        "kafka-cluster"
    ));
    assert!(matches!(a.create(&[]), Err(AuthorizerError::Disabled)));
    assert!(matches!(
        a.describe(&AclFilter::any()),
        Err(AuthorizerError::Disabled)
    ));
}

#[test]
fn no_acl_refuses_unless_configured_and_super_users_pass() {
    let a = Authorizer::in_memory(AuthorizerConfig {
        super_users: vec![Principal::user("admin")],
        ..AuthorizerConfig::default()
    });
    assert!(!may(&a, &alice(), Read, Topic, "orders"));
    assert!(may(
        &a,
        &Principal::user("admin"),
        Alter,
        Cluster,
        "kafka-cluster"
    ));

    let open = Authorizer::in_memory(AuthorizerConfig {
        allow_if_no_acl: true,
        ..AuthorizerConfig::default()
    });
    assert!(may(&open, &alice(), Read, Topic, "orders"));
    // Once the resource has an ACL, only what it allows passes.
    open.create(&[acl(Topic, "orders", Literal, "User:bob", Read, Allow)])
        .unwrap();
    assert!(!may(&open, &alice(), Read, Topic, "orders"));
    assert!(may(&open, &alice(), Read, Topic, "payments"));
}

#[test]
fn literal_wildcard_and_prefixed_patterns_apply() {
    let a = Authorizer::in_memory(AuthorizerConfig::default());
    a.create(&[
        acl(Topic, "orders", Literal, "User:alice", Read, Allow),
        acl(Topic, "pay", Prefixed, "User:alice", Write, Allow),
        acl(Group, WILDCARD, Literal, "User:alice", Read, Allow),
        acl(Stream, "order-", Prefixed, "User:*", Read, Allow),
    ])
    .unwrap();
    assert!(may(&a, &alice(), Read, Topic, "orders"));
    assert!(!may(&a, &alice(), Read, Topic, "orders2"));
    assert!(may(&a, &alice(), Write, Topic, "payments"));
    assert!(!may(&a, &alice(), Write, Topic, "pa"));
    assert!(may(&a, &alice(), Read, Group, "any-group"));
    assert!(may(&a, &Principal::user("carol"), Read, Stream, "order-42"));
    assert!(!may(
        &a,
        &Principal::user("carol"),
        Write,
        Stream,
        "order-42"
    ));
    // A principal of another type is not covered by User:*.
    assert!(!may(
        &a,
        &Principal::parse("Group:ops").unwrap(),
        Read,
        Stream,
        "order-42"
    ));
    // Types do not leak into each other.
    assert!(!may(&a, &alice(), Read, Topic, "order-42"));
}

#[test]
fn deny_wins_and_describe_is_implied() {
    let a = Authorizer::in_memory(AuthorizerConfig::default());
    a.create(&[
        acl(Topic, WILDCARD, Literal, "User:alice", All, Allow),
        acl(Topic, "secret", Prefixed, "User:alice", Read, Deny),
        acl(Topic, "audit", Literal, "User:*", Write, Deny),
        acl(Topic, "metrics", Literal, "User:bob", Read, Allow),
        acl(Topic, "configs", Literal, "User:bob", AlterConfigs, Allow),
    ])
    .unwrap();
    assert!(may(&a, &alice(), Delete, Topic, "orders"));
    assert!(!may(&a, &alice(), Read, Topic, "secret-plans"));
    assert!(
        may(&a, &alice(), Write, Topic, "secret-plans"),
        "the deny is for Read only"
    );
    assert!(!may(&a, &alice(), Write, Topic, "audit"));
    let bob = Principal::user("bob");
    assert!(
        may(&a, &bob, Describe, Topic, "metrics"),
        "Read implies Describe"
    );
    assert!(!may(&a, &bob, Write, Topic, "metrics"));
    assert!(may(&a, &bob, DescribeConfigs, Topic, "configs"));
    assert!(
        !may(&a, &bob, Describe, Topic, "configs"),
        "AlterConfigs does not imply Describe"
    );
}

#[test]
fn hosts_narrow_an_entry() {
    let a = Authorizer::in_memory(AuthorizerConfig::default());
    let mut from = acl(Topic, "orders", Literal, "User:alice", Read, Allow);
    from.entry.host = "10.0.0.7".into();
    a.create(&[from]).unwrap();
    let near: IpAddr = "10.0.0.7".parse().unwrap();
    assert!(a.authorize(&alice(), near, Read, Topic, "orders"));
    assert!(!a.authorize(&alice(), HOST, Read, Topic, "orders"));
}

#[test]
fn authorize_any_finds_a_grant_not_denied() {
    let a = Authorizer::in_memory(AuthorizerConfig::default());
    assert!(!a.authorize_any(&alice(), HOST, Write, Topic));
    a.create(&[acl(Topic, "orders", Literal, "User:alice", Write, Allow)])
        .unwrap();
    assert!(a.authorize_any(&alice(), HOST, Write, Topic));
    assert!(!a.authorize_any(&alice(), HOST, Write, Group));
    a.create(&[acl(Topic, "orders", Literal, "User:alice", Write, Deny)])
        .unwrap();
    assert!(!a.authorize_any(&alice(), HOST, Write, Topic));
}

#[test]
fn invalid_bindings_store_nothing_and_limits_hold() {
    let a = Authorizer::in_memory(AuthorizerConfig {
        acls_max: 2,
        ..AuthorizerConfig::default()
    });
    let good = acl(Topic, "orders", Literal, "User:alice", Read, Allow);
    let bad = acl(Topic, "orders", Match, "User:alice", Read, Allow);
    assert!(matches!(
        a.create(&[good.clone(), bad]),
        Err(AuthorizerError::Invalid(_))
    ));
    assert!(a.describe(&AclFilter::any()).unwrap().is_empty());
    a.create(&[good.clone(), good.clone()]).unwrap();
    assert_eq!(
        a.describe(&AclFilter::any()).unwrap(),
        vec![good.clone()],
        "kept once"
    );
    let more = [
        acl(Topic, "a", Literal, "User:alice", Read, Allow),
        acl(Topic, "b", Literal, "User:alice", Read, Allow),
    ];
    assert!(matches!(
        a.create(&more),
        Err(AuthorizerError::TooMany { count: 3, max: 2 })
    ));
}

#[test]
fn acls_survive_reopening_and_deletes_too() {
    let dir = tempfile::tempdir().unwrap();
    let config = AuthorizerConfig::default();
    let kept = [
        acl(Topic, "orders", Literal, "User:alice", Read, Allow),
        acl(Saga, "order-", Prefixed, "User:ops", Alter, Allow),
        acl(Cluster, "kafka-cluster", Literal, "User:ops", Create, Deny),
    ];
    {
        let a = Authorizer::open(dir.path(), config.clone()).unwrap();
        a.create(&kept).unwrap();
    }
    let a = Authorizer::open(dir.path(), config.clone()).unwrap();
    let mut expected = kept.to_vec();
    expected.sort();
    assert_eq!(a.describe(&AclFilter::any()).unwrap(), expected);
    assert!(may(&a, &alice(), Read, Topic, "orders"));

    let mut f = AclFilter::any();
    f.principal = Some("User:ops".into());
    let removed = a.delete(&[f.clone(), f]).unwrap();
    assert_eq!(removed[0].len(), 2);
    assert_eq!(removed[1].len(), 2, "each filter lists what it selects");
    drop(a);
    let a = Authorizer::open(dir.path(), config).unwrap();
    assert_eq!(
        a.describe(&AclFilter::any()).unwrap(),
        vec![kept[0].clone()]
    );
}

#[test]
fn a_corrupt_file_is_refused_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(ACLS_FILE), b"{\"version\":1,\"acls\":[{").unwrap();
    let err = Authorizer::open(dir.path(), AuthorizerConfig::default()).unwrap_err();
    assert!(matches!(err, AuthorizerError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains(ACLS_FILE), "{err}");
    std::fs::write(
        dir.path().join(ACLS_FILE),
        br#"{"version":1,"acls":[{"resource_type":"TOPIC","name":"t","pattern_type":"MATCH","principal":"User:a","host":"*","operation":"READ","permission":"ALLOW"}]}"#,
    )
    .unwrap();
    let err = Authorizer::open(dir.path(), AuthorizerConfig::default()).unwrap_err();
    assert!(err.to_string().contains("filters only"), "{err}");
}

/// What the index must decide, by scanning every binding.
fn model(
    bindings: &[AclBinding],
    who: &Principal,
    op: Operation,
    t: ResourceType,
    name: &str,
) -> bool {
    let applying: Vec<&AclBinding> = bindings
        .iter()
        .filter(|b| b.pattern.resource_type == t)
        .filter(|b| match b.pattern.pattern_type {
            Literal => b.pattern.name == name || b.pattern.name == WILDCARD,
            Prefixed => name.starts_with(&b.pattern.name),
            _ => false,
        })
        .collect();
    let mine = |b: &&&AclBinding| {
        b.entry.principal == who.to_string() || b.entry.principal == format!("{}:*", who.kind())
    };
    let denied = applying.iter().filter(mine).any(|b| {
        b.entry.permission == Deny && (b.entry.operation == op || b.entry.operation == All)
    });
    let allowed = applying.iter().filter(mine).any(|b| {
        b.entry.permission == Allow
            && (b.entry.operation == All || op.implied_by().contains(&b.entry.operation))
    });
    !denied && allowed
}

fn arb_binding() -> impl Strategy<Value = AclBinding> {
    let names = prop::sample::select(vec!["a", "ab", "abc", "b", "*"]);
    let types = prop::sample::select(vec![Topic, Group, Stream]);
    let patterns = prop::sample::select(vec![Literal, Prefixed]);
    let principals = prop::sample::select(vec!["User:alice", "User:bob", "User:*"]);
    let ops = prop::sample::select(vec![All, Read, Write, Describe, Alter, AlterConfigs]);
    let perms = prop::sample::select(vec![Allow, Deny]);
    (types, names, patterns, principals, ops, perms)
        .prop_map(|(t, n, p, who, op, perm)| acl(t, n, p, who, op, perm))
}

proptest! {
    #[test]
    fn the_index_decides_as_a_full_scan(
        bindings in prop::collection::vec(arb_binding(), 0..12),
        queries in prop::collection::vec((
            prop::sample::select(vec!["alice", "bob", "carol"]),
            prop::sample::select(vec![Read, Write, Describe, Alter, DescribeConfigs, Delete]),
            prop::sample::select(vec![Topic, Group, Stream]),
            prop::sample::select(vec!["a", "ab", "abc", "abd", "b", "c", "*"]),
        ), 1..20),
    ) {
        let a = Authorizer::in_memory(AuthorizerConfig::default());
        a.create(&bindings).unwrap();
        for (who, op, t, name) in queries {
            let who = Principal::user(who);
            prop_assert_eq!(may(&a, &who, op, t, name), model(&bindings, &who, op, t, name), "{} {} {} {}", who, op, t, name);
        }
    }
}
