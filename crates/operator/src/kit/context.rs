//! What every reconciler shares: the client, the settings, the renderer, the view of the
//! caches, the report (events, status, accounting), Prism admin, and the guards of applying.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DynamicObject};
use kube::core::ApiResource;
use kube::{Client, Resource, ResourceExt};

use super::admin::Admin;
use super::conflicts::Contests;
use super::dropped::Dropped;
use super::report::Report;
use super::served::Served;
use super::unseen::Unseen;
use crate::view::View;
use prism_render::render::Renderer;

/// Operator settings (from flags).
#[derive(Debug, Clone)]
pub struct Settings {
    /// Watch only this namespace; all namespaces when `None`.
    pub watch_namespace: Option<String>,
    /// Apply workloads (operator mode). Off in render mode, where Argo CD applies them.
    pub workload_writes: bool,
    /// Safety-net resync of every object.
    pub resync: Duration,
    /// Default Prism admin for namespace sync: `host:port`, or a comma-separated list of the
    /// nodes of an HA admin.
    pub admin_endpoint: Option<String>,
    /// Let shards share an admin (admin then serves a shard's namespaces from any of their
    /// proxies); refused by default.
    pub allow_shared_admin: bool,
    /// Deadline of every call to Prism admin.
    pub admin_timeout: Duration,
    /// TLS (and client certificate) for Prism admin; plaintext when `None`.
    pub admin_tls: Option<prism_admin::AdminTls>,
    /// How long a deletion waits for Prism admin before giving up on revoking.
    pub deletion_deadline: Duration,
}

/// State shared by all reconcilers.
pub struct Ctx {
    /// API client.
    pub client: Client,
    /// Settings.
    pub settings: Settings,
    /// The renderer every unit goes through.
    pub renderer: Renderer,
    /// The caches and their indexes.
    pub view: View,
    /// Events, status writes, metrics and backoff.
    pub report: Report,
    /// Prism admin clients and proxy registrations.
    pub admin: Admin,
    /// Objects another writer keeps changing.
    pub contests: Contests,
    /// Fields the API server drops from what is applied.
    pub dropped: Dropped,
    /// Applies the caches have not shown yet.
    pub unseen: Unseen,
    /// The CRD child kinds the cluster serves.
    pub served: Served,
}

/// An owner reference to `obj` as controller.
pub fn owner_ref<K: Resource<DynamicType = ()>>(obj: &K) -> OwnerReference {
    OwnerReference {
        api_version: K::api_version(&()).to_string(),
        kind: K::kind(&()).to_string(),
        name: obj.name_any(),
        uid: obj.uid().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Whether reconciliation of `obj` is paused by annotation.
pub fn paused<K: ResourceExt>(obj: &K) -> bool {
    obj.annotations()
        .get(prism_api::PAUSE_ANNOTATION)
        .map(String::as_str)
        == Some("paused")
}

/// Namespaced or cluster-wide API, per the settings.
pub fn api<K>(client: &Client, settings: &Settings) -> Api<K>
where
    K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>,
{
    match &settings.watch_namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Namespaced or cluster-wide API of a child kind, per the settings.
pub fn dynamic_api(client: &Client, settings: &Settings, ar: &ApiResource) -> Api<DynamicObject> {
    match &settings.watch_namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, ar),
        None => Api::all_with(client.clone(), ar),
    }
}

/// A context over `client` and `view` with default settings, for unit tests.
#[cfg(test)]
pub fn for_tests(client: Client, view: View) -> Ctx {
    use kube::runtime::events::Reporter;
    use std::sync::Arc;
    let metrics = Arc::new(crate::observe::metrics::Metrics::new());
    let reporter = Reporter {
        controller: "prism-operator".into(),
        instance: None,
    };
    let events = crate::kit::events::Events::new(client.clone(), reporter);
    let settings = Settings {
        watch_namespace: None,
        workload_writes: true,
        resync: Duration::from_secs(300),
        admin_endpoint: None,
        allow_shared_admin: false,
        admin_timeout: prism_admin::DEFAULT_TIMEOUT,
        admin_tls: None,
        deletion_deadline: Duration::from_secs(600),
    };
    Ctx {
        report: Report::new(client.clone(), events, metrics.clone()),
        admin: Admin::new(settings.admin_timeout, None, metrics).expect("no TLS"),
        client,
        settings,
        renderer: Renderer::embedded(),
        view,
        contests: Contests::default(),
        dropped: Dropped::default(),
        unseen: Unseen::default(),
        served: Served::default(),
    }
}
