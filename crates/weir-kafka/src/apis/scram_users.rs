//! DescribeUserScramCredentials and AlterUserScramCredentials (KIP-554):
//! Kafka tooling (`kafka-configs --alter --add-config SCRAM-SHA-256=...`,
//! admin clients) lists, adds and removes SCRAM users in the server's
//! credential store. The client salts the password itself and sends the
//! salt, iterations and salted password; the store keeps the keys
//! derived from them. Per-user results with Kafka's codes:
//! RESOURCE_NOT_FOUND, UNSUPPORTED_SASL_MECHANISM, UNACCEPTABLE_CREDENTIAL,
//! DUPLICATE_RESOURCE; a user's changes apply together or not at all.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse, ApiKey,
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};
use weir_auth::acl::Operation;
use weir_auth::{CredentialChange, ScramCredential, ScramMechanism, scram};

use super::{Caller, blocking, str_bytes};
use crate::Shared;
use crate::codes::Code;
use crate::conn::{ConnError, decode, encode};

/// Most users one request may name (more are refused as a whole).
const USERS_PER_REQUEST_MAX: usize = 1000;

/// The mechanism's number in KIP-554's messages.
fn mechanism_code(m: ScramMechanism) -> i8 {
    match m {
        ScramMechanism::Sha256 => 1,
        ScramMechanism::Sha512 => 2,
    }
}

fn mechanism_of(code: i8) -> Option<ScramMechanism> {
    match code {
        1 => Some(ScramMechanism::Sha256),
        2 => Some(ScramMechanism::Sha512),
        _ => None,
    }
}

/// Describing credentials needs DESCRIBE on the cluster, altering them
/// ALTER (Kafka's rules).
fn authorized(caller: &Caller, alter: bool) -> bool {
    caller.may_cluster(if alter {
        Operation::Alter
    } else {
        Operation::Describe
    })
}

pub(crate) fn describe(
    version: i16,
    body: Bytes,
    caller: &Caller,
    shared: &Shared,
) -> Result<Bytes, ConnError> {
    let api = ApiKey::DescribeUserScramCredentials;
    let request: DescribeUserScramCredentialsRequest = decode(api, version, body)?;
    let refuse = |code: Code, message: &str| {
        encode(
            api,
            version,
            &DescribeUserScramCredentialsResponse::default()
                .with_error_code(code.code())
                .with_error_message(Some(str_bytes(message))),
        )
    };
    let Some(store) = &shared.credentials else {
        return refuse(
            Code::KafkaStorageError,
            "the credential store could not be read",
        );
    };
    if !authorized(caller, false) {
        return refuse(
            Code::ClusterAuthorizationFailed,
            "not authorized to describe SCRAM credentials",
        );
    }
    let info = |mechanisms: Vec<(ScramMechanism, u32)>| {
        mechanisms
            .into_iter()
            .map(|(m, i)| {
                CredentialInfo::default()
                    .with_mechanism(mechanism_code(m))
                    .with_iterations(i as i32)
            })
            .collect()
    };
    let results = match request.users.filter(|u| !u.is_empty()) {
        // Null or empty: every user.
        None => store
            .list()
            .into_iter()
            .map(|(user, mechanisms)| {
                DescribeUserScramCredentialsResult::default()
                    .with_user(str_bytes(&user))
                    .with_error_message(None)
                    .with_credential_infos(info(mechanisms))
            })
            .collect(),
        Some(users) if users.len() > USERS_PER_REQUEST_MAX => {
            return refuse(
                Code::InvalidRequest,
                &format!("more than {USERS_PER_REQUEST_MAX} users in one request"),
            );
        }
        Some(users) => {
            let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
            for u in &users {
                *seen.entry(&u.name).or_default() += 1;
            }
            let mut done = std::collections::BTreeSet::new();
            users
                .iter()
                .filter(|u| done.insert(u.name.to_string()))
                .map(|u| {
                    let result = DescribeUserScramCredentialsResult::default()
                        .with_user(u.name.clone())
                        .with_error_message(None);
                    if seen[&*u.name] > 1 {
                        return result.with_error_code(Code::DuplicateResource.code()).with_error_message(Some(str_bytes(
                            "Cannot describe SCRAM credentials for the same user twice in a single request",
                        )));
                    }
                    match store.describe(&u.name) {
                        Some(mechanisms) => result.with_credential_infos(info(mechanisms)),
                        None => result
                            .with_error_code(Code::ResourceNotFound.code())
                            .with_error_message(Some(str_bytes(&format!(
                                "Attempt to describe nonexistent user {}",
                                &*u.name
                            )))),
                    }
                })
                .collect()
        }
    };
    encode(
        api,
        version,
        &DescribeUserScramCredentialsResponse::default()
            .with_error_message(None)
            .with_results(results),
    )
}

/// One user's changes as the request gives them, in order.
#[derive(Default)]
struct UserChanges {
    changes: Vec<CredentialChange>,
    /// The first refusal found for the user, which drops all its changes.
    error: Option<(Code, String)>,
    mechanisms: Vec<ScramMechanism>,
}

impl UserChanges {
    fn refuse(&mut self, code: Code, message: String) {
        self.error.get_or_insert((code, message));
    }

