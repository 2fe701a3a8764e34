//! Every permission the operator uses, in one table: what `prism-operator preflight` checks
//! with SelfSubjectAccessReviews, and what the chart's roles must grant (a test holds the two
//! equal).

use crate::kit::apply::CHILD_KINDS;

/// One permission: API group, resource (with `/subresource`), verb and, for a cluster-scoped
/// object, its name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Permission {
    /// API group (`""` for core).
    pub group: String,
    /// Resource, e.g. `statefulsets` or `prismshards/status`.
    pub resource: String,
    /// Verb, e.g. `patch`.
    pub verb: String,
    /// Name of the one object it is for, if any.
    pub name: Option<String>,
    /// Where: the watched namespace (or every namespace), the Lease's, or cluster scope.
    pub scope: Scope,
}

/// Where a permission is needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// Where Prism resources are watched.
    Watched,
    /// The leader-election Lease's namespace.
    Lease,
    /// The operator's own namespace (its webhook certificate Secret).
    Operator,
    /// Cluster-scoped objects.
    Cluster,
}

/// What the operator is configured to do.
#[derive(Debug, Clone)]
pub struct Needs {
    /// Applies and prunes workloads (off in render mode).
    pub workload_writes: bool,
    /// Takes part in leader election.
    pub leader_election: bool,
    /// Keeps its own webhook certificates: the Secret they live in and the
    /// ValidatingWebhookConfiguration their CA is injected into.
    pub webhook_certificates: Option<WebhookObjects>,
    /// Serves `/metrics` only to callers the API server authenticates and authorizes.
    pub metrics_auth: bool,
    /// Watches one namespace, and so reads PrismShards and PrismNamespaces of every namespace
    /// for the rules global to an admin.
    pub one_namespace: bool,
}

/// The objects the operator's own webhook certificates touch.
#[derive(Debug, Clone)]
pub struct WebhookObjects {
    /// The Secret, in the operator's namespace.
    pub secret: String,
    /// The ValidatingWebhookConfiguration.
    pub configuration: String,
}

/// The Prism kinds' plurals.
const PRISM_RESOURCES: [&str; 3] = ["prismshards", "prismplugins", "prismnamespaces"];

/// Every permission needed for `needs`, sorted.
pub fn permissions(needs: Needs) -> Vec<Permission> {
    let mut out = Vec::new();
    let mut add = |group: &str, resource: &str, verbs: &[&str], scope: Scope| {
        for verb in verbs {
            out.push(Permission {
                group: group.into(),
                resource: resource.into(),
                verb: (*verb).into(),
                name: None,
                scope,
            });
        }
    };
    for plural in PRISM_RESOURCES {
        add(
            prism_api::GROUP,
            plural,
            &["get", "list", "watch", "patch"],
            Scope::Watched,
        );
        add(
            prism_api::GROUP,
            &format!("{plural}/status"),
            &["get", "patch"],
            Scope::Watched,
        );
        add(
            prism_api::GROUP,
            &format!("{plural}/finalizers"),
            &["update"],
            Scope::Watched,
        );
    }
    for (api_version, _, plural) in CHILD_KINDS {
        let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
        add(group, plural, &["get", "list", "watch"], Scope::Watched);
        if needs.workload_writes {
            add(
                group,
                plural,
                &["create", "patch", "delete"],
                Scope::Watched,
            );
        }
    }
    add(
        "",
        "persistentvolumeclaims",
        &["get", "list", "patch"],
        Scope::Watched,
    );
    add("", "pods", &["get", "list", "watch"], Scope::Watched);
    add("", "secrets", &["get"], Scope::Watched);
    add(
        "events.k8s.io",
        "events",
        &["create", "patch"],
        Scope::Watched,
    );
    if needs.one_namespace {
        for plural in ["prismshards", "prismnamespaces"] {
            add(prism_api::GROUP, plural, &["list", "watch"], Scope::Cluster);
        }
    }
    if needs.leader_election {
        let verbs = ["get", "list", "watch", "create", "update", "patch"];
        add("coordination.k8s.io", "leases", &verbs, Scope::Lease);
    }
    let named = |group: &str, resource: &str, verb: &str, name: Option<&str>, scope| Permission {
        group: group.into(),
        resource: resource.into(),
        verb: verb.into(),
        name: name.map(String::from),
        scope,
    };
    let crds = "customresourcedefinitions";
    for crd in prism_api::crds() {
        let name = crd.metadata.name.as_deref();
        out.push(named(
            "apiextensions.k8s.io",
            crds,
            "get",
            name,
            Scope::Cluster,
        ));
        // Trimming status.storedVersions once every object is in the storage version.
        out.push(named(
            "apiextensions.k8s.io",
            "customresourcedefinitions/status",
            "patch",
            name,
            Scope::Cluster,
        ));
        if needs.webhook_certificates.is_some() {
            // The CA bundle of the conversion webhook.
            out.push(named(
                "apiextensions.k8s.io",
                crds,
                "update",
                name,
                Scope::Cluster,
            ));
        }
    }
    if needs.metrics_auth {
        // Who scrapes /metrics, and whether they may.
        out.push(named(
            "authentication.k8s.io",
            "tokenreviews",
            "create",
            None,
            Scope::Cluster,
        ));
        out.push(named(
            "authorization.k8s.io",
            "subjectaccessreviews",
            "create",
            None,
            Scope::Cluster,
        ));
    }
    if let Some(w) = &needs.webhook_certificates {
        let secret = Some(w.secret.as_str());
        out.push(named("", "secrets", "get", secret, Scope::Operator));
        out.push(named("", "secrets", "update", secret, Scope::Operator));
        // A create cannot be limited to a name.
        out.push(named("", "secrets", "create", None, Scope::Operator));
        let hooks = "validatingwebhookconfigurations";
        let configuration = Some(w.configuration.as_str());
        for verb in ["get", "update"] {
            out.push(named(
                "admissionregistration.k8s.io",
                hooks,
                verb,
                configuration,
                Scope::Cluster,
            ));
        }
    }
    out.sort();
    out.dedup();
    out
}

