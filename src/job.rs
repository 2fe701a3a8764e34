//! One job of every command that reads a fleet (`render`, `validate`, `explain`, `diff`,
//! `cmp generate`): inputs taken from one place — paths on the command line (standard input
//! among them), a git revision's tree or a directory — with the templates read from the same
//! place or another one. A job loads and validates its inputs once, then renders them into
//! objects or a YAML stream, counts them, or explains a placement. Reading the trees (walking,
//! links, decoding, template overrides) is [`crate::source::tree`]'s.

use std::path::{Path, PathBuf};

use crate::error::{Diagnostic, Diagnostics};
use crate::output::YamlStream;
use crate::render::templates::tree_renderer;
use crate::render::{Object, ObjectId, RenderOptions, Renderer, placement};
use crate::source::tree::{self, DiskTree, FileTree};
use crate::source::{Fleet, Others, Skipped, fleet_from_files_with, no_yaml_files, read_inputs};

/// Where the templates of a job come from.
pub enum TemplateSource {
    /// The embedded ones.
    Embedded,
    /// Overrides in this directory of the job's tree (never read as inputs).
    Inside(PathBuf),
    /// Overrides in a directory (the path) of a tree on disk that is not the job's inputs.
    Outside(DiskTree, PathBuf),
}

impl TemplateSource {
    /// The templates of `dir` (a path as the user gave it): embedded without one; inside the
    /// job's tree at the path `inside` gives for `dir`; on disk, named as given, when `inside`
    /// gives none.
    pub fn of<E>(
        dir: Option<&Path>,
        inside: impl FnOnce(&Path) -> Result<Option<PathBuf>, E>,
    ) -> Result<Self, E> {
        let Some(dir) = dir else {
            return Ok(Self::Embedded);
        };
        Ok(match inside(dir)? {
            Some(path) => Self::Inside(path),
            None => Self::Outside(
                DiskTree::new(dir, dir.display().to_string()),
                PathBuf::new(),
            ),
        })
    }

    /// The templates of `dir` on disk as the command line names it, for inputs given on the
    /// command line (embedded without one).
    pub fn given(dir: Option<&Path>) -> Self {
        match dir {
            None => Self::Embedded,
            Some(dir) => Self::Outside(DiskTree::as_given(), dir.to_path_buf()),
        }
    }
}

/// Where a job's input files are.
pub enum Inputs<'a> {
    /// Paths as the command line gives them: files, directories searched recursively, `-` for
    /// standard input, each named as given. A path that cannot be read is an error.
    Given(Vec<PathBuf>),
    /// Normalised paths inside `tree`; those missing from it are reported in
    /// [`Rendered::missing`].
    Tree {
        /// The tree: a git revision's, a working tree, an app directory.
        tree: &'a dyn FileTree,
        /// Paths inside it.
        paths: Vec<PathBuf>,
    },
}

/// Everything one job needs.
pub struct Job<'a> {
    /// Where the inputs are.
    pub inputs: Inputs<'a>,
    /// Namespace for resources without one.
    pub namespace: String,
    /// Where the templates are.
    pub templates: TemplateSource,
    /// Other settings.
    pub options: RenderOptions,
    /// What to do with Kubernetes objects that are not Prism resources.
    pub others: Others,
}

/// What a job made of its inputs, and the requested paths that did not exist.
pub struct Rendered<T = Vec<Object>> {
    /// The objects in output order (or what the job made of them); nothing when no input
    /// file was read.
    pub objects: T,
    /// Input files read.
    pub files: usize,
    /// Requested paths missing from the tree.
    pub missing: Vec<PathBuf>,
    /// Input files left out.
    pub skipped: Vec<Skipped>,
}

impl<T> Rendered<T> {
    /// The objects of a job that read at least one input file: a requested path missing from
    /// the tree is the problem `missing` names, no input file the job's
    /// [`no_yaml_files`](Job::no_yaml_files) with `so`.
    pub fn found(
        self,
        job: &Job<'_>,
        so: Option<&str>,
        missing: impl FnOnce(&Path) -> Diagnostics,
    ) -> Result<T, Diagnostics> {
        if let Some(path) = self.missing.first() {
            return Err(missing(path));
        }
        if self.files == 0 {
            return Err(job.no_yaml_files(so).into());
        }
        Ok(self.objects)
    }
}

/// What `validate` reports: the objects a fleet renders to, and its size.
#[derive(Debug, Default)]
pub struct Validated {
    /// The objects, in output order.
    pub objects: Vec<ObjectId>,
    /// PrismShards read.
    pub shards: usize,
    /// PrismPlugins read.
    pub plugins: usize,
    /// PrismNamespaces read.
    pub namespaces: usize,
}

