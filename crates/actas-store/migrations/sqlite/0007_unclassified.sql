-- JSON paths the gateway saw that no masking rule classifies (so they were hidden by
-- default), counted so `actas policy unclassified` can list what to classify next.
CREATE TABLE unclassified_fields (
    path       TEXT PRIMARY KEY,
    seen       INTEGER NOT NULL,
    first_seen INTEGER NOT NULL,
    last_seen  INTEGER NOT NULL
);
