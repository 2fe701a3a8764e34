//! One render of one tree: input files taken from one place — a directory on disk or a git
//! revision's tree — rendered with templates read from the same place or another tree. Reading
//! the trees (walking, links, decoding, template overrides) is [`crate::source::tree`]'s, the same
//! for `render PATH`; this module only puts the pieces of `render --rev`, `diff` and
//! `cmp generate` together.

use std::path::PathBuf;

use crate::error::Diagnostics;
use crate::render::{Object, RenderOptions};
use crate::source::tree::{self, FileTree};
use crate::source::{fleet_from_files, tree_renderer};

/// Where the templates of a render come from.
pub enum TemplateSource<'a> {
    /// The embedded ones.
    Embedded,
    /// Overrides in this directory of the rendered tree (never read as inputs).
    Inside(PathBuf),
    /// Overrides in a directory of another tree.
    Elsewhere(&'a dyn FileTree, PathBuf),
}

/// Everything one render of a tree needs.
pub struct Render<'a> {
    /// Where the inputs are.
    pub tree: &'a dyn FileTree,
    /// Normalised paths to render inside `tree`.
    pub paths: Vec<PathBuf>,
    /// Where the templates are.
    pub templates: TemplateSource<'a>,
    /// Namespace for resources without one.
    pub namespace: String,
    /// Other settings.
    pub options: RenderOptions,
}

/// A render's objects, and the requested paths that did not exist.
pub struct Rendered {
    /// The objects in output order.
    pub objects: Vec<Object>,
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
        let (templates, skip) = match &self.templates {
            TemplateSource::Embedded => (None, None),
            TemplateSource::Inside(dir) => (Some((self.tree, dir.as_path())), Some(dir.as_path())),
            TemplateSource::Elsewhere(tree, dir) => (Some((*tree, dir.as_path())), None),
        };
        let renderer = tree_renderer(templates, self.options.clone())?;
        let found = tree::read_files(self.tree, &self.paths, skip)?;
        if found.files.is_empty() {
            return Ok(Rendered {
                objects: Vec::new(),
                files: 0,
                missing: found.missing,
            });
        }
        let files = found.files.len();
        let fleet = fleet_from_files(found.files, &self.namespace)?;
        let objects = renderer.render_fleet(&fleet)?;
        Ok(Rendered {
            objects,
            files,
            missing: found.missing,
        })
    }
}
