-- The search box finds a reference typed without its prefix ("05461673" for "PRK-05461673"):
-- the part of the lower-cased reference after its first hyphen (the whole of it when there is
-- none), per service. The search's statements write the same expression (src/store/search).
CREATE INDEX journeys_service_reference_tail
    ON journeys (service_id, substr(reference_key, instr(reference_key, '-') + 1));

-- ...and a case reference typed for a refund, in any case.
CREATE INDEX refund_requests_service_case
    ON refund_requests (service_id, lower(case_reference));

-- Answers a person has given on one step of a form and not yet confirmed: the step after is
-- read by GET (post/redirect/get), so the browser's Back never offers to send a form again.
-- Bound to the person; kept for an hour, deleted when used or when the next one is kept.
CREATE TABLE form_drafts (
    draft_key   TEXT    PRIMARY KEY,
    staff_id    INTEGER  NOT NULL REFERENCES staff (id),
    kind        TEXT    NOT NULL,
    body        TEXT    NOT NULL,
    expires_at  INTEGER  NOT NULL
);
CREATE INDEX form_drafts_expiry ON form_drafts (expires_at);
