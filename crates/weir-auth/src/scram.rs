//! SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677) on the server's
//! side: the stored credential (salt, iterations, StoredKey, ServerKey,
//! never the password) and the exchange as a state machine of two steps
//! (client-first → server-first, client-final → server-final). Channel
//! binding is not supported (`n,,` and `y,,` only), and SASLprep is
//! limited to ASCII: names and passwords outside printable ASCII are
//! refused with [`ScramError::NotAscii`] rather than normalised.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

/// Fewest PBKDF2 iterations a credential may have (Kafka's minimum).
pub const ITERATIONS_MIN: u32 = 4096;
/// Most PBKDF2 iterations a credential may have (Kafka's maximum): a
/// PLAIN login costs this many HMACs.
pub const ITERATIONS_MAX: u32 = 16384;
/// Longest salt accepted, in bytes.
pub const SALT_BYTES_MAX: usize = 128;
/// Longest password accepted, in bytes.
pub const PASSWORD_BYTES_MAX: usize = 1024;
/// Longest user name accepted, in bytes.
pub const USER_BYTES_MAX: usize = 256;
/// Longest SCRAM message accepted from a client, in bytes.
pub const MESSAGE_BYTES_MAX: usize = 4096;
/// Random bytes in the server's share of the nonce (base64 on the wire).
const NONCE_BYTES: usize = 24;
/// Salt length of credentials made here.
pub const SALT_BYTES: usize = 32;

/// A SCRAM mechanism, by its hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ScramMechanism {
    Sha256,
    Sha512,
}

impl ScramMechanism {
    pub const ALL: [Self; 2] = [Self::Sha256, Self::Sha512];

    /// The mechanism's SASL name (`SCRAM-SHA-256`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Sha256 => "SCRAM-SHA-256",
            Self::Sha512 => "SCRAM-SHA-512",
        }
    }

    /// The mechanism named `name` (case-sensitive, as SASL names are).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }

    /// Length of the hash, so of every key, in bytes.
    pub fn key_bytes(self) -> usize {
        match self {
            Self::Sha256 => 32,
            Self::Sha512 => 64,
        }
    }

    fn hmac(self, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
        fn run<M: Mac + KeyInit>(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
            let mut mac =
                <M as KeyInit>::new_from_slice(key).expect("HMAC takes keys of any length");
            for p in parts {
                mac.update(p);
            }
            mac.finalize().into_bytes().to_vec()
        }
        match self {
            Self::Sha256 => run::<Hmac<Sha256>>(key, parts),
            Self::Sha512 => run::<Hmac<Sha512>>(key, parts),
        }
    }

    fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            Self::Sha256 => Sha256::digest(data).to_vec(),
            Self::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    /// RFC 5802's Hi(): PBKDF2 with this mechanism's HMAC.
    pub fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        let mut out = vec![0u8; self.key_bytes()];
        match self {
            Self::Sha256 => pbkdf2::pbkdf2::<Hmac<Sha256>>(password, salt, iterations, &mut out),
            Self::Sha512 => pbkdf2::pbkdf2::<Hmac<Sha512>>(password, salt, iterations, &mut out),
        }
        .expect("HMAC takes keys of any length");
        out
    }
}

/// Why a credential or an exchange was refused. Every variant of an
/// exchange is an authentication failure to the client; the detail is for
/// the server's log and tests.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScramError {
    #[error("{what} is not printable ASCII (SASLprep is limited to ASCII here)")]
    NotAscii { what: &'static str },
    #[error("{what} of {bytes} bytes is over the limit of {bytes_max}")]
    TooLong {
        what: &'static str,
        bytes: usize,
        bytes_max: usize,
    },
    #[error("{iterations} iterations is outside {ITERATIONS_MIN}..={ITERATIONS_MAX}")]
    Iterations { iterations: u32 },
    #[error("{what} is empty")]
    Empty { what: &'static str },
    #[error("a salted password of {bytes} bytes does not fit {mechanism} ({expected} bytes)")]
    KeyLength {
        mechanism: &'static str,
        bytes: usize,
        expected: usize,
    },
    #[error("malformed SCRAM message: {0}")]
    Malformed(String),
    #[error("channel binding is not supported")]
    ChannelBinding,
    #[error("authorization id {authzid:?} differs from the user {user:?}")]
    Authzid { authzid: String, user: String },
    #[error("the nonce does not continue the server's")]
    NonceMismatch,
    #[error("the channel-binding data differs from the client-first message's header")]
    BindingMismatch,
    #[error("invalid credentials for user {user:?}")]
    InvalidCredentials { user: String },
    #[error("unknown user {user:?}")]
    UnknownUser { user: String },
    #[error("the exchange is over; a new one needs a new handshake")]
    Finished,
    #[error("the operating system's random source failed: {0}")]
    Random(String),
}

/// What a server keeps of a user's password for one mechanism.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramCredential {
    pub salt: Vec<u8>,
    pub iterations: u32,
    /// H(HMAC(SaltedPassword, "Client Key")).
    pub stored_key: Vec<u8>,
    /// HMAC(SaltedPassword, "Server Key").
    pub server_key: Vec<u8>,
}

