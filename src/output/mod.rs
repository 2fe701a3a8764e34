//! The output side: what a render becomes as bytes. The YAML writer ([`yaml`]) and the reader of
//! template output ([`template_yaml`]), objects as a YAML stream or a JSON `List` ([`stream`]),
//! a render held until it is known to be good ([`spool`]) and one file per object for
//! `--out-dir` ([`files`]).

pub mod files;
pub mod spool;
pub mod stream;
pub mod template_yaml;
pub mod yaml;

pub use files::Format;
pub use spool::Spool;
pub use stream::{YamlStream, to_json_list, to_yaml_stream, write_yaml_document};
