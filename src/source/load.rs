//! Loading a fleet and the templates that render it from the file system: the input files
//! (files, directories, standard input) and a directory of templates replacing embedded ones.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{Diagnostic, Diagnostics};
use crate::render::{RenderOptions, Renderer};

use super::tree::{self, FileTree};
use super::{Fleet, SourceFile};

/// Parses source files into a fleet.
pub fn fleet_from_files(files: Vec<SourceFile>, namespace: &str) -> Result<Fleet, Diagnostics> {
    let docs = files
        .iter()
        .flat_map(|(name, text)| super::split_documents(name, text))
        .collect();
    super::parse_fleet(docs, namespace)
}

/// Reads `paths` (files, directories, `-`) into a fleet.
pub fn load_fleet(paths: &[PathBuf], namespace: &str) -> Result<Fleet, Diagnostics> {
    let files = super::read_inputs(paths)?;
    if files.is_empty() {
        let shown: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        return Err(Diagnostic::new(shown.join(" "), 0, "", "no YAML files found").into());
    }
    fleet_from_files(files, namespace)
}

/// A renderer with the embedded templates, or those of `dir` replacing them by file name.
pub fn renderer(dir: Option<&Path>, options: RenderOptions) -> Result<Renderer, Diagnostics> {
    let Some(dir) = dir else {
        return Renderer::with_overrides(None, BTreeMap::new(), options);
    };
    let problem =
        |m: String| Diagnostics::from(Diagnostic::new(dir.display().to_string(), 0, "", m));
    let mut overrides = BTreeMap::new();
    let entries =
        std::fs::read_dir(dir).map_err(|e| problem(format!("cannot read templates: {e}")))?;
    for entry in entries {
        let path = entry.map_err(|e| problem(e.to_string()))?.path();
        if path.is_file() && super::is_yaml(&path) {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_string();
            let text = std::fs::read_to_string(&path)
                .map_err(|e| problem(format!("cannot read {}: {e}", path.display())))?;
            overrides.insert(name, text);
        }
    }
    Renderer::with_overrides(Some(&dir.display().to_string()), overrides, options)
}

/// A renderer with the embedded templates, or those of directory `dir` of `tree` replacing
/// them by file name.
pub fn tree_renderer(
    templates: Option<(&dyn FileTree, &Path)>,
    options: RenderOptions,
) -> Result<Renderer, Diagnostics> {
    match templates {
        None => Renderer::with_overrides(None, BTreeMap::new(), options),
        Some((tree, dir)) => {
            let overrides = tree::read_templates(tree, dir)?;
            Renderer::with_overrides(Some(&tree.name(dir)), overrides, options)
        }
    }
}
