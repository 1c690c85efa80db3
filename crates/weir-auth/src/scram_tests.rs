//! Tests of the SCRAM server: RFC 7677's example exchange byte for byte,
//! full exchanges against a client written from the RFC, and refusals.

use super::*;

/// A SCRAM client as RFC 5802 §3 describes it, to drive the server.
struct Client {
    mechanism: ScramMechanism,
    password: String,
    client_first_bare: String,
}

impl Client {
    fn first(mechanism: ScramMechanism, user: &str, password: &str, nonce: &str) -> (Self, String) {
        let bare = format!("n={user},r={nonce}");
        let client = Self {
            mechanism,
            password: password.to_owned(),
            client_first_bare: bare.clone(),
        };
        (client, format!("n,,{bare}"))
    }

    /// client-final for `server_first`, and the server signature expected.
    fn last(&self, server_first: &str) -> (String, String) {
        self.last_prefixed(server_first, "")
    }

    /// client-final with `prefix` written before the nonce (what
    /// librdkafka before 2.2 does with its own nonce).
    fn last_prefixed(&self, server_first: &str, prefix: &str) -> (String, String) {
        let mut nonce = "";
        let mut salt = Vec::new();
        let mut iterations = 0;
        for f in server_first.split(',') {
            if let Some(v) = f.strip_prefix("r=") {
                nonce = v;
            } else if let Some(v) = f.strip_prefix("s=") {
                salt = B64.decode(v).unwrap();
            } else if let Some(v) = f.strip_prefix("i=") {
                iterations = v.parse().unwrap();
            }
        }
        let m = self.mechanism;
        let salted = m.salted_password(self.password.as_bytes(), &salt, iterations);
        let client_key = m.hmac(&salted, &[b"Client Key"]);
        let stored_key = m.hash(&client_key);
        let without_proof = format!("c=biws,r={prefix}{nonce}");
        let auth = format!("{},{server_first},{without_proof}", self.client_first_bare);
        let signature = m.hmac(&stored_key, &[auth.as_bytes()]);
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(a, b)| a ^ b)
            .collect();
        let server_key = m.hmac(&salted, &[b"Server Key"]);
        let server_signature = m.hmac(&server_key, &[auth.as_bytes()]);
        (
            format!("{without_proof},p={}", B64.encode(proof)),
            format!("v={}", B64.encode(server_signature)),
        )
    }
}

fn credential(m: ScramMechanism, password: &str) -> ScramCredential {
    ScramCredential::new(m, password, ITERATIONS_MIN).unwrap()
}

fn continued(step: ScramStep) -> String {
    match step {
        ScramStep::Continue(m) => String::from_utf8(m).unwrap(),
        other => panic!("expected server-first, got {other:?}"),
    }
}

#[test]
fn rfc7677_example_exchange() {
    // RFC 7677 §3: user "user", password "pencil".
    let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
    let m = ScramMechanism::Sha256;
    let salted = m.salted_password(b"pencil", &salt, 4096);
    let cred = ScramCredential::from_salted_password(m, &salted, salt, 4096).unwrap();
    let mut server = ScramServer::new(m);
    server.fixed_nonce = Some("%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0".to_owned());
    let first = server
        .step(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO", |u| {
            (u == "user").then(|| cred.clone())
        })
        .unwrap();
    assert_eq!(
        continued(first),
        "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
    );
    let last = server
        .step(
            b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
            |_| unreachable!(),
        )
        .unwrap();
    assert_eq!(
        last,
        ScramStep::Done {
            user: "user".to_owned(),
            server_final: b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=".to_vec(),
        }
    );
    // A third message is refused: the exchange is over.
    assert_eq!(server.step(b"x", |_| None), Err(ScramError::Finished));
}

