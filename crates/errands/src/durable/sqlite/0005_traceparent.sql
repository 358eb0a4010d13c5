-- The W3C trace context of the request that enqueued a job, for its attempts and reports.
ALTER TABLE errands_jobs ADD COLUMN traceparent TEXT;
