-- Foundation: accounts, organisations, memberships, sessions, invitations, API tokens,
-- audit log, jobs, secrets. Timestamps are milliseconds since the Unix epoch (BIGINT) on both
-- backends. Keep this file and ../postgres/0001_foundation.sql in step.

CREATE TABLE accounts (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    email         TEXT    NOT NULL UNIQUE,
    display_name  TEXT    NOT NULL,
    password_hash TEXT    NOT NULL,
    site_admin    BOOLEAN NOT NULL DEFAULT FALSE,
    created_at    BIGINT  NOT NULL
);

CREATE TABLE organisations (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT   NOT NULL,
    kind       TEXT   NOT NULL CHECK (kind IN ('cooperative', 'instance')),
    domain     TEXT   UNIQUE,
    created_at BIGINT NOT NULL,
    CHECK ((kind = 'instance' AND domain IS NOT NULL) OR (kind = 'cooperative' AND domain IS NULL))
);

CREATE TABLE memberships (
    org_id     BIGINT NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    role       TEXT   NOT NULL CHECK (role IN ('owner', 'admin', 'moderator', 'member', 'steward', 'responder', 'care')),
    created_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, account_id)
);
CREATE INDEX memberships_by_account ON memberships (account_id);

CREATE TABLE sessions (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    token_hash   TEXT   NOT NULL UNIQUE,
    account_id   BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    csrf_secret  TEXT   NOT NULL,
    current_org  BIGINT REFERENCES organisations (id) ON DELETE SET NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);
CREATE INDEX sessions_by_expiry ON sessions (expires_at);

CREATE TABLE invitations (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id      BIGINT NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    token_hash  TEXT   NOT NULL UNIQUE,
    role        TEXT   NOT NULL CHECK (role IN ('owner', 'admin', 'moderator', 'member', 'steward', 'responder', 'care')),
    email       TEXT,
    invited_by  BIGINT REFERENCES accounts (id) ON DELETE SET NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    accepted_at BIGINT,
    accepted_by BIGINT REFERENCES accounts (id) ON DELETE SET NULL,
    revoked_at  BIGINT
);
CREATE INDEX invitations_by_org ON invitations (org_id);

CREATE TABLE api_tokens (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id   BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name         TEXT   NOT NULL,
    token_hash   TEXT   NOT NULL UNIQUE,
    scopes       TEXT   NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT,
    revoked_at   BIGINT,
    last_used_at BIGINT
);
CREATE INDEX api_tokens_by_account ON api_tokens (account_id);

-- The audit log is append-only (triggers below refuse UPDATE and DELETE). Each entry's hash is
-- SHA-256 over a canonical encoding of the entry and the previous entry's hash. audit_head holds
-- the last sequence number and hash; appends update it first, which serialises them.
CREATE TABLE audit_log (
    seq         BIGINT PRIMARY KEY,
    at          BIGINT NOT NULL,
    actor_id    BIGINT,
    actor       TEXT   NOT NULL,
    action      TEXT   NOT NULL,
    org_id      BIGINT,
    before_json TEXT,
    after_json  TEXT,
    prev_hash   TEXT   NOT NULL,
    hash        TEXT   NOT NULL
);
CREATE INDEX audit_log_by_org ON audit_log (org_id, seq);

CREATE TABLE audit_head (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    seq       BIGINT NOT NULL,
    last_hash TEXT   NOT NULL
);
INSERT INTO audit_head (id, seq, last_hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;

CREATE TABLE jobs (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    kind         TEXT   NOT NULL,
    payload      TEXT   NOT NULL,
    state        TEXT   NOT NULL CHECK (state IN ('queued', 'running', 'done', 'dead')),
    attempts     BIGINT NOT NULL DEFAULT 0,
    max_attempts BIGINT NOT NULL,
    run_at       BIGINT NOT NULL,
    lease_until  BIGINT,
    locked_by    TEXT,
    dedup_key    TEXT,
    last_error   TEXT,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
CREATE INDEX jobs_ready ON jobs (state, run_at);
CREATE INDEX jobs_leases ON jobs (state, lease_until);
CREATE UNIQUE INDEX jobs_live_dedup ON jobs (dedup_key) WHERE state IN ('queued', 'running');

CREATE TABLE secrets (
    name       TEXT   PRIMARY KEY,
    key_id     TEXT   NOT NULL,
    nonce      BLOB   NOT NULL,
    ciphertext BLOB   NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
