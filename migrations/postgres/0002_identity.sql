-- Staff identity: services (the minimum that roles need; issue 4 adds the platform settings),
-- staff accounts, their roles per service, sessions, one-time links, password history and
-- single sign-on. Times are integer microseconds since the Unix epoch, UTC.

CREATE TABLE services (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    slug        TEXT    NOT NULL UNIQUE,
    name        TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL
);

CREATE TABLE staff (
    id                   BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email                TEXT    NOT NULL,
    email_key            TEXT    NOT NULL UNIQUE,    -- lower-cased email: unique ignoring case
    name                 TEXT    NOT NULL,
    status               TEXT    NOT NULL CHECK (status IN ('invited', 'active', 'disabled')),
    password_hash        TEXT,                       -- argon2id PHC string; NULL for SSO-only staff
    totp_secret          TEXT,                       -- sealed with a key derived from the secret key
    totp_last_step       BIGINT,                    -- each code is accepted once
    failed_attempts      BIGINT  NOT NULL DEFAULT 0,
    locked_until         BIGINT,
    last_sign_in_at      BIGINT,
    password_changed_at  BIGINT,
    created_at           BIGINT  NOT NULL,
    updated_at           BIGINT  NOT NULL
);

CREATE TABLE staff_grants (
    staff_id    BIGINT  NOT NULL REFERENCES staff (id),
    service_id  BIGINT  REFERENCES services (id),    -- NULL for the global platform admin role
    role        TEXT    NOT NULL,
    granted_at  BIGINT  NOT NULL,
    granted_by  TEXT    NOT NULL
);
CREATE UNIQUE INDEX staff_grants_one_role ON staff_grants (staff_id, COALESCE(service_id, 0));

CREATE TABLE password_history (
    staff_id       BIGINT  NOT NULL REFERENCES staff (id),
    password_hash  TEXT    NOT NULL,
    retired_at     BIGINT  NOT NULL
);
CREATE INDEX password_history_staff ON password_history (staff_id, retired_at);

CREATE TABLE sessions (
    id                   BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,  -- a handle for "sign out" buttons
    id_hash              TEXT    NOT NULL UNIQUE,             -- SHA-256 of the cookie's id
    staff_id             BIGINT  NOT NULL REFERENCES staff (id),
    stage                TEXT    NOT NULL CHECK (stage IN ('second_factor', 'enrol', 'active')),
    auth_method          TEXT    NOT NULL,                    -- password | sso:<provider>
    created_at           BIGINT  NOT NULL,
    last_seen_at         BIGINT  NOT NULL,
    second_factor_at     BIGINT,
    pending_totp_secret  TEXT,                                -- sealed; while enrolling
    return_to            TEXT,
    ip                   TEXT,
    user_agent           TEXT
);
CREATE INDEX sessions_staff ON sessions (staff_id);

CREATE TABLE staff_links (
    id_hash     TEXT    PRIMARY KEY,                  -- SHA-256 of the token in the link
    staff_id    BIGINT  NOT NULL REFERENCES staff (id),
    purpose     TEXT    NOT NULL CHECK (purpose IN ('setup', 'reset')),
    created_at  BIGINT  NOT NULL,
    expires_at  BIGINT  NOT NULL,
    used_at     BIGINT
);
CREATE INDEX staff_links_staff ON staff_links (staff_id, purpose);

CREATE TABLE oidc_identities (
    issuer      TEXT    NOT NULL,
    subject     TEXT    NOT NULL,
    staff_id    BIGINT  NOT NULL REFERENCES staff (id),
    created_at  BIGINT  NOT NULL,
    PRIMARY KEY (issuer, subject)
);

-- A sign-in in flight at an identity provider, keyed by the hash of its `state`.
CREATE TABLE oidc_flows (
    state_hash     TEXT    PRIMARY KEY,
    provider       TEXT    NOT NULL,
    nonce          TEXT    NOT NULL,
    pkce_verifier  TEXT    NOT NULL,
    return_to      TEXT,
    created_at     BIGINT  NOT NULL,
    expires_at     BIGINT  NOT NULL
);
