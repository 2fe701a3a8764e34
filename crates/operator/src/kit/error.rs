//! The one error type of the operator. Every failure knows its CamelCase reason (for
//! conditions and events), whether retrying without a change on our side can help, and the
//! label it is counted under in `prism_operator_reconcile_errors_total`.

use prism_admin::AdminError;

use super::outcome::Degradation;
use prism_api::reason;

/// A step of a reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API server refused or failed a request.
    #[error("{0}")]
    Kube(#[from] kube::Error),
    /// Prism admin could not be reached or refused (the message never carries secrets).
    #[error(transparent)]
    Admin(#[from] AdminError),
    /// Neither the shard nor the operator names a Prism admin endpoint.
    #[error("neither the shard's spec.adminEndpoint nor the operator's --admin-endpoint is set")]
    NoAdminEndpoint,
    /// The Secret holding a connection string cannot be read; the message names the Secret and
    /// key, never the value.
    #[error("{0}")]
    Secret(String),
    /// Pruning would delete every object of an owner that renders nothing.
    #[error(
        "refusing to prune all {0} objects: nothing is rendered (set prism.io/allow-empty-prune: \"true\" to allow)"
    )]
    PruneEverything(usize),
    /// Deleting an object that is no longer rendered failed.
    #[error("deleting {object}: {source}")]
    Prune {
        /// `Kind namespace/name`.
        object: String,
        /// What the API server said.
        source: kube::Error,
    },
    /// A step of growing a StatefulSet's volumes failed.
    #[error("{step}: {source}")]
    Resize {
        /// What was being done, e.g. `expanding data-prism-a-0 to 20Gi`.
        step: String,
        /// What the API server said.
        source: kube::Error,
    },
    /// The finalizer could not be added or removed, or its step failed.
    #[error("{0}")]
    Finalizer(Box<kube::runtime::finalizer::Error<Error>>),
}

impl Error {
    /// CamelCase reason for a condition or an event.
    pub fn reason(&self) -> &'static str {
        if self.throttled() {
            return reason::API_THROTTLED;
        }
        match self {
            Self::Kube(_) => reason::API_ERROR,
            Self::Admin(e) => e.reason(),
            Self::NoAdminEndpoint => reason::NO_ADMIN_ENDPOINT,
            Self::Secret(_) => reason::SECRET_UNAVAILABLE,
            Self::PruneEverything(_) | Self::Prune { .. } => reason::PRUNE_REFUSED,
            Self::Resize { .. } => reason::STORAGE_RESIZE_FAILED,
            Self::Finalizer(e) => match finalizer_step(e) {
                Some(inner) => inner.reason(),
                None => reason::FINALIZER_FAILED,
            },
        }
    }

    /// Whether the same step may succeed later without any change on our side.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Admin(e) => e.is_retryable(),
            Self::NoAdminEndpoint | Self::PruneEverything(_) => false,
            Self::Finalizer(e) => finalizer_step(e).is_none_or(Error::is_retryable),
            Self::Kube(_) | Self::Secret(_) | Self::Prune { .. } | Self::Resize { .. } => true,
        }
    }

    /// The `reason` label of `prism_operator_reconcile_errors_total`: a short, bounded name
    /// of where the failure came from (one of [`METRIC_LABELS`]).
    pub fn metric_label(&self) -> &'static str {
        if self.throttled() {
            return "throttled";
        }
        match self {
            Self::Kube(_) => "api",
            Self::Admin(_) | Self::NoAdminEndpoint => "admin",
            Self::Secret(_) => "secret",
            Self::PruneEverything(_) | Self::Prune { .. } => "prune",
            Self::Resize { .. } => "storage",
            Self::Finalizer(e) => finalizer_step(e).map_or("finalizer", Error::metric_label),
        }
    }

    /// Whether the API server turned a request away for load (429) until the client's retry
    /// budget ran out.
    pub fn throttled(&self) -> bool {
        let kube = match self {
            Self::Kube(e) | Self::Prune { source: e, .. } | Self::Resize { source: e, .. } => e,
            Self::Finalizer(e) => match &**e {
                kube::runtime::finalizer::Error::AddFinalizer(e)
                | kube::runtime::finalizer::Error::RemoveFinalizer(e) => e,
                other => return finalizer_step(other).is_some_and(Error::throttled),
            },
            _ => return false,
        };
        matches!(kube, kube::Error::Api(status) if status.code == 429)
    }
}

/// Every `reason` label of `prism_operator_reconcile_errors_total`.
pub const METRIC_LABELS: [&str; 7] = [
    "api",
    "throttled",
    "admin",
    "secret",
    "prune",
    "storage",
    "finalizer",
];

impl From<&Error> for Degradation {
    fn from(e: &Error) -> Self {
        Self::new(e.reason(), e.to_string())
    }
}

impl From<kube::runtime::finalizer::Error<Error>> for Error {
    fn from(e: kube::runtime::finalizer::Error<Error>) -> Self {
        Self::Finalizer(Box::new(e))
    }
}

/// The error of the finalizer's own apply or cleanup step, if that is what failed.
fn finalizer_step(e: &kube::runtime::finalizer::Error<Error>) -> Option<&Error> {
    use kube::runtime::finalizer::Error as F;
    match e {
        F::ApplyFailed(inner) | F::CleanupFailed(inner) => Some(inner),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_retryability_and_labels() {
        let admin = Error::from(AdminError::Unavailable("refused".into()));
        assert_eq!(admin.reason(), "AdminUnavailable");
        assert!(admin.is_retryable());
        assert_eq!(admin.metric_label(), "admin");
        assert_eq!(admin.to_string(), "Prism admin is unavailable: refused");

        let wrapped = Error::from(kube::runtime::finalizer::Error::CleanupFailed(Error::from(
            AdminError::Rejected("no".into()),
        )));
        assert_eq!(wrapped.reason(), "AdminRejected");
        assert!(!wrapped.is_retryable());
        assert_eq!(wrapped.metric_label(), "admin");

        let everything = Error::PruneEverything(3);
        assert_eq!(everything.reason(), "PruneRefused");
        assert!(!everything.is_retryable());
        assert!(
            everything
                .to_string()
                .starts_with("refusing to prune all 3 objects")
        );

        let secret = Error::Secret("Secret db has no key url".into());
        assert_eq!(secret.reason(), "SecretUnavailable");
        assert_eq!(secret.to_string(), "Secret db has no key url");
        assert!(secret.is_retryable());

        assert_eq!(Error::NoAdminEndpoint.reason(), "NoAdminEndpoint");
        assert!(!Error::NoAdminEndpoint.is_retryable());

        let status = |code: u16| {
            kube::Error::Api(Box::new(kube::core::Status {
                code,
                ..Default::default()
            }))
        };
        let throttled = Error::Kube(status(429));
        assert_eq!(throttled.reason(), "ApiThrottled");
        assert_eq!(throttled.metric_label(), "throttled");
        assert!(throttled.is_retryable());
        let pruning = Error::Prune {
            object: "Service a/b".into(),
            source: status(429),
        };
        assert_eq!(pruning.metric_label(), "throttled");
        let finalizing = Error::from(kube::runtime::finalizer::Error::AddFinalizer(status(429)));
        assert_eq!(finalizing.metric_label(), "throttled");
        let conflict = Error::Kube(status(409));
        assert_eq!(conflict.reason(), "ApiError");
        assert_eq!(conflict.metric_label(), "api");
    }
}
