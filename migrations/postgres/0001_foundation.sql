-- Foundation: the tamper-evident audit log and the job queue (transactional outbox).
-- Times are integer microseconds since the Unix epoch, UTC.

CREATE TABLE audit_log (
    seq          BIGINT  PRIMARY KEY,      -- 1, 2, 3, … with no gaps
    occurred_at  BIGINT  NOT NULL,
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

-- The chain's head, one row. Appending locks it with UPDATE … RETURNING, which both orders
-- concurrent appenders (across processes) and hands the winner the newest committed head in one
-- round trip. Verification never trusts it: it recomputes everything from audit_log.
CREATE TABLE audit_head (
    id    SMALLINT PRIMARY KEY CHECK (id = 1),
    seq   BIGINT   NOT NULL,
    hash  TEXT     NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, repeat('0', 64));

CREATE FUNCTION audit_log_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP;
END;
$$;

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_refuse_change();
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_refuse_change();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse_change();

CREATE TABLE jobs (
    id            BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind          TEXT    NOT NULL,
    payload       TEXT    NOT NULL,
    state         TEXT    NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'dead')),
    attempts      INTEGER NOT NULL DEFAULT 0,
    max_attempts  INTEGER NOT NULL,
    run_at        BIGINT  NOT NULL,
    locked_by     TEXT,
    locked_until  BIGINT,
    last_error    TEXT,
    created_at    BIGINT  NOT NULL,
    updated_at    BIGINT  NOT NULL,
    finished_at   BIGINT
);
CREATE INDEX jobs_due ON jobs (state, run_at, id);

CREATE TABLE job_attempts (
    job_id       BIGINT  NOT NULL REFERENCES jobs (id),
    attempt      INTEGER NOT NULL,
    worker       TEXT    NOT NULL,
    started_at   BIGINT  NOT NULL,
    finished_at  BIGINT,
    outcome      TEXT    NOT NULL CHECK (outcome IN ('running', 'succeeded', 'failed', 'lost')),
    error        TEXT,
    PRIMARY KEY (job_id, attempt)
);
