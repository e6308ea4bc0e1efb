//! A workflow's CURVE keys, read from its `.service/` directory.
//!
//! A Cylc scheduler admits only clients whose public key is in
//! `.service/client_public_keys/`, so a link uses the workflow's own client pair,
//! `.service/client.key_secret`, and trusts the server key in `.service/server.key`.
//! Both files are ZeroMQ certificates (ZPL text, as pyzmq writes them):
//!
//! ```text
//! #   ZeroMQ CURVE **Secret** Certificate
//! metadata
//! curve
//!     public-key = "<40 Z85 characters>"
//!     secret-key = "<40 Z85 characters>"
//! ```

use std::path::{Path, PathBuf};

use clonewire_zmq::sockets::{CurveClient, CurveKeyPair, CurvePublicKey, CurveSecretKey};

/// The client's key pair, in the workflow's service directory.
pub const CLIENT_SECRET_FILE: &str = "client.key_secret";
/// The scheduler's public key, in the workflow's service directory.
pub const SERVER_PUBLIC_FILE: &str = "server.key";
/// Certificates larger than this are not certificates (pyzmq's are ~350 bytes).
const MAX_CERTIFICATE_BYTES: u64 = 64 * 1024;

/// Why a workflow's keys could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file could not be read.
    #[error("CURVE certificate {path}: {source}")]
    Read {
        /// The certificate file.
        path: PathBuf,
        /// Why it could not be read.
        source: std::io::Error,
    },
    /// The file is not a usable certificate.
    #[error("CURVE certificate {path}: {why}")]
    Bad {
        /// The certificate file.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
}

/// The keys of a ZeroMQ certificate file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Certificate {
    /// `curve/public-key`.
    pub public: CurvePublicKey,
    /// `curve/secret-key`, present in secret certificates only.
    pub secret: Option<CurveSecretKey>,
}

impl Certificate {
    /// Parses certificate text: `#` comments, sections by indentation, and
    /// `name = "value"` (or unquoted) properties. Only `curve`'s `public-key` and
    /// `secret-key` matter; other sections and properties are ignored.
    pub fn parse(text: &str) -> Result<Certificate, String> {
        // The section a property belongs to: the last unindented name seen.
        let mut section: Option<&str> = None;
        let mut public = None;
        let mut secret = None;
        for (n, raw) in text.lines().enumerate() {
            let line = raw.trim_end();
            let content = line.trim_start();
            if content.is_empty() || content.starts_with('#') {
                continue;
            }
            let indented = content.len() != line.len();
            if !indented {
                section = Some(content);
                continue;
            }
            if section != Some("curve") {
                continue;
            }
            let Some((name, value)) = content.split_once('=') else {
                continue;
            };
            let name = name.trim();
            if name != "public-key" && name != "secret-key" {
                continue;
            }
            let value = unquote(value.trim())
                .ok_or_else(|| format!("line {}: {name} is not a quoted value", n + 1))?;
            // Secret and public keys share the Z85 key format.
            let key = CurvePublicKey::parse(value).map_err(|why| format!("line {}: {name}: {why}", n + 1))?;
            let slot = if name == "public-key" {
                &mut public
            } else {
                &mut secret
            };
            if slot.is_some() {
                return Err(format!("line {}: {name} given twice", n + 1));
            }
            *slot = Some(key.0);
        }
        let public = public.ok_or("no curve public-key")?;
        Ok(Certificate {
            public: CurvePublicKey(public),
            secret: secret.map(CurveSecretKey),
        })
    }

    /// Reads and parses a certificate file.
    pub fn from_file(path: &Path) -> Result<Certificate, KeyError> {
        let read = |source| KeyError::Read {
            path: path.to_owned(),
            source,
        };
        let size = std::fs::metadata(path).map_err(read)?.len();
        if size > MAX_CERTIFICATE_BYTES {
            return Err(KeyError::Bad {
                path: path.to_owned(),
                why: format!("{size} bytes is too big for a certificate"),
            });
        }
        let text = std::fs::read_to_string(path).map_err(read)?;
        Certificate::parse(&text).map_err(|why| KeyError::Bad {
            path: path.to_owned(),
            why,
        })
    }
}

