//! What the PostgreSQL sides of the durable jobs benchmark share (bench/jobs/errands-postgres,
//! bench/jobs/apalis-postgres, bench/jobs/riverqueue, each including this file with `#[path]`):
//! their own option, and the database server's side of each measure. What every side measures
//! the same way is in measure.rs, next to this file, which they include too.
//!
//! Every measure runs on its own database, created for it (`errands_bench_<system>_<measure>`)
//! and dropped after it. Around the measured part, [`Db::mark`] and [`Db::since`] take:
//!
//! - WAL bytes: `pg_wal_lsn_diff` of `pg_current_wal_lsn()` after and before (the server's
//!   whole WAL: another database's writes at the same time count too); and the bytes of the
//!   records in that range that belong to the measure's database, by pg_walinspect (created
//!   in each measure's database), which another database's writes leave alone (a temporary
//!   replication slot keeps that WAL until it is read). A `CHECKPOINT` before each measure's
//!   first write keeps a timed one from landing in it, so that no page is written whole in
//!   the middle of one run and not of another (full-page images are counted apart: another
//!   session's checkpoint would show there).
//! - PostgreSQL CPU: user + system time, from /proc, of the backends connected to the
//!   measure's database (`pg_stat_activity.datname`), less the one this file checks the
//!   results on; a backend that started during the measure counts whole, one that ended
//!   during it is lost (counted in `backends_gone`). Also the whole server's: every process
//!   of the postmaster, and the postmaster's reaped children.
//!
//! After the measure, once every connection of the system under test is closed (a backend
//! flushes its table statistics as it exits), [`Db::tables`] sums `pg_stat_user_tables` over
//! the database's tables: its only tables are the system's own.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::{AssertSqlSafe, Connection};

/// Minutes a drain or the pickup measure may take before the run fails.
pub const ALL_RAN_MINUTES: u64 = 15;

/// The PostgreSQL sides' own option.
pub struct Target {
    /// The server, as a URL to its `postgres` database (where databases are created).
    pub server: String,
}

pub type Options = crate::measure::Options<Target>;

pub fn options() -> Options {
    let target = Target {
        server: "postgres://postgres@127.0.0.1:5432/postgres".into(),
    };
    crate::measure::options(target, |target, key, value| {
        if key != "--server" {
            return false;
        }
        target.server = value.to_string();
        true
    })
}

/// The database server: a connection to its `postgres` database, and its postmaster.
pub struct Server {
    admin: PgPool,
    base: PgConnectOptions,
    postmaster: u32,
    /// `server_version`, e.g. "15.20 (Debian 15.20-0+deb12u1)".
    pub version: String,
    /// The settings that bear on the measures.
    pub settings: serde_json::Map<String, Value>,
}

impl Server {
    pub async fn connect(o: &Options) -> Server {
        let base: PgConnectOptions = o.store.server.parse().expect("a postgres:// URL");
        // One session throughout: the WAL slot of `Db::mark` is this session's.
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(base.clone())
            .await
            .expect("the PostgreSQL server answers");
        let version: String = sqlx::query_scalar("SHOW server_version")
            .fetch_one(&admin)
            .await
            .unwrap();
        let data: String = sqlx::query_scalar("SHOW data_directory")
            .fetch_one(&admin)
            .await
            .expect("a superuser connection (the data directory locates the postmaster)");
        let settings: Vec<(String, String)> = sqlx::query_as(
            "SELECT name, current_setting(name) FROM pg_settings WHERE name IN \
             ('fsync', 'synchronous_commit', 'full_page_writes', 'wal_level', 'shared_buffers', \
             'autovacuum', 'checkpoint_timeout', 'max_wal_size') ORDER BY name",
        )
        .fetch_all(&admin)
        .await
        .unwrap();
        let settings = settings.into_iter().map(|(k, v)| (k, json!(v))).collect();
        let pid = std::fs::read_to_string(Path::new(&data).join("postmaster.pid"))
            .expect("the server runs on this machine");
        let postmaster = pid.lines().next().unwrap().trim().parse().unwrap();
        Server {
            admin,
            base,
            postmaster,
            version,
            settings,
        }
    }

    /// A fresh database `errands_bench_<system>_<measure>` (dropped first if a run that
    /// stopped early left it). The name is made of this file's callers' literals.
    pub async fn create(&self, system: &str, measure: &str) -> Db {
        let name = format!("errands_bench_{system}_{measure}").replace('-', "_");
        sqlx::raw_sql(AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .execute(&self.admin)
        .await
        .unwrap();
        sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&self.admin)
            .await
            .unwrap();
        let options = self.base.clone().database(&name);
        let mut check = PgConnection::connect_with(&options).await.unwrap();
        let check_pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&mut check)
            .await
            .unwrap();
        let oid: i64 = sqlx::query_scalar(
            "SELECT oid::bigint FROM pg_database WHERE datname = current_database()",
        )
        .fetch_one(&mut check)
        .await
        .unwrap();
        sqlx::raw_sql("CREATE EXTENSION pg_walinspect")
            .execute(&mut check)
            .await
            .unwrap();
        Db {
            name,
            options,
            admin: self.admin.clone(),
            postmaster: self.postmaster,
            check: tokio::sync::Mutex::new(check),
            check_pid,
            oid,
        }
    }
}

