//! The PostgreSQL of this machine (127.0.0.1:5432, started by `scripts/services.sh`): admin
//! statements through `psql` and scratch databases holding a small `items` table.

use std::process::Command;

use crate::missing;

pub const HOST: &str = "127.0.0.1";
pub const PORT: u16 = 5432;
pub const USER: &str = "postgres";
pub const PASSWORD: &str = "uplift-pg-test";

/// Three rows in `items`: `1:one,2:two,3:three`.
pub const ITEMS: &str = "create table items (id int primary key, name text not null); insert into items values (1, 'one'), (2, 'two'), (3, 'three')";
/// A release's "migration" of [`ITEMS`]: a new column, one row gone, one renamed, one new
/// (`1:ONE,3:three,4:four`).
pub const MIGRATION: &str = "alter table items add column owner text; delete from items where id = 2; update items set name = 'ONE' where id = 1; insert into items values (4, 'four', 'x')";

/// Runs `SQL` in `DATABASE` as the admin user; its trimmed output (`-tA`), or psql's stderr.
pub fn admin(sql: &str, database: &str) -> Result<String, String> {
    let out = Command::new("psql")
        .args(["-h", HOST, "-p", &PORT.to_string(), "-U", USER, "-tA"])
        .args(["-v", "ON_ERROR_STOP=1", "-d", database, "-c", sql])
        .env("PGPASSWORD", PASSWORD)
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).to_string())
    }
}

/// Whether PostgreSQL answers; with `CI=true` an unreachable one fails the test.
#[track_caller]
pub fn reachable() -> bool {
    match admin("select 1", "postgres") {
        Ok(_) => true,
        Err(e) => {
            missing(&format!(
                "PostgreSQL is not reachable on {HOST}:{PORT} ({e}); run scripts/services.sh"
            ));
            false
        }
    }
}

/// The `items` rows of `DATABASE` as `id:name,...` by id.
pub fn rows(database: &str) -> String {
    admin(
        "select string_agg(id || ':' || name, ',' order by id) from items",
        database,
    )
    .unwrap()
}

/// A fresh database for one test, dropped (connections and all) at the end.
pub struct Db(pub String);

impl Db {
    /// Creates database `NAME` afresh (a leftover of the same name is dropped) and runs
    /// `SEED` in it; `None` when PostgreSQL is not reachable (a failure with `CI=true`).
    #[track_caller]
    pub fn create(name: impl Into<String>, seed: &str) -> Option<Db> {
        if !reachable() {
            return None;
        }
        let db = Db(name.into());
        let _ = admin(&format!("drop database if exists {}", db.0), "postgres");
        admin(&format!("create database {}", db.0), "postgres").unwrap();
        db.exec(seed);
        Some(db)
    }

    /// Runs `SQL` in this database, asserting success.
    #[track_caller]
    pub fn exec(&self, sql: &str) -> String {
        admin(sql, &self.0).unwrap()
    }

    /// The `items` rows, as [`rows`] gives them.
    pub fn rows(&self) -> String {
        rows(&self.0)
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        let _ = admin(
            &format!("drop database if exists {} with (force)", self.0),
            "postgres",
        );
    }
}

/// A session holding a lock on a table (`access share`, in an open transaction), so that a
/// `pg_restore --clean` of it waits; released on drop (SIGINT makes psql cancel its statement
/// on the server, which ends the transaction at once).
pub struct LockHolder(std::process::Child);

impl LockHolder {
    /// Locks `TABLE` of `DATABASE` for at most 60 s.
    pub fn hold(database: &str, table: &str) -> LockHolder {
        let sql =
            format!("begin; lock table {table} in access share mode; select pg_sleep(60); commit;");
        let child = Command::new("psql")
            .args([
                "-h",
                HOST,
                "-p",
                &PORT.to_string(),
                "-U",
                USER,
                "-d",
                database,
            ])
            .args(["-c", &sql])
            .env("PGPASSWORD", PASSWORD)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        LockHolder(child)
    }
}

impl Drop for LockHolder {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

/// Whether a `pg_restore` session waits on a lock now.
pub fn pg_restore_waits_on_a_lock() -> bool {
    admin(
        "select count(*) from pg_stat_activity where application_name = 'pg_restore' and wait_event_type = 'Lock'",
        "postgres",
    )
    .unwrap()
        != "0"
}
