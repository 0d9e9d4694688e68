//! Engine errors as gRPC statuses.

use tonic::Status;

use crate::error::{Error, ErrorKind};

/// Maps an engine error to a gRPC status: the one place this is decided,
/// by the error's kind.
pub(crate) fn status(e: Error) -> Status {
    let message = e.to_string();
    match e.kind() {
        ErrorKind::InvalidArgument => Status::invalid_argument(message),
        ErrorKind::NotFound => Status::not_found(message),
        ErrorKind::AlreadyExists => Status::already_exists(message),
        ErrorKind::PermissionDenied => Status::permission_denied(message),
        ErrorKind::Conflict => Status::aborted(message),
        ErrorKind::ResourceExhausted => Status::resource_exhausted(message),
        ErrorKind::Unavailable => Status::unavailable(message),
        ErrorKind::Internal => Status::internal(message),
    }
}
