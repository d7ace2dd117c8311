//! Typed `with` settings of the stage types implemented in `uplift-stages`, each with its
//! [`TypedSpec`](crate::with::TypedSpec) so that validation and the schema know them.

pub mod deploy;
pub mod image;
pub mod test;
