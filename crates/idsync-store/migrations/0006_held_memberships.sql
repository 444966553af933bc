-- Mass membership removals are held too: an approval covers exactly the held plan's removals
-- (target, lower-case group, account key; JSON array). NULL in runs held before this (they
-- named no removals, and approvals of them cover none).
ALTER TABLE runs ADD COLUMN held_memberships TEXT;
