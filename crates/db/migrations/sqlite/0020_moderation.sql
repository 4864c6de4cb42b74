-- The moderation co-op (issue 4): which co-op moderates which instance (with the instance's
-- settings), the instance's rules, reports copied from the instances (with their statuses and
-- media bytes), cases (one open case per instance and reported account; what the queue sorts
-- and filters on is denormalised into the case row), decisions and their delivery steps,
-- escalations, and ingestion errors. Keep this file and ../postgres/0020_moderation.sql in step.

CREATE TABLE moderation_links (
    instance_id   BIGINT  PRIMARY KEY REFERENCES instances (id) ON DELETE CASCADE,
    coop_org_id   BIGINT  NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    settings      TEXT    NOT NULL,
    created_by    BIGINT,
    created_at    BIGINT  NOT NULL,
    updated_at    BIGINT  NOT NULL
);
CREATE INDEX moderation_links_coop ON moderation_links (coop_org_id);

CREATE TABLE mod_rules (
    instance_id BIGINT  NOT NULL REFERENCES instances (id) ON DELETE CASCADE,
    rule_id     TEXT    NOT NULL,
    text        TEXT    NOT NULL,
    hint        TEXT    NOT NULL,
    position    BIGINT  NOT NULL,
    fetched_at  BIGINT  NOT NULL,
    PRIMARY KEY (instance_id, rule_id)
);

CREATE TABLE mod_sync_state (
    instance_id   BIGINT  PRIMARY KEY REFERENCES instances (id) ON DELETE CASCADE,
    high_water    BIGINT  NOT NULL DEFAULT 0,
    last_sync_at  BIGINT,
    last_full_at  BIGINT,
    last_error    TEXT,
    runs          BIGINT  NOT NULL DEFAULT 0
);

CREATE TABLE mod_cases (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    instance_id       BIGINT  NOT NULL REFERENCES instances (id) ON DELETE CASCADE,
    coop_org_id       BIGINT  REFERENCES organisations (id) ON DELETE SET NULL,
    target_account_id TEXT    NOT NULL,
    target_acct       TEXT    NOT NULL,
    target_remote     BOOLEAN NOT NULL,
    state             TEXT    NOT NULL CHECK (state IN ('open', 'awaiting_approval', 'escalated', 'closed')),
    outcome           TEXT    CHECK (outcome IN ('decided', 'resolved_on_instance')),
    category          TEXT    NOT NULL,
    severity          BIGINT  NOT NULL,
    language          TEXT,
    opened_at         BIGINT  NOT NULL,
    last_report_at    BIGINT  NOT NULL,
    sla_due_at        BIGINT  NOT NULL,
    report_count      BIGINT  NOT NULL,
    open_report_count BIGINT  NOT NULL,
    claimed_by        BIGINT  REFERENCES accounts (id) ON DELETE SET NULL,
    claimed_at        BIGINT,
    claim_expires_at  BIGINT,
    created_at        BIGINT  NOT NULL,
    updated_at        BIGINT  NOT NULL,
    closed_at         BIGINT
);
CREATE UNIQUE INDEX mod_cases_one_open ON mod_cases (instance_id, target_account_id)
    WHERE state IN ('open', 'awaiting_approval', 'escalated');
CREATE INDEX mod_cases_queue ON mod_cases (coop_org_id, state, sla_due_at, severity DESC, id);
CREATE INDEX mod_cases_queue_instance ON mod_cases (coop_org_id, state, instance_id, sla_due_at, severity DESC, id);
CREATE INDEX mod_cases_queue_category ON mod_cases (coop_org_id, state, category, sla_due_at, severity DESC, id);
CREATE INDEX mod_cases_queue_language ON mod_cases (coop_org_id, state, language, sla_due_at, severity DESC, id);
CREATE INDEX mod_cases_instance ON mod_cases (instance_id, state, sla_due_at, severity DESC, id);
CREATE INDEX mod_cases_acct ON mod_cases (target_acct);
CREATE INDEX mod_cases_claims ON mod_cases (claim_expires_at) WHERE claimed_by IS NOT NULL;

