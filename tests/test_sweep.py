"""`edgegru sweep` on a tiny grid: killed mid-way and resumed (a cell's worker killed too, and
retried), nothing lost or duplicated, a finished cell never redone, an interrupted cell redone; an invalid grid refused before any work.  Its
`edgegru report`: numbers equal to the cells' files, and report.html opened offline in a real browser."""

from __future__ import annotations

import csv
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from edgegru.cli import main
from edgegru.stages import sweep_stage
from edgegru.stages.run_layout import RunLayout, read_json

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--dataset", "japanese-vowels", "--hidden", "4,8", "--schemes", "int8,int16x8", "--epochs", "1",
        "--backends", "tflm,onnxruntime", "--firmware", "cortex-m4", "--max-sequences", "20",
        "--cpus", "2"]


def cells(sweep_dir: Path) -> list[dict]:
    with open(sweep_dir / "cells.csv") as handle:
        return list(csv.DictReader(handle))


def markers(sweep_dir: Path) -> dict[Path, int]:
    return {path: path.stat().st_mtime_ns for path in sorted(sweep_dir.glob("runs/*/cells/*.json"))}


def descends_from(pid: int, ancestor: int) -> bool:
    while pid > 1:
        if pid == ancestor:
            return True
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])
        except (OSError, ValueError, IndexError):
            return False
    return False


def kill_one_cell_worker(killed: list[int], stop: threading.Event) -> None:
    """SIGKILL the first Ray worker of this process that runs a cell (its title is `ray::run_cell`)."""
    while not stop.is_set() and not killed:
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    title = (entry / "cmdline").read_bytes()
                except OSError:
                    continue
                if title.startswith(b"ray::run_cell") and descends_from(int(entry.name), os.getpid()):
                    os.kill(int(entry.name), signal.SIGKILL)
                    killed.append(int(entry.name))
                    return
        time.sleep(0.05)