impl std::fmt::Debug for ScramCredential {
    // Keys are secrets: a debug print shows only their shape.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramCredential")
            .field("salt_bytes", &self.salt.len())
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

impl ScramCredential {
    /// A credential from a password with a fresh random salt.
    pub fn new(
        mechanism: ScramMechanism,
        password: &str,
        iterations: u32,
    ) -> Result<Self, ScramError> {
        check_password(password)?;
        let mut salt = vec![0u8; SALT_BYTES];
        random(&mut salt)?;
        let salted = mechanism.salted_password(password.as_bytes(), &salt, iterations);
        Self::from_salted_password(mechanism, &salted, salt, iterations)
    }

    /// A credential from the salted password a client computed
    /// (AlterUserScramCredentials sends it, never the password).
    pub fn from_salted_password(
        mechanism: ScramMechanism,
        salted_password: &[u8],
        salt: Vec<u8>,
        iterations: u32,
    ) -> Result<Self, ScramError> {
        if !(ITERATIONS_MIN..=ITERATIONS_MAX).contains(&iterations) {
            return Err(ScramError::Iterations { iterations });
        }
        if salt.is_empty() {
            return Err(ScramError::Empty { what: "salt" });
        }
        if salt.len() > SALT_BYTES_MAX {
            return Err(ScramError::TooLong {
                what: "salt",
                bytes: salt.len(),
                bytes_max: SALT_BYTES_MAX,
            });
        }
        if salted_password.len() != mechanism.key_bytes() {
            return Err(ScramError::KeyLength {
                mechanism: mechanism.name(),
                bytes: salted_password.len(),
                expected: mechanism.key_bytes(),
            });
        }
        let client_key = mechanism.hmac(salted_password, &[b"Client Key"]);
        Ok(Self {
            salt,
            iterations,
            stored_key: mechanism.hash(&client_key),
            server_key: mechanism.hmac(salted_password, &[b"Server Key"]),
        })
    }

    /// Whether `password` is the one this credential was made from
    /// (PLAIN's check): derives the salted password with the stored salt
    /// and iterations and compares StoredKey in constant time.
    pub fn verify_password(&self, mechanism: ScramMechanism, password: &str) -> bool {
        if check_password(password).is_err() {
            return false;
        }
        let salted = mechanism.salted_password(password.as_bytes(), &self.salt, self.iterations);
        let client_key = mechanism.hmac(&salted, &[b"Client Key"]);
        bool::from(mechanism.hash(&client_key).ct_eq(&self.stored_key))
    }
}

/// Refuses a password SASLprep would have to normalise (beyond ASCII) or
/// an empty or overlong one.
pub fn check_password(password: &str) -> Result<(), ScramError> {
    if password.is_empty() {
        return Err(ScramError::Empty { what: "password" });
    }
    if password.len() > PASSWORD_BYTES_MAX {
        return Err(ScramError::TooLong {
            what: "password",
            bytes: password.len(),
            bytes_max: PASSWORD_BYTES_MAX,
        });
    }
    if !password.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err(ScramError::NotAscii { what: "password" });
    }
    Ok(())
}

/// Refuses a user name that is empty, too long or not printable ASCII.
pub fn check_user(user: &str) -> Result<(), ScramError> {
    if user.is_empty() {
        return Err(ScramError::Empty { what: "user name" });
    }
    if user.len() > USER_BYTES_MAX {
        return Err(ScramError::TooLong {
            what: "user name",
            bytes: user.len(),
            bytes_max: USER_BYTES_MAX,
        });
    }
    if !user.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err(ScramError::NotAscii { what: "user name" });
    }
    Ok(())
}

