//! Namespace placement: which shard hosts a PrismNamespace, and why.
//!
//! A shard is a candidate when it is in the namespace's Kubernetes namespace, matches every
//! field the namespace's `spec.shard` selector gives, and (when it lists backends) offers the
//! namespace's backend. Among several candidates the one with the highest rendezvous hash of
//! (namespace, shard) wins: adding a shard moves only the namespaces it now wins.

use std::fmt;
use std::fmt::Write as _;

use kube::ResourceExt;
use sha2::{Digest, Sha256};

use crate::api::{PrismNamespace, PrismShard};

/// Where a namespace goes and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// Chosen shard name.
    pub shard: String,
    /// Why it was chosen.
    pub reason: Reason,
    /// Shards that were considered and why each was not a candidate.
    pub rejected: Vec<(String, String)>,
}

/// Why a shard was chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// The only shard that matched.
    OnlyMatch,
    /// Highest rendezvous score among the matching shards (all listed with their scores).
    Rendezvous(Vec<(String, u64)>),
}

impl fmt::Display for Placement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.reason {
            Reason::OnlyMatch => write!(f, "{}: the only matching shard", self.shard),
            Reason::Rendezvous(c) => write!(
                f,
                "{}: highest rendezvous score among {} matching shards",
                self.shard,
                c.len()
            ),
        }
    }
}

/// A selector value for messages: as written, or quoted with escapes when it holds control
/// characters (selector values are free text; a message must stay one printable line).
fn shown(value: &str) -> std::borrow::Cow<'_, str> {
    if value.chars().any(char::is_control) {
        crate::source::schema::quote(value).into()
    } else {
        value.into()
    }
}

/// Describes a namespace's selector, e.g. `product=playback, slaTier=p99_10ms, backend=postgres`.
pub fn describe_selector(ns: &PrismNamespace) -> String {
    let mut parts = Vec::new();
    if let Some(sel) = &ns.spec.shard {
        for (k, v) in [
            ("name", &sel.name),
            ("product", &sel.product),
            ("feature", &sel.feature),
            ("slaTier", &sel.sla_tier),
        ] {
            if let Some(v) = v {
                parts.push(format!("{k}={}", shown(v)));
            }
        }
    }
    parts.push(format!("backend={}", ns.spec.backend));
    parts.join(", ")
}

/// Why `shard` cannot host `ns`, if it cannot.
pub fn mismatch(ns: &PrismNamespace, shard: &PrismShard) -> Option<String> {
    if ns.namespace() != shard.namespace() {
        return Some("in another Kubernetes namespace".into());
    }
    if let Some(sel) = &ns.spec.shard {
        let s = &shard.spec;
        let name = shard.name_any();
        let checks = [
            ("name", sel.name.as_deref(), Some(name.as_str())),
            ("product", sel.product.as_deref(), Some(s.product.as_str())),
            ("feature", sel.feature.as_deref(), s.feature.as_deref()),
            ("slaTier", sel.sla_tier.as_deref(), s.sla_tier.as_deref()),
        ];
        for (field, want, have) in checks {
            if let Some(want) = want
                && have != Some(want)
            {
                return Some(format!(
                    "{field} is {}, not {}",
                    have.unwrap_or("unset"),
                    shown(want)
                ));
            }
        }
    }
    if !shard.spec.backends.is_empty() && !shard.spec.backends.contains(&ns.spec.backend) {
        return Some(format!(
            "serves backends [{}], not {}",
            shard.spec.backends.join(", "),
            ns.spec.backend
        ));
    }
    None
}

/// Rendezvous score of a namespace on a shard: the first 8 bytes of
/// SHA-256("<k8s namespace>/<name>\0<shard>").
pub fn score(ns: &PrismNamespace, shard: &str) -> u64 {
    let mut h = Sha256::new();
    h.update(ns.namespace().unwrap_or_default().as_bytes());
    h.update(b"/");
    h.update(ns.name_any().as_bytes());
    h.update(b"\0");
    h.update(shard.as_bytes());
    let digest = h.finalize();
    u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
}

/// The name of the shard [`place`] chooses, without the record of how.
pub fn choose(ns: &PrismNamespace, shards: &[&PrismShard]) -> Result<String, String> {
    let mut fitting = shards.iter().filter(|s| fits(ns, s));
    let Some(first) = fitting.next() else {
        return place(ns, shards.iter().copied()).map(|p| p.shard);
    };
    let mut best = (first.name_any(), None::<u64>);
    for shard in fitting {
        let name = shard.name_any();
        let best_score = *best.1.get_or_insert_with(|| score(ns, &best.0));
        let s = score(ns, &name);
        if s > best_score || (s == best_score && name < best.0) {
            best = (name, Some(s));
        }
    }
    Ok(best.0)
}

