-- Service settings pages and the audit view.
-- A service's deep link into its case-management or CRM system, e.g.
-- https://crm.example.gov/cases/{case_ref} (NULL: no links). Checked when saved
-- (src/integrations/deep_link.rs).
ALTER TABLE services ADD COLUMN deep_link_template TEXT;

-- The audit view searches by person (the actor's label, an email address for staff),
-- newest first.
CREATE INDEX audit_log_actor_label ON audit_log (actor_label, seq);
