-- Whether the last access check found what the moderation co-op needs (reports, accounts),
-- apart from the rest (domain blocks): an instance that grants Guildhall only the moderation
-- scopes can still be linked to a co-op. Existing rows take the overall result until their next
-- check. Keep ../postgres/ and ../sqlite/ in step.

ALTER TABLE instances ADD COLUMN check_moderation_ok BOOLEAN;
UPDATE instances SET check_moderation_ok = check_ok;
