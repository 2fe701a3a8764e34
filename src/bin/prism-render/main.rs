//! `prism-render`: renders Prism fleets into Kubernetes objects offline, from the working tree
//! or a git revision; diffs two renders; serves as an Argo CD config management plugin.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

/// Rendering allocates and frees many small values on every core; mimalloc does that with less
/// work and less contention than the system allocator. Built without transparent huge pages
/// (`no_thp`): taking memory in 2 MiB steps only raises a short render's peak.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in the `mi_option_e` of the mimalloc that libmimalloc-sys bundles
/// (Cargo.lock pins it; a test checks the number still names the option).
const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;

unsafe extern "C" {
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
    #[cfg(test)]
    fn mi_option_get(option: std::ffi::c_int) -> std::ffi::c_long;
}

/// mimalloc gives memory it no longer uses back to the system after a second; a render frees
/// and allocates so fast that freed pages would pile up into its peak (70 MB instead of 57 at
/// 1,000 shards). After 10 ms they do not, at no measurable cost in time.
fn tune_allocator() {
    // SAFETY: mi_option_set stores an integer in mimalloc's option table.
    unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, 10) }
}

use prism_render::api;
use prism_render::cmp::{self, AppEnv, Settings};
use prism_render::diff::{self, Style};
use prism_render::error::Diagnostics;
use prism_render::git::Repo;
use prism_render::job::{Inputs, Job, Rendered, TemplateSource};
use prism_render::output::{self, Format, Spool, YamlStream};
use prism_render::render::{self, ObjectId, RenderOptions};
use prism_render::source::{
    self, Others, Skipped,
    tree::{DiskTree, FileTree},
};

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
    /// Render NetworkPolicies for shards that do not set spec.networkPolicy.enabled (and the
    /// remote plugins they use), as the operator's --network-policies does.
    #[arg(long, global = true, env = "PRISM_NETWORK_POLICIES")]
    network_policies: bool,
    /// Prometheus that KEDA ScaledObjects (spec.autoscaling.provider: keda) read the request
    /// rate from, as the operator's --prometheus-url.
    #[arg(long, global = true, env = "PRISM_PROMETHEUS_URL", value_name = "URL")]
    prometheus_url: Option<String>,
    /// API versions the target cluster serves (comma-separated `group/version` and
    /// `group/version/Kind`, as `kubectl api-versions` prints them or Argo CD passes them):
    /// rendering a kind it does not serve is an error, naming the CRD to install for kinds
    /// such as GRPCRoute. Unset: not checked.
    #[arg(long, global = true, env = "KUBE_API_VERSIONS", value_name = "LIST")]
    kube_api_versions: Option<String>,
    /// Pass Kubernetes objects that are not Prism resources (a Namespace, a Secret, a
    /// ConfigMap) through unchanged, after checking that each has an identity, collides with
    /// no rendered object and (with --kube-api-versions) is served. Without it they are an
    /// error (`diff` leaves their files out), which catches a misspelt kind. Files that hold no
    /// Kubernetes object at all (a Helm values file) are always left out, with a note.
    #[arg(long, global = true, env = "PRISM_PASS_THROUGH")]
    pass_through: bool,
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
        /// Render the files of this git revision (branch, tag, commit, `HEAD~1` …) without
        /// checking it out. PATHs and a relative --templates are then taken from the repository
        /// root; PATH defaults to the current directory's place in the repository.
        #[arg(long, value_name = "REV")]
        rev: Option<String>,
        /// Repository of --rev: any directory inside it (default: the current directory).
        #[arg(long, value_name = "DIR", requires = "rev")]
        repo: Option<PathBuf>,
    },
    /// Render two revisions and list the objects added, removed and changed, with unified diffs
    /// of their YAML. A relative --templates is read from each side too. Exits 0 when equal,
    /// 1 when different, 2 on errors.
    Diff(DiffArgs),
    /// Argo CD config management plugin commands, run by the plugin's sidecar.
    Cmp {
        #[command(subcommand)]
        command: CmpCommand,
    },
    /// Check inputs without printing objects; exits non-zero on the first invalid fleet.
    Validate {
        /// Inputs; the current directory when none are given.
        #[arg(value_name = "PATH")]
        paths: Vec<PathBuf>,
    },
    /// Rewrite Prism resources at another API version: a YAML stream on stdout (documents in
    /// order, other documents as they are), or the files in --out-dir. Each Prism document is
    /// checked as `validate` checks it first; a document whose only change is its apiVersion
    /// keeps its comments and layout.
    Convert {
        /// The version to write: v1beta1 or v1alpha1.
        #[arg(long, value_name = "VERSION", value_parser = ["v1beta1", "v1alpha1"])]
        to: String,
        /// Write one file per input file into this directory, named as inside each PATH (a
        /// file PATH by its name), replacing files of those names; nothing is written unless
        /// every file converts. The input directory itself converts in place.
        #[arg(long, value_name = "DIR")]
        out_dir: Option<PathBuf>,
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
    /// Explain on which shard a PrismNamespace lands, and why; or, with --rollout, the sync
    /// waves in which a PrismPlugin's new version reaches its shards in render mode.
    Explain {
        /// PrismNamespace name, or namespace/name (with --rollout: the first input).
        #[arg(required_unless_present = "rollout")]
        name: Option<String>,
        /// Explain the rollout of this PrismPlugin (name, or namespace/name) instead.
        #[arg(long, value_name = "PLUGIN")]
        rollout: Option<String>,
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

#[derive(clap::Args)]
struct DiffArgs {
    /// Base revision. `A...B` compares the merge base of A and B with B, like a pull request.
    base: String,
    /// Head revision; the working tree when omitted.
    head: Option<String>,
    /// Paths relative to the repository root, after `--` (default: the current directory's
    /// place in the repository). A path missing on one side renders as no objects there.
    #[arg(last = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// The repository: any directory inside it (default: the current directory).
    #[arg(long, value_name = "DIR")]
    repo: Option<PathBuf>,
    /// Print one summary line per object instead of the diffs.
    #[arg(long)]
    stat: bool,
    /// Colour the output: `auto` on a terminal unless NO_COLOR is set.
    #[arg(long, value_enum, default_value = "auto", value_name = "WHEN")]
    color: ColorWhen,
    /// Unchanged lines shown around each change.
    #[arg(short = 'U', long = "unified", default_value_t = 3, value_name = "N")]
    context: usize,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ColorWhen {
    Auto,
    Always,
    Never,
}

impl ColorWhen {
    /// Whether to colour: `auto` on a terminal unless NO_COLOR is set.
    fn on(self) -> bool {
        match self {
            ColorWhen::Always => true,
            ColorWhen::Never => false,
            ColorWhen::Auto => {
                std::io::stdout().is_terminal()
                    && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
            }
        }
    }
}

#[derive(Subcommand)]
enum CmpCommand {
    /// Render the app directory (the current directory) for Argo CD: objects on stdout, one-line
    /// errors on stderr. Every Argo CD variable has a flag, so CI can run it without Argo CD.
    /// Precedence, lowest first: --namespace/--proxy-image/--templates, the destination
    /// namespace, the plugin env (ARGOCD_ENV_PRISM_*), the parameters.
    Generate(GenerateArgs),
    /// Print the plugin's parameters as a JSON array of Argo CD parameter announcements.
    Parameters {
        /// Plugin env entry, as Argo CD passes `ARGOCD_ENV_<NAME>` (repeatable).
        #[arg(long = "env", value_name = "NAME=VALUE")]
        env: Vec<String>,
    },
}

#[derive(clap::Args)]
struct GenerateArgs {
    /// Application name.
    #[arg(long, env = "ARGOCD_APP_NAME", value_name = "NAME")]
    app_name: Option<String>,
    /// Destination namespace: the namespace for resources that set none.
    #[arg(long, env = "ARGOCD_APP_NAMESPACE", value_name = "NAMESPACE")]
    app_namespace: Option<String>,
    /// Commit being rendered; file names in errors start with it.
    #[arg(long, env = "ARGOCD_APP_REVISION", value_name = "SHA")]
    revision: Option<String>,
    /// The app directory's path in the repository; file names in errors start with it.
    #[arg(long, env = "ARGOCD_APP_SOURCE_PATH", value_name = "PATH")]
    source_path: Option<String>,
    /// Target cluster's Kubernetes version: older than 1.30 is an error.
    #[arg(long, env = "KUBE_VERSION", value_name = "VERSION")]
    kube_version: Option<String>,
    /// Plugin env entry, as Argo CD passes `ARGOCD_ENV_<NAME>` (repeatable; wins over the
    /// environment).
    #[arg(long = "env", value_name = "NAME=VALUE")]
    env: Vec<String>,
    /// Parameters as Argo CD sends them: `[{"name":"namespace","string":"prod"}]`. When absent,
    /// the flattened `PARAM_*` variables are read instead.
    #[arg(
        long,
        env = "ARGOCD_APP_PARAMETERS",
        hide_env_values = true,
        value_name = "JSON"
    )]
    parameters: Option<String>,
}

/// What a successful command prints and its exit code.
struct Done {
    out: Out,
    code: u8,
}

/// What goes to stdout.
enum Out {
    Text(String),
    /// A render held until now, written in output order.
    Stream(Spool),
}

impl Out {
    fn write(self, out: &mut impl Write) -> std::io::Result<()> {
        match self {
            Out::Text(text) => out.write_all(text.as_bytes()),
            Out::Stream(spool) => spool.write_to(out),
        }?;
        out.flush()
    }
}

impl From<String> for Done {
    fn from(out: String) -> Self {
        Self {
            out: Out::Text(out),
            code: 0,
        }
    }
}

impl From<YamlStream> for Done {
    fn from(stream: YamlStream) -> Self {
        Self {
            out: Out::Stream(stream.spool),
            code: 0,
        }
    }
}

fn main() -> ExitCode {
    tune_allocator();
    cmp::default_sigterm();
    let args = Cli::parse();
    // Like `git diff --exit-code`: 1 means "different", so errors are 2.
    let error_code = if matches!(args.command, Command::Diff(_)) {
        2
    } else {
        1
    };
    match run(args) {
        Ok(done) => {
            let mut stdout = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
            let written = done.out.write(&mut stdout);
            // Everything rendered is freed with the process.
            match written {
                Ok(()) => ExitCode::from(done.code),
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::from(done.code),
                Err(e) => {
                    eprintln!("error: writing output: {e}");
                    ExitCode::from(error_code)
                }
            }
        }
        Err(problems) => {
            for p in &problems.0 {
                eprintln!("error: {p}");
            }
            ExitCode::from(error_code)
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
    prism_render::error::Diagnostic::new("prism-render", 0, "", message).into()
}

/// Runs a command; returns everything for stdout, which is written only on success.
fn run(args: Cli) -> Result<Done, Diagnostics> {
    let inv = Invocation {
        options: RenderOptions {
            proxy_image: args.proxy_image.clone(),
            network_policies: args.network_policies,
            prometheus_url: args.prometheus_url.clone(),
        },
        common: Common {
            namespace: args.namespace.clone(),
            templates: args.templates.clone(),
        },
        kube_api_versions: args.kube_api_versions.clone(),
        others: match (args.pass_through, &args.command) {
            (true, _) => Others::PassThrough,
            (false, Command::Diff(_)) => Others::Skip,
            (false, _) => Others::Refuse,
        },
    };
    match args.command {
        Command::Render {
            paths,
            output,
            out_dir,
            rev,
            repo,
        } => render_command(&inv, paths, output, out_dir, rev.map(|rev| (rev, repo))),
        Command::Diff(d) => diff_command(&inv, d),
        Command::Cmp { command } => cmp_command(&inv, command),
        Command::Validate { paths } => validate_command(&inv, paths),
        Command::Convert { to, out_dir, paths } => {
            convert_command(&inv.common.namespace, &to, out_dir, inputs(paths))
        }
        Command::Crds { out_dir } => crds_command(out_dir),
        Command::Explain {
            name,
            rollout,
            paths,
        } => {
            let explained = match (rollout, name) {
                (Some(plugin), first) => {
                    let paths = first.map(PathBuf::from).into_iter().chain(paths).collect();
                    inv.run(paths, None, |job| job.explain_rollout(&plugin))?
                }
                (None, Some(name)) => inv.run(paths, None, |job| job.explain(&name))?,
                (None, None) => unreachable!("clap requires a name without --rollout"),
            };
            Ok(explained.map_err(plain)?.into())
        }
        Command::Completions { shell } => {
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "prism-render", &mut buf);
            Ok(String::from_utf8(buf)
                .expect("completions are UTF-8")
                .into())
        }
    }
}

/// What every command of one invocation shares.
struct Invocation {
    options: RenderOptions,
    common: Common,
    /// `--kube-api-versions`.
    kube_api_versions: Option<String>,
    /// Kubernetes objects that are not Prism resources: refused, left out or passed through.
    others: Others,
}

impl Invocation {
    /// Whether the target cluster serves every object, when `--kube-api-versions` says what
    /// it serves.
    fn served(&self, objects: &[ObjectId]) -> Result<(), Diagnostics> {
        match &self.kube_api_versions {
            Some(list) => {
                cmp::check_api_versions(objects, list, "--kube-api-versions").into_result(())
            }
            None => Ok(()),
        }
    }

    /// A job over `inputs` with the invocation's namespace and options.
    fn job<'a>(&self, inputs: Inputs<'a>, templates: TemplateSource) -> Job<'a> {
        Job {
            inputs,
            namespace: self.common.namespace.clone(),
            templates,
            options: self.options.clone(),
            others: self.others,
        }
    }

    /// Runs `run` on the job of `paths` (of revision `rev` in repository `repo` when given; the
    /// current directory when no path is given); a path missing from the revision or no input
    /// file at all is an error.
    fn run<T>(
        &self,
        paths: Vec<PathBuf>,
        rev: Option<&(String, Option<PathBuf>)>,
        run: impl FnOnce(&Job<'_>) -> Result<Rendered<T>, Diagnostics>,
    ) -> Result<T, Diagnostics> {
        let Some((rev, repo)) = rev else {
            let templates = TemplateSource::given(self.common.templates.as_deref());
            let job = self.job(Inputs::Given(inputs(paths)), templates);
            let done = run(&job)?;
            note_left_out(None, &done.skipped);
            return done.found(&job, None, |path| {
                plain(format!("{}: no such file or directory", path.display()))
            });
        };
        let repo = Repo::open(repo.as_deref()).map_err(plain)?;
        let paths = repo_paths(&repo, &paths)?;
        self.side(&repo, Some(rev), paths, |job| {
            let done = run(job)?;
            note_left_out(None, &done.skipped);
            done.found(job, None, |path| {
                plain(format!(
                    "{rev}:{}: no such file or directory in the revision",
                    path.display()
                ))
            })
        })
    }

    /// Runs `run` on the job of `paths` of revision `rev` of `repo`, or of its working tree
    /// when `rev` is `None`. A relative --templates is the repository's, at that revision.
    fn side<T>(
        &self,
        repo: &Repo,
        rev: Option<&str>,
        paths: Vec<PathBuf>,
        run: impl FnOnce(&Job<'_>) -> Result<T, Diagnostics>,
    ) -> Result<T, Diagnostics> {
        let git_tree;
        let disk_tree;
        let tree: &dyn FileTree = match rev {
            Some(rev) => {
                git_tree = repo.tree(rev).map_err(plain)?;
                &git_tree
            }
            None => {
                let workdir = repo.workdir().ok_or_else(|| {
                    plain(format!(
                        "{} is a bare repository: it has no working tree, so name the head revision too",
                        repo.location()
                    ))
                })?;
                disk_tree = DiskTree::new(workdir, "");
                &disk_tree
            }
        };
        let templates = TemplateSource::of(self.common.templates.as_deref(), |dir| {
            if dir.is_absolute() {
                Ok(None)
            } else {
                repo.repo_path(dir).map(Some).map_err(plain)
            }
        })?;
        run(&self.job(Inputs::Tree { tree, paths }, templates))
    }
}

/// Says on stderr, one line per reason, which input files a render left out (of `side`, when
/// a diff renders two).
fn note_left_out(side: Option<&str>, skipped: &[Skipped]) {
    for note in source::sort::left_out_notes(side, skipped) {
        eprintln!("{note}");
    }
}

/// `render`: a YAML stream on stdout, a JSON `List`, or one file per object in `out_dir`.
fn render_command(
    inv: &Invocation,
    paths: Vec<PathBuf>,
    output: Format,
    out_dir: Option<PathBuf>,
    rev: Option<(String, Option<PathBuf>)>,
) -> Result<Done, Diagnostics> {
    if out_dir.is_none() && output == Format::Yaml {
        let stream = inv.run(paths, rev.as_ref(), |job| job.stream())?;
        inv.served(&stream.ids)?;
        return Ok(stream.into());
    }
    let objects = inv.run(paths, rev.as_ref(), |job| job.render())?;
    let ids: Vec<ObjectId> = objects.iter().map(ObjectId::of).collect();
    inv.served(&ids)?;
    match out_dir {
        Some(dir) => {
            output::files::write_dir_atomically(&dir, &output::files::object_files(&objects))
                .map_err(plain)?;
            Ok(String::new().into())
        }
        None => Ok(output::to_json_list(&objects).into()),
    }
}

/// `cmp generate` and `cmp parameters`.
fn cmp_command(inv: &Invocation, command: CmpCommand) -> Result<Done, Diagnostics> {
    let mut base = Settings::new(
        inv.common.namespace.clone(),
        inv.options.proxy_image.clone(),
        inv.common.templates.clone(),
    );
    base.network_policies = inv.options.network_policies;
    base.pass_through = inv.others == Others::PassThrough;
    base.prometheus_url = inv.options.prometheus_url.clone();
    match command {
        CmpCommand::Generate(g) => {
            let mut app = AppEnv {
                app_name: g.app_name,
                app_namespace: g.app_namespace,
                revision: g.revision,
                source_path: g.source_path,
                kube_version: g.kube_version,
                kube_api_versions: inv.kube_api_versions.clone(),
                parameters: g.parameters,
                ..Default::default()
            };
            collect_plugin_env(&mut app, &g.env)?;
            let (stream, skipped) = cmp::generate(base, &app)?;
            note_left_out(None, &skipped);
            Ok(stream.into())
        }
        CmpCommand::Parameters { env } => {
            let mut app = AppEnv::default();
            collect_plugin_env(&mut app, &env)?;
            Ok(cmp::announcement(&base, &app).into())
        }
    }
}

/// `validate`: renders without writing, and counts.
fn validate_command(inv: &Invocation, paths: Vec<PathBuf>) -> Result<Done, Diagnostics> {
    let valid = inv.run(paths, None, |job| job.validate())?;
    inv.served(&valid.objects)?;
    Ok(format!(
        "valid: {} shards, {} plugins, {} namespaces -> {} objects\n",
        valid.shards,
        valid.plugins,
        valid.namespaces,
        valid.objects.len()
    )
    .into())
}

/// `convert`: the converted documents of `paths` on stdout, or their files in `out_dir`.
fn convert_command(
    namespace: &str,
    to: &str,
    out_dir: Option<PathBuf>,
    paths: Vec<PathBuf>,
) -> Result<Done, Diagnostics> {
    let to = prism_render::convert::api_version(to).expect("clap allows known versions only");
    // Each path is read on its own: a file's name inside its PATH is its name in --out-dir.
    let mut files = Vec::new();
    let mut places = Vec::new();
    let mut problems = Diagnostics::default();
    for path in &paths {
        match source::read_inputs(std::slice::from_ref(path)) {
            Ok(found) => {
                for file in found {
                    places.push(path.clone());
                    files.push(file);
                }
            }
            Err(e) => problems.0.extend(e.0),
        }
    }
    let files = problems.into_result(files)?;
    if files.is_empty() {
        let shown: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        return Err(source::no_yaml_files(&shown, None).into());
    }
    let converted = prism_render::convert::convert_files(&files, to, namespace)?;
    let Some(dir) = out_dir else {
        let documents: Vec<String> = converted.into_iter().flat_map(|f| f.documents).collect();
        return Ok(prism_render::convert::stream(&documents).into());
    };
    let mut written: std::collections::BTreeMap<PathBuf, String> = Default::default();
    let mut out = Vec::new();
    for (file, place) in converted.into_iter().zip(places) {
        let relative = relative_name(&file.name, &place)?;
        if let Some(first) = written.insert(relative.clone(), file.name.clone()) {
            return Err(plain(format!(
                "{} and {first} would both be written to {}",
                file.name,
                dir.join(&relative).display()
            )));
        }
        out.push(output::files::FileToWrite {
            path: relative,
            text: file.text,
            like: Some(PathBuf::from(&file.name)),
        });
    }
    output::files::write_files_replacing(&dir, &out).map_err(plain)?;
    Ok(String::new().into())
}

/// Where the file `name`, read from the input `place`, goes in `--out-dir`: its path inside
/// `place` when that is a directory, its file name when `place` is the file.
fn relative_name(name: &str, place: &Path) -> Result<PathBuf, Diagnostics> {
    if name == "-" {
        return Err(plain(
            "standard input has no file name: convert it to stdout, without --out-dir".into(),
        ));
    }
    let path = Path::new(name);
    let relative = match path.strip_prefix(place) {
        Ok(inside) if !inside.as_os_str().is_empty() => inside.to_path_buf(),
        _ => PathBuf::from(path.file_name().unwrap_or(path.as_os_str())),
    };
    let escapes = relative
        .components()
        .any(|c| !matches!(c, std::path::Component::Normal(_)));
    if escapes {
        return Err(plain(format!("{name}: no file name to write it under")));
    }
    Ok(relative)
}

/// `crds`: on stdout, or one file per CRD in `out_dir`.
fn crds_command(out_dir: Option<PathBuf>) -> Result<Done, Diagnostics> {
    let Some(dir) = out_dir else {
        return Ok(api::crds_yaml().into());
    };
    std::fs::create_dir_all(&dir).map_err(|e| plain(format!("{}: {e}", dir.display())))?;
    for (name, text) in api::crd_files() {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|e| plain(format!("{}: {e}", path.display())))?;
    }
    Ok(String::new().into())
}

/// `ARGOCD_ENV_*` and `PARAM_*` from the environment, then `--env NAME=VALUE` flags.
fn collect_plugin_env(app: &mut AppEnv, flags: &[String]) -> Result<(), Diagnostics> {
    app.collect_env(
        std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))),
    );
    for entry in flags {
        // The value is not repeated in the message: it may be secret.
        let (name, value) = entry
            .split_once('=')
            .ok_or_else(|| plain("--env: expected NAME=VALUE".into()))?;
        let name = name.strip_prefix("ARGOCD_ENV_").unwrap_or(name);
        app.env.insert(name.to_string(), value.to_string());
    }
    Ok(())
}

