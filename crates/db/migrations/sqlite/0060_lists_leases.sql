-- The push lease of an instance (one writer per instance: a push run or a plan) in a table of its
-- own. It lived in lists_locks under the reserved domain '#push-lease', with the holder in
-- created_by and the expiry in created_at. A lease held during the upgrade is dropped: its
-- holder finds it gone at its next renewal and stops, and its job is retried. Keep ../postgres/
-- and ../sqlite/ in step.

CREATE TABLE lists_leases (
    org_id     BIGINT  NOT NULL PRIMARY KEY REFERENCES organisations (id) ON DELETE CASCADE,
    holder     TEXT    NOT NULL,
    expires_at BIGINT  NOT NULL
);

DELETE FROM lists_locks WHERE domain = '#push-lease';
