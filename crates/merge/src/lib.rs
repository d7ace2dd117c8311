//! The merge engine: from three file trees to a plan and a list of changes. No I/O.
//!
//! - base: the template at the app's release, rendered;
//! - theirs: the template at the target release, rendered;
//! - ours: the app, but only the paths that changed upstream (see [`paths_to_read`]).
//!
//! [`merge_trees`] decides one [`Action`] per path (recorded as a [`FilePlan`]) and returns the
//! [`Change`]s that make the app's tree. Text is merged on `similar`'s three-way merge regions
//! ([`merge_text`]); binary files, symlinks, lockfiles and modes follow their own rules. Where
//! lines conflict, JSON and YAML merge key by key ([`merge_json`], [`merge_yaml`]: a key they
//! cannot decide is a conflict of its own) and Dockerfiles by their `FROM` versions. Texts whose
//! lines all end in CRLF are merged as LF lines and written back in the app's endings.
//!
//! [`Change`]: uplift_tree::Change

mod json;
mod line_endings;
mod plan;
mod rename;
mod script;
mod structured;
mod text;
mod trees;
mod validate;
mod versions;
mod yaml;

pub use json::{JsonMerge, merge_json};
pub use plan::{Action, FilePlan, Summary};
pub use rename::{Rename, detect_renames};
pub use script::check_merged;
pub use text::{ConflictStyle, Labels, TextMerge, TextOptions, merge_text};
pub use trees::{MergeOptions, MergeOutcome, merge_trees, paths_to_read};
pub use validate::{FileKind, check};
pub use yaml::{YamlMerge, merge_yaml};