/// User paths as repository paths; the current directory's place in the repository when none.
fn repo_paths(repo: &Repo, paths: &[PathBuf]) -> Result<Vec<PathBuf>, Diagnostics> {
    if paths.is_empty() {
        return Ok(vec![repo.prefix().to_path_buf()]);
    }
    paths
        .iter()
        .map(|p| repo.repo_path(p).map_err(plain))
        .collect()
}

/// Settings every render of one invocation shares.
struct Common {
    namespace: String,
    templates: Option<PathBuf>,
}

fn diff_command(inv: &Invocation, d: DiffArgs) -> Result<Done, Diagnostics> {
    let repo = Repo::open(d.repo.as_deref()).map_err(plain)?;
    let head = match (d.base.split_once("..."), d.head) {
        (Some(_), Some(_)) => {
            return Err(plain(
                "give either BASE...HEAD or BASE [HEAD], not both".into(),
            ));
        }
        (Some((_, b)), None) => Some(if b.is_empty() { "HEAD" } else { b }.to_string()),
        (None, head) => head,
    };
    let paths = repo_paths(&repo, &d.paths)?;
    let side = |rev: Option<&str>| {
        inv.side(&repo, rev, paths.clone(), |job| job.render())
            .map_err(|e| {
                // `diff BASE dir` most likely meant a path: say how to give one.
                match rev {
                    Some(rev)
                        if Path::new(rev).exists()
                            && e.to_string().contains("unknown revision") =>
                    {
                        plain(format!(
                            "{e} (to limit the diff to a path, put it after --)"
                        ))
                    }
                    _ => e,
                }
            })
    };
    let base = side(Some(&d.base))?;
    let head_side = side(head.as_deref())?;
    // Where other YAML was left out, say what was rendered and what was not.
    let shown: Vec<String> = paths.iter().map(|p| source::tree::display(p)).collect();
    let head_name = head.as_deref().unwrap_or("the working tree");
    for (name, rendered) in [(d.base.as_str(), &base), (head_name, &head_side)] {
        if !rendered.skipped.is_empty() {
            eprintln!(
                "note: {name}: rendered {} file(s) of {}",
                rendered.files - rendered.skipped.len(),
                shown.join(" ")
            );
            note_left_out(Some(name), &rendered.skipped);
        }
    }
    let head = head_side;
    if let Some(p) = paths
        .iter()
        .find(|p| base.missing.contains(p) && head.missing.contains(p))
    {
        return Err(plain(format!(
            "{}: not found on either side",
            source::tree::display(p)
        )));
    }
    let diffs = diff::compare(&base.objects, &head.objects);
    let style = Style {
        color: d.color.on(),
        context: d.context,
    };
    let out = match (diffs.is_empty(), d.stat) {
        (true, _) => String::new(),
        (false, true) => diff::stat(&diffs, style),
        (false, false) => diff::patch(&diffs, style),
    };
    Ok(Done {
        out: Out::Text(out),
        code: u8::from(!diffs.is_empty()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_purge_delay_option_is_the_one_tuned() {
        // 1,000 ms is the bundled mimalloc's default of mi_option_purge_delay; another option
        // at that number would have another default.
        // SAFETY: reading and writing mimalloc's option table.
        unsafe {
            assert_eq!(mi_option_get(MI_OPTION_PURGE_DELAY), 1000);
            tune_allocator();
            assert_eq!(mi_option_get(MI_OPTION_PURGE_DELAY), 10);
        }
    }
}
