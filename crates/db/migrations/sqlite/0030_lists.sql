-- Shared blocklists as a service (issue 6): sources and their refresh history, consensus lists
-- with their published state and change feed, subscriptions of member instances, ownership of
-- pushed blocks, push plans, and coordinated defederation. The queries live in crates/lists.
-- Keep this file and ../postgres/0030_lists.sql in step.

CREATE TABLE lists_sources (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id          BIGINT  NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    name            TEXT    NOT NULL,
    kind            TEXT    NOT NULL CHECK (kind IN ('url', 'instance', 'upload', 'feed', 'decisions')),
    url             TEXT,
    instance_id     BIGINT  REFERENCES instances (id) ON DELETE SET NULL,
    instance_admin  BOOLEAN NOT NULL DEFAULT FALSE,
    format          TEXT,
    refresh_secs    BIGINT  NOT NULL,
    schedule_gen    BIGINT  NOT NULL DEFAULT 0,
    etag            TEXT,
    last_modified   TEXT,
    feed_cursor     BIGINT,
    snapshot        TEXT    NOT NULL DEFAULT '',
    entry_count     BIGINT  NOT NULL DEFAULT 0,
    health          TEXT    NOT NULL DEFAULT 'new',
    last_error      TEXT,
    problems        TEXT,
    last_attempt_at BIGINT,
    last_success_at BIGINT,
    last_change_at  BIGINT,
    created_at      BIGINT  NOT NULL
);
CREATE INDEX lists_sources_org ON lists_sources (org_id);

CREATE TABLE lists_source_refreshes (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    source_id BIGINT  NOT NULL REFERENCES lists_sources (id) ON DELETE CASCADE,
    at        BIGINT  NOT NULL,
    outcome   TEXT    NOT NULL,
    added     BIGINT  NOT NULL DEFAULT 0,
    changed   BIGINT  NOT NULL DEFAULT 0,
    removed   BIGINT  NOT NULL DEFAULT 0,
    error     TEXT,
    problems  TEXT
);
CREATE INDEX lists_source_refreshes_source ON lists_source_refreshes (source_id, id);

CREATE TABLE lists_source_changes (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    source_id   BIGINT  NOT NULL REFERENCES lists_sources (id) ON DELETE CASCADE,
    refresh_id  BIGINT  NOT NULL REFERENCES lists_source_refreshes (id) ON DELETE CASCADE,
    domain      TEXT    NOT NULL,
    op          TEXT    NOT NULL,
    before_json TEXT,
    after_json  TEXT
);
CREATE INDEX lists_source_changes_refresh ON lists_source_changes (refresh_id, id);

CREATE TABLE lists_lists (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id         BIGINT  NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    name           TEXT    NOT NULL,
    description    TEXT    NOT NULL DEFAULT '',
    public         BOOLEAN NOT NULL,
    token_hash     TEXT,
    policy         TEXT    NOT NULL,
    seq            BIGINT  NOT NULL DEFAULT 0,
    dirty_gen      BIGINT  NOT NULL DEFAULT 0,
    built_gen      BIGINT  NOT NULL DEFAULT -1,
    last_built_at  BIGINT,
    created_at     BIGINT  NOT NULL,
    UNIQUE (org_id, name)
);

CREATE TABLE lists_list_sources (
    list_id      BIGINT  NOT NULL REFERENCES lists_lists (id) ON DELETE CASCADE,
    source_id    BIGINT  NOT NULL REFERENCES lists_sources (id) ON DELETE CASCADE,
    weight       DOUBLE PRECISION NOT NULL,
    max_severity TEXT    NOT NULL,
    allowlist    BOOLEAN NOT NULL,
    position     BIGINT  NOT NULL,
    PRIMARY KEY (list_id, source_id)
);
CREATE INDEX lists_list_sources_source ON lists_list_sources (source_id);

CREATE TABLE lists_entries (
    list_id        BIGINT  NOT NULL REFERENCES lists_lists (id) ON DELETE CASCADE,
    domain         TEXT    NOT NULL,
    entry          TEXT    NOT NULL,
    audit          TEXT,
    PRIMARY KEY (list_id, domain)
);

