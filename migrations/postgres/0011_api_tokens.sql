-- API tokens for CRM and case-management systems, and the answers kept for their
-- Idempotency-Key retries (src/integrations/). A token belongs to one service and carries
-- scopes; only its SHA-256 is stored (the token is 32 random bytes, shown once).

CREATE TABLE api_tokens (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    service_id    BIGINT  NOT NULL REFERENCES services (id),
    name          TEXT    NOT NULL,
    -- Lower-case hex SHA-256 of the whole token.
    token_hash    TEXT    NOT NULL UNIQUE,
    -- The token's first characters ("pdk_AbCd"), to tell tokens apart in lists and logs.
    token_prefix  TEXT    NOT NULL,
    -- Space-separated scopes: payments:read refunds:request cases:link.
    scopes        TEXT    NOT NULL,
    -- The member of staff who made it, and on whose behalf its refund requests are recorded.
    created_by    BIGINT  NOT NULL REFERENCES staff (id),
    created_at    BIGINT  NOT NULL,
    expires_at    BIGINT,
    last_used_at  BIGINT,
    revoked_at    BIGINT,
    revoked_by    BIGINT  REFERENCES staff (id)
);
CREATE INDEX api_tokens_service ON api_tokens (service_id, created_at);
-- A name names one live token in its service.
CREATE UNIQUE INDEX api_tokens_live_name ON api_tokens (service_id, lower(name)) WHERE revoked_at IS NULL;

-- One row per (token, Idempotency-Key): the request's fingerprint and, once answered, the
-- answer itself. A row without a status is a request still in flight.
CREATE TABLE api_idempotency (
    token_id     BIGINT  NOT NULL REFERENCES api_tokens (id),
    idem_key     TEXT    NOT NULL,
    fingerprint  TEXT    NOT NULL,
    status       BIGINT,
    body         TEXT,
    created_at   BIGINT  NOT NULL,
    PRIMARY KEY (token_id, idem_key)
);
CREATE INDEX api_idempotency_age ON api_idempotency (token_id, created_at);
