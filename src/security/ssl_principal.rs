//! The principal of a mutual-TLS connection, as Kafka's `DefaultKafkaPrincipalBuilder` makes
//! it: the client certificate's subject distinguished name in RFC 2253 form (what Java's
//! `X500Principal.getName()` prints: `CN=client,OU=eng,O=Acme,C=US`), passed through
//! `ssl.principal.mapping.rules` (`DEFAULT` and `RULE:pattern/replacement/[LU]`), as `User:`.
//!
//! Owns: reading the subject out of a certificate's DER (a small bounded DER walk; the chain
//! was already verified by rustls) and the mapping rules. Must not: verify certificates.

use super::Principal;

/// Longest mapping-rules setting accepted.
pub const MAPPING_RULES_BYTES_MAX: usize = 4096;
/// Most rules one setting may hold.
pub const MAPPING_RULES_MAX: usize = 64;

/// One of `ssl.principal.mapping.rules`.
#[derive(Debug, Clone)]
enum Rule {
    /// The distinguished name as it is.
    Default,
    /// When `pattern` matches the whole name: `replacement` (with `$1`...), then lower- or
    /// upper-cased.
    Pattern {
        pattern: regex::Regex,
        replacement: String,
        case: Case,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    Keep,
    Lower,
    Upper,
}

/// Kafka's `SslPrincipalMapper`: the rules in order, the first that applies wins.
#[derive(Debug, Clone)]
pub struct PrincipalMapper {
    rules: Vec<Rule>,
}

impl PrincipalMapper {
    /// Parses `ssl.principal.mapping.rules` (Kafka's syntax: rules separated by commas,
    /// `/` in a pattern or replacement escaped as `\/`).
    pub fn parse(text: &str) -> Result<PrincipalMapper, String> {
        if text.len() > MAPPING_RULES_BYTES_MAX {
            return Err(format!(
                "{} bytes, at most {MAPPING_RULES_BYTES_MAX}",
                text.len()
            ));
        }
        let mut rules = Vec::new();
        let mut rest = text.trim_start();
        while !rest.is_empty() {
            if rules.len() == MAPPING_RULES_MAX {
                return Err(format!("more than {MAPPING_RULES_MAX} rules"));
            }
            if let Some(after) = rest.strip_prefix("DEFAULT") {
                rules.push(Rule::Default);
                rest = after;
            } else if let Some(after) = rest.strip_prefix("RULE:") {
                let (pattern, after) = until_slash(after)?;
                let (replacement, after) = until_slash(after)?;
                let (case, after) = match after.chars().next() {
                    Some('L') => (Case::Lower, &after[1..]),
                    Some('U') => (Case::Upper, &after[1..]),
                    _ => (Case::Keep, after),
                };
                let pattern = regex::Regex::new(&format!("^(?:{pattern})$"))
                    .map_err(|e| format!("pattern {pattern:?}: {e}"))?;
                rules.push(Rule::Pattern {
                    pattern,
                    replacement,
                    case,
                });
                rest = after;
            } else {
                return Err(format!(
                    "{rest:?} is not DEFAULT or RULE:pattern/replacement/"
                ));
            }
            rest = rest.trim_start();
            match rest.strip_prefix(',') {
                Some(after) => rest = after.trim_start(),
                None if rest.is_empty() => {}
                None => return Err(format!("expected ',' before {rest:?}")),
            }
        }
        if rules.is_empty() {
            return Err("no rule".into());
        }
        Ok(PrincipalMapper { rules })
    }

