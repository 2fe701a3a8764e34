//! The view and the admin rules over it, on fixtures: no API server.

use std::collections::BTreeSet;

use kube::ResourceExt;
use kube::runtime::watcher::Event;

use super::fixture::{Objects, namespace, pod, shard};
use super::key;
use crate::decide::admin::{Access, access, name_owner, stale_proxies};
use prism_api::PrismShard;

fn names<K: ResourceExt>(objects: &[std::sync::Arc<K>]) -> Vec<String> {
    objects.iter().map(|o| key(&**o)).collect()
}

#[test]
fn shards_sharing_an_endpoint_are_found_through_the_index_oldest_first() {
    let view = Objects(vec![
        shard("b", "late", 30, Some("admin-1:8981,admin-2:8981")),
        shard("a", "early", 10, Some("http://admin-2:8981")),
        shard("c", "alone", 5, Some("admin-9:8981")),
        shard("d", "default", 20, None),
    ])
    .view(Some("admin-1:8981"));
    let set = view.admins.endpoint_set("admin-2:8981");
    assert_eq!(names(&view.admin_users(&set)), ["a/early", "b/late"]);
    let set = view.admins.endpoint_set("admin-1:8981");
    assert_eq!(names(&view.admin_users(&set)), ["d/default", "b/late"]);
    let late = view.shard("b", "late").unwrap();
    assert_eq!(
        access(&view, &late, false),
        Some(Access::Refused {
            owner: "a/early".into(),
            with: vec!["a/early".into(), "d/default".into()],
        })
    );
    assert_eq!(
        access(&view, &late, true),
        Some(Access::Shared(vec!["a/early".into(), "d/default".into()]))
    );
    let alone = view.shard("c", "alone").unwrap();
    assert_eq!(access(&view, &alone, false), Some(Access::Own));
}

#[test]
fn a_shard_being_deleted_or_moved_leaves_its_old_endpoints() {
    let view = Objects(vec![shard("a", "s", 10, Some("admin-1:8981"))]).view(None);
    let set = view.admins.endpoint_set("admin-1:8981");
    assert_eq!(names(&view.admin_users(&set)), ["a/s"]);
    let mut moved: PrismShard =
        serde_json::from_value(shard("a", "s", 10, Some("admin-2:8981"))).unwrap();
    view.indexes.shard_event(&Event::Apply(moved.clone()));
    assert!(view.indexes.endpoints.get("http://admin-1:8981").is_empty());
    moved.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        jiff::Timestamp::from_second(1_800_000_000).unwrap(),
    ));
    view.indexes.shard_event(&Event::Apply(moved));
    assert!(view.indexes.endpoints.get("http://admin-2:8981").is_empty());
}

#[test]
fn a_name_belongs_to_the_oldest_namespace_reaching_the_same_admin() {
    let view = Objects(vec![
        shard("team-a", "s", 0, Some("admin-1:8981")),
        shard("team-b", "s", 0, Some("admin-1:8981")),
        shard("team-c", "s", 0, Some("admin-2:8981")),
        namespace("team-a", "orders", 10, Some("s")),
        namespace("team-b", "orders", 20, Some("s")),
        namespace("team-c", "orders", 5, Some("s")),
        namespace("team-b", "carts", 1, Some("s")),
    ])
    .view(None);
    assert_eq!(names(&view.named("orders")).len(), 3);
    let b = view
        .namespaces
        .get(&kube::runtime::reflector::ObjectRef::new("orders").within("team-b"))
        .unwrap();
    // team-c's is older but reaches another admin; team-a's reaches the same one.
    assert_eq!(
        name_owner(&view, &b, "admin-1:8981", true),
        Some("team-a/orders".into())
    );
    let a = view
        .namespaces
        .get(&kube::runtime::reflector::ObjectRef::new("orders").within("team-a"))
        .unwrap();
    assert_eq!(name_owner(&view, &a, "admin-1:8981", true), None);
    let carts = view
        .namespaces
        .get(&kube::runtime::reflector::ObjectRef::new("carts").within("team-b"))
        .unwrap();
    assert_eq!(name_owner(&view, &carts, "admin-1:8981", true), None);
}

