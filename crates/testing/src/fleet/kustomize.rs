//! Kustomize: the same objects from a base, a component and one overlay per shard and remote
//! plugin. Kustomize cannot resolve plugins, place namespaces or hash pod templates, so those
//! results are pre-expanded from prism-render's output into the overlays' patches; Kustomize
//! loads every overlay with its base, merges the patches (strategic merge and JSON 6902),
//! renames objects and fixes the references to them, sets namespaces and adds labels.

use kube::ResourceExt;
use prism_api::PluginDeploymentType;
use serde_json::{Value, json};

use super::{Fleet, render};

/// Kustomize's `apiVersion` of a kustomization.
const KUSTOMIZE_API: &str = "kustomize.config.k8s.io/v1beta1";

const BASE_SHARD: &[(&str, &str)] = &[
    (
        "kustomization.yaml",
        "apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
- configmap.yaml
- headless-service.yaml
- service.yaml
- statefulset.yaml
- pdb.yaml
",
    ),
    (
        "configmap.yaml",
        "apiVersion: v1
kind: ConfigMap
metadata:
  name: prism
  labels:
    app.kubernetes.io/name: prism-proxy
    app.kubernetes.io/component: proxy
    app.kubernetes.io/part-of: prism
    app.kubernetes.io/managed-by: prism-operator
data:
  proxy.yaml: \"\"
",
    ),
    (
        "headless-service.yaml",
        "apiVersion: v1
kind: Service
metadata:
  name: prism-headless
  labels:
    app.kubernetes.io/name: prism-proxy
    app.kubernetes.io/component: proxy
    app.kubernetes.io/part-of: prism
    app.kubernetes.io/managed-by: prism-operator
spec:
  clusterIP: None
  publishNotReadyAddresses: true
  selector:
    app.kubernetes.io/name: prism-proxy
  ports:
  - name: grpc
    port: 8980
    targetPort: grpc
    protocol: TCP
  - name: metrics
    port: 9090
    targetPort: metrics
    protocol: TCP
",
    ),
    (
        "service.yaml",
        "apiVersion: v1
kind: Service
metadata:
  name: prism
  labels:
    app.kubernetes.io/name: prism-proxy
    app.kubernetes.io/component: proxy
    app.kubernetes.io/part-of: prism
    app.kubernetes.io/managed-by: prism-operator
spec:
  type: ClusterIP
  selector:
    app.kubernetes.io/name: prism-proxy
  ports:
  - name: grpc
    port: 8980
    targetPort: grpc
    protocol: TCP
    appProtocol: kubernetes.io/h2c
",
    ),
    (
        "pdb.yaml",
        "apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: prism
  labels:
    app.kubernetes.io/name: prism-proxy
    app.kubernetes.io/component: proxy
    app.kubernetes.io/part-of: prism
    app.kubernetes.io/managed-by: prism-operator
spec:
  maxUnavailable: 1
  selector:
    matchLabels:
      app.kubernetes.io/name: prism-proxy
",
    ),
    (
        "statefulset.yaml",
        "apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: prism
  labels:
    app.kubernetes.io/name: prism-proxy
    app.kubernetes.io/component: proxy
    app.kubernetes.io/part-of: prism
    app.kubernetes.io/managed-by: prism-operator
spec:
  serviceName: prism-headless
  podManagementPolicy: Parallel
  revisionHistoryLimit: 10
  updateStrategy:
    type: RollingUpdate
  persistentVolumeClaimRetentionPolicy:
    whenDeleted: Retain
    whenScaled: Retain
  selector:
    matchLabels:
      app.kubernetes.io/name: prism-proxy
  template:
    metadata:
      labels:
        app.kubernetes.io/name: prism-proxy
        app.kubernetes.io/component: proxy
        app.kubernetes.io/part-of: prism
        app.kubernetes.io/managed-by: prism-operator
    spec:
      automountServiceAccountToken: false
      enableServiceLinks: false
      terminationGracePeriodSeconds: 45
      securityContext:
        runAsNonRoot: true
        runAsUser: 65532
        runAsGroup: 65532
        fsGroup: 65532
        fsGroupChangePolicy: OnRootMismatch
        seccompProfile:
          type: RuntimeDefault
      topologySpreadConstraints:
      - maxSkew: 1
        topologyKey: kubernetes.io/hostname
        whenUnsatisfiable: ScheduleAnyway
        labelSelector:
          matchLabels:
            app.kubernetes.io/name: prism-proxy
      - maxSkew: 1
        topologyKey: topology.kubernetes.io/zone
        whenUnsatisfiable: ScheduleAnyway
        labelSelector:
          matchLabels:
            app.kubernetes.io/name: prism-proxy
      containers:
      - name: proxy
        image: proxy
        imagePullPolicy: IfNotPresent
        ports:
        - name: grpc
          containerPort: 8980
          protocol: TCP
        - name: metrics
          containerPort: 9090
          protocol: TCP
        startupProbe:
          tcpSocket:
            port: grpc
          periodSeconds: 2
          failureThreshold: 60
        readinessProbe:
          tcpSocket:
            port: grpc
          periodSeconds: 5
          failureThreshold: 2
        livenessProbe:
          tcpSocket:
            port: grpc
          periodSeconds: 10
          failureThreshold: 3
        lifecycle:
          preStop:
            sleep:
              seconds: 5
        securityContext:
          allowPrivilegeEscalation: false
          readOnlyRootFilesystem: true
          runAsNonRoot: true
          capabilities:
            drop: [ALL]
          seccompProfile:
            type: RuntimeDefault
        volumeMounts:
        - name: config
          mountPath: /var/lib/prism
        - name: proxy-config
          mountPath: /etc/prism
          readOnly: true
        - name: tmp
          mountPath: /tmp
      volumes:
      - name: proxy-config
        configMap:
          name: prism
      - name: tmp
        emptyDir:
          sizeLimit: 256Mi
  volumeClaimTemplates:
  - apiVersion: v1
    kind: PersistentVolumeClaim
    metadata:
      name: config
      labels:
        app.kubernetes.io/name: prism-proxy
    spec:
      accessModes: [ReadWriteOnce]
      resources:
        requests:
          storage: 10Gi
",
    ),
];

