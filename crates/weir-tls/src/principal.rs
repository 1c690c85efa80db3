//! The principal a client certificate names, as Kafka's default principal
//! builder does: `User:` and the subject in RFC 2253 form (last RDN
//! first, no spaces, `CN=client,O=weir`), which is what Java's
//! `X500Principal.getName()` prints, so ACLs written for Kafka carry over.

use weir_auth::Principal;
use x509_parser::prelude::{FromDer as _, X509Certificate};
use x509_parser::x509::{AttributeTypeAndValue, X509Name};

use crate::TlsError;

/// The principal of a TLS connection: its client certificate's subject,
/// or `User:ANONYMOUS` without one (or with one whose subject cannot be
/// read, which the verifier would have refused already).
pub fn principal_of(conn: &rustls::ServerConnection) -> Principal {
    conn.peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(|leaf| subject_principal(leaf).ok())
        .unwrap_or_else(Principal::anonymous)
}

/// `User:<subject DN>` of a DER certificate.
pub fn subject_principal(der: &[u8]) -> Result<Principal, TlsError> {
    let (_, cert) =
        X509Certificate::from_der(der).map_err(|e| TlsError::Certificate(e.to_string()))?;
    let name = rfc2253(cert.subject());
    if name.is_empty() {
        return Err(TlsError::Certificate("the subject is empty".into()));
    }
    // Parsing checks the name against the principal's length limit.
    Principal::parse(&format!("{}:{name}", Principal::USER))
        .map_err(|e| TlsError::Certificate(e.to_string()))
}

/// RFC 2253's string form of a name: RDNs in reverse order joined by `,`,
/// the attributes of a multi-valued RDN by `+`.
fn rfc2253(name: &X509Name<'_>) -> String {
    let rdns: Vec<String> = name
        .iter()
        .map(|rdn| rdn.iter().map(attribute).collect::<Vec<_>>().join("+"))
        .collect();
    rdns.into_iter().rev().collect::<Vec<_>>().join(",")
}

/// `TYPE=value`: RFC 2253's short names, other types by their OID; a
/// value that is not a string as `#` and its bytes in hex.
fn attribute(atv: &AttributeTypeAndValue<'_>) -> String {
    let oid = atv.attr_type().to_id_string();
    let kind = match oid.as_str() {
        "2.5.4.3" => "CN",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "STREET",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        other => other,
    };
    let value = match atv.as_str() {
        Ok(s) => escape(s),
        Err(_) => {
            let bytes = atv.attr_value().data;
            let mut hex = String::with_capacity(1 + 2 * bytes.len());
            hex.push('#');
            for b in bytes {
                hex.push_str(&format!("{b:02x}"));
            }
            hex
        }
    };
    format!("{kind}={value}")
}

/// RFC 2253 section 2.4: `,+"\<>;` escaped, and a leading `#` or space
/// and a trailing space.
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

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn escapes_as_rfc2253() {
        assert_eq!(escape("plain"), "plain");
        assert_eq!(escape("a,b+c"), "a\\,b\\+c");
        assert_eq!(escape("#lead"), "\\#lead");
        assert_eq!(escape(" both "), "\\ both\\ ");
        assert_eq!(escape("q\"<>;\\"), "q\\\"\\<\\>\\;\\\\");
    }
}
