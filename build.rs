//! Build script: turns the checked-in CRDs (`crds/*.yaml`, generated from `crates/api`) into one
//! JSON object of the OpenAPI schema of each kind and version (`{kind: {version: schema}}`),
//! which the renderer embeds for offline validation.
//! A render then parses a small JSON text instead of deriving the schemas at every start. The
//! test `embedded_schemas_match_the_types` (src/source/schema.rs) keeps the two equal.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::{env, fs};

use serde_json::Value;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = Path::new("crds");
    // A directory is scanned whole: any file added, removed or changed reruns the script.
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut files: Vec<PathBuf> = fs::read_dir(dir)?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    files.retain(|p| p.extension().is_some_and(|e| e == "yaml"));
    files.sort();
    let mut schemas = BTreeMap::new();
    for file in files {
        let text = fs::read_to_string(&file)?;
        let crd: Value = serde_yaml::from_str(&text)
            .map_err(|e| format!("{}: not a CRD: {e}", file.display()))?;
        let kind = crd["spec"]["names"]["kind"]
            .as_str()
            .ok_or_else(|| format!("{}: no spec.names.kind", file.display()))?;
        let versions = crd["spec"]["versions"]
            .as_array()
            .ok_or_else(|| format!("{}: no spec.versions", file.display()))?;
        let mut by_version = BTreeMap::new();
        for version in versions {
            let name = version["name"]
                .as_str()
                .ok_or_else(|| format!("{}: a version without a name", file.display()))?;
            let schema = &version["schema"]["openAPIV3Schema"];
            if !schema.is_object() {
                return Err(format!("{}: no openAPIV3Schema in {name}", file.display()).into());
            }
            by_version.insert(name.to_string(), schema.clone());
        }
        schemas.insert(kind.to_string(), by_version);
    }
    let out = PathBuf::from(env::var("OUT_DIR")?).join("crd_schemas.json");
    fs::write(out, serde_json::to_string(&schemas)?)?;
    Ok(())
}
