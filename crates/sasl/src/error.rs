//! SASL failure conditions of XMPP (RFC 6120 §6.5).

/// Why a SASL exchange failed; each variant maps to one `<failure/>` child
/// element of RFC 6120 §6.5, so the stream layer can report it directly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum SaslError {
    #[error("authentication aborted by the client")]
    Aborted,
    #[error("the account is disabled")]
    AccountDisabled,
    #[error("data could not be decoded from base64")]
    IncorrectEncoding,
    #[error("invalid authorization identity")]
    InvalidAuthzid,
    #[error("unsupported SASL mechanism")]
    InvalidMechanism,
    #[error("malformed SASL request")]
    MalformedRequest,
    #[error("mechanism too weak for this account or stream")]
    MechanismTooWeak,
    #[error("not authorized")]
    NotAuthorized,
    #[error("temporary authentication failure")]
    TemporaryAuthFailure,
}

impl SaslError {
    /// The name of the RFC 6120 §6.5 condition element.
    pub fn condition(&self) -> &'static str {
        match self {
            SaslError::Aborted => "aborted",
            SaslError::AccountDisabled => "account-disabled",
            SaslError::IncorrectEncoding => "incorrect-encoding",
            SaslError::InvalidAuthzid => "invalid-authzid",
            SaslError::InvalidMechanism => "invalid-mechanism",
            SaslError::MalformedRequest => "malformed-request",
            SaslError::MechanismTooWeak => "mechanism-too-weak",
            SaslError::NotAuthorized => "not-authorized",
            SaslError::TemporaryAuthFailure => "temporary-auth-failure",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_are_rfc6120_names() {
        let all = [
            (SaslError::Aborted, "aborted"),
            (SaslError::AccountDisabled, "account-disabled"),
            (SaslError::IncorrectEncoding, "incorrect-encoding"),
            (SaslError::InvalidAuthzid, "invalid-authzid"),
            (SaslError::InvalidMechanism, "invalid-mechanism"),
            (SaslError::MalformedRequest, "malformed-request"),
            (SaslError::MechanismTooWeak, "mechanism-too-weak"),
            (SaslError::NotAuthorized, "not-authorized"),
            (SaslError::TemporaryAuthFailure, "temporary-auth-failure"),
        ];
        for (err, name) in all {
            assert_eq!(err.condition(), name);
            assert!(!err.to_string().is_empty());
        }
    }
}
