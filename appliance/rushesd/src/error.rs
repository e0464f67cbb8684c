//! The one error type of the management API: an HTTP status, a stable code, a message
//! that says what failed, and a hint that says what to do.

/// A refusal or failure, as the API reports it.
#[derive(Debug, Clone)]
pub struct ApiErr {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    pub hint: Option<String>,
}

impl ApiErr {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            hint: None,
        }
    }
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "bad-request", message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(404, "not-found", message)
    }
    pub fn failed(message: impl Into<String>) -> Self {
        Self::new(500, "failed", message)
    }
}

pub type ApiResult<T> = Result<T, ApiErr>;