impl std::fmt::Display for Permission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (resource, sub) = match self.resource.split_once('/') {
            Some((r, s)) => (r, format!("/{s}")),
            None => (self.resource.as_str(), String::new()),
        };
        let group = match self.group.as_str() {
            "" => String::new(),
            g => format!(".{g}"),
        };
        write!(f, "{} {resource}{group}{sub}", self.verb)?;
        if let Some(name) = &self.name {
            write!(f, " {name}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_mode_and_leader_election_change_what_is_needed() {
        let full = permissions(Needs {
            workload_writes: true,
            leader_election: true,
            webhook_certificates: Some(WebhookObjects {
                secret: "cert".into(),
                configuration: "hooks".into(),
            }),
            metrics_auth: true,
            one_namespace: true,
        });
        let render = permissions(Needs {
            workload_writes: false,
            leader_election: false,
            webhook_certificates: None,
            metrics_auth: false,
            one_namespace: false,
        });
        let shown: Vec<String> = full.iter().map(ToString::to_string).collect();
        for expected in [
            "create statefulsets.apps",
            "patch prismshards.prism.io/status",
            "update leases.coordination.k8s.io",
            "get secrets",
            "get customresourcedefinitions.apiextensions.k8s.io prismshards.prism.io",
            "update customresourcedefinitions.apiextensions.k8s.io prismshards.prism.io",
            "patch customresourcedefinitions.apiextensions.k8s.io/status prismshards.prism.io",
            "update secrets cert",
            "create secrets",
            "update validatingwebhookconfigurations.admissionregistration.k8s.io hooks",
        ] {
            assert!(
                shown.iter().any(|s| s == expected),
                "{expected} in {shown:?}"
            );
        }
        assert!(render.len() < full.len());
        for plural in ["prismshards", "prismnamespaces"] {
            let everywhere = |p: &&Permission| p.resource == plural && p.scope == Scope::Cluster;
            let verbs: Vec<&str> = full
                .iter()
                .filter(everywhere)
                .map(|p| p.verb.as_str())
                .collect();
            assert_eq!(verbs, ["list", "watch"], "{plural} read in every namespace");
            assert!(!render.iter().any(|p| everywhere(&p)));
        }
        assert!(
            !render
                .iter()
                .any(|p| p.verb == "create" && p.group == "apps")
        );
        assert!(!render.iter().any(|p| p.scope == Scope::Lease));
        assert!(
            !full
                .iter()
                .any(|p| p.resource == "secrets" && p.verb != "get" && p.scope == Scope::Watched),
            "Secrets where Prism resources live are only read"
        );
        assert!(
            !render
                .iter()
                .any(|p| p.verb == "update" && p.scope == Scope::Cluster)
        );
    }
}
