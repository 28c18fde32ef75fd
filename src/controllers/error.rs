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
    /// A lost race (here or inside the finalizer helper): worth retrying at once with fresher
    /// data, not backing off or alerting as on a failure.
    ///
    /// Adding or removing the finalizer races with every other writer of the object: with a
    /// concurrent update (409, or 422 when the patch's `test` of the finalizer list fails), with
    /// the start of its deletion (422: no finalizer may be added then), and with its removal
    /// (404: another replica or an earlier reconcile already finished it, which is also why a
    /// clean-up step can find it gone).
    pub fn is_conflict(&self) -> bool {
        use kube::runtime::finalizer::Error as Finalizer;
        match self {
            Self::Conflict => true,
            Self::Finalizer(inner) => match inner.as_ref() {
                Finalizer::ApplyFailed(Self::Conflict)
                | Finalizer::CleanupFailed(Self::Conflict) => true,
                Finalizer::AddFinalizer(e) | Finalizer::RemoveFinalizer(e) => {
                    [404, 409, 422].into_iter().any(|code| is_status(e, code))
                }
                // Cleaning up after an object that is already gone (another replica, or an
                // earlier reconcile, finished it).
                Finalizer::CleanupFailed(Self::Kube(e)) => is_status(e, 404),
                _ => false,
            },
            _ => false,
        }
    }

    /// A failure of AWS to answer (unreachable, throttling, server faults) that will pass
    /// without any change on our side: retried on a short, capped schedule.
    pub fn is_transient(&self) -> bool {
        use kube::runtime::finalizer::Error as Finalizer;
        match self {
            Self::Aws(error) => error.is_retryable(),
            Self::Finalizer(inner) => matches!(
                inner.as_ref(),
                Finalizer::ApplyFailed(e) | Finalizer::CleanupFailed(e) if e.is_transient()
            ),
            _ => false,
        }
    }

    pub fn metric_label(&self) -> &'static str {
        if self.is_conflict() {
            return "conflict";
        }
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

#[cfg(test)]
mod tests {
    use kube::core::Status;
    use kube::runtime::finalizer::Error as Finalizer;

    use super::*;

    fn api_error(code: u16) -> kube::Error {
        kube::Error::Api(
            Status::failure("refused", "Refused")
                .with_code(code)
                .boxed(),
        )
    }

    #[test]
    fn finalizer_races_are_conflicts_not_failures() {
        for code in [404, 409, 422] {
            for race in [
                Finalizer::AddFinalizer(api_error(code)),
                Finalizer::RemoveFinalizer(api_error(code)),
            ] {
                let error = Error::Finalizer(Box::new(race));
                assert!(error.is_conflict(), "{error}");
                assert_eq!(error.metric_label(), "conflict");
            }
        }
    }

    #[test]
    fn cleaning_up_after_an_object_already_gone_is_a_race() {
        let gone = Error::Finalizer(Box::new(Finalizer::CleanupFailed(Error::Kube(api_error(
            404,
        )))));
        assert!(gone.is_conflict());
    }

    #[test]
    fn other_finalizer_failures_stay_errors() {
        let forbidden = Error::Finalizer(Box::new(Finalizer::AddFinalizer(api_error(403))));
        assert!(!forbidden.is_conflict());
        assert_eq!(forbidden.metric_label(), "finalizer");
        let failed = Error::Finalizer(Box::new(Finalizer::CleanupFailed(Error::Kube(api_error(
            500,
        )))));
        assert!(!failed.is_conflict());
        assert_eq!(failed.metric_label(), "kube");
    }
}
