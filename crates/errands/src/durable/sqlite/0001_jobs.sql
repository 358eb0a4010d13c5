-- errands' durable jobs. One row per job; `state` follows the state machine of
-- `errands::durable`. Times are Unix milliseconds.
CREATE TABLE errands_jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    queue TEXT NOT NULL,
    args TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN
        ('held', 'available', 'running', 'succeeded', 'failed', 'cancelled', 'discarded', 'skipped')),
    attempt INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL CHECK (max_attempts >= 1),
    -- The fencing token: a new one at every claim; writes of a running job must carry it.
    token INTEGER NOT NULL DEFAULT 0,
    run_at INTEGER NOT NULL,
    lease_until INTEGER,
    owner TEXT,
    unique_key TEXT,
    request_id TEXT,
    fields TEXT NOT NULL,
    last_error TEXT,
    -- 1 while the job's end (failed, skipped) has not been reported yet.
    report_owed INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    finished_at INTEGER
);

CREATE INDEX errands_jobs_runnable ON errands_jobs (queue, run_at) WHERE state = 'available';
CREATE INDEX errands_jobs_leases ON errands_jobs (lease_until) WHERE state = 'running';
CREATE INDEX errands_jobs_owed ON errands_jobs (id) WHERE report_owed = 1;
CREATE INDEX errands_jobs_finished ON errands_jobs (finished_at) WHERE finished_at IS NOT NULL;
CREATE UNIQUE INDEX errands_jobs_unique ON errands_jobs (kind, unique_key)
    WHERE unique_key IS NOT NULL AND state IN ('held', 'available', 'running');
