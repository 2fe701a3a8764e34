use super::*;
use crate::render::Renderer;
use crate::source::fleet_from_files;

/// A plugin `pg` (with `rollout` as its policy, YAML flow text, or none) and shards using it.
fn fleet(rollout: Option<&str>, shards: &[(&str, &[&str])]) -> Fleet {
    let mut text = String::new();
    for plugin in ["pg", "kv"] {
        let policy = match (plugin, rollout) {
            ("pg", Some(r)) => format!("  rollout: {r}\n"),
            _ => String::new(),
        };
        text.push_str(&format!(
            "apiVersion: prism.io/v1beta1\nkind: PrismPlugin\nmetadata: {{name: {plugin}}}\nspec:\n  version: 1.0.0\n  source: {{registry: r, image: {plugin}:1.0.0}}\n  deployment: {{type: sidecar}}\n{policy}---\n"
        ));
    }
    for (name, plugins) in shards {
        let uses: Vec<String> = plugins
            .iter()
            .map(|p| format!("{{name: {p}, version: \"1\"}}"))
            .collect();
        text.push_str(&format!(
            "apiVersion: prism.io/v1beta1\nkind: PrismShard\nmetadata: {{name: {name}}}\nspec:\n  product: p\n  backends: [pg]\n  plugins: [{}]\n---\n",
            uses.join(", ")
        ));
    }
    fleet_from_files(vec![("fleet.yaml".into(), text)], "prism").unwrap()
}

fn waves_of(f: &Fleet) -> Vec<(String, u32)> {
    f.shards
        .iter()
        .filter_map(|s| {
            let name = s.value.name_any();
            Waves::of(f).of_shard("prism", &name).map(|w| (name, w))
        })
        .collect()
}

fn named(pairs: &[(&str, u32)]) -> Vec<(String, u32)> {
    pairs.iter().map(|(n, w)| (n.to_string(), *w)).collect()
}

#[test]
fn one_shard_at_a_time_gives_one_wave_per_shard_in_name_order() {
    // Written out of order: the waves follow the names.
    let f = fleet(
        Some("{maxUnavailableShards: 1}"),
        &[("s3", &["pg"]), ("s1", &["pg"]), ("s2", &["pg"])],
    );
    assert_eq!(
        waves_of(&f),
        named(&[("s1", 1), ("s2", 2), ("s3", 3)]),
        "three shards, one at a time: three waves"
    );
}

#[test]
fn batches_hold_max_unavailable_shards_and_a_policy_without_it_moves_one() {
    let shards: &[(&str, &[&str])] = &[
        ("a", &["pg"]),
        ("b", &["pg"]),
        ("c", &["pg"]),
        ("d", &["pg"]),
        ("e", &["pg"]),
    ];
    let f = fleet(Some("{maxUnavailableShards: 2}"), shards);
    assert_eq!(
        waves_of(&f),
        named(&[("a", 1), ("b", 1), ("c", 2), ("d", 2), ("e", 3)])
    );
    let f = fleet(Some("{progressDeadline: 5m}"), shards);
    assert_eq!(
        waves_of(&f),
        named(&[("a", 1), ("b", 2), ("c", 3), ("d", 4), ("e", 5)])
    );
}

#[test]
fn shards_without_a_rolled_out_plugin_have_no_wave() {
    let f = fleet(
        Some("{maxUnavailableShards: 1}"),
        &[("s1", &["pg"]), ("s2", &["kv"]), ("s3", &["pg", "kv"])],
    );
    assert_eq!(waves_of(&f), named(&[("s1", 1), ("s3", 2)]));
    let f = fleet(None, &[("s1", &["pg"]), ("s2", &["pg"])]);
    assert!(Waves::of(&f).is_empty());
}

