//! The one HTTP error type: every failure leaves as `application/problem+json` (RFC 9457) with a stable
//! snake_case `code`. Low-level errors are mapped here, once; a 5xx body never shows internals, and its
//! cause chain goes to the log, once.

use std::fmt;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::db::DbError;
use crate::kernel::FieldError;

/// Every problem `code` the API answers, in one place: the HTTP edge renders them, `openapi.yaml` lists
/// them (a test holds the two together).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The request is malformed in another way (query string, cursor, body encoding).
    BadRequest,
    /// A bookable with stays cannot be deleted.
    BookableHasStays,
    /// The booking was confirmed by another order.
    BookingConfirmedElsewhere,
    /// The booking is not held or confirmed.
    BookingNotActive,
    /// The cart cannot be checked out.
    CheckoutRefused,
    /// Another discount of the merchant has this code.
    CodeTaken,
    /// Another agent of the merchant has this email.
    EmailTaken,
    /// A resource with the same unique value exists.
    Conflict,
    /// The caller's role may not call this operation.
    Forbidden,
    /// An `Idempotency-Key` was used for another request.
    IdempotencyKeyReused,
    /// The Instagram account is connected to a Page already.
    InstagramAccountAlreadyConnected,
    /// Meta does not answer this Instagram account as the Page's.
    InstagramAccountMismatch,
    /// A stock change would make the stock negative.
    InsufficientStock,
    /// An unexpected error on our side.
    InternalError,
    /// The API key is unknown or revoked.
    InvalidApiKey,
    /// A catalog import body is unreadable as a whole.
    InvalidFeed,
    /// An `Idempotency-Key` header is malformed.
    InvalidIdempotencyKey,
    /// The body is not valid JSON, or not of the expected shape.
    InvalidJson,
    /// A webhook's signature is missing or does not match its body.
    InvalidSignature,
    /// The access token is malformed, badly signed, or its key was revoked.
    InvalidToken,
    /// The web chat visitor token is not one this web chat gave out.
    InvalidVisitorToken,
    /// A product's only variant cannot be deleted.
    LastVariant,
    /// The channel's rules allow no message now.
    MessagingWindowClosed,
    /// Meta's Graph API failed to answer.
    MetaError,
    /// Meta's Graph API could not be reached.
    MetaUnreachable,
    /// The route exists, not with this method.
    MethodNotAllowed,
    /// No bearer token.
    MissingToken,
    /// The nights are not available.
    NotAvailable,
    /// No such resource for the caller, or no such route.
    NotFound,
    /// Only a paid (or partly refunded) order can be refunded.
    NotRefundable,
    /// Nothing is left to refund.
    NothingToRefund,
    /// The page's origin is not among the web chat's allowed origins.
    OriginNotAllowed,
    /// The Page is connected already.
    PageAlreadyConnected,
    /// The Page's stored token no longer works.
    PageTokenBroken,
    /// Meta refused the Page access token.
    PageTokenInvalid,
    /// Meta says the token is another Page's.
    PageTokenMismatch,
    /// The body exceeds the size limit.
    PayloadTooLarge,
    /// Stripe is not configured.
    PaymentsDisabled,
    /// Too many requests: retry after `Retry-After` seconds.
    RateLimited,
    /// Another product of the merchant has this retailer id.
    RetailerIdTaken,
    /// A dependency (the database) is not ready.
    ServiceUnavailable,
    /// Another variant of the merchant has this SKU.
    SkuTaken,
    /// Stripe refused the call.
    StripeRefused,
    /// Meta refused a message template.
    TemplateRefused,
    /// The Page has a template for this purpose and language already.
    TemplateTaken,
    /// The access token has expired.
    TokenExpired,
    /// The units cannot go below the nights already held or booked.
    UnitsTaken,
    /// No web chat has this public key.
    UnknownWebchatKey,
    /// The body's content type is not accepted here.
    UnsupportedMediaType,
    /// One or more fields are invalid; see `errors`.
    ValidationFailed,
    /// The webhook handshake's verify token does not match.
    VerifyTokenMismatch,
    /// The server's own webhook refused a simulated delivery (dev mode).
    WebhookRefused,
    /// The webhook's secret is not configured.
    WebhooksDisabled,
}

