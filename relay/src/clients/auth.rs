//! Who may open `/ws`, and which workflows they may see.
//!
//! - **Tokens**: HMAC-signed JWTs (HS256, HS384 or HS512) with the shared secret of
//!   `[auth] jwt_secret` / `jwt_secret_file`. The `workflows` claim lists the
//!   workflow ids the holder may see, or is `"*"` for all; `exp` is required and
//!   honoured (an open connection is closed when its token expires). Browsers cannot
//!   set headers on a websocket, so the token comes as `/ws?token=...`; other clients
//!   may send `Authorization: Bearer ...` instead.
//! - **Origin**: with `allowed_origins` set, a websocket whose `Origin` header is not
//!   exactly one of them is refused (403); a request without `Origin` (not a browser)
//!   only when `allow_no_origin` says so.
//!
//! The [`Access`] a token grants is applied to every subscription, `resume` and
//! `resync` of the connection (see [`crate::clients::session`]): a workflow outside it behaves
//! exactly like one that does not exist.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use clonewire_core::Subscription;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use crate::config::{AuthConfig, ConfigError};

/// The workflows one connection may see.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Access {
    /// Every workflow (no authentication configured, or a `"*"` claim).
    All,
    /// Only these workflow ids.
    Only(Arc<BTreeSet<String>>),
}

impl Access {
    /// True when the connection may see `workflow`.
    pub fn allows(&self, workflow: &str) -> bool {
        match self {
            Access::All => true,
            Access::Only(ids) => ids.contains(workflow),
        }
    }

    /// The part of `sub` this connection may see.
    pub fn restrict(&self, sub: Subscription) -> Subscription {
        match self {
            Access::All => sub,
            Access::Only(ids) => sub.restrict_workflows(ids),
        }
    }
}

/// What a successful check grants one connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    /// The workflows it may see.
    pub access: Access,
    /// When its token expires (`None`: no token needed).
    pub expires: Option<SystemTime>,
}

impl Grant {
    /// Everything, forever: the grant of a relay without authentication.
    pub fn open() -> Grant {
        Grant {
            access: Access::All,
            expires: None,
        }
    }
}

/// Why a request was refused. The response says as little as possible: every token
/// problem looks the same to the client (the reason is logged at debug level).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No token, or one that is malformed, badly signed, expired or lacks claims: 401.
    Unauthorized,
    /// The `Origin` header is not allowed: 403.
    Forbidden,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "missing, invalid or expired token",
            )
                .into_response(),
            Refusal::Forbidden => (StatusCode::FORBIDDEN, "origin not allowed").into_response(),
        }
    }
}

/// The claims the relay reads; others (`sub`, `iat`, ...) are ignored.
#[derive(Deserialize)]
struct Claims {
    exp: u64,
    workflows: WorkflowsClaim,
}

/// `"*"` or a list of workflow ids.
#[derive(Deserialize)]
#[serde(untagged)]
enum WorkflowsClaim {
    List(Vec<String>),
    Wildcard(String),
}

/// The relay's authentication and origin rules, ready to check requests.
pub struct Auth {
    /// The token key and rules; `None` when tokens are not required.
    tokens: Option<(DecodingKey, Validation)>,
    /// Exact origins allowed; `None` when any origin is.
    origins: Option<HashSet<String>>,
    allow_no_origin: bool,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("tokens", &self.tokens.is_some())
            .field("origins", &self.origins)
            .field("allow_no_origin", &self.allow_no_origin)
            .finish()
    }
}

impl Auth {
    /// Builds the rules from the config, reading `jwt_secret_file` if given.
    pub fn from_config(config: &AuthConfig) -> Result<Auth, ConfigError> {
        let secret = config.secret()?;
        let tokens = secret.map(|secret| {
            let mut validation = Validation::new(Algorithm::HS256);
            validation.algorithms = vec![Algorithm::HS256, Algorithm::HS384, Algorithm::HS512];
            validation.leeway = config.leeway_secs;
            validation.validate_exp = true;
            validation.validate_nbf = true;
            validation.required_spec_claims = ["exp".to_owned()].into_iter().collect();
            match &config.audience {
                Some(aud) => validation.set_audience(&[aud]),
                None => validation.validate_aud = false,
            }
            if let Some(iss) = &config.issuer {
                validation.set_issuer(&[iss]);
            }
            (DecodingKey::from_secret(&secret), validation)
        });
        Ok(Auth {
            tokens,
            origins: config
                .allowed_origins
                .as_ref()
                .map(|list| list.iter().cloned().collect()),
            allow_no_origin: config.allow_no_origin,
        })
    }

    /// True when `/ws` needs a token.
    pub fn requires_token(&self) -> bool {
        self.tokens.is_some()
    }

    /// True when `Origin` is checked.
    pub fn checks_origin(&self) -> bool {
        self.origins.is_some()
    }

    /// Checks a websocket request: its `Origin`, then its token.
    pub fn check_websocket(&self, headers: &HeaderMap, query: Option<&str>) -> Result<Grant, Refusal> {
        self.check_origin(headers)?;
        self.check_token(headers, query)
    }

