//! `weir-auth`: who a caller is and what it may do, without sockets or a
//! runtime. The Kafka listener and the HTTP API authenticate a caller to a
//! [`Principal`] (TLS client certificates, SASL, bearer tokens) and ask the
//! same authorizer whether that principal may do an operation on a
//! resource, so one set of ACLs governs both protocols.
//!
//! ```
//! use std::net::Ipv4Addr;
//! use weir_auth::acl::{AccessEntry, AclBinding, Operation, PatternType, Permission, ResourcePattern, ResourceType};
//! use weir_auth::{Authorizer, AuthorizerConfig, Principal};
//!
//! let authorizer = Authorizer::in_memory(AuthorizerConfig::default());
//! authorizer.create(&[AclBinding {
//!     pattern: ResourcePattern {
//!         resource_type: ResourceType::Topic,
//!         name: "orders-".into(),
//!         pattern_type: PatternType::Prefixed,
//!     },
//!     entry: AccessEntry {
//!         principal: "User:alice".into(),
//!         host: "*".into(),
//!         operation: Operation::Read,
//!         permission: Permission::Allow,
//!     },
//! }])?;
//! let (alice, host) = (Principal::user("alice"), Ipv4Addr::LOCALHOST.into());
//! assert!(authorizer.authorize(&alice, host, Operation::Read, ResourceType::Topic, "orders-eu"));
//! // Reading implies describing; writing is not granted.
//! assert!(authorizer.authorize(&alice, host, Operation::Describe, ResourceType::Topic, "orders-eu"));
//! assert!(!authorizer.authorize(&alice, host, Operation::Write, ResourceType::Topic, "orders-eu"));
//! # Ok::<(), weir_auth::AuthorizerError>(())
//! ```
//!
//! SASL: [`SaslAuthenticator`] runs PLAIN or SCRAM-SHA-256/512 against the
//! durable [`CredentialStore`] (salted keys only, never passwords), and
//! OAUTHBEARER against a JWT validator ([`bearer::JwtValidator`]).
//!
//! ```
//! use weir_auth::{CredentialChange, CredentialStore, SaslAuthenticator, SaslMechanism,
//!     SaslStep, ScramCredential, ScramMechanism};
//! let dir = tempfile::tempdir().unwrap();
//! let store = CredentialStore::open(dir.path()).unwrap();
//! let m = ScramMechanism::Sha256;
//! let credential = ScramCredential::new(m, "pencil", 4096).unwrap();
//! store.apply(&[CredentialChange::Upsert { user: "alice".into(), mechanism: m, credential }]).unwrap();
//! let mut auth = SaslAuthenticator::new(SaslMechanism::Plain);
//! let SaslStep::Done { principal, .. } = auth.step(b"\0alice\0pencil", Some(&store)).unwrap() else {
//!     panic!()
//! };
//! assert_eq!(principal.to_string(), "User:alice");
//! ```

pub mod acl;
mod authorizer;
pub mod bearer;
pub mod credentials;
mod file;
pub mod oauthbearer;
mod principal;
pub mod sasl;
pub mod scram;

pub use authorizer::{ACLS_FILE, AUDIT_TARGET, Authorizer, AuthorizerConfig, AuthorizerError};
pub use credentials::{CredentialChange, CredentialError, CredentialStore};
pub use principal::{Principal, PrincipalError};
pub use sasl::{SaslAuthenticator, SaslError, SaslMechanism, SaslStep};
pub use scram::{ScramCredential, ScramError, ScramMechanism};
