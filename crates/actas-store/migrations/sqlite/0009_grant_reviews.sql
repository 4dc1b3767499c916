-- Access recertification: when each grant was last confirmed by a director (its review
-- date counts from here), and by whom. A new or changed grant counts as reviewed then.
ALTER TABLE allow_list ADD COLUMN reviewed_at INTEGER;
ALTER TABLE allow_list ADD COLUMN reviewed_by INTEGER REFERENCES staff(id);
UPDATE allow_list SET reviewed_at = CAST(strftime('%s', 'now') AS INTEGER) * 1000, reviewed_by = granted_by
 WHERE reviewed_at IS NULL;
