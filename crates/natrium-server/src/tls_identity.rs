//! What a client certificate says about who is connecting: for `/connz`'s
//! `tls_peer_certs` and for `verify_and_map`, which logs a client in as the configured
//! user its certificate names.
//!
//! Why our own formatting: users write the names they map certificates to in the form
//! nats-server prints and matches (Go's `pkix.Name.String()`, e.g.
//! `CN=alice,OU=Clients,O=Acme`), so a config that works there must work here. The
//! certificate itself is parsed by `x509-parser`; only the naming rules are ours.
//!
//! Matching follows nats-server's order: the certificate's e-mail addresses, then its DNS
//! names, then its URIs, each against user names literally; then its subject, literally in
//! Go's form, then as a distinguished name equal to a user name parsed as one (RFC 4514),
//! in the same order or any order of its RDNs.

use sha2::{Digest, Sha256};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate, X509Name};

/// One attribute of a distinguished name: its type (`CN`, `OU`, … or a dotted OID) and
/// its value.
pub type Attribute = (String, String);

/// What a certificate says about its holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerCert {
    /// The subject in Go's `pkix.Name.String()` form.
    pub subject: String,
    /// SHA-256 of the DER SubjectPublicKeyInfo, hex.
    pub spki_sha256: String,
    /// SHA-256 of the whole DER certificate, hex.
    pub cert_sha256: String,
    /// E-mail addresses among the subject alternative names.
    pub emails: Vec<String>,
    /// DNS names among the subject alternative names.
    pub dns_names: Vec<String>,
    /// URIs among the subject alternative names.
    pub uris: Vec<String>,
    /// The subject's RDNs, most specific first (RFC 4514 order), each a set of
    /// attributes.
    pub rdns: Vec<Vec<Attribute>>,
    /// The whole certificate in PEM, as Go's `pem.EncodeToMemory` writes it (an auth
    /// callout request carries the client's certificates so).
    pub pem: String,
}

/// `der` as a PEM `CERTIFICATE` block: base64 in lines of 64 characters, each ending in
/// a newline, between the BEGIN and END lines (Go's `pem.EncodeToMemory`).
fn pem_certificate(der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::with_capacity(b64.len() + b64.len() / 64 + 60);
    out.push_str("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// Short names of the attribute types Go and LDAP print by name.
fn attribute_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.6" => "C",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.3" => "CN",
        "2.5.4.5" => "SERIALNUMBER",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "STREET",
        "2.5.4.17" => "POSTALCODE",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        "1.2.840.113549.1.9.1" => "emailAddress",
        _ => return None,
    })
}

/// The order Go's `pkix.Name.ToRDNSequence` puts the typed fields in; any other attribute
/// follows them, in certificate order.
const GO_TYPED_ORDER: [&str; 9] = [
    "2.5.4.6", "2.5.4.8", "2.5.4.7", "2.5.4.9", "2.5.4.17", "2.5.4.10", "2.5.4.11", "2.5.4.3",
    "2.5.4.5",
];

/// Go's escaping of a value in `RDNSequence.String()`.
fn go_escape(v: &str, out: &mut String) {
    let n = v.chars().count();
    for (i, c) in v.chars().enumerate() {
        let escape = match c {
            ',' | '+' | '"' | '\\' | '<' | '>' | ';' => true,
            ' ' => i == 0 || i + 1 == n,
            '#' => i == 0,
            _ => false,
        };
        if escape {
            out.push('\\');
        }
        out.push(c);
    }
}