#[test]
fn full_exchange_both_mechanisms() {
    for m in ScramMechanism::ALL {
        let cred = credential(m, "s3cret pass");
        let mut server = ScramServer::new(m);
        let (client, first) = Client::first(m, "alice", "s3cret pass", "fyko+d2lbbFgONRv9qkxdawL");
        let server_first = continued(
            server
                .step(first.as_bytes(), |_| Some(cred.clone()))
                .unwrap(),
        );
        assert!(server_first.starts_with("r=fyko+d2lbbFgONRv9qkxdawL"));
        assert!(
            server_first.len() > "r=fyko+d2lbbFgONRv9qkxdawL".len() + 20,
            "{server_first}"
        );
        let (last, expected) = client.last(&server_first);
        match server.step(last.as_bytes(), |_| None).unwrap() {
            ScramStep::Done { user, server_final } => {
                assert_eq!(user, "alice");
                assert_eq!(String::from_utf8(server_final).unwrap(), expected);
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn server_nonces_differ() {
    let m = ScramMechanism::Sha256;
    let cred = credential(m, "pw");
    let nonce = |_: ()| {
        let mut s = ScramServer::new(m);
        continued(s.step(b"n,,n=bob,r=abc", |_| Some(cred.clone())).unwrap())
    };
    assert_ne!(nonce(()), nonce(()));
}

#[test]
fn wrong_password_refused() {
    for m in ScramMechanism::ALL {
        let cred = credential(m, "right");
        let mut server = ScramServer::new(m);
        let (client, first) = Client::first(m, "alice", "wrong", "nonce1");
        let server_first = continued(
            server
                .step(first.as_bytes(), |_| Some(cred.clone()))
                .unwrap(),
        );
        let (last, _) = client.last(&server_first);
        assert_eq!(
            server.step(last.as_bytes(), |_| None),
            Err(ScramError::InvalidCredentials {
                user: "alice".to_owned()
            })
        );
    }
}

#[test]
fn unknown_user_refused() {
    let mut server = ScramServer::new(ScramMechanism::Sha512);
    assert_eq!(
        server.step(b"n,,n=nobody,r=abc", |_| None),
        Err(ScramError::UnknownUser {
            user: "nobody".to_owned()
        })
    );
}

#[test]
fn nonce_mismatch_refused() {
    let m = ScramMechanism::Sha256;
    let cred = credential(m, "pw");
    let mut server = ScramServer::new(m);
    let (client, first) = Client::first(m, "alice", "pw", "abc");
    let server_first = continued(
        server
            .step(first.as_bytes(), |_| Some(cred.clone()))
            .unwrap(),
    );
    // The client's proof is right for the nonce it was given, but the
    // message names another one.
    let (last, _) = client.last(&server_first);
    let tampered = last.replacen(",r=abc", ",r=abd", 1);
    assert_ne!(tampered, last);
    assert_eq!(
        server.step(tampered.as_bytes(), |_| None),
        Err(ScramError::NonceMismatch)
    );
}

#[test]
fn malformed_messages_refused() {
    let m = ScramMechanism::Sha256;
    let cred = credential(m, "pw");
    for bad in [
        &b""[..],
        b"n",
        b"x,,n=alice,r=abc",
        b"n,,r=abc",
        b"n,,n=alice",
        b"n,,n=al=ice,r=abc",
        b"n,,n=alice,r=a,m=ext",
        b"n,b=x,n=alice,r=abc",
        b"n,,n=alice,r=",
        b"\xff\xfe",
    ] {
        let mut server = ScramServer::new(m);
        let got = server.step(bad, |_| Some(cred.clone()));
        assert!(
            matches!(got, Err(ScramError::Malformed(_))),
            "{bad:?}: {got:?}"
        );
    }
    let mut server = ScramServer::new(m);
    assert_eq!(
        server.step(b"p=tls-unique,,n=alice,r=abc", |_| Some(cred.clone())),
        Err(ScramError::ChannelBinding)
    );
    let mut server = ScramServer::new(m);
    assert!(matches!(
        server.step(b"n,a=bob,n=alice,r=abc", |_| Some(cred.clone())),
        Err(ScramError::Authzid { .. })
    ));
    let mut server = ScramServer::new(m);
    assert!(matches!(
        server.step(&vec![b'a'; MESSAGE_BYTES_MAX + 1], |_| Some(cred.clone())),
        Err(ScramError::TooLong { .. })
    ));
    // client-final: missing proof, bad base64, wrong binding.
    for (bad, want) in [
        ("c=biws,r=NONCE", "malformed"),
        ("c=biws,r=NONCE,p=***", "malformed"),
        ("c=eSws,r=NONCE,p=AAAA", "binding"),
    ] {
        let mut server = ScramServer::new(m);
        let first = continued(
            server
                .step(b"n,,n=alice,r=abc", |_| Some(cred.clone()))
                .unwrap(),
        );
        let nonce = first.split(',').next().unwrap().strip_prefix("r=").unwrap();
        let got = server.step(bad.replace("NONCE", nonce).as_bytes(), |_| None);
        match want {
            "binding" => assert_eq!(got, Err(ScramError::BindingMismatch)),
            _ => assert!(
                matches!(got, Err(ScramError::Malformed(_))),
                "{bad}: {got:?}"
            ),
        }
    }
}

#[test]
fn escaped_names_and_authzid() {
    let m = ScramMechanism::Sha256;
    let cred = credential(m, "pw");
    let mut server = ScramServer::new(m);
    let mut asked = String::new();
    server
        .step(b"y,a=a=2Cb=3Dc,n=a=2Cb=3Dc,r=abc", |u| {
            asked = u.to_owned();
            Some(cred.clone())
        })
        .unwrap();
    assert_eq!(asked, "a,b=c");
}

#[test]
fn credentials_checked() {
    let m = ScramMechanism::Sha256;
    assert!(matches!(
        ScramCredential::new(m, "pw", ITERATIONS_MIN - 1),
        Err(ScramError::Iterations { .. })
    ));
    assert!(matches!(
        ScramCredential::new(m, "pässword", ITERATIONS_MIN),
        Err(ScramError::NotAscii { .. })
    ));
    assert!(matches!(
        ScramCredential::from_salted_password(m, &[0; 64], vec![1], ITERATIONS_MIN),
        Err(ScramError::KeyLength { .. })
    ));
    assert!(matches!(check_user(""), Err(ScramError::Empty { .. })));
    assert!(matches!(check_user("é"), Err(ScramError::NotAscii { .. })));
    let cred = credential(m, "pw");
    assert!(cred.verify_password(m, "pw"));
    assert!(!cred.verify_password(m, "pW"));
    assert!(!format!("{cred:?}").contains("stored_key"));
}

#[test]
fn librdkafka_doubled_client_nonce_accepted() {
    // librdkafka before 2.2 writes its nonce again before the combined
    // one in client-final; Kafka accepts a nonce that ends with the
    // server's, and so does Weir.
    let m = ScramMechanism::Sha256;
    let cred = credential(m, "pw");
    let mut server = ScramServer::new(m);
    let (client, first) = Client::first(m, "alice", "pw", "cn0nce");
    let server_first = continued(
        server
            .step(first.as_bytes(), |_| Some(cred.clone()))
            .unwrap(),
    );
    let (last, _) = client.last_prefixed(&server_first, "cn0nce");
    assert!(last.contains(",r=cn0ncecn0nce"), "{last}");
    // The proof covers client-final as sent, as the server takes it.
    assert!(matches!(
        server.step(last.as_bytes(), |_| None),
        Ok(ScramStep::Done { .. })
    ));
}
