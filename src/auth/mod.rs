//! Merchant authentication: API keys (long-lived, hashed, revocable, with a role) are exchanged for
//! short-lived HS256 access tokens; every `/v1` handler takes a [`Caller`] and asks it for a
//! [`Permission`]. Everything a caller reads or writes is scoped to `caller.merchant_id`.

pub mod keys;

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::{FromRequest, HttpRequest, dev::Payload, http::header, web};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::db::{Db, DbConnection};
use crate::error::{ApiError, ErrorCode};
use crate::kernel::MerchantId;
use crate::rate_limit::{self, Verdict};

const ISSUER: &str = "threadcart";
const AUDIENCE: &str = "threadcart-api";
/// The longest lifetime (`exp` minus `iat`) a token may claim: ours live 15 minutes, and a token made
/// with the secret to live longer is refused.
const MAX_LIFETIME_SECS: u64 = 3600;

/// What an API key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything.
    Owner,
    /// Catalog, offers, bookables.
    Catalog,
    /// Reports and read-only threads.
    Marketing,
    /// Threads and messages.
    Agent,
}

impl Role {
    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Catalog => "catalog",
            Role::Marketing => "marketing",
            Role::Agent => "agent",
        }
    }

    /// Parses a stored or wire name.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "owner" => Some(Role::Owner),
            "catalog" => Some(Role::Catalog),
            "marketing" => Some(Role::Marketing),
            "agent" => Some(Role::Agent),
            _ => None,
        }
    }

    /// Whether this role grants `permission`.
    pub fn allows(self, permission: Permission) -> bool {
        use Permission::*;
        match self {
            Role::Owner => true,
            Role::Catalog => matches!(permission, ReadMerchant | ReadCatalog | WriteCatalog),
            Role::Marketing => matches!(
                permission,
                ReadMerchant | ReadCatalog | ReadThreads | ReadOrders | ReadReports
            ),
            Role::Agent => matches!(
                permission,
                ReadMerchant | ReadCatalog | ReadThreads | WriteThreads | ReadOrders
            ),
        }
    }
}

/// An action a route performs, checked against the caller's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Read the merchant's own profile.
    ReadMerchant,
    /// Change the merchant's settings (name, timezone, business hours, away text).
    ManageMerchant,
    /// Create and revoke API keys.
    ManageKeys,
    /// Connect and disconnect channels: Messenger Pages, Instagram accounts, the web chat.
    ManagePages,
    /// Read products and variants.
    ReadCatalog,
    /// Change products, variants and stock; import feeds.
    WriteCatalog,
    /// Read threads, their touches and messages.
    ReadThreads,
    /// Write to shoppers and hand threads over.
    WriteThreads,
    /// See and replay dead-lettered webhook events.
    ManageWebhooks,
    /// Read orders.
    ReadOrders,
    /// Refund orders.
    ManageOrders,
    /// Read funnel reports and the Conversions API events.
    ReadReports,
}

/// The rate-limit bucket of failed token exchanges per client address.
pub const FAILED_BY_CLIENT: &str = "auth_failed_client";
/// The rate-limit bucket of failed token exchanges per key prefix (the first 11 characters given).
pub const FAILED_BY_KEY_PREFIX: &str = "auth_failed_key_prefix";

/// What exchanging an API key gave.
#[derive(Debug)]
pub enum Exchange {
    /// A live key: a token may be issued.
    Key(keys::ApiKey),
    /// No live key matches; within the failures allowed.
    Refused,
    /// No live key matches, and the client (or the key prefix) has used up its failures: retry after
    /// these seconds.
    Limited(u64),
}

/// Looks the key up, then, only when it is refused, counts the failure per client address and per key
/// prefix. A live key always passes: failures from the same address (behind one NAT or proxy, every
/// merchant's) or on the same prefix lock no one with a valid key out; they only stop the guessing.
pub fn exchange(
    conn: &mut DbConnection,
    plaintext: &str,
    client: IpAddr,
    max_failures: u32,
    window: Duration,
) -> diesel::QueryResult<Exchange> {
    if !plaintext.is_empty()
        && plaintext.len() <= 200
        && let Some(key) = keys::find_live_by_plaintext(conn, plaintext)?
    {
        return Ok(Exchange::Key(key));
    }
    // Both counts in one transaction (rows locked in the same order by every caller), so a burst of
    // failures is counted in one order in both buckets: exactly `max_failures` of them are refused
    // with 401, the rest with 429.
    let (by_client, by_prefix) = crate::db::write_transaction(conn, |conn| {
        let by_client = rate_limit::hit(conn, FAILED_BY_CLIENT, &client.to_string(), max_failures, window)?;
        let by_prefix = rate_limit::hit(
            conn,
            FAILED_BY_KEY_PREFIX,
            &keys::prefix_of(plaintext),
            max_failures,
            window,
        )?;
        Ok::<_, diesel::result::Error>((by_client, by_prefix))
    })?;
    Ok(match (by_client, by_prefix) {
        (Verdict::Allowed, Verdict::Allowed) => Exchange::Refused,
        (Verdict::RetryAfter(a), Verdict::RetryAfter(b)) => Exchange::Limited(a.max(b)),
        (Verdict::RetryAfter(secs), _) | (_, Verdict::RetryAfter(secs)) => Exchange::Limited(secs),
    })
}

/// The claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
    /// The merchant.
    pub sub: MerchantId,
    /// The API key the token was minted from (checked for revocation on every call).
    pub kid: Uuid,
    /// The key's role when the token was issued (the API reads the key's role at every call).
    pub role: Role,
    /// Issued at (Unix seconds).
    pub iat: u64,
    /// Expires at (Unix seconds).
    pub exp: u64,
}

/// Mints and checks access tokens.
#[derive(Clone)]
pub struct TokenIssuer {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
}