/// Go's `pkix.Name.String()` of a subject: the typed fields, each as one RDN holding all
/// its values, in Go's fixed order, then every other attribute as an RDN of its own; the
/// whole sequence printed last to first.
fn go_subject(name: &X509Name<'_>) -> String {
    let attrs: Vec<(String, String)> = name
        .iter_attributes()
        .map(|a| {
            let oid = a.attr_type().to_id_string();
            let value = a.as_str().map(str::to_string).unwrap_or_default();
            (oid, value)
        })
        .collect();
    let mut seq: Vec<Vec<(String, String)>> = Vec::new();
    for typed in GO_TYPED_ORDER {
        let values: Vec<_> = attrs.iter().filter(|(o, _)| o == typed).cloned().collect();
        if !values.is_empty() {
            seq.push(values);
        }
    }
    for (oid, value) in &attrs {
        if !GO_TYPED_ORDER.contains(&oid.as_str()) {
            seq.push(vec![(oid.clone(), value.clone())]);
        }
    }
    let mut out = String::new();
    for (i, rdn) in seq.iter().rev().enumerate() {
        if i > 0 {
            out.push(',');
        }
        for (j, (oid, value)) in rdn.iter().enumerate() {
            if j > 0 {
                out.push('+');
            }
            // Go names only its own typed fields; everything else is a dotted OID.
            let name = attribute_name(oid).filter(|_| GO_TYPED_ORDER.contains(&oid.as_str()));
            out.push_str(name.unwrap_or(oid));
            out.push('=');
            go_escape(value, &mut out);
        }
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

impl PeerCert {
    /// Reads a DER certificate; `None` if it does not parse (rustls has verified it when
    /// verification is on, so that only happens for unverified peers).
    pub fn parse(der: &[u8]) -> Option<PeerCert> {
        let (_, cert) = X509Certificate::from_der(der).ok()?;
        let (mut emails, mut dns_names, mut uris) = (Vec::new(), Vec::new(), Vec::new());
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for n in &san.value.general_names {
                match n {
                    GeneralName::RFC822Name(s) => emails.push(s.to_string()),
                    GeneralName::DNSName(s) => dns_names.push(s.to_string()),
                    GeneralName::URI(s) => uris.push(s.to_string()),
                    _ => {}
                }
            }
        }
        let mut rdns: Vec<Vec<Attribute>> = cert
            .subject()
            .iter()
            .map(|rdn| {
                rdn.iter()
                    .map(|a| {
                        let oid = a.attr_type().to_id_string();
                        let ty = attribute_name(&oid).map_or(oid, str::to_string);
                        (ty, a.as_str().map(str::to_string).unwrap_or_default())
                    })
                    .collect()
            })
            .collect();
        rdns.reverse();
        Some(PeerCert {
            subject: go_subject(cert.subject()),
            spki_sha256: hex(&Sha256::digest(cert.public_key().raw)),
            cert_sha256: hex(&Sha256::digest(der)),
            emails,
            dns_names,
            uris,
            rdns,
            pem: pem_certificate(der),
        })
    }

    /// The user this certificate maps to, among `users` (`verify_and_map`), in
    /// nats-server's order of preference.
    pub fn map_user<'a>(&self, users: impl Iterator<Item = &'a str> + Clone) -> Option<&'a str> {
        let literal = |want: &str| users.clone().find(|u| *u == want);
        for candidate in self.emails.iter().chain(&self.dns_names).chain(&self.uris) {
            if let Some(u) = literal(candidate) {
                return Some(u);
            }
        }
        if let Some(u) = literal(&self.subject) {
            return Some(u);
        }
        let parsed: Vec<(&str, Vec<Vec<Attribute>>)> = users
            .filter_map(|u| parse_dn(u).map(|dn| (u, dn)))
            .collect();
        // The same RDNs in the same order first, then in any order.
        if let Some((u, _)) = parsed.iter().find(|(_, dn)| dn_equal(dn, &self.rdns)) {
            return Some(u);
        }
        parsed
            .iter()
            .find(|(_, dn)| {
                dn.len() == self.rdns.len()
                    && dn.iter().all(|r| self.rdns.iter().any(|c| rdn_equal(r, c)))
            })
            .map(|(u, _)| *u)
    }
}

fn rdn_equal(a: &[Attribute], b: &[Attribute]) -> bool {
    a.len() == b.len()
        && a.iter().all(|(t, v)| {
            b.iter()
                .any(|(t2, v2)| t.eq_ignore_ascii_case(t2) && v == v2)
        })
}

fn dn_equal(a: &[Vec<Attribute>], b: &[Vec<Attribute>]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| rdn_equal(x, y))
}

