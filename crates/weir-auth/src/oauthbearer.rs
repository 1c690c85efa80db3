//! SASL OAUTHBEARER (RFC 7628) as Kafka clients send it: one client
//! message, `n,[a=<authzid>],` then `auth=Bearer <token>` and any other
//! key-value pairs, each ended by `\x01`, the whole ended by another. The
//! token is a JWT checked by the same validator as the HTTP API's bearer
//! tokens; the session lasts until the token expires, and a token
//! already expired is refused (the validator's clock-skew leeway is for
//! HTTP requests, not for a session that would end at once).

use crate::bearer::{Authenticated, BearerError, JwtValidator};

/// Longest OAUTHBEARER message accepted.
pub const MESSAGE_BYTES_MAX: usize = 32 * 1024;

/// RFC 7628's server error for a refused token (section 3.2.2), as
/// Kafka's broker sends it.
pub const INVALID_TOKEN_JSON: &str = r#"{"status":"invalid_token"}"#;

/// Why an OAUTHBEARER message was refused.
#[derive(Debug, thiserror::Error)]
pub enum OauthBearerError {
    #[error("the OAUTHBEARER message is malformed: {0}")]
    Malformed(&'static str),
    #[error("the OAUTHBEARER message of {0} bytes is over the limit of {MESSAGE_BYTES_MAX}")]
    TooLong(usize),
    #[error("the authorization id {authzid:?} is not the token's principal {principal}")]
    Authzid { authzid: String, principal: String },
    #[error(transparent)]
    Token(#[from] BearerError),
    #[error("the token expired at {expired_at_ms} ms since the epoch (or has no numeric exp)")]
    Expired { expired_at_ms: i64 },
}

/// The bearer token of a client's first (and only) message.
pub fn token(message: &[u8]) -> Result<(&str, Option<&str>), OauthBearerError> {
    if message.len() > MESSAGE_BYTES_MAX {
        return Err(OauthBearerError::TooLong(message.len()));
    }
    let text =
        std::str::from_utf8(message).map_err(|_| OauthBearerError::Malformed("not UTF-8"))?;
    let (gs2, rest) = text
        .split_once('\x01')
        .ok_or(OauthBearerError::Malformed("no \\x01 after the GS2 header"))?;
    // GS2 header: channel binding flag, optional authzid, empty.
    let mut parts = gs2.split(',');
    match parts.next() {
        Some("n" | "y") => {}
        Some(_) => {
            return Err(OauthBearerError::Malformed(
                "channel binding is not supported",
            ));
        }
        None => return Err(OauthBearerError::Malformed("no GS2 header")),
    }
    let authzid = match parts.next() {
        Some("") | None => None,
        Some(a) => Some(a.strip_prefix("a=").ok_or(OauthBearerError::Malformed(
            "the GS2 header's second field is not a=<authzid>",
        ))?),
    };
    if parts.next().is_some_and(|p| !p.is_empty()) || parts.next().is_some() {
        return Err(OauthBearerError::Malformed(
            "the GS2 header has extra fields",
        ));
    }
    let body = rest
        .strip_suffix("\x01\x01")
        .or_else(|| (rest == "\x01").then_some(""))
        .ok_or(OauthBearerError::Malformed(
            "the message does not end with \\x01\\x01",
        ))?;
    let mut token = None;
    for pair in body.split('\x01') {
        let (key, value) = pair
            .split_once('=')
            .ok_or(OauthBearerError::Malformed("a key-value pair has no ="))?;
        if key == "auth" {
            let t = value
                .strip_prefix("Bearer ")
                .or_else(|| value.strip_prefix("bearer "))
                .ok_or(OauthBearerError::Malformed("auth is not `Bearer <token>`"))?;
            token = Some(t.trim());
        }
    }
    let token = token
        .filter(|t| !t.is_empty())
        .ok_or(OauthBearerError::Malformed("no auth=Bearer <token>"))?;
    Ok((token, authzid))
}

/// Checks a client's OAUTHBEARER message: its JWT must be valid and not
/// yet expired, and an authorization id, if given, must name the token's
/// own principal.
pub fn authenticate(message: &[u8], jwt: &JwtValidator) -> Result<Authenticated, OauthBearerError> {
    let (token, authzid) = token(message)?;
    let done = jwt.validate(token)?;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    match done.expires_at_ms {
        Some(at) if at > now_ms => {}
        other => {
            return Err(OauthBearerError::Expired {
                expired_at_ms: other.unwrap_or(0),
            });
        }
    }
    if let Some(a) = authzid
        && a != done.principal.name()
    {
        return Err(OauthBearerError::Authzid {
            authzid: a.to_owned(),
            principal: done.principal.to_string(),
        });
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_the_token_from_a_client_message() {
        let m = b"n,,\x01auth=Bearer abc.def.ghi\x01\x01";
        assert_eq!(token(m).unwrap(), ("abc.def.ghi", None));
        let m = b"n,a=alice,\x01host=broker\x01auth=Bearer t.o.k\x01port=9092\x01\x01";
        assert_eq!(token(m).unwrap(), ("t.o.k", Some("alice")));
    }

    #[test]
    fn checks_the_jwt_and_the_authorization_id() {
        let dir = tempfile::tempdir().unwrap();
        let secret = b"oauthbearer test secret, thirty-two bytes or more";
        let key = dir.path().join("key");
        std::fs::write(&key, secret).unwrap();
        let jwt = JwtValidator::new(&crate::bearer::JwtConfig::new(key)).unwrap();
        let exp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 60;
        let signed = jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &serde_json::json!({"sub": "alice", "exp": exp}),
            &jsonwebtoken::EncodingKey::from_secret(secret),
        )
        .unwrap();
        let ok = authenticate(
            format!("n,,\x01auth=Bearer {signed}\x01\x01").as_bytes(),
            &jwt,
        )
        .unwrap();
        assert_eq!(ok.principal, crate::Principal::user("alice"));
        assert_eq!(ok.expires_at_ms, Some(exp as i64 * 1000));
        let same = format!("n,a=alice,\x01auth=Bearer {signed}\x01\x01");
        assert!(authenticate(same.as_bytes(), &jwt).is_ok());
        let other = format!("n,a=bob,\x01auth=Bearer {signed}\x01\x01");
        assert!(matches!(
            authenticate(other.as_bytes(), &jwt),
            Err(OauthBearerError::Authzid { .. })
        ));
        // Expired 5 s ago: within the validator's 30 s of leeway, but a
        // session cannot start on it.
        let stale = jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &serde_json::json!({"sub": "alice", "exp": exp - 65}),
            &jsonwebtoken::EncodingKey::from_secret(secret),
        )
        .unwrap();
        assert!(jwt.validate(&stale).is_ok());
        assert!(matches!(
            authenticate(
                format!("n,,\x01auth=Bearer {stale}\x01\x01").as_bytes(),
                &jwt
            ),
            Err(OauthBearerError::Expired { .. })
        ));
        let forged = format!("n,,\x01auth=Bearer {signed}x\x01\x01");
        assert!(matches!(
            authenticate(forged.as_bytes(), &jwt),
            Err(OauthBearerError::Token(_))
        ));
    }

    #[test]
    fn refuses_malformed_messages() {
        let bad: &[&[u8]] = &[
            b"",
            b"n,,auth=Bearer x\x01\x01",
            b"p=tls-unique,,\x01auth=Bearer x\x01\x01",
            b"n,alice,\x01auth=Bearer x\x01\x01",
            b"n,,\x01auth=Basic x\x01\x01",
            b"n,,\x01auth=Bearer x\x01",
            b"n,,\x01host=h\x01\x01",
            b"n,,\x01auth=Bearer \x01\x01",
            b"n,,\x01noequals\x01\x01",
            b"\xff\xfe",
        ];
        for m in bad {
            assert!(
                matches!(token(m), Err(OauthBearerError::Malformed(_))),
                "{m:?}"
            );
        }
        let long = vec![b'x'; MESSAGE_BYTES_MAX + 1];
        assert!(matches!(token(&long), Err(OauthBearerError::TooLong(_))));
    }
}