const AUTOSCALING_COMPONENT: &[(&str, &str)] = &[
    (
        "kustomization.yaml",
        "apiVersion: kustomize.config.k8s.io/v1alpha1
kind: Component
resources:
- hpa.yaml
",
    ),
    (
        "hpa.yaml",
        "apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: prism
  labels:
    app.kubernetes.io/name: prism-proxy
    app.kubernetes.io/component: proxy
    app.kubernetes.io/part-of: prism
    app.kubernetes.io/managed-by: prism-operator
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: StatefulSet
    name: prism
  minReplicas: 1
  maxReplicas: 1
  behavior:
    scaleDown:
      stabilizationWindowSeconds: 300
      policies:
      - type: Pods
        value: 1
        periodSeconds: 60
",
    ),
];

const BASE_PLUGIN: &[(&str, &str)] = &[
    (
        "kustomization.yaml",
        "apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
- deployment.yaml
- service.yaml
- pdb.yaml
",
    ),
    (
        "deployment.yaml",
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: prism-plugin
  labels:
    app.kubernetes.io/name: prism-plugin
    app.kubernetes.io/component: plugin
    app.kubernetes.io/part-of: prism
    app.kubernetes.io/managed-by: prism-operator
spec:
  replicas: 2
  revisionHistoryLimit: 10
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxUnavailable: 0
      maxSurge: 1
  selector:
    matchLabels:
      app.kubernetes.io/name: prism-plugin
  template:
    metadata:
      labels:
        app.kubernetes.io/name: prism-plugin
        app.kubernetes.io/component: plugin
        app.kubernetes.io/part-of: prism
        app.kubernetes.io/managed-by: prism-operator
    spec:
      automountServiceAccountToken: false
      enableServiceLinks: false
      terminationGracePeriodSeconds: 30
      securityContext:
        runAsNonRoot: true
        runAsUser: 65532
        runAsGroup: 65532
        fsGroup: 65532
        fsGroupChangePolicy: OnRootMismatch
        seccompProfile:
          type: RuntimeDefault
      topologySpreadConstraints:
      - maxSkew: 1
        topologyKey: kubernetes.io/hostname
        whenUnsatisfiable: ScheduleAnyway
        labelSelector:
          matchLabels:
            app.kubernetes.io/name: prism-plugin
      containers:
      - name: plugin
        image: plugin
        imagePullPolicy: IfNotPresent
        securityContext:
          allowPrivilegeEscalation: false
          readOnlyRootFilesystem: true
          runAsNonRoot: true
          capabilities:
            drop: [ALL]
          seccompProfile:
            type: RuntimeDefault
        volumeMounts:
        - name: tmp
          mountPath: /tmp
      volumes:
      - name: tmp
        emptyDir:
          sizeLimit: 256Mi
",
    ),
    (
        "service.yaml",
        "apiVersion: v1
kind: Service
metadata:
  name: prism-plugin
  labels:
    app.kubernetes.io/name: prism-plugin
    app.kubernetes.io/component: plugin
    app.kubernetes.io/part-of: prism
    app.kubernetes.io/managed-by: prism-operator
spec:
  type: ClusterIP
  selector:
    app.kubernetes.io/name: prism-plugin
",
    ),
    (
        "pdb.yaml",
        "apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: prism-plugin
  labels:
    app.kubernetes.io/name: prism-plugin
    app.kubernetes.io/component: plugin
    app.kubernetes.io/part-of: prism
    app.kubernetes.io/managed-by: prism-operator
spec:
  maxUnavailable: 1
  selector:
    matchLabels:
      app.kubernetes.io/name: prism-plugin
",
    ),
];

