"""NAS explorer's "Export firmware": the page object (no browser) and, marked `ui`, the same in Chromium.

The page calls `core.engine.export` in its task runner and offers the project as a zip. Checked against
independent truth: the zip's own ELF measured here with `arm-none-eabi-size`, and the files the
export's manifest lists. Without the firmware toolchain these skip locally; with WORKBENCH_REQUIRE_FIRMWARE
(set by .ci/run) they fail instead.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "app"))  # as `panel serve app` does

from pages import nas_explorer as ne  # noqa: E402
from test_engine_export import need_firmware_tools  # noqa: E402

SHOTS = Path("/tmp/shots")


def _berkeley(elf: Path) -> tuple[int, int]:
    out = subprocess.run(["arm-none-eabi-size", "--format=berkeley", str(elf)], capture_output=True,
                         text=True, check=True).stdout
    text, data, bss = (int(v) for v in out.splitlines()[1].split()[:3])
    return text + data, data + bss


@pytest.mark.slow
def test_export_firmware_offers_a_zip_with_the_toolchains_sizes(tmp_path):
    need_firmware_tools()
    page = ne.create()
    page.candidate = 0
    assert not page.firmware_download.visible and "Export firmware" in page.firmware_text.object
    page.board = "mps2-an500"
    assert page.export_firmware()
    assert page.runner.wait(timeout=600) and page.runner.error == ""
    result = page.firmware[(0, "mps2-an500")]
    assert page.firmware_download.visible and page.firmware_download.filename == "candidate0_mps2-an500.zip"
    with zipfile.ZipFile(io.BytesIO(result["zip"])) as zf:
        names = zf.namelist()
        zf.extractall(tmp_path)
    root = tmp_path / "candidate0_mps2-an500"
    manifest = json.loads((root / "manifest.json").read_text())
    listed = [f"candidate0_mps2-an500/{f}" for f in [*manifest["files"], "manifest.json"]]
    assert sorted(listed) == sorted(names)
    flash, sram = _berkeley(root / "build" / "firmware.elf")
    shown = page.firmware_text.object
    assert f"| arm-none-eabi-gcc ELF (this project) | {flash} | {flash / 1024:.1f} | {sram} |" in shown
    assert "| NAS estimate (candidates.parquet) |" in shown and "| zig cc ELF" in shown
    assert re.search(r"check=PASS (\d+)/\1\b", shown)  # QEMU's UART tail: every layer's checksum
    page.board = "stm32f746g-disco"  # another board: not exported yet, so no download offered
    assert not page.firmware_download.visible


@pytest.mark.ui
@pytest.mark.slow
def test_export_firmware_in_the_browser(served_app, page):
    need_firmware_tools()
    page.goto(served_app)
    page.locator(".bk-tab", has_text="NAS explorer").first.click(timeout=60_000)
    page.locator(".nas-detail-tabs .bk-tab", has_text="Engine & firmware").first.click(timeout=90_000)
    button = page.locator(".nas-export button").first
    button.wait_for(timeout=90_000)
    button.click()
    table = page.locator(".nas-firmware table").first
    table.wait_for(timeout=600_000)
    text = table.inner_text()
    assert "arm-none-eabi-gcc ELF (this project)" in text and "NAS estimate" in text
    download = page.get_by_text("Download candidate0_stm32f746g-disco.zip").first
    download.wait_for(timeout=30_000)
    with page.expect_download(timeout=60_000) as info:
        download.click()
    path = info.value.path()
    with zipfile.ZipFile(path) as zf:
        assert "candidate0_stm32f746g-disco/src/board_stm32f746g_disco.c" in zf.namelist()
    assert page.js_errors == []
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.locator(".nas-firmware").first.scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / "export.png"))
