//! Static token files and JWT validation: what passes, and each way a
//! token is refused.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{EncodingKey, Header, encode};
use serde_json::json;

use super::*;

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-test-secret";

fn now_s() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn hs256(claims: serde_json::Value) -> String {
    encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap()
}

fn validator(
    dir: &Path,
    key: &[u8],
    tune: impl FnOnce(&mut JwtConfig),
) -> Result<JwtValidator, BearerError> {
    let path = dir.join("jwt.key");
    std::fs::write(&path, key).unwrap();
    let mut config = JwtConfig::new(path);
    tune(&mut config);
    JwtValidator::new(&config)
}

#[test]
fn token_files_parse_clear_and_hashed_tokens() {
    let hashed = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"; // sha256("test")
    let tokens = StaticTokens::parse(&format!(
        "# operators\nUser:alice  s3cret\n\nUser:ci sha256:{hashed}\n"
    ))
    .unwrap();
    assert_eq!(tokens.len(), 2);
    assert_eq!(tokens.principal("s3cret"), Some(&Principal::user("alice")));
    assert_eq!(tokens.principal("test"), Some(&Principal::user("ci")));
    assert_eq!(tokens.principal("s3cre"), None);

    for (bad, line) in [
        ("User:alice", 1),
        ("User:a t1\nUser:b t1", 2),
        ("alice t1", 1),
        ("User:a sha256:abc", 1),
        ("User:a t1 extra", 1),
    ] {
        let (at, reason) = StaticTokens::parse(bad).unwrap_err();
        assert_eq!(at, line, "{bad}: {reason}");
    }
}

#[test]
fn a_token_file_error_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens");
    std::fs::write(&path, "User:a t1\nnot-a-principal t2\n").unwrap();
    let err = StaticTokens::load(&path).unwrap_err().to_string();
    assert!(err.contains("tokens line 2"), "{err}");
    let missing = StaticTokens::load(&dir.path().join("absent")).unwrap_err();
    assert!(matches!(missing, BearerError::Io { .. }));
}

#[test]
fn hmac_jwts_are_checked_for_signature_expiry_and_claims() {
    let dir = tempfile::tempdir().unwrap();
    let v = validator(dir.path(), SECRET, |_| {}).unwrap();
    let exp = now_s() + 600;
    let ok = v
        .validate(&hs256(json!({"sub": "alice", "exp": exp})))
        .unwrap();
    assert_eq!(ok.principal, Principal::user("alice"));
    assert_eq!(ok.expires_at_ms, Some(exp * 1000));

    let expired = hs256(json!({"sub": "alice", "exp": now_s() - 3600}));
    assert!(matches!(v.validate(&expired), Err(BearerError::Jwt(_))));
    let no_exp = hs256(json!({"sub": "alice"}));
    assert!(matches!(v.validate(&no_exp), Err(BearerError::Jwt(_))));
    let not_yet = hs256(json!({"sub": "alice", "exp": exp, "nbf": now_s() + 3600}));
    assert!(matches!(v.validate(&not_yet), Err(BearerError::Jwt(_))));
    let no_sub = hs256(json!({"exp": exp}));
    assert!(matches!(
        v.validate(&no_sub),
        Err(BearerError::Claim { .. })
    ));
    let other_key = encode(
        &Header::default(),
        &json!({"sub": "alice", "exp": exp}),
        &EncodingKey::from_secret(b"another secret of at least thirty-two bytes"),
    )
    .unwrap();
    assert!(matches!(v.validate(&other_key), Err(BearerError::Jwt(_))));
    // An unsigned token (`alg: none`) with a valid payload.
    let mut parts = hs256(json!({"sub": "alice", "exp": exp}))
        .split('.')
        .map(str::to_owned)
        .collect::<Vec<_>>();
    parts[0] = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0".into(); // {"alg":"none","typ":"JWT"}
    parts[2].clear();
    assert!(matches!(
        v.validate(&parts.join(".")),
        Err(BearerError::Jwt(_))
    ));
}

