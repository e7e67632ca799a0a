"""StepSession: the generated C program driven one step at a time in one process, on the host and on
QEMU, gives exactly the outputs and instruction counts of the batch run over the same sequences."""

from __future__ import annotations

import numpy as np
import pytest

from edgegru.errors import EdgeGRUError
from edgegru.golden import initial_states, quantize_features
from edgegru.stream_loop import stream
from firmware_sim.codegen.harness import DEFAULT_NAME, decode_stream, encode_stream, write_sources
from firmware_sim.device.build import build
from firmware_sim.device.execute import run
from firmware_sim.device.targets import get_target
from firmware_sim.step_session import MARKER_DEFINES, StepSession

SEQUENCES = 4



def sequences(model, split, count=SEQUENCES):
    return quantize_features(model, split.x[:count]), np.asarray(split.lengths[:count])


@pytest.mark.parametrize("name", ["host", "cortex-m4"])
@pytest.mark.parametrize("scheme", ["int8", "int16x8"])
def test_session_steps_are_the_batch_run(quantized, japanese_vowels, tmp_path, name, scheme):
    target = get_target(name)
    model = quantized[scheme]
    x_q, lengths = sequences(model, japanese_vowels.test)
    sources = write_sources(model, tmp_path, DEFAULT_NAME)
    exe = build(target, sources, include_dirs=[tmp_path], out_dir=tmp_path, defines=MARKER_DEFINES, name=DEFAULT_NAME)
    counting = target.emulated
    batch = run(target, exe, encode_stream(x_q, lengths), timeout_s=600, count_instructions=counting)
    assert batch.exit_code == 0 and batch.fault_kind is None, batch.stderr
    batch_logits, batch_states = decode_stream(model, batch.stdout, x_q.shape[1], lengths)

    logits = np.zeros_like(batch_logits)
    states = [np.zeros_like(s) for s in batch_states]
    with StepSession(model, target, exe, count_instructions=counting) as session:
        for i, length in enumerate(lengths):
            session.reset()
            for t in range(int(length)):
                step_logits, step_states = session.step(x_q[i, t:t + 1])
                assert step_logits.shape == (1, model.config["num_classes"]) and step_logits.dtype == x_q.dtype
                logits[i, t] = step_logits[0]
                for stored, state in zip(states, step_states):
                    assert state.shape == (1, model.config["hidden"])
                    stored[i, t] = state[0]
        result = session.close()
    for i, length in enumerate(lengths):
        assert np.array_equal(logits[i, :length], batch_logits[i, :length])
        for ours, theirs in zip(states, batch_states):
            assert np.array_equal(ours[i, :length], theirs[i, :length])
    assert result.exit_code == 0 and result.fault_kind is None
    assert result.instruction_counts == batch.instruction_counts  # one per step, the same windows
    assert len(result.instruction_counts) == (int(lengths.sum()) if counting else 0)
    if counting:
        assert result.stack_peak_bytes is not None and result.stack_peak_bytes > 0


def test_a_record_of_many_steps_and_the_streaming_loop_agree(quantized, japanese_vowels, tmp_path):
    """step() of a whole sequence at once (one record), and the generic streaming loop (`stream_loop.stream`)
    driving the session's step function (reset whenever the loop starts from the initial state), give the
    batch outputs."""
    get_target("host")
    model = quantized["int8"]
    x_q, lengths = sequences(model, japanese_vowels.test)
    with StepSession.build(model, "host", tmp_path) as session:
        whole = []
        for i, length in enumerate(lengths):
            session.reset()
            whole.append(session.step(x_q[i, :length]))
        logits = np.zeros((len(lengths), x_q.shape[1], model.config["num_classes"]), dtype=x_q.dtype)
        states = [np.zeros((len(lengths), x_q.shape[1], model.config["hidden"]), dtype=x_q.dtype)
                  for _ in model.states]
        step = session.step_function()
        for i in range(len(lengths)):
            def store(t, outputs, active, i=i):
                logits[i, t] = outputs[0]
            final = stream(step, initial_states(model, 1), x_q[i:i + 1], lengths[i:i + 1], store)
            for stored, state in zip(states, final):
                stored[i, lengths[i] - 1] = state[0]
        with pytest.raises(EdgeGRUError, match="holds its own state"):
            session.step_function()(x_q[0, :1], [s + 1 for s in initial_states(model, 1)])
    batch = run("host", tmp_path / DEFAULT_NAME, encode_stream(x_q, lengths))
    batch_logits, batch_states = decode_stream(model, batch.stdout, x_q.shape[1], lengths)
    rows, last = np.arange(len(lengths)), lengths - 1
    for i, length in enumerate(lengths):
        assert np.array_equal(logits[i, :length], batch_logits[i, :length])
    for ours, theirs in zip(states, batch_states):  # each sequence's last state
        assert np.array_equal(ours[rows, last], theirs[rows, last])
    for i, (sequence_logits, sequence_states) in enumerate(whole):
        length = lengths[i]
        assert np.array_equal(sequence_logits, batch_logits[i, :length])
        for ours, theirs in zip(sequence_states, batch_states):
            assert np.array_equal(ours, theirs[i, :length])


def test_wrong_input_is_refused_before_anything_is_sent(quantized, tmp_path):
    get_target("host")
    model = quantized["int8"]
    with StepSession.build(model, "host", tmp_path) as session:
        with pytest.raises(EdgeGRUError, match=r"x_q must be int8 \[n, 12\]"):
            session.step(np.zeros((1, 12), dtype=np.int16))
        with pytest.raises(EdgeGRUError, match=r"x_q must be int8 \[n, 12\]"):
            session.step(np.zeros((12,), dtype=np.int8))
        logits, _ = session.step(np.zeros((1, 12), dtype=np.int8))  # still in step
        assert logits.shape == (1, model.config["num_classes"])


@pytest.mark.parametrize("name, program, message", [
    ("host", "int main(void) { return 3; }", "ended after 0 of the .* bytes expected, with exit code 3"),
    ("cortex-m4", 'int main(void) { __asm volatile(".inst.n 0xde00"); return 0; }', "with a UsageFault"),
])
def test_a_program_that_dies_raises(quantized, tmp_path, name, program, message):
    target = get_target(name)
    (tmp_path / "dies.c").write_text(program + "\n")
    exe = build(target, [tmp_path / "dies.c"], out_dir=tmp_path)
    with pytest.raises(EdgeGRUError, match=message):
        with StepSession(quantized["int8"], target, exe) as session:
            session.step(np.zeros((1, 12), dtype=np.int8))
    assert session._program.process.poll() is not None


def test_a_session_that_waits_for_input_is_killed_on_its_timeout(quantized, tmp_path):
    """The int16x8 model's harness fed as int8: it waits for the rest of the step and is killed."""
    get_target("host")
    exe_dir = tmp_path / "int16x8"
    with StepSession.build(quantized["int16x8"], "host", exe_dir) as built:
        exe = built._program.exe
    session = StepSession(quantized["int8"], "host", exe, timeout_s=0.5)
    with pytest.raises(EdgeGRUError, match="timed out after 0.5 s"):
        session.step(np.zeros((1, 12), dtype=np.int8))
    assert session._program.process.poll() is not None