/// Unquotes `"value"` or `'value'`; a bare value (ZPL allows it) is taken as is.
fn unquote(value: &str) -> Option<&str> {
    for quote in ['"', '\''] {
        if let Some(rest) = value.strip_prefix(quote) {
            return rest.strip_suffix(quote);
        }
    }
    if value.is_empty() || value.contains(['"', '\'']) {
        None
    } else {
        Some(value)
    }
}

/// The CURVE settings for talking to the workflow whose service directory is
/// `service_dir`: its client pair and its server's public key.
pub fn workflow_client(service_dir: &Path) -> Result<CurveClient, KeyError> {
    let client_path = service_dir.join(CLIENT_SECRET_FILE);
    let client = Certificate::from_file(&client_path)?;
    let Some(secret) = client.secret else {
        return Err(KeyError::Bad {
            path: client_path,
            why: "no curve secret-key (a client certificate must hold the secret key)".into(),
        });
    };
    let server = Certificate::from_file(&service_dir.join(SERVER_PUBLIC_FILE))?;
    Ok(CurveClient {
        server_key: server.public,
        keys: CurveKeyPair {
            public: client.public,
            secret,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PUBLIC: &str = "eG(J/Rki-66zY<5i1-@IX?[U@E*MC6n423Q>@B+d";
    const SECRET: &str = "Jha/{Y#wR#V1!c70-A8CM>A!AA+bI7DSU5<+48{b";

    fn secret_cert() -> String {
        format!(
            "#   ****  Generated by pyzmq  ****\n#   ZeroMQ CURVE **Secret** Certificate\n\n\
             metadata\ncurve\n    public-key = \"{PUBLIC}\"\n    secret-key = \"{SECRET}\"\n"
        )
    }

    #[test]
    fn reads_a_pyzmq_secret_certificate() {
        let cert = Certificate::parse(&secret_cert()).unwrap();
        assert_eq!(cert.public.0, PUBLIC);
        assert_eq!(cert.secret.unwrap().0, SECRET);
    }

    #[test]
    fn a_public_certificate_has_no_secret() {
        let cert = Certificate::parse(&format!("metadata\ncurve\n    public-key = \"{PUBLIC}\"\n")).unwrap();
        assert_eq!(cert.public.0, PUBLIC);
        assert!(cert.secret.is_none());
    }

    #[test]
    fn keys_outside_the_curve_section_do_not_count() {
        let text = format!("metadata\n    public-key = \"{PUBLIC}\"\n");
        assert_eq!(Certificate::parse(&text).unwrap_err(), "no curve public-key");
    }

    #[test]
    fn bad_certificates_say_what_is_wrong() {
        let short = "curve\n    public-key = \"abc\"\n";
        assert!(Certificate::parse(short)
            .unwrap_err()
            .contains("40 Z85 characters"));
        let unclosed = format!("curve\n    public-key = \"{PUBLIC}\n");
        assert!(Certificate::parse(&unclosed)
            .unwrap_err()
            .contains("not a quoted value"));
        let twice = format!("curve\n    public-key = \"{PUBLIC}\"\n    public-key = \"{PUBLIC}\"\n");
        assert!(Certificate::parse(&twice).unwrap_err().contains("given twice"));
        assert!(Certificate::parse("").is_err());
    }

    #[test]
    fn the_workflow_client_needs_both_files_and_a_secret() {
        let dir = std::env::temp_dir().join(format!("clonewire-cylc-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = workflow_client(&dir).unwrap_err().to_string();
        assert!(missing.contains(CLIENT_SECRET_FILE), "{missing}");

        let public_only = format!("curve\n    public-key = \"{PUBLIC}\"\n");
        std::fs::write(dir.join(CLIENT_SECRET_FILE), &public_only).unwrap();
        std::fs::write(dir.join(SERVER_PUBLIC_FILE), &public_only).unwrap();
        let no_secret = workflow_client(&dir).unwrap_err().to_string();
        assert!(no_secret.contains("no curve secret-key"), "{no_secret}");

        std::fs::write(dir.join(CLIENT_SECRET_FILE), secret_cert()).unwrap();
        let client = workflow_client(&dir).unwrap();
        assert_eq!(client.server_key.0, PUBLIC);
        assert_eq!(client.keys.secret.0, SECRET);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