    /// Notes a change of `mechanism`; a second one for the same user and
    /// mechanism is DUPLICATE_RESOURCE.
    fn mechanism(&mut self, user: &str, code: i8) -> Option<ScramMechanism> {
        let Some(m) = mechanism_of(code) else {
            self.refuse(
                Code::UnsupportedSaslMechanism,
                format!("Unknown SCRAM mechanism {code}"),
            );
            return None;
        };
        if self.mechanisms.contains(&m) {
            self.refuse(
                Code::DuplicateResource,
                format!(
                    "A user credential cannot be altered twice in the same request: {user} {}",
                    m.name()
                ),
            );
            return None;
        }
        self.mechanisms.push(m);
        Some(m)
    }
}

pub(crate) async fn alter(
    version: i16,
    body: Bytes,
    caller: &Caller,
    shared: &Arc<Shared>,
) -> Result<Bytes, ConnError> {
    let api = ApiKey::AlterUserScramCredentials;
    let request: AlterUserScramCredentialsRequest = decode(api, version, body)?;
    // Users in the order the request first names them.
    let mut order: Vec<String> = Vec::new();
    let mut users: BTreeMap<String, UserChanges> = BTreeMap::new();
    fn entry<'a>(
        order: &mut Vec<String>,
        users: &'a mut BTreeMap<String, UserChanges>,
        name: &str,
    ) -> &'a mut UserChanges {
        if !users.contains_key(name) {
            order.push(name.to_owned());
        }
        users.entry(name.to_owned()).or_default()
    }
    for d in &request.deletions {
        let user = entry(&mut order, &mut users, &d.name);
        if d.name.is_empty() {
            user.refuse(
                Code::UnacceptableCredential,
                "Username must not be empty".into(),
            );
        }
        if let Some(m) = user.mechanism(&d.name, d.mechanism) {
            user.changes.push(CredentialChange::Delete {
                user: d.name.to_string(),
                mechanism: m,
            });
        }
    }
    for u in &request.upsertions {
        let user = entry(&mut order, &mut users, &u.name);
        let Some(m) = user.mechanism(&u.name, u.mechanism) else {
            continue;
        };
        let iterations = u32::try_from(u.iterations).unwrap_or(0);
        let credential = scram::check_user(&u.name).and_then(|()| {
            ScramCredential::from_salted_password(
                m,
                &u.salted_password,
                u.salt.to_vec(),
                iterations,
            )
        });
        match credential {
            Ok(credential) => user.changes.push(CredentialChange::Upsert {
                user: u.name.to_string(),
                mechanism: m,
                credential,
            }),
            Err(e) => {
                let message = match e {
                    weir_auth::ScramError::Iterations { .. }
                        if iterations < scram::ITERATIONS_MIN =>
                    {
                        format!("Too few iterations: {}", u.iterations)
                    }
                    weir_auth::ScramError::Iterations { .. } => {
                        format!("Too many iterations: {}", u.iterations)
                    }
                    other => other.to_string(),
                };
                user.refuse(Code::UnacceptableCredential, message);
            }
        }
    }
    let result = |user: &str, code: Code, message: Option<String>| {
        AlterUserScramCredentialsResult::default()
            .with_user(str_bytes(user))
            .with_error_code(code.code())
            .with_error_message(message.map(|m| str_bytes(&m)))
    };
    let refuse_all = |code: Code, message: &str| {
        let results = order
            .iter()
            .map(|u| result(u, code, Some(message.to_owned())))
            .collect();
        encode(
            api,
            version,
            &AlterUserScramCredentialsResponse::default().with_results(results),
        )
    };
    if order.len() > USERS_PER_REQUEST_MAX {
        return refuse_all(
            Code::InvalidRequest,
            &format!("more than {USERS_PER_REQUEST_MAX} users in one request"),
        );
    }
    if !authorized(caller, true) {
        return refuse_all(
            Code::ClusterAuthorizationFailed,
            "not authorized to alter SCRAM credentials",
        );
    }
    let Some(store) = shared.credentials.clone() else {
        return refuse_all(
            Code::KafkaStorageError,
            "the credential store could not be read",
        );
    };
    // Deleting what does not exist refuses that user.
    for (name, user) in users.iter_mut() {
        for change in &user.changes {
            if let CredentialChange::Delete { mechanism, .. } = change
                && store.get(name, *mechanism).is_none()
            {
                user.error.get_or_insert((
                    Code::ResourceNotFound,
                    format!(
                        "Attempt to delete a user credential that does not exist: {name} {}",
                        mechanism.name()
                    ),
                ));
            }
        }
    }
    let accepted: Vec<CredentialChange> = users
        .values()
        .filter(|u| u.error.is_none())
        .flat_map(|u| u.changes.iter().cloned())
        .collect();
    let written = if accepted.is_empty() {
        Ok(())
    } else {
        blocking(move || store.apply(&accepted)).await
    };
    let results = order
        .iter()
        .map(|name| {
            let user = &users[name];
            match (&user.error, &written) {
                (Some((code, message)), _) => result(name, *code, Some(message.clone())),
                (None, Ok(())) => {
                    tracing::info!(user = %name, by = %caller.principal, "SCRAM credentials altered");
                    result(name, Code::None, None)
                }
                (None, Err(e)) => {
                    let code = match e {
                        weir_auth::CredentialError::TooManyUsers => Code::UnacceptableCredential,
                        _ => Code::KafkaStorageError,
                    };
                    result(name, code, Some(e.to_string()))
                }
            }
        })
        .collect();
    encode(
        api,
        version,
        &AlterUserScramCredentialsResponse::default().with_results(results),
    )
}
