-- Member instances connected to an organisation (issue 3): the connection (its token, client
-- secret and webhook secret live sealed in `secrets`), pending OAuth authorisations, and
-- received webhook deliveries. Keep this file and ../postgres/0010_instances.sql in step.

CREATE TABLE instances (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id         BIGINT  NOT NULL UNIQUE REFERENCES organisations (id) ON DELETE CASCADE,
    base_url       TEXT    NOT NULL,
    method         TEXT    NOT NULL CHECK (method IN ('oauth', 'token')),
    client_id      TEXT,
    scopes         TEXT,
    connected      BOOLEAN NOT NULL,
    account        TEXT,
    check_ok       BOOLEAN,
    check_problems TEXT,
    checked_at     BIGINT,
    webhook_secret_set BOOLEAN NOT NULL DEFAULT FALSE,
    connected_at   BIGINT,
    created_at     BIGINT  NOT NULL
);

CREATE TABLE instance_oauth_pending (
    state_hash TEXT    PRIMARY KEY,
    org_id     BIGINT  NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    session_id BIGINT  NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    base_url   TEXT    NOT NULL,
    client_id  TEXT    NOT NULL,
    expires_at BIGINT  NOT NULL
);

CREATE TABLE webhook_deliveries (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    instance_id BIGINT  NOT NULL REFERENCES instances (id) ON DELETE CASCADE,
    body_hash   TEXT    NOT NULL,
    event_key   TEXT,
    event       TEXT    NOT NULL,
    body        TEXT    NOT NULL,
    received_at BIGINT  NOT NULL,
    UNIQUE (instance_id, body_hash),
    UNIQUE (instance_id, event_key)
);
