//! API errors in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}` with the
//! matching HTTP status. Client mistakes are 4xx; 500 is kept for bugs.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub message: String,
    pub param: Option<String>,
    pub code: Option<&'static str>,
    pub retry_after: Option<u32>,
}

impl ApiError {
    fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            kind,
            message: message.into(),
            param: None,
            code: None,
            retry_after: None,
        }
    }

    /// 400 for a request field.
    pub fn invalid(param: &str, message: impl Into<String>) -> ApiError {
        let mut e = ApiError::new(StatusCode::BAD_REQUEST, "invalid_request_error", message);
        e.param = Some(param.to_string());
        e
    }

    /// 400 for the request as a whole.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
    }

    pub fn context_length(message: impl Into<String>) -> ApiError {
        let mut e = ApiError::bad_request(message);
        e.code = Some("context_length_exceeded");
        e.param = Some("messages".into());
        e
    }

    pub fn unauthorized() -> ApiError {
        let mut e = ApiError::new(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "missing or invalid API key: send the header 'Authorization: Bearer KEY' with the \
             key the server was started with",
        );
        e.code = Some("invalid_api_key");
        e
    }

    /// 403 for a web page whose origin the server does not allow (see `cors.rs`).
    pub fn origin_refused(origin: &str) -> ApiError {
        let mut message = format!("requests from web pages at '{origin}' are not allowed");
        if crate::cors::is_listable(origin) {
            message += &format!(": start the server with --allow-origin {origin} to allow them");
        }
        let mut e = ApiError::new(StatusCode::FORBIDDEN, "permission_error", message);
        e.code = Some("origin_not_allowed");
        e
    }

    /// 403 for a `Host` a loopback-bound server does not answer to (see `cors.rs`).
    pub fn host_refused(host: &str) -> ApiError {
        let mut e = ApiError::new(
            StatusCode::FORBIDDEN,
            "permission_error",
            format!(
                "this server listens on the loopback and answers to localhost and 127.0.0.1, \
                 not to the host name '{host}' (a defense against DNS rebinding): use \
                 http://127.0.0.1:PORT, add the name with --allow-origin, or bind another \
                 address with --host"
            ),
        );
        e.code = Some("host_not_allowed");
        e
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found_error", message)
    }

    pub fn model_not_found(model: &str, served: &str) -> ApiError {
        let mut e = ApiError::not_found(format!(
            "the model '{model}' does not exist: this server serves '{served}'"
        ));
        e.param = Some("model".into());
        e.code = Some("model_not_found");
        e
    }

    pub fn method_not_allowed() -> ApiError {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request_error",
            "this route does not accept that HTTP method",
        )
    }

    pub fn too_large(limit: usize) -> ApiError {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            format!("the request body is larger than the limit of {limit} bytes (--max-body)"),
        )
    }

    pub fn timeout() -> ApiError {
        ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "invalid_request_error",
            "the request body did not arrive in time",
        )
    }

    pub fn unsupported_media(message: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "invalid_request_error",
            message,
        )
    }

    pub fn busy(waiting: usize) -> ApiError {
        let mut e = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            format!("the server is busy ({waiting} requests waiting); retry shortly"),
        );
        e.code = Some("server_busy");
        e.retry_after = Some(1);
        e
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", message)
    }

    /// The JSON body, also sent as an SSE event when a stream fails after it started.
    pub fn body(&self) -> serde_json::Value {
        json!({"error": {
            "message": self.message,
            "type": self.kind,
            "param": self.param,
            "code": self.code,
        }})
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.status, axum::Json(self.body())).into_response();
        r.extensions_mut()
            .insert(crate::log::ErrorNote(self.message.clone()));
        if let Some(s) = self.retry_after {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        r
    }
}