/// One measure's database.
pub struct Db {
    pub name: String,
    options: PgConnectOptions,
    admin: PgPool,
    postmaster: u32,
    /// Where this file checks results: left out of the database's CPU.
    check: tokio::sync::Mutex<PgConnection>,
    check_pid: i32,
    oid: i64,
}

/// A table's name and its `n_dead_tup`, `n_live_tup`, `n_tup_ins`, `n_tup_upd`,
/// `n_tup_hot_upd` and `n_tup_del`.
type TableRow = (String, i64, i64, i64, i64, i64, i64);

/// The server's counters at one moment.
pub struct Mark {
    lsn: String,
    backends: HashMap<i32, u64>,
    server_us: u64,
    at: Instant,
}

impl Db {
    /// A pool of sqlx's default size on the database.
    pub async fn pool(&self) -> PgPool {
        PgPoolOptions::new()
            .connect_with(self.options.clone())
            .await
            .unwrap()
    }

    /// A checkpoint, so that none comes due during the measure.
    pub async fn checkpoint(&self) {
        sqlx::raw_sql("CHECKPOINT")
            .execute(&self.admin)
            .await
            .unwrap();
    }

    pub async fn mark(&self) -> Mark {
        // A temporary slot of the admin session keeps the WAL from here on until `since`
        // has read it, whatever checkpoints come meanwhile.
        sqlx::query(
            "SELECT pg_create_physical_replication_slot('errands_bench_wal', true, true) \
             WHERE NOT EXISTS (SELECT FROM pg_replication_slots WHERE slot_name = 'errands_bench_wal')",
        )
        .execute(&self.admin)
        .await
        .unwrap();
        let lsn: String = sqlx::query_scalar("SELECT pg_current_wal_lsn()::text")
            .fetch_one(&self.admin)
            .await
            .unwrap();
        Mark {
            lsn,
            backends: self.backends().await,
            server_us: server_cpu_us(self.postmaster),
            at: Instant::now(),
        }
    }

    /// The backends on this database but the checking one, with their CPU so far.
    async fn backends(&self) -> HashMap<i32, u64> {
        let pids: Vec<i32> =
            sqlx::query_scalar("SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> $2")
                .bind(&self.name)
                .bind(self.check_pid)
                .fetch_all(&self.admin)
                .await
                .unwrap();
        pids.into_iter()
            .filter_map(|pid| Some((pid, proc_cpu_us(pid as u32)?.0)))
            .collect()
    }

    /// WAL written and PostgreSQL CPU spent since `mark`, in total and per job.
    pub async fn since(&self, mark: &Mark, jobs: u64) -> Value {
        let now = self.backends().await;
        let server_us = server_cpu_us(self.postmaster).saturating_sub(mark.server_us);
        let seconds = mark.at.elapsed().as_secs_f64();
        let db_us: u64 = now
            .iter()
            .map(|(pid, us)| us - mark.backends.get(pid).copied().unwrap_or(0).min(*us))
            .sum();
        let gone = mark
            .backends
            .keys()
            .filter(|pid| !now.contains_key(pid))
            .count();
        let (wal, end): (i64, String) = sqlx::query_as(
            "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1::pg_lsn)::bigint, \
             pg_current_wal_flush_lsn()::text",
        )
        .bind(&mark.lsn)
        .fetch_one(&self.admin)
        .await
        .unwrap();
        let (records, fpi) = self.wal_records(&mark.lsn, &end).await;
        sqlx::query(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots \
             WHERE slot_name = 'errands_bench_wal'",
        )
        .execute(&self.admin)
        .await
        .unwrap();
        let jobs = jobs.max(1) as f64;
        json!({
            "seconds": seconds,
            "wal_bytes": wal,
            "wal_bytes_per_job": wal as f64 / jobs,
            "wal_record_bytes": records,
            "wal_record_bytes_per_job": records as f64 / jobs,
            "wal_fpi_bytes": fpi,
            "db_cpu_us": db_us,
            "db_cpu_us_per_job": db_us as f64 / jobs,
            "server_cpu_us": server_us,
            "server_cpu_us_per_job": server_us as f64 / jobs,
            "backends": now.len(),
            "backends_gone": gone,
        })
    }

