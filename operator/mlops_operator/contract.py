"""What the operator, the workers and the model server agree on: env, MLflow names, tags, exit codes.

The worker runs in a Job pod and the operator reads its results back from MLflow, so every
name both sides use lives here and nowhere else.
"""

from __future__ import annotations

# -- configuration (env) ------------------------------------------------------------------------
ENV_TRACKING_URI = "MLFLOW_TRACKING_URI"
# The object a worker acts for, as JSON: {"apiVersion", "kind", "metadata": {namespace, name, uid,
# generation}, "spec": {...}} — the Dataset for `validate`, the TrainingRun for `train`.
ENV_OBJECT = "MLOPS_OBJECT"
# `train` only: the Dataset (same JSON shape) with "status": {"version": "sha256:..."} pinned.
ENV_DATASET = "MLOPS_DATASET"
# The Job name, so the operator can find the run the Job produced.
ENV_JOB_NAME = "MLOPS_JOB_NAME"
# A trial round's pods (worker `trial`): JSON {"round", "rounds", "budget", "candidates" (indices into the
# candidate list, null: all), "completions", "parentJob", "timeoutSeconds"}; the shard is JOB_COMPLETION_INDEX.
ENV_TRIAL = "MLOPS_TRIAL"
ENV_COMPLETION_INDEX = "JOB_COMPLETION_INDEX"  # set by the Job controller on every pod of an Indexed Job
# The refit after a trial search (worker `train`): JSON of the chosen grid point; no search runs in the pod.
ENV_PARAMS = "MLOPS_PARAMS"
ENV_FEEDBACK_MAX_AGE_S = "MLOPS_FEEDBACK_MAX_AGE_S"  # server: labels for older predictions are refused

# -- MLflow experiments -------------------------------------------------------------------------
EXPERIMENT_DATASETS = "mlops-datasets"
EXPERIMENT_TRAINING = "mlops-training"

# -- tags on runs (and, where noted, on registered model versions) ------------------------------
TAG_KIND = "mlops.dev/kind"  # Dataset | TrainingRun
TAG_NAMESPACE = "mlops.dev/namespace"
TAG_NAME = "mlops.dev/name"
TAG_UID = "mlops.dev/uid"  # also on model versions: which TrainingRun produced it
TAG_JOB = "mlops.dev/job"
TAG_OUTCOME = "mlops.dev/outcome"  # see OUTCOME_*
TAG_ERROR = "mlops.dev/error"  # one human-readable sentence when the outcome is failed
TAG_DATASET_VERSION = "mlops.dev/dataset-version"  # sha256:<hex> of the source bytes
TAG_VIOLATIONS = "mlops.dev/violations"  # JSON list of {column, rule, message}, at most MAX_VIOLATIONS
TAG_PROFILE_URI = "mlops.dev/profile-uri"  # runs:/<run_id>/reference_profile.json; also on model versions
TAG_REGISTERED_MODEL = "mlops.dev/registered-model"
TAG_REGISTERED_VERSION = "mlops.dev/registered-version"
TAG_TASK = "mlops.dev/task"  # classification | regression
TAG_BEST_PARAMS = "mlops.dev/best-params"  # JSON of the chosen grid point, when a search ran
# Trial searches (planning/trials.py, worker/trials.py): the parent run is the refit Job's run; each trial a child.
TAG_PARENT_RUN = "mlflow.parentRunId"  # MLflow's own tag: the UI nests child runs under their parent
TAG_ROLE = "mlops.dev/role"  # ROLE_PARENT | ROLE_TRIAL on the runs of a trial search
TAG_TRIAL_ROUND = "mlops.dev/trial-round"  # 0-based round of the search
TAG_TRIAL_CANDIDATE = "mlops.dev/trial-candidate"  # index into the candidate list (ParameterGrid/Sampler order)
TAG_TRIAL_PARAMS = "mlops.dev/trial-params"  # JSON of the candidate's grid point (types kept, unlike params)
ROLE_PARENT = "parent"
ROLE_TRIAL = "trial"
OUTCOME_TIMEOUT = "timeout"  # a trial over trials.trialTimeoutSeconds: finished, no score
CV_SCORE = "cv_score"  # mean over the folds (greater is better: errors negated); per fold cv_score_fold_<i>
# sha256 over the model's stored artifact files (modelformat.artifact_sha256); the server checks it before loading
TAG_MODEL_SHA256 = "mlops.dev/model-sha256"

