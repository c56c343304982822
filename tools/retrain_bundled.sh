#!/usr/bin/env bash
# Retrain the bundled zoo models end to end on simulated data, evaluate them on pairs from seeds
# never used in training, and publish them into models/ with label `stable`.
#
#   tools/retrain_bundled.sh [WORKDIR] [SAMPLE...]     (default: ../semzoo-runs, both samples)
#
# Resumable: a step whose output exists is skipped, and training continues its run with --resume
# (it checkpoints every 250 steps and on Ctrl-C). STEPS_gold_on_carbon / STEPS_hydrogel override
# the generator steps (default: the small preset's). On this repository's 2-core CPU the small
# preset runs at about 0.6-1 generator steps/s per run; run it where the time is.
#
# Continuation (how gold-on-carbon v2 was made): CONTINUE_gold_on_carbon="gold-on-carbon:1 4600"
# skips the from-scratch run and trains run-$sample-cont from that version of models/ for 4600
# steps with the settings in CONTINUE_SETTINGS (an active discriminator: beta 1, D learning rate
# equal to G's, cosine decay of both), then evaluates and publishes it like a fresh run.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-"$repo/../semzoo-runs"}
shift || true
samples=("${@:-gold-on-carbon hydrogel}")
semzoo=${SEMZOO:-semzoo}
mkdir -p "$work"
cd "$work"

CONTINUE_SETTINGS=${CONTINUE_SETTINGS:-"--set beta=1.0 --set d_learning_rate=2e-4 --set lr_schedule=cosine --set lr_final_fraction=0.1"}
declare -A train_seed=([gold-on-carbon]=1000 [hydrogel]=2000)
declare -A test_seed=([gold-on-carbon]=9000 [hydrogel]=9100)

for sample in ${samples[@]}; do
  key=${sample//-/_}
  steps_var="STEPS_$key"
  steps=${!steps_var:-}
  continue_var="CONTINUE_$key"
  read -r cont_from cont_steps <<< "${!continue_var:-}"
  raw="raw-$sample" data="data-$sample" run="run-$sample"
  [ -n "${cont_from:-}" ] && run="run-$sample-cont"
  test_raw="test-$sample-raw" test_data="test-$sample"
  stage="stage-zoo"

  [ -d "$raw" ] || "$semzoo" simulate "$raw" --sample "$sample" --pairs 40 --seed "${train_seed[$sample]}"
  [ -d "$data" ] || "$semzoo" prepare "$raw" --out "$data"
  [ -d "$test_raw" ] || "$semzoo" simulate "$test_raw" --sample "$sample" --pairs 4 --seed "${test_seed[$sample]}"
  [ -d "$test_data" ] || "$semzoo" prepare "$test_raw" --out "$test_data" --val-fraction 0

  if [ ! -f "$run/generator.keras" ] && [ -n "${cont_from:-}" ]; then
    if [ -d "$run" ]; then
      "$semzoo" train "$data" --out "$run" --sample-type "$sample" --resume
    else
      # shellcheck disable=SC2086
      "$semzoo" train "$data" --out "$run" --sample-type "$sample" --steps "$cont_steps" \
        --init-from "$cont_from" --zoo "$repo/models" $CONTINUE_SETTINGS
    fi
  elif [ ! -f "$run/generator.keras" ]; then
    if [ -d "$run" ]; then
      "$semzoo" train "$data" --out "$run" --sample-type "$sample" --resume ${steps:+--steps "$steps"}
    else
      "$semzoo" train "$data" --out "$run" --sample-type "$sample" ${steps:+--steps "$steps"}
    fi
  fi

  # Evaluate through the same path users take: publish to a staging zoo, enhance, evaluate.
  rm -rf "$stage" "sr-$sample" "report-$sample"
  "$semzoo" publish "$run" --name "$sample" --zoo "$stage"
  "$semzoo" enhance "$test_data/registered/lr-native" -o "sr-$sample" --zoo "$stage" --model "$sample"
  "$semzoo" evaluate --input "$test_data/registered/lr-native" --output "sr-$sample" \
    --target "$test_data/registered/hr" --truth "$test_data/registered/truth.json" --report "report-$sample"

  "$semzoo" publish "$run" --name "$sample" --zoo "$repo/models" --label stable \
    --evaluation "report-$sample/results.json"
done
"$semzoo" zoo config --zoo "$repo/models"
"$semzoo" zoo list --zoo "$repo/models"