-- Filter tags of a case: `all`, `cat:<category>`, `rule:<instance>:<rule id>` and `lang:<code>`
-- (copied from its reports), and their counts per (instance, case state), kept by triggers so that
-- the queue's counts do not scan the cases.
CREATE TABLE mod_case_tags (
    case_id     BIGINT  NOT NULL REFERENCES mod_cases (id) ON DELETE CASCADE,
    tag         TEXT    NOT NULL,
    PRIMARY KEY (case_id, tag)
);
CREATE INDEX mod_case_tags_tag ON mod_case_tags (tag, case_id);

CREATE TABLE mod_case_counts (
    instance_id BIGINT  NOT NULL,
    state       TEXT    NOT NULL,
    tag         TEXT    NOT NULL,
    n           BIGINT  NOT NULL,
    PRIMARY KEY (instance_id, state, tag)
);

CREATE TRIGGER mod_case_tags_count_insert AFTER INSERT ON mod_case_tags
BEGIN
    INSERT OR IGNORE INTO mod_case_counts (instance_id, state, tag, n)
        SELECT c.instance_id, c.state, NEW.tag, 0 FROM mod_cases c WHERE c.id = NEW.case_id;
    UPDATE mod_case_counts SET n = n + 1
        WHERE tag = NEW.tag
          AND instance_id = (SELECT c.instance_id FROM mod_cases c WHERE c.id = NEW.case_id)
          AND state = (SELECT c.state FROM mod_cases c WHERE c.id = NEW.case_id);
END;

CREATE TRIGGER mod_case_tags_count_delete AFTER DELETE ON mod_case_tags
BEGIN
    UPDATE mod_case_counts SET n = n - 1
        WHERE tag = OLD.tag
          AND instance_id = (SELECT c.instance_id FROM mod_cases c WHERE c.id = OLD.case_id)
          AND state = (SELECT c.state FROM mod_cases c WHERE c.id = OLD.case_id);
END;

CREATE TRIGGER mod_cases_count_state AFTER UPDATE OF state ON mod_cases
WHEN OLD.state <> NEW.state
BEGIN
    UPDATE mod_case_counts SET n = n - 1
        WHERE instance_id = OLD.instance_id AND state = OLD.state
          AND tag IN (SELECT t.tag FROM mod_case_tags t WHERE t.case_id = OLD.id);
    INSERT OR IGNORE INTO mod_case_counts (instance_id, state, tag, n)
        SELECT NEW.instance_id, NEW.state, t.tag, 0 FROM mod_case_tags t WHERE t.case_id = NEW.id;
    UPDATE mod_case_counts SET n = n + 1
        WHERE instance_id = NEW.instance_id AND state = NEW.state
          AND tag IN (SELECT t.tag FROM mod_case_tags t WHERE t.case_id = NEW.id);
END;

CREATE TABLE mod_reports (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    instance_id         BIGINT  NOT NULL REFERENCES instances (id) ON DELETE CASCADE,
    remote_id           TEXT    NOT NULL,
    remote_num          BIGINT  NOT NULL,
    case_id             BIGINT  NOT NULL REFERENCES mod_cases (id) ON DELETE CASCADE,
    category            TEXT    NOT NULL,
    rule_ids            TEXT    NOT NULL,
    comment             TEXT    NOT NULL,
    forwarded           BOOLEAN NOT NULL,
    action_taken        BOOLEAN NOT NULL,
    action_taken_at     TEXT,
    assigned_acct       TEXT,
    remote_created_at   TEXT,
    remote_updated_at   TEXT,
    created_ms          BIGINT  NOT NULL,
    target_account_id   TEXT    NOT NULL,
    target_acct         TEXT    NOT NULL,
    target_domain       TEXT,
    reporter_account_id TEXT    NOT NULL,
    reporter_acct       TEXT    NOT NULL,
    reporter_domain     TEXT,
    first_seen_at       BIGINT  NOT NULL,
    last_seen_at        BIGINT  NOT NULL,
    UNIQUE (instance_id, remote_id)
);
CREATE INDEX mod_reports_case ON mod_reports (case_id);
CREATE INDEX mod_reports_open ON mod_reports (instance_id, action_taken, remote_num);

