#!/usr/bin/env bash
# Retrain the bundled zoo models end to end on simulated data, evaluate them on pairs from seeds
# never used in training, and publish them into models/ with label `stable`.
#
#   tools/retrain_bundled.sh [WORKDIR] [SAMPLE...]     (default: ../semzoo-runs, all three models)
#
# SAMPLE is gold-on-carbon, hydrogel or general; naming some retrains only those (e.g.
# `tools/retrain_bundled.sh ../semzoo-runs general` retrains general alone, from the
# gold-on-carbon version that is stable in models/).
#
# Resumable: a step whose output exists is skipped, and training continues its run with --resume
# (it checkpoints every 250 steps and on Ctrl-C). STEPS_gold_on_carbon / STEPS_hydrogel override
# the generator steps (default: the small preset's). On this repository's 2-core CPU the small
# preset runs at about 2.5-4 generator steps/s (general, one run alone; 1,500 steps in 6-10 min).
#
# general (issue 12) is trained after the specimen models, from gold-on-carbon's stable version,
# on the real micrographs of $SEM_TRAIN (default ../shared/sem-train; never copied into the
# repository) plus simulated HR images of both specimens, all HR-only; the GaAs nanomembranes
# are kept out of training and measured with `semzoo evaluate --hr-only` (GENERAL=0 skips the
# stage even when named); STEPS_general / STEPS_general_2 / ... / STEPS_general_6 override its
# six stages' 2000 / 1500 / 1500 / 1500 / 1500 / 6000 steps (the last four on records that keep
# the HR's own noise; the fourth, fifth and sixth, warm restarts of the third's cosine, made
# general v3, v4, v5).
#
# Continuation (how gold-on-carbon v2 was made): CONTINUE_gold_on_carbon="gold-on-carbon:1 4600"
# skips the from-scratch run and trains run-$sample-cont from that version of models/ for 4600
# steps with the settings in CONTINUE_SETTINGS (an active discriminator: beta 1, D learning rate
# equal to G's, cosine decay of both), then evaluates and publishes it like a fresh run.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-"$repo/../semzoo-runs"}
shift || true
requested=("${@:-gold-on-carbon hydrogel general}")
samples=() run_general=0
for name in ${requested[@]}; do
  case $name in
    general) run_general=1 ;;
    gold-on-carbon|hydrogel) samples+=("$name") ;;
    *) echo "retrain_bundled.sh: unknown model '$name' (gold-on-carbon, hydrogel or general)" >&2; exit 2 ;;
  esac
done
[ "${GENERAL:-1}" = 0 ] && run_general=0
semzoo=${SEMZOO:-semzoo}
mkdir -p "$work"
cd "$work"

CONTINUE_SETTINGS=${CONTINUE_SETTINGS:-"--set beta=1.0 --set d_learning_rate=2e-4 --set lr_schedule=cosine --set lr_final_fraction=0.1"}
declare -A train_seed=([gold-on-carbon]=1000 [hydrogel]=2000)
declare -A test_seed=([gold-on-carbon]=9000 [hydrogel]=9100)

for sample in ${samples[@]+"${samples[@]}"}; do
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

if [ "$run_general" = 1 ]; then
  sem_train=${SEM_TRAIN:-"$repo/../shared/sem-train"}
  python=${PYTHON:-python3}
  # The real training images plus their magnified views x2, x3, x4 (oversampled fields, the
  # regime of high-magnification micrographs the originals lack), 2+2 simulated HR images.
  [ -d real ] || "$python" "$repo/tools/stage_real_images.py" "$sem_train" real 2 3 4
  [ -d sim-gold ] || "$semzoo" simulate sim-gold --sample gold-on-carbon --pairs 2 --seed 3000
  [ -d sim-hydrogel ] || "$semzoo" simulate sim-hydrogel --sample hydrogel --pairs 2 --seed 4000
  if [ ! -d raw-general ]; then
    mkdir -p raw-general/hr
    cp real/train/hr/*.tif raw-general/hr/
    cp real/train/sources.json raw-general/
    for s in gold hydrogel; do for f in sim-$s/hr/*.tif; do cp "$f" "raw-general/hr/sim-$s""__$(basename "$f")"; done; done
  fi
  [ -d data-general ] || "$semzoo" prepare raw-general --out data-general --records-per-image 2 \
    --val-fraction 0.05 --sample-type general
  # The same images as records that keep the HR's own noise (the exact record of a stepping
  # scan at twice the pitch), for the third stage.
  [ -d data-general-ns ] || "$semzoo" prepare raw-general --out data-general-ns --records-per-image 2 \
    --val-fraction 0.05 --sample-type general --no-noise-split
  # Two stages: from gold-on-carbon with a weak adversarial term, then a weaker one (a general
  # model must not invent texture on specimens it has not seen).
  stage_one=run-general-1 stage_two=run-general
  if [ ! -f $stage_one/generator.keras ]; then
    if [ -d $stage_one ]; then
      "$semzoo" train data-general --out $stage_one --sample-type general --resume
    else
      "$semzoo" train data-general --out $stage_one --sample-type general --steps "${STEPS_general:-2000}" \
        --init-from gold-on-carbon --zoo "$repo/models" --set beta=0.2 --set lr_schedule=cosine \
        --set lr_final_fraction=0.1
    fi
  fi
  # Later stages: each starts from the previous one's generator (published to a staging zoo)
  # with beta 0.05 and a fresh cosine: DATA RUN PREVIOUS STEPS.
  later_stage() {
    local data=$1 run=$2 previous=$3 steps=$4
    [ -f "$run/generator.keras" ] && return 0
    rm -rf "stage-$previous"
    "$semzoo" publish "$previous" --name general --zoo "stage-$previous"
    if [ -d "$run" ]; then
      "$semzoo" train "$data" --out "$run" --sample-type general --resume
    else
      "$semzoo" train "$data" --out "$run" --sample-type general --steps "$steps" \
        --init-from general:1 --zoo "stage-$previous" --set beta=0.05 --set lr_schedule=cosine \
        --set lr_final_fraction=0.1
    fi
  }
  later_stage data-general $stage_two $stage_one "${STEPS_general_2:-1500}"
  # Third stage (general v2): from stage two on the records with the HR's own noise.
  stage_three=run-general-3
  later_stage data-general-ns $stage_three $stage_two "${STEPS_general_3:-1500}"
  # Fourth stage (general v3): the third again, from its end, for as many steps (a warm restart).
  stage_four=run-general-4
  later_stage data-general-ns $stage_four $stage_three "${STEPS_general_4:-1500}"
  # Fifth stage (general v4): a second warm restart.
  stage_five=run-general-5
  later_stage data-general-ns $stage_five $stage_four "${STEPS_general_5:-1500}"
  # Sixth stage (general v5): a third warm restart, four times as long.
  stage_six=run-general-6
  later_stage data-general-ns $stage_six $stage_five "${STEPS_general_6:-6000}"
  rm -rf stage-zoo report-general
  "$semzoo" publish $stage_six --name general --zoo stage-zoo
  "$semzoo" evaluate --hr-only real/heldout/hr --model general --zoo stage-zoo \
    --report report-general
  "$semzoo" publish $stage_six --name general --zoo "$repo/models" --label stable \
    --evaluation report-general/results.json
fi
"$semzoo" zoo config --zoo "$repo/models"
"$semzoo" zoo list --zoo "$repo/models"