#[test]
fn issuer_audience_and_the_principal_claim_are_configurable() {
    let dir = tempfile::tempdir().unwrap();
    let v = validator(dir.path(), SECRET, |c| {
        c.issuer = Some("https://idp.example".into());
        c.audience = Some("weir".into());
        c.principal_claim = "client_id".into();
    })
    .unwrap();
    let exp = now_s() + 600;
    let good = hs256(
        json!({"client_id": "svc-orders", "iss": "https://idp.example", "aud": "weir", "exp": exp}),
    );
    assert_eq!(
        v.validate(&good).unwrap().principal,
        Principal::user("svc-orders")
    );
    let wrong_iss = hs256(
        json!({"client_id": "svc", "iss": "https://evil.example", "aud": "weir", "exp": exp}),
    );
    assert!(v.validate(&wrong_iss).is_err());
    let wrong_aud = hs256(
        json!({"client_id": "svc", "iss": "https://idp.example", "aud": "other", "exp": exp}),
    );
    assert!(v.validate(&wrong_aud).is_err());
}

#[test]
fn short_secrets_and_bad_pem_keys_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let short = validator(dir.path(), b"short\n", |_| {}).unwrap_err();
    assert!(short.to_string().contains("too short"), "{short}");
    let pem = validator(
        dir.path(),
        b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
        |_| {},
    )
    .unwrap_err();
    assert!(matches!(pem, BearerError::Key { .. }), "{pem}");
}

#[test]
fn static_tokens_come_first_then_jwts() {
    let dir = tempfile::tempdir().unwrap();
    let auth = BearerAuth {
        tokens: Some(std::sync::Arc::new(TokenFile::fixed(
            StaticTokens::parse("User:ops static-token").unwrap(),
        ))),
        jwt: Some(std::sync::Arc::new(
            validator(dir.path(), SECRET, |_| {}).unwrap(),
        )),
    };
    assert!(auth.is_configured());
    assert_eq!(
        auth.authenticate("static-token").unwrap().principal,
        Principal::user("ops")
    );
    let jwt = hs256(json!({"sub": "alice", "exp": now_s() + 60}));
    assert_eq!(
        auth.authenticate(&jwt).unwrap().principal,
        Principal::user("alice")
    );
    assert!(matches!(
        auth.authenticate("nope"),
        Err(BearerError::Unknown)
    ));
    let long = "x".repeat(TOKEN_BYTES_MAX + 1);
    assert!(matches!(
        auth.authenticate(&long),
        Err(BearerError::TooLong(_))
    ));
    assert!(!BearerAuth::default().is_configured());
}

#[test]
fn ed25519_public_keys_check_eddsa_tokens() {
    use base64::Engine as _;
    use ring::signature::{Ed25519KeyPair, KeyPair as _};
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    // SubjectPublicKeyInfo for Ed25519: a fixed 12-byte prefix, then the key.
    let mut spki = vec![
        0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
    ];
    spki.extend_from_slice(pair.public_key().as_ref());
    let pem = format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        base64::engine::general_purpose::STANDARD.encode(&spki)
    );
    let dir = tempfile::tempdir().unwrap();
    let v = validator(dir.path(), pem.as_bytes(), |_| {}).unwrap();
    let claims = json!({"sub": "alice", "exp": now_s() + 60});
    let signed = encode(
        &Header::new(Algorithm::EdDSA),
        &claims,
        &EncodingKey::from_ed_der(pkcs8.as_ref()),
    )
    .unwrap();
    assert_eq!(
        v.validate(&signed).unwrap().principal,
        Principal::user("alice")
    );
    // An HMAC token made with the public key's bytes as the secret (the
    // classic algorithm confusion) is refused: HS* is not in the family.
    let confused = encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(pem.as_bytes()),
    )
    .unwrap();
    assert!(matches!(v.validate(&confused), Err(BearerError::Jwt(_))));
}