#[test]
fn a_name_never_belongs_to_a_namespace_whose_shard_is_refused_its_admin() {
    // team-c's shard owns admin-1; team-d's shares it and is refused. team-d's dup2 is the
    // older, but it is never sent, so the name is team-c's.
    let view = Objects(vec![
        shard("team-c", "c", 0, Some("admin-1:8981")),
        shard("team-d", "d", 5, Some("admin-1:8981")),
        namespace("team-d", "dup2", 10, Some("d")),
        namespace("team-c", "dup2", 20, Some("c")),
    ])
    .view(None);
    let get = |team: &str| {
        view.namespaces
            .get(&kube::runtime::reflector::ObjectRef::new("dup2").within(team))
            .unwrap()
    };
    assert_eq!(
        name_owner(&view, &get("team-c"), "admin-1:8981", false),
        None
    );
    // Shared admins allowed: team-d's is sent, so it keeps the name it had first.
    assert_eq!(
        name_owner(&view, &get("team-c"), "admin-1:8981", true),
        Some("team-d/dup2".into())
    );
}

/// An operator watching team-b alone still sees who else reaches its admin: team-a's shard
/// (another operator's, on that operator's default admin, known from its status) owns the
/// admin and team-a's `orders` the name; a shard of unknown admin reaches none.
#[test]
fn with_one_watched_namespace_the_admin_rules_see_every_namespace() {
    let mut foreign = shard("team-a", "s", 0, None);
    foreign["status"] = serde_json::json!({"admin": {"endpoints": "http://admin-1:8981"}});
    let view = Objects(vec![
        foreign,
        shard("team-x", "unknown", 0, None),
        shard("team-b", "s", 5, None),
        namespace("team-a", "orders", 10, Some("s")),
        namespace("team-b", "orders", 20, Some("s")),
    ])
    .view_watching(Some("admin-1:8981"), Some("team-b"));
    assert_eq!(
        names(&view.shards.state()),
        ["team-b/s"],
        "reconciled: team-b's"
    );
    let set = view.admins.endpoint_set("admin-1:8981");
    assert_eq!(names(&view.admin_users(&set)), ["team-a/s", "team-b/s"]);
    let mine = view.shard("team-b", "s").unwrap();
    assert_eq!(
        access(&view, &mine, false),
        Some(Access::Refused {
            owner: "team-a/s".into(),
            with: vec!["team-a/s".into()],
        })
    );
    let orders = view
        .namespaces
        .get(&kube::runtime::reflector::ObjectRef::new("orders").within("team-b"))
        .unwrap();
    assert_eq!(
        name_owner(&view, &orders, "admin-1:8981", true),
        Some("team-a/orders".into())
    );
    assert_eq!(
        names(&view.placed_with_admin(&set)),
        ["team-b/orders"],
        "only its own namespaces are upserted again"
    );
}

#[test]
fn objects_created_in_the_same_second_are_ordered_by_name_not_uid() {
    // Same creation second; the UIDs would order them the other way.
    let mut early: PrismShard = serde_json::from_value(shard("t", "alpha", 7, None)).unwrap();
    let mut late: PrismShard = serde_json::from_value(shard("t", "beta", 7, None)).unwrap();
    early.metadata.uid = Some("ffff".into());
    late.metadata.uid = Some("0000".into());
    assert_eq!(super::by_age(&early, &late), std::cmp::Ordering::Less);
    assert_eq!(super::by_age(&late, &early), std::cmp::Ordering::Greater);
}

#[test]
fn pods_placements_and_stale_proxies() {
    let view = Objects(vec![
        shard("team", "s", 0, Some("admin-1:8981")),
        pod("team", "s", "prism-s-1", false),
        pod("team", "s", "prism-s-0", true),
        pod("other", "s", "prism-s-0", true),
        pod("team", "t", "prism-t-0", true),
        namespace("team", "a", 0, Some("s")),
        namespace("team", "b", 0, Some("t")),
        namespace("team", "c", 0, None),
    ])
    .view(None);
    assert_eq!(names(&view.ready_pods("team", "s")), ["team/prism-s-0"]);
    assert_eq!(
        view.pod_owner("team", "prism-s-0"),
        Some(("team".into(), "s".into()))
    );
    assert_eq!(
        view.pod_owner("third", "prism-s-0").map(|o| o.1),
        Some("s".into())
    );
    assert_eq!(view.pod_owner("team", "prism-x-0"), None);
    assert_eq!(view.placed_on("team", &BTreeSet::from(["s"])), 1);
    assert_eq!(view.placed_on("team", &BTreeSet::from(["s", "t"])), 2);
    let s = view.shard("team", "s").unwrap();
    let registered = vec!["prism-s-0".to_string(), "prism-s-7".to_string()];
    assert_eq!(stale_proxies(&view, &s, registered), ["prism-s-7.team"]);
    assert_eq!(names(&view.live_shards("team")), ["team/s"]);
    assert!(view.live_shards("other").is_empty());
}