CREATE TABLE mod_statuses (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    report_id     BIGINT  NOT NULL REFERENCES mod_reports (id) ON DELETE CASCADE,
    remote_id     TEXT    NOT NULL,
    url           TEXT,
    content       TEXT    NOT NULL,
    spoiler_text  TEXT    NOT NULL,
    language      TEXT,
    sensitive     BOOLEAN NOT NULL,
    created_at    TEXT,
    UNIQUE (report_id, remote_id)
);

CREATE TABLE mod_media (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    status_id     BIGINT  NOT NULL REFERENCES mod_statuses (id) ON DELETE CASCADE,
    remote_id     TEXT    NOT NULL,
    kind          TEXT    NOT NULL,
    url           TEXT,
    preview_url   TEXT,
    description   TEXT,
    copy_state    TEXT    NOT NULL CHECK (copy_state IN ('pending', 'copied', 'failed', 'too_large')),
    copy_error    TEXT,
    content_type  TEXT,
    bytes         BLOB,
    size          BIGINT,
    UNIQUE (status_id, remote_id)
);
CREATE INDEX mod_media_pending ON mod_media (copy_state);

CREATE TABLE mod_decisions (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    case_id        BIGINT  NOT NULL REFERENCES mod_cases (id) ON DELETE CASCADE,
    instance_id    BIGINT  NOT NULL REFERENCES instances (id) ON DELETE CASCADE,
    action         TEXT    NOT NULL,
    rule_ids       TEXT    NOT NULL,
    user_note      TEXT,
    template       TEXT,
    private_note   TEXT    NOT NULL,
    notify_user    BOOLEAN NOT NULL,
    decided_by     BIGINT  REFERENCES accounts (id) ON DELETE SET NULL,
    decided_at     BIGINT  NOT NULL,
    state          TEXT    NOT NULL CHECK (state IN ('awaiting_approval', 'rejected', 'pending', 'delivered', 'failed')),
    reviewed_by    BIGINT  REFERENCES accounts (id) ON DELETE SET NULL,
    reviewed_at    BIGINT,
    review_note    TEXT,
    failure        TEXT,
    delivered_at   BIGINT
);
CREATE INDEX mod_decisions_case ON mod_decisions (case_id);
CREATE INDEX mod_decisions_state ON mod_decisions (state, instance_id);

CREATE TABLE mod_delivery_steps (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    decision_id   BIGINT  NOT NULL REFERENCES mod_decisions (id) ON DELETE CASCADE,
    position      BIGINT  NOT NULL,
    kind          TEXT    NOT NULL CHECK (kind IN ('action', 'resolve')),
    report_id     BIGINT  NOT NULL REFERENCES mod_reports (id) ON DELETE CASCADE,
    state         TEXT    NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts      BIGINT  NOT NULL DEFAULT 0,
    last_error    TEXT,
    updated_at    BIGINT  NOT NULL,
    UNIQUE (decision_id, position)
);

CREATE TABLE mod_escalations (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    case_id      BIGINT  NOT NULL REFERENCES mod_cases (id) ON DELETE CASCADE,
    instance_id  BIGINT  NOT NULL REFERENCES instances (id) ON DELETE CASCADE,
    note         TEXT    NOT NULL,
    escalated_by BIGINT  REFERENCES accounts (id) ON DELETE SET NULL,
    escalated_at BIGINT  NOT NULL
);
CREATE INDEX mod_escalations_instance ON mod_escalations (instance_id, escalated_at);

CREATE TABLE mod_ingest_errors (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    instance_id  BIGINT  NOT NULL REFERENCES instances (id) ON DELETE CASCADE,
    source       TEXT    NOT NULL,
    remote_id    TEXT,
    message      TEXT    NOT NULL,
    at           BIGINT  NOT NULL
);
CREATE INDEX mod_ingest_errors_instance ON mod_ingest_errors (instance_id, at);
