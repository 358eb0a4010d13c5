//! The SQLite database: opened (created if missing) and migrated at start.

use std::path::Path;

use sqlx::SqlitePool;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};

/// Opens the database at `path` and applies the migrations that have not run yet.
pub async fn open(path: &Path) -> Result<SqlitePool, sqlx::Error> {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .foreign_keys(true)
        .journal_mode(SqliteJournalMode::Wal);
    let pool = SqlitePoolOptions::new()
        .max_connections(8)
        .connect_with(options)
        .await?;
    migrator().run(&pool).await?;
    Ok(pool)
}

/// Begins a write transaction. `BEGIN IMMEDIATE` takes SQLite's write lock up front, so a
/// transaction that reads before it writes waits for other writers (up to the busy timeout)
/// instead of failing when it upgrades its lock.
pub async fn write_transaction(
    pool: &SqlitePool,
) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error> {
    pool.begin_with("BEGIN IMMEDIATE").await
}

fn migrator() -> Migrator {
    let migration = |version, name: &'static str, sql: &'static str| {
        Migration::new(
            version,
            name.into(),
            MigrationType::Simple,
            sqlx::SqlStr::from_static(sql),
            false,
        )
    };
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
