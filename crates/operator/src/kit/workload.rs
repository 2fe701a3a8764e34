//! Readiness of the workloads the operator renders, read from their status: shared by the
//! shard controller (its StatefulSet) and the plugin controller (rollouts and remote plugins).

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};

/// Whether the StatefulSet controller has seen the latest spec of `sts`.
pub fn status_caught_up(sts: &StatefulSet) -> bool {
    let observed = sts.status.as_ref().and_then(|s| s.observed_generation);
    observed.unwrap_or(0) >= sts.metadata.generation.unwrap_or(0)
}

/// Whether every replica of `sts` is ready on its latest revision, and a summary such as
/// `2/3 replicas ready, 3 updated`.
pub fn rollout_state(sts: &StatefulSet) -> (bool, String) {
    let spec_replicas = sts.spec.replicas.unwrap_or(1);
    let st = sts.status.clone().unwrap_or_default();
    let ready_replicas = st.ready_replicas.unwrap_or(0);
    let updated_replicas = st.updated_replicas.unwrap_or(0);
    let observed = status_caught_up(sts);
    let same_revision = st.current_revision.is_some() && st.current_revision == st.update_revision;
    let ready = observed
        && same_revision
        && st.replicas == spec_replicas
        && ready_replicas == spec_replicas
        && updated_replicas == spec_replicas;
    let summary = format!(
        "{ready_replicas}/{spec_replicas} replicas ready, {updated_replicas} updated{}",
        if same_revision {
            ""
        } else {
            ", rollout in progress"
        }
    );
    (ready, summary)
}

/// Whether every wanted replica of `d` is available and updated.
pub fn deployment_available(d: &Deployment) -> bool {
    let want = d.spec.replicas.unwrap_or(1);
    let status = d.status.as_ref();
    status.and_then(|s| s.available_replicas) == Some(want)
        && status.and_then(|s| s.updated_replicas) == Some(want)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_deployment_is_available_when_every_replica_is_updated() {
        let d = |available: i32, updated: i32| -> Deployment {
            serde_json::from_value(json!({
                "spec": {"replicas": 2, "selector": {}, "template": {}},
                "status": {"availableReplicas": available, "updatedReplicas": updated}
            }))
            .unwrap()
        };
        assert!(deployment_available(&d(2, 2)));
        assert!(!deployment_available(&d(2, 1)));
        assert!(!deployment_available(&d(1, 2)));
    }
}
