-- API tokens for CRM and case-management systems, and the answers kept for their
-- Idempotency-Key retries (src/integrations/). A token belongs to one service and carries
-- scopes; only its SHA-256 is stored (the token is 32 random bytes, shown once).

CREATE TABLE api_tokens (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    service_id    INTEGER NOT NULL REFERENCES services (id),
    name          TEXT    NOT NULL,
    -- Lower-case hex SHA-256 of the whole token.
    token_hash    TEXT    NOT NULL UNIQUE,
    -- The token's first characters ("pdk_AbCd"), to tell tokens apart in lists and logs.
    token_prefix  TEXT    NOT NULL,
    -- Space-separated scopes: payments:read refunds:request cases:link.
    scopes        TEXT    NOT NULL,
    -- The member of staff who made it, and on whose behalf its refund requests are recorded.
    created_by    INTEGER NOT NULL REFERENCES staff (id),
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER,
    last_used_at  INTEGER,
    revoked_at    INTEGER,
    revoked_by    INTEGER REFERENCES staff (id)
);
CREATE INDEX api_tokens_service ON api_tokens (service_id, created_at);
-- A name names one live token in its service.
CREATE UNIQUE INDEX api_tokens_live_name ON api_tokens (service_id, lower(name)) WHERE revoked_at IS NULL;

-- One row per (token, Idempotency-Key): the request's fingerprint and, once answered, the
-- answer itself. A row without a status is a request still in flight.
CREATE TABLE api_idempotency (
    token_id     INTEGER NOT NULL REFERENCES api_tokens (id),
    idem_key     TEXT    NOT NULL,
    fingerprint  TEXT    NOT NULL,
    status       INTEGER,
    body         TEXT,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (token_id, idem_key)
);
CREATE INDEX api_idempotency_age ON api_idempotency (token_id, created_at);
