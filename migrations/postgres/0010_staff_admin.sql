-- Staff administration (issue 8): when an account was last given a fresh start by an
-- administrator (re-enabled, or its invitation sent again), so that the daily check for
-- accounts unused for 90 days counts from then rather than disabling it again at once; and
-- the table through which periodic work runs once per period across every instance.

ALTER TABLE staff ADD COLUMN reactivated_at BIGINT;

CREATE INDEX staff_grants_service ON staff_grants (service_id, staff_id);

-- One row per periodic task. An instance that moves `next_run_at` forward (a compare-and-set
-- on the old value) is the one that queues the task's job for this period.
CREATE TABLE periodic_runs (
    name         TEXT    PRIMARY KEY,
    next_run_at  BIGINT  NOT NULL,
    last_job_id  BIGINT
);
