//! Every CamelCase reason the operator puts on a condition or an event, in one place: the
//! vocabulary users meet in `kubectl describe`, alerts and runbooks.

// Ready and Progressing.
/// Every replica of a shard is ready on the rendered spec.
pub const READY: &str = "Ready";
/// Event: a shard stopped being ready.
pub const NOT_READY: &str = "NotReady";
/// A shard's StatefulSet, or a plugin, is moving to the rendered spec.
pub const ROLLING_OUT: &str = "RollingOut";
/// A shard's StatefulSet finished rolling out.
pub const ROLLED_OUT: &str = "RolledOut";
/// A plugin runs healthily on every shard that uses it.
pub const INSTALLED: &str = "Installed";
/// A plugin is not yet running healthily on every shard that uses it.
pub const INSTALLING: &str = "Installing";
/// Render mode: Argo CD rolls a plugin out (sync waves); its spec is there for the shards to
/// render, whichever version they run yet.
pub const ROLLED_OUT_BY_ARGO_CD: &str = "RolledOutByArgoCD";
/// A namespace is synced to Prism admin.
pub const SYNCED: &str = "Synced";
/// Reconciliation is paused by annotation.
pub const PAUSED: &str = "Paused";

// Degraded.
/// Nothing is wrong.
pub const HEALTHY: &str = "Healthy";
/// The spec cannot be rendered.
pub const INVALID_SPEC: &str = "InvalidSpec";
/// No shard can host a namespace.
pub const UNSCHEDULABLE: &str = "Unschedulable";
/// Another writer keeps changing fields the operator sets.
pub const FIELD_CONFLICT: &str = "FieldConflict";
/// The API server drops fields the operator sets (a feature it has not enabled).
pub const FIELDS_DROPPED: &str = "FieldsDropped";
/// A child's kind needs a CRD the cluster does not serve (e.g. GRPCRoute).
pub const CRD_MISSING: &str = "CRDMissing";
/// The volumes of a shard would have to shrink.
pub const STORAGE_SHRINK_REFUSED: &str = "StorageShrinkRefused";
/// Growing the volumes of a shard failed.
pub const STORAGE_RESIZE_FAILED: &str = "StorageResizeFailed";
/// Objects no longer rendered could not, or may not, be deleted.
pub const PRUNE_REFUSED: &str = "PruneRefused";
/// A plugin rollout missed its deadline and was rolled back.
pub const ROLLED_BACK: &str = "RolledBack";
/// No Prism admin endpoint is configured for a namespace's shard.
pub const NO_ADMIN_ENDPOINT: &str = "NoAdminEndpoint";
/// The Secret with a namespace's connection string cannot be read.
pub const SECRET_UNAVAILABLE: &str = "SecretUnavailable";
/// The API server refused or failed a request.
pub const API_ERROR: &str = "ApiError";
/// The API server kept turning a request away for load (429) past the client's retry budget.
pub const API_THROTTLED: &str = "ApiThrottled";
/// A finalizer could not be added or removed.
pub const FINALIZER_FAILED: &str = "FinalizerFailed";

// Events only.
/// An object no longer rendered was deleted.
pub const PRUNED: &str = "Pruned";
/// A shard's volume claims were expanded.
pub const VOLUMES_EXPANDED: &str = "VolumesExpanded";
/// A remote plugin could not be rendered.
pub const RENDER_FAILED: &str = "RenderFailed";
/// A namespace moved to another shard.
pub const REPLACED: &str = "Replaced";
/// A deleted namespace stays in Prism (reclaim policy `retain`).
pub const RETAINED: &str = "Retained";
/// A deleted namespace was revoked in Prism.
pub const REVOKED: &str = "Revoked";
/// A deleted namespace was never accepted by Prism admin, or its name there belongs to
/// another: nothing is revoked.
pub const NOT_REVOKED: &str = "NotRevoked";
/// A deleted namespace could not be revoked and was let go.
pub const REVOKE_ABANDONED: &str = "RevokeAbandoned";
/// Prism admin acknowledged a revocation without removing anything (upstream's stub).
pub const REVOKE_NOT_IMPLEMENTED: &str = "RevokeNotImplemented";
/// Prism admin assigned the namespace to a proxy that is not one of its shard's pods.
pub const PLACED_OFF_SHARD: &str = "PlacedOffShard";
/// An older PrismNamespace of the same name owns the name in the same admin.
pub const NAME_CONFLICT: &str = "NameConflict";
/// The shard shares its admin with an older shard and sharing is not allowed.
pub const SHARED_ADMIN_REFUSED: &str = "SharedAdminRefused";
/// The shard shares its admin with other shards (allowed).
pub const SHARED_ADMIN: &str = "SharedAdmin";
/// No other shard uses the shard's admin.
pub const OWN_ADMIN: &str = "OwnAdmin";
/// A different node of an HA admin accepted the write than before.
pub const ADMIN_ENDPOINT_CHANGED: &str = "AdminEndpointChanged";
/// A plugin rollout started.
pub const ROLLOUT_STARTED: &str = "RolloutStarted";
/// A shard was given a plugin's new spec.
pub const SHARD_UPDATING: &str = "ShardUpdating";
/// A shard runs a plugin's new spec healthily.
pub const SHARD_UPDATED: &str = "ShardUpdated";
/// Every shard runs a plugin's new spec healthily.
pub const ROLLOUT_COMPLETE: &str = "RolloutComplete";

// Traffic and health (the `Healthy` and `MetricsAvailable` conditions).
/// Prometheus has no request series for a namespace.
pub const NO_TRAFFIC_DATA: &str = "NoTrafficData";
/// A namespace's p99 latency is above what its shard's SLA tier allows.
pub const LATENCY_ABOVE_SLA: &str = "LatencyAboveSLA";
/// Too many of a namespace's requests fail.
pub const ERROR_RATIO_ABOVE_THRESHOLD: &str = "ErrorRatioAboveThreshold";
/// A namespace's latency and errors are within bounds.
pub const WITHIN_SLA: &str = "WithinSLA";
/// Prometheus answers the traffic queries.
pub const PROMETHEUS_ANSWERS: &str = "PrometheusAnswers";
/// Prometheus does not answer the traffic queries.
pub const PROMETHEUS_UNAVAILABLE: &str = "PrometheusUnavailable";

// Prism admin failures.
/// Prism admin could not be reached.
pub const ADMIN_UNAVAILABLE: &str = "AdminUnavailable";
/// Prism admin knows no proxy to place a namespace on.
pub const NO_PROXY_REGISTERED: &str = "NoProxyRegistered";
/// Prism admin did not answer in time.
pub const ADMIN_TIMEOUT: &str = "AdminTimeout";
/// Prism admin failed a call.
pub const ADMIN_ERROR: &str = "AdminError";
/// Prism admin refused a write.
pub const ADMIN_REJECTED: &str = "AdminRejected";
/// A Prism admin endpoint cannot be parsed.
pub const INVALID_ADMIN_ENDPOINT: &str = "InvalidAdminEndpoint";
/// The TLS settings for Prism admin cannot be used.
pub const INVALID_ADMIN_TLS: &str = "InvalidAdminTls";
/// The TLS handshake with Prism admin failed.
pub const ADMIN_TLS_FAILED: &str = "AdminTlsFailed";
/// No node of an HA Prism admin accepted the write.
pub const ADMIN_NO_LEADER: &str = "AdminNoLeader";
