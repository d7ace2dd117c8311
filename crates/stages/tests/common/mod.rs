//! What the PostgreSQL tests of this crate share on top of `uplift-testkit`.

use uplift_stages::deploy_postgres::PgTarget;
use uplift_testkit::postgres::{Db, HOST, ITEMS, PORT, USER};

/// A fresh database `PREFIX_<pid>` holding the three `items` rows; `None` when PostgreSQL is
/// not reachable (a failure with `CI=true`).
#[track_caller]
pub fn items_db(prefix: &str) -> Option<Db> {
    Db::create(format!("{prefix}_{}", std::process::id()), ITEMS)
}

/// How the stages log in to a scratch database.
pub trait Target {
    fn target(&self, password: &str) -> PgTarget;
}

impl Target for Db {
    fn target(&self, password: &str) -> PgTarget {
        PgTarget {
            host: HOST.into(),
            port: PORT,
            user: USER.into(),
            database: self.0.clone(),
            password: password.into(),
        }
    }
}
