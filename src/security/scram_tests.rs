//! SCRAM against RFC 7677's test vector and a client written from RFC 5802, for both
//! mechanisms; malformed and truncated messages fail without panicking.

use super::*;

const RFC_SALT: &str = "W22ZaJ0SNY7soEsUEjb6gQ==";
const RFC_CLIENT_FIRST: &str = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
const RFC_SERVER_NONCE: &str = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
const RFC_CLIENT_FINAL: &str = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";

fn credential(mechanism: ScramMechanism, password: &str, salt: &[u8], i: i32) -> ScramCredential {
    let salted = mechanism.salted_password(password.as_bytes(), salt, i as u32);
    ScramCredential::from_salted_password(mechanism, &salted, salt, i)
}

#[test]
fn rfc7677_sha256_vector_authenticates() {
    let salt = BASE64.decode(RFC_SALT).unwrap();
    let cred = credential(ScramMechanism::Sha256, "pencil", &salt, 4096);
    let mut server =
        ScramServer::with_server_nonce(ScramMechanism::Sha256, RFC_SERVER_NONCE.to_string());
    let first = server
        .client_first(RFC_CLIENT_FIRST.as_bytes(), |u| {
            (u == "user").then(|| cred.clone())
        })
        .unwrap();
    assert_eq!(
        String::from_utf8(first).unwrap(),
        format!("r=rOprNGfwEbeRWgbNEkqO{RFC_SERVER_NONCE},s={RFC_SALT},i=4096")
    );
    let done = server.client_final(RFC_CLIENT_FINAL.as_bytes()).unwrap();
    assert_eq!(done.user, "user");
    assert_eq!(
        String::from_utf8(done.server_final).unwrap(),
        "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
    );
}

/// The client side of RFC 5802, for the round-trip tests.
fn client_final(
    mechanism: ScramMechanism,
    password: &str,
    client_first_bare: &str,
    server_first: &str,
) -> String {
    let mut salt = None;
    let mut iterations = 0;
    let mut nonce = "";
    for field in server_first.split(',') {
        match field.split_at(2) {
            ("r=", v) => nonce = v,
            ("s=", v) => salt = Some(BASE64.decode(v).unwrap()),
            ("i=", v) => iterations = v.parse().unwrap(),
            _ => {}
        }
    }
    let salted = mechanism.salted_password(password.as_bytes(), &salt.unwrap(), iterations);
    let client_key = mechanism.hmac(&salted, &[b"Client Key"]);
    let stored_key = mechanism.hash(&client_key);
    let without_proof = format!("c=biws,r={nonce}");
    let auth = format!("{client_first_bare},{server_first},{without_proof}");
    let signature = mechanism.hmac(&stored_key, &[auth.as_bytes()]);
    let proof: Vec<u8> = client_key
        .iter()
        .zip(&signature)
        .map(|(a, b)| a ^ b)
        .collect();
    format!("{without_proof},p={}", BASE64.encode(proof))
}

#[test]
fn both_mechanisms_accept_the_right_password_and_refuse_a_wrong_one() {
    for mechanism in ScramMechanism::ALL {
        let cred = credential(mechanism, "s3cret", b"0123456789abcdef", 4096);
        for (password, ok) in [("s3cret", true), ("wrong", false)] {
            let mut server = ScramServer::new(mechanism);
            let first = server
                .client_first(b"n,,n=alice,r=abcdefgh", |u| {
                    (u == "alice").then(|| cred.clone())
                })
                .unwrap();
            let fin = client_final(
                mechanism,
                password,
                "n=alice,r=abcdefgh",
                std::str::from_utf8(&first).unwrap(),
            );
            let result = server.client_final(fin.as_bytes());
            assert_eq!(result.is_ok(), ok, "{mechanism:?} {password}");
            if !ok {
                assert_eq!(result, Err(ScramError::InvalidCredentials));
            }
        }
        assert!(cred.matches_password(mechanism, b"s3cret"));
        assert!(!cred.matches_password(mechanism, b"s3cret "));
    }
}

#[test]
fn unknown_users_and_malformed_messages_are_refused() {
    let mut server = ScramServer::new(ScramMechanism::Sha512);
    assert_eq!(
        server.client_first(b"n,,n=bob,r=xyz", |_| None),
        Err(ScramError::InvalidCredentials)
    );
    for bad in [
        &b""[..],
        b"n,,",
        b"p=tls-unique,,n=a,r=x",
        b"n,,n=,r=x",
        b"n,,n=a=2,r=x",
        b"n,,n=a,r=x,tokenauth=true",
        b"n,a=b,n=a,r=x",
        b"n,,n=a",
        b"\xff\xfe",
    ] {
        let mut server = ScramServer::new(ScramMechanism::Sha256);
        let cred = credential(ScramMechanism::Sha256, "p", b"salt", 4096);
        assert!(
            matches!(
                server.client_first(bad, |_| Some(cred.clone())),
                Err(ScramError::Malformed(_))
            ),
            "{bad:?}"
        );
    }
    // A final message before the first, and one repeated, are out of turn.
    let mut server = ScramServer::new(ScramMechanism::Sha256);
    assert!(matches!(
        server.client_final(b"c=biws,r=x,p=AA=="),
        Err(ScramError::Malformed(_))
    ));
}

#[test]
fn random_and_truncated_bytes_never_panic() {
    use rand::Rng;
    let cred = credential(ScramMechanism::Sha256, "p", b"salt", 4096);
    let mut rng = rand::rng();
    let valid_first = b"n,,n=user,r=abcdefgh";
    for round in 0..2000 {
        let len = rng.random_range(0..64);
        let mut junk: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        if round % 2 == 0 {
            junk = valid_first[..rng.random_range(0..valid_first.len())].to_vec();
        }
        let mut server = ScramServer::new(ScramMechanism::Sha256);
        let _ = server.client_first(&junk, |_| Some(cred.clone()));
        let mut server = ScramServer::new(ScramMechanism::Sha256);
        if server
            .client_first(valid_first, |_| Some(cred.clone()))
            .is_ok()
        {
            assert!(server.client_final(&junk).is_err());
        }
    }
}
