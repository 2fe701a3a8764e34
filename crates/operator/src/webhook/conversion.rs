//! The CRD conversion webhook: objects between `prism.io/v1alpha1` and `prism.io/v1beta1`,
//! by the same pure conversion `prism-render convert` uses.

use axum::Json;
use kube::core::Status;
use kube::core::conversion::{ConversionRequest, ConversionResponse, ConversionReview};
use kube::core::response::StatusSummary;

/// Converts every object of the review, or fails the whole review with the first problem
/// (the API server then fails the read or write: a conversion must never drop an object).
pub async fn convert(Json(review): Json<ConversionReview>) -> Json<ConversionReview> {
    let request = match ConversionRequest::from_review(review) {
        Ok(request) => request,
        Err(e) => {
            return Json(ConversionResponse::invalid(failure(e.to_string())).into_review());
        }
    };
    let to = request.desired_api_version.clone();
    let converted: Result<Vec<_>, String> = request
        .objects
        .iter()
        .map(|object| prism_api::convert::convert(object, &to).map_err(|e| e.to_string()))
        .collect();
    let response = ConversionResponse::for_request(request);
    Json(
        match converted {
            Ok(objects) => response.success(objects),
            Err(why) => {
                tracing::warn!(to = %to, error = %why, "conversion refused");
                response.failure(failure(why))
            }
        }
        .into_review(),
    )
}

fn failure(message: String) -> Status {
    Status {
        status: Some(StatusSummary::Failure),
        message,
        reason: "ConversionFailed".into(),
        code: 400,
        ..Default::default()
    }
}