/// Whether `shard` can host `ns`: [`mismatch`] without the explanation.
fn fits(ns: &PrismNamespace, shard: &PrismShard) -> bool {
    if ns.metadata.namespace != shard.metadata.namespace {
        return false;
    }
    if let Some(sel) = &ns.spec.shard {
        let s = &shard.spec;
        let checks = [
            (sel.name.as_deref(), shard.metadata.name.as_deref()),
            (sel.product.as_deref(), Some(s.product.as_str())),
            (sel.feature.as_deref(), s.feature.as_deref()),
            (sel.sla_tier.as_deref(), s.sla_tier.as_deref()),
        ];
        if checks
            .iter()
            .any(|(want, have)| want.is_some() && have != want)
        {
            return false;
        }
    }
    shard.spec.backends.is_empty() || shard.spec.backends.contains(&ns.spec.backend)
}

/// Places `ns` on one of `shards`, or explains why none can host it.
pub fn place<'a>(
    ns: &PrismNamespace,
    shards: impl IntoIterator<Item = &'a PrismShard>,
) -> Result<Placement, String> {
    let mut candidates = Vec::new();
    let mut rejected = Vec::new();
    for shard in shards {
        match mismatch(ns, shard) {
            None => candidates.push(shard.name_any()),
            Some(why) => {
                if ns.namespace() == shard.namespace() {
                    rejected.push((shard.name_any(), why));
                }
            }
        }
    }
    candidates.sort();
    rejected.sort();
    match candidates.len() {
        0 => {
            let why = if rejected.is_empty() {
                format!(
                    "no PrismShard exists in namespace {}",
                    ns.namespace().unwrap_or_default()
                )
            } else {
                let reasons: Vec<String> =
                    rejected.iter().map(|(s, w)| format!("{s}: {w}")).collect();
                format!(
                    "no shard matches {} ({})",
                    describe_selector(ns),
                    reasons.join("; ")
                )
            };
            Err(why)
        }
        1 => Ok(Placement {
            shard: candidates.remove(0),
            reason: Reason::OnlyMatch,
            rejected,
        }),
        _ => {
            let mut scored: Vec<(String, u64)> = candidates
                .into_iter()
                .map(|c| {
                    let s = score(ns, &c);
                    (c, s)
                })
                .collect();
            scored.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            Ok(Placement {
                shard: scored[0].0.clone(),
                reason: Reason::Rendezvous(scored),
                rejected,
            })
        }
    }
}

