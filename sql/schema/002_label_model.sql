-- kdstore schema, version 2: the label-free label model (Dawid-Skene EM run as SQL, kdstore/labelmodel.py).
-- One row per fit in kd.label_model_runs (its run_id is also a kd.runs row, kind 'label_model');
-- the fitted parameters and the posteriors of the fit examples hang off run_id.
-- Symbols of voted_label_id: a label id, or -1 = abstained (only when abstains are an outcome of
-- the model, abstain = 'observe' | 'propensity'), or -2 = "none of its labels" (a binary or
-- multilabel teacher whose decision is negative).
CREATE TABLE kd.label_model_runs (
    run_id INTEGER NOT NULL,
    model VARCHAR NOT NULL CHECK (model IN ('one_coin', 'class_conditional')),
    abstain VARCHAR NOT NULL CHECK (abstain IN ('ignore', 'observe', 'propensity')),
    votes VARCHAR NOT NULL CHECK (votes IN ('hard', 'soft')),
    init VARCHAR NOT NULL CHECK (init IN ('majority', 'valid')),
    class_prior VARCHAR NOT NULL CHECK (class_prior IN ('fit', 'valid', 'uniform')),
    fit_splits VARCHAR NOT NULL,          -- comma-separated splits whose examples the EM fitted
    smoothing DOUBLE NOT NULL,            -- Dirichlet pseudo-count per symbol of every confusion row
    prior_smoothing DOUBLE NOT NULL,      -- Dirichlet pseudo-count per class of the class prior
    tol DOUBLE NOT NULL,
    max_iter INTEGER NOT NULL,
    seed BIGINT,
    iterations INTEGER NOT NULL,
    converged BOOLEAN NOT NULL,
    log_likelihood DOUBLE[] NOT NULL,     -- after each iteration (smoothing terms not included)
    n_examples BIGINT NOT NULL,
    n_teachers INTEGER NOT NULL,
    created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
);

-- P(true label) of the fitted model (the class prior).
CREATE TABLE kd.label_model_priors (
    run_id INTEGER NOT NULL,
    label_id INTEGER NOT NULL,
    prior DOUBLE NOT NULL
);

-- The fitted confusion rows: P(teacher outputs voted_label_id | true label), one row per teacher x
-- true label x symbol of the teacher; each (run, teacher, true label) sums to 1. For the one-coin
-- model these rows are expanded from the teacher's single accuracy.
CREATE TABLE kd.label_model_accuracy (
    run_id INTEGER NOT NULL,
    teacher_id INTEGER NOT NULL,
    true_label_id INTEGER NOT NULL,
    voted_label_id INTEGER NOT NULL,
    prob DOUBLE NOT NULL
);

-- Posterior P(label | outputs) of every example the EM fitted, at the last iteration.
CREATE TABLE kd.label_model_fit_posteriors (
    run_id INTEGER NOT NULL,
    example_id BIGINT NOT NULL,
    label_id INTEGER NOT NULL,
    posterior DOUBLE NOT NULL
);
