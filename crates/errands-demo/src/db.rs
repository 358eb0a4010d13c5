//! The database: a SQLite file (the default), or PostgreSQL (`--database postgres://…`), where
//! several demo processes share one database and one job queue. Opened and migrated at start;
//! the durable job store lives in it too.
//!
//! The application's queries go through sqlx's `Any` driver, written once with `$n`
//! parameters, which both databases read (SQLite by their order).

use std::str::FromStr;

use errands::durable::{AnyStore, PgStore, SqliteStore};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::{Any, AnyPool, Transaction};

/// The application's database.
#[derive(Clone, Debug)]
pub struct Db {
    pool: AnyPool,
    /// SQLite takes its write lock up front (`BEGIN IMMEDIATE`).
    sqlite: bool,
}

impl Db {
    /// The pool, for reads and single writes.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Begins a write transaction. On SQLite, `BEGIN IMMEDIATE` takes the write lock up front,
    /// so a transaction that reads before it writes waits for other writers (up to the busy
    /// timeout) instead of failing when it upgrades its lock.
    pub async fn write(&self) -> Result<Transaction<'static, Any>, sqlx::Error> {
        if self.sqlite {
            self.pool.begin_with("BEGIN IMMEDIATE").await
        } else {
            self.pool.begin().await
        }
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Whether `database` names a PostgreSQL server rather than a SQLite file.
pub fn is_postgres(database: &str) -> bool {
    database.starts_with("postgres://") || database.starts_with("postgresql://")
}

/// Opens `database` — a SQLite file path, or a `postgres://` URL — applies the migrations
/// that have not run yet, and opens the job store in it.
pub async fn open(database: &str) -> Result<(Db, AnyStore), Box<dyn std::error::Error>> {
    sqlx::any::install_default_drivers();
    let (store, url): (AnyStore, String) = if is_postgres(database) {
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .connect(database)
            .await?;
        (PgStore::new(pool).await?.into(), database.to_owned())
    } else {
        let options = SqliteConnectOptions::new()
            .filename(database)
            .create_if_missing(true)
            .foreign_keys(true)
            .journal_mode(SqliteJournalMode::Wal);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        (
            SqliteStore::new(pool).await?.into(),
            format!("sqlite://{database}"),
        )
    };
    let pool = AnyPoolOptions::new()
        .max_connections(8)
        .connect_with(AnyConnectOptions::from_str(&url)?)
        .await?;
    let sqlite = !is_postgres(database);
    migrator(sqlite).run(&pool).await?;
    Ok((Db { pool, sqlite }, store))
}

fn migrator(sqlite: bool) -> Migrator {
    let migration = |version, name: &'static str, sql: &'static str| {
        Migration::new(
            version,
            name.into(),
            MigrationType::Simple,
            sqlx::SqlStr::from_static(sql),
            false,
        )
    };
    if !sqlite {
        return Migrator::with_migrations(vec![migration(
            1,
            "schema",
            include_str!("../migrations/postgres/0001_init.sql"),
        )]);
    }
    Migrator::with_migrations(vec![
        migration(
            1,
            "initial schema",
            include_str!("../migrations/0001_init.sql"),
        ),
        migration(
            2,
            "e-mail addresses unique whatever their case",
            include_str!("../migrations/0002_email_nocase.sql"),
        ),
        migration(
            3,
            "alert keys and provider calls",
            include_str!("../migrations/0003_durable_jobs.sql"),
        ),
    ])
}