/// Parses an RFC 4514 distinguished name (`CN=alice,OU=Clients,O=Acme`; `+` joins
/// attributes of one RDN; `\` escapes a character or two hex digits). `None` if it is not
/// one (a plain user name).
pub fn parse_dn(s: &str) -> Option<Vec<Vec<Attribute>>> {
    let mut rdns: Vec<Vec<Attribute>> = Vec::new();
    let mut rdn: Vec<Attribute> = Vec::new();
    let (mut ty, mut val) = (String::new(), Vec::<u8>::new());
    let mut in_value = false;
    let bytes = s.as_bytes();
    let mut i = 0;
    let finish = |ty: &mut String, val: &mut Vec<u8>, rdn: &mut Vec<Attribute>| -> Option<()> {
        let t = ty.trim();
        if t.is_empty() {
            return None;
        }
        let v = String::from_utf8(std::mem::take(val)).ok()?;
        rdn.push((t.to_string(), v.trim().to_string()));
        ty.clear();
        Some(())
    };
    while i < bytes.len() {
        let c = bytes[i];
        if !in_value {
            match c {
                b'=' => in_value = true,
                b',' | b'+' | b'\\' => return None,
                _ => ty.push(c as char),
            }
            i += 1;
            continue;
        }
        match c {
            b'\\' => {
                let next = *bytes.get(i + 1)?;
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        val.push(b);
                        i += 3;
                    }
                    None => {
                        val.push(next);
                        i += 2;
                    }
                }
                continue;
            }
            b'+' | b',' => {
                finish(&mut ty, &mut val, &mut rdn)?;
                in_value = false;
                if c == b',' {
                    rdns.push(std::mem::take(&mut rdn));
                }
            }
            _ => val.push(c),
        }
        i += 1;
    }
    if !in_value {
        return None;
    }
    finish(&mut ty, &mut val, &mut rdn)?;
    rdns.push(rdn);
    Some(rdns)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;

    fn cert(name: &str) -> PeerCert {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/data/tls")
            .join(name);
        let der = CertificateDer::from_pem_file(path).unwrap();
        PeerCert::parse(&der).unwrap()
    }

    #[test]
    fn reads_the_test_client_certificate() {
        let c = cert("client-cert.pem");
        assert_eq!(c.subject, "CN=alice,OU=Clients,O=Natrium Test");
        assert_eq!(c.emails, vec!["alice@example.com"]);
        assert!(c.dns_names.is_empty());
        assert_eq!(c.cert_sha256.len(), 64);
        assert_eq!(c.spki_sha256.len(), 64);
        assert_ne!(c.cert_sha256, c.spki_sha256);
        // The PEM is the file's certificate block, byte for byte.
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/data/tls/client-cert.pem");
        let file = std::fs::read_to_string(path).unwrap();
        assert!(file.contains(&c.pem), "{}", c.pem);
        assert!(c.pem.lines().all(|l| l.len() <= 64));
        assert_eq!(
            c.rdns,
            vec![
                vec![("CN".to_string(), "alice".to_string())],
                vec![("OU".to_string(), "Clients".to_string())],
                vec![("O".to_string(), "Natrium Test".to_string())],
            ]
        );
    }

    #[test]
    fn maps_in_nats_server_order() {
        let c = cert("client-cert.pem");
        // The e-mail address wins over the subject.
        let users = ["CN=alice,OU=Clients,O=Natrium Test", "alice@example.com"];
        assert_eq!(c.map_user(users.iter().copied()), Some("alice@example.com"));
        // The subject in Go's form.
        let users = ["bob", "CN=alice,OU=Clients,O=Natrium Test"];
        assert_eq!(
            c.map_user(users.iter().copied()),
            Some("CN=alice,OU=Clients,O=Natrium Test")
        );
        // As a DN: spaces and case of types do not matter, and the RDNs may be reordered.
        let users = ["o=Natrium Test, ou=Clients, cn=alice"];
        assert_eq!(c.map_user(users.iter().copied()), Some(users[0]));
        // A different value does not match; nor does a subset.
        let users = [
            "CN=alice,OU=Servers,O=Natrium Test",
            "CN=alice,O=Natrium Test",
            "alice",
        ];
        assert_eq!(c.map_user(users.iter().copied()), None);
    }

    #[test]
    fn dn_parsing_and_go_escaping() {
        assert_eq!(
            parse_dn(r"CN=a\,b+UID=7,O=x\2Cy"),
            Some(vec![
                vec![
                    ("CN".to_string(), "a,b".to_string()),
                    ("UID".to_string(), "7".to_string())
                ],
                vec![("O".to_string(), "x,y".to_string())],
            ])
        );
        assert_eq!(parse_dn("alice"), None);
        assert_eq!(parse_dn("=x"), None);
        let mut s = String::new();
        go_escape(" #a,b ", &mut s);
        assert_eq!(s, r"\ #a\,b\ ");
    }
}
