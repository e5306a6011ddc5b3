-- kdstore schema, version 1. Applied once, in one transaction, when a store is first opened.
-- The store contract is documented in DESIGN.md ("Store contract"); physical layout notes:
--   * kd.scores is the physical home of teacher outputs: one row per teacher x example holding a
--     FLOAT[] of scores aligned with kd.teacher_labels.output_index (NULL element = no opinion on
--     that label). Measured: 3.4 bytes/output on disk, ~30M outputs/s ingest; see docs/design.md.
--   * kd.outputs is the analyst-facing long view over it (teacher_id, example_id, label_id, score).
-- No PRIMARY KEY / UNIQUE indexes on bulk tables: kdstore validates keys in ingest (faster, and
-- DuckDB's ART indexes cost memory on 100M-row tables).
CREATE SCHEMA IF NOT EXISTS kd;
CREATE SCHEMA IF NOT EXISTS features;

CREATE TABLE kd.meta (key VARCHAR NOT NULL, value VARCHAR NOT NULL);

CREATE TABLE kd.labels (label_id INTEGER NOT NULL, name VARCHAR NOT NULL);

CREATE TABLE kd.examples (
    example_id BIGINT NOT NULL,
    split VARCHAR NOT NULL CHECK (split IN ('train', 'valid', 'test')),
    slice VARCHAR
);

CREATE TABLE kd.gold (example_id BIGINT NOT NULL, label_id INTEGER NOT NULL);

CREATE TABLE kd.weak (
    example_id BIGINT NOT NULL,
    label_id INTEGER NOT NULL,
    source VARCHAR NOT NULL,
    value DOUBLE NOT NULL
);

CREATE TABLE kd.teachers (
    teacher_id INTEGER NOT NULL,
    name VARCHAR NOT NULL,
    kind VARCHAR NOT NULL,           -- onnx | http | stored
    uri VARCHAR,
    input_type VARCHAR,
    output_type VARCHAR NOT NULL CHECK (
        output_type IN ('binary', 'multiclass', 'multilabel', 'vote', 'regression', 'embedding')
    ),
    fingerprint VARCHAR,
    threshold DOUBLE,                -- per-teacher decision threshold override (NULL = setting)
    created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
);

CREATE TABLE kd.teacher_labels (
    teacher_id INTEGER NOT NULL,
    output_index INTEGER NOT NULL,
    label_id INTEGER NOT NULL
);

CREATE TABLE kd.scores (teacher_id INTEGER NOT NULL, example_id BIGINT NOT NULL, scores FLOAT[] NOT NULL);

CREATE TABLE kd.embeddings (teacher_id INTEGER NOT NULL, example_id BIGINT NOT NULL, vector FLOAT[] NOT NULL);

CREATE TABLE kd.settings (name VARCHAR NOT NULL, value DOUBLE NOT NULL, doc VARCHAR);

CREATE TABLE kd.feature_sources (
    name VARCHAR NOT NULL,
    kind VARCHAR NOT NULL,           -- table (copied into the store) | parquet | query
    uri VARCHAR,
    columns VARCHAR NOT NULL,        -- JSON: [{"name": ..., "type": ...}]
    created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
);

CREATE TABLE kd.runs (
    run_id INTEGER NOT NULL,
    kind VARCHAR NOT NULL,
    params JSON,
    metrics JSON,
    created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
);

CREATE TABLE kd.models (
    model_id INTEGER NOT NULL,
    name VARCHAR NOT NULL,
    kind VARCHAR NOT NULL,
    run_id INTEGER,
    params JSON,
    metrics JSON,
    created_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
    onnx BLOB
);

CREATE TABLE kd.trust (
    teacher_id INTEGER NOT NULL,
    example_id BIGINT NOT NULL,
    label_id INTEGER NOT NULL,
    p_correct DOUBLE NOT NULL,
    model_id INTEGER NOT NULL
);

CREATE TABLE kd.targets (
    run_id INTEGER NOT NULL,
    example_id BIGINT NOT NULL,
    label_id INTEGER NOT NULL,
    target DOUBLE NOT NULL,
    weight DOUBLE NOT NULL,
    teacher_id INTEGER,              -- NULL for gold rows
    rule VARCHAR NOT NULL
);

-- The logical long contract over the physical wide table. No row = the teacher abstained.
CREATE VIEW kd.outputs AS
SELECT s.teacher_id, s.example_id, tl.label_id, s.score
FROM (
    SELECT teacher_id, example_id,
           UNNEST(range(len(scores))) AS output_index,
           UNNEST(scores) AS score
    FROM kd.scores
) AS s
JOIN kd.teacher_labels AS tl
  ON tl.teacher_id = s.teacher_id AND tl.output_index = s.output_index
WHERE s.score IS NOT NULL;