# -- tags on registered models: who owns a model and who else may serve it (planning/ownership.py) --
TAG_OWNER_NAMESPACE = "mlops.dev/owner-namespace"  # written when the worker creates the model, or by `models adopt`
TAG_READER_NAMESPACES = "mlops.dev/reader-namespaces"  # comma-separated; set by the owner to share for serving

OUTCOME_VALID = "valid"
OUTCOME_INVALID = "invalid"
OUTCOME_SUCCEEDED = "succeeded"
OUTCOME_FAILED = "failed"

MAX_VIOLATIONS = 20

# -- artifacts ----------------------------------------------------------------------------------
PROFILE_ARTIFACT = "reference_profile.json"
MODEL_ARTIFACT_PATH = "model"

# -- exit codes ---------------------------------------------------------------------------------
# A permanent error (bad column, unknown estimator, invalid params, changed source): the Job's
# podFailurePolicy fails the Job at once instead of retrying what cannot succeed.
EXIT_PERMANENT = 2
# Anything else non-zero (I/O, registry unreachable) is retried up to the Job's backoffLimit.
EXIT_RETRYABLE = 1

CLASSIFICATION_METRICS = ("accuracy", "f1_macro", "roc_auc")
REGRESSION_METRICS = ("rmse", "mae", "r2")

# -- additions for the worker -------------------------------------------------------------------
TAG_ESTIMATOR = "mlops.dev/estimator"  # on training runs: the import path that was fitted

# -- labels and annotations on Kubernetes objects ---------------------------------------------------
MANAGED_BY = "mlops-operator"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_OWNER_KIND = "mlops.dev/owner-kind"  # on worker Jobs: the kind and name of the object they work for
LABEL_OWNER_NAME = "mlops.dev/owner-name"
LABEL_DEPLOYMENT = "mlops.dev/deployment"  # serving objects, and retraining runs: the Deployment behind them
LABEL_TRACK = "mlops.dev/track"  # stable | canary | shadow
# On shadow pods instead of LABEL_DEPLOYMENT, so that the Deployment's Service (which selects that) never sends
# users to the shadow: the shadow Service selects this.
LABEL_SHADOW_OF = "mlops.dev/shadow-of"
LABEL_MODEL_VERSION = "mlops.dev/model-version"  # on server pods: the registered version they serve
LABEL_TRAINING_RUN = "mlops.dev/training-run"
LABEL_DATASET = "mlops.dev/dataset"
LABEL_REGISTERED_MODEL = "mlops.dev/registered-model"
LABEL_TRIGGER = "mlops.dev/triggered-by"  # the first cause (drift, performance, schedule, newData) of a retraining run
ANNOTATION_SPEC_HASH = "mlops.dev/spec-hash"  # the desired spec's digest: unchanged children are never patched
ANNOTATION_DATASET_VERSION = "mlops.dev/dataset-version"
ANNOTATION_RUN_ID = "mlops.dev/mlflow-run-id"
# The uid of the object that created a child which carries no ownerReference (a retraining TrainingRun,
# a TrainingRun's ModelVersion: records that outlive their creator); read like a controller reference.
ANNOTATION_CONTROLLER_UID = "mlops.dev/controller-uid"
ANNOTATION_DRIFT_PREFIX = "mlops.dev/drift-"  # feature, method, score, window, deployment, version of a retraining
ANNOTATION_RETRAINING_CAUSES = "mlops.dev/retraining-causes"  # every cause of one decision: drift,schedule,...
ANNOTATION_PERFORMANCE_PREFIX = "mlops.dev/performance-"  # metric, value, labels, window of a degraded version
ANNOTATION_SCHEDULE_PREFIX = "mlops.dev/schedule-"  # fire-time, cron, time-zone of a scheduled retraining
ANNOTATION_NEW_DATA_PREFIX = "mlops.dev/new-data-"  # dataset, version, previous-version of a newData retraining
# A run with this annotation (RFC 3339) trains only on Dataset data checked at or after that time;
# the Dataset re-checks its source when asked so (drift-triggered runs carry it).
ANNOTATION_DATA_NOT_BEFORE = "mlops.dev/data-not-before"