@pytest.fixture(scope="module")
def resumed_sweep(tmp_path_factory):
    """The tiny sweep killed (SIGKILL to its whole process group) once its first cell finished, then run
    again to the end while one of its cell workers is killed; returns (sweep dir, the markers that
    existed at the kill, the pids of the killed workers)."""
    out = tmp_path_factory.mktemp("sweep") / "tiny"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    process = subprocess.Popen([sys.executable, "-m", "edgegru", "sweep", *TINY, "--out", str(out)], cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    while not markers(out) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    before = markers(out)
    assert 1 <= len(before) < 4, "the kill came too late to interrupt the sweep"
    killed, stop = [], threading.Event()
    watcher = threading.Thread(target=kill_one_cell_worker, args=(killed, stop))
    watcher.start()
    try:
        assert main(["sweep", *TINY, "--out", str(out)]) == 0
    finally:
        stop.set()
        watcher.join()
    return out, before, killed


def test_a_killed_sweep_resumes_without_losing_or_redoing_a_cell(resumed_sweep):
    out, before, killed = resumed_sweep
    assert len(killed) == 1, "no cell worker was killed: the retry went untested"
    rows = cells(out)
    keys = [tuple(row[k] for k in sweep_stage.CELL_KEYS) for row in rows]
    assert sorted(keys) == sorted({(d, h, "1", "reset_after", s, "0") for d in ["japanese-vowels"] for h in ("4", "8")
                                   for s in ("int8", "int16x8")})
    after = markers(out)
    assert all(after[path] == mtime for path, mtime in before.items()), "a finished cell was run again"


def test_the_rows_are_the_cells_own_files(resumed_sweep):
    out, _, _ = resumed_sweep
    for row in cells(out):
        layout = RunLayout(out / row["run_dir"])
        quant, verified = read_json(layout.quant_json(row["scheme"])), read_json(layout.verify_json(row["scheme"]))
        assert float(row["accuracy"]) == quant["quant_accuracy"] and int(row["model_bytes"]) == quant["weight_bytes"]
        assert int(row["mismatches"]) == sum(r["mismatches"] for r in verified["backends"].values()) == 0
        assert set(verified["backends"]) == {"tflm", "onnxruntime"}
        firmware = read_json(layout.firmware_dir(row["scheme"]) / "cortex-m4" / "firmware.json")
        assert int(row["cortex-m4_instructions_per_step"]) == firmware["instructions_per_step_median"] > 0


def test_a_finished_sweep_does_no_work(resumed_sweep, monkeypatch, capsys):
    out, _, _ = resumed_sweep
    before = markers(out)
    monkeypatch.setattr(sweep_stage, "_start_ray", lambda *args: pytest.fail("Ray started for a finished sweep"))
    assert main(["sweep", *TINY, "--out", str(out)]) == 0
    assert "4 finished before, 0 run now" in capsys.readouterr().out
    assert markers(out) == before


def test_an_interrupted_cell_is_redone_alone(resumed_sweep):
    out, _, _ = resumed_sweep
    run = out / "runs" / "japanese-vowels-h8-l1-reset_after-seed0"
    # A cell interrupted after quantizing: no verification, no marker.
    (run / "verify" / "int16x8.json").unlink()
    sweep_stage.marker_path(run, "int16x8").unlink()
    before = markers(out)
    grid, base = sweep_stage.read_sweep(out)
    result = sweep_stage.sweep_run(out, grid, base, cpus=2, progress=False)
    assert (result["already"], result["ran"], len(result["rows"])) == (3, 1, 4)
    assert all(markers(out)[path] == mtime for path, mtime in before.items())
    assert (run / "verify" / "int16x8.json").is_file()


@pytest.mark.parametrize("argument, message", [
    (["--hidden", "0,16"], "invalid grid: hidden 0; hidden sizes are integers >= 1"),
    (["--schemes", "int8,int4"], "invalid grid: scheme int4; choose from int8, int16x8"),
    (["--seeds", "-1"], "invalid grid: --seeds -1; the number of seeds is an integer >= 1"),
])
def test_an_invalid_grid_fails_before_any_work(argument, message, tmp_path, capsys):
    out = tmp_path / "sweep"
    assert main(["sweep", "--dataset", "japanese-vowels", *argument, "--out", str(out)]) == 2
    assert capsys.readouterr().err == f"edgegru: error: {message}\n"
    assert not out.exists()


@pytest.fixture(scope="module")
def reported_sweep(resumed_sweep):
    out, _, _ = resumed_sweep
    assert main(["report", str(out)]) == 0
    return out


def test_a_number_of_the_html_is_its_cells_own(reported_sweep):
    out = reported_sweep
    page = (out / "report.html").read_text()
    cell = "runs/japanese-vowels-h8-l1-reset_after-seed0/int16x8"
    found = re.search(f"<td data-cell='{cell}' data-column='accuracy' data-value='([^']*)'>([^<]*)</td>", page)
    quant = read_json(RunLayout(out / "runs/japanese-vowels-h8-l1-reset_after-seed0").quant_json("int16x8"))
    assert found and float(found[1]) == quant["quant_accuracy"] and found[2] == f"{quant['quant_accuracy']:.4f}"
    verified = read_json(RunLayout(out / "runs/japanese-vowels-h8-l1-reset_after-seed0").verify_json("int16x8"))
    found = re.search(f"<td data-cell='{cell}' data-column='tflm_mismatches' data-value='([^']*)'>", page)
    assert found and int(found[1]) == verified["backends"]["tflm"]["mismatches"]
    firmware = read_json(RunLayout(out / "runs/japanese-vowels-h8-l1-reset_after-seed0").firmware_dir("int16x8")
                         / "cortex-m4" / "firmware.json")
    found = re.search(f"<td data-cell='{cell}' data-column='cortex-m4_flash_bytes' data-value='([^']*)'>([^<]*)</td>", page)
    assert found and int(found[1]) == firmware["flash_bytes"] and found[2] == f"{firmware['flash_bytes']:,}"
    assert "http://" not in page and "https://" not in page


def test_the_report_renders_offline_in_a_real_browser(reported_sweep):
    from playwright.sync_api import sync_playwright

    browser_path = shutil.which("chromium-headless-shell")
    assert browser_path, "chromium-headless-shell is missing: `make toolchain` installs it"
    errors, requests = [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=browser_path, args=["--no-sandbox"])
        try:
            page = browser.new_context(offline=True).new_page()
            page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on("request", lambda request: requests.append(request.url))
            page.goto((reported_sweep / "report.html").as_uri(), wait_until="load")
            images = page.eval_on_selector_all("img", "all => all.map(i => [i.id, i.complete, i.naturalWidth])")
            title = page.title()
        finally:
            browser.close()
    assert [name for name, _, _ in images] == ["japanese-vowels-accuracy-vs-bytes", "japanese-vowels-accuracy-vs-params",
                                               "firmware-instructions"]
    assert all(complete and width > 0 for _, complete, width in images), images
    assert errors == []
    assert all(url.startswith(("file:", "data:")) for url in requests), requests
    assert title == "EdgeGRU sweep tiny: 4 cells"


def test_a_second_sweep_on_the_same_directory_is_refused_while_the_first_runs(resumed_sweep, capsys):
    """The lock is the kernel's: held by a live process it refuses, and it goes away with that process."""
    out, _, _ = resumed_sweep
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, sys, time; f = open(sys.argv[1], 'a+'); "
                               "fcntl.flock(f, fcntl.LOCK_EX); f.write('pid test'); f.flush(); print('held', flush=True); "
                               "time.sleep(60)", str(out / sweep_stage.LOCK_FILE)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert main(["sweep", *TINY, "--out", str(out)]) == 2
        assert "another sweep" in capsys.readouterr().err
    finally:
        holder.kill()
        holder.wait()
    assert main(["sweep", *TINY, "--out", str(out)]) == 0


def test_an_address_where_no_ray_head_answers_is_one_clear_line(tmp_path, capsys):
    assert main(["sweep", *TINY, "--address", "127.0.0.1:1", "--out", str(tmp_path / "sweep")]) == 2
    error = capsys.readouterr().err
    assert "nothing answers" in error and "ray start --head" in error and "Traceback" not in error