CREATE TABLE lists_changes (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    list_id     BIGINT  NOT NULL REFERENCES lists_lists (id) ON DELETE CASCADE,
    seq         BIGINT,
    domain      TEXT    NOT NULL,
    op          TEXT    NOT NULL,
    before_json TEXT,
    after_json  TEXT,
    audit       TEXT,
    status      TEXT    NOT NULL,
    reason      TEXT,
    created_at  BIGINT  NOT NULL,
    decided_at  BIGINT,
    decided_by  TEXT,
    UNIQUE (list_id, seq)
);
CREATE INDEX lists_changes_status ON lists_changes (list_id, status, domain);

CREATE TABLE lists_subscriptions (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id     BIGINT  NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    list_id    BIGINT  NOT NULL REFERENCES lists_lists (id) ON DELETE CASCADE,
    mode       TEXT    NOT NULL CHECK (mode IN ('review', 'automatic')),
    auto_limit BIGINT  NOT NULL,
    created_at BIGINT  NOT NULL,
    UNIQUE (org_id, list_id)
);

CREATE TABLE lists_managed (
    org_id     BIGINT  NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    domain     TEXT    NOT NULL,
    remote_id  TEXT,
    pushed     TEXT    NOT NULL,
    list_id    BIGINT,
    list_name  TEXT    NOT NULL,
    updated_at BIGINT  NOT NULL,
    PRIMARY KEY (org_id, domain)
);

CREATE TABLE lists_locks (
    org_id     BIGINT  NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    domain     TEXT    NOT NULL,
    created_by TEXT    NOT NULL,
    created_at BIGINT  NOT NULL,
    PRIMARY KEY (org_id, domain)
);

CREATE TABLE lists_pushes (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id      BIGINT  NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    status      TEXT    NOT NULL,
    reason      TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    decided_at  BIGINT,
    decided_by  TEXT,
    finished_at BIGINT,
    error       TEXT
);
CREATE INDEX lists_pushes_org ON lists_pushes (org_id, status);

CREATE TABLE lists_push_steps (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    push_id     BIGINT  NOT NULL REFERENCES lists_pushes (id) ON DELETE CASCADE,
    position    BIGINT  NOT NULL,
    op          TEXT    NOT NULL,
    domain      TEXT    NOT NULL,
    before_json TEXT,
    desired     TEXT,
    list_id     BIGINT,
    list_name   TEXT    NOT NULL,
    state       TEXT    NOT NULL,
    forced      BOOLEAN NOT NULL DEFAULT FALSE,
    remote_id   TEXT,
    note        TEXT,
    done_at     BIGINT
);
CREATE INDEX lists_push_steps_push ON lists_push_steps (push_id, position);

CREATE TABLE lists_proposals (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id      BIGINT  NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    list_id     BIGINT  NOT NULL REFERENCES lists_lists (id) ON DELETE CASCADE,
    domain      TEXT    NOT NULL,
    severity    TEXT    NOT NULL,
    evidence    TEXT    NOT NULL,
    links       TEXT    NOT NULL,
    deadline    BIGINT  NOT NULL,
    quorum      BIGINT  NOT NULL,
    status      TEXT    NOT NULL,
    yes         BIGINT  NOT NULL DEFAULT 0,
    no          BIGINT  NOT NULL DEFAULT 0,
    abstain     BIGINT  NOT NULL DEFAULT 0,
    created_by  TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    decided_at  BIGINT
);

CREATE TABLE lists_votes (
    proposal_id BIGINT  NOT NULL REFERENCES lists_proposals (id) ON DELETE CASCADE,
    org_id      BIGINT  NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    vote        TEXT    NOT NULL CHECK (vote IN ('yes', 'no', 'abstain')),
    voter       TEXT    NOT NULL,
    at          BIGINT  NOT NULL,
    PRIMARY KEY (proposal_id, org_id)
);