/// Fills `buf` from the operating system's CSPRNG.
pub(crate) fn random(buf: &mut [u8]) -> Result<(), ScramError> {
    getrandom::fill(buf).map_err(|e| ScramError::Random(e.to_string()))
}

/// What a step of the exchange gives back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScramStep {
    /// Send this server-first message and wait for the client-final one.
    Continue(Vec<u8>),
    /// `user` is authenticated; send this server-final message.
    Done { user: String, server_final: Vec<u8> },
}

/// One SCRAM exchange on the server's side. Feed it each client message
/// in turn with [`ScramServer::step`]; any error ends the exchange.
#[derive(Debug)]
pub struct ScramServer {
    mechanism: ScramMechanism,
    state: State,
    /// The server's share of the nonce, fixed by tests replaying RFC
    /// 7677's example; random otherwise.
    fixed_nonce: Option<String>,
}

#[derive(Debug)]
enum State {
    Initial,
    FirstSent {
        user: String,
        credential: ScramCredential,
        /// The gs2 header as the client sent it (`n,,`).
        gs2_header: String,
        client_first_bare: String,
        server_first: String,
        nonce: String,
    },
    Over,
}

impl ScramServer {
    pub fn new(mechanism: ScramMechanism) -> Self {
        Self {
            mechanism,
            state: State::Initial,
            fixed_nonce: None,
        }
    }

    pub fn mechanism(&self) -> ScramMechanism {
        self.mechanism
    }

    /// Takes the client's next message. `lookup` finds the user's
    /// credential for this mechanism (asked once, at client-first).
    pub fn step(
        &mut self,
        message: &[u8],
        lookup: impl FnOnce(&str) -> Option<ScramCredential>,
    ) -> Result<ScramStep, ScramError> {
        let state = std::mem::replace(&mut self.state, State::Over);
        if message.len() > MESSAGE_BYTES_MAX {
            return Err(ScramError::TooLong {
                what: "SCRAM message",
                bytes: message.len(),
                bytes_max: MESSAGE_BYTES_MAX,
            });
        }
        let message = std::str::from_utf8(message)
            .map_err(|_| ScramError::Malformed("not UTF-8".to_owned()))?;
        match state {
            State::Initial => self.client_first(message, lookup),
            State::FirstSent {
                user,
                credential,
                gs2_header,
                client_first_bare,
                server_first,
                nonce,
            } => {
                let auth = Finish {
                    user,
                    credential,
                    gs2_header,
                    client_first_bare,
                    server_first,
                    nonce,
                };
                self.client_final(message, auth)
            }
            State::Over => Err(ScramError::Finished),
        }
    }

    fn client_first(
        &mut self,
        message: &str,
        lookup: impl FnOnce(&str) -> Option<ScramCredential>,
    ) -> Result<ScramStep, ScramError> {
        // gs2-header: cbind-flag "," [authzid] ","
        let (flag, rest) = message
            .split_once(',')
            .ok_or_else(|| malformed("no gs2 header"))?;
        match flag {
            "n" | "y" => {}
            f if f.starts_with("p=") => return Err(ScramError::ChannelBinding),
            f => return Err(malformed(&format!("channel-binding flag {f:?}"))),
        }
        let (authzid, bare) = rest
            .split_once(',')
            .ok_or_else(|| malformed("no authzid field"))?;
        let authzid = match authzid {
            "" => None,
            a => Some(decode_name(
                a.strip_prefix("a=")
                    .ok_or_else(|| malformed("authzid without a="))?,
            )?),
        };
        let gs2_header = message[..message.len() - bare.len()].to_owned();
        let mut fields = bare.split(',');
        let user = fields
            .next()
            .and_then(|f| f.strip_prefix("n="))
            .ok_or_else(|| malformed("no user name (n=)"))?;
        let user = decode_name(user)?;
        check_user(&user)?;
        let client_nonce = fields
            .next()
            .and_then(|f| f.strip_prefix("r="))
            .ok_or_else(|| malformed("no nonce (r=)"))?;
        check_nonce(client_nonce)?;
        for ext in fields {
            // Mandatory extensions are unknown to us by definition; Kafka's
            // `tokenauth` (delegation tokens) is not supported.
            if ext.starts_with("m=") || ext.starts_with("tokenauth=") {
                return Err(malformed(&format!("unsupported extension {ext:?}")));
            }
        }
        if let Some(authzid) = authzid
            && authzid != user
        {
            return Err(ScramError::Authzid { authzid, user });
        }
        let credential =
            lookup(&user).ok_or_else(|| ScramError::UnknownUser { user: user.clone() })?;
        let server_nonce = match self.fixed_nonce.take() {
            Some(n) => n,
            None => {
                let mut bytes = [0u8; NONCE_BYTES];
                random(&mut bytes)?;
                B64.encode(bytes)
            }
        };
        let nonce = format!("{client_nonce}{server_nonce}");
        let server_first = format!(
            "r={nonce},s={},i={}",
            B64.encode(&credential.salt),
            credential.iterations
        );
        self.state = State::FirstSent {
            user,
            credential,
            gs2_header,
            client_first_bare: bare.to_owned(),
            server_first: server_first.clone(),
            nonce,
        };
        Ok(ScramStep::Continue(server_first.into_bytes()))
    }

