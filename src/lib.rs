//! prism-render: the pure renderer of Prism fleets and the tools built on it. Inputs are read
//! and strictly validated ([`source`]), rendered into Kubernetes objects ([`render`]), written
//! as YAML or JSON ([`output`]), and served to CI and Argo CD as renders of paths, the working
//! tree or a git revision ([`job`], [`git`]), diffs ([`diff`]) and the config management plugin
//! ([`cmp`]), and rewritten at another API version ([`convert`]). The custom resources
//! themselves are in `prism_api`, re-exported as [`api`].

pub use prism_api as api;

pub mod cmp;
pub mod convert;
pub mod diff;
pub mod error;
pub mod git;
pub mod job;
pub mod output;
pub mod render;
pub mod source;