/// A strategic-merge patch of the object `kind`/`from` that also renames it.
fn rename_patch(api_version: &str, kind: &str, from: &str, body: Value) -> Value {
    let mut patch = json!({"apiVersion": api_version, "kind": kind});
    if let (Some(p), Some(b)) = (patch.as_object_mut(), body.as_object()) {
        p.extend(b.clone());
    }
    json!({
        "target": {"kind": kind, "name": from},
        "options": {"allowNameChange": true},
        "patch": serde_yaml::to_string(&patch).expect("YAML serializes"),
    })
}

fn labels_entries(instance: &str, extra: &Value) -> Value {
    json!([
        {"pairs": {"app.kubernetes.io/instance": instance}, "includeSelectors": true},
        {"pairs": extra, "includeTemplates": true},
    ])
}

fn kustomization(body: Value) -> String {
    let mut k = json!({"apiVersion": KUSTOMIZE_API, "kind": "Kustomization"});
    if let (Some(m), Some(b)) = (k.as_object_mut(), body.as_object()) {
        m.extend(b.clone());
    }
    serde_yaml::to_string(&k).expect("YAML serializes")
}

/// The Kustomize tree of `fleet`: `kustomization.yaml` at the top, `base/shard`,
/// `base/plugin`, `components/autoscaling`, `shards/<ns>/<shard>/kustomization.yaml`,
/// `plugins/<ns>/<plugin>/kustomization.yaml` and `resources/<ns>.yaml` (the custom resources,
/// namespaces annotated with their placement). `kustomize build` of the top gives the objects
/// prism-render renders.
pub fn kustomize_tree(fleet: &Fleet) -> Result<Vec<(String, String)>, String> {
    let objects = render(fleet)?;
    let find = |kind: &str, ns: &str, name: &str| -> Result<&Value, String> {
        objects
            .iter()
            .find(|o| o.kind == kind && o.namespace == ns && o.name == name)
            .map(|o| &o.value)
            .ok_or(format!("prism-render rendered no {kind} {ns}/{name}"))
    };
    let mut files: Vec<(String, String)> = Vec::new();
    let add = |dir: &str, set: &[(&str, &str)], files: &mut Vec<(String, String)>| {
        for (name, text) in set {
            files.push((format!("{dir}/{name}"), text.to_string()));
        }
    };
    add("base/shard", BASE_SHARD, &mut files);
    add("base/plugin", BASE_PLUGIN, &mut files);
    add("components/autoscaling", AUTOSCALING_COMPONENT, &mut files);

    let mut top: Vec<String> = Vec::new();
    for ns in fleet.k8s_namespaces() {
        let mut crs = String::from("# Custom resources, namespaces with their placement.\n");
        for o in objects
            .iter()
            .filter(|o| o.namespace == ns && o.kind.starts_with("Prism"))
        {
            crs.push_str("---\n");
            crs.push_str(&serde_yaml::to_string(&o.value).expect("YAML serializes"));
        }
        files.push((format!("resources/{ns}.yaml"), crs));
        top.push(format!("resources/{ns}.yaml"));
    }

    for shard in &fleet.shards {
        let ns = shard.namespace().unwrap_or_default();
        let name = shard.name_any();
        let full = format!("prism-{name}");
        let sts = find("StatefulSet", &ns, &full)?;
        let cm = find("ConfigMap", &ns, &full)?;
        let svc = find("Service", &ns, &full)?;
        let labels = &sts["metadata"]["labels"];
        let mut extra = json!({"prism.io/shard": name});
        if let Some(v) = labels.get("app.kubernetes.io/version") {
            extra["app.kubernetes.io/version"] = v.clone();
        }

        let pod = &sts["spec"]["template"]["spec"];
        let rendered_proxy = &pod["containers"][0];
        let mut proxy = json!({"name": "proxy", "image": rendered_proxy["image"], "env": rendered_proxy["env"]});
        if let Some(r) = rendered_proxy.get("resources") {
            proxy["resources"] = r.clone();
        }
        let mut pod_patch = json!({});
        if let Some(init) = pod.get("initContainers") {
            // New list items would go first: give the whole lists, in order.
            pod_patch["initContainers"] = init.clone();
            pod_patch["volumes"] = pod["volumes"].clone();
            proxy["volumeMounts"] = rendered_proxy["volumeMounts"].clone();
        }
        if pod_patch.get("volumes").is_none() {
            // References are given with their new names: the top-level build would find
            // every shard's base name ambiguous.
            pod_patch["volumes"] = json!([{"name": "proxy-config", "configMap": {"name": full}}]);
        }
        let mut containers = vec![proxy];
        containers.extend(
            pod["containers"]
                .as_array()
                .into_iter()
                .flatten()
                .skip(1)
                .cloned(),
        );
        pod_patch["containers"] = Value::Array(containers);
        let mut sts_spec = json!({
            "serviceName": format!("{full}-headless"),
            "template": {
                "metadata": {"annotations": sts["spec"]["template"]["metadata"]["annotations"]},
                "spec": pod_patch,
            },
        });
        if let Some(r) = sts["spec"].get("replicas") {
            sts_spec["replicas"] = r.clone();
        }
        let mut svc_meta = json!({"name": full});
        if let Some(a) = svc["metadata"].get("annotations") {
            svc_meta["annotations"] = a.clone();
        }
        let mut patches = vec![
            rename_patch(
                "apps/v1",
                "StatefulSet",
                "prism",
                json!({"metadata": {"name": full}, "spec": sts_spec}),
            ),
            rename_patch(
                "v1",
                "ConfigMap",
                "prism",
                json!({"metadata": {"name": full}, "data": cm["data"]}),
            ),
            rename_patch(
                "v1",
                "Service",
                "prism",
                json!({"metadata": svc_meta, "spec": {"type": svc["spec"]["type"]}}),
            ),
            rename_patch(
                "v1",
                "Service",
                "prism-headless",
                json!({"metadata": {"name": format!("{full}-headless")}}),
            ),
            rename_patch(
                "policy/v1",
                "PodDisruptionBudget",
                "prism",
                json!({"metadata": {"name": full}}),
            ),
        ];
        // The claim template list has no merge key: edit it in place.
        let claim = &sts["spec"]["volumeClaimTemplates"][0]["spec"];
        let mut ops = Vec::new();
        if claim["resources"]["requests"]["storage"] != "10Gi" {
            ops.push(json!({"op": "replace", "path": "/spec/volumeClaimTemplates/0/spec/resources/requests/storage", "value": claim["resources"]["requests"]["storage"]}));
        }
        if let Some(class) = claim.get("storageClassName") {
            ops.push(json!({"op": "add", "path": "/spec/volumeClaimTemplates/0/spec/storageClassName", "value": class}));
        }
        if !ops.is_empty() {
            patches.push(json!({
                "target": {"kind": "StatefulSet", "name": "prism"},
                "patch": serde_json::to_string(&ops).expect("JSON serializes"),
            }));
        }
        let mut body = json!({
            "namespace": ns,
            "resources": ["../../../base/shard"],
            "labels": labels_entries(&name, &extra),
        });
        if let Ok(hpa) = find("HorizontalPodAutoscaler", &ns, &full) {
            body["components"] = json!(["../../../components/autoscaling"]);
            patches.push(rename_patch(
                "autoscaling/v2",
                "HorizontalPodAutoscaler",
                "prism",
                json!({"metadata": {"name": full}, "spec": {
                    "scaleTargetRef": {"name": full},
                    "minReplicas": hpa["spec"]["minReplicas"],
                    "maxReplicas": hpa["spec"]["maxReplicas"],
                    "metrics": hpa["spec"]["metrics"],
                }}),
            ));
        }
        body["patches"] = Value::Array(patches);
        let dir = format!("shards/{ns}/{name}");
        files.push((format!("{dir}/kustomization.yaml"), kustomization(body)));
        top.push(dir);
    }

    for plugin in fleet
        .plugins
        .iter()
        .filter(|p| p.spec.deployment.type_ == PluginDeploymentType::Remote)
    {
        let ns = plugin.namespace().unwrap_or_default();
        let name = plugin.name_any();
        let full = format!("prism-plugin-{name}");
        let deploy = find("Deployment", &ns, &full)?;
        let svc = find("Service", &ns, &full)?;
        let labels = &deploy["metadata"]["labels"];
        let mut extra = json!({"prism.io/plugin": name});
        if let Some(v) = labels.get("app.kubernetes.io/version") {
            extra["app.kubernetes.io/version"] = v.clone();
        }
        let c = &deploy["spec"]["template"]["spec"]["containers"][0];
        let mut container = json!({"name": "plugin"});
        for field in [
            "image",
            "args",
            "env",
            "ports",
            "readinessProbe",
            "livenessProbe",
            "resources",
        ] {
            if let Some(v) = c.get(field) {
                container[field] = v.clone();
            }
        }
        let patches = vec![
            rename_patch(
                "apps/v1",
                "Deployment",
                "prism-plugin",
                json!({"metadata": {"name": full}, "spec": {
                    "replicas": deploy["spec"]["replicas"],
                    "template": {
                        "metadata": {"annotations": deploy["spec"]["template"]["metadata"]["annotations"]},
                        "spec": {"containers": [container]},
                    },
                }}),
            ),
            rename_patch(
                "v1",
                "Service",
                "prism-plugin",
                json!({"metadata": {"name": full}, "spec": {"ports": svc["spec"]["ports"]}}),
            ),
            rename_patch(
                "policy/v1",
                "PodDisruptionBudget",
                "prism-plugin",
                json!({"metadata": {"name": full}}),
            ),
        ];
        let body = json!({
            "namespace": ns,
            "resources": ["../../../base/plugin"],
            "labels": labels_entries(&name, &extra),
            "patches": patches,
        });
        let dir = format!("plugins/{ns}/{name}");
        files.push((format!("{dir}/kustomization.yaml"), kustomization(body)));
        top.push(dir);
    }
    files.push((
        "kustomization.yaml".into(),
        kustomization(json!({"resources": top})),
    ));
    Ok(files)
}
