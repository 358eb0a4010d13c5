-- The processes that own held jobs, with the time their heartbeat runs out (Unix
-- milliseconds). A held job whose owner is missing here, or expired, is released.
CREATE TABLE errands_processes (
    owner TEXT PRIMARY KEY,
    alive_until INTEGER NOT NULL
);

CREATE INDEX errands_jobs_held ON errands_jobs (owner) WHERE state = 'held';