impl ErrorCode {
    /// Every code.
    pub const ALL: &[ErrorCode] = &[
        ErrorCode::BadRequest,
        ErrorCode::BookableHasStays,
        ErrorCode::BookingConfirmedElsewhere,
        ErrorCode::BookingNotActive,
        ErrorCode::CheckoutRefused,
        ErrorCode::CodeTaken,
        ErrorCode::Conflict,
        ErrorCode::Forbidden,
        ErrorCode::IdempotencyKeyReused,
        ErrorCode::InstagramAccountAlreadyConnected,
        ErrorCode::InstagramAccountMismatch,
        ErrorCode::InsufficientStock,
        ErrorCode::InternalError,
        ErrorCode::InvalidApiKey,
        ErrorCode::InvalidFeed,
        ErrorCode::InvalidIdempotencyKey,
        ErrorCode::InvalidJson,
        ErrorCode::InvalidSignature,
        ErrorCode::InvalidToken,
        ErrorCode::InvalidVisitorToken,
        ErrorCode::LastVariant,
        ErrorCode::MessagingWindowClosed,
        ErrorCode::MetaError,
        ErrorCode::MetaUnreachable,
        ErrorCode::MethodNotAllowed,
        ErrorCode::MissingToken,
        ErrorCode::NotAvailable,
        ErrorCode::NotFound,
        ErrorCode::NotRefundable,
        ErrorCode::NothingToRefund,
        ErrorCode::OriginNotAllowed,
        ErrorCode::PageAlreadyConnected,
        ErrorCode::PageTokenBroken,
        ErrorCode::PageTokenInvalid,
        ErrorCode::PageTokenMismatch,
        ErrorCode::PayloadTooLarge,
        ErrorCode::PaymentsDisabled,
        ErrorCode::RateLimited,
        ErrorCode::RetailerIdTaken,
        ErrorCode::ServiceUnavailable,
        ErrorCode::SkuTaken,
        ErrorCode::StripeRefused,
        ErrorCode::TemplateRefused,
        ErrorCode::TemplateTaken,
        ErrorCode::EmailTaken,
        ErrorCode::TokenExpired,
        ErrorCode::UnitsTaken,
        ErrorCode::UnknownWebchatKey,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::ValidationFailed,
        ErrorCode::VerifyTokenMismatch,
        ErrorCode::WebhookRefused,
        ErrorCode::WebhooksDisabled,
    ];

    /// The stable snake_case code.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::BookableHasStays => "bookable_has_stays",
            ErrorCode::BookingConfirmedElsewhere => "booking_confirmed_elsewhere",
            ErrorCode::BookingNotActive => "booking_not_active",
            ErrorCode::CheckoutRefused => "checkout_refused",
            ErrorCode::CodeTaken => "code_taken",
            ErrorCode::Conflict => "conflict",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::IdempotencyKeyReused => "idempotency_key_reused",
            ErrorCode::InstagramAccountAlreadyConnected => "instagram_account_already_connected",
            ErrorCode::InstagramAccountMismatch => "instagram_account_mismatch",
            ErrorCode::InsufficientStock => "insufficient_stock",
            ErrorCode::InternalError => "internal_error",
            ErrorCode::InvalidApiKey => "invalid_api_key",
            ErrorCode::InvalidFeed => "invalid_feed",
            ErrorCode::InvalidIdempotencyKey => "invalid_idempotency_key",
            ErrorCode::InvalidJson => "invalid_json",
            ErrorCode::InvalidSignature => "invalid_signature",
            ErrorCode::InvalidToken => "invalid_token",
            ErrorCode::InvalidVisitorToken => "invalid_visitor_token",
            ErrorCode::LastVariant => "last_variant",
            ErrorCode::MessagingWindowClosed => "messaging_window_closed",
            ErrorCode::MetaError => "meta_error",
            ErrorCode::MetaUnreachable => "meta_unreachable",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::MissingToken => "missing_token",
            ErrorCode::NotAvailable => "not_available",
            ErrorCode::NotFound => "not_found",
            ErrorCode::NotRefundable => "not_refundable",
            ErrorCode::NothingToRefund => "nothing_to_refund",
            ErrorCode::OriginNotAllowed => "origin_not_allowed",
            ErrorCode::PageAlreadyConnected => "page_already_connected",
            ErrorCode::PageTokenBroken => "page_token_broken",
            ErrorCode::PageTokenInvalid => "page_token_invalid",
            ErrorCode::PageTokenMismatch => "page_token_mismatch",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::PaymentsDisabled => "payments_disabled",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::RetailerIdTaken => "retailer_id_taken",
            ErrorCode::ServiceUnavailable => "service_unavailable",
            ErrorCode::SkuTaken => "sku_taken",
            ErrorCode::StripeRefused => "stripe_refused",
            ErrorCode::TemplateRefused => "template_refused",
            ErrorCode::TemplateTaken => "template_taken",
            ErrorCode::EmailTaken => "email_taken",
            ErrorCode::TokenExpired => "token_expired",
            ErrorCode::UnitsTaken => "units_taken",
            ErrorCode::UnknownWebchatKey => "unknown_webchat_key",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::ValidationFailed => "validation_failed",
            ErrorCode::VerifyTokenMismatch => "verify_token_mismatch",
            ErrorCode::WebhookRefused => "webhook_refused",
            ErrorCode::WebhooksDisabled => "webhooks_disabled",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failure answered to an API caller.
pub struct ApiError {
    status: StatusCode,
    code: ErrorCode,
    detail: String,
    errors: Vec<FieldError>,
    retry_after_secs: Option<u64>,
    cause: Option<anyhow::Error>,
    /// A 5xx that is no fault of ours (a dependency down, a feature not configured): logged at WARN.
    expected: bool,
}

/// The wire shape of a field error.
#[derive(Serialize)]
struct FieldErrorBody<'a> {
    field: &'a str,
    code: &'a str,
    detail: &'a str,
}

