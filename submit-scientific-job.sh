#!/usr/bin/env bash
# Submit the MPI solver as a multi-node AWS Batch job: the recipe's documented command line.
# Everything is forwarded to `python -m jobs submit`, which validates the values, so this
# script only maps the recipe's flags and finds a Python that has the project's packages.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

usage() {
  cat <<'USAGE'
Usage: submit-scientific-job.sh --job-name NAME --nodes N --vcpus V --memory MIB
                                [--input-path DIR] [--output-path DIR]
                                [--stage-in s3://BUCKET/PREFIX] [--stage-out s3://BUCKET/PREFIX]
                                [other `python -m jobs submit` flags] [-- COMMAND...]

Submit a multi-node MPI job to the stack's AWS Batch queue.

  --job-name NAME     up to 128 letters, digits, '-' and '_', starting alphanumeric
  --nodes N           number of nodes (1..1000; nodes x vcpus <= the stack's max_vcpus)
  --vcpus V           vCPUs per node, also the MPI ranks per node
  --memory MIB        memory per node in MiB (at least 4)
  --input-path DIR    input directory under the EFS mount /mnt/efs (sets INPUT_PATH)
  --output-path DIR   output parent directory under /mnt/efs; the run writes DIR/<job id>/
  --stage-in S3       copy s3://BUCKET/PREFIX (below the stack's data_input_prefix) to the
                      shared file system in a staging job first; the job reads the copy
                      (INPUT_PATH)
  --stage-out S3      when the job ends, copy DIR/<job id>/ to S3 (below data_output_prefix);
                      download it with: python -m jobs fetch JOB_ID
  -h, --help          show this help

Any other flag goes to `python -m jobs submit` unchanged, e.g. --wait, --dry-run,
--image-tag TAG, --timeout S, --attempts N, --job-queue NAME. Words after `--` replace the
job definition's command (default: python -m solver heat ...).

The queue and job definition come from --job-queue/--job-definition, else JOB_QUEUE_NAME /
JOB_DEFINITION_NAME, else the deployed stack's outputs. Region and credentials: AWS_REGION,
AWS_PROFILE as usual.

Example:
  ./submit-scientific-job.sh --job-name heat-4n --nodes 4 --vcpus 8 --memory 15000 \
      --input-path /mnt/efs/input --output-path /mnt/efs/runs --wait

Exit codes: 0 submitted (with --wait: the job SUCCEEDED), 1 AWS error or the job failed,
2 bad input (nothing submitted).
USAGE
}

forward=()
missing=(--job-name --nodes --vcpus --memory)
while (($#)); do
  case "$1" in
    -h | --help)
      usage
      exit 0
      ;;
    --job-name | --nodes | --vcpus | --memory | --input-path | --output-path)
      if (($# < 2)); then
        echo "submit-scientific-job.sh: error: $1 needs a value (see --help)" >&2
        exit 2
      fi
      missing=("${missing[@]/$1/}")
      forward+=("$1" "$2")
      shift 2
      ;;
    --job-name=* | --nodes=* | --vcpus=* | --memory=* | --input-path=* | --output-path=*)
      missing=("${missing[@]/${1%%=*}/}")
      forward+=("$1")
      shift
      ;;
    --)
      forward+=("$@")
      break
      ;;
    *)
      forward+=("$1")
      shift
      ;;
  esac
done

for flag in "${missing[@]}"; do
  if [[ -n "$flag" ]]; then
    echo "submit-scientific-job.sh: error: $flag is required (see --help)" >&2
    exit 2
  fi
done

python="python3"
if [[ -x "$here/.venv/bin/python" ]]; then
  python="$here/.venv/bin/python"
fi
export PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}"
exec "$python" -m jobs submit "${forward[@]}"