/// Explains where the PrismNamespace `query` (`name` or `namespace/name`) is placed and why.
pub fn explain(fleet: &crate::source::Fleet, query: &str) -> Result<String, String> {
    let (want_ns, want_name) = match query.split_once('/') {
        Some((ns, name)) => (Some(ns), name),
        None => (None, query),
    };
    let matches: Vec<_> = fleet
        .namespaces
        .iter()
        .filter(|n| {
            n.value.name_any() == want_name
                && want_ns.is_none_or(|ns| n.value.namespace().as_deref() == Some(ns))
        })
        .collect();
    let ns = match matches.as_slice() {
        [one] => *one,
        [] => return Err(format!("no PrismNamespace named {query:?} in the inputs")),
        many => {
            let names: Vec<String> = many
                .iter()
                .map(|n| {
                    format!(
                        "{}/{}",
                        n.value.namespace().unwrap_or_default(),
                        n.value.name_any()
                    )
                })
                .collect();
            return Err(format!(
                "{query:?} is ambiguous: {}; use namespace/name",
                names.join(", ")
            ));
        }
    };
    let v = &ns.value;
    let mut out = String::new();
    let k8s_ns = v.namespace().unwrap_or_default();
    let _ = writeln!(
        out,
        "PrismNamespace {k8s_ns}/{} ({})",
        v.name_any(),
        ns.place()
    );
    let _ = writeln!(out, "  wants: {}", describe_selector(v));
    match place(v, fleet.shards.iter().map(|s| &s.value)) {
        Err(why) => {
            let _ = writeln!(out, "  result: not placed: {why}");
        }
        Ok(p) => {
            if let Reason::Rendezvous(scores) = &p.reason {
                let _ = writeln!(out, "  candidates (rendezvous score, highest wins):");
                for (shard, score) in scores {
                    let mark = if *shard == p.shard { "  <- chosen" } else { "" };
                    let _ = writeln!(out, "    {shard:<24} {score:016x}{mark}");
                }
            }
            if !p.rejected.is_empty() {
                let _ = writeln!(out, "  not candidates:");
                for (shard, why) in &p.rejected {
                    let _ = writeln!(out, "    {shard:<24} {why}");
                }
            }
            let _ = writeln!(out, "  placed on: {p}");
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{AccessPattern, PrismNamespaceSpec, PrismShardSpec, ShardSelector};

    fn shard(name: &str, product: &str) -> PrismShard {
        let mut s = PrismShard::new(
            name,
            PrismShardSpec {
                product: product.into(),
                feature: None,
                sla_tier: None,
                replicas: None,
                backends: vec![],
                resources: None,
                plugins: vec![],
                autoscaling: None,
                image: None,
                storage: None,
                service: None,
                admin_endpoint: None,
                expose: None,
                network_policy: None,
                monitoring: None,
                stop_signal: None,
            },
        );
        s.metadata.namespace = Some("prod".into());
        s
    }

    fn namespace(name: &str, product: Option<&str>) -> PrismNamespace {
        let mut n = PrismNamespace::new(
            name,
            PrismNamespaceSpec {
                backend: "postgres".into(),
                pattern: AccessPattern::Keyvalue,
                consistency: None,
                backend_config: Default::default(),
                connection_string_from: None,
                caching: None,
                rate_limit: None,
                shard: product.map(|p| ShardSelector {
                    product: Some(p.into()),
                    ..Default::default()
                }),
                auth: None,
                reclaim_policy: None,
            },
        );
        n.metadata.namespace = Some("prod".into());
        n
    }

    #[test]
    fn single_match_wins() {
        let shards = [shard("a", "playback"), shard("b", "search")];
        let p = place(&namespace("ns1", Some("search")), &shards).unwrap();
        assert_eq!(p.shard, "b");
        assert_eq!(p.reason, Reason::OnlyMatch);
        assert_eq!(
            p.rejected,
            vec![("a".into(), "product is playback, not search".into())]
        );
    }

    #[test]
    fn no_match_names_the_selector_and_the_reasons() {
        let shards = [shard("a", "playback")];
        let err = place(&namespace("ns1", Some("billing")), &shards).unwrap_err();
        assert!(err.contains("product=billing"), "{err}");
        assert!(err.contains("a: product is playback, not billing"), "{err}");
    }

    #[test]
    fn rendezvous_is_stable_when_shards_are_added() {
        let mut shards: Vec<PrismShard> = (0..4).map(|i| shard(&format!("s{i}"), "p")).collect();
        let names: Vec<PrismNamespace> = (0..200)
            .map(|i| namespace(&format!("n{i}"), None))
            .collect();
        let before: Vec<String> = names
            .iter()
            .map(|n| place(n, &shards).unwrap().shard)
            .collect();
        shards.push(shard("s4", "p"));
        let mut moved = 0;
        for (n, old) in names.iter().zip(&before) {
            let new = place(n, &shards).unwrap().shard;
            if &new != old {
                assert_eq!(new, "s4", "a namespace may only move to the new shard");
                moved += 1;
            }
        }
        // Roughly a fifth of the namespaces move to the fifth shard, none elsewhere.
        assert!((20..=70).contains(&moved), "moved {moved}");
        // And the spread over the original four shards is not degenerate.
        for s in ["s0", "s1", "s2", "s3"] {
            assert!(before.iter().filter(|b| *b == s).count() > 20);
        }
    }

    #[test]
    fn shards_offering_other_backends_are_not_candidates() {
        let mut redis_only = shard("r", "p");
        redis_only.spec.backends = vec!["redis".into()];
        let err = place(&namespace("n", None), &[redis_only]).unwrap_err();
        assert!(
            err.contains("serves backends [redis], not postgres"),
            "{err}"
        );
    }

    #[test]
    fn choose_agrees_with_place() {
        let mut shards: Vec<PrismShard> = (0..6)
            .map(|i| shard(&format!("s{i}"), ["p", "q"][i % 2]))
            .collect();
        shards[1].spec.backends = vec!["redis".into()];
        shards[2].spec.feature = Some("vod".into());
        let mut other_namespace = shard("elsewhere", "p");
        other_namespace.metadata.namespace = Some("other".into());
        shards.push(other_namespace);
        let refs: Vec<&PrismShard> = shards.iter().collect();
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..300 {
            let mut ns = namespace(
                &format!("n{i}"),
                [None, Some("p"), Some("q"), Some("x")][i % 4],
            );
            if i % 5 == 0 {
                ns.spec.backend = "redis".into();
            }
            if i % 7 == 0 {
                ns.spec.shard.get_or_insert_default().feature = Some("vod".into());
            }
            let want = place(&ns, refs.iter().copied()).map(|p| p.shard);
            assert_eq!(choose(&ns, &refs), want, "{i}");
            seen.insert(format!("{want:?}"));
        }
        // Every outcome: each shard that can win, and errors.
        assert!(seen.len() >= 5, "{seen:?}");
    }
}