/// The wire shape of a problem.
#[derive(Serialize)]
struct ProblemBody<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    detail: &'a str,
    code: &'a str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    errors: Vec<FieldErrorBody<'a>>,
}

impl ApiError {
    /// An error with a status, a code and a sentence for the caller.
    pub fn new(status: StatusCode, code: ErrorCode, detail: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            detail: detail.into(),
            errors: Vec::new(),
            retry_after_secs: None,
            cause: None,
            expected: false,
        }
    }

    /// A 5xx that is no fault of ours (Meta unreachable, payments not configured): the caller learns
    /// what to do, the log gets one WARN line with the cause, never an ERROR.
    pub fn upstream(
        status: StatusCode,
        code: ErrorCode,
        detail: impl Into<String>,
        cause: Option<anyhow::Error>,
    ) -> Self {
        ApiError {
            cause,
            expected: true,
            ..Self::new(status, code, detail)
        }
    }

    /// 400 with a specific code.
    pub fn bad_request(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, detail)
    }

    /// 422 listing every field that broke a rule.
    pub fn validation(errors: Vec<FieldError>) -> Self {
        let detail = match errors.as_slice() {
            [one] => format!("{}: {}", one.field, one.detail),
            many => format!("{} fields are invalid", many.len()),
        };
        ApiError {
            errors,
            ..Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::ValidationFailed,
                detail,
            )
        }
    }

    /// 401 with a specific code.
    pub fn unauthorized(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, detail)
    }

    /// 403: authenticated, but the key's role does not allow this.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, ErrorCode::Forbidden, detail)
    }

    /// 404, the same whether the thing is missing or belongs to another merchant.
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            format!("{what} not found"),
        )
    }

    /// 409 with a specific code.
    pub fn conflict(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, detail)
    }

    /// 429 with the seconds to wait.
    pub fn too_many_requests(retry_after_secs: u64) -> Self {
        ApiError {
            retry_after_secs: Some(retry_after_secs),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::RateLimited,
                format!("too many requests: retry in {retry_after_secs} seconds"),
            )
        }
    }

    /// 413 for a body over `limit` bytes.
    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::PayloadTooLarge,
            format!("the request body is larger than the limit of {limit} bytes"),
        )
    }

    /// 500: the cause is logged, the caller sees a generic sentence.
    pub fn internal(cause: impl Into<anyhow::Error>) -> Self {
        ApiError {
            cause: Some(cause.into()),
            ..Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::InternalError,
                "something went wrong on our side; it has been logged",
            )
        }
    }

    /// 503: a dependency (the database) is unavailable for now.
    pub fn unavailable(cause: impl Into<anyhow::Error>) -> Self {
        ApiError {
            cause: Some(cause.into()),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::ServiceUnavailable,
                "the service is temporarily unavailable; try again shortly",
            )
        }
    }

    /// The stable code.
    pub fn code(&self) -> ErrorCode {
        self.code
    }
}

impl fmt::Debug for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.code, self.detail)?;
        if let Some(cause) = &self.cause {
            write!(f, "; caused by: {cause:#}")?;
        }
        Ok(())
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.detail)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        if self.status.is_server_error() {
            // Logged once, here, with the whole cause chain.
            if self.expected {
                tracing::warn!(error.code = self.code.as_str(), error.detail = %self.detail, error.cause = ?self.cause, "request refused");
            } else {
                tracing::error!(error.code = self.code.as_str(), error.cause = ?self.cause, "request failed");
            }
        }
        let title = self.status.canonical_reason().unwrap_or("Error");
        let body = ProblemBody {
            kind: format!("urn:threadcart:problem:{}", self.code),
            title,
            status: self.status.as_u16(),
            detail: &self.detail,
            code: self.code.as_str(),
            errors: self
                .errors
                .iter()
                .map(|e| FieldErrorBody {
                    field: &e.field,
                    code: e.code,
                    detail: &e.detail,
                })
                .collect(),
        };
        let mut response = HttpResponse::build(self.status);
        response.insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        ));
        if let Some(secs) = self.retry_after_secs {
            response.insert_header((header::RETRY_AFTER, secs.to_string()));
        }
        response.body(serde_json::to_string(&body).unwrap_or_default())
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Query(q) => q.into(),
            DbError::Pool(_) | DbError::Connection(_) => ApiError::unavailable(e),
            other => ApiError::internal(other),
        }
    }
}

impl From<diesel::result::Error> for ApiError {
    fn from(e: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind, Error};
        match e {
            Error::NotFound => ApiError::not_found("resource"),
            Error::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => ApiError::conflict(
                ErrorCode::Conflict,
                "a resource with the same unique value already exists",
            ),
            other => ApiError::internal(other),
        }
    }
}