/// Why a token was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum TokenError {
    /// Past its `exp`.
    Expired,
    /// Bad signature, algorithm, audience, issuer or shape.
    Invalid,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

impl TokenIssuer {
    /// An issuer signing with `secret`, tokens living `ttl`.
    pub fn new(secret: &SecretString, ttl: Duration) -> Self {
        let key = secret.expose_secret().as_bytes();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 5;
        TokenIssuer {
            encoding: EncodingKey::from_secret(key),
            decoding: DecodingKey::from_secret(key),
            validation,
            ttl,
        }
    }

    /// The lifetime of the tokens this issues.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A token for a key of `merchant_id` with `role`.
    pub fn issue(&self, merchant_id: MerchantId, key_id: Uuid, role: Role) -> Result<String, ApiError> {
        let iat = now_secs();
        let claims = Claims {
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            sub: merchant_id,
            kid: key_id,
            role,
            iat,
            exp: iat + self.ttl.as_secs(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(ApiError::internal)
    }

    /// Checks a token's signature (HS256 only: `alg: none` and others are refused), expiry, issuer,
    /// audience and lifetime (at most an hour from `iat` to `exp`).
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        use jsonwebtoken::errors::ErrorKind;
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid,
            })?;
        if claims.exp.saturating_sub(claims.iat) > MAX_LIFETIME_SECS {
            return Err(TokenError::Invalid);
        }
        Ok(claims)
    }
}

/// The authenticated caller of a `/v1` route.
#[derive(Debug, Clone, Copy)]
pub struct Caller {
    /// The merchant every query is scoped to.
    pub merchant_id: MerchantId,
    /// The API key behind the token.
    pub key_id: Uuid,
    /// The key's role, as its row says now.
    pub role: Role,
    /// The agent the key belongs to, for an agent's own key.
    pub agent_id: Option<Uuid>,
}

impl Caller {
    /// Refuses with 403 unless the role grants `permission`.
    pub fn require(&self, permission: Permission) -> Result<(), ApiError> {
        if self.role.allows(permission) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "the `{}` role may not do this",
                self.role.as_str()
            )))
        }
    }
}

fn bearer(req: &HttpRequest) -> Result<String, ApiError> {
    let value = req.headers().get(header::AUTHORIZATION).ok_or_else(|| {
        ApiError::unauthorized(
            ErrorCode::MissingToken,
            "send `Authorization: Bearer <access_token>`",
        )
    })?;
    let value = value.to_str().map_err(|_| {
        ApiError::unauthorized(ErrorCode::InvalidToken, "the Authorization header is not text")
    })?;
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(ApiError::unauthorized(
            ErrorCode::MissingToken,
            "send `Authorization: Bearer <access_token>`",
        ));
    }
    Ok(token.trim().to_owned())
}

/// What checking an access token needs: the key it was signed with and the database (the key's row).
/// Given to the application beside its state, for [`Caller`].
pub struct Verifier {
    /// The access tokens' issuer.
    pub tokens: TokenIssuer,
    /// The database.
    pub db: Db,
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Caller, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<Verifier>>().cloned();
        let token = bearer(req);
        Box::pin(async move {
            let state = state.ok_or_else(|| ApiError::internal(anyhow::anyhow!("token verifier missing")))?;
            let claims = state.tokens.verify(&token?).map_err(|e| match e {
                TokenError::Expired => {
                    ApiError::unauthorized(ErrorCode::TokenExpired, "the access token has expired")
                }
                TokenError::Invalid => {
                    ApiError::unauthorized(ErrorCode::InvalidToken, "the access token is not valid")
                }
            })?;
            let (merchant_id, key_id) = (claims.sub, claims.kid);
            // The role comes from the key's row, read with the revocation check: never from the token.
            let (role, agent_id) = state
                .db
                .run(move |conn| keys::live_role(conn, merchant_id, key_id).map_err(ApiError::from))
                .await?
                .ok_or_else(|| {
                    ApiError::unauthorized(
                        ErrorCode::InvalidToken,
                        "the API key behind this token was revoked",
                    )
                })?;
            Ok(Caller {
                merchant_id,
                key_id,
                role,
                agent_id,
            })
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn issuer() -> TokenIssuer {
        TokenIssuer::new(
            &SecretString::from("test-secret-test-secret-test-secret!!"),
            Duration::from_secs(900),
        )
    }

    #[test]
    fn a_token_round_trips_with_its_merchant_and_role() {
        let (m, k) = (MerchantId::new(), Uuid::now_v7());
        let claims = issuer()
            .verify(&issuer().issue(m, k, Role::Catalog).unwrap())
            .unwrap();
        assert_eq!((claims.sub, claims.kid, claims.role), (m, k, Role::Catalog));
        assert_eq!(claims.exp - claims.iat, 900);
    }

    #[test]
    fn a_token_living_longer_than_an_hour_is_invalid() {
        let long = TokenIssuer::new(
            &SecretString::from("test-secret-test-secret-test-secret!!"),
            Duration::from_secs(3601),
        );
        let token = long
            .issue(MerchantId::new(), Uuid::now_v7(), Role::Owner)
            .unwrap();
        assert_eq!(issuer().verify(&token).unwrap_err(), TokenError::Invalid);
    }

    #[test]
    fn only_the_owner_manages_keys_and_pages() {
        for role in [Role::Catalog, Role::Marketing, Role::Agent] {
            assert!(!role.allows(Permission::ManageKeys));
            assert!(!role.allows(Permission::ManagePages));
        }
        assert!(Role::Owner.allows(Permission::ManagePages));
        assert!(Role::Catalog.allows(Permission::WriteCatalog));
        assert!(!Role::Marketing.allows(Permission::WriteCatalog));
    }
}