    /// Checks the `Origin` header against the allow-list.
    pub fn check_origin(&self, headers: &HeaderMap) -> Result<(), Refusal> {
        let Some(allowed) = &self.origins else {
            return Ok(());
        };
        match headers.get(header::ORIGIN) {
            None if self.allow_no_origin => Ok(()),
            None => Err(Refusal::Forbidden),
            Some(origin) => match origin.to_str() {
                Ok(origin) if allowed.contains(origin) => Ok(()),
                _ => Err(Refusal::Forbidden),
            },
        }
    }

    /// Checks the token (header first, then the `token` query parameter) and returns
    /// what it grants; without token rules, everything.
    pub fn check_token(&self, headers: &HeaderMap, query: Option<&str>) -> Result<Grant, Refusal> {
        let Some((key, validation)) = &self.tokens else {
            return Ok(Grant::open());
        };
        let token = bearer(headers)
            .or_else(|| query.and_then(token_param))
            .ok_or(Refusal::Unauthorized)?;
        let claims = jsonwebtoken::decode::<Claims>(token, key, validation)
            .map_err(|e| {
                tracing::debug!(error = %e, "token refused");
                Refusal::Unauthorized
            })?
            .claims;
        let access = match claims.workflows {
            WorkflowsClaim::Wildcard(s) if s == "*" => Access::All,
            WorkflowsClaim::Wildcard(_) => {
                tracing::debug!("token refused: workflows is neither \"*\" nor a list");
                return Err(Refusal::Unauthorized);
            }
            WorkflowsClaim::List(ids) => Access::Only(Arc::new(ids.into_iter().collect())),
        };
        Ok(Grant {
            access,
            expires: Some(UNIX_EPOCH + Duration::from_secs(claims.exp)),
        })
    }
}

/// `Authorization: Bearer TOKEN`.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// The `token` parameter of a query string. A JWT is URL-safe as it is, so the value
/// is taken verbatim.
fn token_param(query: &str) -> Option<&str> {
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix("token="))
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;
    use axum::http::HeaderValue;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn auth(origins: Option<&[&str]>, allow_no_origin: bool) -> Auth {
        Auth::from_config(&AuthConfig {
            jwt_secret: Some(Secret::new(SECRET)),
            allowed_origins: origins.map(|o| o.iter().map(|s| (*s).to_owned()).collect()),
            allow_no_origin,
            ..AuthConfig::default()
        })
        .expect("valid auth config")
    }

    fn token(claims: serde_json::Value) -> String {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .expect("encodes")
    }

    fn in_an_hour() -> u64 {
        jsonwebtoken::get_current_timestamp() + 3600
    }

    #[test]
    fn the_query_parameter_and_the_header_both_carry_a_token() {
        let auth = auth(None, false);
        let t = token(serde_json::json!({"exp": in_an_hour(), "workflows": ["a"]}));
        let grant = auth
            .check_token(&HeaderMap::new(), Some(&format!("x=1&token={t}")))
            .unwrap();
        assert!(grant.access.allows("a") && !grant.access.allows("b"));
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {t}")).unwrap(),
        );
        assert_eq!(auth.check_token(&headers, None).unwrap().access, grant.access);
    }

    #[test]
    fn a_wildcard_claim_sees_everything_and_other_strings_are_refused() {
        let auth = auth(None, false);
        let all = token(serde_json::json!({"exp": in_an_hour(), "workflows": "*"}));
        let grant = auth
            .check_token(&HeaderMap::new(), Some(&format!("token={all}")))
            .unwrap();
        assert_eq!(grant.access, Access::All);
        let odd = token(serde_json::json!({"exp": in_an_hour(), "workflows": "a"}));
        assert_eq!(
            auth.check_token(&HeaderMap::new(), Some(&format!("token={odd}"))),
            Err(Refusal::Unauthorized)
        );
    }

    #[test]
    fn tokens_without_exp_or_workflows_are_refused() {
        let auth = auth(None, false);
        for claims in [
            serde_json::json!({"workflows": ["a"]}),
            serde_json::json!({"exp": in_an_hour()}),
        ] {
            let t = token(claims);
            assert_eq!(
                auth.check_token(&HeaderMap::new(), Some(&format!("token={t}"))),
                Err(Refusal::Unauthorized)
            );
        }
    }

    #[test]
    fn origins_are_matched_exactly() {
        let auth = auth(Some(&["https://ok.example"]), false);
        let with = |origin: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::ORIGIN, HeaderValue::from_str(origin).unwrap());
            h
        };
        assert_eq!(auth.check_origin(&with("https://ok.example")), Ok(()));
        assert_eq!(
            auth.check_origin(&with("https://ok.example.evil")),
            Err(Refusal::Forbidden)
        );
        assert_eq!(
            auth.check_origin(&with("http://ok.example")),
            Err(Refusal::Forbidden)
        );
        assert_eq!(auth.check_origin(&HeaderMap::new()), Err(Refusal::Forbidden));
        let lenient = super::Auth {
            allow_no_origin: true,
            ..auth
        };
        assert_eq!(lenient.check_origin(&HeaderMap::new()), Ok(()));
    }

    #[test]
    fn the_debug_form_never_shows_the_secret() {
        let text = format!("{:?}", auth(None, false));
        assert!(!text.contains(SECRET), "{text}");
    }
}
