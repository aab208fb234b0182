//! Throwaway metadata databases for test suites (feature `test-support`).
//!
//! When [`POSTGRES_URL_ENV`] holds the admin URL of a Postgres server (as printed by
//! `scripts/test-postgres.sh start`), every [`TestDatabase`] is a fresh database of its own on
//! that server, dropped again when the value is dropped; otherwise it is a SQLite file in a
//! temporary directory. `make test` runs the database-facing suites both ways.
//!
//! Databases are created and dropped with the `psql` client (it ships with Debian's
//! `postgresql` package) so that this works from synchronous code, `Drop` included.

use std::process::Command;

/// Environment variable naming the admin URL of the Postgres server tests should use.
pub const POSTGRES_URL_ENV: &str = "SLUICE_TEST_POSTGRES_URL";

/// A database that exists for one test.
#[derive(Debug)]
pub struct TestDatabase {
    url: String,
    place: Place,
}

#[derive(Debug)]
enum Place {
    /// The directory holding the file, removed on drop.
    Sqlite {
        _dir: tempfile::TempDir,
    },
    Postgres {
        admin_url: String,
        name: String,
    },
}

impl TestDatabase {
    /// A fresh Postgres database when [`POSTGRES_URL_ENV`] is set, else a fresh SQLite file.
    pub fn new() -> Self {
        Self::postgres_from_env().unwrap_or_else(|| {
            let dir = tempfile::tempdir().expect("temporary directory");
            Self {
                url: format!("sqlite://{}/sluice.db?mode=rwc", dir.path().display()),
                place: Place::Sqlite { _dir: dir },
            }
        })
    }

    /// A fresh Postgres database when [`POSTGRES_URL_ENV`] is set, else `None`.
    pub fn postgres_from_env() -> Option<Self> {
        let admin_url = std::env::var(POSTGRES_URL_ENV)
            .ok()
            .filter(|url| !url.is_empty())?;
        let name = format!("sluice_test_{}", uuid::Uuid::new_v4().simple());
        run_psql(&admin_url, &format!("CREATE DATABASE {name}"));
        let mut url = url::Url::parse(&admin_url)
            .unwrap_or_else(|e| panic!("{POSTGRES_URL_ENV} is not a URL: {e}"));
        url.set_path(&name);
        Some(Self {
            url: url.to_string(),
            place: Place::Postgres { admin_url, name },
        })
    }

    /// The URL to give [`crate::Db::connect`] or the server's `DATABASE_URL`.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Default for TestDatabase {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Place::Postgres { admin_url, name } = &self.place {
            run_psql(
                admin_url,
                &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            );
        }
    }
}

fn run_psql(admin_url: &str, sql: &str) {
    let output = Command::new("psql")
        .args([
            admin_url,
            "--quiet",
            "--no-psqlrc",
            "--set=ON_ERROR_STOP=1",
            "--command",
            sql,
        ])
        .output()
        .expect("run psql (install Debian's postgresql package)");
    assert!(
        output.status.success(),
        "psql {sql:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}
