//! Who may read `/metrics`: a caller the API server authenticates (TokenReview of its bearer
//! token) and authorizes to `get` the non-resource URL `/metrics` (SubjectAccessReview), as
//! kubebuilder operators and kube-rbac-proxy decide. Answers are cached for [`TTL`] by a hash
//! of the token, so a scraper costs two API requests per minute at most; failures to ask are
//! not cached.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{
    NonResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::Client;
use kube::api::{Api, PostParams};
use sha2::{Digest, Sha256};

/// How long an answer is reused.
pub const TTL: Duration = Duration::from_secs(60);
/// Tokens remembered at most; the cache is emptied when full.
const CAPACITY: usize = 1024;

/// What the API server said about a caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Authenticated and allowed.
    Allowed,
    /// No token, or one the API server does not accept (HTTP 401).
    Unauthenticated,
    /// Authenticated as `user`, who may not `get /metrics` (HTTP 403).
    Forbidden {
        /// The authenticated user name.
        user: String,
    },
}

/// Asks the API server, and remembers its answers briefly.
pub struct Authorizer {
    client: Client,
    cache: Mutex<HashMap<[u8; 32], (Instant, Decision)>>,
}

impl Authorizer {
    /// Decides with `client`'s API server.
    pub fn new(client: Client) -> Self {
        Self {
            client,
            cache: Mutex::default(),
        }
    }

    /// The decision for a request with `authorization` (its `Authorization` header).
    pub async fn decide(&self, authorization: Option<&str>) -> Result<Decision, kube::Error> {
        let Some(token) = bearer(authorization) else {
            return Ok(Decision::Unauthenticated);
        };
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some((at, decision)) = self.cache.lock().expect("lock").get(&key)
            && at.elapsed() < TTL
        {
            return Ok(decision.clone());
        }
        let decision = self.ask(token).await?;
        let mut cache = self.cache.lock().expect("lock");
        if cache.len() >= CAPACITY {
            cache.clear();
        }
        cache.insert(key, (Instant::now(), decision.clone()));
        Ok(decision)
    }

    async fn ask(&self, token: &str) -> Result<Decision, kube::Error> {
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: token.to_string(),
                ..Default::default()
            },
            ..Default::default()
        };
        let reviewed = Api::<TokenReview>::all(self.client.clone())
            .create(&PostParams::default(), &review)
            .await?;
        let status = reviewed.status.unwrap_or_default();
        let Some(user) = status.user.filter(|_| status.authenticated == Some(true)) else {
            return Ok(Decision::Unauthenticated);
        };
        let access = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: user.username.clone(),
                groups: user.groups,
                uid: user.uid,
                extra: user.extra,
                non_resource_attributes: Some(NonResourceAttributes {
                    path: Some("/metrics".into()),
                    verb: Some("get".into()),
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let answered = Api::<SubjectAccessReview>::all(self.client.clone())
            .create(&PostParams::default(), &access)
            .await?;
        Ok(match answered.status.is_some_and(|s| s.allowed) {
            true => Decision::Allowed,
            false => Decision::Forbidden {
                user: user.username.unwrap_or_default(),
            },
        })
    }
}

/// The token of a `Bearer` authorization header.
fn bearer(authorization: Option<&str>) -> Option<&str> {
    let (scheme, token) = authorization?.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_bearer_tokens_only() {
        assert_eq!(bearer(Some("Bearer abc")), Some("abc"));
        assert_eq!(bearer(Some("bearer  abc ")), Some("abc"));
        assert_eq!(bearer(Some("Basic dXNlcjpwYXNz")), None);
        assert_eq!(bearer(Some("Bearer ")), None);
        assert_eq!(bearer(None), None);
    }
}
