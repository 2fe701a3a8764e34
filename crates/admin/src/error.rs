//! [`AdminError`]: every way a call to Prism admin can fail, classified for conditions and
//! retries. Messages hold the server's status text or our own words, never request contents.

use std::time::Duration;

use prism_api::reason;
use thiserror::Error;
use tonic::{Code, Status};

/// Longest server-provided message kept in an error, in characters.
const MAX_MESSAGE_CHARS: usize = 256;

/// A failed call to Prism admin (`prism.ControlPlane`).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AdminError {
    /// Admin cannot be reached: connection refused, reset or not yet established.
    #[error("Prism admin is unavailable: {0}")]
    Unavailable(String),
    /// Admin refused because it is not ready: upstream answers this until a proxy has registered.
    #[error("Prism admin cannot place the namespace yet (no proxy registered?): {0}")]
    FailedPrecondition(String),
    /// No answer within the configured timeout.
    #[error("Prism admin did not answer in time: {0}")]
    DeadlineExceeded(String),
    /// Admin failed internally, e.g. a Raft proposal failed.
    #[error("Prism admin failed internally: {0}")]
    Internal(String),
    /// Admin answered, but with `success = false`; carries its message.
    #[error("Prism admin rejected the request: {0}")]
    Rejected(String),
    /// The admin endpoint is not a usable `host:port`, `http://host:port` or (with TLS)
    /// `https://host:port`.
    #[error("invalid Prism admin endpoint: {0}")]
    InvalidEndpoint(String),
    /// The TLS settings for admin cannot be used: an unreadable or malformed PEM file, a client
    /// certificate without its key, a key that does not match its certificate …
    #[error("invalid Prism admin TLS settings: {0}")]
    InvalidTls(String),
    /// The TLS handshake with admin failed: its certificate is not trusted by the configured
    /// CA or does not name the endpoint, admin refused the client certificate (or got none),
    /// or the endpoint does not speak TLS.
    #[error("TLS handshake with Prism admin failed: {0}")]
    Tls(String),
    /// Every node of an admin listed with several endpoints failed to accept the call (each
    /// a follower, down or unreachable): no leader was found.
    #[error("no Prism admin leader found: {0}")]
    NoLeader(String),
    /// Any other gRPC status.
    #[error("Prism admin call failed with {0:?}: {1}")]
    Other(Code, String),
}

impl AdminError {
    /// CamelCase reason for a status condition or an event.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Unavailable(_) => reason::ADMIN_UNAVAILABLE,
            Self::FailedPrecondition(_) => reason::NO_PROXY_REGISTERED,
            Self::DeadlineExceeded(_) => reason::ADMIN_TIMEOUT,
            Self::Internal(_) | Self::Other(..) => reason::ADMIN_ERROR,
            Self::Rejected(_) => reason::ADMIN_REJECTED,
            Self::InvalidEndpoint(_) => reason::INVALID_ADMIN_ENDPOINT,
            Self::InvalidTls(_) => reason::INVALID_ADMIN_TLS,
            Self::Tls(_) => reason::ADMIN_TLS_FAILED,
            Self::NoLeader(_) => reason::ADMIN_NO_LEADER,
        }
    }

    /// Whether the same call may succeed later without any change on our side.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Unavailable(_)
            | Self::FailedPrecondition(_)
            | Self::DeadlineExceeded(_)
            | Self::Internal(_)
            | Self::NoLeader(_) => true,
            // Admin may present a renewed certificate, or start requiring ours, at any time.
            Self::Tls(_) => true,
            Self::Rejected(_) | Self::InvalidEndpoint(_) | Self::InvalidTls(_) => false,
            Self::Other(code, _) => matches!(
                code,
                Code::Unknown | Code::Cancelled | Code::ResourceExhausted | Code::Aborted
            ),
        }
    }

    /// The error for a call that got no answer within `timeout`.
    pub(crate) fn timed_out(timeout: Duration) -> Self {
        Self::DeadlineExceeded(format!("no answer within {timeout:?}"))
    }

    /// Classifies a gRPC status, keeping a bounded copy of its message with every `secret`
    /// replaced, in case the server echoed part of the request.
    pub(crate) fn from_status(status: &Status, secrets: &[&str]) -> Self {
        let message = sanitize(&describe(status), secrets);
        match status.code() {
            Code::Unavailable => Self::Unavailable(message),
            Code::FailedPrecondition => Self::FailedPrecondition(message),
            Code::DeadlineExceeded => Self::DeadlineExceeded(message),
            // The transport's own per-request timeout surfaces as CANCELLED "Timeout expired".
            Code::Cancelled if status.message().contains("Timeout expired") => {
                Self::DeadlineExceeded(message)
            }
            // A status with a source was made on our side from a transport failure (the
            // connection broke or closed under the call); one sent by admin has none.
            Code::Unknown | Code::Cancelled if std::error::Error::source(status).is_some() => {
                Self::Unavailable(message)
            }
            Code::Internal => Self::Internal(message),
            code => Self::Other(code, message),
        }
    }

    /// The error for an answer with `success = false`.
    pub(crate) fn rejected(message: &str, secrets: &[&str]) -> Self {
        let message = sanitize(message, secrets);
        Self::Rejected(if message.is_empty() {
            "no reason given".to_string()
        } else {
            message
        })
    }
}