#[test]
fn every_plugin_keeps_its_order_and_batch_size_when_shards_use_several() {
    // Two plugins with policies over overlapping shards.
    let text = |name: &str, batch: u32| {
        format!(
            "apiVersion: prism.io/v1beta1\nkind: PrismPlugin\nmetadata: {{name: {name}}}\nspec:\n  version: 1.0.0\n  source: {{registry: r, image: {name}:1}}\n  deployment: {{type: sidecar}}\n  rollout: {{maxUnavailableShards: {batch}}}\n---\n"
        )
    };
    let mut yaml = text("a", 2) + &text("b", 1);
    let uses: [(&str, &[&str]); 6] = [
        ("s1", &["a", "b"]),
        ("s2", &["a", "b"]),
        ("s3", &["a"]),
        ("s4", &["a"]),
        ("s5", &["b"]),
        ("s6", &["a", "b"]),
    ];
    for (shard, plugins) in uses {
        let list: Vec<String> = plugins
            .iter()
            .map(|p| format!("{{name: {p}, version: \"1\"}}"))
            .collect();
        yaml.push_str(&format!(
            "apiVersion: prism.io/v1beta1\nkind: PrismShard\nmetadata: {{name: {shard}}}\nspec:\n  product: p\n  plugins: [{}]\n---\n",
            list.join(", ")
        ));
    }
    let f = fleet_from_files(vec![("f.yaml".into(), yaml)], "prism").unwrap();
    let waves = Waves::of(&f);
    for (plugin, batch) in [("a", 2), ("b", 1)] {
        let mut last = 0;
        let mut per_wave: BTreeMap<u32, usize> = BTreeMap::new();
        for (shard, plugins) in uses {
            if plugins.contains(&plugin) {
                let w = waves.of_shard("prism", shard).unwrap();
                assert!(w >= last, "{plugin}: {shard} in wave {w} after wave {last}");
                last = w;
                *per_wave.entry(w).or_default() += 1;
            }
        }
        assert!(
            per_wave.values().all(|n| *n <= batch),
            "{plugin}: at most {batch} shards per wave: {per_wave:?}"
        );
    }
    assert_eq!(
        (1..=6)
            .map(|i| waves.of_shard("prism", &format!("s{i}")).unwrap())
            .collect::<Vec<_>>(),
        [1, 2, 2, 3, 3, 4],
        "each shard in the first wave both plugins allow"
    );
}

fn wave_annotation(o: &Object) -> Option<&str> {
    o.value["metadata"]["annotations"][SYNC_WAVE_ANNOTATION].as_str()
}

#[test]
fn every_object_of_a_shard_is_in_its_wave_and_nothing_else_changes() {
    let shards: &[(&str, &[&str])] = &[("s1", &["pg"]), ("s2", &["pg"]), ("s3", &["kv"])];
    let with = Renderer::embedded()
        .render_fleet(&fleet(Some("{maxUnavailableShards: 1}"), shards))
        .unwrap();
    let without = Renderer::embedded()
        .render_fleet(&fleet(None, shards))
        .unwrap();
    assert!(without.iter().all(|o| wave_annotation(o).is_none()));
    assert_eq!(with.len(), without.len());
    let mut waved = BTreeMap::new();
    for (w, o) in with.iter().zip(&without) {
        assert_eq!(w.id(), o.id(), "same objects in the same order");
        let shard = o.value["metadata"]["labels"]["prism.io/shard"]
            .as_str()
            .or((o.kind == "PrismShard").then_some(o.name.as_str()));
        match (shard, wave_annotation(w)) {
            (Some(s @ ("s1" | "s2")), Some(wave)) => {
                waved.insert(format!("{} {s}", o.kind), wave.to_string());
                let mut stripped = w.clone();
                let annotations = stripped.value["metadata"]["annotations"]
                    .as_object_mut()
                    .unwrap();
                annotations.remove(SYNC_WAVE_ANNOTATION);
                if annotations.is_empty() {
                    stripped.value["metadata"]
                        .as_object_mut()
                        .unwrap()
                        .remove("annotations");
                }
                // The plugin's own custom resource differs by its policy; nothing else does.
                assert_eq!(stripped, *o, "{}: only the wave was added", o.id());
            }
            // Its policy aside, the plugin is the same, in wave 0 before its shards.
            (_, None) if o.kind == "PrismPlugin" => {}
            (_, None) => assert_eq!(w, o, "{} keeps its bytes", o.id()),
            (s, Some(wave)) => panic!("{} (shard {s:?}) has wave {wave}", o.id()),
        }
    }
    for kind in [
        "StatefulSet",
        "Service",
        "ConfigMap",
        "PodDisruptionBudget",
        "PrismShard",
    ] {
        assert_eq!(
            waved.get(&format!("{kind} s1")).map(String::as_str),
            Some("1")
        );
        assert_eq!(
            waved.get(&format!("{kind} s2")).map(String::as_str),
            Some("2")
        );
    }
}

#[test]
fn explain_prints_the_waves_of_one_plugin() {
    let f = fleet(
        Some("{maxUnavailableShards: 2}"),
        &[
            ("c", &["pg"]),
            ("a", &["pg"]),
            ("b", &["pg", "kv"]),
            ("z", &["kv"]),
        ],
    );
    let text = explain(&f, "pg").unwrap();
    assert!(text.starts_with("PrismPlugin prism/pg 1.0.0: 3 shard(s), at most 2 at a time"));
    assert!(
        text.contains(
            "in 2 sync wave(s)\n  wave 1: a, b\n  wave 2: c\nThe PrismPlugin itself is in wave 0"
        ),
        "{text}"
    );
    let none = explain(&f, "prism/kv").unwrap();
    assert!(none.contains("no spec.rollout, so no sync waves"), "{none}");
    assert_eq!(
        explain(&f, "nope").unwrap_err(),
        "no PrismPlugin named \"nope\" in the inputs"
    );
}
