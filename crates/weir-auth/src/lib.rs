//! `weir-auth`: who a caller is and what it may do, without sockets or a
//! runtime. The Kafka listener and the HTTP API authenticate a caller to a
//! [`Principal`] (TLS client certificates, SASL, bearer tokens) and ask the
//! same authorizer whether that principal may do an operation on a
//! resource, so one set of ACLs governs both protocols.

mod principal;

pub use principal::{Principal, PrincipalError};
