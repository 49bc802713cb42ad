//! The one HTTP error type: every failure leaves as `application/problem+json` (RFC 9457) with a stable
//! snake_case `code`. Low-level errors are mapped here, once; a 5xx body never shows internals, and its
//! cause chain goes to the log, once.

use std::fmt;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::catalog::domain::FieldError;
use crate::db::DbError;

/// A failure answered to an API caller.
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
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
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
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
        code: &'static str,
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
    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
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
            ..Self::new(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", detail)
        }
    }

    /// 401 with a specific code.
    pub fn unauthorized(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, detail)
    }

    /// 403: authenticated, but the key's role does not allow this.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }

    /// 404, the same whether the thing is missing or belongs to another merchant.
    pub fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", format!("{what} not found"))
    }

    /// 409 with a specific code.
    pub fn conflict(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, detail)
    }

    /// 429 with the seconds to wait.
    pub fn too_many_requests(retry_after_secs: u64) -> Self {
        ApiError {
            retry_after_secs: Some(retry_after_secs),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("too many requests: retry in {retry_after_secs} seconds"),
            )
        }
    }

    /// 413 for a body over `limit` bytes.
    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the request body is larger than the limit of {limit} bytes"),
        )
    }

    /// 500: the cause is logged, the caller sees a generic sentence.
    pub fn internal(cause: impl Into<anyhow::Error>) -> Self {
        ApiError {
            cause: Some(cause.into()),
            ..Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
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
                "service_unavailable",
                "the service is temporarily unavailable; try again shortly",
            )
        }
    }

    /// The stable code.
    pub fn code(&self) -> &'static str {
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
                tracing::warn!(error.code = self.code, error.detail = %self.detail, error.cause = ?self.cause, "request refused");
            } else {
                tracing::error!(error.code = self.code, error.cause = ?self.cause, "request failed");
            }
        }
        let title = self.status.canonical_reason().unwrap_or("Error");
        let body = ProblemBody {
            kind: format!("urn:threadcart:problem:{}", self.code),
            title,
            status: self.status.as_u16(),
            detail: &self.detail,
            code: self.code,
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
            Error::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => {
                ApiError::conflict("conflict", "a resource with the same unique value already exists")
            }
            other => ApiError::internal(other),
        }
    }
}

/// True when `e` is a unique violation on `table` (PostgreSQL names the table, SQLite says it in the message).
pub fn is_unique_violation_on(e: &diesel::result::Error, table: &str) -> bool {
    use diesel::result::{DatabaseErrorKind, Error};
    match e {
        Error::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => {
            info.table_name() == Some(table) || info.message().contains(&format!("{table}."))
        }
        _ => false,
    }
}
