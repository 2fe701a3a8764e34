//! Moving stored objects to the storage version, once: every Prism object the API server still
//! holds in an older version is written again unchanged (an empty patch with the version read,
//! which the API server stores in the current storage version), and only when every object of
//! a kind has been written is that CRD's `status.storedVersions` trimmed to the storage version.
//! A later release can then stop serving the old version without losing an object.
//!
//! Safe to stop at any point: nothing is trimmed before every object is rewritten, and a
//! restart does it all again (a rewrite of an object already stored in the new version changes
//! nothing but its resourceVersion). Only an operator watching every namespace migrates: one
//! that watches a single namespace cannot see every object.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::json;

/// Rewrites per second at most: an upgrade of a large fleet must not crowd out the API server
/// (5,000 objects take under two minutes).
const WRITES_PER_SECOND: u32 = 50;

/// Migrates every Prism CRD that stores objects in an older version; logs what it did.
pub async fn run(client: Client) {
    for crd in prism_api::crds() {
        let name = crd.name_any();
        match migrate(&client, &crd).await {
            Ok(Some(count)) => {
                tracing::info!(crd = %name, objects = count, "storage migrated; storedVersions trimmed")
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(crd = %name, error = %format!("{e:#}"), "storage migration"),
        }
    }
}

/// The version objects are stored in.
fn storage_version(crd: &CustomResourceDefinition) -> String {
    crd.spec
        .versions
        .iter()
        .find(|v| v.storage)
        .map(|v| v.name.clone())
        .expect("a CRD has a storage version")
}

/// Rewrites every object of `crd`'s kind and trims its stored versions; the number rewritten,
/// or `None` when nothing is stored in another version.
async fn migrate(
    client: &Client,
    ours: &CustomResourceDefinition,
) -> anyhow::Result<Option<usize>> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let live = crds.get(&ours.name_any()).await?;
    let storage = storage_version(&live);
    let stored = live
        .status
        .as_ref()
        .and_then(|s| s.stored_versions.clone())
        .unwrap_or_default();
    if stored.iter().all(|v| *v == storage) {
        return Ok(None);
    }
    let names = &live.spec.names;
    let resource = ApiResource {
        group: live.spec.group.clone(),
        version: storage.clone(),
        api_version: format!("{}/{storage}", live.spec.group),
        kind: names.kind.clone(),
        plural: names.plural.clone(),
    };
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
    let mut count = 0;
    let mut page = ListParams::default().limit(500);
    let mut pace = tokio::time::interval(std::time::Duration::from_secs(1) / WRITES_PER_SECOND);
    loop {
        let list = api.list_metadata(&page).await?;
        for object in &list.items {
            pace.tick().await;
            rewrite(client, &resource, object).await?;
            count += 1;
        }
        match list.metadata.continue_ {
            Some(token) if !token.is_empty() => page = page.continue_token(&token),
            _ => break,
        }
    }
    let trimmed = json!({"status": {"storedVersions": [storage]}});
    crds.patch_status(
        &live.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&trimmed),
    )
    .await?;
    Ok(Some(count))
}

/// Writes one object again unchanged; gone or changed meanwhile is fine (a write since the
/// list stored it in the storage version already).
async fn rewrite(
    client: &Client,
    resource: &ApiResource,
    object: &kube::core::PartialObjectMeta<DynamicObject>,
) -> anyhow::Result<()> {
    let ns = object.namespace().unwrap_or_default();
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, resource);
    let unchanged = json!({"metadata": {"resourceVersion": object.resource_version()}});
    match api
        .patch(
            &object.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&unchanged),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}
