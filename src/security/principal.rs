//! Kafka's `KafkaPrincipal`: a type and a name, written `User:alice`. Every connection has one:
//! `User:ANONYMOUS` until a SASL exchange or a client certificate says otherwise, as in Kafka.

use std::fmt;

/// The principal type Kafka's authenticators produce (and ACLs name).
pub const USER_TYPE: &str = "User";
/// The name of the principal of an unauthenticated connection.
pub const ANONYMOUS_NAME: &str = "ANONYMOUS";
/// Longest principal string (`Type:name`) accepted from ACL requests or configs.
pub const PRINCIPAL_BYTES_MAX: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Principal {
    principal_type: String,
    name: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrincipalError {
    /// Not of the form `Type:name` with both parts non-empty.
    Malformed(String),
    TooLong(usize),
}

impl fmt::Display for PrincipalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PrincipalError::Malformed(s) => {
                write!(f, "principal {s:?} is not of the form Type:name")
            }
            PrincipalError::TooLong(n) => {
                write!(f, "principal is {n} bytes, at most {PRINCIPAL_BYTES_MAX}")
            }
        }
    }
}

impl std::error::Error for PrincipalError {}

impl Principal {
    /// `User:ANONYMOUS`: the principal of a connection nothing has authenticated.
    pub fn anonymous() -> Principal {
        Principal::user(ANONYMOUS_NAME)
    }

    /// `User:<name>`.
    pub fn user(name: &str) -> Principal {
        Principal {
            principal_type: USER_TYPE.to_string(),
            name: name.to_string(),
        }
    }

    /// Parses `Type:name` (the name may itself contain ':', as distinguished names do).
    pub fn parse(text: &str) -> Result<Principal, PrincipalError> {
        if text.len() > PRINCIPAL_BYTES_MAX {
            return Err(PrincipalError::TooLong(text.len()));
        }
        match text.split_once(':') {
            Some((principal_type, name)) if !principal_type.is_empty() && !name.is_empty() => {
                Ok(Principal {
                    principal_type: principal_type.to_string(),
                    name: name.to_string(),
                })
            }
            _ => Err(PrincipalError::Malformed(text.to_string())),
        }
    }

    pub fn principal_type(&self) -> &str {
        &self.principal_type
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn is_anonymous(&self) -> bool {
        self.principal_type == USER_TYPE && self.name == ANONYMOUS_NAME
    }
}

impl Default for Principal {
    fn default() -> Principal {
        Principal::anonymous()
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.principal_type, self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_type_and_name() {
        let p = Principal::parse("User:CN=alice,O=acme:x").unwrap();
        assert_eq!(p.principal_type(), "User");
        assert_eq!(p.name(), "CN=alice,O=acme:x");
        assert_eq!(p.to_string(), "User:CN=alice,O=acme:x");
        assert!(!p.is_anonymous());
        assert!(Principal::default().is_anonymous());
    }

    #[test]
    fn refuses_malformed_and_oversized_principals() {
        for bad in ["alice", ":alice", "User:", ""] {
            assert!(matches!(
                Principal::parse(bad),
                Err(PrincipalError::Malformed(_))
            ));
        }
        let long = format!("User:{}", "a".repeat(PRINCIPAL_BYTES_MAX));
        assert!(matches!(
            Principal::parse(&long),
            Err(PrincipalError::TooLong(_))
        ));
    }
}
