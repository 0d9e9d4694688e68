//! The API's answers: a status, a JSON body, and the engine's errors as
//! HTTP statuses.

use hyper::StatusCode;
use hyper::header;
use serde_json::{Value, json};

/// An API answer: a status, a JSON body and extra headers.
pub(super) struct Reply {
    pub(super) status: StatusCode,
    pub(super) body: Value,
    pub(super) headers: Vec<(header::HeaderName, String)>,
}

impl Reply {
    pub(super) fn ok(body: Value) -> Self {
        Self {
            status: StatusCode::OK,
            body,
            headers: Vec::new(),
        }
    }

    /// An error answer: `{"error": {"message", "code", …}}`.
    pub(super) fn error(status: StatusCode, message: impl Into<String>) -> Self {
        let message = message.into();
        Self {
            status,
            body: json!({"error": {"message": message, "code": status.as_u16()}}),
            headers: Vec::new(),
        }
    }

    pub(super) fn with_header(mut self, name: header::HeaderName, value: String) -> Self {
        self.headers.push((name, value));
        self
    }
}

impl From<crate::error::Error> for Reply {
    fn from(e: crate::error::Error) -> Self {
        use crate::error::Error as E;
        let status = match &e {
            E::Parse(_) | E::Invalid(_) | E::TableNotFound(_) | E::DataFusion(_) => {
                StatusCode::BAD_REQUEST
            }
            E::PermissionDenied(_) | E::ReadOnly(_) => StatusCode::FORBIDDEN,
            E::NotFound { .. } => StatusCode::NOT_FOUND,
            E::AlreadyExists { .. } | E::Conflict { .. } => StatusCode::CONFLICT,
            E::Unavailable(_) | E::Source(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let mut reply = Reply::error(status, e.to_string());
        // A parse error says where: the console marks the spot.
        if let E::Parse(p) = &e
            && p.line > 0
        {
            reply.body["error"]["line"] = json!(p.line);
            reply.body["error"]["column"] = json!(p.column);
        }
        reply
    }
}

/// The answer to a method a route does not take.
pub(super) fn method_not_allowed() -> Reply {
    Reply::error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed here")
}