    /// The principal name for distinguished name `dn`; `None` when no rule applies (Kafka
    /// then fails the authentication).
    pub fn map(&self, dn: &str) -> Option<String> {
        for rule in &self.rules {
            match rule {
                Rule::Default => return Some(dn.to_string()),
                Rule::Pattern {
                    pattern,
                    replacement,
                    case,
                } => {
                    if !pattern.is_match(dn) {
                        continue;
                    }
                    let mapped = pattern.replace(dn, replacement.as_str()).into_owned();
                    return Some(match case {
                        Case::Keep => mapped,
                        Case::Lower => mapped.to_lowercase(),
                        Case::Upper => mapped.to_uppercase(),
                    });
                }
            }
        }
        None
    }
}

impl Default for PrincipalMapper {
    fn default() -> Self {
        PrincipalMapper {
            rules: vec![Rule::Default],
        }
    }
}

/// Reads up to the next unescaped `/`: the text (with `\/` unescaped) and what follows it.
fn until_slash(text: &str) -> Result<(String, &str), String> {
    let mut out = String::new();
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '/' => return Ok((out, &text[i + 1..])),
            '\\' => match chars.next() {
                Some((_, '/')) => out.push('/'),
                Some((_, other)) => {
                    out.push('\\');
                    out.push(other);
                }
                None => out.push('\\'),
            },
            c => out.push(c),
        }
    }
    Err(format!("{text:?} lacks a closing '/'"))
}

/// The principal for a verified client certificate (DER): `User:` + the mapped subject.
pub fn principal_for_certificate(
    der: &[u8],
    mapper: &PrincipalMapper,
) -> Result<Principal, String> {
    let dn = subject_dn(der).ok_or("the client certificate's subject could not be read")?;
    let name = mapper
        .map(&dn)
        .ok_or_else(|| format!("no ssl.principal.mapping.rules rule applies to {dn:?}"))?;
    Ok(Principal::user(&name))
}

/// One DER element: its tag, its contents and what follows it.
fn element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        // Four length bytes cover every certificate a verifier accepted.
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let len = rest[..count]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, &rest[count..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
/// `[0] EXPLICIT Version` at the front of a v3 TBSCertificate.
const VERSION_TAG: u8 = 0xa0;

/// The certificate's subject in RFC 2253 form, as Java prints it.
pub fn subject_dn(der: &[u8]) -> Option<String> {
    let (tag, certificate, _) = element(der)?;
    if tag != SEQUENCE {
        return None;
    }
    let (tag, tbs, _) = element(certificate)?;
    if tag != SEQUENCE {
        return None;
    }
    let mut rest = tbs;
    if rest.first() == Some(&VERSION_TAG) {
        rest = element(rest)?.2;
    }
    // serialNumber, signature, issuer, validity, then subject.
    for _ in 0..4 {
        rest = element(rest)?.2;
    }
    let (tag, subject, _) = element(rest)?;
    if tag != SEQUENCE {
        return None;
    }
    let mut rdns = Vec::new();
    let mut rest = subject;
    while !rest.is_empty() {
        let (tag, set, after) = element(rest)?;
        if tag != SET {
            return None;
        }
        rest = after;
        let mut attributes = Vec::new();
        let mut inner = set;
        while !inner.is_empty() {
            let (tag, attribute, after) = element(inner)?;
            if tag != SEQUENCE {
                return None;
            }
            inner = after;
            attributes.push(attribute_text(attribute)?);
        }
        rdns.push(attributes.join("+"));
    }
    // RFC 2253 writes the most specific RDN first: the reverse of the DER order.
    rdns.reverse();
    Some(rdns.join(","))
}

/// `KEY=value` for one AttributeTypeAndValue.
fn attribute_text(attribute: &[u8]) -> Option<String> {
    let (tag, oid, value) = element(attribute)?;
    if tag != OID {
        return None;
    }
    let (value_tag, contents, _) = element(value)?;
    let encoded = &value[..value.len() - element(value)?.2.len()];
    let keyword = keyword(oid);
    let text = match (keyword, string_value(value_tag, contents)) {
        (Some(_), Some(text)) => escape(&text),
        // Unknown attribute types and non-string values: `#` and the DER hex, as Java.
        _ => format!("#{}", hex(encoded)),
    };
    let key = keyword.map_or_else(|| dotted_oid(oid), str::to_string);
    Some(format!("{key}={text}"))
}

/// The keywords Java's RFC 2253 form uses.
fn keyword(oid: &[u8]) -> Option<&'static str> {
    Some(match oid {
        [0x55, 0x04, 0x03] => "CN",
        [0x55, 0x04, 0x06] => "C",
        [0x55, 0x04, 0x07] => "L",
        [0x55, 0x04, 0x08] => "ST",
        [0x55, 0x04, 0x09] => "STREET",
        [0x55, 0x04, 0x0a] => "O",
        [0x55, 0x04, 0x0b] => "OU",
        [0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x19] => "DC",
        [0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x01] => "UID",
        _ => return None,
    })
}

