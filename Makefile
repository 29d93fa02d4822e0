# The two commands a newcomer needs:  `make run`  and  `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench system-deps clean train train-deps train-deps5 train-stage5 train-stage6 train-stage7

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

# Web service + job consumer on http://127.0.0.1:8000 (SQLite and ./var on their embedded default).
run: $(STAMP)
	$(BIN)/featherbeat serve

# System packages the tests drive for real (redis-server, chromium); installs only what is missing.
system-deps:
	bash scripts/system-deps.sh

test: $(STAMP) system-deps
	$(BIN)/ruff check src tests bench train
	$(BIN)/ruff format --check src tests bench train
	$(BIN)/mypy
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests bench train
	$(BIN)/ruff format --check src tests bench train
	$(BIN)/mypy

clean:
	rm -rf $(VENV) var .pytest_cache

# ---- the learned rhythm model (docs/model-card-rhythm.md) -----------------------------------
# torch lives in its own venv (the `train` extra): the product and CI never import it.
TRAIN_VENV := .venv-train
TRAIN_CLIPS ?= 3000
TRAIN_PER_PIECE ?= 4
TRAIN_STEPS1 ?= 5000
TRAIN_STEPS ?= 6000
TRAIN_STEPS3 ?= 6000
$(TRAIN_VENV)/.installed: pyproject.toml
	test -x $(TRAIN_VENV)/bin/python || $(PY) -m venv $(TRAIN_VENV)
	$(TRAIN_VENV)/bin/pip install -q -e '.[train]'
	touch $@

# fluidsynth renders the corpus with Debian's General MIDI soundfonts.
train-deps:
	command -v fluidsynth >/dev/null && test -e /usr/share/sounds/sf2/TimGM6mb.sf2 || \
	  (apt-get update -q && apt-get install -y -q fluidsynth fluid-soundfont-gm timgm6mb-soundfont)

# Rebuild the corpus and the weights from scratch, fixed seeds: the real compositions fetched
# at pinned commits (train/SOURCES.md), the procedural and the MIDI corpus rendered (two
# processes each), then three stages on one torch thread: TRAIN_STEPS1 steps from random
# weights (the first session's recipe), TRAIN_STEPS steps warm-started from its best validation
# with longer crops, a heavier downbeat loss and a fixed share of real-MIDI crops, and
# TRAIN_STEPS3 steps warm-started from stage 2's best at half the learning rate, whose last step
# (not its best validation: docs/model-card-rhythm.md says why) is copied into the package.
# Time and figures: docs/model-card-rhythm.md.
TRAIN_PY := OPENBLAS_NUM_THREADS=1 $(TRAIN_VENV)/bin/python
# $(call two_parts,COMMAND): COMMAND --part 0 and COMMAND --part 1 at once (one per core);
# a failure of either stops make (a bare `wait` would report success).
define two_parts
$(1) --part 0 & p=$$!; $(1) --part 1 && wait $$p
endef

train: $(TRAIN_VENV)/.installed train-deps
	rm -rf train/out && mkdir -p train/out
	$(TRAIN_PY) train/midi_corpus.py fetch --out train/out/midi
	$(call two_parts,$(TRAIN_PY) train/corpus.py --out train/out/corpus --clips $(TRAIN_CLIPS) \
	  --seed 1 --jobs 2)
	$(call two_parts,$(TRAIN_PY) train/midi_corpus.py render --midi train/out/midi \
	  --out train/out/corpus --per-piece $(TRAIN_PER_PIECE) --seed 3 --jobs 2)
	$(TRAIN_PY) train/train.py --corpus train/out/corpus --out train/out/stage1 \
	  --steps $(TRAIN_STEPS1) --minutes 100000 --batch 12 --crop 512 --lr 2e-3 \
	  --down-weight 1 --real-share 0 --val-every 400 --seed 7
	$(TRAIN_PY) train/train.py --corpus train/out/corpus --out train/out/stage2 \
	  --init train/out/stage1/rhythm_model.npz --steps $(TRAIN_STEPS) --minutes 100000 \
	  --lr 1e-3 --val-every 300 --seed 7
	$(TRAIN_PY) train/train.py --corpus train/out/corpus --out train/out/stage3 \
	  --init train/out/stage2/rhythm_model.npz --steps $(TRAIN_STEPS3) --minutes 100000 \
	  --batch 8 --crop 768 --lr 5e-4 --down-weight 2 --real-share 0.35 --val-every 400 --seed 7
	cp train/out/stage3/rhythm_model_last.npz src/featherbeat/analysis/rhythm/rhythm_model.npz

# Stage 5 (measured, not packaged: docs/model-card-rhythm.md): more real compositions into
# train/out/corpus5 (a third soundfont over the MIDI pieces, the Nottingham Music Database's folk
# tunes through abc2midi, Mutopia's LilyPond pieces), then a fine-tune of the packaged weights
# on train/out/corpus (from `make train`) and corpus5. Writes train/out/stage5; copies nothing.
TRAIN_STEPS5 ?= 7000
train-deps5: train-deps
	command -v abc2midi >/dev/null && command -v lilypond >/dev/null && \
	  test -e /usr/share/sounds/sf3/MuseScore_General.sf3 || (apt-get update -q && \
	  apt-get install -y -q abcmidi lilypond musescore-general-soundfont)

