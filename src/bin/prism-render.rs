//! `prism-render`: renders Prism fleets into Kubernetes objects offline.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use prism_operator::cli::{self, Format};
use prism_operator::error::Diagnostics;
use prism_operator::render::{self, RenderOptions};

/// Render PrismShard, PrismPlugin and PrismNamespace resources into the Kubernetes objects
/// they become: the same objects the prism-operator applies in the cluster.
#[derive(Parser)]
#[command(name = "prism-render", version, about, max_term_width = 100)]
struct Cli {
    /// Directory of templates that replace the embedded ones by file name.
    #[arg(long, global = true, value_name = "DIR", env = "PRISM_TEMPLATES")]
    templates: Option<PathBuf>,
    /// Namespace for resources that do not set metadata.namespace.
    #[arg(
        short,
        long,
        global = true,
        default_value = "default",
        env = "PRISM_NAMESPACE"
    )]
    namespace: String,
    /// Proxy image for shards that do not set spec.image.
    #[arg(long, global = true, value_name = "IMAGE", default_value = render::DEFAULT_PROXY_IMAGE, env = "PRISM_PROXY_IMAGE")]
    proxy_image: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Render inputs (files, directories searched recursively, `-` for stdin) to objects.
    Render {
        /// Inputs; the current directory when none are given.
        #[arg(value_name = "PATH")]
        paths: Vec<PathBuf>,
        /// Output format.
        #[arg(short, long, value_enum, default_value = "yaml")]
        output: Format,
        /// Write one file per object into this new (or empty) directory instead of stdout.
        #[arg(long, value_name = "DIR")]
        out_dir: Option<PathBuf>,
    },
    /// Check inputs without printing objects; exits non-zero on the first invalid fleet.
    Validate {
        /// Inputs; the current directory when none are given.
        #[arg(value_name = "PATH")]
        paths: Vec<PathBuf>,
    },
    /// Print the CustomResourceDefinitions, or write one file per CRD.
    Crds {
        /// Write `<group>_<plural>.yaml` files into this directory (replacing them).
        #[arg(long, value_name = "DIR")]
        out_dir: Option<PathBuf>,
    },
    /// Explain on which shard a PrismNamespace lands, and why.
    Explain {
        /// PrismNamespace name, or namespace/name.
        name: String,
        /// Inputs; the current directory when none are given.
        #[arg(value_name = "PATH")]
        paths: Vec<PathBuf>,
    },
    /// Print a shell completion script.
    Completions {
        /// Shell to complete for.
        shell: clap_complete::Shell,
    },
}

fn main() -> ExitCode {
    let args = Cli::parse();
    match run(args) {
        Ok(out) => {
            let mut stdout = std::io::stdout().lock();
            match stdout
                .write_all(out.as_bytes())
                .and_then(|_| stdout.flush())
            {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: writing output: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Err(problems) => {
            for p in &problems.0 {
                eprintln!("error: {p}");
            }
            ExitCode::FAILURE
        }
    }
}

fn inputs(paths: Vec<PathBuf>) -> Vec<PathBuf> {
    if paths.is_empty() {
        vec![PathBuf::from(".")]
    } else {
        paths
    }
}

fn plain(message: String) -> Diagnostics {
    prism_operator::error::Diagnostic::new("prism-render", 0, "", message).into()
}

/// Runs a command; returns everything for stdout, which is written only on success.
fn run(args: Cli) -> Result<String, Diagnostics> {
    let options = RenderOptions {
        proxy_image: args.proxy_image.clone(),
    };
    match args.command {
        Command::Render {
            paths,
            output,
            out_dir,
        } => {
            let renderer = cli::renderer(args.templates.as_deref(), options)?;
            let fleet = cli::load_fleet(&inputs(paths), &args.namespace)?;
            let objects = renderer.render_fleet(&fleet)?;
            match out_dir {
                Some(dir) => {
                    cli::write_dir_atomically(&dir, &cli::object_files(&objects)).map_err(plain)?;
                    Ok(String::new())
                }
                None => Ok(match output {
                    Format::Yaml => render::to_yaml_stream(&objects),
                    Format::Json => render::to_json_list(&objects),
                }),
            }
        }
        Command::Validate { paths } => {
            let renderer = cli::renderer(args.templates.as_deref(), options)?;
            let fleet = cli::load_fleet(&inputs(paths), &args.namespace)?;
            let objects = renderer.render_fleet(&fleet)?;
            Ok(format!(
                "valid: {} shards, {} plugins, {} namespaces -> {} objects\n",
                fleet.shards.len(),
                fleet.plugins.len(),
                fleet.namespaces.len(),
                objects.len()
            ))
        }
        Command::Crds { out_dir } => match out_dir {
            None => Ok(cli::crds_yaml()),
            Some(dir) => {
                std::fs::create_dir_all(&dir)
                    .map_err(|e| plain(format!("{}: {e}", dir.display())))?;
                for (name, text) in cli::crd_files() {
                    let path = dir.join(name);
                    std::fs::write(&path, text)
                        .map_err(|e| plain(format!("{}: {e}", path.display())))?;
                }
                Ok(String::new())
            }
        },
        Command::Explain { name, paths } => {
            let fleet = cli::load_fleet(&inputs(paths), &args.namespace)?;
            cli::explain(&fleet, &name).map_err(plain)
        }
        Command::Completions { shell } => {
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "prism-render", &mut buf);
            Ok(String::from_utf8(buf).expect("completions are UTF-8"))
        }
    }
}
