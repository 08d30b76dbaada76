"""`engine export`: candidate 0 as a firmware project, built with arm-none-eabi-gcc (-Werror), booted in
`qemu-system-arm -M mps2-an500`, and the same sources built with zig cc and run on Unicorn.

Independent truth: the integer reference (`quant.run_int8`) on the same shapes10 test image, with the
CRC-32 computed here by zlib over its per-layer outputs; sizes re-read with `arm-none-eabi-size -A`.
Without the toolchain these tests skip locally; in CI (WORKBENCH_REQUIRE_FIRMWARE=1, set by .ci/run) a
missing arm-none-eabi-gcc or qemu-system-arm is a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest

from core.cli import main as cli_main
from core.engine import export as ex
from core.errors import WorkbenchError

TOOLS = ("arm-none-eabi-gcc", "arm-none-eabi-size", "make", "qemu-system-arm")


def need_firmware_tools(tools: tuple[str, ...] = TOOLS) -> None:
    """Skip without the Debian toolchain locally; in CI (WORKBENCH_REQUIRE_FIRMWARE=1) fail instead."""
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        msg = (f"{', '.join(missing)} not installed "
               "(apt-get install gcc-arm-none-eabi qemu-system-arm make cmake)")
        if os.environ.get("WORKBENCH_REQUIRE_FIRMWARE"):
            pytest.fail(f"the firmware toolchain is required: {msg}")
        pytest.skip(msg)


@pytest.fixture(scope="module")
def reference():
    """Candidate 0's int8 model, the test image and the reference's per-layer CRC-32s and class."""
    from core.engine import models
    from core.tinyformer.data import get_dataset
    from core.tinyformer.quant import quantize_input, run_int8
    from core.tinyformer.schedule import fuse_attention

    qm, row = models.candidate(0)
    images, labels = get_dataset("shapes10", "test", n=1).tensors(1)
    x = quantize_input(qm, images)[0]
    out, env = run_int8(qm, x, trace=True)
    layers = fuse_attention(qm.graph)[0].ops  # the firmware runs each attention chain as one layer
    crcs = [zlib.crc32(np.ascontiguousarray(env[op.output]).tobytes()) for op in layers]
    # a CMSIS-NN deployment keeps attention as three ops (CMSIS-NN has no fused attention)
    unfused = [zlib.crc32(np.ascontiguousarray(env[q.op.output]).tobytes()) for q in qm.qops]
    return {"qm": qm, "row": row, "crc32": crcs, "class": int(np.argmax(out.ravel())),
            "names": [op.name for op in layers], "crc32_unfused": unfused}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    need_firmware_tools()
    return ex.export_firmware(0, tmp_path_factory.mktemp("export") / "fw0", "mps2-an500")


@pytest.mark.slow
def test_qemu_uart_checksums_and_class_equal_the_integer_reference(exported, reference):
    uart = ex.parse_uart(exported.uart)
    assert [r["name"] for r in uart["layers"]] == reference["names"]
    assert [r["crc32"] for r in uart["layers"]] == reference["crc32"]
    assert uart["class"] == reference["class"]
    n = len(reference["names"])
    assert uart["status"] == 0 and f"check=PASS {n}/{n}" in exported.uart
    # QEMU emulates no DWT: the firmware says so instead of printing zeros as cycle counts
    assert not uart["dwt"] and "QEMU does not emulate the DWT" in exported.uart
    assert all(r["cycles"] is None for r in uart["layers"])


@pytest.mark.slow
def test_two_compilers_two_emulators_one_answer(exported, reference):
    rep = exported.report
    want = [f"{c:08x}" for c in reference["crc32"]]
    assert [r["crc32_unicorn"] for r in rep["layers"]] == want  # zig cc + Unicorn
    assert [r["crc32_qemu"] for r in rep["layers"]] == want  # arm-none-eabi-gcc + QEMU
    assert rep["unicorn"]["class"] == rep["qemu"]["class"] == reference["class"]
    assert rep["problems"] == []


@pytest.mark.slow
def test_sizes_are_the_toolchains_and_the_nas_estimate(exported, reference):
    elf = exported.path / "build" / "firmware.elf"
    out = subprocess.run(["arm-none-eabi-size", "-A", str(elf)], capture_output=True, text=True,
                         check=True).stdout
    sec = {ln.split()[0]: int(ln.split()[1]) for ln in out.splitlines() if ln.startswith(".")}
    gcc, nas = exported.sizes[2], exported.sizes[0]
    assert gcc["flash_bytes"] == sec[".isr_vector"] + sec[".text"] + sec[".rodata"] + sec[".data"]
    assert gcc["sram_bytes"] == sec[".data"] + sec[".bss"] + sec[".noinit"] + sec[".stack"]
    assert (nas["flash_bytes"], nas["sram_bytes"]) == (reference["row"]["flash_bytes"],
                                                       reference["row"]["sram_bytes"])
    # the arena and the 8 KB stack are in the gcc ELF's SRAM; the weights in its flash
    assert gcc["sram_bytes"] >= exported.report["arena_bytes"] + ex.STACK_BYTES
    assert gcc["flash_bytes"] > nas["flash_bytes"] * 0.9
    assert "zig cc ELF" in exported.sizes[1]["build"] and exported.sizes[1]["flash_bytes"] > 0
    assert "| arm-none-eabi-gcc ELF (this project) |" in (exported.path / "README.md").read_text()


@pytest.mark.slow
def test_export_is_complete_and_recorded(exported):
    folder = exported.path
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["kind"] == ex.EXPORT_KIND and manifest["candidate"] == 0
    assert manifest["command"].startswith("python -m core engine export 0 --out ")
    for name, digest in manifest["files"].items():
        import hashlib

        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest, name
    for name in ("Makefile", "CMakeLists.txt", "board.mk", "mps2-an500.ld", "README.md", "src/main.c",
                 "src/startup.c", "src/board_mps2_an500.c", "model/model.c", "model/model.h"):
        assert (folder / name).is_file(), name
    assert "-Werror" in (folder / "Makefile").read_text()
    assert not list((folder / "build").rglob("*.o"))
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]  # no temporary left


@pytest.mark.slow
def test_cmake_builds_the_same_image(exported, tmp_path):
    need_firmware_tools(("cmake",))
    src = tmp_path / "fw"
    shutil.copytree(exported.path, src, ignore=shutil.ignore_patterns("build"))
    for cmd in (["cmake", "-S", str(src), "-B", str(src / "b")], ["cmake", "--build", str(src / "b"), "-j2"]):
        res = subprocess.run(cmd, capture_output=True, text=True, check=False)
        assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    uart = ex.run_qemu(src / "b" / "firmware.elf", timeout=60)
    assert ex.parse_uart(uart)["layers"] == ex.parse_uart(exported.uart)["layers"]


@pytest.mark.slow
def test_a_hanging_qemu_run_is_stopped_with_its_last_uart_line(exported, tmp_path):
    src = tmp_path / "fw"
    shutil.copytree(exported.path, src, ignore=shutil.ignore_patterns("build"))
    ex.gcc_build(src, "SEMIHOSTING=0")  # the firmware then parks in WFI instead of ending QEMU
    with pytest.raises(WorkbenchError, match=r"did not finish within 3 s.*'done status=0'"):
        ex.run_qemu(src / "build" / "firmware.elf", timeout=3)


@pytest.mark.slow
def test_stm32_export_builds_and_replaces_an_earlier_export(tmp_path):
    need_firmware_tools()
    out = tmp_path / "disco"
    out.mkdir()
    (out / ex.MANIFEST).write_text(json.dumps({"kind": ex.EXPORT_KIND}))
    (out / "stale.txt").write_text("from an earlier export")
    res = ex.export_firmware(0, out, "stm32f746g-disco", sparse="dense", overwrite=True, run=False)
    assert not (out / "stale.txt").exists() and (out / "src" / "board_stm32f746g_disco.c").is_file()
    nm = subprocess.run(["arm-none-eabi-nm", str(out / "build" / "firmware.elf")], capture_output=True,
                        text=True, check=True).stdout
    symbols = {ln.split()[-1]: int(ln.split()[0], 16) for ln in nm.splitlines() if len(ln.split()) == 3}
    assert symbols["fw_vectors"] == 0x08000000  # the vector table at the STM32F746's flash
    assert 0x20000000 <= symbols["se_arena"] < symbols["_estack"] <= 0x20000000 + 320 * 1024
    gcc = res.sizes[2]
    assert gcc["flash_bytes"] <= 1024 * 1024 and gcc["sram_bytes"] <= 320 * 1024
    assert res.uart == "" and res.report["qemu"] is None
    assert "st-flash" in (out / "README.md").read_text()


@pytest.mark.slow
def test_cmsis_nn_kernels_export_matches_the_integer_reference(reference, tmp_path):
    """--kernels cmsis-nn: CMSIS-NN (../shared/third_party/CMSIS-NN) runs the conv/FC/matmul layers, built
    by the exported Makefile from third_party/ with gcc and by the engine with zig cc: same checksums."""
    need_firmware_tools()
    res = ex.export_firmware(0, tmp_path / "cm", "mps2-an500", sparse="dense", kernels="cmsis-nn")
    uart = ex.parse_uart(res.uart)
    assert [r["crc32"] for r in uart["layers"]] == reference["crc32_unfused"]
    assert uart["class"] == reference["class"] and uart["status"] == 0
    want = [f"{c:08x}" for c in reference["crc32_unfused"]]
    assert [r["crc32_unicorn"] for r in res.report["layers"]] == want
    assert (res.path / "third_party" / "CMSIS-NN" / "LICENSE").is_file()
    assert (res.path / "model" / "se_cmsis.c").is_file()
    assert "arm_" in (res.path / "model" / "se_cmsis.c").read_text()
    model_c = (res.path / "model" / "model.c").read_text()
    assert "se_cmsis_" in model_c and "se_sparse_" not in model_c


# ------------------------------------------------------------------------------------- bad input --
def test_unknown_board_and_candidate_are_refused(tmp_path, capsys):
    out = tmp_path / "fw"
    assert cli_main(["engine", "export", "0", "--out", str(out), "--board", "nucleo"]) == 2
    assert "unknown board 'nucleo'; known: stm32f746g-disco, mps2-an500" in capsys.readouterr().err
    need_firmware_tools()
    with pytest.raises(WorkbenchError, match="candidate id 999 is not in"):
        ex.export_firmware(999, out)
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_an_existing_folder_is_refused_and_never_deleted(tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    assert cli_main(["engine", "export", "0", "--out", str(out)]) == 2
    assert "already exists; pass --overwrite" in capsys.readouterr().err
    with pytest.raises(WorkbenchError, match="is not an earlier firmware export"):
        ex.export_firmware(0, out, overwrite=True)
    assert (out / "notes.txt").read_text() == "keep me" and sorted(os.listdir(out)) == ["notes.txt"]


def test_a_missing_toolchain_or_qemu_names_the_debian_package(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    with pytest.raises(WorkbenchError, match=r"arm-none-eabi-gcc is not installed; install Debian's "
                                             r"gcc-arm-none-eabi package"):
        ex.export_firmware(0, tmp_path / "fw")
    for name in ("arm-none-eabi-gcc", "arm-none-eabi-size", "make"):  # all but QEMU
        (bin_dir / name).symlink_to("/bin/true")
    with pytest.raises(WorkbenchError, match="qemu-system-arm is not installed; install Debian's qemu-sys"):
        ex.export_firmware(0, tmp_path / "fw", "mps2-an500")
    assert not (tmp_path / "fw").exists()


def test_cmsis_nn_needs_dense_weights_and_a_checkout(tmp_path, capsys):
    out = tmp_path / "cm"
    assert cli_main(["engine", "export", "0", "--out", str(out), "--kernels", "cmsis-nn"]) == 2
    assert "runs dense weights only" in capsys.readouterr().err
    assert cli_main(["engine", "export", "0", "--out", str(out), "--kernels", "cmsis-nn", "--sparse", "dense",
                     "--cmsis-nn", str(tmp_path / "nope"), "--no-run"]) == 2
    err = capsys.readouterr().err
    assert "no CMSIS-NN checkout at" in err or "is not installed" in err  # the toolchain is checked first
    assert not out.exists()


def test_uart_without_a_complete_report_is_refused():
    with pytest.raises(WorkbenchError, match="no complete report"):
        ex.parse_uart("== SparseEngine firmware ==\nlayer 0 a conv2d crc32=0x00000001 cycles=n/a\n")
    ok = ex.parse_uart("layer 0 a conv2d crc32=0x0000000f cycles=12\nclass=2 (square) logits=1,-3,5\n"
                       "done status=0\n")
    assert ok["layers"][0]["crc32"] == 15 and ok["layers"][0]["cycles"] == 12
    assert (ok["class"], ok["logits"], ok["status"]) == (2, [1, -3, 5], 0)


def test_crc32_is_zlibs_over_c_order_bytes():
    a = np.arange(-6, 6, dtype=np.int8).reshape(2, 3, 2)
    assert ex.crc32(a) == zlib.crc32(bytes([v & 0xFF for v in range(-6, 6)]))
    assert ex.crc32(a.transpose(1, 0, 2)) == zlib.crc32(np.ascontiguousarray(a.transpose(1, 0, 2)).tobytes())


def test_firmware_files_ship_as_package_data():
    import tomllib

    cfg = tomllib.loads(Path(__file__).resolve().parents[1].joinpath("pyproject.toml").read_text())
    patterns = cfg["tool"]["setuptools"]["package-data"]["*"]
    from fnmatch import fnmatch

    for path in ex.FIRMWARE_DIR.iterdir():
        assert any(fnmatch(path.name, p) for p in patterns), f"{path.name} is not package data"