train-stage5: $(TRAIN_VENV)/.installed train-deps5
	test -d train/out/corpus || (echo "run make train first (train/out/corpus)" >&2; exit 1)
	$(TRAIN_PY) train/sf3_to_sf2.py /usr/share/sounds/sf3/MuseScore_General.sf3 \
	  train/out/MuseScore_General.sf2
	$(TRAIN_PY) train/abc_corpus.py fetch --out train/out/abc
	$(TRAIN_PY) train/abc_corpus.py convert --abc train/out/abc --out train/out/abcmidi --seed 11
	$(TRAIN_PY) train/mutopia_corpus.py fetch --out train/out/mutopia
	$(TRAIN_PY) train/mutopia_corpus.py compile --src train/out/mutopia \
	  --out train/out/mutopiamidi --minutes 100000 --seed 13
	$(TRAIN_PY) train/mutopia_corpus.py tidy --raw train/out/mutopiamidi \
	  --src train/out/mutopia --out train/out/mutopiamidi2 --seed 13
	$(TRAIN_PY) train/midi_corpus.py render --midi train/out/midi --out train/out/corpus5 \
	  --per-piece 2 --seed 5 --prefix msgen --soundfont MuseScore
	$(TRAIN_PY) train/midi_corpus.py render --midi train/out/abcmidi --out train/out/corpus5 \
	  --per-piece 1 --seed 11 --prefix abc --shuffle
	$(TRAIN_PY) train/midi_corpus.py render --midi train/out/mutopiamidi2 --out train/out/corpus5 \
	  --per-piece 2 --seed 13 --prefix mutopia --shuffle
	$(TRAIN_PY) train/train.py --corpus train/out/corpus train/out/corpus5 --out train/out/stage5 \
	  --init src/featherbeat/analysis/rhythm/rhythm_model.npz --steps $(TRAIN_STEPS5) \
	  --minutes 100000 --batch 8 --crop 768 --lr 5e-4 --down-weight 2 --real-share 0.5 \
	  --val-every 500 --keep-all --seed 7

# Stage 6 (docs/model-card-rhythm.md): self-training on recorded music. Freely licensed game
# soundtracks from Debian main (train/SOURCES.md) are downloaded with apt-get download and
# unpacked under train/out/selftrain (nothing installed), labelled by the product's own
# trackers on the clean tracks (two processes), and the 30 s windows where the DSP and the
# learned readings agree are augmented into train/out/corpus6 (two processes); then a
# fine-tune of the packaged weights on train/out/corpus (from `make train`) and corpus6.
# Writes train/out/stage6; copies nothing.
TRAIN_STEPS6 ?= 7000
train-stage6: $(TRAIN_VENV)/.installed train-deps
	test -d train/out/corpus || (echo "run make train first (train/out/corpus)" >&2; exit 1)
	apt-get update -q
	$(TRAIN_PY) train/selftrain_corpus.py fetch --out train/out/selftrain
	$(call two_parts,$(TRAIN_PY) train/selftrain_corpus.py label --root train/out/selftrain --jobs 2)
	$(call two_parts,$(TRAIN_PY) train/selftrain_corpus.py build --root train/out/selftrain \
	  --out train/out/corpus6 --seed 17 --jobs 2)
	$(TRAIN_PY) train/train.py --corpus train/out/corpus train/out/corpus6 --out train/out/stage6 \
	  --init src/featherbeat/analysis/rhythm/rhythm_model.npz --steps $(TRAIN_STEPS6) \
	  --minutes 100000 --batch 8 --crop 768 --lr 5e-4 --down-weight 2 --real-share 0.25 \
	  --pseudo-share 0.35 --val-every 500 --keep-all --seed 7

# Stage 7 (docs/model-card-rhythm.md): more and other recordings for self-training. 25 more
# Debian main packages and two songs with vocals from public git repositories at pinned commits
# (train/SOURCES.md; MIRROR_ROOT, if set, is a folder of local git mirrors owner+name/repo,
# else blobless clones) go under train/out/selftrain7, are labelled by the product's trackers
# and filtered as in stage 6 into train/out/corpus8; then run 8a: stage 6a's fine-tune with
# corpus8 added. Needs train/out/corpus (`make train`) and train/out/corpus6
# (`make train-stage6`). Writes train/out/run8a; copies nothing.
MIRROR_ROOT ?=
train-stage7: $(TRAIN_VENV)/.installed train-deps
	test -d train/out/corpus && test -d train/out/corpus6 || \
	  (echo "run make train and make train-stage6 first" >&2; exit 1)
	apt-get update -q
	$(TRAIN_PY) train/selftrain_corpus.py fetch --set 7 --out train/out/selftrain7 \
	  $(if $(MIRROR_ROOT),--mirror-root $(MIRROR_ROOT))
	$(call two_parts,$(TRAIN_PY) train/selftrain_corpus.py label --root train/out/selftrain7 --jobs 2)
	$(call two_parts,$(TRAIN_PY) train/selftrain_corpus.py build --root train/out/selftrain7 \
	  --out train/out/corpus8 --seed 23 --jobs 2)
	$(TRAIN_PY) train/train.py --corpus train/out/corpus train/out/corpus6 train/out/corpus8 \
	  --out train/out/run8a --init src/featherbeat/analysis/rhythm/rhythm_model.npz \
	  --steps $(TRAIN_STEPS6) --minutes 100000 --batch 8 --crop 768 --lr 5e-4 --down-weight 2 \
	  --real-share 0.25 --pseudo-share 0.35 --val-every 500 --keep-all --seed 7