    /// The bytes of the WAL records between `start` and `end` that this database wrote (those
    /// naming one of its relations, and the commit and abort records of their transactions),
    /// and of the full-page images among them, read by pg_walinspect: unlike the LSN
    /// difference, it leaves out what other databases wrote meanwhile.
    async fn wal_records(&self, start: &str, end: &str) -> (i64, i64) {
        let mine = format!("%/{}/%", self.oid);
        let mut check = self.check.lock().await;
        sqlx::query_as(
            "WITH r AS (SELECT xid::text::bigint AS xid, resource_manager, record_length, \
                 fpi_length, coalesce(block_ref, '') LIKE $3 OR description LIKE $3 AS mine \
                 FROM pg_get_wal_records_info($1::pg_lsn, $2::pg_lsn)), \
             x AS (SELECT DISTINCT xid FROM r WHERE mine AND xid <> 0) \
             SELECT coalesce(sum(record_length), 0)::bigint, coalesce(sum(fpi_length), 0)::bigint \
             FROM r WHERE mine OR (resource_manager = 'Transaction' AND xid IN (SELECT xid FROM x))",
        )
        .bind(start)
        .bind(end)
        .bind(mine)
        .fetch_one(&mut *check)
        .await
        .unwrap()
    }

    /// `query`'s count on the checking connection.
    pub async fn count(&self, query: &'static str) -> i64 {
        sqlx::query_scalar(query)
            .fetch_one(&mut *self.check.lock().await)
            .await
            .unwrap()
    }

    /// Seconds from `began` until `query` counts `jobs` (checked after the timed window, so
    /// that the check itself does not load the database while it is measured).
    pub async fn recorded(&self, query: &'static str, jobs: u64, began: Instant) -> f64 {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let done = self.count(query).await;
            if done as u64 >= jobs {
                return began.elapsed().as_secs_f64();
            }
            assert!(Instant::now() < deadline, "{done} of {jobs} jobs recorded");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// The tables' statistics, summed over the database's tables (the dead tuples over the
    /// queue's tables), per job; called once the system under test closed its connections.
    pub async fn tables(&self, jobs: u64) -> Value {
        // Each backend flushes its statistics as it exits: wait for the last one.
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut lingering = self.backends().await.len();
        while lingering > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
            lingering = self.backends().await.len();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut check = self.check.lock().await;
        sqlx::raw_sql("SELECT pg_stat_force_next_flush(); SELECT pg_stat_clear_snapshot();")
            .execute(&mut *check)
            .await
            .unwrap();
        let rows: Vec<TableRow> = sqlx::query_as(
            "SELECT schemaname || '.' || relname, n_dead_tup, n_live_tup, n_tup_ins, n_tup_upd, \
             n_tup_hot_upd, n_tup_del FROM pg_stat_user_tables ORDER BY n_dead_tup DESC, relname",
        )
        .fetch_all(&mut *check)
        .await
        .unwrap();
        let sum = |f: fn(&TableRow) -> i64| -> i64 { rows.iter().map(f).sum() };
        // The queue's tables: all but the migrations' bookkeeping, whose rows the setup
        // rewrote before the measure.
        let bookkeeping = ["apalis._sqlx_migrations", "errands.schema_versions"];
        let dead: i64 = rows
            .iter()
            .filter(|r| !bookkeeping.contains(&r.0.as_str()) && !r.0.ends_with(".river_migration"))
            .map(|r| r.1)
            .sum();
        let per_table: serde_json::Map<String, Value> = rows
            .iter()
            .filter(|r| r.1 > 0)
            .map(|r| (r.0.clone(), json!(r.1)))
            .collect();
        json!({
            "dead_tuples": dead,
            "dead_tuples_per_job": dead as f64 / jobs.max(1) as f64,
            "live_tuples": sum(|r| r.2),
            "inserted": sum(|r| r.3),
            "updated": sum(|r| r.4),
            "hot_updated": sum(|r| r.5),
            "deleted": sum(|r| r.6),
            "dead_by_table": per_table,
            "lingering_backends": lingering,
        })
    }

    /// Drops the database.
    pub async fn drop(self) {
        let Db {
            name, admin, check, ..
        } = self;
        let _ = check.into_inner().close().await;
        sqlx::raw_sql(AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .execute(&admin)
        .await
        .unwrap();
    }
}

/// Closes `pool`, waiting at most 5 s for its connections to come back.
pub async fn close(pool: &PgPool) {
    let _ = tokio::time::timeout(Duration::from_secs(5), pool.close()).await;
}

/// (user + system CPU microseconds, parent pid, reaped children's CPU microseconds) of a
/// process, from /proc.
fn proc_cpu_us(pid: u32) -> Option<(u64, u32, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let tick = 1_000_000 / clock_ticks();
    let field = |i: usize| fields.get(i)?.parse::<u64>().ok();
    let own = (field(11)? + field(12)?) * tick;
    let children = (field(13)? + field(14)?) * tick;
    Some((own, field(1)? as u32, children))
}

fn clock_ticks() -> u64 {
    // SAFETY: sysconf only reads a configuration value.
    (unsafe { libc::sysconf(libc::_SC_CLK_TCK) }) as u64
}

/// CPU of the whole server: the postmaster, its reaped children, and its live children.
fn server_cpu_us(postmaster: u32) -> u64 {
    let mut total = proc_cpu_us(postmaster).map_or(0, |(own, _, reaped)| own + reaped);
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if let Some((own, parent, _)) = proc_cpu_us(pid)
            && parent == postmaster
        {
            total += own;
        }
    }
    total
}
