//! SASL PLAIN (RFC 4616) as Kafka serves it: `authzid NUL authcid NUL password`, the
//! authorization id empty or equal to the user. Passwords are checked against the user's
//! SCRAM credential by deriving it (decision 0010): one credential store, nothing in clear.

use super::scram::{ScramCredential, ScramMechanism};

/// Longest PLAIN message accepted (user name and password together).
pub const PLAIN_MESSAGE_BYTES_MAX: usize = 4096;

/// A parsed PLAIN message.
#[derive(Debug, PartialEq, Eq)]
pub struct PlainLogin<'a> {
    pub user: &'a str,
    pub password: &'a [u8],
}

/// Parses `authzid NUL authcid NUL password`; the message says why it is refused.
pub fn parse(message: &[u8]) -> Result<PlainLogin<'_>, String> {
    if message.len() > PLAIN_MESSAGE_BYTES_MAX {
        return Err("PLAIN message too long".into());
    }
    let mut parts = message.splitn(3, |b| *b == 0);
    let (Some(authzid), Some(user), Some(password)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err("invalid PLAIN message: expected authzid NUL user NUL password".into());
    };
    let user = std::str::from_utf8(user).map_err(|_| "user name is not UTF-8".to_string())?;
    if user.is_empty() || password.is_empty() {
        return Err("PLAIN user name and password must not be empty".into());
    }
    if !authzid.is_empty() && authzid != user.as_bytes() {
        return Err("authorization id differs from the user name".into());
    }
    Ok(PlainLogin { user, password })
}

/// Whether `password` is the password of the user whose credentials `lookup` finds: the
/// strongest stored credential is derived and compared.
pub fn verify(password: &[u8], lookup: impl Fn(ScramMechanism) -> Option<ScramCredential>) -> bool {
    [ScramMechanism::Sha512, ScramMechanism::Sha256]
        .into_iter()
        .find_map(|m| lookup(m).map(|c| (m, c)))
        .is_some_and(|(mechanism, credential)| credential.matches_password(mechanism, password))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_messages_and_refuses_bad_ones() {
        assert_eq!(
            parse(b"\0alice\0pw"),
            Ok(PlainLogin {
                user: "alice",
                password: b"pw"
            })
        );
        assert!(parse(b"alice\0alice\0pw").is_ok());
        for bad in [
            &b""[..],
            b"\0alice",
            b"bob\0alice\0pw",
            b"\0\0pw",
            b"\0alice\0",
            b"\0\xff\0pw",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        assert!(parse(&vec![0u8; PLAIN_MESSAGE_BYTES_MAX + 1]).is_err());
    }

    #[test]
    fn verifies_against_the_strongest_scram_credential() {
        let m = ScramMechanism::Sha512;
        let salted = m.salted_password(b"pw", b"salt", 4096);
        let cred = ScramCredential::from_salted_password(m, &salted, b"salt", 4096);
        let lookup = |want| (want == m).then(|| cred.clone());
        assert!(verify(b"pw", lookup));
        assert!(!verify(b"pw2", lookup));
        assert!(!verify(b"pw", |_| None));
    }
}