    fn client_final(&mut self, message: &str, auth: Finish) -> Result<ScramStep, ScramError> {
        let (without_proof, proof) = message
            .rsplit_once(",p=")
            .ok_or_else(|| malformed("no proof (p=)"))?;
        let mut fields = without_proof.split(',');
        let binding = fields
            .next()
            .and_then(|f| f.strip_prefix("c="))
            .ok_or_else(|| malformed("no channel binding (c=)"))?;
        let binding = B64
            .decode(binding)
            .map_err(|_| malformed("channel binding is not base64"))?;
        if binding != auth.gs2_header.as_bytes() {
            return Err(ScramError::BindingMismatch);
        }
        let nonce = fields
            .next()
            .and_then(|f| f.strip_prefix("r="))
            .ok_or_else(|| malformed("no nonce (r=)"))?;
        // The nonce must end with the one server-first gave, as Kafka
        // checks it: librdkafka before 2.2 (kcat on Debian 12) sends its
        // own nonce again in front. The server's random part is still
        // required, so nothing is replayed. (Nonces are not secrets.)
        if !nonce.ends_with(&auth.nonce) {
            return Err(ScramError::NonceMismatch);
        }
        let proof = B64
            .decode(proof)
            .map_err(|_| malformed("proof is not base64"))?;
        let mechanism = self.mechanism;
        if proof.len() != mechanism.key_bytes() {
            return Err(malformed("proof of the wrong length"));
        }
        let auth_message = format!(
            "{},{},{without_proof}",
            auth.client_first_bare, auth.server_first
        );
        let credential = &auth.credential;
        let client_signature = mechanism.hmac(&credential.stored_key, &[auth_message.as_bytes()]);
        let client_key: Vec<u8> = proof
            .iter()
            .zip(&client_signature)
            .map(|(p, s)| p ^ s)
            .collect();
        if !bool::from(mechanism.hash(&client_key).ct_eq(&credential.stored_key)) {
            return Err(ScramError::InvalidCredentials { user: auth.user });
        }
        let server_signature = mechanism.hmac(&credential.server_key, &[auth_message.as_bytes()]);
        Ok(ScramStep::Done {
            user: auth.user,
            server_final: format!("v={}", B64.encode(server_signature)).into_bytes(),
        })
    }
}

/// What client-final is checked against.
struct Finish {
    user: String,
    credential: ScramCredential,
    gs2_header: String,
    client_first_bare: String,
    server_first: String,
    nonce: String,
}

fn malformed(what: &str) -> ScramError {
    ScramError::Malformed(what.to_owned())
}

/// A saslname with `=2C` and `=3D` turned back into `,` and `=`; any other
/// `=` is malformed (RFC 5802 §5.1).
fn decode_name(name: &str) -> Result<String, ScramError> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        let code = rest.get(i..i + 3);
        match code {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return Err(malformed("bad escape in a user name")),
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A nonce is printable ASCII without `,`.
fn check_nonce(nonce: &str) -> Result<(), ScramError> {
    if nonce.is_empty()
        || !nonce
            .bytes()
            .all(|b| (0x21..0x7f).contains(&b) && b != b',')
    {
        return Err(malformed("nonce is empty or not printable"));
    }
    Ok(())
}

#[cfg(test)]
#[path = "scram_tests.rs"]
mod tests;
