-- Queue speed-ups (issue 4, benchmark): the queue's sort key (case state, SLA deadline,
-- severity) copied into the filter tags, so that "cases with rule / language T in state S,
-- most urgent first" is one index range (the rule and language filters walked the whole queue
-- probing the tags per case); and indexes for the counts of the unclaimed and age filters.
-- The copies are kept by triggers: a tag takes its case's key when inserted, and a change of
-- the key on the case is copied to its tags. Keep this file and ../postgres/0040_moderation_queue.sql
-- in step.

ALTER TABLE mod_case_tags ADD COLUMN state TEXT NOT NULL DEFAULT '';
ALTER TABLE mod_case_tags ADD COLUMN sla_due_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE mod_case_tags ADD COLUMN severity BIGINT NOT NULL DEFAULT 0;

UPDATE mod_case_tags SET (state, sla_due_at, severity) =
    (SELECT c.state, c.sla_due_at, c.severity FROM mod_cases c WHERE c.id = mod_case_tags.case_id);

CREATE INDEX mod_case_tags_queue ON mod_case_tags (tag, state, sla_due_at, severity DESC, case_id);

CREATE TRIGGER mod_case_tags_sort_key AFTER INSERT ON mod_case_tags
BEGIN
    UPDATE mod_case_tags SET (state, sla_due_at, severity) =
        (SELECT c.state, c.sla_due_at, c.severity FROM mod_cases c WHERE c.id = NEW.case_id)
        WHERE case_id = NEW.case_id AND tag = NEW.tag;
END;

CREATE TRIGGER mod_cases_tags_sort_key AFTER UPDATE OF state, sla_due_at, severity ON mod_cases
WHEN OLD.state <> NEW.state OR OLD.sla_due_at <> NEW.sla_due_at OR OLD.severity <> NEW.severity
BEGIN
    UPDATE mod_case_tags SET state = NEW.state, sla_due_at = NEW.sla_due_at, severity = NEW.severity
        WHERE case_id = NEW.id;
END;

-- Counts of the unclaimed filter (a case without a claim; expired claims are few and counted
-- through mod_cases_claims) and of the age filters.
CREATE INDEX mod_cases_unclaimed ON mod_cases (coop_org_id, state, sla_due_at) WHERE claimed_by IS NULL;
CREATE INDEX mod_cases_opened ON mod_cases (coop_org_id, state, opened_at);
