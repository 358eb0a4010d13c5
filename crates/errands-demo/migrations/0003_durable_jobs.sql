-- Alerts carry the key of the failure they are about: a failure reported again after a
-- crash alerts once.
ALTER TABLE alerts ADD COLUMN key TEXT;
CREATE UNIQUE INDEX alerts_key ON alerts (key);

-- Every call to the (simulated) payment provider: how many times a payment was charged.
CREATE TABLE provider_calls (
    id INTEGER PRIMARY KEY,
    payment_id INTEGER NOT NULL,
    called_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);