/// Whether a locally made transport failure is a TLS failure: the handshake, a certificate,
/// or an alert the peer sent. `description` is [`describe`]'s text of it.
pub(crate) fn is_tls_failure(status: &Status, description: &str) -> bool {
    if std::error::Error::source(status).is_none() {
        // Sent by admin itself, not a failure of our connection.
        return false;
    }
    let text = description.to_ascii_lowercase();
    [
        "certificate",
        "fatal alert",
        "handshake",
        "tls",
        "corrupt message",
        "invalidcontenttype",
        "peer is incompatible",
    ]
    .iter()
    .any(|marker| text.contains(marker))
}

/// A status's message, followed by the innermost cause of a locally made status (e.g.
/// "tcp connect error: Connection refused (os error 111)").
pub(crate) fn describe(status: &Status) -> String {
    let mut cause = std::error::Error::source(status);
    let mut innermost = None;
    while let Some(error) = cause {
        innermost = Some(error);
        cause = error.source();
    }
    match innermost.map(ToString::to_string) {
        Some(detail) if !detail.is_empty() && !status.message().contains(&detail) => {
            format!("{}: {detail}", status.message())
        }
        _ => status.message().to_string(),
    }
}

/// `text` with every non-empty secret replaced, control characters dropped and the result cut
/// to [`MAX_MESSAGE_CHARS`].
pub(crate) fn sanitize(text: &str, secrets: &[&str]) -> String {
    let mut text = text.to_string();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        text = text.replace(secret, "<redacted>");
    }
    let mut out: String = text
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_MESSAGE_CHARS)
        .collect();
    if text.chars().filter(|c| !c.is_control()).count() > MAX_MESSAGE_CHARS {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_statuses() {
        let cases = [
            (Code::Unavailable, "AdminUnavailable", true),
            (Code::FailedPrecondition, "NoProxyRegistered", true),
            (Code::DeadlineExceeded, "AdminTimeout", true),
            (Code::Internal, "AdminError", true),
            (Code::Aborted, "AdminError", true),
            (Code::PermissionDenied, "AdminError", false),
            (Code::Unimplemented, "AdminError", false),
        ];
        for (code, reason, retryable) in cases {
            let error = AdminError::from_status(&Status::new(code, "m"), &[]);
            assert_eq!(error.reason(), reason, "{code:?}");
            assert_eq!(error.is_retryable(), retryable, "{code:?}");
        }
        let timeout = AdminError::from_status(&Status::cancelled("Timeout expired"), &[]);
        assert!(matches!(timeout, AdminError::DeadlineExceeded(_)));
        let broken = Status::from_error(Box::new(std::io::Error::other("connection closed")));
        assert!(matches!(
            AdminError::from_status(&broken, &[]),
            AdminError::Unavailable(_)
        ));
        assert!(matches!(
            AdminError::from_status(&Status::unknown("from admin"), &[]),
            AdminError::Other(Code::Unknown, _)
        ));
        assert_eq!(
            AdminError::timed_out(Duration::from_millis(500)).reason(),
            "AdminTimeout"
        );
    }

    #[test]
    fn rejection_and_endpoint_are_final() {
        let rejected = AdminError::rejected("", &[]);
        assert_eq!(rejected, AdminError::Rejected("no reason given".into()));
        assert_eq!(rejected.reason(), "AdminRejected");
        assert!(!rejected.is_retryable());
        let endpoint = AdminError::InvalidEndpoint("x".into());
        assert_eq!(endpoint.reason(), "InvalidAdminEndpoint");
        assert!(!endpoint.is_retryable());
    }

    #[test]
    fn messages_never_echo_secrets() {
        let status = Status::internal("cannot open postgres://u:hunter2@db/x\n");
        let error = AdminError::from_status(&status, &["postgres://u:hunter2@db/x"]);
        assert_eq!(error, AdminError::Internal("cannot open <redacted>".into()));
        let long = "x".repeat(1000);
        let AdminError::Rejected(message) = AdminError::rejected(&long, &[]) else {
            unreachable!()
        };
        assert_eq!(message.chars().count(), MAX_MESSAGE_CHARS + 1);
    }
}
