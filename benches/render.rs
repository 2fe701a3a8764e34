//! Render throughput of generated fleets at 10, 100 and 1,000 shards with 10 PrismNamespaces
//! per shard (`crates/testing/src/fleet.rs`), reported as objects/s and output bytes/s:
//!
//! - `pipeline`: input YAML text → the output YAML stream, everything `prism-render render`
//!   does except reading files and writing stdout (split, strict parse, schema and CEL
//!   validation, plugin resolution, placement, templates, typed round trip, hashes, the
//!   spool, order), on every core;
//! - `parse`: input text → validated fleet (throughput in input resources and input bytes);
//! - `render`: validated fleet → ordered objects;
//! - `serialize`: objects → the YAML stream.
//!
//! `cargo bench --bench render` measures; `cargo bench --bench render -- --test` runs each case
//! once. Unoptimised builds (`cargo test --all-targets`) leave out the 1,000-shard cases.

use prism_testing::fleet;

use std::time::Duration;

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use fleet::{Fleet, FleetParams};
use prism_render::output::{YamlStream, to_yaml_stream};
use prism_render::render::Renderer;
use prism_render::source::fleet_from_files;

fn sizes() -> &'static [usize] {
    if cfg!(debug_assertions) {
        &[10, 100]
    } else {
        &[10, 100, 1000]
    }
}

/// What `prism-render render` does: the streaming render into a spool, then its text.
fn pipeline(renderer: &Renderer, files: Vec<(String, String)>) -> String {
    let parsed = fleet_from_files(files, "default").expect("generated fleets are valid");
    YamlStream::render(renderer, &parsed)
        .expect("generated fleets render")
        .spool
        .into_string()
        .expect("the spool reads back")
}

fn benches(c: &mut Criterion) {
    let renderer = Renderer::embedded();
    for &shards in sizes() {
        let fleet = Fleet::new(&FleetParams::new(shards));
        let files = fleet.files();
        let input_bytes: usize = files.iter().map(|(_, t)| t.len()).sum();
        let inputs = fleet.shards.len() + fleet.plugins.len() + fleet.namespaces.len();
        let parsed = fleet_from_files(files.clone(), "default").expect("valid fleet");
        let objects = renderer.render_fleet(&parsed).expect("renders");
        let output = to_yaml_stream(&objects);
        let out = Throughput::ElementsAndBytes {
            elements: objects.len() as u64,
            bytes: output.len() as u64,
        };
        let id = || BenchmarkId::from_parameter(format!("{shards}-shards"));
        let configure = |g: &mut criterion::BenchmarkGroup<'_, _>| {
            if shards >= 1000 {
                g.sample_size(10)
                    .warm_up_time(Duration::from_secs(1))
                    .measurement_time(Duration::from_secs(30));
            } else if shards >= 100 {
                g.sample_size(20).measurement_time(Duration::from_secs(10));
            }
        };

        let mut g = c.benchmark_group("pipeline");
        configure(&mut g);
        g.throughput(out.clone());
        g.bench_function(id(), |b| {
            b.iter_batched(
                || files.clone(),
                |f| pipeline(&renderer, f),
                BatchSize::LargeInput,
            )
        });
        g.finish();

        let mut g = c.benchmark_group("parse");
        configure(&mut g);
        g.throughput(Throughput::ElementsAndBytes {
            elements: inputs as u64,
            bytes: input_bytes as u64,
        });
        g.bench_function(id(), |b| {
            b.iter_batched(
                || files.clone(),
                |f| fleet_from_files(f, "default").expect("valid fleet"),
                BatchSize::LargeInput,
            )
        });
        g.finish();

        let mut g = c.benchmark_group("render");
        configure(&mut g);
        g.throughput(out.clone());
        g.bench_function(id(), |b| {
            b.iter(|| renderer.render_fleet(&parsed).expect("renders"))
        });
        g.finish();

        let mut g = c.benchmark_group("serialize");
        configure(&mut g);
        g.throughput(out);
        g.bench_function(id(), |b| b.iter(|| to_yaml_stream(&objects)));
        g.finish();
    }
}

criterion_group!(render, benches);
criterion_main!(render);
