//! One render of one tree: input files taken from one place — a directory on disk or a git
//! revision's tree — rendered with templates read from the same place or another tree. Reading
//! the trees (walking, links, decoding, template overrides) is [`crate::source::tree`]'s, the same
//! for `render PATH`; this module only puts the pieces of `render --rev`, `diff` and
//! `cmp generate` together.

use std::path::{Path, PathBuf};

use crate::error::Diagnostics;
use crate::output::{Spool, YamlStream};
use crate::render::templates::tree_renderer;
use crate::render::{Object, RenderOptions, Renderer};
use crate::source::tree::{self, DiskTree, FileTree};
use crate::source::{Fleet, fleet_from_files};

/// Where the templates of a render come from.
pub enum TemplateSource {
    /// The embedded ones.
    Embedded,
    /// Overrides in this directory of the rendered tree (never read as inputs).
    Inside(PathBuf),
    /// Overrides in a directory on disk outside the rendered tree (the tree's root).
    Outside(DiskTree),
}

impl TemplateSource {
    /// The templates of `dir` (a path as the user gave it): embedded without one; inside the
    /// rendered tree at the path `inside` gives for `dir`; on disk, named as given, when
    /// `inside` gives none.
    pub fn of<E>(
        dir: Option<&Path>,
        inside: impl FnOnce(&Path) -> Result<Option<PathBuf>, E>,
    ) -> Result<Self, E> {
        let Some(dir) = dir else {
            return Ok(Self::Embedded);
        };
        Ok(match inside(dir)? {
            Some(path) => Self::Inside(path),
            None => Self::Outside(DiskTree::new(dir, dir.display().to_string())),
        })
    }
}

/// Everything one render of a tree needs.
pub struct Render<'a> {
    /// Where the inputs are.
    pub tree: &'a dyn FileTree,
    /// Normalised paths to render inside `tree`.
    pub paths: Vec<PathBuf>,
    /// Where the templates are.
    pub templates: TemplateSource,
    /// Namespace for resources without one.
    pub namespace: String,
    /// Other settings.
    pub options: RenderOptions,
}

/// A render's objects, and the requested paths that did not exist.
pub struct Rendered<T = Vec<Object>> {
    /// The objects in output order.
    pub objects: T,
    /// Input files read.
    pub files: usize,
    /// Requested paths missing from the tree.
    pub missing: Vec<PathBuf>,
}

impl Render<'_> {
    /// Reads, parses and renders. Inputs that are not there are reported in
    /// [`Rendered::missing`]; no input file at all gives no objects (callers decide if that
    /// is an error).
    pub fn run(&self) -> Result<Rendered, Diagnostics> {
        self.run_with(Vec::new, |renderer, fleet| renderer.render_fleet(fleet))
    }

    /// [`Render::run`] into a YAML stream held until it is written.
    pub fn run_yaml(&self) -> Result<Rendered<YamlStream>, Diagnostics> {
        self.run_with(
            || YamlStream {
                spool: Spool::default(),
                ids: Vec::new(),
            },
            YamlStream::render,
        )
    }

    fn run_with<T>(
        &self,
        nothing: impl FnOnce() -> T,
        render: impl FnOnce(&Renderer, &Fleet) -> Result<T, Diagnostics>,
    ) -> Result<Rendered<T>, Diagnostics> {
        let (templates, skip) = match &self.templates {
            TemplateSource::Embedded => (None, None),
            TemplateSource::Inside(dir) => (Some((self.tree, dir.as_path())), Some(dir.as_path())),
            TemplateSource::Outside(tree) => (Some((tree as &dyn FileTree, Path::new(""))), None),
        };
        let renderer = tree_renderer(templates, self.options.clone())?;
        let found = tree::read_files(self.tree, &self.paths, skip)?;
        if found.files.is_empty() {
            return Ok(Rendered {
                objects: nothing(),
                files: 0,
                missing: found.missing,
            });
        }
        let files = found.files.len();
        let fleet = fleet_from_files(found.files, &self.namespace)?;
        let objects = render(&renderer, &fleet)?;
        Ok(Rendered {
            objects,
            files,
            missing: found.missing,
        })
    }
}
