-- Foundation: the tamper-evident audit log and the job queue (transactional outbox).
-- Times are integer microseconds since the Unix epoch, UTC.

CREATE TABLE audit_log (
    seq          INTEGER PRIMARY KEY,      -- 1, 2, 3, … with no gaps
    occurred_at  INTEGER NOT NULL,
    actor_type   TEXT    NOT NULL,         -- staff | api_token | system
    actor_id     TEXT    NOT NULL,
    actor_label  TEXT    NOT NULL,
    action       TEXT    NOT NULL,         -- OWASP logging vocabulary, e.g. authn_login_fail
    target       TEXT    NOT NULL,         -- type:id
    outcome      TEXT    NOT NULL,         -- success | failure
    origin_ip    TEXT,
    details      TEXT    NOT NULL,         -- canonical JSON
    hash         TEXT    NOT NULL          -- hex SHA-256(previous hash ‖ canonical entry)
);
CREATE INDEX audit_log_action ON audit_log (action, seq);
CREATE INDEX audit_log_actor ON audit_log (actor_type, actor_id, seq);
CREATE INDEX audit_log_target ON audit_log (target, seq);

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only: UPDATE refused');
END;

CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only: DELETE refused');
END;

CREATE TABLE jobs (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    kind          TEXT    NOT NULL,
    payload       TEXT    NOT NULL,
    state         TEXT    NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'dead')),
    attempts      INTEGER NOT NULL DEFAULT 0,
    max_attempts  INTEGER NOT NULL,
    run_at        INTEGER NOT NULL,
    locked_by     TEXT,
    locked_until  INTEGER,
    last_error    TEXT,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    finished_at   INTEGER
);
CREATE INDEX jobs_due ON jobs (state, run_at, id);

CREATE TABLE job_attempts (
    job_id       INTEGER NOT NULL REFERENCES jobs (id),
    attempt      INTEGER NOT NULL,
    worker       TEXT    NOT NULL,
    started_at   INTEGER NOT NULL,
    finished_at  INTEGER,
    outcome      TEXT    NOT NULL CHECK (outcome IN ('running', 'succeeded', 'failed', 'lost')),
    error        TEXT,
    PRIMARY KEY (job_id, attempt)
);