# -- the model server's Prometheus metrics, as the operator queries them ----------------------------
# Labels: model, version, track, deployment, namespace (+ outcome on requests, feature/bin on drift).
METRIC_REQUESTS = "mlops_server_requests_total"
METRIC_DURATION = "mlops_server_request_duration_seconds"
METRIC_IN_FLIGHT = "mlops_server_requests_in_flight"  # gauge: admitted predictions not yet answered (HPA target)
METRIC_FEATURE_BINS = "mlops_server_feature_bin_total"
METRIC_FEATURE_NULLS = "mlops_server_feature_nulls_total"
# Labels for signed prediction ids (server/feedback.py). Labels: model, version, track, deployment (+ namespace
# from the scrape) where version and track are those in each id — a canary's prediction labelled through a
# stable pod counts for the canary — except on the rejected counter, which carries the refusing server's own.
METRIC_FEEDBACK = "mlops_server_feedback_total"  # classification: + outcome (FEEDBACK_CORRECT | FEEDBACK_INCORRECT)
METRIC_FEEDBACK_CONFUSION = "mlops_server_feedback_confusion_total"  # + true_class, predicted_class
# Regression, error = prediction - label: a histogram of |error| (its _sum and _count: the absolute-error sum and
# the number of labels), the squared-error sum, and the signed error as two monotonic sums (bias = (over - under)
# / count): a counter cannot go down, so the negative errors are summed apart.
METRIC_FEEDBACK_ABSOLUTE_ERROR = "mlops_server_feedback_absolute_error"
METRIC_FEEDBACK_SQUARED_ERROR = "mlops_server_feedback_squared_error_total"
METRIC_FEEDBACK_OVERPREDICTION = "mlops_server_feedback_overprediction_total"  # sum of error where error > 0
METRIC_FEEDBACK_UNDERPREDICTION = "mlops_server_feedback_underprediction_total"  # sum of -error where error < 0
METRIC_FEEDBACK_REJECTED = "mlops_server_feedback_rejected_total"  # + reason (server/feedback.py REASONS)
# Predictions answered without ids because minting them failed (the serving server's version and track).
METRIC_PREDICTION_IDS_FAILED = "mlops_server_prediction_ids_failed_total"
# The shadow step (server/shadow.py), counted by the stable servers that mirror: their own model, version, track
# and deployment, plus shadow_version (+ outcome on requests: compared, error, timeout, unreachable, dropped).
METRIC_SHADOW_REQUESTS = "mlops_server_shadow_requests_total"
METRIC_SHADOW_ROWS = "mlops_server_shadow_rows_total"
METRIC_SHADOW_AGREED_ROWS = "mlops_server_shadow_agreed_rows_total"
METRIC_SHADOW_RELATIVE_DIFFERENCE = "mlops_server_shadow_relative_difference_total"
FEEDBACK_CORRECT = "correct"
FEEDBACK_INCORRECT = "incorrect"
# The Secret of prediction-id keys only model servers mount (chart: feedback.secret), by key: the signing key
# and the previous one (verify only, for rotation). Jobs never see it.
FEEDBACK_SECRET_KEY = "key"
FEEDBACK_SECRET_PREVIOUS_KEY = "previous-key"
