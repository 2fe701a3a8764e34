//! The writer loop: a round every interval, and the statuses whose figures moved written as
//! their own field manager, a few at a time.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use jiff::Timestamp;
use kube::{Resource, ResourceExt};
use serde_json::json;

use super::health::{
    Health, latency, namespace_needs_write, namespace_view, shard_needs_write, sla_seconds,
};
use super::prometheus::Prometheus;
use super::queries::TrafficSettings;
use super::round::{Round, query_round};
use crate::kit::context::Ctx;
use crate::kit::error::Error;
use crate::kit::outcome::{self, Cond, Truth};
use prism_api::{
    AggregateMetrics, NamespaceMetrics, PrismNamespace, PrismShard, condition, reason,
};

/// Field manager of the traffic figures (apart from the reconcilers' status).
pub const FIELD_MANAGER: &str = "prism-operator-traffic";

/// Runs rounds until the task is dropped.
pub async fn run(ctx: Arc<Ctx>, prometheus: Prometheus, settings: TrafficSettings) {
    let mut backoff = Duration::from_secs(5);
    loop {
        let wait = match query_round(&prometheus, &settings.queries).await {
            Ok(round) => {
                ctx.report.metrics.prometheus_up(true);
                backoff = Duration::from_secs(5);
                write_round(&ctx, &round, &settings).await;
                settings.interval
            }
            Err(e) => {
                ctx.report.metrics.prometheus_up(false);
                tracing::warn!(error = %e, "traffic figures: Prometheus query failed");
                shards_unavailable(&ctx, &e.to_string()).await;
                let wait = crate::kit::jitter::shorten(backoff.min(settings.interval), 0.2);
                backoff = (backoff * 2).min(settings.interval);
                wait
            }
        };
        tokio::time::sleep(wait).await;
    }
}

/// Writes what changed enough, a few objects at a time.
async fn write_round(ctx: &Ctx, round: &Round, settings: &TrafficSettings) {
    let now = Timestamp::now();
    let shards: BTreeMap<(String, String), Arc<PrismShard>> = ctx
        .view
        .shards
        .state()
        .into_iter()
        .map(|s| ((s.namespace().unwrap_or_default(), s.name_any()), s))
        .collect();
    let mut namespace_writes = Vec::new();
    for ns in ctx.view.namespaces.state() {
        let key = (ns.namespace().unwrap_or_default(), ns.name_any());
        let shard = ns.status.as_ref().and_then(|s| s.shard.clone());
        let sla = shard
            .and_then(|s| shards.get(&(key.0.clone(), s)))
            .and_then(|s| s.spec.sla_tier.as_deref().and_then(sla_seconds));
        let (metrics, health) =
            namespace_view(round.namespaces.get(&key), sla, settings.max_error_ratio);
        if namespace_needs_write(&ns, metrics.as_ref(), &health, settings.threshold) {
            tracing::debug!(
                namespace = %key.0, name = %key.1,
                written = ?ns.status.as_ref().and_then(|s| s.metrics.as_ref()),
                now = ?metrics, health = health.health.as_str(),
                "traffic figures moved"
            );
            namespace_writes.push((ns, metrics, health));
        }
    }
    futures::stream::iter(namespace_writes)
        .map(|(ns, metrics, health)| write_namespace(ctx, ns, metrics, health, now))
        .buffer_unordered(8)
        .for_each(|()| futures::future::ready(()))
        .await;
    let mut shard_writes = Vec::new();
    for (key, shard) in shards {
        let t = round.shards.get(&key).copied().unwrap_or_default();
        let aggregate = (t.rps.is_some() || t.avg_p99.is_some()).then(|| AggregateMetrics {
            total_rps: t.rps.map(|r| r.round() as i64),
            avg_p99_latency: t.avg_p99.map(latency),
        });
        if shard_needs_write(&shard, aggregate.as_ref(), true, settings.threshold) {
            shard_writes.push((shard, aggregate));
        }
    }
    futures::stream::iter(shard_writes)
        .map(|(shard, aggregate)| {
            let message = "Prometheus answered the last round of traffic queries".to_string();
            write_shard(ctx, shard, Some(aggregate), true, message, now)
        })
        .buffer_unordered(8)
        .for_each(|()| futures::future::ready(()))
        .await;
}

/// Marks every shard's `MetricsAvailable` false (figures are kept).
async fn shards_unavailable(ctx: &Ctx, why: &str) {
    let now = Timestamp::now();
    for shard in ctx.view.shards.state() {
        let cond = shard.status.as_ref().and_then(|s| {
            s.conditions
                .iter()
                .find(|c| c.type_ == condition::METRICS_AVAILABLE)
        });
        if cond.is_some_and(|c| c.status == "False" && c.message == why) {
            continue;
        }
        write_shard(ctx, shard, None, false, why.to_string(), now).await;
    }
}

async fn write_namespace(
    ctx: &Ctx,
    ns: Arc<PrismNamespace>,
    metrics: Option<NamespaceMetrics>,
    health: Health,
    now: Timestamp,
) {
    let old = ns
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let cond = Cond::of(
        condition::HEALTHY,
        health.status,
        health.reason,
        health.message,
    );
    let cond = kept(old, cond, ns.meta().generation, now);
    let status =
        json!({"metrics": metrics, "health": health.health.as_str(), "conditions": [cond]});
    apply_status(ctx, &*ns, &status).await;
}

async fn write_shard(
    ctx: &Ctx,
    shard: Arc<PrismShard>,
    aggregate: Option<Option<AggregateMetrics>>,
    available: bool,
    message: String,
    now: Timestamp,
) {
    let old = shard
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let why = match available {
        true => reason::PROMETHEUS_ANSWERS,
        false => reason::PROMETHEUS_UNAVAILABLE,
    };
    let cond = Cond::of(
        condition::METRICS_AVAILABLE,
        Truth::from(available),
        why,
        message,
    );
    let cond = kept(old, cond, shard.meta().generation, now);
    let mut status = json!({"conditions": [cond]});
    match aggregate {
        // Not asked: keep what this manager wrote (SSA keeps fields it is sent again).
        None => {
            if let Some(m) = shard
                .status
                .as_ref()
                .and_then(|s| s.aggregate_metrics.clone())
            {
                status["aggregateMetrics"] = json!(m);
            }
        }
        Some(m) => status["aggregateMetrics"] = json!(m),
    }
    apply_status(ctx, &*shard, &status).await;
}

/// Writes `status` of `obj` as this manager; an object gone meanwhile is no error.
async fn apply_status<K>(ctx: &Ctx, obj: &K, status: &serde_json::Value)
where
    K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>,
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match ctx
        .report
        .patch_status_as(obj, status, FIELD_MANAGER, "traffic")
        .await
    {
        Ok(()) => {}
        Err(Error::Kube(kube::Error::Api(e))) if e.code == 404 => {}
        Err(e) => {
            let (kind, name) = (K::kind(&()), obj.name_any());
            tracing::warn!(error = %e, %kind, %name, "writing traffic figures failed");
        }
    }
}

/// `cond` as set on the `old` conditions: its transition time kept when its status did not
/// change.
fn kept(
    old: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
    cond: Cond,
    generation: Option<i64>,
    now: Timestamp,
) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
    let type_ = cond.type_;
    let mut conditions = old.to_vec();
    outcome::set(&mut conditions, cond, generation, now);
    conditions
        .into_iter()
        .find(|c| c.type_ == type_)
        .expect("just set")
}