impl Job<'_> {
    /// Renders into objects. Inputs that are not there are reported in
    /// [`Rendered::missing`]; no input file at all gives no objects (callers decide if that
    /// is an error).
    pub fn render(&self) -> Result<Rendered, Diagnostics> {
        self.run(|renderer, fleet| renderer.render_fleet(fleet))
    }

    /// [`Job::render`] into a YAML stream held until it is written.
    pub fn stream(&self) -> Result<Rendered<YamlStream>, Diagnostics> {
        self.run(YamlStream::render)
    }

    /// Renders without keeping the objects: their ids, and what the fleet holds.
    pub fn validate(&self) -> Result<Rendered<Validated>, Diagnostics> {
        self.run(|renderer, fleet| {
            Ok(Validated {
                objects: renderer.render_fleet_to(fleet, drop)?,
                shards: fleet.shards.len(),
                plugins: fleet.plugins.len(),
                namespaces: fleet.namespaces.len(),
            })
        })
    }

    /// On which shard PrismNamespace `query` (a name, or namespace/name) lands, and why; or why
    /// it lands on none. Reads no templates.
    pub fn explain(&self, query: &str) -> Result<Rendered<Result<String, String>>, Diagnostics> {
        self.with_fleet(
            || Ok(String::new()),
            |fleet| Ok(placement::explain(fleet, query)),
        )
    }

    /// The sync waves a plugin's rollout takes in render mode (`explain --rollout`).
    pub fn explain_rollout(
        &self,
        plugin: &str,
    ) -> Result<Rendered<Result<String, String>>, Diagnostics> {
        self.with_fleet(
            || Ok(String::new()),
            |fleet| Ok(crate::render::rollout::explain(fleet, plugin)),
        )
    }

    /// The problem of a job that read no input file; `so`, when given, what follows from it.
    pub fn no_yaml_files(&self, so: Option<&str>) -> Diagnostic {
        let shown: Vec<String> = match &self.inputs {
            Inputs::Given(paths) => paths.iter().map(|p| p.display().to_string()).collect(),
            Inputs::Tree { tree, paths } => paths.iter().map(|p| tree.name(p)).collect(),
        };
        no_yaml_files(&shown, so)
    }

    /// The renderer of the job's templates.
    pub fn renderer(&self) -> Result<Renderer, Diagnostics> {
        let given = DiskTree::as_given();
        let inputs: &dyn FileTree = match &self.inputs {
            Inputs::Given(_) => &given,
            Inputs::Tree { tree, .. } => *tree,
        };
        let templates = match &self.templates {
            TemplateSource::Embedded => None,
            TemplateSource::Inside(dir) => Some((inputs, dir.as_path())),
            TemplateSource::Outside(tree, dir) => Some((tree as &dyn FileTree, dir.as_path())),
        };
        tree_renderer(templates, self.options.clone())
    }

    /// Builds the renderer, then loads the inputs and renders them with `render`.
    fn run<T: Default>(
        &self,
        render: impl FnOnce(&Renderer, &Fleet) -> Result<T, Diagnostics>,
    ) -> Result<Rendered<T>, Diagnostics> {
        let renderer = self.renderer()?;
        self.with_fleet(T::default, |fleet| render(&renderer, fleet))
    }

    /// Reads and parses the inputs, and hands the fleet to `then`; `nothing` when no input
    /// file was read.
    fn with_fleet<T>(
        &self,
        nothing: impl FnOnce() -> T,
        then: impl FnOnce(&Fleet) -> Result<T, Diagnostics>,
    ) -> Result<Rendered<T>, Diagnostics> {
        let found = self.read()?;
        let files = found.files.len();
        let (objects, skipped) = if files == 0 {
            (nothing(), Vec::new())
        } else {
            let fleet = fleet_from_files_with(found.files, &self.namespace, self.others)?;
            (then(&fleet)?, fleet.skipped)
        };
        Ok(Rendered {
            objects,
            files,
            missing: found.missing,
            skipped,
        })
    }

    /// Every input file, leaving out a templates directory inside the tree.
    fn read(&self) -> Result<tree::Found, Diagnostics> {
        match &self.inputs {
            Inputs::Given(paths) => Ok(tree::Found {
                files: read_inputs(paths)?,
                missing: Vec::new(),
            }),
            Inputs::Tree { tree, paths } => {
                let skip = match &self.templates {
                    TemplateSource::Inside(dir) => Some(dir.as_path()),
                    _ => None,
                };
                tree::read_files(*tree, paths, skip)
            }
        }
    }
}