/// A directory string's text; `None` for types printed as hex.
fn string_value(tag: u8, contents: &[u8]) -> Option<String> {
    match tag {
        // UTF8String, PrintableString, IA5String, (VisibleString).
        0x0c | 0x13 | 0x16 | 0x1a => std::str::from_utf8(contents).ok().map(str::to_string),
        // TeletexString: Latin-1 in practice.
        0x14 => Some(contents.iter().map(|&b| char::from(b)).collect()),
        // BMPString: UTF-16BE.
        0x1e if contents.len().is_multiple_of(2) => {
            let units: Vec<u16> = contents
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16(&units).ok()
        }
        _ => None,
    }
}

/// RFC 2253 section 2.4 escaping.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An OID's dotted form (`1.2.840.113549.1.9.1`).
fn dotted_oid(oid: &[u8]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut value: u64 = 0;
    for &b in oid {
        value = (value << 7) | u64::from(b & 0x7f);
        if b & 0x80 != 0 {
            continue;
        }
        if parts.is_empty() {
            let (first, second) = match value {
                0..40 => (0, value),
                40..80 => (1, value - 40),
                _ => (2, value - 80),
            };
            parts.push(first.to_string());
            parts.push(second.to_string());
        } else {
            parts.push(value.to_string());
        }
        value = 0;
    }
    parts.join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_the_whole_name() {
        let mapper = PrincipalMapper::parse("DEFAULT").unwrap();
        assert_eq!(
            mapper.map("CN=alice,OU=eng").as_deref(),
            Some("CN=alice,OU=eng")
        );
    }

    #[test]
    fn rules_apply_in_order_with_case_and_escaped_slashes() {
        let mapper = PrincipalMapper::parse(
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/L, RULE:^CN=([^,]*),O=(.*)$/$1\\/$2/U, DEFAULT",
        )
        .unwrap();
        assert_eq!(
            mapper.map("CN=Kafka-Svc,OU=ServiceUsers,O=Acme").as_deref(),
            Some("kafka-svc")
        );
        assert_eq!(mapper.map("CN=bob,O=acme").as_deref(), Some("BOB/ACME"));
        assert_eq!(mapper.map("UID=x").as_deref(), Some("UID=x"));
        let strict = PrincipalMapper::parse("RULE:^CN=(.*)$/$1/").unwrap();
        assert_eq!(strict.map("OU=x"), None);
    }

    #[test]
    fn bad_rules_are_refused() {
        for bad in ["", "RULE:abc", "DEFAULTX", "RULE:(/x/", "DEFAULT DEFAULT"] {
            assert!(PrincipalMapper::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn values_are_escaped_and_unknown_types_are_hex() {
        assert_eq!(escape("a,b+c"), "a\\,b\\+c");
        assert_eq!(escape(" x "), "\\ x\\ ");
        // emailAddress (1.2.840.113549.1.9.1) as IA5String "a@b".
        let attribute = [
            0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01, 0x16, 0x03, b'a',
            b'@', b'b',
        ];
        assert_eq!(
            attribute_text(&attribute).unwrap(),
            "1.2.840.113549.1.9.1=#1603614062"
        );
    }

    #[test]
    fn truncated_der_is_none_not_a_panic() {
        let attribute = [0x06, 0x03, 0x55, 0x04, 0x03, 0x0c, 0x05, b'a'];
        assert_eq!(attribute_text(&attribute), None);
        for n in 0..8 {
            assert_eq!(
                subject_dn(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff][..n.min(6)]),
                None
            );
        }
    }
}
