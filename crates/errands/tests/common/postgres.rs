//! A PostgreSQL database of its own for each test, on the server named by
//! `ERRANDS_TEST_POSTGRES`; without it the PostgreSQL tests pass at once, saying they were
//! skipped. With `ERRANDS_POSTGRES_MARKERS` set to a directory, each test that ran leaves a
//! file there, so that CI can check the tests really ran.

use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Connection};

/// A database created for one test, dropped by [`TestDb::finish`].
pub struct TestDb {
    admin: PgConnectOptions,
    name: String,
    pub options: PgConnectOptions,
    /// The database's URL, for processes the test starts.
    pub url: String,
}

/// A new database, or `None` (with a note) when no server was named.
pub async fn database(test: &str) -> Option<TestDb> {
    let Ok(url) = std::env::var("ERRANDS_TEST_POSTGRES") else {
        eprintln!(
            "{test}: PostgreSQL test skipped; run it with \
             ERRANDS_TEST_POSTGRES=postgres://postgres@127.0.0.1:5432/postgres"
        );
        return None;
    };
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "errands_test_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let admin = PgConnectOptions::from_str(&url).expect("ERRANDS_TEST_POSTGRES is a URL");
    let mut conn = admin
        .connect()
        .await
        .expect("the PostgreSQL server answers");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .expect("create the test database");
    conn.close().await.ok();
    let options = admin.clone().database(&name);
    // The server's URL with the test's database in its path.
    let (base, query) = url.split_once('?').unwrap_or((&url, ""));
    let server = match base.split_once("://") {
        Some((scheme, rest)) => format!("{scheme}://{}", rest.split('/').next().unwrap_or(rest)),
        None => base.to_owned(),
    };
    let url = match query {
        "" => format!("{server}/{name}"),
        query => format!("{server}/{name}?{query}"),
    };
    Some(TestDb {
        admin,
        name,
        options,
        url,
    })
}

impl TestDb {
    /// A pool on the test's database.
    pub async fn pool(&self, connections: u32) -> PgPool {
        PgPoolOptions::new()
            .max_connections(connections)
            .connect_with(self.options.clone())
            .await
            .expect("connect to the test database")
    }

    /// Drops the database, and records that `test` ran.
    pub async fn finish(self, test: &str) {
        let mut conn = self.admin.connect().await.expect("the server answers");
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        )))
        .execute(&mut conn)
        .await
        .expect("drop the test database");
        if let Ok(dir) = std::env::var("ERRANDS_POSTGRES_MARKERS") {
            let _ = std::fs::create_dir_all(&dir);
            let _ = std::fs::write(std::path::Path::new(&dir).join(test), "ran");
        }
    }
}
