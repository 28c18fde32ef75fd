use crate::aws::AwsError;

/// Every way a reconcile can fail. Each variant has a metric label.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API request failed: {0}")]
    Kube(#[source] kube::Error),

    #[error("AWS request failed: {0}")]
    Aws(#[from] AwsError),

    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),

    #[error("the object was changed concurrently; retrying")]
    Conflict,

    #[error("account is leased by {0} and cannot be deleted until the lease ends")]
    DeletionBlocked(String),

    #[error("{0}")]
    Invalid(String),
}

impl Error {
    /// A lost optimistic-concurrency race (here or inside the finalizer helper): worth retrying
    /// at once with fresher data, not backing off as from a failure.
    pub fn is_conflict(&self) -> bool {
        match self {
            Self::Conflict => true,
            Self::Finalizer(inner) => matches!(
                inner.as_ref(),
                kube::runtime::finalizer::Error::ApplyFailed(Self::Conflict)
                    | kube::runtime::finalizer::Error::CleanupFailed(Self::Conflict)
            ),
            _ => false,
        }
    }

    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Kube(_) => "kube",
            Self::Aws(e) => e.metric_label(),
            Self::Finalizer(inner) => match inner.as_ref() {
                kube::runtime::finalizer::Error::ApplyFailed(e)
                | kube::runtime::finalizer::Error::CleanupFailed(e) => e.metric_label(),
                _ => "finalizer",
            },
            Self::Conflict => "conflict",
            Self::DeletionBlocked(_) => "deletion_blocked",
            Self::Invalid(_) => "invalid",
        }
    }
}

impl From<kube::Error> for Error {
    fn from(error: kube::Error) -> Self {
        if is_status(&error, 409) {
            Self::Conflict
        } else {
            Self::Kube(error)
        }
    }
}

/// Whether a Kubernetes API error is an HTTP status `code`.
pub fn is_status(error: &kube::Error, code: u16) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == code)
}
